//! A host reached over SSH: the system `ssh` through the `openssh` crate, one
//! ControlMaster connection per host (every command reuses it).
//!
//! Host keys are checked strictly (`StrictHostKeyChecking=yes`): an unknown or changed
//! key stops with its fingerprint and how to accept it. Commands run as `sh -c` (as
//! root, or through `sudo` with `become: sudo`); files are written with `cat >` to a
//! temporary name (mode 0600 while written), then owner and mode are set and the file
//! is renamed into place. File contents and the sudo password travel on standard
//! input, never on a command line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use openssh::{ControlPersist, KnownHosts, SessionBuilder, Stdio};
use tokio::io::AsyncWriteExt;

use super::{shell_quote, Output};
use crate::inventory::{resolve_relative, Inventory};
use crate::Error;

/// How to reach one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// Host name in the inventory.
    pub name: String,
    /// Address (or a name ssh resolves).
    pub address: String,
    /// Login user.
    pub user: String,
    /// Port.
    pub port: u16,
    /// Private key (only this key is offered when set).
    pub identity_file: Option<PathBuf>,
    /// `known_hosts` file (ssh's own files when `None`).
    pub known_hosts_file: Option<PathBuf>,
    /// Jump hosts (`ssh -J`).
    pub proxy_jump: Option<String>,
    /// ssh configuration file (`ssh -F`).
    pub config_file: Option<PathBuf>,
    /// Run commands through `sudo`.
    pub become_sudo: bool,
    /// Give up connecting after this long.
    pub connect_timeout: Duration,
}

impl SshTarget {
    /// The target for `host` of `inventory` (read from `inventory_path`, against whose
    /// folder relative files are resolved): `spec.ssh` with the host's overrides.
    pub fn from_inventory(
        inventory: &Inventory,
        inventory_path: &Path,
        host: &str,
    ) -> Option<Self> {
        let h = inventory.spec.hosts.iter().find(|h| h.name == host)?;
        let ssh = inventory.spec.ssh.merged(h.ssh.as_ref());
        let file = |f: &Option<String>| f.as_deref().map(|f| resolve_relative(inventory_path, f));
        let user = ssh.user.clone().unwrap_or_else(|| "root".into());
        Some(SshTarget {
            name: h.name.clone(),
            address: h.address.clone(),
            become_sudo: ssh.become_method.as_deref() == Some("sudo") && user != "root",
            user,
            port: ssh.port.unwrap_or(22),
            identity_file: file(&ssh.identity_file),
            known_hosts_file: file(&ssh.known_hosts_file),
            proxy_jump: ssh.proxy_jump.clone(),
            config_file: file(&ssh.config_file),
            connect_timeout: Duration::from_secs(15),
        })
    }

    /// `user@address:port`, for messages.
    pub fn display(&self) -> String {
        if self.address.contains(':') {
            format!("{}@[{}]:{}", self.user, self.address, self.port)
        } else {
            format!("{}@{}:{}", self.user, self.address, self.port)
        }
    }

    /// How the host appears in `known_hosts` (`[addr]:port` off port 22).
    pub fn known_hosts_name(&self) -> String {
        if self.port == 22 {
            self.address.clone()
        } else {
            format!("[{}]:{}", self.address, self.port)
        }
    }

    fn known_hosts_display(&self) -> String {
        self.known_hosts_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "~/.ssh/known_hosts".into())
    }
}

/// How commands get root.
#[derive(Debug, Clone)]
enum Sudo {
    /// Logged in as root (or `become` not asked for).
    No,
    /// `sudo -n`: no password needed.
    NoPassword,
    /// `sudo -S`: the password goes first on standard input.
    Password(String),
}

/// What a remote command reads on its standard input (after sudo's password line,
/// when sudo asks for one).
enum Input<'a> {
    Nothing,
    Bytes(&'a [u8]),
    /// Read as the command consumes it; the outcome of reading is sent back.
    Stream(
        Box<dyn std::io::Read + Send>,
        tokio::sync::oneshot::Sender<std::io::Result<()>>,
    ),
}

