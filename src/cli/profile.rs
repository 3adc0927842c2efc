//! `hesnr profile` and `hesnr merge`: per-document scores of a whole corpus, sharded and
//! resumable, for data guidance (filtering, weighting, mixing).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use hesnr::data::{InputFormat, ReaderOptions};
use hesnr::engine::Backend;
use hesnr::pipeline::profile::{self, ProfileJob, Scorer, Shard};

use super::common::{load_model, print_skips, MetricArgs, ModelArgs, Spinner};

pub const PROFILE_EXAMPLES: &str = "Examples:
  hesnr profile data/*.jsonl.zst --out prof/                # one shard: prof/profile-00000-of-00001.parquet
  hesnr profile 'corpus/**/*.parquet' --out prof/ --shard 3/16
  hesnr profile corpus/ --out prof/ --reference strong.gguf  # adds ref_* and delta_* columns
  sbatch --array=0-15 profile.sh                             # shards from SLURM_ARRAY_TASK_*
  hesnr merge prof/                                          # prof/profile.parquet, sorted by index

A killed run resumes where its last part file ended when re-run with the same arguments.
Rows: id, source, line, index, tokens, scored_tokens, decision_tokens, decision_density, he_snr,
he_ppl, mean_h10, mean_nll, ppl, top1_acc, order_share_1..k; with --reference also ref_he_snr,
ref_mean_nll, ref_decision_density and delta_* = main model minus reference model.";

#[derive(Args)]
pub struct ProfileArgs {
    /// Input files, directories or glob patterns (JSONL, .jsonl.gz/.zst, Parquet, text files)
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output folder for the shard files, their stats and the resumable parts
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    /// Reference model (GGUF): adds ref_* and delta_* (main minus reference) columns
    #[arg(long)]
    reference: Option<PathBuf>,
    /// This job's shard `i/N`: documents with global index g % N == i [default: from
    /// SLURM_ARRAY_TASK_ID/_MIN/_COUNT, else 0/1]
    #[arg(long, value_parser = Shard::parse)]
    shard: Option<Shard>,
    /// Field (JSONL) or column (Parquet) holding the text
    #[arg(long, default_value = "text")]
    text_field: String,
    /// Field or column holding the document id
    #[arg(long, default_value = "id")]
    id_field: String,
    /// Documents per resumable part file
    #[arg(long, default_value_t = 256)]
    part_size: usize,
    /// Seconds after which a part is written even if not full
    #[arg(long, default_value_t = 60.0)]
    part_seconds: f64,
    #[command(flatten)]
    metric: MetricArgs,
}

#[derive(Args)]
pub struct MergeArgs {
    /// Output folder of a `hesnr profile` run
    dir: PathBuf,
    /// Merged Parquet file [default: DIR/profile.parquet]; stats go next to it as .stats.json
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
}

fn choose_shard(flag: Option<Shard>) -> Result<Shard> {
    if let Some(s) = flag {
        tracing::info!("shard {}/{} from --shard", s.index, s.count);
        return Ok(s);
    }
    match Shard::from_env(|k| std::env::var(k).ok()).map_err(anyhow::Error::msg)? {
        Some(s) => {
            eprintln!(
                "shard {}/{} from the Slurm array (SLURM_ARRAY_TASK_ID={})",
                s.index,
                s.count,
                std::env::var("SLURM_ARRAY_TASK_ID").unwrap_or_default()
            );
            Ok(s)
        }
        None => {
            tracing::info!("shard 0/1 (no --shard, no Slurm array)");
            Ok(Shard { index: 0, count: 1 })
        }
    }
}

pub fn run_profile(args: ProfileArgs) -> Result<()> {
    if args.part_size == 0 {
        bail!("--part-size must be at least 1");
    }
    args.metric.config()?;
    args.metric.selection()?;
    let shard = choose_shard(args.shard)?;
    // Inputs are checked before the (slow) model load, so that typos fail at once.
    let files = profile::expand_inputs(&args.inputs)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    // Held until the command ends: one run per shard and folder at a time.
    let _lock = profile::lock_shard(&args.out, shard)?;
    if profile::shard_complete(&args.out, shard) {
        eprintln!(
            "shard {}/{} is already complete ({} exists); nothing to do",
            shard.index,
            shard.count,
            shard.stats_path(&args.out).display()
        );
        return Ok(());
    }
    let job = ProfileJob {
        out_dir: args.out.clone(),
        files,
        reader: ReaderOptions {
            text_field: args.text_field.clone(),
            id_field: args.id_field.clone(),
            format: InputFormat::Auto,
        },
        shard,
        part_size: args.part_size,
        part_seconds: args.part_seconds,
        proxy: Default::default(),
        token_frequencies: args.metric.token_frequencies.clone(),
    };
    let mut backend = load_model(&args.model)?;
    let settings = args.metric.settings(&backend)?;
    let job = ProfileJob {
        proxy: args.metric.proxy_columns(backend.as_ref())?,
        ..job
    };
    let mut ref_backend = match &args.reference {
        Some(p) => {
            let mut m = args.model.clone();
            m.model = Some(p.clone());
            Some(load_model(&m)?)
        }
        None => None,
    };
    let ref_settings = ref_backend
        .as_ref()
        .map(|b| args.metric.settings(b as &dyn Backend))
        .transpose()?;
    let mut main = Scorer {
        backend: &mut backend,
        settings,
    };
    let mut reference = match (ref_backend.as_mut(), ref_settings) {
        (Some(b), Some(s)) => Some(Scorer {
            backend: b,
            settings: s,
        }),
        _ => None,
    };
    let spinner = Spinner::new(move |log| {
        format!(
            "shard {}/{}: {} docs scored, {} resumed, {:.0} tok/s",
            shard.index,
            shard.count,
            log.done,
            log.resumed,
            log.tokens_per_second()
        )
    });
    let stats = profile::run_shard(&job, &mut main, reference.as_mut(), &spinner)?;
    let mut e = std::io::stderr().lock();
    let _ = writeln!(
        e,
        "shard {}/{}: {} documents ({} resumed), {} tokens, {} skipped, {} duplicate ids, {:.1} s -> {}",
        shard.index,
        shard.count,
        stats.documents,
        stats.resumed_documents,
        stats.tokens,
        stats.skipped,
        stats.duplicate_ids,
        stats.seconds,
        shard.parquet_path(&args.out).display()
    );
    print_skips(&mut e, stats.skipped, &stats.errors, "see the .stats.json");
    if stats.duplicate_ids > 0 {
        let _ = writeln!(
            e,
            "warning: {} documents repeat an earlier id of this shard (rows are keyed by index and source)",
            stats.duplicate_ids
        );
    }
    Ok(())
}

pub fn run_merge(args: MergeArgs) -> Result<()> {
    let out = args
        .output
        .unwrap_or_else(|| args.dir.join("profile.parquet"));
    let (stats, stats_path) = profile::merge_run(&args.dir, &out)?;
    eprintln!(
        "merged {} shards: {} documents, {} tokens, {} skipped -> {} ({})",
        stats.shards,
        stats.documents,
        stats.tokens,
        stats.skipped,
        out.display(),
        stats_path.display()
    );
    Ok(())
}
