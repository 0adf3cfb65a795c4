//! Layered configuration: every shipped config assembles; mistakes are errors that name the key,
//! the source and the alternatives; later layers win; switching a component never leaks
//! parameters.

mod common;
use common::{error_of, resolve, temp_dir, write};
use rossl::rossl_runtime::assembly::Assembly;
use rossl::rossl_runtime::config::DeviceSpec;
use rossl::rossl_runtime::device::{select_device, SelectedDevice};
use std::path::{Path, PathBuf};

fn toml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            toml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
}

fn cpu() -> SelectedDevice {
    select_device(DeviceSpec::Cpu).unwrap()
}

#[test]
fn every_file_under_configs_parses_and_assembles() {
    let mut files = Vec::new();
    toml_files(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("configs")
            .as_path(),
        &mut files,
    );
    assert!(files.len() >= 13, "found {files:?}");
    for file in files {
        // study files are checked by loading them as studies
        if file.components().any(|c| c.as_os_str() == "studies") {
            rossl::study::spec::StudyFile::load(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            continue;
        }
        // DeACL names its teacher run on the command line; the teacher is loaded when training
        // starts, so any name lets its components build
        let sets: &[&str] = if file.ends_with("deacl.toml") {
            &["train.target.from=\"teacher-run\""]
        } else {
            &[]
        };
        let resolved = resolve(std::slice::from_ref(&file), sets)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        // components are built (datasets are not loaded; paper-scale encoders are allocated)
        Assembly::build(resolved, cpu()).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
}

#[test]
fn every_lab_study_and_the_lab_scale_load() {
    let labs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/labs");
    for lab in ["1-views.toml", "2-attack.toml", "3-free-vs-pgd.toml"] {
        rossl::study::spec::StudyFile::load(&labs.join(lab))
            .unwrap_or_else(|e| panic!("{lab}: {e}"));
    }
    resolve(&[labs.join("lab-scale.toml")], &[]).unwrap();
}

#[test]
fn a_misspelt_key_names_the_key_the_file_and_the_right_spelling() {
    let dir = temp_dir("misspelt");
    let file = write(&dir, "method.toml", "[train]\nepocs = 5\n");
    let message = error_of(resolve(&[file], &[]));
    assert!(message.contains("train.epocs"), "{message}");
    assert!(message.contains("method.toml"), "{message}");
    assert!(message.contains("did you mean `epochs`"), "{message}");
}

#[test]
fn a_misspelt_component_section_is_caught_with_a_suggestion() {
    let dir = temp_dir("section");
    let file = write(&dir, "m.toml", "[encoder.resnet-smal]\nhidden = 8\n");
    let message = error_of(resolve(&[file], &[]));
    assert!(message.contains("encoder.resnet-smal"), "{message}");
    assert!(message.contains("did you mean `resnet-small`"), "{message}");
    // and inside a component's own section
    let file = write(&dir, "n.toml", "[loss.tcr]\nepsilon = 0.5\n");
    let message = error_of(resolve(&[file], &[]));
    assert!(
        message.contains("loss.tcr.epsilon") && message.contains("n.toml"),
        "{message}"
    );
}

#[test]
fn a_wrong_type_names_the_key_and_its_source() {
    let dir = temp_dir("type");
    let file = write(&dir, "m.toml", "[data]\nbatch_size = \"many\"\n");
    let message = error_of(resolve(&[file], &[]));
    assert!(
        message.contains("data.batch_size") && message.contains("m.toml"),
        "{message}"
    );
    let message = error_of(resolve(&[], &["train.epochs=lots"]));
    assert!(
        message.contains("train.epochs") && message.contains("--set train.epochs=lots"),
        "{message}"
    );
}

#[test]
fn an_unknown_component_lists_the_names_and_suggests_the_closest() {
    let message = error_of(resolve(&[], &["encoder.name=resnet-smal"]));
    assert!(
        message.contains("unknown encoder `resnet-smal`"),
        "{message}"
    );
    assert!(message.contains("did you mean `resnet-small`"), "{message}");
    assert!(message.contains("resnet18-cifar"), "{message}");
    assert!(
        message.contains("--set encoder.name=resnet-smal"),
        "{message}"
    );
    let message = error_of(resolve(&[], &["loss.terms=[{ name = \"tcrr\" }]"]));
    assert!(
        message.contains("unknown loss `tcrr`") && message.contains("did you mean `tcr`"),
        "{message}"
    );
}

#[test]
fn later_layers_win_and_explain_names_each_source() {
    let dir = temp_dir("layers");
    let a = write(
        &dir,
        "a.toml",
        "seed = 1\n[train]\nepochs = 4\n[optim]\nlr = 0.1\n",
    );
    let b = write(&dir, "b.toml", "seed = 2\n");
    let resolved = resolve(&[a, b], &["seed=3", "optim.lr=0.2"]).unwrap();
    assert_eq!(resolved.run.seed, 3);
    assert_eq!(resolved.run.train.epochs, 4);
    assert_eq!(resolved.run.optim.lr, 0.2);
    let text = resolved.to_toml(true).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("seed = 3") && l.contains("--set seed=3")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("epochs = 4") && l.contains("a.toml")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("momentum = 0.9") && l.contains("built-in defaults")),
        "{text}"
    );
    // the resolved text is itself a config that resolves to the same run
    let again = write(&dir, "resolved.toml", &text);
    assert_eq!(
        resolve(&[again], &[]).unwrap().digest().unwrap(),
        resolved.digest().unwrap()
    );
}

