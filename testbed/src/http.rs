//! The HTTP plumbing the testbed's own servers share ([`crate::real::files`],
//! [`crate::real::rpms::RepoServer`], [`crate::real::proxy`], [`crate::doubles::harbor`]):
//! an accept loop on 127.0.0.1 with a thread per connection that stops when dropped,
//! reading a request head, plain answers, and forwarding a request to an upstream
//! server.
//!
//! They speak just enough HTTP/1.1 for their clients: one request per connection,
//! answered with `Connection: close`.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A running accept loop; stopped (and its thread joined) on drop. Connections already
/// handed out finish on their own threads.
pub(crate) struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Listens on a free port of 127.0.0.1 and serves it (see [`Server::serve`]).
    pub(crate) fn start<F>(handle: F) -> io::Result<Self>
    where
        F: Fn(TcpStream) -> io::Result<()> + Send + Sync + 'static,
    {
        Self::serve(TcpListener::bind("127.0.0.1:0")?, handle)
    }

    /// Gives each connection `listener` accepts to `handle`, on a thread of its own;
    /// an error from `handle` ends that connection only.
    pub(crate) fn serve<F>(listener: TcpListener, handle: F) -> io::Result<Self>
    where
        F: Fn(TcpStream) -> io::Result<()> + Send + Sync + 'static,
    {
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let handle = Arc::new(handle);
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let handle = handle.clone();
                std::thread::spawn(move || {
                    let _ = handle(stream);
                });
            }
        });
        Ok(Self {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// `127.0.0.1:PORT`.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wake the accept loop
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A request head as read by [`read_head`].
pub(crate) struct Head {
    /// The head as received, up to and including the blank line.
    pub(crate) text: String,
    /// `GET`, `PUT`, …
    pub(crate) method: String,
    /// The request target (`/path?query`); `/` when the line has none.
    pub(crate) target: String,
    /// Header names in lower case, values trimmed.
    headers: Vec<(String, String)>,
}

impl Head {
    /// The request line (`GET /v2/ HTTP/1.1`).
    pub(crate) fn line(&self) -> &str {
        self.text.lines().next().unwrap_or_default()
    }

    /// The target without its query.
    pub(crate) fn path(&self) -> &str {
        self.split_target().0
    }

    /// The target's query (after `?`), empty when it has none.
    pub(crate) fn query(&self) -> &str {
        self.split_target().1
    }

    fn split_target(&self) -> (&str, &str) {
        self.target.split_once('?').unwrap_or((&self.target, ""))
    }

    /// The first header called `name` (lower case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads an HTTP request head (up to the blank line) byte by byte, so that no body
/// byte is consumed. `None` when the client closed first.
pub(crate) fn read_head(stream: &mut TcpStream) -> io::Result<Option<Head>> {
    let mut head = Vec::with_capacity(1024);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Ok(None);
        }
        head.push(byte[0]);
        if head == [0x16] {
            // A TLS handshake on this plain port: answer as Go's server does, so that
            // clients that try HTTPS first (skopeo) fall back to HTTP at once.
            let _ = stream.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n");
            return Ok(None);
        }
        if head.len() > 64 * 1024 {
            return Ok(None);
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let mut parts = lines.next().unwrap_or_default().split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Some(Head {
        text,
        method,
        target,
        headers,
    }))
}

/// The reason phrase of the statuses the testbed's servers answer.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        503 => "Service Unavailable",
        _ => "Other",
    }
}

/// Answers `status` with an empty body and closes.
pub(crate) fn answer_empty(out: &mut TcpStream, status: u16) -> io::Result<()> {
    write!(
        out,
        "HTTP/1.1 {status} {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        reason(status)
    )
}

/// Sends `head` (with `Connection: close`) and then whatever the client sends to
/// `upstream`, and the answer back, until the server closes.
pub(crate) fn forward(client: TcpStream, head: &str, upstream: &str) -> io::Result<()> {
    let mut server = TcpStream::connect(upstream)?;
    let mut out = String::with_capacity(head.len() + 20);
    for (i, l) in head.trim_end_matches("\r\n\r\n").split("\r\n").enumerate() {
        if i > 0 && l.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    server.write_all(out.as_bytes())?;
    let mut from_client = client.try_clone()?;
    let mut to_server = server.try_clone()?;
    std::thread::spawn(move || {
        let _ = io::copy(&mut from_client, &mut to_server);
    });
    let mut to_client = client;
    let _ = io::copy(&mut server, &mut to_client);
    let _ = to_client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_each_connection_and_stops_on_drop() {
        let server = Server::start(|mut conn| {
            let head = read_head(&mut conn)?.expect("a head");
            assert_eq!(head.header("x-test"), Some("yes"));
            let status = if head.path() == "/here" && head.query() == "a=1" {
                200
            } else {
                404
            };
            answer_empty(&mut conn, status)
        })
        .unwrap();
        let get = |target: &str| {
            let mut c = TcpStream::connect(server.addr()).unwrap();
            write!(c, "GET {target} HTTP/1.1\r\nX-Test: yes\r\n\r\n").unwrap();
            let mut answer = String::new();
            c.read_to_string(&mut answer).unwrap();
            answer
        };
        assert!(get("/here?a=1").starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(get("/there").starts_with("HTTP/1.1 404 Not Found\r\n"));
        let addr = server.addr();
        drop(server);
        assert!(TcpStream::connect(addr).is_err(), "still listening");
    }
}
