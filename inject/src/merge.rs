//! No silent merging of QEMU injections.
//!
//! QEMU's `mce` command writes a vCPU's bank registers. Written into a bank that still holds a
//! record the guest has not consumed (logged and cleared), a record is merged with it: QEMU sets
//! OVER and keeps one of the two (the new one, or only OVER on an uncorrected one still there),
//! so the guest logs one record where two were injected. A [`BankLedger`] follows, injection by
//! injection, which banks may still hold an unconsumed record, so that a merge is found before
//! anything is sent: refused, unless the injection asks for the overflow (`overflow`).
//!
//! When is a record consumed?
//! - A corrected record that is not broadcast, in a guest whose runner forces a poll after it
//!   (rasdrill's way: a changed `check_interval` makes every CPU poll and clear its banks before
//!   the write returns): at once.
//! - Anything else, nothing says when: a corrected record left to the kernel's timer poll (the
//!   naive way, or inside an overflow injection, which puts the timer poll off until its last
//!   record is sent and forces the poll then); an uncorrected one, raised as #MC and handled
//!   whenever the vCPU gets to it; a broadcast, which also fills bank 1 of every other CPU. A scenario's `wait` step, which waits for what the
//!   guest logged, is where the scenario says it was consumed ([`BankLedger::consumed`]).

use std::fmt;

use crate::hmp;
use crate::record::MceRecord;
use crate::request::{with_broadcast, Payload};
use crate::status::{OVER, UC};

/// The bank QEMU's `mce -b` fills, with VAL|UC, on every CPU but the record's own.
pub const BROADCAST_BANK: u32 = 1;

/// Which guest banks may hold a record QEMU wrote that the guest has not consumed. `L` labels
/// the records in the caller's words (a record's number, a scenario step).
#[derive(Debug, Clone)]
pub struct BankLedger<L> {
    vcpus: u32,
    polls_each: bool,
    held: Vec<Held<L>>,
}

#[derive(Debug, Clone)]
struct Held<L> {
    cpu: u32,
    bank: u32,
    by: L,
    raised: bool,
}

/// A record that lands in a bank while an earlier one may still be there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merge<L> {
    /// The record that lands.
    pub record: L,
    /// The record that may still be in the bank.
    pub onto: L,
    pub cpu: u32,
    pub bank: u32,
    /// The earlier record raised #MC (else it was a corrected one left to a poll).
    pub onto_raised: bool,
}

impl<L: fmt::Display> fmt::Display for Merge<L> {
    /// `record 1 may still be in CPU 0 bank 4 (...): QEMU would merge record 2 into it, ...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = if self.onto_raised {
            "it raised #MC, and nothing confirms that the guest has handled it"
        } else {
            "a corrected error stays in its bank until the kernel polls, and no poll is forced \
             between the two"
        };
        write!(
            f,
            "{} may still be in CPU {} bank {} ({why}): QEMU would merge {} into it, one record \
             with OVER set",
            self.onto, self.cpu, self.bank, self.record
        )
    }
}

impl<L: Clone> BankLedger<L> {
    /// An empty ledger for a guest of `vcpus` CPUs; `polls_each` when its runner forces a
    /// poll after every corrected record (not the naive way).
    pub fn new(vcpus: u32, polls_each: bool) -> BankLedger<L> {
        BankLedger {
            vcpus,
            polls_each,
            held: Vec::new(),
        }
    }