#[test]
fn switching_a_component_does_not_leak_its_parameters() {
    let dir = temp_dir("leak");
    let a = write(
        &dir,
        "a.toml",
        "[encoder]\nname = \"resnet18-cifar\"\n[encoder.resnet18-cifar]\nhidden = 64\nz_dim = 16\n",
    );
    let resolved = resolve(&[a], &["encoder.name=resnet-small"]).unwrap();
    let encoder = resolved
        .components
        .iter()
        .find(|c| c.section.starts_with("encoder."))
        .unwrap();
    assert_eq!(encoder.name, "resnet-small");
    // resnet-small keeps its own defaults: nothing of resnet18-cifar's section reaches it
    assert_eq!(encoder.params["hidden"].as_integer(), Some(512));
    assert_eq!(encoder.params["z_dim"].as_integer(), Some(128));
    let text = resolved.to_toml(false).unwrap();
    assert!(!text.contains("resnet18-cifar"), "{text}");
}

#[test]
fn invalid_values_are_caught_before_anything_runs() {
    let message = error_of(resolve(&[], &["views.multi-crop.scale=[0.5, 0.1]"]));
    assert!(message.contains("views.multi-crop.scale"), "{message}");
    let message = error_of(resolve(&[], &["data.batch_size=0"]));
    assert!(
        message.contains("data.batch_size") && message.contains("at least 1"),
        "{message}"
    );
    let message = error_of(resolve(&[], &["device=\"gpu7\""]));
    assert!(message.contains("device"), "{message}");
    let message = error_of(resolve(&[PathBuf::from("/nonexistent/x.toml")], &[]));
    assert!(
        message.contains("/nonexistent/x.toml") && message.contains("not found"),
        "{message}"
    );
    // an augmentation step's value names its place in the list and the file that set it
    let dir = temp_dir("augment");
    let aug = write(
        &dir,
        "aug.toml",
        "[views.multi-crop]\naugment = [{ op = \"horizontal-flip\", p = 1.5 }]\n",
    );
    let message = error_of(resolve(&[aug], &[]));
    assert!(
        message.contains("views.multi-crop.augment[0]")
            && message.contains("1.5")
            && message.contains("aug.toml"),
        "{message}"
    );
    // a misspelt key in the section of a component that is not chosen fails too
    let message = error_of(resolve(&[], &["encoder.resnet18-cifar.hiden=64"]));
    assert!(
        message.contains("encoder.resnet18-cifar") && message.contains("hiden"),
        "{message}"
    );
    let dir = temp_dir("syntax");
    let bad = write(&dir, "bad.toml", "[train\nepochs = 1\n");
    let message = error_of(resolve(&[bad], &[]));
    assert!(
        message.contains("bad.toml") && message.contains("not valid TOML"),
        "{message}"
    );
}

#[test]
fn attacks_that_cannot_move_are_configuration_errors_naming_the_key() {
    for (set, key) in [
        (
            "eval.extra_attacks=[{ name = \"pgd-linf\", params = { steps = 0 } }]",
            "steps",
        ),
        (
            "eval.extra_attacks=[{ name = \"pgd-linf\", params = { step = 0.0 } }]",
            "step",
        ),
        (
            "eval.extra_attacks=[{ name = \"fgsm\", params = { step = 0.0 } }]",
            "step",
        ),
        (
            "eval.extra_attacks=[{ name = \"apgd\", params = { steps = 0 } }]",
            "steps",
        ),
        (
            "eval.extra_attacks=[{ name = \"square\", params = { queries = 0 } }]",
            "queries",
        ),
        ("eval.apgd_steps=0", "eval.apgd_steps"),
        ("eval.square_queries=0", "eval.square_queries"),
        ("eval.paper_steps=0", "eval.paper_steps"),
        ("train.attack.pgd-linf.steps=0", "steps"),
    ] {
        let message = common::error_of(common::resolve(&[], &[set]));
        assert!(message.contains(key), "{set}: {message}");
    }
}

