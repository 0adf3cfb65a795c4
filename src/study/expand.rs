//! A study expanded into ordinary runs: arms x sweep points x seeds, each a list of config files
//! and `--set` overrides, so that its run folder is content-addressed as any run's.

use super::spec::StudyFile;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One run of a study.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PlannedRun {
    /// Its task number (its place in the plan).
    pub index: usize,
    /// The arm's label.
    pub arm: String,
    /// The sweep point: (key, value as TOML), in key order; empty without a sweep.
    pub point: Vec<(String, String)>,
    /// Its seed.
    pub seed: u64,
    /// The unit of aggregation: the arm and the sweep point.
    pub group: String,
    /// Config files, in order (absolute or relative to the folder `rossl study` ran in).
    pub files: Vec<PathBuf>,
    /// Overrides, in order (TOML values).
    pub sets: Vec<String>,
}

/// Every combination of the sweep axes' values, in key order (one empty point without a sweep).
fn points(study: &StudyFile) -> Vec<Vec<(String, String)>> {
    let mut points: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for (key, values) in &study.sweep {
        points = points
            .into_iter()
            .flat_map(|point| {
                values.iter().map(move |value| {
                    let mut next = point.clone();
                    next.push((key.clone(), rossl_runtime::config::inline_value(value)));
                    next
                })
            })
            .collect();
    }
    points
}

/// The label of a group: the arm, then the sweep point (`free m=3, train.free.step=0.01`).
pub fn group_label(arm: &str, point: &[(String, String)]) -> String {
    if point.is_empty() {
        return arm.to_string();
    }
    let point: Vec<String> = point.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{arm}, {}", point.join(", "))
}

/// The runs of `study`, with `extra` overrides (the command line's `--set`), their run folders
/// under `runs`. Budget-derived step counts are added later.
pub fn expand(study: &StudyFile, extra: &[String], runs_out: &std::path::Path) -> Vec<PlannedRun> {
    let mut runs = Vec::new();
    for arm in &study.arms {
        for point in points(study) {
            for &seed in &study.study.seeds {
                let mut files = arm.configs.clone();
                files.extend(study.study.overlays.iter().cloned());
                let mut sets = study.study.set.clone();
                sets.extend(arm.set.iter().cloned());
                sets.extend(point.iter().map(|(k, v)| format!("{k}={v}")));
                sets.push(format!("seed={seed}"));
                sets.extend(extra.iter().cloned());
                sets.push(format!(
                    "out={}",
                    toml::Value::String(runs_out.display().to_string())
                ));
                runs.push(PlannedRun {
                    index: runs.len(),
                    arm: arm.label.clone(),
                    group: group_label(&arm.label, &point),
                    point: point.clone(),
                    seed,
                    files,
                    sets,
                });
            }
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::spec::Arm;

    #[test]
    fn arms_times_sweep_points_times_seeds_in_order() {
        let mut study = StudyFile::default();
        study.study.seeds = vec![0, 1];
        study.arms = ["a", "b"]
            .iter()
            .map(|l| Arm {
                label: l.to_string(),
                configs: vec![PathBuf::from(format!("{l}.toml"))],
                set: vec![format!("method.name=\"{l}\"")],
            })
            .collect();
        study.sweep.insert(
            "train.free.step".into(),
            vec![toml::Value::Float(0.005), toml::Value::Float(0.01)],
        );
        let runs = expand(
            &study,
            &["threads=1".into()],
            std::path::Path::new("out/runs"),
        );
        assert_eq!(runs.len(), 2 * 2 * 2);
        assert_eq!(runs[1].seed, 1);
        assert_eq!(runs[2].group, "a, train.free.step=0.01");
        assert_eq!(runs[4].arm, "b");
        // later overrides win: the arm's, the sweep point's, the seed, the command line's, out
        assert_eq!(
            runs[3].sets,
            vec![
                "method.name=\"a\"",
                "train.free.step=0.01",
                "seed=1",
                "threads=1",
                "out=\"out/runs\""
            ]
        );
    }
}
