//! The rasdaemon collector against Debian's real rasdaemon in a real QEMU guest (TCG): what it
//! prints and records for a corrected error injected by QEMU and by mce-inject, on an AMD
//! family 15h and an Intel Skylake server model, and that every scenario starts empty.
//!
//! Needs a cached kernel (`rasdrill kernel fetch`) and apt's lists (the packages are fetched
//! into the same cache on first use).

use std::path::Path;
use std::time::{Duration, Instant};

use rasdrill::agent::protocol::{Reply, Request};
use rasdrill::collect::rasdaemon::Rasdaemon;
use rasdrill::collect::{Collected, Collector};
use rasdrill::guest::{AccelChoice, Guest, GuestSpec};
use rasdrill::target::Target;
use rasdrill_inject::debugfs::InjectionType;
use rasdrill_inject::guard::Allow;
use rasdrill_inject::request::GuestFacts;
use rasdrill_inject::{MceRecord, Payload, Place, Vendor};
use rasdrill_qemu::cmdline::GUEST_BANKS;
use rasdrill_qemu::kernel::KernelCache;

/// Where the agent puts the daemon's stderr.
const STDERR: &str = "/var/log/rasdrill/rasdaemon.stderr";

/// rasdaemon records a corrected error within about 1.5 s (QEMU's: the next poll, each second);
/// this only bounds a failing wait.
const RECORD_DEADLINE: Duration = Duration::from_secs(20);

/// A corrected DRAM ECC error in bank 4 (docs/kernel-interfaces.md, "Kernel log (dmesg)").
fn dram_ce() -> MceRecord {
    MceRecord {
        cpu: 0,
        bank: 4,
        status: 0x9c7d_4100_9208_0813,
        addr: 0x1234_5000,
        ..MceRecord::default()
    }
}

/// Plans the record through QEMU's `mce` command, as every injection is planned, and delivers it.
fn inject_through_qemu(guest: &mut Guest, record: MceRecord) {
    let payload = Payload::Qemu {
        records: vec![record],
        broadcast: false,
        overflow: false,
    };
    let request = rasdrill_inject::Request {
        payload: payload.clone(),
        place: Place::Guest(GuestFacts {
            vcpus: 2,
            banks: GUEST_BANKS,
            // The vendor decides only which mce-inject flags fit.
            vendor: Vendor::Unknown,
            pcie: false,
        }),
    };
    let actions = request.plan(Allow::default()).unwrap();
    guest.inject(&payload, &actions, &mut |_| {}).unwrap();
}

fn boot(cpu_model: &str, modules: &[&str], collector: &mut Rasdaemon) -> Guest {
    let needs = collector
        .guest_needs(&mut |m| eprintln!("rasdaemon: {m}"))
        .unwrap();
    let spec = GuestSpec {
        cpu_model: cpu_model.into(),
        vcpus: 2,
        memory_mib: 256,
        kernel: KernelCache::from_env().unwrap().find(None).unwrap(),
        kernel_args: Vec::new(),
        modules: modules.iter().map(|m| m.to_string()).collect(),
        accel: AccelChoice::Tcg,
        extra_files: needs.files,
        setup: needs.setup,
        poll_interval_s: 1,
        agent: assert_cmd::cargo::cargo_bin("rasdrill"),
        naive: false,
        pcie: false,
    };
    let guest = Guest::boot(&spec, &mut |m| eprintln!("guest: {m}")).unwrap();
    eprintln!("boot took {:.2?}", guest.boot_time());
    guest
}

/// Polls `collect` until it has `records` records, as a `wait` step does.
fn wait_for_records(
    collector: &mut Rasdaemon,
    guest: &mut Guest,
    records: usize,
    since: Instant,
) -> Collected {
    loop {
        let collected = collector.collect(guest).unwrap();
        if collected.records >= records {
            eprintln!(
                "{} record(s) {:.2?} after the injection",
                collected.records,
                since.elapsed()
            );
            eprintln!("{}", collected.lines.join("\n"));
            return collected;
        }
        if since.elapsed() >= RECORD_DEADLINE {
            let log = guest.read_file(Path::new(STDERR)).unwrap_or_default();
            panic!(
                "rasdaemon recorded {} of {records} records within {RECORD_DEADLINE:?}: {:#?}\n\
                 its stderr:\n{log}",
                collected.records, collected.lines
            );
        }
    }
}

fn has_line(collected: &Collected, wanted: &str) -> bool {
    collected.lines.iter().any(|l| l == wanted)
}

fn decoded(collected: &Collected) -> Vec<&String> {
    collected
        .lines
        .iter()
        .filter(|l| l.starts_with("mce_record: "))
        .collect()
}

