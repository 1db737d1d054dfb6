//! The `kmsg` collector: the kernel log since the scenario started, as dmesg prints it
//! (`[    2.345678] text`), through the target's `/dev/kmsg`.
//!
//! Which lines: by default those of the RAS and machine-check world ([`DEFAULT_FILTER`]: the
//! decoders' `[Hardware Error]` lines, `mce:`, `EDAC`, `RAS`, memory failure and hwpoison, unpoison and
//! soft offline (mm/memory-failure.c, mm/madvise.c), machine checks and a panic's lines, and the PCIe AER driver's report: its `AER:` lines (the message
//! received, the recovery), `PCIe Bus Error`, the device's status/mask line, one line per
//! status bit (`[ 0] RxErr (First)`), the TLP header, and aer_inject's own line); a
//! scenario's `kmsg: {match: REGEX}` chooses instead. The kernel's rate-limited notices ([`RATE_LIMITED`]) are always left out: whether one is printed depends
//! on what ran before in the same guest, and results must not depend on order.
//!
//! Kernel crash reports are kept whole whatever the filter, and counted as crashes: an oops,
//! `BUG:`, `WARNING:` or call trace ([`CRASH_START`]) opens a report that runs to the kernel's
//! `---[ end trace ... ]---` line (or to the end of the window when there is none). A decoder
//! that crashes is then seen, and fails its scenario. The stack a panic dumps after its
//! `Kernel panic - not syncing:` line is the panic's, not a crash: an expected panic stays one.
//!
//! With `boot_log: true` the output starts with the kernel's boot, chosen the same way: what it
//! printed up to the guest agent's readiness (a restored guest's boot is the one its snapshot
//! was saved from; on this machine, the whole log before the scenario). Boot-time crash reports
//! are kept whole but fail nothing, and boot lines count no records: the scenario's window is
//! what is judged.
//!
//! A record, for `wait: {records: N}`, is one machine-check or memory-controller error as the
//! kernel reports it: a line matching [`RECORD`], i.e. the kernel's own `Machine Check...: Bank N:`
//! line (no decoder, or a panic), edac_mce_amd's `MCn_STATUS` line, or the EDAC core's
//! `EDAC MCn: N CE|UE` line, or the AER driver's `AER: ... error message received from` line.
//! Each of these is printed once per error.

use std::sync::LazyLock;

use regex::Regex;

use super::{CollectError, Collected, Collector};
use crate::agent::protocol::KmsgRecord;
use crate::target::Target;

/// The lines kept when a scenario does not choose (case-insensitive).
pub const DEFAULT_FILTER: &str = concat!(
    r"(?i)hardware error|machine check|\bmce\b|mce:|edac|\bras\b|memory failure|hwpoison|unpoison|soft offlin|kernel panic|kernel offset",
    // PCIe AER (drivers/pci/pcie/aer.c, err.c, aer_inject.c): the `AER:` prefix, the report's
    // lines without it, and a PCI device's bit lines (`0000:00:01.0:    [ 4] DLP  (First)`).
    r"|\baer:|\baer_inject\b|pcie bus error|error status/mask=|tlp header:",
    r"|^\S+ [0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]:\s+\[\s*\d+\] ",
);

/// Kernel notices that are rate-limited across the guest's life: `mce_notify_irq` prints
/// `Machine check events logged` at most twice a minute, then counts what it suppressed.
pub const RATE_LIMITED: &str = r"Machine check events logged|callbacks suppressed";

/// One error report, whoever printed it.
pub const RECORD: &str = concat!(
    r"Machine Check( Exception)?: [0-9a-fA-F]+ Bank \d+:|\bMC\d+_STATUS\b|EDAC MC\d+: \d+ (CE|UE)\b",
    r"|AER: (Multiple )?(Corrected|Uncorrected \((Non-)?Fatal\)) error (message )?received",
);

/// The first line of a kernel crash report.
pub const CRASH_START: &str = r"^(?:-+\[ cut here \]-+|BUG: |Oops: |WARNING: |kernel BUG at |general protection fault|Call Trace:)";
/// The last line of an oops or WARN report.
const CRASH_END: &str = r"^-+\[ end trace [0-9a-f]* ?\]-+";
/// After this line, a call trace is the panic's own.
const PANIC: &str = r"^Kernel panic - not syncing";

