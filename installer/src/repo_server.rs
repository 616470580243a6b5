//! The yum repository served by the deploy node while an install runs.
//!
//! dnf needs nothing but `GET` (and `HEAD`) of whole files, so this is a small
//! HTTP/1.1 file server on tokio rather than a web framework in the installer: files
//! under one folder, keep-alive, `Content-Length`, streamed from disk in fixed memory.
//! Paths are percent-decoded and must stay inside the folder (no `..`, no hidden
//! files, no links followed out of it). It stops when the [`RepoServer`] is dropped.

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::Error;

/// A running server.
#[derive(Debug)]
pub struct RepoServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl RepoServer {
    /// Serves `root` on `addr` (`ip:port`).
    pub async fn start(addr: &str, root: &Path) -> Result<Self, Error> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::RepoServe {
                address: addr.to_string(),
                source,
            })?;
        let local = listener.local_addr().map_err(|source| Error::RepoServe {
            address: addr.to_string(),
            source,
        })?;
        let root = root.to_path_buf();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let root = root.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, &root).await;
                });
            }
        });
        Ok(RepoServer { addr: local, task })
    }

    /// The address bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for RepoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(stream: TcpStream, root: &Path) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut close = false;
        // Headers: only Connection matters.
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).await? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("connection") && v.trim().eq_ignore_ascii_case("close") {
                    close = true;
                }
            }
        }
        let mut parts = line.split_whitespace();
        let (method, target, version) = (parts.next(), parts.next(), parts.next());
        if version == Some("HTTP/1.0") {
            close = true;
        }
        let head = method == Some("HEAD");
        if !matches!(method, Some("GET" | "HEAD")) {
            respond(&mut w, "405 Method Not Allowed", 0, true).await?;
            return Ok(());
        }
        let file = target.and_then(|t| resolve(root, t));
        let opened = match &file {
            Some(p) => tokio::fs::File::open(p).await.ok(),
            None => None,
        };
        let meta = match &opened {
            Some(f) => f.metadata().await.ok().filter(|m| m.is_file()),
            None => None,
        };
        match (opened, meta) {
            (Some(mut f), Some(m)) => {
                respond(&mut w, "200 OK", m.len(), close).await?;
                if !head {
                    tokio::io::copy(&mut f, &mut w).await?;
                }
            }
            _ => respond(&mut w, "404 Not Found", 0, close).await?,
        }
        w.flush().await?;
        if close {
            return Ok(());
        }
    }
}

async fn respond(
    w: &mut tokio::net::tcp::OwnedWriteHalf,
    status: &str,
    len: u64,
    close: bool,
) -> std::io::Result<()> {
    let conn = if close { "close" } else { "keep-alive" };
    w.write_all(
        format!("HTTP/1.1 {status}\r\nContent-Length: {len}\r\nConnection: {conn}\r\n\r\n")
            .as_bytes(),
    )
    .await
}

/// The file under `root` that `target` names, or `None` if it would leave `root`.
fn resolve(root: &Path, target: &str) -> Option<PathBuf> {
    let path = target.split(['?', '#']).next()?;
    let decoded = percent_decode(path)?;
    let mut out = root.to_path_buf();
    for c in Path::new(decoded.trim_start_matches('/')).components() {
        match c {
            Component::Normal(n) if !n.to_string_lossy().starts_with('.') => out.push(n),
            _ => return None,
        }
    }
    // No links out of the folder.
    let real = std::fs::canonicalize(&out).ok()?;
    let real_root = std::fs::canonicalize(root).ok()?;
    real.starts_with(&real_root).then_some(real)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("el9/repodata")).unwrap();
        std::fs::write(dir.path().join("el9/repodata/repomd.xml"), "x").unwrap();
        std::fs::write(dir.path().join("el9/a+b.rpm"), "x").unwrap();
        assert!(resolve(dir.path(), "/el9/repodata/repomd.xml").is_some());
        assert!(resolve(dir.path(), "/el9/a%2Bb.rpm").is_some());
        assert!(resolve(dir.path(), "/el9/../../etc/passwd").is_none());
        assert!(resolve(dir.path(), "/el9/%2e%2e/%2e%2e/etc/passwd").is_none());
        assert!(resolve(dir.path(), "/el9/.hidden").is_none());
    }
}
