//! Turning a checked configuration into components.

use crate::config::{Regime, ResolvedConfig};
use crate::device::SelectedDevice;
use crate::ssl_loss::{Term, WeightedSslLoss};
use crate::Result;
use rossl_api::components::{
    Attack, BuildContext, Dataset, DatasetInfo, Encoder, InputShape, SslLoss, ViewStrategy,
};
use std::path::PathBuf;
use std::sync::Arc;

/// The components of a run, built from its configuration.
pub struct Assembly {
    /// The configuration.
    pub config: ResolvedConfig,
    /// The device and why it was chosen.
    pub device: SelectedDevice,
    /// The dataset (not loaded yet).
    pub dataset: Box<dyn Dataset>,
    /// What the dataset holds.
    pub info: DatasetInfo,
    /// The training view strategy.
    pub views: Arc<dyn ViewStrategy>,
    /// The encoder, freshly initialised.
    pub encoder: Box<dyn Encoder>,
    /// The method's weighted SSL loss (what training minimises).
    pub objective: WeightedSslLoss,
    /// The PGD regime's attack.
    pub train_attack: Option<Box<dyn Attack>>,
}

impl Assembly {
    /// The build context for components of this run.
    pub fn context(config: &ResolvedConfig, device: &SelectedDevice) -> BuildContext {
        BuildContext {
            device: device.device.clone(),
            seed: config.run.seed,
            input: None,
            base_dir: PathBuf::from("."),
        }
    }

    /// Builds every component that training needs.
    pub fn build(config: ResolvedConfig, device: SelectedDevice) -> Result<Self> {
        let run = &config.run;
        let ctx = Self::context(&config, &device);
        let dataset: Box<dyn Dataset> = config.build("data", &run.data.name, &ctx)?;
        let info = dataset.info();
        let views: Box<dyn ViewStrategy> = config.build("views", &run.views.name, &ctx)?;
        let (height, width) = views.output_size(info.height, info.width);
        let input = InputShape {
            channels: info.channels,
            height,
            width,
            classes: info.classes,
        };
        let encoder: Box<dyn Encoder> =
            config.build("encoder", &run.encoder.name, &ctx.clone().with_input(input))?;
        let mut terms = Vec::new();
        for term in &run.loss.terms {
            let loss: Box<dyn SslLoss> = config.build("loss", &term.name, &ctx)?;
            terms.push(Term {
                name: term.name.clone(),
                weight: term.weight,
                loss,
            });
        }
        let train_attack = if run.train.regime == Regime::Pgd {
            Some(config.build::<dyn Attack>("train.attack", &run.train.attack.name, &ctx)?)
        } else {
            None
        };
        Ok(Assembly {
            objective: WeightedSslLoss::new(terms)?,
            dataset,
            info,
            views: Arc::from(views),
            encoder,
            train_attack,
            device,
            config,
        })
    }

    /// The shape of the views the encoder sees.
    pub fn input_shape(&self) -> InputShape {
        let (height, width) = self.views.output_size(self.info.height, self.info.width);
        InputShape {
            channels: self.info.channels,
            height,
            width,
            classes: self.info.classes,
        }
    }
}
