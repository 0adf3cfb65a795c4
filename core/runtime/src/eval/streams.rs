//! The sub-streams of an evaluation's randomness: the third counter of every
//! [`Rng::derive`](rossl_api::rng::Rng::derive) path under [`stream::EVAL`] (after the evaluator's
//! index), so that each use draws from its own stream. The values are part of every result's
//! reproducibility: changing one changes the numbers.
//!
//! [`stream::EVAL`]: rossl_api::rng::stream::EVAL

/// The seed of the evaluator's fit (`[EVAL, evaluator, FIT]`).
pub const FIT: u64 = 0;
/// The main pass's prediction draw per batch (`[EVAL, evaluator, PREDICTION, batch]`).
pub const PREDICTION: u64 = 1;
/// The main pass's gradient draws per attack
/// (`[EVAL, evaluator, ATTACK_DRAWS, radius, attack, batch]`, the radius by its rank by size).
pub const ATTACK_DRAWS: u64 = 2;
/// The sanity checks' prediction draws (`[EVAL, evaluator, CHECK_PREDICTION, tag, batch]`).
pub const CHECK_PREDICTION: u64 = 3;
/// The sanity checks' gradient draws (`[EVAL, evaluator, CHECK_DRAWS, tag, batch]`).
pub const CHECK_DRAWS: u64 = 4;
/// The gradient check's gradient draws (`[EVAL, evaluator, GRADIENT_DRAWS, batch]`).
pub const GRADIENT_DRAWS: u64 = 6;
/// The gradient check's prediction draw (`[EVAL, evaluator, GRADIENT_PREDICTION, batch]`).
pub const GRADIENT_PREDICTION: u64 = 7;
/// The corruption measurement's prediction draw per batch
/// (`[EVAL, evaluator, CORRUPTION_PREDICTION, batch]`; the corruptions themselves draw from
/// `stream::CORRUPTIONS`, the same for every evaluator).
pub const CORRUPTION_PREDICTION: u64 = 8;
/// The sanity checks' attack randomness, under `stream::ATTACK` where the main pass has the
/// radius's rank by size (`[ATTACK, evaluator, CHECK_ATTACKS, tag, batch]`; the main pass's is
/// `[ATTACK, evaluator, radius, attack, batch]`).
pub const CHECK_ATTACKS: u64 = 99;
