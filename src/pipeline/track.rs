//! `hesnr track`: every checkpoint of a manifest on the same evaluation set, then the numbers a
//! training lead needs: the metrics per checkpoint, how each predicts the downstream scores, the
//! eps sweep, and the Long-Context Tax pairs.
//!
//! Each checkpoint's per-position numbers (for the scored positions only: H_k, p, renormalised
//! p, NLL, top-1 and top-k flags) are cached on disk under a key made of the model's content, the
//! evaluation set's content and every setting that changes them. Adding a checkpoint scores only
//! that one; a killed run loses at most the checkpoint it was on. Every table, cached or fresh,
//! is computed from the cached numbers, so it does not depend on what was cached when.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::proxy_columns::ProxyValues;
use super::track_types::{
    CheckpointResult, EpsCorrelation, Leaderboard, LeaderboardRow, MetricCorrelation,
    SweepCorrelation, SweepPoint, TaxFlag, TrackReport,
};
use crate::analysis::stats::{self, Correlation};
use crate::data::open::STDIN_ARG;
use crate::data::trajectory::mask::{Preset, TokenRule};
use crate::data::trajectory::read::{
    read_trajectories_with, DrawSpec, ReadOptions, READER_VERSION,
};
use crate::data::trajectory::render::TemplateChoice;
use crate::data::trajectory::Trajectory;
use crate::data::{self, digest, AtomicFile, Document, ReaderOptions};
use crate::engine::window::{Policy, PolicyKind, PolicyRequest};
use crate::engine::{model_store, Backend, EngineError};
use crate::metrics::proxy::{self, ProxyContext};
use crate::metrics::{
    Accumulator, AnyMetric, Metric, MetricConfig, PositionMetrics, ProxyMetric, TokenRecord,
};
use crate::pipeline::eval::{choose_template, eval_trajectory, EvalSettings, EvaluatedTrajectory};
use crate::pipeline::run::{Flow, Outcome, Stopped};
use crate::pipeline::score::{score_text, ScoreSettings, ScoredDocument};
use crate::pipeline::skips::SkipLog;

/// Points of the eps sweep over [ln 2, ln 5] (method.md: the paper's sweep range).
pub const SWEEP_POINTS: usize = 25;
/// Relative tolerance for the plateau of the correlation over the eps sweep.
pub const PLATEAU_TOLERANCE: f64 = 0.02;
/// Relative growth of |H| / scored tokens between consecutive checkpoints called a jump.
pub const DECISION_JUMP: f64 = 0.10;
/// Smallest relative change (1%) of PPL, top-1 or HE-SNR that counts as getting worse or better
/// in the Long-Context Tax diagnosis: smaller moves are noise, not a tax.
pub const TAX_MIN_CHANGE: f64 = 0.01;

/// Why a tracking run failed as a whole (one checkpoint's bad document is not one of these).
#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    #[error("manifest {path}: {message}")]
    Manifest { path: String, message: String },
    #[error("cache {path}: {message}")]
    Cache { path: String, message: String },
    #[error("checkpoint '{name}': {source}")]
    Checkpoint {
        name: String,
        #[source]
        source: EngineError,
    },
    #[error("checkpoint '{name}': {message}")]
    Scoring { name: String, message: String },
    /// A fatal failure (the model or server gone) while scoring a checkpoint.
    #[error("checkpoint '{name}': {source}")]
    Stopped {
        name: String,
        #[source]
        source: Stopped,
    },
    /// `-` in the evaluation set: it is read again for every checkpoint, and its content keys
    /// the cache, so it must be files.
    #[error(
        "hesnr track cannot read stdin (each checkpoint re-reads the evaluation set, and its \
         content keys the cache): write it to a file"
    )]
    Stdin,
    #[error(transparent)]
    Data(#[from] data::DataError),
}

/// One checkpoint as the manifest names it.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub name: String,
    /// The GGUF to score; with `remote`, the GGUF whose tokenizer the served model shares.
    pub model: PathBuf,
    /// A completions server that serves this checkpoint, instead of the embedded engine.
    pub remote: Option<RemoteCheckpoint>,
    pub step: Option<f64>,
    pub stage: Option<String>,
    pub downstream: BTreeMap<String, f64>,
}

/// Where a checkpoint is served (`url` and `served_model` in the manifest).
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteCheckpoint {
    pub url: String,
    /// The served name; `None` = the only model the server lists.
    pub served_model: Option<String>,
}

/// The checkpoints of a run, in manifest order.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub title: Option<String>,
    pub checkpoints: Vec<Checkpoint>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlManifest {
    title: Option<String>,
    #[serde(default, alias = "checkpoints")]
    checkpoint: Vec<TomlCheckpoint>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlCheckpoint {
    model: PathBuf,
    url: Option<String>,
    served_model: Option<String>,
    name: Option<String>,
    step: Option<f64>,
    stage: Option<String>,
    #[serde(default)]
    scores: BTreeMap<String, f64>,
}

/// Reads a manifest: TOML (`[[checkpoint]]` tables with `model`, optional `name`, `step`,
/// `stage`, `url` and `served_model` of a server, and a `[checkpoint.scores]` table) or CSV
/// (columns `model`, optional `name`, `step`, `stage`, `url`, `served_model`; every other column
/// is a downstream score, empty where unknown). Relative model paths are relative to the
/// manifest's folder.
pub fn read_manifest(path: &Path) -> Result<Manifest, TrackError> {
    let err = |message: String| TrackError::Manifest {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let (title, mut checkpoints) = if is_csv {
        (None, parse_csv(&text).map_err(err)?)
    } else {
        let m: TomlManifest = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        let cps = m
            .checkpoint
            .into_iter()
            .map(|c| Checkpoint {
                name: c.name.unwrap_or_default(),
                model: c.model,
                remote: c.url.map(|url| RemoteCheckpoint {
                    url,
                    served_model: c.served_model,
                }),
                step: c.step,
                stage: c.stage,
                downstream: c.scores,
            })
            .collect();
        (m.title, cps)
    };
    if checkpoints.is_empty() {
        return Err(err("no checkpoints".into()));
    }
    for c in &mut checkpoints {
        if c.model.is_relative() {
            c.model = base.join(&c.model);
        }
        if c.name.is_empty() {
            c.name = match c.step {
                Some(s) => format!("step {s}"),
                None => c
                    .model
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            };
        }
        if let Some((k, v)) = c.downstream.iter().find(|(_, v)| !v.is_finite()) {
            return Err(err(format!("checkpoint '{}': score '{k}' is {v}", c.name)));
        }
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = checkpoints.iter().find(|c| !seen.insert(c.name.clone())) {
        return Err(err(format!(
            "two checkpoints are named '{}': give each a distinct `name`",
            dup.name
        )));
    }
    Ok(Manifest { title, checkpoints })
}

fn parse_csv(text: &str) -> Result<Vec<Checkpoint>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| e.to_string())?.clone();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let model_col = col("model").ok_or("no `model` column")?;
    let (name_col, step_col, stage_col) = (col("name"), col("step"), col("stage"));
    let (url_col, served_col) = (col("url"), col("served_model"));
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.map_err(|e| format!("line {line}: {e}"))?;
        let field = |c: Option<usize>| c.and_then(|c| record.get(c)).filter(|v| !v.is_empty());
        let number = |c: usize, v: &str| {
            v.parse::<f64>().map_err(|_| {
                format!(
                    "line {line}: column '{}': '{v}' is not a number",
                    &headers[c]
                )
            })
        };
        let model =
            field(Some(model_col)).ok_or(format!("line {line}: column 'model' is empty"))?;
        let mut downstream = BTreeMap::new();
        for (c, h) in headers.iter().enumerate() {
            if [
                Some(model_col),
                name_col,
                step_col,
                stage_col,
                url_col,
                served_col,
            ]
            .contains(&Some(c))
            {
                continue;
            }
            if let Some(v) = field(Some(c)) {
                downstream.insert(h.to_string(), number(c, v)?);
            }
        }
        out.push(Checkpoint {
            name: field(name_col).unwrap_or_default().to_string(),
            model: PathBuf::from(model),
            remote: field(url_col).map(|url| RemoteCheckpoint {
                url: url.to_string(),
                served_model: field(served_col).map(str::to_string),
            }),
            step: field(step_col)
                .map(|v| number(step_col.expect("has a value"), v))
                .transpose()?,
            stage: field(stage_col).map(str::to_string),
            downstream,
        });
    }
    Ok(out)
}

