//! `bundle backup`: an etcd snapshot of the installed cluster, taken on a master whose
//! etcd is healthy (with external etcd: on an etcd host whose member is), with the
//! cluster's PKI and kubeadm configuration from a master, copied to the deploy node
//! into a folder named by cluster and time (mode 0700, files 0600). The external
//! etcd's own certificates and CA are in the state folder's `secrets.json`.
//!
//! etcd runs as kubeadm's static pod, so `etcdctl` runs in its container
//! (`crictl exec`, which needs neither the API server nor an `etcdctl` on the host);
//! the snapshot is written under `/var/lib/etcd`, the pod's hostPath, streamed to the
//! deploy node, hashed on both sides and checked by `etcdctl snapshot status` before
//! it counts as a backup. Nothing is read whole into memory.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::common::Installed;
use crate::exec::{last_lines, shell_quote, SshHost};
use crate::release::Release;
use crate::report::{Event, Reporter};
use crate::run::connect::connect;
use crate::run::HostBook;
use crate::Error;

/// The snapshot's file in a backup folder.
pub const SNAPSHOT_FILE: &str = "etcd-snapshot.db";
/// The PKI and kubeadm configuration in a backup folder.
pub const PKI_FILE: &str = "kubernetes-pki.tar.gz";
/// What a backup folder holds, with the checksums.
pub const MANIFEST_FILE: &str = "backup.json";

/// `etcdctl` in the etcd container, with kubeadm's certificates.
const ETCDCTL: &str = crate::plan::CRICTL_ETCDCTL;
/// Finds the etcd container, or fails saying so.
const ETCD_CONTAINER: &str = crate::plan::ETCD_CONTAINER;

/// What `bundle backup` needs.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// `cluster.yaml` (for how to reach the hosts).
    pub inventory: PathBuf,
    /// The install's state folder (default: beside the inventory).
    pub state: Option<PathBuf>,
    /// Where backup folders go (default: `backups/` in the state folder).
    pub output: Option<PathBuf>,
    /// Keep this many backups of the cluster, the newest; older ones are removed.
    pub keep: Option<usize>,
    /// The sudo password for `become: sudo`.
    pub become_password: Option<String>,
}

/// `etcdctl snapshot status -w json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotStatus {
    /// etcd's hash of the snapshot's contents.
    pub hash: u64,
    /// The revision it holds.
    pub revision: i64,
    /// Keys it holds.
    #[serde(rename = "totalKey")]
    pub total_keys: u64,
    /// Its size as etcd counts it.
    pub total_size: u64,
}

/// One file of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupFile {
    /// Its name in the folder.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

/// `backup.json`: what was backed up, from where, with which checksums.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupManifest {
    /// Cluster name.
    pub cluster: String,
    /// RFC 3339, UTC.
    pub created: String,
    /// The master the snapshot was taken on.
    pub host: String,
    /// The release installed, when recorded.
    pub release: Option<Release>,
    /// The snapshot as etcd describes it.
    pub snapshot: SnapshotStatus,
    /// The files, with their checksums.
    pub files: Vec<BackupFile>,
}

/// What a backup made.
#[derive(Debug)]
pub struct BackupOutcome {
    /// The backup's folder.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: BackupManifest,
    /// Older backups removed by `--keep`.
    pub removed: Vec<PathBuf>,
}

/// Takes a backup. See the module documentation.
pub fn backup(opts: &BackupOptions, reporter: &dyn Reporter) -> Result<BackupOutcome, Error> {
    crate::run::runtime()?.block_on(backup_async(opts, reporter))
}

async fn backup_async(
    opts: &BackupOptions,
    reporter: &dyn Reporter,
) -> Result<BackupOutcome, Error> {
    let installed = Installed::open(&opts.inventory, opts.state.as_deref())?;
    let job = BackupJob {
        inventory_path: &opts.inventory,
        output: opts.output.clone(),
        keep: opts.keep,
        become_password: opts.become_password.clone(),
    };
    backup_installed(&installed, &job, reporter).await
}

/// A backup of an installed cluster opened (and locked) by the caller: `bundle backup`,
/// and `bundle upgrade` before it touches the control plane.
pub(crate) struct BackupJob<'a> {
    /// The inventory's file.
    pub inventory_path: &'a Path,
    /// Where backup folders go (default: `backups/` in the state folder).
    pub output: Option<PathBuf>,
    /// Keep this many backups of the cluster.
    pub keep: Option<usize>,
    /// The sudo password for `become: sudo`.
    pub become_password: Option<String>,
}

