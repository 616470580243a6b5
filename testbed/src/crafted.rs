//! Crafted bundles: a genuine bundle taken apart into its tar members, 512-byte blocks
//! at a time, changed the way an attacker would, and written again — in both layouts
//! `bundle build` writes (one zstd frame without seek table, or frames with a seek
//! table, see `bundle_format::frames`).
//!
//! Every function here is a test double of a hostile bundle, not a tool: inputs are
//! small test bundles held in memory, except the bombs, whose zeros are streamed into
//! the zstd encoder and never allocated.
//!
//! The attacks, each documented with what GNU tar does with it:
//! - [`Archive::pax_size_longer`]: a PAX `size` record longer than the ustar size, with
//!   the extra bytes (an extra YAML document) inside the member.
//! - [`Archive::swap_by_pax_paths`], [`Archive::swap_by_long_name_and_pax_path`],
//!   [`Archive::ustar_prefix`]: names that GNU tar reads differently from the tar crate.
//! - [`Archive::pax_size_index_bomb`]: an index that says small in ustar, 1.5 GiB in PAX.
//! - [`Archive::write_with_window_log`]: a frame declaring a 2 GiB window.
//! - [`Archive::write_decoding_more`]: a frame decoding far more than declared.
//! - [`Archive::insert_member`] with [`ESCAPE_NAME`]: terminal escapes in a name.
//! - [`Archive::set_mode`], [`Archive::set_owner`], [`Archive::pax_global_header`],
//!   [`Archive::write_with_skippable`], [`Archive::resign_index`],
//!   [`Archive::replace_entry_resigned`]: the rest of the non-canonical forms.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use bundle_format::frames::FrameWriter;
use bundle_format::sign::{KeyPassword, SecretKey};
use bundle_format::{BundleIndex, Sha256Digest};

/// A tar block.
pub const BLOCK: usize = 512;

/// An entry name with terminal escapes that, printed raw, erases the line and writes a
/// fake success line over it.
pub const ESCAPE_NAME: &str =
    "files/\x1b[2K\rverified test 1: 6 entries, signed by key 0123456789ABCDEF\x1b[0m";

/// zstd's skippable frame magic (the first of the 16; the seek table uses `…5E`).
pub const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;

static ZEROS: [u8; 1 << 20] = [0u8; 1 << 20];

/// How a crafted bundle is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// The whole tar in one zstd frame, no seek table (read in one pass).
    OneFrame,
    /// Index and signature in frame 0, then one frame per member, and a seek table
    /// (written with `bundle_format::frames::FrameWriter`).
    Framed,
}

impl Layout {
    /// Both layouts, for tests that check each.
    pub const BOTH: [Layout; 2] = [Layout::OneFrame, Layout::Framed];
}

/// Where a skippable frame goes in [`Archive::write_with_skippable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skippable {
    /// Between frames 0 and 1 of a bundle without seek table.
    NoTable,
    /// Between frames 0 and 1, with an entry of its own in the seek table (0 bytes
    /// decompressed).
    Listed,
    /// Between frames 0 and 1, counted in frame 0's compressed size in the seek table
    /// (so the table still tiles the file).
    Hidden,
}

/// Bytes of a crafted tar stream: literal bytes, or zeros streamed without allocation.
#[derive(Clone, Debug)]
pub enum Chunk {
    /// These bytes.
    Bytes(Vec<u8>),
    /// This many zero bytes.
    Zeros(u64),
}

impl Chunk {
    /// Decompressed length.
    pub fn len(&self) -> u64 {
        match self {
            Chunk::Bytes(b) => b.len() as u64,
            Chunk::Zeros(n) => *n,
        }
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        match self {
            Chunk::Bytes(b) => w.write_all(b),
            Chunk::Zeros(n) => {
                let mut left = *n;
                while left > 0 {
                    let k = left.min(ZEROS.len() as u64) as usize;
                    w.write_all(&ZEROS[..k])?;
                    left -= k as u64;
                }
                Ok(())
            }
        }
    }
}

/// One tar member: the extension blocks in front of it, its header, its data.
#[derive(Clone, Debug)]
pub struct Member {
    /// Its name as the genuine bundle gave it (GNU long name, or the header's name).
    pub path: String,
    /// Raw blocks in front of the header (a GNU long name, PAX headers), padded.
    pub ext: Vec<u8>,
    /// The header block.
    pub header: [u8; BLOCK],
    /// The data, unpadded (may disagree with the header's size on purpose).
    pub data: Vec<u8>,
    /// Zeros streamed after `data`, part of the member (for bombs).
    pub zeros_after: u64,
}