/// What every checkpoint is scored on.
#[derive(Debug, Clone)]
pub enum EvalSet {
    /// Agent trajectories, scored the paper's way under one preset.
    Trajectories {
        inputs: Vec<PathBuf>,
        /// How the records are read (format, rejected turns, the messages column).
        read: ReadOptions,
        /// Which records make the set (all when inactive).
        draw: DrawSpec,
        preset: Preset,
        /// The model's, ChatML, or a template file (see `hesnr eval --chat-template`).
        chat_template: TemplateChoice,
        token_rule: TokenRule,
    },
    /// Plain documents (JSONL or text), every position scored.
    Documents {
        inputs: Vec<PathBuf>,
        reader: ReaderOptions,
    },
}

impl EvalSet {
    fn inputs(&self) -> &[PathBuf] {
        match self {
            EvalSet::Trajectories { inputs, .. } | EvalSet::Documents { inputs, .. } => inputs,
        }
    }

    /// A one-line description for reports.
    pub fn describe(&self) -> String {
        let inputs: Vec<String> = self
            .inputs()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        match self {
            EvalSet::Trajectories { preset, .. } => {
                format!(
                    "trajectories {} (preset {})",
                    inputs.join(", "),
                    preset.name()
                )
            }
            EvalSet::Documents { .. } => format!("documents {}", inputs.join(", ")),
        }
    }

    /// Everything about the set and its settings that changes the scored positions.
    fn fingerprint(&self) -> Result<serde_json::Value, TrackError> {
        if self.inputs().iter().any(|p| p.as_os_str() == STDIN_ARG) {
            return Err(TrackError::Stdin);
        }
        let mut hasher = Sha256::new();
        // The files as the readers will find them (directories, glob patterns).
        let files = data::expand_inputs(self.inputs())?;
        for f in &files {
            let mut file = std::fs::File::open(f).map_err(|e| data::DataError::Io {
                path: f.clone(),
                source: e,
            })?;
            digest::update_from_reader(&mut hasher, &mut file).map_err(|e| {
                data::DataError::Io {
                    path: f.clone(),
                    source: e,
                }
            })?;
            hasher.update(b"\0file\0");
        }
        let content = digest::hex(&hasher.finalize());
        Ok(match self {
            EvalSet::Trajectories {
                read,
                draw,
                preset,
                chat_template,
                token_rule,
                ..
            } => {
                // A template file's content matters, not its name.
                let template = match chat_template {
                    TemplateChoice::File(path) => model_store::sha256_file(path)
                        .unwrap_or_else(|_| path.display().to_string()),
                    other => other.to_string(),
                };
                let mut set = serde_json::json!({"kind": "trajectories", "content": content,
                    "format": format!("{:?}", read.format),
                    "score_rejected_actions": read.score_rejected_actions,
                    "readers": READER_VERSION,
                    "preset": preset.name(), "template": template, "token_rule": token_rule});
                // Options not used leave the key of every earlier run as it was.
                if let Some(field) = &read.messages_field {
                    set["messages_field"] = field.as_str().into();
                }
                if draw.is_active() {
                    set["draw"] = serde_json::to_value(draw).expect("a draw spec serializes");
                }
                set
            }
            EvalSet::Documents { reader, .. } => {
                serde_json::json!({"kind": "documents", "content": content,
                "text_field": reader.text_field, "id_field": reader.id_field, "format": format!("{:?}", reader.format)})
            }
        })
    }
}

/// Settings of a tracking run that are not the checkpoints'.
#[derive(Debug, Clone)]
pub struct TrackOptions {
    pub metrics: MetricConfig,
    /// Tokens per window; `None` = the model's training context.
    pub window: Option<usize>,
    /// The window policy (with the stride or sinks) asked for.
    pub policy: PolicyRequest,
    /// Engine settings that change results (precision, attention, decode chunk), from the CLI.
    pub engine: serde_json::Value,
    pub cache_dir: PathBuf,
    /// The metrics of the leaderboard (`--metrics`); not part of the cache key: every one is
    /// computed from the cached positions, so adding one scores nothing again.
    pub selection: Vec<AnyMetric>,
    /// Registry metrics use only the last N scored tokens of each unit.
    pub metric_window: Option<usize>,
}

/// The per-position numbers of one scored position: enough to recompute every metric at any eps,
/// and every metric of the proxy registry ([`TokenRecord`]) without scoring again.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Position {
    h_k: f64,
    p_true: f64,
    p_true_renorm: f64,
    nll: f64,
    in_top_k: bool,
    top1: bool,
    record: TokenRecord,
}

/// Bytes per position in the cache: the HE-SNR numbers (4 f64 + flags), then the registry's
/// record (token u32, entropy f64 (NaN: unknown), rank u32, top index u8 (255: not listed), top
/// length u8, best-other p, argmax p, top mass f64).
const RECORD: usize = 4 * 8 + 1 + 4 + 8 + 4 + 1 + 1 + 3 * 8;

/// The cache format's version, part of every cache key: entries of another version (version 1
/// had no registry record) are never read, so they are scored again once, not misread.
const CACHE_VERSION: u64 = 2;

impl Position {
    fn from_stats(stats: &crate::metrics::PositionStats, k: usize) -> Self {
        let m = PositionMetrics::from_stats(stats, k);
        Self {
            h_k: m.h_k,
            p_true: m.p_true,
            p_true_renorm: m.p_true_renorm,
            nll: m.nll,
            in_top_k: m.in_top_k,
            top1: m.top1,
            record: TokenRecord::from_stats(stats, k),
        }
    }

