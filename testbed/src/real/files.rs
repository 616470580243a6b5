//! A small HTTP/1.1 file server on 127.0.0.1 for `spec.files` downloads. It counts
//! requests and can answer 503 to the next N requests, to exercise retries.

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::http::{self, Server};

#[derive(Default)]
struct State {
    files: Mutex<HashMap<String, Vec<u8>>>,
    requests: AtomicUsize,
    fail_next: AtomicUsize,
}

/// A running file server; stopped on drop.
pub struct FileServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    state: Arc<State>,
    _server: Server,
}

impl FileServer {
    /// Starts serving nothing yet.
    pub fn start() -> anyhow::Result<Self> {
        let state = Arc::new(State::default());
        let s = state.clone();
        let server = Server::start(move |stream| serve(stream, &s))?;
        Ok(Self {
            url: format!("http://{}", server.addr()),
            state,
            _server: server,
        })
    }

    /// Serves `data` at `/path`; returns its URL.
    pub fn put(&self, path: &str, data: &[u8]) -> String {
        self.state
            .files
            .lock()
            .expect("lock")
            .insert(format!("/{path}"), data.to_vec());
        format!("{}/{path}", self.url)
    }

    /// Requests served so far.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Answers 503 to the next `n` requests.
    pub fn fail_next(&self, n: usize) {
        self.state.fail_next.store(n, Ordering::SeqCst);
    }
}

fn serve(mut out: TcpStream, state: &State) -> std::io::Result<()> {
    let Some(head) = http::read_head(&mut out)? else {
        return Ok(());
    };
    state.requests.fetch_add(1, Ordering::SeqCst);
    let failing = state
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        return http::answer_empty(&mut out, 503);
    }
    let body = state.files.lock().expect("lock").get(&head.target).cloned();
    match body {
        Some(b) => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                b.len()
            )?;
            out.write_all(&b)
        }
        None => http::answer_empty(&mut out, 404),
    }
}
