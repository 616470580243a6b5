//! Writing a bundle: index, signature, then every entry streamed from its source
//! through tar and multithreaded zstd, in fixed memory.
//!
//! The archive is cut into zstd frames at entry boundaries (see [`crate::frames`]):
//! index and signature form the first frame, every entry of 1 MiB or more starts a
//! frame of its own, smaller entries share frames of about 1 MiB. A seek table at the
//! end lets readers start at any frame.
//!
//! Every entry is hashed again as it is written and compared with the index, so a
//! cache file damaged since it was fetched stops the build instead of producing a
//! bundle that fails verification on the other side of the gap.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::archive;
use crate::digest::{Hasher, Sha256Digest};
use crate::frames::FrameWriter;
use crate::index::{BundleIndex, EntryRecord};
use crate::{Error, INDEX_ENTRY, SIGNATURE_ENTRY};

/// Where an entry's bytes come from.
#[derive(Debug, Clone)]
pub enum EntrySource {
    /// A file on disk (streamed).
    File(PathBuf),
    /// Small generated content (layout `index.json`, `oci-layout`).
    Bytes(Vec<u8>),
}

/// Compression settings.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    /// zstd level (1-19; 3 by default: layers and RPMs are already compressed).
    pub level: i32,
    /// zstd worker threads (0: one per core).
    pub threads: u32,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            level: 3,
            threads: 0,
        }
    }
}

/// What was written.
#[derive(Debug, Clone)]
pub struct WriteSummary {
    /// The bundle.
    pub path: PathBuf,
    /// The `sha256sum -c` file beside it.
    pub checksum_path: PathBuf,
    /// SHA-256 of the compressed bundle.
    pub sha256: Sha256Digest,
    /// Compressed size.
    pub size: u64,
    /// zstd frames written.
    pub frames: usize,
    /// Whether the seek table was written (every frame below 4 GiB).
    pub seekable: bool,
}

/// Entries this large start a frame of their own; smaller ones share frames up to it.
const FRAME_CUT: u64 = 1 << 20;

/// Called with the number of entry bytes written so far.
pub type WriteProgress<'a> = &'a (dyn Fn(u64) + Sync);

/// Writes the bundle to `out` (via `out.partial`, renamed at the end) and
/// `out.sha256`. `sources[i]` supplies `index.entries[i]`.
pub fn write_bundle(
    out: &Path,
    index: &BundleIndex,
    signature: Option<&str>,
    sources: &[EntrySource],
    opts: WriteOptions,
    progress: WriteProgress<'_>,
) -> Result<WriteSummary, Error> {
    assert_eq!(
        sources.len(),
        index.entries.len(),
        "one source per index entry"
    );
    let partial = with_suffix(out, ".partial");
    let write_err = |source| Error::Write {
        path: partial.clone(),
        source,
    };
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|source| Error::Write {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let file = File::create(&partial).map_err(write_err)?;
    let threads = match opts.threads {
        0 => std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1),
        n => n,
    };
    let mut tar = FrameWriter::new(BufWriter::with_capacity(1 << 20, file), opts.level, threads)
        .map_err(write_err)?;

    let index_json = index.to_json();
    append(
        &mut tar,
        INDEX_ENTRY,
        index_json.len() as u64,
        &mut index_json.as_slice(),
    )
    .map_err(write_err)?;
    if let Some(sig) = signature {
        append(
            &mut tar,
            SIGNATURE_ENTRY,
            sig.len() as u64,
            &mut sig.as_bytes(),
        )
        .map_err(write_err)?;
    }
    tar.cut().map_err(write_err)?;
    let mut written = 0;
    for (record, source) in index.entries.iter().zip(sources) {
        if tar.frame_len() >= FRAME_CUT || record.size >= FRAME_CUT {
            tar.cut().map_err(write_err)?;
        }
        write_entry(&mut tar, record, source, &partial)?;
        written += record.size;
        progress(written);
    }
    tar.write_all(&[0; archive::END_OF_ARCHIVE as usize])
        .map_err(write_err)?;
    let written = tar.finish().map_err(write_err)?;
    let (sha256, size) = (written.sha256, written.size);
    let file = written
        .out
        .into_inner()
        .map_err(|e| write_err(e.into_error()))?;
    file.sync_all().map_err(write_err)?;
    fs::rename(&partial, out).map_err(|source| Error::Write {
        path: out.to_path_buf(),
        source,
    })?;

    let checksum_path = with_suffix(out, ".sha256");
    let file_name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    fs::write(&checksum_path, format!("{}  {file_name}\n", sha256.hex())).map_err(|source| {
        Error::Write {
            path: checksum_path.clone(),
            source,
        }
    })?;
    Ok(WriteSummary {
        path: out.to_path_buf(),
        checksum_path,
        sha256,
        size,
        frames: written.frames,
        seekable: written.seekable,
    })
}

fn write_entry<W: Write>(
    tar: &mut W,
    record: &EntryRecord,
    source: &EntrySource,
    partial: &Path,
) -> Result<(), Error> {
    let name = record.path.as_str();
    let (mut reader, origin): (Box<dyn Read>, PathBuf) = match source {
        EntrySource::Bytes(b) => (
            Box::new(io::Cursor::new(b.clone())),
            PathBuf::from("(generated)"),
        ),
        EntrySource::File(p) => {
            let f = File::open(p).map_err(|source| Error::Source {
                entry: name.into(),
                path: p.clone(),
                source,
            })?;
            (
                Box::new(io::BufReader::with_capacity(1 << 20, f)),
                p.clone(),
            )
        }
    };
    let mut checked = CheckedReader {
        inner: (&mut reader).take(record.size),
        hasher: Hasher::new(),
        remaining: record.size,
    };
    append(tar, name, record.size, &mut checked).map_err(|source| match source.kind() {
        io::ErrorKind::UnexpectedEof => Error::Source {
            entry: name.into(),
            path: origin.clone(),
            source,
        },
        _ => Error::Write {
            path: partial.to_path_buf(),
            source,
        },
    })?;
    let found = checked.hasher.finish();
    if found != record.sha256 {
        return Err(Error::DigestMismatch {
            entry: name.into(),
            expected: record.sha256.to_string(),
            found: found.to_string(),
        });
    }
    Ok(())
}

/// One entry in the bundle's tar form ([`archive::entry_headers`]): headers, exactly
/// `size` bytes of data (fewer is `UnexpectedEof`), zero padding.
fn append<W: Write>(tar: &mut W, name: &str, size: u64, data: &mut dyn Read) -> io::Result<()> {
    tar.write_all(&archive::entry_headers(name, size))?;
    let copied = io::copy(&mut data.take(size), tar)?;
    if copied != size {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("source ended after {copied} of {size} bytes"),
        ));
    }
    tar.write_all(&[0u8; archive::BLOCK as usize][..archive::padding(size)])
}

/// Hashes an entry's source as tar copies it, and fails with `UnexpectedEof` when the
/// source ends early: tar copies whatever the reader yields and would otherwise write
/// a header whose size disagrees with its data.
struct CheckedReader<R> {
    inner: R,
    hasher: Hasher,
    remaining: u64,
}

impl<R: Read> Read for CheckedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.remaining > 0 && !buf.is_empty() {
            let msg = format!(
                "source ended {} bytes before the size in the index",
                self.remaining
            );
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, msg));
        }
        self.remaining -= n as u64;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}