    fn metrics(&self) -> PositionMetrics {
        PositionMetrics {
            nll: self.nll,
            p_true: self.p_true,
            p_true_renorm: self.p_true_renorm,
            h_k: self.h_k,
            in_top_k: self.in_top_k,
            top1: self.top1,
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        for v in [self.h_k, self.p_true, self.p_true_renorm, self.nll] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.push(u8::from(self.in_top_k) | (u8::from(self.top1) << 1));
        let r = &self.record;
        out.extend_from_slice(&r.token.to_le_bytes());
        out.extend_from_slice(&r.entropy.unwrap_or(f64::NAN).to_le_bytes());
        out.extend_from_slice(&r.rank.to_le_bytes());
        out.push(r.top_index.unwrap_or(u8::MAX));
        out.push(r.top_len);
        for v in [r.best_other_p, r.argmax_p, r.top_mass] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn read(b: &[u8]) -> Self {
        let f = |at: usize| f64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        let u = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"));
        let nll = f(24);
        let entropy = f(37);
        Self {
            h_k: f(0),
            p_true: f(8),
            p_true_renorm: f(16),
            nll,
            in_top_k: b[32] & 1 != 0,
            top1: b[32] & 2 != 0,
            record: TokenRecord {
                token: u(33),
                nll,
                entropy: (!entropy.is_nan()).then_some(entropy),
                rank: u(45),
                top_index: (b[49] != u8::MAX).then_some(b[49]),
                top_len: b[50],
                best_other_p: f(51),
                argmax_p: f(59),
                top_mass: f(67),
            },
        }
    }
}

/// The cache entry of one checkpoint: what was scored, and the counts that slice the
/// position file back into units (trajectories or documents).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CacheMeta {
    model: String,
    model_sha256: String,
    fingerprint: serde_json::Value,
    units: Vec<(String, u64)>,
    /// The first reasons of the units skipped (unreadable or unscorable, see [`SkipLog`]).
    skipped: Vec<String>,
    /// How many were skipped (entries written before this count existed read as 0).
    #[serde(default)]
    skipped_count: u64,
    context_tokens: u64,
    positions_sha256: String,
    /// The model's vocabulary size (for the normalised entropy).
    #[serde(default)]
    vocab_size: usize,
    /// The weights' precision it was scored in (absent in entries written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    precision: Option<String>,
}

struct Scored {
    meta: CacheMeta,
    units: Vec<Vec<Position>>,
}

fn cache_paths(dir: &Path, key: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{key}.json")),
        dir.join(format!("{key}.pos")),
    )
}

fn load_cached(dir: &Path, key: &str) -> Result<Option<Scored>, TrackError> {
    let (meta_path, pos_path) = cache_paths(dir, key);
    if !meta_path.is_file() {
        return Ok(None);
    }
    let err = |message: String| TrackError::Cache {
        path: meta_path.display().to_string(),
        message,
    };
    let meta: CacheMeta =
        serde_json::from_slice(&std::fs::read(&meta_path).map_err(|e| err(e.to_string()))?)
            .map_err(|e| err(format!("unreadable ({e}); delete it to re-score")))?;
    if meta.fingerprint["version"] != CACHE_VERSION {
        tracing::info!(
            "cache entry {} is of another format version; scoring again",
            meta_path.display()
        );
        return Ok(None);
    }
    let bytes =
        std::fs::read(&pos_path).map_err(|e| err(format!("{}: {e}", pos_path.display())))?;
    if digest::sha256_hex(&bytes) != meta.positions_sha256 {
        tracing::warn!(
            "cache entry {} is damaged; scoring again",
            pos_path.display()
        );
        return Ok(None);
    }
    let total: u64 = meta.units.iter().map(|u| u.1).sum();
    if bytes.len() as u64 != total * RECORD as u64 {
        return Err(err(
            "position file length does not match; delete it to re-score".into(),
        ));
    }
    let mut units = Vec::with_capacity(meta.units.len());
    let mut at = 0usize;
    for (_, n) in &meta.units {
        let n = *n as usize;
        units.push(
            bytes[at..at + n * RECORD]
                .chunks_exact(RECORD)
                .map(Position::read)
                .collect(),
        );
        at += n * RECORD;
    }
    Ok(Some(Scored { meta, units }))
}

fn store(dir: &Path, key: &str, scored: &mut Scored) -> Result<(), TrackError> {
    let (meta_path, pos_path) = cache_paths(dir, key);
    let err = |p: &Path, e: std::io::Error| TrackError::Cache {
        path: p.display().to_string(),
        message: e.to_string(),
    };
    let mut bytes = Vec::with_capacity(scored.units.iter().map(Vec::len).sum::<usize>() * RECORD);
    for u in &scored.units {
        for p in u {
            p.write(&mut bytes);
        }
    }
    scored.meta.positions_sha256 = digest::sha256_hex(&bytes);
    // Positions first, metadata last: the metadata file is the entry's completion mark.
    let mut f = AtomicFile::create(&pos_path).map_err(|e| err(&pos_path, e))?;
    f.write_all(&bytes).map_err(|e| err(&pos_path, e))?;
    f.commit().map_err(|e| err(&pos_path, e))?;
    let mut f = AtomicFile::create(&meta_path).map_err(|e| err(&meta_path, e))?;
    serde_json::to_writer_pretty(&mut f, &scored.meta).map_err(|e| err(&meta_path, e.into()))?;
    f.commit().map_err(|e| err(&meta_path, e))
}

/// One checkpoint's scored positions per unit (trajectory or document), before caching.
struct CheckpointScores {
    units: Vec<(String, Vec<Position>)>,
    vocab_size: usize,
    skips: SkipLog,
    context_tokens: u64,
}

/// Scores one loaded checkpoint on the evaluation set.
fn score_checkpoint(
    backend: &mut dyn Backend,
    set: &EvalSet,
    opts: &TrackOptions,
    name: &str,
) -> Result<CheckpointScores, TrackError> {
    let score = ScoreSettings::for_backend(opts.metrics, backend, opts.policy).map_err(|e| {
        TrackError::Scoring {
            name: name.to_string(),
            message: e,
        }
    })?;
    let k = opts.metrics.k;
    let positions_of = |stats: &mut dyn Iterator<Item = &crate::metrics::PositionStats>| {
        stats
            .map(|p| Position::from_stats(p, k))
            .collect::<Vec<_>>()
    };
    let mut units = Vec::new();
    let mut flow = Flow::new(&());
    let stopped = |source: Stopped| TrackError::Stopped {
        name: name.to_string(),
        source,
    };
    match set {
        EvalSet::Trajectories {
            inputs,
            read,
            draw,
            preset,
            chat_template,
            token_rule,
        } => {
            let template =
                choose_template(chat_template, backend).map_err(|e| TrackError::Scoring {
                    name: name.to_string(),
                    message: e.to_string(),
                })?;
            let settings = EvalSettings {
                score,
                presets: vec![*preset],
                token_rule: *token_rule,
            };
            // Trajectories in flight at once when the backend allows (a remote server).
            let work = |b: &mut [&mut dyn Backend], traj: &Trajectory| {
                Some(eval_trajectory(&mut *b[0], &template, traj, &settings))
            };
            let sink =
                |_: &dyn Backend, traj: Trajectory, outcome: Outcome<EvaluatedTrajectory>| {
                    if let Outcome::Done(e) = outcome {
                        let first = e.tokens.first_target();
                        let scored = &e.presets[0].scored;
                        let kept = e
                            .positions
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| scored[first + i])
                            .filter_map(|(_, p)| p.as_ref());
                        units.push((traj.id, positions_of(&mut { kept })));
                    }
                    Ok::<(), Stopped>(())
                };
            let mut items = read_trajectories_with(inputs, read.clone())?;
            if draw.is_active() {
                items = items.drawing(draw.clone());
            }
            flow.drive(&mut [backend], items, work, sink)
                .map_err(stopped)?;
        }
        EvalSet::Documents { inputs, reader } => {
            let work = |b: &mut [&mut dyn Backend], doc: &Document| {
                Some(score_text(&mut *b[0], &doc.text, &score))
            };
            let sink = |_: &dyn Backend, doc: Document, outcome: Outcome<ScoredDocument>| {
                if let Outcome::Done(s) = outcome {
                    units.push((doc.id, positions_of(&mut s.positions.iter())));
                }
                Ok::<(), Stopped>(())
            };
            let items = data::read_documents(inputs, reader)?;
            flow.drive(&mut [backend], items, work, sink)
                .map_err(stopped)?;
        }
    }
    let log = flow.log;
    if units.is_empty() {
        return Err(TrackError::Scoring {
            name: name.to_string(),
            message: format!(
                "nothing in the evaluation set could be scored ({} skipped{})",
                log.skips.count,
                log.skips
                    .reasons
                    .first()
                    .map(|e| format!("; first: {e}"))
                    .unwrap_or_default()
            ),
        });
    }
    Ok(CheckpointScores {
        units,
        vocab_size: backend.info().vocab_size,
        skips: log.skips,
        context_tokens: log.tokens,
    })
}

