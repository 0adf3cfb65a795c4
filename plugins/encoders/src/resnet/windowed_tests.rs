//! The windowed pass of the fused backbone against whole images through the encoder.

use super::{ResNetEncoder, ResNetSpec};
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

/// A query's rows, their windows, and the rows kept after it (one `keep` call each).
type Query = (Vec<usize>, Vec<Window>, Vec<Vec<usize>>);

/// Queries on 14x10 images (stride-2 layers on odd maps: 7x5 to 4x3), with windows at the
/// corners, the edges and inside, of sides 1 to 3 (part of each of the first layers recomputed)
/// and 7 (from the second stage on, whole layers), and images kept after each query (after the
/// first, where the shortcut and the second stage are partial; twice after the second): every
/// query's features are those of the whole images through the encoder.
#[test]
fn windowed_features_are_the_whole_images_features() {
    let spec = ResNetSpec {
        in_channels: 2,
        widths: vec![8, 16, 16, 16],
        blocks: vec![1, 2, 1, 1],
        hidden: 12,
        z_dim: 6,
    };
    let encoder = ResNetEncoder::new(spec, 5, &Device::Cpu).unwrap();
    let mut base = Tensor::rand(0f32, 1f32, (4, 2, 14, 10), &Device::Cpu).unwrap();
    // running statistics other than the initial ones, so that the frozen batch norms matter
    encoder.forward(&base, Mode::Train).unwrap();
    let mut pass = encoder
        .windowed(&base)
        .unwrap()
        .expect("the fused backbone offers one");
    let at = |top, left, side| Window { top, left, side };
    // (rows, their windows, the rows kept afterwards, call by call)
    let queries: [Query; 4] = [
        (
            vec![0, 2, 3],
            vec![at(0, 0, 1), at(13, 9, 1), at(6, 4, 2)],
            vec![vec![0, 3]],
        ),
        (
            vec![0, 2, 3],
            vec![at(12, 0, 2), at(0, 8, 2), at(5, 3, 3)],
            vec![vec![2], vec![0]],
        ),
        (vec![1, 3], vec![at(3, 1, 7), at(7, 3, 7)], vec![vec![3]]),
        (
            vec![0, 1, 2, 3],
            vec![at(1, 1, 3), at(11, 7, 3), at(0, 5, 2), at(9, 0, 2)],
            vec![],
        ),
    ];
    for (q, (rows, windows, keeps)) in queries.iter().enumerate() {
        let images = changed(&base, rows, windows, q as u64);
        let got = pass.run(&images, rows, windows).unwrap();
        let want = encoder.features(&images, Mode::Eval).unwrap();
        assert_close(&got, &want, &format!("query {q}"));
        for kept in keeps {
            pass.keep(kept).unwrap();
            for &row in kept {
                let j = rows.iter().position(|&r| r == row).unwrap();
                let image = images.i(j..j + 1).unwrap();
                base = base
                    .slice_assign(&[row..row + 1, 0..2, 0..14, 0..10], &image)
                    .unwrap();
            }
        }
    }
    // a row not in the last query cannot be kept; a window outside the image is refused
    assert!(pass.keep(&[5]).is_err());
    let window = [at(13, 0, 2)];
    let image = changed(&base, &[1], &[at(12, 0, 2)], 9);
    assert!(pass.run(&image, &[1], &window).is_err());
}
