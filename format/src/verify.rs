//! Streaming verification: nothing extracted unless a sink asks for it, memory fixed
//! whatever the bundle's size.
//!
//! Order of checks: zstd magic, `bundle.json` first and bounded, its signature second
//! and valid for the trusted key, then each entry: safe path, regular file, expected
//! name in index order, declared size (a larger header is refused before reading),
//! SHA-256 while streaming. Finally, no listed entry may be missing.
//!
//! A bundle with a seek table ([`crate::frames`]) is verified by several threads, one
//! frame at a time each: every frame must decode to exactly the size the table gives,
//! its entries must follow each other in index order, and the frames' runs of entries
//! must tile the index. A bundle without one (one zstd frame) is read in one pass,
//! decompression on its own thread.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::digest::Hasher;
use crate::frames::{Frame, FrameTable};
use crate::index::{BundleIndex, EntryRecord, MAX_INDEX_SIZE};
use crate::path::EntryPath;
use crate::pipe::DecompressedReader;
use crate::sign::{PublicKey, SignatureInfo};
use crate::{Error, INDEX_ENTRY, SIGNATURE_ENTRY};

const MAX_SIGNATURE_SIZE: u64 = 64 * 1024;
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Who must have signed the bundle, and how many threads check it.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// The trusted public key. Without one, only `allow_unsigned` lets a bundle through.
    pub key: Option<PublicKey>,
    /// Accept a bundle without signature (or without a key to check it).
    pub allow_unsigned: bool,
    /// Threads for bundles with a seek table (0: one per core). Each decompresses and
    /// hashes whole frames, and calls the sink, on its own.
    pub threads: usize,
}

impl VerifyOptions {
    /// Require a signature by `key`.
    pub fn signed_by(key: PublicKey) -> Self {
        Self {
            key: Some(key),
            ..Self::default()
        }
    }

    fn thread_count(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
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
    /// zstd frames read in parallel (0: the bundle has no seek table and was read in
    /// one pass).
    pub frames: usize,
}

/// Where an entry starts in the archive, so it can be read again ([`read_entry`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryLocation {
    /// The zstd frame holding its header; `None` when the bundle has no seek table.
    pub frame: Option<usize>,
}

