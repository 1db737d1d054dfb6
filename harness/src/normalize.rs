//! The redactor: one set of rules, used by the CLI and the tests alike, that replaces what
//! changes from run to run (times, TSCs, PIDs, code addresses, the KASLR offset) with fixed
//! placeholders, so that golden files hold only what a decoder decided.
//!
//! | placeholder      | replaces                                                           |
//! |------------------|--------------------------------------------------------------------|
//! | `[<TIME>]`       | a printk timestamp `[   12.345678]`                                |
//! | `<TIME>`         | a trace line's timestamp                                           |
//! | `<PID>`          | the PID after a trace line's task name, `PID:` in oops headers     |
//! | `<TSC>`          | a time-stamp counter value (a zero TSC is kept: it says who injected) |
//! | `<EPOCH>`        | `TIME`/`time:`/`walltime=` seconds since 1970                       |
//! | `<DATE>`         | a calendar date and time, e.g. rasdaemon's `2026-11-26 08:35:51 +0000` |
//! | `<RIP>`          | an instruction pointer (a zero one is kept)                        |
//! | `sym+<OFF>`      | `sym+0x1a2/0x7e0`                                                  |
//! | `<KASLR>`        | the `Kernel Offset:` of a panic, an offset or `disabled` (PVH boot) |
//! | `<CS>`           | the code segment of an inexact RIP (`RIP !INEXACT!`), whose symbol goes too |
//! | `<REG>`          | a value in a register dump of an oops                               |
//! | `<KERNEL>`       | the release and build string in an oops header                     |
//! | `<PFN>`          | a page frame number in memory-failure and hwpoison lines: the page a guest's agent finds differs between boots |
//! | `comm:<PID>`     | the PID of a process the kernel kills or signals for a poisoned page |
//!
//! Rules never touch the decoded content: status, address, misc, bank, CPU and the decoders' words
//! survive (the tests check this for each collector's lines). Normalising twice changes nothing.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Captures, Regex};

/// Replaces every run-to-run varying part of `text` with its placeholder, line by line.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&normalize_line(line));
    }
    out
}

/// One line through every rule, in order.
pub fn normalize_line(line: &str) -> String {
    let mut line = Cow::Borrowed(line);
    for rule in RULES.iter() {
        if let Cow::Owned(changed) = rule.apply(&line) {
            line = Cow::Owned(changed);
        }
    }
    line.into_owned()
}

struct Rule {
    regex: Regex,
    replace: fn(&Captures) -> String,
}

impl Rule {
    fn apply<'a>(&self, line: &'a str) -> Cow<'a, str> {
        self.regex
            .replace_all(line, |c: &Captures| (self.replace)(c))
    }
}

fn rule(pattern: &str, replace: fn(&Captures) -> String) -> Rule {
    Rule {
        regex: Regex::new(pattern).expect("normalizer patterns are valid"),
        replace,
    }
}

/// A hex or decimal number that is all zeros: kept, because it is deterministic (a record
/// injected through QEMU has TSC 0 and no RIP) and telling.
fn is_zero(digits: &str) -> bool {
    digits.trim_start_matches("0x").bytes().all(|b| b == b'0')
}

/// `${prefix}<placeholder>`, or the match unchanged when the value is zero.
fn unless_zero(c: &Captures, placeholder: &str) -> String {
    if is_zero(&c["value"]) {
        c[0].to_string()
    } else {
        format!("{}{placeholder}", &c["prefix"])
    }
}

