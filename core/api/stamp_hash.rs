// The source hash of the ABI stamp, shared by rossl-api's build script and its `stamp` module
// (through `include!`), so that tests can compute it on copies of the sources.

/// Every `.rs` file under each root's `src` and each root's `Cargo.toml`, by path relative to
/// its root and content, folded with FNV-1a in a fixed order.
pub fn source_hash(roots: &[std::path::PathBuf]) -> u64 {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push(path);
                }
            }
        }
    }
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for root in roots {
        let mut files = Vec::new();
        walk(&root.join("src"), &mut files);
        files.push(root.join("Cargo.toml"));
        files.sort();
        for file in files {
            let name = root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let relative = file
                .strip_prefix(root)
                .unwrap_or(&file)
                .to_string_lossy()
                .into_owned();
            let content = std::fs::read(&file).unwrap_or_default();
            for &b in name.as_bytes().iter().chain(relative.as_bytes()).chain(&content) {
                hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    hash
}
