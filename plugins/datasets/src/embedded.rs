//! `embedded`: a class-balanced Fashion-MNIST subset compiled into the binary (see
//! `plugins/datasets/embedded/README.md` for its origin, licence and the script that makes it).

use crate::files::gunzip_if_needed;
use crate::mnist::image_set_from_idx;
use rossl_api::components::{Dataset, DatasetInfo, ImageSet, Split};
use rossl_api::registry::Params;
use rossl_api::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;

static TRAIN_IMAGES: &[u8] = include_bytes!("../embedded/train-images-idx3-ubyte.gz");
static TRAIN_LABELS: &[u8] = include_bytes!("../embedded/train-labels-idx1-ubyte.gz");
static TEST_IMAGES: &[u8] = include_bytes!("../embedded/t10k-images-idx3-ubyte.gz");
static TEST_LABELS: &[u8] = include_bytes!("../embedded/t10k-labels-idx1-ubyte.gz");

/// `embedded` has no parameters (subsets are chosen with `data.train_subset` and
/// `data.test_subset`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedParams {}

impl Params for EmbeddedParams {}

/// The embedded Fashion-MNIST subset: 10,000 training and 2,000 test images, 1x28x28, 10 classes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Embedded;

impl Dataset for Embedded {
    fn info(&self) -> DatasetInfo {
        DatasetInfo {
            channels: 1,
            height: 28,
            width: 28,
            classes: 10,
        }
    }

    fn load(&self, split: Split) -> Result<ImageSet> {
        let (images, labels, names) = match split {
            Split::Train => (
                TRAIN_IMAGES,
                TRAIN_LABELS,
                ["embedded:train-images", "embedded:train-labels"],
            ),
            Split::Test => (
                TEST_IMAGES,
                TEST_LABELS,
                ["embedded:t10k-images", "embedded:t10k-labels"],
            ),
        };
        let (ip, lp) = (Path::new(names[0]), Path::new(names[1]));
        let images = gunzip_if_needed(ip, images.to_vec())?;
        let labels = gunzip_if_needed(lp, labels.to_vec())?;
        image_set_from_idx(ip, &images, lp, &labels, 10)
    }
}

rossl_api::register! {
    kind: dataset,
    name: "embedded",
    summary: "Fashion-MNIST subset inside the binary (10k train / 2k test, 1x28x28, 10 classes, MIT licence): no download",
    params: EmbeddedParams,
    build: |_p, _ctx| Ok(Box::new(Embedded)),
}
