//! The published CIFAR-10-C and CIFAR-100-C files (Hendrycks & Dietterich, ICLR 2019).
//!
//! `CIFAR-10-C.tar` (Zenodo record 2535967) and `CIFAR-100-C.tar` (Zenodo record 3555552) hold
//! one `<corruption>.npy` per family, a uint8 array `(50000, 32, 32, 3)` (HWC, RGB) whose rows
//! `[(s-1)·10000, s·10000)` are severity `s`, and `labels.npy`, uint8 `(50000,)` (the 10 000
//! test labels five times). [`load_corrupted`] reads one severity block; [`read_npy_u8`] is the
//! minimal `.npy` reader behind it (format versions 1.0, 2.0 and 3.0, uint8, C order).

use rossl_api::components::ImageSet;
use rossl_api::{Error, Result};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Images per severity in the published files.
pub const SEVERITY_BLOCK: usize = 10_000;

const HOW_TO_GET: &str = "download CIFAR-10-C.tar from Zenodo record 2535967 \
    (https://zenodo.org/records/2535967) or CIFAR-100-C.tar from record 3555552 \
    (https://zenodo.org/records/3555552) and extract it so that <root>/<corruption>.npy and \
    <root>/labels.npy exist";

/// The header of a uint8 `.npy` file: its shape and where its data start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyHeader {
    /// The array's shape.
    pub shape: Vec<usize>,
    /// Byte offset of the data in the file.
    pub data_offset: u64,
}

fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::data(path, format!("file not found; {HOW_TO_GET}"))
        } else {
            Error::data(path, format!("cannot read: {e}"))
        }
    })
}

/// The value of `key` in the header's Python dict literal, up to the next top-level comma.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let start = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[start..].trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find([',', '}']).unwrap_or(rest.len())
    };
    Some(rest[..end].trim())
}

fn parse_shape(value: &str) -> Option<Vec<usize>> {
    let inner = value.strip_prefix('(')?.strip_suffix(')')?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().ok())
        .collect()
}

/// Reads and checks the header of a uint8, C-order `.npy` file, and that the file holds all of
/// its data. Errors name the file.
pub fn read_npy_header(path: &Path, file: &mut File) -> Result<NpyHeader> {
    let bad = |msg: String| Error::data(path, format!("not a uint8 .npy array: {msg}"));
    let mut pre = [0u8; 8];
    file.read_exact(&mut pre)
        .map_err(|_| bad("shorter than the .npy preamble".into()))?;
    if &pre[..6] != b"\x93NUMPY" {
        return Err(bad("wrong magic bytes (expected \\x93NUMPY)".into()));
    }
    let (len, prefix) = match pre[6] {
        1 => {
            let mut b = [0u8; 2];
            file.read_exact(&mut b)
                .map_err(|_| bad("truncated header".into()))?;
            (usize::from(u16::from_le_bytes(b)), 10u64)
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            file.read_exact(&mut b)
                .map_err(|_| bad("truncated header".into()))?;
            (u32::from_le_bytes(b) as usize, 12u64)
        }
        v => return Err(bad(format!("unsupported format version {v}.{}", pre[7]))),
    };
    let mut text = vec![0u8; len];
    file.read_exact(&mut text)
        .map_err(|_| bad("truncated header".into()))?;
    let text = String::from_utf8_lossy(&text);
    let descr =
        dict_value(&text, "descr").ok_or_else(|| bad(format!("no 'descr' in header {text}")))?;
    if !["'|u1'", "'<u1'", "'>u1'", "'u1'"].contains(&descr) {
        return Err(bad(format!("dtype {descr}, expected '|u1' (uint8)")));
    }
    if dict_value(&text, "fortran_order") != Some("False") {
        return Err(bad("Fortran order; expected C order".into()));
    }
    let shape = dict_value(&text, "shape")
        .and_then(parse_shape)
        .ok_or_else(|| bad(format!("unreadable shape in header {text}")))?;
    let data_offset = prefix + len as u64;
    let needed = shape.iter().product::<usize>() as u64;
    let size = file
        .metadata()
        .map_err(|e| Error::data(path, format!("cannot read: {e}")))?
        .len();
    if size < data_offset + needed {
        return Err(Error::data(
            path,
            format!(
                "truncated: shape {shape:?} needs {needed} data bytes, the file has {}",
                size.saturating_sub(data_offset)
            ),
        ));
    }
    Ok(NpyHeader { shape, data_offset })
}

/// Reads rows `rows` (along the first axis) of a uint8 `.npy` file; returns the header and
/// the bytes of those rows.
pub fn read_npy_rows(path: &Path, rows: std::ops::Range<usize>) -> Result<(NpyHeader, Vec<u8>)> {
    let mut file = open(path)?;
    let header = read_npy_header(path, &mut file)?;
    let n = header.shape.first().copied().unwrap_or(1);
    if rows.end > n {
        return Err(Error::data(
            path,
            format!(
                "rows {rows:?} asked for, the array has {n} (shape {:?})",
                header.shape
            ),
        ));
    }
    let row_bytes: usize = header.shape.iter().skip(1).product();
    let mut data = vec![0u8; rows.len() * row_bytes];
    file.seek(SeekFrom::Start(
        header.data_offset + (rows.start * row_bytes) as u64,
    ))
    .and_then(|_| file.read_exact(&mut data))
    .map_err(|e| Error::data(path, format!("cannot read rows {rows:?}: {e}")))?;
    Ok((header, data))
}

