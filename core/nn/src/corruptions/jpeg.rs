//! The lossy path of a baseline JPEG round trip as PIL's libjpeg(-turbo) runs it with its
//! defaults, in integer arithmetic: RGB→YCbCr, 4:2:0 chroma averaging (alternating rounding
//! bias), the accurate integer DCT (`islow`), quantisation by the quality-scaled Annex K tables
//! with rounding division, dequantisation, the accurate integer inverse DCT, "fancy" (triangle)
//! chroma upsampling and YCbCr→RGB. Entropy coding is lossless and so left out.
//! Grey images are one luma component.

/// Annex K luminance table, natural order.
const LUMA: [u32; 64] = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
    92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
];
/// Annex K chrominance table, natural order.
const CHROMA: [u32; 64] = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
];

const CONST_BITS: i32 = 13;
const PASS1_BITS: i32 = 2;
const F0_298: i64 = 2446;
const F0_390: i64 = 3196;
const F0_541: i64 = 4433;
const F0_765: i64 = 6270;
const F0_899: i64 = 7373;
const F1_175: i64 = 9633;
const F1_501: i64 = 12299;
const F1_847: i64 = 15137;
const F1_961: i64 = 16069;
const F2_053: i64 = 16819;
const F2_562: i64 = 20995;
const F3_072: i64 = 25172;

fn descale(x: i64, n: i32) -> i64 {
    (x + (1 << (n - 1))) >> n
}

/// libjpeg's quality scaling of a base table (baseline: entries clamped to 1..=255).
fn scaled_table(base: &[u32; 64], quality: u32) -> [i64; 64] {
    let quality = quality.clamp(1, 100);
    let scale = if quality < 50 {
        5000 / quality
    } else {
        200 - quality * 2
    };
    base.map(|v| i64::from(((v * scale + 50) / 100).clamp(1, 255)))
}

/// The odd part shared by the forward and inverse 1-D DCTs: four outputs from four inputs.
fn odd_part(t4: i64, t5: i64, t6: i64, t7: i64) -> [i64; 4] {
    let z5 = (t4 + t6 + t5 + t7) * F1_175;
    let z1 = (t4 + t7) * -F0_899;
    let z2 = (t5 + t6) * -F2_562;
    let z3 = (t4 + t6) * -F1_961 + z5;
    let z4 = (t5 + t7) * -F0_390 + z5;
    [
        t4 * F0_298 + z1 + z3,
        t5 * F2_053 + z2 + z4,
        t6 * F3_072 + z2 + z3,
        t7 * F1_501 + z1 + z4,
    ]
}

/// One pass of libjpeg's `jpeg_fdct_islow` on 8 values: outputs 0 and 4 unscaled sums, the
/// others before descaling.
fn fdct_1d(d: [i64; 8]) -> [i64; 8] {
    let (t0, t7) = (d[0] + d[7], d[0] - d[7]);
    let (t1, t6) = (d[1] + d[6], d[1] - d[6]);
    let (t2, t5) = (d[2] + d[5], d[2] - d[5]);
    let (t3, t4) = (d[3] + d[4], d[3] - d[4]);
    let (t10, t13, t11, t12) = (t0 + t3, t0 - t3, t1 + t2, t1 - t2);
    let z1 = (t12 + t13) * F0_541;
    let [o7, o5, o3, o1] = odd_part(t4, t5, t6, t7);
    [
        t10 + t11,
        o1,
        z1 + t13 * F0_765,
        o3,
        t10 - t11,
        o5,
        z1 - t12 * F1_847,
        o7,
    ]
}

/// libjpeg's `jpeg_fdct_islow` of a level-shifted block: coefficients scaled by 8.
fn fdct(block: &[i64; 64]) -> [i64; 64] {
    let mut ws = [0i64; 64];
    for r in 0..8 {
        let out = fdct_1d(std::array::from_fn(|c| block[r * 8 + c]));
        for (c, v) in out.into_iter().enumerate() {
            ws[r * 8 + c] = if c % 4 == 0 {
                v << PASS1_BITS
            } else {
                descale(v, CONST_BITS - PASS1_BITS)
            };
        }
    }
    let mut out = [0i64; 64];
    for c in 0..8 {
        let col = fdct_1d(std::array::from_fn(|r| ws[r * 8 + c]));
        for (r, v) in col.into_iter().enumerate() {
            out[r * 8 + c] = if r % 4 == 0 {
                descale(v, PASS1_BITS)
            } else {
                descale(v, CONST_BITS + PASS1_BITS)
            };
        }
    }
    out
}

