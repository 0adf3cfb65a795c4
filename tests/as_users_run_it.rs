//! Every command, run as users run it: default verbosity (no `-q`), standard output and error
//! going to a file, a pipe and a terminal, each under a watchdog. A command that does not exit is
//! killed and fails its test (a hang, not a timing assertion: the limits are minutes).

mod common;
use common::process::{run_watched, Finished, Output, TEST_SIZE_ENV};
use common::temp_dir;
use std::path::{Path, PathBuf};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(300);

fn rossl() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rossl"))
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `rossl args` from the repository root at test size, asserting that it exits with 0.
fn ok(args: &[&str], output: Output) -> Finished {
    let finished = run_watched(&rossl(), args, repo(), TEST_SIZE_ENV, output, LIMIT);
    assert!(
        finished.success,
        "`rossl {}` with its output to a {output:?} exited with {:?}:\n{}",
        args.join(" "),
        finished.code,
        finished.output
    );
    finished
}

#[test]
fn the_quickstart_and_an_evaluation_finish_with_output_to_a_file_a_pipe_and_a_terminal() {
    for output in Output::ALL {
        let dir = temp_dir(&format!("users-quickstart-{output:?}"));
        let out = dir.display().to_string();
        let run = ok(&["run", "configs/quickstart.toml", "--out", &out], output);
        assert!(
            run.output.contains("| CF-AMC-SSL (free AT, m = 3) |")
                && run.output.contains("comparison written to"),
            "{}",
            run.output
        );
        // the run folder of the last run is reachable as <out>/latest
        let latest = dir.join("latest");
        assert!(latest.join("results.json").is_file(), "{}", run.output);
        let latest = latest.display().to_string();
        let eval = ok(&["eval", &latest, "--set", "eval.preset=\"paper\""], output);
        assert!(eval.output.contains("results written"), "{}", eval.output);
    }
}

#[test]
fn compare_finishes_with_output_to_a_file_a_pipe_and_a_terminal() {
    for output in Output::ALL {
        let dir = temp_dir(&format!("users-compare-{output:?}"));
        let out = dir.display().to_string();
        let finished = ok(
            &[
                "compare",
                "configs/methods/emp-ssl.toml",
                "configs/methods/cf-amc-ssl.toml",
                "--with",
                "configs/scale/cpu.toml",
                "--out",
                &out,
            ],
            output,
        );
        assert!(dir.join("comparison.md").is_file(), "{}", finished.output);
    }
}

#[test]
fn views_plugins_config_and_bench_finish_with_output_to_a_file_a_pipe_and_a_terminal() {
    for output in Output::ALL {
        let dir = temp_dir(&format!("users-small-{output:?}"));
        let png = dir.join("crops.png").display().to_string();
        ok(
            &["views", "configs/views/emp-ssl-crops.toml", "--out", &png],
            output,
        );
        assert!(Path::new(&png).is_file());
        let plugins = ok(&["plugins"], output);
        assert!(plugins.output.contains("pgd-linf"), "{}", plugins.output);
        let config = ok(
            &["config", "configs/methods/cf-amc-ssl.toml", "--explain"],
            output,
        );
        assert!(config.output.contains("regime"), "{}", config.output);
        let bench = ok(
            &[
                "bench",
                "--workload",
                "small",
                "--steps",
                "1",
                "--warmup",
                "0",
            ],
            output,
        );
        assert!(bench.output.contains("RESULT"), "{}", bench.output);
    }
}

#[test]
fn a_failing_command_exits_non_zero_with_its_error_on_every_output() {
    for output in Output::ALL {
        let finished = run_watched(
            &rossl(),
            &["run", "configs/quickstart.toml", "--set", "train.epocs=3"],
            repo(),
            &[],
            output,
            LIMIT,
        );
        assert!(
            !finished.success && finished.output.contains("train.epocs"),
            "{finished:?}"
        );
    }
}

/// DeACL names its teacher as a configuration: one command trains the teacher (with the
/// student's seed and overlays, not evaluated), then the student, whose `config.toml` names the
/// teacher's folder; the same command again reuses both. The teacher exported (`rossl export`)
/// and named as a weights file trains the same student, bit for bit.
#[test]
fn a_teacher_named_as_a_configuration_is_trained_first_then_reused() {
    let dir = temp_dir("users-teacher");
    let out = dir.display().to_string();
    let args = [
        "run",
        "configs/methods/deacl.toml",
        "configs/scale/cpu.toml",
        "--out",
        &out,
        "--no-eval",
        "--set",
        "seed=3",
    ];
    let first = ok(&args, Output::File);
    let teacher = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("simclr-")
        })
        .unwrap_or_else(|| panic!("no teacher folder in {out}:\n{}", first.output));
    assert!(
        !teacher.join("results.json").exists(),
        "the teacher is not evaluated"
    );
    let teacher_config = std::fs::read_to_string(teacher.join("config.toml")).unwrap();
    assert!(
        teacher_config.contains("seed = 3") && teacher_config.contains("resnet-small"),
        "the teacher takes the student's seed and overlays:\n{teacher_config}"
    );
    let student = std::fs::read_link(dir.join("latest")).unwrap();
    let student = dir.join(student);
    let config = std::fs::read_to_string(student.join("config.toml")).unwrap();
    assert!(
        config.contains(&format!("from = {:?}", teacher.display().to_string()))
            && config.contains("configs/methods/simclr.toml"),
        "{config}"
    );
    let again = ok(&args, Output::File);
    assert_eq!(
        again.output.matches("already trained").count(),
        2,
        "teacher and student reused:\n{}",
        again.output
    );
    let teacher_dir = teacher.display().to_string();
    ok(&["export", &teacher_dir, "--samples", "0"], Output::File);
    let file = teacher.join("encoder.safetensors").display().to_string();
    let from_file = format!("train.target.from={file:?}");
    let mut with_file = args.to_vec();
    with_file.extend(["--set", &from_file]);
    ok(&with_file, Output::File);
    let student_of_file = dir.join(std::fs::read_link(dir.join("latest")).unwrap());
    assert_ne!(student_of_file, student);
    let weights = |run: &Path| {
        candle_core::safetensors::load(
            run.join("checkpoint.safetensors"),
            &candle_core::Device::Cpu,
        )
        .unwrap()
    };
    let (a, b) = (weights(&student), weights(&student_of_file));
    assert_eq!(a.len(), b.len());
    for (name, t) in &a {
        let diff = (t.to_dtype(candle_core::DType::F64).unwrap()
            - b[name].to_dtype(candle_core::DType::F64).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
        assert_eq!(diff, 0.0, "`{name}` differs between the two students");
    }
}
