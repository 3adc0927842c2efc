//! The embedded engine on tiny random-weight GGUF models written in the real format.

use crate::common::{default_tiny, scratch, shift, strided, tiny_model, CODE};
use hesnr::engine::llama::{LlamaCppBackend, LlamaOptions};
use hesnr::engine::model_store::{self, Precision};
use hesnr::engine::{score_selected, score_tokens, Backend};
use hesnr::gguf::tiny::{TinyLlamaSpec, TinyWeightType};

fn load(path: &std::path::Path, opts: LlamaOptions) -> LlamaCppBackend {
    LlamaCppBackend::load(path, &opts).expect("load tiny model")
}

fn opts(window: usize, ubatch: usize) -> LlamaOptions {
    LlamaOptions {
        flash_attention: false,
        threads: Some(2),
        window: Some(window),
        ubatch,
        ..Default::default()
    }
}

#[test]
fn offsets_reproduce_the_text_including_tricky_characters() {
    let b = load(&default_tiny(), opts(256, 64));
    for text in [
        CODE,
        "a\r\n\tb   c",
        "héllo 世界 🦀 done",
        "x = '<|endoftext|>'  # literal",
    ] {
        let t = b.tokenize(text).unwrap();
        assert!(!t.bos);
        let rebuilt: Vec<u8> = t
            .offsets
            .iter()
            .flat_map(|r| text.as_bytes()[r.clone()].to_vec())
            .collect();
        assert_eq!(rebuilt, text.as_bytes(), "{text:?}");
        assert_eq!(t.ids.len(), t.offsets.len());
    }
    // A control token written in the text stays text: no id 0 (<|endoftext|>) appears.
    let t = b.tokenize("<|endoftext|>").unwrap();
    assert!(t.ids.len() > 1 && !t.ids.contains(&0), "{:?}", t.ids);
}

#[test]
fn one_stat_per_target_and_deterministic() {
    let mut b = load(&default_tiny(), opts(256, 64));
    let t = b.tokenize(CODE).unwrap();
    let a = score_tokens(&mut b, &t, &strided(256, 128), 10).unwrap();
    assert_eq!(a.len(), t.ids.len() - 1);
    for (i, p) in a.iter().enumerate() {
        assert_eq!(p.true_id, t.ids[i + 1]);
        assert!(p.lse.is_finite() && p.top.len() == 10);
        assert!(p.top.windows(2).all(|w| w[0].logit >= w[1].logit));
        assert!(p.lse >= p.top[0].logit as f64);
    }
    let again = score_tokens(&mut b, &t, &strided(256, 128), 10).unwrap();
    assert_eq!(a, again);
}

#[test]
fn decode_chunking_does_not_change_results() {
    let t = {
        let b = load(&default_tiny(), opts(256, 256));
        b.tokenize(CODE).unwrap()
    };
    let mut whole = load(&default_tiny(), opts(256, 256));
    let mut chunked = load(&default_tiny(), opts(256, 7));
    let a = score_tokens(&mut whole, &t, &strided(256, 128), 10).unwrap();
    let b = score_tokens(&mut chunked, &t, &strided(256, 128), 10).unwrap();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert!(
            (x.lse - y.lse).abs() <= 1e-6 * x.lse.abs(),
            "{} vs {}",
            x.lse,
            y.lse
        );
        assert_eq!(x.true_rank, y.true_rank);
    }
}

#[test]
fn windows_score_every_token_once_and_agree_inside_the_first_window() {
    let mut b = load(&default_tiny(), opts(256, 64));
    let t = b.tokenize(&CODE.repeat(3)).unwrap();
    assert!(t.ids.len() > 64, "need a document longer than the window");
    let full = score_tokens(&mut b, &t, &strided(256, 128), 10).unwrap();
    let windowed = score_tokens(&mut b, &t, &strided(32, 16), 10).unwrap();
    assert_eq!(full.len(), windowed.len());
    for (i, (f, w)) in full.iter().zip(&windowed).enumerate() {
        assert_eq!(f.true_id, w.true_id, "target {}", i + 1);
    }
    // Targets 1..32 come from the first window, with the same context as the full pass.
    for i in 0..31 {
        assert!((full[i].lse - windowed[i].lse).abs() < 1e-4);
    }
}

