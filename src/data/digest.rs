//! SHA-256 digests as lowercase hex: of files (model identity, cache keys, manifests) and of
//! bytes. One implementation, so every place that compares digests computes them the same way.

use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(2 * bytes.len());
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// SHA-256 of `bytes`, as hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Feeds the whole of `reader` to `hasher`; returns the number of bytes read.
pub fn update_from_reader(hasher: &mut Sha256, reader: &mut impl Read) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = match reader.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..k]);
        n += k as u64;
    }
}

/// SHA-256 of a file's bytes as hex, and the file's size in bytes, read in one streaming pass.
pub fn sha256_file(path: &Path) -> io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let n = update_from_reader(&mut h, &mut f)?;
    Ok((hex(&h.finalize()), n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(hex(&[]), "");
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(sha256_hex(b""), empty);
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("abc");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            (
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".to_string(),
                3
            )
        );
        // Larger than the read buffer.
        let big = vec![7u8; (1 << 20) + 3];
        std::fs::write(&p, &big).unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            (sha256_hex(&big), big.len() as u64)
        );
        assert!(sha256_file(&d.path().join("missing")).is_err());
    }
}
