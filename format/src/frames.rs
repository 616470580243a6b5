//! Random access into a bundle: the archive is a run of independent zstd frames, each
//! starting at a tar header, followed by a seek table in the zstd seekable format
//! (a skippable frame, so `zstd -d` and `tar -I zstd` read the bundle as before).
//!
//! Why: a single zstd frame can only be read from the start, so a push had to verify
//! the whole archive in one sequential pass and spool the blobs it uploads in parallel.
//! With frames that begin at entry boundaries, workers decompress, hash and upload
//! different entries at once straight from the archive, and `bundle serve` (later) can
//! read one blob without the rest.
//!
//! The table is not signed and does not need to be: it only says where frames start.
//! Every entry read through it is still hashed against the signed index, and the
//! verifier checks that the frames tile the file and their entries tile the index.
//!
//! Format (zstd `contrib/seekable_format`): skippable magic `0x184D2A5E`, frame size,
//! then per frame `compressed: u32, decompressed: u32` (little endian), then the
//! footer `frames: u32, descriptor: u8 (0: no checksums), magic 0x8F92EAB1`.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

use crate::digest::HashingWriter;

const SKIPPABLE_MAGIC: u32 = 0x184D_2A5E;
const SEEKABLE_MAGIC: u32 = 0x8F92_EAB1;
const FOOTER_SIZE: u64 = 9;
const ENTRY_SIZE: u64 = 8;
/// Tables larger than this are not believed (a million frames).
const MAX_FRAMES: u64 = 1 << 20;

/// One zstd frame of the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Offset of the frame in the file.
    pub offset: u64,
    /// Compressed size.
    pub compressed: u64,
    /// Size of its content once decompressed.
    pub decompressed: u64,
}

/// Where every frame of a bundle starts, read from its seek table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameTable {
    /// Frames in file order.
    pub frames: Vec<Frame>,
}

impl FrameTable {
    /// Reads the seek table at the end of `file`. `Ok(None)` when there is none (a
    /// bundle written as one frame, or by another tool); an error when there is one
    /// whose frames do not tile the file exactly.
    pub fn read(file: &mut File) -> io::Result<Option<FrameTable>> {
        let len = file.metadata()?.len();
        if len < FOOTER_SIZE + 8 {
            return Ok(None);
        }
        let mut footer = [0u8; FOOTER_SIZE as usize];
        file.seek(SeekFrom::Start(len - FOOTER_SIZE))?;
        file.read_exact(&mut footer)?;
        if u32_at(&footer, 5) != SEEKABLE_MAGIC {
            return Ok(None);
        }
        let count = u64::from(u32_at(&footer, 0));
        // Bit 7: each entry carries a checksum too (not used here; frames have their own).
        // The other bits are reserved and ignored, as the format says.
        let entry_size = if footer[4] & 0x80 != 0 {
            12
        } else {
            ENTRY_SIZE
        };
        let table_len = 8 + count * entry_size + FOOTER_SIZE;
        if count > MAX_FRAMES || table_len > len {
            return Err(invalid("seek table larger than the file"));
        }
        let mut table = vec![0u8; (table_len - FOOTER_SIZE) as usize];
        file.seek(SeekFrom::Start(len - table_len))?;
        file.read_exact(&mut table)?;
        if u32_at(&table, 0) != SKIPPABLE_MAGIC || u64::from(u32_at(&table, 4)) != table_len - 8 {
            return Err(invalid("seek table header does not match its footer"));
        }
        let mut frames = Vec::with_capacity(count as usize);
        let mut offset = 0u64;
        for i in 0..count as usize {
            let at = 8 + i * entry_size as usize;
            let compressed = u64::from(u32_at(&table, at));
            let decompressed = u64::from(u32_at(&table, at + 4));
            frames.push(Frame {
                offset,
                compressed,
                decompressed,
            });
            offset += compressed;
        }
        if offset != len - table_len {
            return Err(invalid("seek table frames do not add up to the file size"));
        }
        Ok(Some(FrameTable { frames }))
    }
}

/// Walks the zstd frames of `file` up to byte `end` (the seek table's start, or the
/// file's end) without decoding them: every frame must be a zstd frame whose window is
/// at most 2^[`crate::MAX_WINDOW_LOG`] bytes. A skippable frame is refused: the format
/// defines only the seek table, and that lies beyond `end`; decoders would skip any
/// other silently, so bytes no check ever saw would travel inside a verified bundle.
/// Costs a few reads per 128 KiB block, never a decode.
pub fn check_structure(file: &mut File, end: u64) -> io::Result<()> {
    file.seek(SeekFrom::Start(0))?;
    let mut r = io::BufReader::with_capacity(64 * 1024, &mut *file);
    let mut at = 0u64;
    while at < end {
        at = check_frame(&mut r, at)?;
        if at > end {
            return Err(invalid(&format!(
                "zstd frame runs past byte {end}, where the seek table starts"
            )));
        }
    }
    drop(r);
    file.seek(SeekFrom::Start(0))?;
    Ok(())
}

