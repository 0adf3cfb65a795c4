//! The maps of a windowed pass and their parts: the base batch's maps, the rects a query
//! changed and the values inside, and the geometry that says which outputs a change reaches.

use super::super::desc::*;
use rossl_kernels::share::for_each_chunk_mut;
use std::borrow::Cow;

/// A map of every image of the base batch, channels-last.
pub(super) struct Map {
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) c: usize,
    pub(super) data: Vec<f32>,
}

impl Map {
    pub(super) fn image_len(&self) -> usize {
        self.h * self.w * self.c
    }
}

/// Where each image of a query may have changed on one map, all of one size: image `j`'s rows
/// `origins[j].0..+ size.0` and columns `origins[j].1..+ size.1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Rects {
    pub(super) origins: Vec<(usize, usize)>,
    pub(super) size: (usize, usize),
}

impl Rects {
    pub(super) fn area(&self) -> usize {
        self.size.0 * self.size.1
    }
}

/// New values of a map for the images of one query: their rects and the values inside (images
/// x rows x columns x channels).
pub(super) struct Patch {
    pub(super) rects: Rects,
    pub(super) c: usize,
    pub(super) values: Vec<f32>,
}

impl Patch {
    pub(super) fn image_len(&self) -> usize {
        self.rects.area() * self.c
    }
}

/// A convolution's geometry: kernel side, stride, padding, and its output's sides.
#[derive(Clone, Copy)]
pub(super) struct Geometry {
    pub(super) k: usize,
    pub(super) stride: usize,
    pub(super) pad: usize,
    pub(super) out: (usize, usize),
}

impl Geometry {
    pub(super) fn of(conv: &ConvDesc, (h, w): (usize, usize)) -> CResult<Geometry> {
        let (_, _, k, _) = conv.weight.dims4()?;
        let side = |len: usize| (len + 2 * conv.pad).saturating_sub(k) / conv.stride + 1;
        Ok(Geometry {
            k,
            stride: conv.stride,
            pad: conv.pad,
            out: (side(h), side(w)),
        })
    }

    /// Along one axis: the first output and the count of outputs whose receptive field meets
    /// inputs `first..first + count`.
    pub(super) fn reach_axis(&self, first: usize, count: usize, out_len: usize) -> (usize, usize) {
        let lo = (first + self.pad + 1)
            .saturating_sub(self.k)
            .div_ceil(self.stride);
        let hi = ((first + count - 1 + self.pad) / self.stride).min(out_len - 1);
        (lo, hi + 1 - lo.min(hi + 1))
    }

    /// The outputs that changes inside `rects` reach: for each image, a rect of one common size
    /// (the largest), moved inside the map where it would cross its edge.
    pub(super) fn reach(&self, rects: &Rects) -> Rects {
        let per_image: Vec<((usize, usize), (usize, usize))> = rects
            .origins
            .iter()
            .map(|&(top, left)| {
                (
                    self.reach_axis(top, rects.size.0, self.out.0),
                    self.reach_axis(left, rects.size.1, self.out.1),
                )
            })
            .collect();
        let size = per_image.iter().fold((1, 1), |(h, w), (rows, cols)| {
            (h.max(rows.1), w.max(cols.1))
        });
        let origins = per_image
            .iter()
            .map(|(rows, cols)| {
                (
                    rows.0.min(self.out.0 - size.0),
                    cols.0.min(self.out.1 - size.1),
                )
            })
            .collect();
        Rects { origins, size }
    }

    /// The whole output map, for each of `images` images.
    pub(super) fn whole(&self, images: usize) -> Rects {
        Rects {
            origins: vec![(0, 0); images],
            size: self.out,
        }
    }
}

/// The values of an input map for the images of a query.
pub(super) enum Source<'a> {
    /// The query's own images (the stem's input), channels-last.
    Images {
        x: &'a [f32],
        dims: (usize, usize, usize),
    },
    /// The base batch's map at the query's rows, with the query's patch in place.
    Base {
        map: &'a Map,
        rows: &'a [usize],
        patch: &'a Patch,
    },
}

