//! Machine-check error records, the mce-inject language, and the injectors that deliver them.

pub mod action;
pub mod record;

pub use action::Action;
pub use record::MceRecord;
