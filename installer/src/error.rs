//! Installer errors: what failed, where (path, field, host), and what to do.

use std::fmt;
use std::path::PathBuf;

/// One problem found in an inventory, tied to the field it is about.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// Path of the field (`spec.hosts[2].address`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl Problem {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.field, self.message)
    }
}

/// Problems listed one per line under the error line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

/// Installer errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The inventory file cannot be read.
    #[error("cannot read inventory `{path}`")]
    InventoryRead {
        /// The inventory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The inventory is not YAML of the expected shape (syntax, types, unknown fields).
    #[error("inventory `{path}` is not a valid cluster inventory: {detail}")]
    InventoryParse {
        /// The inventory.
        path: PathBuf,
        /// The parser's message, with the field when known.
        detail: String,
    },

    /// The inventory parsed but is not consistent.
    #[error("inventory `{path}` has {} problem{}:{problems}", problems.0.len(), if problems.0.len() == 1 { "" } else { "s" })]
    Inventory {
        /// The inventory.
        path: PathBuf,
        /// Every problem found, each naming its field.
        problems: Problems,
    },

    /// A file the inventory names cannot be read.
    #[error("cannot read `{path}` named by `{field}` in the inventory")]
    InventoryFile {
        /// Field naming the file.
        field: String,
        /// The file, resolved against the inventory's folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// `bundle init` would overwrite a file.
    #[error("`{path}` already exists")]
    InventoryExists {
        /// The file.
        path: PathBuf,
    },

    /// Writing a file failed.
    #[error("cannot write `{path}`")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The bundle failed verification: nothing was planned.
    #[error("bundle `{path}` failed verification; nothing was planned")]
    BundleRejected {
        /// The bundle.
        path: PathBuf,
        /// What the verifier found.
        #[source]
        source: bundle_format::Error,
    },

    /// The trusted public key cannot be used.
    #[error("cannot use public key `{path}`")]
    PublicKey {
        /// The key file.
        path: PathBuf,
        /// Why.
        #[source]
        source: bundle_format::Error,
    },

    /// The bundle lacks something the install needs.
    #[error("bundle `{bundle}` cannot be installed: {what}")]
    BundleLacks {
        /// Bundle name and version.
        bundle: String,
        /// What is missing.
        what: String,
    },

    /// The plan-out folder holds files that are not a plan.
    #[error("plan folder `{path}` is not empty and holds no earlier plan")]
    PlanOutNotEmpty {
        /// The folder.
        path: PathBuf,
    },

    /// `secrets.json` of an earlier plan cannot be used.
    #[error("cannot use the secrets of an earlier plan in `{path}`: {detail}")]
    Secrets {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },

    /// `secrets.json` lacks the external etcd's CA (its certificate or key), which
    /// signs every member's certificates and is kept nowhere else.
    #[error("`{path}` has no `{entry}`: the external etcd's CA, which issues its certificates")]
    EtcdCaMissing {
        /// The secrets file.
        path: PathBuf,
        /// The entry missing.
        entry: String,
    },

    /// The external etcd's certificates could not be made or read back.
    #[error("cannot make the external etcd's certificates: {0}")]
    Pki(String),

    /// Random bytes for secrets could not be had.
    #[error("cannot generate secrets: no randomness from the operating system")]
    Random(#[source] std::io::Error),

    /// The host's key is not in `known_hosts`.
    #[error(transparent)]
    HostKeyUnknown(Box<HostKeyUnknown>),

    /// The host's key differs from the one in `known_hosts`.
    #[error(transparent)]
    HostKeyChanged(Box<HostKeyChanged>),

    /// ssh could not log in.
    #[error("cannot log in to `{host}` ({address}): {detail}")]
    SshAuth {
        /// Host name.
        host: String,
        /// `user@address:port`.
        address: String,
        /// ssh's message.
        detail: String,
    },

    /// ssh could not reach the host.
    #[error("cannot reach `{host}` ({address}) over ssh: {detail}")]
    Unreachable {
        /// Host name.
        host: String,
        /// `user@address:port`.
        address: String,
        /// ssh's message.
        detail: String,
    },

    /// The connection broke while a command ran.
    #[error("lost the ssh connection to `{host}` ({address})")]
    SshLost {
        /// Host name.
        host: String,
        /// `user@address:port`.
        address: String,
        /// What openssh reported.
        #[source]
        source: openssh::Error,
    },

    /// sudo refused the password.
    #[error("sudo on `{host}` refused the password of `{user}`{}", if detail.is_empty() { String::new() } else { format!(": {detail}") })]
    BecomeFailed {
        /// Host name.
        host: String,
        /// Login user.
        user: String,
        /// sudo's message.
        detail: String,
    },

    /// sudo needs a password and none was given.
    #[error("sudo on `{host}` needs the password of `{user}`, and none was given")]
    BecomePasswordNeeded {
        /// Host name.
        host: String,
        /// Login user.
        user: String,
    },

    /// A step failed: the phase stopped.
    #[error(transparent)]
    StepFailed(Box<StepFailure>),

    /// Preflight checks failed (every failure on every host).
    #[error("preflight found {} problem{}; nothing was changed:{}", failures.len(), if failures.len() == 1 { "" } else { "s" }, failures.iter().map(|f| format!("\n  - {f}")).collect::<String>())]
    Preflight {
        /// `host: step: message` lines.
        failures: Vec<String>,
        /// The command that resumes the install.
        resume: String,
    },

    /// A file or folder of the state folder cannot be read or written.
    #[error("cannot use `{path}` in the state folder")]
    State {
        /// The folder or file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// A file of the state folder is not what `bundle` wrote there.
    #[error("the state file `{path}` is damaged")]
    StateDamaged {
        /// The file.
        path: PathBuf,
        /// What the parser found.
        #[source]
        source: serde_json::Error,
    },

    /// An operation that needs an installed cluster found no install in the state
    /// folder.
    #[error("no install is recorded in the state folder `{state}`")]
    NotInstalled {
        /// The state folder.
        state: PathBuf,
    },

    /// The new bundle may not follow the installed release.
    #[error("upgrade refused: {0}")]
    UpgradeRefused(crate::upgrade::Refusal),

    /// An upgrade to another bundle started and did not finish.
    #[error("an upgrade to `{target}` started and did not finish; `{offered}` cannot follow before it does")]
    UpgradeUnfinished {
        /// The bundle the unfinished upgrade goes to.
        target: String,
        /// The bundle offered now.
        offered: String,
        /// The state folder (its `upgrade.json`).
        state: PathBuf,
    },

    /// The state folder does not say which release the cluster runs.
    #[error("the state folder `{state}` records no installed release (`release.json`), so there is nothing to upgrade from")]
    NoRelease {
        /// The state folder.
        state: PathBuf,
    },

    /// Removing the host would leave fewer than three masters.
    #[error("removing `{host}` leaves {left} master{}: etcd then loses its quorum with one more failure", if *left == 1 { "" } else { "s" })]
    TooFewMasters {
        /// The master.
        host: String,
        /// Masters left.
        left: usize,
    },

    /// A lifecycle operation this release does not carry out with external etcd.
    #[error("{operation} does not handle external etcd (`spec.etcd.external`) yet")]
    NotWithExternalEtcd {
        /// What was asked (`` `bundle restore` ``, `` `bundle nodes add` of the etcd host `e4` ``).
        operation: String,
        /// How to do it by hand.
        by_hand: String,
    },

    /// The host is the cluster's only master.
    #[error("`{host}` is the cluster's last master and cannot be removed")]
    LastMaster {
        /// The master.
        host: String,
    },

    /// No master's etcd answered healthy.
    #[error("no master has a healthy etcd to take a snapshot from:{}", tried.iter().map(|t| format!("\n  - {t}")).collect::<String>())]
    NoHealthyEtcd {
        /// `host: what etcdctl said`, per master.
        tried: Vec<String>,
    },

    /// A step of a backup failed.
    #[error("backup failed on `{host}` at the {step}: {detail}")]
    BackupFailed {
        /// The master.
        host: String,
        /// `etcd snapshot`, `copy of the snapshot`, …
        step: String,
        /// What went wrong.
        detail: String,
    },

    /// A backup folder given to `bundle restore` cannot be read.
    #[error("cannot read the backup `{path}`")]
    BackupUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// A backup's `backup.json` is not what `bundle backup` writes.
    #[error("the backup manifest `{path}` is damaged")]
    BackupDamaged {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },

    /// A file of a backup is not the one `backup.json` recorded.
    #[error("`{path}` does not match the backup's manifest: {problem}")]
    BackupTampered {
        /// The file.
        path: PathBuf,
        /// What differs.
        problem: String,
    },

    /// The backup is of another cluster than the inventory's.
    #[error("the backup `{dir}` is of the cluster `{backup}`, the inventory `{inventory}` is of `{cluster}`")]
    BackupOfOtherCluster {
        /// The backup folder.
        dir: PathBuf,
        /// Its cluster.
        backup: String,
        /// The inventory.
        inventory: PathBuf,
        /// The inventory's cluster.
        cluster: String,
    },

    /// The backup holds objects of another Kubernetes minor than the cluster runs.
    #[error("the backup `{dir}` was taken on Kubernetes {backup}, the cluster runs {installed}: the restored objects would belong to {backup}")]
    RestoreOtherMinor {
        /// The backup folder.
        dir: PathBuf,
        /// Its Kubernetes version.
        backup: String,
        /// The installed one.
        installed: String,
    },

    /// The snapshot could not be put on a master.
    #[error("the snapshot could not be uploaded to `{host}`: {detail}")]
    RestoreUpload {
        /// The master.
        host: String,
        /// What went wrong.
        detail: String,
    },

    /// A master's certificates could not be read.
    #[error("cannot read the certificates of `{host}`: {detail}")]
    CertsUnreadable {
        /// The master.
        host: String,
        /// What went wrong.
        detail: String,
    },

    /// The async runtime the operation runs on cannot start.
    #[error("cannot start the async runtime")]
    Runtime {
        /// Why (threads, file descriptors).
        #[source]
        source: std::io::Error,
    },

    /// The folder of the ssh control sockets cannot be made.
    #[error("cannot create the ssh control folder in `{path}`")]
    ControlDir {
        /// The system's temporary folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The repository extracted from the bundle cannot be read for the copy to a host.
    #[error("cannot read the repository extracted from the bundle at `{path}`")]
    RepoRead {
        /// The folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// Another `bundle` works on the same state folder.
    #[error("another `bundle` (pid {pid}) is working with the state folder `{path}`")]
    Locked {
        /// The folder.
        path: PathBuf,
        /// Its process.
        pid: u32,
    },

    /// The plan changed since the last run and the change was not confirmed.
    #[error("the plan changed since the last run (shown above) and the change was not confirmed; nothing was done")]
    PlanChangeNotConfirmed,

    /// A host named on the command line is not in the plan.
    #[error("host `{host}` is not in the inventory `{inventory}`")]
    UnknownHost {
        /// The name given.
        host: String,
        /// The inventory.
        inventory: PathBuf,
    },

    /// The yum repository server could not start.
    #[error("cannot serve the yum repository on `{address}`")]
    RepoServe {
        /// `ip:port`.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The confirmation needed for a destructive action was not given.
    #[error("{what} was not confirmed; nothing was done")]
    NotConfirmed {
        /// What.
        what: String,
    },

    /// The HA drill found the cluster not failing over.
    #[error("HA drill: {what}")]
    Drill {
        /// What did not happen.
        what: String,
    },

    /// The nodes' pull password is missing or unusable.
    #[error("the inventory has the nodes pull as `{username}`, but BUNDLE_REGISTRY_PULL_PASSWORD {problem}")]
    PullPassword {
        /// `spec.registry.pullUsername`.
        username: String,
        /// What is wrong with it.
        problem: String,
    },

    /// The nodes would not be able to pull what was pushed.
    #[error("the nodes could not pull `{repository}` from `{registry}` {}", match account { Some(a) => format!("as `{a}`"), None => "anonymously".to_string() })]
    NodesCannotPull {
        /// Registry.
        registry: String,
        /// Repository tried.
        repository: String,
        /// Its project.
        project: String,
        /// `spec.registry.pullUsername`, if any.
        account: Option<String>,
        /// What the registry said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// Pushing the images failed.
    #[error("pushing the bundle's images to `{registry}` failed")]
    Push {
        /// Registry.
        registry: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn fingerprint_list(fps: &[String]) -> String {
    if fps.is_empty() {
        String::new()
    } else {
        format!(
            "; it offers:{}",
            fps.iter().map(|f| format!("\n    {f}")).collect::<String>()
        )
    }
}

impl bundle_format::Hint for Error {
    fn hint(&self) -> Option<String> {
        match self {
            Error::InventoryParse { .. } => Some(
                "compare with the template from `bundle init`; `bundle schema inventory` prints the JSON Schema".into(),
            ),
            Error::Inventory { problems, .. } => {
                if problems.0.iter().any(|p| p.message.contains("--force")) {
                    Some("fix the fields above; a non-HA control plane is accepted with `--force`".into())
                } else {
                    Some("fix the fields above and run the command again".into())
                }
            }
            Error::InventoryExists { .. } => Some("pass `--output` with another file name, or remove the file".into()),
            // The verifier's own error carries the hint.
            Error::BundleLacks { .. } => Some("build a bundle whose manifest carries it (`bundle build`)".into()),
            Error::PlanOutNotEmpty { .. } => Some("pass an empty or new folder to `--plan-out`".into()),
            Error::Secrets { .. } => {
                Some("restore the file from the earlier plan, or remove it to generate new secrets (hosts already installed keep the old ones)".into())
            }
            Error::EtcdCaMissing { path, .. } => Some(format!("restore `{}` from a backup of the state folder: the CA's key is kept only there (never on a host), and certificates from a new CA would not be trusted by the members that run; nothing was changed on the hosts", path.display())),
            Error::HostKeyUnknown(e) => Some(if e.fingerprints.is_empty() {
                format!("compare the key with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` run on the host itself, then add it to `{}` (`ssh-keyscan -p {} {}` run where the host is reachable prints the line for `{}`)", e.known_hosts, e.port, e.ip, e.known_hosts_name)
            } else {
                format!("compare the fingerprint with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` run on the host itself; if it matches, accept it with `ssh-keyscan -p {} {} >> {}`", e.port, e.ip, e.known_hosts)
            }),
            Error::HostKeyChanged(e) => Some(format!(
                "if the host was reinstalled, check its new key with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the host, remove the old one with `ssh-keygen -R '{}' -f {}` and add the new one (`ssh-keyscan`); otherwise do not connect",
                e.known_hosts_name, e.known_hosts
            )),
            Error::SshAuth { .. } => Some("check `spec.ssh.user` and `identityFile` (or your ssh agent) in the inventory; `ssh` with the same options must log in without a password".into()),
            Error::Unreachable { .. } => Some("check the host's address and `spec.ssh.port` (or `proxyJump`), and that sshd runs there; then run the same command again".into()),
            Error::SshLost { .. } => Some("run the same command again: finished steps are skipped".into()),
            Error::BecomeFailed { .. } => Some("run again and give the right sudo password (`--ask-become-pass`, or `BUNDLE_BECOME_PASSWORD` in the environment)".into()),
            Error::BecomePasswordNeeded { .. } => Some("pass `--ask-become-pass` (or set `BUNDLE_BECOME_PASSWORD`), or allow the user `NOPASSWD` in sudoers".into()),
            Error::StepFailed(f) => Some(format!("fix the cause on the host, then resume with: {}", f.resume)),
            Error::Preflight { resume, .. } => Some(format!("fix the hosts, then run again: {resume}")),
            Error::StateDamaged { path, .. } => Some(format!("`bundle` writes this file itself: restore it from a backup, or move it aside to start over (the next run re-plans, and steps whose effect is already there are skipped by their checks): `mv {} {}.damaged`", path.display(), path.display())),
            Error::TooFewMasters { .. } => Some("add a master first (`bundle nodes add`), or pass `--force` to go on with fewer".into()),
            Error::UpgradeRefused(refusal) => bundle_format::Hint::hint(refusal),
            Error::UpgradeUnfinished { target, state, .. } => Some(format!("finish it first: run `bundle upgrade` again with the `{target}` bundle (the nodes it upgraded are skipped), then upgrade further; `{}/upgrade.json` records it", state.display())),
            Error::NoRelease { .. } => Some("run `bundle install` once more with the bundle the cluster was installed from: it records the release and changes nothing that is in place".into()),
            Error::LastMaster { .. } => Some("to take the whole cluster down, use `bundle reset`".into()),
            Error::NotWithExternalEtcd { by_hand, .. } => Some(by_hand.clone()),
            Error::NoHealthyEtcd { .. } => Some("check etcd on the masters, or on the etcd hosts with external etcd (`crictl ps --name etcd`, `crictl logs` of it); a cluster that lost etcd's quorum is restored from an earlier backup".into()),
            Error::BackupFailed { .. } => Some("run `bundle backup` again; the failed attempt's folder was removed".into()),
            Error::BackupUnreadable { .. } => Some("pass the folder `bundle backup` wrote (it holds backup.json, etcd-snapshot.db and kubernetes-pki.tar.gz); backups are under `backups/` in the state folder".into()),
            Error::BackupDamaged { .. } => Some("use another backup: a damaged manifest cannot vouch for the snapshot".into()),
            Error::BackupTampered { .. } => Some("the file changed after `bundle backup` wrote it (a partial copy, or tampering): use another backup, never a snapshot that fails its check; nothing was changed on the hosts".into()),
            Error::BackupOfOtherCluster { backup, cluster, .. } => Some(format!("pass a backup of `{cluster}` (in its state folder's `backups/`), or the inventory of `{backup}`")),
            Error::RestoreOtherMinor { backup, .. } => Some(format!("restore a backup taken on the cluster's Kubernetes minor; or bring the cluster back to {backup} first; `--force` restores it anyway")),
            Error::RestoreUpload { host, .. } => Some(format!("check the free space under /var/lib/bundle/restore on `{host}` and run the same command again (nothing was stopped yet)")),
            Error::CertsUnreadable { host, .. } => Some(format!("look at the file on `{host}` with `openssl x509 -noout -text -in FILE`; `kubeadm certs check-expiration` there gives kubeadm's own view")),
            Error::NotInstalled { .. } => Some("install the cluster first (`bundle install`), or pass the install's `--state`".into()),
            Error::ControlDir { .. } => Some("set TMPDIR to a writable folder with a short path".into()),
            Error::RepoRead { .. } => Some("run `bundle install` again: the repository is extracted again from the verified bundle".into()),
            Error::Locked { .. } => Some("wait for it to finish; if it was killed, the lock is taken over automatically once its process is gone".into()),
            Error::PlanChangeNotConfirmed => Some("review the change and run again with `--yes` to apply it".into()),
            Error::UnknownHost { .. } => Some("add the host to `spec.hosts` first, or check the name".into()),
            Error::RepoServe { .. } => Some("`spec.repo.address` must be an address of this machine the hosts can reach, and `spec.repo.port` free".into()),
            Error::NotConfirmed { .. } => Some("pass `--yes` to confirm".into()),
            Error::PullPassword { username, .. } => Some(format!("export BUNDLE_REGISTRY_PULL_PASSWORD with the password (robot secret) of `{username}` in the shell that runs `bundle install`; it is written only into containerd's config.toml on the hosts (mode 0600)")),
            Error::NodesCannotPull { project, account: None, .. } => {
                Some(format!("make the project `{project}` public (in Harbor: Projects → {project} → Configuration → Public), or set `spec.registry.pullUsername` to an account that may pull (a Harbor robot account) and export BUNDLE_REGISTRY_PULL_PASSWORD"))
            }
            Error::NodesCannotPull { project, account: Some(a), .. } => {
                Some(format!("give `{a}` pull rights on the project `{project}` (a Harbor robot account with \"pull repository\" permission, or the Guest role), and check BUNDLE_REGISTRY_PULL_PASSWORD"))
            }
            Error::Push { .. } => Some("check the registry with `bundle push BUNDLE --registry HOST --dry-run`; once the images are there, pass `--skip-push`".into()),
            _ => None,
        }
    }
}

/// The host's key is not in `known_hosts`.
#[derive(Debug, thiserror::Error)]
#[error(
    "host `{host}` ({address}) offered a host key that is not in `{known_hosts}`{}",
    fingerprint_list(fingerprints)
)]
pub struct HostKeyUnknown {
    /// Host name.
    pub host: String,
    /// `user@address:port`.
    pub address: String,
    /// The `known_hosts` file checked.
    pub known_hosts: String,
    /// The name the host has in `known_hosts` (`[addr]:port`).
    pub known_hosts_name: String,
    /// Port.
    pub port: u16,
    /// Address.
    pub ip: String,
    /// `TYPE SHA256:…` as `ssh-keyscan` saw them (empty behind a jump host).
    pub fingerprints: Vec<String>,
}

/// The host's key differs from the one in `known_hosts`.
#[derive(Debug, thiserror::Error)]
#[error("host `{host}` ({address}) offered a host key that differs from the one in `{known_hosts}`{}: the host was reinstalled, or someone is in between", fingerprint.as_ref().map(|f| format!(" (now {f})")).unwrap_or_default())]
pub struct HostKeyChanged {
    /// Host name.
    pub host: String,
    /// `user@address:port`.
    pub address: String,
    /// The `known_hosts` file checked.
    pub known_hosts: String,
    /// The name the host has in `known_hosts`.
    pub known_hosts_name: String,
    /// The new key's fingerprint, as ssh reported it.
    pub fingerprint: Option<String>,
}

/// A step failed: the phase stopped.
#[derive(Debug, thiserror::Error)]
#[error("step `{step}` failed on `{host}` (phase {phase}): `{command}` {}{}\n  full log: {}", match exit_code { Some(c) => format!("exited with {c}"), None => "was killed".to_string() }, if output_tail.is_empty() { String::new() } else { format!("; last lines of its output:\n{}", indent(output_tail)) }, log.display())]
pub struct StepFailure {
    /// Host name.
    pub host: String,
    /// Phase.
    pub phase: String,
    /// Step id.
    pub step: String,
    /// The command (no secrets: plans hold none).
    pub command: String,
    /// Its exit code.
    pub exit_code: Option<i32>,
    /// Its last lines of output, secrets redacted.
    pub output_tail: String,
    /// The host's full log.
    pub log: PathBuf,
    /// The command that resumes the install.
    pub resume: String,
    /// Other hosts that failed in the same wave.
    pub others: Vec<String>,
}