impl Member {
    /// The size the header's octal field says.
    pub fn header_size(&self) -> u64 {
        octal(&self.header[124..136])
    }

    /// The member as tar bytes: extensions, header, data and zeros, padded to a block.
    pub fn chunks(&self) -> Vec<Chunk> {
        let mut head = self.ext.clone();
        head.extend_from_slice(&self.header);
        head.extend_from_slice(&self.data);
        let len = self.data.len() as u64 + self.zeros_after;
        let pad = (BLOCK as u64 - len % BLOCK as u64) % BLOCK as u64;
        if self.zeros_after == 0 {
            head.resize(head.len() + pad as usize, 0);
            vec![Chunk::Bytes(head)]
        } else {
            vec![Chunk::Bytes(head), Chunk::Zeros(self.zeros_after + pad)]
        }
    }

    /// The member as tar bytes in memory (not for bombs).
    pub fn bytes(&self) -> Vec<u8> {
        concat(&self.chunks())
    }
}

/// A genuine bundle's tar, taken apart: members in archive order (the end-of-archive
/// blocks are not kept; writing adds two).
#[derive(Clone, Debug)]
pub struct Archive {
    /// The members.
    pub members: Vec<Member>,
}

impl Archive {
    /// Reads a (small) bundle: zstd-decodes it whole and splits the tar into members.
    pub fn read(bundle: &Path) -> io::Result<Archive> {
        let tar = zstd::decode_all(File::open(bundle)?)?;
        Self::parse(&tar)
    }

    /// Splits tar bytes into members; stops at the first zero block.
    pub fn parse(tar: &[u8]) -> io::Result<Archive> {
        let mut members = Vec::new();
        let mut at = 0;
        let mut ext_start = 0;
        let mut long_name: Option<String> = None;
        while at + BLOCK <= tar.len() {
            let header: [u8; BLOCK] = tar[at..at + BLOCK].try_into().expect("a block");
            if header.iter().all(|b| *b == 0) {
                break;
            }
            let size = octal(&header[124..136]) as usize;
            let data_at = at + BLOCK;
            let end = data_at + size.div_ceil(BLOCK) * BLOCK;
            if end > tar.len() {
                return Err(invalid("tar member runs past the end"));
            }
            let data = tar[data_at..data_at + size].to_vec();
            match header[156] {
                b'L' => {
                    let name = data.split(|b| *b == 0).next().unwrap_or_default();
                    long_name = Some(String::from_utf8_lossy(name).into_owned());
                }
                b'x' | b'g' | b'K' => {}
                _ => {
                    let path = long_name
                        .take()
                        .unwrap_or_else(|| String::from_utf8_lossy(field(&header[..100])).into());
                    members.push(Member {
                        path,
                        ext: tar[ext_start..at].to_vec(),
                        header,
                        data,
                        zeros_after: 0,
                    });
                    ext_start = end;
                }
            }
            at = end;
        }
        Ok(Archive { members })
    }

    /// Position of the member named `path`.
    pub fn position(&self, path: &str) -> usize {
        self.members
            .iter()
            .position(|m| m.path == path)
            .unwrap_or_else(|| panic!("no member `{path}`"))
    }

    /// The member named `path`.
    pub fn member_mut(&mut self, path: &str) -> &mut Member {
        let i = self.position(path);
        &mut self.members[i]
    }

    /// The whole tar (with its two end-of-archive blocks) in memory; not for bombs.
    pub fn tar_bytes(&self) -> Vec<u8> {
        let mut out: Vec<u8> = self.members.iter().flat_map(Member::bytes).collect();
        out.extend_from_slice(&[0u8; 2 * BLOCK]);
        out
    }

    /// The tar cut into frames as `bundle build` cuts it for [`Layout::Framed`]: index
    /// and signature first, then one member per frame; the end-of-archive blocks end
    /// the last frame.
    pub fn frames(&self) -> Vec<Vec<Chunk>> {
        let head = self
            .members
            .iter()
            .take(2)
            .take_while(|m| m.path == "bundle.json" || m.path == "bundle.json.minisig")
            .count()
            .max(1)
            .min(self.members.len());
        let mut frames = vec![self.members[..head]
            .iter()
            .flat_map(Member::chunks)
            .collect::<Vec<_>>()];
        for m in &self.members[head..] {
            frames.push(m.chunks());
        }
        frames
            .last_mut()
            .expect("a frame")
            .push(Chunk::Bytes(vec![0u8; 2 * BLOCK]));
        frames
    }

