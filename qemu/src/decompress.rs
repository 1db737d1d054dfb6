//! Decompression through the standard command-line tools. `xz` is part of every Debian system
//! (xz-utils is Priority: required and dpkg itself needs it), so no compression crate is needed
//! for the formats Debian kernels use; gzip and zstd are handled the same way.

use std::io::{self, Read, Write};
use std::process::{Command, Stdio};

/// A compression format recognised by its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Xz,
    Gzip,
    Zstd,
}

impl Format {
    /// The format whose magic starts `data`, if it is one we can decompress.
    pub fn from_magic(data: &[u8]) -> Option<Format> {
        if data.starts_with(b"\xfd7zXZ\x00") {
            Some(Format::Xz)
        } else if data.starts_with(b"\x1f\x8b") {
            Some(Format::Gzip)
        } else if data.starts_with(b"\x28\xb5\x2f\xfd") {
            Some(Format::Zstd)
        } else {
            None
        }
    }

    /// The tool and its arguments for "decompress the first stream on stdin to stdout".
    fn command(self) -> (&'static str, &'static [&'static str]) {
        match self {
            // --single-stream: the kernel appends its uncompressed size after the stream.
            Format::Xz => ("xz", &["-dc", "--single-stream"]),
            Format::Gzip => ("gzip", &["-dc"]),
            Format::Zstd => ("zstd", &["-dcq"]),
        }
    }
}

/// Pipes `input` through the tool for `format` and returns what it wrote.
pub fn decompress(format: Format, input: &[u8]) -> io::Result<Vec<u8>> {
    let (tool, args) = format.command();
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot run `{tool}`: {e} (install it, e.g. apt-get install xz-utils zstd)"
                ),
            )
        })?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let mut output = Vec::new();
    // Feed stdin on a scoped thread while this one drains stdout, so neither pipe can fill up.
    std::thread::scope(|s| -> io::Result<()> {
        let feeder = s.spawn(move || stdin.write_all(input));
        child
            .stdout
            .take()
            .expect("piped stdout")
            .read_to_end(&mut output)?;
        // A broken pipe here only means the tool stopped reading early; its exit status says why.
        let _ = feeder.join().expect("stdin feeder thread panicked");
        Ok(())
    })?;
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("piped stderr")
        .read_to_string(&mut stderr)?;
    let status = child.wait()?;
    if !status.success() {
        return Err(io::Error::other(format!(
            "`{tool} {}` failed ({status}): {}",
            args.join(" "),
            stderr.trim()
        )));
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compress(tool: &str, data: &[u8]) -> Vec<u8> {
        let mut child = Command::new(tool)
            .arg("-c")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect(tool);
        child.stdin.take().unwrap().write_all(data).unwrap();
        child.wait_with_output().unwrap().stdout
    }

    #[test]
    fn round_trips_xz_with_trailing_bytes_and_gzip() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut xz = compress("xz", &data);
        assert_eq!(Format::from_magic(&xz), Some(Format::Xz));
        xz.extend_from_slice(&(data.len() as u32).to_le_bytes());
        assert_eq!(decompress(Format::Xz, &xz).unwrap(), data);
        let gz = compress("gzip", &data);
        assert_eq!(Format::from_magic(&gz), Some(Format::Gzip));
        assert_eq!(decompress(Format::Gzip, &gz).unwrap(), data);
    }

    #[test]
    fn corrupt_input_is_an_error_naming_the_tool() {
        let err = decompress(Format::Xz, b"\xfd7zXZ\x00garbage").unwrap_err();
        assert!(
            err.to_string().contains("`xz -dc --single-stream` failed"),
            "{err}"
        );
    }
}
