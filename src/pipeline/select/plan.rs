//! What a selection decides, before anything is written, in the order it decides it: resolve
//! the files, join each source's profile rows, read its documents, filter, weigh; then set every
//! source's token target and sample. `hesnr report-select` runs the same plan to know the fate
//! of every document.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::config::{key_err, SelectConfig, SourceConfig};
use super::error::SelectError;
use super::manifest::{Count, FilterReport, SourceReport, WeightStats};
use super::read::{
    expand_documents, expand_profile, for_each_record, get_field, id_of, match_source,
    read_profile, reader_options, ProfileFile,
};
use crate::data::digest::hex;

/// A profile row joined to its document: (id, scores in the source's score order).
type JoinedRow = (String, Vec<Option<f64>>);

/// One input document.
pub(crate) struct Doc {
    pub(crate) source: usize,
    /// Index into the global file list.
    pub(crate) file: usize,
    pub(crate) line: u64,
    pub(crate) id: String,
    pub(crate) occ: u32,
    pub(crate) tokens: u64,
    /// Scores (aligned with the source's score names) when profiled.
    pub(crate) values: Option<Vec<Option<f64>>>,
    pub(crate) weight: f64,
}

/// What a selection decides, before anything is written: every document read, its scores,
/// which filter dropped it, the kept ones with their weights, and the sampled ones.
pub(crate) struct Plan {
    /// (source index, path, path as configured) of every document file, in config order.
    pub files: Vec<(usize, PathBuf, String)>,
    /// The profile files of each source.
    pub profile_files: Vec<Vec<PathBuf>>,
    /// The documents kept by the filters (candidates for sampling).
    pub docs: Vec<Doc>,
    /// The documents a filter dropped: (filter index within the source, document).
    pub dropped: Vec<(usize, Doc)>,
    pub reports: Vec<SourceReport>,
    /// Score names (and whether integer) of each source's profile, aligned with `Doc::values`.
    pub score_names: Vec<Vec<(String, bool)>>,
    /// Indices into `docs` of the sampled documents, by source.
    pub selected: Vec<usize>,
    pub total_target: f64,
}

/// Reads the documents and profiles of a config and decides the selection (filters, weights,
/// targets, sampling) without writing anything. `label` names the config in errors.
pub(crate) fn plan(cfg: &SelectConfig, label: &str, strict: bool) -> Result<Plan, SelectError> {
    let (files, profile_files) = resolve_files(cfg, label)?;
    let profiles = ProfileCache::default();
    let mut docs: Vec<Doc> = Vec::new();
    let mut dropped: Vec<(usize, Doc)> = Vec::new();
    let mut reports = Vec::new();
    let mut score_names: Vec<Vec<(String, bool)>> = Vec::new();
    for (si, s) in cfg.sources.iter().enumerate() {
        let mine: Vec<usize> = (0..files.len()).filter(|&i| files[i].0 == si).collect();
        let paths: Vec<(PathBuf, String)> = mine
            .iter()
            .map(|&i| (files[i].1.clone(), files[i].2.clone()))
            .collect();
        let joined = join_profiles(s, &profile_files[si], &paths, &profiles)?;
        check_scores(label, si, s, &joined.names)?;
        let mut rep = new_report(s, &joined, &paths);
        let read = ReadSource {
            cfg,
            si,
            strict,
            files: &files,
            mine: &mine,
        };
        let local = read.documents(joined.rows, &joined.names, &mut rep)?;
        let local = filter(s, &joined.names, local, &mut rep, &mut dropped);
        let local = weigh(label, si, s, &joined.names, local, &mut rep)?;
        for d in &local {
            rep.kept.add(d.tokens);
        }
        docs.extend(local);
        reports.push(rep);
        score_names.push(joined.names);
    }
    let total_target = set_targets(cfg, &mut reports);
    let selected = sample(cfg, &docs, &mut reports);
    Ok(Plan {
        files,
        profile_files,
        docs,
        dropped,
        reports,
        score_names,
        selected,
        total_target,
    })
}