/// One pass of libjpeg's `jpeg_idct_islow` on 8 dequantised values, before descaling.
fn idct_1d(d: [i64; 8]) -> [i64; 8] {
    let z1 = (d[2] + d[6]) * F0_541;
    let t2 = z1 - d[6] * F1_847;
    let t3 = z1 + d[2] * F0_765;
    let t0 = (d[0] + d[4]) << CONST_BITS;
    let t1 = (d[0] - d[4]) << CONST_BITS;
    let (t10, t13, t11, t12) = (t0 + t3, t0 - t3, t1 + t2, t1 - t2);
    let [o0, o1, o2, o3] = odd_part(d[7], d[5], d[3], d[1]);
    [
        t10 + o3,
        t11 + o2,
        t12 + o1,
        t13 + o0,
        t13 - o0,
        t12 - o1,
        t11 - o2,
        t10 - o3,
    ]
}

/// Quantises and dequantises the DCT of one 8×8 block of samples, and inverts it.
fn round_trip_block(samples: &[i64; 64], table: &[i64; 64]) -> [i64; 64] {
    let coef = fdct(&samples.map(|s| s - 128));
    let deq: [i64; 64] = std::array::from_fn(|i| {
        let d = table[i] * 8;
        let q = (coef[i].abs() + (d >> 1)) / d;
        coef[i].signum() * q * table[i]
    });
    let mut ws = [0i64; 64];
    for c in 0..8 {
        let col = idct_1d(std::array::from_fn(|r| deq[r * 8 + c]));
        for (r, v) in col.into_iter().enumerate() {
            ws[r * 8 + c] = descale(v, CONST_BITS - PASS1_BITS);
        }
    }
    let mut out = [0i64; 64];
    for r in 0..8 {
        let row = idct_1d(std::array::from_fn(|c| ws[r * 8 + c]));
        for (c, v) in row.into_iter().enumerate() {
            out[r * 8 + c] = (descale(v, CONST_BITS + PASS1_BITS + 3) + 128).clamp(0, 255);
        }
    }
    out
}

/// A plane padded by edge replication to `ph × pw`, coded block by block with `table`.
fn code_plane(
    plane: &[i64],
    h: usize,
    w: usize,
    (ph, pw): (usize, usize),
    table: &[i64; 64],
) -> Vec<i64> {
    let at = |y: usize, x: usize| plane[y.min(h - 1) * w + x.min(w - 1)];
    let mut out = vec![0i64; ph * pw];
    for by in (0..ph).step_by(8) {
        for bx in (0..pw).step_by(8) {
            let block: [i64; 64] = std::array::from_fn(|i| at(by + i / 8, bx + i % 8));
            for (i, v) in round_trip_block(&block, table).into_iter().enumerate() {
                out[(by + i / 8) * pw + bx + i % 8] = v;
            }
        }
    }
    out
}

/// JPEG round trip of one grey plane at `quality`.
pub(crate) fn grey(plane: &[u8], h: usize, w: usize, quality: u32) -> Vec<u8> {
    let samples: Vec<i64> = plane.iter().map(|&v| i64::from(v)).collect();
    let (ph, pw) = (h.div_ceil(8) * 8, w.div_ceil(8) * 8);
    let coded = code_plane(&samples, h, w, (ph, pw), &scaled_table(&LUMA, quality));
    (0..h * w)
        .map(|i| coded[(i / w) * pw + i % w] as u8)
        .collect()
}

const FIX16: f64 = 65536.0;

fn fix(x: f64) -> i64 {
    (x * FIX16 + 0.5) as i64
}

/// libjpeg's `h2v2_downsample` to `ph/2 × pw/2`: columns and an odd last row are padded at full
/// resolution by replication, the rows below the image afterwards by repeating the last
/// downsampled row (as libjpeg's preprocessing pads each component to a whole block row).
fn downsample(plane: &[i64], h: usize, w: usize, ph: usize, pw: usize) -> Vec<i64> {
    let at = |y: usize, x: usize| plane[y.min(h - 1) * w + x.min(w - 1)];
    let (dh, dw) = (ph / 2, pw / 2);
    let last_row = h.div_ceil(2) - 1;
    (0..dh * dw)
        .map(|i| {
            let (y, x) = (2 * (i / dw).min(last_row), 2 * (i % dw));
            let bias = if (i % dw) % 2 == 0 { 1 } else { 2 };
            (at(y, x) + at(y, x + 1) + at(y + 1, x) + at(y + 1, x + 1) + bias) >> 2
        })
        .collect()
}

