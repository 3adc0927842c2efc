use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// A file that appears under its final name only when complete.
///
/// Writes go to a temporary file in the destination's folder; [`AtomicFile::commit`] flushes,
/// fsyncs and renames it over the destination. Dropped without commit, it leaves nothing behind.
pub struct AtomicFile {
    dest: PathBuf,
    inner: BufWriter<tempfile::NamedTempFile>,
}

impl AtomicFile {
    pub fn create(dest: &Path) -> io::Result<Self> {
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent)?;
        let tmp = tempfile::Builder::new()
            .prefix(".hesnr-")
            .suffix(".part")
            .tempfile_in(&parent)?;
        Ok(Self {
            dest: dest.to_path_buf(),
            inner: BufWriter::with_capacity(1 << 16, tmp),
        })
    }

    pub fn commit(self) -> io::Result<()> {
        let tmp = self.inner.into_inner().map_err(|e| e.into_error())?;
        tmp.as_file().sync_all()?;
        // Outputs are for people and pipelines, not secrets: the usual 0644, not tempfile's 0600.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))?;
        }
        tmp.persist(&self.dest).map_err(|e| e.error)?;
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

enum Sink {
    Stdout(io::Stdout),
    Plain(AtomicFile),
    Gzip(flate2::write::GzEncoder<AtomicFile>),
    Zstd(zstd::stream::write::Encoder<'static, AtomicFile>),
}

/// Where results go: stdout, or an atomically written file compressed by its extension
/// (`.gz`, `.zst`).
pub struct Output {
    sink: Sink,
}

/// Opens an output; `None` or `-` is stdout.
pub fn create_output(path: Option<&Path>) -> io::Result<Output> {
    let sink = match path {
        None => Sink::Stdout(io::stdout()),
        Some(p) if p.as_os_str() == "-" => Sink::Stdout(io::stdout()),
        Some(p) => {
            let file = AtomicFile::create(p)?;
            let name = p.to_string_lossy().to_lowercase();
            if name.ends_with(".gz") {
                Sink::Gzip(flate2::write::GzEncoder::new(
                    file,
                    flate2::Compression::default(),
                ))
            } else if name.ends_with(".zst") || name.ends_with(".zstd") {
                Sink::Zstd(zstd::stream::write::Encoder::new(file, 3)?)
            } else {
                Sink::Plain(file)
            }
        }
    };
    Ok(Output { sink })
}

impl Output {
    /// Completes the output: flushes stdout, or finishes compression and commits the file.
    pub fn finish(self) -> io::Result<()> {
        match self.sink {
            Sink::Stdout(mut s) => s.flush(),
            Sink::Plain(f) => f.commit(),
            Sink::Gzip(g) => g.finish()?.commit(),
            Sink::Zstd(z) => z.finish()?.commit(),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.sink {
            Sink::Stdout(s) => s.write(buf),
            Sink::Plain(f) => f.write(buf),
            Sink::Gzip(g) => g.write(buf),
            Sink::Zstd(z) => z.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.sink {
            Sink::Stdout(s) => s.flush(),
            Sink::Plain(f) => f.flush(),
            Sink::Gzip(g) => g.flush(),
            Sink::Zstd(z) => z.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn nothing_appears_until_commit() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("out/rows.jsonl");
        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(b"partial").unwrap();
        assert!(!dest.exists());
        drop(f);
        assert!(!dest.exists());
        assert_eq!(
            std::fs::read_dir(d.path().join("out")).unwrap().count(),
            0,
            "temp file removed"
        );
        std::fs::write(&dest, b"old").unwrap();
        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(b"new").unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        f.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
    }

    #[test]
    fn compressed_outputs_round_trip() {
        let d = tempfile::tempdir().unwrap();
        for name in ["a.jsonl.gz", "b.jsonl.zst"] {
            let p = d.path().join(name);
            let mut o = create_output(Some(&p)).unwrap();
            o.write_all(b"{\"x\":1}\n").unwrap();
            o.finish().unwrap();
            let raw = std::fs::read(&p).unwrap();
            let mut text = String::new();
            if name.ends_with(".gz") {
                flate2::read::GzDecoder::new(&raw[..])
                    .read_to_string(&mut text)
                    .unwrap();
            } else {
                text = String::from_utf8(zstd::decode_all(&raw[..]).unwrap()).unwrap();
            }
            assert_eq!(text, "{\"x\":1}\n");
        }
    }
}
