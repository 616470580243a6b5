//! A Harbor stand-in (a test double, the only one): what Harbor adds around a registry,
//! in front of a real `docker-registry` that validates its tokens.
//!
//! One address serves, as Harbor's nginx does:
//! - `GET /service/token` (Harbor's token realm): Basic-auth users, JWTs signed RS256 by
//!   a key whose self-signed certificate is in the registry's `rootcertbundle` and in the
//!   token's `x5c` header, granting `pull,push` on repositories of existing projects;
//!   anonymous requests get `pull` on repositories of public projects only;
//! - `GET /api/v2.0/systeminfo`; `HEAD /api/v2.0/projects?project_name=` (200/404);
//!   `GET /api/v2.0/projects?name=`; `POST /api/v2.0/projects` with
//!   `{"project_name", "metadata": {"public"}}` (201, 400, 401, 403, 409), as Harbor's
//!   `api/v2.0/swagger.yaml` describes them;
//! - everything else (`/v2/…`) is forwarded to the registry, which runs with
//!   `auth: token` (realm, service, issuer, rootcertbundle) and checks every token's
//!   signature, issuer, audience, expiry and access.
//!
//! Tokens can be made to die early (`first_token_dies`): they announce 300 s but the
//! registry refuses them, which proves that a client fetches a new token when a 401
//! comes mid-push.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};

use crate::http::{self, Server};

const SERVICE: &str = "harbor-registry";
const ISSUER: &str = "harbor-token-issuer";

/// A Harbor account.
#[derive(Clone, Debug)]
pub struct HarborUser {
    /// Login.
    pub name: String,
    /// Password.
    pub password: String,
    /// May create projects (Harbor's "project creation" right; admins have it).
    pub create_projects: bool,
    /// May push (Harbor's Developer role in every project); otherwise pull only (Guest).
    pub push: bool,
}

impl HarborUser {
    /// A user with the given right to create projects.
    pub fn new(name: &str, password: &str, create_projects: bool) -> Self {
        Self {
            name: name.into(),
            password: password.into(),
            create_projects,
            push: true,
        }
    }

    /// The same account with pull rights only (Harbor's Guest role).
    pub fn guest(mut self) -> Self {
        self.push = false;
        self
    }
}

/// How to start the stand-in.
#[derive(Clone, Debug, Default)]
pub struct HarborOptions {
    /// Accounts.
    pub users: Vec<HarborUser>,
    /// Projects that exist from the start.
    pub projects: Vec<String>,
    /// The first push token issued for each set of scopes is dead on arrival: it announces
    /// 300 s, but its `exp` is past the registry's 60 s leeway, as if it had expired or
    /// been revoked mid-push. A client must fetch a new one when the registry says 401.
    pub first_token_dies: bool,
}

#[derive(Default)]
struct State {
    users: Vec<HarborUser>,
    /// Name → (id, public).
    projects: Mutex<BTreeMap<String, (u64, bool)>>,
    token_requests: AtomicUsize,
    project_posts: AtomicUsize,
    log: Mutex<Vec<String>>,
    first_token_dies: bool,
    scopes_seen: Mutex<std::collections::BTreeSet<String>>,
    key: PathBuf,
    cert_der_b64: String,
}

/// A running stand-in with its registry; both stopped (by PID) on drop.
pub struct HarborStandIn {
    /// `127.0.0.1:PORT`: give this to clients (registry and API).
    pub addr: String,
    /// The registry behind it, `127.0.0.1:PORT` (it accepts only tokens).
    pub registry_addr: String,
    state: Arc<State>,
    dir: tempfile::TempDir,
    child: Child,
    _server: Server,
}

