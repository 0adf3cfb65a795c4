//! The IDX format of MNIST and Fashion-MNIST: a big-endian header (magic, dimensions) and u8 data.

use rossl_api::{Error, Result};
use std::path::Path;

/// An IDX file of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimensions, outermost first.
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<u8>,
}

/// Parses IDX bytes (already gunzipped). Errors name `path` and what was wrong: a bad magic
/// number, a data type other than unsigned bytes, or fewer bytes than the header promises.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<IdxArray> {
    if bytes.len() < 4 {
        return Err(Error::data(
            path,
            format!(
                "truncated: {} bytes, too short for an IDX header",
                bytes.len()
            ),
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(Error::data(
            path,
            format!(
                "not an IDX file: the magic number starts with {:#04x} {:#04x}, expected 0x00 0x00",
                bytes[0], bytes[1]
            ),
        ));
    }
    if bytes[2] != 0x08 {
        return Err(Error::data(
            path,
            format!(
                "IDX data type {:#04x} is not supported (only unsigned bytes, 0x08)",
                bytes[2]
            ),
        ));
    }
    let ndims = bytes[3] as usize;
    let header = 4 + 4 * ndims;
    if ndims == 0 || bytes.len() < header {
        return Err(Error::data(
            path,
            format!(
                "truncated IDX header: {ndims} dimensions need {header} bytes, file has {}",
                bytes.len()
            ),
        ));
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|d| {
            let o = 4 + 4 * d;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let shape = || {
        dims.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(" x ")
    };
    let Some(expected) = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)) else {
        return Err(Error::data(
            path,
            format!("corrupt header: the dimensions {} overflow", shape()),
        ));
    };
    let available = bytes.len() - header;
    if available < expected {
        return Err(Error::data(
            path,
            format!(
                "truncated: the header promises {expected} values ({}), the file holds {available}",
                shape()
            ),
        ));
    }
    if available > expected {
        return Err(Error::data(
            path,
            format!(
                "corrupt: {} bytes after the {expected} values the header promises",
                available - expected
            ),
        ));
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Encodes an IDX array of unsigned bytes (used by tests and the embedded-data script's checks).
pub fn encode(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let p = Path::new("x.idx");
        let bytes = encode(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        let a = parse(p, &bytes).unwrap();
        assert_eq!(a.dims, vec![2, 3]);
        assert_eq!(a.data, vec![1, 2, 3, 4, 5, 6]);
        let err = parse(p, &bytes[..bytes.len() - 1]).unwrap_err().to_string();
        assert!(err.contains("x.idx") && err.contains("truncated"), "{err}");
        let mut bad = bytes.clone();
        bad[0] = 7;
        assert!(parse(p, &bad).unwrap_err().to_string().contains("magic"));
        bad = bytes.clone();
        bad[2] = 0x0d;
        assert!(parse(p, &bad)
            .unwrap_err()
            .to_string()
            .contains("data type"));
    }
}
