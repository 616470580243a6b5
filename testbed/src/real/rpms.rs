//! RPM fixtures: real packages built with `rpmbuild`, signed with `rpmsign` and a
//! throwaway GPG key, indexed with `createrepo_c`, served over HTTP on 127.0.0.1.
//!
//! The pieces ([`RpmSpec`], [`GpgKey`], [`createrepo`], [`RepoServer`], [`dnf_install`])
//! build any case; [`crate::fixtures::ha_repos`] builds the repos of an HA install
//! with them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};

use crate::http::{self, Server};

/// One package to build.
#[derive(Debug, Clone, Default)]
pub struct RpmSpec {
    /// Name.
    pub name: String,
    /// Epoch (none when 0).
    pub epoch: u32,
    /// Version.
    pub version: String,
    /// Release.
    pub release: String,
    /// `x86_64`, `aarch64` (built with `rpmbuild --target` on any machine) or `noarch`.
    pub arch: String,
    /// `Requires:` lines.
    pub requires: Vec<String>,
    /// `Provides:` lines.
    pub provides: Vec<String>,
    /// Files the package installs (each gets a line of text).
    pub files: Vec<String>,
}

impl RpmSpec {
    /// `name` `version-release` for `arch`, owning `/usr/share/<name>/README`.
    pub fn new(name: &str, vr: &str, arch: &str) -> Self {
        let (version, release) = vr.split_once('-').expect("version-release");
        let (epoch, version) = match version.split_once(':') {
            Some((e, v)) => (e.parse().expect("epoch"), v),
            None => (0, version),
        };
        RpmSpec {
            name: name.into(),
            epoch,
            version: version.into(),
            release: release.into(),
            arch: arch.into(),
            ..Default::default()
        }
    }
    /// Adds `Requires:` lines.
    pub fn requires(mut self, r: &[&str]) -> Self {
        self.requires.extend(r.iter().map(|s| s.to_string()));
        self
    }
    /// Adds `Provides:` lines.
    pub fn provides(mut self, p: &[&str]) -> Self {
        self.provides.extend(p.iter().map(|s| s.to_string()));
        self
    }
    /// Adds files.
    pub fn files(mut self, f: &[&str]) -> Self {
        self.files.extend(f.iter().map(|s| s.to_string()));
        self
    }

    /// The file name rpmbuild gives it.
    pub fn file_name(&self) -> String {
        format!(
            "{}-{}-{}.{}.rpm",
            self.name, self.version, self.release, self.arch
        )
    }

    /// The spec file's preamble: name, version, release, arch, epoch, requires, provides.
    pub fn preamble(&self, summary: &str) -> String {
        let mut spec = format!(
            "Name: {}\nVersion: {}\nRelease: {}\nSummary: {summary}\nLicense: MIT\nAutoReqProv: no\n",
            self.name, self.version, self.release
        );
        // `BuildArch: aarch64` is refused on an x86_64 machine; `--target` (see
        // `rpmbuild`) builds for any architecture, as the payload is only text.
        if self.arch == "noarch" {
            spec.push_str("BuildArch: noarch\n");
        }
        if self.epoch != 0 {
            spec.push_str(&format!("Epoch: {}\n", self.epoch));
        }
        for r in &self.requires {
            spec.push_str(&format!("Requires: {r}\n"));
        }
        for p in &self.provides {
            spec.push_str(&format!("Provides: {p}\n"));
        }
        spec
    }

