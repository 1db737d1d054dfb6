//! An `inject` step: the records (inline or from an mce-inject file) or the EDAC request, and
//! the way they are delivered.

use super::*;

const INJECT_KEYS: &[&str] = &[
    "via",
    "file",
    "cpu",
    "bank",
    "status",
    "addr",
    "misc",
    "synd",
    "ipid",
    "mcgstatus",
    "flags",
    "broadcast",
    "mc",
    "section",
    "word",
    "ecc_vector",
    "access",
    "fake_inject",
];
const STATUS_KEYS: &[&str] = &["bits", "mca_code", "model_code"];
const FAKE_INJECT_KEYS: &[&str] = &[
    "branch", "channel", "slot", "csrow", "memory", "ue", "count",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Qemu,
    Debugfs,
    Edac,
}

impl Via {
    fn name(self) -> &'static str {
        match self {
            Via::Qemu => "qemu",
            Via::Debugfs => "debugfs",
            Via::Edac => "edac",
        }
    }

    /// The keys an inject step may have with this `via`.
    fn keys(self) -> &'static [&'static str] {
        match self {
            Via::Qemu => &[
                "via",
                "file",
                "cpu",
                "bank",
                "status",
                "addr",
                "misc",
                "mcgstatus",
                "broadcast",
            ],
            Via::Debugfs => &[
                "via", "file", "cpu", "bank", "status", "addr", "misc", "synd", "ipid", "flags",
            ],
            Via::Edac => &[
                "via",
                "mc",
                "section",
                "word",
                "ecc_vector",
                "access",
                "fake_inject",
            ],
        }
    }

    /// Why `key` (valid with another `via`) does not apply to this one.
    fn why_not(self, key: &str) -> &'static str {
        match (self, key) {
            (Via::Qemu, "synd" | "ipid") => "QEMU models only CTL, STATUS, ADDR and MISC per bank",
            (Via::Qemu, "flags") => "flags are mce-inject's; use via: debugfs",
            (Via::Debugfs, "mcgstatus") => {
                "mce-inject's debugfs directory has no mcgstatus file; the kernel sets it"
            }
            (Via::Debugfs, "broadcast") => "only QEMU's mce command broadcasts (-b)",
            (Via::Edac, _) => "via: edac injects DRAM accesses, not MCE records",
            _ => "it belongs to via: edac",
        }
    }
}

pub(super) fn inject(node: &Node, path: &str, ctx: &Ctx, p: &mut Problems) -> Option<Inject> {
    let mut f = Fields::new(node, path, INJECT_KEYS, p)?;
    let via_choices = [
        ("qemu", Via::Qemu),
        ("debugfs", Via::Debugfs),
        ("edac", Via::Edac),
    ];
    let via = f
        .require("via", "qemu, debugfs or edac", p)
        .and_then(|n| one_of(n, &f.child("via"), &via_choices, p));
    let Some(via) = via else {
        // Without a valid `via`, the other keys cannot be judged: only unknown ones are reported.
        for key in INJECT_KEYS {
            f.take(key);
        }
        f.finish(p);
        return None;
    };
    let mut ok = via_fits_target(via, node, path, ctx, p);
    for key in INJECT_KEYS.iter().filter(|k| !via.keys().contains(k)) {
        if let Some(n) = f.take(key) {
            p.add(
                n.loc,
                &f.child(key),
                format!(
                    "does not apply to via: {} ({})",
                    via.name(),
                    via.why_not(key)
                ),
            );
            ok = false;
        }
    }
    let inject = match via {
        Via::Edac => edac(&mut f, p).map(Inject::Edac),
        Via::Qemu | Via::Debugfs => {
            let records = records(&mut f, via, ctx, p);
            let broadcast = match f.take("broadcast") {
                Some(n) => boolean(n, &f.child("broadcast"), p),
                None => Some(false),
            };
            let flags_choices = InjectionType::ALL.map(|t| (t.as_str(), t));
            let flags = match f.take("flags") {
                Some(n) => one_of(n, &f.child("flags"), &flags_choices, p).and_then(|flags| {
                    let vendor = ctx.machine.as_ref().map(|m| m.vendor);
                    if flags.needs_amd() && vendor == Some(Vendor::Intel) {
                        p.add(n.loc, &f.child("flags"), format!(
                            "`{}` is AMD only (mce-inject writes AMD bank MSRs); this machine is Intel: use sw",
                            flags.as_str()
                        ));
                        return None;
                    }
                    Some(flags)
                }),
                None => Some(InjectionType::Sw),
            };
            match (via, records, broadcast, flags) {
                (Via::Qemu, Some(records), Some(broadcast), _) => {
                    Some(Inject::Qemu { records, broadcast })
                }
                (_, Some(records), _, Some(flags)) => Some(Inject::Debugfs { records, flags }),
                _ => None,
            }
        }
    };
    f.finish(p);
    if ok {
        inject
    } else {
        None
    }
}