#[test]
fn amd_f15h_corrected_dram_error_from_qemu_and_from_mce_inject() {
    let mut first = Rasdaemon::from_env(Default::default()).unwrap();
    let mut guest = boot(
        "EPYC,-hypervisor,family=21,model=2",
        &["edac_mce_amd"],
        &mut first,
    );

    // Scenario 1: QEMU's `mce` command.
    let t = Instant::now();
    first.start(&mut guest, &mut |_| {}).unwrap();
    eprintln!("start took {:.2?}", t.elapsed());
    assert_eq!(first.collect(&mut guest).unwrap(), Collected::default());
    let injected = Instant::now();
    inject_through_qemu(&mut guest, dram_ce());
    let collected = wait_for_records(&mut first, &mut guest, 1, injected);
    let t = Instant::now();
    first.stop(&mut guest).unwrap();
    eprintln!("stop took {:.2?}", t.elapsed());
    let after_stop = first.collect(&mut guest).unwrap();
    assert_eq!(after_stop, collected, "stop found nothing new");
    let lines = decoded(&collected);
    assert_eq!(lines.len(), 1, "{:#?}", collected.lines);
    // rasdaemon 0.6.8 has no decoder for family 15h: a generic line with the raw values.
    assert!(
        lines[0].ends_with(
            "bank=4, status= 9c7d410092080813, cpu_type= generic CPU, cpu= 0, socketid= 0, \
             misc= 0, addr= 12345000, synd= 0, mcgstatus= 0, mcgcap= 100010a, apicid= 0"
        ),
        "{}",
        lines[0]
    );
    for wanted in [
        "mce_record id=1:",
        "  mcgcap=16777482 (0x100010a)",
        "  status=-7170503560998156269 (0x9c7d410092080813)",
        "  addr=305418240 (0x12345000)",
        "  tsc=0",
        "  bank=4",
        "  cpuvendor=2",
    ] {
        assert!(
            has_line(&collected, wanted),
            "no `{wanted}` in {:#?}",
            collected.lines
        );
    }
    assert_eq!(collected.records, 1);

    // Scenario 2, same guest: a fresh collector sees nothing of scenario 1; mce-inject `sw`.
    let mut second = Rasdaemon::from_env(Default::default()).unwrap();
    second.start(&mut guest, &mut |_| {}).unwrap();
    assert_eq!(second.collect(&mut guest).unwrap(), Collected::default());
    let injected = Instant::now();
    let request = Request::Inject {
        record: dram_ce(),
        flags: InjectionType::Sw,
    };
    let reply = guest
        .request("injecting", request, Duration::from_secs(30))
        .unwrap();
    assert!(matches!(reply, Reply::Injected { .. }), "{reply:?}");
    let collected = wait_for_records(&mut second, &mut guest, 1, injected);
    second.stop(&mut guest).unwrap();
    assert_eq!(
        second.collect(&mut guest).unwrap(),
        collected,
        "stop found nothing new"
    );
    assert_eq!(collected.records, 1, "{:#?}", collected.lines);
    // From mce-inject: MCG_CAP is not filled in and the TSC is real.
    assert!(
        has_line(&collected, "mce_record id=1:"),
        "{:#?}",
        collected.lines
    );
    assert!(has_line(&collected, "  mcgcap=0"), "{:#?}", collected.lines);
    assert!(
        has_line(
            &collected,
            "  status=-7170503560998156269 (0x9c7d410092080813)"
        ),
        "{:#?}",
        collected.lines
    );
    assert!(!has_line(&collected, "  tsc=0"), "{:#?}", collected.lines);
    assert_eq!(decoded(&collected).len(), 1, "{:#?}", collected.lines);
    guest.shutdown();
}

#[test]
fn intel_skx_corrected_error_is_decoded_by_rasdaemon() {
    let mut collector = Rasdaemon::from_env(Default::default()).unwrap();
    let mut guest = boot("Skylake-Server", &[], &mut collector);
    collector.start(&mut guest, &mut |_| {}).unwrap();
    let injected = Instant::now();
    inject_through_qemu(&mut guest, dram_ce());
    let collected = wait_for_records(&mut collector, &mut guest, 1, injected);
    collector.stop(&mut guest).unwrap();
    assert_eq!(
        collector.collect(&mut guest).unwrap(),
        collected,
        "stop found nothing new"
    );
    let lines = decoded(&collected);
    assert_eq!(lines.len(), 1, "{:#?}", collected.lines);
    assert!(
        lines[0].ends_with(
            "bank=4, status= 9c7d410092080813, <24:92>, mci=Corrected_error Error_enabled, \
             mca=BUS Level-3 Local-CPU-originated-request Read Memory-access \
             Request-did-not-timeout Error PCU internal error , cpu_type= Skylake server, \
             cpu= 0, socketid= 0, misc= 0, addr= 12345000, synd= 0, mcgstatus=0, \
             mcgcap= 100010a, apicid= 0"
        ),
        "{}",
        lines[0]
    );
    for wanted in [
        "  mcistatus_msg='Corrected_error Error_enabled'",
        "  mcastatus_msg='BUS Level-3 Local-CPU-originated-request Read Memory-access \
         Request-did-not-timeout Error PCU internal error '",
    ] {
        assert!(
            has_line(&collected, wanted),
            "no `{wanted}` in {:#?}",
            collected.lines
        );
    }
    assert!(
        has_line(&collected, "  cpuvendor=0"),
        "{:#?}",
        collected.lines
    );
    guest.shutdown();
}
