use std::path::{Path, PathBuf};

use crate::tls::TlsProblem;
use bundle_format::Hint;

/// Registry failures, each naming the registry and what was asked of it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The registry could not be reached while pulling (connection refused, DNS, a
    /// connection cut mid-transfer).
    #[error("cannot reach registry `{registry}` ({url})")]
    Unreachable {
        /// `HOST[:PORT]`.
        registry: String,
        /// The URL asked for.
        url: String,
        /// Cause.
        #[source]
        source: reqwest::Error,
    },
    /// A pull was refused: the registry wants credentials, or refused the ones given.
    #[error("registry `{registry}` refused {} to pull `{repository}`", pull_account_text(.account, .from))]
    PullRefused {
        /// `HOST[:PORT]`.
        registry: String,
        /// Repository.
        repository: String,
        /// The account tried, if any.
        account: Option<String>,
        /// Where that account's credentials came from (`--registry-login`, a credential
        /// helper, `config.json`).
        from: Option<String>,
    },
    /// The registry keeps answering `429 Too Many Requests`: its rate limit (Docker
    /// Hub caps anonymous pulls per IP address).
    #[error("registry `{registry}` is rate-limiting {}: 429 Too Many Requests to {what}{}; {}", account_text(.account), detail_text(.detail), rate_limit_text(.retry_after, .max_wait))]
    RateLimited {
        /// `HOST[:PORT]` as the manifest or mirror names it.
        registry: String,
        /// The request (`GET manifest library/nginx:1.25`).
        what: String,
        /// The account pulling, if any.
        account: Option<String>,
        /// The registry's own message (`TOOMANYREQUESTS You have reached your pull rate
        /// limit…`).
        detail: String,
        /// The wait the registry asked for last (`Retry-After`), in seconds.
        retry_after: Option<u32>,
        /// The longest wait honoured, in seconds.
        max_wait: u32,
    },
    /// A docker credential helper could not give credentials.
    #[error("credential helper `{helper}` for `{registry}` {problem}")]
    CredentialHelper {
        /// `HOST[:PORT]`.
        registry: String,
        /// `docker-credential-NAME`.
        helper: String,
        /// What went wrong (never the helper's answer on success: it holds the secret).
        problem: String,
    },
    /// The manifest (tag or digest) does not exist.
    #[error("`{reference}` was not found in registry `{registry}`")]
    NotFound {
        /// What was asked for.
        reference: String,
        /// `HOST[:PORT]`.
        registry: String,
    },
    /// Content did not hash to the digest it was asked for.
    #[error("`{what}` from `{registry}` has digest {found}, expected {expected}")]
    DigestMismatch {
        /// What was fetched.
        what: String,
        /// `HOST[:PORT]`.
        registry: String,
        /// Expected digest.
        expected: String,
        /// Computed digest.
        found: String,
    },
    /// A response was not what the distribution spec says.
    #[error("registry `{registry}` sent an unusable response for `{what}`: {detail}")]
    Protocol {
        /// `HOST[:PORT]`.
        registry: String,
        /// What was fetched.
        what: String,
        /// What is wrong.
        detail: String,
    },
    /// The registry could not be reached while pushing (connection refused, DNS, TLS).
    #[error("cannot reach registry `{registry}` ({url})")]
    Connect {
        /// `HOST[:PORT]`.
        registry: String,
        /// The URL asked for.
        url: String,
        /// Cause.
        #[source]
        source: reqwest::Error,
    },
    /// The registry or its token service refused the credentials (or needs some).
    #[error("registry `{registry}` refused {}", account_text(.account))]
    BadCredentials {
        /// `HOST[:PORT]`.
        registry: String,
        /// The account tried, if any.
        account: Option<String>,
        /// Where the credentials were checked (the registry or its token realm).
        checked_at: String,
    },
    /// `push` was called on a current-thread tokio runtime.
    #[error("pushing needs a multi-threaded tokio runtime (the verifier's threads feed uploads running on its workers)")]
    CurrentThreadRuntime,
    /// The account is known but lacks a right.
    #[error("{} may not {action} `{repository}` in registry `{registry}`", account_text(.account))]
    Denied {
        /// `HOST[:PORT]`.
        registry: String,
        /// The account, if any.
        account: Option<String>,
        /// The repository (or Harbor project).
        repository: String,
        /// What was refused (`push to`, `pull from`, `create the Harbor project for`).
        action: String,
        /// HTTP status.
        status: u16,
    },
    /// The registry answered something unexpected.
    #[error("registry `{registry}` answered {status} to {what}{}", if .detail.is_empty() { String::new() } else { format!(": {}", .detail) })]
    Status {
        /// `HOST[:PORT]`.
        registry: String,
        /// The request (`PUT manifest k8s/pause@sha256:…`).
        what: String,
        /// HTTP status.
        status: u16,
        /// The body's error message, shortened.
        detail: String,
        /// The wait the registry asked for (`Retry-After`), if it did.
        retry_after: Option<std::time::Duration>,
    },
    /// The bundle failed verification: nothing was tagged.
    #[error("bundle `{path}` failed verification; no manifest or tag was pushed")]
    Bundle {
        /// The bundle.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: bundle_format::Error,
    },
    /// The bundle's index and its image layout disagree.
    #[error("bundle `{path}` is inconsistent: {detail}")]
    Inconsistent {
        /// The bundle.
        path: PathBuf,
        /// What is missing or wrong.
        detail: String,
    },
    /// Credentials could not be read from the docker configuration.
    #[error("cannot read credentials for `{registry}` from the docker configuration: {detail}")]
    DockerConfig {
        /// `HOST[:PORT]`.
        registry: String,
        /// What went wrong.
        detail: String,
    },
    /// A local file could not be written or read.
    #[error("cannot write `{path}`")]
    Io {
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed for a reason the operator can act on.
    #[error("TLS with registry `{registry}` failed ({url}): {problem}")]
    Tls {
        /// `HOST[:PORT]`.
        registry: String,
        /// The URL asked for.
        url: String,
        /// What went wrong.
        problem: crate::tls::TlsProblem,
        /// The files whose certificates were trusted (besides the system's).
        trusted: Vec<PathBuf>,
        /// The client certificate offered, if any.
        client_cert: Option<PathBuf>,
        /// Cause.
        #[source]
        source: reqwest::Error,
    },
    /// A client certificate or its key could not be read or used.
    #[error("cannot use client certificate `{path}`: {detail}")]
    ClientCertificate {
        /// Path.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A CA file could not be read or parsed.
    #[error("cannot use CA file `{path}`: {detail}")]
    CaFile {
        /// Path.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

impl Hint for Error {
    fn hint(&self) -> Option<String> {
        Some(match self {
            Error::Unreachable { registry, source, .. } => {
                ConnectFailure::of(source).hint(registry, &format!("--plain-http {registry}"))
            }
            Error::Connect { registry, source, .. } => {
                ConnectFailure::of(source).hint(registry, "--plain-http")
            }
            Error::Tls { registry, problem, trusted, client_cert, .. } => tls_hint(registry, *problem, trusted, client_cert.as_deref()),
            Error::ClientCertificate { .. } => "a client certificate is `NAME.cert` (PEM) with its key `NAME.key` (PEM) beside it, as docker's `client.cert` and `client.key`".into(),
            Error::CaFile { .. } => "pass a PEM file holding the CA certificate (or the registry's own self-signed certificate): `-----BEGIN CERTIFICATE-----` …".into(),
            Error::BadCredentials { registry, account: None, .. } => format!("`{registry}` needs credentials: pass `--username USER --password-stdin`, set BUNDLE_REGISTRY_USERNAME and BUNDLE_REGISTRY_PASSWORD, or log in with `docker login {registry}`"),
            Error::BadCredentials { checked_at, account: Some(a), .. } => format!("check the password of `{a}` (checked by {checked_at}); pass it with `--password-stdin` or BUNDLE_REGISTRY_PASSWORD"),
            Error::Denied { registry, account, repository, action, .. } if action.starts_with("create") => format!(
                "ask a Harbor administrator of `{registry}` to create project `{repository}` (or to give {} the project creator role), then push again",
                account_text(account)
            ),
            Error::Denied { registry, account, repository, .. } => format!(
                "give {} the Developer (push) role in the Harbor project or registry ACL for `{repository}` on `{registry}`, or push with an account that has it",
                account_text(account)
            ),
            Error::Status { status, .. } if *status >= 500 => "the registry failed; its logs say why (disk full, storage backend down); running the same command again resumes where this stopped".into(),
            Error::Bundle { .. } => "get a fresh copy of the bundle and check it with `bundle verify`; nothing from this bundle was tagged in the registry".into(),
            Error::DockerConfig { .. } => "fix the docker config.json or credential helper, or pass `--username USER --password-stdin`".into(),
            Error::PullRefused { registry, account: None, .. } => format!("`{registry}` needs credentials to pull: log in with `docker login {registry}` (or `podman login`), or pass `--registry-login {registry} --username USER --password-stdin`"),
            Error::PullRefused { registry, repository, account: Some(a), .. } => format!("check the password of `{a}` for `{registry}` and that the account may pull `{repository}`; `--registry-login {registry} --username USER --password-stdin` overrides what docker and podman have stored"),
            Error::RateLimited { registry, account: None, .. } => format!("credentials lift the anonymous limit: `docker login {registry}` (bundle reads docker's and podman's stored logins and credential helpers), or `--registry-login {registry} --username USER --password-stdin`; or pull through a mirror with `--mirror`; blobs already fetched stay in the cache, so building again later resumes"),
            Error::RateLimited { .. } => "this account's pull limit is used up: wait and build again (blobs already fetched stay in the cache), use an account with a higher limit, or pull through a mirror with `--mirror`".into(),
            Error::CredentialHelper { helper, problem, .. } if problem.starts_with("cannot be run") => format!("install `{helper}` on PATH, or remove it from `credHelpers`/`credsStore` in docker's config.json; or give the credentials with `--password-stdin`"),
            Error::CredentialHelper { helper, .. } => format!("run `echo HOST | {helper} get` to see what it answers (log in again with `docker login HOST` if its store lost the entry); or give the credentials with `--password-stdin`"),
            Error::NotFound { .. } => "check the tag or digest in the manifest; a tag may have been removed upstream".into(),
            Error::DigestMismatch { .. } => "the registry served different content than was pinned; if the tag moved upstream, update the manifest's pin deliberately".into(),
            _ => return None,
        })
    }
}

fn tls_hint(
    registry: &str,
    problem: TlsProblem,
    trusted: &[PathBuf],
    client_cert: Option<&Path>,
) -> String {
    // The folder this run reads first, so the hint is right where it is followed.
    let certs_d = crate::tls::first_certs_d(registry);
    match problem {
        TlsProblem::Untrusted if trusted.is_empty() => format!(
            "the certificate of `{registry}` is not trusted here; pass the CA that signed it (or the certificate itself, if it is self-signed) with `--ca-file PEM`, or put it in `{certs_d}ca.crt`"
        ),
        TlsProblem::Untrusted => format!(
            "the certificate of `{registry}` is neither signed by nor one of the certificates in {}; pass the CA that signed it (or the certificate itself, if it is self-signed) with `--ca-file PEM`",
            paths(trusted)
        ),
        TlsProblem::Expired => format!(
            "the certificate `{registry}` presents has expired (if it has not, this machine's clock is wrong: check `date`); renew it on the registry and trust the new one"
        ),
        TlsProblem::NotYetValid => format!(
            "the certificate `{registry}` presents is not valid yet: this machine's clock or the registry's is wrong (check `date` on both)"
        ),
        TlsProblem::WrongName => format!(
            "reach the registry by a name its certificate lists (see the names above), or reissue the certificate with `-addext subjectAltName=DNS:NAME,IP:ADDRESS` covering `{registry}`"
        ),
        TlsProblem::ClientCertificateRequired => format!(
            "`{registry}` wants a client certificate: put `client.cert` and `client.key` in `{certs_d}` (or pass `--cert-dir DIR` holding `NAME.cert` and `NAME.key`)"
        ),
        TlsProblem::ClientCertificateRefused => format!(
            "`{registry}` refused the client certificate `{}`: use one signed by a CA the registry trusts (its `http.tls.clientcas`) that has not expired",
            client_cert.map(|p| p.display().to_string()).unwrap_or_default()
        ),
    }
}

fn paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| format!("`{}`", p.display()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn pull_account_text(account: &Option<String>, from: &Option<String>) -> String {
    match (account, from) {
        (Some(a), Some(f)) => format!("account `{a}` (credentials from {f})"),
        (Some(a), None) => format!("account `{a}`"),
        (None, _) => "anonymous access".into(),
    }
}

fn detail_text(detail: &str) -> String {
    match detail.is_empty() {
        true => String::new(),
        false => format!(" ({detail})"),
    }
}

fn rate_limit_text(retry_after: &Option<u32>, max_wait: &u32) -> String {
    match retry_after {
        Some(asked) if asked > max_wait => {
            format!("it asks to wait {asked}s, longer than the {max_wait}s bundle waits")
        }
        _ => "still limited after every retry".into(),
    }
}

fn account_text(account: &Option<String>) -> String {
    match account {
        Some(a) => format!("account `{a}`"),
        None => "anonymous access".into(),
    }
}

/// Why a registry could not be reached, read from the error chain: each kind has its
/// own remedy, and only a TLS handshake answered in plain HTTP calls for `--plain-http`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnectFailure {
    /// The host name did not resolve.
    Dns,
    /// Nothing listens at the address and port.
    Refused,
    /// No answer in time (a firewall dropping packets, a wrong address).
    TimedOut,
    /// The certificate is not trusted (unknown issuer, wrong name, expired).
    Certificate,
    /// TLS spoken to a server that answered in plain HTTP.
    NotTls,
    /// Another TLS failure (protocol versions, cipher suites, a client certificate).
    Tls,
    /// Anything else.
    Other,
}

impl ConnectFailure {
    /// Walks `err` and its causes: I/O error kinds first (they are typed), then the
    /// wording of hyper's and rustls's errors, which reach us only as text.
    fn of(err: &(dyn std::error::Error + 'static)) -> Self {
        let mut text = String::new();
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(c) = cause {
            if let Some(io) = c.downcast_ref::<std::io::Error>() {
                match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => return Self::Refused,
                    std::io::ErrorKind::TimedOut => return Self::TimedOut,
                    _ => {}
                }
            }
            text.push_str(&format!(" {c} {c:?}"));
            cause = c.source();
        }
        if text.contains("dns error")
            || text.contains("failed to lookup address")
            || text.contains("Name or service not known")
            || text.contains("Temporary failure in name resolution")
        {
            Self::Dns
        } else if text.contains("Connection refused") || text.contains("ConnectionRefused") {
            Self::Refused
        } else if text.contains("timed out") || text.contains("TimedOut") {
            Self::TimedOut
        } else if text.contains("UnknownIssuer")
            || text.contains("ertificate")
            || text.contains("NotValidForName")
        {
            Self::Certificate
        } else if text.contains("InvalidContentType")
            || text.contains("corrupt message")
            || text.contains("wrong version number")
        {
            Self::NotTls
        } else if text.contains("rustls") || text.contains("TLS") || text.contains("handshake") {
            Self::Tls
        } else {
            Self::Other
        }
    }

    /// What to do, for `registry`; `plain_http` is the flag as this command takes it.
    fn hint(self, registry: &str, plain_http: &str) -> String {
        let host = host_of(registry);
        match self {
            Self::Dns => format!("`{host}` does not resolve to an address here: check the name, this machine's DNS (/etc/resolv.conf), or add it to /etc/hosts; the registry's IP address works too"),
            Self::Refused => format!("nothing accepts connections at `{registry}`: check the port and that the registry is running there"),
            Self::TimedOut => format!("`{registry}` did not answer in time: check the address and that no firewall drops traffic to that port"),
            Self::Certificate => format!("the TLS certificate of `{registry}` is not trusted here; pass the CA that signed it with `--ca-file PEM`"),
            Self::NotTls => format!("`{registry}` does not speak TLS; if it is a plain HTTP registry pass `{plain_http}`"),
            Self::Tls => format!("the TLS handshake with `{registry}` failed (protocol version, cipher or client certificate); the `Caused by` lines say which"),
            Self::Other => format!("check that `{registry}` is up and reachable from here (address, port, firewall); for a registry without TLS pass `{plain_http}`"),
        }
    }
}

/// `host` of `host[:port]` (an IPv6 address keeps its brackets).
fn host_of(registry: &str) -> &str {
    match registry.rfind(':') {
        Some(i) if !registry[i + 1..].contains(']') => &registry[..i],
        _ => registry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapped(&'static str, Option<std::io::Error>);
    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_ref().map(|e| e as _)
        }
    }

    #[test]
    fn each_connection_failure_gets_its_own_hint() {
        use std::io::{Error as Io, ErrorKind};
        let cases = [
            (
                Wrapped(
                    "tcp connect error",
                    Some(Io::from(ErrorKind::ConnectionRefused)),
                ),
                ConnectFailure::Refused,
            ),
            (
                Wrapped(
                    "dns error",
                    Some(Io::other(
                        "failed to lookup address information: Name or service not known",
                    )),
                ),
                ConnectFailure::Dns,
            ),
            (
                Wrapped(
                    "client error (Connect)",
                    Some(Io::from(ErrorKind::TimedOut)),
                ),
                ConnectFailure::TimedOut,
            ),
            (
                Wrapped("invalid peer certificate: UnknownIssuer", None),
                ConnectFailure::Certificate,
            ),
            (
                Wrapped("received corrupt message of type InvalidContentType", None),
                ConnectFailure::NotTls,
            ),
            (
                Wrapped("peer is incompatible: TLS handshake failure", None),
                ConnectFailure::Tls,
            ),
        ];
        for (err, want) in cases {
            assert_eq!(ConnectFailure::of(&err), want, "{err}");
        }
        let dns = ConnectFailure::Dns.hint("harbor.example:8443", "--plain-http");
        assert!(dns.contains("`harbor.example` does not resolve"), "{dns}");
        for f in [
            ConnectFailure::Dns,
            ConnectFailure::Refused,
            ConnectFailure::TimedOut,
            ConnectFailure::Certificate,
            ConnectFailure::Tls,
        ] {
            assert!(
                !f.hint("r:5000", "--plain-http").contains("--plain-http"),
                "{f:?}"
            );
        }
        assert!(ConnectFailure::NotTls
            .hint("r:5000", "--plain-http")
            .contains("--plain-http"));
        assert_eq!(host_of("[::1]:5000"), "[::1]");
        assert_eq!(host_of("[::1]"), "[::1]");
        assert_eq!(host_of("harbor"), "harbor");
    }
}
