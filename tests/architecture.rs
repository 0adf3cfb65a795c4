//! The architecture holds: the crates depend on each other as docs/architecture.md draws them,
//! no two modules import each other (directly or in a circle), configuration does not depend on
//! evaluation, no source file grows past 500 lines, the plugin guide's listing of
//! `plugins/attacks/src/fgsm.rs` is that file, and no file names a crate that no longer exists.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "target") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The module path of a source file of a crate rooted at `src` (`eval/checks/mod.rs` ->
/// `eval::checks`; `lib.rs` -> ``).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_string());
    }
    parts
}

/// The modules that `text` (the source of module `from`) names through `crate::` and `super::`
/// paths, as module paths (longest known prefix).
fn imports(text: &str, from: &[String], known: &BTreeSet<Vec<String>>) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    for (start, prefix) in text
        .match_indices("crate::")
        .map(|(i, _)| (i, "crate"))
        .chain(text.match_indices("super::").map(|(i, _)| (i, "super")))
    {
        // skip `$crate::` (macros) and identifiers ending in `crate`/`super`
        let before = text[..start].chars().last();
        if before.is_some_and(|c| c == '$' || c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[start + prefix.len() + 2..];
        let path: Vec<String> = rest
            .split("::")
            .map(|segment| {
                segment
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect::<String>()
            })
            .take_while(|s| !s.is_empty())
            .collect();
        let mut base: Vec<String> = if prefix == "crate" {
            Vec::new()
        } else {
            // `super` of a file module is its parent (a mod.rs is the module itself)
            from[..from.len().saturating_sub(1)].to_vec()
        };
        for segment in path {
            let mut candidate = base.clone();
            candidate.push(segment);
            if known.contains(&candidate) {
                base = candidate;
            } else {
                break;
            }
        }
        out.insert(base);
    }
    out
}

/// The sibling pairs (a, b) under a common parent such that something in `a` imports something
/// in `b`, for every crate source folder.
fn sibling_edges(src: &Path) -> BTreeMap<Vec<String>, BTreeSet<(String, String)>> {
    let files = rust_files(src);
    let known: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(src, f)).collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<(String, String)>> = BTreeMap::new();
    for file in &files {
        let from = module_of(src, file);
        let text = std::fs::read_to_string(file).unwrap();
        // tests inside a file may reach anywhere; comments (doc links) are not imports
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap_or("")
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let text = code.as_str();
        for to in imports(text, &from, &known) {
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            if common == from.len() || common == to.len() {
                continue; // ancestor and descendant: declarations and re-exports
            }
            edges
                .entry(from[..common].to_vec())
                .or_default()
                .insert((from[common].clone(), to[common].clone()));
        }
    }
    edges
}

/// A cycle in `edges`, if there is one.
fn cycle(edges: &BTreeSet<(String, String)>) -> Option<Vec<String>> {
    let nodes: BTreeSet<&String> = edges.iter().flat_map(|(a, b)| [a, b]).collect();
    fn visit<'a>(
        node: &'a String,
        edges: &'a BTreeSet<(String, String)>,
        path: &mut Vec<&'a String>,
        done: &mut BTreeSet<&'a String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| *n == node) {
            let mut c: Vec<String> = path[at..].iter().map(|s| s.to_string()).collect();
            c.push(node.clone());
            return Some(c);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node);
        for (_, next) in edges.iter().filter(|(a, _)| a == node) {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node);
        None
    }
    let mut done = BTreeSet::new();
    nodes
        .into_iter()
        .find_map(|n| visit(n, edges, &mut Vec::new(), &mut done))
}