/// Pooled metrics of a checkpoint's positions at one eps.
fn pool(units: &[Vec<Position>], config: MetricConfig) -> Accumulator {
    let mut pooled = Accumulator::new(config);
    for u in units {
        let mut acc = Accumulator::new(config);
        for p in u {
            acc.push(&p.metrics());
        }
        acc.finish_document();
        pooled.merge(&acc).expect("same settings");
    }
    pooled
}

/// The eps grid of the sweep: [`SWEEP_POINTS`] evenly spaced points over [ln 2, ln 5].
pub fn sweep_grid() -> Vec<f64> {
    let (lo, hi) = (2f64.ln(), 5f64.ln());
    (0..SWEEP_POINTS)
        .map(|i| lo + (hi - lo) * i as f64 / (SWEEP_POINTS - 1) as f64)
        .collect()
}

/// The metrics correlated with downstream scores, in the order of the report's correlations.
pub const TRACKED_METRICS: [Metric; 7] = [
    Metric::HeSnr,
    Metric::HePpl,
    Metric::Ppl,
    Metric::Top1Acc,
    Metric::DecisionDensity,
    Metric::MeanH10,
    Metric::MeanNll,
];

/// Everything but the model that changes a checkpoint's cached positions: the evaluation set's
/// fingerprint and the run's settings. Part of every cache key, so its JSON text must stay the
/// same from version to version, or every cache entry is scored again (a test pins it).
///
/// `opts.policy` is decided ([`PolicyRequest::decided`], as [`run_track`] makes it). The strided
/// policy writes the text earlier versions wrote (their only policy), so their caches stay valid;
/// the shift policy adds `window_policy` and `sinks`.
fn run_fingerprint(set: serde_json::Value, opts: &TrackOptions) -> serde_json::Value {
    let mut fp = serde_json::json!({
        "set": set,
        "k": opts.metrics.k,
        "window": opts.window,
        "stride": opts.policy.stride,
        "engine": opts.engine,
        "version": CACHE_VERSION,
    });
    if opts.policy.kind == Some(PolicyKind::Shift) {
        fp["window_policy"] = serde_json::json!("shift");
        fp["sinks"] = serde_json::json!(opts.policy.sinks.unwrap_or(Policy::DEFAULT_SINKS));
    }
    fp
}

/// The cache key of a checkpoint (`identity`: its model's content, and server for a served one)
/// under a run's [`run_fingerprint`].
fn cache_key(identity: &str, fingerprint: &serde_json::Value) -> String {
    digest::sha256_hex(format!("{identity}\n{fingerprint}").as_bytes())[..32].to_string()
}

/// The window policy every checkpoint of `manifest` is scored with: the one asked for, with the
/// default decided once for all so that their numbers compare. The default is the shift policy
/// only when every checkpoint can shift its KV cache: none is served (a server cannot shift a
/// cache for hesnr), and `can_shift` (from a local checkpoint's architecture; `None` when it
/// cannot be told, left to fail where the checkpoint is scored) does not say no. Returns the
/// decided request and the checkpoint that made the default strided, if one did.
pub fn decide_policy(
    asked: PolicyRequest,
    manifest: &Manifest,
    mut can_shift: impl FnMut(&Checkpoint) -> Option<bool>,
) -> (PolicyRequest, Option<&Checkpoint>) {
    // A kind, a stride or sink tokens ask for a policy of their own.
    if asked.kind.is_some() || asked.stride.is_some() || asked.sinks.is_some() {
        return (asked.decided(true), None);
    }
    let strided_by = manifest
        .checkpoints
        .iter()
        .find(|c| c.remote.is_some() || can_shift(c) == Some(false));
    (asked.decided(strided_by.is_none()), strided_by)
}

/// Loads a checkpoint's model for scoring (the CLI decides how).
pub type ModelLoader<'a> = dyn FnMut(&Checkpoint) -> Result<Box<dyn Backend>, EngineError> + 'a;

/// What happened to each checkpoint, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointEvent {
    Cached,
    Scoring,
    Scored,
}

/// Scores (or reads from the cache) every checkpoint, then builds the report.
///
/// `load` loads a model for scoring; `log` is told about each checkpoint as it goes.
pub fn run_track(
    manifest: &Manifest,
    set: &EvalSet,
    opts: &TrackOptions,
    load: &mut ModelLoader,
    log: &mut dyn FnMut(&Checkpoint, CheckpointEvent, &str),
) -> Result<TrackReport, TrackError> {
    let opts = &TrackOptions {
        policy: decide_policy(opts.policy, manifest, |_| None).0,
        ..opts.clone()
    };
    let fingerprint = run_fingerprint(set.fingerprint()?, opts);
    let mut results = Vec::with_capacity(manifest.checkpoints.len());
    for c in &manifest.checkpoints {
        let model_sha = model_store::sha256_file(&c.model).map_err(|e| TrackError::Checkpoint {
            name: c.name.clone(),
            source: EngineError::Load {
                path: c.model.clone(),
                message: format!("cannot read: {e}"),
            },
        })?;
        // A served checkpoint is known by its server and served name (and tokenizer file).
        let identity = match &c.remote {
            Some(r) => format!(
                "{model_sha}\nremote {} {}",
                crate::engine::remote::client::redact_url(&r.url),
                r.served_model.as_deref().unwrap_or("")
            ),
            None => model_sha.clone(),
        };
        let key = cache_key(&identity, &fingerprint);
        let (scored, cached) = match load_cached(&opts.cache_dir, &key)? {
            Some(s) => {
                log(c, CheckpointEvent::Cached, &key);
                (s, true)
            }
            None => {
                log(c, CheckpointEvent::Scoring, &key);
                let mut backend = load(c).map_err(|source| TrackError::Checkpoint {
                    name: c.name.clone(),
                    source,
                })?;
                let CheckpointScores {
                    units,
                    vocab_size,
                    skips,
                    context_tokens,
                } = score_checkpoint(backend.as_mut(), set, opts, &c.name)?;
                let mut s = Scored {
                    meta: CacheMeta {
                        model: c.model.display().to_string(),
                        model_sha256: model_sha,
                        fingerprint: fingerprint.clone(),
                        units: units
                            .iter()
                            .map(|(id, p)| (id.clone(), p.len() as u64))
                            .collect(),
                        skipped: skips.reasons,
                        skipped_count: skips.count,
                        context_tokens,
                        positions_sha256: String::new(),
                        vocab_size,
                        precision: Some(backend.info().precision.clone()),
                    },
                    units: units.into_iter().map(|(_, p)| p).collect(),
                };
                store(&opts.cache_dir, &key, &mut s)?;
                log(c, CheckpointEvent::Scored, &key);
                (s, false)
            }
        };
        results.push((c, scored, cached));
    }
    Ok(build_report(manifest, set, opts, &results))
}

