//! The distribution protocol on `reqwest` directly: the push side, and the session
//! pulls share (`client.rs` says why pulls do not use oci-client either).
//!
//! oci-client falls short for pushing a bundle: `mount_blob` treats the
//! spec-allowed 202 as an error and asks a token for the target repository only (a
//! mount needs `pull` on the source too), `push_blob_stream` cuts streams into 4 MiB
//! PATCH requests unless told otherwise and cannot start a session over from a fresh
//! read of the blob on retry, and its token cache cannot be told that a token died
//! before its announced expiry. This module does the few requests a push needs:
//!
//! - `GET /v2/` to learn the challenge (none, Basic, or Bearer with realm and service);
//! - Bearer tokens per scope set from the realm (Harbor's `/service/token`), Basic
//!   credentials sent to the realm, cached until shortly before `expires_in` and
//!   fetched again when the registry answers 401 to a token it accepted before;
//! - `HEAD` blobs and manifests, cross-repository mounts, monolithic uploads (`POST`
//!   then one `PUT` whose body streams from the archive as it is read), raw manifest
//!   `PUT`s.
//!
//! Retries (5xx, 429, resets) are the caller's: each operation is one attempt that
//! starts from the beginning, so a retried upload opens a new session.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bundle_format::Sha256Digest;
use reqwest::header::{
    HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};

use crate::tls::{self, SiteTls};
use crate::{Credentials, Error, Retry};

/// How to reach the target registry.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// `HOST[:PORT]`.
    pub host: String,
    /// Speak plain HTTP instead of HTTPS.
    pub plain_http: bool,
    /// PEM files with extra CA certificates to trust (or a registry's self-signed
    /// certificate itself).
    pub ca_files: Vec<PathBuf>,
    /// A folder as skopeo's `--cert-dir`: `*.crt` CAs, `NAME.cert` + `NAME.key` client
    /// certificate. With neither this nor `ca_files`, the `certs.d` folders are read
    /// (see [`crate::tls`]).
    pub cert_dir: Option<PathBuf>,
    /// Credentials, when the registry needs them.
    pub credentials: Option<Credentials>,
    /// Proxies set explicitly (`bundle build` reads the environment once for all its
    /// downloads); `None`: reqwest's own reading of `HTTPS_PROXY` and the rest.
    pub proxy: Option<crate::ProxySettings>,
}

#[derive(Debug, Clone)]
enum Challenge {
    None,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

struct Token {
    value: String,
    expires: Instant,
}

/// An error of one attempt: worth retrying or not.
pub(crate) struct Attempt {
    pub error: Error,
    pub transient: bool,
}

impl From<Error> for Attempt {
    fn from(error: Error) -> Self {
        Attempt {
            error,
            transient: false,
        }
    }
}

impl Attempt {
    /// What this failure calls for: the wait the registry asked for (`Retry-After` on
    /// a 429 or 503), the policy's backoff, or giving up. Pulls and pushes both ask.
    pub fn retry(&self) -> Retry {
        match (self.transient, &self.error) {
            (false, _) => Retry::Stop,
            (
                true,
                Error::Status {
                    retry_after: Some(wait),
                    ..
                },
            ) => Retry::After(*wait),
            (true, _) => Retry::Backoff,
        }
    }
}

impl std::fmt::Display for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.error)?;
        let mut cause = std::error::Error::source(&self.error);
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

pub(crate) type AttemptResult<T> = Result<T, Attempt>;

/// One registry's session: HTTP client, challenge, token cache, request counter.
pub(crate) struct Session {
    http: reqwest::Client,
    base: String,
    host: String,
    credentials: Option<Credentials>,
    challenge: Mutex<Option<Challenge>>,
    tokens: Mutex<HashMap<String, Arc<Token>>>,
    /// One token request at a time per scope set: parallel requests for one repository
    /// share the token instead of each asking (a Harbor checks the password each time).
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Token requests made (tests and `-v` output use it).
    pub token_requests: AtomicU64,
    /// Reads ask tokens for `pull` only (a node's view), not `pull,push`.
    read_only: bool,
    /// Files whose certificates are trusted, and the client certificate offered (for
    /// messages).
    trusted: Vec<PathBuf>,
    client_cert: Option<PathBuf>,
}

