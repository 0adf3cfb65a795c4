//! An example dynamic rossl plugin: Wang and Isola's uniformity loss (`uniformity.rs`) and a
//! random-noise baseline attack (`random_noise.rs`), each one source file. See README.md in this
//! folder for how to build and load it, and docs/writing-a-plugin.md for the full story.
#![warn(missing_docs)]

// Link the shared rossl-api and rossl-nn (with rossl-kernels and candle): the plugin must not
// carry copies of its own.
#[allow(unused_extern_crates)]
extern crate rossl_dylib;

mod random_noise;
mod uniformity;

// Embed the ABI stamp the host checks before loading this library.
rossl_api::declare_plugin!();
