//! Environment variables sit between files and --set (own process: the environment is global).

mod common;
use common::{error_of, temp_dir, write};
use rossl::rossl_runtime::config::{ConfigSources, ResolvedConfig};

#[test]
fn environment_overrides_files_and_set_overrides_the_environment() {
    let dir = temp_dir("env");
    let file = write(&dir, "a.toml", "seed = 1\n[train]\nepochs = 4\n");
    std::env::set_var("ROSSL_SEED", "5");
    std::env::set_var("ROSSL_TRAIN__EPOCHS", "6");
    let sources = ConfigSources::new(vec![file.clone()], vec!["seed=9".into()]);
    let resolved = ResolvedConfig::load(&sources).unwrap();
    assert_eq!(resolved.run.seed, 9, "--set beats the environment");
    assert_eq!(resolved.run.train.epochs, 6, "the environment beats files");
    let text = resolved.to_toml(true).unwrap();
    assert!(text.contains("ROSSL_TRAIN__EPOCHS"), "{text}");
    // a misspelt variable is an unknown key naming the variable
    std::env::remove_var("ROSSL_TRAIN__EPOCHS");
    std::env::set_var("ROSSL_TRAIN__EPOHCS", "6");
    let message = error_of(ResolvedConfig::load(&ConfigSources::new(
        vec![file],
        vec![],
    )));
    assert!(
        message.contains("train.epohcs") && message.contains("ROSSL_TRAIN__EPOHCS"),
        "{message}"
    );
    std::env::remove_var("ROSSL_TRAIN__EPOHCS");
    std::env::remove_var("ROSSL_SEED");
}