/// Tokens are refreshed this long before their announced expiry.
const TOKEN_MARGIN: Duration = Duration::from_secs(10);

pub(crate) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

impl Session {
    pub fn new(conn: &Connection) -> Result<Self, Error> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("bundle-registry/", env!("CARGO_PKG_VERSION")));
        let mut trusted = Vec::new();
        let mut client_cert = None;
        if let Some(proxy) = &conn.proxy {
            builder = proxy.apply(builder).map_err(|detail| Error::Protocol {
                registry: conn.host.clone(),
                what: "proxy settings".into(),
                detail,
            })?;
        }
        if !conn.plain_http {
            let tls = SiteTls::load(&conn.host, &conn.ca_files, conn.cert_dir.as_deref())?;
            trusted = tls.trusted.clone();
            client_cert = tls.client_cert.clone();
            builder = builder.tls_backend_preconfigured(tls.client_config(&conn.host)?);
        }
        let http = builder.build().map_err(|e| Error::Protocol {
            registry: conn.host.clone(),
            what: "HTTP client".into(),
            detail: e.to_string(),
        })?;
        let scheme = if conn.plain_http { "http" } else { "https" };
        Ok(Self {
            http,
            base: format!("{scheme}://{}", conn.host),
            host: conn.host.clone(),
            credentials: conn.credentials.clone(),
            challenge: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
            fetching: Mutex::new(HashMap::new()),
            token_requests: AtomicU64::new(0),
            read_only: false,
            trusted,
            client_cert,
        })
    }

    /// A session that only reads, as a cluster node does: tokens for `pull` alone, so
    /// that an account allowed to pull but nothing more gets one from any token server.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// The token scope for reading `repository`: `pull,push` while pushing, so that
    /// reads and uploads share one token.
    fn read_scope(&self, repository: &str) -> String {
        match self.read_only {
            true => format!("repository:{repository}:pull"),
            false => pull_push(repository),
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn account(&self) -> Option<String> {
        self.credentials.as_ref().map(|c| c.username.clone())
    }

    /// The HTTP client, for the Harbor API (same TLS settings).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    pub(crate) fn connect_error(&self, url: &str, e: reqwest::Error) -> Attempt {
        if let Some(problem) = tls::classify(&e, self.client_cert.is_some()) {
            return Attempt::from(Error::Tls {
                registry: self.host.clone(),
                url: url.to_string(),
                problem,
                trusted: self.trusted.clone(),
                client_cert: self.client_cert.clone(),
                source: e,
            });
        }
        let transient = !e.is_builder() && !e.is_redirect() && !is_tls_error(&e);
        Attempt {
            error: Error::Connect {
                registry: self.host.clone(),
                url: url.to_string(),
                source: e,
            },
            transient,
        }
    }

    /// `GET /v2/`: learns the challenge, checks credentials where the registry checks
    /// them itself (Basic), and fails early when the registry is unreachable.
    pub async fn ping(&self) -> AttemptResult<()> {
        let url = format!("{}/v2/", self.base);
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| self.connect_error(&url, e))?;
        let challenge = match resp.status() {
            s if s.is_success() => Challenge::None,
            StatusCode::UNAUTHORIZED => parse_challenge(resp.headers()).ok_or_else(|| {
                Attempt::from(Error::Protocol {
                    registry: self.host.clone(),
                    what: "GET /v2/".into(),
                    detail: "401 without a usable WWW-Authenticate challenge".into(),
                })
            })?,
            s => return Err(self.status_error("GET /v2/", resp, s).await),
        };
        *self.challenge.lock().expect("challenge lock") = Some(challenge.clone());
        match challenge {
            Challenge::None => Ok(()),
            Challenge::Basic => {
                if self.credentials.is_none() {
                    return Err(self.bad_credentials(&url).into());
                }
                let c = self.credentials.as_ref().expect("checked above");
                let resp = self
                    .http
                    .get(&url)
                    .basic_auth(&c.username, Some(&c.password))
                    .send()
                    .await
                    .map_err(|e| self.connect_error(&url, e))?;
                match resp.status() {
                    s if s.is_success() => Ok(()),
                    StatusCode::UNAUTHORIZED => Err(self.bad_credentials(&url).into()),
                    s => Err(self.status_error("GET /v2/", resp, s).await),
                }
            }
            // Ask for a token without scope: checks the credentials at the realm.
            Challenge::Bearer { .. } => self.token(&[]).await.map(|_| ()),
        }
    }

    fn bad_credentials(&self, checked_at: &str) -> Error {
        Error::BadCredentials {
            registry: self.host.clone(),
            account: self.account(),
            checked_at: checked_at.to_string(),
        }
    }

    /// The challenge learnt by [`Session::ping`] (which every push starts with).
    fn challenge(&self) -> Challenge {
        self.challenge
            .lock()
            .expect("challenge lock")
            .clone()
            .unwrap_or(Challenge::None)
    }

    /// A token for `scopes`, from the cache while it is fresh.
    async fn token(&self, scopes: &[String]) -> AttemptResult<Arc<Token>> {
        let key = scopes.join(" ");
        let cached = || {
            self.tokens
                .lock()
                .expect("token lock")
                .get(&key)
                .filter(|t| t.expires > Instant::now())
                .cloned()
        };
        if let Some(t) = cached() {
            return Ok(t);
        }
        let gate = self
            .fetching
            .lock()
            .expect("fetch lock")
            .entry(key.clone())
            .or_default()
            .clone();
        let _turn = gate.lock().await;
        if let Some(t) = cached() {
            return Ok(t);
        }
        let Challenge::Bearer { realm, service } = self.challenge() else {
            unreachable!("tokens are asked for only after a Bearer challenge")
        };
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = &service {
            query.push(("service", s));
        }
        for s in scopes {
            query.push(("scope", s));
        }
        let mut req = self.http.get(&realm).query(&query);
        if let Some(c) = &self.credentials {
            req = req.basic_auth(&c.username, Some(&c.password));
        }
        self.token_requests.fetch_add(1, Ordering::Relaxed);
        let resp = req
            .send()
            .await
            .map_err(|e| self.connect_error(&realm, e))?;
        match resp.status() {
            s if s.is_success() => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(self
                    .bad_credentials(&format!("the token service {realm}"))
                    .into())
            }
            s => {
                return Err(self
                    .status_error(&format!("GET token from {realm}"), resp, s)
                    .await)
            }
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let body: TokenResponse = resp.json().await.map_err(|e| Attempt {
            error: Error::Protocol {
                registry: self.host.clone(),
                what: format!("token from {realm}"),
                detail: e.to_string(),
            },
            transient: e.is_body() || e.is_timeout(),
        })?;
        let value = body.token.or(body.access_token).ok_or_else(|| {
            Attempt::from(Error::Protocol {
                registry: self.host.clone(),
                what: format!("token from {realm}"),
                detail: "no `token` in the answer".into(),
            })
        })?;
        // The spec's default lifetime is 60 s.
        let lifetime = Duration::from_secs(body.expires_in.unwrap_or(60).max(1));
        let expires = Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN.min(lifetime / 2));
        let token = Arc::new(Token { value, expires });
        self.tokens
            .lock()
            .expect("token lock")
            .insert(key, token.clone());
        Ok(token)
    }

    fn forget_token(&self, scopes: &[String], token: &Arc<Token>) {
        let mut tokens = self.tokens.lock().expect("token lock");
        if tokens
            .get(&scopes.join(" "))
            .is_some_and(|t| Arc::ptr_eq(t, token))
        {
            tokens.remove(&scopes.join(" "));
        }
    }

    /// Sends a request built by `build` with auth for `scopes`; on a 401 to a Bearer
    /// token (expired or revoked before its announced expiry) gets a new token and
    /// sends once more. `build` is called again for the second try, so streaming bodies
    /// are recreated.
    pub async fn send<F>(&self, scopes: &[String], url: &str, build: F) -> AttemptResult<Response>
    where
        F: Fn(&reqwest::Client) -> AttemptResult<RequestBuilder>,
    {
        for attempt in 0..2 {
            let challenge = self.challenge();
            let token = match challenge {
                Challenge::Bearer { .. } => Some(self.token(scopes).await?),
                _ => None,
            };
            let mut req = build(&self.http)?;
            req = match (&token, &challenge) {
                (Some(t), _) => req.header(AUTHORIZATION, format!("Bearer {}", t.value)),
                (None, Challenge::Basic) => match &self.credentials {
                    Some(c) => req.basic_auth(&c.username, Some(&c.password)),
                    None => req,
                },
                _ => req,
            };
            let resp = req.send().await.map_err(|e| self.connect_error(url, e))?;
            if resp.status() == StatusCode::UNAUTHORIZED && attempt == 0 {
                if let Some(t) = &token {
                    let insufficient = resp
                        .headers()
                        .get(WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| v.contains("insufficient_scope"));
                    tracing::debug!("{url}: 401 with a token (insufficient scope: {insufficient}); asking for a new token");
                    self.forget_token(scopes, t);
                    continue;
                }
            }
            return Ok(resp);
        }
        unreachable!("the loop returns on its second pass")
    }

    /// Turns an unexpected answer into an error; 5xx and 429 are transient, and keep
    /// the wait the registry asked for.
    pub async fn status_error(&self, what: &str, resp: Response, status: StatusCode) -> Attempt {
        let retry_after = retry_after(resp.headers());
        let detail = resp.text().await.unwrap_or_default();
        let detail = registry_message(&detail);
        Attempt {
            transient: status.is_server_error()
                || status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::REQUEST_TIMEOUT,
            error: Error::Status {
                registry: self.host.clone(),
                what: what.to_string(),
                status: status.as_u16(),
                detail,
                retry_after,
            },
        }
    }

    fn denied(&self, repository: &str, action: &str, status: StatusCode) -> Attempt {
        Attempt::from(Error::Denied {
            registry: self.host.clone(),
            account: self.account(),
            repository: repository.to_string(),
            action: action.to_string(),
            status: status.as_u16(),
        })
    }

    async fn check(
        &self,
        resp: Response,
        what: &str,
        repository: &str,
        action: &str,
    ) -> AttemptResult<Response> {
        match resp.status() {
            s if s.is_success() => Ok(resp),
            s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                Err(self.denied(repository, action, s))
            }
            s => Err(self.status_error(what, resp, s).await),
        }
    }

    /// Whether `repository` has blob `digest`.
    pub async fn blob_exists(
        &self,
        repository: &str,
        digest: &Sha256Digest,
    ) -> AttemptResult<bool> {
        let url = format!("{}/v2/{repository}/blobs/{digest}", self.base);
        let resp = self
            .send(&[self.read_scope(repository)], &url, |c| Ok(c.head(&url)))
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(false),
            _ => self
                .check(
                    resp,
                    &format!("HEAD blob {repository}@{digest}"),
                    repository,
                    "read from",
                )
                .await
                .map(|_| true),
        }
    }

    /// Whether `repository` has the manifest `reference` (a digest or tag); returns the
    /// digest the registry reports.
    pub async fn manifest_digest(
        &self,
        repository: &str,
        reference: &str,
    ) -> AttemptResult<Option<String>> {
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.base);
        let resp = self
            .send(&[self.read_scope(repository)], &url, |c| {
                Ok(c.head(&url).header(ACCEPT, MANIFEST_ACCEPT))
            })
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            _ => {
                let resp = self
                    .check(
                        resp,
                        &format!("HEAD manifest {repository}:{reference}"),
                        repository,
                        "read from",
                    )
                    .await?;
                Ok(Some(
                    resp.headers()
                        .get("docker-content-digest")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string(),
                ))
            }
        }
    }

    /// Mounts `digest` from `from` into `to`. `Ok(false)` when the registry opened an
    /// upload instead (202: it would not mount) or refused: the caller uploads.
    pub async fn mount(&self, to: &str, from: &str, digest: &Sha256Digest) -> AttemptResult<bool> {
        let url = format!(
            "{}/v2/{to}/blobs/uploads/?mount={digest}&from={from}",
            self.base
        );
        let scopes = [pull_push(to), format!("repository:{from}:pull")];
        let resp = self
            .send(&scopes, &url, |c| {
                Ok(c.post(&url).header(CONTENT_LENGTH, "0"))
            })
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                // An upload session was opened instead; close it, the caller uploads.
                if let Some(location) = self.location(&resp) {
                    let _ = self
                        .send(&scopes, &location, |c| Ok(c.delete(&location)))
                        .await;
                }
                Ok(false)
            }
            s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => Err(self
                .status_error(&format!("mount {digest} into {to}"), resp, s)
                .await),
            s => {
                tracing::debug!(
                    "mount of {digest} from {from} into {to} refused ({s}); uploading instead"
                );
                Ok(false)
            }
        }
    }

    fn location(&self, resp: &Response) -> Option<String> {
        let l = resp.headers().get(LOCATION)?.to_str().ok()?;
        Some(if l.starts_with("http://") || l.starts_with("https://") {
            l.to_string()
        } else {
            format!("{}{l}", self.base)
        })
    }

    /// Uploads one blob whose bytes arrive on `chunks`: `POST` opens a session, one
    /// `PUT` with `?digest=` carries the whole blob; the registry refuses content that
    /// does not hash to `digest`, so nothing wrong can land. An `Err` chunk aborts the
    /// request. The body can be sent only once: when the `PUT` must be repeated (a token
    /// died on the way), the attempt fails as transient and the caller streams again.
    pub async fn upload(
        &self,
        repository: &str,
        digest: &Sha256Digest,
        size: u64,
        chunks: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    ) -> AttemptResult<()> {
        let scopes = [pull_push(repository)];
        let url = format!("{}/v2/{repository}/blobs/uploads/", self.base);
        let resp = self
            .send(&scopes, &url, |c| {
                Ok(c.post(&url).header(CONTENT_LENGTH, "0"))
            })
            .await?;
        let resp = self
            .check(
                resp,
                &format!("POST upload to {repository}"),
                repository,
                "push to",
            )
            .await?;
        let location = self.location(&resp).ok_or_else(|| {
            Attempt::from(Error::Protocol {
                registry: self.host.clone(),
                what: format!("upload to {repository}"),
                detail: "202 without Location".into(),
            })
        })?;
        let sep = if location.contains('?') { '&' } else { '?' };
        let put_url = format!("{location}{sep}digest={digest}");
        let body = Mutex::new(Some(chunks));
        let open = |_: &reqwest::Client| -> AttemptResult<RequestBuilder> {
            let chunks = body
                .lock()
                .expect("not poisoned")
                .take()
                .ok_or_else(|| Attempt {
                    error: Error::Protocol {
                        registry: self.host.clone(),
                        what: format!("PUT blob {digest} into {repository}"),
                        detail: "the registry asked for the blob again".into(),
                    },
                    transient: true,
                })?;
            let stream = futures_util::stream::unfold(chunks, |mut rx| async move {
                rx.recv().await.map(|chunk| (chunk, rx))
            });
            Ok(self
                .http
                .put(&put_url)
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, size.to_string())
                .body(reqwest::Body::wrap_stream(stream)))
        };
        let resp = self.send(&scopes, &put_url, open).await?;
        self.check(
            resp,
            &format!("PUT blob {digest} into {repository}"),
            repository,
            "push to",
        )
        .await?;
        Ok(())
    }

    /// Puts a manifest, byte for byte, under `reference` (its digest or a tag).
    pub async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> AttemptResult<()> {
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.base);
        let body = bytes::Bytes::copy_from_slice(bytes);
        let resp = self
            .send(&[pull_push(repository)], &url, |c| {
                Ok(c.request(Method::PUT, &url)
                    .header(CONTENT_TYPE, media_type)
                    .body(body.clone()))
            })
            .await?;
        self.check(
            resp,
            &format!("PUT manifest {repository}:{reference}"),
            repository,
            "push to",
        )
        .await?;
        Ok(())
    }
}

