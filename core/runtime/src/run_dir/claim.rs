//! An exclusive claim on training a run folder, so that two processes (two terminals, two study
//! tasks, a student's teacher and the same configuration run on its own) never train one folder
//! at once. The claim is a file beside the folder, `.<folder>.training`, holding the process id
//! and host; it is removed when the claim is dropped, and a claim whose process is gone is stale
//! and taken over.

use super::RunDir;
use crate::{Error, Result};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

/// A held claim; released (its file removed) when dropped.
#[derive(Debug)]
pub struct TrainingClaim {
    path: PathBuf,
}

impl Drop for TrainingClaim {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// This machine's name.
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// Whether the claim text `held` (`pid host`) names a live process other than this one.
fn held_by_another(held: &str) -> bool {
    let mut parts = held.split_whitespace();
    let (Some(pid), host_name) = (
        parts.next().and_then(|p| p.parse::<u32>().ok()),
        parts.next(),
    ) else {
        return false;
    };
    let same_host = host_name.unwrap_or_default() == host();
    // on another host the process cannot be checked: the claim stands
    !same_host || (pid != std::process::id() && PathBuf::from(format!("/proc/{pid}")).exists())
}

impl RunDir {
    /// The claim file beside the folder.
    fn claim_path(&self) -> PathBuf {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.path.with_file_name(format!(".{name}.training"))
    }

    /// Claims the folder for training: `Ok(None)` while a live process holds it, with
    /// [`RunDir::claim_holder`] saying which.
    pub fn try_claim_training(&self) -> Result<Option<TrainingClaim>> {
        let path = self.claim_path();
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
        }
        for _ in 0..2 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    let text = format!("{} {}\n", std::process::id(), host());
                    file.write_all(text.as_bytes())
                        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
                    return Ok(Some(TrainingClaim { path }));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let held = std::fs::read_to_string(&path).unwrap_or_default();
                    if held_by_another(&held) {
                        return Ok(None);
                    }
                    // stale: its process is gone
                    let _ = std::fs::remove_file(&path);
                }
                Err(e) => return Err(Error::io(format!("creating {}", path.display()), e)),
            }
        }
        Ok(None)
    }

    /// Who holds the training claim, as its file says (`pid host`), for messages.
    pub fn claim_holder(&self) -> String {
        let path = self.claim_path();
        let held = std::fs::read_to_string(&path).unwrap_or_default();
        format!("process {} ({})", held.trim(), path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_claim_refuses_a_stale_one_is_taken_over_and_a_dropped_one_is_gone() {
        let root = std::env::temp_dir().join(format!("rossl-claim-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let run = RunDir {
            path: root.join("m-0123456789"),
        };
        // process 1 is always alive
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(run.claim_path(), format!("1 {}\n", host())).unwrap();
        assert!(run.try_claim_training().unwrap().is_none());
        assert!(run.claim_holder().contains("process 1 "));
        // no process has an id above the kernel's limit
        std::fs::write(run.claim_path(), format!("4294967295 {}\n", host())).unwrap();
        let claim = run
            .try_claim_training()
            .unwrap()
            .expect("a stale claim is taken over");
        let held = std::fs::read_to_string(run.claim_path()).unwrap();
        assert!(
            held.starts_with(&format!("{} ", std::process::id())),
            "{held}"
        );
        drop(claim);
        assert!(!run.claim_path().exists());
        let _ = std::fs::remove_dir_all(&root);
    }
}
