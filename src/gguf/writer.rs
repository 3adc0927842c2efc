//! A small GGUF v3 writer: tests build real-format model files with it, and `hesnr convert-hf`
//! streams converted checkpoints through it tensor by tensor.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::reader::{DEFAULT_ALIGNMENT, MAX_ARRAY_DEPTH, MAX_DIMS, MAX_TENSOR_NAME_LEN};
use super::{GgufError, GgufValue};

/// Tensor contents, given as f32 and converted to the stored type when written.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// Stored as is (ggml type 0).
    F32(Vec<f32>),
    /// Stored as IEEE half, rounded to nearest even (ggml type 1).
    F16(Vec<f32>),
    /// Stored as ggml's Q8_0 (type 8): blocks of 32 values, each an f16 scale `d = amax / 127`
    /// and 32 quants `round(x / d)`, exactly as `quantize_row_q8_0_ref`. Rows (`dims[0]`) must
    /// be a multiple of 32.
    Q8_0(Vec<f32>),
}

impl TensorData {
    /// The ggml type id written for this data.
    pub fn ggml_type(&self) -> u32 {
        match self {
            Self::F32(_) => 0,
            Self::F16(_) => 1,
            Self::Q8_0(_) => 8,
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.values().len()
    }

    pub fn is_empty(&self) -> bool {
        self.values().is_empty()
    }

    fn values(&self) -> &[f32] {
        match self {
            Self::F32(v) | Self::F16(v) | Self::Q8_0(v) => v,
        }
    }

    /// Bytes once encoded (Q8_0 assumes a whole number of blocks, checked before writing).
    fn encoded_len(&self) -> u64 {
        let n = self.len() as u64;
        match self {
            Self::F32(_) => 4 * n,
            Self::F16(_) => 2 * n,
            Self::Q8_0(_) => n / 32 * 34,
        }
    }

    fn encode(&self) -> Vec<u8> {
        match self {
            Self::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Self::F16(v) => v
                .iter()
                .flat_map(|&x| f32_to_f16(x).to_le_bytes())
                .collect(),
            Self::Q8_0(v) => quantize_q8_0(v),
        }
    }
}

/// ggml's `quantize_row_q8_0_ref`: per block of 32, `d = amax / 127` (stored as f16) and
/// `q = round(x / d)` (computed as `x * (1 / d)`, ties away from zero, as C's `roundf`).
fn quantize_q8_0(v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() / 32 * 34);
    for block in v.chunks_exact(32) {
        let amax = block
            .iter()
            .fold(0f32, |m, x| if x.abs() > m { x.abs() } else { m });
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend(f32_to_f16(d).to_le_bytes());
        out.extend(block.iter().map(|&x| (x * id).round() as i8 as u8));
    }
    out
}

/// f32 -> IEEE 754 half, rounding to nearest, ties to even, like ggml's `GGML_FP32_TO_FP16`
/// (overflow gives infinity, NaN gives the quiet NaN 0x7e00 with the sign kept).
pub fn f32_to_f16(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let abs = bits & 0x7fff_ffff;
    if abs > 0x7f80_0000 {
        return sign | 0x7e00;
    }
    let exp = (abs >> 23) as i32 - 127;
    let man = abs & 0x7f_ffff;
    if exp > 15 {
        return sign | 0x7c00;
    }
    if exp >= -14 {
        // Normal half: keep the top 10 mantissa bits, round on the 13 dropped ones. A carry
        // into the exponent is the correct result (up to infinity past 65504).
        let mut h = (((exp + 15) as u32) << 10) | (man >> 13);
        let rest = man & 0x1fff;
        if rest > 0x1000 || (rest == 0x1000 && h & 1 == 1) {
            h += 1;
        }
        return sign | h as u16;
    }
    if abs < 0x0080_0000 {
        return sign; // f32 subnormals are far below half's smallest subnormal
    }
    // Subnormal half: value / 2^-24 = (1.man) * 2^(exp + 24) = full >> -(exp + 1).
    let shift = (-exp - 1) as u32;
    if shift >= 32 {
        return sign;
    }
    let full = man | 0x80_0000;
    let mut h = full >> shift;
    let rest = full & ((1u32 << shift) - 1);
    let half = 1u32 << (shift - 1);
    if rest > half || (rest == half && h & 1 == 1) {
        h += 1;
    }
    sign | h as u16
}