/// Reads a whole uint8 `.npy` file: its shape and its data in C order.
pub fn read_npy_u8(path: &Path) -> Result<(Vec<usize>, Vec<u8>)> {
    let mut file = open(path)?;
    let header = read_npy_header(path, &mut file)?;
    let n = header.shape.first().copied().unwrap_or(1);
    drop(file);
    let (header, data) = read_npy_rows(path, 0..n)?;
    Ok((header.shape, data))
}

/// Severity `severity` (1..=5) of `<root>/<corruption>.npy` with labels from `<root>/labels.npy`:
/// the first `limit` images (all 10 000 if `None`) of the severity's block, as channel-major f32
/// in [0, 1]. The classes are 10 or 100, from the largest label among the first block of
/// `labels.npy`. Missing files are errors naming the path and where to get the data.
pub fn load_corrupted(
    root: &Path,
    corruption: &str,
    severity: u8,
    limit: Option<usize>,
) -> Result<ImageSet> {
    load_block(root, corruption, severity, limit, SEVERITY_BLOCK)
}

/// [`load_corrupted`] with `block` images per severity.
pub(crate) fn load_block(
    root: &Path,
    corruption: &str,
    severity: u8,
    limit: Option<usize>,
    block: usize,
) -> Result<ImageSet> {
    if !(1..=5).contains(&severity) {
        return Err(Error::msg(format!(
            "CIFAR-C severity {severity} is out of range: severities are 1 to 5"
        )));
    }
    if corruption.is_empty() || corruption.contains(['/', '\\']) || corruption.starts_with('.') {
        return Err(Error::msg(format!(
            "'{corruption}' is not a corruption file stem such as gaussian_noise"
        )));
    }
    let count = limit.unwrap_or(block).min(block);
    if count == 0 {
        return Err(Error::msg("CIFAR-C: a limit of 0 images loads nothing"));
    }
    let start = (usize::from(severity) - 1) * block;
    let path = root.join(format!("{corruption}.npy"));
    let (header, bytes) = read_npy_rows(&path, start..start + count)?;
    let &[_, h, w, c] = header.shape.as_slice() else {
        return Err(Error::data(
            &path,
            format!(
                "shape {:?}, expected (images, height, width, channels)",
                header.shape
            ),
        ));
    };
    if c != 3 && c != 1 {
        return Err(Error::data(
            &path,
            format!("{c} channels, expected 3 (RGB) or 1"),
        ));
    }
    let (labels, classes) = read_labels(&root.join("labels.npy"), start, count, block)?;
    let pixels = hwc_to_chw(&bytes, (c, h, w));
    ImageSet::new(pixels, labels, (c, h, w), classes)
}

/// The labels of rows `start..start + count` of `labels.npy` (or of its first block when it holds
/// only one), and the class count, 10 or 100, from the largest label in the first block.
fn read_labels(path: &Path, start: usize, count: usize, block: usize) -> Result<(Vec<u32>, usize)> {
    let (header, first_block) = read_npy_rows(path, 0..block.min(read_len(path)?))?;
    if header.shape.len() != 1 {
        return Err(Error::data(
            path,
            format!("shape {:?}, expected (images,)", header.shape),
        ));
    }
    let labels = if header.shape[0] >= start + count {
        read_npy_rows(path, start..start + count)?.1
    } else if first_block.len() >= count {
        first_block[..count].to_vec()
    } else {
        return Err(Error::data(
            path,
            format!("{} labels, {count} images asked for", header.shape[0]),
        ));
    };
    let max = first_block.iter().copied().max().unwrap_or(0);
    let classes = match max {
        0..=9 => 10,
        10..=99 => 100,
        _ => {
            return Err(Error::data(
                path,
                format!("label {max}: CIFAR-C labels are below 100"),
            ))
        }
    };
    Ok((labels.into_iter().map(u32::from).collect(), classes))
}

/// HWC uint8 images to channel-major f32 in [0, 1].
fn hwc_to_chw(bytes: &[u8], (c, h, w): (usize, usize, usize)) -> Vec<f32> {
    let mut pixels = vec![0f32; bytes.len()];
    for (img, chunk) in bytes.chunks_exact(h * w * c).enumerate() {
        let out = &mut pixels[img * c * h * w..(img + 1) * c * h * w];
        for (i, &v) in chunk.iter().enumerate() {
            out[(i % c) * h * w + i / c] = f32::from(v) / 255.0;
        }
    }
    pixels
}

