use crate::resnet::{ResNetEncoder, ResNetSpec};
use candle_core::{Device, IndexOp, Tensor};
use rossl_api::components::{Encoder, Mode, Window};

/// `base`'s rows `rows`, each with `windows[j]` (every channel) set to new values.
fn changed(base: &Tensor, rows: &[usize], windows: &[Window], seed: u64) -> Tensor {
    let (_, c, h, w) = base.dims4().unwrap();
    let mut images = Vec::new();
    for (j, (&row, window)) in rows.iter().zip(windows).enumerate() {
        let mut v = base
            .i(row)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for ch in 0..c {
            for y in window.top..window.top + window.side {
                for x in window.left..window.left + window.side {
                    let k = (seed as usize * 31 + j * 7 + ch * 5 + y * 3 + x) % 17;
                    v[(ch * h + y) * w + x] = k as f32 / 16.0;
                }
            }
        }
        images.push(Tensor::from_vec(v, (1, c, h, w), &Device::Cpu).unwrap());
    }
    Tensor::cat(&images, 0).unwrap()
}

fn assert_close(a: &Tensor, b: &Tensor, what: &str) {
    let (a, b) = (
        a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
    );
    let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    let worst = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        worst <= 1e-4 * scale,
        "{what}: off by {worst} (scale {scale})"
    );
}

/// Windows at the corners, the edges and inside, of sides 1 to 3 (only part of the first two
/// stages recomputed) and 9 (whole layers from the stem on), then a kept image queried again:
/// the features are those of whole images through the encoder.
#[test]
fn windowed_features_are_the_whole_images_features() {
    let spec = ResNetSpec {
        in_channels: 2,
        widths: vec![8, 16, 16],
        blocks: vec![1, 2, 1],
        hidden: 12,
        z_dim: 6,
    };
    let encoder = ResNetEncoder::new(spec, 5, &Device::Cpu).unwrap();
    let base = Tensor::rand(0f32, 1f32, (4, 2, 20, 20), &Device::Cpu).unwrap();
    // running statistics other than the initial ones, so that the frozen batch norms matter
    encoder.forward(&base, Mode::Train).unwrap();
    let mut pass = encoder
        .windowed(&base)
        .unwrap()
        .expect("the fused backbone offers one");
    let at = |top, left, side| Window { top, left, side };
    let rows = [0usize, 2, 3];
    let queries = [
        [at(0, 0, 1), at(19, 19, 1), at(8, 11, 2)],
        [at(17, 0, 3), at(0, 17, 3), at(9, 9, 3)],
        [at(5, 11, 9), at(0, 0, 9), at(11, 3, 9)],
    ];
    for (q, windows) in queries.iter().enumerate() {
        let images = changed(&base, &rows, windows, q as u64);
        let got = pass.run(&images, &rows, windows).unwrap();
        let want = encoder.features(&images, Mode::Eval).unwrap();
        assert_close(&got, &want, &format!("query {q}"));
    }
    // keep row 2 of the last query; then query rows 0 (from the base) and 2 (from the kept image)
    let kept = changed(&base, &rows, &queries[2], 2);
    pass.keep(&[2]).unwrap();
    let mut next_base = base.clone();
    next_base = next_base
        .slice_assign(&[2..3, 0..2, 0..20, 0..20], &kept.i(1..2).unwrap())
        .unwrap();
    let windows = [at(1, 2, 2), at(14, 4, 2)];
    let images = changed(&next_base, &[0, 2], &windows, 7);
    let got = pass.run(&images, &[0, 2], &windows).unwrap();
    assert_close(
        &got,
        &encoder.features(&images, Mode::Eval).unwrap(),
        "after keep",
    );
    // a row not in the last query cannot be kept
    assert!(pass.keep(&[1]).is_err());
}
