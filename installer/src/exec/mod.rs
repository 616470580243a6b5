//! Executors: carry a host's steps out. [`ssh::SshHost`] reaches a host through the
//! system `ssh` (the `openssh` crate, one ControlMaster per host), so the user's ssh
//! configuration, agent, jump hosts and `known_hosts` behave as they do for `ssh`.
//!
//! Nothing secret goes on a command line: file contents (which may carry secrets)
//! and the sudo password travel on standard input; outputs pass through a
//! [`Redactor`] before anything stores or shows them.

pub mod ssh;

pub use ssh::{SshHost, SshTarget};

/// What a remote command left behind.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// Exit code (`None`: killed by a signal or the connection dropped).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

impl Output {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Standard output then standard error, as text.
    pub fn text(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.stdout).into_owned();
        let err = String::from_utf8_lossy(&self.stderr);
        if !err.is_empty() {
            if !s.is_empty() && !s.ends_with('\n') {
                s.push('\n');
            }
            s.push_str(&err);
        }
        s
    }
}

/// Replaces secret values by `<secret:NAME>` in text that will be logged, stored or
/// shown.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    values: Vec<(String, String)>,
}

impl Redactor {
    /// Adds a value to hide, shown as `<secret:NAME>`. Values shorter than 4
    /// characters are not hidden (they would garble every output).
    pub fn add(&mut self, name: &str, value: &str) {
        if value.len() >= 4 && !self.values.iter().any(|(_, v)| v == value) {
            self.values.push((name.to_string(), value.to_string()));
            // Longest first, so a value containing another is replaced whole.
            self.values.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
        }
    }

    /// `text` with every known secret replaced.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (name, v) in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), &format!("<secret:{name}>"));
            }
        }
        out
    }
}

/// Quotes `s` for a POSIX shell (single quotes).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The last `n` lines of `text`.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_a_shell() {
        for s in ["plain", "a b", "it's", "$(x) `y` \"z\"", ""] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", shell_quote(s)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), s);
        }
    }

    #[test]
    fn redactor_hides_values_longest_first() {
        let mut r = Redactor::default();
        r.add("token", "abcdef.0123456789abcdef");
        r.add("part", "abcdef");
        assert_eq!(
            r.redact("kubeadm join --token abcdef.0123456789abcdef and abcdef"),
            "kubeadm join --token <secret:token> and <secret:part>"
        );
    }
}