/// Receives entries as they stream by. `entry` sees the data before its hash is known;
/// `verified` is called once it matched the index. A sink that writes files should
/// write to a temporary name in `entry` and commit in `verified`.
///
/// A bundle with a seek table is verified by several threads: the sink is called from
/// all of them, for different entries at once, in no particular order.
pub trait EntrySink: Sync {
    /// The index, once its signature is checked and before any entry.
    fn index(
        &self,
        _index: &BundleIndex,
        _signature: Option<&SignatureInfo>,
    ) -> Result<(), BoxError> {
        Ok(())
    }
    /// An entry's data; reading is optional, what is left is hashed by the verifier.
    fn entry(&self, _record: &EntryRecord, _data: &mut dyn Read) -> Result<(), BoxError> {
        Ok(())
    }
    /// The entry's size and hash matched the index.
    fn verified(&self, _record: &EntryRecord, _at: EntryLocation) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Boxed error from an [`EntrySink`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A sink that only verifies.
pub struct CheckOnly;
impl EntrySink for CheckOnly {}

/// Opens `path` and checks the zstd magic.
fn open_file(path: &Path) -> Result<File, Error> {
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
    file.rewind().map_err(read_err)?;
    Ok(file)
}

/// The seek table of an opened bundle (a broken one makes the bundle corrupt); the
/// file is left at its start.
fn frame_table(file: &mut File) -> Result<Option<FrameTable>, Error> {
    let table = FrameTable::read(file).map_err(|e| Error::Corrupt {
        entry: None,
        source: io::Error::new(e.kind(), format!("seek table: {e}")),
    })?;
    file.rewind().map_err(corrupt(None))?;
    Ok(table)
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
    sink: &dyn EntrySink,
) -> Result<VerifyReport, Error> {
    let mut file = open_file(path)?;
    match frame_table(&mut file)? {
        Some(table) if table.frames.len() > 1 => verify_frames(path, &table, opts, sink),
        _ => verify_stream(path, file, opts, sink),
    }
}

/// The whole archive decompressed on a thread of its own.
fn decompress(path: &Path, file: File) -> Result<DecompressedReader, Error> {
    DecompressedReader::spawn(BufReader::with_capacity(1 << 20, file)).map_err(|source| {
        Error::Read {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// One pass over a bundle without seek table.
fn verify_stream(
    path: &Path,
    file: File,
    opts: &VerifyOptions,
    sink: &dyn EntrySink,
) -> Result<VerifyReport, Error> {
    let mut archive = tar::Archive::new(decompress(path, file)?);
    let (index, signature, run) = {
        let mut entries = archive.entries().map_err(corrupt(None))?;
        let head = read_head(&mut entries, opts, sink)?;
        let positions = head.index.positions();
        let check = RunChecker::new(&head.index, &positions, sink, None);
        let run = check
            .run(head.pending, &mut entries)
            .map_err(|stopped| stopped.error)?;
        (head.index, head.signature, run)
    };
    Tiling::new(&index).add(&run)?.finish()?;
    let mut rest = archive.into_inner();
    if !only_zeros(&mut rest).map_err(corrupt(None))? {
        return Err(after_the_end(None));
    }
    Ok(VerifyReport {
        entries: index.entries.len(),
        bytes: run.bytes,
        signature,
        index,
        frames: 0,
    })
}

/// Frame 0 (index and signature) first, then the other frames on `opts.threads`
/// threads; the earliest frame's error wins, as it would in one pass.
fn verify_frames(
    path: &Path,
    table: &FrameTable,
    opts: &VerifyOptions,
    sink: &dyn EntrySink,
) -> Result<VerifyReport, Error> {
    let mut first = FrameReader::open(path, table, 0)?;
    let (index, signature, run0) = {
        let mut archive = tar::Archive::new(&mut first);
        let mut entries = archive.entries().map_err(corrupt(None))?;
        let head = read_head(&mut entries, opts, sink)?;
        let positions = head.index.positions();
        let run0 =
            RunChecker::new(&head.index, &positions, sink, Some(0)).run(head.pending, &mut entries);
        (head.index, head.signature, run0)
    };
    let run0 = match run0 {
        Ok(run) => FrameOutcome {
            error: first.finish(false).err(),
            run,
        },
        Err(stopped) => stopped.into(),
    };

    // Frame 0's map lived inside its reader's borrow; the workers share this one.
    let positions = index.positions();
    // The earliest frame that failed so far: later frames stop, earlier ones finish, so
    // that the error reported is the one a single pass would have met first.
    let failed_at = AtomicUsize::new(usize::MAX);
    let next = AtomicUsize::new(1);
    let results: Vec<Mutex<Option<FrameOutcome>>> =
        (0..table.frames.len()).map(|_| Mutex::new(None)).collect();
    let threads = opts.thread_count().min(table.frames.len() - 1).max(1);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= table.frames.len() || k > failed_at.load(Ordering::Relaxed) {
                    return;
                }
                let check = RunChecker {
                    failed_at: Some(&failed_at),
                    ..RunChecker::new(&index, &positions, sink, Some(k))
                };
                let outcome = check_frame(path, table, k, &check);
                if outcome.error.is_some() {
                    failed_at.fetch_min(k, Ordering::Relaxed);
                }
                *results[k].lock().expect("not poisoned") = Some(outcome);
            });
        }
    });

    let mut tiles = Tiling::new(&index);
    let mut bytes = 0;
    let outcomes = results.into_iter().skip(1).map(|slot| {
        slot.into_inner()
            .expect("not poisoned")
            .expect("every frame before the first failure is read")
    });
    for outcome in std::iter::once(run0).chain(outcomes) {
        tiles = tiles.add(&outcome.run)?;
        bytes += outcome.run.bytes;
        if let Some(e) = outcome.error {
            return Err(e);
        }
    }
    tiles.finish()?;
    Ok(VerifyReport {
        entries: index.entries.len(),
        bytes,
        signature,
        index,
        frames: table.frames.len(),
    })
}

/// What one frame held: the run of entries checked, and the error that stopped it.
struct FrameOutcome {
    run: Run,
    error: Option<Error>,
}

impl From<Stopped> for FrameOutcome {
    fn from(stopped: Stopped) -> Self {
        Self {
            run: stopped.run,
            error: Some(stopped.error),
        }
    }
}

fn check_frame(
    path: &Path,
    table: &FrameTable,
    k: usize,
    check: &RunChecker<'_, '_>,
) -> FrameOutcome {
    let failed = |error| FrameOutcome {
        run: Run::default(),
        error: Some(error),
    };
    let mut reader = match FrameReader::open(path, table, k) {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    let run = {
        let mut archive = tar::Archive::new(&mut reader);
        match archive.entries() {
            Ok(mut entries) => check.run(None, &mut entries),
            Err(e) => return failed(corrupt(None)(e)),
        }
    };
    let abandoned = check
        .failed_at
        .is_some_and(|f| f.load(Ordering::Relaxed) < k);
    match run {
        // An earlier frame failed: its error is reported, the rest of this one unread.
        Ok(run) if abandoned => FrameOutcome { run, error: None },
        Ok(run) => FrameOutcome {
            error: reader.finish(k + 1 == table.frames.len()).err(),
            run,
        },
        Err(stopped) => stopped.into(),
    }
}

/// Decodes one frame, and checks it has exactly the sizes the seek table gives.
struct FrameReader {
    decoder: zstd::stream::read::Decoder<'static, BufReader<io::Take<File>>>,
    frame: Frame,
    number: usize,
    decoded: u64,
    /// The decoder reported the frame's end (tar stopped there, not at a zero block).
    at_end: bool,
}

/// Largest zstd window accepted in a frame, per thread: `bundle build` levels (up to
/// 19, no long mode) need 2^23; a forged frame must not make every thread reserve 2 GiB.
const FRAME_WINDOW_LOG_MAX: u32 = 24;

impl FrameReader {
    fn open(path: &Path, table: &FrameTable, number: usize) -> Result<Self, Error> {
        let frame = table.frames[number];
        let read_err = |source| Error::Read {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(read_err)?;
        file.seek(SeekFrom::Start(frame.offset)).map_err(read_err)?;
        let input = BufReader::with_capacity(256 * 1024, file.take(frame.compressed));
        let mut decoder = zstd::stream::read::Decoder::with_buffer(input)
            .map_err(read_err)?
            .single_frame();
        decoder
            .window_log_max(FRAME_WINDOW_LOG_MAX)
            .map_err(read_err)?;
        Ok(Self {
            decoder,
            frame,
            number,
            decoded: 0,
            at_end: false,
        })
    }

    /// Reads what tar left and compares sizes with the seek table. Only the `last`
    /// frame may end with an end-of-archive block, and nothing but zeros may follow
    /// it: tar would stop there, so entries hidden after it are refused, not skipped.
    fn finish(mut self, last: bool) -> Result<(), Error> {
        let stopped_at_end = self.at_end;
        let zeros = only_zeros(&mut self).map_err(corrupt(None))?;
        if !zeros || (!last && !stopped_at_end) {
            return Err(after_the_end(Some(self.number)));
        }
        let input = self.decoder.get_ref();
        let left = input.buffer().len() as u64 + input.get_ref().limit();
        if self.decoded != self.frame.decompressed || left != 0 {
            let msg = format!(
                "zstd frame {} at byte {} does not match the seek table ({} bytes decoded, {} expected; {} compressed bytes left)",
                self.number, self.frame.offset, self.decoded, self.frame.decompressed, left
            );
            return Err(corrupt(None)(io::Error::new(
                io::ErrorKind::InvalidData,
                msg,
            )));
        }
        Ok(())
    }
}

impl Read for FrameReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.decoder.read(buf)?;
        self.decoded += n as u64;
        self.at_end |= n == 0 && !buf.is_empty();
        Ok(n)
    }
}

/// Reads `r` to its end; whether every byte was zero (end-of-archive padding).
fn only_zeros(r: &mut impl Read) -> io::Result<bool> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut zeros = true;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(zeros),
            Ok(n) => zeros &= buf[..n].iter().all(|b| *b == 0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Data after an end-of-archive block: in zstd frame `frame`, or in the one stream.
fn after_the_end(frame: Option<usize>) -> Error {
    let place = match frame {
        Some(k) => format!("zstd frame {k} holds data after an end-of-archive block"),
        None => "the archive holds data after its end-of-archive block".into(),
    };
    corrupt(None)(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{place}; tar would not extract it"),
    ))
}

/// Index and signature, checked; `pending` is the first data entry when the bundle is
/// unsigned (it was read looking for the signature).
struct Head<'a, R: Read> {
    index: BundleIndex,
    signature: Option<SignatureInfo>,
    pending: Option<tar::Entry<'a, R>>,
}

