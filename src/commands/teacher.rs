//! A frozen teacher named as a configuration (`train.target.teacher_config`, DeACL's first
//! stage): trained first, or its finished run reused, then named as the student's
//! `train.target.from`.

use crate::commands::runner::{run_one, RunOptions};
use crate::commands::session::{build, Session};
use anyhow::Context;
use rossl_runtime::config::ConfigSources;

/// The configuration sources of the teacher that `student` names in
/// `train.target.teacher_config`: its files, then the student's own files after its first (scale
/// overlays), with the student's `seed` and `out`, so that a study's seeds train one teacher
/// each and a CPU-scale student gets a CPU-scale teacher. The student's other overrides do not
/// reach the teacher. `None` when the student names no teacher config, or already a teacher
/// folder (`train.target.from`).
pub fn teacher_sources(student: &Session) -> Option<ConfigSources> {
    let run = &student.assembly.config.run;
    let target = &run.train.target;
    if target.teacher_config.is_empty() || !target.from.is_empty() {
        return None;
    }
    let mut files = target.teacher_config.clone();
    files.extend(student.sources.files.iter().skip(1).cloned());
    let sets = vec![
        format!("seed={}", run.seed),
        format!("out={}", toml::Value::String(run.out.display().to_string())),
    ];
    Some(ConfigSources::new(files, sets))
}

/// The override that names `folder` as the teacher: `train.target.from = "<folder>"`.
pub fn from_override(folder: &std::path::Path) -> String {
    format!(
        "train.target.from={}",
        toml::Value::String(folder.display().to_string())
    )
}

/// Builds the teacher's session, naming the student's key in errors.
pub fn build_teacher(student: &Session, sources: ConfigSources) -> anyhow::Result<Session> {
    let shown = sources
        .files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    build(sources).with_context(|| {
        format!(
            "the teacher named by `train.target.teacher_config` (in {}): {shown}",
            student
                .assembly
                .config
                .source_of("train.target.teacher_config")
        )
    })
}

/// The student's session with its teacher trained (or its finished run reused, or its
/// interrupted run continued) and named in `train.target.from`; `None` when
/// [`teacher_sources`] is. The teacher is not evaluated (`rossl eval` its folder).
pub fn student_with_teacher(student: &Session) -> anyhow::Result<Option<Session>> {
    let Some(sources) = teacher_sources(student) else {
        return Ok(None);
    };
    let run = &student.assembly.config.run;
    println!(
        "== teacher of {} (seed {}): {} ==",
        run.method.name,
        run.seed,
        sources
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let teacher = build_teacher(student, sources)?;
    let options = RunOptions {
        no_eval: true,
        resume_interrupted: true,
        ..RunOptions::default()
    };
    let outcome = run_one(&teacher, &options)?;
    let folder = outcome.run_dir.path();
    println!("== {}: student of {} ==", run.method.name, folder.display());
    let mut sources = student.sources.clone();
    sources.sets.push(from_override(folder));
    Ok(Some(build(sources)?))
}
