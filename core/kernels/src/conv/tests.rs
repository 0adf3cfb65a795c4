//! Tests of the convolution kernels against their definitions.

use super::*;

/// Direct definition, in f64.
pub(crate) fn reference(x: &[f64], w: &[f64], s: &ConvShape) -> Vec<f64> {
    let (oh, ow) = (s.oh(), s.ow());
    let mut out = vec![0.0; s.n * oh * ow * s.o];
    for n in 0..s.n {
        for oy in 0..oh {
            for ox in 0..ow {
                for o in 0..s.o {
                    let mut acc = 0.0;
                    for c in 0..s.c {
                        for ky in 0..s.k {
                            for kx in 0..s.k {
                                let iy = (oy * s.stride + ky) as isize - s.pad as isize;
                                let ix = (ox * s.stride + kx) as isize - s.pad as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < s.h && (ix as usize) < s.w
                                {
                                    acc += x
                                        [((n * s.h + iy as usize) * s.w + ix as usize) * s.c + c]
                                        * w[((o * s.c + c) * s.k + ky) * s.k + kx];
                                }
                            }
                        }
                    }
                    out[((n * oh + oy) * ow + ox) * s.o + o] = acc;
                }
            }
        }
    }
    out
}

#[test]
fn every_direct_path_the_host_has_matches_the_definition_and_the_others_bit_for_bit() {
    use crate::isa::{detected, Isa};
    let _serial = crate::isa::test_lock();
    for &(k, stride, pad, c, o) in &DIRECT_SHAPES {
        let s = direct_shape(k, stride, pad, c, o);
        let x = values(s.n * s.h * s.w * s.c, 11);
        let w = values(s.o * s.c * k * k, 12);
        let expected = reference(&x, &w, &s);
        let xf: Vec<f32> = x.iter().map(|v| *v as f32).collect();
        let wf: Vec<f32> = weights_to_kkco(&w, &s).iter().map(|v| *v as f32).collect();
        let mut results: Vec<Vec<f32>> = Vec::new();
        for (isa, lanes) in [(Isa::Avx2, 8), (Isa::Avx512, 16)] {
            if isa > detected() || !o.is_multiple_of(lanes) {
                continue; // not on this host, or not whole vectors
            }
            // uneven splits of the rows, to cover parts of output rows and every tile width:
            // the first `w` pixels alone are one tile of `w` (1 to 12) pixels, or two; the rows
            // of 13 pixels are cut into 2 or 3 tiles; the last split leaves one last pixel
            let last = s.rows() - 1;
            let splits = (1..=12)
                .map(|w| vec![0, w, s.rows()])
                .chain([vec![0, 7, last, s.rows()]]);
            for cuts in splits {
                let mut out = vec![0.0f32; s.rows() * s.o];
                for pair in cuts.windows(2) {
                    let (a, b) = (pair[0], pair[1]);
                    crate::direct::rows(isa, &xf, &wf, &s, a, b, &mut out[a * s.o..b * s.o]);
                }
                for (a, b) in out.iter().zip(&expected) {
                    assert!(
                        (f64::from(*a) - b).abs() < 1e-4,
                        "{isa} k{k} s{stride} c{c} o{o} cuts {cuts:?}: {a} vs {b}"
                    );
                }
                results.push(out);
            }
        }
        if let [first, rest @ ..] = results.as_slice() {
            // the paths and splits accumulate in the same order: identical results
            assert!(rest.iter().all(|r| r == first), "k{k} c{c} o{o}");
            // and through the public entry point, on whichever path is active, where it takes
            // the direct kernel (Winograd's has its own tests)
            if crate::direct::applies(&s) && crate::winograd::path(&s).is_none() {
                assert_eq!(&forward(&xf, &wf, &s), first);
            }
        }
    }
}

/// The shapes of the direct kernels' tests: 1 to 64 channels (64: tiles of 4 vectors with
/// AVX-512), strides 1 and 2, 1x1 and 3x3.
const DIRECT_SHAPES: [(usize, usize, usize, usize, usize); 8] = [
    (3, 1, 1, 8, 64),
    (3, 1, 1, 3, 16),
    (3, 2, 1, 5, 8),
    (3, 1, 1, 16, 24),
    (3, 1, 1, 7, 48),
    (1, 2, 0, 4, 16),
    (3, 1, 1, 1, 16),
    (3, 2, 1, 2, 8),
];

/// One of [`DIRECT_SHAPES`] on 3 images of 7 x 13 pixels.
fn direct_shape(k: usize, stride: usize, pad: usize, c: usize, o: usize) -> ConvShape {
    ConvShape {
        n: 3,
        h: 7,
        w: 13,
        c,
        o,
        k,
        stride,
        pad,
    }
}

