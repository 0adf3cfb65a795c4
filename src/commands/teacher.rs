//! A frozen teacher named as a configuration (`train.target.teacher_config`, DeACL's first
//! stage): trained first, or its finished run reused, then named as the student's
//! `train.target.from`.

use crate::commands::session::{build, Session};
use anyhow::Context;
use rossl_api::components::BnBranch;
use rossl_runtime::config::ConfigSources;
use rossl_runtime::train::encoder_tensors;
use std::collections::HashMap;

/// The student's settings of the machine that the teacher takes too.
/// (`pool_wait` too, set from the student's typed value: the table leaves it out at its default.)
const MACHINE_KEYS: [&str; 4] = ["device", "threads", "cpu_isa", "plugins"];

/// The configuration sources of the teacher that `student` names in
/// `train.target.teacher_config`: its files, then the student's own files after its first (scale
/// overlays), with the student's `seed`, `out` and machine settings (`device`, `threads`,
/// `cpu_isa`, `pool_wait`, `plugins`), so that a study's seeds train one teacher each and a
/// CPU-scale student gets a CPU-scale teacher. The student's other overrides do not reach the teacher. `None` when
/// the student names no teacher config, or already a teacher (`train.target.from`).
pub fn teacher_sources(student: &Session) -> anyhow::Result<Option<ConfigSources>> {
    let config = &student.assembly.config;
    let run = &config.run;
    let target = &run.train.target;
    if target.teacher_config.is_empty() || !target.from.is_empty() {
        return Ok(None);
    }
    let mut files = target.teacher_config.clone();
    files.extend(student.sources.files.iter().skip(1).cloned());
    let mut sets = vec![
        format!("seed={}", run.seed),
        format!("out={}", toml::Value::String(run.out.display().to_string())),
    ];
    let resolved = config.resolved_table()?;
    for key in MACHINE_KEYS {
        if let Some(value) = resolved.get(key) {
            sets.push(format!("{key}={value}"));
        }
    }
    sets.push(format!("pool_wait=\"{}\"", run.pool_wait.kernels()));
    Ok(Some(ConfigSources::new(files, sets)))
}

/// Config files as a command line lists them.
fn listed(files: &[std::path::PathBuf]) -> String {
    files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The override that names `folder` as the teacher: `train.target.from = "<folder>"`.
pub fn from_override(folder: &std::path::Path) -> String {
    format!(
        "train.target.from={}",
        toml::Value::String(folder.display().to_string())
    )
}

/// Builds the teacher's session, naming the student's key in errors; refuses a teacher that
/// names a teacher config itself (with the student's overlays, a student config would train
/// itself as its own teacher forever) and one whose encoder does not fit the student's
/// (`check_fits`), before anything is trained.
pub fn build_teacher(student: &Session, sources: ConfigSources) -> anyhow::Result<Session> {
    let key = "train.target.teacher_config";
    let named = format!(
        "the teacher named by `{key}` (in {}): {}",
        student.assembly.config.source_of(key),
        listed(&sources.files)
    );
    let teacher = build(sources).with_context(|| named.clone())?;
    if !teacher
        .assembly
        .config
        .run
        .train
        .target
        .teacher_config
        .is_empty()
    {
        anyhow::bail!(
            "{named}: names a teacher config itself (in {}); a teacher must be trainable on its own. Put the student's config file first and its overlays after it: `rossl run configs/methods/deacl.toml configs/scale/cpu.toml`",
            teacher.assembly.config.source_of(key)
        );
    }
    check_fits(student, &teacher).with_context(|| named)?;
    Ok(teacher)
}

/// The teacher's encoder fits the student's: the same feature width, and with
/// `train.target.init_from_teacher` every tensor of the student's encoder under the same name and
/// shape (an adversarial batch-norm branch may come from the clean one).
fn check_fits(student: &Session, teacher: &Session) -> anyhow::Result<()> {
    let (s, t) = (&student.assembly, &teacher.assembly);
    let describe = |session: &Session| {
        let run = &session.assembly.config.run;
        format!(
            "`encoder.{}` of method `{}`",
            run.encoder.name, run.method.name
        )
    };
    if s.encoder.feature_dim() != t.encoder.feature_dim() {
        anyhow::bail!(
            "the teacher's feature is {} wide ({}), the student's {} ({}): the losses compare them",
            t.encoder.feature_dim(),
            describe(teacher),
            s.encoder.feature_dim(),
            describe(student)
        );
    }
    if !s.config.run.train.target.init_from_teacher {
        return Ok(());
    }
    let shapes: HashMap<String, Vec<usize>> = encoder_tensors(t.encoder.as_ref())
        .into_iter()
        .map(|(name, tensor)| (name, tensor.dims().to_vec()))
        .collect();
    for (name, tensor) in encoder_tensors(s.encoder.as_ref()) {
        let found = shapes
            .get(&name)
            .or_else(|| BnBranch::clean_twin(&name).and_then(|twin| shapes.get(&twin)));
        if found.map(Vec::as_slice) != Some(tensor.dims()) {
            anyhow::bail!(
                "`train.target.init_from_teacher`: the student's `{name}` ({:?}, {}) has no tensor of that shape in the teacher ({:?}, {}); give both the same encoder",
                tensor.dims(),
                describe(student),
                found,
                describe(teacher)
            );
        }
    }
    Ok(())
}

/// The session of the teacher that `student` names as a configuration ([`teacher_sources`],
/// [`build_teacher`]), to train (or reuse) before the student; `None` when it names none.
pub fn teacher_session(student: &Session) -> anyhow::Result<Option<Session>> {
    let Some(sources) = teacher_sources(student)? else {
        return Ok(None);
    };
    let run = &student.assembly.config.run;
    println!(
        "== teacher of {} (seed {}): {} ==",
        run.method.name,
        run.seed,
        listed(&sources.files)
    );
    Ok(Some(build_teacher(student, sources)?))
}

/// The student's session with its trained teacher's `folder` named in `train.target.from`.
pub fn student_of(student: &Session, folder: &std::path::Path) -> anyhow::Result<Session> {
    let run = &student.assembly.config.run;
    println!("== {}: student of {} ==", run.method.name, folder.display());
    let mut sources = student.sources.clone();
    sources.sets.push(from_override(folder));
    build(sources)
}