static CRASH_START_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(CRASH_START).expect("a valid pattern"));
static CRASH_END_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(CRASH_END).expect("a valid pattern"));
static PANIC_RE: LazyLock<Regex> = LazyLock::new(|| Regex::new(PANIC).expect("a valid pattern"));
static RATE_LIMITED_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(RATE_LIMITED).expect("a valid pattern"));
static RECORD_RE: LazyLock<Regex> = LazyLock::new(|| Regex::new(RECORD).expect("a valid pattern"));

/// A kernel log record as dmesg prints it.
pub fn line(r: &KmsgRecord) -> String {
    format!(
        "[{:5}.{:06}] {}",
        r.usec / 1_000_000,
        r.usec % 1_000_000,
        r.text
    )
}

pub struct Kmsg {
    filter: Regex,
    /// The cursor: the last sequence number seen.
    after: Option<u64>,
    seen: Vec<KmsgRecord>,
    boot_log: bool,
    /// The boot's records, read at start when `boot_log` is set.
    boot: Vec<KmsgRecord>,
}

impl Kmsg {
    /// `filter` is a scenario's `match:` (already validated), or `None` for [`DEFAULT_FILTER`].
    pub fn new(filter: Option<&str>, boot_log: bool) -> Result<Kmsg, CollectError> {
        let pattern = filter.unwrap_or(DEFAULT_FILTER);
        let filter = Regex::new(pattern)
            .map_err(|e| CollectError::failed("kmsg", format!("match: {pattern:?}: {e}")))?;
        Ok(Kmsg {
            filter,
            after: None,
            seen: Vec::new(),
            boot_log,
            boot: Vec::new(),
        })
    }

    /// The boot's lines, chosen as the scenario's are; its crashes and records are not counted.
    fn with_boot(&self, window: Collected) -> Collected {
        if self.boot.is_empty() {
            return window;
        }
        let mut lines = self
            .collected(self.boot.iter().map(|r| (r.text.clone(), line(r))))
            .lines;
        lines.extend(window.lines);
        Collected { lines, ..window }
    }

    /// Whether a message (without its timestamp) belongs in the output.
    pub fn keeps(&self, text: &str) -> bool {
        self.filter.is_match(text) && !RATE_LIMITED_RE.is_match(text)
    }

    fn collected(&self, texts: impl Iterator<Item = (String, String)>) -> Collected {
        let mut out = Collected::default();
        let mut in_crash = false;
        let mut panicked = false;
        for (text, shown) in texts {
            let text = text.trim_end();
            panicked |= PANIC_RE.is_match(text);
            if !in_crash && !panicked && CRASH_START_RE.is_match(text) {
                in_crash = true;
                out.crashes.push(text.to_string());
            }
            if in_crash || self.keeps(text) {
                if RECORD_RE.is_match(text) {
                    out.records += 1;
                }
                out.lines.push(shown);
            }
            if in_crash && CRASH_END_RE.is_match(text) {
                in_crash = false;
            }
        }
        out
    }
}

impl Collector for Kmsg {
    fn name(&self) -> &str {
        "kmsg"
    }

    fn start(
        &mut self,
        target: &mut dyn Target,
        _progress: &mut dyn FnMut(&str),
    ) -> Result<(), CollectError> {
        self.after = target
            .kmsg_last()
            .map_err(|e| CollectError::target("kmsg", e))?;
        self.seen.clear();
        self.boot.clear();
        if self.boot_log {
            let ready_us = target.guest().map(|g| g.ready().uptime_ms * 1000);
            let all = target
                .kmsg(None)
                .map_err(|e| CollectError::target("kmsg", e))?;
            self.boot = all
                .into_iter()
                .filter(|r| Some(r.seq) <= self.after && ready_us.is_none_or(|end| r.usec <= end))
                .collect();
        }
        Ok(())
    }

    fn collect(&mut self, target: &mut dyn Target) -> Result<Collected, CollectError> {
        let new = target
            .kmsg(self.after)
            .map_err(|e| CollectError::target("kmsg", e))?;
        if let Some(last) = new.last() {
            self.after = Some(last.seq);
        }
        self.seen.extend(new);
        let window = self.collected(self.seen.iter().map(|r| (r.text.clone(), line(r))));
        Ok(self.with_boot(window))
    }

    fn stop(&mut self, _target: &mut dyn Target) -> Result<(), CollectError> {
        Ok(())
    }