/// IEEE 754 half -> f32 (exact).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: m * 2^-24, exact in f32.
            let v = m as f32 * f32::from_bits(0x3380_0000);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 112) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// Builds a GGUF v3 file: metadata, then the tensor directory, then tensor data packed in
/// order and padded to the alignment (`general.alignment` if added as a u32, else 32).
///
/// Inputs are checked when writing, with the same rules as the reader, so that a test cannot
/// silently produce a file llama.cpp would reject.
#[derive(Debug, Default, Clone)]
pub struct GgufWriter {
    metadata: Vec<(String, GgufValue)>,
    tensors: Vec<(String, Vec<u64>, TensorData)>,
}

impl GgufWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a metadata entry (written in insertion order). Arrays must hold a single element
    /// type; an empty array is written as an array of strings.
    pub fn add_kv(&mut self, key: impl Into<String>, value: GgufValue) -> &mut Self {
        self.metadata.push((key.into(), value));
        self
    }

    /// Adds a tensor. `dims` are in ggml order (ne0 first): a weight used as `y = W x` with
    /// `x` of size `n_in` has dims `[n_in, n_out]`, and `data` is row-major over them
    /// (`n_out` rows of `n_in` values).
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        dims: &[u64],
        data: TensorData,
    ) -> &mut Self {
        self.tensors.push((name.into(), dims.to_vec(), data));
        self
    }

    /// Writes the file atomically: to a temporary file in the same folder, fsynced, then
    /// renamed over `path`, so that readers never see a half-written model.
    pub fn write_to(&self, path: &Path) -> Result<(), GgufError> {
        let alignment = self.validate(path)?;
        write_atomically(path, 1 << 16, |w| {
            self.encode(w, alignment).map_err(|e| io_error(path, e))
        })
    }

    /// Checks everything the reader (and llama.cpp) would; returns the alignment to use.
    fn validate(&self, path: &Path) -> Result<u64, GgufError> {
        let invalid = |what: String, reason: String| GgufError::InvalidValue {
            path: path.to_path_buf(),
            what,
            reason,
        };
        let mut keys = HashSet::new();
        for (i, (key, value)) in self.metadata.iter().enumerate() {
            if key.is_empty() {
                return Err(invalid(
                    format!("metadata entry {i}"),
                    "the key is empty".into(),
                ));
            }
            if !keys.insert(key.as_str()) {
                return Err(GgufError::DuplicateKey {
                    path: path.to_path_buf(),
                    key: key.clone(),
                });
            }
            check_array(value, 0)
                .map_err(|reason| invalid(format!("metadata key '{key}'"), reason))?;
        }
        let alignment = match self.metadata.iter().find(|(k, _)| k == "general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some((_, GgufValue::U32(a))) if *a > 0 && a.is_power_of_two() => u64::from(*a),
            Some((k, v)) => {
                return Err(invalid(
                    format!("metadata key '{k}'"),
                    format!("must be a u32 power of two, got {} {v:?}", v.type_name()),
                ))
            }
        };
        let mut names = HashSet::new();
        for (name, dims, data) in &self.tensors {
            let bad = |reason: String| GgufError::InvalidTensor {
                path: path.to_path_buf(),
                tensor: name.clone(),
                reason,
            };
            check_tensor_entry(path, &mut names, name, dims)?;
            let n = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
            if n != Some(data.len() as u64) {
                return Err(bad(format!(
                    "has dimensions {dims:?} but {} values were given",
                    data.len()
                )));
            }
            if let TensorData::Q8_0(_) = data {
                if dims.first().is_some_and(|ne0| ne0 % 32 != 0) {
                    return Err(bad(format!(
                        "has rows of {} elements, not a multiple of the Q8_0 block size 32",
                        dims[0]
                    )));
                }
            }
        }
        Ok(alignment)
    }

    fn encode(&self, w: &mut impl Write, alignment: u64) -> std::io::Result<()> {
        let directory = self.tensors.iter().map(|(name, dims, data)| {
            (
                name.as_str(),
                dims.as_slice(),
                data.ggml_type(),
                data.encoded_len(),
            )
        });
        self.encode_head(w, alignment, directory)?;
        for (_, _, data) in &self.tensors {
            let bytes = data.encode();
            w.write_all(&bytes)?;
            pad(w, bytes.len() as u64, alignment)?;
        }
        Ok(())
    }

    /// Header, metadata and tensor directory (name, dims, ggml type, data bytes), padded to
    /// the alignment when tensors follow.
    fn encode_head<'a>(
        &self,
        w: &mut impl Write,
        alignment: u64,
        directory: impl ExactSizeIterator<Item = (&'a str, &'a [u64], u32, u64)>,
    ) -> std::io::Result<()> {
        let n_tensors = directory.len();
        let mut head = Vec::new();
        head.extend(b"GGUF");
        head.extend(3u32.to_le_bytes());
        head.extend((n_tensors as u64).to_le_bytes());
        head.extend((self.metadata.len() as u64).to_le_bytes());
        let mut pos = 0u64;
        for (k, v) in &self.metadata {
            put_str(&mut head, k);
            head.extend(v.type_id().to_le_bytes());
            put_value(&mut head, v);
            // Flush entry by entry: a token list can be large.
            w.write_all(&head)?;
            pos += head.len() as u64;
            head.clear();
        }
        let mut offset = 0u64;
        for (name, dims, ggml_type, len) in directory {
            put_str(&mut head, name);
            head.extend((dims.len() as u32).to_le_bytes());
            dims.iter().for_each(|d| head.extend(d.to_le_bytes()));
            head.extend(ggml_type.to_le_bytes());
            head.extend(offset.to_le_bytes());
            offset += len.div_ceil(alignment) * alignment;
        }
        w.write_all(&head)?;
        pos += head.len() as u64;
        if n_tensors > 0 {
            pad(w, pos, alignment)?;
        }
        Ok(())
    }

    /// Writes the metadata added so far and `tensors` whose bytes come from `produce`, one
    /// tensor at a time, so that a large model never has to be held in memory: `produce(i, w)`
    /// must write exactly tensor `i`'s bytes (its ggml type's encoding, row-major over its
    /// dims) to `w`. Tensors added with [`Self::add_tensor`] are refused here. Only plain
    /// float types are accepted: F32 (0), F16 (1) and BF16 (30).
    ///
    /// Atomic like [`Self::write_to`]: on any error, from the checks, `produce` or the disk,
    /// nothing is left at `path`.
    pub fn write_streamed_to<E: From<GgufError>>(
        &self,
        path: &Path,
        tensors: &[StreamedTensor],
        mut produce: impl FnMut(usize, &mut dyn Write) -> Result<(), E>,
    ) -> Result<(), E> {
        let invalid = |what: String, reason: String| GgufError::InvalidValue {
            path: path.to_path_buf(),
            what,
            reason,
        };
        if !self.tensors.is_empty() {
            return Err(invalid(
                "the tensor list".into(),
                "tensors added with add_tensor cannot be mixed with streamed ones".into(),
            )
            .into());
        }
        let alignment = self.validate(path)?;
        let mut names = HashSet::new();
        let mut sizes = Vec::with_capacity(tensors.len());
        for t in tensors {
            check_tensor_entry(path, &mut names, &t.name, &t.dims)?;
            let elem = match t.ggml_type {
                0 => 4,
                1 | 30 => 2,
                other => {
                    return Err(GgufError::InvalidTensor {
                        path: path.to_path_buf(),
                        tensor: t.name.clone(),
                        reason: format!(
                            "has ggml type {other}; streamed tensors must be F32, F16 or BF16"
                        ),
                    }
                    .into())
                }
            };
            let size = t
                .dims
                .iter()
                .try_fold(elem, |a: u64, &d| a.checked_mul(d))
                .ok_or_else(|| GgufError::InvalidTensor {
                    path: path.to_path_buf(),
                    tensor: t.name.clone(),
                    reason: format!("has dimensions {:?} whose size overflows", t.dims),
                })?;
            sizes.push(size);
        }
        let io = |source| io_error(path, source);
        write_atomically(path, 1 << 20, |w| {
            let directory = tensors
                .iter()
                .zip(&sizes)
                .map(|(t, &n)| (t.name.as_str(), t.dims.as_slice(), t.ggml_type, n));
            self.encode_head(w, alignment, directory).map_err(io)?;
            for (i, (t, &size)) in tensors.iter().zip(&sizes).enumerate() {
                let mut counted = CountingWriter {
                    inner: &mut *w,
                    written: 0,
                };
                produce(i, &mut counted)?;
                let written = counted.written;
                if written != size {
                    return Err(GgufError::InvalidTensor {
                        path: path.to_path_buf(),
                        tensor: t.name.clone(),
                        reason: format!("was given {written} bytes of data, expected {size}"),
                    }
                    .into());
                }
                pad(w, size, alignment).map_err(io)?;
            }
            Ok(())
        })
    }
}

