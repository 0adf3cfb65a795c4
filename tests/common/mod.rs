//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod fixtures;
pub mod process;

use candle_core::{DType, Tensor};
use rossl::rossl_runtime::assembly::Assembly;
use rossl::rossl_runtime::config::{ConfigSources, DeviceSpec, ResolvedConfig};
use rossl::rossl_runtime::device::select_device;
use std::path::{Path, PathBuf};

/// A fresh temporary folder for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rossl-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("parent dir");
    }
    std::fs::write(&path, text).expect("write file");
    path
}

/// Resolves files and --set arguments without reading the environment.
pub fn resolve(files: &[PathBuf], sets: &[&str]) -> rossl::rossl_api::Result<ResolvedConfig> {
    let sources = ConfigSources {
        files: files.to_vec(),
        sets: sets.iter().map(|s| s.to_string()).collect(),
        use_env: false,
    };
    ResolvedConfig::load(&sources)
}

/// The TINY configuration with `out` in `dir/runs` and `extra` overrides, assembled on the CPU.
pub fn assemble(dir: &std::path::Path, extra: &[&str]) -> Assembly {
    let file = write(dir, "tiny.toml", TINY);
    let mut sets: Vec<&str> = vec![];
    let out = format!("out={:?}", dir.join("runs").display().to_string());
    sets.push(&out);
    sets.extend_from_slice(extra);
    let resolved = resolve(&[file], &sets).unwrap();
    Assembly::build(resolved, select_device(DeviceSpec::Cpu).unwrap()).unwrap()
}

/// A step context over `asm`'s encoder and objective (4 views per image, as TINY), without
/// labels or a target network.
pub fn step_context(asm: &Assembly) -> rossl::rossl_runtime::train::regimes::StepContext<'_> {
    rossl::rossl_runtime::train::regimes::StepContext {
        encoder: asm.encoder.as_ref(),
        objective: &asm.objective,
        views: 4,
        labels: None,
        target: None,
    }
}

/// The error message of a result that must be an error.
pub fn error_of<T: std::fmt::Debug>(result: rossl::rossl_api::Result<T>) -> String {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

/// A tiny, fast training configuration on synthetic data.
pub const TINY: &str = r#"
device = "cpu"
[method]
name = "tiny"
[data]
name = "synthetic"
batch_size = 8
prefetch = 1
[data.synthetic]
channels = 1
height = 12
width = 12
train_size = 48
test_size = 40
classes = 4
[views.multi-crop]
views = 4
[encoder.resnet-small]
widths = [4, 8]
hidden = 16
z_dim = 8
[train]
epochs = 2
log_every = 1
[eval]
evaluators = ["linear-probe"]
steps = 3
restarts = 1
apgd_steps = 5
square_queries = 20
check_images = 16
batch_size = 20
[eval.linear-probe]
epochs = 3
"#;

/// The largest absolute value of `t` (an f32 tensor, or any float tensor converted to f32).
pub fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// The largest absolute difference between `a` and `b`.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    max_abs(&(a - b).unwrap())
}

/// Projections (12 x 5: 3 views of 4 images), z[r][j] = sin(a r + b j + c r j), rows
/// L2-normalised: the fixed input of the loss tests and their PyTorch references.
pub fn sample_z(a: f64, b: f64, c: f64) -> Vec<f64> {
    let (rows, dim) = (12, 5);
    let mut z = Vec::new();
    for r in 0..rows {
        let row: Vec<f64> = (0..dim)
            .map(|j| (a * r as f64 + b * j as f64 + c * (r * j) as f64).sin())
            .collect();
        let n = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        z.extend(row.iter().map(|v| v / n));
    }
    z
}

/// An IDX file (MNIST's format) of unsigned bytes with dimensions `dims` holding `data`.
pub fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// MNIST's four IDX files in `dir`: `train` training and `test` test images (28x28, pixel
/// patterns that differ per image), labels cycling through the 10 classes.
pub fn write_mnist_files(dir: &Path, train: usize, test: usize) {
    let images = |n: usize| -> Vec<u8> {
        (0..n * 784)
            .map(|p| ((p * 7 + (p / 784) * 31) % 256) as u8)
            .collect()
    };
    let labels = |n: usize| -> Vec<u8> { (0..n).map(|i| (i % 10) as u8).collect() };
    for (name, bytes) in [
        (
            "train-images-idx3-ubyte",
            idx(&[train as u32, 28, 28], &images(train)),
        ),
        (
            "train-labels-idx1-ubyte",
            idx(&[train as u32], &labels(train)),
        ),
        (
            "t10k-images-idx3-ubyte",
            idx(&[test as u32, 28, 28], &images(test)),
        ),
        ("t10k-labels-idx1-ubyte", idx(&[test as u32], &labels(test))),
    ] {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// A uint8 `.npy` file (format 1.0) of `shape` holding `data`.
pub fn npy_u8(shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '|u1', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}
