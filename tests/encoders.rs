//! The encoders: shapes, PyTorch parameter names, batch-norm modes, initialisation.

mod common;
use candle_core::{DType, Device, Tensor};
use common::{max_abs, max_abs_diff};
use rossl::rossl_api::components::{BuildContext, Encoder, InputShape, Mode};
use rossl::rossl_api::registry;

fn encoder(name: &str, params: &str, channels: usize) -> Box<dyn Encoder> {
    let shape = InputShape {
        channels,
        height: 32,
        width: 32,
        classes: 10,
    };
    registry::build::<dyn Encoder>(name, params, &BuildContext::cpu(0).with_input(shape)).unwrap()
}

#[test]
fn resnet18_cifar_has_pytorch_s_state_dict() {
    // The reference `encoder` module (torchvision resnet18 with the CIFAR stem, EMP-SSL head) has
    // 136 state_dict entries and 34,263,104 trainable values (PyTorch: len(E().state_dict()) and
    // the sum of numel over weights and biases).
    let e = encoder("resnet18-cifar", "", 3);
    let params = e.parameters();
    let buffers = e.buffers();
    assert_eq!(params.len() + buffers.len(), 136);
    let trainable: usize = params.iter().map(|p| p.var.elem_count()).sum();
    assert_eq!(trainable, 34_263_104);
    let shape = |name: &str| -> Vec<usize> {
        params
            .iter()
            .map(|p| (&p.name, p.var.dims().to_vec()))
            .chain(buffers.iter().map(|b| (&b.name, b.var.dims().to_vec())))
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no `{name}`"))
            .1
    };
    assert_eq!(shape("backbone.conv1.weight"), vec![64, 3, 3, 3]);
    assert_eq!(
        shape("backbone.layer2.0.downsample.0.weight"),
        vec![128, 64, 1, 1]
    );
    assert_eq!(shape("backbone.layer4.1.bn2.running_var"), vec![512]);
    assert_eq!(
        shape("backbone.layer1.0.bn1.num_batches_tracked"),
        Vec::<usize>::new()
    );
    assert_eq!(shape("pre_feature.0.weight"), vec![4096, 512]);
    assert_eq!(shape("pre_feature.1.bias"), vec![4096]);
    assert_eq!(shape("projection.3.weight"), vec![1024, 4096]);
    assert_eq!((e.feature_dim(), e.projection_dim()), (4096, 1024));
    // a forward pass on CIFAR-shaped images gives those shapes, unit-norm projections
    let x = Tensor::rand(0f32, 1f32, (2, 3, 32, 32), &Device::Cpu).unwrap();
    let out = e.forward(&x, Mode::Train).unwrap();
    assert_eq!(out.feature.dims(), &[2, 4096]);
    assert_eq!(out.projection.dims(), &[2, 1024]);
    let norms = out
        .projection
        .sqr()
        .unwrap()
        .sum(1)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-4), "{norms:?}");
}

#[test]
fn outputs_have_the_documented_shapes_and_unit_norm() {
    let e = encoder(
        "resnet-small",
        "widths = [8, 16, 32]\nhidden = 64\nz_dim = 16",
        1,
    );
    let x = Tensor::rand(0f32, 1f32, (6, 1, 28, 28), &Device::Cpu).unwrap();
    let out = e.forward(&x, Mode::Train).unwrap();
    assert_eq!(out.feature.dims(), &[6, 64]);
    assert_eq!(out.projection.dims(), &[6, 16]);
    let norms = out
        .projection
        .sqr()
        .unwrap()
        .sum(1)
        .unwrap()
        .sqrt()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5), "{norms:?}");
    // the feature is post-ReLU
    assert!(out.feature.min_all().unwrap().to_scalar::<f32>().unwrap() >= 0.0);
    assert_eq!(e.features(&x, Mode::Eval).unwrap().dims(), &[6, 64]);
}

fn running_mean(e: &dyn Encoder) -> Vec<f32> {
    e.buffers()
        .iter()
        .find(|b| b.name == "backbone.bn1.running_mean")
        .unwrap()
        .var
        .to_vec1::<f32>()
        .unwrap()
}

