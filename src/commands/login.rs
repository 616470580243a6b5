//! Registry passwords given on the command line, shared by `bundle push` and
//! `bundle build`: read from standard input, never from argv.

use std::io::Read;

use crate::report::hinted;

/// The password piped to `--password-stdin` (one line; the newline is not part of it).
pub fn password_from_stdin(command: &str) -> anyhow::Result<String> {
    let mut p = String::new();
    std::io::stdin().read_to_string(&mut p)?;
    let p = p.trim_end_matches(['\r', '\n']).to_string();
    if p.is_empty() {
        return Err(hinted(
            "`--password-stdin` read an empty password",
            format!("pipe the password in: `bundle {command} … --password-stdin < file`"),
        ));
    }
    Ok(p)
}