impl HarborStandIn {
    /// Starts the registry (token auth) and the front.
    pub fn start(opts: &HarborOptions) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let key = dir.path().join("token.key");
        let cert = dir.path().join("token.crt");
        run(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                path(&key),
                "-out",
                path(&cert),
                "-days",
                "2",
                "-subj",
                "/CN=harbor-token-issuer",
            ],
        )?;
        let der = Command::new("openssl")
            .args(["x509", "-in", path(&cert), "-outform", "DER"])
            .output()
            .context("openssl x509")?;
        if !der.status.success() {
            bail!("openssl x509 -outform DER failed");
        }
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?.to_string();
        let registry_addr = format!("127.0.0.1:{}", crate::free_port());
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\nhttp:\n  addr: {registry_addr}\nauth:\n  token:\n    realm: http://{addr}/service/token\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {cert}\n",
            data = dir.path().join("data").display(),
            cert = cert.display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config)?;
        let log = std::fs::File::create(dir.path().join("registry.log"))?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting docker-registry (Debian package docker-registry)")?;
        let state = Arc::new(State {
            users: opts.users.clone(),
            projects: Mutex::new(
                opts.projects
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (p.clone(), (i as u64 + 1, false)))
                    .collect(),
            ),
            first_token_dies: opts.first_token_dies,
            key,
            cert_der_b64: base64(&der.stdout, false),
            ..Default::default()
        });
        let s = state.clone();
        let upstream = registry_addr.clone();
        let server = Server::serve(listener, move |stream| handle(stream, &upstream, &s))?;
        let harbor = Self {
            addr,
            registry_addr,
            state,
            dir,
            child,
            _server: server,
        };
        harbor.wait_ready()?;
        Ok(harbor)
    }

    fn wait_ready(&self) -> anyhow::Result<()> {
        crate::real::registry::wait_for_registry(&self.registry_addr, false, || self.registry_log())
    }

    /// Tokens issued so far.
    pub fn token_requests(&self) -> usize {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    /// `POST /api/v2.0/projects` requests so far.
    pub fn project_posts(&self) -> usize {
        self.state.project_posts.load(Ordering::SeqCst)
    }

    /// Projects that exist now and are public (anonymous pulls allowed).
    pub fn public_projects(&self) -> Vec<String> {
        self.state
            .projects
            .lock()
            .expect("projects")
            .iter()
            .filter(|(_, (_, public))| *public)
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Projects that exist now.
    pub fn projects(&self) -> Vec<String> {
        self.state
            .projects
            .lock()
            .expect("projects")
            .keys()
            .cloned()
            .collect()
    }

    /// API and token requests seen (method, path, status).
    pub fn log(&self) -> Vec<String> {
        self.state.log.lock().expect("log").clone()
    }

    /// The registry's log (access log included).
    pub fn registry_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// A token for `scopes` as `user` would get it (for independent checks with curl
    /// or skopeo's `--registry-token`).
    pub fn token_for(&self, user: &str, scopes: &[&str]) -> String {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        issue(&self.state, Some(user), &scopes)
    }
}

impl Drop for HarborStandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn run(cmd: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("running {cmd}"))?;
    if !out.status.success() {
        bail!("{cmd} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn handle(mut client: TcpStream, upstream: &str, s: &State) -> std::io::Result<()> {
    let Some(head) = http::read_head(&mut client)? else {
        return Ok(());
    };
    let (method, path, query) = (head.method.as_str(), head.path(), head.query());
    if !path.starts_with("/api/") && !path.starts_with("/service/") {
        return http::forward(client, &head.text, upstream);
    }
    let header = |name: &str| head.header(name);
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length.min(1 << 20)];
    client.read_exact(&mut body)?;
    let user = header("authorization").and_then(|a| authenticate(s, a));
    let authorization_given = header("authorization").is_some();
    let params = parse_query(query);
    let (status, json) = api(
        s,
        method,
        path,
        &params,
        &body,
        user.as_ref(),
        authorization_given,
    );
    s.log
        .lock()
        .expect("log")
        .push(format!("{method} {path} {status}"));
    let reason = http::reason(status);
    let body = if method == "HEAD" {
        String::new()
    } else {
        json.to_string()
    };
    let mut extra = String::new();
    if status == 401 {
        extra.push_str("WWW-Authenticate: Basic realm=\"harbor\"\r\n");
    }
    if status == 201 {
        if let Some(id) = json.get("project_id") {
            extra.push_str(&format!("Location: /api/v2.0/projects/{id}\r\n"));
        }
    }
    write!(
        client,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
        if method == "HEAD" { json.to_string().len() } else { body.len() }
    )?;
    let _ = client.shutdown(std::net::Shutdown::Both);
    Ok(())
}

fn error(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({"errors": [{"code": code, "message": message}]})
}

fn api(
    s: &State,
    method: &str,
    path: &str,
    params: &[(String, String)],
    body: &[u8],
    user: Option<&HarborUser>,
    authorization_given: bool,
) -> (u16, serde_json::Value) {
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    match (method, path) {
        ("GET", "/service/token") => {
            if authorization_given && user.is_none() {
                return (401, error("UNAUTHORIZED", "invalid credentials"));
            }
            s.token_requests.fetch_add(1, Ordering::SeqCst);
            let scopes: Vec<String> = params
                .iter()
                .filter(|(k, _)| k == "scope")
                .map(|(_, v)| v.clone())
                .collect();
            let token = issue(s, user.map(|u| u.name.as_str()), &scopes);
            let issued = time_rfc3339();
            (
                200,
                serde_json::json!({"token": token, "access_token": token, "expires_in": 300, "issued_at": issued}),
            )
        }
        ("GET", "/api/v2.0/systeminfo") => (
            200,
            serde_json::json!({"harbor_version": "v2.10.0-standin", "auth_mode": "db_auth", "project_creation_restriction": "adminonly", "self_registration": false, "has_ca_root": false, "registry_url": "", "read_only": false}),
        ),
        ("HEAD", "/api/v2.0/projects") => match param("project_name") {
            None => (400, error("BAD_REQUEST", "project_name is required")),
            Some(name) if s.projects.lock().expect("projects").contains_key(&name) => {
                (200, serde_json::json!({}))
            }
            Some(_) => (404, error("NOT_FOUND", "project not found")),
        },
        ("GET", "/api/v2.0/projects") => {
            let projects = s.projects.lock().expect("projects");
            let name = param("name");
            let list: Vec<_> = projects
                .iter()
                .filter(|(p, _)| name.as_ref().is_none_or(|n| *p == n))
                .map(|(p, (id, public))| serde_json::json!({"project_id": id, "name": p, "metadata": {"public": public.to_string()}}))
                .collect();
            (200, serde_json::Value::Array(list))
        }
        ("POST", "/api/v2.0/projects") => {
            s.project_posts.fetch_add(1, Ordering::SeqCst);
            let Some(user) = user else {
                return (401, error("UNAUTHORIZED", "unauthorized"));
            };
            let req: serde_json::Value = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => return (400, error("BAD_REQUEST", &e.to_string())),
            };
            let Some(name) = req.get("project_name").and_then(|v| v.as_str()) else {
                return (400, error("BAD_REQUEST", "project_name is required"));
            };
            if !user.create_projects {
                return (
                    403,
                    error("FORBIDDEN", "Only system admin can create project"),
                );
            }
            let mut projects = s.projects.lock().expect("projects");
            if projects.contains_key(name) {
                return (
                    409,
                    error(
                        "CONFLICT",
                        &format!("The project named {name} already exists"),
                    ),
                );
            }
            // Harbor's ProjectMetadata holds "true"/"false" strings.
            let public = req
                .pointer("/metadata/public")
                .and_then(|v| v.as_str())
                .is_some_and(|v| v == "true");
            let id = projects.len() as u64 + 1;
            projects.insert(name.to_string(), (id, public));
            (201, serde_json::json!({"project_id": id}))
        }
        _ => (404, error("NOT_FOUND", "no such API in the stand-in")),
    }
}