pub(crate) fn pull_push(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

fn is_tls_error(e: &reqwest::Error) -> bool {
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(c) = cause {
        let t = format!("{c:?}");
        if t.contains("UnknownIssuer")
            || t.contains("InvalidCertificate")
            || t.contains("InvalidContentType")
            || t.contains("CorruptMessage")
        {
            return true;
        }
        cause = c.source();
    }
    false
}

/// `Retry-After` in seconds, as distribution and Docker Hub send it. The HTTP-date form
/// is not read: the caller's own backoff applies then.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Parses `WWW-Authenticate: Bearer realm="…",service="…"` or `Basic realm="…"`.
fn parse_challenge(headers: &HeaderMap) -> Option<Challenge> {
    let value = headers.get(WWW_AUTHENTICATE)?.to_str().ok()?.trim();
    let (scheme, params) = value.split_once(' ').unwrap_or((value, ""));
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => {
            let params = parse_params(params);
            Some(Challenge::Bearer {
                realm: params.get("realm")?.clone(),
                service: params.get("service").cloned(),
            })
        }
        _ => None,
    }
}

fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (q[..end].to_string(), &q[end + 1..]),
                None => (q.to_string(), ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (after[..end].trim().to_string(), &after[end..]),
                None => (after.trim().to_string(), ""),
            }
        };
        out.insert(key, value);
        rest = tail.trim_start_matches([',', ' ']);
    }
    out
}

