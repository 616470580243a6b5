//! A fault-injecting HTTP proxy on 127.0.0.1, placed between a client and a real
//! server (the registry) to prove that retries work.
//!
//! Every request is counted; by a fixed, deterministic pattern (every Nth request) the
//! proxy either resets the connection after reading the request head (the client sees
//! the connection die mid-request, mid-upload for a `PUT`), or answers 503 without
//! forwarding. Other requests go to the upstream server unchanged, except for
//! `Connection: close`, so each forwarded request has a connection of its own and
//! the proxy never has to parse bodies: bytes are copied both ways until the server
//! closes.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What to do to the unlucky requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Close the connection after reading the request head, without an answer.
    Reset,
    /// Answer `503 Service Unavailable` without forwarding.
    Unavailable,
    /// Alternate: reset, then 503, then reset…
    Both,
}

/// Which requests fail: among the requests the pattern counts (all, or those whose
/// request line `only` accepts), number `n` (counting from 1) fails when
/// `n > skip && (n - skip) % every == 0`.
#[derive(Clone, Copy, Debug)]
pub struct FaultPattern {
    /// Period; 0 never fails.
    pub every: usize,
    /// Requests let through before the pattern starts.
    pub skip: usize,
    /// What the failure is.
    pub fault: Fault,
    /// Count only the requests whose line (`PUT /v2/… HTTP/1.1`) this accepts.
    pub only: Option<fn(&str) -> bool>,
}

impl FaultPattern {
    /// No faults: a plain forwarding proxy.
    pub fn none() -> Self {
        Self {
            every: 0,
            skip: 0,
            fault: Fault::Reset,
            only: None,
        }
    }
}

#[derive(Default)]
struct State {
    requests: AtomicUsize,
    /// Requests the pattern counts.
    counted: AtomicUsize,
    faults: AtomicUsize,
    stop: AtomicBool,
    log: Mutex<Vec<String>>,
}

/// A running proxy; stopped on drop.
pub struct Proxy {
    /// `127.0.0.1:PORT` to give the client.
    pub addr: String,
    state: Arc<State>,
}

impl Proxy {
    /// Forwards to `upstream` (`127.0.0.1:PORT`), failing requests by `pattern`.
    pub fn start(upstream: &str, pattern: FaultPattern) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?.to_string();
        let state = Arc::new(State::default());
        let s = state.clone();
        let upstream = upstream.to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let s = s.clone();
                let upstream = upstream.clone();
                std::thread::spawn(move || {
                    let _ = handle(stream, &upstream, pattern, &s);
                });
            }
        });
        Ok(Self { addr, state })
    }

    /// Requests seen.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Requests failed on purpose.
    pub fn faults(&self) -> usize {
        self.state.faults.load(Ordering::SeqCst)
    }

    /// Request lines seen, with `FAULT` marks.
    pub fn log(&self) -> Vec<String> {
        self.state.log.lock().expect("log").clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

fn handle(
    mut client: TcpStream,
    upstream: &str,
    pattern: FaultPattern,
    state: &State,
) -> std::io::Result<()> {
    let Some(head) = read_head(&mut client)? else {
        return Ok(());
    };
    state.requests.fetch_add(1, Ordering::SeqCst);
    let line = head.lines().next().unwrap_or_default().to_string();
    let counted = pattern.only.is_none_or(|only| only(&line));
    let n = match counted {
        true => state.counted.fetch_add(1, Ordering::SeqCst) + 1,
        false => 0,
    };
    let fail = counted
        && pattern.every > 0
        && n > pattern.skip
        && (n - pattern.skip).is_multiple_of(pattern.every);
    if fail {
        let k = state.faults.fetch_add(1, Ordering::SeqCst);
        let fault = match pattern.fault {
            Fault::Both if k.is_multiple_of(2) => Fault::Reset,
            Fault::Both => Fault::Unavailable,
            f => f,
        };
        state
            .log
            .lock()
            .expect("log")
            .push(format!("FAULT {fault:?} {line}"));
        if fault == Fault::Unavailable {
            let _ = client.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
        let _ = client.shutdown(Shutdown::Both);
        return Ok(());
    }
    state.log.lock().expect("log").push(line);
    forward(client, &head, upstream)
}

/// Reads an HTTP request head (up to the blank line) byte by byte, so that no body
/// byte is consumed. `None` when the client closed first.
pub(crate) fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
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
    Ok(Some(String::from_utf8_lossy(&head).into_owned()))
}

/// Sends `head` (with `Connection: close`) and then whatever the client sends to
/// `upstream`, and the answer back, until the server closes.
pub(crate) fn forward(client: TcpStream, head: &str, upstream: &str) -> std::io::Result<()> {
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
        let _ = std::io::copy(&mut from_client, &mut to_server);
    });
    let mut to_client = client;
    let _ = std::io::copy(&mut server, &mut to_client);
    let _ = to_client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
    Ok(())
}
