//! Defensive reader for GGUF headers (metadata and tensor directory, never tensor data).
//!
//! Every length and count is checked against the bytes left in the file before anything is
//! allocated, and every tensor's data range is checked against the file size, so that a
//! truncated or corrupted download fails here with a message naming the key or tensor.

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io::{BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};

/// Alignment of tensor data when `general.alignment` is absent (GGUF spec).
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// llama.cpp keeps tensor names in a 64-byte C buffer, NUL included.
pub(crate) const MAX_TENSOR_NAME_LEN: usize = 63;

/// ggml supports at most 4 dimensions.
pub(crate) const MAX_DIMS: u32 = 4;

/// Deepest array nesting accepted (real files use one level; this bounds recursion).
pub(crate) const MAX_ARRAY_DEPTH: u32 = 4;

/// Most metadata values (array elements included) kept in memory, about 512 MiB of
/// [`GgufValue`]s. Real models hold well under a million; this bounds a hostile file's cost.
const MAX_VALUES: u64 = 1 << 24;

/// Most entries reserved ahead of reading them; claimed counts beyond this grow as read.
const RESERVE_CAP: u64 = 1 << 16;

/// ggml tensor types: (id, name, elements per block, bytes per block), as `ggml_blck_size` and
/// `ggml_type_size` report them in the ggml that llama-cpp-sys-2 0.1.161 vendors. Ids missing
/// here were removed from ggml; llama.cpp refuses them too.
const GGML_TYPES: &[(u32, &str, u64, u64)] = &[
    (0, "F32", 1, 4),
    (1, "F16", 1, 2),
    (2, "Q4_0", 32, 18),
    (3, "Q4_1", 32, 20),
    (6, "Q5_0", 32, 22),
    (7, "Q5_1", 32, 24),
    (8, "Q8_0", 32, 34),
    (9, "Q8_1", 32, 36),
    (10, "Q2_K", 256, 84),
    (11, "Q3_K", 256, 110),
    (12, "Q4_K", 256, 144),
    (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210),
    (15, "Q8_K", 256, 292),
    (16, "IQ2_XXS", 256, 66),
    (17, "IQ2_XS", 256, 74),
    (18, "IQ3_XXS", 256, 98),
    (19, "IQ1_S", 256, 50),
    (20, "IQ4_NL", 32, 18),
    (21, "IQ3_S", 256, 110),
    (22, "IQ2_S", 256, 82),
    (23, "IQ4_XS", 256, 136),
    (24, "I8", 1, 1),
    (25, "I16", 1, 2),
    (26, "I32", 1, 4),
    (27, "I64", 1, 8),
    (28, "F64", 1, 8),
    (29, "IQ1_M", 256, 56),
    (30, "BF16", 1, 2),
    (34, "TQ1_0", 256, 54),
    (35, "TQ2_0", 256, 66),
    (39, "MXFP4", 32, 17),
    (40, "NVFP4", 64, 36),
    (41, "Q1_0", 128, 18),
    (42, "Q2_0", 64, 18),
];

/// Name of a ggml tensor type id (`"Q8_0"`), or `None` for an id ggml does not define.
pub fn ggml_type_name(ggml_type: u32) -> Option<&'static str> {
    ggml_type_layout(ggml_type).map(|t| t.0)
}

/// (name, elements per block, bytes per block) of a ggml type.
fn ggml_type_layout(ggml_type: u32) -> Option<(&'static str, u64, u64)> {
    GGML_TYPES
        .iter()
        .find(|t| t.0 == ggml_type)
        .map(|t| (t.1, t.2, t.3))
}

/// A metadata value: one of the 13 GGUF value types.
///
/// Arrays keep their elements as values; an array's element type is that of its elements
/// (the writer rejects mixed arrays, the format cannot express them).
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
    /// The type id the format stores for this value.
    pub fn type_id(&self) -> u32 {
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

    /// Short type name for messages (`"u32"`, `"string"`, ...).
    pub fn type_name(&self) -> &'static str {
        type_name(self.type_id())
    }

    /// Any non-negative integer, whatever its stored width: converters disagree on widths.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::U8(v) => Some(v.into()),
            Self::U16(v) => Some(v.into()),
            Self::U32(v) => Some(v.into()),
            Self::U64(v) => Some(v),
            Self::I8(v) => u64::try_from(v).ok(),
            Self::I16(v) => u64::try_from(v).ok(),
            Self::I32(v) => u64::try_from(v).ok(),
            Self::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// A float of either width, or an integer (converted, possibly rounded).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::F32(v) => Some(v.into()),
            Self::F64(v) => Some(v),
            Self::I8(v) => Some(v.into()),
            Self::I16(v) => Some(v.into()),
            Self::I32(v) => Some(v.into()),
            Self::I64(v) => Some(v as f64),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Self::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[GgufValue]> {
        match self {
            Self::Array(a) => Some(a),
            _ => None,
        }
    }
}

fn type_name(type_id: u32) -> &'static str {
    match type_id {
        0 => "u8",
        1 => "i8",
        2 => "u16",
        3 => "i16",
        4 => "u32",
        5 => "i32",
        6 => "f32",
        7 => "bool",
        8 => "string",
        9 => "array",
        10 => "u64",
        11 => "i64",
        12 => "f64",
        _ => "unknown",
    }
}

