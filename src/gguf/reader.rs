use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::ggml_type;

/// A metadata value (all 13 GGUF value types).
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Vec<GgufValue>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl GgufValue {
    pub(crate) fn type_id(&self) -> u32 {
        match self {
            Self::U8(_) => 0,
            Self::I8(_) => 1,
            Self::U16(_) => 2,
            Self::I16(_) => 3,
            Self::U32(_) => 4,
            Self::I32(_) => 5,
            Self::F32(_) => 6,
            Self::Bool(_) => 7,
            Self::String(_) => 8,
            Self::Array(_) => 9,
            Self::U64(_) => 10,
            Self::I64(_) => 11,
            Self::F64(_) => 12,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::U8(v) => Some(v as u64),
            Self::U16(v) => Some(v as u64),
            Self::U32(v) => Some(v as u64),
            Self::U64(v) => Some(v),
            Self::I8(v) => u64::try_from(v).ok(),
            Self::I16(v) => u64::try_from(v).ok(),
            Self::I32(v) => u64::try_from(v).ok(),
            Self::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: ne0 (the contiguous dimension) first.
    pub dims: Vec<u64>,
    pub ggml_type: u32,
    /// Offset from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    pub fn n_elements(&self) -> Option<u64> {
        self.dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d))
    }

    /// Bytes of the tensor's data, or `None` for an unknown type or an overflow.
    pub fn byte_size(&self) -> Option<u64> {
        let (_, block, bytes) = ggml_type(self.ggml_type)?;
        let n = self.n_elements()?;
        if n % block != 0 {
            return None;
        }
        (n / block).checked_mul(bytes)
    }
}

/// The header of a GGUF file: metadata and tensor directory (no tensor data is read).
#[derive(Debug, Clone)]
pub struct GgufFile {
    pub version: u32,
    pub metadata: Vec<(String, GgufValue)>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    pub data_offset: u64,
    pub file_size: u64,
}

impl GgufFile {
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    pub fn get_str(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key)?.as_u64()
    }
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        match self.get(key)? {
            GgufValue::Bool(b) => Some(*b),
            _ => None,
        }
    }
    pub fn architecture(&self) -> Option<&str> {
        self.get_str("general.architecture")
    }
    pub fn context_length(&self) -> Option<u64> {
        self.get_u64(&format!("{}.context_length", self.architecture()?))
    }
    pub fn chat_template(&self) -> Option<&str> {
        self.get_str("tokenizer.chat_template")
    }
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// Why a GGUF file was rejected; the message names the file and the part involved.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct GgufError {
    pub path: PathBuf,
    pub message: String,
}

/// Largest nesting of arrays accepted (GGUF files in the wild use one level).
const MAX_DEPTH: u32 = 4;

struct Cursor<R> {
    r: R,
    pos: u64,
    size: u64,
}

impl<R: Read> Cursor<R> {
    fn bytes(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<Vec<u8>, String> {
        if n > self.size.saturating_sub(self.pos) {
            return Err(format!(
                "truncated while reading {} (needs {n} bytes at offset {}, the file has {})",
                what(),
                self.pos,
                self.size
            ));
        }
        let mut buf = vec![0u8; n as usize];
        self.r
            .read_exact(&mut buf)
            .map_err(|e| format!("reading {}: {e}", what()))?;
        self.pos += n;
        Ok(buf)
    }
    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], String> {
        Ok(self
            .bytes(N as u64, what)?
            .try_into()
            .expect("length checked"))
    }
    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, String> {
        let len = self.u64(what)?;
        let bytes = self.bytes(len, what)?;
        String::from_utf8(bytes).map_err(|_| format!("{} is not valid UTF-8", what()))
    }
    fn value(
        &mut self,
        ty: u32,
        depth: u32,
        what: &dyn Fn() -> String,
    ) -> Result<GgufValue, String> {
        Ok(match ty {
            0 => GgufValue::U8(self.array::<1>(what)?[0]),
            1 => GgufValue::I8(self.array::<1>(what)?[0] as i8),
            2 => GgufValue::U16(u16::from_le_bytes(self.array(what)?)),
            3 => GgufValue::I16(i16::from_le_bytes(self.array(what)?)),
            4 => GgufValue::U32(self.u32(what)?),
            5 => GgufValue::I32(i32::from_le_bytes(self.array(what)?)),
            6 => GgufValue::F32(f32::from_le_bytes(self.array(what)?)),
            7 => match self.array::<1>(what)?[0] {
                0 => GgufValue::Bool(false),
                1 => GgufValue::Bool(true),
                b => return Err(format!("{}: invalid boolean byte {b}", what())),
            },
            8 => GgufValue::String(self.string(what)?),
            9 => {
                if depth >= MAX_DEPTH {
                    return Err(format!("{}: arrays nested too deeply", what()));
                }
                let elem = self.u32(what)?;
                let n = self.u64(what)?;
                // Every element takes at least one byte: reject counts the file cannot hold
                // before reserving memory for them.
                if n > self.size.saturating_sub(self.pos) {
                    return Err(format!(
                        "{}: array of {n} elements cannot fit in the file",
                        what()
                    ));
                }
                let mut items = Vec::with_capacity(n.min(1 << 20) as usize);
                for _ in 0..n {
                    items.push(self.value(elem, depth + 1, what)?);
                }
                GgufValue::Array(items)
            }
            10 => GgufValue::U64(self.u64(what)?),
            11 => GgufValue::I64(i64::from_le_bytes(self.array(what)?)),
            12 => GgufValue::F64(f64::from_le_bytes(self.array(what)?)),
            t => return Err(format!("{}: unknown value type {t}", what())),
        })
    }
}