fn via_fits_target(via: Via, node: &Node, path: &str, ctx: &Ctx, p: &mut Problems) -> bool {
    let message = match (via, ctx.target) {
        (Via::Qemu, Some(TargetKind::Local)) => "via: qemu needs target: guest (it is QEMU's monitor command)",
        (Via::Edac, Some(TargetKind::Guest)) => {
            "via: edac needs EDAC memory controllers, which QEMU guests do not have: use target: local \
             (with `root:` for a tree that stands in for the hardware)"
        }
        _ => return true,
    };
    p.add(node.loc, path, message);
    false
}

/// The records of an inject step: written inline, or read from an mce-inject file.
fn records(f: &mut Fields, via: Via, ctx: &Ctx, p: &mut Problems) -> Option<Vec<MceRecord>> {
    const RECORD_KEYS: &[&str] = &[
        "cpu",
        "bank",
        "status",
        "addr",
        "misc",
        "synd",
        "ipid",
        "mcgstatus",
    ];
    if let Some(file_node) = f.take("file") {
        let inline: Vec<&str> = RECORD_KEYS.iter().copied().filter(|k| f.has(k)).collect();
        if !inline.is_empty() {
            p.add(
                file_node.loc,
                f.path(),
                format!(
                    "give either `file` or the record's fields, not both (found {})",
                    list(&inline)
                ),
            );
            for key in inline {
                f.take(key);
            }
            return None;
        }
        return file_records(file_node, &f.child("file"), via, ctx, p);
    }
    let record = inline_record(f, p)?;
    let problems = record_problems(&record, via, ctx);
    for (field, message) in &problems {
        // Point at the field when it was written, else at the step.
        let loc = f.value_loc(field).unwrap_or(f.loc());
        p.add(loc, &f.child(field), message.clone());
    }
    problems.is_empty().then_some(vec![record])
}

fn inline_record(f: &mut Fields, p: &mut Problems) -> Option<MceRecord> {
    let mut ok = true;
    let mut num = |key: &str, f: &mut Fields, p: &mut Problems| -> u64 {
        match f.take(key) {
            Some(n) => number(n, &f.child(key), p).unwrap_or_else(|| {
                ok = false;
                0
            }),
            None => 0,
        }
    };
    let cpu = num("cpu", f, p);
    let addr = num("addr", f, p);
    let misc = num("misc", f, p);
    let synd = num("synd", f, p);
    let ipid = num("ipid", f, p);
    let mcgstatus = num("mcgstatus", f, p);
    let bank = f
        .require("bank", "the MCA bank", p)
        .and_then(|n| number(n, &f.child("bank"), p));
    let status = f
        .require(
            "status",
            "MCi_STATUS: a number, or {bits: [VAL, EN, ...], mca_code, model_code}",
            p,
        )
        .and_then(|n| status_value(n, &f.child("status"), p));
    let record = MceRecord {
        cpu: u32::try_from(cpu).unwrap_or(u32::MAX),
        bank: u32::try_from(bank?).unwrap_or(u32::MAX),
        status: status?,
        addr,
        misc,
        synd,
        ipid,
        mcgstatus,
        ..MceRecord::default()
    };
    ok.then_some(record)
}

