//! Machine-check error records, the mce-inject language, and the injectors that deliver them.
//!
//! A request becomes a plan in two steps that a dry run can separate: an [`injector::Injector`]
//! describes it as [`Action`]s (pure), [`preflight`] checks the plan against the machine, and
//! [`injector::perform`] writes it. [`preflight::debugfs_plan`] and friends do the first two at once.

pub mod action;
pub mod aer;
pub mod debugfs;
pub mod edac;
pub mod einj;
pub mod excerpt;
pub mod guard;
pub mod hmp;
pub mod hwpoison;
pub mod injector;
pub mod lock;
pub mod mcelang;
pub mod merge;
pub mod preflight;
pub mod record;
pub mod request;
pub mod standin;
pub mod status;

pub use action::Action;
pub use injector::{perform, InjectError, Injector, Outcome, PerformError};
pub use record::MceRecord;
pub use request::{Payload, Place, Request, Via};
pub use status::{Severity, Vendor};
