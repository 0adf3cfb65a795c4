//! The backbone's forward pass, in evaluation mode, over images that differ from a base batch
//! only inside one window each (a Square query under L-infinity changes one window of each
//! image): every layer recomputes only the part of its output that the window reaches, from the
//! base batch's maps with the query's new values in place, until that part is half its map (a
//! 3x3 stride-1 layer, which runs whole on Winograd's algorithm) or three quarters of it (other
//! layers); from there on layers run whole, as [`super::passes::forward`] does.
//!
//! A window of 3 pixels on a 28x28 image reaches 5x5 outputs of the stem, 9x9 of the first
//! stage and 7x7 of the second stage's 14x14 maps: about a tenth of the first layers' work.
//! The part recomputed runs as a convolution without padding over the window of input it reads
//! (the base map's values, the new ones and the padding's zeros), so it takes the direct kernel
//! where a whole 3x3 stride-1 layer takes Winograd's: its values equal the whole pass's up to
//! rounding.

use super::desc::*;
use super::passes::{conv_bn, forward};
use rossl_api::components::Window;
use rossl_kernels::elementwise::{global_average_pool, nchw_to_nhwc};

mod maps;

use maps::{paste, Geometry, Map, Patch, Rects, Source};

/// The convolution and frozen batch norm (with ReLU, or the residual addition and ReLU) of
/// `layer` on `out`, the rects of its output to compute, from `source`: the whole map with the
/// layer's padding when `out` is the whole map, else the window of input those outputs read,
/// without padding.
fn conv_on(
    layer: (&ConvDesc, &BnDesc),
    geometry: Geometry,
    source: &Source,
    out: &Rects,
    relu: bool,
    residual: Option<&[f32]>,
) -> CResult<Vec<f32>> {
    let (h, w, c) = source.dims();
    let images = out.origins.len();
    if out.size == geometry.out {
        let x = source.windows(&out.origins, 0, (h, w));
        return Ok(conv_bn(layer, &x, (images, h, w, c), false, relu, residual)?.y);
    }
    let (conv, bn) = layer;
    let valid = ConvDesc {
        weight: conv.weight.clone(),
        stride: conv.stride,
        pad: 0,
    };
    let (s, k) = (geometry.stride, geometry.k);
    let window = ((out.size.0 - 1) * s + k, (out.size.1 - 1) * s + k);
    let origins: Vec<(usize, usize)> = out.origins.iter().map(|&(t, l)| (t * s, l * s)).collect();
    let x = source.gather(&origins, -(geometry.pad as isize), window);
    let at = (images, window.0, window.1, c);
    Ok(conv_bn((&valid, bn), &x, at, false, relu, residual)?.y)
}

/// The maps one basic block keeps of the base batch: its first convolution's output and its own.
struct BlockMaps {
    a1: Map,
    /// The downsampling shortcut's output, where the block has one.
    down: Option<Map>,
    y: Map,
}

/// A query's new values of one block's maps.
struct BlockPatches {
    a1: Patch,
    down: Option<Patch>,
    y: Patch,
}

/// What the last query computed: its rows and the new values of each kept map.
struct Query {
    rows: Vec<usize>,
    stem: Patch,
    blocks: Vec<BlockPatches>,
}

/// The backbone's maps of a base batch, and the passes over images changed inside windows.
pub(crate) struct WindowedBackbone {
    desc: std::sync::Arc<BackboneDesc>,
    /// The base images' (channels, height, width) and how many there are.
    images: (usize, usize, usize, usize),
    stem: Map,
    blocks: Vec<BlockMaps>,
    last: Option<Query>,
}

/// A map of `saved`'s layer, `(oh, ow, o)` from its shape.
fn map_of(shape: &rossl_kernels::conv::ConvShape, data: Vec<f32>) -> Map {
    Map {
        h: shape.oh(),
        w: shape.ow(),
        c: shape.o,
        data,
    }
}

