//! The component registry: static registration with [`register!`](crate::register), look-up by
//! name with suggestions, and the catalogue that `rossl plugins` prints.
//!
//! A component registers under a kind, a name, a one-line summary and a typed parameter struct
//! (implementing [`Params`]). Plugin crates call the macro and need no `inventory` dependency:
//!
//! ```ignore
//! rossl_api::register! {
//!     kind: loss,
//!     name: "tcr",
//!     summary: "Total coding rate -1/2 logdet(I + d/(b eps) Z^T Z), averaged over the views",
//!     params: TcrParams,
//!     build: |params, _ctx| Ok(Box::new(TotalCodingRate::new(params))),
//! }
//! ```

use crate::components::{Attack, BuildContext, Dataset, Encoder, Evaluator, SslLoss, ViewStrategy};
pub use crate::location::Location;
pub use crate::params::{positive, ParamError, Params};
use crate::section::ComponentConfig;
use crate::{Error, Result};
use serde::Serialize;
use std::fmt;

/// The six kinds of component.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Labelled image sources ([`Dataset`]).
    Dataset,
    /// Image encoders ([`Encoder`]).
    Encoder,
    /// View strategies: crops, patches and their augmentations ([`ViewStrategy`]).
    Views,
    /// Self-supervised losses ([`SslLoss`]).
    Loss,
    /// Adversarial attacks ([`Attack`]).
    Attack,
    /// Evaluators on frozen encoders ([`Evaluator`]).
    Evaluator,
}

impl Kind {
    /// Every kind, in the order `rossl plugins` lists them.
    pub const ALL: [Kind; 6] = [
        Kind::Dataset,
        Kind::Encoder,
        Kind::Views,
        Kind::Loss,
        Kind::Attack,
        Kind::Evaluator,
    ];

    /// The kind's name as used in configs and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Dataset => "dataset",
            Kind::Encoder => "encoder",
            Kind::Views => "views",
            Kind::Loss => "loss",
            Kind::Attack => "attack",
            Kind::Evaluator => "evaluator",
        }
    }

    /// The registered names of this kind, sorted.
    pub fn names(self) -> Vec<&'static str> {
        self.entries().iter().map(|e| e.name).collect()
    }

    /// Name, summary, defaults and location of every component of this kind, sorted by name.
    pub fn entries(self) -> Vec<EntryRef> {
        fn collect<T: ?Sized + ComponentKind>() -> Vec<EntryRef>
        where
            Registration<T>: inventory::Collect,
        {
            registrations::<T>()
                .into_iter()
                .map(|r| EntryRef {
                    kind: T::KIND,
                    name: r.name,
                    summary: r.summary,
                    defaults: r.defaults,
                    location: r.location,
                })
                .collect()
        }
        match self {
            Kind::Dataset => collect::<dyn Dataset>(),
            Kind::Encoder => collect::<dyn Encoder>(),
            Kind::Views => collect::<dyn ViewStrategy>(),
            Kind::Loss => collect::<dyn SslLoss>(),
            Kind::Attack => collect::<dyn Attack>(),
            Kind::Evaluator => collect::<dyn Evaluator>(),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Kind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let names = Kind::ALL.map(Kind::as_str);
                Error::msg(format!(
                    "unknown component kind `{s}`{}; kinds are: {}",
                    crate::suggest::did_you_mean(s, names),
                    names.join(", ")
                ))
            })
    }
}

/// Ties a component trait object to its [`Kind`].
pub trait ComponentKind: 'static {
    /// The kind of components implementing this trait.
    const KIND: Kind;
}

impl ComponentKind for dyn Dataset {
    const KIND: Kind = Kind::Dataset;
}
impl ComponentKind for dyn Encoder {
    const KIND: Kind = Kind::Encoder;
}
impl ComponentKind for dyn ViewStrategy {
    const KIND: Kind = Kind::Views;
}
impl ComponentKind for dyn SslLoss {
    const KIND: Kind = Kind::Loss;
}
impl ComponentKind for dyn Attack {
    const KIND: Kind = Kind::Attack;
}
impl ComponentKind for dyn Evaluator {
    const KIND: Kind = Kind::Evaluator;
}

/// The builder of a component, as registered.
pub type BuildFn<T> = fn(&ComponentConfig, &BuildContext) -> Result<Box<T>>;

