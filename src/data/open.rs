//! The one way an input file (or stdin) is opened: decompressed by what its first bytes are,
//! not by what it is called, so a gzip file named `data.jsonl` and a zstd stream on a pipe are
//! read like any other. Every reader (documents, trajectories) opens through here, and the file
//! constants live here once.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::OnceLock;

/// The input argument that means standard input.
pub const STDIN_ARG: &str = "-";
/// The name used for standard input in sources, ids and messages.
pub const STDIN_NAME: &str = "<stdin>";
/// Read buffer size (also the chunk a whole-text read checks for UTF-8 at a time).
pub const BUF_SIZE: usize = 1 << 16;
/// The largest record read: one JSON Lines line, or one text file as a document. Far beyond any
/// model's context (a million tokens is a few MiB), and it bounds the memory one bad record (or
/// `/dev/zero`) can take; a larger record is skipped and reported.
pub const MAX_RECORD_BYTES: usize = 256 << 20;
/// The environment variable that sets the record bound in MiB instead of
/// [`MAX_RECORD_BYTES`]: see [`max_record_bytes`].
pub const MAX_RECORD_ENV: &str = "HESNR_MAX_RECORD_MB";
/// The largest file read whole as one JSON value (a trajectory `.json`/`.traj` file, a JSON
/// array of trajectories, an OpenHands event log): such a file is parsed in memory, where it
/// takes several times its size.
pub const MAX_WHOLE_FILE_BYTES: usize = 1 << 30;
/// The environment variable that sets the whole-file bound in MiB instead of
/// [`MAX_WHOLE_FILE_BYTES`]: see [`max_whole_file_bytes`].
pub const MAX_WHOLE_FILE_ENV: &str = "HESNR_MAX_FILE_MB";
/// The largest value either variable takes (1 TiB).
const MAX_LIMIT_MB: usize = 1 << 20;

/// The record bound: `HESNR_MAX_RECORD_MB` MiB when set, else [`MAX_RECORD_BYTES`].
pub fn max_record_bytes() -> usize {
    static LIMIT: OnceLock<usize> = OnceLock::new();
    *LIMIT.get_or_init(|| limit_from_env(MAX_RECORD_ENV, MAX_RECORD_BYTES))
}

/// The whole-file bound: `HESNR_MAX_FILE_MB` MiB when set, else [`MAX_WHOLE_FILE_BYTES`].
pub fn max_whole_file_bytes() -> usize {
    static LIMIT: OnceLock<usize> = OnceLock::new();
    *LIMIT.get_or_init(|| limit_from_env(MAX_WHOLE_FILE_ENV, MAX_WHOLE_FILE_BYTES))
}

/// A limit in bytes from a variable holding MiB (1 to 1048576); a value that is not one is
/// reported once and the default kept.
pub(crate) fn limit_from_env(var: &str, default: usize) -> usize {
    let Ok(value) = std::env::var(var) else {
        return default;
    };
    match value.trim().parse::<usize>() {
        Ok(mb) if (1..=MAX_LIMIT_MB).contains(&mb) => mb << 20,
        _ => {
            tracing::warn!(
                "{var}={value:?} is not a size in MiB (1 to {MAX_LIMIT_MB}); using the default {} MiB",
                default >> 20
            );
            default
        }
    }
}

/// Why something over a bound is refused: `"{what} over N MiB (the limit; VAR=MiB raises it)"`.
pub fn over_limit(what: &str, limit: usize, var: &str) -> String {
    format!(
        "{what} over {} MiB (the limit; {var}=MiB raises it)",
        limit >> 20
    )
}

/// Appends all of `reader` to `buf` unless it holds more than `limit` bytes: `Ok(false)` then,
/// having read `limit + 1` bytes and no more (so `/dev/zero` ends at once).
pub fn read_to_end_bounded(
    reader: &mut dyn Read,
    limit: usize,
    buf: &mut Vec<u8>,
) -> io::Result<bool> {
    let start = buf.len();
    reader.take(limit as u64 + 1).read_to_end(buf)?;
    Ok(buf.len() - start <= limit)
}
/// The UTF-8 byte order mark some editors and Windows tools put first.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";
pub const GZIP_MAGIC: &[u8] = b"\x1f\x8b";
pub const ZSTD_MAGIC: &[u8] = b"\x28\xb5\x2f\xfd";
/// Parquet files start (and end) with these bytes.
pub const PARQUET_MAGIC: &[u8] = b"PAR1";