/// One entry of the tensor directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: ne0 (the contiguous dimension) first, so a `y = W x` weight with `x` of size
    /// `n_in` has dims `[n_in, n_out]`.
    pub dims: Vec<u64>,
    /// ggml type id (0 = F32, 1 = F16, 8 = Q8_0, ...).
    pub ggml_type: u32,
    /// Offset of the data from the start of the data section ([`GgufFile::data_offset`]).
    pub offset: u64,
}

impl TensorInfo {
    /// Number of elements (product of `dims`), saturating at `u64::MAX`; [`read_gguf`] rejects
    /// tensors whose product overflows, so for its tensors this is exact.
    pub fn n_elements(&self) -> u64 {
        self.dims
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .unwrap_or(u64::MAX)
    }

    /// Bytes of data the tensor occupies (without padding), or `None` for an unknown type, a
    /// row length (`dims[0]`) that is not a whole number of blocks, or an overflow.
    pub fn byte_size(&self) -> Option<u64> {
        let (_, block, bytes) = ggml_type_layout(self.ggml_type)?;
        let ne0 = self.dims.first().copied().unwrap_or(1);
        if ne0 % block != 0 {
            return None;
        }
        let rest = self
            .dims
            .iter()
            .skip(1)
            .try_fold(1u64, |a, &d| a.checked_mul(d))?;
        (ne0 / block).checked_mul(bytes)?.checked_mul(rest)
    }

    /// Name of the tensor's ggml type (`"Q8_0"`), `None` if unknown.
    pub fn type_name(&self) -> Option<&'static str> {
        ggml_type_name(self.ggml_type)
    }
}

/// A validated GGUF header. Tensor data is not read: every tensor's range is known to lie
/// inside the file, packed in order and aligned as llama.cpp requires.
#[derive(Debug, Clone)]
pub struct GgufFile {
    pub version: u32,
    /// Metadata in file order (keys are unique).
    pub metadata: Vec<(String, GgufValue)>,
    pub tensors: Vec<TensorInfo>,
    /// Alignment of tensor data (`general.alignment`, default 32).
    pub alignment: u64,
    /// Absolute file offset where tensor data starts.
    pub data_offset: u64,
    pub file_size: u64,
}

impl GgufFile {
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key)?.as_str()
    }

    /// Integer of any stored width (negative values give `None`).
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key)?.as_u64()
    }

    /// Float of either width, or an integer converted to f64.
    pub fn get_f64(&self, key: &str) -> Option<f64> {
        self.get(key)?.as_f64()
    }

    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key)?.as_bool()
    }

    /// Number of elements of an array value (`None` if missing or not an array).
    pub fn array_len(&self, key: &str) -> Option<usize> {
        self.get(key)?.as_array().map(<[GgufValue]>::len)
    }

    /// `general.architecture`, the prefix of the model's hyperparameter keys.
    pub fn architecture(&self) -> Option<&str> {
        self.get_str("general.architecture")
    }

    /// The training context length (`{arch}.context_length`).
    pub fn context_length(&self) -> Option<u64> {
        self.get_u64(&format!("{}.context_length", self.architecture()?))
    }

    /// The Jinja chat template (`tokenizer.chat_template`).
    pub fn chat_template(&self) -> Option<&str> {
        self.get_str("tokenizer.chat_template")
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// Why a GGUF file could not be read or written. Every message starts with the file's path and
/// names the metadata key or tensor involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GgufError {
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a GGUF file ({reason})", path.display())]
    NotGguf { path: PathBuf, reason: String },
    #[error("{}: unsupported GGUF version {version} ({hint})", path.display())]
    UnsupportedVersion {
        path: PathBuf,
        version: u32,
        hint: &'static str,
    },
    #[error(
        "{}: truncated while reading {what}: needs {needed} bytes at offset {offset} but the file has {file_size}",
        path.display()
    )]
    Truncated {
        path: PathBuf,
        what: String,
        offset: u64,
        needed: u64,
        file_size: u64,
    },
    #[error(
        "{}: {what} claims {claim}, but only {remaining} bytes are left in the file: file truncated or corrupted",
        path.display()
    )]
    TooLarge {
        path: PathBuf,
        what: String,
        claim: String,
        remaining: u64,
    },
    #[error("{}: {what} is not valid UTF-8", path.display())]
    InvalidUtf8 { path: PathBuf, what: String },
    #[error("{}: {what}: {reason}", path.display())]
    InvalidValue {
        path: PathBuf,
        what: String,
        reason: String,
    },
    #[error("{}: metadata key '{key}' appears more than once", path.display())]
    DuplicateKey { path: PathBuf, key: String },
    #[error("{}: tensor '{tensor}' appears more than once", path.display())]
    DuplicateTensor { path: PathBuf, tensor: String },
    #[error("{}: tensor '{tensor}' has unknown ggml type {ggml_type}", path.display())]
    UnknownTensorType {
        path: PathBuf,
        tensor: String,
        ggml_type: u32,
    },
    #[error("{}: tensor '{tensor}' {reason}", path.display())]
    InvalidTensor {
        path: PathBuf,
        tensor: String,
        reason: String,
    },
    #[error(
        "{}: tensor '{tensor}' has data offset {offset}, expected {expected} (tensor data must be packed in directory order, each padded to {alignment} bytes)",
        path.display()
    )]
    MisplacedTensor {
        path: PathBuf,
        tensor: String,
        offset: u64,
        expected: u128,
        alignment: u64,
    },
    #[error(
        "{}: tensor '{tensor}' needs bytes {start}..{end} but the file has {file_size}: file truncated or corrupted",
        path.display()
    )]
    TensorPastEnd {
        path: PathBuf,
        tensor: String,
        start: u128,
        end: u128,
        file_size: u64,
    },
}

