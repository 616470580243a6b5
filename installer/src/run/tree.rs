//! A folder of the deploy node (the yum repository extracted from the bundle) as a
//! deterministic tar stream: files sorted, mode 0644, no times or owners. Its digest
//! tells whether a host already has this exact tree; the stream is produced on a
//! thread while the host's `tar -x` reads it, so memory stays flat whatever the
//! repository's size.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use bundle_format::digest::HashingWriter;

/// The files of a folder, in the order the tar stream holds them.
#[derive(Debug, Clone)]
pub(crate) struct TreeTar {
    root: PathBuf,
    files: Vec<PathBuf>,
}

impl TreeTar {
    /// Lists the regular files under `root` (`.partial` downloads left out).
    pub fn list(root: &Path) -> io::Result<Self> {
        let mut files = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d)? {
                let e = e?;
                let ft = e.file_type()?;
                if ft.is_dir() {
                    stack.push(e.path());
                } else if ft.is_file() && !e.file_name().to_string_lossy().ends_with(".partial") {
                    files.push(e.path());
                }
            }
        }
        files.sort();
        Ok(TreeTar {
            root: root.to_path_buf(),
            files,
        })
    }

    /// Writes the tar stream to `w`, one file at a time.
    pub fn write(&self, w: impl Write) -> io::Result<()> {
        let mut b = tar::Builder::new(w);
        for f in &self.files {
            let rel = f.strip_prefix(&self.root).expect("listed under the root");
            let file = File::open(f)?;
            let mut h = tar::Header::new_gnu();
            h.set_size(file.metadata()?.len());
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_cksum();
            b.append_data(&mut h, rel, file)?;
        }
        b.into_inner()?.flush()
    }

    /// SHA-256 of the tar stream, hex.
    pub fn digest(&self) -> io::Result<String> {
        let mut w = HashingWriter::new(io::sink());
        self.write(&mut w)?;
        Ok(w.finish().1.hex())
    }

    /// The tar stream as a reader, written by a thread; join the thread for the
    /// outcome of reading the files.
    pub fn stream(self) -> io::Result<(io::PipeReader, JoinHandle<io::Result<()>>)> {
        let (reader, writer) = io::pipe()?;
        let producer = std::thread::spawn(move || self.write(writer));
        Ok((reader, producer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_stream_is_the_tree_and_its_digest_ignores_times() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("repodata")).unwrap();
        std::fs::write(dir.path().join("b.rpm"), vec![7u8; 100_000]).unwrap();
        std::fs::write(dir.path().join("repodata/repomd.xml"), "<repomd/>").unwrap();
        std::fs::write(dir.path().join("c.rpm.partial"), "half").unwrap();
        let tree = TreeTar::list(dir.path()).unwrap();
        let digest = tree.digest().unwrap();

        let (mut reader, producer) = tree.clone().stream().unwrap();
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).unwrap();
        producer.join().unwrap().unwrap();
        assert_eq!(bundle_format::Sha256Digest::of(&bytes).hex(), digest);
        let mut archive = tar::Archive::new(bytes.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["b.rpm", "repodata/repomd.xml"]);

        // Touching a file changes nothing; changing its content changes the digest.
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
        File::options()
            .write(true)
            .open(dir.path().join("b.rpm"))
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_eq!(TreeTar::list(dir.path()).unwrap().digest().unwrap(), digest);
        std::fs::write(dir.path().join("b.rpm"), vec![8u8; 100_000]).unwrap();
        assert_ne!(TreeTar::list(dir.path()).unwrap().digest().unwrap(), digest);
    }

    #[test]
    fn a_file_that_cannot_be_read_is_an_error_of_the_producer() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.rpm"), "x").unwrap();
        let tree = TreeTar::list(dir.path()).unwrap();
        std::fs::remove_file(dir.path().join("a.rpm")).unwrap();
        let (mut reader, producer) = tree.stream().unwrap();
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).unwrap();
        assert_eq!(
            producer.join().unwrap().unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }
}
