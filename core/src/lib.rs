//! # rossl-core
//!
//! The runtime of rossl, a framework for robust self-supervised learning research on candle.
//!
//! - [`components`]: the six kinds of component (datasets, encoders, view strategies, SSL losses,
//!   attacks, evaluators) as traits;
//! - [`registry`]: static registration of components ([`register!`]) and look-up by name;
//! - [`config`]: the layered configuration (defaults, files, `ROSSL_` environment, `--set`);
//! - [`device`], [`rng`], [`run_dir`]: devices and threads, seeded randomness, run folders.
//!
//! Plugin crates depend on this crate alone: the registration macro re-exports what it needs.
#![warn(missing_docs)]

pub mod adversarial;
pub mod assembly;
pub mod checkpoint;
pub mod components;
pub mod config;
pub mod data;
pub mod device;
pub mod error;
pub mod eval;
pub mod kernels;
pub mod nn;
pub mod objective;
pub mod ops;
pub mod optim;
pub mod plugins;
pub mod profile;
pub mod progress;
pub mod registry;
pub mod rng;
pub mod run_dir;
pub mod suggest;
pub mod train;

pub use error::{Error, Result};

/// Re-exports for the registration macros; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use inventory;
    pub use toml;
}
