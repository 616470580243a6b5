//! Shared pieces of the benchmarks: running a command under `/usr/bin/time -v` for wall
//! time and peak RSS, finding the release binary, printing comparison rows.

pub mod site;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use bundle_testbed::fixtures::images::{self, Layer, TestImage};

/// Wall time and peak resident memory of one command (children included).
#[derive(Debug, Clone, Copy, Default)]
pub struct Measure {
    /// Seconds.
    pub wall: f64,
    /// Peak RSS in KiB.
    pub peak_kib: u64,
}

impl Measure {
    /// Sequential steps: times add, memory is the largest.
    pub fn then(self, other: Measure) -> Measure {
        Measure {
            wall: self.wall + other.wall,
            peak_kib: self.peak_kib.max(other.peak_kib),
        }
    }
}

/// One command's cost and outcome, as `/usr/bin/time -v` reports it.
#[derive(Debug, Clone)]
pub struct Timed {
    /// Wall time and peak RSS.
    pub measure: Measure,
    /// CPU seconds, user + sys.
    pub cpu: f64,
    /// Exit status.
    pub code: i32,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

/// Runs `sh -c script` in `dir` under `/usr/bin/time -v`, whatever its exit status.
pub fn time(dir: &Path, script: &str) -> anyhow::Result<Timed> {
    let report = dir.join(".time-report");
    // Dirty pages left by the previous step (a registry's gigabyte, say) would be
    // written back during this one and charged to it: flush them first.
    Command::new("sync").status().context("running sync")?;
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg("-o")
        .arg(&report)
        .args(["sh", "-c", script])
        .current_dir(dir)
        .output()
        .context("running /usr/bin/time (Debian package `time`)")?;
    let wall = start.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&report)?;
    let field = |name: &str| -> anyhow::Result<&str> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(str::trim)
            .with_context(|| format!("no `{name}` in /usr/bin/time output"))
    };
    let user: f64 = field("User time (seconds): ")?.parse()?;
    let sys: f64 = field("System time (seconds): ")?.parse()?;
    let peak_kib = field("Maximum resident set size (kbytes): ")?.parse()?;
    Ok(Timed {
        measure: Measure { wall, peak_kib },
        cpu: user + sys,
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Runs `sh -c script` in `dir` under `/usr/bin/time -v`; fails when it fails.
pub fn measure(dir: &Path, script: &str) -> anyhow::Result<Measure> {
    let timed = time(dir, script)?;
    if timed.code != 0 {
        bail!("`{script}` failed:\n{}{}", timed.stdout, timed.stderr);
    }
    Ok(timed.measure)
}

/// The release `bundle` binary beside this benchmark's own executable.
pub fn bundle_binary() -> anyhow::Result<PathBuf> {
    let p = std::env::current_exe()?.with_file_name("bundle");
    if !p.exists() {
        bail!(
            "`{}` not found: run `cargo build --release` first",
            p.display()
        );
    }
    Ok(p)
}

/// Prints one comparison row.
pub fn row(what: &str, ours: Measure, theirs: Measure, target: &str) {
    println!(
        "| {what} | {:.2} s | {:.2} s | {:.2}× | {} MiB | {} MiB | {target} |",
        ours.wall,
        theirs.wall,
        ours.wall / theirs.wall,
        ours.peak_kib / 1024,
        theirs.peak_kib / 1024
    );
}

/// The table header matching [`row`].
pub fn header(ours: &str, theirs: &str) {
    println!("| step | {ours} | {theirs} | ratio | {ours} peak RSS | {theirs} peak RSS | target |");
    println!("|---|---|---|---|---|---|---|");
}

/// Images in the synthetic upstream of the image benchmarks.
pub const IMAGES: u64 = 12;

/// A fresh registry seeded with [`IMAGES`] images totalling `size_mib` MiB of layers:
/// one base layer (1/8 of the data) shared by all, two own layers each, incompressible
/// data like real gzip layers.
pub fn image_upstream(
    size_mib: u64,
    work: &Path,
) -> anyhow::Result<(bundle_testbed::Registry, Vec<TestImage>)> {
    let registry = bundle_testbed::Registry::start()?;
    let total = size_mib << 20;
    let base = Layer {
        seed: 7,
        size: (total / 8) as usize,
    };
    let own = (total - total / 8) / IMAGES / 2;
    let list: Vec<TestImage> = (0..IMAGES)
        .map(|i| {
            TestImage::new(
                &format!("bench{i}"),
                "v1",
                &[
                    base,
                    Layer {
                        seed: 100 + 2 * i,
                        size: own as usize,
                    },
                    Layer {
                        seed: 101 + 2 * i,
                        size: own as usize,
                    },
                ],
            )
        })
        .collect();
    for image in &list {
        images::seed(&registry.addr, image, &work.join("seed"))?;
    }
    std::fs::remove_dir_all(work.join("seed"))?;
    Ok((registry, list))
}

/// Writes `m.yaml` in `work`, a bundle manifest pinning every image of `list` at the
/// upstream `addr` (linux/amd64), and a key pair `k.key`/`k.pub` to sign with: what
/// the image benchmarks build from.
pub fn image_manifest(
    work: &Path,
    size_mib: u64,
    addr: &str,
    list: &[TestImage],
) -> anyhow::Result<()> {
    let refs: String = list
        .iter()
        .map(|i| format!("    - {addr}/{}:{}\n", i.repository, i.tag))
        .collect();
    std::fs::write(
        work.join("m.yaml"),
        format!("apiVersion: bundle/v1alpha1\nkind: BundleManifest\nmetadata: {{name: bench, version: '{size_mib}'}}\nspec:\n  platforms: [linux/amd64]\n  images:\n{refs}"),
    )?;
    measure(
        work,
        &format!(
            "{} keygen --unencrypted --output k",
            bundle_binary()?.display()
        ),
    )?;
    Ok(())
}
