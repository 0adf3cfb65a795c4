//! A run's evaluations under settings other than its own. Re-evaluating a finished run (other
//! attacks, radii, norm or test images) adds a result beside the run's own and never replaces
//! it: each such evaluation has its folder `evaluations/<eval digest>/` inside the run folder,
//! with its `results.json`, result card and probe heads. The run's own `results.json` (beside its
//! `config.toml`) is the evaluation under the settings of that `config.toml`.

use super::{files, Results, RunDir};
use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// Where an evaluation of a run goes, and its results if it already finished there.
#[derive(Debug)]
pub struct EvaluationPlace {
    /// The folder its `results.json`, result card and probe heads are (or will be) in: the run
    /// folder, or one of its `evaluations/<eval digest>/` folders.
    pub dir: RunDir,
    /// Its results, when an evaluation with the same training and evaluation settings finished
    /// there already (nothing is computed again).
    pub finished: Option<Results>,
}

impl EvaluationPlace {
    /// Whether the evaluation goes beside the run's own, in an `evaluations/` folder.
    pub fn is_additional(&self) -> bool {
        run_of_evaluation(self.dir.path()).is_some()
    }
}

impl RunDir {
    /// An existing evaluation folder of a run (`<run>/evaluations/<digest>`), to read its
    /// results and card.
    pub fn open_evaluation(path: &Path) -> Result<RunDir> {
        if run_of_evaluation(path).is_none() || !path.is_dir() {
            return Err(Error::data(
                path,
                format!(
                    "not an evaluation folder (`<run folder>/{}/<digest>`)",
                    files::EVALUATIONS
                ),
            ));
        }
        Ok(RunDir {
            path: path.to_path_buf(),
        })
    }

    /// The folder of this run's evaluation with settings digest `eval_digest` (not created).
    pub fn evaluation_dir(&self, eval_digest: &str) -> RunDir {
        RunDir {
            path: self.path.join(files::EVALUATIONS).join(eval_digest),
        }
    }

    /// Where an evaluation of this run goes under the configuration with training digest
    /// `config_digest` and evaluation digest `eval_digests[0]`, when the run's own `config.toml`
    /// has evaluation digest `own_eval_digest`: the run folder when its results have those
    /// settings (finished) or when it has none yet and the settings are its own; otherwise
    /// `evaluations/<eval_digests[0]>/` (made by the evaluation that writes into it), finished
    /// when its results are there. Results recorded under any digest of `eval_digests` (the same
    /// settings as earlier builds digested them) count as finished. The run's own results,
    /// whatever their settings, are never the place of another evaluation.
    pub fn evaluation_place(
        &self,
        config_digest: &str,
        eval_digests: &[&str],
        own_eval_digest: &str,
    ) -> Result<EvaluationPlace> {
        let eval_digest = eval_digests.first().copied().unwrap_or_default();
        let same = |r: &Results| {
            r.config_digest == config_digest && eval_digests.contains(&r.eval_digest.as_str())
        };
        // an unreadable results.json of the run (another rossl's) is kept, and so is any other
        match self.read_results() {
            Ok(Some(results)) if same(&results) => {
                return Ok(EvaluationPlace {
                    dir: self.clone(),
                    finished: Some(results),
                })
            }
            Ok(None) if eval_digest == own_eval_digest => {
                return Ok(EvaluationPlace {
                    dir: self.clone(),
                    finished: None,
                })
            }
            _ => {}
        }
        let dir = self.evaluation_dir(eval_digest);
        let finished = match dir.read_results()? {
            Some(results) if same(&results) => Some(results),
            Some(_) => {
                return Err(Error::data(
                    dir.file(files::RESULTS),
                    format!(
                        "holds another evaluation than its folder's name says (settings {eval_digest} of training {config_digest}); move it away to evaluate again"
                    ),
                ))
            }
            None => None,
        };
        Ok(EvaluationPlace { dir, finished })
    }
}

/// The run folder that `path` is an evaluation folder of (`<run>/evaluations/<digest>`), if it
/// is one.
pub fn run_of_evaluation(path: &Path) -> Option<PathBuf> {
    let parent = path.parent()?;
    if parent.file_name()? != files::EVALUATIONS {
        return None;
    }
    let run = parent.parent()?;
    super::is_run_folder(run).then(|| run.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_dir::{EvaluationReport, TrainResults};

    fn results(config_digest: &str, eval_digest: &str) -> Results {
        Results {
            method: "m".into(),
            dataset: "d".into(),
            test_subset: 0,
            encoder: "e".into(),
            views: "v".into(),
            views_per_image: 1,
            train: TrainResults::default(),
            evaluations: Vec::<EvaluationReport>::new(),
            device: "cpu".into(),
            seed: 0,
            config_digest: config_digest.into(),
            eval_digest: eval_digest.into(),
            eval_protocol: Default::default(),
        }
    }

    #[test]
    fn another_evaluation_goes_beside_the_runs_own_and_finds_itself_again() {
        let root = std::env::temp_dir().join(format!("rossl-evaluations-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join(files::CONFIG), "").unwrap();
        let run = RunDir::open(&root).unwrap();

        // no results yet: the run's own settings go into the run folder, others beside it
        let own = run.evaluation_place("t", &["own"], "own").unwrap();
        assert_eq!(own.dir.path(), run.path());
        assert!(own.finished.is_none() && !own.is_additional());
        let other = run.evaluation_place("t", &["aa"], "own").unwrap();
        assert_eq!(other.dir.path(), root.join("evaluations/aa"));
        assert!(!other.dir.path().exists() && other.is_additional());
        std::fs::create_dir_all(other.dir.path()).unwrap();
        assert_eq!(run_of_evaluation(other.dir.path()), Some(root.clone()));
        assert_eq!(run_of_evaluation(&root), None);

        // the run's results, under whatever settings, are never another evaluation's place
        run.write_results(&results("t", "old")).unwrap();
        let again = run.evaluation_place("t", &["own"], "own").unwrap();
        assert_eq!(again.dir.path(), root.join("evaluations/own"));
        let reused = run.evaluation_place("t", &["old"], "own").unwrap();
        assert_eq!(reused.dir.path(), run.path());
        assert_eq!(reused.finished.map(|r| r.eval_digest), Some("old".into()));
        // results recorded under the digest an earlier build gave the same settings are found
        let earlier = run.evaluation_place("t", &["new", "old"], "own").unwrap();
        assert_eq!(earlier.dir.path(), run.path());
        assert!(earlier.finished.is_some());

        // a finished additional evaluation is found again; a mismatched one is refused
        other.dir.write_results(&results("t", "aa")).unwrap();
        let found = run.evaluation_place("t", &["aa"], "own").unwrap();
        assert_eq!(found.finished.map(|r| r.eval_digest), Some("aa".into()));
        std::fs::create_dir_all(root.join("evaluations/bb")).unwrap();
        run.evaluation_dir("bb")
            .write_results(&results("t", "aa"))
            .unwrap();
        let error = run
            .evaluation_place("t", &["bb"], "own")
            .unwrap_err()
            .to_string();
        assert!(error.contains("evaluations/bb/results.json"), "{error}");
        let _ = std::fs::remove_dir_all(&root);
    }
}
