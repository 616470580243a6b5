//! Secrets the install generates: the keepalived VRRP password, the kubeadm bootstrap
//! token and the key that encrypts the control-plane certificates kubeadm uploads.
//!
//! Plans never hold them: files and commands carry placeholders such as
//! `<secret:keepalived-auth>`, which the executor replaces with the values from the
//! plan folder's `secrets.json` (mode 0600) when it writes a file on a host. Values
//! learned while installing (the cluster CA's hash) appear as `<runtime:NAME>`,
//! filled in from the output of the step whose `capture` names them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{pki, Error};

/// One generated secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    /// keepalived `auth_pass` (8 characters: the most VRRP PASS authentication uses).
    KeepalivedAuth,
    /// kubeadm bootstrap token (`[a-z0-9]{6}.[a-z0-9]{16}`).
    BootstrapToken,
    /// kubeadm certificate key (32 random bytes, hex).
    CertificateKey,
}

impl Secret {
    /// Every secret.
    pub const ALL: [Secret; 3] = [
        Secret::KeepalivedAuth,
        Secret::BootstrapToken,
        Secret::CertificateKey,
    ];

    /// Its name in `secrets.json` and placeholders.
    pub fn name(self) -> &'static str {
        match self {
            Secret::KeepalivedAuth => "keepalived-auth",
            Secret::BootstrapToken => "bootstrap-token",
            Secret::CertificateKey => "certificate-key",
        }
    }

    /// `<secret:NAME>`, what plans hold instead of the value.
    pub fn placeholder(self) -> String {
        format!("<secret:{}>", self.name())
    }

    fn valid(self, value: &str) -> bool {
        let alnum = |s: &str, n: usize| {
            s.len() == n
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        };
        match self {
            Secret::KeepalivedAuth => {
                value.len() == 8 && value.bytes().all(|b| b.is_ascii_alphanumeric())
            }
            Secret::BootstrapToken => value
                .split_once('.')
                .is_some_and(|(a, b)| alnum(a, 6) && alnum(b, 16)),
            Secret::CertificateKey => {
                value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())
            }
        }
    }
}

/// A value learned while installing.
pub const CA_CERT_HASH: &str = "ca-cert-hash";

/// Where `bundle` reads the nodes' registry pull password from (never from a file).
pub const PULL_PASSWORD_ENV: &str = "BUNDLE_REGISTRY_PULL_PASSWORD";

/// `<runtime:NAME>`.
pub fn runtime_placeholder(name: &str) -> String {
    format!("<runtime:{name}>")
}

/// The secrets of one plan folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secrets(BTreeMap<String, String>);

impl Secrets {
    /// New random secrets from the operating system's generator.
    pub fn generate() -> Result<Self, Error> {
        let mut map = BTreeMap::new();
        map.insert(
            Secret::KeepalivedAuth.name().into(),
            random_chars(8, ALNUM)?,
        );
        map.insert(
            Secret::BootstrapToken.name().into(),
            format!("{}.{}", random_chars(6, LOWER)?, random_chars(16, LOWER)?),
        );
        let mut key = [0u8; 32];
        getrandom::getrandom(&mut key)
            .map_err(|e| Error::Random(std::io::Error::other(e.to_string())))?;
        map.insert(
            Secret::CertificateKey.name().into(),
            key.iter().map(|b| format!("{b:02x}")).collect(),
        );
        Ok(Self(map))
    }

    /// Fixed values, for tests.
    pub fn fixed() -> Self {
        let mut map = BTreeMap::new();
        map.insert(Secret::KeepalivedAuth.name().into(), "Pa55w0rd".into());
        map.insert(
            Secret::BootstrapToken.name().into(),
            "abcdef.0123456789abcdef".into(),
        );
        map.insert(Secret::CertificateKey.name().into(), "0".repeat(64));
        Self(map)
    }

    /// The value of `secret`.
    pub fn get(&self, secret: Secret) -> &str {
        self.0
            .get(secret.name())
            .map(String::as_str)
            .unwrap_or_default()
    }

