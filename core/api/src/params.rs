//! The typed parameters of a component: read from its configuration section with serde,
//! defaults from [`Default`], values checked by [`Params::validate`].

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::PathBuf;

/// A parameter that failed validation.
#[derive(Clone, Debug)]
pub struct ParamError {
    /// The key inside the component's section (e.g. `scale`).
    pub key: String,
    /// What is wrong with its value.
    pub message: String,
}

impl ParamError {
    /// A validation error for `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ParamError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The typed parameters of a component: read from its config section with serde (use
/// `#[serde(deny_unknown_fields, default)]`), defaults from [`Default`].
pub trait Params: Serialize + DeserializeOwned + Default {
    /// Checks values that serde cannot (ranges, consistency). The error names the key.
    fn validate(&self) -> std::result::Result<(), ParamError> {
        Ok(())
    }

    /// Path-valued parameters by key; relative ones are resolved against the folder of the config
    /// file that set them (or the current folder when they came from elsewhere).
    fn paths_mut(&mut self) -> Vec<(&'static str, &mut PathBuf)> {
        Vec::new()
    }
}

/// `true` when `value` is a finite number above zero (for parameter validation).
pub fn positive(value: f64) -> bool {
    value > 0.0 && value.is_finite()
}
