//! The RPM step's errors. Each names its subject (target, repo, package, URL) in
//! backticks and, through [`Hint`], says what to change in the manifest or where to look.

use std::path::PathBuf;

use bundle_format::Hint;

/// RPM step errors. Each names its subject (target, repo, package, URL) in backticks.
#[derive(Debug, thiserror::Error)]
pub enum RpmError {
    /// The proxy refused a request for the repo.
    #[error("repo `{repo}` is unreachable through the proxy")]
    Proxy {
        /// Repo name.
        repo: String,
        /// The proxy and the upstream, named.
        #[source]
        source: bundle_registry::ProxyRefusal,
    },
    /// The repo entry itself is wrong (which source, which credentials).
    #[error("repo `{repo}`: {reason}")]
    RepoConfig {
        /// Repo name.
        repo: String,
        /// What is wrong.
        reason: String,
        /// What to change.
        hint: String,
    },
    /// `passwordEnv` names a variable that is not set.
    #[error("repo `{repo}`: environment variable `{var}` (its `passwordEnv`) is not set")]
    PasswordEnvMissing {
        /// Repo name.
        repo: String,
        /// The variable.
        var: String,
    },
    /// The repo answered 401 or 403.
    #[error("repo `{repo}` refused access (HTTP {status}) to `{url}`")]
    AccessDenied {
        /// Repo name.
        repo: String,
        /// URL requested.
        url: String,
        /// 401 or 403.
        status: u16,
        /// What the repo was given: `username`/`passwordEnv`, client certificate.
        auth: RepoAuth,
    },
    /// A client certificate (or its key) cannot be used.
    #[error("repo `{repo}`: client certificate `{path}` {reason}")]
    ClientCert {
        /// Repo name.
        repo: String,
        /// `sslclientcert` or `sslclientkey`.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The server ended the TLS handshake on the client certificate.
    #[error("repo `{repo}` rejected client certificate `{cert}` at `{url}`: {reason}")]
    ClientCertRejected {
        /// Repo name.
        repo: String,
        /// URL requested.
        url: String,
        /// `sslclientcert`.
        cert: PathBuf,
        /// The TLS alert.
        reason: String,
    },
    /// No mirror of a mirrorlist or metalink served the repo.
    #[error("repo `{repo}`: no mirror listed by `{list}` works (tried {}: {})", tried.len(), tried.join("; "))]
    NoWorkingMirror {
        /// Repo name.
        repo: String,
        /// The mirrorlist or metalink URL.
        list: String,
        /// `mirror: why`, in the order tried.
        tried: Vec<String>,
    },
    /// Every mirror's repomd.xml differs from the checksums the metalink gives.
    #[error("repo `{repo}`: `{url}` does not match the metalink `{metalink}` (it lists {expected}; got `{actual}`)")]
    MetalinkChecksum {
        /// Repo name.
        repo: String,
        /// The metalink URL.
        metalink: String,
        /// The repomd.xml fetched (the last mirror tried).
        url: String,
        /// The checksums the metalink lists.
        expected: String,
        /// The checksum of what the mirror served.
        actual: String,
    },
    /// A repo's metadata or a package could not be downloaded.
    #[error("repo `{repo}` is unreachable: GET `{url}` failed: {reason}")]
    RepoUnreachable {
        /// Repo name.
        repo: String,
        /// URL requested.
        url: String,
        /// What happened.
        reason: String,
    },
    /// repomd.xml is not a repomd.
    #[error("repo `{repo}`: `{url}` is not valid repomd.xml: {reason}")]
    MalformedRepomd {
        /// Repo name.
        repo: String,
        /// URL of repomd.xml.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// primary/filelists could not be parsed.
    #[error("repo `{repo}`: metadata `{url}` cannot be read: {reason}")]
    MalformedMetadata {
        /// Repo name.
        repo: String,
        /// URL of the metadata file.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// A metadata file does not match the checksum repomd.xml gives.
    #[error("repo `{repo}`: `{url}` does not match the checksum in repomd.xml (expected `{expected}`, got `{actual}`)")]
    MetadataChecksum {
        /// Repo name.
        repo: String,
        /// URL of the metadata file.
        url: String,
        /// Checksum repomd.xml gives.
        expected: String,
        /// Checksum of the bytes received.
        actual: String,
    },
    /// A package does not match the checksum in the repo's metadata.
    #[error("package `{package}` from repo `{repo}` does not match its checksum in the repo metadata (expected `{expected}`, got `{actual}`, from `{url}`)")]
    PackageChecksum {
        /// Repo name.
        repo: String,
        /// NEVRA.
        package: String,
        /// Where it was downloaded from.
        url: String,
        /// Checksum the metadata gives.
        expected: String,
        /// Checksum of the bytes received.
        actual: String,
    },
    /// The metadata gives a checksum type that cannot be trusted or is unknown.
    #[error("package `{package}` from repo `{repo}`: {reason}")]
    UnsupportedChecksum {
        /// Repo name.
        repo: String,
        /// NEVRA.
        package: String,
        /// What is wrong.
        reason: String,
    },
    /// No package matches a spec of the package list.
    #[error("target `{target}`: no package matches `{spec}` ({available}){}", hidden_by_modules.iter().map(|h| format!("; {h}")).collect::<String>())]
    UnknownPackage {
        /// Target name.
        target: String,
        /// The spec from the manifest.
        spec: String,
        /// What the repos do offer.
        available: String,
        /// Packages of that name the module streams hide, and why.
        hidden_by_modules: Vec<String>,
    },
    /// No repo offers what a package requires.
    #[error("target `{target}`: `{package}` requires `{requirement}`, which no repo of the target provides")]
    Unsatisfiable {
        /// Target name.
        target: String,
        /// NEVRA of the requiring package.
        package: String,
        /// The requirement.
        requirement: String,
        /// Names the manifest excludes (for the hint).
        excluded: Vec<String>,
    },
    /// A rich dependency that cannot be parsed.
    #[error("target `{target}`: `{package}` has rich dependency `{requirement}` that cannot be read: {reason}")]
    RichDependency {
        /// Target name.
        target: String,
        /// NEVRA of the requiring package.
        package: String,
        /// The requirement.
        requirement: String,
        /// What is wrong.
        reason: String,
    },
    /// Two requirements need different versions of one package.
    #[error(
        "target `{target}`: `{by}` requires `{requirement}`, but `{chosen}` is also needed ({why})"
    )]
    Conflict {
        /// Target name.
        target: String,
        /// The requirement that cannot be met.
        requirement: String,
        /// Who requires it.
        by: String,
        /// The version already chosen.
        chosen: String,
        /// Why that version is in.
        why: String,
    },
    /// The closure found no stable choice.
    #[error("target `{target}`: cannot resolve the package list: {reason}")]
    Unsolvable {
        /// Target name.
        target: String,
        /// What happened.
        reason: String,
    },
    /// A repo's GPG key could not be fetched or read.
    #[error("repo `{repo}`: GPG key `{url}` cannot be used: {reason}")]
    GpgKey {
        /// Repo name.
        repo: String,
        /// Key URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// A package from a repo with a `gpgkey` is unsigned.
    #[error("package `{package}` from repo `{repo}` is not signed, but the repo has a `gpgkey`")]
    Unsigned {
        /// Repo name.
        repo: String,
        /// NEVRA.
        package: String,
    },
    /// A package's signature does not verify.
    #[error("package `{package}` from repo `{repo}` has a bad signature: {reason}")]
    BadSignature {
        /// Repo name.
        repo: String,
        /// NEVRA.
        package: String,
        /// What is wrong.
        reason: String,
    },
    /// A package file is not a readable RPM or not the package the metadata describes.
    #[error("package `{package}` from repo `{repo}` is not a valid RPM: {reason}")]
    BadPackage {
        /// Repo name.
        repo: String,
        /// NEVRA.
        package: String,
        /// What is wrong.
        reason: String,
    },
    /// With `--locked`, the picks differ from the lock.
    #[error("target `{target}`: package `{package}` is locked at `{locked}` but upstream now gives `{upstream}`{}", if *.more > 0 { format!(" (and {} more differences)", .more) } else { String::new() })]
    LockMismatch {
        /// Target name.
        target: String,
        /// Package name.
        package: String,
        /// Locked NEVRA (or `(absent)`).
        locked: String,
        /// NEVRA the upstream gives now (or `(absent)`).
        upstream: String,
        /// Further differences not shown.
        more: usize,
    },
    /// A `modules:` entry that is not `module:stream`.
    #[error("target `{target}`: `{spec}` in `modules` is not `module:stream`")]
    ModuleSpec {
        /// Target name.
        target: String,
        /// The entry.
        spec: String,
    },
    /// A `modules:` entry names a module no repo of the target has.
    #[error(
        "target `{target}`: no repo of the target has module `{module}` (repos: {})",
        quoted(repos)
    )]
    UnknownModule {
        /// Target name.
        target: String,
        /// The module.
        module: String,
        /// The target's repos.
        repos: Vec<String>,
    },
    /// A `modules:` entry names a stream the module does not have.
    #[error(
        "target `{target}`: module `{module}` has no stream `{stream}` in repo {} (streams: {})",
        quoted(repos),
        quoted(streams)
    )]
    UnknownModuleStream {
        /// Target name.
        target: String,
        /// The module.
        module: String,
        /// The stream asked for.
        stream: String,
        /// The streams that exist.
        streams: Vec<String>,
        /// The repos offering the module.
        repos: Vec<String>,
    },
    /// With `--locked`, the module streams differ from the lock's.
    #[error(
        "target `{target}`: the lock carries module streams [{}] but this build chooses [{}]",
        quoted(locked),
        quoted(chosen)
    )]
    ModuleLockMismatch {
        /// Target name.
        target: String,
        /// `name:stream` in the lock.
        locked: Vec<String>,
        /// `name:stream` chosen now.
        chosen: Vec<String>,
    },
    /// With `--locked`, the lock has no record for a target.
    #[error("target `{target}` is not in the lock")]
    TargetNotLocked {
        /// Target name.
        target: String,
    },
    /// A target name that cannot be a folder in the bundle.
    #[error("target `{target}`: {reason}")]
    InvalidTarget {
        /// Target name.
        target: String,
        /// What is wrong.
        reason: String,
    },
    /// Writing the bundle's repodata failed.
    #[error("target `{target}`: writing repodata failed: {reason}")]
    Repodata {
        /// Target name.
        target: String,
        /// What happened.
        reason: String,
    },
    /// Local file system.
    #[error("cannot write `{}`", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

