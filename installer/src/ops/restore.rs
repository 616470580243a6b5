//! `bundle restore BACKUP_DIR`: the installed cluster's etcd put back to a backup
//! `bundle backup` took, on every master (kubeadm's restore of a stacked etcd; the
//! plan is [`crate::plan::restoration`]).
//!
//! Before any host is touched: `backup.json` read, the snapshot's size and SHA-256
//! checked against it (streamed, never read whole), the backup's cluster compared with
//! the inventory's and its Kubernetes minor with the installed one (another minor is
//! refused without `force`: the restored objects belong to that version), and the
//! operator's confirmation (every write since the backup is lost). Then the snapshot is
//! streamed to every master (checked there with `sha256sum`) and the plan carried out by
//! the install's executor, with its records, resume and events.
//!
//! A restore that stops halfway is resumed by the same command: its stamp, which names
//! the old data's folder on every master, is kept in the state folder
//! (`restore.json`) until the restore finished.

use std::io::Read;
use std::path::{Path, PathBuf};

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};

use super::backup::{BackupManifest, MANIFEST_FILE, SNAPSHOT_FILE};
use super::common::Installed;
use crate::exec::{last_lines, shell_quote, SshHost};
use crate::plan::{restoration, Plan, Restoration, RestoreMember, SNAPSHOT_PATH};
use crate::release::Release;
use crate::report::{Event, Reporter};
use crate::run::{Engine, RunOptions};
use crate::state::StateDir;
use crate::Error;

/// The record of a restore under way, in the state folder.
pub const RECORD_FILE: &str = "restore.json";

/// What `bundle restore` needs.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// The backup's folder (as `bundle backup` wrote it).
    pub backup: PathBuf,
    /// `cluster.yaml` (for how to reach the hosts).
    pub inventory: PathBuf,
    /// The install's state folder (default: beside the inventory).
    pub state: Option<PathBuf>,
    /// Restore a backup of another Kubernetes minor.
    pub force: bool,
    /// Do not ask.
    pub yes: bool,
    /// The sudo password for `become: sudo`.
    pub become_password: Option<String>,
}

/// What a restore did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreOutcome {
    /// The cluster.
    pub cluster: String,
    /// The backup restored.
    pub backup: PathBuf,
    /// When it was taken (RFC 3339).
    pub taken: String,
    /// The etcd revision it holds.
    pub revision: i64,
    /// The masters restored, in order.
    pub masters: Vec<String>,
    /// Where every master keeps its data from before the restore.
    pub kept: String,
    /// Steps carried out.
    pub ran: usize,
    /// Steps skipped (finished by an earlier, interrupted run).
    pub skipped: usize,
}

/// A restore under way (`restore.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    snapshot_sha256: String,
    stamp: String,
}

/// Restores the backup. See the module documentation.
pub fn restore(opts: &RestoreOptions, reporter: &dyn Reporter) -> Result<RestoreOutcome, Error> {
    let installed = Installed::open(&opts.inventory, opts.state.as_deref())?;
    let manifest = check_backup(&opts.backup)?;
    check_cluster(&installed, &manifest, opts)?;
    check_release(&installed, &manifest, opts, reporter)?;
    let what = format!(
        "restoring the cluster `{}` to the backup `{}` (taken {})",
        installed.plan.cluster,
        opts.backup.display(),
        manifest.created
    );
    if !opts.yes
        && !reporter.confirm(&format!(
            "Go ahead with {what}? This stops the control plane on every master and replaces etcd's data: every write since the backup is lost"
        ))
    {
        return Err(Error::NotConfirmed { what });
    }
    crate::run::runtime()?.block_on(restore_async(&installed, &manifest, opts, reporter))
}

