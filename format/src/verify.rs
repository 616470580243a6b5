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

use std::ops::ControlFlow;

use crate::archive::{EntryHeader, Next, TarReader};
use crate::digest::{Hasher, Sha256Digest};
use crate::frames::{Frame, FrameTable};
use crate::index::{BundleIndex, EntryRecord, MAX_INDEX_SIZE};
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
    /// SHA-256 of the index's bytes as signed: the bundle's identity, recorded with a
    /// release installed from it.
    pub index_sha256: Sha256Digest,
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

/// The seek table of an opened bundle (a broken one makes the bundle corrupt), after
/// the frames before it were walked ([`frames::check_structure`]); the file is left at
/// its start.
fn frame_table(file: &mut File) -> Result<Option<FrameTable>, Error> {
    let table = FrameTable::read(file).map_err(|e| Error::Corrupt {
        entry: None,
        source: io::Error::new(e.kind(), format!("seek table: {e}")),
    })?;
    let end = match table.as_ref().and_then(|t| t.frames.last()) {
        Some(last) => last.offset + last.compressed,
        None => file.metadata().map_err(corrupt(None))?.len(),
    };
    crate::frames::check_structure(file, end).map_err(corrupt(None))?;
    Ok(table)
}

fn corrupt(entry: Option<&str>) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Corrupt {
        entry: entry.map(str::to_string),
        source,
    }
}

fn invalid_data(msg: String) -> Error {
    corrupt(None)(io::Error::new(io::ErrorKind::InvalidData, msg))
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
    let mut tar = TarReader::new(decompress(path, file)?);
    let head = read_head(&mut tar, opts, sink)?;
    let positions = head.index.positions();
    let check = RunChecker::new(&head.index, &positions, sink, None);
    let (run, ending) = check
        .run(head.pending, &mut tar)
        .map_err(|stopped| stopped.error)?;
    Tiling::new(&head.index).add(&run)?.finish()?;
    match ending {
        Ending::EndOfArchive if tar.expect_eof()? => {}
        Ending::EndOfArchive | Ending::DataAfterEnd => return Err(after_the_end(None)),
        _ => return Err(no_end_marker()),
    }
    Ok(VerifyReport {
        entries: head.index.entries.len(),
        bytes: run.bytes,
        index_sha256: head.index_sha256,
        signature: head.signature,
        index: head.index,
        frames: 0,
    })
}

fn no_end_marker() -> Error {
    corrupt(None)(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the archive ends without its end-of-archive blocks: it was cut short",
    ))
}

/// Frame 0 (index and signature) first, then the other frames on `opts.threads`
/// threads; the earliest frame's error wins, as it would in one pass.
fn verify_frames(
    path: &Path,
    table: &FrameTable,
    opts: &VerifyOptions,
    sink: &dyn EntrySink,
) -> Result<VerifyReport, Error> {
    let mut first = TarReader::new(FrameReader::open(path, table, 0)?);
    let head = read_head(&mut first, opts, sink)?;
    let (index, signature, index_sha256) = (head.index, head.signature, head.index_sha256);
    let positions = index.positions();
    let run0 = RunChecker::new(&index, &positions, sink, Some(0)).run(head.pending, &mut first);
    let run0 = match run0 {
        Ok((run, ending)) => FrameOutcome {
            error: finish_frame(first, ending, false).err(),
            run,
        },
        Err(stopped) => stopped.into(),
    };

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
        index_sha256,
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
    let mut tar = match FrameReader::open(path, table, k) {
        Ok(r) => TarReader::new(r),
        Err(error) => {
            return FrameOutcome {
                run: Run::default(),
                error: Some(error),
            }
        }
    };
    match check.run(None, &mut tar) {
        // An earlier frame failed: its error is reported, the rest of this one unread.
        Ok((run, Ending::Abandoned)) => FrameOutcome { run, error: None },
        Ok((run, ending)) => FrameOutcome {
            error: finish_frame(tar, ending, k + 1 == table.frames.len()).err(),
            run,
        },
        Err(stopped) => stopped.into(),
    }
}

/// How a frame's tar ended, and what the seek table says of its sizes. Only the `last`
/// frame may hold the end-of-archive blocks, and nothing may follow them: tar would stop
/// there, so entries hidden after them are refused, not skipped.
fn finish_frame(mut tar: TarReader<FrameReader>, ending: Ending, last: bool) -> Result<(), Error> {
    let fits = match (&ending, last) {
        (Ending::EndOfArchive, true) => tar.expect_eof()?,
        (Ending::EndOfStream, false) => true,
        _ => false,
    };
    if !fits {
        return Err(match ending {
            Ending::EndOfStream => no_end_marker(),
            _ => after_the_end(Some(tar.into_inner().number)),
        });
    }
    tar.into_inner().finish()
}

