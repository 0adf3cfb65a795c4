//! Reading whole data files with errors that say how to get the data.

use rossl_api::{Error, Result};
use std::io::Read;
use std::path::Path;

/// Reads `path` whole; gunzips it when it starts with the gzip magic bytes. A missing file is an
/// error naming the path and `how_to_get` it.
pub fn read_maybe_gzip(path: &Path, how_to_get: &str) -> Result<Vec<u8>> {
    gunzip_if_needed(path, read_file(path, how_to_get)?)
}

/// Reads `path` whole, as it is (for raw files whose first bytes may look like gzip's magic). A
/// missing file is an error naming the path and `how_to_get` it.
pub fn read_file(path: &Path, how_to_get: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::data(path, format!("file not found; {how_to_get}"))
        } else {
            Error::data(path, format!("cannot read: {e}"))
        }
    })
}

/// Gunzips `bytes` if they start with the gzip magic; errors name `path`.
pub fn gunzip_if_needed(path: &Path, bytes: Vec<u8>) -> Result<Vec<u8>> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| Error::data(path, format!("corrupt gzip data: {e}")))?;
        Ok(out)
    } else {
        Ok(bytes)
    }
}

/// The first of `candidates` (names inside `dir`) that exists, or the first one.
pub fn first_existing(dir: &Path, candidates: &[String]) -> std::path::PathBuf {
    candidates
        .iter()
        .map(|c| dir.join(c))
        .find(|p| p.is_file())
        .unwrap_or_else(|| dir.join(&candidates[0]))
}
