//! `rasdrill inject`: inject errors on this machine, safely.
//!
//! The order is the promise: build the requests, describe them (the dry run prints this plan),
//! run every check (guard, then preflight), and only then take the lock and write. A dry run
//! makes the same checks and exits as the real run would, but writes nothing and takes no lock.

use std::path::PathBuf;

use std::path::Path;
use std::time::Duration;

use clap::Args;
use rasdrill_inject::debugfs::InjectionType;
use rasdrill_inject::edac::{EccAccess, EccInjection, FakeInjection, Layer};
use rasdrill_inject::guard::Allow;
use rasdrill_inject::request::{self, AerRequest, EdacRequest, ExecuteError, GuestFacts};
use rasdrill_inject::{status, MceRecord, Payload, Place, Request, Via};

use crate::cmd::guest_inject::{self, GuestInject};
use crate::cmd::kernel::KernelArgs;
use crate::cmd::records::read_records;
use crate::exit::Failure;
use crate::guest::AccelChoice;
use crate::profile::{Profile, DEFAULT_PROFILE};
use crate::sources::{AerArgs, EinjArgs, HwpoisonArgs};

pub const EXAMPLES: &str = "\
Examples:
  # Show what a corrected DRAM ECC error on CPU 0, bank 4 would write; change nothing:
  rasdrill inject --cpu 0 --bank 4 --status 0x9c7d410092080813 --addr 0x12345000 --dry-run
  # Inject it through mce-inject's debugfs files (flags sw: the kernel only decodes it):
  rasdrill inject --cpu 0 --bank 4 --status 'VAL EN ADDRV 0x0813' --addr 0x12345000
  # Every record of an mce-inject file, raised as a real #MC (AMD only):
  rasdrill inject --file uncorrected.mce --flags hw --allow-uncorrected
  # amd64_edac DRAM ECC injection (CONFIG_EDAC_DEBUG), then a DRAM write:
  rasdrill inject --via edac --mc 0 --section 0 --word 2 --ecc-vector 0x1 --write
  # An EDAC core fake error, reported through ras:mc_event:
  rasdrill inject --via edac --fake-inject --mc 0 --layer csrow=1 --layer channel=0
  # Boot a throw-away AMD family 15h guest; inject a corrected DRAM ECC error through QEMU:
  rasdrill inject --guest amd-f15h --via qemu --cpu 0 --bank 4 --status 0x9c7d410092080813 --addr 0x12345000
  # The same record through the guest's own mce-inject debugfs files:
  rasdrill inject --guest --via debugfs --cpu 0 --bank 4 --status 0x9c7d410092080813 --addr 0x12345000
  # Two corrected errors into one bank, back to back on purpose: one record with OVER set:
  rasdrill inject --guest --via qemu --file two.mce --overflow
  # An uncorrected error that must panic the guest (the guard is for this machine, not guests):
  rasdrill inject --guest --via qemu --bank 4 --status 'VAL UC EN PCC 0x0813' --expect-panic
  # ACPI EINJ on a lab server: a correctable memory error at a physical address (page mask):
  rasdrill inject --via einj --einj-type 0x8 --addr 0x12345000 --dry-run
  # Poison page frame 0x12345 through hwpoison-inject's corrupt-pfn, then give it back:
  rasdrill inject --via hwpoison --pfn 0x12345 --allow-uncorrected
  rasdrill inject --via hwpoison --pfn 0x12345 --unpoison
  # A page of a child process poisoned with madvise(MADV_HWPOISON): it is killed by SIGBUS:
  rasdrill inject --via hwpoison --madvise hwpoison --allow-uncorrected
  # In a guest, a free page its agent finds (the kernel log and memory_failure_event show it):
  rasdrill inject --guest --via hwpoison --page free
  # A correctable AER error on PCI device 0000:00:1c.0 through the kernel's aer_inject:
  rasdrill inject --via aer --sbdf 0000:00:1c.0 --aer-error RCVR
  # AER in a guest, which then gets q35 with root port rp0 (0000:00:01.0) and an e1000e nic0
  # (0000:01:00.0): through QEMU's monitor, or through aer_inject in the guest:
  rasdrill inject --guest --via aer --qdev rp0 --aer-error COMP_TIME
  rasdrill inject --guest --via aer --sbdf 0000:01:00.0 --aer-error BAD_TLP

