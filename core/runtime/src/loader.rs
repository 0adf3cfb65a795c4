//! The training loader (whole-image batches for probes and evaluation are
//! [`rossl_api::batch`]): per-epoch shuffling from the run's seed, drop-last, batches laid out
//! view-major (every image's view 0, then view 1, ...) as the reference code does, rendered on
//! background threads while the model trains, with at most `prefetch` batches waiting.
//!
//! The randomness of a view depends only on (seed, epoch, image, view), so the same seed gives
//! bit-identical batches whatever the number of threads. With an annealed augmentation strength
//! (`train.anneal`) each epoch renders with the strategy at that epoch's strength, itself a
//! function of the epoch, so this still holds (and a resumed run renders what it would have).

use crate::config::AnnealConfig;
use crate::{Error, Result};
use candle_core::{Device, Tensor};
use rayon::prelude::*;
use rossl_api::components::{ImageRef, ImageSet, ViewStrategy};
use rossl_api::rng::{stream, Rng};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

/// One batch of views.
#[derive(Clone, Debug)]
pub struct ViewBatch {
    /// Pixels of `views * batch` images of (channels, height, width), view-major.
    pub pixels: Vec<f32>,
    /// Labels of the `batch` images (not used by SSL training; kept for diagnostics).
    pub labels: Vec<u32>,
    /// Dataset indices of the `batch` images.
    pub indices: Vec<usize>,
    /// Views per image.
    pub views: usize,
    /// Images in the batch.
    pub batch: usize,
    /// (channels, height, width) of each view.
    pub shape: (usize, usize, usize),
    /// The epoch it belongs to.
    pub epoch: usize,
    /// Its position in the epoch.
    pub index: usize,
}

impl ViewBatch {
    /// The views as a (views * batch, C, H, W) tensor on `device`.
    pub fn tensor(&self, device: &Device) -> Result<Tensor> {
        let (c, h, w) = self.shape;
        Ok(Tensor::from_slice(
            &self.pixels,
            (self.views * self.batch, c, h, w),
            device,
        )?)
    }
}

/// How the loader batches and where its randomness comes from.
#[derive(Clone, Debug)]
pub struct LoaderSettings {
    /// Images per batch.
    pub batch_size: usize,
    /// Rendering threads (at least 1).
    pub workers: usize,
    /// Batches rendered ahead (at least 1).
    pub prefetch: usize,
    /// The run's seed.
    pub seed: u64,
    /// Stop each epoch after this many batches (0: all).
    pub max_batches: usize,
}

/// Renders batches of views of a training set.
#[derive(Clone)]
pub struct Loader {
    set: Arc<ImageSet>,
    views: Arc<dyn ViewStrategy>,
    settings: LoaderSettings,
    pool: Arc<rayon::ThreadPool>,
    /// The strength schedule and the run's passes, when the views are annealed.
    anneal: Option<(AnnealConfig, usize)>,
}