fn read_head<'a, R: Read>(
    entries: &mut tar::Entries<'a, R>,
    opts: &VerifyOptions,
    sink: &dyn EntrySink,
) -> Result<Head<'a, R>, Error> {
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
    Ok(Head {
        index,
        signature,
        pending,
    })
}

/// A run of entries that follow each other in index order: `first..end`.
#[derive(Debug, Default)]
struct Run {
    first: Option<usize>,
    end: usize,
    bytes: u64,
}

/// Index position of every entry path.
type Positions<'i> = std::collections::HashMap<&'i str, usize>;

/// A run cut short by an error: the entries checked before it, and the error.
struct Stopped {
    run: Run,
    error: Error,
}

/// Checks one run of entries (the whole archive, or one frame).
struct RunChecker<'i, 's> {
    index: &'i BundleIndex,
    positions: &'s Positions<'i>,
    sink: &'s dyn EntrySink,
    frame: Option<usize>,
    /// The earliest failed frame (frames read in parallel): later frames stop.
    failed_at: Option<&'s AtomicUsize>,
}

impl<'i, 's> RunChecker<'i, 's> {
    fn new(
        index: &'i BundleIndex,
        positions: &'s Positions<'i>,
        sink: &'s dyn EntrySink,
        frame: Option<usize>,
    ) -> Self {
        Self {
            index,
            positions,
            sink,
            frame,
            failed_at: None,
        }
    }

