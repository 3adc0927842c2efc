//! `hesnr convert-hf`: Hugging Face checkpoints to GGUF, natively (see `hesnr::convert`).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};

use hesnr::convert::{self, ConvertOptions, OutType};

pub const CONVERT_HF_EXAMPLES: &str = "Examples:
  hesnr convert-hf ckpt-step-4000/ -o step-4000.gguf --tokenizer-from base.gguf
  hesnr score data.jsonl -m step-4000.gguf
  # every checkpoint of a run, for `hesnr track`
  for d in run/checkpoint-*/; do
    hesnr convert-hf \"$d\" -o \"gguf/$(basename \"$d\").gguf\" --tokenizer-from base.gguf
  done

Converts Llama-family checkpoints (config.json `architectures`: LlamaForCausalLM,
MistralForCausalLM) stored as safetensors (one file or sharded with model.safetensors.index.json;
F32, F16 or BF16). The tokenizer is copied from --tokenizer-from, a GGUF of the same tokenizer
(the base model's GGUF, or a vocabulary-only one): tokenizer.json itself is not converted.
Other architectures, RoPE scaling other than linear, and bias tensors: use llama.cpp's
convert_hf_to_gguf.py (docs/remote.md).";

/// Weight type of the output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutTypeArg {
    /// Every tensor F32 (exact; what hesnr computes in)
    #[default]
    F32,
    /// Matrices keep their checkpoint type (F16/BF16: half the size; expanded to F32 when scored)
    AsIs,
}

#[derive(Args, Debug)]
pub struct ConvertHfArgs {
    /// Hugging Face model folder: config.json and *.safetensors
    pub dir: PathBuf,
    /// Output GGUF file (written atomically)
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    /// GGUF with the checkpoint's tokenizer (the base model's GGUF or a vocabulary-only GGUF);
    /// its tokenizer.* metadata is copied
    #[arg(long)]
    pub tokenizer_from: PathBuf,
    /// Weight type of the output
    #[arg(long, value_enum, default_value_t = OutTypeArg::F32)]
    pub outtype: OutTypeArg,
    /// general.name of the output [default: the folder's name]
    #[arg(long)]
    pub name: Option<String>,
}

pub fn run_convert_hf(args: ConvertHfArgs) -> Result<()> {
    let opts = ConvertOptions {
        out_type: match args.outtype {
            OutTypeArg::F32 => OutType::F32,
            OutTypeArg::AsIs => OutType::AsIs,
        },
        name: args.name,
    };
    let start = std::time::Instant::now();
    let s = convert::convert_hf(&args.dir, &args.tokenizer_from, &args.output, &opts)?;
    eprintln!(
        "{}: {} ({} layers, {:.1}M parameters, vocabulary {}{}) -> {} tensors, {:.1} MB in {:.1} s",
        args.output.display(),
        s.architecture,
        s.layers,
        s.parameters as f64 / 1e6,
        s.vocab_size,
        if s.tied_embeddings {
            ", tied embeddings"
        } else {
            ""
        },
        s.tensors,
        s.output_bytes as f64 / 1e6,
        start.elapsed().as_secs_f64()
    );
    super::common::print_line(args.output.display())?;
    Ok(())
}