impl WindowedBackbone {
    /// The maps of `base` (N, C, H, W), f32 on the host, through `desc` in evaluation mode.
    pub fn new(
        desc: std::sync::Arc<BackboneDesc>,
        base: &[f32],
        dims: (usize, usize, usize, usize),
    ) -> CResult<Self> {
        let (_, saved) = forward(&desc, base, dims, false)?;
        let stem = map_of(&saved.stem.shape, saved.stem_a);
        let mut blocks: Vec<BlockMaps> = Vec::with_capacity(saved.blocks.len());
        for (b, block) in saved.blocks.into_iter().zip(&desc.blocks) {
            // the pass does not keep the shortcut's output: it is computed again here
            let input = blocks.last().map_or(&stem, |m| &m.y);
            let down = match &block.down {
                Some(layer) => {
                    let at = (dims.0, input.h, input.w, input.c);
                    let d = conv_bn((&layer.0, &layer.1), &input.data, at, false, false, None)?;
                    Some(map_of(&d.conv.shape, d.y))
                }
                None => None,
            };
            blocks.push(BlockMaps {
                a1: map_of(&b.conv1.shape, b.a1),
                down,
                y: map_of(&b.conv2.shape, b.y),
            });
        }
        Ok(WindowedBackbone {
            desc,
            images: dims,
            stem,
            blocks,
            last: None,
        })
    }

    /// The pooled features (R, C_last) of `x` (R images, NCHW), the base images of `rows`
    /// changed inside `windows` only.
    pub fn pooled(&mut self, x: &[f32], rows: &[usize], windows: &[Window]) -> CResult<Vec<f32>> {
        let (_, c, h, w) = self.images;
        // a failed query leaves nothing to keep
        self.last = None;
        check_query(x.len(), rows, windows, self.images)?;
        let r = rows.len();
        let x = nchw_to_nhwc(x, (r, c, h, w));
        let images = Source::Images {
            x: &x,
            dims: (h, w, c),
        };
        let changed = window_rects(windows, (h, w));
        let geometry = Geometry::of(&self.desc.conv1, (h, w))?;
        let rects = choose(geometry, &changed);
        let stem = Patch {
            c: self.stem.c,
            values: conv_on(
                (&self.desc.conv1, &self.desc.bn1),
                geometry,
                &images,
                &rects,
                true,
                None,
            )?,
            rects,
        };
        let mut blocks: Vec<BlockPatches> = Vec::with_capacity(self.blocks.len());
        for (i, block) in self.desc.blocks.iter().enumerate() {
            let (map, patch) = match blocks.last() {
                Some(last) => (&self.blocks[i - 1].y, &last.y),
                None => (&self.stem, &stem),
            };
            let input = Source::Base { map, rows, patch };
            blocks.push(block_on(block, &self.blocks[i], &input)?);
        }
        let (last_map, last_patch) = match blocks.last() {
            Some(last) => (&self.blocks[blocks.len() - 1].y, &last.y),
            None => (&self.stem, &stem),
        };
        let whole = (last_map.h, last_map.w);
        // the last map whole: the query's values where the last layer ran whole, else put together
        let source = Source::Base {
            map: last_map,
            rows,
            patch: last_patch,
        };
        let last = source.windows(&vec![(0, 0); r], 0, whole);
        let pooled = global_average_pool(&last, r, whole.0 * whole.1, last_map.c);
        self.last = Some(Query {
            rows: rows.to_vec(),
            stem,
            blocks,
        });
        Ok(pooled)
    }

    /// Width of the pooled features: the last map's channels.
    pub fn width(&self) -> usize {
        self.blocks.last().map_or(self.stem.c, |b| b.y.c)
    }

    /// Makes the images of the last query at `rows` (a subset of its rows) the base images of
    /// those rows.
    pub fn keep(&mut self, rows: &[usize]) -> CResult<()> {
        let Some(query) = &self.last else {
            return fail("windowed backbone: keep before any query");
        };
        for &row in rows {
            let Ok(j) = query.rows.binary_search(&row) else {
                return fail(format!(
                    "windowed backbone: row {row} was not in the last query"
                ));
            };
            paste(&mut self.stem, row, &query.stem, j);
            for (maps, patches) in self.blocks.iter_mut().zip(&query.blocks) {
                paste(&mut maps.a1, row, &patches.a1, j);
                if let (Some(map), Some(patch)) = (&mut maps.down, &patches.down) {
                    paste(map, row, patch, j);
                }
                paste(&mut maps.y, row, &patches.y, j);
            }
        }
        Ok(())
    }
}

/// The query's windows as rects of one size (the largest side), each moved inside the image
/// where the larger size would cross its edge.
fn window_rects(windows: &[Window], (h, w): (usize, usize)) -> Rects {
    let side = windows.iter().map(|v| v.side).max().unwrap_or(1);
    Rects {
        origins: windows
            .iter()
            .map(|v| (v.top.min(h - side), v.left.min(w - side)))
            .collect(),
        size: (side, side),
    }
}