/// Decodes one frame, and checks it has exactly the sizes the seek table gives; it
/// never decodes more than the table says.
struct FrameReader {
    decoder: zstd::stream::read::Decoder<'static, BufReader<io::Take<File>>>,
    frame: Frame,
    number: usize,
    decoded: u64,
}

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
            .window_log_max(crate::MAX_WINDOW_LOG)
            .map_err(read_err)?;
        Ok(Self {
            decoder,
            frame,
            number,
            decoded: 0,
        })
    }

    /// The frame must end where the table says, decoded and compressed.
    fn finish(mut self) -> Result<(), Error> {
        let mut probe = [0u8; 1];
        let more = self.read(&mut probe).map_err(corrupt(None))?;
        let input = self.decoder.get_ref();
        let left = input.buffer().len() as u64 + input.get_ref().limit();
        if more != 0 || self.decoded != self.frame.decompressed || left != 0 {
            return Err(invalid_data(format!(
                "zstd frame {} at byte {} does not match the seek table ({} bytes decoded, {} expected; {} compressed bytes left)",
                self.number, self.frame.offset, self.decoded, self.frame.decompressed, left
            )));
        }
        Ok(())
    }
}

impl Read for FrameReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let room = self.frame.decompressed - self.decoded;
        if room == 0 {
            // One byte more than the table allows is enough to know it lies.
            let mut probe = [0u8; 1];
            if !buf.is_empty() && self.decoder.read(&mut probe)? > 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "zstd frame {} decodes to more than the seek table's {} bytes",
                        self.number, self.frame.decompressed
                    ),
                ));
            }
            return Ok(0);
        }
        let n = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.decoder.read(&mut buf[..n])?;
        self.decoded += n as u64;
        Ok(n)
    }
}

/// Data after an end-of-archive block: in zstd frame `frame`, or in the one stream.
fn after_the_end(frame: Option<usize>) -> Error {
    let place = match frame {
        Some(k) => format!("zstd frame {k} holds data after an end-of-archive block"),
        None => "the archive holds data after its end-of-archive block".into(),
    };
    invalid_data(format!("{place}; tar would not extract it"))
}

/// Index and signature, checked; `pending` is what followed the index when the bundle
/// is unsigned (it was read looking for the signature).
struct Head {
    index: BundleIndex,
    signature: Option<SignatureInfo>,
    index_sha256: Sha256Digest,
    pending: Option<Next>,
}

