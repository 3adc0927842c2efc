//! Checking a selection folder, for `hesnr report-select`: the manifest is read back, the
//! selection recomputed from the config it records (the same [`plan`] as `hesnr select`,
//! nothing written) and checked against the manifest's counts, its input hashes and the shards,
//! so that every document is known as dropped by a filter, kept but not sampled, or selected.
//! A selection whose inputs changed since is refused. Then the documents the report shows are
//! read back from their files ([`read_texts`]) and, with a model, scored again ([`rescore`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::SelectConfig;
use super::error::SelectError;
use super::manifest::{Count, FilterReport, SelectManifest, MANIFEST_FILE};
use super::output::sha256_file;
use super::parse_config;
use super::plan::{plan, Doc, Plan};
use super::read::{for_each_record, get_field, id_of, reader_options};
use crate::data::ReaderOptions;
use crate::engine::Backend;
use crate::pipeline::score::{self, ScoreSettings, ScoredDocument};

/// A source's counts, as in the manifest (`sources[i]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceCounts {
    pub read: Count,
    pub bad_records: u64,
    pub no_profile: Count,
    #[serde(default)]
    pub profile_rows_without_document: u64,
    pub filters: Vec<FilterReport>,
    pub kept: Count,
    pub target_tokens: f64,
    pub selected: Count,
    pub shortfall_tokens: f64,
}

/// What happened to a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocStatus {
    /// Passed the filters and was sampled into the output.
    Selected,
    /// Passed the filters but was not sampled (the source's token target was met).
    Kept,
    /// Dropped by the filter with this index (within the source).
    Dropped(usize),
}

impl DocStatus {
    /// Whether the document passed the filters.
    pub fn kept(self) -> bool {
        !matches!(self, DocStatus::Dropped(_))
    }
}

/// One profiled document of a source and its fate.
#[derive(Debug, Clone)]
pub struct VerifiedDoc {
    pub id: String,
    /// Occurrence of this id within the source (0 for the first), as `hesnr select` counts.
    pub occ: u32,
    /// Document file as the selection config names it.
    pub file: String,
    pub line: u64,
    pub tokens: u64,
    /// Scores aligned with [`VerifiedSource::score_names`].
    pub values: Vec<Option<f64>>,
    pub status: DocStatus,
    /// Training weight, for kept documents of a weighted source.
    pub weight: Option<f64>,
}

/// One source of a checked selection.
#[derive(Debug, Clone)]
pub struct VerifiedSource {
    pub name: String,
    pub general: bool,
    pub profiled: bool,
    pub text_field: String,
    pub id_field: String,
    pub score_names: Vec<String>,
    /// Scores the source's filters and weight use.
    pub config_scores: Vec<String>,
    pub counts: SourceCounts,
    /// The profiled documents, by file and line.
    pub docs: Vec<VerifiedDoc>,
}

/// A selection folder checked against its recomputation: what `hesnr report-select` reports.
#[derive(Debug, Clone)]
pub struct VerifiedSelection {
    pub selection_dir: String,
    pub config_path: String,
    pub config_sha256: String,
    pub seed: u64,
    pub token_budget: Option<u64>,
    pub general_ratio: Option<f64>,
    pub selected: Count,
    pub general_share: f64,
    pub sources: Vec<VerifiedSource>,
}

