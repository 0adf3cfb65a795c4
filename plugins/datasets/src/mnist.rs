//! `fashion-mnist` and `mnist`: 28x28 grey images from IDX files, gzipped or not.

use crate::files::{first_existing, read_maybe_gzip};
use crate::idx;
use rossl_api::components::{Dataset, DatasetInfo, ImageSet, Split};
use rossl_api::registry::Params;
use rossl_api::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where the Debian package `dataset-fashion-mnist` installs its files.
pub const DEBIAN_FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

/// Parameters of `fashion-mnist`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct FashionMnistParams {
    /// Folder holding `train-images-idx3-ubyte[.gz]` and the other three files. Unset: the first
    /// of [`standard_locations`] that holds them (the Debian package's folder among them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
}

impl Params for FashionMnistParams {
    fn paths_mut(&mut self) -> Vec<(&'static str, &mut PathBuf)> {
        self.root.iter_mut().map(|r| ("root", r)).collect()
    }
}

/// The folders searched for the dataset `name` when no root is set: `datasets/<name>` under
/// each XDG data folder, the user's first (`$XDG_DATA_HOME`, else `~/.local/share`), then each of
/// `$XDG_DATA_DIRS` (else `/usr/local/share` and `/usr/share`). With the defaults, the last is
/// `/usr/share/datasets/<name>`, where Debian's dataset packages install.
pub fn standard_locations(name: &str) -> Vec<PathBuf> {
    let var = |key: &str| std::env::var_os(key).filter(|v| !v.is_empty());
    locations_in(
        name,
        var("XDG_DATA_HOME").map(PathBuf::from),
        var("HOME").map(PathBuf::from),
        var("XDG_DATA_DIRS"),
    )
}

/// [`standard_locations`] for these values of `XDG_DATA_HOME`, `HOME` and `XDG_DATA_DIRS`.
fn locations_in(
    name: &str,
    data_home: Option<PathBuf>,
    home: Option<PathBuf>,
    data_dirs: Option<std::ffi::OsString>,
) -> Vec<PathBuf> {
    let user = data_home.or_else(|| home.map(|h| h.join(".local/share")));
    let system: Vec<PathBuf> = match data_dirs {
        Some(dirs) => std::env::split_paths(&dirs).collect(),
        None => vec![
            PathBuf::from("/usr/local/share"),
            PathBuf::from("/usr/share"),
        ],
    };
    user.into_iter()
        .chain(system)
        .map(|dir| dir.join("datasets").join(name))
        .collect()
}

/// The first of `locations` holding the training images of an IDX dataset.
fn find_idx_folder(locations: &[PathBuf]) -> Option<PathBuf> {
    locations
        .iter()
        .find(|dir| {
            ["train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"]
                .iter()
                .any(|f| dir.join(f).is_file())
        })
        .cloned()
}

