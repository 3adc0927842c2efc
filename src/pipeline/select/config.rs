//! The selection config: serde types that mirror the TOML (`examples/corpus/select.toml`), and
//! [`SelectConfig::validate`] for what types cannot say (ranges, non-empty strings, one kind per
//! filter, sources that can be mixed).
//!
//! Every error names the config file and the key, as `source[0].filter[1].top_fraction`: serde
//! reports where in the text it stopped (a byte span), and [`key_at`] turns that span back into
//! the key path, so a wrong type or an unknown key reads like a range error.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// A config that cannot be used, with the file and key it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: not valid TOML: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}: key `{key}`: {message}")]
    Key {
        file: String,
        key: String,
        message: String,
    },
}

/// An error about `key` of the config `file`.
pub(crate) fn key_err(file: &str, key: &str, message: impl fmt::Display) -> ConfigError {
    ConfigError::Key {
        file: file.to_string(),
        key: key.to_string(),
        message: message.to_string(),
    }
}

/// A parsed selection config (as recorded, re-serialized, under `config.parsed` in the manifest).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectConfig {
    pub seed: u64,
    pub token_budget: Option<u64>,
    pub general_ratio: Option<f64>,
    /// Token estimate for sources without a profile.
    pub bytes_per_token: f64,
    pub sources: Vec<SourceConfig>,
}

/// The TOML's top level: as [`SelectConfig`], with the defaults and the `[[source]]` key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    seed: u64,
    #[serde(default)]
    token_budget: Option<u64>,
    #[serde(default)]
    general_ratio: Option<f64>,
    #[serde(default = "default_bytes_per_token")]
    bytes_per_token: f64,
    #[serde(default)]
    source: Vec<SourceConfig>,
}

fn default_bytes_per_token() -> f64 {
    4.0
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub name: String,
    #[serde(default)]
    pub general: bool,
    #[serde(deserialize_with = "paths")]
    pub documents: Vec<String>,
    #[serde(default, deserialize_with = "paths")]
    pub profile: Vec<String>,
    #[serde(default)]
    pub filter: Vec<Filter>,
    #[serde(default)]
    pub weight: Option<WeightSpec>,
    #[serde(default = "default_text_field")]
    pub text_field: String,
    #[serde(default = "default_id_field")]
    pub id_field: String,
}

fn default_text_field() -> String {
    "text".to_string()
}

fn default_id_field() -> String {
    "id".to_string()
}

/// One filter: a range (`min`, `max`, or both) or one of the fractions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub score: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_fraction: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bottom_fraction: Option<f64>,
}

impl Filter {
    /// `score min 0.1 max 0.5`, as the manifest names the filter.
    pub(crate) fn describe(&self) -> String {
        let mut parts = vec![self.score.clone()];
        for (k, v) in self.bounds() {
            parts.push(format!("{k} {v}"));
        }
        parts.join(" ")
    }