    /// Follows one injection, its records in order (`label(i)` names record `i` of it): the
    /// merges it makes on purpose (an overflow injection), or the first merge it would make
    /// by accident, which is refused. Other sources than QEMU's `mce` leave the banks alone.
    pub fn deliver(
        &mut self,
        payload: &Payload,
        label: impl Fn(usize) -> L,
    ) -> Result<Vec<Merge<L>>, Merge<L>> {
        let Payload::Qemu {
            records,
            broadcast,
            overflow,
        } = payload
        else {
            return Ok(Vec::new());
        };
        let mut merges = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let r = with_broadcast(r, *broadcast);
            let raised = hmp::raises_mc(&r);
            let mut banks = vec![(r.cpu, r.bank)];
            if hmp::broadcasts(&r) {
                banks.extend(
                    (0..self.vcpus)
                        .filter(|c| *c != r.cpu)
                        .map(|c| (c, BROADCAST_BANK)),
                );
            }
            for (cpu, bank) in banks {
                if let Some(pos) = self
                    .held
                    .iter()
                    .position(|h| (h.cpu, h.bank) == (cpu, bank))
                {
                    let held = self.held.remove(pos);
                    let merge = Merge {
                        record: label(i),
                        onto: held.by,
                        cpu,
                        bank,
                        onto_raised: held.raised,
                    };
                    if !*overflow {
                        return Err(merge);
                    }
                    merges.push(merge);
                }
                self.held.push(Held {
                    cpu,
                    bank,
                    by: label(i),
                    raised,
                });
            }
            // The runner forces a poll after each corrected record, except inside an overflow
            // injection, which forces it after its last record.
            if self.polls_each && !raised && !*overflow {
                self.polled();
            }
        }
        if self.polls_each && *overflow {
            self.polled();
        }
        Ok(merges)
    }

    /// The guest has consumed every record delivered so far (a scenario's `wait` step).
    pub fn consumed(&mut self) {
        self.held.clear();
    }

    /// A forced poll logs and clears every corrected record; a raised one is the #MC
    /// handler's, whenever it runs.
    fn polled(&mut self) {
        self.held.retain(|h| h.raised);
    }
}

/// What QEMU leaves in a bank when `new` is written over `held` (target/i386's
/// `cpu_x86_inject_mce`): OVER, and the new record, except that a corrected record never
/// replaces an uncorrected one, which only gets OVER.
pub fn overwritten(held: &MceRecord, new: &MceRecord) -> MceRecord {
    let kept = if new.status & UC == 0 && held.status & UC != 0 {
        held
    } else {
        new
    };
    MceRecord {
        status: kept.status | OVER,
        ..kept.clone()
    }
}

