//! A run folder made for a new run, taken back when the run fails before its first checkpoint:
//! a failed start leaves neither a half folder nor a `latest` link pointing at one.

use super::{files, RunDir, LATEST};
use crate::Result;
use std::path::PathBuf;

/// A run folder created for a fresh run. Dropped before [`FreshRun::keep`] while the folder holds
/// no checkpoint (the run failed to start or in its first pass), it removes the folder (when it
/// made it) and points `latest` back where it pointed before.
#[derive(Debug)]
pub struct FreshRun {
    dir: RunDir,
    made_folder: bool,
    moved_latest: Option<Option<PathBuf>>,
    kept: bool,
}

impl RunDir {
    /// Creates the folder for a fresh run (and its parents) and, with `mark_latest`, points
    /// `latest` at it; both are undone if the returned guard is dropped before the run wrote a
    /// checkpoint or was kept.
    pub fn create_fresh(&self, mark_latest: bool) -> Result<FreshRun> {
        let made_folder = !self.path.exists();
        self.create()?;
        let mut guard = FreshRun {
            dir: self.clone(),
            made_folder,
            moved_latest: None,
            kept: false,
        };
        if mark_latest {
            let before = self
                .path
                .parent()
                .and_then(|p| std::fs::read_link(p.join(LATEST)).ok());
            self.mark_latest()?;
            guard.moved_latest = Some(before);
        }
        Ok(guard)
    }
}

impl FreshRun {
    /// Keeps the folder and the link whatever happens next.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for FreshRun {
    fn drop(&mut self) {
        if self.kept || self.dir.file(files::CHECKPOINT).exists() {
            return;
        }
        if self.made_folder {
            let _ = std::fs::remove_dir_all(self.dir.path());
        }
        let Some(before) = self.moved_latest.take() else {
            return;
        };
        let Some(parent) = self.dir.path().parent() else {
            return;
        };
        let link = parent.join(LATEST);
        let _ = std::fs::remove_file(&link);
        if let Some(target) = before {
            let _ = std::os::unix::fs::symlink(target, &link);
        }
    }
}
