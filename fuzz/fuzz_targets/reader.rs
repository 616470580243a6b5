//! Fuzzes the bundle reader: every input goes through `verify`, `read_index`,
//! `scan_entries` and `read_entry` (see `fuzz/shared/reader.rs`, which the corpus
//! replay test `format/tests/fuzz_corpus.rs` shares).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

// The verdicts it returns are for the replay tests; the target only needs no panic.
#[allow(dead_code)]
#[path = "../shared/reader.rs"]
mod reader;

/// One scratch folder for the whole run; each input overwrites the same file.
fn scratch() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a scratch folder"))
}

fuzz_target!(|data: &[u8]| {
    reader::check(data, &scratch().path().join("input.tar.zst"));
});
