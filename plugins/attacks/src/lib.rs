//! rossl's built-in attacks and evaluation presets: `pgd` and `pgd-linf` ([`pgd`]: projected
//! gradient descent in an L-infinity or L2 ball, zero or random start, restarts; `pgd-linf` is
//! held to L-infinity), `pgd-momentum` ([`momentum`]: MI-FGSM, signed steps along an accumulated
//! normalised gradient), `fgsm` ([`fgsm`]: one signed-gradient step, or FGM's normalised-gradient
//! step under L2), `apgd` ([`apgd`]: Croce and Hein's step-size-free APGD, on any loss), `fab`
//! ([`fab`]: the targeted minimal-distortion FAB-T, L-infinity or L2) and `square` ([`square`]:
//! the score-based Square attack); the presets `strong`, `autoattack`, `paper` and `none`
//! ([`presets`]). Each attack maximises an objective given as a closure of the input, so the same
//! attack serves adversarial training (the SSL loss) and evaluation (a probe's loss).
//!
//! `pgd`, `fgsm`, `apgd`, `fab` and `square` take the threat model as the parameter `norm`
//! ([`rossl_api::norm::Norm`]: `"linf"`, the default, or `"l2"`); under L-infinity they give the
//! same numbers as before `norm` existed.
#![warn(missing_docs)]

pub mod apgd;
pub mod fab;
pub mod fgsm;
pub mod momentum;
pub mod pgd;
pub mod presets;
mod select;
pub mod square;