/// Document files of every source, with their config source index and the path as shown, and
/// the profile files of each source; all checked to exist before anything is read.
#[allow(clippy::type_complexity)]
fn resolve_files(
    cfg: &SelectConfig,
    label: &str,
) -> Result<(Vec<(usize, PathBuf, String)>, Vec<Vec<PathBuf>>), SelectError> {
    let key = |si: usize, field: &str, list: &[String], j: usize| {
        if list.len() > 1 {
            format!("source[{si}].{field}[{j}]")
        } else {
            format!("source[{si}].{field}")
        }
    };
    let mut files = Vec::new();
    let mut profile_files = Vec::new();
    for (si, s) in cfg.sources.iter().enumerate() {
        for (j, d) in s.documents.iter().enumerate() {
            let k = key(si, "documents", &s.documents, j);
            for p in expand_documents(label, &k, d)? {
                let shown = p.display().to_string();
                files.push((si, p, shown));
            }
        }
        let mut pf = Vec::new();
        for (j, d) in s.profile.iter().enumerate() {
            pf.extend(expand_profile(
                label,
                &key(si, "profile", &s.profile, j),
                d,
            )?);
        }
        profile_files.push(pf);
    }
    Ok((files, profile_files))
}

/// Profile files, each read once even when sources share it.
#[derive(Default)]
struct ProfileCache(RefCell<HashMap<PathBuf, Rc<ProfileFile>>>);

impl ProfileCache {
    fn get(&self, p: &Path) -> Result<Rc<ProfileFile>, SelectError> {
        if let Some(x) = self.0.borrow().get(p) {
            return Ok(x.clone());
        }
        let pf = Rc::new(read_profile(p)?);
        self.0.borrow_mut().insert(p.to_path_buf(), pf.clone());
        Ok(pf)
    }
}

/// A source's profile rows, by (index of the file among the source's files, line).
struct Joined {
    /// Score columns (and whether integer), in the first profile file's order.
    names: Vec<(String, bool)>,
    rows: HashMap<(usize, u64), JoinedRow>,
}

/// Joins the rows of a source's profile files to its document files; a (file, line) given
/// twice is an error (overlapping profiles would count a document twice).
fn join_profiles(
    s: &SourceConfig,
    profile_files: &[PathBuf],
    paths: &[(PathBuf, String)],
    profiles: &ProfileCache,
) -> Result<Joined, SelectError> {
    let mut names: Vec<(String, bool)> = Vec::new();
    let mut rows: HashMap<(usize, u64), JoinedRow> = HashMap::new();
    for p in profile_files {
        let pf = profiles.get(p)?;
        if names.is_empty() {
            names = pf.scores.clone();
        }
        // Map this file's columns onto the first file's.
        let mut map = Vec::new();
        for (n, _) in &names {
            match pf.scores.iter().position(|(m, _)| m == n) {
                Some(k) => map.push(k),
                None => {
                    return Err(SelectError::ProfileColumnNotShared {
                        path: p.clone(),
                        column: n.clone(),
                        source_name: s.name.clone(),
                    })
                }
            }
        }
        let mut matched: HashMap<&str, Option<usize>> = HashMap::new();
        for r in &pf.rows {
            let m = *matched
                .entry(r.source.as_str())
                .or_insert_with(|| match_source(&r.source, paths));
            let Some(fi) = m else { continue };
            let vals = map.iter().map(|&k| r.values[k]).collect();
            if rows.insert((fi, r.line), (r.id.clone(), vals)).is_some() {
                return Err(SelectError::ProfileOverlap {
                    source_name: s.name.clone(),
                    file: paths[fi].1.clone(),
                    line: r.line,
                });
            }
        }
    }
    Ok(Joined { names, rows })
}

/// The scores the source's filters and weight use must be profile columns.
fn check_scores(
    label: &str,
    si: usize,
    s: &SourceConfig,
    names: &[(String, bool)],
) -> Result<(), SelectError> {
    let check = |key: String, score: &str| -> Result<(), SelectError> {
        if names.iter().any(|(n, _)| n == score) {
            return Ok(());
        }
        let avail: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
        Err(key_err(
            label,
            &key,
            format!(
                "unknown score '{score}' (profile columns: {})",
                avail.join(", ")
            ),
        )
        .into())
    };
    for (j, f) in s.filter.iter().enumerate() {
        check(format!("source[{si}].filter[{j}].score"), &f.score)?;
    }
    if let Some(w) = &s.weight {
        check(format!("source[{si}].weight.score"), &w.score)?;
    }
    Ok(())
}

/// The joined rows' canonical hash: independent of how the profile was split into files.
fn rows_sha256(joined: &Joined, paths: &[(PathBuf, String)]) -> String {
    let mut keys: Vec<&(usize, u64)> = joined.rows.keys().collect();
    keys.sort();
    let mut rh = Sha256::new();
    for (n, int) in &joined.names {
        rh.update(n.as_bytes());
        rh.update([0, *int as u8]);
    }
    for k in &keys {
        let (id, vals) = &joined.rows[*k];
        rh.update(paths[k.0].1.as_bytes());
        rh.update([0]);
        rh.update(k.1.to_le_bytes());
        rh.update(id.as_bytes());
        rh.update([0]);
        for v in vals {
            rh.update(v.map_or(u64::MAX, |x| x.to_bits()).to_le_bytes());
        }
    }
    hex(&rh.finalize())
}

