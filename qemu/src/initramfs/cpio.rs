//! The cpio "newc" format, the one the kernel unpacks into its initial rootfs
//! (Documentation/driver-api/early-userspace/buffer-format.rst).
//!
//! Each entry is a 110-byte ASCII header ("070701" and 13 eight-digit hex fields), the path
//! with its NUL, padding to a multiple of 4, then the data, padded to a multiple of 4. The
//! archive ends with an entry named `TRAILER!!!`.

use std::io::{self, Write};

const MAGIC: &[u8; 6] = b"070701";
const HEADER_LEN: usize = 110;
/// The name of the entry that ends an archive.
pub const TRAILER: &str = "TRAILER!!!";

/// File type bits of `st_mode`, as the kernel reads them from the header.
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFMT: u32 = 0o170000;

/// One archive member as written to or read from the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpioEntry {
    /// Path inside the archive, without a leading `/` (e.g. `dev/console`).
    pub name: String,
    /// Type and permission bits (`S_IFREG | 0o755`).
    pub mode: u32,
    /// Device number of a character or block device node.
    pub rdev_major: u32,
    pub rdev_minor: u32,
    /// File contents, or a symlink's target.
    pub data: Vec<u8>,
}

/// Writes newc entries with increasing inode numbers, owner root and mtime 0 (so the same
/// inputs always give the same bytes).
pub struct CpioWriter<W: Write> {
    out: W,
    written: u64,
    next_ino: u32,
}

impl<W: Write> CpioWriter<W> {
    pub fn new(out: W) -> Self {
        CpioWriter {
            out,
            written: 0,
            next_ino: 1,
        }
    }

    /// Appends one member.
    pub fn write_entry(&mut self, entry: &CpioEntry) -> io::Result<()> {
        let ino = self.next_ino;
        self.next_ino += 1;
        let nlink = if entry.mode & S_IFMT == S_IFDIR { 2 } else { 1 };
        self.write_raw(
            ino,
            entry.mode,
            nlink,
            &entry.name,
            entry.rdev_major,
            entry.rdev_minor,
            &entry.data,
        )
    }

    /// Writes the trailer and returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.write_raw(0, 0, 1, TRAILER, 0, 0, &[])?;
        self.out.flush()?;
        Ok(self.out)
    }

    #[allow(clippy::too_many_arguments)]
    fn write_raw(
        &mut self,
        ino: u32,
        mode: u32,
        nlink: u32,
        name: &str,
        rdev_major: u32,
        rdev_minor: u32,
        data: &[u8],
    ) -> io::Result<()> {
        let filesize = u32::try_from(data.len()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name}: larger than the 4 GiB a cpio newc entry can hold"),
            )
        })?;
        let namesize = name.len() as u32 + 1;
        let fields = [
            ino, mode, 0, 0, nlink, 0, filesize, 0, 0, rdev_major, rdev_minor, namesize, 0,
        ];
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(MAGIC);
        for field in fields {
            header.extend_from_slice(format!("{field:08x}").as_bytes());
        }
        debug_assert_eq!(header.len(), HEADER_LEN);
        self.emit(&header)?;
        self.emit(name.as_bytes())?;
        self.emit(&[0])?;
        self.pad()?;
        self.emit(data)?;
        self.pad()
    }

    fn emit(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let fill = (4 - (self.written % 4) as usize) % 4;
        self.emit(&[0; 3][..fill])
    }
}

/// Why bytes are not a valid newc archive.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CpioReadError {
    #[error("cpio: entry at byte {offset} has magic {found:?}, expected \"070701\" (newc)")]
    BadMagic { offset: usize, found: String },
    #[error("cpio: header field {field} at byte {offset} is not 8 hex digits")]
    BadField { offset: usize, field: usize },
    #[error("cpio: entry at byte {offset} runs past the end of the archive")]
    Truncated { offset: usize },
    #[error("cpio: entry name at byte {offset} is not NUL-terminated UTF-8")]
    BadName { offset: usize },
    #[error("cpio: padding at byte {offset} is not zero or not 4-byte aligned")]
    BadPadding { offset: usize },
    #[error("cpio: no TRAILER!!! entry")]
    NoTrailer,
}