/// The compression an input turned out to have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// What a read error most likely means: for compressed input, a damaged stream.
    pub fn read_failure(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip stream corrupt or truncated",
            Compression::Zstd => "zstd stream corrupt or truncated",
            Compression::None => "read failed",
        }
    }

    /// The compression the first bytes of a stream announce.
    pub fn from_magic(head: &[u8]) -> Compression {
        if head.starts_with(GZIP_MAGIC) {
            Compression::Gzip
        } else if head.starts_with(ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// An opened input: its decompressed bytes, and which decompressor they come through.
pub struct Decoded {
    pub reader: Box<dyn BufRead + Send>,
    pub compression: Compression,
    /// A zstd stream whose frames carry no checksum (Python's `zstandard` writes none unless
    /// asked): the verifying pass found its frames whole, but damage that still decodes (a
    /// changed literal byte) cannot be told; [`Decoded::warn_if_unchecked`] says so.
    pub unchecked: bool,
}

impl Decoded {
    /// Warns, naming `source`, when the input could not be fully checked ([`Decoded::unchecked`]).
    pub fn warn_if_unchecked(&self, source: &str) {
        if self.unchecked {
            tracing::warn!(
                "{source}: its zstd frames carry no checksum, so damage that still decodes cannot \
                 be detected (the zstd tool writes one by default; Python's zstandard with \
                 write_checksum=True)"
            );
        }
    }
}

/// Where the bytes of an input come from: a file, which can be read twice (once to verify a
/// compressed stream, once to use it), or a stream (stdin, a pipe), which cannot.
pub enum RawInput {
    File(File),
    Stream(Box<dyn Read + Send>),
}

impl From<File> for RawInput {
    fn from(f: File) -> Self {
        RawInput::File(f)
    }
}

/// Opens a file (`None`: stdin) and decompresses gzip (also concatenated members, as `cat a.gz
/// b.gz` makes) or zstd as its first bytes say; a compressed input is verified whole first
/// (see [`decode`]).
pub fn open_decoded(path: Option<&Path>) -> io::Result<Decoded> {
    match path {
        None => decode(RawInput::Stream(Box::new(io::stdin()))),
        Some(p) => decode(RawInput::File(File::open(p)?)),
    }
}

/// Wraps a byte source in the decompressor its first bytes call for. The magic is read with
/// as many reads as it takes, so a pipe delivering one byte at a time is detected too.
///
/// A compressed input is decompressed once into nothing before it is used, and refused whole
/// (an [`io::ErrorKind::InvalidData`] error naming the compressed byte offset) when it is
/// corrupt or truncated: a gzip member's CRC and length (and a zstd frame's checksum, when it
/// has one) are only known at its end, after the decoder has handed out every byte of it, so
/// without this pass a damaged stream would be scored as garbage before the damage showed. A
/// file is verified in place and read again from its start; a compressed stream (stdin, a pipe)
/// is first copied to an unnamed temporary file, which the system removes when it is closed.
/// The pass costs one extra decompression, no memory.
pub fn decode(raw: RawInput) -> io::Result<Decoded> {
    // A FIFO or a device opened by name (`<(zcat ...)`) cannot be read twice.
    let raw = match raw {
        RawInput::File(f) if !f.metadata().is_ok_and(|m| m.is_file()) => {
            RawInput::Stream(Box::new(f))
        }
        raw => raw,
    };
    let (compression, checked, raw) = match raw {
        RawInput::File(mut f) => {
            let compression = Compression::from_magic(&read_head(&mut f)?);
            f.seek(SeekFrom::Start(0))?;
            let mut checked = true;
            if compression != Compression::None {
                checked = verify_compressed(&mut f, compression)?;
                f.seek(SeekFrom::Start(0))?;
            }
            (compression, checked, Box::new(f) as Box<dyn Read + Send>)
        }
        RawInput::Stream(mut s) => {
            let head = read_head(&mut s)?;
            let compression = Compression::from_magic(&head);
            let mut raw: Box<dyn Read + Send> = Box::new(Cursor::new(head).chain(s));
            let mut checked = true;
            if compression != Compression::None {
                let mut spool = tempfile::tempfile()?;
                io::copy(&mut raw, &mut spool)?;
                spool.seek(SeekFrom::Start(0))?;
                checked = verify_compressed(&mut spool, compression)?;
                spool.seek(SeekFrom::Start(0))?;
                raw = Box::new(spool);
            }
            (compression, checked, raw)
        }
    };
    let decoded: Box<dyn Read + Send> = match compression {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(raw)?),
        Compression::None => raw,
    };
    Ok(Decoded {
        reader: Box::new(BufReader::with_capacity(BUF_SIZE, decoded)),
        compression,
        unchecked: !checked,
    })
}

/// The first bytes of a source, as many as the longest magic (fewer only at its end).
fn read_head(raw: &mut dyn Read) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(ZSTD_MAGIC.len());
    raw.take(ZSTD_MAGIC.len() as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// A buffered reader that counts the bytes its consumer has consumed: where a decoder stopped.
struct Consumed<R> {
    inner: BufReader<R>,
    consumed: u64,
}

impl<R: Read> Read for Consumed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed += n as u64;
        Ok(n)
    }
}

