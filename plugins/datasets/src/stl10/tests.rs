//! Tests of `stl10` on small files written in the official format.

use super::*;
use rossl_api::components::BuildContext;
use rossl_api::registry;

/// A fresh empty folder for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rossl-stl10-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The byte of image `img`, channel `c`, at (`row`, `col`): differs when row and column swap.
fn value(img: usize, c: usize, row: usize, col: usize) -> u8 {
    ((img * 37 + c * 71 + row * 3 + col * 5) % 256) as u8
}

/// `n` images (starting at image number `first`) in the official layout: per channel, byte
/// `col * 96 + row` holds the pixel at (row, col).
fn images_file(first: usize, n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n * IMAGE_BYTES];
    for i in 0..n {
        for c in 0..3 {
            for row in 0..96 {
                for col in 0..96 {
                    bytes[i * IMAGE_BYTES + c * 9216 + col * 96 + row] =
                        value(first + i, c, row, col);
                }
            }
        }
    }
    bytes
}

/// 3 training images labelled 1, 10, 4 and 2 test images labelled 2, 7, in `dir`.
fn write_files(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("train_X.bin"), images_file(0, 3)).unwrap();
    std::fs::write(dir.join("train_y.bin"), [1u8, 10, 4]).unwrap();
    std::fs::write(dir.join("test_X.bin"), images_file(3, 2)).unwrap();
    std::fs::write(dir.join("test_y.bin"), [2u8, 7]).unwrap();
}

fn build(params: &str) -> Result<Box<dyn Dataset>> {
    registry::build::<dyn Dataset>("stl10", params, &BuildContext::cpu(0))
}

fn root(dir: &Path) -> String {
    format!("root = {:?}", dir.display().to_string())
}

fn load_err(d: &dyn Dataset, split: Split) -> String {
    d.load(split).map(|_| ()).unwrap_err().to_string()
}

#[test]
fn reads_the_column_major_layout_and_one_based_labels() {
    let dir = temp_dir("layout");
    write_files(&dir);
    let d = build(&root(&dir)).unwrap();
    assert_eq!(
        d.info(),
        DatasetInfo {
            channels: 3,
            height: 96,
            width: 96,
            classes: 10
        }
    );
    for (split, first, labels) in [
        (Split::Train, 0, vec![0, 9, 3]),
        (Split::Test, 3, vec![1, 6]),
    ] {
        let set = d.load(split).unwrap();
        assert_eq!(
            (set.len(), set.channels, set.height, set.width, set.classes),
            (labels.len(), 3, 96, 96, 10)
        );
        assert_eq!(set.labels, labels);
        for i in 0..set.len() {
            let image = set.image(i);
            for c in 0..3 {
                for row in 0..96 {
                    for col in 0..96 {
                        let want = f32::from(value(first + i, c, row, col)) / 255.0;
                        let got = image[c * 9216 + row * 96 + col];
                        assert_eq!(got, want, "{split} image {i}, channel {c}, ({row}, {col})");
                    }
                }
            }
        }
    }
}

#[test]
fn the_second_byte_of_a_plane_is_the_second_row_of_the_first_column() {
    let mut bytes = vec![0u8; IMAGE_BYTES];
    bytes[1] = 255; // red: column 0, row 1
    bytes[9216 + 96] = 51; // green: column 1, row 0
    let pixels = decode_images(Path::new("x.bin"), &bytes).unwrap();
    assert_eq!(pixels[96], 1.0); // red (row 1, col 0) in row-major order
    assert_eq!(pixels[9216 + 1], 0.2); // green (row 0, col 1)
    assert_eq!(pixels.iter().filter(|&&v| v != 0.0).count(), 2);
}

#[test]
fn finds_the_files_in_the_archive_s_folder_inside_root() {
    let dir = temp_dir("archive");
    write_files(&dir.join("stl10_binary"));
    let d = build(&root(&dir)).unwrap();
    assert_eq!(d.load(Split::Test).unwrap().labels, vec![1, 6]);
}