/// A source's report before its documents are read.
fn new_report(s: &SourceConfig, joined: &Joined, paths: &[(PathBuf, String)]) -> SourceReport {
    let profiled = !s.profile.is_empty();
    SourceReport {
        name: s.name.clone(),
        general: s.general,
        tokens_from: if profiled {
            "profile"
        } else {
            "bytes_per_token"
        }
        .to_string(),
        read: Count::default(),
        bad_records: 0,
        no_profile: Count::default(),
        profile_rows_matched: 0,
        profile_rows_without_document: 0,
        profile_rows_sha256: profiled.then(|| rows_sha256(joined, paths)),
        filters: s
            .filter
            .iter()
            .map(|f| FilterReport {
                filter: f.describe(),
                dropped: Count::default(),
            })
            .collect(),
        kept: Count::default(),
        target_tokens: 0.0,
        selected: Count::default(),
        shortfall_tokens: 0.0,
        weight: None,
    }
}

/// Reading one source's document files.
struct ReadSource<'a> {
    cfg: &'a SelectConfig,
    si: usize,
    strict: bool,
    files: &'a [(usize, PathBuf, String)],
    /// Indices into `files` of this source's files.
    mine: &'a [usize],
}

impl ReadSource<'_> {
    /// The source's documents with a profile row (all of them without a profile), with their
    /// tokens and scores; counts what was read, unreadable, and without a row in `rep`.
    fn documents(
        &self,
        mut joined: HashMap<(usize, u64), JoinedRow>,
        names: &[(String, bool)],
        rep: &mut SourceReport,
    ) -> Result<Vec<Doc>, SelectError> {
        let s = &self.cfg.sources[self.si];
        let strict = self.strict;
        let rows_total = joined.len() as u64;
        let tokens_col = names.iter().position(|(n, _)| n == "tokens");
        let profiled = !s.profile.is_empty();
        let mut occ: HashMap<String, u32> = HashMap::new();
        let mut local: Vec<Doc> = Vec::new();
        for (fi, &gi) in self.mine.iter().enumerate() {
            let path = &self.files[gi].1;
            let file_name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let opts = reader_options(&s.text_field, &s.id_field);
            let shown = &self.files[gi].2;
            for_each_record(path, &opts, |line, rec| {
                let rec = match rec {
                    Ok(r) => Value::Object(r),
                    Err(message) => {
                        if strict {
                            return Err(SelectError::BadRecord {
                                file: shown.clone(),
                                line,
                                message,
                            });
                        }
                        rep.bad_records += 1;
                        return Ok(());
                    }
                };
                let text_len = match get_field(&rec, &s.text_field) {
                    Some(Value::String(t)) => t.len(),
                    _ => {
                        if strict {
                            return Err(SelectError::NoText {
                                file: shown.clone(),
                                line,
                                field: s.text_field.clone(),
                            });
                        }
                        rep.bad_records += 1;
                        return Ok(());
                    }
                };
                let id = id_of(&rec, &s.id_field).unwrap_or_else(|| format!("{file_name}:{line}"));
                let o = occ.entry(id.clone()).or_insert(0);
                let this_occ = *o;
                *o += 1;
                let estimate = (text_len as f64 / self.cfg.bytes_per_token).ceil() as u64;
                let (tokens, values) = if profiled {
                    match joined.remove(&(fi, line)) {
                        Some((pid, vals)) => {
                            if pid != id {
                                return Err(SelectError::ProfileIdMismatch {
                                    file: shown.clone(),
                                    line,
                                    id,
                                    profile_id: pid,
                                });
                            }
                            let t = tokens_col.and_then(|k| vals[k]).unwrap_or(0.0) as u64;
                            (t, Some(vals))
                        }
                        None => {
                            if strict {
                                return Err(SelectError::NoProfileRow {
                                    file: shown.clone(),
                                    line,
                                    id,
                                    source_name: s.name.clone(),
                                });
                            }
                            rep.read.add(estimate);
                            rep.no_profile.add(estimate);
                            return Ok(());
                        }
                    }
                } else {
                    (estimate, None)
                };
                rep.read.add(tokens);
                local.push(Doc {
                    source: self.si,
                    file: gi,
                    line,
                    id,
                    occ: this_occ,
                    tokens,
                    values,
                    weight: 1.0,
                });
                Ok(())
            })?;
        }
        rep.profile_rows_without_document = joined.len() as u64;
        rep.profile_rows_matched = rows_total - joined.len() as u64;
        Ok(local)
    }
}