    /// Builds it with `rpmbuild` (scratch under `work`) and moves the RPM into `out_dir`.
    pub fn build(&self, work: &Path, out_dir: &Path) -> Result<PathBuf> {
        let top = self.build_dir(work);
        let mut spec = self.preamble(&format!("fake {} for tests", self.name));
        let mut files = self.files.clone();
        files.push(format!("/usr/share/{}/README", self.name));
        spec.push_str("%description\nA fake package built by bundle's tests.\n%install\n");
        for f in &files {
            let dir = Path::new(f)
                .parent()
                .expect("absolute path")
                .display()
                .to_string();
            spec.push_str(&format!(
                "mkdir -p %{{buildroot}}{dir}\necho '{} {}-{}' > %{{buildroot}}{f}\n",
                self.name, self.version, self.release
            ));
        }
        spec.push_str("%files\n");
        for f in &files {
            spec.push_str(&format!("{f}\n"));
        }
        self.rpmbuild(&top, &spec, work, out_dir)
    }

    /// The scratch `_topdir` for this package under `work`.
    pub fn build_dir(&self, work: &Path) -> PathBuf {
        work.join(format!(
            "rpmbuild-{}-{}-{}",
            self.name, self.version, self.release
        ))
    }

    /// Runs `rpmbuild -bb` on `spec_text` in `top` (its `SOURCES/` already filled by the
    /// caller, if any), moves the RPM into `out_dir` and removes `top`.
    pub fn rpmbuild(
        &self,
        top: &Path,
        spec_text: &str,
        work: &Path,
        out_dir: &Path,
    ) -> Result<PathBuf> {
        std::fs::create_dir_all(top)?;
        let spec_path = top.join(format!("{}.spec", self.name));
        std::fs::write(&spec_path, spec_text)?;
        let out = Command::new("rpmbuild")
            .arg("--define")
            .arg(format!("_topdir {}", top.display()))
            .args(["--define", "_build_id_links none", "--quiet"])
            .args(if self.arch == "noarch" {
                vec![]
            } else {
                vec!["--target", self.arch.as_str()]
            })
            .arg("-bb")
            .arg(&spec_path)
            .env("HOME", work)
            .output()
            .context("running rpmbuild (apt-get install rpm)")?;
        if !out.status.success() {
            bail!(
                "rpmbuild {} failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let built = top.join("RPMS").join(&self.arch).join(self.file_name());
        std::fs::create_dir_all(out_dir)?;
        let dest = out_dir.join(self.file_name());
        std::fs::rename(&built, &dest).with_context(|| format!("moving {}", built.display()))?;
        std::fs::remove_dir_all(top)?;
        Ok(dest)
    }
}

/// A throwaway GPG key in its own `GNUPGHOME`.
pub struct GpgKey {
    /// The `GNUPGHOME`.
    pub home: PathBuf,
    /// The key's user id (`_gpg_name`).
    pub name: String,
    /// The ASCII-armored public key.
    pub public: PathBuf,
}

impl GpgKey {
    /// Generates an RSA key without passphrase under `dir`.
    pub fn generate(dir: &Path, name: &str) -> Result<Self> {
        let home = dir.join("gnupg");
        std::fs::create_dir_all(&home)?;
        std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let params = dir.join("keyparams");
        std::fs::write(
            &params,
            format!(
                "Key-Type: RSA\nKey-Length: 2048\nName-Real: {name}\nName-Email: {name}@example.invalid\nExpire-Date: 0\n%no-protection\n%commit\n"
            ),
        )?;
        run(Command::new("gpg")
            .env("GNUPGHOME", &home)
            .args(["--batch", "--quiet", "--gen-key"])
            .arg(&params))?;
        let public = dir.join(format!("{name}.asc"));
        let out = Command::new("gpg")
            .env("GNUPGHOME", &home)
            .args(["--batch", "--armor", "--export", name])
            .output()?;
        if !out.status.success() || out.stdout.is_empty() {
            bail!(
                "gpg --export failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::fs::write(&public, out.stdout)?;
        Ok(GpgKey {
            home,
            name: name.into(),
            public,
        })
    }

    /// Signs RPMs in place with `rpmsign --addsign`.
    pub fn sign(&self, rpms: &[PathBuf]) -> Result<()> {
        let mut cmd = Command::new("rpmsign");
        cmd.env("GNUPGHOME", &self.home)
            .env("HOME", self.home.parent().expect("dir"))
            .args(["--define", "__gpg /usr/bin/gpg", "--define"])
            .arg(format!("_gpg_name {}", self.name))
            .arg("--addsign")
            .args(rpms);
        run(&mut cmd)?;
        // rpmsign fails quietly in some setups: check a signature is there.
        for r in rpms {
            let out = Command::new("rpm")
                .args(["-qp", "--qf", "%{SIGPGP:pgpsig}%{RSAHEADER:pgpsig}"])
                .arg(r)
                .output()?;
            if String::from_utf8_lossy(&out.stdout)
                .matches("(none)")
                .count()
                == 2
            {
                bail!("rpmsign left {} unsigned", r.display());
            }
        }
        Ok(())
    }
}

impl Drop for GpgKey {
    fn drop(&mut self) {
        // Ends the agent this key's GNUPGHOME started (and only that one).
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", &self.home)
            .args(["--kill", "gpg-agent"])
            .output();
    }
}

/// Runs `createrepo_c` on `dir`.
pub fn createrepo(dir: &Path) -> Result<()> {
    run(Command::new("createrepo_c").arg("--quiet").arg(dir))
}

/// Flips one byte near the end of an RPM (inside the payload), keeping its size.
pub fn tamper_payload(rpm: &Path) -> Result<()> {
    let mut data = std::fs::read(rpm)?;
    let at = data.len() - 20;
    data[at] ^= 0xff;
    std::fs::write(rpm, data)?;
    Ok(())
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A static file server on 127.0.0.1 (one thread per connection, `Connection: close`),
/// with a request log and fault injection for retry tests. Stops when dropped.
pub struct RepoServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    fail_next: Arc<AtomicUsize>,
    log: Arc<Mutex<Vec<String>>>,
    _server: Server,
}

impl RepoServer {
    /// Serves `root`.
    pub fn serve(root: &Path) -> Result<Self> {
        let fail_next = Arc::new(AtomicUsize::new(0));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (f, l, root) = (fail_next.clone(), log.clone(), root.to_path_buf());
        let server = Server::start(move |conn| handle(conn, &root, &f, &l))?;
        Ok(RepoServer {
            url: format!("http://{}", server.addr()),
            fail_next,
            log,
            _server: server,
        })
    }

    /// The next `n` requests get `503 Service Unavailable`.
    pub fn fail_next(&self, n: usize) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    /// Paths requested so far, with the status answered (`200 /kubernetes/repodata/repomd.xml`).
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().expect("log").clone()
    }
}

fn handle(
    mut conn: TcpStream,
    root: &Path,
    fail: &AtomicUsize,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let Some(head) = http::read_head(&mut conn)? else {
        return Ok(());
    };
    let path = head.path().to_string();
    let failing = fail
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let file = root.join(path.trim_start_matches('/'));
    let status = if failing {
        503
    } else if path.split('/').any(|p| p == "..") || !file.is_file() {
        404
    } else {
        200
    };
    log.lock().expect("log").push(format!("{status} {path}"));
    if status != 200 {
        return http::answer_empty(&mut conn, status);
    }
    let mut f = std::fs::File::open(&file)?;
    let len = f.metadata()?.len();
    write!(conn, "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n")?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        conn.write_all(&buf[..n])?;
    }
    conn.flush()
}

/// Installs `packages` with dnf from the yum repo at `repo` (a folder with `repodata/`)
/// into a fresh root under `scratch`, with gpgcheck=1 against `keys`, then returns
/// `rpm -qa` of that root (sorted NEVRAs). Only that repo is enabled.
pub fn dnf_install(
    scratch: &Path,
    repo: &Path,
    keys: &[PathBuf],
    packages: &[&str],
) -> Result<Vec<String>> {
    let root = DnfRoot::new(scratch, repo, keys, "9")?;
    let mut args = vec!["install"];
    args.extend_from_slice(packages);
    root.dnf(&args)?;
    root.installed()
}

/// A fresh installroot for dnf with one repo (`bundle`, the folder `repo`) enabled and
/// gpgcheck=1 against `keys` (off without keys).
pub struct DnfRoot {
    /// The installroot.
    pub root: PathBuf,
    home: PathBuf,
    conf: PathBuf,
    releasever: String,
}

impl DnfRoot {
    /// Prepares `scratch/root` for `$releasever` `releasever`.
    pub fn new(scratch: &Path, repo: &Path, keys: &[PathBuf], releasever: &str) -> Result<Self> {
        let root = scratch.join("root");
        let home = scratch.join("home");
        std::fs::create_dir_all(&root)?;
        std::fs::create_dir_all(&home)?;
        // Debian's rpm keeps its database under ~/.rpmdb unless told otherwise.
        std::fs::write(home.join(".rpmmacros"), "%_dbpath /var/lib/rpm\n")?;
        let gpgkey: Vec<String> = keys
            .iter()
            .map(|k| format!("file://{}", k.display()))
            .collect();
        let conf = scratch.join("dnf.conf");
        std::fs::write(
            &conf,
            format!(
                "[main]\nreposdir=/dev/null\ncachedir={cache}\ninstall_weak_deps=False\n\n[bundle]\nname=bundle\nbaseurl=file://{repo}\nenabled=1\ngpgcheck={check}\ngpgkey={keys}\n",
                cache = scratch.join("cache").display(),
                repo = repo.display(),
                check = if keys.is_empty() { 0 } else { 1 },
                keys = gpgkey.join(" "),
            ),
        )?;
        Ok(DnfRoot {
            root,
            home,
            conf,
            releasever: releasever.into(),
        })
    }

    /// Makes the root look like an EL host of `platform` (`platform:el8`): dnf reads
    /// `PLATFORM_ID` from its `/etc/os-release` to resolve module streams.
    pub fn with_platform(self, platform: &str) -> Result<Self> {
        let etc = self.root.join("etc");
        std::fs::create_dir_all(&etc)?;
        std::fs::write(
            etc.join("os-release"),
            format!("NAME=\"Rocky Linux\"\nID=\"rocky\"\nVERSION_ID=\"{}\"\nPLATFORM_ID=\"{platform}\"\n", self.releasever),
        )?;
        Ok(self)
    }

    /// Runs `dnf -y <args>` on the root with only the bundle's repo; returns stdout.
    pub fn dnf(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("dnf")
            .env("HOME", &self.home)
            .arg("--config")
            .arg(&self.conf)
            .arg("--installroot")
            .arg(&self.root)
            .arg(format!("--releasever={}", self.releasever))
            .args([
                "--disablerepo=*",
                "--enablerepo=bundle",
                "--setopt=tsflags=nodocs",
                "-y",
            ])
            .args(args)
            .output()
            .context("running dnf (apt-get install dnf)")?;
        if !out.status.success() {
            bail!(
                "dnf {} failed:\n{}\n{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `rpm -qa` of the root: sorted NEVRAs, without `gpg-pubkey`.
    pub fn installed(&self) -> Result<Vec<String>> {
        let out = Command::new("rpm")
            .env("HOME", &self.home)
            .arg("--root")
            .arg(&self.root)
            .args([
                "-qa",
                "--qf",
                "%{NAME}-%|EPOCH?{%{EPOCH}:}|%{VERSION}-%{RELEASE}.%{ARCH}\n",
            ])
            .output()?;
        if !out.status.success() {
            bail!("rpm -qa failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let mut list: Vec<String> = String::from_utf8(out.stdout)?
            .lines()
            .map(str::to_string)
            .collect();
        list.retain(|l| !l.starts_with("gpg-pubkey-"));
        list.sort();
        Ok(list)
    }
}