Safety: on this machine an uncorrected or deferred record is refused without --allow-uncorrected,
and a fatal one (PCC, or UC with OVER) without --allow-fatal, which also allows uncorrected ones.
This holds for flags sw too: the kernel hands uncorrected memory errors to memory_failure().
Alike: poisoning a page, soft offline, a non-fatal EINJ or AER type need --allow-uncorrected;
fatal and vendor EINJ types and fatal AER errors need --allow-fatal.
Writes go through a lock (<root>/run/lock/rasdrill.lock): two rasdrill never inject at once.";

#[derive(Debug, Args)]
pub struct InjectArgs {
    #[command(flatten)]
    pub record: RecordArgs,

    /// Inject the records of an mce-inject language file (repeatable; `-` is standard input)
    #[arg(long = "file", value_name = "FILE", help_heading = "Record")]
    pub files: Vec<PathBuf>,

    /// Which interface delivers the errors
    #[arg(long, value_enum, default_value_t = Via::Debugfs, help_heading = "Injection")]
    pub via: Via,

    /// mce-inject's injection type: sw only decodes; hw raises #MC, df the deferred-error and
    /// th the threshold interrupt (AMD)
    #[arg(
        long,
        value_name = "sw|hw|df|th",
        default_value = "sw",
        help_heading = "Injection"
    )]
    pub flags: InjectionType,

    #[command(flatten)]
    pub edac: EdacArgs,

    #[command(flatten)]
    pub einj: EinjArgs,

    #[command(flatten)]
    pub hwpoison: HwpoisonArgs,

    #[command(flatten)]
    pub aer: AerArgs,

    /// Prefix every sysfs, debugfs and proc path with DIR (a test tree, a chroot)
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/",
        help_heading = "Injection"
    )]
    pub root: PathBuf,

    /// Print the plan, one `write <path> <value>` line per action, run every check, change nothing
    #[arg(long, help_heading = "Injection")]
    pub dry_run: bool,

    /// Allow uncorrected and deferred errors on this machine
    #[arg(long, help_heading = "Safety")]
    pub allow_uncorrected: bool,

    /// Allow fatal errors (PCC) on this machine: they panic it. Implies --allow-uncorrected
    #[arg(long, help_heading = "Safety")]
    pub allow_fatal: bool,

    /// Boot a throw-away QEMU guest of this machine profile (amd-f15h, amd-k8, intel-skx) and
    /// inject into it instead of this machine
    #[arg(
        long,
        value_name = "PROFILE",
        num_args = 0..=1,
        default_missing_value = DEFAULT_PROFILE,
        value_parser = super::profile,
        help_heading = "Guest"
    )]
    pub guest: Option<&'static Profile>,

    #[command(flatten)]
    pub kernel: KernelArgs,

    /// How QEMU runs the guest: auto tries KVM (bounded) and falls back to TCG
    #[arg(long, value_enum, default_value_t = AccelChoice::Auto, help_heading = "Guest")]
    pub accel: AccelChoice,

    /// Seconds to wait for the guest's decoded output (or its panic)
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 10.0,
        help_heading = "Guest"
    )]
    pub timeout: f64,

    /// The injection should panic the guest: succeed only if it does
    #[arg(long, help_heading = "Guest")]
    pub expect_panic: bool,

    /// --via qemu: send the records back to back, so that two into one bank overflow it on
    /// purpose (QEMU sets OVER; the guest logs one record for the two). Without it, a record
    /// that would land on one the guest may not have consumed is refused
    #[arg(long, help_heading = "Guest")]
    pub overflow: bool,
}

/// One MCE record given on the command line. Numbers are C style: 0x hex, 0 octal, else decimal.
#[derive(Debug, Args)]
#[command(next_help_heading = "Record")]
pub struct RecordArgs {
    /// The CPU to inject on
    #[arg(long, value_parser = super::number_u32)]
    pub cpu: Option<u32>,
    /// The MCA bank
    #[arg(long, value_parser = super::number_u32)]
    pub bank: Option<u32>,
    /// MCi_STATUS: a number, or flags like `VAL UC EN 0x134` (see `rasdrill records explain`)
    #[arg(long, value_parser = super::status)]
    pub status: Option<u64>,
    /// MCi_ADDR; also sets ADDRV in the status, as the mce-inject language does. With --via
    /// einj or --via hwpoison --offline: the physical address
    #[arg(long, value_parser = super::number)]
    pub addr: Option<u64>,
    /// MCi_MISC; also sets MISCV in the status
    #[arg(long, value_parser = super::number)]
    pub misc: Option<u64>,
    /// MCi_SYND (SMCA)
    #[arg(long, value_parser = super::number)]
    pub synd: Option<u64>,
    /// MCi_IPID (SMCA)
    #[arg(long, value_parser = super::number)]
    pub ipid: Option<u64>,
    /// MCG_STATUS (QEMU only: the kernel sets it for mce-inject)
    #[arg(long, value_parser = super::number)]
    pub mcgstatus: Option<u64>,
}