fn authenticate(s: &State, header: &str) -> Option<HarborUser> {
    let encoded = header.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(unbase64(encoded.trim())?).ok()?;
    let (name, password) = decoded.split_once(':')?;
    s.users
        .iter()
        .find(|u| u.name == name && u.password == password)
        .cloned()
}

/// A JWT granting what `user` may do of `scopes`: pull and push on repositories of
/// existing projects for any account; pull on public projects for anonymous.
fn issue(s: &State, user: Option<&str>, scopes: &[String]) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let projects = s.projects.lock().expect("projects").clone();
    let mut access = Vec::new();
    for scope in scopes {
        let mut parts = scope.splitn(3, ':');
        let (Some(kind), Some(name), Some(actions)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if kind != "repository" {
            continue;
        }
        let project = name.split('/').next().unwrap_or(name);
        let Some((_, public)) = projects.get(project).filter(|_| name.contains('/')) else {
            continue;
        };
        if user.is_none() && !public {
            continue;
        }
        let may_push = s
            .users
            .iter()
            .any(|u| Some(u.name.as_str()) == user && u.push);
        let granted: Vec<&str> = actions
            .split(',')
            .filter(|a| *a == "pull" || (may_push && matches!(*a, "push" | "delete" | "*")))
            .filter(|a| user.is_some() || *a == "pull")
            .collect();
        access.push(serde_json::json!({"type": "repository", "name": name, "actions": granted}));
    }
    // The registry adds a 60 s leeway to `exp`; a dead token is past it.
    let pushing = scopes.iter().any(|s| s.ends_with("push"));
    let first = pushing
        && s.scopes_seen
            .lock()
            .expect("scopes")
            .insert(scopes.join(" "));
    let exp = if s.first_token_dies && first {
        now - 120
    } else {
        now + 300
    };
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [s.cert_der_b64]});
    let n = s.token_requests.load(Ordering::SeqCst);
    let claims = serde_json::json!({"iss": ISSUER, "sub": user.unwrap_or(""), "aud": SERVICE, "exp": exp, "nbf": now - 1, "iat": now, "jti": format!("t{now}-{n}"), "access": access});
    let signing_input = format!(
        "{}.{}",
        base64(header.to_string().as_bytes(), true),
        base64(claims.to_string().as_bytes(), true)
    );
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign", path(&s.key)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl dgst");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(signing_input.as_bytes())
        .expect("write to openssl");
    let out = child.wait_with_output().expect("openssl dgst output");
    assert!(out.status.success(), "openssl dgst -sign failed");
    format!("{signing_input}.{}", base64(&out.stdout, true))
}

fn time_rfc3339() -> String {
    // Seconds are enough for clients; the exact calendar date is not checked.
    "2026-01-01T00:00:00Z".to_string()
}

fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match h {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Base64, standard or URL-safe without padding (JWT).
fn base64(data: &[u8], url: bool) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        let chars = chunk.len() + 1;
        for i in 0..4 {
            if i < chars {
                let mut c = B64[((n >> (18 - 6 * i)) & 63) as usize];
                if url {
                    c = match c {
                        b'+' => b'-',
                        b'/' => b'_',
                        c => c,
                    };
                }
                out.push(c as char);
            } else if !url {
                out.push('=');
            }
        }
    }
    out
}

fn unbase64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = B64.iter().position(|b| *b == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for data in [&b""[..], b"f", b"fo", b"foo", b"foob", b"user:pass"] {
            assert_eq!(unbase64(&base64(data, false)).unwrap(), data);
        }
        assert_eq!(base64(b"user:pass", false), "dXNlcjpwYXNz");
        assert_eq!(
            percent_decode("repository%3Ak8s%2Fpause%3Apull%2Cpush"),
            "repository:k8s/pause:pull,push"
        );
    }
}
