//! The files a run folder owns, which no command may overwrite from outside the run: an export,
//! a picture or a report written over a run's checkpoint or results would lose or falsify it.

use super::files;
use crate::{Error, Result};
use std::path::Path;

/// Whether `folder` is a run folder: it holds a run's configuration or checkpoint.
pub fn is_run_folder(folder: &Path) -> bool {
    folder.join(files::CONFIG).is_file() || folder.join(files::CHECKPOINT).is_file()
}

/// Whether `name` is the name of a file that a run folder owns (its configuration, metrics,
/// checkpoint, summary, results and probe heads, and their temporary files).
pub fn is_run_file_name(name: &str) -> bool {
    let name = name.strip_prefix('.').unwrap_or(name);
    let name = name.strip_suffix(".tmp").unwrap_or(name);
    files::OWNED.contains(&name) || files::is_probe(name)
}

/// Refuses `path` as the output of a command (`what`, e.g. "the export") when it names a file a
/// run folder owns, or a run folder itself: those files are the run's record.
pub fn refuse_run_file(path: &Path, what: &str) -> Result<()> {
    if path.is_dir() && (is_run_folder(path) || super::run_of_evaluation(path).is_some()) {
        return Err(Error::data(
            path,
            format!("{what} cannot be written here: this is a run folder, not a file"),
        ));
    }
    let folder = match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
        None => return Ok(()),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let owned_folder = is_run_folder(folder) || super::run_of_evaluation(folder).is_some();
    if owned_folder && is_run_file_name(&name) {
        return Err(Error::data(
            path,
            format!(
                "{what} would overwrite the run's own `{name}`; a finished run is never overwritten: choose another file name or folder"
            ),
        ));
    }
    Ok(())
}
