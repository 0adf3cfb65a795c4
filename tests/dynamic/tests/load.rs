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
    assert!(Kind::Loss.names().contains(&"uniformity"));
    assert!(Kind::Attack.names().contains(&"random-noise"));
    let entry = Kind::Loss
        .entries()
        .into_iter()
        .find(|e| e.name == "uniformity")
        .unwrap();
    assert!(entry.location.to_string().contains("rossl_example_dynamic"));
    assert!(plugins::loaded()
        .iter()
        .any(|p| p.ends_with(example_plugin().file_name().unwrap())));
    load_example(); // loading again is a no-op
    registry::check_duplicates().unwrap();
}

/// Wang and Isola's uniformity (and alignment, alpha = 2), computed by the host with other candle
/// operations than the plugin's: pairwise differences by broadcasting instead of a Gram matrix,
/// and a plain log of the mean over i != j (the diagonal's b terms exp(0) = 1 taken out of the
/// sum) instead of a shifted log-mean-exp over gathered pairs.
fn uniformity_in_the_host(z: &Tensor, views: usize, t: f64, alignment: f64) -> Tensor {
    let (rows, _) = z.dims2().unwrap();
    let b = rows / views;
    let norm = z.sqr().unwrap().sum_keepdim(1).unwrap().sqrt().unwrap();
    let z = z.broadcast_div(&norm).unwrap();
    let view = |v: usize| z.narrow(0, v * b, b).unwrap();
    let mut uniform = Vec::new();
    for v in 0..views {
        let x = view(v);
        let diff = x
            .unsqueeze(1)
            .unwrap()
            .broadcast_sub(&x.unsqueeze(0).unwrap())
            .unwrap();
        let potential = (diff.sqr().unwrap().sum(2).unwrap() * -t)
            .unwrap()
            .exp()
            .unwrap()
            .sum_all()
            .unwrap();
        let mean = ((potential - b as f64).unwrap() / (b * (b - 1)) as f64).unwrap();
        uniform.push(mean.log().unwrap());
    }
    let uniform = Tensor::stack(&uniform, 0).unwrap().mean_all().unwrap();
    let mut align = Vec::new();
    for v in 0..views {
        for w in v + 1..views {
            let d = (view(v) - view(w)).unwrap().sqr().unwrap();
            align.push((d.sum_all().unwrap() / b as f64).unwrap());
        }
    }
    let align = Tensor::stack(&align, 0).unwrap().mean_all().unwrap();
    (uniform + (align * alignment).unwrap()).unwrap()
}

/// The plugin's `uniformity` with parameters `params` (TOML).
fn uniformity(params: &str) -> Box<dyn SslLoss> {
    load_example();
    registry::build::<dyn SslLoss>("uniformity", params, &BuildContext::cpu(0)).unwrap()
}