/// The records the guest logs for one injection, delivered as rasdrill's runner delivers it:
/// the merges an overflow injection makes on purpose applied as QEMU applies them. An
/// accidental merge is refused before delivery, so it is not modelled.
pub fn logged(payload: &Payload, vcpus: u32) -> Vec<MceRecord> {
    let records = payload.records();
    let Ok(merges) = BankLedger::new(vcpus, true).deliver(payload, |i| i) else {
        return records.to_vec();
    };
    let mut out: Vec<Option<MceRecord>> = records.iter().cloned().map(Some).collect();
    for m in merges {
        let held = out[m.onto].take();
        let new = &records[m.record];
        // A broadcast also lands in bank 1 of the other CPUs: the record there is lost.
        if (m.cpu, m.bank) == (new.cpu, new.bank) {
            if let Some(held) = held {
                out[m.record] = Some(overwritten(&held, new));
            }
        }
    }
    out.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Broadcast, MceRecord};
    use crate::status::{EN, UC, VAL};

    const CE: u64 = 0x9c7d_4100_9208_0813;
    const UE: u64 = VAL | UC | EN | 0x0813;

    fn rec(cpu: u32, bank: u32, status: u64) -> MceRecord {
        MceRecord {
            cpu,
            bank,
            status,
            ..Default::default()
        }
    }

    fn qemu(records: Vec<MceRecord>, overflow: bool) -> Payload {
        Payload::Qemu {
            records,
            broadcast: false,
            overflow,
        }
    }

    fn deliver(
        ledger: &mut BankLedger<usize>,
        p: &Payload,
    ) -> Result<Vec<Merge<usize>>, Merge<usize>> {
        ledger.deliver(p, |i| i + 1)
    }

    #[test]
    fn a_merge_says_where_and_why() {
        let m = Merge {
            record: "record 2",
            onto: "record 1",
            cpu: 0,
            bank: 4,
            onto_raised: false,
        };
        assert_eq!(
            m.to_string(),
            "record 1 may still be in CPU 0 bank 4 (a corrected error stays in its bank until the \
             kernel polls, and no poll is forced between the two): QEMU would merge record 2 into \
             it, one record with OVER set"
        );
    }

    #[test]
    fn two_corrected_errors_into_one_bank_merge_only_without_a_forced_poll() {
        let two = qemu(vec![rec(0, 4, CE), rec(0, 4, CE)], false);
        assert_eq!(deliver(&mut BankLedger::new(2, true), &two), Ok(vec![]));
        let merge = deliver(&mut BankLedger::new(2, false), &two).unwrap_err();
        assert_eq!(
            (merge.record, merge.onto, merge.cpu, merge.bank),
            (2, 1, 0, 4)
        );
        // Another bank, or another CPU, is no merge.
        let apart = qemu(vec![rec(0, 4, CE), rec(1, 4, CE), rec(0, 3, CE)], false);
        assert_eq!(deliver(&mut BankLedger::new(2, false), &apart), Ok(vec![]));
    }

    #[test]
    fn an_uncorrected_record_holds_its_bank_until_a_wait_even_with_forced_polls() {
        let mut ledger = BankLedger::new(2, true);
        assert_eq!(
            deliver(&mut ledger, &qemu(vec![rec(0, 4, UE)], false)),
            Ok(vec![])
        );
        let ce = qemu(vec![rec(0, 4, CE)], false);
        let merge = deliver(&mut ledger.clone(), &ce).unwrap_err();
        assert!(merge.onto_raised);
        ledger.consumed();
        assert_eq!(deliver(&mut ledger, &ce), Ok(vec![]));
    }

    #[test]
    fn a_broadcast_fills_bank_1_of_every_other_cpu() {
        let mut ledger = BankLedger::new(3, true);
        let b = Payload::Qemu {
            records: vec![rec(0, 4, CE)],
            broadcast: true,
            overflow: false,
        };
        assert_eq!(deliver(&mut ledger, &b), Ok(vec![]));
        let merge = deliver(&mut ledger.clone(), &qemu(vec![rec(2, 1, CE)], false)).unwrap_err();
        assert_eq!((merge.cpu, merge.bank), (2, BROADCAST_BANK));
        // Its own CPU's bank 1 is free; an mce-inject NMIBROADCAST record broadcasts too.
        assert_eq!(
            deliver(&mut ledger, &qemu(vec![rec(0, 1, CE)], false)),
            Ok(vec![])
        );
        let nmi = MceRecord {
            broadcast: Broadcast::Nmi,
            ..rec(0, 4, CE)
        };
        let merge = deliver(&mut ledger, &qemu(vec![nmi], false)).unwrap_err();
        assert_eq!((merge.cpu, merge.bank), (0, 4));
    }

    #[test]
    fn an_overflow_injection_merges_on_purpose_and_says_which() {
        let mut ledger = BankLedger::new(2, true);
        let two = qemu(vec![rec(0, 4, CE), rec(0, 4, CE), rec(1, 4, CE)], true);
        let merges = deliver(&mut ledger, &two).unwrap();
        assert_eq!(merges.len(), 1);
        assert_eq!((merges[0].record, merges[0].onto), (2, 1));
        // The poll forced after its last record consumed them all.
        assert_eq!(
            deliver(&mut ledger, &qemu(vec![rec(0, 4, CE)], false)),
            Ok(vec![])
        );
    }

    #[test]
    fn the_guest_logs_one_record_with_over_for_an_overflow() {
        let first = MceRecord {
            addr: 0x1000,
            ..rec(0, 4, CE)
        };
        let second = MceRecord {
            addr: 0x2000,
            ..rec(0, 4, CE)
        };
        let other = rec(1, 4, CE);
        let p = qemu(vec![first.clone(), second.clone(), other.clone()], true);
        let merged = MceRecord {
            status: CE | OVER,
            ..second.clone()
        };
        assert_eq!(logged(&p, 2), vec![merged, other.clone()]);
        // Without the overflow nothing merges: each record is polled before the next.
        let p = qemu(vec![first.clone(), second.clone(), other], false);
        assert_eq!(logged(&p, 2).len(), 3);
        // A corrected record on an uncorrected one only sets OVER on it.
        let ue = rec(0, 4, UE);
        assert_eq!(
            overwritten(&ue, &second),
            MceRecord {
                status: UE | OVER,
                ..ue
            }
        );
    }

    #[test]
    fn other_sources_leave_the_banks_alone() {
        let mut ledger = BankLedger::new(2, false);
        let debugfs = Payload::Debugfs {
            records: vec![rec(0, 4, CE), rec(0, 4, CE)],
            flags: crate::debugfs::InjectionType::Sw,
        };
        assert_eq!(deliver(&mut ledger, &debugfs), Ok(vec![]));
    }
}