#[test]
fn a_parameter_added_with_its_old_behaviour_as_default_keeps_the_run_folder() {
    // emp-ssl-pgd trains with `pgd-linf`, which has since gained `norm` (default `linf`): the
    // configuration must digest as before, so that its finished runs are found and reused.
    // fe82b96257 is the folder the release before `norm` made for this command (run there:
    // `rossl run configs/methods/emp-ssl-pgd.toml configs/scale/cpu.toml`).
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let resolved = resolve(
        &[
            root.join("configs/methods/emp-ssl-pgd.toml"),
            root.join("configs/scale/cpu.toml"),
        ],
        &[],
    )
    .unwrap();
    let digest = resolved.digest().unwrap();
    assert!(digest.starts_with("fe82b96257"), "digest {digest}");
}

#[test]
fn a_record_that_writes_a_default_this_build_leaves_out_still_matches_its_folder() {
    // builds between `norm`'s arrival and its omission at the default wrote `norm = "linf"` into
    // both a run's config.toml and its checkpoint; this build resolves the folder's config without
    // it, and must still re-evaluate such a run, while an edited value still shows
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = [
        root.join("configs/methods/emp-ssl-pgd.toml"),
        root.join("configs/scale/cpu.toml"),
    ];
    let resolved = resolve(&files, &[]).unwrap();
    let text = resolved.to_toml(false).unwrap();
    let header = "[train.attack.pgd-linf]\n";
    assert!(
        text.contains(header) && !text.contains("norm = \"linf\"\nrandom_start"),
        "{text}"
    );
    let recorded = text.replace(header, &format!("{header}norm = \"linf\"\n"));
    let difference = |record: &str| {
        resolved
            .training_difference_from_text(record, "the checkpoint")
            .unwrap()
    };
    assert!(difference(&text).is_none());
    assert!(
        difference(&recorded).is_none(),
        "{:?}",
        difference(&recorded)
    );
    let edited = recorded.replace(
        &format!("{header}norm = \"linf\""),
        &format!("{header}norm = \"l2\""),
    );
    assert_eq!(
        difference(&edited).map(|d| d.key),
        Some("train.attack.pgd-linf.norm".into())
    );
    // (that record does not resolve: `pgd-linf` refuses L2; one that does)
    let (before, section) = recorded.split_once(header).unwrap();
    let edited = format!(
        "{before}{header}{}",
        section.replacen("\nsteps = 5\n", "\nsteps = 7\n", 1)
    );
    assert_ne!(edited, recorded);
    assert_eq!(
        difference(&edited).map(|d| d.key),
        Some("train.attack.pgd-linf.steps".into())
    );
    // a key this build leaves out at its default, set in the folder only, is an edit too
    let bf16 = resolve(&files, &["precision=\"bf16\""]).unwrap();
    let edit = bf16
        .training_difference_from_text(&recorded, "the checkpoint")
        .unwrap();
    assert_eq!(edit.map(|d| d.key), Some("precision".into()));
}

#[test]
fn the_training_attack_runs_in_the_mode_its_configuration_names() {
    use rossl::rossl_api::components::Mode;
    let dir = common::temp_dir("attack-mode");
    for (sets, mode) in [
        (&[][..], Mode::Attack),
        (&["train.pgd.attack_updates_bn_stats=true"][..], Mode::Train),
        (&["train.pgd.attack_in_eval_mode=true"][..], Mode::Eval),
    ] {
        let asm = common::assemble(&dir, sets);
        assert_eq!(asm.config.run.train.pgd.attack_mode(), mode, "{sets:?}");
    }
}

#[test]
fn the_protocol_runs_its_evaluators_first_then_the_others_listed() {
    let evaluators = |sets: &[&str]| resolve(&[], sets).unwrap().run.eval.evaluators;
    // the built-in default (`linear-probe` alone) is replaced
    assert_eq!(
        evaluators(&["eval.protocol=[\"alf\", \"aff\"]"]),
        ["robust-linear-probe", "finetune"]
    );
    // evaluators a layer lists follow the protocol's, once each
    assert_eq!(
        evaluators(&[
            "eval.evaluators=[\"knn\", \"linear-probe\"]",
            "eval.protocol=[\"slf\", \"alf\", \"aff\"]"
        ]),
        ["linear-probe", "robust-linear-probe", "finetune", "knn"]
    );
    // an evaluator of a mode the protocol leaves out does not run, wherever it was listed (a
    // run folder's config.toml lists every evaluator it ran: `rossl eval` narrows the same way)
    assert_eq!(
        evaluators(&[
            "eval.evaluators=[\"linear-probe\", \"finetune\", \"knn\"]",
            "eval.protocol=[\"aff\"]"
        ]),
        ["finetune", "knn"]
    );
    for bad in ["[\"slf\", \"bff\"]", "[\"aff\", \"aff\"]"] {
        let message = error_of(resolve(&[], &[&format!("eval.protocol={bad}")]));
        assert!(message.contains("eval.protocol"), "{message}");
    }
}