    /// The console prints the same records as `[    2.345678] text`: its lines since the
    /// scenario started, filtered the same way.
    fn collect_after_panic(&mut self, console: &str) -> Result<Collected, CollectError> {
        let window = self.collected(console.lines().map(|l| {
            let text = strip_timestamp(l);
            (text.to_string(), l.trim_end().to_string())
        }));
        Ok(self.with_boot(window))
    }
}

/// `[    2.345678] text` -> `text`.
fn strip_timestamp(line: &str) -> &str {
    let trimmed = line.trim_start();
    if let Some(rest) = trimmed.strip_prefix('[') {
        if let Some((stamp, text)) = rest.split_once(']') {
            if stamp.trim().chars().all(|c| c.is_ascii_digit() || c == '.') {
                return text.strip_prefix(' ').unwrap_or(text);
            }
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, usec: u64, text: &str) -> KmsgRecord {
        KmsgRecord {
            seq,
            usec,
            level: 4,
            facility: 0,
            text: text.to_string(),
            dict: Default::default(),
        }
    }

    /// Lines an amd-f15h guest printed for a QEMU-injected CE, plus noise
    /// (docs/kernel-interfaces.md, "Kernel log (dmesg)").
    const F15H_CE: &[&str] = &[
        "mce: [Hardware Error]: Machine check events logged",
        "[Hardware Error]: Corrected error, no action required.",
        "[Hardware Error]: CPU:0 (15:2:2) MC4_STATUS[-|CE|MiscV|AddrV|-|CECC|-]: 0x9c7d410092080813",
        "[Hardware Error]: Error Addr: 0x0000000012345000",
        "[Hardware Error]: MC4 Error (node 0): DRAM ECC error detected on the NB.",
        "[Hardware Error]: cache level: L3/GEN, mem/io: MEM, mem-tx: RD, part-proc: SRC (no timeout)",
        "clocksource: timekeeping watchdog on CPU1: Marking clocksource 'tsc' as unstable",
        "mce_notify_irq: 2 callbacks suppressed",
    ];

    #[test]
    fn keeps_ras_lines_drops_noise_and_rate_limited_notices_and_counts_records() {
        let k = Kmsg::new(None, false).unwrap();
        let records: Vec<_> = F15H_CE
            .iter()
            .enumerate()
            .map(|(i, t)| record(i as u64, 2_000_000 + i as u64, t))
            .collect();
        let out = k.collected(records.iter().map(|r| (r.text.clone(), line(r))));
        assert_eq!(out.records, 1);
        assert_eq!(out.lines.len(), 5, "{:#?}", out.lines);
        assert_eq!(
            out.lines[0],
            "[    2.000001] [Hardware Error]: Corrected error, no action required."
        );
        assert!(out.lines.iter().all(|l| !l.contains("clocksource")
            && !l.contains("events logged")
            && !l.contains("suppressed")));
    }

    #[test]
    fn counts_the_kernels_own_lines_and_edac_as_records() {
        let k = Kmsg::new(None, false).unwrap();
        let texts = [
            "mce: [Hardware Error]: CPU 0: Machine Check: 0 Bank 4: 9c00000000010090",
            "mce: [Hardware Error]: TSC 0 ADDR 12345000",
            "mce: [Hardware Error]: CPU 1: Machine Check Exception: 5 Bank 4: b200000000070005",
            "Kernel panic - not syncing: Fatal local machine check",
            "EDAC MC0: 1 CE memory read error on DIMM0 (mc:0 csrow:1 channel:0)",
        ];
        let out = k.collected(texts.iter().map(|t| (t.to_string(), t.to_string())));
        assert_eq!((out.records, out.lines.len()), (3, 5));
    }

    /// An aer_inject'ed correctable error on an endpoint, kernel 6.1 (docs/aer.md), and the
    /// lines of the same boot that are no error report.
    #[test]
    fn keeps_the_aer_report_and_counts_one_record_per_error() {
        let k = Kmsg::new(None, false).unwrap();
        let texts = [
            "pcieport 0000:00:01.0: aer_inject: Injecting errors 00000040/00000000 into device 0000:01:00.0",
            "pcieport 0000:00:01.0: AER: Corrected error message received from 0000:01:00.0",
            "e1000e 0000:01:00.0: PCIe Bus Error: severity=Corrected, type=Data Link Layer, (Receiver ID)",
            "e1000e 0000:01:00.0:   device [8086:10d3] error status/mask=00000040/0000e000",
            "e1000e 0000:01:00.0:    [ 6] BadTLP                ",
            "pcieport 0000:00:01.0: AER: Uncorrected (Non-Fatal) error message received from 0000:01:00.0",
            "e1000e 0000:01:00.0:   TLP Header: 40000001 0100000f fee00000 00000000",
            "pcieport 0000:00:01.0: AER: device recovery successful",
            "e1000e 0000:01:00.0 eth0: Intel(R) PRO/1000 Network Connection",
            "pci 0000:00:01.0: [1b36:000c] type 01 class 0x060400",
        ];
        let out = k.collected(texts.iter().map(|t| (t.to_string(), t.to_string())));
        assert_eq!(out.lines, texts[..8]);
        assert_eq!(out.records, 2);
    }

    #[test]
    fn a_scenarios_match_replaces_the_default_filter() {
        let k = Kmsg::new(Some("clocksource"), false).unwrap();
        assert!(k.keeps("clocksource: Switched to clocksource tsc"));
        assert!(!k.keeps("[Hardware Error]: Error Addr: 0x0000000012345000"));
        assert!(!k.keeps("clocksource: 3 callbacks suppressed"));
    }

    #[test]
    fn console_lines_are_read_like_records() {
        let mut k = Kmsg::new(None, false).unwrap();
        let console = "[    3.100000] mce: [Hardware Error]: CPU 0: Machine Check Exception: 5 Bank 4: b200000000070005\r\n\
                       rasdrill-agent: something\n\
                       [    3.100100] Kernel panic - not syncing: Fatal local machine check\n\
                       [    3.100200] Kernel Offset: 0x1000000 from 0xffffffff81000000\n";
        let out = k.collect_after_panic(console).unwrap();
        assert_eq!(out.records, 1);
        assert_eq!(out.lines.len(), 3);
        assert_eq!(
            out.lines[1],
            "[    3.100100] Kernel panic - not syncing: Fatal local machine check"
        );
    }

    /// What 6.1 printed for `echo l > /proc/sysrq-trigger` and a WARN, around a decode.
    const CRASHES: &[&str] = &[
        "[Hardware Error]: Corrected error, no action required.",
        "------------[ cut here ]------------",
        "WARNING: CPU: 0 PID: 1 at arch/x86/kernel/cpu/mce/intel.c:518 intel_init_lmce+0x5a/0x70",
        "Modules linked in: edac_mce_amd mce_inject",
        "RIP: 0010:intel_init_lmce+0x5a/0x70",
        "Call Trace:",
        " <TASK>",
        " amd_decode_mce+0x1c/0x30 [edac_mce_amd]",
        " </TASK>",
        "---[ end trace 0000000000000000 ]---",
        "clocksource: Switched to clocksource tsc",
        "sysrq: Show backtrace of all active CPUs",
        "NMI backtrace for cpu 0",
        "Call Trace:",
        " <TASK>",
        " dump_stack_lvl+0x44/0x5c",
        " </TASK>",
    ];

    #[test]
    fn a_crash_report_is_kept_whole_and_counted() {
        let k = Kmsg::new(None, false).unwrap();
        let out = k.collected(CRASHES.iter().map(|t| (t.to_string(), t.to_string())));
        assert_eq!(
            out.crashes,
            ["------------[ cut here ]------------", "Call Trace:"]
        );
        let kept: Vec<&str> = out.lines.iter().map(String::as_str).collect();
        let mut expected: Vec<&str> = CRASHES.to_vec();
        // Outside a report the filter still decides.
        expected.retain(|l| {
            !l.starts_with("clocksource") && !l.starts_with("sysrq") && !l.starts_with("NMI")
        });
        assert_eq!(kept, expected);
    }

    #[test]
    fn the_stack_a_panic_dumps_is_not_a_crash() {
        let mut k = Kmsg::new(None, false).unwrap();
        let console = "[    3.1] mce: [Hardware Error]: Machine check: Processor Context Corrupt\n\
                       [    3.2] Kernel panic - not syncing: Fatal local machine check\n\
                       [    3.3] CPU: 0 PID: 0 Comm: swapper/0 Not tainted 6.1.0-57-amd64 #1\n\
                       [    3.4] Call Trace:\n\
                       [    3.5]  <#MC>\n";
        let out = k.collect_after_panic(console).unwrap();
        assert!(out.crashes.is_empty(), "{:?}", out.crashes);
        assert_eq!(out.lines.len(), 2, "{:#?}", out.lines);
    }

    #[test]
    fn dmesg_format() {
        assert_eq!(line(&record(1, 12_345_678, "x")), "[   12.345678] x");
    }
}
