//! Datasets: labelled images in memory.

use crate::rng::Rng;
use crate::{Error, Result};

/// Which part of a dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// The training split (used without labels for SSL, with labels for probes).
    Train,
    /// The held-out test split.
    Test,
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Test => "test",
        })
    }
}

/// What a dataset holds, known without loading it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DatasetInfo {
    /// Image channels.
    pub channels: usize,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Number of classes.
    pub classes: usize,
}

/// Images as f32 in [0, 1], channel-major (N, C, H, W), with integer labels.
#[derive(Clone, Debug)]
pub struct ImageSet {
    /// Pixel values, `len() * channels * height * width` of them.
    pub pixels: Vec<f32>,
    /// One label per image, each below `classes`.
    pub labels: Vec<u32>,
    /// Image channels.
    pub channels: usize,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Number of classes.
    pub classes: usize,
}

impl ImageSet {
    /// Checks that the pixel count, labels and value range agree, and builds the set.
    pub fn new(
        pixels: Vec<f32>,
        labels: Vec<u32>,
        (channels, height, width): (usize, usize, usize),
        classes: usize,
    ) -> Result<Self> {
        let per_image = channels * height * width;
        if per_image == 0 || pixels.len() != labels.len() * per_image {
            return Err(Error::msg(format!(
                "image set: {} pixel values do not make {} images of {channels}x{height}x{width}",
                pixels.len(),
                labels.len()
            )));
        }
        if let Some(bad) = labels.iter().find(|&&l| l as usize >= classes) {
            return Err(Error::msg(format!(
                "image set: label {bad} is not below the class count {classes}"
            )));
        }
        Ok(ImageSet {
            pixels,
            labels,
            channels,
            height,
            width,
            classes,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// `true` when the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image (`channels * height * width`).
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.image_len();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// A new set with the images at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> ImageSet {
        let mut pixels = Vec::with_capacity(indices.len() * self.image_len());
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        ImageSet {
            pixels,
            labels,
            ..*self
        }
    }

    /// A class-balanced subset of `size` images drawn with `rng`: each class gets `size / classes`
    /// images (the remainder goes to the first classes), fewer where a class has fewer. The result
    /// keeps the original order. `size >= len()` returns the whole set.
    pub fn balanced_subset(&self, size: usize, rng: &mut Rng) -> ImageSet {
        if size >= self.len() {
            return self.clone();
        }
        let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); self.classes];
        for (i, &l) in self.labels.iter().enumerate() {
            by_class[l as usize].push(i);
        }
        let base = size / self.classes;
        let extra = size % self.classes;
        let mut chosen = Vec::with_capacity(size);
        for (c, members) in by_class.iter_mut().enumerate() {
            rng.shuffle(members);
            let want = base + usize::from(c < extra);
            chosen.extend(members.iter().take(want));
        }
        chosen.sort_unstable();
        self.select(&chosen)
    }

    /// How many images of each class the set holds.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }
}

/// A source of labelled images. Building one is cheap; [`Dataset::load`] reads the data.
pub trait Dataset: Send + Sync {
    /// Shape and class count, known without loading.
    fn info(&self) -> DatasetInfo;

    /// Loads one split into memory. A missing file is an error naming the path tried and how to
    /// get the data; a truncated or corrupt file is an error naming the file and what was wrong.
    fn load(&self, split: Split) -> Result<ImageSet>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(n_per_class: usize, classes: usize) -> ImageSet {
        let n = n_per_class * classes;
        let labels: Vec<u32> = (0..n).map(|i| (i % classes) as u32).collect();
        let pixels: Vec<f32> = (0..n * 4).map(|i| (i / 4) as f32 / n as f32).collect();
        ImageSet::new(pixels, labels, (1, 2, 2), classes).unwrap()
    }

    #[test]
    fn balanced_subset_is_balanced_and_keeps_pairs() {
        let set = toy(50, 10);
        let sub = set.balanced_subset(100, &mut Rng::new(1));
        assert_eq!(sub.len(), 100);
        assert!(sub.class_counts().iter().all(|&c| c == 10));
        for i in 0..sub.len() {
            // pixel value encodes the original index, whose class is index % 10
            let original = (sub.image(i)[0] * 500.0).round() as usize;
            assert_eq!(original % 10, sub.labels[i] as usize);
        }
        let again = set.balanced_subset(100, &mut Rng::new(1));
        assert_eq!(again.labels, sub.labels);
        assert_eq!(again.pixels, sub.pixels);
    }

    #[test]
    fn new_rejects_inconsistent_sets() {
        assert!(ImageSet::new(vec![0.0; 7], vec![0, 1], (1, 2, 2), 2).is_err());
        assert!(ImageSet::new(vec![0.0; 8], vec![0, 2], (1, 2, 2), 2).is_err());
    }
}