    fn run<'a, R: Read>(
        &self,
        pending: Option<tar::Entry<'a, R>>,
        entries: &mut tar::Entries<'a, R>,
    ) -> Result<Run, Stopped> {
        let mut run = Run::default();
        for entry in pending.map(Ok).into_iter().chain(entries) {
            let failed_at = self.failed_at.map(|f| f.load(Ordering::Relaxed));
            if failed_at.zip(self.frame).is_some_and(|(f, k)| f < k) {
                break; // an earlier frame failed: its error is the one reported
            }
            if let Err(error) = self.check(entry, &mut run) {
                return Err(Stopped { run, error });
            }
        }
        Ok(run)
    }

    /// Checks one entry and extends `run` with it.
    fn check<R: Read>(
        &self,
        entry: io::Result<tar::Entry<'_, R>>,
        run: &mut Run,
    ) -> Result<(), Error> {
        let mut entry = entry.map_err(corrupt(None))?;
        let pos = self.position(&entry, run)?;
        // Where the run starts is known now, so that tiling sees it even if this entry
        // fails below: a single pass would report it out of order first.
        run.first.get_or_insert(pos);
        let record = &self.index.entries[pos];
        let size = entry
            .header()
            .size()
            .map_err(corrupt(Some(record.path.as_str())))?;
        if size != record.size {
            return Err(Error::SizeMismatch {
                entry: record.path.to_string(),
                expected: record.size,
                found: size,
            });
        }
        stream_entry(&mut entry, record, size, self.sink)?;
        let at = EntryLocation { frame: self.frame };
        self.sink
            .verified(record, at)
            .map_err(|source| Error::Consumer {
                entry: record.path.to_string(),
                source,
            })?;
        run.end = pos + 1;
        run.bytes += size;
        Ok(())
    }

    /// The entry's position in the index; it must come right after the run so far.
    fn position<R: Read>(&self, entry: &tar::Entry<'_, R>, run: &Run) -> Result<usize, Error> {
        let name = entry_name(entry);
        EntryPath::new(&name).map_err(|reason| Error::UnsafeEntry {
            entry: name.clone(),
            reason,
        })?;
        check_kind(entry, &name)?;
        if name == INDEX_ENTRY || name == SIGNATURE_ENTRY {
            return Err(Error::DuplicateEntry { entry: name });
        }
        let Some(&pos) = self.positions.get(name.as_str()) else {
            return Err(Error::UnknownEntry { entry: name });
        };
        match run.first {
            // Where a run starts is checked when runs are put together.
            None if self.frame.is_some() => Ok(pos),
            _ => in_order(self.index, run.end, pos, name),
        }
    }
}

/// `pos` must be `expected`: earlier means seen before, later means something missing
/// or moved.
fn in_order(
    index: &BundleIndex,
    expected: usize,
    pos: usize,
    name: String,
) -> Result<usize, Error> {
    if pos < expected {
        return Err(Error::DuplicateEntry { entry: name });
    }
    if pos > expected {
        return Err(Error::OutOfOrder {
            entry: name,
            expected: index.entries[expected].path.to_string(),
        });
    }
    Ok(pos)
}

/// Puts runs together in archive order; they must cover the index exactly.
struct Tiling<'i> {
    index: &'i BundleIndex,
    next: usize,
}

impl<'i> Tiling<'i> {
    fn new(index: &'i BundleIndex) -> Self {
        Self { index, next: 0 }
    }

    fn add(self, run: &Run) -> Result<Self, Error> {
        let Some(first) = run.first else {
            return Ok(self);
        };
        let name = self.index.entries[first].path.to_string();
        in_order(self.index, self.next, first, name)?;
        Ok(Self {
            index: self.index,
            next: run.end,
        })
    }

