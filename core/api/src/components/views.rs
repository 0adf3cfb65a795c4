//! View strategies: the random views (crops, patches) an SSL method trains on.

use crate::rng::Rng;

/// One image, channel-major, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct ImageRef<'a> {
    /// Pixel values in [0, 1], `channels * height * width` of them.
    pub pixels: &'a [f32],
    /// Channels.
    pub channels: usize,
    /// Height.
    pub height: usize,
    /// Width.
    pub width: usize,
}

/// Renders the views of an image: crop, resize and augment.
pub trait ViewStrategy: Send + Sync {
    /// How many views of each image a batch holds.
    fn views_per_image(&self) -> usize;

    /// The (height, width) of each view for an input of the given size.
    fn output_size(&self, height: usize, width: usize) -> (usize, usize);

    /// Writes one view of `image` into `out` (channels * output height * output width values),
    /// drawing every random choice from `rng`.
    fn render(&self, image: ImageRef<'_>, rng: &mut Rng, out: &mut [f32]);

    /// This strategy with its augmentation at `strength` in [0, 1], for augmentation-strength
    /// annealing (`train.anneal.view_strength_end`, DynACL): 1 must render the same views as
    /// `self` bit for bit, 0 is the weakest augmentation the strategy has. The runtime asks for
    /// one strategy per epoch, so a view stays a function of (seed, epoch, image, view). `None`
    /// (the default): the strategy has no notion of strength, and a run that anneals it is
    /// refused.
    fn at_strength(&self, strength: f64) -> Option<Box<dyn ViewStrategy>> {
        let _ = strength;
        None
    }
}
