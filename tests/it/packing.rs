//! Short documents packed into one decode batch (issue 16): the same rows, in the same order,
//! with the same skips, as one document at a time, for the flow in-process and for `score` and
//! `profile` end to end.

use std::path::{Path, PathBuf};

use crate::common::{default_tiny, ok, run_hesnr as hesnr, s, scratch, strided, CODE};
use crate::profile_cli::read_rows;
use hesnr::data::{Document, RecordError, RecordErrorKind};
use hesnr::engine::llama::{LlamaCppBackend, LlamaOptions};
use hesnr::engine::pack::plan;
use hesnr::engine::{Backend, EngineError};
use hesnr::metrics::{MetricConfig, PositionStats};
use hesnr::pipeline::run::{Flow, Outcome, Stopped};
use hesnr::pipeline::score::{score_text, ScoreSettings, ScoredDocument};
use serde_json::Value;

/// The relative difference allowed between a packed and an unpacked result: the attention
/// tolerance of docs/method.md ("Packing short documents").
const TOLERANCE: f64 = 1e-5;

fn close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() <= TOLERANCE * a.abs().max(b.abs()).max(1.0),
        "{what}: {a} packed vs {b} alone"
    );
}

fn same_stats(a: &[PositionStats], b: &[PositionStats], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: positions");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let at = format!("{what} position {}", i + 1);
        assert_eq!(x.true_id, y.true_id, "{at}");
        close(x.lse, y.lse, &format!("{at} lse"));
        close(
            x.true_logit as f64,
            y.true_logit as f64,
            &format!("{at} logit"),
        );
        close(
            x.entropy.unwrap(),
            y.entropy.unwrap(),
            &format!("{at} entropy"),
        );
    }
}

/// Documents of mixed lengths: a few tokens, tens of tokens (several to a pack of 64 tokens),
/// longer than the pack (alone), longer than the window (two strided windows); one marked to
/// fail after its forward pass, one before it.
fn documents() -> Vec<(String, String)> {
    let mut docs = Vec::new();
    for i in 0..14 {
        let text = match i {
            3 => CODE.repeat(2),
            7 => CODE.repeat(6),
            5 => "FAIL after scoring: x = 1".to_string(),
            9 => "FAIL before scoring".to_string(),
            _ => format!("x{i} = {}\n", "y + ".repeat(1 + (i * 5) % 17)),
        };
        docs.push((format!("d{i}"), text));
    }
    docs
}

fn load(pack: usize) -> LlamaCppBackend {
    LlamaCppBackend::load(
        &default_tiny(),
        &LlamaOptions {
            threads: Some(2),
            window: Some(256),
            ubatch: 64,
            pack,
            ..Default::default()
        },
    )
    .expect("load tiny model")
}

/// What the flow's sink is given, document after document.
enum Seen {
    Done(String, Vec<PositionStats>),
    Skipped(String, String),
}

