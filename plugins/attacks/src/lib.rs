//! rossl's built-in attacks and evaluation presets: `pgd-linf` ([`pgd`]: projected gradient
//! descent in an L-infinity ball, zero or random start, restarts), `pgd-momentum` ([`momentum`]:
//! MI-FGSM, signed steps along an accumulated normalised gradient), `fgsm` ([`fgsm`]: one
//! signed-gradient step), `apgd` ([`apgd`]: Croce and Hein's step-size-free APGD, on any loss),
//! `fab` ([`fab`]: the targeted minimal-distortion FAB-T, L-infinity or L2) and `square`
//! ([`square`]: the score-based Square attack); the presets `strong`, `paper` and `none`
//! ([`presets`]). Each attack maximises an objective given as a closure of the input, so the same
//! attack serves adversarial training (the SSL loss) and evaluation (a probe's loss).
#![warn(missing_docs)]

pub mod apgd;
pub mod fab;
pub mod fgsm;
pub mod momentum;
pub mod pgd;
pub mod presets;
mod select;
pub mod square;
