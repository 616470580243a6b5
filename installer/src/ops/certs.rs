//! `bundle certs check`: when every certificate of the installed cluster expires, on
//! every master and external etcd host; `bundle certs renew`: all of them renewed.
//! kubeadm signs its certificates for one year, and so does [`crate::pki`] for an
//! external etcd; a cluster nobody upgraded in that time stops answering the day they
//! run out.
//!
//! Each host is asked with `openssl` (the files under `/etc/kubernetes/pki`, where an
//! external etcd host keeps its member's certificates too, and the client
//! certificates embedded in the kubeconfigs kubeadm writes), and the time left is
//! counted by the host's own clock, the one its components judge by.
//!
//! kubeadm renews what it issued, and leaves an external etcd's certificates and the
//! API server's etcd client certificate to the operator: the renewal issues those
//! from the etcd CA kept in `secrets.json`, saves them there before any host is
//! touched, and the plan ([`crate::plan::renewal`]) writes them, member by member.

use std::path::{Path, PathBuf};

use futures_util::future::join_all;
use serde::Serialize;

use super::common::{keep_admin_kubeconfig, Installed};
use crate::exec::{last_lines, SshHost};
use crate::report::Reporter;
use crate::run::connect::connect;
use crate::run::{HostBook, RunOptions};
use crate::{Error, Plan};

/// Days of validity under which a certificate is reported as expiring.
pub const DEFAULT_WARN_DAYS: i64 = 30;

/// What `bundle certs check` needs.
#[derive(Debug, Clone)]
pub struct CertsOptions {
    /// `cluster.yaml` (for how to reach the hosts).
    pub inventory: PathBuf,
    /// The install's state folder (default: beside the inventory).
    pub state: Option<PathBuf>,
    /// The sudo password for `become: sudo`.
    pub become_password: Option<String>,
}

/// One certificate on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertExpiry {
    /// The master or etcd host.
    pub host: String,
    /// kubeadm's name for it: `apiserver`, `etcd-server`, `admin.conf`, `ca`.
    pub name: String,
    /// Where it is, under `/etc/kubernetes`.
    pub file: String,
    /// A certificate authority (ten years, renewed by hand) rather than a leaf.
    pub authority: bool,
    /// End of validity, seconds since the epoch.
    pub not_after: i64,
    /// Seconds left by the host's clock (negative: expired).
    pub seconds_left: i64,
}

impl CertExpiry {
    /// Whole days left; once expired, whole days since (negative).
    pub fn days_left(&self) -> i64 {
        self.seconds_left / 86_400
    }

    /// It has expired.
    pub fn expired(&self) -> bool {
        self.seconds_left <= 0
    }
}

/// Every certificate of every master and external etcd host, sorted by host then name.
#[derive(Debug, Clone, Serialize)]
pub struct CertsReport {
    /// The certificates.
    pub certificates: Vec<CertExpiry>,
}

/// Renews every certificate: the external etcd's (when there is one) member by
/// member, then kubeadm's master by master (see [`crate::plan::renewal`]). Returns
/// the hosts renewed, in order.
pub fn renew(
    opts: &CertsOptions,
    yes: bool,
    reporter: &dyn Reporter,
) -> Result<Vec<String>, Error> {
    crate::run::runtime()?.block_on(renew_async(opts, yes, reporter))
}

/// `bundle certs renew --dry-run`: the renewal's plan written to `dir` (plan.json,
/// plan.txt, every host's files, secrets as placeholders); no host contacted, no
/// certificate issued, `secrets.json` untouched.
pub fn plan_renewal(opts: &CertsOptions, dir: &Path) -> Result<Plan, Error> {
    let installed = Installed::open(&opts.inventory, opts.state.as_deref())?;
    let plan = crate::plan::renewal(&installed.plan, &installed.masters());
    crate::plan::write_plan_dir(&plan, dir)?;
    Ok(plan)
}

async fn renew_async(
    opts: &CertsOptions,
    yes: bool,
    reporter: &dyn Reporter,
) -> Result<Vec<String>, Error> {
    let installed = Installed::open(&opts.inventory, opts.state.as_deref())?;
    let masters = installed.masters();
    let members = installed.etcd_hosts();
    let plan = crate::plan::renewal(&installed.plan, &masters);
    // Read (and the etcd CA checked) before asking, so that a refusal comes first.
    let mut secrets = installed.secrets(&plan)?;
    let what = renewal_summary(&masters, &members);
    if !yes && !reporter.confirm(&format!("Go ahead with {what}?")) {
        return Err(Error::NotConfirmed { what });
    }
    if !members.is_empty() {
        secrets.renew_etcd_pki(&installed.secrets_path(), &plan)?;
    }
    let first_master = masters.first().cloned();
    let hosts: Vec<String> = members.into_iter().chain(masters).collect();
    let run = RunOptions {
        parallel: 1,
        from: None,
        only: hosts.clone(),
        become_password: opts.become_password.clone(),
        resume: format!(
            "bundle certs renew --inventory {} --yes",
            opts.inventory.display()
        ),
    };
    let engine = installed
        .engine(&plan, &secrets, &opts.inventory, &run, reporter)
        .await?;
    let result = engine.execute(None).await;
    if result.is_ok() {
        if let Some(first) = &first_master {
            keep_admin_kubeconfig(&engine, first, &installed.state, reporter).await;
        }
    }
    engine.close().await;
    result?;
    Ok(hosts)
}

/// What the confirmation asks about.
fn renewal_summary(masters: &[String], members: &[String]) -> String {
    let kubeadm = format!(
        "the certificates of {} (each master's control plane restarted in turn)",
        masters.join(", ")
    );
    match members {
        [] => format!("renewing {kubeadm}"),
        _ => format!(
            "renewing the external etcd's certificates on {} (each member restarted in turn), then {kubeadm}",
            members.join(", ")
        ),
    }
}

