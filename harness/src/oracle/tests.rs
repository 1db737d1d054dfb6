//! The parsers read real decoder output (the suite's golden files), and the oracle finds no
//! fault where the decoders were right and a finding where a claim is changed.

use rasdrill_inject::status::Vendor;
use rasdrill_inject::MceRecord;

use super::*;

/// The body of a golden file: real output of the decoders, normalised.
fn golden(name: &str) -> Vec<String> {
    let path = format!("{}/../golden/{name}.snap", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let body = text.splitn(3, "---\n").nth(2).expect("an insta header");
    body.lines().map(str::to_string).collect()
}

fn dram_ce(cpu: u32, delivery: Delivery) -> Injected {
    Injected {
        record: MceRecord {
            cpu,
            bank: 4,
            status: 0x9c7d_4100_9208_0813,
            addr: 0x1234_5000,
            ..MceRecord::default()
        },
        delivery,
        vendor: Vendor::Amd,
    }
}

fn skx_ce() -> Injected {
    Injected {
        record: MceRecord {
            cpu: 0,
            bank: 7,
            status: 0x9c00_0040_0001_0091,
            addr: 0x123_4000,
            misc: 0x8c,
            ..MceRecord::default()
        },
        delivery: Delivery::Hardware,
        vendor: Vendor::Intel,
    }
}

fn expect(decoders: &[Decoder]) -> Expectation {
    Expectation {
        decoders: decoders.to_vec(),
        panicked: false,
        cec: false,
    }
}

fn keys(findings: &[Finding]) -> Vec<String> {
    findings.iter().map(Finding::key).collect()
}

#[test]
fn edac_mce_amd_claims_from_the_golden_kmsg() {
    let claims = claims(&golden("amd-f15h-dram-ce-qemu__kmsg"));
    assert_eq!(claims.len(), 1, "{claims:#?}");
    let c = &claims[0];
    assert_eq!(c.decoder(), Decoder::EdacMceAmd);
    assert_eq!((c.cpu, c.bank), (Some(1), Some(4)));
    assert_eq!(c.status, Some(0x9c7d_4100_9208_0813));
    assert_eq!(c.addr, Some(0x1234_5000));
    assert_eq!(c.severity, Some(ClaimedSeverity::Corrected));
    let shown: Vec<&str> = c.flags.iter().filter(|f| f.shown).map(|f| f.name).collect();
    assert_eq!(shown, ["CE", "MiscV", "AddrV", "CECC"]);
    // Every position of `[-|CE|MiscV|AddrV|-|CECC|-]` is named: family 15h bank 4 has no Poison.
    let names: Vec<&str> = c.flags.iter().map(|f| f.name).collect();
    assert_eq!(
        names,
        ["Over", "CE", "UE", "MiscV", "AddrV", "PCC", "CECC", "UECC", "Deferred"]
    );
    let class = c.class.as_ref().expect("the error-code line");
    assert_eq!(class.kind, ClassKind::Bus);
    assert_eq!(
        class.fields,
        [("LL", 3), ("II", 0), ("RRRR", 1), ("PP", 0), ("T", 0)]
    );
    assert_eq!(c.lines.len(), 5, "every line of the decode is evidence");
}

#[test]
fn trace_claims_in_the_6_1_and_6_12_formats() {
    let claims = claims(&golden("intel-skx-mem-ce__trace"));
    assert_eq!(claims.len(), 1);
    let c = &claims[0];
    assert_eq!(c.decoder(), Decoder::Trace);
    assert_eq!(
        (c.cpu, c.bank, c.status),
        (Some(0), Some(7), Some(0x9c00_0040_0001_0091))
    );
    assert_eq!(
        (c.addr, c.misc, c.synd, c.ipid),
        (Some(0x123_4000), Some(0x8c), Some(0), Some(0))
    );

    let line = "mce_record: CPU: 1, MCGc/s: 100010a/0, MC4: 9c7d410092080813, \
        IPID: 0000000000000000, ADDR: 0000000012345000, MISC: 0000000000000000, \
        SYND: 0000000000000000, RIP: 00:<0000000000000000>, TSC: 0, PPIN: 0, vendor: 2, \
        CPUID: 600f22, time: 1795683525, socket: 0, APIC: 1, microcode: 1000065";
    let c = &super::claims(&[line.to_string()])[0];
    assert_eq!(
        (c.cpu, c.bank, c.status),
        (Some(1), Some(4), Some(0x9c7d_4100_9208_0813))
    );
    assert_eq!(
        (c.addr, c.misc, c.synd),
        (Some(0x1234_5000), Some(0), Some(0))
    );
}

#[test]
fn rasdaemon_line_and_row_are_two_claims() {
    let claims = claims(&golden("intel-skx-mem-ce__rasdaemon"));
    let decoders: Vec<Decoder> = claims.iter().map(Claim::decoder).collect();
    assert_eq!(decoders, [Decoder::Rasdaemon, Decoder::RasdaemonDb]);
    for c in &claims {
        assert_eq!((c.cpu, c.bank), (Some(0), Some(7)), "{c:#?}");
        assert_eq!(c.status, Some(0x9c00_0040_0001_0091));
        assert_eq!((c.addr, c.misc), (Some(0x123_4000), Some(0x8c)));
        assert_eq!(c.severity, Some(ClaimedSeverity::Corrected));
        assert_eq!(
            c.flags,
            [Flag {
                name: "EN",
                shown: true
            }]
        );
        let class = c.class.as_ref().expect("MEMORY CONTROLLER RD_CHANNEL1_ERR");
        assert_eq!(class.kind, ClassKind::MemoryController);
        assert_eq!(class.fields, [("MMM", 1), ("CCCC", 1)]);
    }
    assert_eq!(
        claims[1].lines.len(),
        24,
        "the row's lines are its evidence"
    );
}

#[test]
fn rasdaemon_without_a_decoder_claims_only_raw_values() {
    // 0.6.8 on family 15h: `cpu_type= generic CPU`, no error message, no mci=: not decoded.
    let claims = claims(&golden("amd-f15h-dram-ce-qemu__rasdaemon"));
    assert_eq!(claims.len(), 2);
    for c in &claims {
        assert_eq!((c.severity, &c.class, c.flags.len()), (None, &None, 0));
        assert_eq!(c.status, Some(0x9c7d_4100_9208_0813));
    }
}

#[test]
fn kernel_raw_lines_of_a_panic_and_of_an_intel_ce() {
    let c = &claims(&golden("amd-f15h-dram-ue-panic__kmsg"))[0];
    assert_eq!(c.decoder(), Decoder::KernelRaw);
    assert_eq!(
        (c.cpu, c.bank, c.status),
        (Some(0), Some(4), Some(0xb600_0000_9208_0813))
    );
    assert_eq!((c.addr, c.misc), (Some(0x1234_5000), None));
    assert_eq!(c.severity, Some(ClaimedSeverity::Fatal));
    assert_eq!(c.lines.len(), 5); // the RIP line of an #MC with MCG_STATUS.RIPV

    let c = &claims(&golden("intel-skx-mem-ce__kmsg"))[0];
    assert_eq!((c.cpu, c.bank), (Some(0), Some(7)));
    assert_eq!(
        (c.addr, c.misc, c.severity),
        (Some(0x123_4000), Some(0x8c), None)
    );
}

#[test]
fn the_shipped_goldens_hold_no_finding() {
    let cases = [
        (
            "amd-f15h-dram-ce-qemu",
            dram_ce(1, Delivery::Hardware),
            "kmsg",
            vec![Decoder::EdacMceAmd],
        ),
        (
            "amd-f15h-dram-ce-qemu",
            dram_ce(1, Delivery::Hardware),
            "trace",
            vec![Decoder::Trace],
        ),
        (
            "amd-f15h-dram-ce-qemu",
            dram_ce(1, Delivery::Hardware),
            "rasdaemon",
            vec![Decoder::Rasdaemon, Decoder::RasdaemonDb],
        ),
        (
            "amd-f15h-dram-ce-debugfs",
            dram_ce(1, Delivery::Software),
            "kmsg",
            vec![Decoder::EdacMceAmd],
        ),
        (
            "amd-f15h-dram-ce-debugfs",
            dram_ce(1, Delivery::Software),
            "trace",
            vec![Decoder::Trace],
        ),
        (
            "amd-f15h-dram-ce-command",
            dram_ce(1, Delivery::Hardware),
            "mce-instance",
            vec![Decoder::Trace],
        ),
        (
            "intel-skx-mem-ce",
            skx_ce(),
            "kmsg",
            vec![Decoder::KernelRaw],
        ),
        ("intel-skx-mem-ce", skx_ce(), "trace", vec![Decoder::Trace]),
        (
            "intel-skx-mem-ce",
            skx_ce(),
            "rasdaemon",
            vec![Decoder::Rasdaemon, Decoder::RasdaemonDb],
        ),
    ];
    for (scenario, injected, collector, decoders) in cases {
        let lines = golden(&format!("{scenario}__{collector}"));
        let acc = account(collector, &claims(&lines), &[injected], &expect(&decoders));
        assert_eq!(
            keys(&acc.findings),
            Vec::<String>::new(),
            "{scenario} {collector}: {:#?}",
            acc.findings
        );
    }
}

#[test]
fn a_changed_claim_is_a_finding_with_its_evidence() {
    let mut lines = golden("amd-f15h-dram-ce-qemu__kmsg");
    for l in &mut lines {
        *l = l
            .replace("[-|CE|MiscV|AddrV|", "[-|CE|-|AddrV|")
            .replace(
                "Error Addr: 0x0000000012345000",
                "Error Addr: 0x0000000012346000",
            )
            .replace("part-proc: SRC", "part-proc: RES");
    }
    let acc = account(
        "kmsg",
        &claims(&lines),
        &[dram_ce(1, Delivery::Hardware)],
        &expect(&[Decoder::EdacMceAmd]),
    );
    assert_eq!(
        keys(&acc.findings),
        [
            "kmsg/edac-mce-amd/flag",
            "kmsg/edac-mce-amd/address",
            "kmsg/edac-mce-amd/class"
        ]
    );
    let flag = &acc.findings[0];
    assert_eq!(flag.kind, Kind::MissingDecode);
    assert_eq!(flag.injected, "MiscV set in 0x9c7d410092080813");
    assert_eq!(flag.claimed, "MiscV not shown");
    assert!(
        flag.evidence.contains("MC4_STATUS[-|CE|-|AddrV|-|CECC|-]"),
        "{}",
        flag.evidence
    );
    let addr = &acc.findings[1];
    assert_eq!(
        (addr.injected.as_str(), addr.claimed.as_str()),
        ("0x12345000", "0x12346000")
    );
    assert!(
        acc.findings[2].claimed.contains("PP=1"),
        "{}",
        acc.findings[2].claimed
    );
}

/// One AMD record's kmsg lines and the record, for the class rules.
fn amd_record(bank: u32, status: u64, addr: u64, lines: &[&str]) -> (Vec<String>, Injected) {
    let injected = Injected {
        record: MceRecord {
            cpu: 0,
            bank,
            status,
            addr,
            ..MceRecord::default()
        },
        delivery: Delivery::Hardware,
        vendor: Vendor::Amd,
    };
    (lines.iter().map(|s| s.to_string()).collect(), injected)
}

fn class_findings(lines: &[String], injected: &Injected) -> Vec<Finding> {
    account(
        "kmsg",
        &claims(lines),
        std::slice::from_ref(injected),
        &expect(&[Decoder::EdacMceAmd]),
    )
    .findings
}

/// No finding in the real lines; the findings once `from` reads `to` in them.
fn found_once_changed(lines: &[String], injected: &Injected, from: &str, to: &str) -> Vec<Finding> {
    assert_eq!(keys(&class_findings(lines, injected)), Vec::<String>::new());
    let moved: Vec<String> = lines.iter().map(|l| l.replace(from, to)).collect();
    class_findings(&moved, injected)
}

/// `rasdrill fuzz --seed 1` on kernel 6.1: a cache hierarchy code (0000 0001 RRRR TTLL,
/// RRRR=7 evict, TT=0 instruction, LL=3) that edac_mce_amd decodes rightly. `tx:` is printed
/// for every code but bus and internal ones, so it does not say "TLB"; `mem-tx: EV` (the
/// kernel's rrrr_msgs) says "cache hierarchy".
#[test]
fn a_cache_code_with_tx_and_mem_tx_is_the_cache_class() {
    let (lines, injected) = amd_record(
        0,
        0xd000_0000_0019_0173,
        0,
        &[
            "[    4.456290] [Hardware Error]: Corrected error, no action required.",
            "[    4.456290] [Hardware Error]: CPU:0 (15:2:2) MC0_STATUS[Over|CE|-|-|-|-|-]: 0xd000000000190173",
            "[    4.456290] [Hardware Error]: MC0 Error: ",
            "[    4.456290] [Hardware Error]: Corrupted MC0 MCE info?",
            "[    4.456290] [Hardware Error]: cache level: L3/GEN, tx: INSN, mem-tx: EV",
        ],
    );
    let c = &claims(&lines)[0];
    let class = c.class.as_ref().expect("the error-code line");
    assert_eq!(class.kind, ClassKind::Cache);
    assert_eq!(class.fields, [("LL", 3), ("TT", 0), ("RRRR", 7)]);
    assert_eq!(
        keys(&class_findings(&lines, &injected)),
        Vec::<String>::new()
    );

    // RRRR 0 is `GEN` in the kernel's table, and a request the decoder got wrong is a finding.
    let (lines, injected) = amd_record(
        2,
        0x9c00_0000_000e_0107,
        0,
        &[
            "[Hardware Error]: Corrected error, no action required.",
            "[Hardware Error]: CPU:1 (15:2:2) MC2_STATUS[-|CE|MiscV|AddrV|-|-|-]: 0x9c000000000e0107",
            "[Hardware Error]: Error Addr: 0x0000000000000000",
            "[Hardware Error]: MC2 Error: [Hardware Error]: Corrupted MC2 MCE info?",
            "[Hardware Error]: cache level: L3/GEN, tx: DATA, mem-tx: GEN",
        ],
    );
    let injected = Injected {
        record: MceRecord {
            cpu: 1,
            ..injected.record
        },
        ..injected
    };
    let found = found_once_changed(&lines, &injected, "mem-tx: GEN", "mem-tx: EV");
    assert_eq!(keys(&found), ["kmsg/edac-mce-amd/class"]);
    assert_eq!(found[0].kind, Kind::WrongDecode);
}

/// `tx:` alone is printed for TLB codes (right) and for codes the decoder has no branch for:
/// a memory-controller code (0000 0000 1MMM CCCC, from `rasdrill fuzz --seed 1`) gets its
/// channel bits read as a cache level and a transaction type. No class is named: a decode
/// missing, not a wrong one.
#[test]
fn tx_alone_fits_a_tlb_code_and_misses_a_memory_controller_code() {
    let (lines, injected) = amd_record(
        0,
        0x9400_0000_0009_00ad,
        0x5_ee3e_b460_2dc0,
        &[
            "[   13.611695] [Hardware Error]: Corrected error, no action required.",
            "[   13.611843] [Hardware Error]: CPU:0 (15:2:2) MC0_STATUS[-|CE|-|AddrV|-|-|-]: 0x94000000000900ad",
            "[   13.611936] [Hardware Error]: Error Addr: 0x0005ee3eb4602dc0",
            "[   13.611975] [Hardware Error]: MC0 Error: ",
            "[   13.612042] [Hardware Error]: Corrupted MC0 MCE info?",
            "[   13.612100] [Hardware Error]: cache level: L1, tx: RESV",
        ],
    );
    let found = class_findings(&lines, &injected);
    assert_eq!(keys(&found), ["kmsg/edac-mce-amd/class"]);
    assert_eq!(found[0].kind, Kind::MissingDecode);
    assert_eq!(
        found[0].injected,
        "code 0x00ad: memory controller error (MMM=2 CCCC=13)"
    );
    assert_eq!(found[0].claimed, "no class named (LL=1 TT=3)");

    // A TLB code (0000 0000 0001 TTLL) printed the same way is decoded rightly.
    let (lines, injected) = amd_record(
        0,
        0xd800_0000_000c_0011,
        0,
        &[
            "[Hardware Error]: Corrected error, no action required.",
            "[Hardware Error]: CPU:0 (15:2:2) MC0_STATUS[Over|CE|MiscV|-|-|-|-]: 0xd8000000000c0011",
            "[Hardware Error]: cache level: L1, tx: INSN",
        ],
    );
    let found = found_once_changed(&lines, &injected, "tx: INSN", "tx: DATA");
    assert_eq!(keys(&found), ["kmsg/edac-mce-amd/class"]);
}

#[test]
fn severity_and_class_follow_the_model() {
    // An Intel memory-controller code, shown by edac_mce_amd with a cache level: no class.
    let lines: Vec<String> = [
        "[Hardware Error]: Uncorrected, software containable error.",
        "[Hardware Error]: CPU:0 (15:2:2) MC2_STATUS[-|UE|-|-|-|-]: 0xb000000000000090",
        "[Hardware Error]: cache level: RESV, tx: INSN",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let injected = Injected {
        record: MceRecord {
            cpu: 0,
            bank: 2,
            status: 0xb000_0000_0000_0090,
            ..MceRecord::default()
        },
        delivery: Delivery::Software,
        vendor: Vendor::Amd,
    };
    let acc = account(
        "kmsg",
        &claims(&lines),
        std::slice::from_ref(&injected),
        &expect(&[Decoder::EdacMceAmd]),
    );
    assert_eq!(keys(&acc.findings), ["kmsg/edac-mce-amd/class"]);
    assert_eq!(
        acc.findings[0].injected,
        "code 0x0090: memory controller error (MMM=1 CCCC=0)"
    );
    assert_eq!(acc.findings[0].claimed, "no class named (LL=0 TT=0)");

    let corrected = lines[0].replace(
        "Uncorrected, software containable error.",
        "Corrected error, no action required.",
    );
    let lines = [corrected, lines[1].clone()];
    let acc = account(
        "kmsg",
        &claims(&lines),
        &[injected],
        &expect(&[Decoder::EdacMceAmd]),
    );
    assert_eq!(keys(&acc.findings), ["kmsg/edac-mce-amd/severity"]);
    assert_eq!(
        acc.findings[0].injected,
        "uncorrected, recoverable (UC is set, PCC is clear)"
    );
}

#[test]
fn the_hardware_path_masks_the_address_below_misc_lsb() {
    let mut inj = skx_ce();
    inj.record.addr = 0x123_4567;
    inj.record.misc = 0x8c; // LSB 12
    let lines = golden("intel-skx-mem-ce__trace");
    let acc = account(
        "trace",
        &claims(&lines),
        &[inj.clone()],
        &expect(&[Decoder::Trace]),
    );
    assert!(acc.findings.is_empty(), "{:#?}", acc.findings);
    inj.delivery = Delivery::Software;
    let acc = account("trace", &claims(&lines), &[inj], &expect(&[Decoder::Trace]));
    assert_eq!(keys(&acc.findings), ["trace/trace/address"]);
}

#[test]
fn every_record_is_accounted_for_once_or_excused() {
    let lines = golden("amd-f15h-dram-ce-qemu__trace");
    let both = [
        dram_ce(1, Delivery::Hardware),
        dram_ce(0, Delivery::Hardware),
    ];
    let acc = account("trace", &claims(&lines), &both, &expect(&[Decoder::Trace]));
    assert_eq!(keys(&acc.findings), ["trace/trace/record"]);
    assert!(
        acc.findings[0].injected.starts_with("CPU 0 bank 4"),
        "{}",
        acc.findings[0].injected
    );

    let twice: Vec<String> = lines.iter().chain(lines.iter()).cloned().collect();
    let acc = account(
        "trace",
        &claims(&twice),
        &both[..1],
        &expect(&[Decoder::Trace]),
    );
    assert_eq!(keys(&acc.findings), ["trace/trace/count"]);
    assert_eq!(acc.findings[0].claimed, "the same record again");

    let acc = account(
        "trace",
        &claims(&lines),
        &both[1..],
        &expect(&[Decoder::Trace]),
    );
    assert_eq!(
        keys(&acc.findings),
        ["trace/trace/count", "trace/trace/record"]
    );
    assert_eq!(acc.findings[0].claimed, "a record nobody injected");

    // On a kernel with the CEC, a corrected DRAM error missing from the kernel log is excused.
    let cec = Expectation {
        cec: true,
        ..expect(&[Decoder::EdacMceAmd])
    };
    let acc = account("kmsg", &[], &both[..1], &cec);
    assert!(acc.findings.is_empty(), "{:#?}", acc.findings);
    assert_eq!(
        acc.excused,
        ["edac-mce-amd: CPU 1 bank 4 status 0x9c7d410092080813: absorbed by the CEC"]
    );
    // Not a memory error: the CEC does not take it.
    let mut other = dram_ce(1, Delivery::Hardware);
    other.record.bank = 2;
    let acc = account("kmsg", &[], &[other], &cec);
    assert_eq!(keys(&acc.findings), ["kmsg/edac-mce-amd/record"]);
}

#[test]
fn known_findings_pass_new_and_vanished_ones_fail() {
    let mut lines = golden("amd-f15h-dram-ce-qemu__trace");
    lines[0] = lines[0].replace("MC4: 9c7d", "MC4: 1c7d");
    let acc = account(
        "trace",
        &claims(&lines),
        &[dram_ce(1, Delivery::Hardware)],
        &expect(&[Decoder::Trace]),
    );
    let known = |key: &str| KnownFinding {
        key: key.to_string(),
        why: "documented".to_string(),
    };
    let v = compare_known(
        acc.findings.clone(),
        &[known("trace/trace/status")],
        Vec::new(),
    );
    assert!(v.passed(), "{}", v.details());
    assert_eq!(v.summary(), "1 finding (1 known, 0 new)");
    let v = compare_known(acc.findings.clone(), &[], Vec::new());
    assert!(!v.passed());
    assert!(v.details().starts_with("new finding trace/trace/status (wrong decode): injected 0x9c7d410092080813, claimed 0x1c7d410092080813"), "{}", v.details());
    let v = compare_known(Vec::new(), &[known("kmsg/edac-mce-amd/flag")], Vec::new());
    assert!(!v.passed());
    assert_eq!(
        v.summary(),
        "0 findings (0 known, 0 new), 1 known finding(s) gone"
    );
}