fn run_flow(pack: usize) -> Vec<Seen> {
    let mut backend = load(pack);
    let settings = ScoreSettings {
        metrics: MetricConfig::default(),
        windowing: strided(256, 128),
    };
    let mut items: Vec<Result<Document, RecordError>> = documents()
        .into_iter()
        .enumerate()
        .map(|(i, (id, text))| {
            Ok(Document {
                id,
                text,
                source: "in.jsonl".into(),
                line: i as u64 + 1,
                metadata: None,
            })
        })
        .collect();
    items.insert(
        4,
        Err(RecordError {
            source: "in.jsonl".into(),
            line: 99,
            field: Some("text".into()),
            kind: RecordErrorKind::MissingField,
            message: "no text".into(),
        }),
    );
    let work = |b: &mut [&mut dyn Backend], d: &Document| {
        if d.text == "FAIL before scoring" {
            return Some(Err(EngineError::Config("failed before".into())));
        }
        let scored = score_text(&mut *b[0], &d.text, &settings);
        Some(match scored {
            Ok(_) if d.text.starts_with("FAIL") => Err(EngineError::Config("failed after".into())),
            other => other,
        })
    };
    let mut seen = Vec::new();
    let mut flow = Flow::new(&());
    flow.drive(
        &mut [&mut backend as &mut dyn Backend],
        items.into_iter(),
        work,
        |_, d: Document, o: Outcome<ScoredDocument>| -> Result<(), Stopped> {
            seen.push(match o {
                Outcome::Done(s) => Seen::Done(d.id, s.positions),
                Outcome::Skipped(why) => Seen::Skipped(d.id, why),
            });
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(
        flow.log.skips.count, 3,
        "one unreadable record, two failures"
    );
    // Packed: what the planner makes of the forward passes of the documents that reach one
    // (all but the one failing before), each document's tokens less the last (the one longer
    // than the window asks for its first window: too long for a pack either way).
    let inputs: Vec<usize> = documents()
        .iter()
        .filter(|(_, text)| text != "FAIL before scoring")
        .map(|(_, text)| backend.tokenize(text).unwrap().ids.len() - 1)
        .collect();
    assert!(inputs.iter().any(|&n| n > 64) && inputs.iter().filter(|&&n| n <= 32).count() > 4);
    let expected = match backend.pack_limits() {
        Some(limits) => plan(&inputs, limits).iter().map(Vec::len).sum::<usize>(),
        None => 0,
    };
    assert_eq!(backend.documents_packed(), expected as u64);
    assert_eq!(expected > 0, pack > 1);
    seen
}

#[test]
fn the_flow_packed_gives_the_rows_skips_and_order_of_one_at_a_time() {
    let packed = run_flow(16);
    let alone = run_flow(1);
    // Every document reaches the sink, done or skipped; the unreadable record is only counted.
    assert_eq!(packed.len(), 14);
    assert_eq!(packed.len(), alone.len());
    let ids: Vec<String> = documents().into_iter().map(|(id, _)| id).collect();
    let mut ids = ids.iter().filter(|id| *id != "d5" && *id != "d9");
    for (p, a) in packed.iter().zip(&alone) {
        match (p, a) {
            (Seen::Done(ip, sp), Seen::Done(ia, sa)) => {
                assert_eq!(ip, ia);
                assert_eq!(Some(ip), ids.next(), "input order");
                same_stats(sp, sa, ip);
            }
            (Seen::Skipped(ip, wp), Seen::Skipped(ia, wa)) => {
                assert_eq!((ip, wp), (ia, wa));
            }
            _ => panic!("a document done one way and skipped the other"),
        }
    }
    let skipped: Vec<&str> = packed
        .iter()
        .filter_map(|s| match s {
            Seen::Skipped(_, why) => Some(why.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        skipped,
        [
            "in.jsonl:6: document 'd5': failed after",
            "in.jsonl:10: document 'd9': failed before"
        ]
    );
}

#[test]
fn packed_documents_match_a_backend_that_never_packs() {
    // The backend alone: a pack of documents planned, then asked for one after another in
    // another order, against each alone on a backend without packing.
    let mut packing = load(16);
    let mut single = load(1);
    let texts = [
        "a = 1\n",
        "def f(x):\n    return x\n",
        "b = [1, 2, 3]\n",
        CODE,
    ];
    let tokens: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| packing.tokenize(t).unwrap().ids)
        .collect();
    packing.plan(
        tokens
            .iter()
            .map(|t| hesnr::engine::pack::Request {
                tokens: t.clone(),
                targets: 1..t.len(),
                k: 10,
            })
            .collect(),
    );
    for i in [2, 0, 3, 1] {
        let t = &tokens[i];
        let p = packing.evaluate(t, 1..t.len(), 10).unwrap();
        let a = single.evaluate(t, 1..t.len(), 10).unwrap();
        same_stats(&p, &a, texts[i]);
    }
    assert!(packing.documents_packed() >= 2, "a pack was run");
}

fn write_corpus(dir: &Path) -> PathBuf {
    let mut s = String::new();
    for (i, (id, text)) in documents().into_iter().enumerate() {
        if i == 4 {
            s.push_str("{\"id\": \"broken\", \"text\": \n");
        }
        // Whole-CLI runs have no failing work: a marked document is an ordinary one there.
        s.push_str(&serde_json::json!({"id": id, "text": text}).to_string());
        s.push('\n');
    }
    let p = dir.join("mixed.jsonl");
    std::fs::write(&p, s).unwrap();
    p
}

/// Two JSON values of a row: equal, or numbers within the tolerance (null where undefined).
fn same_value(p: &Value, a: &Value, what: &str) {
    match (p.as_f64(), a.as_f64()) {
        (Some(x), Some(y)) => close(x, y, what),
        _ => assert_eq!(p, a, "{what}"),
    }
}

#[test]
fn score_and_profile_packed_match_one_at_a_time() {
    let dir = scratch().join("cli");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let corpus = write_corpus(&dir);
    let model = default_tiny().to_string_lossy().into_owned();
    let common = ["-m", &model, "-t", "2", "--window", "256", "--ubatch", "64"];
    let mut rows = Vec::new();
    for pack in ["16", "1"] {
        let out = dir.join(format!("score-{pack}.jsonl"));
        let mut args = vec!["score", s(&corpus), "-o", s(&out), "--json", "--pack", pack];
        args.extend(common);
        let run = hesnr(&args, &[]);
        ok(&run);
        let summary: Value = serde_json::from_slice(&run.stdout).unwrap();
        assert_eq!(summary["skipped"], 1, "{summary:#}");
        let lines: Vec<Value> = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        rows.push(lines);
    }
    assert_eq!(rows[0].len(), 14);
    for (p, a) in rows[0].iter().zip(&rows[1]) {
        assert_eq!(p["id"], a["id"], "input order");
        assert_eq!(p["tokens"], a["tokens"]);
        for key in ["ppl", "he_snr", "mean_h10", "top1_acc"] {
            same_value(&p[key], &a[key], &format!("{} {key}", p["id"]));
        }
    }

    let mut profiles = Vec::new();
    for pack in ["16", "1"] {
        let out = dir.join(format!("profile-{pack}"));
        let mut args = vec!["profile", s(&corpus), "--out", s(&out), "--pack", pack];
        args.extend(common);
        ok(&hesnr(&args, &[]));
        profiles.push(read_rows(&out.join("profile-00000-of-00001.parquet")));
    }
    assert_eq!(profiles[0].len(), 14);
    for (p, a) in profiles[0].iter().zip(&profiles[1]) {
        assert_eq!(p["id"], a["id"], "input order");
        assert_eq!(p["index"], a["index"]);
        assert_eq!(p.len(), a.len(), "columns");
        for (key, v) in p {
            same_value(v, &a[key], &format!("{} {key}", p["id"]));
        }
    }
}