/// Parses a newc archive up to its trailer, checking the magic, the field syntax, the NUL
/// after each name and that every name and data block ends on a 4-byte boundary with zero
/// padding. Used by tests and by anyone who wants to see what an image holds.
pub fn read_newc(bytes: &[u8]) -> Result<Vec<CpioEntry>, CpioReadError> {
    let mut entries = Vec::new();
    let mut pos = 0;
    loop {
        let offset = pos;
        if pos >= bytes.len() {
            return Err(CpioReadError::NoTrailer);
        }
        let header = bytes
            .get(pos..pos + HEADER_LEN)
            .ok_or(CpioReadError::Truncated { offset })?;
        if &header[..6] != MAGIC {
            let found = String::from_utf8_lossy(&header[..6]).into_owned();
            return Err(CpioReadError::BadMagic { offset, found });
        }
        let mut fields = [0u32; 13];
        for (i, field) in fields.iter_mut().enumerate() {
            let text = &header[6 + 8 * i..14 + 8 * i];
            *field = std::str::from_utf8(text)
                .ok()
                .and_then(|t| u32::from_str_radix(t, 16).ok())
                .ok_or(CpioReadError::BadField { offset, field: i })?;
        }
        let [_ino, mode, _uid, _gid, _nlink, _mtime, filesize, _maj, _min, rdev_major, rdev_minor, namesize, _check] =
            fields;
        pos += HEADER_LEN;
        let name_bytes = bytes
            .get(pos..pos + namesize as usize)
            .ok_or(CpioReadError::Truncated { offset })?;
        let (last, name) = name_bytes
            .split_last()
            .ok_or(CpioReadError::BadName { offset })?;
        if *last != 0 {
            return Err(CpioReadError::BadName { offset });
        }
        let name = std::str::from_utf8(name)
            .map_err(|_| CpioReadError::BadName { offset })?
            .to_owned();
        pos = skip_padding(bytes, pos + namesize as usize)?;
        let data = bytes
            .get(pos..pos + filesize as usize)
            .ok_or(CpioReadError::Truncated { offset })?
            .to_vec();
        pos += filesize as usize;
        if name == TRAILER {
            return Ok(entries);
        }
        pos = skip_padding(bytes, pos)?;
        entries.push(CpioEntry {
            name,
            mode,
            rdev_major,
            rdev_minor,
            data,
        });
    }
}

fn skip_padding(bytes: &[u8], pos: usize) -> Result<usize, CpioReadError> {
    let end = pos.div_ceil(4) * 4;
    match bytes.get(pos..end) {
        Some(fill) if fill.iter().all(|&b| b == 0) => Ok(end),
        Some(_) => Err(CpioReadError::BadPadding { offset: pos }),
        None => Err(CpioReadError::Truncated { offset: pos }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, mode: u32, data: &[u8]) -> CpioEntry {
        CpioEntry {
            name: name.into(),
            mode,
            rdev_major: 0,
            rdev_minor: 0,
            data: data.to_vec(),
        }
    }

    #[test]
    fn header_fields_and_padding_are_exactly_newc() {
        let mut w = CpioWriter::new(Vec::new());
        w.write_entry(&entry("init", S_IFREG | 0o755, b"hello"))
            .unwrap();
        let bytes = w.finish().unwrap();
        let expected_header = concat!(
            "070701", "00000001", "000081ed", "00000000", "00000000", "00000001", "00000000",
            "00000005", "00000000", "00000000", "00000000", "00000000", "00000005", "00000000"
        );
        assert_eq!(&bytes[..110], expected_header.as_bytes());
        // 110 + "init\0" = 115, padded to 116; "hello" ends at 121, padded to 124.
        assert_eq!(&bytes[110..116], b"init\0\0");
        assert_eq!(&bytes[116..124], b"hello\0\0\0");
        assert_eq!(&bytes[124..130], b"070701");
        assert_eq!(&bytes[124 + 110..124 + 110 + 11], b"TRAILER!!!\0");
        assert_eq!(bytes.len() % 4, 0);
    }

    #[test]
    fn round_trip_keeps_every_kind_of_entry() {
        let written = vec![
            entry("dev", S_IFDIR | 0o755, b""),
            CpioEntry {
                name: "dev/console".into(),
                mode: S_IFCHR | 0o600,
                rdev_major: 5,
                rdev_minor: 1,
                data: vec![],
            },
            entry("bin", S_IFDIR | 0o755, b""),
            entry("bin/sh", S_IFLNK | 0o777, b"busybox"),
            entry(
                "bin/busybox",
                S_IFREG | 0o755,
                &[0x7f, b'E', b'L', b'F', 1, 2, 3],
            ),
            entry("empty", S_IFREG | 0o644, b""),
        ];
        let mut w = CpioWriter::new(Vec::new());
        for e in &written {
            w.write_entry(e).unwrap();
        }
        let bytes = w.finish().unwrap();
        assert_eq!(read_newc(&bytes).unwrap(), written);
    }

    #[test]
    fn reader_rejects_a_missing_trailer_and_a_wrong_magic() {
        let mut w = CpioWriter::new(Vec::new());
        w.write_entry(&entry("a", S_IFREG | 0o644, b"x")).unwrap();
        let bytes = w.finish().unwrap();
        let cut = bytes.len() - 124; // drop the trailer entry (110 + 11 + 3 padding)
        assert_eq!(read_newc(&bytes[..cut]), Err(CpioReadError::NoTrailer));
        let mut odc = bytes.clone();
        odc[..6].copy_from_slice(b"070707");
        assert!(matches!(
            read_newc(&odc),
            Err(CpioReadError::BadMagic { offset: 0, .. })
        ));
    }
}
