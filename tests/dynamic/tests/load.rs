//! Dynamic plugins: the example library is refused or loaded exactly as documented, its
//! components join the registry, its gradients agree with the host's, and a config trains with
//! its loss.

use candle_core::{Device, Tensor, Var};
use rossl_api::components::{Attack, BuildContext, SslLoss};
use rossl_api::registry::{self, Kind};
use rossl_api::rng::Rng;
use rossl_dynamic_tests::example_plugin;
use rossl_runtime::assembly::Assembly;
use rossl_runtime::config::{ConfigSources, DeviceSpec};
use rossl_runtime::device::select_device;
use rossl_runtime::plugins;
use rossl_runtime::run_dir::RunDir;
use std::path::PathBuf;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rossl-dyn-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn load_example() {
    assert!(
        plugins::host_is_dynamic(),
        "this test host must link rossl-api and rossl-nn through librossl_dylib"
    );
    plugins::load(&example_plugin()).unwrap();
}

#[test]
fn the_example_plugin_loads_and_its_components_are_listed() {
    load_example();
    assert!(Kind::Loss.names().contains(&"vicreg"));
    assert!(Kind::Attack.names().contains(&"random-noise"));
    let entry = Kind::Loss
        .entries()
        .into_iter()
        .find(|e| e.name == "vicreg")
        .unwrap();
    assert!(entry.location.to_string().contains("rossl_example_dynamic"));
    assert!(plugins::loaded()
        .iter()
        .any(|p| p.ends_with(example_plugin().file_name().unwrap())));
    load_example(); // loading again is a no-op
    registry::check_duplicates().unwrap();
}

/// The same VICReg formula, computed by the host.
fn vicreg_in_the_host(z: &Tensor, views: usize) -> Tensor {
    let (rows, d) = z.dims2().unwrap();
    let b = rows / views;
    let view = |v: usize| z.narrow(0, v * b, b).unwrap();
    let mut pairs = Vec::new();
    for v in 0..views {
        for w in v + 1..views {
            pairs.push(
                (view(v) - view(w))
                    .unwrap()
                    .sqr()
                    .unwrap()
                    .mean_all()
                    .unwrap(),
            );
        }
    }
    let invariance = Tensor::stack(&pairs, 0).unwrap().mean_all().unwrap();
    let mut var_terms = Vec::new();
    let mut cov_terms = Vec::new();
    for v in 0..views {
        let x = view(v);
        let c = x.broadcast_sub(&x.mean_keepdim(0).unwrap()).unwrap();
        let var = (c.sqr().unwrap().sum(0).unwrap() / (b as f64 - 1.0)).unwrap();
        let std = (var + 1e-4).unwrap().sqrt().unwrap();
        var_terms.push(
            (std.neg().unwrap() + 1.0)
                .unwrap()
                .relu()
                .unwrap()
                .mean_all()
                .unwrap(),
        );
        let cov = (c.t().unwrap().matmul(&c).unwrap() / (b as f64 - 1.0)).unwrap();
        let total = cov.sqr().unwrap().sum_all().unwrap();
        let mut diag = Vec::new();
        for i in 0..d {
            diag.push(cov.get(i).unwrap().get(i).unwrap());
        }
        let diag = Tensor::stack(&diag, 0)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        cov_terms.push(((total - diag).unwrap() / d as f64).unwrap());
    }
    let var = Tensor::stack(&var_terms, 0).unwrap().mean_all().unwrap();
    let cov = Tensor::stack(&cov_terms, 0).unwrap().mean_all().unwrap();
    ((invariance * 25.0).unwrap() + (var * 25.0).unwrap() + cov).unwrap()
}