/// Reads and validates a GGUF header: metadata, tensor directory, and that every tensor's data
/// lies inside the file.
pub fn read_gguf(path: &Path) -> Result<GgufFile, GgufError> {
    let fail = |message: String| GgufError {
        path: path.to_path_buf(),
        message,
    };
    let file = File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
    let size = file.metadata().map_err(|e| fail(e.to_string()))?.len();
    let mut c = Cursor {
        r: BufReader::with_capacity(1 << 16, file),
        pos: 0,
        size,
    };
    parse(&mut c).map_err(fail)
}

fn parse<R: Read>(c: &mut Cursor<R>) -> Result<GgufFile, String> {
    let magic = c
        .bytes(4, &|| "the magic number".into())
        .map_err(|_| "not a GGUF file (too short)".to_string())?;
    if magic != b"GGUF" {
        return Err("not a GGUF file (bad magic number)".into());
    }
    let version = c.u32(&|| "the version".into())?;
    if !(2..=3).contains(&version) {
        return Err(format!(
            "unsupported GGUF version {version} (2 and 3 are supported)"
        ));
    }
    let n_tensors = c.u64(&|| "the tensor count".into())?;
    let n_kv = c.u64(&|| "the metadata count".into())?;
    // The smallest tensor entry takes 8 + 4 + 8 + 4 + 8 bytes, a metadata entry 8 + 4 + 1.
    if n_tensors > size_left(c) / 32 || n_kv > size_left(c) / 13 {
        return Err(format!("header claims {n_tensors} tensors and {n_kv} metadata entries, more than the file can hold"));
    }
    let mut metadata = Vec::with_capacity(n_kv as usize);
    for i in 0..n_kv {
        let key = c.string(&|| format!("the name of metadata entry {i}"))?;
        let what = || format!("metadata key '{key}'");
        let ty = c.u32(&what)?;
        let value = c.value(ty, 0, &what)?;
        metadata.push((key, value));
    }
    let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
        Some((_, v)) => match v.as_u64() {
            Some(a) if a > 0 && a.is_power_of_two() => a,
            _ => {
                return Err(format!(
                    "general.alignment must be a power of two, got {v:?}"
                ))
            }
        },
        None => 32,
    };
    let mut tensors: Vec<TensorInfo> = Vec::with_capacity(n_tensors as usize);
    let mut names = std::collections::HashSet::new();
    for i in 0..n_tensors {
        let name = c.string(&|| format!("the name of tensor {i}"))?;
        let what = || format!("tensor '{name}'");
        let n_dims = c.u32(&what)?;
        if n_dims == 0 || n_dims > 4 {
            return Err(format!(
                "tensor '{name}' has {n_dims} dimensions (1 to 4 allowed)"
            ));
        }
        let dims = (0..n_dims)
            .map(|_| c.u64(&what))
            .collect::<Result<Vec<_>, _>>()?;
        let ggml_type = c.u32(&what)?;
        let offset = c.u64(&what)?;
        if !names.insert(name.clone()) {
            return Err(format!("tensor '{name}' appears twice"));
        }
        let t = TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
        };
        if super::ggml_type(t.ggml_type).is_none() {
            return Err(format!(
                "tensor '{}' has unknown ggml type {}",
                t.name, t.ggml_type
            ));
        }
        if t.byte_size().is_none() {
            return Err(format!(
                "tensor '{}' has invalid dimensions {:?} for its type",
                t.name, t.dims
            ));
        }
        if t.offset % alignment != 0 {
            return Err(format!(
                "tensor '{}' data offset {} is not aligned to {alignment}",
                t.name, t.offset
            ));
        }
        tensors.push(t);
    }
    let data_offset = c.pos.div_ceil(alignment) * alignment;
    for t in &tensors {
        let start = data_offset.checked_add(t.offset);
        let end = start.and_then(|s| s.checked_add(t.byte_size().expect("checked above")));
        match (start, end) {
            (Some(_), Some(e)) if e <= c.size => {}
            (s, e) => {
                return Err(format!(
                "tensor '{}' needs bytes {}..{} but the file has {}: file truncated or corrupted",
                t.name,
                s.map_or("overflow".into(), |v| v.to_string()),
                e.map_or("overflow".into(), |v| v.to_string()),
                c.size
            ))
            }
        }
    }
    Ok(GgufFile {
        version,
        metadata,
        tensors,
        alignment,
        data_offset,
        file_size: c.size,
    })
}