/// A status: a number, or named bits plus the MCA and model-specific error codes.
fn status_value(node: &Node, path: &str, p: &mut Problems) -> Option<u64> {
    if !matches!(node.value, Value::Map(_)) {
        return number(node, path, p);
    }
    let mut f = Fields::new(node, path, STATUS_KEYS, p)?;
    let mut ok = true;
    let mut value = 0;
    if let Some(n) = f.require("bits", "named bits, e.g. [VAL, EN, ADDRV]", p) {
        for (ipath, item) in items(n, &f.child("bits"), p).unwrap_or_default() {
            let Some(name) = string(item, &ipath, p) else {
                ok = false;
                continue;
            };
            match status::named_bit(&name) {
                Some(bit) => value |= bit.mask,
                None => {
                    let names: Vec<&str> = NAMED_BITS.iter().map(|b| b.name).collect();
                    p.add(
                        item.loc,
                        &ipath,
                        format!("`{name}` is not a status bit (bits: {})", names.join(" ")),
                    );
                    ok = false;
                }
            }
        }
    } else {
        ok = false;
    }
    let mut code = |key: &str, shift: u32, f: &mut Fields, p: &mut Problems| {
        if let Some(n) = f.take(key) {
            match number_in(n, &f.child(key), 0, 0xffff, p) {
                Some(c) => value |= c << shift,
                None => ok = false,
            }
        }
    };
    code("mca_code", 0, &mut f, p);
    code("model_code", status::MODEL_CODE_SHIFT, &mut f, p);
    f.finish(p);
    ok.then_some(value)
}

fn file_records(
    node: &Node,
    path: &str,
    via: Via,
    ctx: &Ctx,
    p: &mut Problems,
) -> Option<Vec<MceRecord>> {
    let written = string(node, path, p)?;
    let file = resolve(&ctx.dir, &written);
    if !file.is_file() {
        p.add(
            node.loc,
            path,
            format!(
                "{} is not an existing file (paths are relative to the scenario file)",
                file.display()
            ),
        );
        return None;
    }
    match mce_file::read_records(&file) {
        Ok(records) => {
            let mut ok = true;
            for (i, (loc, record)) in records.iter().enumerate() {
                let where_ = format!("{path} (record {} of {})", i + 1, records.len());
                for (field, message) in record_problems(record, via, ctx) {
                    p.add_in(&file, *loc, &where_, format!("{field}: {message}"));
                    ok = false;
                }
            }
            ok.then(|| records.into_iter().map(|(_, r)| r).collect())
        }
        Err(e) if e.loc.line > 0 => {
            p.add_in(&file, e.loc, path, e.message);
            None
        }
        Err(e) => {
            p.add(node.loc, path, format!("{}: {}", file.display(), e.message));
            None
        }
    }
}

