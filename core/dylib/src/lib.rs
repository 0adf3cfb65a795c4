//! rossl-core, and with it candle and inventory, built as one Rust `dylib` (the `bevy_dylib`
//! pattern). A rossl host built with the `dynamic` feature and every dynamic plugin link this
//! library, so the process holds a single copy of candle: its tensor identifiers, and therefore
//! gradients, stay consistent across the host and plugins, and plugins' registrations land in the
//! host's registry.
//!
//! Nothing uses this crate's items directly: depending on it is what matters.
#![warn(missing_docs)]
#![allow(unused_imports)]
pub use rossl_core;