/// One registered component of the kind whose trait object is `T`.
pub struct Registration<T: ?Sized + 'static> {
    /// The name that configs use.
    pub name: &'static str,
    /// One line saying what it is.
    pub summary: &'static str,
    /// Its default parameters, as a TOML table.
    pub defaults: fn() -> Result<toml::Table>,
    /// Reads and validates its parameters from a config section; returns them resolved.
    pub check: fn(&ComponentConfig) -> Result<toml::Table>,
    /// Builds it from a config section.
    pub build: BuildFn<T>,
    /// Where it was registered.
    pub location: Location,
}

inventory::collect!(Registration<dyn Dataset>);
inventory::collect!(Registration<dyn Encoder>);
inventory::collect!(Registration<dyn ViewStrategy>);
inventory::collect!(Registration<dyn SslLoss>);
inventory::collect!(Registration<dyn Attack>);
inventory::collect!(Registration<dyn Evaluator>);

/// A kind-independent view of a registration.
#[derive(Clone, Copy)]
pub struct EntryRef {
    /// Its kind.
    pub kind: Kind,
    /// Its name.
    pub name: &'static str,
    /// Its summary.
    pub summary: &'static str,
    /// Its default parameters.
    pub defaults: fn() -> Result<toml::Table>,
    /// Where it was registered.
    pub location: Location,
}

/// Every registration of the kind `T`, sorted by name (duplicates included; see
/// [`check_duplicates`]).
pub fn registrations<T: ?Sized + ComponentKind>() -> Vec<&'static Registration<T>>
where
    Registration<T>: inventory::Collect,
{
    let mut all: Vec<&'static Registration<T>> = inventory::iter::<Registration<T>>().collect();
    all.sort_by_key(|r| r.name);
    all
}

/// An error naming both places if two components of one kind share a name.
pub fn check_duplicates() -> Result<()> {
    for kind in Kind::ALL {
        let entries = kind.entries();
        if let Some(pair) = entries.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(duplicate(
                kind,
                pair[0].name,
                &pair[0].location,
                &pair[1].location,
            ));
        }
    }
    Ok(())
}

/// The registration of `name` among components of kind `T`; an error listing that kind's names
/// and suggesting the closest when there is none. `source` says where the name came from.
pub fn find<T: ?Sized + ComponentKind>(name: &str, source: &str) -> Result<&'static Registration<T>>
where
    Registration<T>: inventory::Collect,
{
    let all = registrations::<T>();
    let mut matching = all.iter().filter(|r| r.name == name);
    match (matching.next(), matching.next()) {
        (Some(first), None) => Ok(first),
        (Some(first), Some(second)) => {
            Err(duplicate(T::KIND, name, &first.location, &second.location))
        }
        (None, _) => Err(unknown_component(T::KIND, name, source)),
    }
}

/// The error for an unknown component `name` of `kind`, listing the registered names.
pub fn unknown_component(kind: Kind, name: &str, source: &str) -> Error {
    let names = kind.names();
    Error::UnknownComponent(format!(
        "unknown {kind} `{name}` (from {source}){}; registered {kind} components: {}",
        crate::suggest::did_you_mean(name, names.iter().copied()),
        if names.is_empty() {
            "(none)".to_string()
        } else {
            names.join(", ")
        }
    ))
}

fn duplicate(kind: Kind, name: &str, first: &Location, second: &Location) -> Error {
    Error::DuplicateComponent(format!(
        "duplicate {kind} `{name}`: registered at {first} and again at {second}"
    ))
}

/// Serialises parameters to a TOML table (for listings and resolved configs).
pub fn to_table<P: Serialize>(params: &P) -> Result<toml::Table> {
    toml::Table::try_from(params)
        .map_err(|e| Error::msg(format!("cannot show parameters as TOML: {e}")))
}

/// Registers a component. See the [module documentation](crate::registry).
///
/// `kind` is one of `dataset`, `encoder`, `views`, `loss`, `attack`, `evaluator`; `params` a type
/// implementing [`Params`]; `build` a function or closure `(params, &BuildContext) ->
/// Result<Box<dyn Trait>>`.
#[macro_export]
macro_rules! register {
    (kind: dataset, $($rest:tt)*) => { $crate::__register!($crate::components::Dataset; $($rest)*); };
    (kind: encoder, $($rest:tt)*) => { $crate::__register!($crate::components::Encoder; $($rest)*); };
    (kind: views, $($rest:tt)*) => { $crate::__register!($crate::components::ViewStrategy; $($rest)*); };
    (kind: loss, $($rest:tt)*) => { $crate::__register!($crate::components::SslLoss; $($rest)*); };
    (kind: attack, $($rest:tt)*) => { $crate::__register!($crate::components::Attack; $($rest)*); };
    (kind: evaluator, $($rest:tt)*) => { $crate::__register!($crate::components::Evaluator; $($rest)*); };
}