static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    vec![
        // printk: `[   12.345678] mce: ...` (anywhere, console lines may carry a prefix).
        rule(r"\[\s*\d+\.\d{6}\]", |_| "[<TIME>]".into()),
        // A trace line's context: `kworker/0:2-47  [000] d.h1.  123.456789: event: ...`, as
        // tracefs and rasdaemon print it. Rewritten with single spaces, because the column
        // padding depends on the PID's width.
        rule(
            r"^\s*(?P<task>\S.*?)-(?P<pid>\d+)\s+(?:\(\s*(?:-+|\d+)\)\s+)?\[(?P<cpu>\d{3})\]\s+(?:(?P<flags>[\w.]{4,5})\s+)?\d+\.\d+:\s",
            |c| match c.name("flags") {
                Some(flags) => format!(
                    "{}-<PID> [{}] {} <TIME>: ",
                    &c["task"],
                    &c["cpu"],
                    flags.as_str()
                ),
                None => format!("{}-<PID> [{}] <TIME>: ", &c["task"], &c["cpu"]),
            },
        ),
        // `TSC 2a3b4c` (mce:), `TSC: 123456` (edac_mce_amd, mce_record), `tsc=0x...` (ras-mc-ctl).
        rule(
            r"\b(?P<prefix>TSC(?::\s*|\s+)|tsc[=:]\s*)(?P<value>(?:0x)?[0-9a-fA-F]+)\b",
            |c| unless_zero(c, "<TSC>"),
        ),
        // `TIME 1764145551` (mce:), `TIME: ...` and `time: ...` (mce_record), `walltime=0x...`.
        rule(
            r"\b(?P<prefix>TIME(?::\s*|\s+)|time:\s*|walltime=\s*)(?P<value>(?:0x[0-9a-fA-F]+|\d+))\b",
            |c| unless_zero(c, "<EPOCH>"),
        ),
        // Calendar dates: rasdaemon's `2026-11-26 08:35:51 +0000`, ISO `2026-11-26T08:35:51Z`.
        rule(
            r"\b\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:\s?(?:[+-]\d{2}:?\d{2}|UTC|Z)\b)?",
            |_| "<DATE>".into(),
        ),
        // `cs:<ip>` in `RIP 10:<ffffffff81234567>` (mce:) and `RIP: 10:<...>` (mce_record).
        rule(
            r"\b(?P<prefix>[0-9a-f]{2}:)<(?P<value>[0-9a-f]{8,16})>",
            |c| {
                if is_zero(&c["value"]) {
                    c[0].to_string()
                } else {
                    format!("{}<RIP>", &c["prefix"])
                }
            },
        ),
        // rasdaemon `ip= ffffffff81234567`, ras-mc-ctl `ip=0x...`.
        rule(
            r"\b(?P<prefix>ip=\s?)(?P<value>(?:0x)?[0-9a-fA-F]+)\b",
            |c| unless_zero(c, "<RIP>"),
        ),
        // `do_machine_check+0x1a2/0x7e0` -> `do_machine_check+<OFF>`: offsets move with any build.
        rule(
            r"\b(?P<sym>[A-Za-z_.$][\w.$]*)\+0x[0-9a-f]+/0x[0-9a-f]+",
            |c| format!("{}+<OFF>", &c["sym"]),
        ),
        // An inexact RIP (MCG_STATUS.EIPV clear: an asynchronous #MC) names wherever the CPU
        // happened to be, kernel or user, idle loop or not: only that a RIP was logged and that
        // it is inexact are facts. An exact RIP keeps its segment and symbol.
        rule(
            r"\bRIP !INEXACT! [0-9a-f]{2}:<(?:RIP|[0-9a-f]+)>(?: \{[^}]*\})?",
            |_| "RIP !INEXACT! <CS>:<RIP>".into(),
        ),
        // `Kernel Offset: 0x1e000000 from 0xffffffff81000000 (relocation range: ...)` after a
        // bzImage boot, `Kernel Offset: disabled` after a PVH vmlinux boot: the same panic.
        rule(
            r"\bKernel Offset: (?:disabled|0x[0-9a-f]+ from .*)$",
            |_| "Kernel Offset: <KASLR>".into(),
        ),
        // Oops header: `CPU: 0 PID: 47 Comm: kworker/0:2 Not tainted 6.1.0-56-amd64 #1 Debian ...`.
        rule(r"\bPID: \d+", |_| "PID: <PID>".into()),
        rule(
            r"\b(?P<taint>Not tainted|Tainted: [A-Z ]*[A-Z])\s+\d+\.\d+\S* #.*$",
            |c| format!("{} <KERNEL>", &c["taint"]),
        ),
        // Register dumps of an oops: `RSP: 0018:ffffc90000003e48 EFLAGS: 00000046`, `RAX: ...`,
        // `FS:  0000000000000000(0000) GS:ffff88807dc00000(0000) knlGS:...`, `CR2: ...`.
        rule(
            r"^(?P<head>(?:.*\]\s)?\s*(?:R[A-D]X|R[SD]I|R[BS]P|R[89]|R1[0-5]|[CDEFG]S|CR[0-4]):).*$",
            |c| {
                static VALUE: LazyLock<Regex> =
                    LazyLock::new(|| Regex::new(r"\b[0-9a-f]{8,16}\b").expect("valid"));
                let head = &c["head"];
                let rest = &c[0][head.len()..];
                format!("{head}{}", VALUE.replace_all(rest, "<REG>"))
            },
        ),
        // An oops in user space: `RIP: 0033:0x7f3c5e8e1b2c`.
        rule(r"\bRIP: (?P<cs>[0-9a-f]{4}):0x[0-9a-f]+", |c| {
            format!("RIP: {}:<RIP>", &c["cs"])
        }),
        // The code bytes around the faulting instruction differ with every build.
        rule(r"\bCode: .*$", |_| "Code: <CODE>".into()),
        // rasdaemon's own PID when it logs through syslog.
        rule(r"\brasdaemon\[\d+\]", |_| "rasdaemon[<PID>]".into()),
        // Page frames: `Memory failure: 0xf000: recovery action ...`, `pfn 0xf000` (hwpoison
        // injections, memory_failure_event, soft offline), `Software-unpoisoned page 0xf000`
        // (6.1), `Unpoison: 0xf000: software-unpoisoned page` (6.12).
        rule(
            r"\b(?P<prefix>Memory failure: |pfn |unpoisoned (?:free )?page |Unpoison: )0x[0-9a-f]+\b",
            |c| format!("{}<PFN>", &c["prefix"]),
        ),
        // `MCE: Killing rasdrill:87 due to hardware memory corruption`, `Sending SIGBUS to x:87`.
        rule(r"\b(?P<prefix>(?:Killing|SIGBUS to) [^\s:]+:)\d+\b", |c| {
            format!("{}<PID>", &c["prefix"])
        }),
    ]
});