async fn restore_async(
    installed: &Installed,
    manifest: &BackupManifest,
    opts: &RestoreOptions,
    reporter: &dyn Reporter,
) -> Result<RestoreOutcome, Error> {
    if !installed.etcd_hosts().is_empty() {
        return Err(Error::NotWithExternalEtcd {
            operation: "`bundle restore`".into(),
            by_hand: format!("restore the snapshot ({}) on every etcd host as etcd's disaster recovery guide says (`etcdutl snapshot restore` with each member's --name and --initial-cluster, then its data dir swapped in), then restart the kube-apiservers", opts.backup.join(super::backup::SNAPSHOT_FILE).display()),
        });
    }
    let snapshot = snapshot_entry(manifest, &opts.backup)?.sha256.clone();
    let record = begin(&installed.state, &snapshot, reporter)?;
    let masters = installed.masters();
    let members = masters
        .iter()
        .map(|m| RestoreMember {
            name: m.clone(),
            address: installed
                .plan
                .hosts
                .iter()
                .find(|h| &h.name == m)
                .map(|h| h.address.clone())
                .unwrap_or_default(),
        })
        .collect();
    let plan = restoration(&Restoration {
        installed: &installed.plan,
        members,
        snapshot_sha256: snapshot.clone(),
        stamp: record.stamp.clone(),
    });
    let secrets = installed.secrets(&plan)?;
    let run = RunOptions {
        // Every master at once: in the second wave each waits for the whole etcd
        // cluster, which needs every member started.
        parallel: masters.len(),
        from: None,
        only: masters.clone(),
        become_password: opts.become_password.clone(),
        resume: format!(
            "bundle restore {} --inventory {} --yes{}",
            opts.backup.display(),
            opts.inventory.display(),
            if opts.force { " --force" } else { "" }
        ),
    };
    let engine = installed
        .engine(&plan, &secrets, &opts.inventory, &run, reporter)
        .await?;
    let result = async {
        upload_everywhere(&engine, &plan, &opts.backup.join(SNAPSHOT_FILE), &snapshot).await?;
        reporter.event(&Event::Note {
            message: format!(
                "every master keeps its etcd data from before as /var/lib/etcd.before-restore-{}; the same command goes on if this stops halfway",
                record.stamp
            ),
        });
        engine.execute(None).await
    }
    .await;
    engine.close().await;
    let (ran, skipped) = result?;
    finish(&installed.state)?;
    Ok(RestoreOutcome {
        cluster: installed.plan.cluster.clone(),
        backup: opts.backup.clone(),
        taken: manifest.created.clone(),
        revision: manifest.snapshot.revision,
        masters,
        kept: format!("/var/lib/etcd.before-restore-{}", record.stamp),
        ran,
        skipped,
    })
}

/// `backup.json`, and the snapshot checked against it: size, then SHA-256 (streamed).
fn check_backup(dir: &Path) -> Result<BackupManifest, Error> {
    let path = dir.join(MANIFEST_FILE);
    let data = std::fs::read(&path).map_err(|source| Error::BackupUnreadable {
        path: path.clone(),
        source,
    })?;
    let manifest: BackupManifest =
        serde_json::from_slice(&data).map_err(|source| Error::BackupDamaged {
            path: path.clone(),
            source,
        })?;
    let entry = snapshot_entry(&manifest, dir)?;
    let file = dir.join(SNAPSHOT_FILE);
    let unreadable = |source| Error::BackupUnreadable {
        path: file.clone(),
        source,
    };
    let size = std::fs::metadata(&file).map_err(unreadable)?.len();
    if size != entry.size {
        return Err(Error::BackupTampered {
            path: file,
            problem: format!("{size} bytes, the manifest says {}", entry.size),
        });
    }
    let mut f = std::fs::File::open(&file).map_err(unreadable)?;
    let mut hasher = bundle_format::digest::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(unreadable(e)),
        }
    }
    let sha = hasher.finish().hex();
    if sha != entry.sha256 {
        return Err(Error::BackupTampered {
            path: file,
            problem: format!("its SHA-256 is {sha}, the manifest says {}", entry.sha256),
        });
    }
    Ok(manifest)
}

/// The snapshot's line in the manifest.
fn snapshot_entry<'m>(
    manifest: &'m BackupManifest,
    dir: &Path,
) -> Result<&'m super::backup::BackupFile, Error> {
    manifest
        .files
        .iter()
        .find(|f| f.name == SNAPSHOT_FILE)
        .ok_or_else(|| Error::BackupTampered {
            path: dir.join(MANIFEST_FILE),
            problem: format!("it lists no `{SNAPSHOT_FILE}`"),
        })
}

/// The backup is of the inventory's cluster.
fn check_cluster(
    installed: &Installed,
    manifest: &BackupManifest,
    opts: &RestoreOptions,
) -> Result<(), Error> {
    let cluster = &installed.inventory.metadata.name;
    if &manifest.cluster == cluster {
        return Ok(());
    }
    Err(Error::BackupOfOtherCluster {
        dir: opts.backup.clone(),
        backup: manifest.cluster.clone(),
        inventory: opts.inventory.clone(),
        cluster: cluster.clone(),
    })
}

