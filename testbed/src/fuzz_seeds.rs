//! Seeds for the `reader` fuzz target (`fuzz/`): small genuine bundles as `bundle build`
//! writes them, signed with the fuzz test key (`fuzz/keys/reader.key`, committed and not
//! secret) or unsigned, in both layouts and as a bare tar stream, and the hostile
//! bundles of [`crate::crafted`] made from them.
//!
//! Written by `cargo run -p bundle-testbed --bin fuzz_seeds` into `fuzz/seeds/reader/`
//! (not committed: `scripts/fuzz` makes them before each run). Contents, dates and zstd
//! settings are fixed, so every seed is the same on every run except for the signature
//! bytes (minisign signs with random noise).
//!
//! A seed's name says what `verify` must say of it (`testbed/tests/fuzz_seeds.rs`
//! checks): `ok-signed-…` verifies signed by the fuzz key, `ok-unsigned-…` only with
//! unsigned bundles allowed, `bad-…` not at all. `.tar` seeds are the tar stream alone,
//! which the fuzz target compresses itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bundle_format::index::{BundleIndex, EntryRecord, FileRecord, ImageRecord, SCHEMA_VERSION};
use bundle_format::sign::{KeyPassword, SecretKey};
use bundle_format::write::{write_bundle, EntrySource, WriteOptions};
use bundle_format::{EntryPath, Sha256Digest};

use crate::crafted::{Archive, Layout, Skippable, ESCAPE_NAME};

/// Where `scripts/fuzz` and cargo fuzz look for the seeds.
pub fn seeds_dir() -> PathBuf {
    workspace().join("fuzz/seeds/reader")
}

/// The fuzz test key's secret half (unencrypted; it signs seeds and nothing else).
pub fn secret_key() -> PathBuf {
    workspace().join("fuzz/keys/reader.key")
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testbed sits in the workspace")
        .to_path_buf()
}

const CALICO: &[u8] =
    b"# calico for the fuzz seeds\nkind: DaemonSet\nimage: docker.io/calico/node:v3.26.4\n";
const EXTRA_DOC: &[u8] = b"---\nkind: ClusterRoleBinding\nmetadata: {name: evil}\n";
/// Largest bare tar seed.
const MAX_TAR_SEED: usize = 64 << 10;
const LONG_RPM: &str = "rpms/el9-x86_64/Packages/kubernetes-cni-1.3.0-150500.1.1.x86_64-built-for-an-air-gapped-site-with-a-long-release-tag.rpm";