fn io_error(path: &Path, source: std::io::Error) -> GgufError {
    GgufError::Io {
        path: path.to_path_buf(),
        action: "write",
        source,
    }
}

/// Writes `path` through `body` atomically: into a temporary file in the same folder, flushed
/// and fsynced, then renamed over `path`. On any error nothing is left at `path`.
fn write_atomically<E: From<GgufError>>(
    path: &Path,
    buffer: usize,
    body: impl FnOnce(&mut BufWriter<File>) -> Result<(), E>,
) -> Result<(), E> {
    let io = |source| io_error(path, source);
    let tmp = TempFile::create(path).map_err(io)?;
    let file = tmp.file.try_clone().map_err(io)?;
    let mut w = BufWriter::with_capacity(buffer, file);
    body(&mut w)?;
    w.flush().map_err(io)?;
    drop(w);
    tmp.file.sync_all().map_err(io)?;
    tmp.persist(path).map_err(io)?;
    Ok(())
}

/// A tensor of [`GgufWriter::write_streamed_to`]: name, dims in ggml order (ne0 first) and
/// ggml type (0 = F32, 1 = F16, 30 = BF16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamedTensor {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: u32,
}

struct CountingWriter<'a, W: Write> {
    inner: &'a mut W,
    written: u64,
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Zeros from `len` up to the next multiple of `alignment`.
fn pad(w: &mut (impl Write + ?Sized), len: u64, alignment: u64) -> std::io::Result<()> {
    let n = len.div_ceil(alignment) * alignment - len;
    std::io::copy(&mut std::io::repeat(0).take(n), w).map(drop)
}