pub(crate) async fn backup_installed(
    installed: &Installed,
    job: &BackupJob<'_>,
    reporter: &dyn Reporter,
) -> Result<BackupOutcome, Error> {
    let (state, plan) = (&installed.state, &installed.plan);
    let release = Release::read(state.root())?;
    let masters = installed.masters();
    // External etcd: the snapshot comes from an etcd host, the kubeadm PKI from the
    // first master that answers.
    let etcd_hosts = installed.etcd_hosts();
    let members = if etcd_hosts.is_empty() {
        masters.clone()
    } else {
        etcd_hosts
    };
    let everyone: Vec<String> = members
        .iter()
        .chain(masters.iter().filter(|m| !members.contains(m)))
        .cloned()
        .collect();
    let output = job
        .output
        .clone()
        .unwrap_or_else(|| state.root().join("backups"));
    let book = HostBook {
        inventory: &installed.inventory,
        path: job.inventory_path,
    };
    let connected = connect(book, &everyone, job.become_password.clone(), None, reporter).await?;
    let result = async {
        let host = healthy_member(&connected.hosts, &members, reporter).await?;
        let pki_host = match members == masters {
            true => host,
            false => &connected.hosts[&masters[0]],
        };
        let taken = take(host, pki_host, &plan.cluster, &output, reporter).await?;
        Ok::<_, Error>(taken)
    }
    .await;
    connected.close().await;
    let (dir, mut manifest) = result?;
    manifest.release = release;
    write_manifest(&dir, &manifest)?;
    let removed = match job.keep {
        Some(keep) => prune(&output, &plan.cluster, keep)?,
        None => vec![],
    };
    Ok(BackupOutcome {
        dir,
        manifest,
        removed,
    })
}

/// The first of `masters` (the hosts running etcd members), in inventory order, whose
/// member answers healthy.
async fn healthy_member<'h>(
    hosts: &'h std::collections::BTreeMap<String, SshHost>,
    masters: &[String],
    reporter: &dyn Reporter,
) -> Result<&'h SshHost, Error> {
    let mut tried = Vec::new();
    for m in masters {
        let host = &hosts[m];
        let out = host
            .run(
                &format!("{ETCD_CONTAINER}; {ETCDCTL} endpoint health"),
                None,
            )
            .await?;
        if out.success() {
            return Ok(host);
        }
        let why = last_lines(&out.text(), 1);
        reporter.event(&Event::Warning {
            host: Some(m.clone()),
            message: format!("etcd is not healthy here: {why}"),
        });
        tried.push(format!("{m}: {why}"));
    }
    Err(Error::NoHealthyEtcd { tried })
}

/// A new backup folder under `output`, filled by [`take_into`]; removed again when
/// that fails, so a partial snapshot (the cluster's secrets among its keys) is not
/// left behind. Returns the folder and the manifest (without the release).
async fn take(
    host: &SshHost,
    pki_host: &SshHost,
    cluster: &str,
    output: &Path,
    reporter: &dyn Reporter,
) -> Result<(PathBuf, BackupManifest), Error> {
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .expect("formats");
    let dir = output.join(format!("{cluster}-{stamp}"));
    make_private_dir(&dir)?;
    match take_into(host, pki_host, cluster, &dir, &stamp, reporter).await {
        Ok(manifest) => Ok((dir, manifest)),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            Err(e)
        }
    }
}

/// Snapshot, status, copy and check on `host`; the PKI beside it.
async fn take_into(
    host: &SshHost,
    pki_host: &SshHost,
    cluster: &str,
    dir: &Path,
    stamp: &str,
    reporter: &dyn Reporter,
) -> Result<BackupManifest, Error> {
    let name = host.target().name.clone();
    let remote = format!("/var/lib/etcd/bundle-backup-{stamp}.db");
    let failed = |step: &str, out: &crate::exec::Output| Error::BackupFailed {
        host: name.clone(),
        step: step.into(),
        detail: last_lines(&out.text(), 5),
    };
    let save = format!(
        "set -e; {ETCD_CONTAINER}; {ETCDCTL} snapshot save {f} >/dev/null; {ETCDCTL} snapshot status -w json {f}; sha256sum {f} | cut -d' ' -f1",
        f = shell_quote(&remote)
    );
    let out = host.run(&save, None).await?;
    if !out.success() {
        let _ = host
            .run(&format!("rm -f {}", shell_quote(&remote)), None)
            .await;
        return Err(failed("etcd snapshot", &out));
    }
    let (status, remote_sha) = parse_save(&String::from_utf8_lossy(&out.stdout))
        .ok_or_else(|| failed("etcd snapshot status", &out))?;
    reporter.event(&Event::Note {
        message: format!(
            "etcd snapshot on `{name}`: revision {}, {} keys",
            status.revision, status.total_keys
        ),
    });
    let copy = host
        .run_to_file(
            &format!("cat {}", shell_quote(&remote)),
            &dir.join(SNAPSHOT_FILE),
        )
        .await;
    let _ = host
        .run(&format!("rm -f {}", shell_quote(&remote)), None)
        .await;
    let (out, size, sha) = copy?;
    if !out.success() {
        return Err(failed("copy of the snapshot", &out));
    }
    if sha.hex() != remote_sha {
        return Err(Error::BackupFailed {
            host: name,
            step: "copy of the snapshot".into(),
            detail: format!(
                "the copy's SHA-256 {} differs from the snapshot's {remote_sha}",
                sha.hex()
            ),
        });
    }
    let pki = copy_pki(pki_host, dir).await?;
    let manifest = BackupManifest {
        cluster: cluster.into(),
        created: crate::state::now(),
        host: name,
        release: None,
        snapshot: status,
        files: vec![
            BackupFile {
                name: SNAPSHOT_FILE.into(),
                size,
                sha256: sha.hex(),
            },
            pki,
        ],
    };
    Ok(manifest)
}

