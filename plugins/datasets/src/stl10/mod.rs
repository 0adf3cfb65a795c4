//! `stl10`: STL-10's labelled images from the official binary files (`stl10_binary.tar.gz`).
//!
//! `train_X.bin` (5,000 images) and `test_X.bin` (8,000) hold 96x96 colour images of 27,648 bytes
//! each, without header: the red plane, then green, then blue, each stored **column-major** (byte
//! `c * 9216 + col * 96 + row`). `train_y.bin` and `test_y.bin` hold one byte per image, the
//! class 1..=10 (airplane, bird, car, cat, deer, dog, horse, monkey, ship, truck), read as 0..=9.
//! `fold_indices.txt` holds 10 lines of 1,000 0-based indices into the training images, one
//! predefined training fold per line. The 100,000 unlabelled images (`unlabeled_X.bin`) are not
//! read: this dataset yields labelled images only.

use crate::files::read_file;
use crate::mnist::standard_locations;
use rossl_api::components::{Dataset, DatasetInfo, ImageSet, Split};
use rossl_api::registry::{ParamError, Params};
use rossl_api::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Image side in pixels.
const SIDE: usize = 96;
/// Bytes (and values) per image.
pub const IMAGE_BYTES: usize = 3 * SIDE * SIDE;
/// Number of classes.
const CLASSES: usize = 10;
/// Number of predefined training folds (lines of `fold_indices.txt`).
const FOLDS: usize = 10;
/// The folder the official archive unpacks to.
const ARCHIVE_FOLDER: &str = "stl10_binary";
const HOW_TO_GET: &str =
    "download stl10_binary.tar.gz from https://cs.stanford.edu/~acoates/stl10/, \
    extract it and set data.stl10.root to the `stl10_binary` folder (or the folder holding it)";

/// Parameters of `stl10`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Stl10Params {
    /// Folder holding `train_X.bin`, `train_y.bin`, `test_X.bin` and `test_y.bin`, or holding the
    /// `stl10_binary` folder that holds them. Unset: the first of the standard locations
    /// (`datasets/stl10` under each XDG data folder, as for `fashion-mnist`) that holds them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
    /// Train on the 1,000 images of this predefined fold (0..=9, the line of
    /// `fold_indices.txt`) instead of all 5,000; the test split is unchanged. Unset: all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fold: Option<usize>,
}

impl Params for Stl10Params {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        match self.fold {
            Some(f) if f >= FOLDS => Err(ParamError::new(
                "fold",
                format!("{f} is not a fold: STL-10 has folds 0 to {}", FOLDS - 1),
            )),
            _ => Ok(()),
        }
    }

    fn paths_mut(&mut self) -> Vec<(&'static str, &mut PathBuf)> {
        self.root.iter_mut().map(|r| ("root", r)).collect()
    }
}

/// STL-10 in a folder of official binary files.
#[derive(Clone, Debug)]
pub struct Stl10 {
    dir: PathBuf,
    fold: Option<usize>,
}

/// `true` when `dir` holds STL-10's training or test images.
fn holds_files(dir: &Path) -> bool {
    ["train_X.bin", "test_X.bin"]
        .iter()
        .any(|f| dir.join(f).is_file())
}

impl Stl10 {
    /// The dataset in `root` (or in `root/stl10_binary` when only that holds the files), training
    /// on all images or on the predefined `fold`.
    pub fn new(root: PathBuf, fold: Option<usize>) -> Self {
        let inner = root.join(ARCHIVE_FOLDER);
        let dir = if !holds_files(&root) && holds_files(&inner) {
            inner
        } else {
            root
        };
        Stl10 { dir, fold }
    }

    /// The dataset for `params`: its root, or the first standard location holding the files
    /// (directly or in `stl10_binary`); an error naming every folder searched when none does.
    pub fn from_params(params: Stl10Params) -> Result<Self> {
        match params.root {
            Some(root) => Ok(Stl10::new(root, params.fold)),
            None => Stl10::found_in(&standard_locations("stl10"), params.fold),
        }
    }