/// Every seed by file name, in memory.
pub fn seeds() -> Result<BTreeMap<String, Vec<u8>>> {
    let scratch = tempfile::tempdir()?;
    let mut out = BTreeMap::new();
    let key = secret_key();
    let signer = SecretKey::from_file(&key, KeyPassword::None)
        .with_context(|| format!("reading the fuzz test key `{}`", key.display()))?;

    // Genuine bundles, as `bundle build` writes them.
    let big = genuine(true);
    let small = genuine(false);
    let empty = Genuine {
        index: index(vec![], vec![], vec![]),
        sources: vec![],
    };
    for (name, g, signed) in [
        ("ok-signed-framed", &big, true),
        ("ok-unsigned-framed", &big, false),
        ("ok-signed-small-framed", &small, true),
        ("ok-unsigned-small-framed", &small, false),
        ("ok-signed-empty-framed", &empty, true),
    ] {
        let path = scratch.path().join(name);
        g.write(&path, signed.then_some(&signer))?;
        out.insert(format!("{name}.tar.zst"), std::fs::read(&path)?);
    }

    // The small signed bundle, taken apart, in both layouts and as bare tar.
    let genuine_path = scratch.path().join("ok-signed-small-framed");
    let archive = Archive::read(&genuine_path)?;
    let mut unsigned = archive.clone();
    unsigned
        .members
        .remove(unsigned.position("bundle.json.minisig"));
    let mut tampered = archive.clone();
    tampered.set_data("bundle.json", {
        let mut index = archive.index();
        index.version = "2".into();
        index.to_json()
    });

    let mut variants: Vec<(&str, Archive)> = vec![
        ("ok-signed-small", archive.clone()),
        ("ok-unsigned-small", unsigned),
        ("ok-unsigned-tampered-index", tampered),
    ];
    let attack = |edit: &dyn Fn(&mut Archive)| {
        let mut a = archive.clone();
        edit(&mut a);
        a
    };
    variants.extend([
        (
            "bad-pax-size-longer",
            attack(&|a| a.pax_size_longer("files/calico.yaml", EXTRA_DOC)),
        ),
        (
            "bad-swap-by-pax-paths",
            attack(&|a| a.swap_by_pax_paths("files/a.txt", "files/calico.yaml")),
        ),
        (
            "bad-swap-by-long-name-and-pax-path",
            attack(&|a| a.swap_by_long_name_and_pax_path("files/a.txt", "files/calico.yaml")),
        ),
        (
            "bad-ustar-prefix",
            attack(&|a| a.ustar_prefix("files/calico.yaml", "rpms/el9-x86_64")),
        ),
        (
            "bad-pax-size-index-bomb",
            attack(&|a| a.pax_size_index_bomb(1 << 20)),
        ),
        (
            "bad-pax-global-header",
            attack(&|a| a.pax_global_header("files/a.txt", "crafted")),
        ),
        (
            "bad-mode-6777",
            attack(&|a| a.set_mode("files/c.yaml", 0o6777)),
        ),
        (
            "bad-owner-1000",
            attack(&|a| a.set_owner("files/c.yaml", 1000, 1000)),
        ),
        (
            "bad-escape-name",
            attack(&|a| a.insert_member(2, ESCAPE_NAME.as_bytes(), b"x")),
        ),
        (
            "bad-files-record-resigned",
            attack(&|a| {
                a.resign_index(&key, |index| {
                    index.files[0].sha256 = Sha256Digest::of(b"another calico");
                })
            }),
        ),
        (
            "bad-blob-digest-resigned",
            attack(&|a| {
                let blob = a.index().entries[0].path.to_string();
                a.replace_entry_resigned(&blob, b"{\"layer\": \"swapped\"}\n".to_vec(), &key)
            }),
        ),
        (
            "bad-missing-entry-resigned",
            attack(&|a| {
                a.resign_index(&key, |index| {
                    index.entries.push(EntryRecord {
                        path: EntryPath::new("files/never-written").expect("a safe path"),
                        size: 3,
                        sha256: Sha256Digest::of(b"abc"),
                    })
                })
            }),
        ),
        (
            "bad-entry-data-changed",
            attack(&|a| a.member_mut("files/c.yaml").data[0] ^= 1),
        ),
    ]);
    for (name, a) in &variants {
        for layout in Layout::BOTH {
            let path = scratch
                .path()
                .join(format!("{name}-{}", layout_name(layout)));
            a.write(layout, &path)?;
            out.insert(
                format!("{name}-{}.tar.zst", layout_name(layout)),
                std::fs::read(&path)?,
            );
        }
        let tar = a.tar_bytes();
        // Not the index bomb's megabyte of zeros: compressed, it is a few hundred bytes.
        if tar.len() <= MAX_TAR_SEED {
            out.insert(format!("{name}.tar"), tar);
        }
    }

    // zstd-level attacks on the genuine small bundle.
    for layout in Layout::BOTH {
        let l = layout_name(layout);
        let path = scratch.path().join(format!("window-{l}"));
        archive.write_with_window_log(layout, "files/calico.yaml", 31, &path)?;
        out.insert(
            format!("bad-window-log-31-{l}.tar.zst"),
            std::fs::read(&path)?,
        );
        let path = scratch.path().join(format!("more-{l}"));
        archive.write_decoding_more(layout, 1 << 20, &path)?;
        out.insert(
            format!("bad-decoding-more-{l}.tar.zst"),
            std::fs::read(&path)?,
        );
    }
    for (place, what) in [
        (Skippable::NoTable, "no-table"),
        (Skippable::Listed, "listed"),
        (Skippable::Hidden, "hidden"),
    ] {
        let path = scratch.path().join(format!("skippable-{what}"));
        archive.write_with_skippable(place, b"#!/bin/sh\necho crafted\n", &path)?;
        out.insert(
            format!("bad-skippable-{what}.tar.zst"),
            std::fs::read(&path)?,
        );
    }
    let whole = &out["ok-signed-small-framed.tar.zst"];
    out.insert(
        "bad-truncated-framed.tar.zst".into(),
        whole[..whole.len() / 2].to_vec(),
    );
    Ok(out)
}