impl Hint for RpmError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            RpmError::Proxy { source, .. } => source.hint(),
            RpmError::RepoConfig { hint, .. } => hint.clone(),
            RpmError::PasswordEnvMissing { var, .. } => format!(
                "export `{var}` with the repo's password before `bundle build` (it is read from there only, and never written to the bundle, the lock or the logs)"
            ),
            RpmError::AccessDenied { auth, status, .. } => auth.hint(*status),
            RpmError::ClientCert { .. } => "renew the entitlement certificate (`subscription-manager refresh` on a registered host) and point `sslclientcert`/`sslclientkey` at the new files".into(),
            RpmError::ClientCertRejected { .. } => "the server does not accept this certificate: check that `sslclientcert` and `sslclientkey` are the entitlement for this repo, not expired or revoked (`subscription-manager refresh`)".into(),
            RpmError::NoWorkingMirror { .. } => "check the mirrorlist/metalink URL and that this machine reaches the mirrors (proxy, TLS roots), or set a `baseurl` you know works".into(),
            RpmError::MetalinkChecksum { .. } => "the mirrors are out of date or tampered with: retry later (mirrors catch up within hours), or set a `baseurl` you trust".into(),
            RpmError::RepoUnreachable { .. } => {
                "check the repo's `baseurl` in the manifest and that this machine reaches it (proxy, DNS, TLS roots)".into()
            }
            RpmError::MalformedRepomd { .. } | RpmError::MalformedMetadata { .. } => {
                "`baseurl` must be the folder that holds `repodata/repomd.xml`; check it in a browser or with `dnf --repofrompath`".into()
            }
            RpmError::MetadataChecksum { .. } => {
                "the mirror may be mid-sync or tampered with: retry later or use another mirror".into()
            }
            RpmError::PackageChecksum { .. } => {
                "the mirror serves a package that differs from its metadata: retry later or use another mirror; the bad file was not cached".into()
            }
            RpmError::UnsupportedChecksum { .. } => "use a mirror that publishes sha256 checksums".into(),
            RpmError::UnknownPackage { hidden_by_modules, .. } if !hidden_by_modules.is_empty() => {
                "`spec.rpms[].modules` chooses the module streams packages come from: name the stream that has the version you pin (`module:stream`), or pin a version the active stream has".into()
            }
            RpmError::UnknownPackage { .. } => {
                "check the spelling and version in `spec.rpms[].packages` (`name`, `name-version`, `name-version-release`, `name-epoch:version-release`) and that a repo listing it is in `repos`".into()
            }
            RpmError::Unsatisfiable { excluded, .. } if !excluded.is_empty() => format!(
                "add the repo that provides it to `repos`, or stop excluding it (excluded: {})",
                excluded.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(", ")
            ),
            RpmError::Unsatisfiable { .. } => "add the repo that provides it to `repos`".into(),
            RpmError::RichDependency { .. } => "pin a package version without this dependency, or report it".into(),
            RpmError::Conflict { chosen, .. } => format!(
                "pin a version of `{}` that satisfies every requirement in `packages`",
                nevra_name(chosen)
            ),
            RpmError::Unsolvable { .. } => "pin the versions of the packages named with `-v`".into(),
            RpmError::GpgKey { .. } => "check the repo's `gpgkey` URL: it must serve an ASCII-armored public key".into(),
            RpmError::Unsigned { .. } | RpmError::BadSignature { .. } => {
                "the package was not signed with the repo's `gpgkey`: check the key URL, or the mirror serves a tampered package".into()
            }
            RpmError::BadPackage { .. } => "the mirror serves a damaged package: retry later or use another mirror".into(),
            RpmError::ModuleSpec { .. } => "write each `spec.rpms[].modules` entry as `name:stream`, like `container-tools:rhel8`".into(),
            RpmError::UnknownModule { module, .. } => format!(
                "remove `{module}` from `spec.rpms[].modules`, or add the repo whose repodata lists it (`modules` in repomd.xml; AppStream on EL8) to `repos`"
            ),
            RpmError::UnknownModuleStream { module, streams, .. } => format!(
                "choose one of {} in `spec.rpms[].modules`",
                quoted(&streams.iter().map(|s| format!("{module}:{s}")).collect::<Vec<_>>())
            ),
            RpmError::ModuleLockMismatch { .. } |
            RpmError::LockMismatch { .. } | RpmError::TargetNotLocked { .. } => {
                "build without `--locked` to update the lock, and review the change".into()
            }
            RpmError::InvalidTarget { .. } => "use a target name like `el9-x86_64`".into(),
            RpmError::Repodata { .. } | RpmError::Io { .. } => return None,
        })
    }
}