/// The `fashion-mnist` dataset for `params`: its root, or the first standard location with the
/// files; an error naming every folder searched when none has them.
fn fashion_mnist(params: FashionMnistParams) -> Result<IdxDataset> {
    let how = "install the Debian package `dataset-fashion-mnist` (files under /usr/share/datasets/fashion-mnist) \
               or set data.fashion-mnist.root to a folder with the four IDX files";
    if let Some(root) = params.root {
        return Ok(IdxDataset::new(root, how));
    }
    let locations = standard_locations("fashion-mnist");
    match find_idx_folder(&locations) {
        Some(root) => Ok(IdxDataset::new(root, how)),
        None => Err(Error::msg(format!(
            "fashion-mnist: no IDX files in any of {}; {how}",
            locations
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

rossl_api::params! {
    /// Parameters of `mnist`.
    pub struct MnistParams {
        /// Folder holding `train-images-idx3-ubyte[.gz]` and the other three files.
        pub root: PathBuf = PathBuf::from("data/mnist"),
    }
}

impl Params for MnistParams {
    fn paths_mut(&mut self) -> Vec<(&'static str, &mut PathBuf)> {
        vec![("root", &mut self.root)]
    }
}

/// A dataset of 28x28 grey images with 10 classes stored as IDX files.
#[derive(Clone, Debug)]
pub struct IdxDataset {
    root: PathBuf,
    how_to_get: &'static str,
}

impl IdxDataset {
    /// The dataset in `root`; `how_to_get` goes into missing-file errors.
    pub fn new(root: PathBuf, how_to_get: &'static str) -> Self {
        IdxDataset { root, how_to_get }
    }

    fn file(&self, split: Split, what: &str) -> PathBuf {
        let prefix = match split {
            Split::Train => "train",
            Split::Test => "t10k",
        };
        let dims = if what == "images" { "idx3" } else { "idx1" };
        let candidates = [
            format!("{prefix}-{what}-{dims}-ubyte.gz"),
            format!("{prefix}-{what}-{dims}-ubyte"),
            format!("{prefix}-{what}.{dims}-ubyte.gz"),
            format!("{prefix}-{what}.{dims}-ubyte"),
        ];
        first_existing(&self.root, &candidates)
    }
}

/// Builds an image set from IDX image and label bytes; errors name the files.
pub fn image_set_from_idx(
    images_path: &Path,
    images: &[u8],
    labels_path: &Path,
    labels: &[u8],
    classes: usize,
) -> Result<ImageSet> {
    let images = idx::parse(images_path, images)?;
    let labels = idx::parse(labels_path, labels)?;
    if images.dims.len() != 3 {
        return Err(Error::data(
            images_path,
            format!(
                "expected 3 dimensions (count, height, width), found {}",
                images.dims.len()
            ),
        ));
    }
    if labels.dims.len() != 1 {
        return Err(Error::data(
            labels_path,
            format!("expected 1 dimension (count), found {}", labels.dims.len()),
        ));
    }
    if images.dims[0] != labels.dims[0] {
        return Err(Error::data(
            labels_path,
            format!(
                "{} labels for {} images in {}",
                labels.dims[0],
                images.dims[0],
                images_path.display()
            ),
        ));
    }
    if let Some(pos) = labels.data.iter().position(|&l| l as usize >= classes) {
        return Err(Error::data(
            labels_path,
            format!(
                "corrupt: label {} at record {pos} is not below {classes}",
                labels.data[pos]
            ),
        ));
    }
    let pixels = images.data.iter().map(|&v| f32::from(v) / 255.0).collect();
    let labels = labels.data.iter().map(|&l| u32::from(l)).collect();
    ImageSet::new(pixels, labels, (1, images.dims[1], images.dims[2]), classes)
}

impl Dataset for IdxDataset {
    fn info(&self) -> DatasetInfo {
        DatasetInfo {
            channels: 1,
            height: 28,
            width: 28,
            classes: 10,
        }
    }

    fn load(&self, split: Split) -> Result<ImageSet> {
        let images_path = self.file(split, "images");
        let labels_path = self.file(split, "labels");
        let images = read_maybe_gzip(&images_path, self.how_to_get)?;
        let labels = read_maybe_gzip(&labels_path, self.how_to_get)?;
        let set = image_set_from_idx(&images_path, &images, &labels_path, &labels, 10)?;
        tracing::debug!(images = set.len(), path = %images_path.display(), "loaded IDX images");
        Ok(set)
    }
}

rossl_api::register! {
    kind: dataset,
    name: "fashion-mnist",
    summary: "Fashion-MNIST (60k/10k 28x28 grey, 10 classes) from IDX files; finds the Debian package's files",
    params: FashionMnistParams,
    build: |p, _ctx| Ok(Box::new(fashion_mnist(p)?)),
}

rossl_api::register! {
    kind: dataset,
    name: "mnist",
    summary: "MNIST (60k/10k 28x28 grey digits, 10 classes) from IDX files, gzipped or not",
    params: MnistParams,
    build: |p, _ctx| Ok(Box::new(IdxDataset::new(
        p.root,
        "download the four IDX files of MNIST and set data.mnist.root to their folder",
    ))),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_locations_end_with_the_debian_package_s_folder() {
        let found = locations_in("fashion-mnist", None, Some(PathBuf::from("/home/u")), None);
        assert_eq!(
            found,
            vec![
                PathBuf::from("/home/u/.local/share/datasets/fashion-mnist"),
                PathBuf::from("/usr/local/share/datasets/fashion-mnist"),
                PathBuf::from(DEBIAN_FASHION_MNIST),
            ]
        );
    }
}
