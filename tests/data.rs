//! Dataset loaders on files written in the real formats (and broken on purpose), the embedded
//! default, crop statistics, and the loader's layout and determinism.

mod common;
use common::{idx, temp_dir, write};
use rossl::rossl_api::components::{
    BuildContext, Dataset, ImageRef, ImageSet, Split, ViewStrategy,
};
use rossl::rossl_api::registry;
use rossl::rossl_api::rng::Rng;
use rossl::rossl_runtime::loader::{Loader, LoaderSettings};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

fn dataset(name: &str, params: &str) -> Box<dyn Dataset> {
    registry::build::<dyn Dataset>(name, params, &BuildContext::cpu(0)).unwrap()
}

fn views(name: &str, params: &str) -> Box<dyn ViewStrategy> {
    registry::build::<dyn ViewStrategy>(name, params, &BuildContext::cpu(0)).unwrap()
}

/// A CIFAR record: label byte(s), then R, G, B planes where pixel p of plane c is (7c + p + seed) % 256.
fn cifar_record(labels: &[u8], seed: usize) -> Vec<u8> {
    let mut r = labels.to_vec();
    for c in 0..3 {
        for p in 0..1024 {
            r.push(((7 * c + p + seed) % 256) as u8);
        }
    }
    r
}

fn load_err(d: &dyn Dataset, split: Split) -> String {
    d.load(split).map(|_| ()).unwrap_err().to_string()
}

#[test]
fn cifar10_reads_the_official_binary_layout() {
    let dir = temp_dir("cifar10");
    for i in 1..=5 {
        let bytes: Vec<u8> = (0..2)
            .flat_map(|k| cifar_record(&[(i + k) as u8 % 10], i * 10 + k))
            .collect();
        write(&dir, &format!("data_batch_{i}.bin"), "");
        std::fs::write(dir.join(format!("data_batch_{i}.bin")), bytes).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), cifar_record(&[9], 3)).unwrap();
    let d = dataset(
        "cifar10",
        &format!("root = {:?}", dir.display().to_string()),
    );
    let train = d.load(Split::Train).unwrap();
    assert_eq!(
        (
            train.len(),
            train.channels,
            train.height,
            train.width,
            train.classes
        ),
        (10, 3, 32, 32, 10)
    );
    assert_eq!(train.labels[..4], [1, 2, 2, 3]);
    // record 0 of batch 1 has seed 10: green plane pixel 5 = (7 + 5 + 10) % 256 = 22
    assert_eq!(train.image(0)[1024 + 5], 22.0 / 255.0);
    let test = d.load(Split::Test).unwrap();
    assert_eq!(test.labels, vec![9]);

    // truncated: one byte short of a record
    let mut bytes = std::fs::read(dir.join("test_batch.bin")).unwrap();
    bytes.pop();
    std::fs::write(dir.join("test_batch.bin"), &bytes).unwrap();
    let message = load_err(d.as_ref(), Split::Test);
    assert!(
        message.contains("test_batch.bin") && message.contains("truncated"),
        "{message}"
    );
    // corrupt: a label that CIFAR-10 cannot have
    std::fs::write(dir.join("test_batch.bin"), cifar_record(&[12], 0)).unwrap();
    let message = load_err(d.as_ref(), Split::Test);
    assert!(
        message.contains("test_batch.bin") && message.contains("label 12"),
        "{message}"
    );
    // missing: names the path and how to get the data
    std::fs::remove_file(dir.join("data_batch_3.bin")).unwrap();
    let message = load_err(d.as_ref(), Split::Train);
    assert!(
        message.contains("data_batch_3.bin") && message.contains("cifar-10-binary"),
        "{message}"
    );
}

