//! Streaming verification: one pass over the archive, nothing extracted unless a sink
//! asks for it, memory fixed whatever the bundle's size.
//!
//! Order of checks: zstd magic, `bundle.json` first and bounded, its signature second
//! and valid for the trusted key, then each entry in index order: safe path, regular
//! file, expected name, declared size (a larger header is refused before reading),
//! SHA-256 while streaming. Finally, no listed entry may be missing.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::digest::Hasher;
use crate::index::{BundleIndex, EntryRecord, MAX_INDEX_SIZE};
use crate::path::EntryPath;
use crate::pipe::DecompressedReader;
use crate::sign::{PublicKey, SignatureInfo};
use crate::{Error, INDEX_ENTRY, SIGNATURE_ENTRY};

const MAX_SIGNATURE_SIZE: u64 = 64 * 1024;
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Who must have signed the bundle.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// The trusted public key. Without one, only `allow_unsigned` lets a bundle through.
    pub key: Option<PublicKey>,
    /// Accept a bundle without signature (or without a key to check it).
    pub allow_unsigned: bool,
}

impl VerifyOptions {
    /// Require a signature by `key`.
    pub fn signed_by(key: PublicKey) -> Self {
        Self {
            key: Some(key),
            allow_unsigned: false,
        }
    }
}

/// The outcome of a successful verification.
#[derive(Debug)]
pub struct VerifyReport {
    /// The verified index.
    pub index: BundleIndex,
    /// The signature, when one was checked.
    pub signature: Option<SignatureInfo>,
    /// Entries checked (not counting index and signature).
    pub entries: usize,
    /// Bytes of entry data hashed.
    pub bytes: u64,
}