fn build_report(
    manifest: &Manifest,
    set: &EvalSet,
    opts: &TrackOptions,
    results: &[(&Checkpoint, Scored, bool)],
) -> TrackReport {
    let config = opts.metrics;
    let proxies = proxy::proxies_of(&opts.selection);
    let grid = sweep_grid();
    let mut checkpoints: Vec<CheckpointResult> = results
        .iter()
        .map(|(c, s, cached)| {
            let acc = pool(&s.units, config);
            let sweep = grid
                .iter()
                .map(|&eps| {
                    let a = pool(&s.units, MetricConfig { eps, ..config });
                    SweepPoint {
                        eps,
                        he_snr: a.summary().he_snr,
                        decision_tokens: a.decision,
                    }
                })
                .collect();
            CheckpointResult {
                name: c.name.clone(),
                model: c.model.display().to_string(),
                step: c.step,
                stage: c.stage.clone(),
                precision: s.meta.precision.clone(),
                downstream: c.downstream.clone(),
                summary: acc.summary(),
                entropy_hist: acc.entropy_hist.clone(),
                sweep,
                cached: *cached,
                proxy: proxy_values(&proxies, s, opts.metric_window),
            }
        })
        .collect();
    // By step (checkpoints without one keep their manifest order, after the others).
    checkpoints.sort_by(|a, b| match (a.step, b.step) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });

    let downstream_names: Vec<String> = checkpoints
        .iter()
        .flat_map(|c| c.downstream.keys().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut correlations = Vec::new();
    let mut sweep = Vec::new();
    let mut notes = Vec::new();
    for d in &downstream_names {
        let with: Vec<&CheckpointResult> = checkpoints
            .iter()
            .filter(|c| c.downstream.contains_key(d))
            .collect();
        let y: Vec<f64> = with.iter().map(|c| c.downstream[d]).collect();
        for m in TRACKED_METRICS {
            let pairs: Vec<(f64, f64)> = with
                .iter()
                .zip(&y)
                .filter_map(|(c, &y)| m.value(&c.summary).map(|x| (x, y)))
                .collect();
            let (x, yy): (Vec<f64>, Vec<f64>) = pairs.into_iter().unzip();
            correlations.push(MetricCorrelation {
                metric: m,
                downstream: d.clone(),
                report: stats::correlate(&x, &yy, stats::SEED),
            });
        }
        let points: Vec<EpsCorrelation> = grid
            .iter()
            .enumerate()
            .map(|(i, &eps)| {
                let (x, yy): (Vec<f64>, Vec<f64>) = with
                    .iter()
                    .zip(&y)
                    .filter_map(|(c, &y)| c.sweep[i].he_snr.map(|x| (x, y)))
                    .unzip();
                (
                    eps,
                    Correlation::Pearson.compute(&x, &yy),
                    Correlation::Spearman.compute(&x, &yy),
                    Correlation::Kendall.compute(&x, &yy),
                )
            })
            .collect();
        let series: Vec<(f64, f64)> = points
            .iter()
            .filter_map(|&(eps, r, _, _)| r.map(|r| (eps, r)))
            .collect();
        // Indices of `series` map back to `points` only when every point is defined.
        let plateau = (series.len() == points.len())
            .then(|| stats::plateau(&series, PLATEAU_TOLERANCE))
            .flatten();
        sweep.push(SweepCorrelation {
            downstream: d.clone(),
            points,
            plateau,
        });
        // Which metric predicts this score best, and can that be concluded at all.
        let best = correlations
            .iter()
            .filter(|c| &c.downstream == d)
            .filter_map(|c| c.report.spearman.value.map(|v| (c, v)))
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()));
        if let Some((c, v)) = best {
            notes.push(format!(
                "{d}: the metric that tracks it most closely here is {} (Spearman {v:+.3}, n = {}); {}",
                c.metric,
                c.report.n,
                if c.report.conclusive {
                    "the evidence is conclusive".to_string()
                } else {
                    format!("inconclusive: {}", c.report.note)
                }
            ));
        }
    }
    if downstream_names.is_empty() {
        notes.push("No downstream scores in the manifest: add a `scores` table (TOML) or score columns (CSV) to see which metric predicts them.".into());
    }
    let tax = long_context_tax(&checkpoints);
    let leaderboard = downstream_names
        .iter()
        .map(|d| leaderboard(&checkpoints, &opts.selection, d))
        .collect();
    TrackReport {
        title: manifest
            .title
            .clone()
            .unwrap_or_else(|| "hesnr checkpoint report".into()),
        eval_set: set.describe(),
        k: config.k,
        eps: config.eps,
        checkpoints,
        correlations,
        sweep,
        tax,
        leaderboard,
        notes,
    }
}

/// The registry metrics of one checkpoint from its cached positions (units are the samples).
fn proxy_values(metrics: &[ProxyMetric], s: &Scored, window: Option<usize>) -> ProxyValues {
    let records: Vec<Vec<TokenRecord>> = s
        .units
        .iter()
        .map(|u| u.iter().map(|p| p.record).collect())
        .collect();
    let samples: Vec<&[TokenRecord]> = records.iter().map(Vec::as_slice).collect();
    let ctx = ProxyContext {
        vocab_size: s.meta.vocab_size,
        frequencies: None,
        window,
    };
    ProxyValues(
        metrics
            .iter()
            .map(|m| (m.name(), m.compute(&samples, &ctx).ok()))
            .collect(),
    )
}

/// Significance level of the leaderboard's family-wise test.
const LEADERBOARD_ALPHA: f64 = 0.05;

