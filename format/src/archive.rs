//! The bundle's tar form, in one place: the header blocks `bundle build` writes
//! ([`entry_headers`]) and the strict reader every consumer reads bundles through.
//!
//! Why not the `tar` crate's reader: it honours PAX records, GNU long names and the
//! ustar prefix, and tar readers resolve those differently (GNU tar lets a PAX `path`
//! win over a GNU long name, the tar crate the reverse; a PAX `size` makes the member
//! longer than its ustar header says). A verdict must hold for whatever reader the
//! operator extracts with, so this reader accepts one form only, byte for byte the one
//! the writer produces: GNU magic, regular files, mode 0644, owner 0:0, mtime 0, a GNU
//! long name (`././@LongLink`) only for names over 100 bytes, zero padding, and the
//! two zero blocks at the end. Everything else is refused by name.

use std::io::{self, Read};

use crate::path::EntryPath;
use crate::shown::Shown;
use crate::Error;

/// Size of a tar block.
pub const BLOCK: u64 = 512;
/// The end-of-archive marker: two zero blocks, and nothing after them.
pub const END_OF_ARCHIVE: u64 = 2 * BLOCK;
const NAME_FIELD: usize = 100;
const LONG_NAME_ENTRY: &[u8] = b"././@LongLink";
/// Longest name a bundle holds ([`EntryPath`]'s limit).
const MAX_NAME: u64 = 4096;

fn base_header(size: u64, kind: u8) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::new(kind));
    h
}

/// The header blocks `bundle build` writes in front of an entry `name` of `size` bytes
/// (the tar crate's GNU form: a `././@LongLink` entry first when the name is over 100
/// bytes, the header's own name field then holding its first 100 bytes).
pub fn entry_headers(name: &str, size: u64) -> Vec<u8> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(3 * BLOCK as usize);
    let mut main = base_header(size, b'0');
    main.set_mtime(0);
    let field = &mut main.as_old_mut().name;
    if bytes.len() <= NAME_FIELD {
        field[..bytes.len()].copy_from_slice(bytes);
    } else {
        let mut long = base_header(bytes.len() as u64 + 1, b'L');
        long.as_old_mut().name[..LONG_NAME_ENTRY.len()].copy_from_slice(LONG_NAME_ENTRY);
        long.set_uid(0);
        long.set_gid(0);
        long.set_mtime(0);
        long.set_cksum();
        out.extend_from_slice(long.as_bytes());
        out.extend_from_slice(bytes);
        out.push(0);
        out.resize(out.len() + padding(bytes.len() as u64 + 1), 0);
        // Cut at a character boundary, as the tar crate does.
        let mut cut = NAME_FIELD;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        main.as_old_mut().name[..cut].copy_from_slice(&bytes[..cut]);
    }
    main.set_cksum();
    out.extend_from_slice(main.as_bytes());
    out
}

/// Bytes an entry takes in the tar stream: headers, data and padding.
pub fn entry_span(name: &str, size: u64) -> u64 {
    let long = name.len() as u64 > NAME_FIELD as u64;
    let headers = if long {
        2 * BLOCK + (name.len() as u64 + 1).div_ceil(BLOCK) * BLOCK
    } else {
        BLOCK
    };
    headers + size.div_ceil(BLOCK) * BLOCK
}

/// Zero bytes after `size` bytes of data, up to the next block.
pub fn padding(size: u64) -> usize {
    ((BLOCK - size % BLOCK) % BLOCK) as usize
}

/// What the reader met next.
#[derive(Debug)]
pub(crate) enum Next {
    /// An entry in the bundle's form; its data follows (read it through the reader).
    Entry(EntryHeader),
    /// The two zero blocks that end the archive.
    EndOfArchive,
    /// A zero block, then more data: what tar never extracts.
    DataAfterEnd,
    /// The stream ended at a block boundary without them (the end of a frame).
    EndOfStream,
}

/// A checked entry header.
#[derive(Debug, Clone)]
pub(crate) struct EntryHeader {
    pub name: String,
    pub size: u64,
}

/// Reads a tar stream in the bundle's form; [`Read`] yields the current entry's data.
pub(crate) struct TarReader<R> {
    inner: R,
    /// Data bytes of the current entry not yet read.
    remaining: u64,
    /// Padding after the current entry.
    pad: usize,
}

