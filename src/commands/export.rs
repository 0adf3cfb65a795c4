//! `rossl export`: a run's encoder weights alone, under PyTorch `state_dict` names, for other
//! tools (AutoAttack in PyTorch, say) to load strictly.

use crate::commands::args::ConfigArgs;
use crate::commands::session::prepare;
use candle_core::{DType, Tensor};
use clap::Args;
use rossl_runtime::run_dir::{files, refuse_run_file, RunDir};

use rossl_api::components::BnBranch;
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
    /// With dual batch norm, the branch to export under the single-batch-norm names: `clean`
    /// or `adversarial` (default: the run's `eval.bn_branch`, clean unless set).
    #[arg(long, value_name = "BRANCH", value_parser = ["clean", "adversarial"])]
    pub bn_branch: Option<String>,
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
    let config = ConfigArgs {
        files: Vec::new(),
        sets: args
            .bn_branch
            .iter()
            .map(|b| format!("eval.bn_branch={}", toml::Value::String(b.clone())))
            .collect(),
    };
    let session = prepare(&config, None, Some(&args.run_dir))?;
    let asm = &session.assembly;
    crate::commands::runner::restore_trained(asm, &run_dir, "exporting")?;
    let branch = asm.config.run.eval.bn_branch;
    asm.encoder.select_branch(branch);
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for (name, tensor) in one_branch(encoder_tensors(asm.encoder.as_ref()), branch) {
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
    if asm.encoder.dual_batch_norm() {
        println!(
            "dual batch norm: wrote its {} branch under the single-batch-norm names (`eval.bn_branch`; `--bn-branch adversarial` exports the other)",
            branch.name()
        );
    }
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
    let others = run_dir.file(files::EVALUATIONS);
    if others.is_dir() {
        println!(
            "the probe heads of its evaluations under other settings are in their folders in {}",
            others.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The tensors of a model with one batch norm: with dual batch norm, those of `branch` under the
/// single-batch-norm names (`bn1.adversarial.weight` becomes `bn1.weight`), the other branch's
/// left out, so that the file loads strictly into a single-batch-norm model. Without dual batch
/// norm, `tensors` unchanged.
fn one_branch(tensors: Vec<(String, Tensor)>, branch: BnBranch) -> Vec<(String, Tensor)> {
    let adversarial: HashMap<String, Tensor> = tensors
        .iter()
        .filter_map(|(name, t)| BnBranch::clean_twin(name).map(|twin| (twin, t.clone())))
        .collect();
    tensors
        .into_iter()
        .filter(|(name, _)| BnBranch::clean_twin(name).is_none())
        .map(|(name, t)| match (branch, adversarial.get(&name)) {
            (BnBranch::Adversarial, Some(other)) => (name, other.clone()),
            _ => (name, t),
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dual_batch_norm_export_keeps_one_branch_under_the_single_names() {
        let cpu = candle_core::Device::Cpu;
        let value = |v: f32| Tensor::new(&[v], &cpu).unwrap();
        let tensors = || {
            vec![
                ("conv.weight".to_string(), value(3.0)),
                ("bn.weight".to_string(), value(1.0)),
                ("bn.adversarial.weight".to_string(), value(2.0)),
            ]
        };
        for (branch, bn) in [(BnBranch::Clean, 1.0), (BnBranch::Adversarial, 2.0)] {
            let kept: HashMap<String, f32> = one_branch(tensors(), branch)
                .into_iter()
                .map(|(n, t)| (n, t.to_vec1::<f32>().unwrap()[0]))
                .collect();
            let expected: HashMap<String, f32> = [
                ("conv.weight".to_string(), 3.0),
                ("bn.weight".to_string(), bn),
            ]
            .into();
            assert_eq!(kept, expected, "{branch:?}");
        }
    }
}
