//! Test support: run the real `bundle` binary in a temp folder with its own config and
//! cache folders, and normalize output for snapshots.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod craft;
pub mod upstream;

/// A user's session: a work folder, and config/cache folders of its own.
pub struct Session {
    pub dir: tempfile::TempDir,
}

impl Session {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        for d in ["work", "config", "cache"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        Self { dir }
    }

    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.work().join(rel)
    }

    pub fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// The command, ready to run in the work folder.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_bundle"));
        self.prepare(&mut c);
        c.args(args);
        c
    }

    /// Gives `c` (the binary itself, or a wrapper such as `ip netns exec NS bundle`) the
    /// session's folder and environment.
    pub fn prepare(&self, c: &mut Command) {
        c.current_dir(self.work())
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"))
            .env_remove("BUNDLE_KEY_PASSWORD")
            .env_remove("BUNDLE_LOG")
            .env("NO_COLOR", "1");
        for v in [
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
            "NO_PROXY",
            "no_proxy",
        ] {
            c.env_remove(v);
        }
    }

    /// Runs a prepared command.
    pub fn run_command(&self, mut c: Command) -> Run {
        let out = c.output().expect("run bundle");
        Run::from(out, self)
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().expect("run bundle");
        Run::from(out, self)
    }

    /// Writes a file under the work folder.
    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::fs::write(&p, content).expect("write");
        p
    }

    /// A new unencrypted key pair `PREFIX.key` / `PREFIX.pub` in the work folder.
    pub fn keygen(&self, prefix: &str) -> (PathBuf, PathBuf) {
        let r = self.run(&["keygen", "--unencrypted", "--output", prefix]);
        assert_eq!(r.code, 0, "keygen: {}", r.stderr);
        (
            self.path(&format!("{prefix}.key")),
            self.path(&format!("{prefix}.pub")),
        )
    }
}

/// A finished run, with output normalized: the session folder shows as `[TEMP_DIR]`.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(out: Output, s: &Session) -> Self {
        let norm = |b: &[u8]| {
            let text = String::from_utf8_lossy(b).into_owned();
            text.replace(&s.dir.path().display().to_string(), "[TEMP_DIR]")
        };
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout: norm(&out.stdout),
            stderr: norm(&out.stderr),
        }
    }

    /// Exit code, stdout and stderr as one text for snapshots.
    pub fn transcript(&self) -> String {
        format!(
            "exit code: {}\n----- stdout -----\n{}----- stderr -----\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Replaces digests and key IDs so snapshots do not depend on random keys and data.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("sha256:") {
        let (head, tail) = rest.split_at(i);
        out.push_str(head);
        let hex_len = tail[7..]
            .bytes()
            .take_while(|b| b.is_ascii_hexdigit())
            .count();
        if hex_len == 64 {
            out.push_str("[DIGEST]");
            rest = &tail[7 + 64..];
        } else {
            out.push_str("sha256:");
            rest = &tail[7..];
        }
    }
    out.push_str(rest);
    redact_key_ids(&out)
}

fn redact_key_ids(text: &str) -> String {
    text.split_inclusive(|c: char| c.is_whitespace() || c == ',' || c == ':')
        .map(|w| {
            let word = w.trim_end_matches(|c: char| c.is_whitespace() || c == ',' || c == ':');
            if word.len() == 16
                && word
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
            {
                w.replacen(word, "[KEY_ID]", 1)
            } else {
                w.to_string()
            }
        })
        .collect()
}

/// Runs an external tool, returning (exit code, stdout+stderr).
pub fn tool(cmd: &str, args: &[&str], dir: &Path) -> (i32, String) {
    let out = Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// Extracts a bundle with the real `tar` and `zstd`, as an operator would.
pub fn extract(bundle: &Path, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    let (code, out) = tool(
        "tar",
        &[
            "-I",
            "zstd",
            "-xf",
            bundle.to_str().unwrap(),
            "-C",
            into.to_str().unwrap(),
        ],
        into,
    );
    assert_eq!(code, 0, "tar -x: {out}");
}