impl<R: Read> TarReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            remaining: 0,
            pad: 0,
        }
    }

    /// Skips what is left of the current entry and reads the next header.
    pub fn next_entry(&mut self) -> Result<Next, Error> {
        self.skip_rest()?;
        let mut block = [0u8; BLOCK as usize];
        if !self.read_block(&mut block, true)? {
            return Ok(Next::EndOfStream);
        }
        if block.iter().all(|b| *b == 0) {
            self.read_block(&mut block, false)?;
            // Tar readers stop at the first zero block: whatever follows is never
            // extracted, so it must not be verified either.
            return Ok(match block.iter().all(|b| *b == 0) {
                true => Next::EndOfArchive,
                false => Next::DataAfterEnd,
            });
        }
        let long_name = if block[156] == b'L' {
            let name = self.read_long_name(&block)?;
            self.read_block(&mut block, false)?;
            Some(name)
        } else {
            None
        };
        let header = check_header(&block, long_name)?;
        self.remaining = header.size;
        self.pad = padding(header.size);
        Ok(Next::Entry(header))
    }

    /// After the end-of-archive marker: the stream must end there.
    pub fn expect_eof(&mut self) -> Result<bool, Error> {
        let mut byte = [0u8; 1];
        loop {
            match self.inner.read(&mut byte) {
                Ok(0) => return Ok(true),
                Ok(_) => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(corrupt_io(e)),
            }
        }
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    fn skip_rest(&mut self) -> Result<(), Error> {
        if self.remaining > 0 {
            let left = self.remaining;
            let copied =
                io::copy(&mut self.by_ref().take(left), &mut io::sink()).map_err(corrupt_io)?;
            if copied != left {
                return Err(truncated());
            }
        }
        let mut pad = [0u8; BLOCK as usize];
        let pad = &mut pad[..std::mem::take(&mut self.pad)];
        read_full(&mut self.inner, pad)?;
        if pad.iter().any(|b| *b != 0) {
            return Err(corrupt("data in the padding after an entry"));
        }
        Ok(())
    }

    /// One block; `false` when the stream ends before it and `at_boundary` allows that.
    fn read_block(&mut self, block: &mut [u8; 512], at_boundary: bool) -> Result<bool, Error> {
        let mut filled = 0;
        while filled < block.len() {
            match self.inner.read(&mut block[filled..]) {
                Ok(0) if filled == 0 && at_boundary => return Ok(false),
                Ok(0) => return Err(truncated()),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(corrupt_io(e)),
            }
        }
        Ok(true)
    }

    /// A GNU long name, in exactly the form [`entry_headers`] writes it.
    fn read_long_name(&mut self, block: &[u8; 512]) -> Result<String, Error> {
        if !checksum_holds(block) {
            return Err(corrupt(
                "a tar header whose checksum does not match: the data is damaged, or not tar",
            ));
        }
        let shown = String::from_utf8_lossy(LONG_NAME_ENTRY).into_owned();
        let size = parse_number(&block[124..136])
            .filter(|n| (2..=MAX_NAME + 1).contains(n))
            .ok_or_else(|| {
                non_canonical(
                    &shown,
                    "a GNU long name of a size bundle build never writes".into(),
                )
            })?;
        let mut data = vec![0u8; (size.div_ceil(BLOCK) * BLOCK) as usize];
        read_full(&mut self.inner, &mut data)?;
        let (name, rest) = data.split_at(size as usize - 1);
        let name = std::str::from_utf8(name)
            .map_err(|_| non_canonical(&shown, "a GNU long name that is not UTF-8".into()))?;
        if rest.iter().any(|b| *b != 0) || name.len() <= NAME_FIELD || name.contains('\0') {
            return Err(non_canonical(
                name,
                "a GNU long name in a form bundle build never writes".into(),
            ));
        }
        let expected = entry_headers(name, 0);
        if block[..] != expected[..BLOCK as usize] {
            return Err(non_canonical(name, describe(block, &expected[..512], true)));
        }
        Ok(name.to_string())
    }
}

impl<R: Read> Read for TarReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let room = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        if room == 0 {
            return Ok(0);
        }
        let n = self.inner.read(&mut buf[..room])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive ended inside the entry",
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<(), Error> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => truncated(),
        _ => corrupt_io(e),
    })
}

