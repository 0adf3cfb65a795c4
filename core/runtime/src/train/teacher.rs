//! A frozen teacher from a finished run folder: its encoder built from the folder's own
//! `config.toml` and restored from its checkpoint.

use super::encoder_tensors::restore_encoder;
use crate::assembly::Assembly;
use crate::checkpoint;
use crate::config::ConfigSources;
use crate::device::SelectedDevice;
use crate::run_dir::files;
use crate::{Error, Result};
use rossl_api::components::Encoder;
use std::path::Path;

/// The encoder of the finished run in `folder`, on `device`. A link, a folder without a
/// configuration or checkpoint, and an unfinished run are errors naming `train.target.from`.
pub fn load(folder: &Path, device: &SelectedDevice) -> Result<Box<dyn Encoder>> {
    let named = folder.display();
    let fail = |why: String| Error::Config(format!("`train.target.from` = {named:?}: {why}"));
    if folder.is_symlink() {
        return Err(fail(
            "is a link; name the run folder itself (runs/<method>-<digest>), so that this \
             run's configuration names its teacher for good"
                .into(),
        ));
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