#[test]
fn batch_norm_updates_running_statistics_only_in_training_mode() {
    let e = encoder("resnet-small", "widths = [4, 8]\nhidden = 8\nz_dim = 4", 1);
    let x = Tensor::rand(0f32, 1f32, (8, 1, 12, 12), &Device::Cpu).unwrap();
    let before = running_mean(e.as_ref());
    assert!(before.iter().all(|v| *v == 0.0));
    e.forward(&x, Mode::Eval).unwrap();
    e.forward(&x, Mode::Attack).unwrap();
    assert_eq!(
        running_mean(e.as_ref()),
        before,
        "eval and attack passes leave running statistics"
    );
    e.forward(&x, Mode::Train).unwrap();
    let after = running_mean(e.as_ref());
    assert_ne!(after, before);
    let tracked = e
        .buffers()
        .iter()
        .find(|b| b.name == "backbone.bn1.num_batches_tracked")
        .unwrap()
        .var
        .to_dtype(DType::F32)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(tracked, 1.0);
    // training mode normalises with the batch: the first batch-norm output is batch-dependent,
    // evaluation mode is not
    let one = x.narrow(0, 0, 1).unwrap();
    let alone = e.features(&one, Mode::Eval).unwrap();
    let in_batch = e.features(&x, Mode::Eval).unwrap().narrow(0, 0, 1).unwrap();
    let diff = max_abs_diff(&alone, &in_batch);
    assert!(diff < 1e-5, "evaluation mode depends on the batch: {diff}");
}

#[test]
fn attack_and_eval_passes_give_gradients_to_the_input_only() {
    let e = encoder("resnet-small", "widths = [4, 8]\nhidden = 8\nz_dim = 4", 1);
    let x = candle_core::Var::from_tensor(
        &Tensor::rand(0f32, 1f32, (4, 1, 12, 12), &Device::Cpu).unwrap(),
    )
    .unwrap();
    for mode in [Mode::Attack, Mode::Eval] {
        let grads = e
            .forward(x.as_tensor(), mode)
            .unwrap()
            .projection
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(grads.get(x.as_tensor()).is_some());
        assert!(
            e.parameters()
                .iter()
                .all(|p| grads.get(p.var.as_tensor()).is_none()),
            "{mode:?}"
        );
    }
    let mut grads = e
        .forward(x.as_tensor(), Mode::Train)
        .unwrap()
        .projection
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    e.route_gradients(&mut grads).unwrap();
    assert!(e
        .parameters()
        .iter()
        .all(|p| grads.get(p.var.as_tensor()).is_some()));
}

/// The fused CPU backbone (one operation, hand-written backward) against the layered one
/// (candle's operations per layer): outputs, input and weight gradients, running statistics.
#[test]
fn the_fused_backbone_matches_the_layered_reference() {
    use rossl_encoders::resnet::{ResNetEncoder, ResNetSpec};
    let spec = ResNetSpec {
        in_channels: 3,
        widths: vec![8, 16, 16],
        blocks: vec![1, 2, 1],
        hidden: 12,
        z_dim: 6,
    };
    let fused = ResNetEncoder::new(spec.clone(), 3, &Device::Cpu).unwrap();
    let mut layered = ResNetEncoder::new(spec, 3, &Device::Cpu).unwrap();
    layered.set_fused(false).unwrap();
    let x = Tensor::rand(0f32, 1f32, (6, 3, 11, 11), &Device::Cpu).unwrap();
    let g = Tensor::rand(-1f32, 1f32, (6, 6), &Device::Cpu).unwrap();
    for mode in [Mode::Train, Mode::Attack, Mode::Eval, Mode::Train] {
        let xv = candle_core::Var::from_tensor(&x).unwrap();
        let results: Vec<_> = [&fused, &layered]
            .iter()
            .map(|e| {
                let out = e.forward(xv.as_tensor(), mode).unwrap();
                let mut grads = (out.projection.clone() * &g)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                e.route_gradients(&mut grads).unwrap();
                let dx = grads.get(xv.as_tensor()).unwrap().clone();
                let dw: Vec<Option<Tensor>> = e
                    .parameters()
                    .iter()
                    .map(|p| grads.get(p.var.as_tensor()).cloned())
                    .collect();
                (out.projection, dx, dw)
            })
            .collect();
        let diff = max_abs_diff;
        let scale = |a: &Tensor| max_abs(a).max(1e-6);
        assert!(diff(&results[0].0, &results[1].0) < 1e-4, "{mode:?} output");
        assert!(
            diff(&results[0].1, &results[1].1) < 1e-4 * scale(&results[1].1),
            "{mode:?} input gradient"
        );
        for (i, (a, b)) in results[0].2.iter().zip(&results[1].2).enumerate() {
            match (a, b) {
                (Some(a), Some(b)) => assert!(
                    diff(a, b) <= 2e-3 * scale(b),
                    "{mode:?} weight gradient {i}: {} vs scale {}",
                    diff(a, b),
                    scale(b)
                ),
                (None, None) => assert_ne!(mode, Mode::Train),
                _ => panic!("{mode:?}: gradient {i} present in one implementation only"),
            }
        }
        for (a, b) in fused.buffers().iter().zip(layered.buffers()) {
            let d = diff(
                &a.var.to_dtype(DType::F32).unwrap(),
                &b.var.to_dtype(DType::F32).unwrap(),
            );
            assert!(
                d < 1e-5,
                "{mode:?}: running statistic `{}` differs by {d}",
                a.name
            );
        }
    }
}