impl Source<'_> {
    /// (height, width, channels) of the map.
    pub(super) fn dims(&self) -> (usize, usize, usize) {
        match self {
            Source::Images { dims, .. } => *dims,
            Source::Base { map, .. } => (map.h, map.w, map.c),
        }
    }

    /// Image `j`'s rows `top..top + size.0` and columns `left..left + size.1` (zeros outside the
    /// map, which is the padding a convolution reads there), into `out` (rows x columns x C).
    pub(super) fn copy_window(
        &self,
        j: usize,
        (top, left): (isize, isize),
        size: (usize, usize),
        out: &mut [f32],
    ) {
        let (h, w, c) = self.dims();
        let image = match self {
            Source::Images { x, .. } => &x[j * h * w * c..(j + 1) * h * w * c],
            Source::Base { map, rows, .. } => {
                &map.data[rows[j] * map.image_len()..(rows[j] + 1) * map.image_len()]
            }
        };
        let col_lo = left.clamp(0, w as isize) as usize;
        let col_hi = (left + size.1 as isize).clamp(0, w as isize) as usize;
        for (y, row) in out.chunks_exact_mut(size.1 * c).enumerate() {
            let sy = top + y as isize;
            if sy < 0 || sy as usize >= h || col_lo >= col_hi {
                row.fill(0.0);
                continue;
            }
            let src = &image[(sy as usize * w + col_lo) * c..(sy as usize * w + col_hi) * c];
            let at = (col_lo as isize - left) as usize * c;
            // zeros only where the window leaves the map (the padding)
            row[..at].fill(0.0);
            row[at + src.len()..].fill(0.0);
            row[at..at + src.len()].copy_from_slice(src);
        }
        if let Source::Base { patch, .. } = self {
            overlay(patch, j, (top, left), size, out);
        }
    }

    /// The whole map of every image, where the query's values cover it: its own images, or a
    /// patch of the whole map (a layer computed whole).
    pub(super) fn whole(&self) -> Option<&[f32]> {
        match self {
            Source::Images { x, .. } => Some(x),
            Source::Base { map, patch, .. } => {
                (patch.rects.size == (map.h, map.w)).then_some(&patch.values[..])
            }
        }
    }

    /// [`Source::gather`], borrowed from the query's values where they are whole maps and
    /// whole maps are asked for.
    pub(super) fn windows(
        &self,
        origins: &[(usize, usize)],
        offset: isize,
        size: (usize, usize),
    ) -> Cow<'_, [f32]> {
        let (h, w, _) = self.dims();
        match self.whole() {
            Some(values) if offset == 0 && size == (h, w) => Cow::Borrowed(values),
            _ => Cow::Owned(self.gather(origins, offset, size)),
        }
    }

    /// Every image's window `size` at `origins` (shifted by `offset`), one after the other.
    pub(super) fn gather(
        &self,
        origins: &[(usize, usize)],
        offset: isize,
        size: (usize, usize),
    ) -> Vec<f32> {
        let c = self.dims().2;
        let len = size.0 * size.1 * c;
        let mut out = vec![0.0f32; origins.len() * len];
        for_each_chunk_mut(&mut out, len, |j, part| {
            let (top, left) = origins[j];
            let at = (top as isize + offset, left as isize + offset);
            self.copy_window(j, at, size, part);
        });
        out
    }
}

/// Writes patch image `j`'s values over `out`, image `j`'s window at `(top, left)` of `size`.
pub(super) fn overlay(
    patch: &Patch,
    j: usize,
    (top, left): (isize, isize),
    size: (usize, usize),
    out: &mut [f32],
) {
    let (pt, pl) = patch.rects.origins[j];
    let (ph, pw) = patch.rects.size;
    let c = patch.c;
    let values = &patch.values[j * patch.image_len()..(j + 1) * patch.image_len()];
    let (pt, pl) = (pt as isize, pl as isize);
    let rows = pt.max(top)..(pt + ph as isize).min(top + size.0 as isize);
    let (col_lo, col_hi) = (pl.max(left), (pl + pw as isize).min(left + size.1 as isize));
    if col_lo >= col_hi {
        return;
    }
    let run = (col_hi - col_lo) as usize * c;
    for y in rows {
        let src = (((y - pt) as usize) * pw + (col_lo - pl) as usize) * c;
        let dst = (((y - top) as usize) * size.1 + (col_lo - left) as usize) * c;
        out[dst..dst + run].copy_from_slice(&values[src..src + run]);
    }
}

/// Writes patch image `j` into image `row` of `map`.
pub(super) fn paste(map: &mut Map, row: usize, patch: &Patch, j: usize) {
    let (top, left) = patch.rects.origins[j];
    let (ph, pw) = patch.rects.size;
    let c = map.c;
    let base = row * map.image_len();
    let values = &patch.values[j * patch.image_len()..(j + 1) * patch.image_len()];
    for y in 0..ph {
        let dst = base + ((top + y) * map.w + left) * c;
        map.data[dst..dst + pw * c].copy_from_slice(&values[y * pw * c..(y + 1) * pw * c]);
    }
}
