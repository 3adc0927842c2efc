//! Output writers: results appear under their final name only when complete, so a crash or an
//! interrupted run never leaves a truncated file that looks like a finished one.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::reader::DataError;

const BUF_SIZE: usize = 1 << 16;
const ZSTD_LEVEL: i32 = 3;
/// The temporary file of output `NAME` is `.NAME.XXXXXX.part` (six random letters or digits),
/// next to it.
const PART_SUFFIX: &str = ".part";
const PART_RANDOM_LEN: usize = 6;
/// A temporary file younger than this is never taken for a leftover, whatever its lock says
/// (it may be one whose writer has not locked it yet).
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// Prefixes an I/O error with the path it concerns: `io::Error`s carry no path of their own.
fn with_path(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// A file that appears under its final name only when complete.
///
/// Writes go, buffered, to a temporary file in the destination's directory (so that the final
/// rename stays on one filesystem and is atomic). [`AtomicFile::commit`] flushes, fsyncs and
/// renames it over the destination; dropped without a commit, it removes the temporary file
/// and leaves any existing destination as it was.
///
/// A process killed before it commits (SIGKILL, a node lost, `scancel`) cannot remove its
/// temporary file, so the file is recognisable (`.NAME.XXXXXX.part`) and held under the
/// operating system's advisory lock while written: the next write of the same output removes
/// every such file of it that no live process holds.
///
/// A destination that exists and is not a regular file (`/dev/null`, a named pipe, a terminal)
/// is written in place: renaming over it would replace the device or pipe itself with a file
/// (for root, `-o /dev/null` would turn the machine's `/dev/null` into a regular file).
pub struct AtomicFile {
    dest: PathBuf,
    /// `None` once committed.
    inner: Option<Target>,
}

/// Where an [`AtomicFile`]'s bytes go until it is committed.
enum Target {
    Temporary(BufWriter<tempfile::NamedTempFile>),
    /// A special file (device, pipe), written as it is.
    InPlace(BufWriter<std::fs::File>),
}

impl AtomicFile {
    /// Starts writing `dest`, creating its parent directories if they are missing.
    pub fn create(dest: &Path) -> io::Result<Self> {
        if std::fs::metadata(dest).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(dest)
                .map_err(|e| with_path(dest, e))?;
            return Ok(Self {
                dest: dest.to_path_buf(),
                inner: Some(Target::InPlace(BufWriter::with_capacity(BUF_SIZE, file))),
            });
        }
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(parent).map_err(|e| with_path(parent, e))?;
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let prefix = format!(".{name}.");
        remove_stale_parts(parent, &prefix);
        let tmp = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(PART_SUFFIX)
            .rand_bytes(PART_RANDOM_LEN)
            .tempfile_in(parent)
            .map_err(|e| with_path(dest, e))?;
        // Held until the file is committed or dropped (or the process ends, however it ends):
        // what tells a live temporary file from a leftover. A filesystem without locks only
        // loses that cleanup.
        if let Err(e) = tmp.as_file().try_lock() {
            tracing::debug!("cannot lock {}: {e}", tmp.path().display());
        }
        Ok(Self {
            dest: dest.to_path_buf(),
            inner: Some(Target::Temporary(BufWriter::with_capacity(BUF_SIZE, tmp))),
        })
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.dest
    }

    /// Flushes, fsyncs and renames the file onto its destination, replacing any file there.
    pub fn commit(mut self) -> io::Result<()> {
        let dest = self.dest.clone();
        let inner = match self.inner.take().expect("present until commit") {
            Target::Temporary(inner) => inner,
            Target::InPlace(mut file) => return file.flush().map_err(|e| with_path(&dest, e)),
        };
        let tmp = inner
            .into_inner()
            .map_err(|e| with_path(&dest, e.into_error()))?;
        // Outputs are for people and pipelines, not secrets: keep an existing file's mode, else
        // the usual 0644 rather than tempfile's 0600.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let perms = std::fs::metadata(&dest)
                .map(|m| m.permissions())
                .unwrap_or_else(|_| std::fs::Permissions::from_mode(0o644));
            tmp.as_file()
                .set_permissions(perms)
                .map_err(|e| with_path(&dest, e))?;
        }
        tmp.as_file().sync_all().map_err(|e| with_path(&dest, e))?;
        tmp.persist(&dest).map_err(|e| with_path(&dest, e.error))?;
        // Make the rename itself durable; not every platform can open a directory, and the
        // file is complete either way, so this is best effort.
        #[cfg(unix)]
        if let Some(dir) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }

    fn writer(&mut self) -> &mut dyn Write {
        match self.inner.as_mut().expect("present until commit") {
            Target::Temporary(w) => w,
            Target::InPlace(w) => w,
        }
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer().write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.writer().write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer().flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.inner.is_some() {
            // The temporary file is removed by its own Drop.
            tracing::debug!("output {} not committed; discarded", self.dest.display());
        }
    }
}