    /// Writes the archive as a bundle in `layout`.
    pub fn write(&self, layout: Layout, out: &Path) -> io::Result<()> {
        let frames = self.frames();
        match layout {
            Layout::OneFrame => {
                let all: Vec<Chunk> = frames.into_iter().flatten().collect();
                let file = BufWriter::new(File::create(out)?);
                let mut enc = zstd::stream::write::Encoder::new(file, 3)?;
                enc.include_checksum(true)?;
                for c in &all {
                    c.write_to(&mut enc)?;
                }
                enc.finish()?.flush()
            }
            Layout::Framed => {
                let file = BufWriter::new(File::create(out)?);
                let mut w = FrameWriter::new(file, 3, 0)?;
                for frame in &frames {
                    w.cut()?;
                    for c in frame {
                        c.write_to(&mut w)?;
                    }
                }
                let done = w.finish()?;
                if !done.seekable {
                    return Err(invalid("a frame too large for the seek table"));
                }
                done.out
                    .into_inner()
                    .map_err(|e| e.into_error())?
                    .sync_all()
            }
        }
    }

    /// Attack 1: a PAX header with `size=` the length of `extra` appended to the data,
    /// in front of `path`, whose ustar size stays the genuine one. GNU tar, bsdtar and
    /// Python's tarfile honour PAX `size` and extract the genuine data plus `extra` (for
    /// a YAML file: an extra document the signed index never listed).
    pub fn pax_size_longer(&mut self, path: &str, extra: &[u8]) {
        let m = self.member_mut(path);
        m.data.extend_from_slice(extra);
        let size = m.data.len().to_string();
        m.ext = [
            pax_header('x', path, &[("size", size.as_bytes())]),
            m.ext.clone(),
        ]
        .concat();
    }

    /// Attack 2: two PAX `path` records on each of two members, `[x, y]` on `x`'s and
    /// `[y, x]` on `y`'s. The tar crate takes the first record, GNU tar the last: GNU
    /// tar extracts `x`'s data as `y` and `y`'s as `x`.
    pub fn swap_by_pax_paths(&mut self, x: &str, y: &str) {
        for (me, other) in [(x, y), (y, x)] {
            let m = self.member_mut(me);
            let pax = pax_header(
                'x',
                me,
                &[("path", me.as_bytes()), ("path", other.as_bytes())],
            );
            m.ext = [pax, m.ext.clone()].concat();
        }
    }

    /// Attack 2: a GNU long name naming the member itself and a PAX `path` naming the
    /// other, on each of `x` and `y`. The tar crate prefers the long name, GNU tar the
    /// PAX record: GNU tar swaps the two files.
    pub fn swap_by_long_name_and_pax_path(&mut self, x: &str, y: &str) {
        for (me, other) in [(x, y), (y, x)] {
            let m = self.member_mut(me);
            let ext = [
                gnu_long_name(me),
                pax_header('x', me, &[("path", other.as_bytes())]),
            ]
            .concat();
            m.ext = ext;
        }
    }