/// Receives entries as they stream by. `entry` sees the data before its hash is known;
/// `verified` is called once it matched the index. A sink that writes files should
/// write to a temporary name in `entry` and commit in `verified`.
pub trait EntrySink {
    /// The index, once its signature is checked and before any entry.
    fn index(
        &mut self,
        _index: &BundleIndex,
        _signature: Option<&SignatureInfo>,
    ) -> Result<(), BoxError> {
        Ok(())
    }
    /// An entry's data; reading is optional, what is left is hashed by the verifier.
    fn entry(&mut self, _record: &EntryRecord, _data: &mut dyn Read) -> Result<(), BoxError> {
        Ok(())
    }
    /// The entry's size and hash matched the index.
    fn verified(&mut self, _record: &EntryRecord) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Boxed error from an [`EntrySink`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A sink that only verifies.
pub struct CheckOnly;
impl EntrySink for CheckOnly {}

/// Opens `path`, checks the zstd magic and starts decompressing on a worker thread.
fn open(path: &Path) -> Result<DecompressedReader, Error> {
    let read_err = |source| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(read_err)?;
    let mut magic = [0u8; 4];
    match file.read_exact(&mut magic) {
        Ok(()) if magic == ZSTD_MAGIC => {}
        Ok(()) => {
            return Err(Error::NotZstd {
                path: path.to_path_buf(),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            return Err(Error::NotZstd {
                path: path.to_path_buf(),
            })
        }
        Err(e) => return Err(read_err(e)),
    }
    let file = std::io::Seek::rewind(&mut file)
        .map(|_| file)
        .map_err(read_err)?;
    DecompressedReader::spawn(BufReader::with_capacity(1 << 20, file)).map_err(read_err)
}

fn corrupt(entry: Option<&str>) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Corrupt {
        entry: entry.map(str::to_string),
        source,
    }
}

/// Verifies the bundle at `path`, handing entries to `sink` as they stream by.
pub fn verify(
    path: &Path,
    opts: &VerifyOptions,
    sink: &mut dyn EntrySink,
) -> Result<VerifyReport, Error> {
    let mut archive = tar::Archive::new(open(path)?);
    let mut entries = archive.entries().map_err(corrupt(None))?;

    let index_bytes = {
        let mut first = match entries.next() {
            None => return Err(Error::IndexMissing { found: None }),
            Some(e) => e.map_err(corrupt(None))?,
        };
        let name = entry_name(&first);
        if name != INDEX_ENTRY {
            return Err(Error::IndexMissing { found: Some(name) });
        }
        check_kind(&first, INDEX_ENTRY)?;
        let size = first.header().size().map_err(corrupt(Some(INDEX_ENTRY)))?;
        if size > MAX_INDEX_SIZE {
            return Err(Error::IndexTooLarge {
                size,
                max: MAX_INDEX_SIZE,
            });
        }
        let mut data = Vec::with_capacity(size as usize);
        first
            .read_to_end(&mut data)
            .map_err(corrupt(Some(INDEX_ENTRY)))?;
        data
    };

    // The second entry is the signature, or (unsigned bundles) the first data entry.
    let mut pending = entries.next().transpose().map_err(corrupt(None))?;
    let mut signature_text = None;
    if let Some(e) = pending
        .as_mut()
        .filter(|e| entry_name(e) == SIGNATURE_ENTRY)
    {
        check_kind(e, SIGNATURE_ENTRY)?;
        let mut text = String::new();
        e.take(MAX_SIGNATURE_SIZE)
            .read_to_string(&mut text)
            .map_err(corrupt(Some(SIGNATURE_ENTRY)))?;
        signature_text = Some(text);
        pending = None;
    }
    let signature = match (&opts.key, signature_text) {
        (Some(key), Some(text)) => Some(key.verify(&index_bytes, &text)?),
        (_, _) if opts.allow_unsigned => None,
        (Some(_), None) => return Err(Error::Unsigned),
        (None, _) => return Err(Error::Unsigned),
    };
    let index = BundleIndex::from_json(&index_bytes)?;
    sink.index(&index, signature.as_ref())
        .map_err(|source| Error::Consumer {
            entry: INDEX_ENTRY.into(),
            source,
        })?;

    let mut check = EntryChecker::new(&index);
    let mut bytes = 0;
    let first = pending.map(Ok);
    for entry in first.into_iter().chain(entries.by_ref()) {
        let mut entry = entry.map_err(corrupt(None))?;
        let record = check.next(&entry)?;
        let size = entry
            .header()
            .size()
            .map_err(corrupt(Some(record.path.as_str())))?;
        stream_entry(&mut entry, record, size, sink)?;
        bytes += size;
    }
    check.finish()?;
    Ok(VerifyReport {
        entries: index.entries.len(),
        bytes,
        signature,
        index,
    })
}

/// Tracks position in the index and classifies what is wrong with an entry.
struct EntryChecker<'i> {
    index: &'i BundleIndex,
    positions: std::collections::HashMap<&'i str, usize>,
    next: usize,
    seen: HashSet<String>,
}

impl<'i> EntryChecker<'i> {
    fn new(index: &'i BundleIndex) -> Self {
        Self {
            index,
            positions: index.positions(),
            next: 0,
            seen: HashSet::new(),
        }
    }

    fn next<R: Read>(&mut self, entry: &tar::Entry<'_, R>) -> Result<&'i EntryRecord, Error> {
        let name = entry_name(entry);
        EntryPath::new(&name).map_err(|reason| Error::UnsafeEntry {
            entry: name.clone(),
            reason,
        })?;
        check_kind(entry, &name)?;
        if !self.seen.insert(name.clone()) || name == INDEX_ENTRY || name == SIGNATURE_ENTRY {
            return Err(Error::DuplicateEntry { entry: name });
        }
        let Some(&pos) = self.positions.get(name.as_str()) else {
            return Err(Error::UnknownEntry { entry: name });
        };
        if pos != self.next {
            // Earlier positions were all seen (or this would be a duplicate), so the
            // entry came early: something before it is missing or it was moved.
            let expected = self.index.entries[self.next].path.to_string();
            return Err(Error::OutOfOrder {
                entry: name,
                expected,
            });
        }
        self.next += 1;
        let record = &self.index.entries[pos];
        let size = entry.header().size().map_err(corrupt(Some(&name)))?;
        if size != record.size {
            return Err(Error::SizeMismatch {
                entry: name,
                expected: record.size,
                found: size,
            });
        }
        Ok(record)
    }

    fn finish(&self) -> Result<(), Error> {
        match self.index.entries.get(self.next) {
            Some(missing) => Err(Error::MissingEntry {
                entry: missing.path.to_string(),
            }),
            None => Ok(()),
        }
    }
}

/// Hands the entry to the sink through a hashing reader, drains what the sink left,
/// and compares the digest.
fn stream_entry<R: Read>(
    entry: &mut R,
    record: &EntryRecord,
    size: u64,
    sink: &mut dyn EntrySink,
) -> Result<(), Error> {
    let name = record.path.as_str();
    let mut reader = HashingReader {
        inner: entry.take(size),
        hasher: Hasher::new(),
        error: None,
    };
    let sunk = sink.entry(record, &mut reader);
    if let Some(e) = reader.error.take() {
        return Err(corrupt(Some(name))(e));
    }
    sunk.map_err(|source| Error::Consumer {
        entry: name.to_string(),
        source,
    })?;
    io::copy(&mut reader, &mut io::sink()).map_err(corrupt(Some(name)))?;
    if reader.hasher.len() != size {
        let source = io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "archive ended inside the entry",
        );
        return Err(Error::Corrupt {
            entry: Some(name.to_string()),
            source,
        });
    }
    let found = reader.hasher.finish();
    if found != record.sha256 {
        return Err(Error::DigestMismatch {
            entry: name.to_string(),
            expected: record.sha256.to_string(),
            found: found.to_string(),
        });
    }
    sink.verified(record).map_err(|source| Error::Consumer {
        entry: name.to_string(),
        source,
    })
}

/// Hashes what it reads; remembers a read error so a sink cannot hide it.
struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    error: Option<io::Error>,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                Ok(n)
            }
            Err(e) => {
                let copy = io::Error::new(e.kind(), e.to_string());
                self.error = Some(e);
                Err(copy)
            }
        }
    }
}

