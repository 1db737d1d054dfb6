//! Machine-check error records, the mce-inject language, and the injectors that deliver them.

pub mod action;
pub mod mcelang;
pub mod record;
pub mod status;

pub use action::Action;
pub use record::MceRecord;
pub use status::{Severity, Vendor};