fn layout_name(layout: Layout) -> &'static str {
    match layout {
        Layout::OneFrame => "one-frame",
        Layout::Framed => "framed",
    }
}

/// Writes every seed into `dir` (made when missing), removing seeds no longer made.
pub fn write_seeds(dir: &Path) -> Result<usize> {
    let seeds = seeds()?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating `{}`", dir.display()))?;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !seeds.contains_key(name) {
            std::fs::remove_file(&path)
                .with_context(|| format!("removing `{}`", path.display()))?;
        }
    }
    for (name, data) in &seeds {
        let path = dir.join(name);
        std::fs::write(&path, data).with_context(|| format!("writing `{}`", path.display()))?;
    }
    Ok(seeds.len())
}

/// An index and its entries' contents.
struct Genuine {
    index: BundleIndex,
    sources: Vec<EntrySource>,
}

impl Genuine {
    fn write(&self, out: &Path, signer: Option<&SecretKey>) -> Result<()> {
        let signature = signer
            .map(|k| k.sign(&self.index.to_json(), "fuzz seed"))
            .transpose()?;
        let opts = WriteOptions {
            level: 3,
            threads: 1,
        };
        write_bundle(
            out,
            &self.index,
            signature.as_deref(),
            &self.sources,
            opts,
            &|_| {},
        )?;
        Ok(())
    }
}

/// A blob, three files, a long-named RPM, and with `big` a 1.25 MiB file (compressible,
/// so the seed stays small) that gets a zstd frame of its own.
fn genuine(big: bool) -> Genuine {
    let blob_data = b"{\"layer\": \"pretend\"}\n".to_vec();
    let blob = format!(
        "{}{}",
        bundle_format::layout::BLOBS,
        Sha256Digest::of(&blob_data).hex()
    );
    let mut contents: Vec<(String, Vec<u8>)> = vec![
        (blob, blob_data),
        (
            "files/a.txt".into(),
            b"hello from the connected side\n".to_vec(),
        ),
        ("files/calico.yaml".into(), CALICO.to_vec()),
        ("files/c.yaml".into(), b"kind: ConfigMap\n".to_vec()),
    ];
    if big {
        let data = (0..1_310_720u32).map(|i| (i / 4096) as u8 ^ (i % 7) as u8);
        contents.push(("files/big.bin".into(), data.collect()));
    }
    contents.push((LONG_RPM.into(), b"not really an rpm\n".to_vec()));

    let (mut entries, mut files, mut sources) = (vec![], vec![], vec![]);
    for (path, data) in contents {
        let p = EntryPath::new(&path).expect("a safe path");
        let sha256 = Sha256Digest::of(&data);
        let size = data.len() as u64;
        if let Some(name) = path.strip_prefix("files/") {
            files.push(FileRecord {
                name: name.into(),
                url: format!("https://example.com/{name}"),
                path: p.clone(),
                size,
                sha256,
            });
        }
        entries.push(EntryRecord {
            path: p,
            size,
            sha256,
        });
        sources.push(EntrySource::Bytes(data));
    }
    let image = ImageRecord {
        reference: "registry.k8s.io/pause:3.9".parse().expect("a reference"),
        digest: Sha256Digest::of(b"pause manifest"),
        media_type: "application/vnd.oci.image.index.v1+json".into(),
        platforms: vec!["linux/amd64".into()],
        source_digest: None,
        size: 1234,
    };
    Genuine {
        index: index(entries, files, vec![image]),
        sources,
    }
}

fn index(
    entries: Vec<EntryRecord>,
    files: Vec<FileRecord>,
    images: Vec<ImageRecord>,
) -> BundleIndex {
    BundleIndex {
        schema_version: SCHEMA_VERSION,
        name: "fuzz-seed".into(),
        version: "1".into(),
        created: "2026-01-01T00:00:00Z".into(),
        generator: "bundle-testbed fuzz_seeds".into(),
        kubernetes_version: Some("v1.29.2".into()),
        cni: None,
        entries,
        images,
        files,
        rpms: vec![],
    }
}
