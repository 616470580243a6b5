//! A small HTTP/1.1 file server on 127.0.0.1 for `spec.files` downloads. It counts
//! requests and can answer 503 to the next N requests, to exercise retries.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

#[derive(Default)]
struct State {
    files: Mutex<HashMap<String, Vec<u8>>>,
    requests: AtomicUsize,
    fail_next: AtomicUsize,
    stop: AtomicBool,
}

/// A running file server; stopped on drop.
pub struct FileServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    state: Arc<State>,
    addr: String,
    thread: Option<JoinHandle<()>>,
}

impl FileServer {
    /// Starts serving nothing yet.
    pub fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?.to_string();
        let state = Arc::new(State::default());
        let s = state.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let s = s.clone();
                    std::thread::spawn(move || {
                        let _ = serve(stream, &s);
                    });
                }
            }
        });
        Ok(Self {
            url: format!("http://{addr}"),
            state,
            addr,
            thread: Some(thread),
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

fn serve(stream: TcpStream, state: &State) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
    }
    state.requests.fetch_add(1, Ordering::SeqCst);
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut out = stream;
    let failing = state
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        return write!(
            out,
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }
    let body = state.files.lock().expect("lock").get(&path).cloned();
    match body {
        Some(b) => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                b.len()
            )?;
            out.write_all(&b)
        }
        None => write!(
            out,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr); // wake the accept loop
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
