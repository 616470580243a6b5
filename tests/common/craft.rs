//! Hand-made bundles: a valid one written with bundle-format, and raw re-packing so a
//! test can tamper with any byte, name, type or size the way an attacker or a broken
//! copy would.

use std::io::Read;
use std::path::Path;

use bundle_format::index::{BundleIndex, EntryRecord, FileRecord, SCHEMA_VERSION};
use bundle_format::sign::{KeyPassword, SecretKey};
use bundle_format::write::{write_bundle, EntrySource, WriteOptions};
use bundle_format::{EntryPath, Sha256Digest};

/// One tar entry as raw as tar allows.
#[derive(Clone, Debug)]
pub struct RawEntry {
    pub name: String,
    pub kind: tar::EntryType,
    pub data: Vec<u8>,
    /// Header size when it should differ from `data.len()`.
    pub declared_size: Option<u64>,
    pub link: Option<String>,
}

impl RawEntry {
    pub fn file(name: &str, data: &[u8]) -> Self {
        Self {
            name: name.into(),
            kind: tar::EntryType::Regular,
            data: data.to_vec(),
            declared_size: None,
            link: None,
        }
    }
}

/// The content of the sample bundle's files.
pub fn sample_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("a.txt", b"hello from the connected side\n".to_vec()),
        (
            "b.bin",
            (0..200_000u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
        ),
        ("c.yaml", b"kind: ConfigMap\n".to_vec()),
    ]
}

/// Writes a valid bundle signed by `secret_key` to `out`.
pub fn sample_bundle(out: &Path, secret_key: &Path) {
    let dir = out.parent().expect("parent");
    let mut entries = Vec::new();
    let mut files = Vec::new();
    let mut sources = Vec::new();
    for (name, data) in sample_files() {
        let src = dir.join(format!("src-{name}"));
        std::fs::write(&src, &data).expect("write source");
        let path = EntryPath::new(&format!("files/{name}")).expect("path");
        let sha256 = Sha256Digest::of(&data);
        entries.push(EntryRecord {
            path: path.clone(),
            size: data.len() as u64,
            sha256,
        });
        files.push(FileRecord {
            name: name.into(),
            url: format!("http://127.0.0.1/{name}"),
            path,
            size: data.len() as u64,
            sha256,
        });
        sources.push(EntrySource::File(src));
    }
    let index = BundleIndex {
        schema_version: SCHEMA_VERSION,
        name: "sample".into(),
        version: "1".into(),
        created: "2026-01-01T00:00:00Z".into(),
        generator: "tests".into(),
        kubernetes_version: None,
        cni: None,
        entries,
        images: vec![],
        files,
        rpms: vec![],
    };
    let key = SecretKey::from_file(secret_key, KeyPassword::None).expect("secret key");
    let sig = key.sign(&index.to_json(), "sample").expect("sign");
    write_bundle(
        out,
        &index,
        Some(&sig),
        &sources,
        WriteOptions::default(),
        &|_| {},
    )
    .expect("write bundle");
}

/// Reads every entry of a (small) bundle.
pub fn read_entries(bundle: &Path) -> Vec<RawEntry> {
    let data = zstd::decode_all(std::fs::File::open(bundle).expect("open")).expect("zstd");
    let mut archive = tar::Archive::new(data.as_slice());
    archive
        .entries()
        .expect("tar")
        .map(|e| {
            let mut e = e.expect("entry");
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let kind = e.header().entry_type();
            let mut data = Vec::new();
            e.read_to_end(&mut data).expect("read");
            RawEntry {
                name,
                kind,
                data,
                declared_size: None,
                link: None,
            }
        })
        .collect()
}

/// Packs entries as tar (names written raw, so `..` and `/abs` survive) and zstd, in
/// one frame, as a bundle without seek table.
pub fn write_entries(entries: &[RawEntry], out: &Path) {
    let tar_bytes = [raw_tar(entries), vec![0u8; 1024]].concat();
    let compressed = zstd::encode_all(tar_bytes.as_slice(), 3).expect("zstd");
    std::fs::write(out, compressed).expect("write");
}

/// Packs entries like [`write_entries`], but as the writer lays out bundles: index and
/// signature in the first zstd frame, then one frame per entry, and a seek table.
pub fn write_entries_framed(entries: &[RawEntry], out: &Path) {
    use std::io::Write;
    let head = entries
        .iter()
        .take(2)
        .take_while(|e| e.name == "bundle.json" || e.name == "bundle.json.minisig")
        .count();
    let file = std::fs::File::create(out).expect("create");
    let mut w = bundle_format::frames::FrameWriter::new(file, 3, 0).expect("zstd");
    w.write_all(&raw_tar(&entries[..head])).expect("write");
    for e in &entries[head..] {
        w.cut().expect("cut");
        w.write_all(&raw_tar(std::slice::from_ref(e)))
            .expect("write");
    }
    w.write_all(&[0u8; 1024]).expect("write");
    assert!(w.finish().expect("finish").seekable);
}

/// Writes each of `frames` (raw tar bytes) as its own zstd frame, then a seek table.
pub fn write_raw_frames(frames: &[Vec<u8>], out: &Path) {
    use std::io::Write;
    let file = std::fs::File::create(out).expect("create");
    let mut w = bundle_format::frames::FrameWriter::new(file, 3, 0).expect("zstd");
    for f in frames {
        w.cut().expect("cut");
        w.write_all(f).expect("write");
    }
    assert!(w.finish().expect("finish").seekable);
}

/// Tar headers and data, names written raw; no end-of-archive blocks. Regular files get
/// the headers `bundle build` writes, so that only the change a test makes differs.
pub fn raw_tar(entries: &[RawEntry]) -> Vec<u8> {
    let mut tar_bytes = Vec::new();
    for e in entries {
        let size = e.declared_size.unwrap_or(e.data.len() as u64);
        if e.kind == tar::EntryType::Regular {
            tar_bytes.extend(bundle_format::archive::entry_headers(&e.name, size));
        } else {
            let mut h = tar::Header::new_gnu();
            {
                let gnu = h.as_gnu_mut().expect("gnu header");
                assert!(e.name.len() < 100, "test names are short");
                gnu.name[..e.name.len()].copy_from_slice(e.name.as_bytes());
                if let Some(link) = &e.link {
                    gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
                }
            }
            h.set_entry_type(e.kind);
            h.set_mode(0o644);
            h.set_size(size);
            h.set_cksum();
            tar_bytes.extend_from_slice(h.as_bytes());
        }
        tar_bytes.extend_from_slice(&e.data);
        let pad = (512 - e.data.len() % 512) % 512;
        tar_bytes.extend(std::iter::repeat_n(0u8, pad));
    }
    tar_bytes
}