/// The rects a layer computes: what `changed` reaches, or the whole map where that is half of it
/// or more for a 3x3 stride-1 layer (run whole, it takes Winograd's algorithm, about twice as
/// fast per output as the direct kernel that computes a part), three quarters of it for others
/// (the direct kernel either way; a whole layer reads its input without copying it).
fn choose(geometry: Geometry, changed: &Rects) -> Rects {
    let reached = geometry.reach(changed);
    let winograd = geometry.k == 3 && geometry.stride == 1 && geometry.pad == 1;
    let share = if winograd { 2 } else { 4 };
    let whole_share = if winograd { 1 } else { 3 };
    if share * reached.area() >= whole_share * geometry.out.0 * geometry.out.1 {
        geometry.whole(changed.origins.len())
    } else {
        reached
    }
}

/// One basic block on the rects its input's changes reach: the new values of its maps.
fn block_on(block: &BlockDesc, maps: &BlockMaps, input: &Source) -> CResult<BlockPatches> {
    let Source::Base { patch, rows, .. } = input else {
        return fail("windowed backbone: a block reads a base map");
    };
    let (h, w, c) = input.dims();
    let first = Geometry::of(&block.conv1, (h, w))?;
    let a1_rects = choose(first, &patch.rects);
    // a block whose first convolution runs whole reads its whole input map, as may its shortcut:
    // the map is put together once
    let gathered;
    let whole_input;
    let input = if a1_rects.size == first.out && input.whole().is_none() {
        gathered = input.gather(&a1_rects.origins, 0, (h, w));
        whole_input = Source::Images {
            x: &gathered,
            dims: (h, w, c),
        };
        &whole_input
    } else {
        input
    };
    let a1 = Patch {
        c: maps.a1.c,
        values: conv_on(
            (&block.conv1, &block.bn1),
            first,
            input,
            &a1_rects,
            true,
            None,
        )?,
        rects: a1_rects,
    };
    let down = match (&block.down, &maps.down) {
        (Some((conv, bn)), Some(map)) => {
            let geometry = Geometry::of(conv, (h, w))?;
            let rects = choose(geometry, &patch.rects);
            let values = conv_on((conv, bn), geometry, input, &rects, false, None)?;
            Some(Patch {
                c: map.c,
                values,
                rects,
            })
        }
        _ => None,
    };
    let second = Geometry::of(&block.conv2, first.out)?;
    let y_rects = choose(second, &a1.rects);
    // the shortcut's values on the block output's rects (which hold the shortcut's changes)
    let down_source;
    let shortcut = match (&down, &maps.down) {
        (Some(patch), Some(map)) => {
            down_source = Source::Base { map, rows, patch };
            down_source.windows(&y_rects.origins, 0, y_rects.size)
        }
        _ => input.windows(&y_rects.origins, 0, y_rects.size),
    };
    let source = Source::Base {
        map: &maps.a1,
        rows,
        patch: &a1,
    };
    let values = conv_on(
        (&block.conv2, &block.bn2),
        second,
        &source,
        &y_rects,
        true,
        Some(&shortcut),
    )?;
    let y = Patch {
        c: maps.y.c,
        values,
        rects: y_rects,
    };
    Ok(BlockPatches { a1, down, y })
}

/// Checks a query against the base batch (`dims`: images, channels, height, width): one image
/// per row, rows ascending inside the batch, windows inside the image.
fn check_query(
    len: usize,
    rows: &[usize],
    windows: &[Window],
    (n, c, h, w): (usize, usize, usize, usize),
) -> CResult<()> {
    if len != rows.len() * c * h * w || windows.len() != rows.len() {
        return fail(format!(
            "windowed backbone: {} values and {} windows for {} rows of {c}x{h}x{w} images",
            len,
            windows.len(),
            rows.len()
        ));
    }
    if rows.windows(2).any(|p| p[0] >= p[1]) || rows.last().is_some_and(|&r| r >= n) {
        return fail(format!(
            "windowed backbone: rows {rows:?} are not ascending rows of a batch of {n}"
        ));
    }
    if let Some(bad) = windows
        .iter()
        .find(|v| v.side == 0 || v.side > h.min(w) || v.top > h - v.side || v.left > w - v.side)
    {
        return fail(format!(
            "windowed backbone: window {bad:?} is not inside a {h}x{w} image"
        ));
    }
    Ok(())
}
