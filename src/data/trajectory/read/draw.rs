//! Drawing an evaluation set from a trajectory dataset: which records are taken, decided on
//! each raw record before it is parsed, so that a Parquet dataset of thousands of runs becomes
//! the paper's ~500 trajectories in one command (`--where resolved=true --per-instance 1
//! --limit 500`), and what was drawn is written down ([`DrawManifest`]) to be drawn again.
//!
//! Order: `--where` conditions (all must hold), then the per-instance cap (the first N records
//! of each instance, in input order), then the limit. A record that is not valid JSON cannot be
//! tested; it is passed on, so that the reader reports it, and counts towards the limit.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use serde_json::Value;

/// `FIELD=VALUE` or `FIELD!=VALUE` on a record: FIELD is a column name or a dotted path into
/// nested objects (`info.exit_status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub path: Vec<String>,
    pub negated: bool,
    pub value: String,
}

impl FromStr for Condition {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (field, value, negated) = match s.split_once("!=") {
            Some((f, v)) => (f, v, true),
            None => match s.split_once('=') {
                Some((f, v)) => (f, v, false),
                None => {
                    return Err(format!(
                        "'{s}' is not FIELD=VALUE or FIELD!=VALUE (e.g. resolved=true)"
                    ))
                }
            },
        };
        let field = field.trim();
        if field.is_empty() || field.split('.').any(str::is_empty) {
            return Err(format!("'{s}': the field name is empty"));
        }
        Ok(Self {
            path: field.split('.').map(str::to_string).collect(),
            negated,
            value: value.to_string(),
        })
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = if self.negated { "!=" } else { "=" };
        write!(f, "{}{op}{}", self.path.join("."), self.value)
    }
}

impl Serialize for Condition {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The value at a dotted path of a record, if every step is an object key.
fn lookup<'v>(record: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter()
        .try_fold(record, |v, key| v.as_object()?.get(key))
}

/// Whether a JSON value is what the command line wrote: a string equal to it; a boolean
/// `true`/`false` (any case, as Python writes `True`); a number equal to it as a number; `null`
/// for null or a missing field.
fn matches(value: Option<&Value>, written: &str) -> bool {
    match value {
        None | Some(Value::Null) => written == "null",
        Some(Value::String(s)) => s == written,
        Some(Value::Bool(b)) => written.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
        Some(Value::Number(n)) => match (n.as_f64(), written.parse::<f64>()) {
            (Some(a), Ok(b)) => a == b,
            _ => false,
        },
        Some(other) => *other == *written,
    }
}

impl Condition {
    pub fn holds(&self, record: &Value) -> bool {
        matches(lookup(record, &self.path), &self.value) != self.negated
    }
}

/// What to draw from the inputs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DrawSpec {
    /// Conditions every record drawn meets.
    #[serde(rename = "where", skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// At most this many records per instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_instance: Option<usize>,
    /// The field naming a record's instance (dotted path); a record without it is an instance
    /// of its own (its place).
    pub instance_field: String,
    /// At most this many records in all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

impl DrawSpec {
    /// Whether anything is filtered at all.
    pub fn is_active(&self) -> bool {
        !self.conditions.is_empty() || self.per_instance.is_some() || self.limit.is_some()
    }
}

/// One record drawn, as the manifest lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Drawn {
    pub source: String,
    /// Line or row (1-based); 0 for a whole file.
    pub line: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

/// What was drawn and why the rest was not: written beside the results so that the set can be
/// drawn again, or compared with another run's.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DrawManifest {
    #[serde(flatten)]
    pub spec: DrawSpec,
    /// Records read (valid JSON or not) before the limit was reached.
    pub records_seen: u64,
    /// Records a `--where` condition left out.
    pub excluded_by_where: u64,
    /// Records left out because their instance had its share.
    pub excluded_by_per_instance: u64,
    /// Records drawn, in input order (records that turn out not to be readable trajectories
    /// included: the run reports them as skipped).
    pub drawn: Vec<Drawn>,
}

/// The decision on one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Take,
    Leave,
    /// The limit is reached: nothing more is read.
    Stop,
}

/// Draws records one at a time, in input order.
#[derive(Debug, Clone, Default)]
pub struct Draw {
    manifest: DrawManifest,
    instance_path: Vec<String>,
    per_instance_seen: HashMap<String, usize>,
    /// Per condition: whether any record had its field (a typo'd field excludes everything).
    field_found: Vec<bool>,
}

impl Draw {
    pub fn new(spec: DrawSpec) -> Self {
        Self {
            instance_path: spec.instance_field.split('.').map(str::to_string).collect(),
            field_found: vec![false; spec.conditions.len()],
            manifest: DrawManifest {
                spec,
                ..DrawManifest::default()
            },
            per_instance_seen: HashMap::new(),
        }
    }