/// Checks a main header against the form the writer gives its name and size.
fn check_header(block: &[u8; 512], long_name: Option<String>) -> Result<EntryHeader, Error> {
    if !checksum_holds(block) {
        return Err(corrupt(
            "a tar header whose checksum does not match: the data is damaged, or not tar",
        ));
    }
    let long = long_name.is_some();
    let name = match long_name {
        Some(n) => n,
        None => {
            let field = &block[..NAME_FIELD];
            let end = field.iter().position(|b| *b == 0).unwrap_or(NAME_FIELD);
            String::from_utf8(field[..end].to_vec()).map_err(|e| {
                non_canonical(
                    &String::from_utf8_lossy(e.as_bytes()),
                    "a name that is not UTF-8".into(),
                )
            })?
        }
    };
    if let Some(what) = extension(block[156], long) {
        return Err(non_canonical(&name, what));
    }
    EntryPath::new(&name).map_err(|reason| Error::UnsafeEntry {
        entry: name.clone(),
        reason,
    })?;
    if let Some(kind) = not_a_file(block[156]) {
        return Err(Error::NotRegularFile {
            entry: name,
            kind: kind.into(),
        });
    }
    let size = parse_number(&block[124..136])
        .ok_or_else(|| non_canonical(&name, "a size field that is not a number".into()))?;
    let expected = entry_headers(&name, size);
    let expected = &expected[expected.len() - BLOCK as usize..];
    if block[..] != expected[..] {
        return Err(non_canonical(&name, describe(block, expected, long)));
    }
    Ok(EntryHeader { name, size })
}

/// Header types that are tar extensions, which a bundle never holds.
fn extension(kind: u8, after_long_name: bool) -> Option<String> {
    Some(match kind {
        b'x' | b'X' => "a PAX extended header (type `x`)".into(),
        b'g' => "a PAX global header (type `g`)".into(),
        b'K' => "a GNU long link name (type `K`)".into(),
        b'L' if after_long_name => "a GNU long name followed by another".into(),
        b'S' => "a GNU sparse file (type `S`)".into(),
        b'D' | b'M' | b'N' | b'V' => format!("a GNU extension header (type `{}`)", kind as char),
        _ => return None,
    })
}

fn not_a_file(kind: u8) -> Option<&'static str> {
    Some(match kind {
        b'1' => "hard link",
        b'2' => "symbolic link",
        b'3' => "character device",
        b'4' => "block device",
        b'5' => "directory",
        b'6' => "fifo",
        b'0' => return None,
        _ => "special entry",
    })
}

/// Names the first field where `found` leaves the writer's form (`expected`).
fn describe(found: &[u8], expected: &[u8], long: bool) -> String {
    let differs = |r: std::ops::Range<usize>| found[r.clone()] != expected[r];
    let number = |r: std::ops::Range<usize>| {
        parse_number(&found[r.clone()])
            .map_or_else(|| format!("`{}`", raw(&found[r])), |n| n.to_string())
    };
    if differs(156..157) {
        return format!(
            "type `{}` (bundle build writes `0`, a regular file)",
            raw(&found[156..157])
        );
    }
    if differs(345..500) {
        return "data in the ustar prefix field, which GNU tar puts in front of the name".into();
    }
    if differs(257..265) {
        return format!(
            "magic `{}` version `{}` (bundle build writes the GNU form `ustar  `)",
            raw(&found[257..263]),
            raw(&found[263..265])
        );
    }
    if differs(100..108) {
        let mode = parse_number(&found[100..108]);
        return match mode {
            Some(m) => format!("mode {m:o} (bundle build writes 644)"),
            None => format!(
                "a mode field `{}` that is not a number",
                raw(&found[100..108])
            ),
        };
    }
    if differs(108..124) {
        return format!(
            "owner {}:{} (bundle build writes 0:0, as empty fields)",
            number(108..116),
            number(116..124)
        );
    }
    if differs(136..148) {
        return format!(
            "modification time {} (bundle build writes 0)",
            number(136..148)
        );
    }
    if differs(124..136) {
        return "a size field in another form than bundle build's".into();
    }
    if differs(0..100) {
        return match long {
            true => "a name field that does not begin the GNU long name".into(),
            false => "data after the name in the name field".into(),
        };
    }
    if differs(157..257) {
        return "a link name".into();
    }
    if differs(265..345) {
        return "owner names or device numbers".into();
    }
    if differs(500..512) {
        return "data in the header's last bytes".into();
    }
    match checksum_holds(found) {
        true => "a checksum field in another form than bundle build's".into(),
        false => "a wrong header checksum".into(),
    }
}