#[cfg(test)]
mod tests {
    use super::*;

    /// Each rule, before and after.
    #[test]
    fn printk_timestamps() {
        assert_eq!(
            normalize("[   12.345678] mce: [Hardware Error]: Machine check events logged"),
            "[<TIME>] mce: [Hardware Error]: Machine check events logged"
        );
        assert_eq!(normalize("[12345.000001] x"), "[<TIME>] x");
    }

    #[test]
    fn trace_context_pid_and_timestamp() {
        assert_eq!(
            normalize("     kworker/0:2-47      [000] d.h1.   123.456789: mce_record: CPU: 0, MCGc/s: 100010a/0"),
            "kworker/0:2-<PID> [000] d.h1. <TIME>: mce_record: CPU: 0, MCGc/s: 100010a/0"
        );
        assert_eq!(
            normalize("          <idle>-0       [001] ..s1.    45.000001: mce_record: CPU: 1"),
            "<idle>-<PID> [001] ..s1. <TIME>: mce_record: CPU: 1"
        );
        // rasdaemon prints the same context without the flags column.
        assert_eq!(
            normalize("           <...>-286   [000]     0.000009: mce_record:          x"),
            "<...>-<PID> [000] <TIME>: mce_record:          x"
        );
        // A task name may itself contain a dash and digits.
        assert_eq!(
            normalize("  rs:main Q:Reg-12-345 [000] .....  1.5: e: y"),
            "rs:main Q:Reg-12-<PID> [000] ..... <TIME>: e: y"
        );
    }

