//! The serial port the agent talks on, in raw mode: bytes pass unchanged both ways.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::sys::termios::{self, BaudRate, ControlFlags, FlushArg, SetArg, SpecialCharacterIndices};

/// Opens a tty for the protocol: no echo, no line editing, no CR/LF translation, blocking
/// reads of at least one byte. Input that arrived before (while the tty still echoed) is dropped.
pub fn open_raw(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(path)?;
    let mut attrs = termios::tcgetattr(&file)?;
    termios::cfmakeraw(&mut attrs);
    // Receive, and ignore modem lines: nothing drives DCD on a virtual port.
    attrs.control_flags |= ControlFlags::CREAD | ControlFlags::CLOCAL;
    attrs.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
    attrs.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
    termios::cfsetspeed(&mut attrs, BaudRate::B115200)?;
    termios::tcsetattr(&file, SetArg::TCSANOW, &attrs)?;
    termios::tcflush(&file, FlushArg::TCIFLUSH)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::pty::openpty;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;

    #[test]
    fn raw_mode_passes_bytes_unchanged_without_echo() {
        let pty = openpty(None, None).unwrap();
        let name = std::fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd())).unwrap();
        let mut port = open_raw(&name).unwrap();
        let mut host = File::from(pty.master);

        port.write_all(b"{\"a\":1}\n").unwrap();
        let mut got = [0u8; 8];
        host.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"{\"a\":1}\n", "no \\r added on output");

        host.write_all(b"x\ry\n").unwrap();
        let mut got = [0u8; 4];
        port.read_exact(&mut got).unwrap();
        assert_eq!(
            &got, b"x\ry\n",
            "no CR translation and no line buffering on input"
        );
        let attrs = termios::tcgetattr(&port).unwrap();
        assert!(!attrs.local_flags.contains(termios::LocalFlags::ECHO));
    }
}