/// Two views through the fused backbone before one backward pass (as two-view losses do) give
/// the sum of both weight gradients, as the layered backbone does; a backward pass whose
/// gradient is never routed leaves nothing behind for the next step.
#[test]
fn fused_weight_gradients_sum_over_views_and_never_reach_a_later_step() {
    use rossl_encoders::resnet::{ResNetEncoder, ResNetSpec};
    let spec = ResNetSpec {
        in_channels: 3,
        widths: vec![8, 16],
        blocks: vec![1, 1],
        hidden: 12,
        z_dim: 6,
    };
    let fused = ResNetEncoder::new(spec.clone(), 5, &Device::Cpu).unwrap();
    let mut layered = ResNetEncoder::new(spec, 5, &Device::Cpu).unwrap();
    layered.set_fused(false).unwrap();
    let dev = &Device::Cpu;
    let views: Vec<Tensor> = (0..2)
        .map(|_| Tensor::rand(0f32, 1f32, (4, 3, 9, 9), dev).unwrap())
        .collect();
    let g = Tensor::rand(-1f32, 1f32, (4, 6), dev).unwrap();
    let loss = |e: &ResNetEncoder, xs: &[Tensor]| {
        let mut total = Tensor::zeros((), DType::F32, dev).unwrap();
        for x in xs {
            let p = e.forward(x, Mode::Train).unwrap().projection;
            total = (total + (p * &g).unwrap().sum_all().unwrap()).unwrap();
        }
        total
    };
    let routed = |e: &ResNetEncoder, xs: &[Tensor]| {
        let mut grads = loss(e, xs).backward().unwrap();
        e.route_gradients(&mut grads).unwrap();
        e.parameters()
            .iter()
            .map(|p| grads.get(p.var.as_tensor()).unwrap().clone())
            .collect::<Vec<_>>()
    };
    let agree = |a: &[Tensor], b: &[Tensor], what: &str| {
        for (i, (a, b)) in a.iter().zip(b).enumerate() {
            let d = max_abs_diff(a, b);
            assert!(
                d <= 2e-3 * max_abs(b).max(1e-6),
                "{what}: parameter {i} differs by {d}"
            );
        }
    };
    agree(
        &routed(&fused, &views),
        &routed(&layered, &views),
        "two views",
    );
    // a backward pass never routed, then a step on the second view alone
    drop(loss(&fused, &views[..1]).backward().unwrap());
    drop(loss(&layered, &views[..1]).backward().unwrap());
    agree(
        &routed(&fused, &views[1..]),
        &routed(&layered, &views[1..]),
        "after an unrouted backward pass",
    );
}

#[test]
fn the_same_seed_initialises_the_same_weights() {
    let a = encoder("resnet-small", "widths = [4, 8]\nhidden = 8\nz_dim = 4", 1);
    let b = encoder("resnet-small", "widths = [4, 8]\nhidden = 8\nz_dim = 4", 1);
    for (p, q) in a.parameters().iter().zip(b.parameters()) {
        assert_eq!(
            p.var.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            q.var.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
    }
    // kaiming normal (fan out) on a 3x3 conv of 8 outputs: std sqrt(2 / 72) = 0.1667
    let w = a
        .parameters()
        .into_iter()
        .find(|p| p.name == "backbone.layer2.0.conv2.weight")
        .unwrap();
    let v = w.var.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let sd = (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt();
    assert!((sd - 0.1667).abs() < 0.04, "{sd}");
}

type ByName = std::collections::HashMap<String, Tensor>;

/// `x` and `y` agree to float precision, or the test fails naming `what`.
fn assert_close(x: &Tensor, y: &Tensor, what: &str) {
    let d = max_abs_diff(x, y);
    assert!(d <= 1e-4 * max_abs(y).max(1e-3), "{what} differs by {d}");
}

/// The routed gradients of `loss` with respect to `e`'s parameters, by name.
fn routed_gradients(e: &rossl_encoders::resnet::ResNetEncoder, loss: Tensor) -> ByName {
    let mut grads = loss.backward().unwrap();
    e.route_gradients(&mut grads).unwrap();
    e.parameters()
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                grads.get(p.var.as_tensor()).unwrap().clone(),
            )
        })
        .collect()
}

/// Each gradient of the dual encoder against the single encoders' gradients on stream `a` and
/// stream `b`: adversarial batch-norm parameters equal `a`'s, clean batch-norm parameters `b`'s,
/// shared weights the sum.
fn assert_gradients_routed(dual: &ByName, a: &ByName, b: &ByName, fused: bool) {
    let has_twin = |name: &str| {
        ["weight", "bias"].iter().any(|kind| {
            name.strip_suffix(&format!(".{kind}"))
                .is_some_and(|site| dual.contains_key(&format!("{site}.adversarial.{kind}")))
        })
    };
    for (name, grad) in dual {
        let what = format!("fused = {fused}: the gradient of `{name}`");
        if name.contains(".adversarial.") {
            assert_close(grad, &a[&name.replace(".adversarial.", ".")], &what);
        } else if has_twin(name) {
            assert_close(grad, &b[name], &what);
        } else {
            assert_close(grad, &(&a[name] + &b[name]).unwrap(), &what);
        }
    }
}