/// What is wrong with one record on this machine and injector: (field, why) pairs.
fn record_problems(r: &MceRecord, via: Via, ctx: &Ctx) -> Vec<(&'static str, String)> {
    let mut problems: Vec<(&'static str, String)> = Vec::new();
    let banks = ctx.machine.as_ref().map_or(MAX_BANKS, |_| GUEST_BANKS);
    if r.bank >= banks {
        let why = if ctx.machine.is_some() {
            format!("the guest has {GUEST_BANKS} banks: 0-{}", GUEST_BANKS - 1)
        } else {
            format!(
                "the kernel handles at most {MAX_BANKS} banks: 0-{}",
                MAX_BANKS - 1
            )
        };
        problems.push(("bank", format!("{} is out of range ({why})", r.bank)));
    }
    if let Some(m) = &ctx.machine {
        if r.cpu >= m.vcpus {
            problems.push((
                "cpu",
                format!(
                    "{} is out of range (the guest has {} vCPUs: 0-{})",
                    r.cpu,
                    m.vcpus,
                    m.vcpus - 1
                ),
            ));
        }
    }
    if r.status & status::VAL == 0 {
        problems.push((
            "status",
            format!(
                "{:#018x} has no VAL (bit 63): the kernel ignores a bank without it and QEMU rejects it",
                r.status
            ),
        ));
    }
    let unsupported: [(&'static str, bool); 10] = [
        ("synd", via == Via::Qemu && r.synd != 0),
        ("ipid", via == Via::Qemu && r.ipid != 0),
        ("mcgstatus", via == Via::Debugfs && r.mcgstatus != 0),
        ("mcgcap", r.mcgcap != 0),
        ("tsc", r.tsc != 0),
        ("time", r.time != 0),
        ("socketid", r.socketid != 0),
        ("apicid", r.apicid != 0),
        ("processor", r.cpuvendor != 0 || r.cpuid != 0),
        ("rip", r.ip != 0 || r.cs != 0),
    ];
    for (what, set) in unsupported {
        if set {
            let message = match via {
                Via::Qemu => format!("QEMU's mce command cannot set {what}"),
                _ => format!("mce-inject's debugfs files cannot set {what}"),
            };
            problems.push((what, message));
        }
    }
    if r.hold {
        problems.push((
            "hold",
            "HOLD is a /dev/mcelog mode; inject the records one by one instead".into(),
        ));
    }
    if matches!(r.broadcast, Broadcast::Irq | Broadcast::Nmi) {
        let hint = if via == Via::Qemu {
            "use `broadcast: true` on the step"
        } else {
            "only QEMU broadcasts"
        };
        problems.push((
            "broadcast",
            format!("IRQBROADCAST/NMIBROADCAST are /dev/mcelog modes: {hint}"),
        ));
    }
    if r.delivery != Delivery::Auto || r.context != Context::Random {
        let hint = if via == Via::Debugfs {
            "choose the delivery with `flags: sw|hw` on the step"
        } else {
            "QEMU raises #MC for an uncorrected error, else the poller finds it"
        };
        problems.push((
            "delivery",
            format!("POLL/EXCP/IN_IRQ/IN_PROC are /dev/mcelog modes: {hint}"),
        ));
    }
    problems
}

fn edac(f: &mut Fields, p: &mut Problems) -> Option<EdacRequest> {
    let mc = match f.take("mc") {
        Some(n) => number_in(n, &f.child("mc"), 0, 255, p),
        None => Some(0),
    };
    if let Some(n) = f.take("fake_inject") {
        let amd64: Vec<&str> = ["section", "word", "ecc_vector", "access"]
            .into_iter()
            .filter(|k| f.has(k))
            .collect();
        if !amd64.is_empty() {
            p.add(
                n.loc,
                f.path(),
                format!(
                    "give either `fake_inject` or amd64_edac's {}, not both",
                    list(&amd64)
                ),
            );
            for k in amd64 {
                f.take(k);
            }
            return None;
        }
        let fake = fake_inject(n, &f.child("fake_inject"), mc? as u32, p)?;
        return Some(EdacRequest::Fake(fake));
    }
    let section = f
        .require(
            "section",
            "amd64_edac inject_section, 0-3 (or use fake_inject)",
            p,
        )
        .and_then(|n| number_in(n, &f.child("section"), 0, 3, p));
    let word = f
        .require("word", "amd64_edac inject_word, 0-8", p)
        .and_then(|n| number_in(n, &f.child("word"), 0, 8, p));
    let ecc_vector = f
        .require("ecc_vector", "amd64_edac inject_ecc_vector, 16 bits", p)
        .and_then(|n| number_in(n, &f.child("ecc_vector"), 0, 0xffff, p));
    let access_choices = [("read", EccAccess::Read), ("write", EccAccess::Write)];
    let access = f
        .require(
            "access",
            "read or write: the DRAM access that triggers the error",
            p,
        )
        .and_then(|n| one_of(n, &f.child("access"), &access_choices, p));
    // The ranges were checked above, with locations; the constructor checks them again.
    match EccInjection::new(mc? as u32, section?, word?, ecc_vector?, access?) {
        Ok(ecc) => Some(EdacRequest::Amd64(ecc)),
        Err(e) => {
            p.add(f.loc(), f.path(), e.to_string());
            None
        }
    }
}

fn fake_inject(node: &Node, path: &str, mc: u32, p: &mut Problems) -> Option<FakeInjection> {
    let mut f = Fields::new(node, path, FAKE_INJECT_KEYS, p)?;
    let mut ok = true;
    let mut layers = Vec::new();
    for layer in Layer::ALL {
        if let Some(n) = f.take(layer.name()) {
            match number_in(n, &f.child(layer.name()), 0, 255, p) {
                Some(v) => layers.push((layer, v)),
                None => ok = false,
            }
        }
    }
    let ue = match f.take("ue") {
        Some(n) => boolean(n, &f.child("ue"), p),
        None => Some(false),
    };
    let count = match f.take("count") {
        Some(n) => number_in(n, &f.child("count"), 1, 0xffff, p),
        None => Some(1),
    };
    f.finish(p);
    ok.then_some(())?;
    match FakeInjection::new(mc, &layers, ue?, count?) {
        Ok(fake) => Some(fake),
        Err(e) => {
            p.add(node.loc, path, e.to_string());
            None
        }
    }
}
