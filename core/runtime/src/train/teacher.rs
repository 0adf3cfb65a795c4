//! A frozen teacher from a finished run folder (its encoder built from the folder's own
//! `config.toml` and restored from its checkpoint) or from an exported weights file (built as
//! the student's encoder, restored from the file).

use super::encoder_tensors::{init_encoder_from, restore_encoder};
use crate::assembly::Assembly;
use crate::checkpoint;
use crate::config::ConfigSources;
use crate::run_dir::files;
use crate::{Error, Result};
use rossl_api::components::Encoder;
use std::path::Path;

/// The encoder of the finished run in `folder` (or of the weights file `folder`, built as
/// `student`'s encoder), on `student`'s device. A link, a folder without a configuration or
/// checkpoint, an unfinished run and a file that does not hold the encoder's tensors are errors
/// naming `train.target.from`.
pub fn load(folder: &Path, student: &Assembly) -> Result<Box<dyn Encoder>> {
    let device = &student.device;
    let named = folder.display();
    let fail = |why: String| Error::Config(format!("`train.target.from` = {named:?}: {why}"));
    if folder.is_symlink() {
        return Err(fail(
            "is a link; name the run folder itself (runs/<method>-<digest>), so that this \
             run's configuration names its teacher for good"
                .into(),
        ));
    }
    if folder.is_file() {
        return load_exported(folder, student).map_err(|e| fail(e.to_string()));
    }
    let (config, ckpt_path) = (folder.join(files::CONFIG), folder.join(files::CHECKPOINT));
    if !config.is_file() || !ckpt_path.is_file() {
        return Err(fail(format!(
            "is not a finished rossl run folder (it needs `{}` and `{}`)",
            files::CONFIG,
            files::CHECKPOINT
        )));
    }
    let sources = ConfigSources {
        files: vec![config],
        sets: Vec::new(),
        use_env: false,
    };
    let resolved =
        crate::plugins::resolve(&sources).map_err(|e| fail(format!("its configuration: {e}")))?;
    let teacher = Assembly::build(resolved, device.clone())?;
    let ckpt = checkpoint::load(&ckpt_path, &device.device)?;
    if !ckpt.state.complete {
        return Err(fail(format!(
            "the run is unfinished ({} passes); finish it first (`rossl run ... --resume {named}`)",
            ckpt.state.epochs_done
        )));
    }
    restore_encoder(teacher.encoder.as_ref(), &ckpt.tensors)?;
    tracing::info!(teacher = %named, "loaded the frozen teacher");
    Ok(teacher.encoder)
}

/// An exported encoder (`rossl export`, or any safetensors file under the encoder's tensor
/// names): built as `student`'s encoder, restored from `file`.
fn load_exported(file: &Path, student: &Assembly) -> Result<Box<dyn Encoder>> {
    let tensors = candle_core::safetensors::load(file, &student.device.device)
        .map_err(|e| Error::msg(format!("cannot be read as a safetensors file: {e}")))?;
    let encoder = student.build_encoder()?;
    init_encoder_from(encoder.as_ref(), &tensors).map_err(|e| {
        Error::msg(format!(
            "{e}: a teacher from a weights file is built as this run's encoder (`encoder.{}`), so the file must hold its tensors under their names, as `rossl export` writes them",
            student.config.run.encoder.name
        ))
    })?;
    tracing::info!(teacher = %file.display(), "loaded the frozen teacher from a weights file");
    Ok(encoder)
}
