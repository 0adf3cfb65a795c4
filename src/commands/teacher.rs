//! A frozen teacher named as a configuration (`train.target.teacher_config`, DeACL's first
//! stage): trained first, or its finished run reused, then named as the student's
//! `train.target.from`.

use crate::commands::runner::{run_one, RunOptions};
use crate::commands::session::{build, Session};
use anyhow::Context;
use rossl_runtime::config::ConfigSources;

/// The student's session with its teacher trained (or reused) and named in `train.target.from`;
/// `None` when the configuration names no teacher config, or already names a teacher folder.
///
/// The teacher's configuration is `train.target.teacher_config`'s files, then the student's own
/// files after its first (scale overlays), with the student's `seed` and `out`: a study's seeds
/// train one teacher each, and a CPU-scale student gets a CPU-scale teacher. The student's other
/// overrides do not reach the teacher. The teacher is not evaluated (`rossl eval` its folder).
pub fn student_with_teacher(student: &Session) -> anyhow::Result<Option<Session>> {
    let run = &student.assembly.config.run;
    let target = &run.train.target;
    if target.teacher_config.is_empty() || !target.from.is_empty() {
        return Ok(None);
    }
    let mut files = target.teacher_config.clone();
    files.extend(student.sources.files.iter().skip(1).cloned());
    let sets = vec![
        format!("seed={}", run.seed),
        format!("out={}", toml::Value::String(run.out.display().to_string())),
    ];
    let shown = files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    println!(
        "== teacher of {}: {shown} (seed {}) ==",
        run.method.name, run.seed
    );
    let teacher = build(ConfigSources::new(files, sets)).with_context(|| {
        format!(
            "the teacher named by `train.target.teacher_config` (in {}): {shown}",
            student
                .assembly
                .config
                .source_of("train.target.teacher_config")
        )
    })?;
    let options = RunOptions {
        no_eval: true,
        resume_interrupted: true,
        ..RunOptions::default()
    };
    let outcome = run_one(&teacher, &options)?;
    let folder = outcome.run_dir.path().display().to_string();
    println!("== {}: student of {folder} ==", run.method.name);
    let mut sources = student.sources.clone();
    sources
        .sets
        .push(format!("train.target.from={}", toml::Value::String(folder)));
    Ok(Some(build(sources)?))
}
