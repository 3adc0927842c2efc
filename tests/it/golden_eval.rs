//! Golden test of the evaluation set: for one example trajectory, the exact token positions the
//! paper's preset (`full`) scores with the default model's tokenizer, stored as reviewed runs of
//! text in `tests/golden/`. Needs the default model (its tokenizer); CI fetches it.
//!
//! After an intended change, regenerate with `HESNR_BLESS=1 cargo test --release --test it
//! golden_eval` and review the diff of the golden file line by line.

use std::fmt::Write as _;

use crate::common::real_model;
use hesnr::data::trajectory::clean::CleanStats;
use hesnr::data::trajectory::mask::{byte_mask, token_mask, Preset, TokenRule};
use hesnr::data::trajectory::read::{read_trajectories, TrajectoryFormat};
use hesnr::data::trajectory::render::{render, ChatTemplate};
use hesnr::engine::llama::{LlamaCppBackend, LlamaOptions};
use hesnr::engine::Backend;

/// Runs of consecutive scored positions, one per line: `start..end<TAB>"their text"`.
fn scored_runs(id: &str, preset: Preset) -> Option<String> {
    let path = real_model()?;
    let b = LlamaCppBackend::load(
        &path,
        &LlamaOptions {
            threads: Some(2),
            window: Some(512),
            ..Default::default()
        },
    )
    .unwrap();
    let input = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/trajectories");
    let traj = read_trajectories(&[input], TrajectoryFormat::Auto)
        .unwrap()
        .map(|t| t.unwrap())
        .find(|t| t.id == id)
        .expect("example trajectory present");
    let spec = b
        .chat_template()
        .expect("the default model has a chat template");
    let template =
        ChatTemplate::new(&spec.template, "model", &spec.bos_token, &spec.eos_token).unwrap();
    let rendered = render(&traj, &template).unwrap();
    let tokens = b.tokenize_chat(&rendered.text).unwrap();
    let bytes = byte_mask(&traj, &rendered, preset, &mut CleanStats::default());
    let scored = token_mask(&tokens.offsets, &bytes, TokenRule::All);
    let mut out = format!(
        "# {id}, preset {}: {} of {} tokens scored\n",
        preset.name(),
        scored.iter().filter(|&&s| s).count(),
        tokens.ids.len()
    );
    let mut t = 0;
    while t < scored.len() {
        if !scored[t] {
            t += 1;
            continue;
        }
        let start = t;
        while t < scored.len() && scored[t] {
            t += 1;
        }
        let text = &rendered.text[tokens.offsets[start].start..tokens.offsets[t - 1].end];
        let _ = writeln!(out, "{start}..{t}\t{text:?}");
    }
    Some(out)
}

#[test]
fn scored_positions_of_an_example_trajectory_are_fixed() {
    let Some(actual) = scored_runs("csvkit-lite__412", Preset::Full) else {
        return;
    };
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/csvkit-lite__412.full.txt");
    if std::env::var_os("HESNR_BLESS").is_some() {
        std::fs::write(&golden, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&golden).expect("golden file");
    if actual != expected {
        for (i, (a, e)) in actual.lines().zip(expected.lines()).enumerate() {
            if a != e {
                panic!("line {}: expected\n  {e}\ngot\n  {a}\n(HESNR_BLESS=1 regenerates; review the diff)", i + 1);
            }
        }
        panic!(
            "golden file length differs: {} vs {} lines",
            actual.lines().count(),
            expected.lines().count()
        );
    }
}