/// The first-axis length of a `.npy` file.
fn read_len(path: &Path) -> Result<usize> {
    let mut file = open(path)?;
    let header = read_npy_header(path, &mut file)?;
    Ok(header.shape.first().copied().unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a uint8 `.npy` file of the given format version.
    fn write_npy(path: &Path, shape: &[usize], data: &[u8], version: u8) {
        write_npy_as(path, "|u1", shape, data, version)
    }

    /// Writes a `.npy` file with the dtype `descr`.
    fn write_npy_as(path: &Path, descr: &str, shape: &[usize], data: &[u8], version: u8) {
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        let shape_text = if shape.len() == 1 {
            format!("({},)", dims[0])
        } else {
            format!("({})", dims.join(", "))
        };
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
        let prefix = if version == 1 { 10 } else { 12 };
        while (prefix + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut bytes = b"\x93NUMPY".to_vec();
        bytes.extend([version, 0]);
        if version == 1 {
            bytes.extend((header.len() as u16).to_le_bytes());
        } else {
            bytes.extend((header.len() as u32).to_le_bytes());
        }
        bytes.extend(header.as_bytes());
        bytes.extend(data);
        std::fs::write(path, bytes).unwrap();
    }

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("rossl-cifar-c-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// 5 severities × 2 images of 4×3 RGB; pixel byte = 20 * (severity - 1) + 10 * image + channel,
    /// labels 3 and 7 (or 3 and 42), repeated per severity.
    fn write_set(d: &Path, version: u8, second_label: u8) {
        let (h, w) = (4, 3);
        let mut data = Vec::new();
        for s in 0..5u8 {
            for img in 0..2u8 {
                for _ in 0..h * w {
                    data.extend([0u8, 1, 2].map(|ch| 20 * s + 10 * img + ch));
                }
            }
        }
        write_npy(&d.join("fog.npy"), &[10, h, w, 3], &data, version);
        write_npy(
            &d.join("labels.npy"),
            &[10],
            &[3, second_label].repeat(5),
            1,
        );
    }

    #[test]
    fn reads_the_severity_block_as_channel_major_floats() {
        for version in [1, 2] {
            let d = dir(&format!("ok{version}"));
            write_set(&d, version, 7);
            let set = load_block(&d, "fog", 3, None, 2).unwrap();
            assert_eq!(
                (set.channels, set.height, set.width, set.classes),
                (3, 4, 3, 10)
            );
            assert_eq!(set.labels, [3, 7]);
            let px = |img: usize, ch: usize, i: usize| {
                (set.pixels[img * 36 + ch * 12 + i] * 255.0).round() as u8
            };
            assert_eq!((px(0, 0, 0), px(0, 2, 11), px(1, 1, 5)), (40, 42, 51));
            let (shape, labels) = read_npy_u8(&d.join("labels.npy")).unwrap();
            assert_eq!((shape, &labels[..4]), (vec![10], &[3u8, 7, 3, 7][..]));
            let one = load_block(&d, "fog", 5, Some(1), 2).unwrap();
            assert_eq!(
                (one.labels.as_slice(), (one.pixels[0] * 255.0).round()),
                (&[3u32][..], 80.0)
            );
            std::fs::remove_dir_all(&d).ok();
        }
    }

    #[test]
    fn infers_one_hundred_classes_from_the_labels() {
        let d = dir("c100");
        write_set(&d, 1, 42);
        assert_eq!(load_block(&d, "fog", 1, None, 2).unwrap().classes, 100);
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn bad_files_are_errors_naming_the_file() {
        let d = dir("bad");
        write_set(&d, 1, 7);
        let e = load_block(&d, "snow", 1, None, 2).unwrap_err().to_string();
        assert!(
            e.contains("snow.npy") && e.contains("2535967") && e.contains("3555552"),
            "{e}"
        );
        std::fs::write(d.join("magic.npy"), b"PK\x03\x04 not numpy").unwrap();
        let e = load_block(&d, "magic", 1, None, 2).unwrap_err().to_string();
        assert!(e.contains("magic.npy") && e.contains("magic bytes"), "{e}");
        write_npy_as(&d.join("float.npy"), "<f4", &[10, 4, 3, 3], &[0; 1440], 1);
        let e = load_block(&d, "float", 1, None, 2).unwrap_err().to_string();
        assert!(e.contains("float.npy") && e.contains("'<f4'"), "{e}");
        write_npy(&d.join("short.npy"), &[10, 4, 3, 3], &[0; 300], 1);
        let e = load_block(&d, "short", 1, None, 2).unwrap_err().to_string();
        assert!(e.contains("short.npy") && e.contains("truncated"), "{e}");
        write_npy(&d.join("flat.npy"), &[10, 36], &[0; 360], 1);
        let e = load_block(&d, "flat", 1, None, 2).unwrap_err().to_string();
        assert!(e.contains("flat.npy") && e.contains("[10, 36]"), "{e}");
        let e = load_block(&d, "fog", 6, None, 2).unwrap_err().to_string();
        assert!(e.contains("severity 6"), "{e}");
        assert!(load_block(&d, "../fog", 1, None, 2).is_err());
        std::fs::remove_dir_all(&d).ok();
    }
}