/// The weight gradient (K K C x O) of `L = sum(conv(x, w) * g)` by its definition, in f64.
pub(crate) fn reference_weight_grad(x: &[f64], g: &[f64], s: &ConvShape) -> Vec<f64> {
    let (oh, ow) = (s.oh(), s.ow());
    let mut dw = vec![0.0; s.kkc() * s.o];
    for r in 0..s.rows() {
        let (n, oy, ox) = (r / (oh * ow), (r / ow) % oh, r % ow);
        for ky in 0..s.k {
            for kx in 0..s.k {
                let iy = (oy * s.stride + ky) as isize - s.pad as isize;
                let ix = (ox * s.stride + kx) as isize - s.pad as isize;
                if iy < 0 || ix < 0 || iy as usize >= s.h || ix as usize >= s.w {
                    continue;
                }
                for c in 0..s.c {
                    let xv = x[((n * s.h + iy as usize) * s.w + ix as usize) * s.c + c];
                    let j = (ky * s.k + kx) * s.c + c;
                    for o in 0..s.o {
                        dw[j * s.o + o] += xv * g[r * s.o + o];
                    }
                }
            }
        }
    }
    dw
}

#[test]
fn every_direct_weight_gradient_path_matches_the_definition_and_the_others_bit_for_bit() {
    use crate::isa::{detected, Isa};
    // tiles span up to 12 values of a kernel row's run (K C): 1x1 kernels on C = 1 to 12
    // channels add the last tiles of every width to those of the shared shapes
    let every_width = (1..=12).map(|c| (1, 2, 0, c, 16));
    for (k, stride, pad, c, o) in DIRECT_SHAPES.iter().copied().chain(every_width) {
        let s = direct_shape(k, stride, pad, c, o);
        let x = values(s.n * s.h * s.w * s.c, 31);
        let g = values(s.rows() * s.o, 32);
        let expected = reference_weight_grad(&x, &g, &s);
        let xf: Vec<f32> = x.iter().map(|v| *v as f32).collect();
        let gf: Vec<f32> = g.iter().map(|v| *v as f32).collect();
        let mut results: Vec<Vec<f32>> = Vec::new();
        for (isa, lanes) in [(Isa::Avx2, 8), (Isa::Avx512, 16)] {
            if isa > detected() || !o.is_multiple_of(lanes) {
                continue; // not on this host, or not whole vectors
            }
            // uneven ranges of rows, across blocks and parts of output rows, added up
            let mut acc = vec![0.0f32; s.kkc() * s.o];
            let (a, b) = (
                7,
                (s.rows() - 1).min(7 + 2 * crate::direct_grad::BLOCK_ROWS + 5),
            );
            for (r0, r1) in [(0, a), (a, b), (b, s.rows())] {
                crate::direct_grad::add_rows(isa, &xf, &gf, &s, r0, r1, &mut acc);
            }
            for (j, (got, want)) in acc.iter().zip(&expected).enumerate() {
                assert!(
                    (f64::from(*got) - want).abs() < 1e-3,
                    "{isa} k{k} s{stride} c{c} o{o} [{j}]: {got} vs {want}"
                );
            }
            results.push(acc);
        }
        if let [first, rest @ ..] = results.as_slice() {
            // the paths accumulate in the same order: identical results
            assert!(rest.iter().all(|r| r == first), "k{k} c{c} o{o}");
        }
        // through the public entry point, on whichever path is active (tasks add up their own
        // accumulators, so the order differs from one pass over all rows)
        for (got, want) in weight_grad(&xf, &gf, &s).iter().zip(&expected) {
            assert!((f64::from(*got) - want).abs() < 1e-3, "k{k} c{c} o{o}");
        }
    }
}

#[test]
fn weight_gradient_over_several_chunks_and_tasks_matches_the_definition() {
    // 768 rows: 2 chunks of 455 rows (KKC 576), then 3 chunks of the 256-row minimum (KKC 1152)
    for &(c, o) in &[(64, 8), (128, 4)] {
        let s = ConvShape {
            n: 3,
            h: 16,
            w: 16,
            c,
            o,
            k: 3,
            stride: 1,
            pad: 1,
        };
        let x = values(s.n * s.h * s.w * s.c, 21);
        let g = values(s.rows() * s.o, 22);
        let dw = weights_from_kkco(&weight_grad(&x, &g, &s), &s);
        // dW[o][c][ky][kx] = sum over outputs (n, oy, ox) of g * x at the tap's input pixel
        let mut want = vec![0.0f64; s.o * s.c * 9];
        for n in 0..s.n {
            for oy in 0..s.h {
                for ox in 0..s.w {
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (iy, ix) = ((oy + ky) as isize - 1, (ox + kx) as isize - 1);
                            if iy < 0 || ix < 0 || iy >= s.h as isize || ix >= s.w as isize {
                                continue;
                            }
                            let at = ((n * s.h + iy as usize) * s.w + ix as usize) * s.c;
                            let row = ((n * s.h + oy) * s.w + ox) * s.o;
                            for oc in 0..s.o {
                                for ic in 0..s.c {
                                    want[((oc * s.c + ic) * 3 + ky) * 3 + kx] +=
                                        g[row + oc] * x[at + ic];
                                }
                            }
                        }
                    }
                }
            }
        }
        for (a, b) in dw.iter().zip(&want) {
            assert!((a - b).abs() < 1e-9, "c{c} o{o}: {a} vs {b}");
        }
    }
}

