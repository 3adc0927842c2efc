//! A fuzzing harness for the parsers of untrusted input (issue 13), on proptest: mutated valid
//! GGUF headers, trajectory files of every format (mutated real-shaped JSON, byte edits, gzip),
//! arbitrary JSON values given to each trajectory parser, document files, `select` configs and
//! `track` manifests. The property is always the same: the parser returns `Ok` or a typed
//! error; it never panics (proptest fails the case, shrinks it and prints it).
//!
//! Bounded for CI: each property runs proptest's default 256 cases (`PROPTEST_CASES=N` runs N),
//! the whole harness in a few seconds; no failure files are written.

use std::io::Write;
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Map, Value};

use hesnr::data::trajectory::read::{
    parse_chat, parse_openhands, parse_swe_agent, read_trajectories, TrajectoryFormat,
};

/// The harness's proptest settings: default case count (`PROPTEST_CASES` overrides it), no
/// regression files in the source tree.
fn config() -> Config {
    Config {
        failure_persistence: None,
        ..Config::default()
    }
}

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/trajectories");

/// The example trajectories: (file name, bytes).
fn seeds() -> &'static [(String, Vec<u8>)] {
    static SEEDS: std::sync::OnceLock<Vec<(String, Vec<u8>)>> = std::sync::OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut out = Vec::new();
        for sub in ["", "swe-agent", "openhands"] {
            let dir = Path::new(EXAMPLES).join(sub);
            for e in std::fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                if p.is_file()
                    && [".jsonl", ".traj", ".json"]
                        .iter()
                        .any(|x| name.ends_with(x))
                {
                    out.push((name, std::fs::read(&p).unwrap()));
                }
            }
        }
        out.sort();
        assert!(out.len() >= 5, "{EXAMPLES}");
        out
    })
}

// ---------------------------------------------------------------------------------------------
// Byte edits

/// One edit of a byte string; positions are taken modulo its length.
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Truncate(usize),
    Delete(usize, usize),
    Insert(usize, Vec<u8>),
    /// A token that matters to the format (a bracket, a quote, a huge number, ...).
    Token(usize, &'static str),
    /// Eight bytes of a little-endian u64 written over (lengths and counts in binary formats).
    Word(usize, u64),
    /// A range repeated in place (deep nesting, repeated keys).
    Repeat(usize, usize, usize),
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ",",
    ":",
    "=",
    "\n",
    "\\",
    "\\u",
    "\\ud800",
    "null",
    "true",
    "-1",
    "0",
    "1e308",
    "-1e308",
    "1e999",
    "nan",
    "inf",
    "-inf",
    "18446744073709551615",
    "-9223372036854775809",
    "0.0000000001",
    "[[",
    "]]",
    "[[source]]",
    "[[checkpoint]]",
    "{\"role\": \"assistant\"}",
    "\"tool_calls\": [{}]",
    "\"content\": []",
    "<function=",
    "</function>",
    "```",
    "```bash\n",
    "\u{0}",
    "\u{202e}",
    "\u{feff}",
    "é",
    "\u{10ffff}",
];

