//! The `rasdrill` command line, run as a user runs it, against directory trees that reproduce
//! the kernel's files. One test binary (one link step), a module per area.

mod diff;
mod guard;
mod guest;
mod guest_reliable;
mod help;
mod inject_debugfs;
mod inject_edac;
mod inject_sources;
mod interrupt;
mod lock;
mod rasdaemon;
mod records;
mod reliable;
mod run;
mod support;
