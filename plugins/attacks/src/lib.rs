//! rossl's built-in attacks: `pgd-linf` (projected gradient descent in an L-infinity ball, zero or
//! random start, restarts), `fgsm` (one signed-gradient step) and `apgd-ce` (Croce and Hein's
//! step-size-free APGD). Each maximises an objective given as a closure of the input, so the
//! same attack serves adversarial training (the SSL loss) and evaluation (a probe's loss).
#![warn(missing_docs)]

pub mod apgd;
pub mod fgsm;
pub mod pgd;
mod select;
