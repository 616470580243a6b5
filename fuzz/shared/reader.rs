//! The body of the `reader` fuzz target, shared by the target
//! (`fuzz/fuzz_targets/reader.rs`) and the corpus replay test
//! (`format/tests/fuzz_corpus.rs`), so that every corpus file is a regression test under
//! plain `cargo test`.
//!
//! An input is a bundle file as it is (when it starts with the zstd magic), or else a
//! tar stream, which is compressed into one zstd frame first: mutations of the
//! compressed form mostly break zstd, mutations of the tar form reach the tar reader
//! and the index. Each input goes through every reader of `bundle-format`'s public API:
//! `verify` signed by the fuzz test key (`fuzz/keys/reader.pub`: seeds signed with it
//! get past the signature into entry parsing) and unsigned, on one thread and on two,
//! `read_index` with and without the key, `scan_entries`, and `read_entry` for entries
//! `verify` accepted. Besides "no panic", what the readers say must agree:
//! - a bundle accepted signed is accepted unsigned, with the same index and totals;
//! - one thread and two give the same verdict (the earliest frame's error wins);
//! - whatever `verify` accepts, `read_index` reads the same index from, `scan_entries`
//!   lists in index order with the index's sizes, and `read_entry` reads back.
//!
//! Work is bounded so that an input costs time in proportion to its size, not to what
//! it declares: an index declaring more than [`MAX_ENTRY_BYTES`] of entries is refused
//! by the sink (streaming gigabytes is the verifier's job, not a finding), and the scan
//! stops after as many bytes (besides the index, read as `verify` reads it).

use std::io::{self, Read};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Mutex;

use bundle_format::index::MAX_INDEX_SIZE;
use bundle_format::sign::{PublicKey, SignatureInfo};
use bundle_format::verify::{
    read_entry, read_index, scan_entries, verify, BoxError, EntryLocation, EntrySink,
    VerifyOptions, VerifyReport,
};
use bundle_format::{BundleIndex, EntryRecord, Error, INDEX_ENTRY, SIGNATURE_ENTRY};

/// The public half of the fuzz test key pair (`fuzz/keys/reader.key` signs the seeds).
pub const PUBLIC_KEY: &str = include_str!("../keys/reader.pub");

/// Entry bytes an input may declare before the sink refuses its index.
pub const MAX_ENTRY_BYTES: u64 = 16 << 20;

/// Entries read again with `read_entry` per input.
const MAX_READ_AGAIN: usize = 8;

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// What `verify` said of one input, signed by the fuzz key and unsigned.
#[derive(Debug)]
pub struct Verdicts {
    /// Signed by the fuzz test key: entries verified, or the error's whole chain.
    pub signed: Result<usize, String>,
    /// Unsigned allowed: entries verified, or the error's whole chain.
    pub unsigned: Result<usize, String>,
}

/// Runs every reader on `data`, written to `file` (a scratch path the caller owns), and
/// checks that they agree; panics when they do not.
pub fn check(data: &[u8], file: &Path) -> Verdicts {
    write_input(data, file);
    let key = PublicKey::decode(PUBLIC_KEY).expect("the fuzz test key parses");

    let signed = run_verify(file, Some(&key), 1);
    let unsigned = run_verify(file, None, 2);
    let unsigned_one_thread = run_verify(file, None, 1);
    assert_eq!(
        outcome(&unsigned.0),
        outcome(&unsigned_one_thread.0),
        "one thread and two disagree"
    );

    if let Ok(signed_report) = &signed.0 {
        let Ok(unsigned_report) = &unsigned.0 else {
            panic!("accepted signed but refused unsigned: {:?}", unsigned.0);
        };
        assert_eq!(signed_report.index, unsigned_report.index);
        assert_eq!(signed_report.entries, unsigned_report.entries);
        assert_eq!(signed_report.bytes, unsigned_report.bytes);
        assert!(
            signed_report.signature.is_some(),
            "accepted signed without a signature"
        );
        let (index, signature) = read_index(file, Some(&key))
            .unwrap_or_else(|e| panic!("verified signed, read_index refuses: {}", chain(&e)));
        assert_eq!(index, signed_report.index);
        assert!(signature.is_some());
    }
    let unsigned_index = read_index(file, None);
    if let Ok(report) = &unsigned.0 {
        match &unsigned_index {
            Ok((index, _)) => assert_eq!(index, &report.index),
            Err(e) => panic!("verified, read_index refuses: {}", chain(e)),
        }
        check_scan(file, report);
        check_read_again(file, &report.index, &unsigned.1);
    } else {
        // Whatever it says, it must say it without panicking.
        let _ = scan(file);
    }
    let _ = read_index(file, Some(&key));

    Verdicts {
        signed: outcome(&signed.0),
        unsigned: outcome(&unsigned.0),
    }
}

