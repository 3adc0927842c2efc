use std::io::{BufWriter, Write};
use std::path::Path;

use super::{GgufError, GgufValue};

/// Tensor contents to write, converted to the stored type on write.
#[derive(Debug, Clone)]
pub enum TensorData {
    F32(Vec<f32>),
    F16(Vec<f32>),
    /// ggml's Q8_0: blocks of 32 values, an f16 scale amax / 127 and 32 rounded i8 quants.
    Q8_0(Vec<f32>),
}

impl TensorData {
    fn type_id(&self) -> u32 {
        match self {
            Self::F32(_) => 0,
            Self::F16(_) => 1,
            Self::Q8_0(_) => 8,
        }
    }

    fn encode(&self) -> Vec<u8> {
        match self {
            Self::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Self::F16(v) => v
                .iter()
                .flat_map(|&x| f32_to_f16(x).to_le_bytes())
                .collect(),
            Self::Q8_0(v) => {
                let mut out = Vec::with_capacity(v.len() / 32 * 34);
                for block in v.chunks(32) {
                    let amax = block.iter().fold(0f32, |m, x| m.max(x.abs()));
                    let d = amax / 127.0;
                    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                    out.extend(f32_to_f16(d).to_le_bytes());
                    out.extend(block.iter().map(|&x| (x * id).round() as i8 as u8));
                }
                out
            }
        }
    }
}

/// f32 -> IEEE half, round to nearest even (as ggml's GGML_FP32_TO_FP16).
pub(crate) fn f32_to_f16(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let man = bits & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if man != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let rest = m & ((1 << shift) - 1);
        let mut h = m >> shift;
        if rest > half || (rest == half && (h & 1) == 1) {
            h += 1;
        }
        return sign | h as u16;
    }
    let mut h = ((e as u32) << 10) | (man >> 13);
    let rest = man & 0x1fff;
    if rest > 0x1000 || (rest == 0x1000 && (h & 1) == 1) {
        h += 1; // may carry into the exponent, which is the correct rounding
    }
    sign | h as u16
}

/// Builds a GGUF v3 file in memory order: metadata, tensor directory, aligned data.
#[derive(Debug, Default)]
pub struct GgufWriter {
    metadata: Vec<(String, GgufValue)>,
    tensors: Vec<(String, Vec<u64>, TensorData)>,
}

const ALIGN: u64 = 32;

impl GgufWriter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add_kv(&mut self, key: &str, value: GgufValue) -> &mut Self {
        self.metadata.push((key.to_string(), value));
        self
    }

    /// Adds a tensor; `dims` in ggml order (ne0 first: [n_in, n_out] for a weight matrix).
    pub fn add_tensor(&mut self, name: &str, dims: &[u64], data: TensorData) -> &mut Self {
        self.tensors.push((name.to_string(), dims.to_vec(), data));
        self
    }

    /// Writes the file atomically (temporary file in the same folder, then rename).
    pub fn write_to(&self, path: &Path) -> Result<(), GgufError> {
        let fail = |e: std::io::Error| GgufError {
            path: path.to_path_buf(),
            message: format!("cannot write: {e}"),
        };
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
        let mut w = BufWriter::new(tmp);
        w.write_all(&self.encode()).map_err(fail)?;
        let tmp = w.into_inner().map_err(|e| fail(e.into_error()))?;
        tmp.as_file().sync_all().map_err(fail)?;
        tmp.persist(path).map_err(|e| fail(e.error))?;
        Ok(())
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(b"GGUF");
        out.extend(3u32.to_le_bytes());
        out.extend((self.tensors.len() as u64).to_le_bytes());
        out.extend((self.metadata.len() as u64).to_le_bytes());
        for (k, v) in &self.metadata {
            put_str(&mut out, k);
            out.extend(v.type_id().to_le_bytes());
            put_value(&mut out, v);
        }
        let blobs: Vec<Vec<u8>> = self.tensors.iter().map(|(_, _, d)| d.encode()).collect();
        let mut offset = 0u64;
        for ((name, dims, data), blob) in self.tensors.iter().zip(&blobs) {
            put_str(&mut out, name);
            out.extend((dims.len() as u32).to_le_bytes());
            dims.iter().for_each(|d| out.extend(d.to_le_bytes()));
            out.extend(data.type_id().to_le_bytes());
            out.extend(offset.to_le_bytes());
            offset += (blob.len() as u64).div_ceil(ALIGN) * ALIGN;
        }
        pad(&mut out);
        for blob in &blobs {
            out.extend(blob);
            pad(&mut out);
        }
        out
    }
}

