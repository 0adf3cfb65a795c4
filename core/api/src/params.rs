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

/// Declares a component's parameters with each field's default beside it, so that the struct,
/// its serde attributes (`deny_unknown_fields`, `default`) and its [`Default`] come from one
/// place:
///
/// ```
/// rossl_api::params! {
///     /// Parameters of `my-attack`.
///     pub struct MyAttackParams {
///         /// Radius of the L-infinity ball.
///         pub eps: f64 = 8.0 / 255.0,
///         /// Iterations.
///         pub steps: usize = 10,
///     }
/// }
/// impl rossl_api::Params for MyAttackParams {}
/// assert_eq!(MyAttackParams::default().steps, 10);
/// ```
///
/// The crate using it depends on `serde` (with `derive`), as every component crate does. Field
/// attributes (`#[serde(...)]`, docs) pass through.
#[macro_export]
macro_rules! params {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$field_meta:meta])*
                $field_vis:vis $field:ident : $ty:ty = $default:expr
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(deny_unknown_fields, default)]
        $vis struct $name {
            $( $(#[$field_meta])* $field_vis $field: $ty, )*
        }

        impl ::std::default::Default for $name {
            fn default() -> Self {
                $name { $( $field: $default, )* }
            }
        }
    };
}

/// Validation helper: `value` is a finite radius >= 0.
pub fn radius(key: &str, value: f64) -> Result<(), ParamError> {
    if value >= 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(ParamError::new(
            key,
            format!("{value} is not a finite number >= 0"),
        ))
    }
}

/// Validation helper: `value` is a finite number > 0.
pub fn finite_positive(key: &str, value: f64) -> Result<(), ParamError> {
    if positive(value) {
        Ok(())
    } else {
        Err(ParamError::new(
            key,
            format!("{value} is not a finite number > 0"),
        ))
    }
}

/// Validation helper: a count of at least one.
pub fn at_least_one(key: &str, value: usize) -> Result<(), ParamError> {
    if value >= 1 {
        Ok(())
    } else {
        Err(ParamError::new(key, "must be at least 1"))
    }
}