impl RecordArgs {
    fn given(&self) -> Option<&'static str> {
        [
            (self.cpu.is_some(), "--cpu"),
            (self.bank.is_some(), "--bank"),
            (self.status.is_some(), "--status"),
            (self.addr.is_some(), "--addr"),
            (self.misc.is_some(), "--misc"),
            (self.synd.is_some(), "--synd"),
            (self.ipid.is_some(), "--ipid"),
            (self.mcgstatus.is_some(), "--mcgstatus"),
        ]
        .into_iter()
        .find_map(|(set, name)| set.then_some(name))
    }

    fn record(&self) -> Result<MceRecord, Failure> {
        let (Some(bank), Some(status)) = (self.bank, self.status) else {
            return Err(Failure::bad_input(
                "no record given: pass --bank and --status (and --cpu, default 0), or --file FILE",
            ));
        };
        let mut r = MceRecord {
            cpu: self.cpu.unwrap_or(0),
            bank,
            status,
            synd: self.synd.unwrap_or(0),
            ipid: self.ipid.unwrap_or(0),
            mcgstatus: self.mcgstatus.unwrap_or(0),
            ..Default::default()
        };
        if let Some(addr) = self.addr {
            r.addr = addr;
            r.status |= status::ADDRV;
        }
        if let Some(misc) = self.misc {
            r.misc = misc;
            r.status |= status::MISCV;
        }
        Ok(r)
    }
}

/// EDAC requests (--via edac).
#[derive(Debug, Args)]
#[command(next_help_heading = "EDAC (--via edac)")]
pub struct EdacArgs {
    /// The memory controller (mc<N>)
    #[arg(long, value_name = "N", value_parser = super::number_u32)]
    pub mc: Option<u32>,
    /// amd64_edac: the 16-byte section of the cache line, 0-3
    #[arg(long, value_parser = super::number)]
    pub section: Option<u64>,
    /// amd64_edac: the 16-bit word in the section, 0-8
    #[arg(long, value_parser = super::number)]
    pub word: Option<u64>,
    /// amd64_edac: the bits to flip, 16 bits (more than one may be uncorrectable)
    #[arg(long, value_parser = super::number)]
    pub ecc_vector: Option<u64>,
    /// amd64_edac: perform the injection with a DRAM read
    #[arg(long, conflicts_with = "write")]
    pub read: bool,
    /// amd64_edac: perform the injection with a DRAM write
    #[arg(long)]
    pub write: bool,
    /// Use the EDAC core's fake injection instead (debugfs, CONFIG_EDAC_DEBUG)
    #[arg(long)]
    pub fake_inject: bool,
    /// fake: a layer position, e.g. csrow=1 (repeatable; layers: branch channel slot csrow memory)
    #[arg(long, value_name = "LAYER=N", value_parser = layer_position)]
    pub layer: Vec<(Layer, u64)>,
    /// fake: report uncorrected errors
    #[arg(long)]
    pub ue: bool,
    /// fake: how many errors to report (0 means 1)
    #[arg(long, value_parser = super::number)]
    pub count: Option<u64>,
}

impl EdacArgs {
    fn ecc_given(&self) -> Option<&'static str> {
        [
            (self.section.is_some(), "--section"),
            (self.word.is_some(), "--word"),
            (self.ecc_vector.is_some(), "--ecc-vector"),
            (self.read, "--read"),
            (self.write, "--write"),
        ]
        .into_iter()
        .find_map(|(set, name)| set.then_some(name))
    }

    fn fake_given(&self) -> Option<&'static str> {
        [
            (self.fake_inject, "--fake-inject"),
            (!self.layer.is_empty(), "--layer"),
            (self.ue, "--ue"),
            (self.count.is_some(), "--count"),
        ]
        .into_iter()
        .find_map(|(set, name)| set.then_some(name))
    }

    fn given(&self) -> Option<&'static str> {
        self.mc
            .is_some()
            .then_some("--mc")
            .or_else(|| self.ecc_given())
            .or_else(|| self.fake_given())
    }
}