/// Reads a selection folder: the manifest, the config it records, its inputs and profiles
/// (the selection is recomputed, not rewritten), and the selected shards, and checks them
/// against each other. Paths in the config are relative to the directory `hesnr select` ran
/// in, as they were then.
pub fn verify(dir: &Path) -> Result<VerifiedSelection, SelectError> {
    let mpath = dir.join(MANIFEST_FILE);
    let manifest = SelectManifest::read(&mpath)?;
    let label = manifest.config.path.clone();
    let cfg = parse_config(&manifest.config.text, &label).map_err(|source| {
        SelectError::RecordedConfig {
            manifest: mpath.clone(),
            source,
        }
    })?;
    let strict = manifest.options.strict;

    // The inputs must be the ones the selection read.
    for d in &manifest.inputs.documents {
        let (p, sha) = (d.path.as_str(), d.sha256.as_str());
        let (now, _) =
            sha256_file(Path::new(p)).map_err(|source| SelectError::InputUnreadable {
                path: p.to_string(),
                manifest: mpath.clone(),
                source: Box::new(source),
            })?;
        if now != sha {
            return Err(SelectError::InputChanged {
                path: p.to_string(),
                now,
                recorded: sha.to_string(),
                manifest: mpath,
            });
        }
    }

    let plan = plan(&cfg, &label, strict).map_err(|source| SelectError::Recompute {
        manifest: mpath.clone(),
        source: Box::new(source),
    })?;
    let counts = check_plan(&plan, &manifest, &mpath)?;
    check_shards(dir, &manifest, &mpath, &plan, &cfg)?;

    let mut sources: Vec<VerifiedSource> = cfg
        .sources
        .iter()
        .zip(counts)
        .enumerate()
        .map(|(si, (s, counts))| {
            let mut config_scores: Vec<String> = s.filter.iter().map(|f| f.score.clone()).collect();
            config_scores.extend(s.weight.as_ref().map(|w| w.score.clone()));
            VerifiedSource {
                name: s.name.clone(),
                general: s.general,
                profiled: !s.profile.is_empty(),
                text_field: s.text_field.clone(),
                id_field: s.id_field.clone(),
                score_names: plan.score_names[si].iter().map(|x| x.0.clone()).collect(),
                config_scores,
                counts,
                docs: Vec::new(),
            }
        })
        .collect();
    let selected: HashSet<usize> = plan.selected.iter().copied().collect();
    let weighted: Vec<bool> = cfg.sources.iter().map(|s| s.weight.is_some()).collect();
    let mut add = |d: &Doc, status: DocStatus| {
        let Some(values) = &d.values else { return };
        sources[d.source].docs.push(VerifiedDoc {
            id: d.id.clone(),
            occ: d.occ,
            file: plan.files[d.file].2.clone(),
            line: d.line,
            tokens: d.tokens,
            values: values.clone(),
            status,
            weight: (status.kept() && weighted[d.source]).then_some(d.weight),
        });
    };
    for (i, d) in plan.docs.iter().enumerate() {
        add(
            d,
            if selected.contains(&i) {
                DocStatus::Selected
            } else {
                DocStatus::Kept
            },
        );
    }
    for (j, d) in &plan.dropped {
        add(d, DocStatus::Dropped(*j));
    }
    for s in &mut sources {
        s.docs
            .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    }
    Ok(VerifiedSelection {
        selection_dir: dir.display().to_string(),
        config_path: label,
        config_sha256: manifest.config.sha256.clone(),
        seed: cfg.seed,
        token_budget: cfg.token_budget,
        general_ratio: cfg.general_ratio,
        selected: Count {
            documents: manifest.selected.documents,
            tokens: manifest.selected.tokens,
        },
        general_share: manifest.selected.general_share,
        sources,
    })
}

/// The manifest's counts per source, after checking that the recomputed selection has the
/// same counts and profile rows.
fn check_plan(
    plan: &Plan,
    manifest: &SelectManifest,
    mpath: &Path,
) -> Result<Vec<SourceCounts>, SelectError> {
    let recorded = &manifest.sources;
    let now = &plan.reports;
    if recorded.len() != now.len() {
        return Err(SelectError::SourceCount {
            manifest: mpath.to_path_buf(),
            recorded: recorded.len(),
            config: now.len(),
        });
    }
    let mut out = Vec::new();
    for (r, n) in recorded.iter().zip(now) {
        macro_rules! same {
            ($($key:ident),*) => {$(
                if r.$key != n.$key {
                    return Err(SelectError::CountChanged {
                        source_name: r.name.clone(),
                        key: stringify!($key),
                        recorded: serde_json::to_string(&r.$key)?,
                        recomputed: serde_json::to_string(&n.$key)?,
                        manifest: mpath.to_path_buf(),
                    });
                }
            )*};
        }
        same!(
            name,
            read,
            bad_records,
            no_profile,
            profile_rows_matched,
            profile_rows_without_document,
            profile_rows_sha256,
            filters,
            kept,
            selected
        );
        out.push(SourceCounts {
            read: r.read,
            bad_records: r.bad_records,
            no_profile: r.no_profile,
            profile_rows_without_document: r.profile_rows_without_document,
            filters: r.filters.clone(),
            kept: r.kept,
            target_tokens: r.target_tokens,
            selected: r.selected,
            shortfall_tokens: r.shortfall_tokens,
        });
    }
    Ok(out)
}