/// Reads and validates a GGUF (v2 or v3, little-endian) header: metadata, the tensor directory,
/// and that every tensor's data lies inside the file where llama.cpp will look for it.
///
/// Reads only the header, through a buffer; tensor data is never loaded.
pub fn read_gguf(path: &Path) -> Result<GgufFile, GgufError> {
    let io = |action, source| GgufError::Io {
        path: path.to_path_buf(),
        action,
        source,
    };
    let file = File::open(path).map_err(|e| io("open", e))?;
    let file_size = file.metadata().map_err(|e| io("read", e))?.len();
    let mut r = Reader {
        inner: BufReader::with_capacity(1 << 16, file),
        pos: 0,
        size: file_size,
        path,
        values: 0,
    };
    r.parse()
}

/// What is being read, for error messages (formatted only on error).
#[derive(Clone, Copy)]
enum Ctx<'a> {
    Header(&'static str),
    KeyName(u64),
    Key(&'a str),
    TensorName(u64),
    Tensor(&'static str, &'a str),
}

impl fmt::Display for Ctx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ctx::Header(what) => write!(f, "{what}"),
            Ctx::KeyName(i) => write!(f, "the name of metadata entry {i}"),
            Ctx::Key(k) => write!(f, "metadata key '{k}'"),
            Ctx::TensorName(i) => write!(f, "the name of tensor {i}"),
            Ctx::Tensor(field, name) => write!(f, "the {field} of tensor '{name}'"),
        }
    }
}

struct Reader<'p> {
    inner: BufReader<File>,
    pos: u64,
    size: u64,
    path: &'p Path,
    /// Metadata values read so far (bounded by [`MAX_VALUES`]).
    values: u64,
}