    /// The bounds given, in the order the filter is described.
    fn bounds(&self) -> impl Iterator<Item = (&'static str, f64)> {
        [
            ("min", self.min),
            ("max", self.max),
            ("top_fraction", self.top_fraction),
            ("bottom_fraction", self.bottom_fraction),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WeightSpec {
    pub score: String,
    #[serde(default, deserialize_with = "clip")]
    pub clip: Option<[f64; 2]>,
    #[serde(default = "default_power")]
    pub power: f64,
}

fn default_power() -> f64 {
    1.0
}

/// `clip = [low, high]`: exactly two numbers (a TOML array longer than a Rust array would
/// otherwise lose its tail silently).
fn clip<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[f64; 2]>, D::Error> {
    match Option::<Vec<f64>>::deserialize(d)? {
        None => Ok(None),
        Some(v) if v.len() == 2 => Ok(Some([v[0], v[1]])),
        Some(v) => Err(de::Error::invalid_length(v.len(), &"[low, high]")),
    }
}

/// `documents`/`profile`: one path or a list of them (an empty list is refused by
/// [`SelectConfig::validate`] for `documents` and by [`empty_lists`] for `profile`, whose
/// parsed form, `[]` for no profile, must read back from the manifest).
fn paths<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct Paths;
    impl<'de> Visitor<'de> for Paths {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a path or a list of paths")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(vec![v.to_string()])
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(p) = seq.next_element::<String>()? {
                out.push(p);
            }
            Ok(out)
        }
    }
    d.deserialize_any(Paths)
}

/// Parses and checks a config; `file` names it in errors.
pub fn parse_config(text: &str, file: &str) -> Result<SelectConfig, ConfigError> {
    let doc = DeTable::parse(text).map_err(|e| ConfigError::Syntax {
        file: file.to_string(),
        message: e.to_string(),
    })?;
    let raw: ConfigFile = toml::from_str(text).map_err(|e| serde_error(text, &doc, file, &e))?;
    empty_lists(doc.get_ref(), file)?;
    let cfg = SelectConfig {
        seed: raw.seed,
        token_budget: raw.token_budget,
        general_ratio: raw.general_ratio,
        bytes_per_token: raw.bytes_per_token,
        sources: raw.source,
    };
    cfg.validate(file)?;
    Ok(cfg)
}

/// A `profile = []` is a mistake, not "no profile" (which is leaving the key out).
fn empty_lists(doc: &DeTable, file: &str) -> Result<(), ConfigError> {
    let Some(DeValue::Array(sources)) = doc.get("source").map(|v| v.get_ref()) else {
        return Ok(());
    };
    for (i, t) in sources.iter().enumerate() {
        let Some(DeValue::Array(a)) = t.get_ref().get("profile").map(|v| v.get_ref()) else {
            continue;
        };
        if a.is_empty() {
            return Err(key_err(file, &format!("source[{i}].profile"), "is empty"));
        }
    }
    Ok(())
}

/// What must hold of a number.
fn number(file: &str, key: &str, x: f64) -> Result<f64, ConfigError> {
    if x.is_finite() {
        Ok(x)
    } else {
        Err(key_err(file, key, format!("expected a number, got {x}")))
    }
}

fn ratio(file: &str, key: &str, x: f64) -> Result<f64, ConfigError> {
    let x = number(file, key, x)?;
    if !(0.0..=1.0).contains(&x) {
        return Err(key_err(file, key, format!("{x} is outside [0, 1]")));
    }
    Ok(x)
}

fn non_empty(file: &str, key: &str, s: &str) -> Result<(), ConfigError> {
    if s.is_empty() {
        return Err(key_err(file, key, "expected a non-empty string, got \"\""));
    }
    Ok(())
}

/// `source[0].documents`, or `source[0].documents[1]` when there are several.
fn list_key(prefix: &str, list: &[String], j: usize) -> String {
    if list.len() > 1 {
        format!("{prefix}[{j}]")
    } else {
        prefix.to_string()
    }
}

impl SelectConfig {
    /// Checks what the types do not: ranges, non-empty names and paths, one kind per filter,
    /// scores only where a profile gives them, and a `general_ratio` the sources can meet.
    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        if self.token_budget == Some(0) {
            return Err(key_err(
                file,
                "token_budget",
                "expected an integer > 0, got 0",
            ));
        }
        if let Some(r) = self.general_ratio {
            ratio(file, "general_ratio", r)?;
        }
        if number(file, "bytes_per_token", self.bytes_per_token)? <= 0.0 {
            return Err(key_err(file, "bytes_per_token", "must be > 0"));
        }
        if self.sources.is_empty() {
            return Err(key_err(
                file,
                "source",
                "missing: give at least one [[source]]",
            ));
        }
        let mut names = HashSet::new();
        for (i, s) in self.sources.iter().enumerate() {
            let p = format!("source[{i}]");
            s.validate(file, &p)?;
            if !names.insert(s.name.as_str()) {
                return Err(key_err(
                    file,
                    &format!("{p}.name"),
                    format!("duplicate source name '{}'", s.name),
                ));
            }
        }
        if let Some(r) = self.general_ratio {
            if r > 0.0 && !self.sources.iter().any(|s| s.general) {
                return Err(key_err(
                    file,
                    "general_ratio",
                    format!("is {r} but no source has `general = true`"),
                ));
            }
            if r < 1.0 && self.sources.iter().all(|s| s.general) {
                return Err(key_err(
                    file,
                    "general_ratio",
                    format!("is {r} but every source is `general = true`"),
                ));
            }
        }
        Ok(())
    }
}

