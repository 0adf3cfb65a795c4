//! One module per subcommand.

pub mod bench;
pub mod compare;
pub mod config;
pub mod eval;
pub mod export;
pub mod plugins;
pub mod run;
pub mod session;
pub mod views;