/// Whether the header's checksum field holds the sum of its bytes (the field counted as
/// spaces), as every tar reader checks.
fn checksum_holds(block: &[u8]) -> bool {
    let sum: u64 = block
        .iter()
        .enumerate()
        .map(|(i, b)| u64::from(if (148..156).contains(&i) { b' ' } else { *b }))
        .sum();
    parse_number(&block[148..156]) == Some(sum)
}

fn raw(bytes: &[u8]) -> String {
    Shown(&String::from_utf8_lossy(bytes))
        .to_string()
        .replace('\0', "\\0")
}

/// A tar number field: octal digits (NUL or space ended), or base-256 with the top bit set.
fn parse_number(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut n: u64 = 0;
        for (i, b) in field.iter().enumerate() {
            let b = if i == 0 { b & 0x7f } else { *b };
            n = n.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(n);
    }
    let end = field
        .iter()
        .position(|b| *b == 0 || *b == b' ')
        .unwrap_or(field.len());
    let digits = &field[..end];
    if digits.is_empty() || !digits.iter().all(|b| (b'0'..=b'7').contains(b)) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(digits).ok()?, 8).ok()
}

fn non_canonical(entry: &str, what: String) -> Error {
    Error::NonCanonicalHeader {
        entry: entry.to_string(),
        what,
    }
}

fn corrupt(msg: &str) -> Error {
    corrupt_io(io::Error::new(io::ErrorKind::InvalidData, msg.to_string()))
}

fn corrupt_io(source: io::Error) -> Error {
    Error::Corrupt {
        entry: None,
        source,
    }
}

fn truncated() -> Error {
    corrupt_io(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the archive ends inside a tar header or entry",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the tar crate's builder writes for one entry, headers only.
    fn tar_crate_headers(name: &str, size: u64) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mtime(0);
        b.append_data(&mut h, name, io::repeat(7).take(size))
            .unwrap();
        let mut out = b.into_inner().unwrap();
        // `into_inner` ends the archive with two zero blocks.
        out.truncate(out.len() - END_OF_ARCHIVE as usize - (size as usize + padding(size)));
        out
    }

    #[test]
    fn headers_are_the_tar_crate_form_for_every_name_length() {
        for len in [1, 99, 100, 101, 150, 511, 512, 600] {
            let name: String = "n/"
                .chars()
                .chain(std::iter::repeat_n('a', len - 1))
                .take(len)
                .collect();
            for size in [0, 1, 511, 512, 1 << 21] {
                assert_eq!(
                    entry_headers(&name, size),
                    tar_crate_headers(&name, size),
                    "{len} {size}"
                );
                assert_eq!(
                    entry_span(&name, size),
                    (entry_headers(&name, size).len() + size as usize + padding(size)) as u64
                );
            }
        }
    }

    #[test]
    fn the_reader_reads_back_what_the_writer_writes_and_nothing_else() {
        let long = format!("rpms/el9-x86_64/Packages/{}.rpm", "k".repeat(120));
        let mut tar = Vec::new();
        for (name, data) in [("a.txt", &b"hello"[..]), (long.as_str(), &b"rpm"[..])] {
            tar.extend(entry_headers(name, data.len() as u64));
            tar.extend_from_slice(data);
            tar.resize(tar.len() + padding(data.len() as u64), 0);
        }
        tar.resize(tar.len() + END_OF_ARCHIVE as usize, 0);
        let mut r = TarReader::new(tar.as_slice());
        let mut names = Vec::new();
        while let Next::Entry(h) = r.next_entry().unwrap() {
            let mut data = Vec::new();
            r.read_to_end(&mut data).unwrap();
            names.push((h.name, data));
        }
        assert!(r.expect_eof().unwrap());
        assert_eq!(names[1].0, long);
        assert_eq!(names[0].1, b"hello");

        // Mode 6777 with a correct checksum: refused by name.
        let mut bad = tar.clone();
        let mut h = tar::Header::from_byte_slice(&bad[..512]).clone();
        h.set_mode(0o6777);
        h.set_cksum();
        bad[..512].copy_from_slice(h.as_bytes());
        let err = TarReader::new(bad.as_slice()).next_entry().unwrap_err();
        assert!(err.to_string().contains("mode 6777"), "{err}");
    }

    #[test]
    fn numbers_parse_strictly() {
        assert_eq!(parse_number(b"0000644\0"), Some(0o644));
        assert_eq!(parse_number(b"00006x4\0"), None);
        assert_eq!(parse_number(b"\0\0\0\0"), None);
        assert_eq!(
            parse_number(&[0x80, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0]),
            Some(1 << 33)
        );
    }
}