/// Chunks read from a streamed input at a time.
const STREAM_CHUNK: usize = 256 * 1024;

impl Input<'_> {
    /// Writes `prefix` and then the input into the command's pipe, and closes it. A
    /// command that does not read its input closes the pipe early: that is not an
    /// error here (the command's exit code tells).
    async fn feed(self, prefix: Option<&[u8]>, pipe: Option<openssh::ChildStdin>) {
        let Some(mut pipe) = pipe else { return };
        let prefixed = match prefix {
            Some(p) => pipe.write_all(p).await,
            None => Ok(()),
        };
        if prefixed.is_ok() {
            match self {
                Input::Nothing => {}
                Input::Bytes(data) => {
                    let _ = pipe.write_all(data).await;
                }
                Input::Stream(source, done) => {
                    let (_, read) = stream_into(source, &mut pipe).await;
                    let _ = done.send(read);
                }
            }
        }
        let _ = pipe.shutdown().await;
    }
}

/// Copies `source` into `pipe` in chunks, reading on a blocking thread. Returns the
/// pipe's outcome and the source's.
async fn stream_into(
    mut source: Box<dyn std::io::Read + Send>,
    pipe: &mut openssh::ChildStdin,
) -> (std::io::Result<()>, std::io::Result<()>) {
    let mut buf = vec![0u8; STREAM_CHUNK];
    loop {
        let read = tokio::task::spawn_blocking(move || {
            let n = source.read(&mut buf);
            (source, buf, n)
        })
        .await;
        let (s, b, n) = match read {
            Ok(r) => r,
            Err(e) => return (Ok(()), Err(std::io::Error::other(e))),
        };
        (source, buf) = (s, b);
        match n {
            Ok(0) => return (Ok(()), Ok(())),
            Ok(n) => {
                if let Err(e) = pipe.write_all(&buf[..n]).await {
                    return (Err(e), Ok(()));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return (Ok(()), Err(e)),
        }
    }
}

/// A connected host.
pub struct SshHost {
    target: SshTarget,
    session: openssh::Session,
    sudo: Sudo,
}

impl std::fmt::Debug for SshHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshHost")
            .field("target", &self.target)
            .finish()
    }
}

impl SshHost {
    /// Opens the master connection, checking the host key strictly. The control
    /// socket lives in `control_dir` (keep the path short: sockets are limited to
    /// about 100 bytes).
    pub async fn connect(target: SshTarget, control_dir: &Path) -> Result<Self, Error> {
        let mut b = SessionBuilder::default();
        b.user(target.user.clone())
            .port(target.port)
            .known_hosts_check(KnownHosts::Strict)
            .control_directory(control_dir)
            // A killed `bundle` leaves no ssh master behind for long.
            .control_persist(ControlPersist::IdleFor(
                std::num::NonZeroUsize::new(60).expect("non-zero"),
            ))
            .connect_timeout(target.connect_timeout)
            .server_alive_interval(Duration::from_secs(15));
        if let Some(k) = &target.identity_file {
            b.keyfile(k);
        }
        if let Some(k) = &target.known_hosts_file {
            b.user_known_hosts_file(k);
        }
        if let Some(c) = &target.config_file {
            b.config_file(c);
        }
        if let Some(j) = &target.proxy_jump {
            b.jump_hosts(j.split(','));
        }
        match b.connect(&target.address).await {
            Ok(session) => Ok(SshHost {
                target,
                session,
                sudo: Sudo::No,
            }),
            Err(e) => Err(connect_error(&target, e).await),
        }
    }

