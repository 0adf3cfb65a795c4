//! How a configuration differs from another, or from the configuration a run recorded, in the
//! keys that shape the trained encoder.

use super::layers::ConfigSources;
use super::resolve::ResolvedConfig;
use super::training::{
    first_difference, flatten_table, training_keys_of_table, training_table_of_text, KeyDifference,
};
use crate::Result;
use figment::providers::{Format, Toml};
use figment::Figment;

impl ResolvedConfig {
    /// The first key that shapes the trained encoder and differs between this configuration
    /// and `other`, if any.
    pub fn training_difference(&self, other: &ResolvedConfig) -> Result<Option<KeyDifference>> {
        Ok(first_difference(
            &training_keys_of_table(&self.resolved_table()?),
            &training_keys_of_table(&other.resolved_table()?),
        ))
    }

    /// The first key that shapes the trained encoder and differs between this configuration
    /// and a recorded configuration's TOML text (a checkpoint's embedded configuration), named
    /// `what` in errors; `None` when they agree.
    ///
    /// The record's training keys are resolved by this build first: its defaults filled in, and
    /// each value written as this build writes it, so that a key an earlier build wrote at its
    /// default and this one leaves out reads the same on both sides, and a key set in the folder
    /// but left at its default in the record differs. A record this build cannot resolve (a key
    /// since renamed) is compared as written, leaving out the keys it lacks: those were added
    /// later, with defaults that keep the earlier behaviour.
    pub fn training_difference_from_text(
        &self,
        text: &str,
        what: &str,
    ) -> Result<Option<KeyDifference>> {
        let recorded = training_table_of_text(text, what)?;
        let mut current = training_keys_of_table(&self.resolved_table()?);
        let recorded = match resolved(&recorded) {
            Some(table) => training_keys_of_table(&table),
            None => {
                let written = flatten_table(&recorded);
                current.retain(|key, _| written.contains_key(key));
                written
            }
        };
        Ok(first_difference(&current, &recorded))
    }
}

/// `table` resolved as a configuration of its own (no files, `--set` or environment), as a
/// resolved table; `None` when it does not resolve.
fn resolved(table: &toml::Table) -> Option<toml::Table> {
    let text = toml::to_string(table).ok()?;
    let sources = ConfigSources {
        files: Vec::new(),
        sets: Vec::new(),
        use_env: false,
    };
    ResolvedConfig::from_figment(Figment::from(Toml::string(&text)), sources)
        .and_then(|config| config.resolved_table())
        .ok()
}
