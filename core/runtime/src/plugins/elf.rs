//! Reading one section of an ELF file (64-bit, little-endian), without loading it.

fn read<const N: usize>(bytes: &[u8], at: usize) -> Result<[u8; N], String> {
    bytes
        .get(at..at + N)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| "truncated ELF file".to_string())
}

fn u16_at(b: &[u8], at: usize) -> Result<usize, String> {
    Ok(u16::from_le_bytes(read(b, at)?) as usize)
}

fn u32_at(b: &[u8], at: usize) -> Result<usize, String> {
    Ok(u32::from_le_bytes(read(b, at)?) as usize)
}

fn u64_at(b: &[u8], at: usize) -> Result<usize, String> {
    usize::try_from(u64::from_le_bytes(read(b, at)?))
        .map_err(|_| "ELF offset too large".to_string())
}

/// The contents of section `name`, `None` when the file has no such section; an error when the
/// file is not a 64-bit little-endian ELF file.
pub fn section<'a>(bytes: &'a [u8], name: &str) -> Result<Option<&'a [u8]>, String> {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return Err("not a shared library (no ELF header)".into());
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        return Err("not a 64-bit little-endian ELF library".into());
    }
    // e_type: 3 is ET_DYN (shared objects, and position-independent executables)
    let kind = u16_at(bytes, 0x10)?;
    if kind != 3 {
        return Err(format!(
            "not a shared library (ELF type {kind}, a shared library has type 3)"
        ));
    }
    let shoff = u64_at(bytes, 0x28)?;
    let shentsize = u16_at(bytes, 0x3a)?;
    let shnum = u16_at(bytes, 0x3c)?;
    let shstrndx = u16_at(bytes, 0x3e)?;
    if shoff == 0 || shentsize < 64 || shstrndx >= shnum {
        return Err("the ELF file has no section table".into());
    }
    let header = |i: usize| shoff + i * shentsize;
    let names_offset = u64_at(bytes, header(shstrndx) + 24)?;
    for i in 0..shnum {
        let h = header(i);
        let name_at = names_offset + u32_at(bytes, h)?;
        let end = bytes[name_at.min(bytes.len())..]
            .iter()
            .position(|&c| c == 0)
            .map(|p| name_at + p);
        let Some(end) = end else { continue };
        if &bytes[name_at..end] == name.as_bytes() {
            let offset = u64_at(bytes, h + 24)?;
            let size = u64_at(bytes, h + 32)?;
            return bytes
                .get(offset..offset + size)
                .map(Some)
                .ok_or_else(|| "truncated ELF section".to_string());
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rejects_files_that_are_not_elf() {
        assert!(super::section(
            b"hello, this is not a library at all, not even close to one........",
            ".x"
        )
        .is_err());
        // this test's own executable is ELF and has a .text section but no .rossl_abi
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(super::section(&exe, ".text").unwrap().is_some());
        assert!(super::section(&exe, ".rossl_abi").unwrap().is_none());
    }
}