    /// Attack 2: the header of `path` with magic `ustar\0`, version `\0\0` and `prefix`
    /// in the ustar prefix field. The tar crate sees no ustar header (the version is
    /// not `00`) and reads the name field alone; GNU tar matches the magic only and
    /// extracts the file as `prefix/path`.
    pub fn ustar_prefix(&mut self, path: &str, prefix: &str) {
        assert!(prefix.len() <= 155, "prefix fits the field");
        let m = self.member_mut(path);
        m.header[257..263].copy_from_slice(b"ustar\0");
        m.header[263..265].copy_from_slice(b"\0\0");
        // GNU headers keep atime/ctime there; the prefix field is all ours.
        m.header[345..500].fill(0);
        m.header[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
        set_checksum(&mut m.header);
    }

    /// Attack 3: `bundle.json` says its genuine size in ustar, but a PAX `size` record
    /// says `total` bytes: the genuine index followed by zeros (streamed, never held).
    /// GNU tar extracts a `total`-byte `bundle.json`; a reader that trusts PAX and reads
    /// the index whole holds `total` bytes in memory.
    pub fn pax_size_index_bomb(&mut self, total: u64) {
        let m = self.member_mut("bundle.json");
        assert!(total > m.data.len() as u64);
        m.zeros_after = total - m.data.len() as u64;
        let size = total.to_string();
        m.ext = [
            pax_header('x', "bundle.json", &[("size", size.as_bytes())]),
            m.ext.clone(),
        ]
        .concat();
    }

    /// A PAX global header (typeflag `g`, a `comment` record) in front of `path`. GNU
    /// tar applies and skips it; the tar crate hands it out as an entry of its own.
    pub fn pax_global_header(&mut self, path: &str, comment: &str) {
        let m = self.member_mut(path);
        let g = pax_header('g', "pax_global_header", &[("comment", comment.as_bytes())]);
        m.ext = [g, m.ext.clone()].concat();
    }

    /// Attack 7: the header of `path` with this mode (e.g. `0o6777`: setuid, setgid,
    /// world-writable), checksum fixed. GNU tar run as root keeps it.
    pub fn set_mode(&mut self, path: &str, mode: u32) {
        let m = self.member_mut(path);
        set_octal(&mut m.header[100..108], u64::from(mode));
        set_checksum(&mut m.header);
    }

    /// Attack 7: the header of `path` owned by `uid:gid` (names cleared, so tar run as
    /// root uses the numbers), checksum fixed.
    pub fn set_owner(&mut self, path: &str, uid: u64, gid: u64) {
        let m = self.member_mut(path);
        set_octal(&mut m.header[108..116], uid);
        set_octal(&mut m.header[116..124], gid);
        m.header[265..329].fill(0);
        set_checksum(&mut m.header);
    }

    /// Attack 6 and others: a new regular member `name` (raw bytes, up to 99) holding
    /// `data`, at position `at`, in the header form `bundle build` writes.
    pub fn insert_member(&mut self, at: usize, name: &[u8], data: &[u8]) {
        self.members.insert(at, plain_member(name, data));
    }

    /// Replaces `path`'s data and fixes its header size (a canonical member again).
    pub fn set_data(&mut self, path: &str, data: Vec<u8>) {
        let m = self.member_mut(path);
        set_octal(&mut m.header[124..136], data.len() as u64);
        set_checksum(&mut m.header);
        m.data = data;
    }

    /// The index as the bundle holds it.
    pub fn index(&self) -> BundleIndex {
        let m = &self.members[self.position("bundle.json")];
        BundleIndex::from_json(&m.data).expect("a genuine index")
    }

    /// Attack 7: changes the index with `edit`, writes it back and signs it again with
    /// `secret_key` (an unencrypted minisign key), keeping the trusted comment: a
    /// bundle whose signature is valid for the builder's key.
    pub fn resign_index(&mut self, secret_key: &Path, edit: impl FnOnce(&mut BundleIndex)) {
        let mut index = self.index();
        edit(&mut index);
        let json = index.to_json();
        let old_sig =
            String::from_utf8_lossy(&self.members[self.position("bundle.json.minisig")].data)
                .into_owned();
        let comment = old_sig
            .lines()
            .find_map(|l| l.strip_prefix("trusted comment: "))
            .unwrap_or("crafted")
            .to_string();
        let key = SecretKey::from_file(secret_key, KeyPassword::None).expect("secret key");
        let sig = key.sign(&json, &comment).expect("sign");
        self.set_data("bundle.json", json);
        self.set_data("bundle.json.minisig", sig.into_bytes());
    }

    /// Attack 7: `path` now holds `data`, and the index entry says its size and SHA-256
    /// (re-signed), while the path keeps its old name — for a blob under
    /// `images/blobs/sha256/<hex>`, content that does not hash to `<hex>`.
    pub fn replace_entry_resigned(&mut self, path: &str, data: Vec<u8>, secret_key: &Path) {
        let (size, sha256) = (data.len() as u64, Sha256Digest::of(&data));
        self.set_data(path, data);
        self.resign_index(secret_key, |index| {
            let e = index
                .entries
                .iter_mut()
                .find(|e| e.path.as_str() == path)
                .expect("an index entry");
            e.size = size;
            e.sha256 = sha256;
        });
    }

    /// Attack 4: writes the bundle with the zstd frame holding `path` (the only frame,
    /// for [`Layout::OneFrame`]) declaring a window of `2^window_log` bytes in its frame
    /// header. The blocks are unchanged, so `zstd -d --long=31` decodes it; a decoder
    /// that obeys the header reserves the whole window.
    pub fn write_with_window_log(
        &self,
        layout: Layout,
        path: &str,
        window_log: u8,
        out: &Path,
    ) -> io::Result<()> {
        let frames = self.layout_frames(layout);
        let k = match layout {
            Layout::OneFrame => 0,
            Layout::Framed => self.frame_of(path),
        };
        let mut compressed: Vec<Vec<u8>> = frames
            .iter()
            .map(|f| compress_frame(f))
            .collect::<io::Result<_>>()?;
        set_window_log(&mut compressed[k], window_log)?;
        let sizes: Vec<u64> = frames
            .iter()
            .map(|f| f.iter().map(Chunk::len).sum())
            .collect();
        let table = (layout == Layout::Framed).then(|| {
            compressed
                .iter()
                .zip(&sizes)
                .map(|(c, d)| (c.len() as u64, *d))
                .collect::<Vec<_>>()
        });
        write_parts(out, &compressed, table.as_deref())
    }

    /// Attack 5: the last frame (the only one for [`Layout::OneFrame`]) decodes to its
    /// genuine content followed by `extra` zeros, while what it declares is honest for
    /// the genuine part: the seek table's decompressed size ([`Layout::Framed`]), or
    /// the frame header's content size ([`Layout::OneFrame`]). 4 GiB of zeros compress
    /// to about 128 KiB.
    pub fn write_decoding_more(&self, layout: Layout, extra: u64, out: &Path) -> io::Result<()> {
        let mut frames = self.layout_frames(layout);
        let sizes: Vec<u64> = frames
            .iter()
            .map(|f| f.iter().map(Chunk::len).sum())
            .collect();
        frames
            .last_mut()
            .expect("a frame")
            .push(Chunk::Zeros(extra));
        let mut compressed: Vec<Vec<u8>> = frames
            .iter()
            .map(|f| compress_frame(f))
            .collect::<io::Result<_>>()?;
        match layout {
            Layout::OneFrame => {
                set_content_size(&mut compressed[0], sizes[0])?;
                write_parts(out, &compressed, None)
            }
            Layout::Framed => {
                let table: Vec<(u64, u64)> = compressed
                    .iter()
                    .zip(&sizes)
                    .map(|(c, d)| (c.len() as u64, *d))
                    .collect();
                write_parts(out, &compressed, Some(&table))
            }
        }
    }

    /// Attack 7: a skippable zstd frame holding `payload` between frames 0 and 1 of the
    /// framed layout, listed in the seek table, hidden in frame 0's entry, or in a
    /// bundle without table ([`Skippable`]). zstd, and so `tar -I zstd`, skip it.
    pub fn write_with_skippable(
        &self,
        place: Skippable,
        payload: &[u8],
        out: &Path,
    ) -> io::Result<()> {
        let frames = self.frames();
        let sizes: Vec<u64> = frames
            .iter()
            .map(|f| f.iter().map(Chunk::len).sum())
            .collect();
        let mut compressed: Vec<Vec<u8>> = frames
            .iter()
            .map(|f| compress_frame(f))
            .collect::<io::Result<_>>()?;
        let mut table: Vec<(u64, u64)> = compressed
            .iter()
            .zip(&sizes)
            .map(|(c, d)| (c.len() as u64, *d))
            .collect();
        let skippable = skippable_frame(payload);
        match place {
            Skippable::NoTable => {
                compressed.insert(1, skippable);
                return write_parts(out, &compressed, None);
            }
            Skippable::Listed => table.insert(1, (skippable.len() as u64, 0)),
            Skippable::Hidden => table[0].0 += skippable.len() as u64,
        }
        compressed.insert(1, skippable);
        write_parts(out, &compressed, Some(&table))
    }

    fn layout_frames(&self, layout: Layout) -> Vec<Vec<Chunk>> {
        match layout {
            Layout::OneFrame => vec![self.frames().into_iter().flatten().collect()],
            Layout::Framed => self.frames(),
        }
    }

    /// The frame ([`Archive::frames`]) that holds `path`.
    pub fn frame_of(&self, path: &str) -> usize {
        let frames = self.frames();
        let head = self.members.len() + 1 - frames.len();
        self.position(path).saturating_sub(head - 1)
    }
}

/// A member in the header form `bundle build` writes (GNU header, mode 644, owner 0,
/// mtime 0), named by raw bytes (under 100).
pub fn plain_member(name: &[u8], data: &[u8]) -> Member {
    assert!(name.len() < 100, "short names only");
    let mut header = gnu_header(name, b'0', data.len() as u64);
    set_checksum(&mut header);
    Member {
        path: String::from_utf8_lossy(name).into_owned(),
        ext: Vec::new(),
        header,
        data: data.to_vec(),
        zeros_after: 0,
    }
}

/// A PAX header (typeflag `x` or `g`) with these records, padded: `NN key=value\n`.
pub fn pax_header(kind: char, for_name: &str, records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (key, value) in records {
        let rest = key.len() + value.len() + 3; // space, '=', '\n'
        let mut len = rest + 1;
        while (len.to_string().len() + rest) != len {
            len = len.to_string().len() + rest;
        }
        body.extend_from_slice(format!("{len} {key}=").as_bytes());
        body.extend_from_slice(value);
        body.push(b'\n');
    }
    let base = for_name.rsplit('/').next().unwrap_or(for_name);
    let mut name = format!("PaxHeaders.0/{base}").into_bytes();
    name.truncate(99);
    let mut h = [0u8; BLOCK];
    h[..name.len()].copy_from_slice(&name);
    set_octal(&mut h[100..108], 0o644);
    set_octal(&mut h[108..116], 0);
    set_octal(&mut h[116..124], 0);
    set_octal(&mut h[124..136], body.len() as u64);
    set_octal(&mut h[136..148], 0);
    h[156] = kind as u8;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    set_checksum(&mut h);
    let mut out = h.to_vec();
    out.extend_from_slice(&body);
    out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
    out
}

/// A GNU long name (`././@LongLink`, typeflag `L`) for `name`, as the tar crate writes
/// it, padded.
pub fn gnu_long_name(name: &str) -> Vec<u8> {
    let mut data = name.as_bytes().to_vec();
    data.push(0);
    let mut h = gnu_header(b"././@LongLink", b'L', data.len() as u64);
    set_checksum(&mut h);
    let mut out = h.to_vec();
    out.extend_from_slice(&data);
    out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
    out
}

fn gnu_header(name: &[u8], kind: u8, size: u64) -> [u8; BLOCK] {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::new(kind));
    let mut out = *h.as_bytes();
    out[..100].fill(0);
    out[..name.len()].copy_from_slice(name);
    out
}

