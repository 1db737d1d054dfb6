//! Tests against the real parts: QEMU from the host, the Debian kernel from the rasdrill cache
//! (`rasdrill kernel fetch` puts it there; these tests fail, not skip, without it), busybox
//! from busybox-static, apt and Debian's archive. One test binary, one module per subject.

mod common;

mod boot;
mod debian_packages;
mod kernel_cache;
mod launch_errors;
mod qmp;
mod snapshot;