    /// The target.
    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    /// With `become: sudo`: finds out whether sudo needs a password and checks the
    /// one given. Returns `Ok(false)` when a password is needed and none was given.
    pub async fn set_up_become(&mut self, password: Option<&str>) -> Result<bool, Error> {
        if !self.target.become_sudo {
            return Ok(true);
        }
        let probe = self.raw("sudo -n true", None, Input::Nothing).await?;
        if probe.success() {
            self.sudo = Sudo::NoPassword;
            return Ok(true);
        }
        let Some(password) = password else {
            return Ok(false);
        };
        let mut input = password.as_bytes().to_vec();
        input.push(b'\n');
        let out = self
            .raw("sudo -k -S -p '' true", None, Input::Bytes(&input))
            .await?;
        if !out.success() {
            return Err(Error::BecomeFailed {
                host: self.target.name.clone(),
                user: self.target.user.clone(),
                detail: super::last_lines(&String::from_utf8_lossy(&out.stderr), 3),
            });
        }
        self.sudo = Sudo::Password(password.to_string());
        Ok(true)
    }

    /// Runs `script` with `sh -c` as root, `stdin` on its standard input.
    pub async fn run(&self, script: &str, stdin: Option<&[u8]>) -> Result<Output, Error> {
        let input = match stdin {
            Some(data) => Input::Bytes(data),
            None => Input::Nothing,
        };
        self.run_input(script, input).await
    }

