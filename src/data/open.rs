//! The one way an input file (or stdin) is opened: decompressed by what its first bytes are,
//! not by what it is called, so a gzip file named `data.jsonl` and a zstd stream on a pipe are
//! read like any other. Every reader (documents, trajectories) opens through here, and the file
//! constants live here once.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read};
use std::path::Path;

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
}

/// Opens a file (`None`: stdin) and decompresses gzip (also concatenated members, as `cat a.gz
/// b.gz` makes) or zstd as its first bytes say.
pub fn open_decoded(path: Option<&Path>) -> io::Result<Decoded> {
    match path {
        None => decode(Box::new(io::stdin())),
        Some(p) => decode(Box::new(File::open(p)?)),
    }
}

/// Wraps any byte source in the decompressor its first bytes call for. The magic is read with
/// as many reads as it takes, so a pipe delivering one byte at a time is detected too.
pub fn decode(mut raw: Box<dyn Read + Send>) -> io::Result<Decoded> {
    let mut head = Vec::with_capacity(ZSTD_MAGIC.len());
    raw.by_ref()
        .take(ZSTD_MAGIC.len() as u64)
        .read_to_end(&mut head)?;
    let compression = Compression::from_magic(&head);
    let raw: Box<dyn Read + Send> = Box::new(Cursor::new(head).chain(raw));
    let decoded: Box<dyn Read + Send> = match compression {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(raw)?),
        Compression::None => raw,
    };
    Ok(Decoded {
        reader: Box::new(BufReader::with_capacity(BUF_SIZE, decoded)),
        compression,
    })
}

/// Skips a UTF-8 BOM and blank bytes, and returns the first other byte (`None` at the end)
/// with the blank bytes skipped, which the caller puts back with [`put_back`] when they matter
/// (they are part of a text document, and JSON Lines line numbers count them).
pub fn first_non_blank(reader: &mut Box<dyn BufRead + Send>) -> io::Result<(Option<u8>, Vec<u8>)> {
    let mut prefix = Vec::new();
    if reader.fill_buf()?.starts_with(BOM) {
        reader.consume(BOM.len());
    }
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok((None, prefix));
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
            let d = decode(Box::new(Trickle(bytes, 0))).unwrap();
            assert_eq!(d.compression, want);
            assert_eq!(read_all(d), data);
        }
        // Shorter than any magic, and empty.
        assert_eq!(
            read_all(decode(Box::new(Cursor::new(b"x".to_vec()))).unwrap()),
            b"x"
        );
        let empty = decode(Box::new(Cursor::new(Vec::new()))).unwrap();
        assert_eq!(empty.compression, Compression::None);
        assert!(read_all(empty).is_empty());
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

    #[test]
    fn a_missing_file_is_an_io_error() {
        let d = tempfile::tempdir().unwrap();
        let e = open_decoded(Some(&d.path().join("nope"))).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(!starts_with_parquet_magic(&d.path().join("nope")));
    }
}