/// The backup's Kubernetes minor is the installed one's (or `--force`); when either
/// release is not recorded, a warning says that it could not be compared.
fn check_release(
    installed: &Installed,
    manifest: &BackupManifest,
    opts: &RestoreOptions,
    reporter: &dyn Reporter,
) -> Result<(), Error> {
    let now = Release::read(installed.state.root())?;
    let (Some(then), Some(now)) = (&manifest.release, &now) else {
        reporter.event(&Event::Warning {
            host: None,
            message: "the backup or the install records no release: the Kubernetes versions could not be compared".into(),
        });
        return Ok(());
    };
    if minor(&then.kubernetes_version) == minor(&now.kubernetes_version) {
        return Ok(());
    }
    let refusal = Error::RestoreOtherMinor {
        dir: opts.backup.clone(),
        backup: then.kubernetes_version.clone(),
        installed: now.kubernetes_version.clone(),
    };
    if !opts.force {
        return Err(refusal);
    }
    reporter.event(&Event::Warning {
        host: None,
        message: format!("{refusal} (--force)"),
    });
    Ok(())
}

/// `v1.29` of `v1.29.2` (`1.29.2` alike).
fn minor(version: &str) -> String {
    let v = version.trim_start_matches('v');
    v.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// The record of the restore: the one under way when it is of the same snapshot (a
/// resumed restore keeps its stamp), a new one otherwise.
fn begin(state: &StateDir, snapshot: &str, reporter: &dyn Reporter) -> Result<Record, Error> {
    let path = state.root().join(RECORD_FILE);
    let earlier: Option<Record> = crate::state::read_record(&path)?;
    match earlier {
        Some(r) if r.snapshot_sha256 == snapshot => {
            reporter.event(&Event::Note {
                message: format!("going on with the restore started at {}", r.stamp),
            });
            return Ok(r);
        }
        Some(r) => reporter.event(&Event::Warning {
            host: None,
            message: format!(
                "the restore of another snapshot started at {} did not finish; this one replaces it",
                r.stamp
            ),
        }),
        None => {}
    }
    let record = Record {
        snapshot_sha256: snapshot.into(),
        stamp: time::OffsetDateTime::now_utc()
            .format(time::macros::format_description!(
                "[year][month][day]T[hour][minute][second]Z"
            ))
            .expect("formats"),
    };
    crate::state::write_record(&path, &record)?;
    Ok(record)
}

/// The restore finished: its record goes.
fn finish(state: &StateDir) -> Result<(), Error> {
    let path = state.root().join(RECORD_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Write { path, source }),
    }
}

/// The snapshot streamed to every master of `plan` at once.
async fn upload_everywhere(
    engine: &Engine<'_>,
    plan: &Plan,
    local: &Path,
    sha256: &str,
) -> Result<(), Error> {
    let uploads = plan.hosts.iter().map(|h| {
        let host = engine
            .host(&h.name)
            .expect("connected to every master taking part");
        upload(host, local, sha256, engine.reporter)
    });
    join_all(uploads).await.into_iter().collect()
}

/// The snapshot streamed to [`SNAPSHOT_PATH`] on `host` (mode 0600, its folder 0700),
/// unless it is there already; checked there with `sha256sum`.
async fn upload(
    host: &SshHost,
    local: &Path,
    sha256: &str,
    reporter: &dyn Reporter,
) -> Result<(), Error> {
    let name = host.target().name.clone();
    let failed = |detail: String| Error::RestoreUpload {
        host: name.clone(),
        detail,
    };
    let remote = shell_quote(SNAPSHOT_PATH);
    let sum = format!("sha256sum {remote} 2>/dev/null | cut -d' ' -f1");
    let there = host.run(&sum, None).await?;
    if String::from_utf8_lossy(&there.stdout).trim() == sha256 {
        reporter.event(&Event::Note {
            message: format!("`{name}` has the snapshot already"),
        });
        return Ok(());
    }
    let file = std::fs::File::open(local).map_err(|source| Error::BackupUnreadable {
        path: local.to_path_buf(),
        source,
    })?;
    let script = format!(
        "set -e; umask 077; d=$(dirname {remote}); mkdir -p \"$d\"; chmod 0700 \"$d\"; cat > {remote}.part; mv {remote}.part {remote}; {sum}"
    );
    let (out, read) = host.run_streamed(&script, Box::new(file)).await?;
    read.map_err(|source| Error::BackupUnreadable {
        path: local.to_path_buf(),
        source,
    })?;
    if !out.success() {
        return Err(failed(last_lines(&out.text(), 5)));
    }
    let got = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if got != sha256 {
        return Err(failed(format!(
            "its SHA-256 there is {got}, the backup's {sha256}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minor_is_compared_whatever_the_prefix() {
        assert_eq!(minor("v1.29.2"), "1.29");
        assert_eq!(minor("1.29.10"), "1.29");
        assert_ne!(minor("v1.30.0"), minor("v1.29.2"));
    }
}