impl Loader {
    /// A loader over `set` with the view strategy `views`. An error if the set holds fewer
    /// images than one batch.
    pub fn new(
        set: Arc<ImageSet>,
        views: Arc<dyn ViewStrategy>,
        settings: LoaderSettings,
    ) -> Result<Self> {
        if settings.batch_size == 0 || set.len() < settings.batch_size {
            return Err(Error::Config(format!(
                "`data.batch_size` = {} but the training set holds {} images: a batch needs at least one image and at most the whole set",
                settings.batch_size,
                set.len()
            )));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(settings.workers.max(1))
            .thread_name(|i| format!("rossl-views-{i}"))
            .build()
            .map_err(|e| Error::msg(format!("cannot start the view threads: {e}")))?;
        Ok(Loader {
            set,
            views,
            settings,
            pool: Arc::new(pool),
            anneal: None,
        })
    }

    /// This loader rendering each epoch's views at the augmentation strength that `anneal`
    /// schedules over `epochs` passes ([`ViewStrategy::at_strength`]). An error, naming the key,
    /// if the schedule moves the strength and the strategy has none.
    pub fn with_anneal(mut self, anneal: &AnnealConfig, epochs: usize) -> Result<Self> {
        if anneal.anneals_views() && self.views.at_strength(1.0).is_none() {
            return Err(no_strength(None));
        }
        self.anneal = anneal.anneals_views().then(|| (anneal.clone(), epochs));
        Ok(self)
    }

    /// The augmentation strength of `epoch`'s views (1: as configured).
    pub fn strength(&self, epoch: usize) -> f64 {
        self.anneal.as_ref().map_or(1.0, |(a, epochs)| {
            a.at(epoch, *epochs, (0.0, 0.0)).view_strength
        })
    }

    /// The strategy that renders `epoch`'s views.
    fn strategy(&self, epoch: usize) -> Arc<dyn ViewStrategy> {
        let strength = self.strength(epoch);
        if strength == 1.0 {
            return self.views.clone();
        }
        // `with_anneal` checked that the strategy has a strength
        self.views
            .at_strength(strength)
            .map_or_else(|| self.views.clone(), Arc::from)
    }

    /// Full batches per epoch (drop-last), capped by `max_batches`.
    pub fn batches_per_epoch(&self) -> usize {
        let full = self.set.len() / self.settings.batch_size;
        match self.settings.max_batches {
            0 => full,
            cap => full.min(cap),
        }
    }

    /// Views per image.
    pub fn views_per_image(&self) -> usize {
        self.views.views_per_image()
    }

    /// (channels, height, width) of each view.
    pub fn view_shape(&self) -> (usize, usize, usize) {
        let (h, w) = self.views.output_size(self.set.height, self.set.width);
        (self.set.channels, h, w)
    }

    /// The order of the training set in `epoch`.
    pub fn epoch_order(&self, epoch: usize) -> Vec<usize> {
        Rng::derive(self.settings.seed, &[stream::SHUFFLE, epoch as u64])
            .permutation(self.set.len())
    }

    /// Renders batch `index` of `epoch` on the calling thread (using the loader's pool).
    pub fn render(&self, epoch: usize, index: usize) -> ViewBatch {
        let order = self.epoch_order(epoch);
        self.render_indices((epoch, &self.strategy(epoch)), index, &order)
    }

    fn render_indices(
        &self,
        (epoch, strategy): (usize, &Arc<dyn ViewStrategy>),
        index: usize,
        order: &[usize],
    ) -> ViewBatch {
        let b = self.settings.batch_size;
        let indices: Vec<usize> = order[index * b..(index + 1) * b].to_vec();
        let views = self.views.views_per_image();
        let shape = self.view_shape();
        let per_view = shape.0 * shape.1 * shape.2;
        let mut pixels = vec![0.0f32; views * b * per_view];
        let set = &self.set;
        let seed = self.settings.seed;
        self.pool.install(|| {
            pixels
                .par_chunks_mut(per_view)
                .enumerate()
                .for_each(|(k, out)| {
                    let (view, slot) = (k / b, k % b);
                    let image_index = indices[slot];
                    let image = ImageRef {
                        pixels: set.image(image_index),
                        channels: set.channels,
                        height: set.height,
                        width: set.width,
                    };
                    let mut rng = Rng::derive(
                        seed,
                        &[stream::VIEWS, epoch as u64, image_index as u64, view as u64],
                    );
                    strategy.render(image, &mut rng, out);
                });
        });
        ViewBatch {
            labels: indices.iter().map(|&i| set.labels[i]).collect(),
            pixels,
            indices,
            views,
            batch: b,
            shape,
            epoch,
            index,
        }
    }

    /// The batches of `epoch`, rendered ahead on a background thread.
    pub fn epoch(&self, epoch: usize) -> EpochBatches {
        let (sender, receiver) = sync_channel(self.settings.prefetch.max(1));
        let loader = self.clone();
        let count = self.batches_per_epoch();
        let producer = std::thread::Builder::new()
            .name("rossl-loader".into())
            .spawn(move || {
                let order = loader.epoch_order(epoch);
                let strategy = loader.strategy(epoch);
                for index in 0..count {
                    let batch = loader.render_indices((epoch, &strategy), index, &order);
                    if sender.send(batch).is_err() {
                        return; // the consumer stopped early
                    }
                }
            })
            .ok();
        EpochBatches {
            receiver,
            producer,
            remaining: count,
        }
    }
}

/// The error of a schedule that anneals a view strategy (named if `name`) without a strength.
pub fn no_strength(name: Option<&str>) -> Error {
    let which = name.map_or("the view strategy".into(), |n| {
        format!("the view strategy `{n}`")
    });
    Error::Config(format!(
        "`train.anneal.view_strength_end`: {which} (`views.name`) has no augmentation strength to \
         anneal; leave `view_strength_end` at 1, or choose a strategy that has one (the built-in `multi-crop`, `pad-crop`, `patches` and `single` do)"
    ))
}

/// The batches of one epoch, in order; stops the background thread when dropped.
pub struct EpochBatches {
    receiver: Receiver<ViewBatch>,
    producer: Option<JoinHandle<()>>,
    remaining: usize,
}

impl Iterator for EpochBatches {
    type Item = ViewBatch;

    fn next(&mut self) -> Option<ViewBatch> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        self.receiver.recv().ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl Drop for EpochBatches {
    fn drop(&mut self) {
        // Drain so a blocked producer can finish, then join it.
        while self.receiver.try_recv().is_ok() {}
        let receiver = std::mem::replace(&mut self.receiver, sync_channel(1).1);
        drop(receiver);
        if let Some(handle) = self.producer.take() {
            let _ = handle.join();
        }
    }
}
