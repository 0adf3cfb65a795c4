//! `robustbench.json`: a run's result card, one entry per evaluator and radius, with RobustBench's
//! model-info fields (so that the numbers can be read as a leaderboard entry is) and the fields a
//! robust self-supervised result needs besides: how the encoder was pre-trained, what that cost,
//! and how it was evaluated.

use super::{files, RunDir};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// One entry of the card: one evaluator at one radius.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CardEntry {
    /// RobustBench's `name`: the method and the run folder.
    pub name: String,
    /// RobustBench's `link`, `authors`, `venue` and `reported`: empty (for the user to fill in,
    /// as RobustBench's own files are filled by hand).
    pub link: String,
    /// See `link`.
    pub authors: String,
    /// See `link`.
    pub venue: String,
    /// See `link`.
    pub reported: String,
    /// RobustBench's `additional_data`: `true` when the encoder saw data beyond the evaluated
    /// dataset (a transfer: pre-trained on another one), else `false`.
    pub additional_data: bool,
    /// RobustBench's `number_forward_passes`: encoder passes per prediction (1, or the views a
    /// randomised evaluator such as `multi-crop-probe` averages).
    pub number_forward_passes: usize,
    /// The dataset's name.
    pub dataset: String,
    /// The encoder's name and parameters.
    pub architecture: String,
    /// RobustBench's threat model: `Linf` or `L2` (`eval.norm`).
    pub threat_model: String,
    /// The radius, as RobustBench writes it (`8/255` under L-infinity, `0.5` under L2).
    pub eps: String,
    /// Clean accuracy in %, as a string with two decimals (RobustBench's form).
    pub clean_acc: String,
    /// AutoAttack "standard" accuracy in %: when the evaluation ran the `autoattack` preset and
    /// no extra attack (then it equals `robust_acc`), else `null`. At a radius above the
    /// evaluation's smallest it counts the breaks found at the smaller radii too
    /// (`ssl.breaks_carried_from`), so it can be lower than AutoAttack run at that radius alone.
    pub autoattack_acc: Option<String>,
    /// The per-example worst case over the evaluation's attacks at `eps`, in %.
    pub robust_acc: String,
    /// The evaluation's attack preset, whose attacks `robust_acc` is the worst case of.
    pub attack_preset: String,
    /// The test images evaluated.
    pub test_images: usize,
    /// How the encoder was pre-trained and evaluated.
    pub ssl: SslFields,
}

/// What robust self-supervised learning needs on a result card besides RobustBench's fields.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SslFields {
    /// The pre-training method (`method.name`).
    pub pretraining_method: String,
    /// The training regime (`standard`, `pgd`, `free`).
    pub regime: String,
    /// Views per image in pre-training.
    pub views_per_image: usize,
    /// Encoder forward passes of pre-training.
    pub forward_passes: u64,
    /// Encoder backward passes of pre-training.
    pub backward_passes: u64,
    /// Wall-clock seconds of pre-training.
    pub train_seconds: f64,
    /// The evaluator, e.g. `linear-probe`.
    pub evaluator: String,
    /// What the evaluator is (its registration's summary).
    pub evaluator_summary: String,
    /// The fraction of the training labels the evaluator fitted on (1: all of them).
    pub label_fraction: f64,
    /// The dataset pre-trained on, when the evaluation's (`dataset`) is another: a transfer.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pretraining_dataset: String,
    /// How a transfer dataset's images were adapted to the encoder (resize, channels).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adaptation: Vec<String>,
    /// The smaller radii of the same evaluation whose breaks count at this one (their
    /// adversarial points lie in this ball too); empty at the smallest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub breaks_carried_from: Vec<String>,
    /// The run's seed.
    pub seed: u64,
    /// The training configuration's digest.
    pub config_digest: String,
}

impl RunDir {
    /// Writes the result card `robustbench.json` atomically.
    pub fn write_card(&self, card: &[CardEntry]) -> Result<()> {
        let text = serde_json::to_string_pretty(card)
            .map_err(|e| Error::msg(format!("{}: {e}", files::ROBUSTBENCH)))?;
        self.write(files::ROBUSTBENCH, &text)
    }

    /// Reads the result card, if the run has one; errors name the file and the field.
    pub fn read_card(&self) -> Result<Option<Vec<CardEntry>>> {
        let Some(text) = self.read(files::ROBUSTBENCH)? else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::data(self.file(files::ROBUSTBENCH), format!("unreadable: {e}")))
    }
}
