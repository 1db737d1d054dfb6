//! Just enough ELF64 (little-endian, x86-64) to read one section by name: the `.modinfo`
//! of a kernel module. A dependency like `object` or `goblin` would be larger than this.

/// Returns the bytes of section `name`, `Ok(None)` when the file has no such section, and
/// `Err` with a one-line reason when the bytes are not a 64-bit little-endian ELF file.
pub fn section<'a>(elf: &'a [u8], name: &str) -> Result<Option<&'a [u8]>, String> {
    if elf.get(..4) != Some(b"\x7fELF") {
        return Err("not an ELF file (no \\x7fELF magic)".into());
    }
    if elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let shoff = read_u64(elf, 0x28)? as usize;
    let shentsize = read_u16(elf, 0x3a)? as usize;
    let shnum = read_u16(elf, 0x3c)? as usize;
    let shstrndx = read_u16(elf, 0x3e)? as usize;
    let header = |i: usize| -> Result<(u32, usize, usize), String> {
        let at = shoff + i * shentsize;
        Ok((
            read_u32(elf, at)?,
            read_u64(elf, at + 0x18)? as usize,
            read_u64(elf, at + 0x20)? as usize,
        ))
    };
    let (_, strtab_off, strtab_len) = header(shstrndx)?;
    let strtab = slice(elf, strtab_off, strtab_len)?;
    for i in 0..shnum {
        let (name_off, off, len) = header(i)?;
        let rest = strtab
            .get(name_off as usize..)
            .ok_or("section name offset outside .shstrtab")?;
        let this = rest.split(|&b| b == 0).next().unwrap_or_default();
        if this == name.as_bytes() {
            return slice(elf, off, len).map(Some);
        }
    }
    Ok(None)
}

fn slice(elf: &[u8], off: usize, len: usize) -> Result<&[u8], String> {
    off.checked_add(len)
        .and_then(|end| elf.get(off..end))
        .ok_or_else(|| "section runs past the end of the file".into())
}

fn read_u16(b: &[u8], at: usize) -> Result<u16, String> {
    Ok(u16::from_le_bytes(
        slice(b, at, 2)?.try_into().expect("2 bytes"),
    ))
}

fn read_u32(b: &[u8], at: usize) -> Result<u32, String> {
    Ok(u32::from_le_bytes(
        slice(b, at, 4)?.try_into().expect("4 bytes"),
    ))
}

fn read_u64(b: &[u8], at: usize) -> Result<u64, String> {
    Ok(u64::from_le_bytes(
        slice(b, at, 8)?.try_into().expect("8 bytes"),
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a minimal ELF64 relocatable file with the given sections (what a `.ko` is).
    pub(crate) fn tiny_elf(sections: &[(&str, &[u8])]) -> Vec<u8> {
        let mut shstrtab = vec![0u8];
        let mut name_offsets = Vec::new();
        for (name, _) in sections {
            name_offsets.push(shstrtab.len() as u32);
            shstrtab.extend_from_slice(name.as_bytes());
            shstrtab.push(0);
        }
        let shstrtab_name = shstrtab.len() as u32;
        shstrtab.extend_from_slice(b".shstrtab\0");

        let mut out = vec![0u8; 64];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2; // ELFCLASS64
        out[5] = 1; // little-endian
        out[6] = 1;
        let mut placed = Vec::new();
        for (_, data) in sections {
            placed.push((out.len(), data.len()));
            out.extend_from_slice(data);
        }
        let strtab_at = out.len();
        out.extend_from_slice(&shstrtab);
        while out.len() % 8 != 0 {
            out.push(0);
        }
        let shoff = out.len();
        let mut headers = vec![[0u8; 64]]; // SHN_UNDEF
        for (i, (at, len)) in placed.iter().enumerate() {
            headers.push(section_header(name_offsets[i], *at, *len));
        }
        headers.push(section_header(shstrtab_name, strtab_at, shstrtab.len()));
        for h in &headers {
            out.extend_from_slice(h);
        }
        out[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        out[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        out[0x3c..0x3e].copy_from_slice(&(headers.len() as u16).to_le_bytes());
        out[0x3e..0x40].copy_from_slice(&((headers.len() - 1) as u16).to_le_bytes());
        out
    }

    fn section_header(name: u32, at: usize, len: usize) -> [u8; 64] {
        let mut h = [0u8; 64];
        h[..4].copy_from_slice(&name.to_le_bytes());
        h[4..8].copy_from_slice(&1u32.to_le_bytes()); // SHT_PROGBITS
        h[0x18..0x20].copy_from_slice(&(at as u64).to_le_bytes());
        h[0x20..0x28].copy_from_slice(&(len as u64).to_le_bytes());
        h
    }

    #[test]
    fn finds_a_section_by_name_and_reports_a_missing_one() {
        let elf = tiny_elf(&[
            (".text", b"\x90\x90"),
            (".modinfo", b"depends=a,b\0name=c\0"),
        ]);
        assert_eq!(
            section(&elf, ".modinfo").unwrap(),
            Some(&b"depends=a,b\0name=c\0"[..])
        );
        assert_eq!(section(&elf, ".text").unwrap(), Some(&b"\x90\x90"[..]));
        assert_eq!(section(&elf, ".data").unwrap(), None);
    }

    #[test]
    fn rejects_bytes_that_are_not_elf64() {
        assert!(section(b"#!/bin/sh\n", ".modinfo")
            .unwrap_err()
            .contains("not an ELF"));
        let mut elf32 = tiny_elf(&[]);
        elf32[4] = 1;
        assert!(section(&elf32, ".modinfo").unwrap_err().contains("64-bit"));
    }
}