impl EdacArgs {
    /// The EDAC request the options describe: amd64_edac's, or a fake one.
    fn request(&self) -> Result<EdacRequest, Failure> {
        let mc = self.mc.unwrap_or(0);
        if self.fake_inject {
            if let Some(flag) = self.ecc_given() {
                return Err(Failure::bad_input(format!(
                    "{flag} is for amd64_edac injection, not --fake-inject"
                )));
            }
            let req = FakeInjection::new(mc, &self.layer, self.ue, self.count.unwrap_or(1))?;
            return Ok(EdacRequest::Fake(req));
        }
        if let Some(flag) = self.fake_given() {
            return Err(Failure::bad_input(format!("{flag} needs --fake-inject")));
        }
        let (Some(section), Some(word), Some(vector)) = (self.section, self.word, self.ecc_vector)
        else {
            return Err(Failure::bad_input(
                "amd64_edac injection needs --section, --word, --ecc-vector and --read or --write \
                 (or use --fake-inject)",
            ));
        };
        let access = match (self.read, self.write) {
            (true, false) => EccAccess::Read,
            (false, true) => EccAccess::Write,
            _ => {
                return Err(Failure::bad_input(
                    "amd64_edac injection needs --read or --write",
                ))
            }
        };
        Ok(EdacRequest::Amd64(EccInjection::new(
            mc, section, word, vector, access,
        )?))
    }
}

fn layer_position(s: &str) -> Result<(Layer, u64), String> {
    let (name, pos) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not LAYER=N, e.g. csrow=1"))?;
    Ok((name.parse()?, super::number(pos)?))
}

pub fn run(args: InjectArgs) -> Result<(), Failure> {
    let payload = payload(&args)?;
    let Some(profile) = args.guest else {
        let request = Request {
            payload,
            place: Place::Machine {
                root: args.root.clone(),
            },
        };
        return local(&args, &request);
    };
    if args.root != Path::new("/") {
        return Err(Failure::bad_input(
            "--root is for this machine's files; a --guest has its own",
        ));
    }
    // An AER request gets the PCIe topology, as a scenario's `machine: {pcie: true}` would.
    let facts = GuestFacts {
        pcie: payload.needs_pcie(),
        ..profile.facts()
    };
    let request = Request {
        payload,
        place: Place::Guest(facts),
    };
    guest_inject::run(
        &request,
        &GuestInject {
            profile,
            kernel: &args.kernel,
            accel: args.accel,
            timeout: Duration::from_secs_f64(args.timeout),
            expect_panic: args.expect_panic,
            dry_run: args.dry_run,
        },
    )
}

/// What the flags ask to inject, and how.
fn payload(args: &InjectArgs) -> Result<Payload, Failure> {
    refuse_foreign_flags(args)?;
    if args.overflow && args.via != Via::Qemu {
        return Err(Failure::bad_input(
            "--overflow is for --via qemu: only QEMU's mce command writes bank registers, which \
             a second record can overflow",
        ));
    }
    let not_sw = || -> Result<(), Failure> {
        if args.flags != InjectionType::Sw {
            return Err(Failure::bad_input("--flags is for --via debugfs"));
        }
        Ok(())
    };
    match args.via {
        Via::Qemu => {
            if args.flags != InjectionType::Sw {
                return Err(Failure::bad_input(
                    "--flags is for --via debugfs: QEMU's mce raises #MC for uncorrected errors and leaves corrected ones for the poller",
                ));
            }
            Ok(Payload::Qemu {
                records: records(args)?,
                broadcast: false,
                overflow: args.overflow,
            })
        }
        Via::Debugfs => Ok(Payload::Debugfs {
            records: records(args)?,
            flags: args.flags,
        }),
        Via::Edac => {
            no_record(
                args,
                "--mc and --section/--word/--ecc-vector/--read|--write, or --fake-inject",
            )?;
            not_sw()?;
            Ok(Payload::Edac(args.edac.request()?))
        }
        Via::Einj => {
            no_record(
                args,
                "--einj-type and, for its target, --addr, --apic or --sbdf",
            )?;
            not_sw()?;
            Ok(Payload::Einj(args.einj.request(args.record.addr)?))
        }
        Via::Hwpoison => {
            no_record(args, "--pfn, --madvise or --offline with --addr")?;
            not_sw()?;
            Ok(Payload::Hwpoison(args.hwpoison.request(args.record.addr)?))
        }
        Via::Aer => {
            if args.record.addr.is_some() {
                return Err(Failure::bad_input(
                    "--addr is not for --via aer: it takes --aer-error and --qdev or --sbdf",
                ));
            }
            no_record(args, "--aer-error and --qdev or --sbdf")?;
            not_sw()?;
            Ok(Payload::Aer(args.aer.request(args.einj.sbdf)?))
        }
    }
}