/// Implementation detail of [`register!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __register {
    ($trait:path; name: $name:expr, summary: $summary:expr, params: $params:ty, build: $build:expr $(,)?) => {
        const _: () = {
            fn __rossl_build(
                config: &$crate::section::ComponentConfig,
                ctx: &$crate::components::BuildContext,
            ) -> $crate::Result<::std::boxed::Box<dyn $trait>> {
                let params: $params = config.params()?;
                let build: fn(
                    $params,
                    &$crate::components::BuildContext,
                ) -> $crate::Result<::std::boxed::Box<dyn $trait>> = $build;
                build(params, ctx)
            }
            fn __rossl_check(
                config: &$crate::section::ComponentConfig,
            ) -> $crate::Result<$crate::__private::toml::Table> {
                let params: $params = config.params()?;
                $crate::registry::to_table(&params)
            }
            fn __rossl_defaults() -> $crate::Result<$crate::__private::toml::Table> {
                $crate::registry::to_table(&<$params as ::std::default::Default>::default())
            }
            $crate::__private::inventory::submit! {
                $crate::registry::Registration::<dyn $trait> {
                    name: $name,
                    summary: $summary,
                    defaults: __rossl_defaults,
                    check: __rossl_check,
                    build: __rossl_build,
                    location: $crate::registry::Location {
                        file: file!(),
                        line: line!(),
                        module: module_path!(),
                    },
                }
            }
        };
    };
}

/// Builds component `name` of kind `T` from parameters in TOML text (for programs, presets and
/// tests); errors name `kind.name.key`.
pub fn build<T: ?Sized + ComponentKind>(
    name: &str,
    params: &str,
    ctx: &BuildContext,
) -> Result<Box<T>>
where
    Registration<T>: inventory::Collect,
{
    let config = ComponentConfig::from_toml(&format!("{}.{name}", T::KIND), params)?;
    (find::<T>(name, "the caller")?.build)(&config, ctx)
}

/// Builds component `name` of kind `T` from parameters in a table that came from `origin` (a
/// phrase for errors, such as "the evaluation preset `strong`").
pub fn build_from_table<T: ?Sized + ComponentKind>(
    name: &str,
    params: toml::Table,
    origin: &str,
    ctx: &BuildContext,
) -> Result<Box<T>>
where
    Registration<T>: inventory::Collect,
{
    let config = ComponentConfig::from_table(&format!("{}.{name}", T::KIND), params, origin);
    (find::<T>(name, origin)?.build)(&config, ctx)
}

#[cfg(test)]
mod duplicate_tests {
    use super::*;
    use crate::components::SslLoss;

    /// No parameters.
    #[derive(Default, Serialize, serde::Deserialize)]
    struct NoParams {}

    impl Params for NoParams {}

    // two registrations under one name, on lines the test finds below
    crate::register! {
        kind: loss,
        name: "test-twice",
        summary: "test only: registered twice",
        params: NoParams,
        build: |_p, _ctx| Err(crate::Error::msg("test only: never built")),
    }
    crate::register! {
        kind: loss,
        name: "test-twice",
        summary: "test only: registered twice",
        params: NoParams,
        build: |_p, _ctx| Err(crate::Error::msg("test only: never built")),
    }

    #[test]
    fn a_name_registered_twice_is_an_error_naming_both_places() {
        let lines: Vec<u32> = registrations::<dyn SslLoss>()
            .iter()
            .filter(|r| r.name == "test-twice")
            .map(|r| r.location.line)
            .collect();
        assert_eq!(lines.len(), 2);
        for message in [
            check_duplicates().unwrap_err().to_string(),
            find::<dyn SslLoss>("test-twice", "a test")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default(),
        ] {
            assert!(message.contains("duplicate loss `test-twice`"), "{message}");
            for line in &lines {
                assert!(
                    message.contains(&format!("registry.rs:{line} ")),
                    "{message}"
                );
            }
        }
    }
}