    fn finish(self) -> Result<(), Error> {
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
    sink: &dyn EntrySink,
) -> Result<(), Error> {
    let name = record.path.as_str();
    let mut reader = HashingReader::new(entry.take(size));
    let sunk = sink.entry(record, &mut reader);
    if let Some(e) = reader.error.take() {
        return Err(corrupt(Some(name))(e));
    }
    sunk.map_err(|source| Error::Consumer {
        entry: name.to_string(),
        source,
    })?;
    reader.finish(record)
}

/// Hashes what it reads; remembers a read error so a sink cannot hide it.
struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    error: Option<io::Error>,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Hasher::new(),
            error: None,
        }
    }

    /// Reads what is left and compares size and digest with `record`.
    fn finish(mut self, record: &EntryRecord) -> Result<(), Error> {
        let name = record.path.as_str();
        if let Some(e) = self.error.take() {
            return Err(corrupt(Some(name))(e));
        }
        io::copy(&mut self, &mut io::sink()).map_err(corrupt(Some(name)))?;
        if self.hasher.len() != record.size {
            let source = io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive ended inside the entry",
            );
            return Err(Error::Corrupt {
                entry: Some(name.to_string()),
                source,
            });
        }
        let found = self.hasher.finish();
        if found != record.sha256 {
            return Err(Error::DigestMismatch {
                entry: name.to_string(),
                expected: record.sha256.to_string(),
                found: found.to_string(),
            });
        }
        Ok(())
    }
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
    type Captured = (BundleIndex, Option<SignatureInfo>);
    struct Capture(Mutex<Option<Captured>>);
    impl EntrySink for Capture {
        fn index(
            &self,
            index: &BundleIndex,
            signature: Option<&SignatureInfo>,
        ) -> Result<(), BoxError> {
            *self.0.lock().expect("not poisoned") = Some((index.clone(), signature.cloned()));
            Err("only the index was asked for".into())
        }
    }
    let opts = VerifyOptions {
        key: key.cloned(),
        allow_unsigned: key.is_none(),
        threads: 1,
    };
    let capture = Capture(Mutex::new(None));
    match verify(path, &opts, &capture) {
        Err(Error::Consumer { entry, .. }) if entry == INDEX_ENTRY => {}
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    Ok(capture
        .0
        .into_inner()
        .expect("not poisoned")
        .expect("the index is captured before entries are read"))
}

/// Reads one entry again, from the frame `at` says (a verifying pass gave it), and hands
/// its data to `read`. The data is hashed on the way: when it no longer matches the
/// index, the result of `read` is dropped and the mismatch returned. Without a frame
/// (a bundle without seek table), the archive is read from the start up to the entry.
pub fn read_entry<T>(
    path: &Path,
    record: &EntryRecord,
    at: EntryLocation,
    read: impl FnOnce(&mut dyn Read) -> T,
) -> Result<T, Error> {
    let mut file = open_file(path)?;
    match (at.frame, frame_table(&mut file)?) {
        (Some(k), Some(table)) if k < table.frames.len() => {
            let mut reader = FrameReader::open(path, &table, k)?;
            find_and_read(tar::Archive::new(&mut reader), record, read)
        }
        _ => find_and_read(tar::Archive::new(decompress(path, file)?), record, read),
    }
}

fn find_and_read<R: Read, T>(
    mut archive: tar::Archive<R>,
    record: &EntryRecord,
    read: impl FnOnce(&mut dyn Read) -> T,
) -> Result<T, Error> {
    let name = record.path.as_str();
    for entry in archive.entries().map_err(corrupt(None))? {
        let entry = entry.map_err(corrupt(None))?;
        if entry_name(&entry) != name {
            continue;
        }
        let mut reader = HashingReader::new(entry.take(record.size));
        let value = read(&mut reader);
        reader.finish(record)?;
        return Ok(value);
    }
    Err(Error::MissingEntry {
        entry: name.to_string(),
    })
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
    fn entry(&self, record: &EntryRecord, data: &mut dyn Read) -> Result<(), BoxError> {
        let tmp = self.partial(record);
        if let Some(dir) = tmp.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut out = io::BufWriter::new(File::create(&tmp)?);
        io::copy(data, &mut out)?;
        io::Write::flush(&mut out)?;
        Ok(())
    }

    fn verified(&self, record: &EntryRecord, _at: EntryLocation) -> Result<(), BoxError> {
        std::fs::rename(self.partial(record), self.root.join(record.path.as_str()))?;
        Ok(())
    }
}
