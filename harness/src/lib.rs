//! The rasdrill engine behind the `rasdrill` binary. Public are the entry point ([`cli::run`]) and
//! what the integration tests and the fuzz targets drive directly; the rest is the crate's own.
pub mod agent;
pub mod cli;
mod cmd;
pub mod collect;
mod diff;
mod exit;
#[doc(hidden)]
pub mod fuzzing;
pub mod golden;
pub mod guest;
mod local;
mod normalize;
mod oracle;
mod profile;
mod randrec;
mod report;
mod run;
pub mod scenario;
mod sources;
mod stale;
pub mod target;
