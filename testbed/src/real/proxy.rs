//! A fault-injecting HTTP proxy on 127.0.0.1, placed between a client and a real
//! server (the registry) to prove that retries work.
//!
//! Every request is counted; by a fixed, deterministic pattern (every Nth request) the
//! proxy either resets the connection after reading the request head (the client sees
//! the connection die mid-request, mid-upload for a `PUT`), answers 503 without
//! forwarding, or answers as Docker Hub does when its pull rate limit is reached (429
//! `TOOMANYREQUESTS` with a `Retry-After`). Other requests go to the upstream server unchanged, except for
//! `Connection: close`, so each forwarded request has a connection of its own and
//! the proxy never has to parse bodies: bytes are copied both ways until the server
//! closes.

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::http::{self, Server};

/// What to do to the unlucky requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Close the connection after reading the request head, without an answer.
    Reset,
    /// Answer `503 Service Unavailable` without forwarding.
    Unavailable,
    /// Alternate: reset, then 503, then reset…
    Both,
    /// Answer `429 Too Many Requests` with `Retry-After: retry_after` (seconds) and
    /// Docker Hub's error body, without forwarding.
    TooManyRequests {
        /// Seconds.
        retry_after: u64,
    },
}

/// Docker Hub's answer when the pull rate limit is reached.
pub const TOO_MANY_REQUESTS_BODY: &str = r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your unauthenticated pull rate limit. https://www.docker.com/increase-rate-limit"}]}"#;

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
    log: Mutex<Vec<String>>,
}

/// A running proxy; stopped on drop.
pub struct Proxy {
    /// `127.0.0.1:PORT` to give the client.
    pub addr: String,
    state: Arc<State>,
    _server: Server,
}

impl Proxy {
    /// Forwards to `upstream` (`127.0.0.1:PORT`), failing requests by `pattern`.
    pub fn start(upstream: &str, pattern: FaultPattern) -> anyhow::Result<Self> {
        let state = Arc::new(State::default());
        let s = state.clone();
        let upstream = upstream.to_string();
        let server = Server::start(move |stream| handle(stream, &upstream, pattern, &s))?;
        Ok(Self {
            addr: server.addr().to_string(),
            state,
            _server: server,
        })
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

fn handle(
    mut client: TcpStream,
    upstream: &str,
    pattern: FaultPattern,
    state: &State,
) -> std::io::Result<()> {
    let Some(head) = http::read_head(&mut client)? else {
        return Ok(());
    };
    state.requests.fetch_add(1, Ordering::SeqCst);
    let line = head.line().to_string();
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
        match fault {
            Fault::Unavailable => {
                let _ = client.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
            Fault::TooManyRequests { retry_after } => {
                let _ = write!(
                    client,
                    "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: {retry_after}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{TOO_MANY_REQUESTS_BODY}",
                    TOO_MANY_REQUESTS_BODY.len()
                );
            }
            Fault::Reset | Fault::Both => {}
        }
        let _ = client.shutdown(Shutdown::Both);
        return Ok(());
    }
    state.log.lock().expect("log").push(line);
    http::forward(client, &head.text, upstream)
}
