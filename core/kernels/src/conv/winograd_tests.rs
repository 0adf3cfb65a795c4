//! Tests of the Winograd convolution against the definition (here, next to the convolution's
//! reference implementations, because the entry points that choose it are the convolution's).

use super::tests::{reference, reference_weight_grad, values};
use super::{forward, input_grad, weight_grad, weights_to_kkco, ConvShape, Winograd};
use crate::isa::{self, Isa};
use crate::winograd::{grad, grad_path, path, transform_weights, NARROW_ACCUMULATOR};

/// Shapes (N, H, W, C, O) that cover: tiles on every border, one-tile images, blocks that end
/// part-way through the batch (20 tile rows of 2 tiles: blocks of 24 rows), tile rows longer than
/// a block (W 100: 50 tiles, 8 register tiles of 6 rows and one of 2), output channels that
/// leave 1 or 2 vectors after the widest column blocks (80 = 64 + 16, 96 = 64 + 32), odd heights
/// and widths (blocks of whole images: 3, 3 and 1 images of 7x7), a 1x1 image, and the fewest
/// channels.
pub(super) const SHAPES: [(usize, usize, usize, usize, usize); 10] = [
    (2, 6, 8, 64, 64),
    (3, 2, 2, 64, 80),
    (3, 20, 4, 80, 64),
    (1, 2, 100, 64, 96),
    (2, 4, 4, 128, 64),
    (7, 7, 7, 16, 16),
    (2, 5, 6, 16, 32),
    (2, 6, 3, 32, 16),
    (3, 1, 1, 16, 16),
    (2, 9, 11, 32, 48),
];

/// The larger error of two, NaN (a value never written) the largest.
pub(super) fn worse(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

fn shape(n: usize, h: usize, w: usize, c: usize, o: usize) -> ConvShape {
    ConvShape {
        n,
        h,
        w,
        c,
        o,
        k: 3,
        stride: 1,
        pad: 1,
    }
}

/// Every block of `s` by `winograd` on the path `isa`, one after another.
fn all_blocks(winograd: Winograd, isa: Isa, x: &[f32], wt: &[f32], s: &ConvShape) -> Vec<f32> {
    let (transform_weights, block_len, block) = winograd.kernels();
    let u = transform_weights(wt, s);
    let mut out = vec![f32::NAN; s.rows() * s.o];
    for (i, part) in out.chunks_mut(block_len(s)).enumerate() {
        block(isa, x, &u, s, i, part);
    }
    out
}

#[test]
fn every_winograd_path_the_host_has_matches_the_definition_and_the_others_bit_for_bit() {
    let _serial = isa::test_lock();
    for &(n, h, w, c, o) in &SHAPES {
        let s = shape(n, h, w, c, o);
        // sums of 9 C = 576 to 1152 products of values in [-1, 1): about 8 in size; f32
        // rounding of the direct sum alone is about 1e-5 of that
        let Some((xf, wf, first)) = paths_match_the_definition(&s, 21, Winograd::F2x2, 1e-4) else {
            continue;
        };
        // and through the public entry point, on whichever path is active
        if path(&s).is_some() {
            assert_eq!(forward(&xf, &wf, &s), first, "{s:?}");
        }
    }
}

/// Every block of `s` by `winograd` on each path the host has, on random input and weights
/// (`seed`, `seed + 1`): within `tolerance` of the definition in f64, and the same bits on every
/// path. Returns the f32 input, weights (K K C x O) and output, if the host has a path.
#[allow(clippy::type_complexity)]
pub(super) fn paths_match_the_definition(
    s: &ConvShape,
    seed: u64,
    winograd: Winograd,
    tolerance: f64,
) -> Option<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    let x = values(s.n * s.h * s.w * s.c, seed);
    let wt = values(s.o * s.c * 9, seed + 1);
    let expected = reference(&x, &wt, s);
    let xf: Vec<f32> = x.iter().map(|v| *v as f32).collect();
    let wf: Vec<f32> = weights_to_kkco(&wt, s).iter().map(|v| *v as f32).collect();
    let mut results: Vec<Vec<f32>> = Vec::new();
    for isa in [Isa::Avx2, Isa::Avx512] {
        if isa > isa::detected() {
            continue; // not on this host
        }
        let out = all_blocks(winograd, isa, &xf, &wf, s);
        let worst = out
            .iter()
            .zip(&expected)
            .map(|(a, b)| (f64::from(*a) - b).abs())
            .fold(0.0, worse);
        assert!(worst < tolerance, "{isa} {s:?}: worst error {worst}");
        if let Some(first) = results.first() {
            assert_eq!(&out, first, "paths differ on {s:?}");
        }
        results.push(out);
    }
    results.pop().map(|out| (xf, wf, out))
}

