//! Decompression on its own thread, so that zstd and SHA-256 each get a core, as
//! `zstd -dc | sha256sum` gets two processes. Chunks travel through a bounded channel:
//! memory stays at a few MiB whatever the bundle's size.

use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::JoinHandle;

const CHUNK: usize = 1024 * 1024;
const CHUNKS_IN_FLIGHT: usize = 8;

/// A reader fed by a background thread that decompresses `source`.
pub(crate) struct DecompressedReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    pos: usize,
    done: bool,
    worker: Option<JoinHandle<()>>,
}

impl DecompressedReader {
    pub(crate) fn spawn<R: Read + Send + 'static>(source: R) -> io::Result<Self> {
        let mut decoder = zstd::stream::read::Decoder::new(source)?;
        decoder.window_log_max(crate::MAX_WINDOW_LOG)?;
        let (tx, rx) = sync_channel(CHUNKS_IN_FLIGHT);
        let worker = std::thread::Builder::new()
            .name("bundle-unzstd".into())
            .spawn(move || loop {
                let mut buf = vec![0u8; CHUNK];
                let mut filled = 0;
                let result = loop {
                    match decoder.read(&mut buf[filled..]) {
                        Ok(0) => break Ok(()),
                        Ok(n) => {
                            filled += n;
                            if filled == buf.len() {
                                break Ok(());
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                let end = filled < buf.len();
                buf.truncate(filled);
                let sent = match result {
                    Err(e) => {
                        let _ = tx.send(Ok(buf));
                        let _ = tx.send(Err(e));
                        return;
                    }
                    Ok(()) if buf.is_empty() => return,
                    Ok(()) => tx.send(Ok(buf)),
                };
                if sent.is_err() || end {
                    return; // reader gone, or end of stream
                }
            })?;
        Ok(Self {
            rx,
            current: Vec::new(),
            pos: 0,
            done: false,
            worker: Some(worker),
        })
    }
}

impl Read for DecompressedReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.current = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Ok(0);
                }
            }
        }
        let n = out.len().min(self.current.len() - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Drop for DecompressedReader {
    fn drop(&mut self) {
        // Dropping the receiver makes the worker's next send fail, so it ends.
        let rx = std::mem::replace(&mut self.rx, sync_channel(0).1);
        drop(rx);
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}
