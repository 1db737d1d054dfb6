//! Starting and driving a QEMU guest.
//!
//! - [`cmdline`]: the QEMU argv, from small pure functions;
//! - [`interrupt`]: the first SIGINT or SIGTERM as data, for programs that clean up after it;
//! - [`process`]: spawning QEMU in its own process group, killing and reaping it on every path;
//! - [`qmp`]: a QMP client (greeting, capabilities, commands, events, HMP);
//! - [`snapshot`]: saving a running guest to a file and starting fresh guests from it;
//! - [`initramfs`]: the guest's initramfs (cpio newc), with libraries and kernel modules;
//! - [`modules`]: kernel module dependencies (modules.dep or .modinfo);
//! - [`kernel`]: the kernel cache: find, fetch and unpack a Debian kernel.

pub mod cmdline;
pub mod debian;
mod decompress;
mod elf;
pub mod initramfs;
pub mod interrupt;
pub mod kernel;
pub mod modules;
pub mod pinned;
pub mod process;
pub mod qmp;
pub mod snapshot;
pub mod vm;
pub mod wait;