impl<R: Read> BufRead for Consumed<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, n: usize) {
        self.consumed += n as u64;
        self.inner.consume(n);
    }
}

/// Decompresses all of `file` into nothing: `Ok` when every gzip member (CRC and length) or
/// zstd frame (checksum, when present) is whole and sound, else an
/// [`io::ErrorKind::InvalidData`] error saying at which compressed byte the decoder failed.
/// `Ok(false)`: sound as far as can be told, but a zstd stream whose first frame carries no
/// checksum (a file is written with one setting, so its first frame speaks for the rest).
pub fn verify_compressed(file: &mut File, compression: Compression) -> io::Result<bool> {
    let len = file.metadata().map(|m| m.len()).ok();
    let mut input = Consumed {
        inner: BufReader::with_capacity(BUF_SIZE, &mut *file),
        consumed: 0,
    };
    let checksummed = match compression {
        Compression::Zstd => zstd_frame_has_checksum(input.fill_buf()?),
        _ => true,
    };
    let result = match compression {
        Compression::None => return Ok(true),
        Compression::Gzip => io::copy(
            &mut flate2::bufread::MultiGzDecoder::new(&mut input),
            &mut io::sink(),
        ),
        Compression::Zstd => zstd::stream::read::Decoder::with_buffer(&mut input)
            .and_then(|mut d| io::copy(&mut d, &mut io::sink())),
    };
    result.map(|_| checksummed).map_err(|e| {
        let of = len.map_or_else(String::new, |l| format!(" of {l}"));
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} at compressed byte {}{of} ({e}); the whole file is refused, none of it was read",
                compression.read_failure(),
                input.consumed
            ),
        )
    })
}

/// Whether a zstd frame starting at `head` declares a content checksum (bit 2 of its frame
/// header descriptor, RFC 8878 3.1.1.1.1). Anything else (a skippable frame, too few bytes) is
/// taken as checked: only a frame that says it has none is reported.
fn zstd_frame_has_checksum(head: &[u8]) -> bool {
    match head {
        [m0, m1, m2, m3, descriptor, ..] if [*m0, *m1, *m2, *m3] == ZSTD_MAGIC => {
            descriptor & 0b100 != 0
        }
        _ => true,
    }
}

/// Skips a UTF-8 BOM and blank bytes, and returns the first other byte (`None` at the end)
/// with the blank bytes skipped, which the caller puts back with [`put_back`] when they matter
/// (they are part of a text document, and JSON Lines line numbers count them).
///
/// More blanks than the record bound ([`max_record_bytes`]) are not kept: the first blank byte
/// after them is returned as if it were the first other byte, and the readers then find an
/// input that long over their own bounds, instead of a file of blanks filling memory here.
pub fn first_non_blank(reader: &mut Box<dyn BufRead + Send>) -> io::Result<(Option<u8>, Vec<u8>)> {
    first_non_blank_within(reader, max_record_bytes())
}

fn first_non_blank_within(
    reader: &mut Box<dyn BufRead + Send>,
    limit: usize,
) -> io::Result<(Option<u8>, Vec<u8>)> {
    let mut prefix = Vec::new();
    if reader.fill_buf()?.starts_with(BOM) {
        reader.consume(BOM.len());
    }
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok((None, prefix));
        }
        if prefix.len() > limit {
            return Ok((Some(buf[0]), prefix));
        }
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => {
                let first = buf[i];
                prefix.extend_from_slice(&buf[..i]);
                reader.consume(i);
                return Ok((Some(first), prefix));
            }
            None => {
                let n = buf.len();
                prefix.extend_from_slice(buf);
                reader.consume(n);
            }
        }
    }
}

