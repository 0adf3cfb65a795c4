//! `cifar10` and `cifar100` from the official binary files.
//!
//! CIFAR-10 (`cifar-10-batches-bin`): `data_batch_1.bin` .. `data_batch_5.bin` and
//! `test_batch.bin`, records of 1 label byte and 3072 pixel bytes (red, green, blue planes of
//! 32x32). CIFAR-100 (`cifar-100-binary`): `train.bin` and `test.bin`, records of a coarse label
//! byte, a fine label byte and 3072 pixel bytes.

use crate::files::read_maybe_gzip;
use rossl_api::components::{Dataset, DatasetInfo, ImageSet, Split};
use rossl_api::registry::{ParamError, Params};
use rossl_api::{Error, Result};
use std::path::{Path, PathBuf};

const PIXELS: usize = 3 * 32 * 32;
const HOW_TO_GET_10: &str =
    "download the binary version of CIFAR-10 (cifar-10-binary.tar.gz) from \
    https://www.cs.toronto.edu/~kriz/cifar.html, extract it and set data.cifar10.root to the \
    `cifar-10-batches-bin` folder";
const HOW_TO_GET_100: &str = "download the binary version of CIFAR-100 (cifar-100-binary.tar.gz) \
    from https://www.cs.toronto.edu/~kriz/cifar.html, extract it and set data.cifar100.root to the \
    `cifar-100-binary` folder";

rossl_api::params! {
    /// Parameters of `cifar10`.
    pub struct Cifar10Params {
        /// The `cifar-10-batches-bin` folder.
        pub root: PathBuf = PathBuf::from("data/cifar-10-batches-bin"),
    }
}

impl Params for Cifar10Params {
    fn paths_mut(&mut self) -> Vec<(&'static str, &mut PathBuf)> {
        vec![("root", &mut self.root)]
    }
}

rossl_api::params! {
    /// Parameters of `cifar100`.
    pub struct Cifar100Params {
        /// The `cifar-100-binary` folder.
        pub root: PathBuf = PathBuf::from("data/cifar-100-binary"),
        /// `fine` (100 classes) or `coarse` (20 superclasses).
        pub labels: String = "fine".into(),
    }
}

impl Params for Cifar100Params {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        match self.labels.as_str() {
            "fine" | "coarse" => Ok(()),
            other => Err(ParamError::new(
                "labels",
                format!("`{other}` is not a label set: use \"fine\" or \"coarse\""),
            )),
        }
    }

    fn paths_mut(&mut self) -> Vec<(&'static str, &mut PathBuf)> {
        vec![("root", &mut self.root)]
    }
}

/// Which CIFAR and which of its labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// CIFAR-10.
    Ten,
    /// CIFAR-100 with its 100 fine labels.
    HundredFine,
    /// CIFAR-100 with its 20 coarse labels.
    HundredCoarse,
}

impl Variant {
    fn classes(self) -> usize {
        match self {
            Variant::Ten => 10,
            Variant::HundredFine => 100,
            Variant::HundredCoarse => 20,
        }
    }

    fn label_bytes(self) -> usize {
        match self {
            Variant::Ten => 1,
            _ => 2,
        }
    }
}

/// A CIFAR dataset in a folder of official binary files.
#[derive(Clone, Debug)]
pub struct Cifar {
    root: PathBuf,
    variant: Variant,
}

impl Cifar {
    /// The dataset in `root`.
    pub fn new(root: PathBuf, variant: Variant) -> Self {
        Cifar { root, variant }
    }

    fn files(&self, split: Split) -> Vec<PathBuf> {
        let names: Vec<String> = match (self.variant, split) {
            (Variant::Ten, Split::Train) => {
                (1..=5).map(|i| format!("data_batch_{i}.bin")).collect()
            }
            (Variant::Ten, Split::Test) => vec!["test_batch.bin".into()],
            (_, Split::Train) => vec!["train.bin".into()],
            (_, Split::Test) => vec!["test.bin".into()],
        };
        names.into_iter().map(|n| self.root.join(n)).collect()
    }
}

/// Decodes the records of one CIFAR binary file into `pixels` and `labels`. Errors name `path`:
/// a size that is not a whole number of records, or a label out of range.
pub fn decode_records(
    path: &Path,
    bytes: &[u8],
    variant: Variant,
    pixels: &mut Vec<f32>,
    labels: &mut Vec<u32>,
) -> Result<()> {
    let record = variant.label_bytes() + PIXELS;
    if bytes.is_empty() || !bytes.len().is_multiple_of(record) {
        return Err(Error::data(
            path,
            format!(
                "truncated or corrupt: {} bytes is not a whole number of {record}-byte records",
                bytes.len()
            ),
        ));
    }
    let classes = variant.classes();
    for (index, chunk) in bytes.chunks_exact(record).enumerate() {
        let label = match variant {
            Variant::Ten => chunk[0],
            Variant::HundredCoarse => chunk[0],
            Variant::HundredFine => chunk[1],
        };
        if label as usize >= classes {
            let what = match variant {
                Variant::HundredCoarse => "coarse label",
                Variant::HundredFine => "fine label",
                Variant::Ten => "label",
            };
            return Err(Error::data(
                path,
                format!(
                    "corrupt: record {index} has {what} {label}, labels must be below {classes}"
                ),
            ));
        }
        labels.push(u32::from(label));
        pixels.extend(
            chunk[variant.label_bytes()..]
                .iter()
                .map(|&v| f32::from(v) / 255.0),
        );
    }
    Ok(())
}

impl Dataset for Cifar {
    fn info(&self) -> DatasetInfo {
        DatasetInfo {
            channels: 3,
            height: 32,
            width: 32,
            classes: self.variant.classes(),
        }
    }

    fn load(&self, split: Split) -> Result<ImageSet> {
        let how = match self.variant {
            Variant::Ten => HOW_TO_GET_10,
            _ => HOW_TO_GET_100,
        };
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        let files = self.files(split);
        // the official files hold 10,000 records each (CIFAR-100's train.bin: 50,000)
        let official = match (self.variant, split) {
            (Variant::Ten, _) | (_, Split::Test) => 10_000,
            (_, Split::Train) => 50_000,
        };
        for path in files {
            let bytes = read_maybe_gzip(&path, how)?;
            let before = labels.len();
            decode_records(&path, &bytes, self.variant, &mut pixels, &mut labels)?;
            let records = labels.len() - before;
            if records != official {
                tracing::warn!(
                    path = %path.display(),
                    records,
                    official,
                    "this CIFAR file does not hold the official number of records: a cut or \
                     a subset? Every record read is whole and its label checked"
                );
            }
        }
        ImageSet::new(pixels, labels, (3, 32, 32), self.variant.classes())
    }
}

rossl_api::register! {
    kind: dataset,
    name: "cifar10",
    summary: "CIFAR-10 (50k/10k 32x32 colour, 10 classes) from the official binary files",
    params: Cifar10Params,
    build: |p, _ctx| Ok(Box::new(Cifar::new(p.root, Variant::Ten))),
}

rossl_api::register! {
    kind: dataset,
    name: "cifar100",
    summary: "CIFAR-100 (50k/10k 32x32 colour, 100 fine or 20 coarse classes) from the official binary files",
    params: Cifar100Params,
    build: |p, _ctx| {
        let variant = if p.labels == "coarse" { Variant::HundredCoarse } else { Variant::HundredFine };
        Ok(Box::new(Cifar::new(p.root, variant)))
    },
}
