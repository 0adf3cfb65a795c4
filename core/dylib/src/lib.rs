//! rossl-api and rossl-nn, and with them rossl-kernels, candle and inventory, built as one Rust
//! `dylib` (the `bevy_dylib` pattern). A rossl host built with the `dynamic` feature and every
//! dynamic plugin link this library, so the process holds a single copy of candle: its tensor
//! identifiers, and therefore gradients, stay consistent across the host and plugins, and
//! plugins' registrations land in the host's registry. The runtime is not in it: it is the
//! host's own, so changing it never invalidates a built plugin.
//!
//! Nothing uses this crate's items directly: depending on it is what matters.
#![allow(unused_imports)]
pub use rossl_api;
pub use rossl_kernels;
pub use rossl_nn;
