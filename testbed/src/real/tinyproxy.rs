//! A real forward proxy, Debian's `tinyproxy`, on 127.0.0.1 — with Basic auth (it then
//! answers 407 without credentials) and a host filter (403, as a corporate ACL does) —
//! and [`ProxyOnlyNetns`]: a network namespace whose only way out is that proxy.
//!
//! The namespace has nothing but its loopback, on which a `socat` listens at the
//! proxy's port and relays, through a Unix socket in the shared file system, to the
//! proxy on the machine's loopback. A program run in it (a `bundle build`) reaches the
//! proxy at the same `127.0.0.1:PORT`, and nothing else: the upstreams on the machine's
//! 127.0.0.1 are not there, so a direct connection is refused. Only the proxy (outside)
//! reaches them. No interface or address is added to the machine.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How to start tinyproxy.
#[derive(Default, Clone)]
pub struct TinyproxyOptions {
    /// Require these credentials (`BasicAuth`): 407 without them.
    pub basic_auth: Option<(String, String)>,
    /// Host patterns (extended regex) the proxy refuses with 403.
    pub deny_hosts: Vec<String>,
}

/// A running tinyproxy; ended by PID on drop.
pub struct Tinyproxy {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    opts: TinyproxyOptions,
    dir: tempfile::TempDir,
    child: Child,
}

impl Tinyproxy {
    /// Starts it on a free port of 127.0.0.1.
    pub fn start(opts: &TinyproxyOptions) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = crate::free_port();
        let log = dir.path().join("tinyproxy.log");
        let mut conf = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 60\nMaxClients 100\nAllow 127.0.0.1\nLogFile \"{}\"\nLogLevel Info\n",
            log.display()
        );
        if let Some((user, pass)) = &opts.basic_auth {
            conf.push_str(&format!("BasicAuth {user} {pass}\n"));
        }
        if !opts.deny_hosts.is_empty() {
            let filter = dir.path().join("filter");
            std::fs::write(&filter, opts.deny_hosts.join("\n") + "\n")?;
            conf.push_str(&format!(
                "Filter \"{}\"\nFilterDefaultDeny No\nFilterURLs Off\nFilterExtended On\n",
                filter.display()
            ));
        }
        let conf_path = dir.path().join("tinyproxy.conf");
        std::fs::write(&conf_path, conf)?;
        let out = std::fs::File::create(dir.path().join("stdout.log"))?;
        let child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting tinyproxy (apt-get install tinyproxy)")?;
        let proxy = Self {
            addr: format!("127.0.0.1:{port}"),
            opts: opts.clone(),
            dir,
            child,
        };
        wait_port(&proxy.addr, || proxy.log())?;
        Ok(proxy)
    }

    /// `http://127.0.0.1:PORT`, with the credentials when it requires them.
    pub fn url(&self) -> String {
        match &self.opts.basic_auth {
            Some((u, p)) => format!("http://{u}:{p}@{}", self.addr),
            None => format!("http://{}", self.addr),
        }
    }

    /// Its log: one line per request (`CONNECT` for TLS upstreams), refusals included.
    pub fn log(&self) -> String {
        let mut text =
            std::fs::read_to_string(self.dir.path().join("tinyproxy.log")).unwrap_or_default();
        text.push_str(
            &std::fs::read_to_string(self.dir.path().join("stdout.log")).unwrap_or_default(),
        );
        text
    }

    /// Requests it relayed to a host (`Established connection to host "…"` lines).
    pub fn relayed(&self) -> usize {
        self.log().matches("Established connection to host").count()
    }

    /// The PID (the test ends it, and only it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_port(addr: &str, log: impl Fn() -> String) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{addr} did not start listening; log:\n{}", log())
}

/// A network namespace whose only way out is a proxy (see the module doc). Removed,
/// with its relays ended by PID, on drop.
pub struct ProxyOnlyNetns {
    /// The namespace's name.
    pub name: String,
    /// The proxy's `127.0.0.1:PORT`, the same inside and outside.
    pub proxy_addr: String,
    _dir: tempfile::TempDir,
    relays: Vec<Child>,
}

impl ProxyOnlyNetns {
    /// A namespace reaching only the proxy at `proxy_addr` (`127.0.0.1:PORT`).
    pub fn new(proxy_addr: &str) -> Result<Self> {
        static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let name = format!(
            "bpx{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let dir = tempfile::tempdir()?;
        ip(&["netns", "add", &name])?;
        let mut ns = Self {
            name,
            proxy_addr: proxy_addr.to_string(),
            _dir: dir,
            relays: Vec::new(),
        };
        ip(&["netns", "exec", &ns.name, "ip", "link", "set", "lo", "up"])?;
        let sock = ns._dir.path().join("proxy.sock");
        let port = proxy_addr.rsplit_once(':').map(|(_, p)| p).unwrap_or("");
        // Outside: the Unix socket to the proxy; inside: the proxy's port to the socket.
        ns.relays.push(socat(
            None,
            &format!("UNIX-LISTEN:{},fork", sock.display()),
            &format!("TCP:{proxy_addr}"),
        )?);
        wait_path(&sock)?;
        ns.relays.push(socat(
            Some(&ns.name),
            &format!("TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr"),
            &format!("UNIX-CONNECT:{}", sock.display()),
        )?);
        ns.wait_listening(port)?;
        Ok(ns)
    }

    /// `ip netns exec NAME PROGRAM`: the program runs in the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    fn wait_listening(&self, port: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let out = self
                .command("ss")
                .args(["-Htln", "sport", "=", &format!(":{port}")])
                .output()?;
            if !out.stdout.is_empty() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("the proxy relay did not listen in `{}`", self.name)
    }
}

impl Drop for ProxyOnlyNetns {
    fn drop(&mut self) {
        for c in &mut self.relays {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn socat(netns: Option<&str>, listen: &str, connect: &str) -> Result<Child> {
    let mut c = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "socat"]);
            c
        }
        None => Command::new("socat"),
    };
    c.args([listen, connect])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting socat (apt-get install socat)")
}

fn wait_path(p: &Path) -> Result<PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if p.exists() {
            return Ok(p.to_path_buf());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("`{}` did not appear", p.display())
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!("ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}