/// Reads the expiry of every certificate on every master and external etcd host of
/// the install recorded in the state folder.
pub fn check(opts: &CertsOptions, reporter: &dyn Reporter) -> Result<CertsReport, Error> {
    crate::run::runtime()?.block_on(check_async(opts, reporter))
}

async fn check_async(opts: &CertsOptions, reporter: &dyn Reporter) -> Result<CertsReport, Error> {
    let installed = Installed::open(&opts.inventory, opts.state.as_deref())?;
    let hosts: Vec<String> = installed
        .masters()
        .into_iter()
        .chain(installed.etcd_hosts())
        .collect();
    let book = HostBook {
        inventory: &installed.inventory,
        path: &opts.inventory,
    };
    let connected = connect(book, &hosts, opts.become_password.clone(), None, reporter).await?;
    let answers = join_all(connected.hosts.values().map(read_expiries)).await;
    connected.close().await;
    let mut certificates = Vec::new();
    for a in answers {
        certificates.extend(a?);
    }
    certificates.sort_by(|a, b| (&a.host, &a.name).cmp(&(&b.host, &b.name)));
    Ok(CertsReport { certificates })
}

/// Lists `now SECONDS`, then `cert NOT_AFTER FILE` for every certificate, or
/// `unreadable FILE` for one openssl cannot read. Reads only.
const EXPIRY_SCRIPT: &str = r#"echo "now $(date +%s)"
cd /etc/kubernetes 2>/dev/null || exit 0
end() { openssl x509 -noout -enddate 2>/dev/null | sed -n 's/^notAfter=//p'; }
show() { if [ -n "$2" ] && s=$(date -d "$2" +%s 2>/dev/null); then echo "cert $s $1"; else echo "unreadable $1"; fi; }
for f in pki/*.crt pki/etcd/*.crt; do
  [ -f "$f" ] && show "$f" "$(end < "$f")"
done
for c in admin.conf super-admin.conf controller-manager.conf scheduler.conf; do
  [ -f "$c" ] || continue
  d=$(sed -n 's/^ *client-certificate-data: *//p' "$c" | head -n 1)
  [ -n "$d" ] && show "$c" "$(printf %s "$d" | base64 -d 2>/dev/null | end)"
done
exit 0
"#;

pub(super) async fn read_expiries(host: &SshHost) -> Result<Vec<CertExpiry>, Error> {
    let name = &host.target().name;
    let out = host.run(EXPIRY_SCRIPT, None).await?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.success() {
        return Err(Error::CertsUnreadable {
            host: name.clone(),
            detail: last_lines(&out.text(), 3),
        });
    }
    parse_expiries(name, &text)
}

/// The certificates in the script's answer from `host`.
fn parse_expiries(host: &str, text: &str) -> Result<Vec<CertExpiry>, Error> {
    let unreadable = |detail: String| Error::CertsUnreadable {
        host: host.into(),
        detail,
    };
    let mut now = None;
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("now"), Some(n), None) => now = n.parse::<i64>().ok(),
            (Some("cert"), Some(t), Some(file)) => {
                let not_after = t
                    .parse::<i64>()
                    .map_err(|_| unreadable(format!("`{line}`")))?;
                let now = now.ok_or_else(|| unreadable("the host's clock was not read".into()))?;
                out.push(CertExpiry {
                    host: host.into(),
                    name: kubeadm_name(file),
                    file: file.into(),
                    authority: is_authority(file),
                    not_after,
                    seconds_left: not_after - now,
                });
            }
            (Some("unreadable"), Some(file), rest) => {
                let file = [Some(file), rest].into_iter().flatten().collect::<Vec<_>>();
                return Err(unreadable(format!(
                    "openssl cannot read `/etc/kubernetes/{}`",
                    file.join(" ")
                )));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// kubeadm's names: `pki/apiserver.crt` → `apiserver`, `pki/etcd/server.crt` →
/// `etcd-server`, kubeconfigs by their file name.
fn kubeadm_name(file: &str) -> String {
    if let Some(etcd) = file.strip_prefix("pki/etcd/") {
        format!("etcd-{}", etcd.trim_end_matches(".crt"))
    } else if let Some(pki) = file.strip_prefix("pki/") {
        pki.trim_end_matches(".crt").to_string()
    } else {
        file.to_string()
    }
}

fn is_authority(file: &str) -> bool {
    matches!(
        file,
        "pki/ca.crt" | "pki/front-proxy-ca.crt" | "pki/etcd/ca.crt"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_read_by_the_hosts_clock_with_kubeadms_names() {
        let text = "now 1000000\ncert 1086400 pki/apiserver.crt\ncert 913599 pki/etcd/server.crt\ncert 400000000 pki/etcd/ca.crt\ncert 1500000 admin.conf\n";
        let certs = parse_expiries("m1", text).unwrap();
        let names: Vec<(&str, bool, i64, bool)> = certs
            .iter()
            .map(|c| (c.name.as_str(), c.authority, c.days_left(), c.expired()))
            .collect();
        assert_eq!(
            names,
            [
                ("apiserver", false, 1, false),
                ("etcd-server", false, -1, true),
                ("etcd-ca", true, 4618, false),
                ("admin.conf", false, 5, false),
            ]
        );
    }

    #[test]
    fn a_certificate_openssl_cannot_read_is_named() {
        let err = parse_expiries("m2", "now 5\nunreadable pki/apiserver.crt\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot read the certificates of `m2`: openssl cannot read `/etc/kubernetes/pki/apiserver.crt`"
        );
    }
}
