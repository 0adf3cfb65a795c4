//! The error type of rossl-api, rossl-nn, rossl-runtime and of every plugin.

use std::path::PathBuf;

/// Every way rossl can fail. Each variant's message names what was wrong and where (a config key
/// and its source, a file path, a component name), so that it can be shown to a user as it is.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration problem; the message already names the key and where its value came from.
    #[error("{0}")]
    Config(String),

    /// A component name that no registered component of that kind has; the message lists the
    /// kind's names and suggests the closest.
    #[error("{0}")]
    UnknownComponent(String),

    /// Two components of the same kind registered under one name; the message names both places.
    #[error("{0}")]
    DuplicateComponent(String),

    /// A data file that is missing, truncated or corrupt.
    #[error("{}: {message}", path.display())]
    Data {
        /// The file that was read (or that was looked for).
        path: PathBuf,
        /// What was wrong, and how to fix it where that is known.
        message: String,
    },

    /// An input/output error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What rossl was doing (e.g. "writing runs/x/metrics.jsonl").
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A numerical failure: a NaN or infinite loss, a matrix that is not positive definite.
    #[error("numerical error: {0}")]
    Numerical(String),

    /// A tensor operation failed inside candle.
    #[error("tensor error: {0}")]
    Candle(Box<candle_core::Error>),

    /// Anything else, with a message that explains it.
    #[error("{0}")]
    Msg(String),
}

impl Error {
    /// An [`Error::Msg`] from anything printable.
    pub fn msg(message: impl Into<String>) -> Self {
        Error::Msg(message.into())
    }

    /// An [`Error::Io`] with a description of what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// An [`Error::Data`] about `path`.
    pub fn data(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Data {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Candle(Box::new(e))
    }
}

/// The result type of rossl-api, rossl-nn, rossl-runtime and of every plugin.
pub type Result<T> = std::result::Result<T, Error>;

/// Returns early with an [`Error::Msg`] built like `format!`.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::Error::Msg(format!($($arg)*)))
    };
}