/// The dual encoder's running statistics: the adversarial branch's equal `a`'s, the clean
/// branch's `b`'s.
fn assert_statistics_routed(dual: &dyn Encoder, a: &dyn Encoder, b: &dyn Encoder, fused: bool) {
    let f32_of = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
    let by_name = |e: &dyn Encoder| -> ByName {
        e.buffers()
            .into_iter()
            .map(|b| (b.name, f32_of(b.var.as_tensor())))
            .collect()
    };
    let (a, b) = (by_name(a), by_name(b));
    for buffer in dual.buffers() {
        let (reference, name) = match buffer.name.split_once(".adversarial.") {
            Some((site, stat)) => (&a, format!("{site}.{stat}")),
            None => (&b, buffer.name.clone()),
        };
        let what = format!("fused = {fused}: `{}`", buffer.name);
        assert_close(&f32_of(buffer.var.as_tensor()), &reference[&name], &what);
    }
}

/// Dual batch norm routes each stream to its own branch: a dual encoder that runs batch `a` on
/// its adversarial branch and batch `b` on its clean one, in one graph, equals two
/// single-batch-norm encoders of the same seed that ran `a` alone and `b` alone: in running
/// statistics, in evaluation outputs, and in the gradients of each branch's batch-norm
/// parameters; the shared weights get the sum of both gradients. The fused and the layered
/// backbone alike. Fails if both streams share one set of statistics or one gradient slot.
#[test]
fn dual_batch_norm_routes_each_stream_to_its_own_branch() {
    use rossl::rossl_api::components::BnBranch;
    use rossl_encoders::resnet::{ResNetEncoder, ResNetSpec};
    let dev = &Device::Cpu;
    let spec = ResNetSpec {
        in_channels: 3,
        widths: vec![8, 16],
        blocks: vec![1, 1],
        hidden: 12,
        z_dim: 6,
    };
    let [a, b, c] = [0, 1, 2].map(|_| Tensor::rand(0f32, 1f32, (4, 3, 9, 9), dev).unwrap());
    let g = Tensor::rand(-1f32, 1f32, (4, 6), dev).unwrap();
    let objective = |e: &ResNetEncoder, x: &Tensor| {
        let p = e.forward(x, Mode::Train).unwrap().projection;
        (p * &g).unwrap().sum_all().unwrap()
    };
    let on_branch = |e: &ResNetEncoder, branch: BnBranch, x: &Tensor, mode: Mode| {
        e.select_branch(branch);
        let out = match mode {
            Mode::Train => objective(e, x),
            _ => e.forward(x, mode).unwrap().projection,
        };
        e.select_branch(BnBranch::Clean);
        out
    };
    for fused in [true, false] {
        let mut dual = ResNetEncoder::with_dual_batch_norm(spec.clone(), 9, dev, true).unwrap();
        let [mut alone_a, mut alone_b] =
            [0, 1].map(|_| ResNetEncoder::new(spec.clone(), 9, dev).unwrap());
        for e in [&mut dual, &mut alone_a, &mut alone_b] {
            e.set_fused(fused).unwrap();
        }
        assert!(dual.dual_batch_norm() && !alone_a.dual_batch_norm());
        let on_a = on_branch(&dual, BnBranch::Adversarial, &a, Mode::Train);
        let on_b = on_branch(&dual, BnBranch::Clean, &b, Mode::Train);
        let dual_grads = routed_gradients(&dual, (on_a + on_b).unwrap());
        let grads_a = routed_gradients(&alone_a, objective(&alone_a, &a));
        let grads_b = routed_gradients(&alone_b, objective(&alone_b, &b));
        assert_gradients_routed(&dual_grads, &grads_a, &grads_b, fused);
        assert_statistics_routed(&dual, &alone_a, &alone_b, fused);
        let eval_a = alone_a.forward(&c, Mode::Eval).unwrap().projection;
        let eval_b = alone_b.forward(&c, Mode::Eval).unwrap().projection;
        let adversarial = on_branch(&dual, BnBranch::Adversarial, &c, Mode::Eval);
        assert_close(
            &adversarial,
            &eval_a,
            "the adversarial branch in evaluation",
        );
        let clean = on_branch(&dual, BnBranch::Clean, &c, Mode::Eval);
        assert_close(&clean, &eval_b, "the clean branch in evaluation");
        assert!(max_abs_diff(&eval_a, &eval_b) > 1e-4, "the branches differ");
    }
}
