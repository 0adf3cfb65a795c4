//! Tests of F(4x4, 3x3) ([`crate::winograd::four`]) against the definition, through its blocks and
//! through the convolution's entry points that choose it ([`Winograd::F4x4`]).

use super::tests::values;
use super::winograd_tests::{assert_transform_is_g_g_gt, paths_match_the_definition, SHAPES};
use super::Winograd;
use super::{forward_then_with, input_grad, input_grad_then_with, weights_to_kkco, ConvShape};
use crate::isa;
use crate::winograd::four::transform_weights;
use crate::winograd::path;

/// [`SHAPES`], whose heights leave 0 to 3 rows past the last whole tile, and two with blocks of
/// whole tile rows and of whole images that end part-way through the batch (18 tile rows of 3
/// tiles: blocks of 8 rows; 9 images of 7x7: blocks of 6 images).
fn shapes() -> Vec<ConvShape> {
    SHAPES
        .iter()
        .chain(&[(9, 8, 12, 16, 16), (9, 7, 7, 32, 16)])
        .map(|&(n, h, w, c, o)| ConvShape {
            n,
            h,
            w,
            c,
            o,
            k: 3,
            stride: 1,
            pad: 1,
        })
        .collect()
}

#[test]
fn every_f4x4_path_the_host_has_matches_the_definition_and_the_others_bit_for_bit() {
    let _serial = isa::test_lock();
    for s in shapes() {
        // sums of 9 C = 144 to 1152 products of values in [-1, 1): up to about 8 in size;
        // F(2x2, 3x3) stays within 1e-4 of the definition, F(4x4, 3x3) within 3.2e-4 (its
        // worst, at C = 128, on 2026-12-07); a wrong transform is off by whole units (NaN: a
        // value never written)
        let Some((xf, wf, first)) = paths_match_the_definition(&s, 41, Winograd::F4x4, 6e-4) else {
            continue;
        };
        if path(&s).is_none() {
            continue;
        }
        // through the entry point, on the active path: the same values, and the epilogue sees
        // each output row once, at its place
        let seen = std::sync::Mutex::new(vec![0u8; s.rows()]);
        let got = forward_then_with(&xf, &wf, &s, Winograd::F4x4, |row, part| {
            assert_eq!(part, &first[row * s.o..][..part.len()], "{s:?}");
            let mut seen = seen.lock().unwrap();
            seen[row..row + part.len() / s.o]
                .iter_mut()
                .for_each(|n| *n += 1);
        });
        assert_eq!(got, first, "{s:?}");
        assert!(seen.into_inner().unwrap().iter().all(|&n| n == 1), "{s:?}");
    }
}

#[test]
fn the_f4x4_weight_transform_is_g_g_gt() {
    // Lavin and Gray's G for the points 0, 1, -1, 2, -2 (and infinity)
    let gm = [
        [1.0 / 4.0, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
        [0.0, 0.0, 1.0],
    ];
    assert_transform_is_g_g_gt(&gm, transform_weights, 43);
}

#[test]
fn the_input_gradient_through_f4x4_matches_the_f64_path() {
    // a stride-1 input gradient is a forward convolution with the flipped kernel: F(4x4, 3x3) in
    // f32 where it applies, im2col + GEMM in f64 (tested against the definition elsewhere);
    // heights 8 and 7: whole tiles, and a last tile with 3 rows
    for h in [8, 7] {
        let s = ConvShape {
            n: 2,
            h,
            w: 6,
            c: 64,
            o: 32,
            k: 3,
            stride: 1,
            pad: 1,
        };
        let dy = values(s.rows() * s.o, 44);
        let wt = values(s.o * s.c * 9, 45);
        let kkco = weights_to_kkco(&wt, &s);
        let want = input_grad(&dy, &kkco, &s);
        let dyf: Vec<f32> = dy.iter().map(|v| *v as f32).collect();
        let kkcof: Vec<f32> = kkco.iter().map(|v| *v as f32).collect();
        let _serial = isa::test_lock();
        let got = input_grad_then_with(&dyf, &kkcof, &s, Winograd::F4x4, |_, _| {});
        assert_eq!(got.len(), want.len());
        // other bits than F(2x2, 3x3)'s where Winograd's algorithm applies: the choice reached
        // the kernels
        let transposed = ConvShape {
            c: s.o,
            o: s.c,
            ..s
        };
        if path(&transposed).is_some() {
            let f2x2 = input_grad_then_with(&dyf, &kkcof, &s, Winograd::F2x2, |_, _| {});
            assert_ne!(got, f2x2, "{s:?}");
        }
        for (a, b) in got.iter().zip(&want) {
            assert!((f64::from(*a) - b).abs() < 4e-4, "{s:?}: {a} vs {b}");
        }
    }
}