    #[test]
    fn tsc_values_but_not_a_zero_tsc() {
        assert_eq!(
            normalize("mce: [Hardware Error]: TSC 2a3b4c5d6e ADDR 12345000 MISC d012000100000000"),
            "mce: [Hardware Error]: TSC <TSC> ADDR 12345000 MISC d012000100000000"
        );
        assert_eq!(
            normalize("[Hardware Error]: TSC: 181723644566"),
            "[Hardware Error]: TSC: <TSC>"
        );
        assert_eq!(
            normalize("mce: [Hardware Error]: TSC 0 ADDR 12345000"),
            "mce: [Hardware Error]: TSC 0 ADDR 12345000"
        );
        assert_eq!(
            normalize("status=0x9c00, tsc=0x1234ab, x"),
            "status=0x9c00, tsc=<TSC>, x"
        );
        // `TSC` followed by a word is not a value.
        assert_eq!(
            normalize("TSC deadline timer enabled"),
            "TSC deadline timer enabled"
        );
    }

    #[test]
    fn epochs() {
        assert_eq!(
            normalize("mce: [Hardware Error]: PROCESSOR 2:600f12 TIME 1764145551 SOCKET 0 APIC 0 microcode 600111f"),
            "mce: [Hardware Error]: PROCESSOR 2:600f12 TIME <EPOCH> SOCKET 0 APIC 0 microcode 600111f"
        );
        assert_eq!(
            normalize("TSC: 0, PROCESSOR: 2:600f12, TIME: 1764145551, SOCKET: 0"),
            "TSC: 0, PROCESSOR: 2:600f12, TIME: <EPOCH>, SOCKET: 0"
        );
        assert_eq!(
            normalize("walltime=0x6745a5e7, cpu=0x00000000"),
            "walltime=<EPOCH>, cpu=0x00000000"
        );
    }

    #[test]
    fn calendar_dates() {
        assert_eq!(
            normalize(
                "mce_record:          2026-11-26 08:35:51 +0000 bank=4, status= 9c7d410092080813"
            ),
            "mce_record:          <DATE> bank=4, status= 9c7d410092080813"
        );
        assert_eq!(
            normalize("1 2026-11-26 08:35:51 -0500 error"),
            "1 <DATE> error"
        );
        assert_eq!(normalize("at 2026-11-26T08:35:51.123Z."), "at <DATE>.");
    }

    #[test]
    fn instruction_pointers_and_symbol_offsets() {
        assert_eq!(
            normalize(
                "mce: [Hardware Error]: RIP 10:<ffffffff81b2c1e4> {native_safe_halt+0xe/0x10}"
            ),
            "mce: [Hardware Error]: RIP 10:<RIP> {native_safe_halt+<OFF>}"
        );
        assert_eq!(
            normalize("RIP: 00:<0000000000000000>, TSC: 0"),
            "RIP: 00:<0000000000000000>, TSC: 0",
            "a record without RIP keeps its zeros"
        );
        // Seen in two runs of one panic scenario: an inexact RIP is wherever the CPU was.
        for seen in [
            "mce: [Hardware Error]: RIP !INEXACT! 10:<ffffffff81b2c1e4> {native_safe_halt+0xe/0x10}",
            "mce: [Hardware Error]: RIP !INEXACT! 10:<ffffffff81c0a2b5> {retbleed_return_thunk+0x5/0x6}",
            "mce: [Hardware Error]: RIP !INEXACT! 33:<000055d1c2a3b4c5> ",
        ] {
            assert_eq!(
                normalize(seen).trim_end(),
                "mce: [Hardware Error]: RIP !INEXACT! <CS>:<RIP>",
                "{seen}"
            );
        }
        assert_eq!(
            normalize(", ip= ffffffff81b2c1e4 (INEXACT), cs= 10"),
            ", ip= <RIP> (INEXACT), cs= 10"
        );
        assert_eq!(
            normalize(" do_machine_check+0x1a2/0x7e0"),
            " do_machine_check+<OFF>"
        );
        assert_eq!(
            normalize(" ? exc_machine_check+0x7a/0xd0 [mce_inject]"),
            " ? exc_machine_check+<OFF> [mce_inject]"
        );
    }

