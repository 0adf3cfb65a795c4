//! The `[train.anneal]` table: stepwise schedules over the run's passes of the views'
//! augmentation strength and of the `pgd` regime's loss weights (DynACL).

use serde::{Deserialize, Serialize};

/// Stepwise schedules over training (DynACL, Luo, Wang & Wang, ICLR 2023): the run's `E`
/// passes over the data fall into `stages` stages of equal length, pass `e` (0-based) in stage
/// `floor(e * stages / E)`, and a scheduled value is `start + (end - start) * stage / stages`.
/// The first stage trains at the start values; `end` is where the line would arrive after the
/// last pass, so the last stage is `(stages - 1) / stages` of the way (DynACL's strength goes
/// 1, 0.95, ..., 0.05). With E = 1000 and 20 stages the stage is DynACL's `floor(e / 50)`; at
/// CPU scale (a few passes) the schedule still moves. Not written at its defaults (no
/// schedule), so configurations without it keep their digests.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AnnealConfig {
    /// Stages of the schedules (DynACL: 20 stages of 50 epochs in 1000); 0: no schedule.
    pub stages: usize,
    /// Augmentation strength at the end of the line (it starts at 1, the views as configured):
    /// at strength s the view strategy weakens its augmentation, as its `at_strength` says
    /// (`multi-crop`: crop scale (1 - (1 - low) s, 1), colour jitter and its probability and the
    /// probabilities of grayscale, blur and solarize times s, flips unchanged). DynACL: 0.
    pub view_strength_end: f64,
    /// Weight of the clean views' loss at the end of the line; it starts at
    /// `train.pgd.clean_weight` (DynACL: 1/6, from 1/2). Unset: constant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clean_weight_end: Option<f64>,
    /// Weight of the perturbed views' loss at the end of the line; it starts at
    /// `train.pgd.adversarial_weight` (DynACL: 5/6, from 1/2). Unset: constant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adversarial_weight_end: Option<f64>,
}

impl Default for AnnealConfig {
    fn default() -> Self {
        AnnealConfig {
            stages: 0,
            view_strength_end: 1.0,
            clean_weight_end: None,
            adversarial_weight_end: None,
        }
    }
}

/// The scheduled values of one pass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scheduled {
    /// The stage (0-based).
    pub stage: usize,
    /// The views' augmentation strength.
    pub view_strength: f64,
    /// The weight of the clean views' loss (`pgd` regime).
    pub clean_weight: f64,
    /// The weight of the perturbed views' loss (`pgd` regime).
    pub adversarial_weight: f64,
}

impl AnnealConfig {
    /// Whether these are the defaults (then not written into resolved configurations).
    pub fn is_default(&self) -> bool {
        self == &AnnealConfig::default()
    }

    /// Whether a schedule is configured (`stages` > 0).
    pub fn is_active(&self) -> bool {
        self.stages > 0
    }

    /// The stage of pass `epoch` (0-based) of `epochs`: `floor(epoch * stages / epochs)`, at
    /// most `stages - 1`; 0 without a schedule.
    pub fn stage(&self, epoch: usize, epochs: usize) -> usize {
        if self.stages == 0 || epochs == 0 {
            return 0;
        }
        let stage = (epoch as u128 * self.stages as u128) / epochs as u128;
        (stage as usize).min(self.stages - 1)
    }

    /// The value at pass `epoch` of `epochs` of the line from `start` to `end`: exactly `start`
    /// in the first stage.
    pub fn value(&self, start: f64, end: f64, epoch: usize, epochs: usize) -> f64 {
        let stage = self.stage(epoch, epochs);
        if stage == 0 {
            return start;
        }
        start + (end - start) * stage as f64 / self.stages as f64
    }

    /// Every scheduled value at pass `epoch` of `epochs`, the weights starting at
    /// `(clean_weight, adversarial_weight)` (`train.pgd`'s).
    pub fn at(&self, epoch: usize, epochs: usize, (clean, adversarial): (f64, f64)) -> Scheduled {
        let line =
            |start: f64, end: Option<f64>| self.value(start, end.unwrap_or(start), epoch, epochs);
        Scheduled {
            stage: self.stage(epoch, epochs),
            view_strength: line(1.0, Some(self.view_strength_end)),
            clean_weight: line(clean, self.clean_weight_end),
            adversarial_weight: line(adversarial, self.adversarial_weight_end),
        }
    }

    /// Whether the views' strength moves.
    pub fn anneals_views(&self) -> bool {
        self.is_active() && self.view_strength_end != 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dynacl() -> AnnealConfig {
        AnnealConfig {
            stages: 20,
            view_strength_end: 0.0,
            clean_weight_end: Some(1.0 / 6.0),
            adversarial_weight_end: Some(5.0 / 6.0),
        }
    }

    #[test]
    fn dynacl_values_at_1000_epochs_follow_the_papers_formulas() {
        // DynACL (0-based epoch e, K = 50, E = 1000, lambda = 2/3): strength 1 - floor(e/K) K/E,
        // w = min(1 + floor(e/K) (K/E) lambda, 2), loss 1/2 [(2 - w) clean + w adv]
        let a = dynacl();
        for e in [0usize, 1, 49, 50, 51, 99, 100, 500, 949, 950, 999] {
            let k = (e / 50) as f64;
            let s = 1.0 - k * 50.0 / 1000.0;
            let w = (1.0 + k * (50.0 / 1000.0) * (2.0 / 3.0)).min(2.0);
            let got = a.at(e, 1000, (0.5, 0.5));
            assert!((got.view_strength - s).abs() < 1e-12, "e {e}: {got:?}");
            assert!(
                (got.clean_weight - (2.0 - w) / 2.0).abs() < 1e-12,
                "e {e}: {got:?}"
            );
            assert!(
                (got.adversarial_weight - w / 2.0).abs() < 1e-12,
                "e {e}: {got:?}"
            );
        }
        let first = a.at(0, 1000, (0.5, 0.5));
        assert_eq!((first.view_strength, first.clean_weight), (1.0, 0.5));
        assert_eq!(a.at(49, 1000, (0.5, 0.5)), first);
        assert_eq!(a.at(50, 1000, (0.5, 0.5)).stage, 1);
        let last = a.at(999, 1000, (0.5, 0.5));
        assert_eq!(last.stage, 19);
        assert!((last.view_strength - 0.05).abs() < 1e-12);
        assert!((last.adversarial_weight - (1.0 + 19.0 / 30.0) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn stages_are_equal_shares_of_any_number_of_passes() {
        let a = dynacl();
        // 3 passes, 20 stages: floor(e * 20 / 3) = 0, 6, 13
        let stages: Vec<usize> = (0..3).map(|e| a.stage(e, 3)).collect();
        assert_eq!(stages, [0, 6, 13]);
        assert!((a.at(2, 3, (0.5, 0.5)).view_strength - 0.35).abs() < 1e-12);
        // more stages than passes never passes the last stage; fewer split the passes evenly
        assert_eq!(a.stage(39, 40), 19);
        let four = AnnealConfig {
            stages: 4,
            ..dynacl()
        };
        let stages: Vec<usize> = (0..8).map(|e| four.stage(e, 8)).collect();
        assert_eq!(stages, [0, 0, 1, 1, 2, 2, 3, 3]);
        // no schedule: every value is its start
        let off = AnnealConfig::default();
        assert!(!off.is_active() && off.is_default());
        let got = off.at(7, 8, (0.25, 0.75));
        assert_eq!(
            (got.view_strength, got.clean_weight, got.adversarial_weight),
            (1.0, 0.25, 0.75)
        );
    }
}
