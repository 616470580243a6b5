//! Replays the `reader` fuzz target's corpus (`fuzz/corpus/reader/`, minimized, what
//! the fuzzer found) through the fuzz body (`fuzz/shared/reader.rs`), so that every
//! input it kept is a regression test without nightly or cargo fuzz. The body panics
//! when a reader panics or two readers disagree.

#[path = "../../fuzz/shared/reader.rs"]
mod reader;

use std::path::Path;

#[test]
fn every_fuzz_corpus_input_replays_without_a_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/reader");
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading `{}`: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "`{}` holds no input", dir.display());

    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("input.tar.zst");
    let (mut signed, mut unsigned) = (0, 0);
    for input in &inputs {
        let data = std::fs::read(input).unwrap();
        let verdicts = std::panic::catch_unwind(|| reader::check(&data, &file))
            .unwrap_or_else(|_| panic!("`{}` makes the fuzz body panic", input.display()));
        signed += usize::from(verdicts.signed.is_ok());
        unsigned += usize::from(verdicts.unsigned.is_ok());
    }
    // The corpus reaches past the signature into entry parsing, and past the index
    // when unsigned bundles are allowed.
    assert!(signed > 0, "no input of {} verifies signed", inputs.len());
    assert!(
        unsigned >= signed,
        "{unsigned} verify unsigned, {signed} signed"
    );
}
