//! Debian's `nginx` serving a folder (a yum repo) on 127.0.0.1 the way a protected
//! upstream does: over TLS requiring a client certificate signed by a given CA (the Red
//! Hat CDN's entitlement check), and/or behind HTTP Basic auth. One process
//! (`master_process off`), ended by PID on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How to serve.
#[derive(Default, Clone)]
pub struct NginxOptions {
    /// TLS with this certificate and key (PEM).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// With `tls`: require a client certificate signed by this CA.
    pub client_ca: Option<PathBuf>,
    /// Require these Basic credentials.
    pub basic_auth: Option<(String, String)>,
}

/// A running nginx.
pub struct Nginx {
    /// `http(s)://127.0.0.1:PORT`.
    pub url: String,
    dir: tempfile::TempDir,
    child: Child,
}

impl Nginx {
    /// Serves `root` with `opts`.
    pub fn serve(root: &Path, opts: &NginxOptions) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        std::fs::create_dir_all(d.join("tmp"))?;
        let port = crate::free_port();
        let mut server = format!(
            "    listen 127.0.0.1:{port}{};\n",
            if opts.tls.is_some() { " ssl" } else { "" }
        );
        if let Some((cert, key)) = &opts.tls {
            server.push_str(&format!(
                "    ssl_certificate {};\n    ssl_certificate_key {};\n",
                cert.display(),
                key.display()
            ));
            if let Some(ca) = &opts.client_ca {
                server.push_str(&format!(
                    "    ssl_verify_client on;\n    ssl_client_certificate {};\n",
                    ca.display()
                ));
            }
        }
        if let Some((user, pass)) = &opts.basic_auth {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .context("running htpasswd (apache2-utils)")?;
            if !out.status.success() {
                bail!("htpasswd: {}", String::from_utf8_lossy(&out.stderr));
            }
            std::fs::write(d.join("htpasswd"), &out.stdout)?;
            server.push_str(&format!(
                "    auth_basic \"repo\";\n    auth_basic_user_file {};\n",
                d.join("htpasswd").display()
            ));
        }
        let t = d.join("tmp");
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {pid};\nerror_log {err} info;\nevents {{ worker_connections 256; }}\nhttp {{\n  access_log {acc};\n  client_body_temp_path {t}; proxy_temp_path {t}; fastcgi_temp_path {t}; uwsgi_temp_path {t}; scgi_temp_path {t};\n  server {{\n{server}    root {root};\n  }}\n}}\n",
            pid = d.join("nginx.pid").display(),
            err = d.join("error.log").display(),
            acc = d.join("access.log").display(),
            t = t.display(),
            root = root.display(),
        );
        std::fs::write(d.join("nginx.conf"), conf)?;
        let child = Command::new("nginx")
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .arg("-p")
            .arg(d)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("stderr.log"))?)
            .spawn()
            .context("starting nginx (apt-get install nginx-light)")?;
        let scheme = if opts.tls.is_some() { "https" } else { "http" };
        let nginx = Self {
            url: format!("{scheme}://127.0.0.1:{port}"),
            dir,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("nginx did not listen on {port}:\n{}", nginx.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(nginx)
    }

    /// Error log and access log.
    pub fn log(&self) -> String {
        ["stderr.log", "error.log", "access.log"]
            .iter()
            .map(|f| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