/// A bundle as it is; anything else is taken for a tar stream and compressed.
fn write_input(data: &[u8], file: &Path) {
    let bytes = if data.starts_with(&ZSTD_MAGIC) {
        data.to_vec()
    } else {
        zstd::stream::encode_all(data, 1).expect("compressing in memory")
    };
    std::fs::write(file, bytes).expect("writing the scratch file");
}

/// Verifies `file` with the fuzz key (or unsigned) on `threads` threads; also returns
/// where each verified entry was.
fn run_verify(
    file: &Path,
    key: Option<&PublicKey>,
    threads: usize,
) -> (
    Result<VerifyReport, Error>,
    Vec<(EntryRecord, EntryLocation)>,
) {
    let opts = VerifyOptions {
        key: key.cloned(),
        allow_unsigned: key.is_none(),
        threads,
    };
    let sink = Bounded::default();
    let result = verify(file, &opts, &sink);
    let mut seen = sink.verified.into_inner().expect("not poisoned");
    seen.sort_by_key(|(_, at)| at.frame);
    (result, seen)
}

/// Refuses indexes that declare more than [`MAX_ENTRY_BYTES`], reads each entry's data
/// itself, and remembers where verified entries were.
#[derive(Default)]
struct Bounded {
    verified: Mutex<Vec<(EntryRecord, EntryLocation)>>,
}

impl EntrySink for Bounded {
    fn index(&self, index: &BundleIndex, _: Option<&SignatureInfo>) -> Result<(), BoxError> {
        let declared = index
            .entries
            .iter()
            .try_fold(0u64, |sum, e| sum.checked_add(e.size));
        match declared {
            Some(n) if n <= MAX_ENTRY_BYTES => Ok(()),
            _ => Err("the index declares more entry bytes than the fuzz target reads".into()),
        }
    }

    fn entry(&self, _: &EntryRecord, data: &mut dyn Read) -> Result<(), BoxError> {
        // The first few KiB only: the verifier reads and hashes what a sink leaves.
        let mut buf = [0u8; 4096];
        let _ = data.read(&mut buf)?;
        Ok(())
    }

    fn verified(&self, record: &EntryRecord, at: EntryLocation) -> Result<(), BoxError> {
        self.verified
            .lock()
            .expect("not poisoned")
            .push((record.clone(), at));
        Ok(())
    }
}

/// Names and sizes `scan_entries` meets. The first entry (the index in a bundle) is
/// read up to [`MAX_INDEX_SIZE`], as `verify` reads it; the others up to
/// [`MAX_ENTRY_BYTES`] and a signature's 64 KiB in all.
fn scan(file: &Path) -> Result<Vec<(String, u64)>, Error> {
    let mut seen = Vec::new();
    let mut budget = MAX_ENTRY_BYTES + (64 << 10);
    scan_entries(file, |name, size, data| {
        let first = seen.is_empty();
        seen.push((name.to_string(), size));
        let limit = if first { MAX_INDEX_SIZE } else { budget };
        if size > limit {
            return Ok(ControlFlow::Break(()));
        }
        if !first {
            budget -= size;
        }
        let read = io::copy(data, &mut io::sink())?;
        assert_eq!(read, size, "scan_entries handed `{name}` with another size");
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(seen)
}

/// A verified bundle scans as index, signature (when signed), then the index's entries.
fn check_scan(file: &Path, report: &VerifyReport) {
    let seen = scan(file).unwrap_or_else(|e| panic!("verified, scan refuses: {}", chain(&e)));
    let mut names = seen.iter().map(|(n, _)| n.as_str());
    assert_eq!(names.next(), Some(INDEX_ENTRY));
    let entries: Vec<(String, u64)> = seen
        .iter()
        .skip(1)
        .filter(|(n, _)| n != SIGNATURE_ENTRY)
        .cloned()
        .collect();
    let expected: Vec<(String, u64)> = report
        .index
        .entries
        .iter()
        .map(|e| (e.path.to_string(), e.size))
        .collect();
    assert_eq!(entries, expected, "scan_entries lists other entries");
}

/// Entries `verify` accepted read back through `read_entry`, whole and unchanged.
fn check_read_again(file: &Path, index: &BundleIndex, seen: &[(EntryRecord, EntryLocation)]) {
    assert_eq!(seen.len(), index.entries.len(), "every entry verified once");
    for (record, at) in seen.iter().take(MAX_READ_AGAIN) {
        let read = read_entry(file, record, *at, |r| io::copy(r, &mut io::sink()))
            .unwrap_or_else(|e| panic!("verified, read_entry refuses: {}", chain(&e)));
        let n = read.unwrap_or_else(|e| panic!("verified, reading again fails: {e}"));
        assert_eq!(n, record.size, "`{}` read again", record.path);
    }
}

/// Entries verified, or the error with its causes.
fn outcome(r: &Result<VerifyReport, Error>) -> Result<usize, String> {
    r.as_ref().map(|report| report.entries).map_err(chain)
}

fn chain(e: &Error) -> String {
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}