/// Every chosen metric against one downstream score: Spearman and Kendall with bootstrap
/// intervals, leave-one-out stability and permutation p-values Holm-adjusted over the metrics
/// compared; and whether the leader can be told apart from the rest at all.
pub fn leaderboard(
    checkpoints: &[CheckpointResult],
    selection: &[AnyMetric],
    d: &str,
) -> Leaderboard {
    let with: Vec<&CheckpointResult> = checkpoints
        .iter()
        .filter(|c| c.downstream.contains_key(d))
        .collect();
    let mut rows: Vec<LeaderboardRow> = selection
        .iter()
        // Counts of positions say how much was scored, not how well.
        .filter(|m| !matches!(m, AnyMetric::Core(c) if c.is_count()))
        .map(|&m| {
            let (x, y): (Vec<f64>, Vec<f64>) = with
                .iter()
                .filter_map(|c| c.value(m).map(|x| (x, c.downstream[d])))
                .unzip();
            LeaderboardRow {
                place: 0,
                metric: m.name(),
                better: match m.better() {
                    crate::metrics::Better::Higher => "higher",
                    crate::metrics::Better::Lower => "lower",
                    crate::metrics::Better::Neither => "neither",
                },
                report: stats::correlate(&x, &y, stats::SEED),
                spearman_p_holm: None,
                kendall_p_holm: None,
            }
        })
        .collect();
    let p_of = |r: &LeaderboardRow, c: Correlation| r.report.get(c).permutation.map(|p| p.p_value);
    let holm_s = stats::holm(
        &rows
            .iter()
            .map(|r| p_of(r, Correlation::Spearman))
            .collect::<Vec<_>>(),
    );
    let holm_k = stats::holm(
        &rows
            .iter()
            .map(|r| p_of(r, Correlation::Kendall))
            .collect::<Vec<_>>(),
    );
    for ((r, s), k) in rows.iter_mut().zip(holm_s).zip(holm_k) {
        r.spearman_p_holm = s;
        r.kendall_p_holm = k;
    }
    let strength = |r: &LeaderboardRow| {
        (
            r.report.spearman.value.map(f64::abs),
            r.report.kendall.value.map(f64::abs),
        )
    };
    rows.sort_by(|a, b| {
        let (sa, ka) = strength(a);
        let (sb, kb) = strength(b);
        let key = |v: Option<f64>| v.unwrap_or(-1.0);
        key(sb)
            .total_cmp(&key(sa))
            .then(key(kb).total_cmp(&key(ka)))
    });
    for (i, r) in rows.iter_mut().enumerate() {
        r.place = i + 1;
    }
    let n = with.len();
    let m = rows.len();
    let smallest = stats::smallest_permutation_p(n);
    let significant = |r: &LeaderboardRow| {
        r.spearman_p_holm.is_some_and(|p| p < LEADERBOARD_ALPHA)
            && r.kendall_p_holm.is_some_and(|p| p < LEADERBOARD_ALPHA)
    };
    // The leader's |Spearman| interval lies above the runner-up's.
    let apart = match (rows.first(), rows.get(1)) {
        (Some(a), Some(b)) => match (a.report.spearman.ci95, b.report.spearman.ci95) {
            (Some(ca), Some(cb)) => {
                let low_a = ca.low.abs().min(ca.high.abs());
                let low_a = if ca.contains_zero() { 0.0 } else { low_a };
                let high_b = cb.low.abs().max(cb.high.abs());
                low_a > high_b
            }
            _ => false,
        },
        (Some(_), None) => true,
        _ => false,
    };
    let leader_separated = rows.first().is_some_and(significant) && apart;
    let leader = rows
        .first()
        .map(|r| {
            format!(
                "{} (Spearman {})",
                r.metric,
                r.report
                    .spearman
                    .value
                    .map_or("undefined".into(), |v| format!("{v:+.3}"))
            )
        })
        .unwrap_or_default();
    let verdict = if m == 0 {
        "no metric to compare".to_string()
    } else if leader_separated {
        format!(
            "{leader} predicts {d} best, and it can be told apart from the others: Holm-adjusted p < {LEADERBOARD_ALPHA} over {m} metrics and its Spearman interval lies above the runner-up's."
        )
    } else if m > 0 && smallest * 1.0 >= LEADERBOARD_ALPHA / m as f64 {
        format!(
            "No metric can be told apart from the others with {n} checkpoints: the smallest permutation p-value {n} points can give is {smallest:.2e}, and Holm over {m} metrics needs below {:.2e} for the first. The order is a guide, not a result; {leader} leads.",
            LEADERBOARD_ALPHA / m as f64
        )
    } else {
        format!(
            "No metric can be told apart from the others on these {n} checkpoints: the leader, {leader}, {}.",
            if rows.first().is_some_and(significant) {
                "is significant after Holm, but its Spearman interval overlaps the runner-up's"
            } else {
                "is not significant after Holm's correction over the metrics compared"
            }
        )
    };
    Leaderboard {
        downstream: d.to_string(),
        checkpoints: n,
        metrics: m,
        rows,
        leader_separated,
        verdict,
    }
}

