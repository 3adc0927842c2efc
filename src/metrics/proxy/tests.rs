use super::*;
use crate::metrics::reference_stats;

fn record(logits: &[f32], true_id: u32, k: usize) -> TokenRecord {
    TokenRecord::from_stats(&reference_stats(logits, true_id), k)
}

fn ctx(vocab_size: usize) -> ProxyContext<'static> {
    ProxyContext {
        vocab_size,
        ..Default::default()
    }
}

fn at(m: Measure, r: &TokenRecord, v: usize) -> Option<f64> {
    m.at(r, v)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

/// Four equal logits: p = 1/4 each, H = ln 4, everyone shares rank 1, the argmax is id 0.
#[test]
fn uniform_distribution() {
    let r = record(&[0.0; 4], 2, 4);
    assert!(close(r.entropy.unwrap(), 4f64.ln()));
    assert!(close(at(Measure::CrossEntropy, &r, 4).unwrap(), 4f64.ln()));
    assert_eq!(
        at(Measure::NormEntropy, &r, 4).map(|x| (x * 1e9).round()),
        Some(1e9)
    );
    assert_eq!(at(Measure::Rank, &r, 4), Some(1.0));
    assert_eq!(at(Measure::ReciprocalRank, &r, 4), Some(1.0));
    // Ties in the list go to the lower id: id 2 is third.
    assert_eq!(at(Measure::TopKAcc(1), &r, 4), Some(0.0));
    assert_eq!(at(Measure::TopKAcc(2), &r, 4), Some(0.0));
    assert_eq!(at(Measure::TopKAcc(3), &r, 4), Some(1.0));
    // The winner (id 0) ties with the true token: margin 0, wrong-confidence 1/4.
    assert!(close(at(Measure::Margin, &r, 4).unwrap(), 0.0));
    assert!(close(at(Measure::WrongConfidence, &r, 4).unwrap(), 0.25));
    assert!(close(r.top_mass, 1.0));
    assert!(close(record(&[0.0; 4], 2, 2).top_mass, 0.5));
}

/// Ties in ranks and margins: the true token tied for first place shares rank 1 either way, and
/// its margin is 0 whether it is listed before or after its twin.
#[test]
fn ties_in_ranks_and_margins() {
    let logits = [2.0f32, 2.0, 1.0, 0.0];
    let z = 2.0 * 2f64.exp() + 1f64.exp() + 1.0;
    let p_top = 2f64.exp() / z;
    for true_id in [0u32, 1] {
        let r = record(&logits, true_id, 4);
        assert_eq!(r.rank, 1);
        assert!(
            close(at(Measure::Margin, &r, 4).unwrap(), 0.0),
            "id {true_id}"
        );
        assert!(close(r.p(), p_top));
    }
    // id 0 is the argmax (lower id); id 1 is not, so only it counts as wrong-confidence.
    assert_eq!(
        at(Measure::WrongConfidence, &record(&logits, 0, 4), 4),
        Some(0.0)
    );
    assert!(close(
        at(Measure::WrongConfidence, &record(&logits, 1, 4), 4).unwrap(),
        p_top
    ));
    assert_eq!(
        at(Measure::TopKAcc(1), &record(&logits, 1, 4), 4),
        Some(0.0)
    );
    assert_eq!(
        at(Measure::TopKAcc(2), &record(&logits, 1, 4), 4),
        Some(1.0)
    );
    // Third place: rank 3, margin p(1) - p(2) -- e^1/z - e^2/z.
    let r = record(&logits, 2, 4);
    assert_eq!(r.rank, 3);
    assert!(close(
        at(Measure::ReciprocalRank, &r, 4).unwrap(),
        1.0 / 3.0
    ));
    assert!(close(
        at(Measure::Margin, &r, 4).unwrap(),
        (1f64.exp() - 2f64.exp()) / z
    ));
    // Winning outright: margin p(win) - p(runner-up).
    let r = record(&[3.0, 1.0, 1.0], 0, 3);
    let z = 3f64.exp() + 2.0 * 1f64.exp();
    assert!(close(
        at(Measure::Margin, &r, 3).unwrap(),
        (3f64.exp() - 1f64.exp()) / z
    ));
}

/// The true token outside the top-k: accuracies 0, rank from the whole row, margin against the
/// winner, and accuracies the list is too short to decide unavailable.
#[test]
fn true_token_outside_the_top_k() {
    let logits: Vec<f32> = (0..10).map(|i| -(i as f32)).collect();
    let r = record(&logits, 7, 3);
    assert_eq!(r.top_index, None);
    assert_eq!(r.rank, 8);
    for k in [1, 2, 3] {
        assert_eq!(at(Measure::TopKAcc(k), &r, 10), Some(0.0));
    }
    assert_eq!(at(Measure::TopKAcc(5), &r, 10), None);
    let z: f64 = (0..10).map(|i| (-(i as f64)).exp()).sum();
    assert!(close(
        at(Measure::Margin, &r, 10).unwrap(),
        ((-7f64).exp() - 1.0) / z
    ));
    assert!(close(
        at(Measure::WrongConfidence, &r, 10).unwrap(),
        1.0 / z
    ));
    let mass = (1.0 + (-1f64).exp() + (-2f64).exp()) / z;
    assert!(close(r.top_mass, mass));
    let set = [r];
    assert_eq!(
        ProxyMetric::Weighted(Measure::TopKAcc(5), Weighting::Uniform).compute(&[&set], &ctx(10)),
        Err(Unavailable::NeedsTopK(5))
    );
    assert!(close(
        ProxyMetric::TopKMass.compute(&[&set], &ctx(10)).unwrap(),
        mass
    ));
}

/// Without the full distribution (a server's top-k list) entropy metrics are unavailable; the
/// others still compute.
#[test]
fn entropy_metrics_are_unavailable_without_the_full_distribution() {
    let mut r = record(&[1.0, 0.5, 0.0, -1.0], 1, 4);
    r.entropy = None;
    let set = [r, r];
    let c = ctx(4);
    for m in [
        ProxyMetric::Hes,
        ProxyMetric::Weighted(Measure::NormEntropy, Weighting::Uniform),
        ProxyMetric::Weighted(Measure::CrossEntropy, Weighting::Entropy),
        ProxyMetric::Weighted(Measure::Rank, Weighting::InverseEntropy),
    ] {
        assert_eq!(
            m.compute(&[&set], &c),
            Err(Unavailable::NeedsFullDistribution),
            "{m:?}"
        );
        assert!(m.needs(10).contains(&Needs::FullDistribution));
    }
    let xent = ProxyMetric::Weighted(Measure::CrossEntropy, Weighting::Uniform);
    assert!(close(xent.compute(&[&set], &c).unwrap(), r.nll));
    assert!(xent.needs(10).is_empty());
}

fn rec(token: u32, nll: f64, entropy: f64) -> TokenRecord {
    TokenRecord {
        token,
        nll,
        entropy: Some(entropy),
        rank: 1,
        top_index: Some(0),
        top_len: 10,
        best_other_p: 0.0,
        argmax_p: (-nll).exp(),
        top_mass: 1.0,
    }
}

/// Weighted means worked out by hand on two positions.
#[test]
fn weightings_by_hand() {
    let set = [rec(5, 2f64.ln(), 1.0), rec(7, 4f64.ln(), 3.0)];
    let c = ctx(10);
    let xent = |w| {
        ProxyMetric::Weighted(Measure::CrossEntropy, w)
            .compute(&[&set], &c)
            .unwrap()
    };
    let (a, b) = (2f64.ln(), 4f64.ln());
    assert!(close(xent(Weighting::Uniform), (a + b) / 2.0));
    assert!(close(xent(Weighting::P), (0.5 * a + 0.25 * b) / 0.75));
    assert!(close(
        xent(Weighting::OneMinusP),
        (0.5 * a + 0.75 * b) / 1.25
    ));
    assert!(close(xent(Weighting::Entropy), (a + 3.0 * b) / 4.0));
    let (u, v) = (1.0 / 1.01, 1.0 / 3.01);
    assert!(close(
        xent(Weighting::InverseEntropy),
        (u * a + v * b) / (u + v)
    ));
    // Each token once in 2 tokens over V = 10: equal frequencies, so the plain mean.
    assert!(close(xent(Weighting::Frequency), (a + b) / 2.0));
    // mu = (a + b) / 2, both at the same distance: equal weights.
    assert!(close(xent(Weighting::GaussianNll), (a + b) / 2.0));
    // A corpus where token 5 is three times as common: f = 4/14 vs 2/14 (add-one, V = 10).
    let corpus = TokenFrequencies::from_tokens([5, 5, 5, 7], 10);
    assert!(close(corpus.frequency(5), 4.0 / 14.0));
    assert!(close(corpus.frequency(9), 1.0 / 14.0));
    let with = ProxyContext {
        vocab_size: 10,
        frequencies: Some(&corpus),
        window: None,
    };
    let got = ProxyMetric::Weighted(Measure::CrossEntropy, Weighting::Frequency)
        .compute(&[&set], &with)
        .unwrap();
    assert!(close(got, (2.0 * a + b) / 3.0));
    let got = ProxyMetric::Weighted(Measure::CrossEntropy, Weighting::InverseFrequency)
        .compute(&[&set], &with)
        .unwrap();
    assert!(close(got, (3.5 * a + 7.0 * b) / 10.5));
}

/// HES sums the ceil(0.5% n) largest entropies of each sample (at least one), mean over samples;
/// the window keeps each sample's last N positions.
#[test]
fn hes_by_hand() {
    let big: Vec<TokenRecord> = (0..401).map(|i| rec(0, 1.0, i as f64 / 100.0)).collect();
    // ceil(401 * 0.005) = 3: 4.00 + 3.99 + 3.98.
    assert!(close(hes(&big).unwrap(), 11.97));
    let small = [rec(0, 1.0, 0.5), rec(0, 1.0, 2.5), rec(0, 1.0, 1.5)];
    assert!(close(hes(&small).unwrap(), 2.5));
    let c = ctx(10);
    let both = ProxyMetric::Hes.compute(&[&big, &small], &c).unwrap();
    assert!(close(both, (11.97 + 2.5) / 2.0));
    let last = ProxyContext {
        window: Some(2),
        ..ctx(10)
    };
    // Last two of each: big -> 4.00, small -> 2.5 (of 2.5, 1.5).
    let got = ProxyMetric::Hes.compute(&[&big, &small], &last).unwrap();
    assert!(close(got, (4.0 + 2.5) / 2.0));
    assert_eq!(
        ProxyMetric::Hes.compute(&[&[]], &c),
        Err(Unavailable::NoPositions)
    );
}

/// The datasets of scripts/proxy_reference.py, built by the same integer formulas.
fn reference_sample(n: u32, salt: u32) -> Vec<TokenRecord> {
    (0..n)
        .map(|i| {
            rec(
                (i * 7 + salt) % 11,
                ((i * 37 + salt) % 100) as f64 / 20.0,
                ((i * 53 + salt) % 997) as f64 / 100.0,
            )
        })
        .collect()
}

/// HES and the weightings against the independent numpy reference: values printed by
/// `python3 scripts/proxy_reference.py` with numpy 2.4.6.
#[test]
fn matches_the_numpy_reference() {
    const REFERENCE: [(&str, f64); 12] = [
        ("xent__uniform", 2.4715517241379312),
        ("xent__p", 0.9378016069318884),
        ("xent__one_minus_p", 2.8659084229454725),
        ("xent__entropy", 2.4605489860720717),
        ("xent__inv_entropy", 2.52460659747079),
        ("xent__freq", 2.47144140675138),
        ("xent__inv_freq", 2.471662998446401),
        ("xent__gauss_nll", 2.4708028034431586),
        ("corpus:xent__freq", 2.4791412419239047),
        ("corpus:xent__inv_freq", 2.4561730392672008),
        ("hes", 19.810000000000002),
        ("window100:hes", 9.885000000000002),
    ];
    let a = reference_sample(450, 3);
    let b = reference_sample(130, 5);
    let samples: [&[TokenRecord]; 2] = [&a, &b];
    let corpus = TokenFrequencies::from_tokens((0..200u32).map(|j| (j * j) % 11), 11);
    for (name, want) in REFERENCE {
        let (c, metric) = match name.split_once(':') {
            Some(("corpus", m)) => (
                ProxyContext {
                    vocab_size: 11,
                    frequencies: Some(&corpus),
                    window: None,
                },
                m,
            ),
            Some(("window100", m)) => (
                ProxyContext {
                    window: Some(100),
                    ..ctx(11)
                },
                m,
            ),
            _ => (ctx(11), name),
        };
        let got = metric
            .parse::<ProxyMetric>()
            .unwrap()
            .compute(&samples, &c)
            .unwrap();
        assert!(
            (got - want).abs() < 1e-12 * want.abs().max(1.0),
            "{name}: {got} vs numpy {want}"
        );
    }
}

#[test]
fn every_metric_has_a_unique_name_a_definition_and_a_direction() {
    let all = ProxyMetric::all();
    assert_eq!(all.len(), 10 * 8 + 2);
    let mut names: Vec<String> = all.iter().map(|m| m.name()).collect();
    for m in &all {
        assert_eq!(m.name().parse::<ProxyMetric>(), Ok(*m));
        assert!(!m.definition().is_empty());
        assert!(
            m.name().parse::<Metric>().is_err(),
            "{m:?} shadows a core metric"
        );
    }
    names.sort();
    names.dedup();
    assert_eq!(names.len(), all.len());
    assert_eq!(ProxyMetric::Hes.better(), Better::Neither);
    assert_eq!(
        ProxyMetric::Weighted(Measure::Rank, Weighting::P).better(),
        Better::Lower
    );
    assert_eq!(
        ProxyMetric::Weighted(Measure::Margin, Weighting::P).better(),
        Better::Higher
    );
    assert_eq!(
        ProxyMetric::Weighted(Measure::TopKAcc(3), Weighting::Frequency).needs(2),
        vec![Needs::TopK(3), Needs::TokenFrequencies]
    );
}

#[test]
fn selections_by_name_and_family() {
    assert_eq!(parse_selection("default").unwrap(), default_selection());
    let all = parse_selection("all").unwrap();
    assert_eq!(all.len(), Metric::ALL.len() + 82);
    let rank = parse_selection("rank").unwrap();
    assert_eq!(rank.len(), 8);
    assert_eq!(rank[0].name(), "rank__uniform");
    let mixed = parse_selection("he_snr, hes, he_snr, xent__p").unwrap();
    let names: Vec<String> = mixed.iter().map(|m| m.name()).collect();
    assert_eq!(names, ["he_snr", "hes", "xent__p"]);
    assert_eq!(parse_selection("proxy").unwrap().len(), 80);
    let e = parse_selection("nope").unwrap_err();
    assert!(e.contains("'nope'"), "{e}");
    assert!(parse_selection(" , ").is_err());
}