/// The checks every tensor entry gets: name length, uniqueness, number of dimensions.
fn check_tensor_entry<'a>(
    path: &Path,
    names: &mut HashSet<&'a str>,
    name: &'a str,
    dims: &[u64],
) -> Result<(), GgufError> {
    let bad = |reason: String| GgufError::InvalidTensor {
        path: path.to_path_buf(),
        tensor: name.to_string(),
        reason,
    };
    if name.len() > MAX_TENSOR_NAME_LEN {
        return Err(bad(format!(
            "has a {}-byte name; llama.cpp accepts at most {MAX_TENSOR_NAME_LEN}",
            name.len()
        )));
    }
    if !names.insert(name) {
        return Err(GgufError::DuplicateTensor {
            path: path.to_path_buf(),
            tensor: name.to_string(),
        });
    }
    if dims.len() > MAX_DIMS as usize {
        return Err(bad(format!(
            "has {} dimensions; ggml supports at most {MAX_DIMS}",
            dims.len()
        )));
    }
    Ok(())
}

/// Arrays must hold one element type (the format stores it once) and nest at most
/// `MAX_ARRAY_DEPTH` deep.
fn check_array(value: &GgufValue, depth: u32) -> Result<(), String> {
    let GgufValue::Array(items) = value else {
        return Ok(());
    };
    if depth >= MAX_ARRAY_DEPTH {
        return Err(format!("arrays nested more than {MAX_ARRAY_DEPTH} deep"));
    }
    if let Some(first) = items.first() {
        if let Some(other) = items.iter().find(|v| v.type_id() != first.type_id()) {
            return Err(format!(
                "array mixes {} and {} elements",
                first.type_name(),
                other.type_name()
            ));
        }
    }
    items.iter().try_for_each(|v| check_array(v, depth + 1))
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &GgufValue) {
    match v {
        GgufValue::U8(x) => out.push(*x),
        GgufValue::I8(x) => out.extend(x.to_le_bytes()),
        GgufValue::U16(x) => out.extend(x.to_le_bytes()),
        GgufValue::I16(x) => out.extend(x.to_le_bytes()),
        GgufValue::U32(x) => out.extend(x.to_le_bytes()),
        GgufValue::I32(x) => out.extend(x.to_le_bytes()),
        GgufValue::F32(x) => out.extend(x.to_le_bytes()),
        GgufValue::Bool(x) => out.push(u8::from(*x)),
        GgufValue::String(s) => put_str(out, s),
        GgufValue::Array(items) => {
            let elem = items.first().map_or(8, GgufValue::type_id);
            out.extend(elem.to_le_bytes());
            out.extend((items.len() as u64).to_le_bytes());
            items.iter().for_each(|i| put_value(out, i));
        }
        GgufValue::U64(x) => out.extend(x.to_le_bytes()),
        GgufValue::I64(x) => out.extend(x.to_le_bytes()),
        GgufValue::F64(x) => out.extend(x.to_le_bytes()),
    }
}

