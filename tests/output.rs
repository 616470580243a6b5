//! What `bundle` writes when nobody is watching a terminal: no escape sequences under a
//! pipe or in a file, colour on a terminal unless `NO_COLOR` says otherwise, and hints
//! that fit the way a registry could not be reached.
//!
//! The failing command is a real `bundle build` of an image whose registry cannot be
//! reached: it warns (a new default key, then `tracing` retry warnings) and fails
//! with an error and a hint.

mod common;

use std::process::{Command, Output};

use common::Session;

/// A manifest pinning one image from `registry`.
fn manifest_from(s: &Session, registry: &str) {
    s.write(
        "m.yaml",
        format!(
            "apiVersion: bundle/v1alpha1\nkind: BundleManifest\nmetadata: {{name: x, version: \"1\"}}\n\
             spec:\n  kubernetesVersion: v1.29.2\n  platforms: [linux/amd64]\n  images: [{registry}/a:b]\n"
        ),
    );
}

const BUILD: &[&str] = &["build", "--manifest", "m.yaml", "-o", "out.tar.zst"];

/// `bundle build` of an unreachable image, output piped, colour not turned off.
fn build_piped(s: &Session) -> Output {
    let mut c = s.command(BUILD);
    c.env_remove("NO_COLOR");
    c.output().expect("run bundle")
}

/// The colour (SGR) sequences in `text`: ESC `[` digits and `;` then `m`.
fn colour_codes(text: &[u8]) -> usize {
    let mut n = 0;
    for (i, w) in text.windows(2).enumerate() {
        if w == b"\x1b[" {
            let rest = &text[i + 2..];
            let len = rest
                .iter()
                .take_while(|b| b.is_ascii_digit() || **b == b';')
                .count();
            if rest.get(len) == Some(&b'm') {
                n += 1;
            }
        }
    }
    n
}

/// Runs `shell` under `script`, which gives it a pseudo-terminal as stdin, stdout and
/// stderr; returns what the terminal showed. `None` when util-linux's `script` is missing.
fn on_terminal(s: &Session, shell: &str, no_color: Option<&str>) -> Option<String> {
    let mut c = Command::new("script");
    c.args(["-qec", shell, "/dev/null"])
        .current_dir(s.work())
        .env("XDG_CONFIG_HOME", s.dir.path().join("config"))
        .env("XDG_CACHE_HOME", s.dir.path().join("cache"))
        .env_remove("BUNDLE_LOG")
        .stdin(std::process::Stdio::null());
    match no_color {
        Some(v) => c.env("NO_COLOR", v),
        None => c.env_remove("NO_COLOR"),
    };
    let out = match c.output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipped: `script` (util-linux) is not installed");
            return None;
        }
        Err(e) => panic!("running script: {e}"),
    };
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn build_line() -> String {
    format!("{} {}", env!("CARGO_BIN_EXE_bundle"), BUILD.join(" "))
}

fn dead_registry() -> String {
    format!("127.0.0.1:{}", bundle_testbed::free_port())
}

#[test]
fn warnings_and_errors_under_a_pipe_carry_no_escape_codes() {
    let s = Session::new();
    manifest_from(&s, &dead_registry());
    let out = build_piped(&s);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // Both kinds of warning are there: the CLI's own and the retries logged by tracing.
    assert!(
        stderr.contains("warning: created your default signing key"),
        "{stderr}"
    );
    assert!(
        stderr.contains(" WARN ") && stderr.contains("retrying in"),
        "{stderr}"
    );
    assert!(stderr.contains("\nerror: image `127.0.0.1:"), "{stderr}");
    assert!(stderr.contains("\nhint: "), "{stderr}");
    assert!(
        !out.stderr.contains(&0x1b),
        "escape byte in stderr:\n{stderr:?}"
    );
    assert!(!out.stdout.contains(&0x1b), "escape byte in stdout");
    // One plain line per event: no carriage returns redrawing a line.
    assert!(!out.stderr.contains(&b'\r'), "{stderr:?}");
}

#[test]
fn on_a_terminal_warnings_and_errors_are_coloured_unless_no_color_is_set() {
    let s = Session::new();
    manifest_from(&s, &dead_registry());
    let Some(coloured) = on_terminal(&s, &build_line(), None) else {
        return;
    };
    assert!(coloured.contains("error:"), "{coloured:?}");
    assert!(colour_codes(coloured.as_bytes()) > 0, "{coloured:?}");
    // An empty NO_COLOR counts as unset (no-color.org).
    let empty = on_terminal(&s, &build_line(), Some("")).unwrap();
    assert!(colour_codes(empty.as_bytes()) > 0, "{empty:?}");

    let plain = on_terminal(&s, &build_line(), Some("1")).unwrap();
    assert!(
        plain.contains("error:") && plain.contains("retrying in"),
        "{plain:?}"
    );
    assert_eq!(colour_codes(plain.as_bytes()), 0, "{plain:?}");
}

#[test]
fn stderr_to_a_file_is_plain_while_stdout_is_a_terminal() {
    let s = Session::new();
    manifest_from(&s, &dead_registry());
    let Some(_) = on_terminal(&s, &format!("{} 2>err.txt", build_line()), None) else {
        return;
    };
    let err = std::fs::read(s.path("err.txt")).unwrap();
    let text = String::from_utf8_lossy(&err);
    assert!(
        text.contains("error: image") && text.contains("retrying in"),
        "{text}"
    );
    assert!(!err.contains(&0x1b), "{text:?}");
}

/// The hint lines of a piped run.
fn hints(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("hint: "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_registry_name_that_does_not_resolve_gets_a_dns_hint_not_plain_http() {
    let s = Session::new();
    manifest_from(&s, "registry.invalid:5000");
    let out = build_piped(&s);
    let hint = hints(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        hint.contains("`registry.invalid` does not resolve to an address here"),
        "{hint}"
    );
    assert!(!hint.contains("plain-http"), "{hint}");
}

#[test]
fn a_refused_connection_gets_a_port_hint_not_plain_http() {
    let s = Session::new();
    let dead = dead_registry();
    manifest_from(&s, &dead);
    let out = build_piped(&s);
    let hint = hints(&out);
    assert!(
        hint.contains(&format!("nothing accepts connections at `{dead}`")),
        "{hint}"
    );
    assert!(!hint.contains("plain-http"), "{hint}");
}
