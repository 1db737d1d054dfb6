//! The machine-check record: what one error looks like to the kernel.

use serde::{Deserialize, Serialize};

use crate::status::{Severity, Vendor};

/// How mce-inject (the language and the legacy interface) delivers a record.
/// Reset for every record; see docs/kernel-interfaces.md, "The mce-inject input language".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Broadcast {
    /// Not said: mce-inject's default (an uncorrected record is broadcast, others are not).
    #[default]
    None,
    /// NOBROADCAST: never broadcast, even an uncorrected record.
    Off,
    Irq,
    Nmi,
}

/// Whether a record is raised as a #MC exception or found by the poller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Delivery {
    /// Not said: uncorrected records are raised, others polled.
    #[default]
    Auto,
    Poll,
    Exception,
}

/// The context a record claims to have been raised in (IN_IRQ / IN_PROC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Context {
    #[default]
    Random,
    Process,
    Irq,
}

/// One machine-check record. Unset fields are zero, as in the kernel's `struct mce`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MceRecord {
    pub cpu: u32,
    pub bank: u32,
    pub status: u64,
    pub mcgstatus: u64,
    pub mcgcap: u64,
    pub addr: u64,
    pub misc: u64,
    pub synd: u64,
    pub ipid: u64,
    pub tsc: u64,
    pub time: u64,
    pub socketid: u32,
    pub apicid: u32,
    pub cpuvendor: u32,
    pub cpuid: u32,
    pub cs: u8,
    pub ip: u64,
    pub broadcast: Broadcast,
    pub delivery: Delivery,
    pub context: Context,
    /// HOLD: keep this record for its CPU and inject it with the next one.
    pub hold: bool,
}

impl MceRecord {
    /// The record's severity on a CPU of `vendor` (see [`Severity::classify`]).
    pub fn severity(&self, vendor: Vendor) -> Severity {
        Severity::of(self.status, vendor)
    }
}
