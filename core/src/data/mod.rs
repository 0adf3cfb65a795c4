//! Data plumbing: batches of views prepared in the background, and whole-image batches.

mod batches;
mod loader;

pub use batches::{image_batch, images_tensor};
pub use loader::{EpochBatches, Loader, LoaderSettings, ViewBatch};