/// The first `message` of a distribution error body, or the body shortened.
fn registry_message(body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        code: Option<String>,
        message: Option<String>,
    }
    if let Ok(e) = serde_json::from_str::<Envelope>(body) {
        if let Some(i) = e.errors.first() {
            return format!(
                "{} {}",
                i.code.as_deref().unwrap_or(""),
                i.message.as_deref().unwrap_or("")
            )
            .trim()
            .to_string();
        }
    }
    let t = body.trim();
    t.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_and_basic_challenges() {
        let mut h = HeaderMap::new();
        h.insert(WWW_AUTHENTICATE, r#"Bearer realm="https://h/service/token",service="harbor-registry",scope="repository:a:pull""#.parse().unwrap());
        match parse_challenge(&h) {
            Some(Challenge::Bearer { realm, service }) => {
                assert_eq!(realm, "https://h/service/token");
                assert_eq!(service.as_deref(), Some("harbor-registry"));
            }
            other => panic!("{other:?}"),
        }
        h.insert(
            WWW_AUTHENTICATE,
            r#"Basic realm="test-registry""#.parse().unwrap(),
        );
        assert!(matches!(parse_challenge(&h), Some(Challenge::Basic)));
    }

    #[test]
    fn registry_messages_are_short() {
        assert_eq!(
            registry_message(
                r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#
            ),
            "DENIED requested access to the resource is denied"
        );
    }
}