    /// Decides on the record at `source:line`: `None` for one that is not valid JSON (passed on
    /// to be reported, counted towards the limit only).
    pub fn decide(&mut self, record: Option<&Value>, source: &str, line: u64) -> Verdict {
        let m = &mut self.manifest;
        if m.spec.limit.is_some_and(|limit| m.drawn.len() >= limit) {
            return Verdict::Stop;
        }
        m.records_seen += 1;
        let Some(record) = record else {
            m.drawn.push(Drawn {
                source: source.to_string(),
                line,
                instance: None,
            });
            return Verdict::Take;
        };
        for (found, c) in self.field_found.iter_mut().zip(&m.spec.conditions) {
            *found |= lookup(record, &c.path).is_some();
        }
        if !m.spec.conditions.iter().all(|c| c.holds(record)) {
            m.excluded_by_where += 1;
            return Verdict::Leave;
        }
        let instance = lookup(record, &self.instance_path).and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        });
        if let Some(cap) = m.spec.per_instance {
            let key = instance
                .clone()
                .unwrap_or_else(|| format!("{source}:{line}"));
            let seen = self.per_instance_seen.entry(key).or_insert(0);
            if *seen >= cap {
                m.excluded_by_per_instance += 1;
                return Verdict::Leave;
            }
            *seen += 1;
        }
        m.drawn.push(Drawn {
            source: source.to_string(),
            line,
            instance,
        });
        Verdict::Take
    }

    pub fn manifest(&self) -> &DrawManifest {
        &self.manifest
    }

    /// The fields of `--where` conditions that no record read so far has: most likely a typo,
    /// since each such condition compares every record with `null`.
    pub fn absent_fields(&self) -> Vec<String> {
        self.field_found
            .iter()
            .zip(&self.manifest.spec.conditions)
            .filter(|(found, _)| !**found)
            .map(|(_, c)| c.path.join("."))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cond(s: &str) -> Condition {
        s.parse().unwrap()
    }

    #[test]
    fn conditions_parse_and_match_json_values_as_written() {
        assert_eq!(
            cond("info.exit_status=submitted"),
            Condition {
                path: vec!["info".into(), "exit_status".into()],
                negated: false,
                value: "submitted".into()
            }
        );
        assert!(cond("a!=b").negated);
        assert_eq!(cond("a=b=c").value, "b=c");
        assert!("resolved".parse::<Condition>().is_err());
        assert!("=x".parse::<Condition>().is_err());
        assert!("a..b=x".parse::<Condition>().is_err());

        let r = json!({"resolved": true, "target": "True", "n": 3, "info": {"exit_status": "submitted"}, "none": null});
        assert!(cond("resolved=true").holds(&r));
        assert!(cond("resolved=True").holds(&r));
        assert!(!cond("resolved=false").holds(&r));
        assert!(cond("resolved!=false").holds(&r));
        // A string is compared as written: "True" is not "true".
        assert!(cond("target=True").holds(&r));
        assert!(!cond("target=true").holds(&r));
        assert!(cond("n=3").holds(&r) && cond("n=3.0").holds(&r) && !cond("n=4").holds(&r));
        assert!(cond("info.exit_status=submitted").holds(&r));
        assert!(!cond("info.exit_status=early_exit").holds(&r));
        // Missing and null fields are `null`; a path through a non-object is missing.
        assert!(cond("none=null").holds(&r) && cond("missing=null").holds(&r));
        assert!(cond("n.x=null").holds(&r));
        assert!(cond("missing!=x").holds(&r));
    }

    fn spec(conditions: &[&str], per_instance: Option<usize>, limit: Option<usize>) -> DrawSpec {
        DrawSpec {
            conditions: conditions.iter().map(|c| cond(c)).collect(),
            per_instance,
            instance_field: "instance_id".into(),
            limit,
        }
    }

    #[test]
    fn where_then_per_instance_then_limit_in_input_order() {
        let records = [
            json!({"instance_id": "a", "resolved": true}),
            json!({"instance_id": "a", "resolved": true}),
            json!({"instance_id": "b", "resolved": false}),
            json!({"instance_id": "b", "resolved": true}),
            json!({"instance_id": "c", "resolved": true}),
            json!({"resolved": true}),
        ];
        let run = |s: DrawSpec| {
            let mut d = Draw::new(s);
            let verdicts: Vec<Verdict> = records
                .iter()
                .enumerate()
                .map(|(i, r)| d.decide(Some(r), "set.jsonl", i as u64 + 1))
                .collect();
            (verdicts, d.manifest().clone())
        };
        use Verdict::*;
        let mut d = Draw::new(spec(&["resolved=true", "resovled=true"], None, None));
        d.decide(Some(&records[0]), "set.jsonl", 1);
        assert_eq!(d.absent_fields(), ["resovled"]);

        let (v, m) = run(spec(&["resolved=true"], Some(1), None));
        assert_eq!(v, [Take, Leave, Leave, Take, Take, Take]);
        assert_eq!((m.excluded_by_where, m.excluded_by_per_instance), (1, 1));
        let lines: Vec<u64> = m.drawn.iter().map(|d| d.line).collect();
        assert_eq!(lines, [1, 4, 5, 6]);
        assert_eq!(m.drawn[1].instance.as_deref(), Some("b"));
        // A record without the instance field is an instance of its own.
        assert_eq!(m.drawn[3].instance, None);

        let (v, m) = run(spec(&[], Some(1), Some(2)));
        assert_eq!(v, [Take, Leave, Take, Stop, Stop, Stop]);
        assert_eq!(m.records_seen, 3);

        // No options: everything is taken.
        let (v, _) = run(spec(&[], None, None));
        assert!(v.iter().all(|&x| x == Take));
    }

    #[test]
    fn unparsable_records_are_passed_on_and_count_towards_the_limit() {
        let mut d = Draw::new(spec(&["resolved=true"], None, Some(1)));
        assert_eq!(d.decide(None, "x.jsonl", 1), Verdict::Take);
        assert_eq!(
            d.decide(Some(&json!({"resolved": true})), "x.jsonl", 2),
            Verdict::Stop
        );
    }
}