/// `n` values in [-1, 1) from a 64-bit linear congruential generator seeded with `seed`.
pub(crate) fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

#[test]
fn forward_and_gradients_match_the_definition() {
    for &(k, stride, pad) in &[(3, 1, 1), (3, 2, 1), (1, 1, 0), (1, 2, 0)] {
        let s = ConvShape {
            n: 2,
            h: 7,
            w: 6,
            c: 3,
            o: 4,
            k,
            stride,
            pad,
        };
        let x = values(s.n * s.h * s.w * s.c, 1);
        let w = values(s.o * s.c * k * k, 2);
        let wt = weights_to_kkco(&w, &s);
        assert_eq!(weights_from_kkco(&wt, &s), w);
        let y = forward(&x, &wt, &s);
        let r = reference(&x, &w, &s);
        for (a, b) in y.iter().zip(&r) {
            assert!((a - b).abs() < 1e-12);
        }
        // gradients of L = sum(y * g) by linearity: dL/dx_i = sum over outputs, compare with
        // the reference applied to unit vectors (finite differences are exact for a linear map)
        let g = values(y.len(), 3);
        let dx = input_grad(&g, &wt, &s);
        let dwt = weight_grad(&x, &g, &s);
        let dw = weights_from_kkco(&dwt, &s);
        let loss = |x: &[f64], w: &[f64]| {
            reference(x, w, &s)
                .iter()
                .zip(&g)
                .map(|(a, b)| a * b)
                .sum::<f64>()
        };
        let base = loss(&x, &w);
        for i in (0..x.len()).step_by(5) {
            let mut xp = x.clone();
            xp[i] += 1.0;
            assert!(
                (loss(&xp, &w) - base - dx[i]).abs() < 1e-9,
                "dx[{i}] k{k} s{stride}"
            );
        }
        for i in 0..w.len() {
            let mut wp = w.clone();
            wp[i] += 1.0;
            assert!(
                (loss(&x, &wp) - base - dw[i]).abs() < 1e-9,
                "dw[{i}] k{k} s{stride}"
            );
        }
    }
}

