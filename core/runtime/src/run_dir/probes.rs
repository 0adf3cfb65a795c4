//! `probe-<evaluator>.safetensors`: the classifier tensors (probe head, kNN bank) that each
//! evaluator attacked, under the names of [`rossl_api::components::Classifier::tensors`].

use super::{files, RunDir};
use crate::{Error, Result};
use candle_core::Tensor;

impl RunDir {
    /// Writes the classifier tensors that evaluator `evaluator` attacked (atomically, on the
    /// CPU).
    pub fn write_probe_head(&self, evaluator: &str, head: &[(String, Tensor)]) -> Result<()> {
        let name = files::probe(evaluator);
        let path = self.file(&name);
        let tmp = self.file(&format!(".{name}.tmp"));
        let tensors: std::collections::HashMap<String, Tensor> = head
            .iter()
            .map(|(n, t)| Ok((n.clone(), t.to_device(&candle_core::Device::Cpu)?)))
            .collect::<Result<_>>()?;
        candle_core::safetensors::save(&tensors, &tmp)
            .map_err(|e| Error::msg(format!("writing {}: {e}", tmp.display())))?;
        std::fs::rename(&tmp, &path)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))
    }

    /// The file names of the probe heads in the folder, sorted.
    pub fn probe_heads(&self) -> Result<Vec<String>> {
        let entries = std::fs::read_dir(self.path())
            .map_err(|e| Error::io(format!("listing {}", self.path().display()), e))?;
        let mut names: Vec<String> = entries
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| files::is_probe(name))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Removes the probe heads of evaluators other than `evaluators`: those of an earlier
    /// evaluation of the folder that the latest `results.json` no longer lists.
    pub fn remove_other_probe_heads(&self, evaluators: &[String]) -> Result<()> {
        let kept: Vec<String> = evaluators.iter().map(|e| files::probe(e)).collect();
        for name in self.probe_heads()? {
            if !kept.contains(&name) {
                let path = self.file(&name);
                std::fs::remove_file(&path)
                    .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
                tracing::info!("removed {} (an earlier evaluation's)", path.display());
            }
        }
        Ok(())
    }
}
