//! The `reader` fuzz target's seeds (`bundle_testbed::fuzz_seeds`) through the fuzz
//! body itself: no reader panics or contradicts another, and each seed gets the verdict
//! its name gives.

#[path = "../../fuzz/shared/reader.rs"]
mod reader;

use bundle_testbed::fuzz_seeds::seeds;

#[test]
fn every_fuzz_seed_gets_the_verdict_its_name_gives() {
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("input.tar.zst");
    let seeds = seeds().unwrap();
    assert!(seeds.len() > 40, "{} seeds", seeds.len());
    for (name, data) in &seeds {
        let v = reader::check(data, &file);
        if name.starts_with("ok-signed-") {
            // At least the index's entries: the seed gets past the signature.
            assert!(v.signed.is_ok(), "{name}: {v:?}");
            assert_eq!(v.signed, v.unsigned, "{name}");
        } else if name.starts_with("ok-unsigned-") {
            assert!(v.signed.is_err() && v.unsigned.is_ok(), "{name}: {v:?}");
        } else {
            assert!(name.starts_with("bad-"), "{name}: no verdict in the name");
            assert!(v.signed.is_err() && v.unsigned.is_err(), "{name}: {v:?}");
        }
    }
    let signed_entries = seeds
        .iter()
        .filter(|(name, _)| name.starts_with("ok-signed-"))
        .map(|(_, data)| reader::check(data, &file).signed.unwrap())
        .max();
    assert!(signed_entries >= Some(5), "{signed_entries:?}");
}