    #[test]
    fn kaslr_pids_and_kernel_release_of_a_panic() {
        // bzImage (KASLR) and PVH vmlinux boots of the same kernel print the same line.
        assert_eq!(
            normalize("[   3.1] Kernel Offset: 0x1e000000 from 0xffffffff81000000 (relocation range: 0xffffffff80000000-0xffffffffbfffffff)"),
            "[   3.1] Kernel Offset: <KASLR>"
        );
        assert_eq!(
            normalize("Kernel Offset: disabled"),
            "Kernel Offset: <KASLR>"
        );
        assert_eq!(
            normalize(
                "CPU: 0 PID: 47 Comm: kworker/0:2 Not tainted 6.1.0-56-amd64 #1 Debian 6.1.158-1"
            ),
            "CPU: 0 PID: <PID> Comm: kworker/0:2 Not tainted <KERNEL>"
        );
        assert_eq!(
            normalize(
                "CPU: 1 PID: 0 Comm: swapper/1 Tainted: G   M        6.1.0-56-amd64 #1 Debian"
            ),
            "CPU: 1 PID: <PID> Comm: swapper/1 Tainted: G   M <KERNEL>"
        );
        assert_eq!(
            normalize("rasdaemon[286]: Listening"),
            "rasdaemon[<PID>]: Listening"
        );
    }

    #[test]
    fn register_dumps_and_code_bytes() {
        assert_eq!(
            normalize("[    2.1] RSP: 0018:ffffc90000003e48 EFLAGS: 00000046"),
            "[    2.1] RSP: 0018:<REG> EFLAGS: <REG>"
        );
        assert_eq!(
            normalize("RAX: 0000000000000000 RBX: ffff888003a8c000 RCX: 0000000000000004"),
            "RAX: <REG> RBX: <REG> RCX: <REG>"
        );
        assert_eq!(
            normalize(
                "FS:  0000000000000000(0000) GS:ffff88807dc00000(0000) knlGS:0000000000000000"
            ),
            "FS:  <REG>(0000) GS:<REG>(0000) knlGS:<REG>"
        );
        assert_eq!(normalize("Code: 48 89 e5 <0f> 0b"), "Code: <CODE>");
        assert_eq!(normalize("RIP: 0033:0x7f3c5e8e1b2c"), "RIP: 0033:<RIP>");
        assert_eq!(
            normalize("RIP: 0010:do_machine_check+0x1a2/0x7e0"),
            "RIP: 0010:do_machine_check+<OFF>"
        );
    }

    /// What the collectors see (docs/kernel-interfaces.md, "Kernel log (dmesg)" and "Tracefs and
    /// the RAS tracepoints"): every decoded value and word survives, only the noise goes.
    const KMSG_AMD: &str = "\
[   31.402817] mce: [Hardware Error]: Machine check events logged
[   31.403112] [Hardware Error]: Corrected error, no action required.
[   31.403398] [Hardware Error]: CPU:0 (15:2:2) MC4_STATUS[-|CE|MiscV|AddrV|-|CECC|-]: 0x9c7d410092080813
[   31.403701] [Hardware Error]: Error Addr: 0x0000000012345000
[   31.403911] [Hardware Error]: MC4 Error (node 0): DRAM ECC error detected on the NB.
[   31.404220] [Hardware Error]: cache level: L3/GEN, mem/io: MEM, mem-tx: RD, part-proc: SRC (no timeout)
[   31.404411] [Hardware Error]: TSC: 181723644566";

    const TRACE: &str = "\
     kworker/0:2-47      [000] d..1.   31.402001: mce_record: CPU: 0, MCGc/s: 100010a/0, MC4: 9c7d410092080813, IPID: 0000000000000000, ADDR/MISC/SYND: 0000000012345000/0000000000000000/0000000000000000, RIP: 00:<0000000000000000>, TSC: 0, PROCESSOR: 2:600f12, TIME: 1764145551, SOCKET: 0, APIC: 0";

    const RASDAEMON: &str = "\
           <...>-286   [000]     0.000009: mce_record:          2026-11-26 08:35:51 +0000 bank=4, status= 9c7d410092080813, Corrected error, no action required., mci=CECC, cpu_type= Skylake server, cpu= 0, socketid= 0, misc= d012000100000000, addr= 12345000, mcgstatus= 0, mcgcap= 100010a, apicid= 0";