/// A skippable zstd frame holding `payload`.
pub fn skippable_frame(payload: &[u8]) -> Vec<u8> {
    let mut out = SKIPPABLE_MAGIC.to_le_bytes().to_vec();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Compresses `chunks` as one zstd frame (level 3, content checksum, size not
/// pledged, so the frame header carries a window descriptor).
pub fn compress_frame(chunks: &[Chunk]) -> io::Result<Vec<u8>> {
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3)?;
    enc.include_checksum(true)?;
    for c in chunks {
        c.write_to(&mut enc)?;
    }
    enc.finish()
}

/// Rewrites a zstd frame header's window descriptor to `2^window_log` (10..=31).
pub fn set_window_log(frame: &mut [u8], window_log: u8) -> io::Result<()> {
    assert!((10..=41).contains(&window_log));
    if frame.len() < 6 || frame[..4] != [0x28, 0xb5, 0x2f, 0xfd] {
        return Err(invalid("not a zstd frame"));
    }
    if frame[4] & 0x20 != 0 {
        return Err(invalid("single-segment frame has no window descriptor"));
    }
    frame[5] = (window_log - 10) << 3;
    Ok(())
}

/// Adds a 4-byte frame content size of `size` to a zstd frame header that has none.
pub fn set_content_size(frame: &mut Vec<u8>, size: u64) -> io::Result<()> {
    let size = u32::try_from(size).map_err(|_| invalid("content size above 4 GiB"))?;
    if frame.len() < 6 || frame[..4] != [0x28, 0xb5, 0x2f, 0xfd] {
        return Err(invalid("not a zstd frame"));
    }
    let fhd = frame[4];
    if fhd & 0xC0 != 0 || fhd & 0x20 != 0 || fhd & 0x03 != 0 {
        return Err(invalid(
            "frame header already has a content size or a dictionary",
        ));
    }
    frame[4] = fhd | 0x80;
    // Magic, descriptor, window descriptor, then the content size.
    frame.splice(6..6, size.to_le_bytes());
    Ok(())
}

/// Writes compressed `parts` back to back, then a seek table with `table`'s
/// `(compressed, decompressed)` entries when given (as `bundle_format::frames` writes
/// it, whatever the entries say).
pub fn write_parts(out: &Path, parts: &[Vec<u8>], table: Option<&[(u64, u64)]>) -> io::Result<()> {
    let mut f = BufWriter::new(File::create(out)?);
    for p in parts {
        f.write_all(p)?;
    }
    if let Some(entries) = table {
        f.write_all(&seek_table(entries))?;
    }
    f.into_inner().map_err(|e| e.into_error())?.sync_all()
}

/// A seek table in zstd's seekable format (no checksums).
pub fn seek_table(entries: &[(u64, u64)]) -> Vec<u8> {
    let mut t = 0x184D_2A5E_u32.to_le_bytes().to_vec();
    t.extend_from_slice(&((entries.len() * 8 + 9) as u32).to_le_bytes());
    for (c, d) in entries {
        t.extend_from_slice(&(*c as u32).to_le_bytes());
        t.extend_from_slice(&(*d as u32).to_le_bytes());
    }
    t.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    t.push(0);
    t.extend_from_slice(&0x8F92_EAB1_u32.to_le_bytes());
    t
}

/// Compresses tar bytes as one zstd frame without seek table (for mutation loops).
pub fn write_one_frame(tar: &[u8], out: &Path) -> io::Result<()> {
    let compressed = zstd::bulk::compress(tar, 1)?;
    std::fs::write(out, compressed)
}

/// Decompresses a (small) bundle whole.
pub fn decompress(bundle: &Path) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(File::open(bundle)?)?.read_to_end(&mut out)?;
    Ok(out)
}

