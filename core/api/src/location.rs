//! Where something was registered (a source file, line and module): shown in duplicate errors
//! and by `rossl plugins`.

use std::fmt;

/// Where a component was registered: shown in duplicate errors and by `rossl plugins`.
#[derive(Clone, Copy, Debug)]
pub struct Location {
    /// Source file of the registration.
    pub file: &'static str,
    /// Line of the registration.
    pub line: u32,
    /// Module path of the registration (its first segment is the crate).
    pub module: &'static str,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let krate = self.module.split("::").next().unwrap_or(self.module);
        write!(f, "{}:{} (crate {krate})", self.file, self.line)
    }
}