impl SourceConfig {
    fn validate(&self, file: &str, p: &str) -> Result<(), ConfigError> {
        non_empty(file, &format!("{p}.name"), &self.name)?;
        if self.documents.is_empty() {
            return Err(key_err(file, &format!("{p}.documents"), "is empty"));
        }
        for (key, list) in [("documents", &self.documents), ("profile", &self.profile)] {
            for (j, d) in list.iter().enumerate() {
                non_empty(file, &list_key(&format!("{p}.{key}"), list, j), d)?;
            }
        }
        for (j, f) in self.filter.iter().enumerate() {
            f.validate(file, &format!("{p}.filter[{j}]"))?;
        }
        if let Some(w) = &self.weight {
            w.validate(file, &format!("{p}.weight"))?;
        }
        if self.profile.is_empty() {
            let needs = "needs scores: set `profile` for this source";
            if !self.filter.is_empty() {
                return Err(key_err(file, &format!("{p}.filter"), needs));
            }
            if self.weight.is_some() {
                return Err(key_err(file, &format!("{p}.weight"), needs));
            }
        }
        non_empty(file, &format!("{p}.text_field"), &self.text_field)?;
        non_empty(file, &format!("{p}.id_field"), &self.id_field)
    }
}

impl Filter {
    fn validate(&self, file: &str, p: &str) -> Result<(), ConfigError> {
        non_empty(file, &format!("{p}.score"), &self.score)?;
        for (k, v) in [("min", self.min), ("max", self.max)] {
            if let Some(x) = v {
                number(file, &format!("{p}.{k}"), x)?;
            }
        }
        for (k, v) in [
            ("top_fraction", self.top_fraction),
            ("bottom_fraction", self.bottom_fraction),
        ] {
            if let Some(x) = v {
                ratio(file, &format!("{p}.{k}"), x)?;
            }
        }
        let range = self.min.is_some() || self.max.is_some();
        let kinds = [
            range,
            self.top_fraction.is_some(),
            self.bottom_fraction.is_some(),
        ];
        match kinds.iter().filter(|k| **k).count() {
            0 => {
                return Err(key_err(
                    file,
                    p,
                    "needs one of min/max, top_fraction or bottom_fraction",
                ))
            }
            1 => {}
            _ => {
                let given: Vec<&str> = self.bounds().map(|(k, _)| k).collect();
                return Err(key_err(
                    file,
                    p,
                    format!(
                        "gives {}: a filter is a range (min/max) or one fraction; use two filters",
                        given.join(" and ")
                    ),
                ));
            }
        }
        if let (Some(lo), Some(hi)) = (self.min, self.max) {
            if lo > hi {
                return Err(key_err(file, p, format!("min {lo} > max {hi}")));
            }
        }
        Ok(())
    }
}