impl Reader<'_> {
    fn path(&self) -> PathBuf {
        self.path.to_path_buf()
    }

    fn remaining(&self) -> u64 {
        self.size.saturating_sub(self.pos)
    }

    fn truncated(&self, ctx: Ctx, needed: u64) -> GgufError {
        GgufError::Truncated {
            path: self.path(),
            what: ctx.to_string(),
            offset: self.pos,
            needed,
            file_size: self.size,
        }
    }

    fn invalid(&self, ctx: Ctx, reason: impl Into<String>) -> GgufError {
        GgufError::InvalidValue {
            path: self.path(),
            what: ctx.to_string(),
            reason: reason.into(),
        }
    }

    fn too_large(&self, ctx: Ctx, claim: String) -> GgufError {
        GgufError::TooLarge {
            path: self.path(),
            what: ctx.to_string(),
            claim,
            remaining: self.remaining(),
        }
    }

    /// Fills `buf` from the file; its length must already be known to fit.
    fn fill(&mut self, buf: &mut [u8], ctx: Ctx) -> Result<(), GgufError> {
        let n = buf.len() as u64;
        if n > self.remaining() {
            return Err(self.truncated(ctx, n));
        }
        match self.inner.read_exact(buf) {
            Ok(()) => {
                self.pos += n;
                Ok(())
            }
            // The file shrank while being read.
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => Err(self.truncated(ctx, n)),
            Err(source) => Err(GgufError::Io {
                path: self.path(),
                action: "read",
                source,
            }),
        }
    }

    fn array<const N: usize>(&mut self, ctx: Ctx) -> Result<[u8; N], GgufError> {
        let mut b = [0u8; N];
        self.fill(&mut b, ctx)?;
        Ok(b)
    }

    fn u32(&mut self, ctx: Ctx) -> Result<u32, GgufError> {
        self.array(ctx).map(u32::from_le_bytes)
    }

    fn u64(&mut self, ctx: Ctx) -> Result<u64, GgufError> {
        self.array(ctx).map(u64::from_le_bytes)
    }

    fn string(&mut self, ctx: Ctx) -> Result<String, GgufError> {
        let len = self.u64(ctx)?;
        if len > self.remaining() {
            return Err(self.too_large(ctx, format!("a string of {len} bytes")));
        }
        let mut buf = vec![0u8; len as usize];
        self.fill(&mut buf, ctx)?;
        String::from_utf8(buf).map_err(|_| GgufError::InvalidUtf8 {
            path: self.path(),
            what: ctx.to_string(),
        })
    }

    fn count_value(&mut self, n: u64, ctx: Ctx) -> Result<(), GgufError> {
        self.values = self.values.saturating_add(n);
        if self.values > MAX_VALUES {
            return Err(self.invalid(
                ctx,
                format!(
                    "the metadata holds more than {MAX_VALUES} values, more than any real model"
                ),
            ));
        }
        Ok(())
    }

    fn value(&mut self, ty: u32, depth: u32, ctx: Ctx) -> Result<GgufValue, GgufError> {
        Ok(match ty {
            0 => GgufValue::U8(self.array::<1>(ctx)?[0]),
            1 => GgufValue::I8(i8::from_le_bytes(self.array(ctx)?)),
            2 => GgufValue::U16(u16::from_le_bytes(self.array(ctx)?)),
            3 => GgufValue::I16(i16::from_le_bytes(self.array(ctx)?)),
            4 => GgufValue::U32(self.u32(ctx)?),
            5 => GgufValue::I32(i32::from_le_bytes(self.array(ctx)?)),
            6 => GgufValue::F32(f32::from_le_bytes(self.array(ctx)?)),
            7 => match self.array::<1>(ctx)?[0] {
                0 => GgufValue::Bool(false),
                1 => GgufValue::Bool(true),
                b => return Err(self.invalid(ctx, format!("invalid boolean byte {b}"))),
            },
            8 => GgufValue::String(self.string(ctx)?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(self.invalid(
                        ctx,
                        format!("arrays nested more than {MAX_ARRAY_DEPTH} deep"),
                    ));
                }
                let elem = self.u32(ctx)?;
                let min_size = min_value_size(elem).ok_or_else(|| {
                    self.invalid(ctx, format!("unknown array element type {elem}"))
                })?;
                let n = self.u64(ctx)?;
                // Reject counts the file cannot hold before reserving memory for them.
                if n.checked_mul(min_size).is_none_or(|b| b > self.remaining()) {
                    return Err(self
                        .too_large(ctx, format!("an array of {n} {} elements", type_name(elem))));
                }
                self.count_value(n, ctx)?;
                // Grow with what is actually read: a value takes up to 32 times its bytes.
                let mut items = Vec::with_capacity(n.min(RESERVE_CAP) as usize);
                for _ in 0..n {
                    items.push(self.value(elem, depth + 1, ctx)?);
                }
                GgufValue::Array(items)
            }
            10 => GgufValue::U64(self.u64(ctx)?),
            11 => GgufValue::I64(i64::from_le_bytes(self.array(ctx)?)),
            12 => GgufValue::F64(f64::from_le_bytes(self.array(ctx)?)),
            t => return Err(self.invalid(ctx, format!("unknown value type {t}"))),
        })
    }

    fn parse(&mut self) -> Result<GgufFile, GgufError> {
        let not_gguf = |r: &Self, reason: String| GgufError::NotGguf {
            path: r.path(),
            reason,
        };
        if self.size < 4 {
            return Err(not_gguf(self, format!("only {} bytes long", self.size)));
        }
        let magic: [u8; 4] = self.array(Ctx::Header("the magic number"))?;
        if &magic != b"GGUF" {
            return Err(not_gguf(
                self,
                format!(
                    "starts with {:?}, not \"GGUF\"",
                    String::from_utf8_lossy(&magic)
                ),
            ));
        }
        let version = self.u32(Ctx::Header("the version"))?;
        let hint = match version {
            2 | 3 => None,
            1 => Some("GGUF v1 is obsolete; re-convert the model"),
            v if v & 0xffff == 0 => {
                Some("a big-endian file? only little-endian files are supported")
            }
            _ => Some("versions 2 and 3 are supported"),
        };
        if let Some(hint) = hint {
            return Err(GgufError::UnsupportedVersion {
                path: self.path(),
                version,
                hint,
            });
        }
        let n_tensors = self.u64(Ctx::Header("the tensor count"))?;
        let n_kv = self.u64(Ctx::Header("the metadata count"))?;
        // Smallest entries: a key (8-byte length) + type + 1-byte value; a tensor name length +
        // dimension count + type + offset.
        if n_kv.checked_mul(13).is_none_or(|b| b > self.remaining()) {
            return Err(self.too_large(
                Ctx::Header("the header"),
                format!("{n_kv} metadata entries"),
            ));
        }
        if n_tensors
            .checked_mul(24)
            .is_none_or(|b| b > self.remaining())
        {
            return Err(self.too_large(Ctx::Header("the header"), format!("{n_tensors} tensors")));
        }

        let mut metadata: Vec<(String, GgufValue)> =
            Vec::with_capacity(n_kv.min(RESERVE_CAP) as usize);
        let mut keys = HashSet::with_capacity(n_kv.min(RESERVE_CAP) as usize);
        for i in 0..n_kv {
            let key = self.string(Ctx::KeyName(i))?;
            if key.is_empty() {
                return Err(self.invalid(Ctx::KeyName(i), "the key is empty"));
            }
            if !keys.insert(key.clone()) {
                return Err(GgufError::DuplicateKey {
                    path: self.path(),
                    key,
                });
            }
            let ctx = Ctx::Key(&key);
            self.count_value(1, ctx)?;
            let ty = self.u32(ctx)?;
            let value = self.value(ty, 0, ctx)?;
            metadata.push((key, value));
        }

        let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some((_, GgufValue::U32(a))) if *a > 0 && a.is_power_of_two() => u64::from(*a),
            Some((k, v)) => {
                return Err(self.invalid(
                    Ctx::Key(k),
                    format!("must be a u32 power of two, got {} {v:?}", v.type_name()),
                ))
            }
        };

        let mut tensors: Vec<TensorInfo> = Vec::with_capacity(n_tensors.min(RESERVE_CAP) as usize);
        let mut names = HashSet::with_capacity(n_tensors.min(RESERVE_CAP) as usize);
        for i in 0..n_tensors {
            let t = self.tensor_info(i, &mut names)?;
            tensors.push(t);
        }

        // llama.cpp skips padding to the alignment only when there are tensors.
        let data_offset = if tensors.is_empty() {
            self.pos
        } else {
            self.pos.div_ceil(alignment).saturating_mul(alignment)
        };
        // llama.cpp requires each tensor to start where the previous one's padded data ends.
        let mut expected: u128 = 0;
        for t in &tensors {
            let size = t.byte_size().expect("validated in tensor_info");
            if t.offset % alignment != 0 || u128::from(t.offset) != expected {
                return Err(GgufError::MisplacedTensor {
                    path: self.path(),
                    tensor: t.name.clone(),
                    offset: t.offset,
                    expected,
                    alignment,
                });
            }
            let start = u128::from(data_offset) + u128::from(t.offset);
            let end = start + u128::from(size);
            if end > u128::from(self.size) {
                return Err(GgufError::TensorPastEnd {
                    path: self.path(),
                    tensor: t.name.clone(),
                    start,
                    end,
                    file_size: self.size,
                });
            }
            expected += u128::from(size).div_ceil(u128::from(alignment)) * u128::from(alignment);
        }

        Ok(GgufFile {
            version,
            metadata,
            tensors,
            alignment,
            data_offset,
            file_size: self.size,
        })
    }

    fn tensor_info(
        &mut self,
        i: u64,
        names: &mut HashSet<String>,
    ) -> Result<TensorInfo, GgufError> {
        let name = self.string(Ctx::TensorName(i))?;
        let bad = |r: &Self, name: &str, reason: String| GgufError::InvalidTensor {
            path: r.path(),
            tensor: name.to_string(),
            reason,
        };
        if name.len() > MAX_TENSOR_NAME_LEN {
            return Err(bad(
                self,
                &name,
                format!(
                    "has a {}-byte name; llama.cpp accepts at most {MAX_TENSOR_NAME_LEN}",
                    name.len()
                ),
            ));
        }
        if !names.insert(name.clone()) {
            return Err(GgufError::DuplicateTensor {
                path: self.path(),
                tensor: name,
            });
        }
        let n_dims = self.u32(Ctx::Tensor("dimension count", &name))?;
        if n_dims > MAX_DIMS {
            return Err(bad(
                self,
                &name,
                format!("has {n_dims} dimensions; ggml supports at most {MAX_DIMS}"),
            ));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(self.u64(Ctx::Tensor("dimensions", &name))?);
        }
        let ggml_type = self.u32(Ctx::Tensor("type", &name))?;
        let offset = self.u64(Ctx::Tensor("data offset", &name))?;
        // ggml stores dimensions as int64 and checks the element count fits one.
        let n = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
        if n.is_none_or(|n| n > i64::MAX as u64) || dims.iter().any(|&d| d > i64::MAX as u64) {
            return Err(bad(
                self,
                &name,
                format!("has dimensions {dims:?} whose element count overflows"),
            ));
        }
        let Some((type_name, block, _)) = ggml_type_layout(ggml_type) else {
            return Err(GgufError::UnknownTensorType {
                path: self.path(),
                tensor: name,
                ggml_type,
            });
        };
        let t = TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
        };
        if t.dims.first().is_some_and(|ne0| ne0 % block != 0) {
            return Err(bad(
                self,
                &t.name,
                format!(
                    "has rows of {} elements, not a multiple of the {type_name} block size {block}",
                    t.dims[0]
                ),
            ));
        }
        if t.byte_size().is_none() {
            return Err(bad(
                self,
                &t.name,
                format!("has dimensions {:?} whose byte size overflows", t.dims),
            ));
        }
        Ok(t)
    }
}