fn pad(out: &mut Vec<u8>) {
    while out.len() as u64 % ALIGN != 0 {
        out.push(0);
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &GgufValue) {
    match v {
        GgufValue::U8(x) => out.push(*x),
        GgufValue::I8(x) => out.push(*x as u8),
        GgufValue::U16(x) => out.extend(x.to_le_bytes()),
        GgufValue::I16(x) => out.extend(x.to_le_bytes()),
        GgufValue::U32(x) => out.extend(x.to_le_bytes()),
        GgufValue::I32(x) => out.extend(x.to_le_bytes()),
        GgufValue::F32(x) => out.extend(x.to_le_bytes()),
        GgufValue::Bool(x) => out.push(*x as u8),
        GgufValue::String(s) => put_str(out, s),
        GgufValue::Array(items) => {
            let elem = items.first().map_or(4, GgufValue::type_id);
            out.extend(elem.to_le_bytes());
            out.extend((items.len() as u64).to_le_bytes());
            items.iter().for_each(|i| put_value(out, i));
        }
        GgufValue::U64(x) => out.extend(x.to_le_bytes()),
        GgufValue::I64(x) => out.extend(x.to_le_bytes()),
        GgufValue::F64(x) => out.extend(x.to_le_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::read_gguf;

    #[test]
    fn f16_hand_picked_values() {
        assert_eq!(f32_to_f16(0.0), 0x0000);
        assert_eq!(f32_to_f16(-0.0), 0x8000);
        assert_eq!(f32_to_f16(1.0), 0x3c00);
        assert_eq!(f32_to_f16(-2.0), 0xc000);
        assert_eq!(f32_to_f16(65504.0), 0x7bff);
        assert_eq!(f32_to_f16(65520.0), 0x7c00, "rounds up to infinity");
        assert_eq!(f32_to_f16(f32::INFINITY), 0x7c00);
        assert_eq!(f32_to_f16(f32::NAN) & 0x7c00, 0x7c00);
        assert_eq!(f32_to_f16(5.960_464_5e-8), 0x0001, "smallest subnormal");
        assert_eq!(f32_to_f16(6.103_515_6e-5), 0x0400, "smallest normal");
        // 1 + 2^-11 is exactly between 1 and 1 + 2^-10: ties to even (1.0).
        assert_eq!(f32_to_f16(1.0 + 2f32.powi(-11)), 0x3c00);
        assert_eq!(f32_to_f16(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02);
    }

    #[test]
    fn q8_0_block_hand_computed() {
        let mut v = vec![0f32; 32];
        v[0] = 127.0;
        v[1] = -63.5;
        v[2] = 1.0;
        let bytes = TensorData::Q8_0(v).encode();
        assert_eq!(bytes.len(), 34);
        assert_eq!(
            u16::from_le_bytes([bytes[0], bytes[1]]),
            0x3c00,
            "d = 127 / 127 = 1"
        );
        assert_eq!(bytes[2] as i8, 127);
        assert_eq!(bytes[3] as i8, -64, "-63.5 rounds away from zero");
        assert_eq!(bytes[4] as i8, 1);
    }

    #[test]
    fn round_trip_every_value_type() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.gguf");
        let values = vec![
            GgufValue::U8(1),
            GgufValue::I8(-2),
            GgufValue::U16(3),
            GgufValue::I16(-4),
            GgufValue::U32(5),
            GgufValue::I32(-6),
            GgufValue::F32(7.5),
            GgufValue::Bool(true),
            GgufValue::String("ünïcode".into()),
            GgufValue::Array(vec![
                GgufValue::String("a".into()),
                GgufValue::String("b".into()),
            ]),
            GgufValue::U64(u64::MAX),
            GgufValue::I64(i64::MIN),
            GgufValue::F64(-0.125),
        ];
        let mut w = GgufWriter::new();
        for (i, v) in values.iter().enumerate() {
            w.add_kv(&format!("k{i}"), v.clone());
        }
        w.add_tensor("a", &[4, 2], TensorData::F32(vec![1.0; 8]));
        w.add_tensor("b", &[32], TensorData::Q8_0(vec![0.5; 32]));
        w.add_tensor("c", &[3], TensorData::F16(vec![1.0; 3]));
        w.write_to(&p).unwrap();
        let f = read_gguf(&p).unwrap();
        let got: Vec<GgufValue> = f.metadata.iter().map(|(_, v)| v.clone()).collect();
        assert_eq!(got, values);
        assert_eq!(f.tensors.len(), 3);
        assert_eq!(f.tensor("a").unwrap().dims, vec![4, 2]);
        assert_eq!(f.tensor("b").unwrap().byte_size(), Some(34));
        assert_eq!(f.tensor("c").unwrap().offset % 32, 0);
    }
}