fn size_left<R>(c: &Cursor<R>) -> u64 {
    c.size.saturating_sub(c.pos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::{GgufWriter, TensorData};
    use proptest::prelude::*;

    fn valid_file() -> Vec<u8> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("v.gguf");
        let mut w = GgufWriter::new();
        w.add_kv("general.architecture", GgufValue::String("llama".into()))
            .add_kv("llama.context_length", GgufValue::U32(128))
            .add_kv(
                "tokenizer.ggml.tokens",
                GgufValue::Array(vec![GgufValue::String("a".into()); 5]),
            );
        w.add_tensor(
            "blk.0.attn_q.weight",
            &[8, 4],
            TensorData::F32(vec![0.5; 32]),
        );
        w.add_tensor(
            "blk.0.ffn_down.weight",
            &[32, 2],
            TensorData::Q8_0(vec![0.5; 64]),
        );
        w.write_to(&p).unwrap();
        std::fs::read(&p).unwrap()
    }

    fn parse_bytes(bytes: &[u8]) -> Result<GgufFile, String> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.gguf");
        std::fs::write(&p, bytes).unwrap();
        read_gguf(&p).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_a_valid_file() {
        let f = parse_bytes(&valid_file()).unwrap();
        assert_eq!(f.architecture(), Some("llama"));
        assert_eq!(f.context_length(), Some(128));
        assert_eq!(
            f.tensor("blk.0.ffn_down.weight").unwrap().byte_size(),
            Some(68)
        );
    }

    #[test]
    fn bad_magic_and_version() {
        assert!(parse_bytes(b"GGUX\x03\0\0\0")
            .unwrap_err()
            .contains("bad magic"));
        assert!(parse_bytes(b"GG").unwrap_err().contains("not a GGUF file"));
        let mut b = valid_file();
        b[4] = 9;
        assert!(parse_bytes(&b)
            .unwrap_err()
            .contains("unsupported GGUF version 9"));
    }

    #[test]
    fn truncated_data_names_the_tensor() {
        let b = valid_file();
        let err = parse_bytes(&b[..b.len() - 40]).unwrap_err();
        assert!(
            err.contains("tensor 'blk.0.ffn_down.weight' needs bytes") && err.contains("truncated"),
            "{err}"
        );
        assert!(err.contains("x.gguf"), "names the file: {err}");
    }

    #[test]
    fn truncated_metadata_names_the_key() {
        let b = valid_file();
        // Cut inside the token array (after the key name).
        let at = b
            .windows(20)
            .position(|w| w == b"tokenizer.ggml.token")
            .unwrap()
            + 30;
        let err = parse_bytes(&b[..at]).unwrap_err();
        assert!(err.contains("tokenizer.ggml.tokens"), "{err}");
    }

    #[test]
    fn huge_lengths_are_rejected_before_allocating() {
        let mut b = b"GGUF\x03\0\0\0".to_vec();
        b.extend(0u64.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.extend(u64::MAX.to_le_bytes()); // key length
        b.extend([0u8; 16]);
        let err = parse_bytes(&b).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
        let mut b = b"GGUF\x03\0\0\0".to_vec();
        b.extend(0u64.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.push(b'k');
        b.extend(9u32.to_le_bytes()); // array
        b.extend(0u32.to_le_bytes()); // of u8
        b.extend((1u64 << 60).to_le_bytes());
        let err = parse_bytes(&b).unwrap_err();
        assert!(
            err.contains("metadata key 'k'") && err.contains("cannot fit"),
            "{err}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn mutated_files_never_panic(cut in 0usize..2000, flips in prop::collection::vec((0usize..2000, any::<u8>()), 0..8)) {
            let mut b = valid_file();
            for (i, v) in flips {
                let n = b.len();
                b[i % n] = v;
            }
            b.truncate(cut.min(b.len()));
            let _ = parse_bytes(&b);
        }
    }
}
