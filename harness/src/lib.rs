//! The rasdrill engine: everything the `rasdrill` binary does, as a library.
pub mod agent;
pub mod cli;
pub mod cmd;
pub mod collect;
pub mod diff;
pub mod exit;
#[doc(hidden)]
pub mod fuzzing;
pub mod golden;
pub mod guest;
pub mod local;
pub mod normalize;
pub mod oracle;
pub mod profile;
pub mod report;
pub mod run;
pub mod scenario;
pub mod stale;
pub mod target;