#[test]
fn the_weight_transform_is_g_g_gt() {
    let gm = [
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
    ];
    assert_transform_is_g_g_gt(&gm, transform_weights, 23);
}

/// `transform` gives `U = G g Gᵀ` (plane ξ = rows(G) i + j, C x O values each), `G` being `gm`,
/// computed here by plain matrix products in f64, for every kernel of random weights (`seed`).
pub(super) fn assert_transform_is_g_g_gt(
    gm: &[[f64; 3]],
    transform: fn(&[f32], &ConvShape) -> Vec<f32>,
    seed: u64,
) {
    let s = shape(1, 2, 2, 3, 40);
    let wt = values(s.o * s.c * 9, seed);
    let kkco: Vec<f32> = weights_to_kkco(&wt, &s).iter().map(|v| *v as f32).collect();
    let u = transform(&kkco, &s);
    let side = gm.len();
    assert_eq!(u.len(), side * side * s.c * s.o);
    for c in 0..s.c {
        for o in 0..s.o {
            let g = |ky: usize, kx: usize| f64::from(kkco[((ky * 3 + kx) * s.c + c) * s.o + o]);
            for i in 0..side {
                for j in 0..side {
                    let mut want = 0.0;
                    for ky in 0..3 {
                        for kx in 0..3 {
                            want += gm[i][ky] * g(ky, kx) * gm[j][kx];
                        }
                    }
                    let got = f64::from(u[((side * i + j) * s.c + c) * s.o + o]);
                    assert!(
                        (got - want).abs() < 1e-6,
                        "c{c} o{o} ξ{i}{j}: {got} vs {want}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_input_gradient_through_winograd_matches_the_f64_path() {
    // a stride-1 input gradient is a forward convolution with the flipped kernel: Winograd's
    // in f32 where it applies, im2col + GEMM in f64 (tested against the definition elsewhere)
    let s = shape(2, 8, 6, 64, 64);
    let dy = values(s.rows() * s.o, 24);
    let wt = values(s.o * s.c * 9, 25);
    let kkco = weights_to_kkco(&wt, &s);
    let want = input_grad(&dy, &kkco, &s);
    let dyf: Vec<f32> = dy.iter().map(|v| *v as f32).collect();
    let kkcof: Vec<f32> = kkco.iter().map(|v| *v as f32).collect();
    let got = input_grad(&dyf, &kkcof, &s);
    assert_eq!(got.len(), want.len());
    for (a, b) in got.iter().zip(&want) {
        assert!((f64::from(*a) - b).abs() < 2e-4, "{a} vs {b}");
    }
}

#[test]
fn every_winograd_weight_gradient_path_matches_the_definition_and_the_others_bit_for_bit() {
    let _serial = isa::test_lock();
    for &(n, h, w, c, o) in &SHAPES {
        let s = shape(n, h, w, c, o);
        let x = values(n * h * w * c, 26);
        let dy = values(s.rows() * o, 27);
        let expected = reference_weight_grad(&x, &dy, &s);
        let xf: Vec<f32> = x.iter().map(|v| *v as f32).collect();
        let dyf: Vec<f32> = dy.iter().map(|v| *v as f32).collect();
        let mut results = Vec::new();
        for isa in [Isa::Avx2, Isa::Avx512] {
            if isa > isa::detected() {
                continue; // not on this host
            }
            let dw = crate::winograd::weight_grad(isa, &xf, &dyf, &s);
            // sums over N H W = 48 to 240 pixels of products of values in [-1, 1)
            let worst = dw
                .iter()
                .zip(&expected)
                .map(|(a, b)| (f64::from(*a) - b).abs())
                .fold(0.0, worse);
            assert!(worst < 1e-4, "{isa} {s:?}: worst error {worst}");
            results.push(dw);
        }
        if let [first, rest @ ..] = results.as_slice() {
            assert!(rest.iter().all(|r| r == first), "paths differ on {s:?}");
            if grad_path(&s).is_some() {
                assert_eq!(&weight_grad(&xf, &dyf, &s), first, "{s:?}");
            }
        }
    }
}

#[test]
fn a_weight_gradient_over_many_blocks_and_tasks_matches_the_definition() {
    // W 200: 100 tiles a tile row, so a block of the weight gradient holds one tile row, and
    // the 4 tile rows (2 images of 2) make 4 blocks, shared among several tasks. W 194 and H 10:
    // 5 tile rows of one block each over 4 tasks (two threads) make 8 blocks, 3 of them empty.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("a pool of two threads");
    for s in [shape(2, 4, 200, 64, 64), shape(1, 10, 194, 16, 16)] {
        let x = values(s.n * s.h * s.w * s.c, 28);
        let dy = values(s.rows() * s.o, 29);
        let expected = reference_weight_grad(&x, &dy, &s);
        let xf: Vec<f32> = x.iter().map(|v| *v as f32).collect();
        let dyf: Vec<f32> = dy.iter().map(|v| *v as f32).collect();
        let dw = pool.install(|| weight_grad(&xf, &dyf, &s));
        for (a, b) in dw.iter().zip(&expected) {
            assert!((f64::from(*a) - b).abs() < 2e-4, "{s:?}: {a} vs {b}");
        }
    }
}

#[test]
fn both_weight_gradient_schedules_match_the_definition_with_any_block_size() {
    // 16 C O = 294,912 values: above the narrow schedule's limit. O = 144 leaves one vector
    // after two blocks of 4 on AVX-512; W 6 makes 3 tiles a tile row and 12 tile rows in all
    let s = shape(4, 6, 6, 128, 144);
    assert!(16 * s.c * s.o > NARROW_ACCUMULATOR);
    let x = values(s.n * s.h * s.w * s.c, 30);
    let dy = values(s.rows() * s.o, 31);
    let expected = reference_weight_grad(&x, &dy, &s);
    let xf: Vec<f32> = x.iter().map(|v| *v as f32).collect();
    let dyf: Vec<f32> = dy.iter().map(|v| *v as f32).collect();
    let check = |dw: &[f32], what: &str| {
        for (a, b) in dw.iter().zip(&expected) {
            assert!((f64::from(*a) - b).abs() < 1e-4, "{what}: {a} vs {b}");
        }
    };
    for isa in [Isa::Avx2, Isa::Avx512] {
        if isa > isa::detected() {
            continue; // not on this host
        }
        let narrow = grad::from_winograd_domain(&grad::narrow(isa, &xf, &dyf, &s), &s);
        check(&narrow, &format!("{isa} narrow"));
        // blocks of 1, 5 (the last one of 2) and all 12 tile rows
        let row_bytes = 64 * 3 * (s.c + s.o);
        for rows in [1, 5, 12] {
            let du = grad::wide(isa, &xf, &dyf, &s, rows * row_bytes);
            let dw = grad::from_winograd_domain(&[du], &s);
            check(&dw, &format!("{isa} wide, blocks of {rows} tile rows"));
        }
    }
    check(&weight_grad(&xf, &dyf, &s), "through the entry point");
}