impl WeightSpec {
    fn validate(&self, file: &str, p: &str) -> Result<(), ConfigError> {
        non_empty(file, &format!("{p}.score"), &self.score)?;
        if let Some([lo, hi]) = self.clip {
            number(file, &format!("{p}.clip[0]"), lo)?;
            number(file, &format!("{p}.clip[1]"), hi)?;
            if lo <= 0.0 || lo > hi {
                return Err(key_err(
                    file,
                    &format!("{p}.clip"),
                    format!("needs 0 < low <= high, got [{lo}, {hi}]"),
                ));
            }
        }
        number(file, &format!("{p}.power"), self.power)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Serde errors, in the config's words

/// A serde error as a [`ConfigError`] naming the key at the error's span.
fn serde_error(text: &str, doc: &Spanned<DeTable>, file: &str, e: &toml::de::Error) -> ConfigError {
    let span = e.span().unwrap_or(0..0);
    let (path, value_span) = key_at(doc.get_ref(), span.start);
    let key = path.join(".").replace(".[", "[");
    let got = value_span
        .and_then(|s| text.get(s))
        .unwrap_or("")
        .trim()
        .to_string();
    let msg = e.message();
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        // "unknown field `k`, expected one of `a`, `b`" or "..., there are no fields".
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let expected: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let parent = path[..path.len().saturating_sub(1)]
            .join(".")
            .replace(".[", "[");
        let key = if parent.is_empty() {
            field.to_string()
        } else {
            format!("{parent}.{field}")
        };
        return key_err(
            file,
            &key,
            format!("unknown key (expected one of: {})", expected.join(", ")),
        );
    }
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        // The span is the table's; find the table at (or above) the key found there.
        let mut path = path;
        while !path.is_empty() && !is_table(doc.get_ref(), &path) {
            path.pop();
        }
        let key = path.join(".").replace(".[", "[");
        let key = if key.is_empty() {
            field.to_string()
        } else {
            format!("{key}.{field}")
        };
        return key_err(file, &key, "missing");
    }
    let serde_expected = ["invalid type: ", "invalid value: ", "invalid length "]
        .iter()
        .any(|p| msg.starts_with(p))
        .then(|| msg.rsplit_once(", expected ").map(|x| x.1))
        .flatten();
    match (expected_at(&path), serde_expected) {
        (Some(want), _) => key_err(file, &key, format!("expected {want}, got {got}")),
        (None, Some(want)) => key_err(file, &key, format!("expected {}, got {got}", plain(want))),
        (None, None) => key_err(file, &key, msg),
    }
}

/// Whether the value at `path` (as [`key_at`] gives it) is a table.
fn is_table(root: &DeTable, path: &[String]) -> bool {
    let mut cur: Option<&DeValue> = None;
    for k in path {
        let next = match (cur, k.strip_prefix('[').and_then(|x| x.strip_suffix(']'))) {
            (None, None) => root.get(k.as_str()),
            (Some(DeValue::Table(t)), None) => t.get(k.as_str()),
            (Some(DeValue::Array(a)), Some(i)) => i.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        };
        match next {
            Some(v) => cur = Some(v.get_ref()),
            None => return false,
        }
    }
    matches!(cur, Some(DeValue::Table(_)))
}

/// What the config expects at a key, in its own words (the old messages), where serde's
/// would be less clear.
fn expected_at(path: &[String]) -> Option<&'static str> {
    let last = |s: &str| path.last().is_some_and(|k| k == s);
    let in_source = path.first().is_some_and(|k| k == "source");
    Some(match path.len() {
        1 if last("seed") => "an integer >= 0",
        1 if last("token_budget") => "an integer > 0",
        1 if last("source") => "[[source]] tables",
        2 if in_source => "a table",
        3 if in_source && last("general") => "true or false",
        3 if in_source && last("filter") => "a list of filters",
        3 if in_source && last("weight") => "a table like { score = \"decision_density\" }",
        4 if in_source && path[2] == "filter" => "a table like { score = \"he_snr\", min = 0.1 }",
        4 if in_source && last("clip") => "[low, high]",
        _ => return None,
    })
}

/// serde's name of a type, as a config's reader would say it.
fn plain(expected: &str) -> &str {
    match expected {
        "f64" | "f32" => "a number",
        "u64" | "u32" | "usize" => "an integer >= 0",
        "i64" | "i32" => "an integer",
        "a boolean" => "true or false",
        "a string" | "a borrowed string" => "a non-empty string",
        "a sequence" => "a list",
        s if s.starts_with("struct ") => "a table",
        s if s.starts_with("an array of length ") => "a list",
        s => s,
    }
}

