//! # rossl-api
//!
//! What a rossl plugin author reads: the six kinds of component as traits, the registry and its
//! macros, typed parameters, errors, seeded randomness and the adversarial helpers.
//!
//! - [`components`]: datasets, encoders, view strategies, SSL losses, attacks and evaluators as
//!   traits, with what they are built from and the evaluation presets;
//! - [`registry`]: static registration ([`register!`], [`register_preset!`]) and look-up by name;
//! - [`mod@params`] and [`section`]: a component's typed parameters, read from its own section of the
//!   configuration with the provenance of every value;
//! - [`rng`], [`adversarial`], [`norm`], [`batch`]: seeded randomness, input gradients, the
//!   L-infinity and L2 threat models, batches of images;
//! - [`stamp`]: the ABI stamp that dynamic plugins embed ([`declare_plugin!`]).
//!
//! Layers, custom operations and optimisers are in `rossl-nn`; the training loop, the evaluation
//! harness and the configuration in `rossl-runtime`, which plugins never need.

pub mod adversarial;
pub mod batch;
pub mod components;
pub mod error;
pub mod location;
pub mod norm;
pub mod params;
pub mod provenance;
pub mod registry;
pub mod rng;
pub mod section;
pub mod stamp;
pub mod suggest;

pub use error::{Error, Result};
pub use params::{ParamError, Params};

/// Re-exports for the registration macros; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use inventory;
    pub use toml;
}