/// Checks the selected shards against the recomputed selection: rows per source, and every
/// row's id (where the record has one) among the source's selected documents.
fn check_shards(
    dir: &Path,
    manifest: &SelectManifest,
    mpath: &Path,
    plan: &Plan,
    cfg: &SelectConfig,
) -> Result<(), SelectError> {
    let index: HashMap<&str, usize> = cfg
        .sources
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let mut ids: Vec<HashSet<&str>> = vec![HashSet::new(); cfg.sources.len()];
    for &i in &plan.selected {
        let d = &plan.docs[i];
        ids[d.source].insert(d.id.as_str());
    }
    let mut rows = vec![0u64; cfg.sources.len()];
    for o in &manifest.outputs {
        if o.format != "jsonl" {
            continue;
        }
        let path = dir.join(&o.path);
        if !path.is_file() {
            return Err(SelectError::ShardMissing {
                path,
                manifest: mpath.to_path_buf(),
            });
        }
        let file = path.display().to_string();
        for_each_record(&path, &ReaderOptions::default(), |line, rec| {
            let rec = rec.map_err(|message| SelectError::BadRecord {
                file: file.clone(),
                line,
                message,
            })?;
            let rec = Value::Object(rec);
            let src = rec
                .pointer("/metadata/hesnr/source")
                .and_then(Value::as_str)
                .ok_or_else(|| SelectError::ShardNoSource {
                    file: file.clone(),
                    line,
                })?;
            let &si = index
                .get(src)
                .ok_or_else(|| SelectError::ShardUnknownSource {
                    file: file.clone(),
                    line,
                    source_name: src.to_string(),
                })?;
            rows[si] += 1;
            if let Some(id) = id_of(&rec, &cfg.sources[si].id_field) {
                if !ids[si].contains(id.as_str()) {
                    return Err(SelectError::ShardNotSelected {
                        file: file.clone(),
                        line,
                        id,
                        source_name: src.to_string(),
                        manifest: mpath.to_path_buf(),
                    });
                }
            }
            Ok(())
        })?;
    }
    for (si, s) in cfg.sources.iter().enumerate() {
        let want = plan
            .selected
            .iter()
            .filter(|&&i| plan.docs[i].source == si)
            .count() as u64;
        if rows[si] != want {
            return Err(SelectError::ShardRows {
                source_name: s.name.clone(),
                rows: rows[si],
                dir: dir.to_path_buf(),
                selected: want,
            });
        }
    }
    Ok(())
}

/// Where a document of a selection is: its file as the config names it, its line (or row),
/// and its id.
#[derive(Debug, Clone, Copy)]
pub struct DocAt<'a> {
    pub file: &'a str,
    pub line: u64,
    pub id: &'a str,
}

/// The texts of documents of one source (read with its `text_field` and `id_field`), in the
/// order of `docs`, read back from their files; a document whose id is not the one expected
/// (the file changed) is refused.
pub fn read_texts(
    text_field: &str,
    id_field: &str,
    docs: &[DocAt<'_>],
) -> Result<Vec<String>, SelectError> {
    let mut wanted: BTreeMap<&str, Vec<(u64, &str)>> = BTreeMap::new();
    for d in docs {
        wanted.entry(d.file).or_default().push((d.line, d.id));
    }
    let mut texts: HashMap<(&str, u64), String> = HashMap::new();
    let opts = reader_options(text_field, id_field);
    for (&file, lines) in &wanted {
        let want: HashMap<u64, &str> = lines.iter().copied().collect();
        for_each_record(&PathBuf::from(file), &opts, |line, rec| {
            let Some(&id) = want.get(&line) else {
                return Ok(());
            };
            let rec = Value::Object(rec.map_err(|message| SelectError::BadRecord {
                file: file.to_string(),
                line,
                message,
            })?);
            let text = match get_field(&rec, text_field) {
                Some(Value::String(t)) => t.clone(),
                _ => {
                    return Err(SelectError::NoText {
                        file: file.to_string(),
                        line,
                        field: text_field.to_string(),
                    })
                }
            };
            if let Some(found) = id_of(&rec, id_field) {
                if found != id {
                    return Err(SelectError::IdChanged {
                        file: file.to_string(),
                        line,
                        found,
                        expected: id.to_string(),
                    });
                }
            }
            texts.insert((file, line), text);
            Ok(())
        })?;
    }
    docs.iter()
        .map(|d| {
            texts
                .remove(&(d.file, d.line))
                .ok_or_else(|| SelectError::DocumentNotFound {
                    file: d.file.to_string(),
                    line: d.line,
                    id: d.id.to_string(),
                })
        })
        .collect()
}

/// A document of a selection scored again by a model, to show its tokens.
pub struct Rescored {
    pub scored: ScoredDocument,
    /// The profile's `decision_tokens` of the document, when the new scoring counts another
    /// number (more than half a token apart): a different model or settings than the profile's.
    pub profile_decision_tokens: Option<f64>,
    /// Decision tokens of the new scoring.
    pub decision_tokens: u64,
}

/// Scores the text of the document `at` again, and compares its decision tokens with the
/// profile's (`profile_decision_tokens`, when the profile has them).
pub fn rescore(
    backend: &mut dyn Backend,
    settings: &ScoreSettings,
    at: DocAt<'_>,
    text: &str,
    profile_decision_tokens: Option<f64>,
) -> Result<Rescored, SelectError> {
    let scored =
        score::score_text(backend, text, settings).map_err(|source| SelectError::Rescore {
            file: at.file.to_string(),
            line: at.line,
            id: at.id.to_string(),
            source: Box::new(source),
        })?;
    let decision_tokens = scored.acc.summary().decision_tokens;
    Ok(Rescored {
        scored,
        profile_decision_tokens: profile_decision_tokens
            .filter(|p| (*p - decision_tokens as f64).abs() > 0.5),
        decision_tokens,
    })
}
