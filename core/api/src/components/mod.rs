//! The six kinds of component, as traits, and what they are built from.
//!
//! | kind | trait | what it does |
//! | --- | --- | --- |
//! | `dataset` | [`Dataset`] | loads labelled images as f32 in [0, 1] |
//! | `views` | [`ViewStrategy`] | renders the random views (crops, patches) of an image |
//! | `encoder` | [`Encoder`] | maps images to the probed feature and the normalised projection |
//! | `loss` | [`SslLoss`] | a self-supervised loss over a set of views |
//! | `attack` | [`Attack`] | perturbs an input to maximise an objective given as a closure |
//! | `evaluator` | [`Evaluator`] | fits a classifier on a frozen encoder |

mod attack;
mod build;
mod dataset;
mod encoder;
mod evaluator;
mod loss;
mod preset;
mod resize;
mod views;
mod windowed;

pub use attack::{Attack, AttackSpec, Objective};
pub use build::{BuildContext, InputShape};
pub use dataset::{Dataset, DatasetInfo, ImageSet, Split};
pub use encoder::{
    BnBranch, Buffer, Embedding, Encoder, FrozenEncoder, Mode, ParamRole, Parameter,
};
pub use evaluator::{Classifier, EncoderCopier, Evaluator, FitContext, FitCost, RUNTIME_KEYS};
pub use loss::{LossInput, SslLoss};
pub use preset::{
    preset_definition, AttackLoss, Preset, PresetAttack, PresetFn, PresetRegistration,
    PresetSettings, Stage,
};
pub use views::{ImageRef, ViewStrategy};
pub use windowed::{Window, WindowedPass, WindowedScore};