/// The key path (`["source", "[0]", "filter", "[1]", "min"]`) at byte `pos` of the document,
/// and the span of the value there: the deepest key or value whose span holds `pos`.
pub(crate) fn key_at(root: &DeTable, pos: usize) -> (Vec<String>, Option<std::ops::Range<usize>>) {
    fn in_table(
        t: &DeTable,
        pos: usize,
        path: &mut Vec<String>,
    ) -> Option<Option<std::ops::Range<usize>>> {
        for (k, v) in t {
            path.push(k.get_ref().to_string());
            if let Some(found) = in_value(v, pos, path) {
                return Some(found);
            }
            if k.span().contains(&pos) {
                return Some(Some(v.span()));
            }
            path.pop();
        }
        None
    }
    fn in_value(
        v: &Spanned<DeValue>,
        pos: usize,
        path: &mut Vec<String>,
    ) -> Option<Option<std::ops::Range<usize>>> {
        let inner = match v.get_ref() {
            DeValue::Table(t) => in_table(t, pos, path),
            DeValue::Array(a) => {
                let mut hit = None;
                for (i, x) in a.iter().enumerate() {
                    path.push(format!("[{i}]"));
                    if let Some(found) = in_value(x, pos, path) {
                        hit = Some(found);
                        break;
                    }
                    path.pop();
                }
                hit
            }
            _ => None,
        };
        if inner.is_some() {
            return inner;
        }
        (v.span().contains(&pos) || (v.span().is_empty() && v.span().start == pos))
            .then(|| Some(v.span()))
    }
    let mut path = Vec::new();
    let span = in_table(root, pos, &mut path).flatten();
    (path, span)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const OK: &str = r#"
seed = 3
token_budget = 1000
general_ratio = 0.3
[[source]]
name = "code"
documents = ["a.jsonl"]
profile = "p.parquet"
filter = [{ score = "decision_density", min = 0.02 }, { score = "he_snr", top_fraction = 0.5 }]
weight = { score = "decision_density", clip = [0.01, 0.2] }
[[source]]
name = "general"
general = true
documents = "g.jsonl"
"#;

    #[test]
    fn parses_a_config() {
        let c = parse_config(OK, "c.toml").unwrap();
        assert_eq!(c.seed, 3);
        assert_eq!(c.token_budget, Some(1000));
        assert_eq!(c.general_ratio, Some(0.3));
        assert_eq!(c.sources.len(), 2);
        assert_eq!(c.sources[0].filter[1].top_fraction, Some(0.5));
        assert_eq!(
            c.sources[0].weight.as_ref().unwrap().clip,
            Some([0.01, 0.2])
        );
        assert!(c.sources[1].general);
        assert_eq!(c.sources[1].documents, vec!["g.jsonl"]);
    }

    fn err(text: &str) -> String {
        format!("{:#}", parse_config(text, "c.toml").unwrap_err())
    }

    #[test]
    fn bad_configs_name_the_key() {
        let e = err(&OK.replace("top_fraction = 0.5", "top_fraction = 0.5, min = 1"));
        assert!(
            e.contains("c.toml") && e.contains("source[0].filter[1]") && e.contains("min"),
            "{e}"
        );
        let e = err(&OK.replace("general_ratio = 0.3", "general_ratio = 1.3"));
        assert!(
            e.contains("`general_ratio`") && e.contains("outside [0, 1]"),
            "{e}"
        );
        let e = err(&OK.replace("top_fraction = 0.5", "top_fraction = -0.1"));
        assert!(e.contains("source[0].filter[1].top_fraction"), "{e}");
        let e = err(&OK.replace("token_budget", "token_budgt"));
        assert!(
            e.contains("`token_budgt`") && e.contains("unknown key"),
            "{e}"
        );
        let e = err(&OK.replace("clip = [0.01, 0.2]", "clip = [0.0, 0.2]"));
        assert!(e.contains("source[0].weight.clip"), "{e}");
        let e = err(&OK.replace("general = true", "general = false"));
        assert!(
            e.contains("`general_ratio`") && e.contains("no source"),
            "{e}"
        );
        let e = err(&OK.replace("profile = \"p.parquet\"", ""));
        assert!(
            e.contains("source[0].filter") && e.contains("profile"),
            "{e}"
        );
    }

    /// Errors serde finds (types, unknown and missing keys) name the key like range errors.
    #[test]
    fn type_errors_and_unknown_keys_name_the_key() {
        let cases: &[(&str, &str, &str)] = &[
            ("seed = 3", "seed = -1", "key `seed`: expected an integer >= 0, got -1"),
            ("seed = 3", "seed = \"x\"", "key `seed`: expected an integer >= 0, got \"x\""),
            (
                "token_budget = 1000",
                "token_budget = 0",
                "key `token_budget`: expected an integer > 0, got 0",
            ),
            (
                "general_ratio = 0.3",
                "general_ratio = \"a\"",
                "key `general_ratio`: expected a number, got \"a\"",
            ),
            (
                "min = 0.02",
                "min = 0.02, mni = 1",
                "key `source[0].filter[0].mni`: unknown key (expected one of: score, min, max, top_fraction, bottom_fraction)",
            ),
            (
                "general = true",
                "general = true\nwieght = 1",
                "key `source[1].wieght`: unknown key (expected one of: name, general, documents, profile, filter, weight, text_field, id_field)",
            ),
            (
                "general = true",
                "general = 1",
                "key `source[1].general`: expected true or false, got 1",
            ),
            (
                "name = \"general\"",
                "",
                "key `source[1].name`: missing",
            ),
            (
                "documents = \"g.jsonl\"",
                "",
                "key `source[1].documents`: missing",
            ),
            (
                "documents = \"g.jsonl\"",
                "documents = []",
                "key `source[1].documents`: is empty",
            ),
            (
                "documents = \"g.jsonl\"",
                "documents = [\"g.jsonl\", 3]",
                "key `source[1].documents[1]`: expected a non-empty string, got 3",
            ),
            (
                "documents = \"g.jsonl\"",
                "documents = 3",
                "key `source[1].documents`: expected a path or a list of paths, got 3",
            ),
            (
                "documents = \"g.jsonl\"",
                "documents = \"\"",
                "key `source[1].documents`: expected a non-empty string, got \"\"",
            ),
            (
                "clip = [0.01, 0.2]",
                "clip = [0.01, 0.2, 0.3]",
                "key `source[0].weight.clip`: expected [low, high], got [0.01, 0.2, 0.3]",
            ),
            (
                "weight = { score",
                "weight = 3\nx = { score",
                "key `source[0].weight`: expected a table like { score = \"decision_density\" }, got 3",
            ),
            (
                "filter = [{ score = \"decision_density\", min = 0.02 }, ",
                "filter = [3, ",
                "key `source[0].filter[0]`: expected a table like { score = \"he_snr\", min = 0.1 }, got 3",
            ),
            (
                "min = 0.02",
                "min = nan",
                "key `source[0].filter[0].min`: expected a number, got NaN",
            ),
            (
                "name = \"code\"",
                "name = \"general\"",
                "key `source[1].name`: duplicate source name 'general'",
            ),
            ("seed = 3", "seed = ", "c.toml: not valid TOML"),
        ];
        for (from, to, want) in cases {
            assert!(OK.contains(from), "{from}");
            let e = err(&OK.replacen(from, to, 1));
            assert!(
                e.contains(want) && e.starts_with("c.toml"),
                "want {want}\n got {e}"
            );
        }
        let e = err("seed = 1\n");
        assert!(
            e.contains("key `source`: missing: give at least one [[source]]"),
            "{e}"
        );
        let e = err("source = 3\n");
        assert!(
            e.contains("key `source`: expected [[source]] tables, got 3"),
            "{e}"
        );
    }

    /// The manifest records the parsed config; it reads back as it was.
    #[test]
    fn parsed_config_round_trips_through_json() {
        let c = parse_config(OK, "c.toml").unwrap();
        let json = serde_json::to_string(&c).unwrap();
        let back: SelectConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
        assert!(json.contains("\"sources\":[") && !json.contains("\"top_fraction\":null"));
    }
}
