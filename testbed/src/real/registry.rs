//! A real OCI registry: Debian's `docker-registry` (distribution 2.8).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// How to start the registry.
#[derive(Default, Clone)]
pub struct RegistryOptions {
    /// Basic auth with one user (htpasswd, bcrypt).
    pub basic_auth: Option<(String, String)>,
    /// TLS with this certificate and key (PEM paths).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// With `tls`: require a client certificate signed by this CA (distribution's
    /// `http.tls.clientcas`).
    pub client_ca: Option<PathBuf>,
}

/// A running registry; stopped (by PID) and its folder removed on drop.
pub struct Registry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    dir: tempfile::TempDir,
    child: Child,
}

impl Registry {
    /// Plain HTTP, no auth.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(&RegistryOptions::default())
    }

    /// With options.
    pub fn start_with(opts: &RegistryOptions) -> anyhow::Result<Self> {
        let addr = format!("127.0.0.1:{}", crate::free_port());
        Self::spawn(opts, addr, None)
    }

    /// Inside network namespace `netns` (a test cluster's deploy node: see
    /// [`super::hosts::TestCluster::deploy_netns`]), listening on `ip:port` there; the
    /// process is `ip netns exec … docker-registry`, whose PID is the registry's.
    pub fn start_in_netns(
        netns: &str,
        ip: &str,
        port: u16,
        opts: &RegistryOptions,
    ) -> anyhow::Result<Self> {
        Self::spawn(opts, format!("{ip}:{port}"), Some(netns))
    }

    fn spawn(opts: &RegistryOptions, addr: String, netns: Option<&str>) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        if let Some((cert, key)) = &opts.tls {
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
            if let Some(ca) = &opts.client_ca {
                config.push_str(&format!("    clientcas:\n      - {}\n", ca.display()));
            }
        }
        if let Some((user, pass)) = &opts.basic_auth {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .context("running htpasswd (apache2-utils)")?;
            if !out.status.success() {
                bail!("htpasswd failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, &out.stdout)?;
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: test-registry\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config)?;
        let log = std::fs::File::create(dir.path().join("registry.log"))?;
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "docker-registry"]);
                c
            }
            None => Command::new("docker-registry"),
        };
        let child = cmd
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting docker-registry (Debian package docker-registry)")?;
        let registry = Self { addr, dir, child };
        match netns {
            Some(ns) => registry.wait_listening(ns)?,
            None => registry.wait_ready(opts.tls.is_some())?,
        }
        Ok(registry)
    }

    fn wait_listening(&self, netns: &str) -> anyhow::Result<()> {
        let port = self.addr.rsplit_once(':').map(|(_, p)| p).unwrap_or("");
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            let out = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    netns,
                    "ss",
                    "-Htln",
                    "sport",
                    "=",
                    &format!(":{port}"),
                ])
                .output()?;
            if !out.stdout.is_empty() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "docker-registry did not come up on {} in `{netns}`; log:\n{}",
            self.addr,
            self.log()
        )
    }

    fn wait_ready(&self, tls: bool) -> anyhow::Result<()> {
        wait_for_registry(&self.addr, tls, || self.log())
    }

    /// The registry's log (access log included).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// How many blob GETs the registry served (from its access log).
    pub fn blob_gets(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("\"GET /v2/") && l.contains("/blobs/sha256:"))
            .count()
    }

    /// Where the registry stores its data.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The folder holding config and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The PID of the registry process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test CA and a server certificate it signed, for a TLS registry.
pub struct TestTls {
    /// The CA's certificate (what clients trust: `caFile`, `--cert-dir`).
    pub ca: PathBuf,
    /// The server's certificate.
    pub cert: PathBuf,
    /// The server's key.
    pub key: PathBuf,
    /// The CA's key (to sign client certificates with).
    pub ca_key: PathBuf,
}

