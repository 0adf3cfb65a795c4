//! `linear-probe`: standard linear fine-tuning (SLF) on whole images.

use crate::training::{train_on_features, HeadTraining, LinearHead};
use candle_core::Tensor;
use rossl_api::components::{
    Classifier, Evaluator, FitContext, FrozenEncoder, Window, WindowedPass,
};
use rossl_api::rng::Rng;
use rossl_api::Result;
use rossl_nn::classify::extract_features;

/// Parameters of `linear-probe` (defaults: the paper's Adam with learning rate 3e-4).
pub type LinearProbeParams = HeadTraining;

/// The linear probe.
pub struct LinearProbe {
    params: LinearProbeParams,
}

/// A linear head on the frozen encoder's feature.
pub struct LinearClassifier<'a> {
    /// The encoder.
    pub encoder: FrozenEncoder<'a>,
    /// The head.
    pub head: LinearHead,
}

impl Classifier for LinearClassifier<'_> {
    fn logits(&self, images: &Tensor, _rng: &mut Rng) -> Result<Tensor> {
        self.head.logits_detached(&self.encoder.features(images)?)
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        self.head.tensors()
    }

    fn windowed(&self, base: &Tensor) -> Result<Option<Box<dyn WindowedPass + '_>>> {
        Ok(self.encoder.windowed(base)?.map(|features| {
            Box::new(HeadOnWindows {
                features,
                head: &self.head,
            }) as Box<dyn WindowedPass + '_>
        }))
    }
}

/// The head on the encoder's windowed features: logits of images changed inside windows.
struct HeadOnWindows<'a> {
    features: Box<dyn WindowedPass + 'a>,
    head: &'a LinearHead,
}

impl WindowedPass for HeadOnWindows<'_> {
    fn run(&mut self, images: &Tensor, rows: &[usize], windows: &[Window]) -> Result<Tensor> {
        self.head
            .logits_detached(&self.features.run(images, rows, windows)?)
    }

    fn keep(&mut self, rows: &[usize]) -> Result<()> {
        self.features.keep(rows)
    }
}

impl Evaluator for LinearProbe {
    fn fit<'a>(&self, ctx: &FitContext<'a>) -> Result<Box<dyn Classifier + 'a>> {
        let features =
            extract_features(ctx.encoder, ctx.train, self.params.batch_size, ctx.device)?;
        let mut rng = Rng::new(ctx.seed);
        let head = LinearHead::new(
            ctx.encoder.feature_dim(),
            ctx.train.classes,
            &mut rng,
            ctx.device,
        )?;
        train_on_features(&head, &features, &ctx.train.labels, &self.params, &mut rng)?;
        Ok(Box::new(LinearClassifier {
            encoder: ctx.encoder,
            head,
        }))
    }
}

rossl_api::register! {
    kind: evaluator,
    name: "linear-probe",
    summary: "standard linear fine-tuning on whole images (frozen encoder; Adam 3e-4 by default)",
    params: LinearProbeParams,
    build: |p, _ctx| Ok(Box::new(LinearProbe { params: p })),
}
