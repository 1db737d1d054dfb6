//! Seeded random machine-check records for `rasdrill fuzz`: valid corrected errors, the kind
//! QEMU's `mce` command delivers without a panic, and their shrinking towards a minimal record.
//!
//! The generator is a splitmix64 of its own: the same seed gives the same records on every
//! machine and every release, which a crate's generator does not promise.

use std::fmt;

use rasdrill_inject::status::{StatusBuilder, ADDRV, EN, MISCV, OVER, VAL};
use rasdrill_inject::MceRecord;

/// The banks records go to: those the decoders of the profiles name (AMD family 15h has
/// banks 0 to 6; Intel's are numbered alike). Higher banks only test "no decode".
pub const BANKS: u32 = 7;
/// AMD's extended error code is 5 bits (status bits 20:16): a random model code keeps to it,
/// so the decoders' tables are exercised rather than their "unknown" branch.
const MODEL_CODES: u64 = 32;

/// splitmix64 (Steele, Lea, Flood 2014): small, fast, and fully determined by its seed.
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (n > 0); the slight modulo bias does not matter here.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }
}

/// The MCA error-code classes the decoders tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeClass {
    MemoryController,
    Cache,
    Tlb,
    Bus,
}

const CLASSES: [CodeClass; 4] = [
    CodeClass::MemoryController,
    CodeClass::Cache,
    CodeClass::Tlb,
    CodeClass::Bus,
];

/// A random architectural MCA error code of `class`, with field values the SDM defines.
fn mca_code(class: CodeClass, rng: &mut SplitMix) -> u16 {
    let mut f = |n: u64| rng.below(n) as u16;
    match class {
        // 0000 0000 1MMM CCCC: MMM 0..=4 defined, channel 0..=15 (15: not specified).
        CodeClass::MemoryController => 0x0080 | f(5) << 4 | f(16),
        // 0000 0001 RRRR TTLL: RRRR 0..=8, TT 0..=2, LL 0..=3.
        CodeClass::Cache => 0x0100 | f(9) << 4 | f(3) << 2 | f(4),
        // 0000 0000 0001 TTLL.
        CodeClass::Tlb => 0x0010 | f(3) << 2 | f(4),
        // 0000 1PPT RRRR IILL: PP 0..=3, T 0..=1, RRRR 0..=8, II 0..=3 (2 reserved: skipped), LL.
        CodeClass::Bus => {
            let ii = [0, 1, 3][f(3) as usize];
            0x0800 | f(4) << 9 | f(2) << 8 | f(9) << 4 | ii << 2 | f(4)
        }
    }
}

/// `count` corrected-error records on a machine of `vcpus` CPUs, fully determined by `seed`.
/// Each has VAL and EN, UC and PCC clear, an architectural error code of one of the four
/// classes, a small model code, and at random OVER, MISCV (with a MISC value) and ADDRV
/// (with a cache-line aligned address).
pub fn generate(seed: u64, count: usize, vcpus: u32) -> Vec<MceRecord> {
    let mut rng = SplitMix::new(seed);
    (0..count)
        .map(|_| {
            let class = CLASSES[rng.below(CLASSES.len() as u64) as usize];
            let mut status = StatusBuilder::new()
                .set(VAL | EN)
                .mca_code(mca_code(class, &mut rng))
                .model_code(rng.below(MODEL_CODES) as u16);
            let mut record = MceRecord {
                cpu: rng.below(u64::from(vcpus)) as u32,
                bank: rng.below(u64::from(BANKS)) as u32,
                ..MceRecord::default()
            };
            if rng.coin() {
                status = status.set(OVER);
            }
            if rng.coin() {
                status = status.set(MISCV);
                record.misc = rng.next_u64();
            }
            if rng.coin() {
                status = status.set(ADDRV);
                // Physical addresses fit in 52 bits; cache-line aligned as a DRAM error's are.
                record.addr = rng.next_u64() & 0x000f_ffff_ffff_ffc0;
            }
            record.status = status.build();
            record
        })
        .collect()
}