#[test]
fn evaluation_digests_keep_their_value_and_follow_the_runtime_keys() {
    let quickstart = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/quickstart.toml");
    let digest = |sets: &[&str]| {
        resolve(std::slice::from_ref(&quickstart), sets)
            .unwrap()
            .eval_digest()
            .unwrap()
    };
    // the quickstart's evaluation digest before evaluators had runtime keys: finished runs are
    // not re-evaluated for keys they never set
    assert_eq!(digest(&[]), "457cf78c9a4695a2");
    let share = digest(&["eval.linear-probe.label_fraction=0.1"]);
    let transfer = digest(&["eval.linear-probe.dataset=\"mnist\""]);
    let transfer_elsewhere = digest(&[
        "eval.linear-probe.dataset=\"mnist\"",
        "data.mnist.root=\"/elsewhere\"",
    ]);
    // a transfer dataset is recorded with the run (config.toml re-evaluates as it ran) and is
    // no part of the training digest: the run folder stays the same
    let with_transfer = resolve(
        std::slice::from_ref(&quickstart),
        &[
            "eval.linear-probe.dataset=\"mnist\"",
            "data.mnist.root=\"/elsewhere\"",
        ],
    )
    .unwrap();
    let plain = resolve(std::slice::from_ref(&quickstart), &[]).unwrap();
    assert_eq!(with_transfer.digest().unwrap(), plain.digest().unwrap());
    let text = with_transfer.to_toml(false).unwrap();
    assert!(
        text.contains("[data.mnist]") && text.contains("/elsewhere"),
        "{text}"
    );
    // how an evaluation is run (strict exit, after training or not) is no part of its settings:
    // the same evaluation is found again, not made anew in another folder
    for set in ["eval.strict=true", "eval.after_training=false"] {
        assert_eq!(digest(&[set]), digest(&[]), "{set}");
    }
    let steps = digest(&["eval.steps=3"]);
    let all = [digest(&[]), share, transfer, transfer_elsewhere, steps];
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            assert_ne!(a, b);
        }
    }
}

#[test]
fn extra_attacks_attack_in_the_evaluations_threat_model() {
    use rossl::rossl_api::norm::Norm;
    use rossl::rossl_runtime::config::ExtraAttack;
    // under L2, an attack held to L-infinity is refused before training, naming it
    let l2 = ["eval.norm=\"l2\"", "eval.eps=[0.5]"];
    let message = error_of(resolve(
        &[],
        &[l2[0], l2[1], "eval.extra_attacks=[{ name = \"pgd-linf\" }]"],
    ));
    assert!(
        message.contains("pgd-linf") && message.contains("eval.norm"),
        "{message}"
    );
    // a `norm` of its own that is not the evaluation's is refused
    let message = error_of(resolve(
        &[],
        &["eval.extra_attacks=[{ name = \"pgd\", params = { norm = \"l2\" } }]"],
    ));
    assert!(
        message.contains("norm = \"l2\"") && message.contains("eval.norm"),
        "{message}"
    );
    // a norm-generic attack is given the evaluation's norm
    resolve(
        &[],
        &[l2[0], l2[1], "eval.extra_attacks=[{ name = \"pgd\" }]"],
    )
    .unwrap();
    let extra = ExtraAttack {
        name: "pgd".into(),
        loss: Default::default(),
        params: toml::Table::new(),
    };
    let planned = extra.planned(0, 0.5, Norm::L2).unwrap();
    assert_eq!(planned.params["norm"].as_str(), Some("l2"));
    let planned = extra.planned(0, 0.5, Norm::Linf).unwrap();
    assert!(!planned.params.contains_key("norm"));
}

#[test]
fn a_radius_listed_twice_is_refused() {
    let message = error_of(resolve(&[], &["eval.eps=[0.1, 0.2, 0.1]"]));
    assert!(
        message.contains("eval.eps") && message.contains("twice"),
        "{message}"
    );
}

#[test]
fn published_corruption_arrays_with_a_test_subset_are_refused_before_training() {
    let message = error_of(resolve(
        &[],
        &[
            "data.test_subset=100",
            "eval.corruptions.families=[\"fog\"]",
            "eval.corruptions.files=\"/data/CIFAR-10-C\"",
        ],
    ));
    assert!(
        message.contains("eval.corruptions.files") && message.contains("data.test_subset = 100"),
        "{message}"
    );
}