    /// Reads `path` when it exists (so a re-run keeps the secrets and the files stay
    /// the same), otherwise generates new secrets and writes them there, mode 0600.
    pub fn load_or_create(path: &Path) -> Result<Self, Error> {
        match std::fs::read(path) {
            Ok(data) => {
                let bad = |detail: String| Error::Secrets {
                    path: path.to_path_buf(),
                    detail,
                };
                let secrets: Secrets =
                    serde_json::from_slice(&data).map_err(|e| bad(e.to_string()))?;
                for s in Secret::ALL {
                    match secrets.0.get(s.name()) {
                        None => return Err(bad(format!("`{}` is missing", s.name()))),
                        Some(v) if !s.valid(v) => {
                            return Err(bad(format!("`{}` is malformed", s.name())))
                        }
                        Some(_) => {}
                    }
                }
                Ok(secrets)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let secrets = Self::generate()?;
                secrets.write(path)?;
                Ok(secrets)
            }
            Err(source) => Err(Error::Write {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// [`Secrets::load_or_create`], then the external etcd's certificates for the
    /// plan's etcd members made and added to the file where missing (see
    /// [`crate::pki`]): what an execution of `plan` needs.
    pub fn load_for_plan(path: &Path, plan: &crate::Plan) -> Result<Self, Error> {
        let mut secrets = Self::load_or_create(path)?;
        let members = etcd_members(plan);
        if members.is_empty() {
            return Ok(secrets);
        }
        secrets.check_etcd_ca(path, false)?;
        let added = pki::missing_entries(&secrets.0, &members)?;
        if !added.is_empty() {
            secrets.insert_pki(added);
            secrets.replace(path)?;
        }
        Ok(secrets)
    }

    /// New leaf certificates for the plan's etcd members and the API servers, from
    /// the CA kept here (see [`pki::renewed_entries`]), saved to `path` (replaced
    /// atomically) before they are returned: a run cut afterwards finds them there,
    /// and hosts only ever get certificates that the file holds.
    pub fn renew_etcd_pki(&mut self, path: &Path, plan: &crate::Plan) -> Result<(), Error> {
        self.check_etcd_ca(path, true)?;
        let renewed = pki::renewed_entries(&self.0, &etcd_members(plan))?;
        self.insert_pki(renewed);
        self.replace(path)
    }

    /// The etcd CA is here whole (`needed`: even when no etcd entry is), or not at
    /// all: a certificate without its key cannot sign, and a new CA would not be
    /// trusted by the members that run.
    fn check_etcd_ca(&self, path: &Path, needed: bool) -> Result<(), Error> {
        let has = |e: &str| self.0.contains_key(&format!("{}{e}", pki::PREFIX));
        let any = self.0.keys().any(|k| k.starts_with(pki::PREFIX));
        match ["ca.crt", "ca.key"].into_iter().find(|e| !has(e)) {
            Some(e) if any || needed => Err(Error::EtcdCaMissing {
                path: path.to_path_buf(),
                entry: format!("{}{e}", pki::PREFIX),
            }),
            _ => Ok(()),
        }
    }

    fn insert_pki(&mut self, entries: Vec<(String, String)>) {
        for (entry, value) in entries {
            self.0.insert(format!("{}{entry}", pki::PREFIX), value);
        }
    }

    fn write(&self, path: &Path) -> Result<(), Error> {
        use std::os::unix::fs::OpenOptionsExt;
        let err = |source| Error::Write {
            path: path.to_path_buf(),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(err)?;
        let mut text = serde_json::to_vec_pretty(self).expect("secrets serialize");
        text.push(b'\n');
        f.write_all(&text).map_err(err)?;
        f.sync_all().map_err(err)
    }

    /// Writes the file anew beside `path` and renames it over, so that a crash leaves
    /// the old secrets or the new ones, never half a file.
    fn replace(&self, path: &Path) -> Result<(), Error> {
        let tmp = path.with_extension("json.new");
        let _ = std::fs::remove_file(&tmp);
        self.write(&tmp)?;
        std::fs::rename(&tmp, path).map_err(|source| Error::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Replaces every `<secret:NAME>` in `text` by its value, and `<runtime:NAME>` by
    /// the value in `runtime` when known: what an executor does before writing a file.
    pub fn resolve(&self, text: &str, runtime: &BTreeMap<String, String>) -> String {
        fill(text, &self.values(runtime))
    }

    /// Every placeholder this knows, with its value.
    pub fn values(&self, runtime: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut values: BTreeMap<String, String> = Secret::ALL
            .iter()
            .map(|s| (s.placeholder(), self.get(*s).to_string()))
            .collect();
        for (k, v) in self.0.range(pki::PREFIX.to_string()..) {
            if !k.starts_with(pki::PREFIX) {
                break;
            }
            values.insert(format!("<secret:{k}>"), v.clone());
        }
        for (k, v) in runtime {
            values.insert(runtime_placeholder(k), v.clone());
        }
        values
    }
}

/// The plan's external etcd members (hosts with the role `etcd`), in plan order.
fn etcd_members(plan: &crate::Plan) -> Vec<pki::EtcdMember> {
    plan.hosts_with_role("etcd")
        .filter_map(|h| {
            Some(pki::EtcdMember {
                name: h.name.clone(),
                address: h.address.parse().ok()?,
            })
        })
        .collect()
}

/// Replaces the placeholders of `text` found in `values`, in one pass: a value that
/// happens to contain `<secret:…>` (an operator's password) is written as it is.
pub fn fill(text: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let token = tail.find('>').map(|end| &tail[..=end]);
        match token.and_then(|t| values.get(t).map(|v| (t, v))) {
            Some((t, v)) => {
                out.push_str(v);
                rest = &tail[t.len()..];
            }
            None => {
                out.push('<');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// `n` characters drawn uniformly from `alphabet` (rejection sampling, no modulo bias).
fn random_chars(n: usize, alphabet: &[u8]) -> Result<String, Error> {
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        getrandom::getrandom(&mut buf)
            .map_err(|e| Error::Random(std::io::Error::other(e.to_string())))?;
        for &b in &buf {
            if (b as usize) < limit && out.len() < n {
                out.push(alphabet[b as usize % alphabet.len()] as char);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_in_one_pass() {
        let mut values = BTreeMap::new();
        values.insert("<secret:a>".to_string(), "x<secret:b>y".to_string());
        values.insert("<secret:b>".to_string(), "B".to_string());
        assert_eq!(
            fill("1 <secret:a> 2 <secret:b> 3 <other> <", &values),
            "1 x<secret:b>y 2 B 3 <other> <"
        );
    }

    #[test]
    fn generated_secrets_have_the_formats_kubeadm_and_keepalived_accept() {
        let s = Secrets::generate().unwrap();
        for secret in Secret::ALL {
            assert!(secret.valid(s.get(secret)), "{secret:?}: {}", s.get(secret));
        }
        assert_ne!(s, Secrets::generate().unwrap());
    }

    #[test]
    fn secrets_are_kept_across_runs_and_written_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        let a = Secrets::load_or_create(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let b = Secrets::load_or_create(&path).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn a_damaged_secrets_file_is_an_error_naming_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        std::fs::write(&path, r#"{"keepalived-auth":"x","bootstrap-token":"abcdef.0123456789abcdef","certificate-key":"00"}"#).unwrap();
        let e = Secrets::load_or_create(&path).unwrap_err().to_string();
        assert!(e.contains("`keepalived-auth` is malformed"), "{e}");
    }

    #[test]
    fn resolve_replaces_placeholders() {
        let s = Secrets::fixed();
        let mut rt = BTreeMap::new();
        rt.insert(CA_CERT_HASH.to_string(), "sha256:ff".to_string());
        let text = "auth_pass <secret:keepalived-auth>\nhash: <runtime:ca-cert-hash>\n";
        assert_eq!(
            s.resolve(text, &rt),
            "auth_pass Pa55w0rd\nhash: sha256:ff\n"
        );
    }

    /// A plan with two external etcd members.
    fn etcd_plan() -> crate::Plan {
        crate::plan::sample_plan(&[("e1", "10.0.0.1", "etcd"), ("e2", "10.0.0.2", "etcd")])
    }

    #[test]
    fn renewed_etcd_certificates_are_saved_and_the_ca_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        let mut s = Secrets::load_for_plan(&path, &etcd_plan()).unwrap();
        let before = s.clone();
        s.renew_etcd_pki(&path, &etcd_plan()).unwrap();
        let saved = Secrets::load_or_create(&path).unwrap();
        assert_eq!(saved, s);
        let changed: Vec<&String> = s.0.keys().filter(|k| s.0[*k] != before.0[*k]).collect();
        assert_eq!(changed.len(), 7, "{changed:?}");
        assert!(changed
            .iter()
            .all(|k| k.ends_with(".crt") && !k.ends_with("ca.crt")));
    }

    #[test]
    fn without_the_etcd_ca_key_renewal_and_plans_refuse_and_leave_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        let mut s = Secrets::load_for_plan(&path, &etcd_plan()).unwrap();
        s.0.remove("etcd-pki/ca.key");
        std::fs::remove_file(&path).unwrap();
        s.write(&path).unwrap();
        let on_disk = std::fs::read(&path).unwrap();
        let e = s.renew_etcd_pki(&path, &etcd_plan()).unwrap_err();
        assert!(
            matches!(&e, Error::EtcdCaMissing { entry, .. } if entry == "etcd-pki/ca.key"),
            "{e}"
        );
        let e = Secrets::load_for_plan(&path, &etcd_plan()).unwrap_err();
        assert!(matches!(e, Error::EtcdCaMissing { .. }), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), on_disk);
    }
}