/// Fixes a header's checksum field (sum of its bytes, the field counted as spaces).
pub fn set_checksum(header: &mut [u8; BLOCK]) {
    header[148..156].fill(b' ');
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    // As the tar crate writes it (seven digits and a NUL), so that a re-written
    // header differs from the builder's only where an attack changes it.
    let text = format!("{sum:07o}\0");
    header[148..156].copy_from_slice(text.as_bytes());
}

/// Writes `value` as zero-padded octal with a closing NUL, as the tar crate does.
pub fn set_octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let text = format!("{value:0width$o}");
    assert!(text.len() <= width, "{value} fits {width} octal digits");
    field[..width].copy_from_slice(text.as_bytes());
    field[width] = 0;
}

/// An octal field's value (spaces and NULs end it).
pub fn octal(field: &[u8]) -> u64 {
    field
        .iter()
        .skip_while(|b| **b == b' ')
        .take_while(|b| (b'0'..=b'7').contains(b))
        .fold(0, |v, b| v * 8 + u64::from(b - b'0'))
}

fn field(bytes: &[u8]) -> &[u8] {
    bytes.split(|b| *b == 0).next().unwrap_or_default()
}

fn concat(chunks: &[Chunk]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in chunks {
        c.write_to(&mut out).expect("in memory");
    }
    out
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_records_count_their_own_length() {
        let h = pax_header('x', "a", &[("size", b"1610612736"), ("path", b"x")]);
        let body = &h[BLOCK..];
        assert!(body.starts_with(b"19 size=1610612736\n9 path=x\n"));
    }

    #[test]
    fn headers_parse_back_and_checksums_match_tar() {
        let m = plain_member(b"files/a.txt", b"hello");
        let tar = [m.bytes(), vec![0u8; 1024]].concat();
        let mut a = tar::Archive::new(tar.as_slice());
        let mut entries = a.entries().unwrap();
        let e = entries.next().unwrap().unwrap();
        assert_eq!(&*e.path_bytes(), b"files/a.txt");
        assert_eq!(e.header().size().unwrap(), 5);
        let parsed = Archive::parse(&tar).unwrap();
        assert_eq!(parsed.members.len(), 1);
        assert_eq!(parsed.members[0].bytes(), m.bytes());
    }
}