fn read_head<R: Read>(
    tar: &mut TarReader<R>,
    opts: &VerifyOptions,
    sink: &dyn EntrySink,
) -> Result<Head, Error> {
    let index_bytes = {
        let first = match tar.next_entry()? {
            Next::Entry(h) => h,
            _ => return Err(Error::IndexMissing { found: None }),
        };
        if first.name != INDEX_ENTRY {
            return Err(Error::IndexMissing {
                found: Some(first.name),
            });
        }
        if first.size > MAX_INDEX_SIZE {
            return Err(Error::IndexTooLarge {
                size: first.size,
                max: MAX_INDEX_SIZE,
            });
        }
        let mut data = Vec::with_capacity(first.size as usize);
        tar.by_ref()
            .take(MAX_INDEX_SIZE)
            .read_to_end(&mut data)
            .map_err(corrupt(Some(INDEX_ENTRY)))?;
        data
    };

    // The second entry is the signature, or (unsigned bundles) the first data entry.
    let mut pending = Some(tar.next_entry()?);
    let mut signature_text = None;
    if let Some(Next::Entry(h)) = &pending {
        if h.name == SIGNATURE_ENTRY {
            // Refused before reading, as an oversized index is: the rest of a larger
            // one would be skipped unread, however large, signed or not.
            if h.size > MAX_SIGNATURE_SIZE {
                return Err(Error::SignatureMalformed {
                    detail: format!(
                        "it is {} bytes; a signature is a few hundred, at most {MAX_SIGNATURE_SIZE}",
                        h.size
                    ),
                });
            }
            let mut text = String::new();
            tar.by_ref()
                .read_to_string(&mut text)
                .map_err(corrupt(Some(SIGNATURE_ENTRY)))?;
            signature_text = Some(text);
            pending = None;
        }
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
        index_sha256: Sha256Digest::of(&index_bytes),
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

/// How a run's tar stream ended.
enum Ending {
    EndOfArchive,
    EndOfStream,
    /// A zero block, then data tar would never extract.
    DataAfterEnd,
    /// An earlier frame failed; this one was left unread.
    Abandoned,
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

    fn run<R: Read>(
        &self,
        pending: Option<Next>,
        tar: &mut TarReader<R>,
    ) -> Result<(Run, Ending), Stopped> {
        let mut run = Run::default();
        let mut pending = pending;
        loop {
            let failed_at = self.failed_at.map(|f| f.load(Ordering::Relaxed));
            if failed_at.zip(self.frame).is_some_and(|(f, k)| f < k) {
                return Ok((run, Ending::Abandoned));
            }
            let next = match pending.take().map_or_else(|| tar.next_entry(), Ok) {
                Ok(next) => next,
                Err(error) => return Err(Stopped { run, error }),
            };
            let header = match next {
                Next::Entry(h) => h,
                Next::EndOfArchive => return Ok((run, Ending::EndOfArchive)),
                Next::DataAfterEnd => return Ok((run, Ending::DataAfterEnd)),
                Next::EndOfStream => return Ok((run, Ending::EndOfStream)),
            };
            if let Err(error) = self.check(header, tar, &mut run) {
                return Err(Stopped { run, error });
            }
        }
    }

    /// Checks one entry and extends `run` with it.
    fn check<R: Read>(
        &self,
        header: EntryHeader,
        tar: &mut TarReader<R>,
        run: &mut Run,
    ) -> Result<(), Error> {
        let pos = self.position(header.name, run)?;
        // Where the run starts is known now, so that tiling sees it even if this entry
        // fails below: a single pass would report it out of order first.
        run.first.get_or_insert(pos);
        let record = &self.index.entries[pos];
        if header.size != record.size {
            return Err(Error::SizeMismatch {
                entry: record.path.to_string(),
                expected: record.size,
                found: header.size,
            });
        }
        stream_entry(tar, record, record.size, self.sink)?;
        let at = EntryLocation { frame: self.frame };
        self.sink
            .verified(record, at)
            .map_err(|source| Error::Consumer {
                entry: record.path.to_string(),
                source,
            })?;
        run.end = pos + 1;
        run.bytes += record.size;
        Ok(())
    }

    /// The entry's position in the index; it must come right after the run so far.
    fn position(&self, name: String, run: &Run) -> Result<usize, Error> {
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

/// Reads only `bundle.json` and its signature: what `bundle inspect` needs. Checks the
/// signature when a key is given; entries are not read.
///
/// The head is read the way [`verify`] reads it (frame 0 when there is a seek table,
/// the whole stream otherwise), and the reading stops there.
pub fn read_index(
    path: &Path,
    key: Option<&PublicKey>,
) -> Result<(BundleIndex, Option<SignatureInfo>), Error> {
    let opts = VerifyOptions {
        key: key.cloned(),
        allow_unsigned: key.is_none(),
        threads: 1,
    };
    let mut file = open_file(path)?;
    let head = match frame_table(&mut file)? {
        Some(table) if table.frames.len() > 1 => {
            let frame = FrameReader::open(path, &table, 0)?;
            read_head(&mut TarReader::new(frame), &opts, &CheckOnly)?
        }
        _ => read_head(
            &mut TarReader::new(decompress(path, file)?),
            &opts,
            &CheckOnly,
        )?,
    };
    Ok((head.index, head.signature))
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
            let reader = FrameReader::open(path, &table, k)?;
            find_and_read(TarReader::new(reader), record, read)
        }
        _ => find_and_read(TarReader::new(decompress(path, file)?), record, read),
    }
}

fn find_and_read<R: Read, T>(
    mut tar: TarReader<R>,
    record: &EntryRecord,
    read: impl FnOnce(&mut dyn Read) -> T,
) -> Result<T, Error> {
    let name = record.path.as_str();
    while let Next::Entry(header) = tar.next_entry()? {
        if header.name != name {
            continue;
        }
        let mut reader = HashingReader::new((&mut tar).take(record.size));
        let value = read(&mut reader);
        reader.finish(record)?;
        return Ok(value);
    }
    Err(Error::MissingEntry {
        entry: name.to_string(),
    })
}

/// Reads a bundle's entries in archive order through the strict reader, handing each
/// one's name, size and data (exactly its size) to `visit` until it breaks or the
/// archive ends. Nothing is hashed here: what `visit` uses it must check against the
/// index itself. For readers that need a few small entries before a full verifying
/// pass, such as push's manifest scan.
pub fn scan_entries(
    path: &Path,
    mut visit: impl FnMut(&str, u64, &mut dyn Read) -> io::Result<ControlFlow<()>>,
) -> Result<(), Error> {
    let mut file = open_file(path)?;
    frame_table(&mut file)?;
    let mut tar = TarReader::new(decompress(path, file)?);
    while let Next::Entry(header) = tar.next_entry()? {
        let flow = visit(&header.name, header.size, &mut tar)
            .map_err(|e| corrupt(Some(&header.name))(e))?;
        if flow.is_break() {
            break;
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::index::SCHEMA_VERSION;
    use crate::write::{write_bundle, EntrySource, WriteOptions};
    use crate::{EntryPath, Sha256Digest};

    fn unsigned_bundle(dir: &Path) -> (PathBuf, BundleIndex) {
        let data = b"kind: ConfigMap\n".to_vec();
        let index = BundleIndex {
            schema_version: SCHEMA_VERSION,
            name: "n".into(),
            version: "1".into(),
            created: "2026-01-01T00:00:00Z".into(),
            generator: "test".into(),
            kubernetes_version: None,
            cni: None,
            entries: vec![EntryRecord {
                path: EntryPath::new("files/c.yaml").unwrap(),
                size: data.len() as u64,
                sha256: Sha256Digest::of(&data),
            }],
            images: vec![],
            files: vec![],
            rpms: vec![],
        };
        let path = dir.join("b.tar.zst");
        let sources = [EntrySource::Bytes(data)];
        write_bundle(
            &path,
            &index,
            None,
            &sources,
            WriteOptions::default(),
            &|_| {},
        )
        .unwrap();
        (path, index)
    }

    /// A signature entry of 64 MiB (zeros, a few KiB compressed) was read for its first
    /// 64 KiB and the rest skipped, decompressing all of it; with unsigned bundles
    /// allowed nothing else looked at it either. Its size refuses it now, unread.
    #[test]
    fn an_oversized_signature_entry_is_refused_by_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let (_, index) = unsigned_bundle(dir.path());
        let json = index.to_json();
        let size = 64 << 20;
        let path = dir.path().join("signature-bomb.tar.zst");
        let mut zst = zstd::stream::write::Encoder::new(File::create(&path).unwrap(), 1).unwrap();
        let mut add = |name: &str, size: u64, data: &mut dyn Read| {
            zst.write_all(&crate::archive::entry_headers(name, size))
                .unwrap();
            io::copy(data, &mut zst).unwrap();
            let pad = crate::archive::padding(size);
            zst.write_all(&vec![0; pad]).unwrap();
        };
        add(INDEX_ENTRY, json.len() as u64, &mut json.as_slice());
        add(SIGNATURE_ENTRY, size, &mut io::repeat(0).take(size));
        zst.write_all(&[0; crate::archive::END_OF_ARCHIVE as usize])
            .unwrap();
        zst.finish().unwrap();

        let opts = VerifyOptions {
            allow_unsigned: true,
            ..VerifyOptions::default()
        };
        match verify(&path, &opts, &CheckOnly) {
            Err(Error::SignatureMalformed { detail }) => {
                assert!(detail.contains("67108864 bytes"), "{detail}")
            }
            other => panic!("expected the signature refused, got {other:?}"),
        }
    }

    /// `read_index` once took the index from a sink that `verify` was trusted to call
    /// first, and ended in an `expect`; it reads the head itself now.
    #[test]
    fn read_index_reads_the_head_of_every_cut_or_errs_without_panicking() {
        let dir = tempfile::tempdir().unwrap();
        let (path, index) = unsigned_bundle(dir.path());
        let (read, signature) = read_index(&path, None).unwrap();
        assert_eq!(read, index);
        assert!(signature.is_none());

        let bytes = std::fs::read(&path).unwrap();
        let cut = dir.path().join("cut.tar.zst");
        for len in (0..bytes.len()).step_by(5) {
            std::fs::write(&cut, &bytes[..len]).unwrap();
            // Cut after the head's frame, the index is still whole: only the head is read.
            if let Ok((read, _)) = read_index(&cut, None) {
                assert_eq!(read, index, "cut at byte {len}");
            }
        }
    }
}