/// Every crate's source folder.
fn crate_sources() -> Vec<PathBuf> {
    let mut out = vec![repo().join("src")];
    for parent in ["core", "plugins"] {
        for entry in std::fs::read_dir(repo().join(parent)).unwrap().flatten() {
            let src = entry.path().join("src");
            if src.is_dir() {
                out.push(src);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn no_two_modules_import_each_other() {
    let mut problems = Vec::new();
    for src in crate_sources() {
        for (parent, edges) in sibling_edges(&src) {
            if let Some(c) = cycle(&edges) {
                problems.push(format!(
                    "{} (under `{}`): {}",
                    src.strip_prefix(repo()).unwrap().display(),
                    parent.join("::"),
                    c.join(" -> ")
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "import circles:\n{}",
        problems.join("\n")
    );
}

#[test]
fn configuration_does_not_depend_on_evaluation_training_or_plugins() {
    let edges = sibling_edges(&repo().join("core/runtime/src"));
    let top = edges.get(&Vec::new()).cloned().unwrap_or_default();
    for target in ["eval", "train", "plugins", "assembly"] {
        assert!(
            !top.contains(&("config".to_string(), target.to_string())),
            "rossl-runtime's config module imports `{target}`"
        );
    }
}

/// The `rossl-*` dependencies of the crate whose manifest is `manifest`.
fn rossl_dependencies(manifest: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
    table
        .get("dependencies")
        .and_then(toml::Value::as_table)
        .map(|d| {
            d.keys()
                .filter(|k| k.starts_with("rossl-"))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn plugins_depend_on_the_api_and_nn_never_on_the_runtime() {
    for entry in std::fs::read_dir(repo().join("plugins")).unwrap().flatten() {
        let manifest = entry.path().join("Cargo.toml");
        if !manifest.is_file() {
            continue;
        }
        let deps = rossl_dependencies(&manifest);
        assert!(
            deps.iter().any(|d| d == "rossl-api"),
            "{}: {deps:?}",
            manifest.display()
        );
        assert!(
            !deps.iter().any(|d| d == "rossl-runtime"),
            "{} depends on the runtime",
            manifest.display()
        );
    }
    let kernels: toml::Table =
        toml::from_str(&std::fs::read_to_string(repo().join("core/kernels/Cargo.toml")).unwrap())
            .unwrap();
    assert!(
        !kernels["dependencies"]
            .as_table()
            .unwrap()
            .keys()
            .any(|k| k.contains("candle")),
        "rossl-kernels depends on candle"
    );
    assert_eq!(
        rossl_dependencies(&repo().join("core/api/Cargo.toml")),
        Vec::<String>::new(),
        "rossl-api depends on no other rossl crate"
    );
}

#[test]
fn no_source_file_is_over_500_lines() {
    let mut long = Vec::new();
    for folder in ["core", "plugins", "src", "tests"] {
        for file in rust_files(&repo().join(folder)) {
            let lines = std::fs::read_to_string(&file).unwrap().lines().count();
            if lines > 500 {
                long.push(format!(
                    "{}: {lines} lines",
                    file.strip_prefix(repo()).unwrap().display()
                ));
            }
        }
    }
    assert!(
        long.is_empty(),
        "files over 500 lines:\n{}",
        long.join("\n")
    );
}

/// The first ```` ```rust ```` block after `marker` in `doc`, without its fences.
fn code_block_after<'a>(doc: &'a str, marker: &str) -> &'a str {
    let at = doc
        .find(marker)
        .unwrap_or_else(|| panic!("no `{marker}` in the document"));
    let fence = "```rust\n";
    let start = at + doc[at..].find(fence).expect("a rust code block") + fence.len();
    let end = start
        + doc[start..]
            .find("```\n")
            .expect("the block's closing fence");
    &doc[start..end]
}

#[test]
fn the_plugin_guide_shows_the_whole_of_fgsm_rs() {
    let guide = std::fs::read_to_string(repo().join("docs/writing-a-plugin.md")).unwrap();
    let file = std::fs::read_to_string(repo().join("plugins/attacks/src/fgsm.rs")).unwrap();
    let listing = code_block_after(
        &guide,
        "This is `plugins/attacks/src/fgsm.rs`, the whole of it",
    );
    assert!(
        listing == file,
        "docs/writing-a-plugin.md's listing differs from plugins/attacks/src/fgsm.rs: copy the file \
         into the guide's code block"
    );
}

#[test]
fn no_file_names_the_former_core_crate() {
    // the crate split into rossl-api, rossl-nn, rossl-runtime and rossl-kernels; CHANGELOG.md's
    // history keeps the old name
    let names = [["rossl", "core"].join("-"), ["rossl", "core"].join("_")];
    let mut found = Vec::new();
    let mut stack = vec![repo().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !name.starts_with('.') && name != "target" {
                    stack.push(path);
                }
                continue;
            }
            let text_file = ["rs", "md", "toml", "py", "sh"]
                .iter()
                .any(|e| path.extension().is_some_and(|x| x == *e));
            if !text_file || name == "CHANGELOG.md" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if names.iter().any(|n| text.contains(n.as_str())) {
                found.push(path.strip_prefix(repo()).unwrap().display().to_string());
            }
        }
    }
    assert!(
        found.is_empty(),
        "files naming {}: {}",
        names[0],
        found.join(", ")
    );
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let edges: BTreeSet<(String, String)> = [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]
        .iter()
        .map(|(x, y)| (x.to_string(), y.to_string()))
        .collect();
    assert_eq!(cycle(&edges).unwrap().len(), 4);
    let acyclic: BTreeSet<(String, String)> = [("a", "b"), ("b", "c")]
        .iter()
        .map(|(x, y)| (x.to_string(), y.to_string()))
        .collect();
    assert!(cycle(&acyclic).is_none());
}
