//! `rossl views`: a grid of a few images (training split by default) and their views, as a PNG a
//! person can check.

use crate::commands::args::ConfigArgs;
use crate::commands::session::prepare;
use clap::Args;
use rossl_api::components::{ImageRef, Split};
use rossl_api::rng::{stream, Rng};
use rossl_runtime::train::load_split;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `rossl views`.
#[derive(Debug, Args)]
pub struct ViewsArgs {
    /// Config files and overrides (the dataset and view strategy to show).
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The PNG to write.
    #[arg(long, value_name = "PNG")]
    pub out: PathBuf,
    /// Images (rows of the grid).
    #[arg(long, default_value_t = 6)]
    pub images: usize,
    /// Views per image shown (columns after the original; at most the strategy's count).
    #[arg(long, default_value_t = 8)]
    pub views: usize,
    /// Pixels per image pixel.
    #[arg(long, default_value_t = 3)]
    pub zoom: usize,
    /// The split the images come from (with the configured subset of that split).
    #[arg(long, value_enum, default_value_t = SplitArg::Train)]
    pub split: SplitArg,
}

/// A dataset split on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SplitArg {
    /// The training split.
    Train,
    /// The test split.
    Test,
}

impl From<SplitArg> for Split {
    fn from(split: SplitArg) -> Self {
        match split {
            SplitArg::Train => Split::Train,
            SplitArg::Test => Split::Test,
        }
    }
}

/// Runs `rossl views`.
pub fn run(args: &ViewsArgs) -> anyhow::Result<ExitCode> {
    let session = prepare(&args.config, None, None)?;
    let asm = &session.assembly;
    let set = load_split(asm, args.split.into())?;
    let strategy = &asm.views;
    let (c, h, w) = (set.channels, set.height, set.width);
    let (oh, ow) = strategy.output_size(h, w);
    let shown = args.views.min(strategy.views_per_image()).max(1);
    let images = args.images.min(set.len()).max(1);
    let z = args.zoom.max(1);
    let gap = 4;
    let cell_h = oh.max(h) * z;
    let cell_w = ow.max(w) * z;
    let width = (1 + shown) * (cell_w + gap) + gap;
    let height = images * (cell_h + gap) + gap;
    let mut canvas = vec![255u8; width * height * 3];
    let mut paint = |pixels: &[f32], ph: usize, pw: usize, row: usize, col: usize| {
        let (y0, x0) = (gap + row * (cell_h + gap), gap + col * (cell_w + gap));
        for y in 0..ph * z {
            for x in 0..pw * z {
                let (sy, sx) = (y / z, x / z);
                for ch in 0..3 {
                    let source = if c == 3 { ch } else { 0 };
                    let v = pixels[(source * ph + sy) * pw + sx].clamp(0.0, 1.0);
                    canvas[((y0 + y) * width + x0 + x) * 3 + ch] = (v * 255.0).round() as u8;
                }
            }
        }
    };
    let seed = asm.config.run.seed;
    let mut view = vec![0.0f32; c * oh * ow];
    for i in 0..images {
        paint(set.image(i), h, w, i, 0);
        for v in 0..shown {
            let image = ImageRef {
                pixels: set.image(i),
                channels: c,
                height: h,
                width: w,
            };
            let mut rng = Rng::derive(seed, &[stream::VIEWS, 0, i as u64, v as u64]);
            strategy.render(image, &mut rng, &mut view);
            paint(&view, oh, ow, i, v + 1);
        }
    }
    rossl_runtime::run_dir::refuse_run_file(&args.out, "the picture of the views")?;
    let file = std::fs::File::create(&args.out)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", args.out.display()))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width as u32, height as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header()?.write_image_data(&canvas)?;
    println!(
        "wrote {} ({} images of `{}`, the original then {shown} views of `{}` each)",
        args.out.display(),
        images,
        asm.config.run.data.name,
        asm.config.run.views.name
    );
    Ok(ExitCode::SUCCESS)
}
