//! # rossl
//!
//! Robust self-supervised learning research on candle: the command line, and every built-in
//! plugin linked into one binary. The runtime is [`rossl_runtime`]; the built-in components live in
//! the crates under `plugins/`.
#![warn(missing_docs)]

// Every built-in plugin crate must be named here: the linker drops crates that nothing names,
// and their registrations vanish with them (a test in tests/registry.rs guards this).
extern crate rossl_attacks;
extern crate rossl_datasets;
extern crate rossl_encoders;
extern crate rossl_evaluators;
extern crate rossl_losses;
extern crate rossl_views;

// With the `dynamic` feature, rossl-api, rossl-nn and rossl-kernels (and candle) come from
// librossl_dylib, shared with plugins.
#[cfg(feature = "dynamic")]
extern crate rossl_dylib;

pub use rossl_api;
pub use rossl_kernels;
pub use rossl_nn;
pub use rossl_runtime;

pub mod cli;
pub mod commands;
pub mod logging;
pub mod plot;
pub mod report;
pub mod study;
pub mod terminal;

/// Names of the built-in plugin crates linked into this binary.
pub const BUILTIN_PLUGIN_CRATES: [&str; 6] = [
    "rossl_datasets",
    "rossl_views",
    "rossl_encoders",
    "rossl_losses",
    "rossl_attacks",
    "rossl_evaluators",
];