/// A loss's value and gradient with respect to `z`.
fn value_and_grad(value: impl Fn(&Tensor) -> Tensor, z: &Var) -> (f64, Tensor) {
    let value = value(z.as_tensor());
    let grad = value
        .backward()
        .unwrap()
        .get(z.as_tensor())
        .unwrap()
        .clone();
    (value.to_scalar::<f64>().unwrap(), grad)
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

#[test]
fn the_plugin_s_gradient_equals_the_host_s() {
    let mut rng = Rng::new(5);
    let values: Vec<f64> = (0..3 * 5 * 4).map(|_| rng.normal() * 0.3).collect();
    let z = Var::from_tensor(&Tensor::from_vec(values, (15, 4), &Device::Cpu).unwrap()).unwrap();
    for (params, t, alignment) in [("", 2.0, 0.0), ("t = 3.0\nalignment = 0.5", 3.0, 0.5)] {
        let loss = uniformity(params);
        let (plugin_value, plugin_grad) = value_and_grad(|z| loss.loss(z, 3).unwrap(), &z);
        let (host_value, host_grad) =
            value_and_grad(|z| uniformity_in_the_host(z, 3, t, alignment), &z);
        // the two computations differ in rounding only
        let dv = (plugin_value - host_value).abs();
        assert!(dv < 1e-12, "{params:?}: values differ by {dv}");
        let dg = max_abs(&(plugin_grad - &host_grad).unwrap());
        let scale = max_abs(&host_grad);
        assert!(
            scale > 0.0 && dg < 1e-10 * scale.max(1.0),
            "{params:?}: gradients differ by {dg} (two copies of candle?)"
        );
    }
}

// PyTorch (float64), z (12 x 5) with z[r][j] = sin(0.7 r + 1.3 j + 0.1 r j), not normalised,
// 3 views of 4 images (Wang and Isola's code, averaged over views and pairs of views):
//   lunif = lambda x, t: torch.pdist(x, p=2).pow(2).mul(-t).exp().mean().log()
//   lalign = lambda x, y: (x - y).norm(p=2, dim=1).pow(2).mean()
//   c = F.normalize(z, dim=1).chunk(3)
//   sum(lunif(x, t) for x in c) / 3 + w * mean(lalign(c[v], c[u]) for v < u)
//   t = 2, w = 0   -> -2.2012497103533133,
//                     grad z[0,:3] = [0.08949677962818674, 0.048163871554252585, -0.08621675077161749]
//   t = 3, w = 0.5 -> -1.5367729101953054,
//                     grad z[0,:3] = [0.1161208807315119, 0.045248688658921024, -0.10062239912956092]
#[test]
fn the_plugin_s_loss_equals_pytorch_s() {
    let values: Vec<f64> = (0..12)
        .flat_map(|r| {
            (0..5).map(move |j| (0.7 * r as f64 + 1.3 * j as f64 + 0.1 * (r * j) as f64).sin())
        })
        .collect();
    let z = Var::from_tensor(&Tensor::from_vec(values, (12, 5), &Device::Cpu).unwrap()).unwrap();
    let cases = [
        (
            "",
            -2.2012497103533133,
            [
                0.08949677962818674,
                0.048163871554252585,
                -0.08621675077161749,
            ],
        ),
        (
            "t = 3.0\nalignment = 0.5",
            -1.5367729101953054,
            [
                0.1161208807315119,
                0.045248688658921024,
                -0.10062239912956092,
            ],
        ),
    ];
    for (params, expected, expected_grad) in cases {
        let loss = uniformity(params);
        let (value, grad) = value_and_grad(|z| loss.loss(z, 3).unwrap(), &z);
        assert!(
            (value - expected).abs() < 1e-12,
            "{params:?}: {value} vs PyTorch {expected}"
        );
        let grad = grad.get(0).unwrap().to_vec1::<f64>().unwrap();
        for (a, b) in grad.iter().zip(expected_grad) {
            assert!(
                (a - b).abs() < 1e-12,
                "{params:?}: gradient {a} vs PyTorch {b}"
            );
        }
    }
}

#[test]
fn a_large_t_neither_underflows_nor_loses_the_gradient() {
    // 2 views of the 3 unit vectors of R^3: every pair is at squared distance 2, so the loss is
    // exactly -2t; exp(-2t) = 0 in f64 for t = 1000, which a log-mean-exp without the shift
    // turns into -inf (and a NaN gradient). Row 0's gradient: t/3 along the other two axes.
    let t = 1000.0;
    let eye = Tensor::eye(3, candle_core::DType::F64, &Device::Cpu).unwrap();
    let z = Var::from_tensor(&Tensor::cat(&[&eye, &eye], 0).unwrap()).unwrap();
    let loss = uniformity(&format!("t = {t:?}"));
    let (value, grad) = value_and_grad(|z| loss.loss(z, 2).unwrap(), &z);
    assert!((value + 2.0 * t).abs() < 1e-9, "{value}");
    let row = grad.get(0).unwrap().to_vec1::<f64>().unwrap();
    for (a, b) in row.iter().zip([0.0, t / 3.0, t / 3.0]) {
        assert!((a - b).abs() < 1e-9 * t, "{row:?}");
    }
}

#[test]
fn uniformity_refuses_bad_parameters_and_too_few_images_with_the_reason() {
    load_example();
    for (params, key) in [
        ("t = 0.0", "loss.uniformity.t"),
        ("alignment = -1.0", "loss.uniformity.alignment"),
    ] {
        let message = registry::build::<dyn SslLoss>("uniformity", params, &BuildContext::cpu(0))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(message.contains(key), "{params:?}: {message}");
    }
    let z = Tensor::ones((3, 4), candle_core::DType::F64, &Device::Cpu).unwrap();
    let message = uniformity("").loss(&z, 3).unwrap_err().to_string();
    assert!(message.contains("at least 2 images per view"), "{message}");
    let message = uniformity("alignment = 1.0")
        .loss(&z, 1)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("alignment term needs at least 2 views"),
        "{message}"
    );
    assert!(
        uniformity("").loss(&z, 1).is_ok(),
        "one view of 3 images is enough"
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
    let file = dir.join("uniformity.toml");
    std::fs::write(
        &file,
        format!(
            "device = \"cpu\"\nout = {out:?}\n[plugins]\nload = [{lib:?}]\n[method]\nname = \"uniformity-test\"\n\
             [data]\nname = \"synthetic\"\nbatch_size = 8\n[data.synthetic]\nchannels = 1\nheight = 12\nwidth = 12\ntrain_size = 32\n\
             [views.multi-crop]\nviews = 2\n[encoder.resnet-small]\nwidths = [4, 8]\nhidden = 16\nz_dim = 8\n\
             [loss]\nterms = [{{ name = \"uniformity\" }}]\n[loss.uniformity]\nalignment = 1.0\n[train]\nepochs = 3\nlog_every = 1\n[eval]\nevaluators = []\n",
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
        "[plugins]\nload = [\"lib/plugin.so\"]\n[loss]\nterms = [{ name = \"uniformity\" }]\n\
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