/// libjpeg's `h2v2_fancy_upsample` of the first `dh × dw` samples of a plane of width `stride`
/// to `2dh × 2dw`, rows above the first and below the last replicated.
fn upsample(plane: &[i64], stride: usize, dh: usize, dw: usize) -> Vec<i64> {
    let (oh, ow) = (2 * dh, 2 * dw);
    let mut out = vec![0i64; oh * ow];
    for oy in 0..oh {
        let y = oy / 2;
        let near = y;
        let far = if oy % 2 == 0 {
            y.saturating_sub(1)
        } else {
            (y + 1).min(dh - 1)
        };
        let col = |x: usize| plane[near * stride + x] * 3 + plane[far * stride + x];
        for x in 0..dw {
            let this = col(x);
            let (left, right) = if dw == 1 {
                (this * 4 + 8, this * 4 + 7)
            } else if x == 0 {
                (this * 4 + 8, this * 3 + col(1) + 7)
            } else if x == dw - 1 {
                (this * 3 + col(x - 1) + 8, this * 4 + 7)
            } else {
                (this * 3 + col(x - 1) + 8, this * 3 + col(x + 1) + 7)
            };
            out[oy * ow + 2 * x] = left >> 4;
            out[oy * ow + 2 * x + 1] = right >> 4;
        }
    }
    out
}

/// JPEG round trip of an RGB image (channel-major planes) at `quality`, 4:2:0 as PIL saves.
pub(crate) fn rgb(planes: [&[u8]; 3], h: usize, w: usize, quality: u32) -> [Vec<u8>; 3] {
    let n = h * w;
    let (r, g, b) = (planes[0], planes[1], planes[2]);
    let v = |p: &[u8], i: usize| i64::from(p[i]);
    let half = 1i64 << 15;
    let offset = 128i64 << 16;
    let y: Vec<i64> = (0..n)
        .map(|i| (fix(0.299) * v(r, i) + fix(0.587) * v(g, i) + fix(0.114) * v(b, i) + half) >> 16)
        .collect();
    let cb: Vec<i64> = (0..n)
        .map(|i| {
            (-fix(0.16874) * v(r, i) - fix(0.33126) * v(g, i) + fix(0.5) * v(b, i) + offset + half
                - 1)
                >> 16
        })
        .collect();
    let cr: Vec<i64> = (0..n)
        .map(|i| {
            (fix(0.5) * v(r, i) - fix(0.41869) * v(g, i) - fix(0.08131) * v(b, i) + offset + half
                - 1)
                >> 16
        })
        .collect();
    let (ph, pw) = (h.div_ceil(16) * 16, w.div_ceil(16) * 16);
    let luma = code_plane(&y, h, w, (ph, pw), &scaled_table(&LUMA, quality));
    let chroma_table = scaled_table(&CHROMA, quality);
    let (dh, dw) = (ph / 2, pw / 2);
    let code_chroma = |p: &[i64]| {
        let coded = code_plane(
            &downsample(p, h, w, ph, pw),
            dh,
            dw,
            (dh, dw),
            &chroma_table,
        );
        upsample(&coded, dw, h.div_ceil(2), w.div_ceil(2))
    };
    let (cb, cr) = (code_chroma(&cb), code_chroma(&cr));
    let up_w = 2 * w.div_ceil(2);
    let mut out = [vec![0u8; n], vec![0u8; n], vec![0u8; n]];
    for i in 0..n {
        let (yy, u) = (luma[(i / w) * pw + i % w], (i / w) * up_w + i % w);
        let (cbv, crv) = (cb[u] - 128, cr[u] - 128);
        let red = yy + ((fix(1.402) * crv + half) >> 16);
        let green = yy + ((-fix(0.34414) * cbv + half - fix(0.71414) * crv) >> 16);
        let blue = yy + ((fix(1.772) * cbv + half) >> 16);
        out[0][i] = red.clamp(0, 255) as u8;
        out[1][i] = green.clamp(0, 255) as u8;
        out[2][i] = blue.clamp(0, 255) as u8;
    }
    out
}