/// Refuses the options of another source than `--via` (`--addr` and `--sbdf` are shared).
fn refuse_foreign_flags(args: &InjectArgs) -> Result<(), Failure> {
    let groups = [
        (Via::Edac, args.edac.given()),
        (Via::Einj, args.einj.given()),
        (Via::Hwpoison, args.hwpoison.given()),
        (Via::Aer, args.aer.given()),
    ];
    for (via, flag) in groups {
        if let Some(flag) = flag.filter(|_| args.via != via) {
            return Err(Failure::bad_input(format!("{flag} is for --via {via}")));
        }
    }
    if args.einj.sbdf.is_some() && !matches!(args.via, Via::Einj | Via::Aer) {
        return Err(Failure::bad_input("--sbdf is for --via einj and --via aer"));
    }
    Ok(())
}

/// Refuses MCE record options (but `--addr`, which EINJ and hwpoison take) for a source that
/// takes none; `takes` says what it takes instead.
fn no_record(args: &InjectArgs, takes: &str) -> Result<(), Failure> {
    let record = args.record.given().filter(|f| *f != "--addr");
    if let Some(flag) = record.or(args.files.first().map(|_| "--file")) {
        return Err(Failure::bad_input(format!(
            "{flag} describes an MCE record, which --via {} does not take: it takes {takes}",
            args.via
        )));
    }
    Ok(())
}

/// On this machine (or the tree under --root): plan, then print the plan (dry run) or take the
/// lock and write.
fn local(args: &InjectArgs, request: &Request) -> Result<(), Failure> {
    let allow = Allow {
        uncorrected: args.allow_uncorrected,
        fatal: args.allow_fatal,
    };
    if args.dry_run {
        for a in request.describe()? {
            println!("{a}");
        }
        return request.plan(allow).map(drop).map_err(|e| {
            Failure::bad_input(format!("{e} (dry run: the real run would be refused)"))
        });
    }
    let done = request.execute(allow).map_err(|e| match e {
        ExecuteError::Refused(_) => Failure::bad_input(e),
        ExecuteError::Lock(e) => e.into(),
        ExecuteError::Perform(e) => e.into(),
    })?;
    match &request.payload {
        Payload::Debugfs { records, flags } => {
            let vendor = request::vendor(&args.root);
            for (i, r) in records.iter().enumerate() {
                println!(
                    "injected record {}: cpu {} bank {} status {:#x} ({}) through mce-inject ({flags})",
                    i + 1,
                    r.cpu,
                    r.bank,
                    r.status,
                    r.severity(vendor),
                );
            }
        }
        Payload::Edac(EdacRequest::Fake(req)) => {
            println!("injected a fake EDAC error on mc{}", req.mc())
        }
        Payload::Edac(EdacRequest::Amd64(req)) => println!(
            "injected a DRAM ECC error on mc{} ({})",
            req.mc(),
            req.access().file()
        ),
        Payload::Einj(req) => println!("injected EINJ error type {}", req.error_type()),
        Payload::Hwpoison(req) => println!("done: {req}"),
        Payload::Aer(AerRequest::Kernel(req)) => println!(
            "injected AER status into {} through the kernel's aer_inject",
            req.device()
        ),
        Payload::Qemu { .. } | Payload::Aer(AerRequest::Qemu(_)) => {
            unreachable!("the planner refuses QEMU's monitor on a machine")
        }
    }
    for outcome in &done.outcomes {
        println!("{outcome}");
    }
    Ok(())
}

/// The records to inject: from --file, or from the record options.
fn records(args: &InjectArgs) -> Result<Vec<MceRecord>, Failure> {
    if args.files.is_empty() {
        return Ok(vec![args.record.record()?]);
    }
    if let Some(flag) = args.record.given() {
        return Err(Failure::bad_input(format!(
            "{flag} and --file both describe records: use one or the other"
        )));
    }
    let mut records = Vec::new();
    for f in &args.files {
        records.extend(read_records(f)?);
    }
    if records.is_empty() {
        return Err(Failure::bad_input("the --file input holds no records"));
    }
    Ok(records)
}