/// A document's score by name (`None`: no profile, no such score, or null).
fn score_of(names: &[(String, bool)], d: &Doc, name: &str) -> Option<f64> {
    let k = names.iter().position(|(n, _)| n == name)?;
    d.values.as_ref().and_then(|v| v[k])
}

/// Runs the source's filters in order, each on what the previous kept; the dropped documents
/// go to `dropped` with the filter's index, and are counted per filter in `rep`.
fn filter(
    s: &SourceConfig,
    names: &[(String, bool)],
    mut local: Vec<Doc>,
    rep: &mut SourceReport,
    dropped: &mut Vec<(usize, Doc)>,
) -> Vec<Doc> {
    for (j, f) in s.filter.iter().enumerate() {
        let mut keep = vec![false; local.len()];
        if f.min.is_some() || f.max.is_some() {
            for (i, d) in local.iter().enumerate() {
                keep[i] = score_of(names, d, &f.score)
                    .is_some_and(|x| f.min.is_none_or(|m| x >= m) && f.max.is_none_or(|m| x <= m));
            }
        } else {
            let (frac, top) = match (f.top_fraction, f.bottom_fraction) {
                (Some(x), _) => (x, true),
                (_, Some(x)) => (x, false),
                _ => unreachable!("checked when parsed"),
            };
            let mut scored: Vec<(f64, usize)> = local
                .iter()
                .enumerate()
                .filter_map(|(i, d)| score_of(names, d, &f.score).map(|x| (x, i)))
                .collect();
            scored.sort_by(|a, b| {
                let o = if top {
                    b.0.total_cmp(&a.0)
                } else {
                    a.0.total_cmp(&b.0)
                };
                o.then_with(|| {
                    (&local[a.1].id, local[a.1].occ).cmp(&(&local[b.1].id, local[b.1].occ))
                })
            });
            let n = ((frac * scored.len() as f64) - 1e-9).ceil().max(0.0) as usize;
            for &(_, i) in scored.iter().take(n) {
                keep[i] = true;
            }
        }
        let mut next = Vec::with_capacity(local.len());
        for (d, k) in local.into_iter().zip(keep) {
            if k {
                next.push(d);
            } else {
                rep.filters[j].dropped.add(d.tokens);
                dropped.push((j, d));
            }
        }
        local = next;
    }
    local
}

/// Sets the kept documents' weights from the source's `weight` (mean 1), and records their
/// range in `rep`.
fn weigh(
    label: &str,
    si: usize,
    s: &SourceConfig,
    names: &[(String, bool)],
    mut local: Vec<Doc>,
    rep: &mut SourceReport,
) -> Result<Vec<Doc>, SelectError> {
    let Some(w) = &s.weight else {
        return Ok(local);
    };
    let raw: Vec<Option<f64>> = local
        .iter()
        .map(|d| {
            score_of(names, d, &w.score).map(|x| match w.clip {
                Some([lo, hi]) => x.clamp(lo, hi),
                None => x,
            })
        })
        .collect();
    let floor = match w.clip {
        Some([lo, _]) => lo,
        None => raw.iter().flatten().copied().fold(f64::INFINITY, f64::min),
    };
    let vals: Vec<f64> = raw
        .iter()
        .map(|x| x.unwrap_or(floor).powf(w.power))
        .collect();
    if let Some(bad) = vals.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
        return Err(key_err(
            label,
            &format!("source[{si}].weight"),
            format!("gives a weight of {bad}: weights must be finite and > 0 (set clip = [low, high] with low > 0)"),
        )
        .into());
    }
    let mean = vals.iter().sum::<f64>() / vals.len().max(1) as f64;
    for (d, v) in local.iter_mut().zip(&vals) {
        d.weight = v / mean;
    }
    if !vals.is_empty() {
        let ws: Vec<f64> = local.iter().map(|d| d.weight).collect();
        rep.weight = Some(WeightStats {
            max: ws.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            min: ws.iter().copied().fold(f64::INFINITY, f64::min),
            raw_mean: mean,
        });
    }
    Ok(local)
}

