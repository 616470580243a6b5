//! Debian's squid (`squid-openssl`) as a TLS-intercepting proxy on 127.0.0.1, as
//! corporate networks run it: every `CONNECT` is bumped, and the client is shown a
//! certificate for the upstream host minted on the fly by the proxy's own CA (which
//! clients must trust, `--ca-file`). The proxy itself trusts the upstreams' CA
//! (`tls_outgoing_options cafile=`): given an upstream it cannot verify, squid mints a
//! certificate "Not trusted by" its CA on purpose, so the client fails too.
//!
//! squid runs in the foreground (`-N`) under a service name of its own (`-n`, so its
//! shared-memory segments do not collide), as user `proxy`; it is ended with SIGTERM
//! (`shutdown_lifetime 0`) so it also ends its certificate helpers.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A running intercepting squid.
pub struct InterceptingSquid {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The CA that signs the certificates it shows clients (PEM).
    pub ca: PathBuf,
    name: String,
    dir: tempfile::TempDir,
    child: Child,
}

impl InterceptingSquid {
    /// Starts it on a free port, trusting `upstream_ca` for its own connections.
    pub fn start(upstream_ca: &std::path::Path) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        let ca = d.join("ca.crt");
        let key = d.join("ca.key");
        run(Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=bundle-testbed intercepting proxy CA"])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&ca))?;
        let pem = [std::fs::read(&ca)?, std::fs::read(&key)?].concat();
        std::fs::write(d.join("ca.pem"), pem)?;
        let db = d.join("ssl_db");
        let certgen = "/usr/lib/squid/security_file_certgen";
        run(Command::new(certgen)
            .arg("-c")
            .arg("-s")
            .arg(&db)
            .args(["-M", "4MB"]))?;
        let port = crate::free_port();
        let conf = format!(
            "http_port 127.0.0.1:{port} ssl-bump tls-cert={d}/ca.pem generate-host-certificates=on dynamic_cert_mem_cache_size=4MB\n\
             sslcrtd_program {certgen} -s {db} -M 4MB\nsslcrtd_children 2 startup=1 idle=1\n\
             acl step1 at_step SslBump1\nssl_bump peek step1\nssl_bump stare all\nssl_bump bump all\n\
             tls_outgoing_options cafile={up}\nhttp_access allow localhost\nhttp_access deny all\ncache deny all\n\
             pid_filename {d}/squid.pid\naccess_log {d}/access.log\ncache_log {d}/cache.log\ncoredump_dir {d}\n\
             cache_effective_user proxy\nshutdown_lifetime 0 seconds\n",
            d = d.display(),
            db = db.display(),
            up = upstream_ca.display(),
        );
        std::fs::write(d.join("squid.conf"), conf)?;
        run(Command::new("chown").arg("-R").arg("proxy").arg(d))?;
        let name = format!("bsq{}x{port}", std::process::id());
        let child = Command::new("squid")
            .args(["-N", "-n", &name, "-f"])
            .arg(d.join("squid.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("stderr.log"))?)
            .spawn()
            .context("starting squid (apt-get install squid-openssl)")?;
        let squid = Self {
            addr: format!("127.0.0.1:{port}"),
            ca,
            name,
            dir,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&squid.addr).is_err() {
            if Instant::now() > deadline {
                bail!("squid did not listen on {}:\n{}", squid.addr, squid.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(squid)
    }

    /// Its cache log (errors) and access log (one line per request, `CONNECT` included).
    pub fn log(&self) -> String {
        ["stderr.log", "cache.log", "access.log"]
            .iter()
            .map(|f| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for InterceptingSquid {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for seg in [
            "cf__metadata",
            "cf__queues",
            "cf__readers",
            "tls_session_cache",
        ] {
            let _ = std::fs::remove_file(format!("/dev/shm/{}-{seg}.shm", self.name));
        }
    }
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}
