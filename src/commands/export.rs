//! `rossl export`: a run's encoder weights alone, under PyTorch `state_dict` names, for other
//! tools (AutoAttack in PyTorch, say) to load strictly.

use crate::commands::args::ConfigArgs;
use crate::commands::session::prepare;
use candle_core::{DType, Tensor};
use clap::Args;
use rossl_runtime::run_dir::{refuse_run_file, RunDir};

use rossl_runtime::train::encoder_tensors;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `rossl export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The run folder.
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,
    /// The safetensors file to write (default: RUN_DIR/encoder.safetensors).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also write the first N images of the run's test set with their labels and the encoder's
    /// outputs on them (`features`, `projection`) to `<FILE stem>-samples.safetensors`, so that
    /// another implementation can check it computes the same function (0: none).
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub samples: usize,
}

/// The file `rossl export` writes by default, inside the run folder.
pub const DEFAULT_FILE: &str = "encoder.safetensors";

/// Runs `rossl export`.
pub fn run(args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let run_dir = RunDir::open(&args.run_dir)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| run_dir.file(DEFAULT_FILE));
    refuse_run_file(&out, "the export")?;
    if args.samples > 0 {
        refuse_run_file(&samples_path(&out), "the export's samples")?;
    }
    let session = prepare(&ConfigArgs::default(), None, Some(&args.run_dir))?;
    let asm = &session.assembly;
    crate::commands::runner::restore_trained(asm, &run_dir, "exporting")?;
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for (name, tensor) in encoder_tensors(asm.encoder.as_ref()) {
        let tensor = tensor.to_device(&candle_core::Device::Cpu)?;
        // PyTorch keeps batch-norm counters as int64
        let tensor = if name.ends_with("num_batches_tracked") {
            tensor.to_dtype(DType::I64)?
        } else {
            tensor
        };
        tensors.insert(name, tensor);
    }
    candle_core::safetensors::save(&tensors, &out)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))?;
    let run = &asm.config.run;
    println!(
        "wrote {} tensors of the `{}` encoder ({}) to {}",
        tensors.len(),
        run.encoder.name,
        asm.config
            .components
            .iter()
            .find(|c| c.section == format!("encoder.{}", run.encoder.name))
            .map(|c| rossl_runtime::config::inline_table(&c.params))
            .unwrap_or_default(),
        out.display()
    );
    if args.samples > 0 {
        let path = samples_path(&out);
        let count = write_samples(asm, args.samples, &path)?;
        println!(
            "wrote {count} test images, their labels and the encoder's features and projections to {}",
            path.display()
        );
    }
    let probes = run_dir.probe_heads()?;
    println!(
        "probe heads beside it: {}; loading them into PyTorch: docs/exporting.md",
        if probes.is_empty() {
            "none yet (run `rossl eval` first)".to_string()
        } else {
            probes.join(", ")
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// `<stem>-samples.safetensors` beside `out`.
fn samples_path(out: &std::path::Path) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "encoder".into());
    out.with_file_name(format!("{stem}-samples.safetensors"))
}

/// Writes the first `n` test images, labels, features and projections to `path`; returns how
/// many were written.
fn write_samples(
    asm: &rossl_runtime::assembly::Assembly,
    n: usize,
    path: &std::path::Path,
) -> anyhow::Result<usize> {
    let test = rossl_runtime::train::load_split(asm, rossl_api::components::Split::Test)?;
    let rows: Vec<usize> = (0..n.min(test.len())).collect();
    let device = &asm.device.device;
    let (images, labels) = rossl_api::batch::image_batch(&test, &rows, device)?;
    let embedding = asm
        .encoder
        .forward(&images, rossl_api::components::Mode::Eval)?;
    let cpu = candle_core::Device::Cpu;
    let tensors: HashMap<String, Tensor> = [
        ("images", images.to_device(&cpu)?),
        (
            "labels",
            Tensor::from_vec(
                labels.iter().map(|&l| i64::from(l)).collect::<Vec<_>>(),
                rows.len(),
                &cpu,
            )?,
        ),
        ("features", embedding.feature.to_device(&cpu)?),
        ("projection", embedding.projection.to_device(&cpu)?),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    candle_core::safetensors::save(&tensors, path)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    Ok(rows.len())
}
