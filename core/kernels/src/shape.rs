//! The geometry of a convolution, shared by every convolution kernel.

/// The geometry of a square-kernel convolution with symmetric zero padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    /// Batch.
    pub n: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Input channels.
    pub c: usize,
    /// Output channels.
    pub o: usize,
    /// Kernel side.
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Padding on each side.
    pub pad: usize,
}

impl ConvShape {
    /// Output height.
    pub fn oh(&self) -> usize {
        (self.h + 2 * self.pad - self.k) / self.stride + 1
    }

    /// Output width.
    pub fn ow(&self) -> usize {
        (self.w + 2 * self.pad - self.k) / self.stride + 1
    }

    /// Output rows (N OH OW).
    pub fn rows(&self) -> usize {
        self.n * self.oh() * self.ow()
    }

    /// Length of an im2col row (K K C).
    pub fn kkc(&self) -> usize {
        self.k * self.k * self.c
    }

    /// Output rows per image.
    pub fn rows_per_image(&self) -> usize {
        self.oh() * self.ow()
    }

    /// A 1x1 convolution with stride 1 and no padding (a plain matrix product).
    pub fn pointwise(&self) -> bool {
        self.k == 1 && self.stride == 1 && self.pad == 0
    }

    /// Rows per work chunk: about 1 MiB of im2col, at least 64 rows.
    pub fn chunk_rows(&self) -> usize {
        ((1 << 18) / self.kkc().max(1)).clamp(64, 4096)
    }

    /// Rows per parallel task: [`chunk_rows`](Self::chunk_rows), or fewer where that would leave
    /// the layer fewer than `tasks` tasks (a small layer on a few chunks leaves threads idle).
    pub fn rows_per_task(&self, tasks: usize) -> usize {
        self.chunk_rows()
            .min(self.rows().div_ceil(tasks.max(1)))
            .max(1)
    }
}