/// Consecutive checkpoints where PPL or top-1 get worse while HE-SNR improves, each by more
/// than [`TAX_MIN_CHANGE`].
fn long_context_tax(checkpoints: &[CheckpointResult]) -> Vec<TaxFlag> {
    let mut flags = Vec::new();
    for w in checkpoints.windows(2) {
        let (a, b) = (&w[0].summary, &w[1].summary);
        let (Some(snr_a), Some(snr_b)) = (a.he_snr, b.he_snr) else {
            continue;
        };
        let grew = |x: f64, y: f64| y > x * (1.0 + TAX_MIN_CHANGE);
        let fell = |x: f64, y: f64| y < x * (1.0 - TAX_MIN_CHANGE);
        if !grew(snr_a, snr_b) {
            continue;
        }
        let rel = |x: f64, y: f64| (y - x) / x.abs().max(f64::MIN_POSITIVE) * 100.0;
        let mut findings = Vec::new();
        if let (Some(p), Some(q)) = (a.ppl, b.ppl) {
            if grew(p, q) {
                findings.push(format!("PPL {p:.4} -> {q:.4} ({:+.1}%)", rel(p, q)));
            }
        }
        if let (Some(p), Some(q)) = (a.top1_acc, b.top1_acc) {
            if fell(p, q) {
                findings.push(format!("top-1 {p:.4} -> {q:.4} ({:+.1}%)", rel(p, q)));
            }
        }
        if findings.is_empty() {
            continue;
        }
        findings.push(format!(
            "while HE-SNR improves {snr_a:.4} -> {snr_b:.4} ({:+.1}%)",
            rel(snr_a, snr_b)
        ));
        if let (Some(p), Some(q)) = (a.decision_density, b.decision_density) {
            if q > p * (1.0 + DECISION_JUMP) {
                findings.push(format!(
                    "{} jumps {p:.4} -> {q:.4} ({:+.1}%): more hard decisions, mastered better",
                    Metric::DecisionDensity.label(),
                    rel(p, q)
                ));
            }
        }
        let stage_change = w[0].stage != w[1].stage;
        if stage_change {
            findings.push(format!(
                "across the stage change {} -> {}",
                w[0].stage.as_deref().unwrap_or("-"),
                w[1].stage.as_deref().unwrap_or("-")
            ));
        }
        flags.push(TaxFlag {
            from: w[0].name.clone(),
            to: w[1].name.clone(),
            stage_change,
            findings,
        });
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(nll: f64) -> TokenRecord {
        TokenRecord {
            token: 7,
            nll,
            entropy: Some(1.5),
            rank: 2,
            top_index: Some(1),
            top_len: 10,
            best_other_p: 0.25,
            argmax_p: 0.5,
            top_mass: 0.875,
        }
    }

    fn pos(h_k: f64, p: f64) -> Position {
        Position {
            h_k,
            p_true: p,
            p_true_renorm: p,
            nll: -p.ln(),
            in_top_k: true,
            top1: p > 0.5,
            record: record(-p.ln()),
        }
    }

    #[test]
    fn positions_round_trip_through_the_cache_format() {
        let p = Position {
            h_k: 1.234_567_890_125,
            p_true: 0.1,
            p_true_renorm: 0.2,
            nll: 2.5e-300,
            in_top_k: true,
            top1: false,
            record: record(2.5e-300),
        };
        let mut b = Vec::new();
        p.write(&mut b);
        assert_eq!(b.len(), RECORD);
        assert_eq!(Position::read(&b), p);
        // Unknown entropy (a server's top-k list) and an unlisted true token survive too.
        let q = Position {
            record: TokenRecord {
                entropy: None,
                top_index: None,
                rank: 4_000_000_000,
                token: u32::MAX - 1,
                ..record(3.0)
            },
            nll: 3.0,
            ..p
        };
        b.clear();
        q.write(&mut b);
        assert_eq!(Position::read(&b), q);
    }

    /// A trajectory set's fingerprint names the readers' version, and the draw and the messages
    /// column only when they are used (so that runs without them keep their keys).
    #[test]
    fn trajectory_fingerprints_name_only_the_options_used() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("set.jsonl");
        std::fs::write(&file, "{}\n").unwrap();
        let set = |read: ReadOptions, draw: DrawSpec| EvalSet::Trajectories {
            inputs: vec![file.clone()],
            read,
            draw,
            preset: Preset::Full,
            chat_template: TemplateChoice::ChatMl,
            token_rule: TokenRule::All,
        };
        let plain = set(ReadOptions::default(), DrawSpec::default())
            .fingerprint()
            .unwrap();
        assert_eq!(plain["readers"], READER_VERSION);
        assert!(plain.get("draw").is_none() && plain.get("messages_field").is_none());
        let drawn = set(
            ReadOptions {
                messages_field: Some("conversation".into()),
                ..ReadOptions::default()
            },
            DrawSpec {
                limit: Some(5),
                ..DrawSpec::default()
            },
        )
        .fingerprint()
        .unwrap();
        assert_eq!(drawn["messages_field"], "conversation");
        assert_eq!(drawn["draw"]["limit"], 5);
        assert_eq!(drawn["content"], plain["content"]);
    }

    /// Cache keys must not change between versions: a track output folder written before must
    /// resume from its cache without scoring anything again.
    #[test]
    fn cache_keys_are_stable_across_versions() {
        let opts = TrackOptions {
            metrics: MetricConfig::default(),
            window: None,
            policy: PolicyRequest {
                stride: Some(256),
                ..PolicyRequest::default()
            },
            engine: serde_json::json!({"precision": "f32", "exact_attention": false, "ubatch": 512}),
            cache_dir: PathBuf::new(),
            selection: proxy::default_selection(),
            metric_window: None,
        };
        let set = serde_json::json!({"kind": "documents", "content": "0f", "text_field": "text",
            "id_field": "id", "format": "Auto"});
        let fp = run_fingerprint(set.clone(), &opts);
        // The metrics asked for are computed from the cache: they are not part of the key.
        let more = TrackOptions {
            selection: proxy::parse_selection("all").unwrap(),
            metric_window: Some(1000),
            ..opts.clone()
        };
        assert_eq!(run_fingerprint(set.clone(), &more), fp);
        assert_eq!(
            fp.to_string(),
            "{\"set\":{\"kind\":\"documents\",\"content\":\"0f\",\"text_field\":\"text\",\"id_field\":\"id\",\"format\":\"Auto\"},\"k\":10,\"window\":null,\"stride\":256,\"engine\":{\"precision\":\"f32\",\"exact_attention\":false,\"ubatch\":512},\"version\":2}"
        );
        assert_eq!(
            cache_key("b179c952", &fp),
            "e1a9f84d4f7ee79dbc8cb518e2266849"
        );
        // Version 1 (positions without the registry record) had this key: a cache written by it
        // is not found, so it is scored again once rather than misread.
        let mut v1 = fp.clone();
        v1["version"] = 1.into();
        assert_eq!(
            cache_key("b179c952", &v1),
            "4324c61f10f2a549d43e916a25d07500"
        );
        // A shift request gets its own keys, one per sink count; strided ones keep the old text.
        let fp_with = |policy: PolicyRequest| {
            let o = TrackOptions {
                policy,
                ..opts.clone()
            };
            run_fingerprint(set.clone(), &o)
        };
        let key = |policy| cache_key("b179c952", &fp_with(policy));
        let shift = |sinks| PolicyRequest {
            kind: Some(PolicyKind::Shift),
            stride: None,
            sinks,
        };
        let strided = PolicyRequest {
            kind: Some(PolicyKind::Strided),
            ..PolicyRequest::default()
        };
        // The default, decided: strided when a checkpoint is served, shift with 4 sinks when not.
        let default = PolicyRequest::default();
        assert_eq!(key(strided), key(default.decided(false)));
        assert_eq!(key(shift(Some(4))), key(default.decided(true)));
        assert_eq!(key(shift(Some(4))), key(shift(None)));
        assert!(!fp_with(strided).to_string().contains("window_policy"));
        let keys = [key(strided), key(shift(Some(4))), key(shift(Some(0)))];
        for a in 0..keys.len() {
            for b in a + 1..keys.len() {
                assert_ne!(keys[a], keys[b], "requests {a} and {b}");
            }
        }
    }

    /// One policy for all checkpoints: the default is shift only when every checkpoint can
    /// shift; a served one, or a local one whose architecture cannot, makes it strided for all.
    #[test]
    fn the_default_policy_is_decided_once_for_every_checkpoint() {
        let local = |name: &str| Checkpoint {
            name: name.into(),
            model: PathBuf::from(format!("{name}.gguf")),
            remote: None,
            step: None,
            stage: None,
            downstream: BTreeMap::new(),
        };
        let served = Checkpoint {
            remote: Some(RemoteCheckpoint {
                url: "http://127.0.0.1:8080".into(),
                served_model: None,
            }),
            ..local("served")
        };
        let manifest = |checkpoints: Vec<Checkpoint>| Manifest {
            title: None,
            checkpoints,
        };
        let (shift, strided) = (Some(PolicyKind::Shift), Some(PolicyKind::Strided));
        let default = PolicyRequest::default();
        // `mamba` cannot shift; `unknown` cannot be read (left to fail where it is scored).
        let arch = |c: &Checkpoint| match c.name.as_str() {
            "mamba" => Some(false),
            "unknown" => None,
            _ => Some(true),
        };
        let all_shift = manifest(vec![local("a"), local("unknown"), local("b")]);
        let (p, by) = decide_policy(default, &all_shift, arch);
        assert_eq!((p.kind, by), (shift, None));
        let one_mamba = manifest(vec![local("a"), local("mamba"), local("b")]);
        let (p, by) = decide_policy(default, &one_mamba, arch);
        assert_eq!(
            (p.kind, by.map(|c| c.name.as_str())),
            (strided, Some("mamba"))
        );
        let one_served = manifest(vec![local("a"), served.clone()]);
        let (p, by) = decide_policy(default, &one_served, arch);
        assert_eq!(
            (p.kind, by.map(|c| c.name.as_str())),
            (strided, Some("served"))
        );
        // Asked for explicitly: kept, and no checkpoint is looked at.
        let asked = PolicyRequest {
            kind: shift,
            ..default
        };
        let (p, by) = decide_policy(asked, &one_mamba, |_| panic!("not consulted"));
        assert_eq!((p.kind, by), (shift, None));
        let sinks = PolicyRequest {
            sinks: Some(2),
            ..default
        };
        assert_eq!(decide_policy(sinks, &one_served, arch).0.kind, shift);
        let stride = PolicyRequest {
            stride: Some(16),
            ..default
        };
        assert_eq!(decide_policy(stride, &all_shift, arch).0.kind, strided);
    }

    /// A cache entry (metadata JSON, then the position file) loads as it is: it holds positions
    /// only, no metric names, so renaming or adding a metric leaves it valid. An entry of
    /// another format version is not read, even under the same key.
    #[test]
    fn a_cache_entry_loads_and_one_of_another_version_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let units = [vec![pos(0.5, 0.9), pos(1.5, 0.3)], vec![pos(2.0, 0.5)]];
        let mut bytes = Vec::new();
        units.iter().flatten().for_each(|p| p.write(&mut bytes));
        std::fs::write(dir.path().join("k.pos"), &bytes).unwrap();
        let meta = format!(
            r#"{{
  "model": "m.gguf",
  "model_sha256": "b179c952",
  "fingerprint": {{"set": {{"kind": "documents"}}, "k": 10, "version": VERSION}},
  "units": [["d1", 2], ["d2", 1]],
  "skipped": [],
  "skipped_count": 0,
  "context_tokens": 5,
  "positions_sha256": "{}"
}}"#,
            digest::sha256_hex(&bytes)
        );
        std::fs::write(
            dir.path().join("k.json"),
            meta.replace("VERSION", &CACHE_VERSION.to_string()),
        )
        .unwrap();
        let s = load_cached(dir.path(), "k")
            .unwrap()
            .expect("the entry loads");
        assert_eq!(s.units, units);
        assert_eq!(s.meta.units[1], ("d2".to_string(), 1));
        let summary = pool(&s.units, MetricConfig::default()).summary();
        assert_eq!(summary.decision_tokens, 2);
        assert_eq!(summary.decision_density, Some(2.0 / 3.0));
        std::fs::write(dir.path().join("k.json"), meta.replace("VERSION", "1")).unwrap();
        assert!(load_cached(dir.path(), "k").unwrap().is_none());
    }

    #[test]
    fn manifests_in_toml_and_csv_agree() {
        let dir = tempfile::tempdir().unwrap();
        let toml_path = dir.path().join("m.toml");
        std::fs::write(
            &toml_path,
            "title = \"run\"\n[[checkpoint]]\nmodel = \"a.gguf\"\nstep = 100\nstage = \"32k\"\n[checkpoint.scores]\nswe = 0.1\n\n[[checkpoint]]\nmodel = \"/abs/b.gguf\"\nname = \"final\"\n",
        )
        .unwrap();
        let csv_path = dir.path().join("m.csv");
        std::fs::write(
            &csv_path,
            "model,step,stage,name,swe\na.gguf,100,32k,,0.1\n/abs/b.gguf,,,final,\n",
        )
        .unwrap();
        let t = read_manifest(&toml_path).unwrap();
        let c = read_manifest(&csv_path).unwrap();
        assert_eq!(t.title.as_deref(), Some("run"));
        assert_eq!(t.checkpoints, c.checkpoints);
        assert_eq!(t.checkpoints[0].name, "step 100");
        assert_eq!(t.checkpoints[0].model, dir.path().join("a.gguf"));
        assert_eq!(t.checkpoints[0].downstream["swe"], 0.1);
        assert_eq!(t.checkpoints[1].model, PathBuf::from("/abs/b.gguf"));
        assert!(t.checkpoints[1].downstream.is_empty());
    }

    #[test]
    fn bad_manifests_say_where() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.csv");
        std::fs::write(&p, "model,swe\na.gguf,abc\n").unwrap();
        let e = read_manifest(&p).unwrap_err().to_string();
        assert!(
            e.contains("line 2: column 'swe': 'abc' is not a number"),
            "{e}"
        );
        std::fs::write(&p, "step\n1\n").unwrap();
        assert!(read_manifest(&p)
            .unwrap_err()
            .to_string()
            .contains("no `model` column"));
        let p = dir.path().join("m.toml");
        std::fs::write(
            &p,
            "[[checkpoint]]\nmodel = \"a\"\nstep = 1\n[[checkpoint]]\nmodel = \"b\"\nstep = 1\n",
        )
        .unwrap();
        assert!(read_manifest(&p)
            .unwrap_err()
            .to_string()
            .contains("two checkpoints are named 'step 1'"));
        std::fs::write(&p, "[[checkpoint]]\nmodel = \"a\"\nsteps = 1\n").unwrap();
        assert!(read_manifest(&p)
            .unwrap_err()
            .to_string()
            .contains("unknown field"));
    }

    fn checkpoint(name: &str, stage: &str, he_snr: f64, ppl: f64, share: f64) -> CheckpointResult {
        let mut s = Accumulator::new(MetricConfig::default()).summary();
        s.he_snr = Some(he_snr);
        s.ppl = Some(ppl);
        s.top1_acc = Some(0.9);
        s.decision_density = Some(share);
        CheckpointResult {
            name: name.into(),
            model: String::new(),
            step: None,
            stage: Some(stage.into()),
            precision: Some("f32".into()),
            downstream: BTreeMap::new(),
            summary: s,
            entropy_hist: Vec::new(),
            sweep: Vec::new(),
            cached: false,
            proxy: Default::default(),
        }
    }

    #[test]
    fn the_tax_is_flagged_where_ppl_worsens_while_he_snr_improves() {
        let cps = [
            checkpoint("a", "32k", 0.10, 4.0, 0.10),
            checkpoint("b", "32k", 0.11, 3.9, 0.10),
            checkpoint("c", "128k", 0.12, 4.3, 0.13),
            checkpoint("d", "128k", 0.11, 4.0, 0.10),
            // Moves under 1% are noise: PPL +0.5%, HE-SNR +0.9%.
            checkpoint("e", "128k", 0.1101, 4.02, 0.10),
        ];
        let flags = long_context_tax(&cps);
        assert_eq!(flags.len(), 1);
        let f = &flags[0];
        assert_eq!(
            (f.from.as_str(), f.to.as_str(), f.stage_change),
            ("b", "c", true)
        );
        assert!(
            f.findings[0].starts_with("PPL 3.9000 -> 4.3000 (+10.3%)"),
            "{:?}",
            f.findings
        );
        assert!(f.findings.iter().any(|x| x.contains("|H| share jumps")));
        assert!(f.findings.iter().any(|x| x.contains("32k -> 128k")));
    }

    #[test]
    fn pooled_metrics_follow_eps() {
        let units = vec![vec![pos(0.5, 0.9), pos(1.3, 0.4), pos(1.5, 0.3)]];
        let at = |eps: f64| {
            pool(
                &units,
                MetricConfig {
                    eps,
                    ..MetricConfig::default()
                },
            )
        };
        assert_eq!(at(1.2425).decision, 2);
        assert_eq!(at(1.4).decision, 1);
        let snr = at(1.4).summary().he_snr.unwrap();
        assert!((snr - 0.3 / 1.5).abs() < 1e-12);
        let g = sweep_grid();
        assert_eq!(g.len(), SWEEP_POINTS);
        assert!(
            (g[0] - 2f64.ln()).abs() < 1e-15 && (g[SWEEP_POINTS - 1] - 5f64.ln()).abs() < 1e-12
        );
    }
}