#[test]
fn the_plugin_s_gradient_equals_the_host_s() {
    load_example();
    let loss = registry::build::<dyn SslLoss>("vicreg", "", &BuildContext::cpu(0)).unwrap();
    let mut rng = Rng::new(5);
    let values: Vec<f64> = (0..3 * 5 * 4).map(|_| rng.normal() * 0.3).collect();
    let z = Var::from_tensor(&Tensor::from_vec(values, (15, 4), &Device::Cpu).unwrap()).unwrap();
    let grad_of = |value: &Tensor| {
        value
            .backward()
            .unwrap()
            .get(z.as_tensor())
            .unwrap()
            .clone()
    };
    let plugin_value = loss.loss(z.as_tensor(), 3).unwrap();
    let plugin_grad = grad_of(&plugin_value);
    let host_value = vicreg_in_the_host(z.as_tensor(), 3);
    let host_grad = grad_of(&host_value);
    let dv =
        (plugin_value.to_scalar::<f64>().unwrap() - host_value.to_scalar::<f64>().unwrap()).abs();
    assert!(dv < 1e-12, "values differ by {dv}");
    let dg = (plugin_grad - &host_grad)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    let scale = host_grad
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!(
        scale > 0.0 && dg < 1e-12 * scale.max(1.0),
        "gradients differ by {dg} (two copies of candle?)"
    );
}

#[test]
fn the_plugin_s_attack_keeps_to_its_l2_ball_and_the_pixel_range_and_improves_the_objective() {
    load_example();
    let params = "eps = 0.3\nnorm = \"l2\"\nsamples = 8";
    let attack =
        registry::build::<dyn Attack>("random-noise", params, &BuildContext::cpu(0)).unwrap();
    let x = Tensor::rand(0f32, 1f32, (4, 2, 3, 3), &Device::Cpu).unwrap();
    let w = Tensor::rand(-1f32, 1f32, (1, 2, 3, 3), &Device::Cpu).unwrap();
    let mut objective = |input: &Tensor| -> rossl_api::Result<Tensor> {
        Ok(input.broadcast_mul(&w)?.sum((1, 2, 3))?)
    };
    let adv = attack
        .perturb(&x, &mut objective, &mut Rng::new(0))
        .unwrap();
    let norms = (&adv - &x)
        .unwrap()
        .sqr()
        .unwrap()
        .sum((1, 2, 3))
        .unwrap()
        .sqrt()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!(
        norms.iter().all(|n| *n <= 0.3 + 1e-5) && norms.iter().any(|n| *n > 0.0),
        "{norms:?}"
    );
    // the kept point scores at least as high as the input (which competes as the first point)
    let gain = (objective(&adv).unwrap() - objective(&x).unwrap())
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!(gain.iter().all(|g| *g >= 0.0), "{gain:?}");
    assert!(
        adv.min_all().unwrap().to_scalar::<f32>().unwrap() >= 0.0
            && adv.max_all().unwrap().to_scalar::<f32>().unwrap() <= 1.0
    );
}

#[test]
fn a_config_trains_with_the_plugin_s_loss() {
    let dir = temp_dir("train");
    let file = dir.join("vicreg.toml");
    std::fs::write(
        &file,
        format!(
            "device = \"cpu\"\nout = {out:?}\n[plugins]\nload = [{lib:?}]\n[method]\nname = \"vicreg-test\"\n\
             [data]\nname = \"synthetic\"\nbatch_size = 8\n[data.synthetic]\nchannels = 1\nheight = 12\nwidth = 12\ntrain_size = 32\n\
             [views.multi-crop]\nviews = 2\n[encoder.resnet-small]\nwidths = [4, 8]\nhidden = 16\nz_dim = 8\n\
             [loss]\nterms = [{{ name = \"vicreg\" }}]\n[train]\nepochs = 3\nlog_every = 1\n[eval]\nevaluators = []\n",
            out = dir.join("runs").display().to_string(),
            lib = example_plugin().display().to_string(),
        ),
    )
    .unwrap();
    let resolved = rossl_runtime::plugins::resolve(&ConfigSources {
        files: vec![file],
        sets: vec![],
        use_env: false,
    })
    .unwrap();
    assert_eq!(
        resolved.run.plugins.load,
        vec![example_plugin().canonicalize().unwrap()]
    );
    let asm = Assembly::build(resolved, select_device(DeviceSpec::Cpu).unwrap()).unwrap();
    let run_dir = RunDir::for_config(&asm.config).unwrap();
    run_dir.create().unwrap();
    let summary = rossl_runtime::train::train(&asm, &run_dir, None).unwrap();
    assert_eq!(summary.steps, 12);
    assert!(summary.final_loss.unwrap().is_finite());
}