#[test]
fn bos_models_get_bos_and_score_the_first_token() {
    let path = tiny_model(
        "tiny-bos",
        TinyLlamaSpec {
            add_bos: true,
            ..Default::default()
        },
    );
    let mut b = load(&path, opts(128, 64));
    let t = b.tokenize("print(1)").unwrap();
    assert!(t.bos);
    assert_eq!(t.offsets[0], 0..0);
    let s = score_tokens(&mut b, &t, &strided(128, 64), 10).unwrap();
    assert_eq!(s.len(), t.ids.len() - 1, "every real token is a target");
}

#[test]
fn quantized_file_runs_as_converted_f32_and_close_to_as_is() {
    let path = tiny_model(
        "tiny-q8",
        TinyLlamaSpec {
            weight_type: TinyWeightType::Q8_0,
            ..Default::default()
        },
    );
    let mut auto = load(&path, opts(128, 64));
    assert_eq!(auto.info().precision, "f32");
    let mut as_is = load(
        &path,
        LlamaOptions {
            precision: Precision::AsIs,
            ..opts(128, 64)
        },
    );
    assert_eq!(as_is.info().precision, "as-is");
    let t = auto.tokenize(CODE).unwrap();
    let a = score_tokens(&mut auto, &t, &strided(128, 64), 10).unwrap();
    let b = score_tokens(&mut as_is, &t, &strided(128, 64), 10).unwrap();
    let nll = |v: &[hesnr::metrics::PositionStats]| {
        v.iter().map(|p| p.lse - p.true_logit as f64).sum::<f64>() / v.len() as f64
    };
    let (na, nb) = (nll(&a), nll(&b));
    assert!(
        (na - nb).abs() < 0.05 * na.abs().max(1.0),
        "f32 {na} vs q8_0 kernels {nb}"
    );
    // The conversion is cached by content in the hesnr home (this process's: the user's, as
    // the tests never change their own environment): a second load reuses it.
    let sha = model_store::sha256_file(&path).unwrap();
    let converted = model_store::home()
        .join("converted")
        .join(format!("{}-f32.gguf", &sha[..16]));
    let written = std::fs::metadata(&converted)
        .expect("converted copy in the hesnr home")
        .modified()
        .unwrap();
    let _again = load(&path, opts(128, 64));
    assert_eq!(
        std::fs::metadata(&converted).unwrap().modified().unwrap(),
        written
    );
}

#[test]
fn truncated_model_names_the_tensor() {
    let src = default_tiny();
    let bytes = std::fs::read(&src).unwrap();
    let bad = scratch().join("truncated.gguf");
    std::fs::write(&bad, &bytes[..bytes.len() - 1000]).unwrap();
    let err = LlamaCppBackend::load(&bad, &opts(64, 64))
        .err()
        .expect("must fail")
        .to_string();
    assert!(
        err.contains("truncated.gguf") && err.contains("tensor"),
        "{err}"
    );
}

#[test]
fn garbage_and_missing_models_fail_cleanly() {
    let bad = scratch().join("garbage.gguf");
    std::fs::write(&bad, b"this is not a model at all").unwrap();
    let err = LlamaCppBackend::load(&bad, &opts(64, 64))
        .err()
        .expect("must fail")
        .to_string();
    assert!(err.contains("garbage.gguf"), "{err}");
    let missing = hesnr::engine::model_store::resolve_model(Some(std::path::Path::new(
        "/no/such/model.gguf",
    )));
    let err = missing.expect_err("must fail").to_string();
    assert!(
        err.contains("/no/such/model.gguf") && err.contains("no such"),
        "{err}"
    );
}

#[test]
fn flash_attention_agrees_with_exact_attention() {
    let fast = |ubatch| LlamaOptions {
        flash_attention: true,
        ..opts(256, ubatch)
    };
    let mut exact = load(&default_tiny(), opts(256, 256));
    let t = exact.tokenize(CODE).unwrap();
    let reference = score_tokens(&mut exact, &t, &strided(256, 128), 10).unwrap();
    for ubatch in [256, 7] {
        let mut b = load(&default_tiny(), fast(ubatch));
        let got = score_tokens(&mut b, &t, &strided(256, 128), 10).unwrap();
        for (x, y) in reference.iter().zip(&got) {
            assert!(
                (x.lse - y.lse).abs() <= 1e-3 * x.lse.abs().max(1.0),
                "ubatch {ubatch}: {} vs {}",
                x.lse,
                y.lse
            );
            assert_eq!(x.true_id, y.true_id);
        }
    }
}