    /// Runs `script` as [`run`](Self::run) does, its standard input read from
    /// `source` as the command consumes it: memory stays flat whatever the size.
    /// An error reading `source` ends the input early (the command sees a short
    /// stream) and is returned after the command ends.
    pub async fn run_streamed(
        &self,
        script: &str,
        source: Box<dyn std::io::Read + Send>,
    ) -> Result<(Output, std::io::Result<()>), Error> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let out = self.run_input(script, Input::Stream(source, tx)).await?;
        let read = rx
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other("the input was never read")));
        Ok((out, read))
    }

    /// Runs `script` as [`run`](Self::run) does, its standard output written to the
    /// local file `dest` (created with mode 0600) as it arrives, hashed on the way.
    /// Returns the command's outcome (stdout empty), the bytes written and their
    /// SHA-256.
    pub async fn run_to_file(
        &self,
        script: &str,
        dest: &Path,
    ) -> Result<(Output, u64, bundle_format::Sha256Digest), Error> {
        use tokio::io::AsyncReadExt;
        let local = |source| Error::Write {
            path: dest.to_path_buf(),
            source,
        };
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dest)
            .await
            .map_err(local)?;
        let (command, password) = self.sudo_command(script);
        let mut child = self.spawn(&command, password.is_some()).await?;
        let pipe = child.stdin().take();
        Input::Nothing
            .feed(password.as_deref().map(str::as_bytes), pipe)
            .await;
        let mut stdout = child.stdout().take().expect("piped");
        let mut stderr = child.stderr().take().expect("piped");
        let copy = async {
            let mut hasher = bundle_format::digest::Hasher::new();
            let mut buf = vec![0u8; STREAM_CHUNK];
            loop {
                let n = stdout.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n]).await?;
            }
            file.sync_all().await?;
            Ok::<_, std::io::Error>(hasher)
        };
        let mut err_text = Vec::new();
        let (copied, _) = tokio::join!(copy, stderr.read_to_end(&mut err_text));
        let code = match child.wait().await {
            Ok(status) => status.code(),
            Err(e) => self.exit_255_or_lost(e).await?,
        };
        let hasher = copied.map_err(local)?;
        let out = Output {
            code,
            stdout: Vec::new(),
            stderr: err_text,
        };
        Ok((out, hasher.len(), hasher.finish()))
    }

    /// The command line that runs `script` as root, and what goes first on its input
    /// (sudo's password line).
    fn sudo_command(&self, script: &str) -> (String, Option<String>) {
        let quoted = shell_quote(script);
        match &self.sudo {
            Sudo::No => (format!("sh -c {quoted}"), None),
            Sudo::NoPassword => (format!("sudo -n -- sh -c {quoted}"), None),
            Sudo::Password(p) => (
                format!("sudo -k -S -p '' -- sh -c {quoted}"),
                Some(format!("{p}\n")),
            ),
        }
    }

    async fn run_input(&self, script: &str, input: Input<'_>) -> Result<Output, Error> {
        let (command, password) = self.sudo_command(script);
        self.raw(&command, password.as_deref().map(str::as_bytes), input)
            .await
    }

    /// Starts `command` as the login user (the remote shell parses it), standard
    /// output and error piped, standard input piped when `stdin`.
    async fn spawn(
        &self,
        command: &str,
        stdin: bool,
    ) -> Result<openssh::Child<&openssh::Session>, Error> {
        let mut cmd = self.session.raw_command(command);
        cmd.stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().await.map_err(|e| self.lost(e))
    }

    /// Runs `command` as the login user, `prefix` then `input` on its standard input.
    async fn raw(
        &self,
        command: &str,
        prefix: Option<&[u8]>,
        input: Input<'_>,
    ) -> Result<Output, Error> {
        let stdin = prefix.is_some() || !matches!(input, Input::Nothing);
        let mut child = self.spawn(command, stdin).await?;
        let pipe = child.stdin().take();
        let (_, out) = tokio::join!(input.feed(prefix, pipe), child.wait_with_output());
        match out {
            Ok(o) => Ok(Output {
                code: o.status.code(),
                stdout: o.stdout,
                stderr: o.stderr,
            }),
            Err(e) => Ok(Output {
                code: self.exit_255_or_lost(e).await?,
                ..Output::default()
            }),
        }
    }

    /// A command whose end openssh reports as an error: exit code 255 while the
    /// connection still works (the process impl cannot tell exit 255 from a lost
    /// connection), otherwise the connection is lost.
    async fn exit_255_or_lost(&self, e: openssh::Error) -> Result<Option<i32>, Error> {
        match e {
            openssh::Error::RemoteProcessTerminated | openssh::Error::Disconnected => {
                self.check_alive().await.map(|()| Some(255))
            }
            e => Err(self.lost(e)),
        }
    }

    /// `ssh -O check` on the control master, asked up to three times: under heavy load
    /// one check can fail while the master is alive, and calling that a lost
    /// connection stops an install for nothing.
    async fn check_alive(&self) -> Result<(), Error> {
        let mut last = None;
        for wait_ms in [0, 500, 2000] {
            tokio::time::sleep(std::time::Duration::from_millis(wait_ms)).await;
            match self.session.check().await {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(self.lost(last.expect("checked at least once")))
    }

    fn lost(&self, e: openssh::Error) -> Error {
        Error::SshLost {
            host: self.target.name.clone(),
            address: self.target.display(),
            source: e,
        }
    }

    /// Whether `path` exists with exactly `content`, `mode` (octal) and `owner`.
    pub async fn file_matches(
        &self,
        path: &str,
        content: &[u8],
        mode: &str,
        owner: &str,
    ) -> Result<bool, Error> {
        // The digest is computed on the host and compared here: a digest of a file
        // holding a short secret must not appear on a command line.
        let p = shell_quote(path);
        let out = self
            .run(
                &format!("if [ -f {p} ]; then sha256sum < {p} | cut -d' ' -f1; stat -c '%a %U:%G' {p}; fi"),
                None,
            )
            .await?;
        if !out.success() {
            return Ok(false);
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let (Some(digest), Some(meta)) = (lines.next(), lines.next()) else {
            return Ok(false);
        };
        let want_mode = mode.trim_start_matches('0');
        let want = format!("{want_mode} {owner}");
        Ok(digest.trim() == bundle_format::Sha256Digest::of(content).hex() && meta.trim() == want)
    }

    /// Writes `content` to `path` (parent folders created) with `mode` and `owner`,
    /// atomically: a temporary file in the same folder, renamed into place.
    pub async fn write_file(
        &self,
        path: &str,
        content: &[u8],
        mode: &str,
        owner: &str,
    ) -> Result<Output, Error> {
        let script = format!(
            "set -e; p={p}; d=$(dirname \"$p\"); mkdir -p \"$d\"; t=$(mktemp \"$d/.bundle.XXXXXX\"); trap 'rm -f \"$t\"' EXIT; cat > \"$t\"; chown {owner} \"$t\"; chmod {mode} \"$t\"; mv -f \"$t\" \"$p\"; trap - EXIT",
            p = shell_quote(path),
            owner = shell_quote(owner),
            mode = shell_quote(mode),
        );
        self.run(&script, Some(content)).await
    }

    /// Reads a file (for tests and checks); `None` when it does not exist.
    pub async fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, Error> {
        let p = shell_quote(path);
        let out = self.run(&format!("[ -f {p} ] && cat {p}"), None).await?;
        Ok(out.success().then_some(out.stdout))
    }

    /// Closes the master connection.
    pub async fn close(self) {
        let _ = self.session.close().await;
    }
}

/// Turns ssh's complaint into an error naming the host, with the fingerprint of an
/// unknown or changed host key.
async fn connect_error(target: &SshTarget, e: openssh::Error) -> Error {
    let detail = match &e {
        openssh::Error::Connect(io) | openssh::Error::Master(io) => io.to_string(),
        other => other.to_string(),
    };
    let known_hosts = target.known_hosts_display();
    if detail.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || detail.contains("Host key for") && detail.contains("has changed")
    {
        let fingerprint = detail
            .split_whitespace()
            .find(|w| w.starts_with("SHA256:"))
            .map(|w| w.trim_end_matches('.').to_string());
        return Error::HostKeyChanged(Box::new(crate::error::HostKeyChanged {
            host: target.name.clone(),
            address: target.display(),
            known_hosts,
            known_hosts_name: target.known_hosts_name(),
            fingerprint,
        }));
    }
    if detail.contains("Host key verification failed") || detail.contains("host key is known for") {
        let fingerprints = scan_fingerprints(target).await;
        return Error::HostKeyUnknown(Box::new(crate::error::HostKeyUnknown {
            host: target.name.clone(),
            address: target.display(),
            known_hosts,
            known_hosts_name: target.known_hosts_name(),
            port: target.port,
            ip: target.address.clone(),
            fingerprints,
        }));
    }
    if detail.contains("Permission denied") {
        return Error::SshAuth {
            host: target.name.clone(),
            address: target.display(),
            detail: detail.trim().to_string(),
        };
    }
    Error::Unreachable {
        host: target.name.clone(),
        address: target.display(),
        detail: super::last_lines(detail.trim(), 3),
    }
}

/// The host's key fingerprints (`TYPE SHA256:…`), learned the way ssh itself reaches
/// the host (same port, config file and jump hosts), without logging in: every
/// authentication method is off, and any key is accepted for this look only.
async fn scan_fingerprints(target: &SshTarget) -> Vec<String> {
    let mut cmd = tokio::process::Command::new("ssh");
    cmd.arg("-v")
        .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no"])
        .args([
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
        ])
        .args([
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PasswordAuthentication=no",
        ])
        .args([
            "-o",
            "KbdInteractiveAuthentication=no",
            "-o",
            "GSSAPIAuthentication=no",
        ])
        .args([
            "-o",
            "HostbasedAuthentication=no",
            "-o",
            "ConnectTimeout=10",
        ])
        .args(["-p", &target.port.to_string(), "-l", &target.user]);
    if let Some(c) = &target.config_file {
        cmd.arg("-F").arg(c);
    }
    if let Some(j) = &target.proxy_jump {
        cmd.args(["-J", j]);
    }
    cmd.arg(&target.address)
        .arg("true")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null());
    let Ok(out) = cmd.output().await else {
        return vec![];
    };
    // "debug1: Server host key: ssh-ed25519 SHA256:abc…"
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| {
            l.split_once("Server host key: ")
                .map(|(_, k)| k.trim().to_string())
        })
        .collect()
}