/// Fewest bytes one value of a type takes in the file, `None` for an unknown type.
fn min_value_size(ty: u32) -> Option<u64> {
    Some(match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 | 10..=12 => 8,
        9 => 12,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::{GgufWriter, TensorData};
    use proptest::prelude::*;

    /// A small valid file: three metadata entries and an F32 and a Q8_0 tensor.
    fn valid_file() -> Vec<u8> {
        static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        BYTES
            .get_or_init(|| {
                let d = tempfile::tempdir().unwrap();
                let p = d.path().join("v.gguf");
                let mut w = GgufWriter::new();
                w.add_kv("general.architecture", GgufValue::String("llama".into()))
                    .add_kv("llama.context_length", GgufValue::U32(128))
                    .add_kv(
                        "tokenizer.ggml.tokens",
                        GgufValue::Array(vec![GgufValue::String("a".into()); 5]),
                    )
                    .add_tensor(
                        "blk.0.attn_q.weight",
                        &[8, 4],
                        TensorData::F32(vec![0.5; 32]),
                    )
                    .add_tensor(
                        "blk.3.ffn_down.weight",
                        &[32, 2],
                        TensorData::Q8_0(vec![0.5; 64]),
                    );
                w.write_to(&p).unwrap();
                std::fs::read(&p).unwrap()
            })
            .clone()
    }

    fn parse(bytes: &[u8]) -> Result<GgufFile, GgufError> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.gguf");
        std::fs::write(&p, bytes).unwrap();
        read_gguf(&p)
    }

    fn parse_err(bytes: &[u8]) -> (GgufError, String) {
        let e = parse(bytes).expect_err("must be rejected");
        let msg = e.to_string();
        assert!(msg.contains("x.gguf"), "names the file: {msg}");
        (e, msg)
    }

    /// Header bytes: magic, version 3, tensor count, metadata count.
    fn header(n_tensors: u64, n_kv: u64) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(n_tensors.to_le_bytes());
        b.extend(n_kv.to_le_bytes());
        b
    }

    fn put_str(b: &mut Vec<u8>, s: &str) {
        b.extend((s.len() as u64).to_le_bytes());
        b.extend(s.as_bytes());
    }

    #[test]
    fn reads_a_valid_file() {
        let bytes = valid_file();
        let f = parse(&bytes).unwrap();
        assert_eq!(f.version, 3);
        assert_eq!(f.architecture(), Some("llama"));
        assert_eq!(f.context_length(), Some(128));
        assert_eq!(f.array_len("tokenizer.ggml.tokens"), Some(5));
        assert_eq!(f.alignment, 32);
        assert_eq!(f.data_offset % 32, 0);
        assert_eq!(f.file_size, bytes.len() as u64);
        let q = f.tensor("blk.3.ffn_down.weight").unwrap();
        assert_eq!((q.n_elements(), q.byte_size()), (64, Some(68)));
        assert_eq!(q.type_name(), Some("Q8_0"));
        assert_eq!(q.offset, 128, "after the 128 bytes of the F32 tensor");
        assert_eq!(
            f.data_offset + q.offset + 68,
            bytes.len() as u64 - 28,
            "padded end"
        );
    }

    #[test]
    fn reads_version_2() {
        let mut b = valid_file();
        b[4] = 2;
        assert_eq!(parse(&b).unwrap().version, 2);
    }

    #[test]
    fn accessors_convert_widths() {
        let f = GgufFile {
            version: 3,
            metadata: vec![
                ("a".into(), GgufValue::I32(7)),
                ("n".into(), GgufValue::I8(-1)),
                ("f".into(), GgufValue::F32(0.5)),
                ("b".into(), GgufValue::Bool(true)),
                ("s".into(), GgufValue::String("x".into())),
            ],
            tensors: vec![],
            alignment: 32,
            data_offset: 0,
            file_size: 0,
        };
        assert_eq!(f.get_u64("a"), Some(7));
        assert_eq!(f.get_u64("n"), None, "negative");
        assert_eq!(f.get_f64("f"), Some(0.5));
        assert_eq!(f.get_f64("a"), Some(7.0));
        assert_eq!(f.get_bool("b"), Some(true));
        assert_eq!(f.get_str("s"), Some("x"));
        assert_eq!(f.get_str("a"), None);
        assert_eq!(f.array_len("s"), None);
        assert_eq!(
            (f.architecture(), f.context_length(), f.chat_template()),
            (None, None, None)
        );
    }

    #[test]
    fn byte_sizes_follow_the_block_table() {
        let t = |ggml_type, dims: &[u64]| TensorInfo {
            name: "t".into(),
            dims: dims.to_vec(),
            ggml_type,
            offset: 0,
        };
        assert_eq!(t(0, &[3, 5]).byte_size(), Some(60));
        assert_eq!(t(1, &[3, 5]).byte_size(), Some(30));
        assert_eq!(t(12, &[512, 3]).byte_size(), Some(2 * 3 * 144), "Q4_K");
        assert_eq!(t(3, &[64, 2]).byte_size(), Some(2 * 2 * 20), "Q4_1");
        assert_eq!(t(8, &[16, 2]).byte_size(), None, "partial Q8_0 block");
        assert_eq!(t(4, &[32]).byte_size(), None, "removed type");
        assert_eq!(t(0, &[u64::MAX, 2]).byte_size(), None, "overflow");
        assert_eq!(t(0, &[u64::MAX, 2]).n_elements(), u64::MAX, "saturates");
        assert_eq!(t(0, &[]).n_elements(), 1, "a scalar");
    }

    #[test]
    fn bad_magic_and_version() {
        let (e, msg) = parse_err(b"GGUX\x03\0\0\0");
        assert!(
            matches!(e, GgufError::NotGguf { .. }) && msg.contains("not a GGUF file"),
            "{msg}"
        );
        let (_, msg) = parse_err(b"GG");
        assert!(msg.contains("not a GGUF file"), "{msg}");
        let (_, msg) = parse_err(b"<!DOCTYPE html><html>");
        assert!(msg.contains("not a GGUF file"), "{msg}");
        let mut b = valid_file();
        b[4] = 9;
        let (e, msg) = parse_err(&b);
        assert!(
            matches!(e, GgufError::UnsupportedVersion { version: 9, .. }),
            "{msg}"
        );
        b[4..8].copy_from_slice(&3u32.to_be_bytes());
        let (_, msg) = parse_err(&b);
        assert!(msg.contains("big-endian"), "{msg}");
    }

    #[test]
    fn truncated_header_and_tensor_names() {
        let b = valid_file();
        let (e, msg) = parse_err(&b[..10]);
        assert!(
            matches!(e, GgufError::Truncated { .. }) && msg.contains("the tensor count"),
            "{msg}"
        );
        // Cut inside the first tensor's name.
        let at = b.windows(6).position(|w| w == b"blk.0.").unwrap() + 3;
        let (_, msg) = parse_err(&b[..at]);
        assert!(msg.contains("the name of tensor 0"), "{msg}");
        // Cut inside the second tensor's dimensions.
        let at = b.windows(6).position(|w| w == b"blk.3.").unwrap() + 21 + 4 + 3;
        let (_, msg) = parse_err(&b[..at]);
        assert!(
            msg.contains("the dimensions of tensor 'blk.3.ffn_down.weight'"),
            "{msg}"
        );
    }

    #[test]
    fn truncated_metadata_names_the_key() {
        let b = valid_file();
        // Cut inside the token array, after its key.
        let at = b
            .windows(20)
            .position(|w| w == b"tokenizer.ggml.token")
            .unwrap()
            + 30;
        let (e, msg) = parse_err(&b[..at]);
        assert!(
            matches!(e, GgufError::Truncated { .. })
                && msg.contains("metadata key 'tokenizer.ggml.tokens'"),
            "{msg}"
        );
        // Cut inside the second key's name.
        let at = b.windows(6).position(|w| w == b"llama.").unwrap() + 2;
        let (_, msg) = parse_err(&b[..at]);
        assert!(msg.contains("the name of metadata entry 1"), "{msg}");
    }

    #[test]
    fn tensor_data_past_the_end_names_the_tensor() {
        let b = valid_file();
        let f = parse(&b).unwrap();
        let q = f.tensor("blk.3.ffn_down.weight").unwrap();
        let start = f.data_offset + q.offset;
        let keep = start + 50;
        let (e, msg) = parse_err(&b[..keep as usize]);
        assert!(matches!(e, GgufError::TensorPastEnd { .. }), "{msg}");
        assert!(
            msg.contains(&format!(
                "tensor 'blk.3.ffn_down.weight' needs bytes {start}..{} but the file has {keep}: file truncated or corrupted",
                start + 68
            )),
            "{msg}"
        );
        // Only the padding after the last tensor missing: still loadable.
        assert!(parse(&b[..(start + 68) as usize]).is_ok());
    }

    #[test]
    fn huge_lengths_are_rejected_before_allocating() {
        // A key whose length is u64::MAX.
        let mut b = header(0, 1);
        b.extend(u64::MAX.to_le_bytes());
        b.extend([0u8; 16]);
        let (e, msg) = parse_err(&b);
        assert!(matches!(e, GgufError::TooLarge { .. }), "{msg}");
        assert!(
            msg.contains("the name of metadata entry 0") && msg.contains("a string of"),
            "{msg}"
        );
        // A string value of 2^62 bytes.
        let mut b = header(0, 1);
        put_str(&mut b, "general.name");
        b.extend(8u32.to_le_bytes());
        b.extend((1u64 << 62).to_le_bytes());
        b.extend(b"short");
        let (_, msg) = parse_err(&b);
        assert!(
            msg.contains(
                "metadata key 'general.name' claims a string of 4611686018427387904 bytes"
            ),
            "{msg}"
        );
        // An array of 2^60 u8.
        let mut b = header(0, 1);
        put_str(&mut b, "k");
        b.extend(9u32.to_le_bytes());
        b.extend(0u32.to_le_bytes());
        b.extend((1u64 << 60).to_le_bytes());
        let (e, msg) = parse_err(&b);
        assert!(
            matches!(e, GgufError::TooLarge { .. }) && msg.contains("metadata key 'k'"),
            "{msg}"
        );
        // An array of strings that each need at least 8 bytes.
        let mut b = header(0, 1);
        put_str(&mut b, "k");
        b.extend(9u32.to_le_bytes());
        b.extend(8u32.to_le_bytes());
        b.extend(4u64.to_le_bytes());
        b.extend([0u8; 31]);
        let (_, msg) = parse_err(&b);
        assert!(msg.contains("an array of 4 string elements"), "{msg}");
        // Counts in the header.
        let (_, msg) = parse_err(&header(u64::MAX, 0));
        assert!(msg.contains("18446744073709551615 tensors"), "{msg}");
        let (_, msg) = parse_err(&header(0, 1 << 40));
        assert!(msg.contains("metadata entries"), "{msg}");
    }

    #[test]
    fn invalid_values() {
        let one_kv = |key: &str, ty: u32, payload: &[u8]| {
            let mut b = header(0, 1);
            put_str(&mut b, key);
            b.extend(ty.to_le_bytes());
            b.extend(payload);
            b
        };
        let (e, msg) = parse_err(&one_kv("k", 8, &[2, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe]));
        assert!(
            matches!(e, GgufError::InvalidUtf8 { .. }) && msg.contains("metadata key 'k'"),
            "{msg}"
        );
        let (_, msg) = parse_err(&one_kv("k", 13, &[0; 8]));
        assert!(
            msg.contains("metadata key 'k': unknown value type 13"),
            "{msg}"
        );
        let (_, msg) = parse_err(&one_kv("k", 7, &[2]));
        assert!(msg.contains("invalid boolean byte 2"), "{msg}");
        let (_, msg) = parse_err(&one_kv("general.alignment", 4, &12u32.to_le_bytes()));
        assert!(
            msg.contains("'general.alignment': must be a u32 power of two"),
            "{msg}"
        );
        let (_, msg) = parse_err(&one_kv("general.alignment", 10, &64u64.to_le_bytes()));
        assert!(msg.contains("got u64"), "{msg}");
        let (_, msg) = parse_err(&one_kv("", 0, &[0]));
        assert!(msg.contains("the key is empty"), "{msg}");
        // Arrays nested five deep.
        let mut nested = Vec::new();
        for _ in 0..5 {
            nested.extend(9u32.to_le_bytes());
            nested.extend(1u64.to_le_bytes());
        }
        nested.extend(0u32.to_le_bytes());
        nested.extend(0u64.to_le_bytes());
        let (_, msg) = parse_err(&one_kv("k", 9, &nested));
        assert!(msg.contains("nested more than 4 deep"), "{msg}");
        // Key invalid UTF-8.
        let mut b = header(0, 1);
        b.extend(1u64.to_le_bytes());
        b.push(0xc3);
        b.extend(0u32.to_le_bytes());
        b.push(0);
        let (_, msg) = parse_err(&b);
        assert!(
            msg.contains("the name of metadata entry 0 is not valid UTF-8"),
            "{msg}"
        );
    }

    #[test]
    fn duplicates_are_rejected() {
        let mut b = header(0, 2);
        for _ in 0..2 {
            put_str(&mut b, "general.name");
            b.extend(0u32.to_le_bytes());
            b.push(1);
        }
        let (e, msg) = parse_err(&b);
        assert!(
            matches!(e, GgufError::DuplicateKey { .. }) && msg.contains("'general.name'"),
            "{msg}"
        );
        // Rename the second tensor to the first's name.
        let first = "blk.0.attn_q.weight";
        let second = "blk.3.ffn_down.weight";
        let mut b2 = valid_file();
        let at = b2
            .windows(second.len())
            .position(|w| w == second.as_bytes())
            .unwrap();
        b2[at - 8..at].copy_from_slice(&(first.len() as u64).to_le_bytes());
        b2.splice(at..at + second.len(), first.bytes());
        let (e, msg) = parse_err(&b2);
        assert!(
            matches!(e, GgufError::DuplicateTensor { .. })
                && msg.contains("tensor 'blk.0.attn_q.weight' appears more than once"),
            "{msg}"
        );
    }

    /// A file with one tensor entry whose fields are given, and `data` bytes after the header.
    fn one_tensor(name: &str, dims: &[u64], ggml_type: u32, offset: u64, data: usize) -> Vec<u8> {
        let mut b = header(1, 0);
        put_str(&mut b, name);
        b.extend((dims.len() as u32).to_le_bytes());
        dims.iter().for_each(|d| b.extend(d.to_le_bytes()));
        b.extend(ggml_type.to_le_bytes());
        b.extend(offset.to_le_bytes());
        b.resize(b.len().div_ceil(32) * 32 + data, 0);
        b
    }

    #[test]
    fn invalid_tensors() {
        assert!(parse(&one_tensor("w", &[4, 2], 0, 0, 32)).is_ok());
        let (e, msg) = parse_err(&one_tensor("w", &[4, 2], 5, 0, 32));
        assert!(
            matches!(e, GgufError::UnknownTensorType { ggml_type: 5, .. })
                && msg.contains("tensor 'w'"),
            "{msg}"
        );
        let (_, msg) = parse_err(&one_tensor("w", &[1 << 32, 1 << 32], 0, 0, 32));
        assert!(
            msg.contains(
                "tensor 'w' has dimensions [4294967296, 4294967296] whose element count overflows"
            ),
            "{msg}"
        );
        let (_, msg) = parse_err(&one_tensor("w", &[1 << 61, 2], 0, 0, 32));
        assert!(msg.contains("byte size overflows"), "{msg}");
        let (_, msg) = parse_err(&one_tensor("w", &[1; 5], 0, 0, 32));
        assert!(msg.contains("has 5 dimensions"), "{msg}");
        let (_, msg) = parse_err(&one_tensor("w", &[48], 8, 0, 64));
        assert!(
            msg.contains("rows of 48 elements, not a multiple of the Q8_0 block size 32"),
            "{msg}"
        );
        let (e, msg) = parse_err(&one_tensor("w", &[4, 2], 0, 8, 64));
        assert!(
            matches!(e, GgufError::MisplacedTensor { .. })
                && msg.contains("tensor 'w' has data offset 8, expected 0"),
            "{msg}"
        );
        let (e, msg) = parse_err(&one_tensor("w", &[4, 2], 0, 0, 31));
        assert!(
            matches!(e, GgufError::TensorPastEnd { .. }) && msg.contains("tensor 'w' needs bytes"),
            "{msg}"
        );
        let long = "x".repeat(64);
        let (_, msg) = parse_err(&one_tensor(&long, &[1], 0, 0, 4));
        assert!(msg.contains("64-byte name"), "{msg}");
        let (_, msg) = parse_err(&one_tensor("w", &[4, 2], 0, u64::MAX - 7, 32));
        assert!(msg.contains("offset 18446744073709551608"), "{msg}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let e = read_gguf(Path::new("/no/such/dir/m.gguf")).unwrap_err();
        assert!(matches!(e, GgufError::Io { .. }));
        assert!(
            e.to_string()
                .starts_with("/no/such/dir/m.gguf: cannot open"),
            "{e}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Random byte edits, truncations and planted huge lengths never panic (or abort on a
        /// huge allocation): every input gives Ok or Err.
        #[test]
        fn mutated_files_never_panic(
            cut in 0usize..600,
            flips in prop::collection::vec((0usize..1 << 16, any::<u8>()), 0..8),
            big in prop::option::of((0usize..1 << 16, any::<u64>())),
        ) {
            let mut b = valid_file();
            // Edit the header (everything before the tensor data), where every byte matters.
            let header = parse(&b).unwrap().data_offset as usize;
            for (i, v) in flips {
                b[i % header] = v;
            }
            if let Some((i, v)) = big {
                let i = i % (header - 8);
                b[i..i + 8].copy_from_slice(&v.to_le_bytes());
            }
            b.truncate(cut.min(b.len()));
            let _ = parse(&b);
        }
    }
}