#[test]
fn cifar100_has_fine_and_coarse_labels() {
    let dir = temp_dir("cifar100");
    let bytes: Vec<u8> = [(3u8, 77u8), (19, 5)]
        .iter()
        .flat_map(|&(c, f)| cifar_record(&[c, f], 1))
        .collect();
    std::fs::write(dir.join("train.bin"), &bytes).unwrap();
    std::fs::write(dir.join("test.bin"), &bytes).unwrap();
    let root = format!("root = {:?}", dir.display().to_string());
    let fine = dataset("cifar100", &root).load(Split::Train).unwrap();
    assert_eq!((fine.labels.clone(), fine.classes), (vec![77, 5], 100));
    let coarse = dataset("cifar100", &format!("{root}\nlabels = \"coarse\""))
        .load(Split::Test)
        .unwrap();
    assert_eq!((coarse.labels, coarse.classes), (vec![3, 19], 20));
    std::fs::write(dir.join("test.bin"), cifar_record(&[25, 1], 0)).unwrap();
    let message = load_err(
        dataset("cifar100", &format!("{root}\nlabels = \"coarse\"")).as_ref(),
        Split::Test,
    );
    assert!(message.contains("coarse label 25"), "{message}");
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn write_mnist(dir: &Path, gz: bool) {
    let images: Vec<u8> = (0..3 * 28 * 28).map(|i| (i % 251) as u8).collect();
    let files = [
        ("train-images-idx3-ubyte", idx(&[3, 28, 28], &images)),
        ("train-labels-idx1-ubyte", idx(&[3], &[4, 0, 9])),
        ("t10k-images-idx3-ubyte", idx(&[1, 28, 28], &images[..784])),
        ("t10k-labels-idx1-ubyte", idx(&[1], &[7])),
    ];
    for (name, bytes) in files {
        if gz {
            std::fs::write(dir.join(format!("{name}.gz")), gzip(&bytes)).unwrap();
        } else {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

#[test]
fn idx_datasets_read_plain_and_gzipped_files_and_report_damage() {
    for gz in [false, true] {
        let dir = temp_dir(if gz { "idx-gz" } else { "idx" });
        write_mnist(&dir, gz);
        let d = dataset("mnist", &format!("root = {:?}", dir.display().to_string()));
        let train = d.load(Split::Train).unwrap();
        assert_eq!(
            (train.len(), train.channels, train.height, train.width),
            (3, 1, 28, 28)
        );
        assert_eq!(train.labels, vec![4, 0, 9]);
        assert_eq!(train.image(1)[0], (784 % 251) as f32 / 255.0);
        assert_eq!(d.load(Split::Test).unwrap().labels, vec![7]);
    }
    let dir = temp_dir("idx-broken");
    write_mnist(&dir, false);
    let d = dataset(
        "fashion-mnist",
        &format!("root = {:?}", dir.display().to_string()),
    );
    let path = dir.join("train-images-idx3-ubyte");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    let message = load_err(d.as_ref(), Split::Train);
    assert!(
        message.contains("train-images-idx3-ubyte") && message.contains("truncated"),
        "{message}"
    );
    std::fs::write(&path, [1u8, 2, 3, 4, 5, 6, 7, 8]).unwrap();
    let message = load_err(d.as_ref(), Split::Train);
    assert!(message.contains("magic"), "{message}");
    // a header whose dimensions multiply past usize: an error, not an overflow panic
    let mut huge = vec![0u8, 0, 0x08, 3];
    for _ in 0..3 {
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
    }
    std::fs::write(&path, &huge).unwrap();
    let message = load_err(d.as_ref(), Split::Train);
    assert!(
        message.contains("train-images-idx3-ubyte") && message.contains("overflow"),
        "{message}"
    );
    std::fs::write(&path, &gzip(&bytes)[..20]).unwrap();
    let message = load_err(d.as_ref(), Split::Train);
    assert!(message.contains("gzip"), "{message}");
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx(&[1], &[10])).unwrap();
    let message = load_err(d.as_ref(), Split::Test);
    assert!(
        message.contains("t10k-labels-idx1-ubyte") && message.contains("label 10"),
        "{message}"
    );
    let missing = dataset("fashion-mnist", "root = \"/nonexistent/fmnist\"");
    let message = load_err(missing.as_ref(), Split::Train);
    assert!(
        message.contains("/nonexistent/fmnist") && message.contains("dataset-fashion-mnist"),
        "{message}"
    );
}

/// Runs `rossl views` on the `fashion-mnist` dataset with no root configured, with the XDG data
/// folders pointing at `data_dirs` (and an empty user folder): (success, standard error).
fn views_of_fashion_mnist(dir: &Path, data_dirs: &Path) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rossl"))
        .args([
            "views",
            "--set",
            "data.name=\"fashion-mnist\"",
            "--images",
            "2",
            "--views",
            "2",
        ])
        .arg("--out")
        .arg(dir.join("grid.png"))
        .env("XDG_DATA_HOME", dir.join("empty-home"))
        .env("XDG_DATA_DIRS", data_dirs)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn fashion_mnist_is_found_where_the_debian_package_installs_it_without_configuration() {
    // the package's layout, /usr/share/datasets/fashion-mnist/*.gz, under a data folder of our own
    let dir = temp_dir("fashion-layout");
    let share = dir.join("share");
    let folder = share.join("datasets/fashion-mnist");
    std::fs::create_dir_all(&folder).unwrap();
    write_mnist(&folder, true);
    let (ok, err) = views_of_fashion_mnist(&dir, &share);
    assert!(ok, "{err}");
    assert!(dir.join("grid.png").is_file());
    // nothing there: the error names every folder searched, and how to get the data
    let (ok, err) = views_of_fashion_mnist(&dir, &dir.join("nowhere"));
    assert!(
        !ok && err.contains("nowhere/datasets/fashion-mnist")
            && err.contains("empty-home/datasets/fashion-mnist")
            && err.contains("dataset-fashion-mnist"),
        "{err}"
    );
}

#[test]
fn fashion_mnist_reads_the_debian_package_when_it_is_installed() {
    let root = Path::new("/usr/share/datasets/fashion-mnist");
    if !root.join("train-images-idx3-ubyte.gz").is_file() {
        eprintln!("the Debian package dataset-fashion-mnist is not installed: nothing to read");
        return;
    }
    let d = dataset("fashion-mnist", "");
    let test = d.load(Split::Test).unwrap();
    assert_eq!((test.len(), test.classes, test.height), (10_000, 10, 28));
}

#[test]
fn the_embedded_default_loads_with_no_files_and_is_class_balanced() {
    let d = dataset("embedded", "");
    let train = d.load(Split::Train).unwrap();
    let test = d.load(Split::Test).unwrap();
    assert_eq!((train.len(), test.len()), (10_000, 2_000));
    assert!(train.class_counts().iter().all(|&c| c == 1_000));
    assert!(test.class_counts().iter().all(|&c| c == 200));
    assert!(train.pixels.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn synthetic_images_have_any_shape_and_are_reproducible() {
    let d = dataset(
        "synthetic",
        "channels = 5\nheight = 9\nwidth = 13\ntrain_size = 20\nclasses = 4",
    );
    let a = d.load(Split::Train).unwrap();
    assert_eq!(
        (a.channels, a.height, a.width, a.len(), a.classes),
        (5, 9, 13, 20, 4)
    );
    assert_eq!(a.pixels, d.load(Split::Train).unwrap().pixels);
    assert!(a.pixels.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn crops_follow_torchvision_s_distribution() {
    // torchvision's RandomResizedCrop.get_params on 32x32, scale (0.08, 1), ratio (3/4, 4/3),
    // 200,000 draws (tests/reference/torchvision_crop_stats.py, torchvision 0.29.2): mean area
    // fraction 0.4904, 21.24% of crops below a quarter of the image, log aspect ratio mean
    // -0.0002 and standard deviation 0.1610.
    let n = 20_000;
    let mut rng = Rng::new(11);
    let (mut area, mut small, mut logs) = (0.0, 0, Vec::with_capacity(n));
    for _ in 0..n {
        let c = rossl_views::crop::sample_crop(32, 32, [0.08, 1.0], [0.75, 4.0 / 3.0], &mut rng);
        let a = (c.height * c.width) as f64 / 1024.0;
        assert!((0.06..=1.0).contains(&a) && c.top + c.height <= 32 && c.left + c.width <= 32);
        let r = (c.width as f64 / c.height as f64).ln();
        assert!(r.abs() <= (4.0f64 / 3.0).ln() + 0.15, "ratio {r}");
        area += a;
        small += usize::from(a < 0.25);
        logs.push(r);
    }
    let mean_log = logs.iter().sum::<f64>() / n as f64;
    let sd_log = (logs.iter().map(|l| (l - mean_log).powi(2)).sum::<f64>() / n as f64).sqrt();
    assert!(
        (area / n as f64 - 0.4904).abs() < 0.01,
        "mean area {}",
        area / n as f64
    );
    assert!((small as f64 / n as f64 - 0.2124).abs() < 0.015);
    assert!(
        mean_log.abs() < 0.01 && (sd_log - 0.161).abs() < 0.01,
        "{mean_log} {sd_log}"
    );
    // patches: always the fixed scale and ratio (16x16 of 32x32)
    for _ in 0..100 {
        let c = rossl_views::crop::sample_crop(32, 32, [0.25, 0.25], [1.0, 1.0], &mut rng);
        assert_eq!((c.height, c.width), (16, 16));
    }
}

/// A view strategy that writes (image value, view index) so the layout can be read back.
struct Marker;
impl ViewStrategy for Marker {
    fn views_per_image(&self) -> usize {
        3
    }
    fn output_size(&self, h: usize, w: usize) -> (usize, usize) {
        (h, w)
    }
    fn render(&self, image: ImageRef<'_>, rng: &mut Rng, out: &mut [f32]) {
        out[0] = image.pixels[0];
        out[1] = rng.uniform() as f32;
    }
}

fn numbered_set(n: usize) -> Arc<ImageSet> {
    let pixels: Vec<f32> = (0..n).flat_map(|i| [i as f32, 0.0, 0.0, 0.0]).collect();
    let labels = (0..n).map(|i| (i % 2) as u32).collect();
    Arc::new(ImageSet::new(pixels, labels, (1, 2, 2), 2).unwrap())
}

#[test]
fn loader_batches_are_view_major_shuffled_per_epoch_and_drop_the_last() {
    let settings = LoaderSettings {
        batch_size: 4,
        workers: 2,
        prefetch: 1,
        seed: 3,
        max_batches: 0,
    };
    let loader = Loader::new(numbered_set(10), Arc::new(Marker), settings).unwrap();
    assert_eq!(loader.batches_per_epoch(), 2);
    let epoch0: Vec<_> = loader.epoch(0).collect();
    assert_eq!(epoch0.len(), 2);
    let b = &epoch0[0];
    for v in 0..3 {
        for j in 0..4 {
            // row v * 4 + j holds view v of image indices[j]
            assert_eq!(b.pixels[(v * 4 + j) * 4] as usize, b.indices[j]);
        }
    }
    let seen: Vec<usize> = epoch0.iter().flat_map(|b| b.indices.clone()).collect();
    let epoch1: Vec<usize> = loader.epoch(1).flat_map(|b| b.indices).collect();
    assert_ne!(seen, epoch1, "each epoch is shuffled anew");
    let mut unique = seen.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 8, "drop-last: 8 distinct images of 10");
}

#[test]
fn the_same_seed_gives_bit_identical_batches_whatever_the_thread_count() {
    let set = {
        let d = dataset(
            "synthetic",
            "channels = 3\nheight = 16\nwidth = 16\ntrain_size = 24",
        );
        Arc::new(d.load(Split::Train).unwrap())
    };
    let strategy: Arc<dyn ViewStrategy> = Arc::from(views("multi-crop", "views = 4"));
    let run = |workers: usize, seed: u64| -> Vec<Vec<f32>> {
        let settings = LoaderSettings {
            batch_size: 6,
            workers,
            prefetch: 2,
            seed,
            max_batches: 0,
        };
        let loader = Loader::new(set.clone(), strategy.clone(), settings).unwrap();
        (0..2)
            .flat_map(|e| loader.epoch(e).map(|b| b.pixels).collect::<Vec<_>>())
            .collect()
    };
    let one = run(1, 5);
    assert_eq!(one, run(3, 5));
    assert_ne!(one, run(1, 6));
    assert!(one.iter().flatten().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn an_annealed_loader_renders_each_epoch_at_its_strength() {
    use rossl::rossl_runtime::config::AnnealConfig;
    let set = {
        let d = dataset(
            "synthetic",
            "channels = 3\nheight = 8\nwidth = 8\ntrain_size = 8",
        );
        Arc::new(d.load(Split::Train).unwrap())
    };
    let settings = LoaderSettings {
        batch_size: 8,
        workers: 1,
        prefetch: 1,
        seed: 2,
        max_batches: 0,
    };
    let strategy: Arc<dyn ViewStrategy> = Arc::from(views("multi-crop", "views = 2"));
    let plain = Loader::new(set.clone(), strategy.clone(), settings.clone()).unwrap();
    let anneal = AnnealConfig {
        stages: 2,
        view_strength_end: 0.0,
        ..AnnealConfig::default()
    };
    let annealed = plain.clone().with_anneal(&anneal, 2).unwrap();
    // two passes, two stages: strength 1 (the views as configured), then 1/2
    assert_eq!((annealed.strength(0), annealed.strength(1)), (1.0, 0.5));
    assert_eq!(annealed.render(0, 0).pixels, plain.render(0, 0).pixels);
    assert_ne!(annealed.render(1, 0).pixels, plain.render(1, 0).pixels);
    let epoch: Vec<Vec<f32>> = annealed.epoch(1).map(|b| b.pixels).collect();
    assert_eq!(epoch, vec![annealed.render(1, 0).pixels]);
    // a strategy without a strength cannot be annealed
    let marker = Loader::new(numbered_set(10), Arc::new(Marker), settings).unwrap();
    let message = marker.with_anneal(&anneal, 2).err().unwrap().to_string();
    assert!(
        message.contains("train.anneal.view_strength_end"),
        "{message}"
    );
}