/// Removes the temporary files `{prefix}XXXXXX.part` in `dir` that an interrupted write of the
/// same output left behind: those no process holds locked, and not brand new. Best effort: a
/// file that cannot be inspected or removed stays.
fn remove_stale_parts(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(random) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|n| n.strip_suffix(PART_SUFFIX))
        else {
            continue;
        };
        // Only this output's: `.a.jsonl.b.XXXXXX.part` belongs to `a.jsonl.b`.
        if random.len() != PART_RANDOM_LEN || !random.bytes().all(|b| b.is_ascii_alphanumeric()) {
            continue;
        }
        let path = entry.path();
        let Ok(file) = std::fs::File::open(&path) else {
            continue;
        };
        let old = file
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= STALE_AFTER);
        if old && file.try_lock().is_ok() && std::fs::remove_file(&path).is_ok() {
            tracing::info!(
                "removed {}, left by an interrupted write of this output",
                path.display()
            );
        }
    }
}

enum Sink {
    Stdout(BufWriter<io::Stdout>),
    Plain(AtomicFile),
    Gzip(flate2::write::GzEncoder<AtomicFile>),
    Zstd(zstd::stream::write::Encoder<'static, AtomicFile>),
}

/// Writes `value` as pretty-printed JSON and a newline to `path` (`-`: stdout), atomically: the
/// one way run summaries, shard stats and manifests are written. Errors name the path.
pub fn write_json_atomic(path: &Path, value: &impl Serialize) -> io::Result<()> {
    let named = |e: io::Error| io::Error::new(e.kind(), format!("writing {}: {e}", path.display()));
    let mut out = create_output(Some(path))?;
    serde_json::to_writer_pretty(&mut out, value).map_err(|e| named(e.into()))?;
    out.write_all(b"\n").map_err(named)?;
    out.finish().map_err(named)
}

/// Where results go: stdout, or an [`AtomicFile`] compressed according to its extension
/// (`.gz`: gzip, `.zst`/`.zstd`: zstd). Nothing appears under a file's name before
/// [`Output::finish`].
pub struct Output {
    sink: Sink,
}

/// Refuses outputs that are one of the input files, however named (the same path, another path
/// to it, a link): an output replaces its file when it is committed, so `score x.jsonl -o
/// x.jsonl` would replace the corpus with its scores. Checked before anything is written;
/// stdout (`-`) and outputs that do not exist yet are never inputs.
pub fn refuse_overwriting_inputs(
    inputs: &[PathBuf],
    outputs: &[Option<&Path>],
) -> Result<(), DataError> {
    let identity = |p: &Path| -> Option<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
    };
    let inputs: Vec<((u64, u64), &PathBuf)> = inputs
        .iter()
        .filter(|p| p.as_os_str() != "-")
        .filter_map(|p| identity(p).map(|id| (id, p)))
        .collect();
    for out in outputs.iter().flatten() {
        if out.as_os_str() == "-" {
            continue;
        }
        let Some(id) = identity(out) else { continue };
        if let Some((_, input)) = inputs.iter().find(|(i, _)| *i == id) {
            return Err(DataError::OutputIsInput {
                output: out.to_path_buf(),
                input: input.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// Opens an output; `None` or `-` is stdout, anything else a file committed by
/// [`Output::finish`]. Errors name the path.
pub fn create_output(path: Option<&Path>) -> io::Result<Output> {
    let sink = match path {
        None => Sink::Stdout(BufWriter::with_capacity(BUF_SIZE, io::stdout())),
        Some(p) if p.as_os_str() == "-" => {
            Sink::Stdout(BufWriter::with_capacity(BUF_SIZE, io::stdout()))
        }
        Some(p) => {
            let file = AtomicFile::create(p)?;
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            if name.ends_with(".gz") {
                Sink::Gzip(flate2::write::GzEncoder::new(
                    file,
                    flate2::Compression::default(),
                ))
            } else if name.ends_with(".zst") || name.ends_with(".zstd") {
                Sink::Zstd(
                    zstd::stream::write::Encoder::new(file, ZSTD_LEVEL)
                        .map_err(|e| with_path(p, e))?,
                )
            } else {
                Sink::Plain(file)
            }
        }
    };
    Ok(Output { sink })
}

impl Output {
    /// Completes the output: flushes stdout, or ends the compressed stream and commits the file.
    pub fn finish(self) -> io::Result<()> {
        match self.sink {
            Sink::Stdout(mut s) => s.flush(),
            Sink::Plain(f) => f.commit(),
            Sink::Gzip(g) => g.finish()?.commit(),
            Sink::Zstd(z) => z.finish()?.commit(),
        }
    }

    /// Whether this writes to stdout (callers keep other output off stdout then).
    pub fn is_stdout(&self) -> bool {
        matches!(self.sink, Sink::Stdout(_))
    }

    /// The destination file, or `None` for stdout.
    pub fn path(&self) -> Option<&Path> {
        match &self.sink {
            Sink::Stdout(_) => None,
            Sink::Plain(f) => Some(f.path()),
            Sink::Gzip(g) => Some(g.get_ref().path()),
            Sink::Zstd(z) => Some(z.get_ref().path()),
        }
    }

    fn writer(&mut self) -> &mut dyn Write {
        match &mut self.sink {
            Sink::Stdout(s) => s,
            Sink::Plain(f) => f,
            Sink::Gzip(g) => g,
            Sink::Zstd(z) => z,
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer().write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.writer().write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer().flush()
    }
}

/// Writes one compact JSON value per line (JSON Lines), the format the inputs come in and
/// that `pandas.read_json(lines=True)` and `datasets` read back.
pub struct JsonlWriter<W: Write> {
    inner: W,
    line: Vec<u8>,
    lines: u64,
}

impl<W: Write> JsonlWriter<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            line: Vec::new(),
            lines: 0,
        }
    }

    /// Writes `value` and a newline. The value is serialized in full before anything is
    /// written, so one that fails to serialize leaves no partial line behind.
    pub fn write<T: Serialize + ?Sized>(&mut self, value: &T) -> io::Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, value)?;
        self.line.push(b'\n');
        self.inner.write_all(&self.line)?;
        self.lines += 1;
        Ok(())
    }

    /// Lines written so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl JsonlWriter<Output> {
    /// Finishes the underlying [`Output`] (commits the file).
    pub fn finish(self) -> io::Result<()> {
        self.inner.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[cfg(unix)]
    #[test]
    fn a_special_file_is_written_in_place_never_replaced() {
        use std::os::unix::fs::FileTypeExt;
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("rows.jsonl");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
        };
        let mut out = create_output(Some(&fifo)).unwrap();
        out.write_all(b"{\"id\": 1}\n").unwrap();
        out.finish().unwrap();
        // Checked before joining the reader, which would wait forever on a replaced pipe.
        let kind = std::fs::symlink_metadata(&fifo).unwrap().file_type();
        assert!(kind.is_fifo(), "the pipe was replaced: {kind:?}");
        assert_eq!(reader.join().unwrap(), "{\"id\": 1}\n");
        assert_eq!(files_in(d.path()), ["rows.jsonl"], "no temporary file left");
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn dropped_without_commit_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("new/dir/rows.jsonl");
        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(&vec![b'x'; 3 * BUF_SIZE]).unwrap();
        assert!(!dest.exists());
        assert_eq!(
            files_in(&d.path().join("new/dir")).len(),
            1,
            "one temp file"
        );
        drop(f);
        assert!(!dest.exists());
        assert!(
            files_in(&d.path().join("new/dir")).is_empty(),
            "temp file removed"
        );
    }

    /// A run killed before its commit leaves its temporary file: the next write of the same
    /// output removes it, and leaves a live writer's file and other outputs' files alone.
    #[test]
    fn leftover_temporary_files_are_removed_at_the_next_write() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("rows.jsonl");
        let aged = |name: &str| {
            let p = d.path().join(name);
            let f = std::fs::File::create(&p).unwrap();
            f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600))
                .unwrap();
            p
        };
        // What a SIGKILL during the final write leaves (the writer's lock died with it).
        let leftover = aged(".rows.jsonl.a1B2c3.part");
        // Not this output's: another output's leftover, and a user's file.
        let other = aged(".rows.jsonl.b.a1B2c3.part");
        let user = aged(".rows.jsonl.notes.part");
        // A live writer of the same output, its file as old as the leftover.
        let mut live = AtomicFile::create(&dest).unwrap();
        live.write_all(b"live").unwrap();
        live.flush().unwrap();
        let Some(Target::Temporary(tmp)) = &live.inner else {
            panic!("a new file is written through a temporary file")
        };
        let live_tmp = tmp.get_ref().path().to_path_buf();
        std::fs::File::options()
            .write(true)
            .open(&live_tmp)
            .unwrap()
            .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600))
            .unwrap();
        // A brand-new unlocked one (a writer between creating and locking it).
        let fresh = d.path().join(".rows.jsonl.Zz9Zz9.part");
        std::fs::write(&fresh, b"").unwrap();

        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(b"done\n").unwrap();
        f.commit().unwrap();
        assert!(!leftover.exists(), "the leftover is removed");
        assert!(other.exists() && user.exists() && fresh.exists());
        assert!(live_tmp.exists(), "a live writer's file is kept");
        live.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"live");
    }

    #[test]
    fn commit_creates_the_file() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("rows.jsonl");
        let mut f = AtomicFile::create(&dest).unwrap();
        assert_eq!(f.path(), dest);
        f.write_all(b"done\n").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"done\n");
        assert_eq!(files_in(d.path()), vec!["rows.jsonl"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&dest).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644);
        }
    }

    #[test]
    fn an_existing_destination_is_replaced_only_at_commit() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("rows.jsonl");
        std::fs::write(&dest, b"old").unwrap();
        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(b"new").unwrap();
        f.flush().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        drop(f);
        assert_eq!(std::fs::read(&dest).unwrap(), b"old", "abandoned: old kept");
        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(b"new").unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        f.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
        assert_eq!(files_in(d.path()), vec!["rows.jsonl"]);
    }

    #[test]
    fn creation_errors_name_the_path() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("file"), b"").unwrap();
        let bad = d.path().join("file/sub/rows.jsonl");
        let e = create_output(Some(&bad))
            .err()
            .expect("a file is not a directory");
        assert!(
            e.to_string()
                .contains(&d.path().join("file/sub").display().to_string()),
            "{e}"
        );
    }

    #[test]
    fn a_bare_file_name_goes_in_the_current_directory() {
        // `Path::new("x").parent()` is `Some("")`, which must mean ".", not an error.
        let name = format!("hesnr-atomic-test-{}.jsonl", std::process::id());
        let mut f = AtomicFile::create(Path::new(&name)).unwrap();
        f.write_all(b"x").unwrap();
        drop(f);
        assert!(!Path::new(&name).exists());
    }

    #[test]
    fn outputs_compress_by_extension_and_appear_at_finish() {
        let d = tempfile::tempdir().unwrap();
        for name in ["a.jsonl", "b.jsonl.gz", "c.jsonl.zst", "d.JSONL.ZSTD"] {
            let p = d.path().join(name);
            let out = create_output(Some(&p)).unwrap();
            assert!(!out.is_stdout());
            assert_eq!(out.path(), Some(p.as_path()));
            let mut w = JsonlWriter::new(out);
            w.write(&serde_json::json!({"id": "a", "x": 1.5})).unwrap();
            w.write(&serde_json::json!({"id": "b", "x": null})).unwrap();
            assert_eq!(w.lines(), 2);
            assert!(!p.exists(), "{name} visible before finish");
            w.finish().unwrap();
            let raw = std::fs::read(&p).unwrap();
            let text = if name.ends_with(".gz") {
                let mut s = String::new();
                flate2::read::MultiGzDecoder::new(&raw[..])
                    .read_to_string(&mut s)
                    .unwrap();
                s
            } else if name.to_lowercase().contains(".zst") {
                String::from_utf8(zstd::decode_all(&raw[..]).unwrap()).unwrap()
            } else {
                String::from_utf8(raw).unwrap()
            };
            assert_eq!(
                text, "{\"id\":\"a\",\"x\":1.5}\n{\"id\":\"b\",\"x\":null}\n",
                "{name}"
            );
        }
    }

    #[test]
    fn an_unfinished_output_is_discarded() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("rows.jsonl.gz");
        let mut out = create_output(Some(&p)).unwrap();
        out.write_all(b"partial").unwrap();
        drop(out);
        assert!(files_in(d.path()).is_empty());
    }

    #[test]
    fn dash_and_none_are_stdout() {
        assert!(create_output(None).unwrap().is_stdout());
        assert!(create_output(Some(Path::new("-"))).unwrap().is_stdout());
        assert_eq!(create_output(None).unwrap().path(), None);
    }

    #[test]
    fn a_value_that_fails_to_serialize_writes_nothing() {
        let mut w = JsonlWriter::new(Vec::new());
        w.write(&serde_json::json!({"ok": true})).unwrap();
        let mut bad = std::collections::BTreeMap::new();
        bad.insert((1, 2), "tuple keys are not JSON");
        let e = w.write(&bad).unwrap_err();
        assert!(e.to_string().contains("key must be a string"), "{e}");
        w.write("plain").unwrap();
        assert_eq!(w.lines(), 2);
        assert_eq!(w.into_inner(), b"{\"ok\":true}\n\"plain\"\n");
    }
}
