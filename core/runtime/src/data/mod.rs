//! Data plumbing: batches of views prepared in the background (whole-image batches are
//! `rossl_api::data`).

mod loader;

pub use loader::{EpochBatches, Loader, LoaderSettings, ViewBatch};