/// `/etc/kubernetes/pki` and the kubeadm configuration files the install rendered,
/// as a tar.gz (private keys inside: mode 0600).
async fn copy_pki(host: &SshHost, dir: &Path) -> Result<BackupFile, Error> {
    let script = "cd /etc/kubernetes && tar -czf - pki $(ls -d bundle/kubeadm-*.yaml 2>/dev/null)";
    let (out, size, sha) = host.run_to_file(script, &dir.join(PKI_FILE)).await?;
    if !out.success() {
        return Err(Error::BackupFailed {
            host: host.target().name.clone(),
            step: "copy of the PKI".into(),
            detail: last_lines(&out.text(), 5),
        });
    }
    Ok(BackupFile {
        name: PKI_FILE.into(),
        size,
        sha256: sha.hex(),
    })
}

/// The status JSON line and the SHA-256 line the save script prints.
fn parse_save(stdout: &str) -> Option<(SnapshotStatus, String)> {
    let mut lines = stdout.lines().filter(|l| !l.trim().is_empty());
    let status = lines.find(|l| l.trim_start().starts_with('{'))?;
    let status: SnapshotStatus = serde_json::from_str(status).ok()?;
    let sha = lines.next()?.trim().to_string();
    (sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit())).then_some((status, sha))
}

fn make_private_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| Error::Write {
            path: dir.to_path_buf(),
            source,
        })
}

fn write_manifest(dir: &Path, manifest: &BackupManifest) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(MANIFEST_FILE);
    let err = |source| Error::Write {
        path: path.clone(),
        source,
    };
    let mut text = serde_json::to_vec_pretty(manifest).expect("a manifest serializes");
    text.push(b'\n');
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(err)?;
    f.write_all(&text).map_err(err)?;
    f.sync_all().map_err(err)
}

/// Removes all but the newest `keep` backups of `cluster` in `output` (folders named
/// `CLUSTER-TIME` that hold a manifest; the time sorts as text).
fn prune(output: &Path, cluster: &str, keep: usize) -> Result<Vec<PathBuf>, Error> {
    let read = |source| Error::State {
        path: output.to_path_buf(),
        source,
    };
    let mut backups: Vec<PathBuf> = std::fs::read_dir(output)
        .map_err(read)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.join(MANIFEST_FILE).is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_prefix(cluster))
                    .is_some_and(|rest| rest.starts_with('-'))
        })
        .collect();
    backups.sort();
    let old = backups.len().saturating_sub(keep);
    let removed: Vec<PathBuf> = backups.into_iter().take(old).collect();
    for p in &removed {
        std::fs::remove_dir_all(p).map_err(|source| Error::Write {
            path: p.clone(),
            source,
        })?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_save_scripts_answer_is_read() {
        let out = "{\"hash\":3936258318,\"revision\":12,\"totalKey\":9,\"totalSize\":20480}\n0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n";
        let (status, sha) = parse_save(out).unwrap();
        assert_eq!(
            status,
            SnapshotStatus {
                hash: 3936258318,
                revision: 12,
                total_keys: 9,
                total_size: 20480
            }
        );
        assert_eq!(sha.len(), 64);
        assert_eq!(parse_save("{\"hash\":1}\nnot-a-digest\n"), None);
    }

    #[test]
    fn prune_keeps_the_newest_backups_of_the_cluster_only() {
        let out = tempfile::tempdir().unwrap();
        for name in [
            "prod-20261201T000000Z",
            "prod-20261203T000000Z",
            "prod-20261202T000000Z",
            "production-20261101T000000Z",
            "prod-20261130T000000Z-no-manifest",
        ] {
            std::fs::create_dir_all(out.path().join(name)).unwrap();
            if !name.ends_with("no-manifest") {
                std::fs::write(out.path().join(name).join(MANIFEST_FILE), "{}").unwrap();
            }
        }
        let removed = prune(out.path(), "prod", 2).unwrap();
        assert_eq!(removed, vec![out.path().join("prod-20261201T000000Z")]);
        let mut left: Vec<String> = std::fs::read_dir(out.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "prod-20261130T000000Z-no-manifest",
                "prod-20261202T000000Z",
                "prod-20261203T000000Z",
                "production-20261101T000000Z"
            ]
        );
    }
}
