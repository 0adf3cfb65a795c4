//! The keys of an evaluator's section that the runtime reads for every evaluator
//! ([`rossl_api::components::RUNTIME_KEYS`]): the share of training labels, and another dataset
//! to fit and test on (transfer) with the adaptations its images need.

use crate::{Error, Result};
use figment::Figment;
use rossl_api::components::{Dataset, DatasetInfo, RUNTIME_KEYS};
use rossl_api::provenance::{from_figment, source_of};
use rossl_api::registry;
use serde::{Deserialize, Serialize};

/// What one evaluator fits and is tested on, beyond the run's own data
/// (`[eval.<evaluator>] label_fraction`, `dataset`, `resize`, `channels`). Written into the
/// resolved configuration only where it differs from the defaults, so that evaluations
/// configured before these keys existed keep their digests.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct EvaluatorData {
    /// The share of the training labels the evaluator fits on, in (0, 1]: a class-balanced
    /// subset drawn with the run's seed (1: every training image).
    #[serde(skip_serializing_if = "is_one")]
    pub label_fraction: f64,
    /// Another registered dataset to fit and test on (transfer; its parameters in
    /// `[data.<name>]`); empty: the run's dataset.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub dataset: String,
    /// Resize the transfer dataset's images to the run's image size (bilinear, as PIL and
    /// torchvision's `Resize` do).
    #[serde(skip_serializing_if = "is_false")]
    pub resize: bool,
    /// Convert the transfer dataset's channels to the run's (grey repeated to RGB, or RGB to
    /// luma).
    #[serde(skip_serializing_if = "is_false")]
    pub channels: bool,
}

fn is_one(x: &f64) -> bool {
    *x == 1.0
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Default for EvaluatorData {
    fn default() -> Self {
        EvaluatorData {
            label_fraction: 1.0,
            dataset: String::new(),
            resize: false,
            channels: false,
        }
    }
}

impl EvaluatorData {
    /// Reads and checks evaluator `name`'s runtime keys in `figment`; errors name the key and
    /// where its value came from.
    pub fn read(figment: &Figment, name: &str) -> Result<Self> {
        let section = format!("eval.{name}");
        let mut table = toml::Table::new();
        for key in RUNTIME_KEYS {
            let path = format!("{section}.{key}");
            if let Ok(value) = figment.find_value(&path) {
                let value: toml::Value = value.deserialize().map_err(|e| from_figment(e, &path))?;
                table.insert(key.to_string(), value);
            }
        }
        let data: EvaluatorData = toml::Value::Table(table).try_into().map_err(|e| {
            Error::Config(format!(
                "`{section}`: {e} (in {})",
                source_of(figment, &section)
            ))
        })?;
        data.check(figment, &section)?;
        Ok(data)
    }

    fn check(&self, figment: &Figment, section: &str) -> Result<()> {
        let f = self.label_fraction;
        if !(f > 0.0 && f <= 1.0) {
            let key = format!("{section}.label_fraction");
            return Err(Error::Config(format!(
                "`{key}` = {f}: a share of the training labels must be in (0, 1], e.g. 0.01, \
                 0.1 or 1.0 (in {})",
                source_of(figment, &key)
            )));
        }
        if !self.dataset.is_empty() {
            let key = format!("{section}.dataset");
            registry::find::<dyn Dataset>(&self.dataset, &source_of(figment, &key))?;
        } else {
            for (key, set) in [("resize", self.resize), ("channels", self.channels)] {
                if set {
                    let key = format!("{section}.{key}");
                    return Err(Error::Config(format!(
                        "`{key}` adapts the images of a transfer dataset, and `{section}.dataset` \
                         is not set (in {})",
                        source_of(figment, &key)
                    )));
                }
            }
        }
        Ok(())
    }

    /// The adaptations the transfer dataset's images (of shape `source`) need to reach the run's
    /// (`target`, those of dataset `run_dataset`), said in words; an error naming
    /// `eval.<evaluator>.resize` or `.channels` when one is needed and not asked for, or when
    /// the channels cannot be converted.
    pub fn adaptation(
        &self,
        evaluator: &str,
        source: &DatasetInfo,
        target: &DatasetInfo,
        run_dataset: &str,
    ) -> Result<Vec<String>> {
        let key = |k: &str| format!("eval.{evaluator}.{k}");
        let mut adaptation = Vec::new();
        if source.channels != target.channels {
            let convertible = matches!((source.channels, target.channels), (1, 3) | (3, 1));
            if !(self.channels && convertible) {
                return Err(Error::Config(format!(
                    "`{}` = \"{}\" has {} channel(s), the encoder takes {} (those of `{run_dataset}`): {}",
                    key("dataset"),
                    self.dataset,
                    source.channels,
                    target.channels,
                    if convertible {
                        format!(
                            "set `{}` = true to convert them (grey repeated to RGB, or RGB to luma)",
                            key("channels")
                        )
                    } else {
                        "only 1 <-> 3 channels can be converted".to_string()
                    }
                )));
            }
            adaptation.push(format!(
                "channels {} -> {} ({})",
                source.channels,
                target.channels,
                if target.channels == 3 {
                    "grey repeated"
                } else {
                    "luma"
                }
            ));
        }
        if (source.height, source.width) != (target.height, target.width) {
            if !self.resize {
                return Err(Error::Config(format!(
                    "`{}` = \"{}\" has {}x{} images, the encoder takes {}x{} (those of \
                     `{run_dataset}`): set `{}` = true to resize them (bilinear)",
                    key("dataset"),
                    self.dataset,
                    source.height,
                    source.width,
                    target.height,
                    target.width,
                    key("resize")
                )));
            }
            adaptation.push(format!(
                "resized {}x{} -> {}x{} (bilinear, antialiased)",
                source.height, source.width, target.height, target.width
            ));
        }
        Ok(adaptation)
    }

    /// The keys that differ from the defaults, as a table to merge into the evaluator's
    /// resolved parameters.
    pub fn to_table(&self) -> Result<toml::Table> {
        registry::to_table(self)
    }

    /// Whether it changes nothing: every training image of the run's own dataset.
    pub fn is_default(&self) -> bool {
        *self == EvaluatorData::default()
    }
}