#[test]
fn without_a_root_the_first_location_holding_the_files_is_used() {
    let dir = temp_dir("locations");
    let (empty, direct, packed) = (dir.join("empty"), dir.join("direct"), dir.join("packed"));
    std::fs::create_dir_all(&empty).unwrap();
    write_files(&direct);
    write_files(&packed.join("stl10_binary"));
    let found = Stl10::found_in(&[empty.clone(), packed.clone(), direct.clone()], None).unwrap();
    assert_eq!(found.dir(), packed.join("stl10_binary"));
    let found = Stl10::found_in(&[empty.clone(), direct.clone()], None).unwrap();
    assert_eq!(found.dir(), direct);
    let err = Stl10::found_in(&[empty.clone(), dir.join("absent")], None)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&empty.display().to_string())
            && err.contains(&dir.join("absent").display().to_string())
            && err.contains("https://cs.stanford.edu/~acoates/stl10/"),
        "{err}"
    );
}

#[test]
fn a_fold_trains_on_its_line_of_fold_indices() {
    let dir = temp_dir("fold");
    write_files(&dir);
    let mut lines: Vec<String> = (0..10).map(|_| "0 1 2".to_string()).collect();
    lines[2] = "2 0".into();
    lines[4] = "1 300".into();
    std::fs::write(dir.join("fold_indices.txt"), lines.join("\n") + "\n").unwrap();
    let d = build(&format!("{}\nfold = 2", root(&dir))).unwrap();
    let train = d.load(Split::Train).unwrap();
    assert_eq!(train.labels, vec![3, 0]);
    assert_eq!(train.image(0)[5], f32::from(value(2, 0, 0, 5)) / 255.0); // row 0, col 5
    assert_eq!(d.load(Split::Test).unwrap().len(), 2);

    let bad = build(&format!("{}\nfold = 4", root(&dir))).unwrap();
    let err = load_err(bad.as_ref(), Split::Train);
    assert!(
        err.contains("fold_indices.txt") && err.contains("line 5") && err.contains("300"),
        "{err}"
    );
    let err = build(&format!("{}\nfold = 10", root(&dir)))
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("fold") && err.contains("10"), "{err}");
}

#[test]
fn fold_indices_are_64_bit_integers() {
    let path = Path::new("fold_indices.txt");
    let text = "3 4\n4000 4999 257\n";
    assert_eq!(
        fold_indices(path, text, 1, 5000).unwrap(),
        vec![4000, 4999, 257]
    );
    let err = fold_indices(path, text, 1, 4999).unwrap_err().to_string();
    assert!(err.contains("fold_indices.txt") && err.contains("line 2") && err.contains("4999"));
    let err = fold_indices(path, "1 x\n", 0, 5).unwrap_err().to_string();
    assert!(err.contains("line 1") && err.contains("`x`"), "{err}");
    let err = fold_indices(path, text, 3, 5000).unwrap_err().to_string();
    assert!(err.contains("2 lines") && err.contains("line 4"), "{err}");
}

#[test]
fn missing_files_name_the_path_and_where_to_download() {
    let dir = temp_dir("missing");
    let d = build(&root(&dir)).unwrap();
    let err = load_err(d.as_ref(), Split::Train);
    assert!(
        err.contains(&dir.join("train_X.bin").display().to_string())
            && err.contains("https://cs.stanford.edu/~acoates/stl10/")
            && err.contains("stl10_binary.tar.gz"),
        "{err}"
    );
    std::fs::write(dir.join("test_X.bin"), images_file(0, 1)).unwrap();
    let err = load_err(d.as_ref(), Split::Test);
    assert!(
        err.contains("test_y.bin") && err.contains("file not found"),
        "{err}"
    );
}

#[test]
fn truncated_and_mismatched_files_are_errors_naming_the_file() {
    let dir = temp_dir("corrupt");
    write_files(&dir);
    let d = build(&root(&dir)).unwrap();
    let mut cut = images_file(0, 3);
    cut.pop();
    std::fs::write(dir.join("train_X.bin"), cut).unwrap();
    let err = load_err(d.as_ref(), Split::Train);
    assert!(
        err.contains("train_X.bin") && err.contains("27648"),
        "{err}"
    );
    std::fs::write(dir.join("test_y.bin"), [2u8, 7, 7]).unwrap();
    let err = load_err(d.as_ref(), Split::Test);
    assert!(
        err.contains("test_y.bin") && err.contains("3 labels for 2 images"),
        "{err}"
    );
    for bad in [0u8, 11] {
        std::fs::write(dir.join("test_y.bin"), [2u8, bad]).unwrap();
        let err = load_err(d.as_ref(), Split::Test);
        assert!(
            err.contains("test_y.bin") && err.contains(&format!("label {bad} at index 1")),
            "{err}"
        );
    }
}
