//! The rasdrill engine: everything the `rasdrill` binary does, as a library.
pub mod profile;
pub mod agent;
pub mod scenario;
pub mod normalize;
pub mod golden;
pub mod report;
pub mod cli;
pub mod cmd;
pub mod exit;