#[test]
fn an_epilogue_sees_the_output_of_forward_and_fuses_batch_norm_bit_for_bit() {
    use crate::batch_norm::{affine, affine_add_relu_in_place, affine_in_place};
    use crate::elementwise::add_relu;
    // Winograd layers (even and odd sides), narrow strided ones (direct kernels) and a strided one
    // with 12 outputs, not whole vectors (im2col + GEMM), on enough images for several parts
    let shapes = [
        (3, 1, 1, 16, 16, 12),
        (3, 1, 1, 16, 16, 7),
        (3, 2, 1, 16, 32, 10),
        (1, 2, 0, 8, 24, 9),
        (3, 2, 1, 8, 12, 9),
    ];
    let _serial = crate::isa::test_lock();
    let mut paths = std::collections::BTreeSet::new();
    for (k, stride, pad, c, o, side) in shapes {
        let s = ConvShape {
            n: 9,
            h: side,
            w: side,
            c,
            o,
            k,
            stride,
            pad,
        };
        let x: Vec<f32> = values(s.n * s.h * s.w * c, 21)
            .iter()
            .map(|v| *v as f32)
            .collect();
        let w: Vec<f64> = values(o * c * k * k, 22);
        let wt: Vec<f32> = weights_to_kkco(&w, &s).iter().map(|v| *v as f32).collect();
        let scale: Vec<f32> = values(o, 23).iter().map(|v| *v as f32).collect();
        let shift: Vec<f32> = values(o, 24).iter().map(|v| *v as f32).collect();
        let residual: Vec<f32> = values(s.rows() * o, 25).iter().map(|v| *v as f32).collect();
        paths.insert(if crate::winograd::path(&s).is_some() {
            "winograd"
        } else if crate::direct::path(&s).is_some() {
            "direct"
        } else {
            "im2col"
        });
        let z = forward(&x, &wt, &s);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        // the parts cover the output once, in whole rows, and hold forward's values
        let seen = std::sync::Mutex::new(vec![0u8; s.rows()]);
        let same = forward_then(&x, &wt, &s, |row, part| {
            assert_eq!(part.len() % o, 0, "{s:?}: a part of whole rows");
            assert_eq!(bits(part), bits(&z[row * o..][..part.len()]), "{s:?}");
            let mut seen = seen.lock().unwrap();
            seen[row..row + part.len() / o]
                .iter_mut()
                .for_each(|n| *n += 1);
        });
        assert_eq!(bits(&same), bits(&z), "{s:?}");
        assert!(seen.into_inner().unwrap().iter().all(|&n| n == 1), "{s:?}");
        for relu in [false, true] {
            let fused = forward_then(&x, &wt, &s, |_, part| {
                affine_in_place(part, o, &scale, &shift, relu)
            });
            let apart = affine(&z, o, &scale, &shift, relu);
            assert_eq!(bits(&fused), bits(&apart), "{s:?} relu {relu}");
        }
        let fused = forward_then(&x, &wt, &s, |row, part| {
            let r = &residual[row * o..][..part.len()];
            affine_add_relu_in_place(part, o, &scale, &shift, r)
        });
        let apart = add_relu(&affine(&z, o, &scale, &shift, false), &residual);
        assert_eq!(bits(&fused), bits(&apart), "{s:?} with a residual");
    }
    if crate::isa::active() == crate::isa::Isa::Avx512 {
        assert_eq!(paths.len(), 3, "every path covered: {paths:?}");
    }
}

#[test]
fn an_input_gradient_epilogue_fuses_batch_norm_backward_and_additions_bit_for_bit() {
    use crate::batch_norm::{backward_affine, backward_affine_in_place};
    use crate::elementwise::{add_in_place, add_into};
    // stride 1 with 8 or more channels (as a forward pass), a first layer's 3 channels (the
    // narrow kernel), a 1x1 stride-1 layer (rows as they are) and a strided one (im2col)
    let shapes = [
        (3, 1, 1, 16, 16),
        (3, 1, 1, 3, 16),
        (1, 1, 0, 16, 8),
        (3, 2, 1, 16, 32),
    ];
    // other tests limit the instruction set while they hold this lock: both calls on one path
    let _serial = crate::isa::test_lock();
    for (k, stride, pad, c, o) in shapes {
        let s = ConvShape {
            n: 9,
            h: 10,
            w: 10,
            c,
            o,
            k,
            stride,
            pad,
        };
        let dy: Vec<f32> = values(s.rows() * o, 31).iter().map(|v| *v as f32).collect();
        let w: Vec<f64> = values(o * c * k * k, 32);
        let wt: Vec<f32> = weights_to_kkco(&w, &s).iter().map(|v| *v as f32).collect();
        let len = s.n * s.h * s.w * c;
        let y: Vec<f32> = values(len, 33).iter().map(|v| *v as f32).collect();
        let other: Vec<f32> = values(len, 34).iter().map(|v| *v as f32).collect();
        let scale: Vec<f32> = values(c, 35).iter().map(|v| *v as f32).collect();
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        let dx = input_grad(&dy, &wt, &s);
        let seen = std::sync::Mutex::new(vec![0u8; s.n * s.h * s.w]);
        let same = input_grad_then(&dy, &wt, &s, |at, part| {
            assert_eq!(part.len() % c, 0, "{s:?}: whole positions");
            assert_eq!(bits(part), bits(&dx[at * c..][..part.len()]), "{s:?}");
            let mut seen = seen.lock().unwrap();
            seen[at..at + part.len() / c]
                .iter_mut()
                .for_each(|n| *n += 1);
        });
        assert_eq!(bits(&same), bits(&dx), "{s:?}");
        assert!(seen.into_inner().unwrap().iter().all(|&n| n == 1), "{s:?}");
        let fused = input_grad_then(&dy, &wt, &s, |at, part| {
            backward_affine_in_place(part, &y[at * c..][..part.len()], c, &scale, true)
        });
        assert_eq!(
            bits(&fused),
            bits(&backward_affine(&y, &dx, c, &scale, true)),
            "{s:?}"
        );
        let fused = input_grad_then(&dy, &wt, &s, |at, part| {
            add_in_place(part, &other[at * c..][..part.len()])
        });
        let mut apart = other.clone();
        add_into(&mut apart, &dx);
        assert_eq!(bits(&fused), bits(&apart), "{s:?} added");
    }
}