#[test]
fn a_precision_series_is_written_once_and_loads() {
    let dir = scratch().join("series");
    let types: Vec<String> = ["f32", "q8_0", "q4_0"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let written =
        hesnr::engine::model_store::write_precision_series(&default_tiny(), &dir, &types).unwrap();
    assert_eq!(written.len(), 3);
    let sizes: Vec<u64> = written
        .iter()
        .map(|(_, p, _)| std::fs::metadata(p).unwrap().len())
        .collect();
    assert!(sizes[0] > sizes[1] && sizes[1] > sizes[2], "{sizes:?}");
    assert_eq!(
        written.iter().map(|w| w.2).collect::<Vec<_>>(),
        [32.0, 8.5, 4.5]
    );
    for (_, p, _) in &written {
        let mut b = load(p, opts(256, 64));
        let t = b.tokenize(CODE).unwrap();
        assert!(score_tokens(&mut b, &t, &strided(256, 128), 10).is_ok());
    }
    // A second run keeps what is there.
    let before = std::fs::metadata(&written[1].1)
        .unwrap()
        .modified()
        .unwrap();
    hesnr::engine::model_store::write_precision_series(&default_tiny(), &dir, &types).unwrap();
    assert_eq!(
        std::fs::metadata(&written[1].1)
            .unwrap()
            .modified()
            .unwrap(),
        before
    );
    let err = hesnr::engine::model_store::write_precision_series(
        &default_tiny(),
        &dir,
        &["q9_9".to_string()],
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("unknown weight type 'q9_9'"),
        "{err}"
    );
}

/// The shift window policy on a text that fits the window is the one-window pass of the strided
/// policy, through `score_tokens` and through the backend's shifted pass alike.
#[test]
fn shift_policy_equals_strided_when_the_text_fits() {
    let mut b = load(&default_tiny(), opts(256, 64));
    let t = b.tokenize(CODE).unwrap();
    let n = t.ids.len();
    assert!(n > 64 && n <= 256, "{n} tokens");
    let windowed = score_tokens(&mut b, &t, &strided(256, 128), 10).unwrap();
    assert_eq!(
        score_tokens(&mut b, &t, &shift(256, 4), 10).unwrap(),
        windowed
    );
    let direct = b.evaluate_shifted(&t.ids, 1..n, None, 256, 4, 10).unwrap();
    let direct: Vec<_> = direct
        .into_iter()
        .map(|p| p.expect("every target"))
        .collect();
    assert_eq!(direct, windowed);
}

/// Past the window (a cache of 64 tokens, texts of several hundred): every target scored once,
/// in order; the targets of the first window as a full-context pass gives them; the later ones
/// changed by the evictions, and by the sinks; the decode chunk size changing nothing beyond
/// rounding (exact attention) or the flash-attention tolerance.
#[test]
fn shift_policy_scores_every_target_once_whatever_the_decode_chunk() {
    let mut whole = load(&default_tiny(), opts(512, 64));
    let t = whole.tokenize(&CODE.repeat(3)).unwrap();
    let n = t.ids.len();
    assert!(n > 4 * 64 && n <= 512, "{n} tokens");
    let full = score_tokens(&mut whole, &t, &strided(512, 256), 10).unwrap();
    let shifted = score_tokens(&mut whole, &t, &shift(64, 4), 10).unwrap();
    assert_eq!(shifted.len(), n - 1);
    for (i, p) in shifted.iter().enumerate() {
        assert_eq!(p.true_id, t.ids[i + 1], "target {}", i + 1);
    }
    assert_eq!(
        shifted[..63],
        full[..63],
        "the first window sees the whole text so far"
    );
    let moved = |a: &[hesnr::metrics::PositionStats], b: &[hesnr::metrics::PositionStats]| {
        a.iter()
            .zip(b)
            .filter(|(x, y)| (x.lse - y.lse).abs() > 1e-5)
            .count()
    };
    assert!(
        moved(&shifted[64..], &full[64..]) > 0,
        "evictions change later targets"
    );
    let no_sinks = score_tokens(&mut whole, &t, &shift(64, 0), 10).unwrap();
    assert_eq!(no_sinks[..63], full[..63]);
    assert!(
        moved(&shifted[64..], &no_sinks[64..]) > 0,
        "the sinks are kept"
    );

    let close = |a: &[hesnr::metrics::PositionStats],
                 b: &[hesnr::metrics::PositionStats],
                 tol: f64,
                 what: &str| {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x.lse - y.lse).abs() <= tol * x.lse.abs().max(1.0),
                "{what}, target {}: {} vs {}",
                i + 1,
                x.lse,
                y.lse
            );
            assert_eq!(x.true_id, y.true_id);
        }
    };
    let mut chunked = load(&default_tiny(), opts(512, 7));
    let got = score_tokens(&mut chunked, &t, &shift(64, 4), 10).unwrap();
    close(&shifted, &got, 1e-6, "exact attention, ubatch 7");
    for ubatch in [64, 7] {
        let mut fast = load(
            &default_tiny(),
            LlamaOptions {
                flash_attention: true,
                ..opts(512, ubatch)
            },
        );
        let got = score_tokens(&mut fast, &t, &shift(64, 4), 10).unwrap();
        close(
            &shifted,
            &got,
            1e-3,
            &format!("flash attention, ubatch {ubatch}"),
        );
    }
}