    #[test]
    fn page_frames_and_killed_pids_of_memory_failures() {
        let lines = [
            "[    3.100000] Injecting memory failure at pfn 0xfe3a",
            "[    3.100001] Memory failure: 0xfe3a: recovery action for free buddy page: Recovered",
            "memory_failure_event: pfn 0xfe3a: recovery action for free buddy page: Recovered",
            "[    3.2] Unpoison: Software-unpoisoned page 0xfe3a",
            "[    3.2] Unpoison: 0xfe3a: software-unpoisoned page",
            "[    3.3] MCE: Killing rasdrill:87 due to hardware memory corruption fault at 5a5a00000000",
        ];
        insta::assert_snapshot!(normalize(&lines.join("\n")), @r"
        [<TIME>] Injecting memory failure at pfn <PFN>
        [<TIME>] Memory failure: <PFN>: recovery action for free buddy page: Recovered
        memory_failure_event: pfn <PFN>: recovery action for free buddy page: Recovered
        [    3.2] Unpoison: Software-unpoisoned page <PFN>
        [    3.2] Unpoison: <PFN>: software-unpoisoned page
        [    3.3] MCE: Killing rasdrill:<PID> due to hardware memory corruption fault at 5a5a00000000
        ");
    }

    #[test]
    fn decoded_content_survives() {
        for (text, kept) in [
            (KMSG_AMD, &["MC4_STATUS[-|CE|MiscV|AddrV|-|CECC|-]: 0x9c7d410092080813", "Error Addr: 0x0000000012345000", "MC4 Error (node 0): DRAM ECC error detected on the NB.", "CPU:0 (15:2:2)"][..]),
            (TRACE, &["CPU: 0, MCGc/s: 100010a/0, MC4: 9c7d410092080813", "ADDR/MISC/SYND: 0000000012345000/0000000000000000/0000000000000000", "PROCESSOR: 2:600f12", "SOCKET: 0, APIC: 0"][..]),
            (RASDAEMON, &["bank=4, status= 9c7d410092080813, Corrected error, no action required., mci=CECC", "misc= d012000100000000, addr= 12345000, mcgstatus= 0, mcgcap= 100010a"][..]),
        ] {
            let out = normalize(text);
            for k in kept {
                assert!(out.contains(k), "`{k}` was lost:\n{out}");
            }
            assert_eq!(normalize(&out), out, "normalising twice changes nothing");
        }
    }

    #[test]
    fn collector_output_as_golden_files_see_it() {
        insta::assert_snapshot!(normalize(&[KMSG_AMD, TRACE, RASDAEMON].join("\n")), @r"
        [<TIME>] mce: [Hardware Error]: Machine check events logged
        [<TIME>] [Hardware Error]: Corrected error, no action required.
        [<TIME>] [Hardware Error]: CPU:0 (15:2:2) MC4_STATUS[-|CE|MiscV|AddrV|-|CECC|-]: 0x9c7d410092080813
        [<TIME>] [Hardware Error]: Error Addr: 0x0000000012345000
        [<TIME>] [Hardware Error]: MC4 Error (node 0): DRAM ECC error detected on the NB.
        [<TIME>] [Hardware Error]: cache level: L3/GEN, mem/io: MEM, mem-tx: RD, part-proc: SRC (no timeout)
        [<TIME>] [Hardware Error]: TSC: <TSC>
        kworker/0:2-<PID> [000] d..1. <TIME>: mce_record: CPU: 0, MCGc/s: 100010a/0, MC4: 9c7d410092080813, IPID: 0000000000000000, ADDR/MISC/SYND: 0000000012345000/0000000000000000/0000000000000000, RIP: 00:<0000000000000000>, TSC: 0, PROCESSOR: 2:600f12, TIME: <EPOCH>, SOCKET: 0, APIC: 0
        <...>-<PID> [000] <TIME>: mce_record:          <DATE> bank=4, status= 9c7d410092080813, Corrected error, no action required., mci=CECC, cpu_type= Skylake server, cpu= 0, socketid= 0, misc= d012000100000000, addr= 12345000, mcgstatus= 0, mcgcap= 100010a, apicid= 0
        ");
    }
}