#[test]
fn plugins_load_paths_are_relative_to_their_file_and_every_layer_adds_its_own() {
    // configs/base.toml names `lib/plugin.so` (a link to the example library next to it);
    // configs/more/extra.toml, stacked after it, names `../lib/plugin.so` again (loaded once),
    // then nothing (the base's library stays), then a missing library of its own, which must be
    // looked for in configs/more/
    let dir = temp_dir("relative");
    std::fs::create_dir_all(dir.join("configs/lib")).unwrap();
    std::fs::create_dir_all(dir.join("configs/more")).unwrap();
    std::os::unix::fs::symlink(example_plugin(), dir.join("configs/lib/plugin.so")).unwrap();
    let base = dir.join("configs/base.toml");
    // (this host links no built-in losses or evaluators: the config uses the plugin's loss)
    std::fs::write(
        &base,
        "[plugins]\nload = [\"lib/plugin.so\"]\n[loss]\nterms = [{ name = \"vicreg\" }]\n\
         [eval]\nevaluators = []\n",
    )
    .unwrap();
    let extra = dir.join("configs/more/extra.toml");
    std::fs::write(&extra, "[plugins]\nload = [\"../lib/plugin.so\"]\n").unwrap();
    let sources = |files: Vec<PathBuf>| ConfigSources {
        files,
        sets: vec![],
        use_env: false,
    };
    let resolved =
        rossl_runtime::plugins::resolve(&sources(vec![base.clone(), extra.clone()])).unwrap();
    assert_eq!(
        resolved.run.plugins.load,
        vec![example_plugin().canonicalize().unwrap()],
        "one library, named by both layers, loaded once"
    );
    // a later layer with an empty list does not drop the earlier layer's library (with figment's
    // plain merge, the last list would replace the first and nothing would be loaded)
    std::fs::write(&extra, "[plugins]\nload = []\n").unwrap();
    let resolved =
        rossl_runtime::plugins::resolve(&sources(vec![base.clone(), extra.clone()])).unwrap();
    assert_eq!(
        resolved.run.plugins.load,
        vec![example_plugin().canonicalize().unwrap()]
    );
    std::fs::write(&extra, "[plugins]\nload = [\"missing.so\"]\n").unwrap();
    let message = rossl_runtime::plugins::resolve(&sources(vec![base, extra]))
        .unwrap_err()
        .to_string();
    let expected = dir.join("configs/more/missing.so");
    assert!(
        message.contains(&expected.display().to_string()) && message.contains("extra.toml"),
        "{message}"
    );
}

#[test]
fn a_library_whose_stamp_differs_is_refused_with_what_differs() {
    let dir = temp_dir("stale");
    let copy = dir.join("libstale_plugin.so");
    let mut bytes = std::fs::read(example_plugin()).unwrap();
    let profile = format!("|profile={}|", plugins::AbiStamp::host().profile);
    // `|profile=debug|` -> `|profile=Xdebu|`: same length, another value
    let value = plugins::AbiStamp::host().profile;
    let patched = format!("|profile=X{}|", &value[..value.len() - 1]);
    assert_eq!(patched.len(), profile.len());
    let mut found = 0;
    let mut i = 0;
    while let Some(p) = bytes[i..]
        .windows(profile.len())
        .position(|w| w == profile.as_bytes())
    {
        bytes[i + p..i + p + profile.len()].copy_from_slice(patched.as_bytes());
        i += p + profile.len();
        found += 1;
    }
    assert!(found >= 1);
    std::fs::write(&copy, &bytes).unwrap();
    let message = plugins::load(&copy).unwrap_err().to_string();
    assert!(
        message.contains("built for another rossl") && message.contains("profile: the host has"),
        "{message}"
    );
    assert!(message.contains("Rebuild"), "{message}");
    // and a path that does not exist, a file that is not a library, a library without a stamp
    assert!(plugins::load(&dir.join("missing.so"))
        .unwrap_err()
        .to_string()
        .contains("not found"));
    let text = dir.join("notes.so");
    std::fs::write(&text, "not a library").unwrap();
    assert!(plugins::load(&text)
        .unwrap_err()
        .to_string()
        .contains("not a shared library"));
    let unstamped = std::env::current_exe().unwrap();
    assert!(plugins::load(&unstamped)
        .unwrap_err()
        .to_string()
        .contains("no `.rossl_abi` ABI stamp"));
}