/// A position's numbers depend neither on which other positions are asked for nor on the decode
/// chunk size (from 128), under flash attention (the command line's default) or plain: no
/// decode chunk is too short for the tiled attention kernel (window::FLASH_TILE_ROWS) or
/// computes a single output row (window::MIN_OUTPUT_ROWS) because of what was asked or how the
/// text was cut. Each wanted set below ends at a different place in its chunk, and some
/// positions are alone in theirs; the rows must be the very rows of a pass that computes every
/// position, and that pass the same with other chunk sizes.
#[test]
fn rows_do_not_depend_on_the_positions_asked_for_or_the_chunk_size() {
    for flash_attention in [true, false] {
        let mut b = load(
            &default_tiny(),
            LlamaOptions {
                flash_attention,
                ..opts(512, 512)
            },
        );
        let t = b.tokenize(&CODE.repeat(5)).unwrap();
        let n = t.ids.len();
        assert!(n > 400 && n <= 512, "{n} tokens");
        for windowing in [strided(512, 256), shift(256, 4)] {
            let all = score_tokens(&mut b, &t, &windowing, 10).unwrap();
            for ubatch in [128, 200] {
                let mut other = load(
                    &default_tiny(),
                    LlamaOptions {
                        flash_attention,
                        ..opts(512, ubatch)
                    },
                );
                let got = score_tokens(&mut other, &t, &windowing, 10).unwrap();
                assert!(
                    got == all,
                    "flash {flash_attention}, {windowing:?}: ubatch {ubatch} differs from 512"
                );
            }
            let (mut compared, mut asked) = (0, 0);
            for last in [5, 30, 63, 64, 65, 100, 200, 250, 262, 290, n - 3] {
                // A few positions, the last of them `last`; and `last` with its neighbour.
                for wants in [vec![2, last / 2, last], vec![last - 1, last]] {
                    let mut wanted = vec![false; n];
                    for p in wants {
                        wanted[p] = true;
                    }
                    asked += wanted.iter().filter(|&&w| w).count();
                    let got = score_selected(&mut b, &t, &wanted, &windowing, 10).unwrap();
                    for (i, p) in got.iter().enumerate() {
                        if let Some(p) = p {
                            let what =
                                format!("flash {flash_attention}, {windowing:?}, last {last}");
                            assert_eq!(p, &all[i], "{what}, position {}", i + 1);
                            compared += 1;
                        }
                    }
                }
            }
            assert_eq!(
                compared, asked,
                "{windowing:?}: every wanted position computed"
            );
        }
    }
}