fn entry_name<R: Read>(entry: &tar::Entry<'_, R>) -> String {
    String::from_utf8_lossy(&entry.path_bytes()).into_owned()
}

fn check_kind<R: Read>(entry: &tar::Entry<'_, R>, name: &str) -> Result<(), Error> {
    use tar::EntryType::*;
    let kind = match entry.header().entry_type() {
        Regular | Continuous => return Ok(()),
        Symlink => "symbolic link",
        Link => "hard link",
        Directory => "directory",
        Char => "character device",
        Block => "block device",
        Fifo => "fifo",
        _ => "special entry",
    };
    Err(Error::NotRegularFile {
        entry: name.to_string(),
        kind: kind.to_string(),
    })
}

/// Reads only `bundle.json` and its signature: what `bundle inspect` needs. Checks the
/// signature when a key is given; entries are not read.
pub fn read_index(
    path: &Path,
    key: Option<&PublicKey>,
) -> Result<(BundleIndex, Option<SignatureInfo>), Error> {
    struct Capture(Option<(BundleIndex, Option<SignatureInfo>)>);
    impl EntrySink for Capture {
        fn index(
            &mut self,
            index: &BundleIndex,
            signature: Option<&SignatureInfo>,
        ) -> Result<(), BoxError> {
            self.0 = Some((index.clone(), signature.cloned()));
            Err("only the index was asked for".into())
        }
    }
    let opts = VerifyOptions {
        key: key.cloned(),
        allow_unsigned: key.is_none(),
    };
    let mut capture = Capture(None);
    match verify(path, &opts, &mut capture) {
        Err(Error::Consumer { entry, .. }) if entry == INDEX_ENTRY => {}
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    Ok(capture
        .0
        .expect("the index is captured before entries are read"))
}

/// A sink that extracts verified entries under a directory: each entry is written to
/// `<path>.partial` and renamed into place once its hash matched.
pub struct ExtractSink {
    root: PathBuf,
}

impl ExtractSink {
    /// Extract under `root` (created when missing).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn partial(&self, record: &EntryRecord) -> PathBuf {
        self.root.join(format!("{}.partial", record.path))
    }
}

impl EntrySink for ExtractSink {
    fn entry(&mut self, record: &EntryRecord, data: &mut dyn Read) -> Result<(), BoxError> {
        let tmp = self.partial(record);
        if let Some(dir) = tmp.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut out = io::BufWriter::new(File::create(&tmp)?);
        io::copy(data, &mut out)?;
        io::Write::flush(&mut out)?;
        Ok(())
    }

    fn verified(&mut self, record: &EntryRecord) -> Result<(), BoxError> {
        std::fs::rename(self.partial(record), self.root.join(record.path.as_str()))?;
        Ok(())
    }
}
