//! One module per subcommand.

pub mod args;
pub mod bench;
pub mod compare;
pub mod config;
pub mod eval;
pub mod export;
pub mod plugins;
pub mod report;
pub mod run;
pub mod runner;
pub mod session;
pub mod teacher;
pub mod views;