/// Sets each source's `target_tokens` and returns the total target (see the module docs).
fn set_targets(cfg: &SelectConfig, reports: &mut [SourceReport]) -> f64 {
    let kept_of = |general: bool| -> f64 {
        reports
            .iter()
            .filter(|r| r.general == general)
            .map(|r| r.kept.tokens as f64)
            .sum()
    };
    let (k_spec, k_gen) = (kept_of(false), kept_of(true));
    let total_target = match (cfg.token_budget, cfg.general_ratio) {
        (Some(b), _) => b as f64,
        (None, None) => k_spec + k_gen,
        (None, Some(r)) => {
            let a = if r < 1.0 {
                k_spec / (1.0 - r)
            } else {
                f64::INFINITY
            };
            let b = if r > 0.0 { k_gen / r } else { f64::INFINITY };
            a.min(b)
        }
    };
    for rep in reports.iter_mut() {
        let k = rep.kept.tokens as f64;
        rep.target_tokens = match cfg.general_ratio {
            None => {
                let all = k_spec + k_gen;
                if all > 0.0 {
                    total_target * k / all
                } else {
                    0.0
                }
            }
            Some(r) => {
                let (share, group) = if rep.general {
                    (r, k_gen)
                } else {
                    (1.0 - r, k_spec)
                };
                if group > 0.0 {
                    total_target * share * k / group
                } else {
                    0.0
                }
            }
        };
    }
    total_target
}

/// A uniform 64-bit number from SHA-256 of the parts.
pub(crate) fn hash_u64(seed: u64, tag: &str, source: &str, id: &str, occ: u32) -> u64 {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    for part in [tag, source, id] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.update(occ.to_le_bytes());
    let d = h.finalize();
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}

/// A uniform number in (0, 1).
fn unit(x: u64) -> f64 {
    ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

/// Samples each source without replacement by Efraimidis-Spirakis keys until its target is
/// met (the crossing document taken when that lands closer); returns indices into `docs`, by
/// source, and counts the selected and the shortfall in `reports`.
fn sample(cfg: &SelectConfig, docs: &[Doc], reports: &mut [SourceReport]) -> Vec<usize> {
    let mut selected: Vec<usize> = Vec::new();
    for (si, s) in cfg.sources.iter().enumerate() {
        let target = reports[si].target_tokens;
        let mut mine: Vec<(f64, usize)> = docs
            .iter()
            .enumerate()
            .filter(|(_, d)| d.source == si)
            .map(|(i, d)| {
                let u = unit(hash_u64(cfg.seed, "sample", &s.name, &d.id, d.occ));
                (u.ln() / d.weight, i)
            })
            .collect();
        let kept = reports[si].kept.tokens as f64;
        if kept <= target * (1.0 + 1e-12) {
            selected.extend(mine.iter().map(|x| x.1));
        } else {
            mine.sort_by(|a, b| {
                b.0.total_cmp(&a.0).then_with(|| {
                    (&docs[a.1].id, docs[a.1].occ).cmp(&(&docs[b.1].id, docs[b.1].occ))
                })
            });
            let mut cum = 0.0;
            for &(_, i) in &mine {
                if cum >= target {
                    break;
                }
                let t = docs[i].tokens as f64;
                if cum + t <= target {
                    cum += t;
                    selected.push(i);
                } else {
                    if cum + t - target <= target - cum {
                        selected.push(i);
                    }
                    break;
                }
            }
        }
        let rep = &mut reports[si];
        for &i in selected.iter().filter(|&&i| docs[i].source == si) {
            rep.selected.add(docs[i].tokens);
        }
        rep.shortfall_tokens = (target - rep.selected.tokens as f64).max(0.0);
        if rep.shortfall_tokens
            > docs
                .iter()
                .filter(|d| d.source == si)
                .map(|d| d.tokens)
                .max()
                .unwrap_or(0) as f64
        {
            tracing::warn!(
                "source '{}': {} kept tokens fall {:.0} tokens short of its target {:.0}",
                s.name,
                rep.kept.tokens,
                rep.shortfall_tokens,
                target
            );
        }
    }
    selected
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable_and_uniform_enough() {
        let a = hash_u64(1, "sample", "code", "x", 0);
        assert_eq!(a, hash_u64(1, "sample", "code", "x", 0));
        assert_ne!(a, hash_u64(2, "sample", "code", "x", 0));
        let mean: f64 = (0..2000)
            .map(|i| unit(hash_u64(7, "t", "s", &i.to_string(), 0)))
            .sum::<f64>()
            / 2000.0;
        assert!((mean - 0.5).abs() < 0.03, "{mean}");
    }
}