/// Checks one frame starting at `at`; returns where the next one starts.
fn check_frame(r: &mut io::BufReader<&mut File>, at: u64) -> io::Result<u64> {
    let mut pos = at;
    let take = |r: &mut io::BufReader<&mut File>, n: usize| -> io::Result<u64> {
        let mut buf = [0u8; 8];
        r.read_exact(&mut buf[..n])?;
        Ok(u64::from_le_bytes(buf))
    };
    let header_start = r.stream_position()?;
    let magic = take(r, 4)? as u32;
    if magic & 0xFFFF_FFF0 == 0x184D_2A50 {
        return Err(invalid(&format!(
            "a skippable zstd frame at byte {at}, which the bundle format does not define"
        )));
    }
    if magic != 0xFD2F_B528 {
        return Err(invalid(&format!("no zstd frame at byte {at}")));
    }
    let fhd = take(r, 1)? as u8;
    let single = fhd & 0x20 != 0;
    let mut window = 0u64;
    if !single {
        let wd = take(r, 1)? as u8;
        let base = 1u64 << (10 + (wd >> 3));
        window = base + (base / 8) * u64::from(wd & 7);
    }
    let _dict = take(r, [0, 1, 2, 4][usize::from(fhd & 3)])?;
    let fcs_len = match fhd >> 6 {
        0 => usize::from(single),
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let fcs = take(r, fcs_len)? + if fcs_len == 2 { 256 } else { 0 };
    if single {
        window = fcs;
    }
    if window > 1 << crate::MAX_WINDOW_LOG {
        return Err(invalid(&format!(
            "zstd frame at byte {at} needs a window of {} MiB; bundles use at most {} MiB",
            window >> 20,
            1u64 << (crate::MAX_WINDOW_LOG - 20)
        )));
    }
    loop {
        let block = take(r, 3)?;
        let size = block >> 3;
        let content = match (block >> 1) & 3 {
            0 | 2 => size,
            1 => 1,
            _ => {
                return Err(invalid(&format!(
                    "zstd frame at byte {at} has a reserved block type"
                )))
            }
        };
        r.seek_relative(content as i64)?;
        if block & 1 == 1 {
            break;
        }
    }
    if fhd & 0x04 != 0 {
        take(r, 4)?;
    }
    pos += r.stream_position()? - header_start;
    Ok(pos)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// A zstd writer that ends a frame whenever told to ([`FrameWriter::cut`]) and writes
/// the seek table at the end. Frames are compressed with zstd's own worker threads.
pub struct FrameWriter<W: Write> {
    encoder: zstd::stream::raw::Encoder<'static>,
    out: HashingWriter<W>,
    buf: Vec<u8>,
    /// Decompressed bytes in the frame being written.
    current: u64,
    /// Compressed offset where the current frame started.
    started_at: u64,
    frames: Vec<(u64, u64)>,
    /// False once a frame is too large for the table's 32-bit sizes: no table then.
    seekable: bool,
}

impl<W: Write> FrameWriter<W> {
    /// A writer at zstd `level` with `threads` workers (0: no worker threads), each
    /// frame carrying a content checksum.
    pub fn new(out: W, level: i32, threads: u32) -> io::Result<Self> {
        use zstd::stream::raw::CParameter;
        let mut encoder = zstd::stream::raw::Encoder::new(level)?;
        encoder.set_parameter(CParameter::ChecksumFlag(true))?;
        if threads > 0 {
            encoder.set_parameter(CParameter::NbWorkers(threads))?;
        }
        Ok(Self {
            encoder,
            out: HashingWriter::new(out),
            buf: vec![0u8; zstd::zstd_safe::CCtx::out_size()],
            current: 0,
            started_at: 0,
            frames: Vec::new(),
            seekable: true,
        })
    }

    /// Decompressed bytes written into the current frame.
    pub fn frame_len(&self) -> u64 {
        self.current
    }

    /// Ends the current frame (nothing when it is empty); the next byte starts a new one.
    pub fn cut(&mut self) -> io::Result<()> {
        if self.current == 0 {
            return Ok(());
        }
        use zstd::stream::raw::{Operation, OutBuffer};
        loop {
            let mut out = OutBuffer::around(&mut self.buf[..]);
            let remaining = self.encoder.finish(&mut out, false)?;
            let n = out.pos();
            self.out.write_all(&self.buf[..n])?;
            if remaining == 0 {
                break;
            }
        }
        self.encoder.reinit()?;
        let end = self.out.len();
        let compressed = end - self.started_at;
        if compressed > u64::from(u32::MAX) || self.current > u64::from(u32::MAX) {
            self.seekable = false;
        }
        self.frames.push((compressed, self.current));
        self.started_at = end;
        self.current = 0;
        Ok(())
    }

    /// Ends the last frame, writes the seek table (unless a frame was too large for it)
    /// and returns the output with the SHA-256 and size of everything written.
    pub fn finish(mut self) -> io::Result<FramesWritten<W>> {
        self.cut()?;
        if self.seekable {
            let count = self.frames.len() as u64;
            let mut table = Vec::with_capacity((8 + count * ENTRY_SIZE + FOOTER_SIZE) as usize);
            table.extend_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
            let size = (count * ENTRY_SIZE + FOOTER_SIZE) as u32;
            table.extend_from_slice(&size.to_le_bytes());
            for (c, d) in &self.frames {
                table.extend_from_slice(&(*c as u32).to_le_bytes());
                table.extend_from_slice(&(*d as u32).to_le_bytes());
            }
            table.extend_from_slice(&(count as u32).to_le_bytes());
            table.push(0);
            table.extend_from_slice(&SEEKABLE_MAGIC.to_le_bytes());
            self.out.write_all(&table)?;
        }
        let (out, sha256, size) = self.out.finish();
        Ok(FramesWritten {
            out,
            sha256,
            size,
            frames: self.frames.len(),
            seekable: self.seekable,
        })
    }
}

/// What [`FrameWriter::finish`] wrote.
pub struct FramesWritten<W> {
    /// The output.
    pub out: W,
    /// SHA-256 of the whole file.
    pub sha256: crate::Sha256Digest,
    /// Its size.
    pub size: u64,
    /// zstd frames (the seek table not counted).
    pub frames: usize,
    /// Whether the seek table was written (every frame below 4 GiB).
    pub seekable: bool,
}

impl<W: Write> Write for FrameWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
        let mut input = InBuffer::around(data);
        while input.pos() < data.len() {
            let mut out = OutBuffer::around(&mut self.buf[..]);
            self.encoder.run(&mut input, &mut out)?;
            let n = out.pos();
            self.out.write_all(&self.buf[..n])?;
        }
        self.current += data.len() as u64;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `parts` as frames (one cut after each) and returns the file.
    fn write_frames(parts: &[&[u8]], threads: u32) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut w = FrameWriter::new(file.reopen().unwrap(), 3, threads).unwrap();
        for p in parts {
            w.write_all(p).unwrap();
            w.cut().unwrap();
        }
        let done = w.finish().unwrap();
        assert!(done.seekable);
        file
    }

    #[test]
    fn frames_tile_the_file_and_decode_to_their_parts() {
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let parts: [&[u8]; 3] = [b"first", &big, b"third part"];
        for threads in [0, 2] {
            let file = write_frames(&parts, threads);
            let mut f = file.reopen().unwrap();
            let table = FrameTable::read(&mut f).unwrap().expect("a seek table");
            assert_eq!(table.frames.len(), 3);
            for (frame, part) in table.frames.iter().zip(parts) {
                assert_eq!(frame.decompressed, part.len() as u64);
                f.seek(SeekFrom::Start(frame.offset)).unwrap();
                let mut out = Vec::new();
                zstd::stream::read::Decoder::new((&mut f).take(frame.compressed))
                    .unwrap()
                    .single_frame()
                    .read_to_end(&mut out)
                    .unwrap();
                assert_eq!(out, part);
            }
            // The whole file is still one zstd stream to `zstd -d`.
            let all = zstd::decode_all(file.reopen().unwrap()).unwrap();
            assert_eq!(all, parts.concat());
        }
    }

    #[test]
    fn a_file_without_table_has_none_and_a_lying_table_is_an_error() {
        let plain = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(plain.path(), zstd::encode_all(&b"hello"[..], 3).unwrap()).unwrap();
        assert_eq!(
            FrameTable::read(&mut plain.reopen().unwrap()).unwrap(),
            None
        );

        let file = write_frames(&[b"one", b"two"], 0);
        let mut bytes = std::fs::read(file.path()).unwrap();
        let n = bytes.len();
        // First entry's compressed size (just after the 8-byte skippable header).
        let at = n - 9 - 16;
        bytes[at] ^= 1;
        std::fs::write(file.path(), &bytes).unwrap();
        let err = FrameTable::read(&mut file.reopen().unwrap()).unwrap_err();
        assert!(err.to_string().contains("do not add up"), "{err}");
    }
}