/// A temporary file beside the destination, removed unless persisted.
struct TempFile {
    path: PathBuf,
    file: File,
    persisted: bool,
}

impl TempFile {
    fn create(dest: &Path) -> std::io::Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let base = dest
            .file_name()
            .map_or_else(|| "gguf".into(), |n| n.to_string_lossy());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!(".{base}.{}-{nanos}-{n}.tmp", std::process::id()));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    return Ok(Self {
                        path,
                        file,
                        persisted: false,
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn persist(mut self, dest: &Path) -> std::io::Result<()> {
        std::fs::rename(&self.path, dest)?;
        self.persisted = true;
        // Make the rename itself durable; not all platforms can open a folder, so best effort.
        #[cfg(unix)]
        if let Some(dir) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::read_gguf;

    #[test]
    fn f16_hand_picked_values() {
        let cases: &[(f32, u16, &str)] = &[
            (0.0, 0x0000, "zero"),
            (-0.0, 0x8000, "negative zero keeps its sign"),
            (1.0, 0x3c00, "one"),
            (-2.0, 0xc000, "minus two"),
            (0.1, 0x2e66, "0.1 rounds down"),
            (-1.5, 0xbe00, "minus one and a half"),
            (65504.0, 0x7bff, "largest half"),
            (65519.0, 0x7bff, "below the overflow midpoint"),
            (65520.0, 0x7c00, "the midpoint rounds (to even) to infinity"),
            (1e6, 0x7c00, "overflow"),
            (f32::INFINITY, 0x7c00, "infinity"),
            (f32::NEG_INFINITY, 0xfc00, "minus infinity"),
            (6.103_515_6e-5, 0x0400, "smallest normal 2^-14"),
            (6.1e-5, 0x03ff, "largest subnormal"),
            (5.960_464_5e-8, 0x0001, "smallest subnormal 2^-24"),
            (2.980_232_2e-8, 0x0000, "2^-25 is a tie: to even, zero"),
            (2.980_232_6e-8, 0x0001, "just above 2^-25 rounds up"),
            (8.940_697e-8, 0x0002, "1.5 * 2^-24 is a tie: to even, 2"),
            (1e-30, 0x0000, "underflow"),
            (-1e-45, 0x8000, "f32 subnormal"),
            (
                1.0 + 2f32.powi(-11),
                0x3c00,
                "tie between 1 and 1+2^-10: to even",
            ),
            (1.0 + 3.0 * 2f32.powi(-11), 0x3c02, "tie: to even, up"),
            (
                1.0 + 2f32.powi(-11) + 2f32.powi(-20),
                0x3c01,
                "just above a tie",
            ),
            (2047.0 + 0.5, 0x6800, "2047.5 carries into the exponent"),
        ];
        for &(x, want, why) in cases {
            assert_eq!(f32_to_f16(x), want, "{x:e}: {why}");
        }
        assert_eq!(f32_to_f16(f32::NAN), 0x7e00);
        assert_eq!(f32_to_f16(-f32::NAN), 0xfe00);
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    /// Every finite half survives a round trip, and every midpoint between neighbours rounds
    /// to the even one (the values just beside it to the nearer one).
    #[test]
    fn f16_exhaustive_round_trip_and_midpoints() {
        for h in 0u16..0x7c00 {
            for s in [0, 0x8000] {
                let x = f16_to_f32(h | s);
                assert_eq!(f32_to_f16(x), h | s, "{h:#06x}");
            }
            if h == 0x7bff {
                continue; // the next step is infinity: see the hand-picked 65520
            }
            let (lo, hi) = (f16_to_f32(h) as f64, f16_to_f32(h + 1) as f64);
            let mid = ((lo + hi) / 2.0) as f32; // exact: halves have 11 bits
            let even = if h & 1 == 0 { h } else { h + 1 };
            assert_eq!(f32_to_f16(mid), even, "midpoint above {h:#06x}");
            assert_eq!(f32_to_f16(f32::from_bits(mid.to_bits() - 1)), h);
            assert_eq!(f32_to_f16(f32::from_bits(mid.to_bits() + 1)), h + 1);
        }
    }

    #[test]
    fn q8_0_block_hand_computed() {
        let mut v = vec![0f32; 64];
        v[0] = 127.0;
        v[1] = -63.5; // exactly -63.5 * (1/1): ties away from zero
        v[2] = 1.0;
        v[3] = -127.0;
        v[4] = 0.49;
        // Second block: amax 254 -> d = 2 (f16 0x4000), id = 0.5; halves round away from zero
        // as C's roundf does (rint would give 0 for 0.5).
        v[32] = 254.0;
        v[33] = -3.0;
        v[34] = 1.0;
        v[35] = 0.9;
        let b = TensorData::Q8_0(v).encode();
        assert_eq!(b.len(), 68);
        assert_eq!(
            u16::from_le_bytes([b[0], b[1]]),
            0x3c00,
            "d = 127 / 127 = 1"
        );
        let q: Vec<i8> = b[2..7].iter().map(|&x| x as i8).collect();
        assert_eq!(q, [127, -64, 1, -127, 0]);
        assert!(b[7..34].iter().all(|&x| x == 0));
        assert_eq!(u16::from_le_bytes([b[34], b[35]]), 0x4000);
        let q: Vec<i8> = b[36..40].iter().map(|&x| x as i8).collect();
        assert_eq!(q, [127, -2, 1, 0]);
        // An all-zero block has d = 0 and zero quants.
        assert_eq!(TensorData::Q8_0(vec![0.0; 32]).encode(), vec![0u8; 34]);
    }

    #[test]
    fn round_trip_every_value_type() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.gguf");
        let values = vec![
            GgufValue::U8(200),
            GgufValue::I8(-2),
            GgufValue::U16(60_000),
            GgufValue::I16(-4),
            GgufValue::U32(u32::MAX),
            GgufValue::I32(-6),
            GgufValue::F32(7.5),
            GgufValue::Bool(true),
            GgufValue::Bool(false),
            GgufValue::String("ünïcode ✓".into()),
            GgufValue::String(String::new()),
            GgufValue::Array(vec![
                GgufValue::String("a".into()),
                GgufValue::String("b".into()),
            ]),
            GgufValue::Array(vec![GgufValue::I32(-1), GgufValue::I32(3)]),
            GgufValue::Array(vec![GgufValue::F64(1.5); 3]),
            GgufValue::Array(vec![
                GgufValue::Array(vec![GgufValue::U8(1)]),
                GgufValue::Array(vec![GgufValue::String("x".into())]),
            ]),
            GgufValue::Array(vec![]),
            GgufValue::U64(u64::MAX),
            GgufValue::I64(i64::MIN),
            GgufValue::F64(-0.125),
        ];
        let mut w = GgufWriter::new();
        for (i, v) in values.iter().enumerate() {
            w.add_kv(format!("k{i}"), v.clone());
        }
        w.add_tensor(
            "a",
            &[4, 2],
            TensorData::F32((0..8).map(|i| i as f32).collect()),
        )
        .add_tensor("b", &[32], TensorData::Q8_0(vec![0.5; 32]))
        .add_tensor("c", &[3], TensorData::F16(vec![1.0, -2.0, 0.1]))
        .add_tensor("d", &[2, 1, 1, 1], TensorData::F32(vec![0.0; 2]));
        w.write_to(&p).unwrap();
        let f = read_gguf(&p).unwrap();
        assert_eq!(f.version, 3);
        let keys: Vec<&str> = f.metadata.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys[0], "k0");
        let got: Vec<GgufValue> = f.metadata.iter().map(|(_, v)| v.clone()).collect();
        assert_eq!(got, values);
        assert_eq!(f.tensors.len(), 4);
        let bytes = std::fs::read(&p).unwrap();
        let data = |name: &str| {
            let t = f.tensor(name).unwrap();
            let at = (f.data_offset + t.offset) as usize;
            bytes[at..at + t.byte_size().unwrap() as usize].to_vec()
        };
        let a = f.tensor("a").unwrap();
        assert_eq!((a.dims.as_slice(), a.ggml_type), (&[4u64, 2][..], 0));
        assert_eq!(data("a")[28..32], 7f32.to_le_bytes());
        assert_eq!(f.tensor("b").unwrap().byte_size(), Some(34));
        let c = data("c");
        let halves: Vec<f32> = c
            .chunks(2)
            .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
            .collect();
        assert_eq!(halves, [1.0, -2.0, f16_to_f32(0x2e66)]);
        assert_eq!(f.tensor("d").unwrap().dims, vec![2, 1, 1, 1]);
        assert_eq!(bytes.len() % 32, 0, "data padded to the alignment");
    }

    #[test]
    fn custom_alignment_and_no_tensors() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.gguf");
        let mut w = GgufWriter::new();
        w.add_kv("general.alignment", GgufValue::U32(64))
            .add_tensor("x", &[3], TensorData::F32(vec![1.0; 3]))
            .add_tensor("y", &[3], TensorData::F32(vec![2.0; 3]));
        w.write_to(&p).unwrap();
        let f = read_gguf(&p).unwrap();
        assert_eq!((f.alignment, f.data_offset % 64), (64, 0));
        assert_eq!(f.tensor("y").unwrap().offset, 64);

        let mut w = GgufWriter::new();
        w.add_kv("general.name", GgufValue::String("vocab only".into()));
        w.write_to(&p).unwrap();
        let f = read_gguf(&p).unwrap();
        assert!(f.tensors.is_empty());
        assert_eq!(f.data_offset, f.file_size);
    }

    #[test]
    fn invalid_inputs_are_refused_and_leave_no_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("bad.gguf");
        let err = |w: &GgufWriter| {
            let e = w.write_to(&p).unwrap_err().to_string();
            assert!(e.contains("bad.gguf"), "{e}");
            e
        };
        let mut w = GgufWriter::new();
        w.add_tensor("t", &[4, 2], TensorData::F32(vec![0.0; 7]));
        assert!(err(&w).contains("tensor 't' has dimensions [4, 2] but 7 values"));
        let mut w = GgufWriter::new();
        w.add_tensor("q", &[16, 2], TensorData::Q8_0(vec![0.0; 32]));
        assert!(err(&w).contains("not a multiple of the Q8_0 block size"));
        let mut w = GgufWriter::new();
        w.add_tensor("t", &[1], TensorData::F32(vec![0.0]))
            .add_tensor("t", &[1], TensorData::F32(vec![0.0]));
        assert!(err(&w).contains("tensor 't' appears more than once"));
        let mut w = GgufWriter::new();
        w.add_kv("k", GgufValue::U8(1))
            .add_kv("k", GgufValue::U8(2));
        assert!(err(&w).contains("metadata key 'k' appears more than once"));
        let mut w = GgufWriter::new();
        w.add_kv(
            "k",
            GgufValue::Array(vec![GgufValue::U8(1), GgufValue::String("x".into())]),
        );
        assert!(err(&w).contains("array mixes u8 and string"));
        let mut w = GgufWriter::new();
        w.add_kv("general.alignment", GgufValue::U64(32));
        assert!(err(&w).contains("must be a u32 power of two"));
        let mut w = GgufWriter::new();
        w.add_tensor("x".repeat(64), &[1], TensorData::F32(vec![0.0]));
        assert!(err(&w).contains("64-byte name"));
        assert_eq!(
            std::fs::read_dir(d.path()).unwrap().count(),
            0,
            "no leftovers"
        );
    }

    #[test]
    fn streamed_tensors_match_in_memory_ones_and_are_checked() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a.gguf"), d.path().join("b.gguf"));
        let x: Vec<f32> = (0..12).map(|i| i as f32 * 0.5).collect();
        let h = vec![1.0f32, -2.0, 0.1];
        let mut w = GgufWriter::new();
        w.add_kv("general.name", GgufValue::String("s".into()));
        let mut mem = w.clone();
        mem.add_tensor("x", &[4, 3], TensorData::F32(x.clone()))
            .add_tensor("h", &[3], TensorData::F16(h.clone()));
        mem.write_to(&a).unwrap();
        let tensors = [
            StreamedTensor {
                name: "x".into(),
                dims: vec![4, 3],
                ggml_type: 0,
            },
            StreamedTensor {
                name: "h".into(),
                dims: vec![3],
                ggml_type: 1,
            },
        ];
        w.write_streamed_to::<GgufError>(&b, &tensors, |i, out| {
            let bytes = match i {
                0 => TensorData::F32(x.clone()).encode(),
                _ => TensorData::F16(h.clone()).encode(),
            };
            // In two pieces: the writer only counts bytes.
            out.write_all(&bytes[..1]).unwrap();
            out.write_all(&bytes[1..]).unwrap();
            Ok(())
        })
        .unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());

        let c = d.path().join("c.gguf");
        let e = w
            .write_streamed_to::<GgufError>(&c, &tensors, |_, out| {
                out.write_all(&[0; 4]).unwrap();
                Ok(())
            })
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("tensor 'x' was given 4 bytes of data, expected 48"),
            "{e}"
        );
        let bad = [StreamedTensor {
            name: "q".into(),
            dims: vec![32],
            ggml_type: 8,
        }];
        let e = w
            .write_streamed_to::<GgufError>(&c, &bad, |_, _| Ok(()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("must be F32, F16 or BF16"), "{e}");
        let e = mem
            .write_streamed_to::<GgufError>(&c, &tensors, |_, _| Ok(()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot be mixed"), "{e}");
        assert!(!c.exists(), "nothing left after failures");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);
    }

    #[test]
    fn write_replaces_atomically_and_reports_unwritable_paths() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.gguf");
        std::fs::write(&p, b"old").unwrap();
        let mut w = GgufWriter::new();
        w.add_kv("general.name", GgufValue::String("new".into()));
        w.write_to(&p).unwrap();
        assert_eq!(read_gguf(&p).unwrap().get_str("general.name"), Some("new"));
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "temporary file renamed away");
        let e = w.write_to(&d.path().join("missing/m.gguf")).unwrap_err();
        assert!(matches!(e, GgufError::Io { .. }), "{e}");
        assert!(
            e.to_string().contains("missing/m.gguf: cannot write"),
            "{e}"
        );
    }
}