/// `reader` with `prefix` in front of it again.
pub fn put_back(reader: Box<dyn BufRead + Send>, prefix: Vec<u8>) -> Box<dyn BufRead + Send> {
    if prefix.is_empty() {
        reader
    } else {
        Box::new(Cursor::new(prefix).chain(reader))
    }
}

/// Whether a regular file starts with the Parquet magic (for files whose name says nothing).
pub fn starts_with_parquet_magic(path: &Path) -> bool {
    let mut head = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| head == PARQUET_MAGIC)
}

/// The lower-cased file name of `path` without a compression suffix (`.gz`, `.zst`, `.zstd`):
/// what the name says about the layout inside (`data.jsonl.gz` -> `data.jsonl`).
pub fn uncompressed_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    [".gz", ".zst", ".zstd"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .map_or_else(|| name.clone(), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    fn read_all(mut d: Decoded) -> Vec<u8> {
        let mut out = Vec::new();
        d.reader.read_to_end(&mut out).unwrap();
        out
    }

    /// A reader that hands out one byte per read, like a slow pipe.
    struct Trickle(Vec<u8>, usize);

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.1 >= self.0.len() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[self.1];
            self.1 += 1;
            Ok(1)
        }
    }

    #[test]
    fn compression_is_detected_from_the_bytes_not_the_name() {
        let d = tempfile::tempdir().unwrap();
        let data = b"{\"text\": \"one\"}\n{\"text\": \"two\"}\n";
        let cases = [
            ("gz.jsonl", gzip(data), Compression::Gzip),
            (
                "zst.jsonl",
                zstd::encode_all(&data[..], 3).unwrap(),
                Compression::Zstd,
            ),
            ("plain.jsonl.gz", data.to_vec(), Compression::None),
        ];
        for (name, bytes, want) in cases {
            let p = d.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            let opened = open_decoded(Some(&p)).unwrap();
            assert_eq!(opened.compression, want, "{name}");
            assert_eq!(read_all(opened), data, "{name}");
        }
    }

    #[test]
    fn a_stdin_like_reader_is_sniffed_even_one_byte_at_a_time() {
        let data = b"hello\nworld\n";
        for (bytes, want) in [
            (gzip(data), Compression::Gzip),
            (zstd::encode_all(&data[..], 1).unwrap(), Compression::Zstd),
            (data.to_vec(), Compression::None),
        ] {
            let d = decode(RawInput::Stream(Box::new(Trickle(bytes, 0)))).unwrap();
            assert_eq!(d.compression, want);
            assert_eq!(read_all(d), data);
        }
        // Shorter than any magic, and empty.
        assert_eq!(
            read_all(decode(RawInput::Stream(Box::new(Cursor::new(b"x".to_vec())))).unwrap()),
            b"x"
        );
        let empty = decode(RawInput::Stream(Box::new(Cursor::new(Vec::new())))).unwrap();
        assert_eq!(empty.compression, Compression::None);
        assert!(read_all(empty).is_empty());
    }

    /// A zstd stream is checked by its frames' checksums; one written without them is read,
    /// and marked unchecked so that the run can say so (gzip always carries its CRC).
    #[test]
    fn zstd_without_checksums_is_read_and_marked_unchecked() {
        let data = b"one\ntwo\n".repeat(100);
        let plain = {
            let mut z = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
            z.include_checksum(false).unwrap();
            z.write_all(&data).unwrap();
            z.finish().unwrap()
        };
        for (bytes, unchecked) in [
            (plain, true),
            (zstd_checked(&data), false),
            (gzip(&data), false),
            (data.clone(), false),
        ] {
            let d = decode(RawInput::Stream(Box::new(Cursor::new(bytes)))).unwrap();
            assert_eq!(d.unchecked, unchecked, "{:?}", d.compression);
            assert_eq!(read_all(d), data);
        }
        assert!(
            zstd_frame_has_checksum(ZSTD_MAGIC),
            "too short to say: taken as checked"
        );
    }

    fn gzip_stored(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    fn zstd_checked(bytes: &[u8]) -> Vec<u8> {
        let mut z = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        z.include_checksum(true).unwrap();
        z.write_all(bytes).unwrap();
        z.finish().unwrap()
    }

    /// Damaged streams whose decoder hands out bytes before it finds the damage: the file is
    /// refused before a byte of it is read, with the compressed offset, and a stream (stdin) is
    /// refused the same way.
    #[test]
    fn a_corrupt_or_truncated_compressed_input_is_refused_before_any_byte_is_read() {
        let data: Vec<u8> = (0..20_000)
            .flat_map(|i| format!("{{\"id\": {i}, \"text\": \"line {i}\"}}\n").into_bytes())
            .collect();
        // A stored deflate block with one byte changed decodes without complaint to garbage
        // text; only the CRC at the member's end tells.
        let mut flipped = gzip_stored(&data);
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x20;
        let gz = gzip(&data);
        let zst = zstd_checked(&data);
        let mut bad_checksum = zst.clone();
        let n = bad_checksum.len();
        bad_checksum[n - 1] ^= 0xff;
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("flipped byte, gzip", flipped, "gzip"),
            ("truncated gzip", gz[..gz.len() / 2].to_vec(), "gzip"),
            (
                "gzip without its trailer",
                gz[..gz.len() - 8].to_vec(),
                "gzip",
            ),
            ("gzip, then garbage", [&gz[..], b"garbage"].concat(), "gzip"),
            ("truncated zstd", zst[..zst.len() / 2].to_vec(), "zstd"),
            ("zstd, bad checksum", bad_checksum, "zstd"),
        ];
        let d = tempfile::tempdir().unwrap();
        for (name, bytes, what) in cases {
            let p = d.path().join("bad.jsonl");
            std::fs::write(&p, &bytes).unwrap();
            let e = open_decoded(Some(&p)).err().expect(name);
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{name}: {e}");
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!(
                    "{what} stream corrupt or truncated at compressed byte "
                )) && msg.contains(&format!(" of {}", bytes.len()))
                    && msg.contains("the whole file is refused"),
                "{name}: {msg}"
            );
            let e = decode(RawInput::Stream(Box::new(Cursor::new(bytes))))
                .err()
                .expect(name);
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{name} (stream): {e}");
        }
        // The offset is where the decoder stopped: for a truncated stream, its end.
        let cut = &gz[..gz.len() / 2];
        let p = d.path().join("cut.gz");
        std::fs::write(&p, cut).unwrap();
        let msg = open_decoded(Some(&p)).err().unwrap().to_string();
        assert!(
            msg.contains(&format!(
                "at compressed byte {} of {}",
                cut.len(),
                cut.len()
            )),
            "{msg}"
        );
        // Sound streams, several gzip members among them, read as before.
        let two = [gzip(b"one\n"), gzip(b"two\n")].concat();
        std::fs::write(&p, &two).unwrap();
        assert_eq!(read_all(open_decoded(Some(&p)).unwrap()), b"one\ntwo\n");
        std::fs::write(&p, zstd_checked(&data)).unwrap();
        assert_eq!(read_all(open_decoded(Some(&p)).unwrap()), data);
        let stream = decode(RawInput::Stream(Box::new(Cursor::new(gzip(&data))))).unwrap();
        assert_eq!(read_all(stream), data);
    }

    #[test]
    fn first_non_blank_skips_the_bom_and_keeps_the_blanks() {
        let mut r: Box<dyn BufRead + Send> =
            Box::new(Cursor::new(b"\xEF\xBB\xBF \n\t[1]".to_vec()));
        let (first, prefix) = first_non_blank(&mut r).unwrap();
        assert_eq!((first, prefix.as_slice()), (Some(b'['), &b" \n\t"[..]));
        let mut rest = Vec::new();
        put_back(r, prefix).read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b" \n\t[1]");
        let mut r: Box<dyn BufRead + Send> = Box::new(Cursor::new(b"  \n".to_vec()));
        assert_eq!(first_non_blank(&mut r).unwrap().0, None);
    }

    /// A file of blanks is not gathered whole to find its first other byte.
    #[test]
    fn first_non_blank_keeps_at_most_the_record_bound_of_blanks() {
        let mut r: Box<dyn BufRead + Send> =
            Box::new(BufReader::new(io::repeat(b' ').take(10 << 20)));
        let (first, prefix) = first_non_blank_within(&mut r, 1 << 20).unwrap();
        assert_eq!(first, Some(b' '));
        assert!(prefix.len() <= (1 << 20) + BUF_SIZE, "{}", prefix.len());
    }

    #[test]
    fn a_missing_file_is_an_io_error() {
        let d = tempfile::tempdir().unwrap();
        let e = open_decoded(Some(&d.path().join("nope"))).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(!starts_with_parquet_magic(&d.path().join("nope")));
    }
}
