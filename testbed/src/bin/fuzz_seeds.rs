//! Writes the `reader` fuzz target's seeds into `fuzz/seeds/reader/` (or the folder
//! given), replacing what is there: see `bundle_testbed::fuzz_seeds`.

use anyhow::Result;

fn main() -> Result<()> {
    let dir = match std::env::args_os().nth(1) {
        Some(d) => d.into(),
        None => bundle_testbed::fuzz_seeds::seeds_dir(),
    };
    let n = bundle_testbed::fuzz_seeds::write_seeds(&dir)?;
    println!("{n} seeds in {}", dir.display());
    Ok(())
}