    /// The dataset in the first of `locations` holding the files (directly or in
    /// `stl10_binary`); an error naming every folder searched when none does.
    fn found_in(locations: &[PathBuf], fold: Option<usize>) -> Result<Self> {
        locations
            .iter()
            .find(|dir| holds_files(dir) || holds_files(&dir.join(ARCHIVE_FOLDER)))
            .map(|dir| Stl10::new(dir.clone(), fold))
            .ok_or_else(|| {
                Error::msg(format!(
                    "stl10: no train_X.bin or test_X.bin in any of {} (nor in their \
                     `{ARCHIVE_FOLDER}` folders); {HOW_TO_GET}",
                    locations
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }

    /// The folder the files are read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Decodes STL-10 images (column-major planes) into channel-major, row-major f32 in [0, 1].
/// A size that is zero or not a multiple of 27,648 bytes is an error naming `path`.
pub fn decode_images(path: &Path, bytes: &[u8]) -> Result<Vec<f32>> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(IMAGE_BYTES) {
        return Err(Error::data(
            path,
            format!(
                "truncated or corrupt: {} bytes is not a whole number of {IMAGE_BYTES}-byte \
                 (3x96x96) images",
                bytes.len()
            ),
        ));
    }
    let mut pixels = vec![0.0f32; bytes.len()];
    let plane = SIDE * SIDE;
    for (image, out) in bytes
        .chunks_exact(IMAGE_BYTES)
        .zip(pixels.chunks_exact_mut(IMAGE_BYTES))
    {
        for (src, dst) in image.chunks_exact(plane).zip(out.chunks_exact_mut(plane)) {
            // src[col * 96 + row] -> dst[row * 96 + col]
            for (col, column) in src.chunks_exact(SIDE).enumerate() {
                for (row, &v) in column.iter().enumerate() {
                    dst[row * SIDE + col] = f32::from(v) / 255.0;
                }
            }
        }
    }
    Ok(pixels)
}

/// Decodes STL-10 labels (1..=10) to 0..=9, checking there is one per image. A count that
/// differs from `images`, or a label of 0 or above 10, is an error naming `path`.
pub fn decode_labels(path: &Path, bytes: &[u8], images: usize) -> Result<Vec<u32>> {
    if bytes.len() != images {
        return Err(Error::data(
            path,
            format!(
                "{} labels for {images} images: the label file does not match the image file",
                bytes.len()
            ),
        ));
    }
    bytes
        .iter()
        .enumerate()
        .map(|(index, &label)| match label {
            1..=10 => Ok(u32::from(label) - 1),
            _ => Err(Error::data(
                path,
                format!("corrupt: label {label} at index {index}; STL-10 labels are 1 to 10"),
            )),
        })
        .collect()
}

/// The 0-based indices on line `fold` (0-based) of a `fold_indices.txt` whose text is `text`,
/// each checked to be below `images`. Errors name `path` and the line (1-based).
pub fn fold_indices(path: &Path, text: &str, fold: usize, images: usize) -> Result<Vec<usize>> {
    let line_no = fold + 1;
    let line = text.lines().nth(fold).ok_or_else(|| {
        Error::data(
            path,
            format!(
                "has {} lines, so no fold {fold} (line {line_no})",
                text.lines().count()
            ),
        )
    })?;
    let indices = line
        .split_whitespace()
        .map(|token| {
            let index: u64 = token.parse().map_err(|_| {
                Error::data(
                    path,
                    format!("line {line_no}: `{token}` is not an image index (an integer >= 0)"),
                )
            })?;
            match usize::try_from(index) {
                Ok(i) if i < images => Ok(i),
                _ => Err(Error::data(
                    path,
                    format!(
                        "line {line_no}: index {index} is out of range: the training split has \
                         {images} images (indices 0 to {})",
                        images.saturating_sub(1)
                    ),
                )),
            }
        })
        .collect::<Result<Vec<usize>>>()?;
    if indices.is_empty() {
        return Err(Error::data(
            path,
            format!("line {line_no} (fold {fold}) holds no index"),
        ));
    }
    Ok(indices)
}

impl Dataset for Stl10 {
    fn info(&self) -> DatasetInfo {
        DatasetInfo {
            channels: 3,
            height: SIDE,
            width: SIDE,
            classes: CLASSES,
        }
    }

    fn load(&self, split: Split) -> Result<ImageSet> {
        let images_path = self.dir.join(format!("{split}_X.bin"));
        let labels_path = self.dir.join(format!("{split}_y.bin"));
        let pixels = decode_images(&images_path, &read_file(&images_path, HOW_TO_GET)?)?;
        let count = pixels.len() / IMAGE_BYTES;
        let labels = decode_labels(&labels_path, &read_file(&labels_path, HOW_TO_GET)?, count)?;
        let set = ImageSet::new(pixels, labels, (3, SIDE, SIDE), CLASSES)?;
        tracing::debug!(images = count, path = %images_path.display(), "loaded STL-10 images");
        match (split, self.fold) {
            (Split::Train, Some(fold)) => {
                let path = self.dir.join("fold_indices.txt");
                let text = String::from_utf8(read_file(&path, HOW_TO_GET)?)
                    .map_err(|_| Error::data(&path, "corrupt: not UTF-8 text"))?;
                Ok(set.select(&fold_indices(&path, &text, fold, count)?))
            }
            _ => Ok(set),
        }
    }
}

rossl_api::register! {
    kind: dataset,
    name: "stl10",
    summary: "STL-10 (5k/8k labelled 96x96 colour, 10 classes, optional 1k training fold) from the official binary files",
    params: Stl10Params,
    build: |p, _ctx| Ok(Box::new(Stl10::from_params(p)?)),
}

#[cfg(test)]
mod tests;