/// Makes a CA and a server certificate for `ip` (subjectAltName IP) in `dir`, with
/// `openssl`.
pub fn test_tls(dir: &Path, ip: &str) -> anyhow::Result<TestTls> {
    std::fs::create_dir_all(dir)?;
    let p = |f: &str| dir.join(f);
    let openssl = |args: &[&std::ffi::OsStr]| -> anyhow::Result<()> {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .context("running openssl")?;
        if !out.status.success() {
            bail!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    };
    let os = |s: &str| std::ffi::OsString::from(s);
    let (ca, ca_key, csr, cert, key, ext) = (
        p("ca.crt"),
        p("ca.key"),
        p("server.csr"),
        p("server.crt"),
        p("server.key"),
        p("ext.cnf"),
    );
    openssl(&[
        &os("req"),
        &os("-x509"),
        &os("-newkey"),
        &os("rsa:2048"),
        &os("-nodes"),
        &os("-keyout"),
        ca_key.as_os_str(),
        &os("-out"),
        ca.as_os_str(),
        &os("-days"),
        &os("2"),
        &os("-subj"),
        &os("/CN=bundle-testbed CA"),
    ])?;
    openssl(&[
        &os("req"),
        &os("-newkey"),
        &os("rsa:2048"),
        &os("-nodes"),
        &os("-keyout"),
        key.as_os_str(),
        &os("-out"),
        csr.as_os_str(),
        &os("-subj"),
        &os(&format!("/CN={ip}")),
    ])?;
    std::fs::write(&ext, format!("subjectAltName=IP:{ip}\n"))?;
    openssl(&[
        &os("x509"),
        &os("-req"),
        &os("-in"),
        csr.as_os_str(),
        &os("-CA"),
        ca.as_os_str(),
        &os("-CAkey"),
        ca_key.as_os_str(),
        &os("-CAcreateserial"),
        &os("-out"),
        cert.as_os_str(),
        &os("-days"),
        &os("2"),
        &os("-extfile"),
        ext.as_os_str(),
    ])?;
    Ok(TestTls {
        ca,
        cert,
        key,
        ca_key,
    })
}

fn openssl(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .context("running openssl")?;
    if !out.status.success() {
        bail!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 test path")
}

/// A server certificate as many Harbor installs make it, `openssl req -x509 -newkey …
/// -addext subjectAltName=SAN`, used directly by the server (it carries
/// `basicConstraints CA:TRUE`): `(DIR/NAME.crt, DIR/NAME.key)`. `san` as openssl
/// takes it: `IP:127.0.0.1`, `DNS:harbor.example.org`.
pub fn self_signed(dir: &Path, name: &str, san: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        s(&key),
        "-out",
        s(&cert),
        "-days",
        "2",
        "-subj",
        &format!("/CN={name}"),
        "-addext",
        &format!("subjectAltName={san}"),
    ])?;
    Ok((cert, key))
}

/// The same kind of certificate, expired: valid for one day in January 2020 (made with
/// `openssl ca -selfsign`, which takes explicit dates).
pub fn expired_self_signed(
    dir: &Path,
    name: &str,
    san: &str,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let work = dir.join(format!("{name}.ca"));
    std::fs::create_dir_all(work.join("new"))?;
    std::fs::write(work.join("index.txt"), "")?;
    std::fs::write(work.join("serial"), "1000\n")?;
    let cnf = work.join("ca.cnf");
    std::fs::write(
        &cnf,
        format!(
            "[ca]\ndefault_ca = d\n[d]\ndatabase = {w}/index.txt\nnew_certs_dir = {w}/new\nserial = {w}/serial\ndefault_md = sha256\npolicy = p\nx509_extensions = x\n[p]\ncommonName = supplied\n[x]\nbasicConstraints = critical,CA:TRUE\nsubjectKeyIdentifier = hash\nsubjectAltName = {san}\n",
            w = work.display()
        ),
    )?;
    let (cert, key, csr) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
        work.join("req.csr"),
    );
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        s(&key),
        "-out",
        s(&csr),
        "-subj",
        &format!("/CN={name}"),
    ])?;
    openssl(&[
        "ca",
        "-batch",
        "-notext",
        "-config",
        s(&cnf),
        "-selfsign",
        "-keyfile",
        s(&key),
        "-in",
        s(&csr),
        "-out",
        s(&cert),
        "-startdate",
        "20200101000000Z",
        "-enddate",
        "20200102000000Z",
    ])?;
    Ok((cert, key))
}

/// A client certificate (`extendedKeyUsage=clientAuth`) signed by `tls`'s CA, in
/// docker's naming: `(DIR/client.cert, DIR/client.key)`.
pub fn client_cert(tls: &TestTls, dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let (cert, key, csr, ext) = (
        dir.join("client.cert"),
        dir.join("client.key"),
        dir.join("client.csr"),
        dir.join("client.ext"),
    );
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        s(&key),
        "-out",
        s(&csr),
        "-subj",
        "/CN=bundle-testbed client",
    ])?;
    std::fs::write(&ext, "extendedKeyUsage=clientAuth\n")?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        s(&csr),
        "-CA",
        s(&tls.ca),
        "-CAkey",
        s(&tls.ca_key),
        "-CAcreateserial",
        "-out",
        s(&cert),
        "-days",
        "2",
        "-extfile",
        s(&ext),
    ])?;
    std::fs::remove_file(&csr)?;
    std::fs::remove_file(&ext)?;
    Ok((cert, key))
}

/// Waits (15 s at most) until a docker-registry answers `GET /v2/` on `addr` (with
/// `tls`, until it listens: a handshake needs a client); the error carries `log()`.
pub(crate) fn wait_for_registry(
    addr: &str,
    tls: bool,
    log: impl Fn() -> String,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect(addr) {
            if tls {
                return Ok(());
            }
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = write!(s, "GET /v2/ HTTP/1.0\r\nHost: {addr}\r\n\r\n");
            let mut head = [0u8; 12];
            if s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("docker-registry did not come up on {addr}; log:\n{}", log())
}