/// `` `a`, `b` ``.
fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `kubeadm` from `kubeadm-1.29.2-1.x86_64`.
fn nevra_name(nevra: &str) -> &str {
    let nevr = nevra.rsplit_once('.').map_or(nevra, |(n, _)| n);
    let nev = nevr.rsplit_once('-').map_or(nevr, |(n, _)| n);
    nev.rsplit_once('-').map_or(nev, |(n, _)| n)
}

/// What a repo was given to authenticate with, for the hint when it refuses access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoAuth {
    /// `username`, with the `passwordEnv` variable its password came from.
    pub basic: Option<(String, String)>,
    /// `sslclientcert`.
    pub client_cert: Option<PathBuf>,
}

impl RepoAuth {
    fn hint(&self, status: u16) -> String {
        match (&self.basic, &self.client_cert, status) {
            (Some((user, var)), _, 401) => format!(
                "check `username: {user}` and the password in `{var}`: the repo did not accept them"
            ),
            (None, None, 401) => "the repo asks for a password: set `username` and `passwordEnv` on it in the manifest".into(),
            (_, Some(cert), _) => format!(
                "the client certificate `{}` does not entitle this repo: check it is the entitlement for this content (`subscription-manager refresh`)",
                cert.display()
            ),
            _ => "check the credentials the repo expects (`username`/`passwordEnv`, `sslclientcert`/`sslclientkey`)".into(),
        }
    }
}