fn edit() -> impl Strategy<Value = Edit> {
    let pos = 0usize..1 << 20;
    prop_oneof![
        4 => (pos.clone(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        1 => pos.clone().prop_map(Edit::Truncate),
        2 => (pos.clone(), 1usize..64).prop_map(|(i, n)| Edit::Delete(i, n)),
        2 => (pos.clone(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, b)| Edit::Insert(i, b)),
        4 => (pos.clone(), prop::sample::select(TOKENS)).prop_map(|(i, t)| Edit::Token(i, t)),
        2 => (pos.clone(), prop_oneof![any::<u64>(), Just(u64::MAX), Just(1 << 32), Just(1 << 40), 0u64..1024]).prop_map(|(i, v)| Edit::Word(i, v)),
        1 => (pos.clone(), 1usize..32, 2usize..64).prop_map(|(i, n, k)| Edit::Repeat(i, n, k)),
    ]
}

fn apply(bytes: &mut Vec<u8>, edits: &[Edit]) {
    for e in edits {
        let len = bytes.len();
        let at = |i: usize| if len == 0 { 0 } else { i % (len + 1) };
        match e {
            Edit::Set(i, b) if len > 0 => bytes[i % len] = *b,
            Edit::Set(..) => {}
            Edit::Truncate(i) => bytes.truncate(at(*i)),
            Edit::Delete(i, n) => {
                let i = at(*i);
                bytes.drain(i..(i + n).min(len));
            }
            Edit::Insert(i, b) => {
                let i = at(*i);
                bytes.splice(i..i, b.iter().copied());
            }
            Edit::Token(i, t) => {
                let i = at(*i);
                bytes.splice(i..i, t.bytes());
            }
            Edit::Word(i, v) if len >= 8 => {
                let i = i % (len - 7);
                bytes[i..i + 8].copy_from_slice(&v.to_le_bytes());
            }
            Edit::Word(..) => {}
            Edit::Repeat(i, n, k) => {
                let i = at(*i);
                let end = (i + n).min(len);
                let piece = bytes[i..end].to_vec();
                let copies: Vec<u8> = std::iter::repeat_n(piece, *k).flatten().collect();
                bytes.splice(i..end, copies);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JSON values

/// Keys the trajectory formats look at, so that arbitrary objects often reach deep code.
const KEYS: &[&str] = &[
    "id",
    "instance_id",
    "trajectory_id",
    "messages",
    "role",
    "content",
    "text",
    "type",
    "tool_calls",
    "function",
    "name",
    "arguments",
    "tool_call_id",
    "reasoning_content",
    "history",
    "trajectory",
    "events",
    "info",
    "action",
    "observation",
    "thought",
    "response",
    "query",
    "state",
    "source",
    "message",
    "args",
    "extras",
    "tool_call_metadata",
    "model_response",
    "choices",
    "command",
    "code",
    "metadata",
    "exit_status",
    "submission",
    "agent",
    "is_demo",
    "image_url",
    "cause",
    "observation_type",
    "llm_metrics",
    "timestamp",
];

const STRINGS: &[&str] = &[
    "system",
    "user",
    "assistant",
    "tool",
    "function",
    "agent",
    "environment",
    "run",
    "message",
    "finish",
    "think",
    "run_ipython",
    "edit",
    "read",
    "ls -la",
    "THOUGHT: x\n```bash\nls\n```",
    "<function=bash>\n<parameter=command>ls</parameter>\n</function>",
    "{\"command\": \"ls\"}",
    "{\"command\": ",
    "",
    " ",
    "\n",
    "\u{0}",
    "é\u{202e}",
    "```",
    "```bash\nls\n```\n```bash\npwd\n```",
];

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        prop::sample::select(STRINGS).prop_map(Value::from),
        prop::sample::select(KEYS).prop_map(Value::from),
        ".{0,24}".prop_map(Value::from),
    ]
}

/// Arbitrary JSON, objects keyed mostly by the formats' own keys.
fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(6, 96, 8, |inner| {
        let key =
            prop_oneof![4 => prop::sample::select(KEYS).prop_map(str::to_string), 1 => ".{0,8}"];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

/// A structural edit of a JSON tree: the node at a path (chosen by the numbers) replaced,
/// removed, or given another type.
#[derive(Debug, Clone)]
enum TreeEdit {
    Replace(Vec<usize>, Value),
    Remove(Vec<usize>),
    Wrap(Vec<usize>),
    Unwrap(Vec<usize>),
}

fn tree_edit() -> impl Strategy<Value = TreeEdit> {
    let path = prop::collection::vec(any::<usize>(), 0..10);
    prop_oneof![
        3 => (path.clone(), json_value()).prop_map(|(p, v)| TreeEdit::Replace(p, v)),
        2 => path.clone().prop_map(TreeEdit::Remove),
        1 => path.clone().prop_map(TreeEdit::Wrap),
        1 => path.prop_map(TreeEdit::Unwrap),
    ]
}

/// The node a path of choices leads to (each number picks a child modulo the count; the walk
/// stops early at a leaf).
fn node<'a>(v: &'a mut Value, path: &[usize]) -> &'a mut Value {
    let Some((&i, rest)) = path.split_first() else {
        return v;
    };
    let n = match &*v {
        Value::Array(a) => a.len(),
        Value::Object(o) => o.len(),
        _ => 0,
    };
    if n == 0 {
        return v;
    }
    let child = match v {
        Value::Array(a) => &mut a[i % n],
        Value::Object(o) => o.values_mut().nth(i % n).unwrap(),
        _ => unreachable!(),
    };
    node(child, rest)
}

fn apply_tree(v: &mut Value, edits: &[TreeEdit]) {
    for e in edits {
        match e {
            TreeEdit::Replace(p, new) => *node(v, p) = new.clone(),
            TreeEdit::Remove(p) => {
                // Remove a child of the node at the path.
                let (last, parent) = p.split_last().map_or((0, &p[..]), |(l, r)| (*l, r));
                match node(v, parent) {
                    Value::Array(a) if !a.is_empty() => {
                        let n = a.len();
                        a.remove(last % n);
                    }
                    Value::Object(o) if !o.is_empty() => {
                        let k = o.keys().nth(last % o.len()).unwrap().clone();
                        o.remove(&k);
                    }
                    _ => {}
                }
            }
            TreeEdit::Wrap(p) => {
                let n = node(v, p);
                *n = Value::Array(vec![n.take()]);
            }
            TreeEdit::Unwrap(p) => {
                let n = node(v, p);
                let inner = match n {
                    Value::Array(a) if !a.is_empty() => a.swap_remove(0),
                    Value::Object(o) if !o.is_empty() => o.values().next().unwrap().clone(),
                    _ => continue,
                };
                *n = inner;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Trajectory readers

/// A trajectory file to write: a seed with its JSON edited as a tree (per line for JSON
/// Lines), then its bytes edited, maybe gzipped.
#[derive(Debug, Clone)]
struct TrajCase {
    seed: usize,
    tree: Vec<TreeEdit>,
    bytes: Vec<Edit>,
    gzip: bool,
    format: TrajectoryFormat,
    /// The name it is written under (its extension steers the reader).
    ext: &'static str,
}

fn traj_case() -> impl Strategy<Value = TrajCase> {
    (
        any::<usize>(),
        prop::collection::vec(tree_edit(), 0..4),
        prop::collection::vec(edit(), 0..4),
        prop::bool::weighted(0.15),
        prop::sample::select(
            &[
                TrajectoryFormat::Auto,
                TrajectoryFormat::Auto,
                TrajectoryFormat::Chat,
                TrajectoryFormat::SweAgent,
                TrajectoryFormat::OpenHands,
            ][..],
        ),
        prop::sample::select(&["same", "same", ".jsonl", ".json", ".traj", ".txt"][..]),
    )
        .prop_map(|(seed, tree, bytes, gzip, format, ext)| TrajCase {
            seed,
            tree,
            bytes,
            gzip,
            format,
            ext,
        })
}

fn traj_bytes(case: &TrajCase) -> (String, Vec<u8>) {
    let (name, seed) = &seeds()[case.seed % seeds().len()];
    let mut bytes = if name.ends_with(".jsonl") {
        let text = String::from_utf8(seed.clone()).unwrap();
        let mut out = String::new();
        for (i, line) in text.lines().enumerate() {
            let mut v: Value = serde_json::from_str(line).unwrap();
            // Spread the edits over the lines.
            let mine: Vec<TreeEdit> = case.tree.iter().skip(i % 2).step_by(2).cloned().collect();
            apply_tree(&mut v, &mine);
            out.push_str(&v.to_string());
            out.push('\n');
        }
        out.into_bytes()
    } else {
        let mut v: Value = serde_json::from_slice(seed).unwrap();
        apply_tree(&mut v, &case.tree);
        serde_json::to_vec_pretty(&v).unwrap()
    };
    apply(&mut bytes, &case.bytes);
    if case.gzip {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&bytes).unwrap();
        bytes = gz.finish().unwrap();
    }
    let ext = if case.ext == "same" {
        Path::new(name)
            .extension()
            .map_or(String::new(), |e| format!(".{}", e.to_string_lossy()))
    } else {
        case.ext.to_string()
    };
    (format!("case{ext}"), bytes)
}

proptest! {
    #![proptest_config(config())]

    /// Mutated real trajectory files, read as `eval` reads them: every record is a trajectory
    /// or a typed error, never a panic.
    #[test]
    fn trajectory_files_never_panic(case in traj_case()) {
        let dir = tempfile::tempdir().unwrap();
        let (name, bytes) = traj_bytes(&case);
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let stream = read_trajectories(&[path], case.format).expect("the file exists");
        for item in stream.take(10_000) {
            if let Err(e) = item {
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }

    /// Arbitrary JSON given to each parser directly.
    #[test]
    fn trajectory_parsers_take_any_json(v in json_value()) {
        let _ = parse_chat(&v, "fuzz.jsonl", 1);
        let _ = parse_swe_agent(&v, "fuzz.traj", 0);
        let _ = parse_openhands(&v, "fuzz.json", 0);
    }

    /// Real trajectories with structural edits, given to each parser directly (the edits keep
    /// most of the shape, so they reach deeper than arbitrary JSON).
    #[test]
    fn trajectory_parsers_take_edited_trajectories(seed in any::<usize>(), edits in prop::collection::vec(tree_edit(), 1..6)) {
        let (name, bytes) = &seeds()[seed % seeds().len()];
        let first = if name.ends_with(".jsonl") {
            bytes.split(|&b| b == b'\n').nth(seed / seeds().len() % 3).unwrap_or(bytes)
        } else {
            bytes
        };
        let mut v: Value = serde_json::from_slice(first).unwrap();
        apply_tree(&mut v, &edits);
        let _ = parse_chat(&v, "fuzz.jsonl", 1);
        let _ = parse_swe_agent(&v, "fuzz.traj", 0);
        let _ = parse_openhands(&v, "fuzz.json", 0);
    }
}

// ---------------------------------------------------------------------------------------------
// Documents

proptest! {
    #![proptest_config(config())]

    /// JSON Lines, JSON arrays and text, edited, maybe gzipped or zstd-compressed, read as
    /// `score` reads them.
    #[test]
    fn document_files_never_panic(
        records in prop::collection::vec(json_value(), 0..6),
        array in any::<bool>(),
        edits in prop::collection::vec(edit(), 0..6),
        compress in 0u8..4,
        ext in prop::sample::select(&[".jsonl", ".json", ".txt", ".parquet"][..]),
    ) {
        let mut bytes = if array {
            Value::Array(records).to_string().into_bytes()
        } else {
            records.iter().map(|r| r.to_string() + "\n").collect::<String>().into_bytes()
        };
        apply(&mut bytes, &edits);
        let bytes = match compress {
            1 => {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(&bytes).unwrap();
                gz.finish().unwrap()
            }
            2 => zstd::encode_all(&bytes[..], 1).unwrap(),
            _ => bytes,
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("docs{ext}"));
        std::fs::write(&path, &bytes).unwrap();
        let opts = hesnr::data::ReaderOptions::default();
        for item in hesnr::data::read_documents(std::slice::from_ref(&path), &opts).unwrap().take(10_000) {
            let _ = item;
        }
        for item in hesnr::data::records::read_records(&path, &opts).take(10_000) {
            let _ = item;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// GGUF headers

/// A valid GGUF file with every metadata type, arrays, a chat template and two tensors.
fn gguf_seed() -> &'static [u8] {
    use hesnr::gguf::{GgufValue as V, GgufWriter, TensorData};
    static SEED: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    SEED.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("seed.gguf");
        let mut w = GgufWriter::new();
        w.add_kv("general.architecture", V::String("llama".into()))
            .add_kv("general.alignment", V::U32(32))
            .add_kv("llama.context_length", V::U32(128))
            .add_kv("llama.embedding_length", V::U64(8))
            .add_kv("x.f32", V::F32(0.5))
            .add_kv("x.f64", V::F64(-2.0))
            .add_kv("x.i8", V::I8(-1))
            .add_kv("x.bool", V::Bool(true))
            .add_kv(
                "tokenizer.chat_template",
                V::String("{% for m in messages %}{{ m.content }}{% endfor %}".into()),
            )
            .add_kv(
                "tokenizer.ggml.tokens",
                V::Array((0..16).map(|i| V::String(format!("t{i}"))).collect()),
            )
            .add_kv(
                "tokenizer.ggml.scores",
                V::Array((0..16).map(|i| V::F32(i as f32)).collect()),
            )
            .add_tensor("a.weight", &[8, 2], TensorData::F32(vec![0.25; 16]))
            .add_tensor("b.weight", &[4], TensorData::F32(vec![1.0; 4]));
        w.write_to(&p).unwrap();
        std::fs::read(&p).unwrap()
    })
}

proptest! {
    #![proptest_config(config())]

    /// Mutated GGUF headers (edits land in the header, where every byte matters; planted
    /// counts and lengths), read by the defensive reader: `Ok` or a `GgufError`.
    #[test]
    fn gguf_headers_never_panic(edits in prop::collection::vec(edit(), 1..8)) {
        let mut bytes = gguf_seed().to_vec();
        // Keep most edits in the header: positions modulo the header's length.
        let header = bytes.len() - 32 * 3;
        let edits: Vec<Edit> = edits
            .into_iter()
            .map(|e| match e {
                Edit::Set(i, b) => Edit::Set(i % header, b),
                Edit::Word(i, v) => Edit::Word(i % header, v),
                other => other,
            })
            .collect();
        apply(&mut bytes, &edits);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.gguf");
        std::fs::write(&p, &bytes).unwrap();
        let _ = hesnr::gguf::read_gguf(&p);
    }
}

// ---------------------------------------------------------------------------------------------
// select configs and track manifests

const SELECT_SEED: &str = r#"seed = 7
token_budget = 1000
general_ratio = 0.3
bytes_per_token = 3.5

[[source]]
name = "code"
documents = ["data/code/*.jsonl", "more.jsonl"]
profile = "p.parquet"
filter = [{ score = "decision_density", min = 0.02 }, { score = "he_snr", top_fraction = 0.5 }]
weight = { score = "decision_density", clip = [0.01, 0.2] }
text_field = "content"

[[source]]
name = "web"
general = true
documents = "web.jsonl"
profile = "w.parquet"
filter = [{ score = "ppl", max = 100.0 }, { score = "ppl", bottom_fraction = 0.9 }]
"#;

const MANIFEST_TOML: &str = "title = \"run\"\n[[checkpoint]]\nmodel = \"a.gguf\"\nstep = 100\nstage = \"32k\"\n[checkpoint.scores]\nswe = 0.1\n\n[[checkpoint]]\nmodel = \"/abs/b.gguf\"\nname = \"final\"\nurl = \"http://127.0.0.1:1/v1\"\nserved_model = \"m\"\n";
const MANIFEST_CSV: &str = "model,step,stage,name,url,served_model,swe\na.gguf,100,32k,,,,0.1\n/abs/b.gguf,,,final,http://127.0.0.1:1/v1,m,\n";

proptest! {
    #![proptest_config(config())]

    /// Edited `select` configs: a config or a `ConfigError`, never a panic (the error's
    /// message, which points into the text, is built too).
    #[test]
    fn select_configs_never_panic(edits in prop::collection::vec(edit(), 1..6)) {
        let mut bytes = SELECT_SEED.as_bytes().to_vec();
        apply(&mut bytes, &edits);
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = hesnr::pipeline::select::parse_config(&text, "fuzz.toml") {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    /// Edited `track` manifests, TOML and CSV, read from a file as `track` reads them.
    #[test]
    fn track_manifests_never_panic(edits in prop::collection::vec(edit(), 1..6), csv in any::<bool>()) {
        let (seed, name) = if csv { (MANIFEST_CSV, "m.csv") } else { (MANIFEST_TOML, "m.toml") };
        let mut bytes = seed.as_bytes().to_vec();
        apply(&mut bytes, &edits);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::write(&p, &bytes).unwrap();
        if let Err(e) = hesnr::pipeline::track::read_manifest(&p) {
            prop_assert!(!e.to_string().is_empty());
        }
    }
}

/// The seeds themselves are read without error: the mutations start from valid inputs.
#[test]
fn the_seeds_are_valid() {
    hesnr::pipeline::select::parse_config(SELECT_SEED, "seed.toml").unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [("m.toml", MANIFEST_TOML), ("m.csv", MANIFEST_CSV)] {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        hesnr::pipeline::track::read_manifest(&p).unwrap();
    }
    let p = dir.path().join("m.gguf");
    std::fs::write(&p, gguf_seed()).unwrap();
    hesnr::gguf::read_gguf(&p).unwrap();
}
