//! What part of a configuration shapes the trained encoder, and how two configurations differ
//! there: the training digest names run folders, and a finished run is only ever reused,
//! resumed or re-evaluated under a configuration that agrees with it key for key.

use super::explain;
use crate::{Error, Result};
use std::collections::BTreeMap;

/// Top-level keys that do not change the trained encoder: where runs go, how many threads and
/// which instruction set compute it (the numbers are the same up to the last bits), what the
/// pool's idle threads do during a step, the evaluation, the baselines of a comparison and the
/// plugin libraries loaded.
pub const NOT_TRAINING: &[&str] = &[
    "out",
    "threads",
    "cpu_isa",
    "pool_wait",
    "eval",
    "compare",
    "plugins",
];

/// Nested keys that do not change the trained encoder: the test subset only chooses which test
/// images the evaluation uses.
pub const NOT_TRAINING_NESTED: &[(&str, &str)] = &[("data", "test_subset")];

/// Removes from a resolved configuration table every key that does not shape the trained
/// encoder ([`NOT_TRAINING`], [`NOT_TRAINING_NESTED`], and the sections of datasets other than
/// the one trained on: an evaluator's transfer dataset, `data.<name>`).
pub fn keep_training_keys(table: &mut toml::Table) {
    for key in NOT_TRAINING {
        table.remove(*key);
    }
    for (outer, inner) in NOT_TRAINING_NESTED {
        if let Some(toml::Value::Table(t)) = table.get_mut(*outer) {
            t.remove(*inner);
        }
    }
    if let Some(toml::Value::Table(data)) = table.get_mut("data") {
        let chosen = data
            .get("name")
            .and_then(toml::Value::as_str)
            .map(str::to_string);
        data.retain(|key, value| !value.is_table() || chosen.as_deref().is_some_and(|c| c == key));
    }
}

/// The first key (in sorted dotted order) whose value differs between two configurations, with
/// both values as TOML (`None` where a configuration lacks the key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyDifference {
    /// The dotted key.
    pub key: String,
    /// Its value in the first configuration.
    pub first: Option<String>,
    /// Its value in the second configuration.
    pub second: Option<String>,
}

impl KeyDifference {
    /// The difference in words, naming the two configurations, e.g. "`optim.lr` is 0.1 in this
    /// configuration and 0.3 in the run".
    pub fn between(&self, first: &str, second: &str) -> String {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "not set".into());
        format!(
            "`{}` is {} in {first} and {} in {second}",
            self.key,
            show(&self.first),
            show(&self.second)
        )
    }
}

/// The training keys of a configuration's TOML text (a run's `config.toml`, with or without its
/// source comments, or a checkpoint's embedded configuration), flattened to `key = value`.
/// `what` names the text in errors.
pub fn training_keys_of_text(text: &str, what: &str) -> Result<BTreeMap<String, String>> {
    Ok(flatten_table(&training_table_of_text(text, what)?))
}

/// The keys of a configuration's TOML text (named `what` in errors) that shape the trained
/// encoder, as a table ([`keep_training_keys`]).
pub fn training_table_of_text(text: &str, what: &str) -> Result<toml::Table> {
    let mut table: toml::Table = toml::from_str(text)
        .map_err(|e| Error::Config(format!("{what} is not valid TOML: {}", e.message())))?;
    keep_training_keys(&mut table);
    Ok(table)
}

/// The training keys of a resolved configuration table, flattened to `key = value`.
pub fn training_keys_of_table(table: &toml::Table) -> BTreeMap<String, String> {
    let mut table = table.clone();
    keep_training_keys(&mut table);
    flatten_table(&table)
}

/// The first differing key of two flattened configurations, if any.
pub fn first_difference(
    first: &BTreeMap<String, String>,
    second: &BTreeMap<String, String>,
) -> Option<KeyDifference> {
    let keys: std::collections::BTreeSet<&String> = first.keys().chain(second.keys()).collect();
    keys.into_iter().find_map(|key| {
        let (a, b) = (first.get(key), second.get(key));
        (a != b).then(|| KeyDifference {
            key: key.clone(),
            first: a.cloned(),
            second: b.cloned(),
        })
    })
}

/// A table flattened to dotted keys and inline TOML values.
pub fn flatten_table(table: &toml::Table) -> BTreeMap<String, String> {
    let mut flat = BTreeMap::new();
    flatten_into("", table, &mut flat);
    flat
}

/// Flattens `table` under `prefix` (empty at the top) into `out`.
pub(super) fn flatten_into(prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, String>) {
    for (key, value) in table {
        let dotted = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(t) => flatten_into(&dotted, t, out),
            other => {
                out.insert(dotted, explain::inline(other));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_ignore_evaluation_keys_and_the_test_subset() {
        let a =
            "out = \"a\"\nseed = 1\n[data]\ntest_subset = 10\nbatch_size = 8\n[eval]\nsteps = 3\n";
        let b =
            "out = \"b\"\nseed = 1\n[data]\ntest_subset = 0\nbatch_size = 8\n[eval]\nsteps = 9\n";
        let (a, b) = (
            training_keys_of_text(a, "a").unwrap(),
            training_keys_of_text(b, "b").unwrap(),
        );
        assert_eq!(first_difference(&a, &b), None);
        let c = training_keys_of_text("seed = 1\n[data]\nbatch_size = 16\n", "c").unwrap();
        let d = first_difference(&a, &c).unwrap();
        assert_eq!(d.key, "data.batch_size");
        assert_eq!(
            (d.first.as_deref(), d.second.as_deref()),
            (Some("8"), Some("16"))
        );
    }
}