/// The records one step simpler than `r`: each drops one optional part (OVER, MISCV and its
/// MISC, ADDRV and its address, the model code, a non-zero CPU or bank), simplest first.
pub fn simpler(r: &MceRecord) -> Vec<MceRecord> {
    let mut out = Vec::new();
    let mut push = |f: &dyn Fn(&mut MceRecord)| {
        let mut s = r.clone();
        f(&mut s);
        if s != *r {
            out.push(s);
        }
    };
    push(&|s| s.status &= !OVER);
    push(&|s| {
        s.status &= !MISCV;
        s.misc = 0;
    });
    push(&|s| {
        s.status &= !ADDRV;
        s.addr = 0;
    });
    push(&|s| s.status &= !0xffff_0000);
    push(&|s| s.cpu = 0);
    out
}

/// A record on one line, as `rasdrill fuzz --list` prints it.
pub struct Line<'a>(pub &'a MceRecord);

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        write!(f, "cpu {} bank {} status {:#018x}", r.cpu, r.bank, r.status)?;
        if r.status & ADDRV != 0 {
            write!(f, " addr {:#x}", r.addr)?;
        }
        if r.status & MISCV != 0 {
            write!(f, " misc {:#x}", r.misc)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rasdrill_inject::status::{McaCode, AMD_DEFERRED, PCC, UC};
    use rasdrill_inject::{Severity, Vendor};

    #[test]
    fn the_same_seed_gives_the_same_records_and_another_seed_others() {
        assert_eq!(generate(1, 50, 2), generate(1, 50, 2));
        assert_ne!(generate(1, 50, 2), generate(2, 50, 2));
        // A longer run starts with the shorter one's records.
        assert_eq!(generate(7, 10, 2)[..], generate(7, 20, 2)[..10]);
    }

    #[test]
    fn every_record_is_a_corrected_error_the_qemu_path_carries() {
        let records = generate(3, 2000, 2);
        let mut classes = std::collections::BTreeSet::new();
        for r in &records {
            let s = r.status;
            assert_eq!(s & (VAL | EN), VAL | EN, "{}", Line(r));
            assert_eq!(s & (UC | PCC | AMD_DEFERRED), 0, "{}", Line(r));
            assert_eq!(r.severity(Vendor::Amd), Severity::Corrected);
            assert_eq!(r.severity(Vendor::Intel), Severity::Corrected);
            // Only bits the generator means to set: the flags, model code and error code.
            assert_eq!(s & !(VAL | EN | OVER | MISCV | ADDRV | 0x001f_ffff), 0);
            assert!(r.cpu < 2 && r.bank < BANKS);
            assert!(s & ADDRV != 0 || r.addr == 0);
            assert!(s & MISCV != 0 || r.misc == 0);
            assert_eq!(r.addr & 0x3f, 0);
            let class = McaCode::classify(s as u16);
            assert!(
                matches!(
                    class,
                    McaCode::MemoryController { .. }
                        | McaCode::CacheHierarchy { .. }
                        | McaCode::Tlb { .. }
                        | McaCode::Bus { .. }
                ),
                "{}: {class:?}",
                Line(r)
            );
            classes.insert(class.class());
        }
        assert_eq!(classes.len(), 4, "every class comes up: {classes:?}");
        for bit in [OVER, MISCV, ADDRV] {
            assert!(records.iter().any(|r| r.status & bit != 0));
            assert!(records.iter().any(|r| r.status & bit == 0));
        }
    }

    #[test]
    fn simpler_records_drop_one_optional_part_and_stay_corrected() {
        let r = MceRecord {
            cpu: 1,
            bank: 4,
            status: 0xdc00_0000_0003_0080 | VAL | EN,
            addr: 0x1000,
            misc: 5,
            ..MceRecord::default()
        };
        let s = simpler(&r);
        assert_eq!(s.len(), 5);
        for c in &s {
            assert_eq!(c.status & (VAL | EN), VAL | EN);
            assert_eq!(c.severity(Vendor::Amd), Severity::Corrected);
        }
        assert_eq!(s[0].status & OVER, 0);
        assert_eq!((s[1].status & MISCV, s[1].misc), (0, 0));
        assert_eq!((s[2].status & ADDRV, s[2].addr), (0, 0));
        assert_eq!(s[3].status & 0xffff_0000, 0);
        assert_eq!(s[4].cpu, 0);
        let minimal = MceRecord {
            status: VAL | EN | 0x0080,
            ..MceRecord::default()
        };
        assert!(simpler(&minimal).is_empty());
    }
}
