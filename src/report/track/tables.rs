//! The CSV tables of the track report: every number at full precision (shortest round-trip
//! form), empty when undefined.

use super::{downstream_names, tax_flagged};
use crate::analysis::stats::Correlation;
use crate::metrics::Metric;
use crate::pipeline::track_types::{SweepPoint, TrackReport};
use crate::report::format::finite;

/// Full precision (shortest round-trip form); empty when undefined.
fn csv_num(v: Option<f64>) -> String {
    finite(v).map(|v| format!("{v}")).unwrap_or_default()
}

/// A CSV table built in memory; the csv crate quotes the fields that need it (a comma, a
/// quote or a line break) and doubles quotes.
struct Table(csv::Writer<Vec<u8>>);

impl Table {
    fn new() -> Self {
        Table(csv::Writer::from_writer(Vec::new()))
    }

    /// Appends a row. Every row of a table has as many fields as its header.
    fn row<T: AsRef<[u8]>>(&mut self, fields: impl IntoIterator<Item = T>) {
        self.0
            .write_record(fields)
            .expect("a row as long as the header, written to memory");
    }

    fn finish(self) -> String {
        let bytes = self.0.into_inner().expect("flushing to memory");
        String::from_utf8(bytes).expect("UTF-8 fields make UTF-8 CSV")
    }
}

/// The summary's columns of `checkpoints.csv`, in order (after `documents`).
const CHECKPOINT_METRICS: [Metric; 9] = [
    Metric::ScoredTokens,
    Metric::MeanNll,
    Metric::Ppl,
    Metric::Top1Acc,
    Metric::DecisionTokens,
    Metric::DecisionDensity,
    Metric::HeSnr,
    Metric::HePpl,
    Metric::MeanH10,
];

/// One row per checkpoint with every number of its summary and its downstream scores.
pub(crate) fn checkpoints_csv(r: &TrackReport) -> String {
    let downs = downstream_names(r);
    let flagged = tax_flagged(r);
    let orders = r
        .checkpoints
        .iter()
        .map(|c| c.summary.order_shares.len())
        .max()
        .unwrap_or(0);
    let mut header: Vec<String> = [
        "index",
        "name",
        "model",
        "step",
        "stage",
        "precision",
        "cached",
        "tax_flag",
        "documents",
    ]
    .map(String::from)
    .to_vec();
    header.extend(CHECKPOINT_METRICS.map(|m| m.name().to_string()));
    header.extend((1..=orders).map(|m| format!("order_share_{m}")));
    header.extend(downs.iter().map(|d| format!("downstream:{d}")));
    let mut out = Table::new();
    out.row(&header);
    for (i, c) in r.checkpoints.iter().enumerate() {
        let s = &c.summary;
        let mut row = vec![
            (i + 1).to_string(),
            c.name.clone(),
            c.model.clone(),
            csv_num(c.step),
            c.stage.clone().unwrap_or_default(),
            c.precision.clone().unwrap_or_default(),
            c.cached.to_string(),
            flagged[i].to_string(),
            s.documents.to_string(),
        ];
        row.extend(CHECKPOINT_METRICS.map(|m| {
            m.count(s)
                .map_or_else(|| csv_num(m.value(s)), |n| n.to_string())
        }));
        row.extend((0..orders).map(|j| csv_num(s.order_shares.get(j).copied())));
        row.extend(downs.iter().map(|d| csv_num(c.downstream.get(d).copied())));
        out.row(&row);
    }
    out.finish()
}

/// One row per metric, downstream score and statistic.
pub(crate) fn correlations_csv(r: &TrackReport) -> String {
    let mut out = Table::new();
    out.row([
        "metric",
        "downstream",
        "n",
        "statistic",
        "value",
        "ci95_low",
        "ci95_high",
        "ci_resamples_used",
        "permutation_p",
        "permutations",
        "permutation_exact",
        "loo_min",
        "loo_max",
        "loo_sign_flips",
        "conclusive",
        "note",
    ]);
    for c in &r.correlations {
        for stat in Correlation::ALL {
            let s = c.report.get(stat);
            out.row([
                c.metric.name().to_string(),
                c.downstream.clone(),
                c.report.n.to_string(),
                stat.name().to_string(),
                csv_num(s.value),
                csv_num(s.ci95.map(|i| i.low)),
                csv_num(s.ci95.map(|i| i.high)),
                s.ci95
                    .map(|i| i.resamples_used.to_string())
                    .unwrap_or_default(),
                csv_num(s.permutation.map(|p| p.p_value)),
                s.permutation
                    .map(|p| p.permutations.to_string())
                    .unwrap_or_default(),
                s.permutation
                    .map(|p| p.exact.to_string())
                    .unwrap_or_default(),
                csv_num(s.leave_one_out.min),
                csv_num(s.leave_one_out.max),
                s.leave_one_out.sign_flips.to_string(),
                c.report.conclusive.to_string(),
                c.report.note.clone(),
            ]);
        }
    }
    out.finish()
}

/// The sweep in long form: HE-SNR and |H| per checkpoint and eps, then the correlations per
/// downstream score and eps.
pub(crate) fn sweep_csv(r: &TrackReport) -> String {
    let mut out = Table::new();
    out.row([
        "series",
        "name",
        "eps",
        "he_snr",
        "decision_tokens",
        "pearson",
        "spearman",
        "kendall",
        "in_plateau",
    ]);
    for c in &r.checkpoints {
        for SweepPoint {
            eps,
            he_snr,
            decision_tokens,
        } in &c.sweep
        {
            out.row([
                "checkpoint".into(),
                c.name.clone(),
                csv_num(Some(*eps)),
                csv_num(*he_snr),
                decision_tokens.to_string(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
    }
    for s in &r.sweep {
        for (i, &(eps, p, sp, k)) in s.points.iter().enumerate() {
            let inside = s.plateau.is_some_and(|(a, b)| (a..=b).contains(&i));
            out.row([
                "correlation".into(),
                s.downstream.clone(),
                csv_num(Some(eps)),
                String::new(),
                String::new(),
                csv_num(p),
                csv_num(sp),
                csv_num(k),
                inside.to_string(),
            ]);
        }
    }
    out.finish()
}
