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
    "overflow",
    "mc",
    "section",
    "word",
    "ecc_vector",
    "access",
    "fake_inject",
    "einj_type",
    "mask",
    "apic",
    "sbdf",
    "notrigger",
    "pfn",
    "unpoison",
    "madvise",
    "offline",
    "aer_error",
    "correctable",
    "qdev",
    "advisory",
    "tlp_header",
];
const STATUS_KEYS: &[&str] = &["bits", "mca_code", "model_code"];
const FAKE_INJECT_KEYS: &[&str] = &[
    "branch", "channel", "slot", "csrow", "memory", "ue", "count",
];

use rasdrill_inject::einj::Sbdf;
use rasdrill_inject::request::{Request, Via};

use crate::sources::{AerArgs, EinjArgs, HwpoisonArgs, MadviseArg, OfflineArg, PageArg};

/// The keys an inject step may have with this `via`.
fn keys(via: Via) -> &'static [&'static str] {
    match via {
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
            "overflow",
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
        Via::Einj => &[
            "via",
            "einj_type",
            "addr",
            "mask",
            "apic",
            "sbdf",
            "notrigger",
        ],
        Via::Hwpoison => &[
            "via", "pfn", "page", "unpoison", "madvise", "offline", "addr",
        ],
        Via::Aer => &[
            "via",
            "aer_error",
            "correctable",
            "qdev",
            "sbdf",
            "advisory",
            "tlp_header",
        ],
    }
}

/// Why `key` (valid with another `via`) does not apply to this one.
fn why_not(via: Via, key: &str) -> &'static str {
    match (via, key) {
        (Via::Qemu, "synd" | "ipid") => "QEMU models only CTL, STATUS, ADDR and MISC per bank",
        (Via::Qemu, "flags") => "flags are mce-inject's; use via: debugfs",
        (Via::Debugfs, "mcgstatus") => {
            "mce-inject's debugfs directory has no mcgstatus file; the kernel sets it"
        }
        (Via::Debugfs, "broadcast") => "only QEMU's mce command broadcasts (-b)",
        (Via::Debugfs, "overflow") => {
            "mce-inject hands each record to the kernel whole; only QEMU's mce command writes \
             bank registers, which a second record can overflow"
        }
        (Via::Edac, _) => "via: edac injects DRAM accesses, not MCE records",
        (Via::Einj | Via::Hwpoison | Via::Aer, _) => "it belongs to another via",
        _ => "it belongs to another via (edac, einj, hwpoison or aer)",
    }
}

/// Where an inject step's records were written, to point problems at them.
enum Source {
    /// Inline: problems point at the record's fields in the step.
    Inline,
    /// An mce-inject file: problems point at each record's line in it.
    File { file: PathBuf, locs: Vec<Loc> },
}

pub(super) fn inject(node: &Node, path: &str, ctx: &Ctx, p: &mut Problems) -> Option<Payload> {
    let mut f = Fields::new(node, path, INJECT_KEYS, p)?;
    let via_choices = [
        ("qemu", Via::Qemu),
        ("debugfs", Via::Debugfs),
        ("edac", Via::Edac),
        ("einj", Via::Einj),
        ("hwpoison", Via::Hwpoison),
        ("aer", Via::Aer),
    ];
    let via = f
        .require("via", "qemu, debugfs, edac, einj, hwpoison or aer", p)
        .and_then(|n| one_of(n, &f.child("via"), &via_choices, p));
    let Some(via) = via else {
        // Without a valid `via`, the other keys cannot be judged: only unknown ones are reported.
        for key in INJECT_KEYS {
            f.take(key);
        }
        f.finish(p);
        return None;
    };
    let mut ok = true;
    for key in INJECT_KEYS.iter().filter(|k| !keys(via).contains(k)) {
        if let Some(n) = f.take(key) {
            p.add(
                n.loc,
                &f.child(key),
                format!("does not apply to via: {} ({})", via, why_not(via, key)),
            );
            ok = false;
        }
    }
    let (payload, source) = match via {
        Via::Edac => (edac(&mut f, p).map(Payload::Edac), Source::Inline),
        Via::Qemu | Via::Debugfs => {
            let records = records(&mut f, ctx, p);
            let mut flag = |key: &str, f: &mut Fields| match f.take(key) {
                Some(n) => boolean(n, &f.child(key), p),
                None => Some(false),
            };
            let broadcast = flag("broadcast", &mut f);
            let overflow = flag("overflow", &mut f);
            let flags_choices = InjectionType::ALL.map(|t| (t.as_str(), t));
            let flags = match f.take("flags") {
                Some(n) => one_of(n, &f.child("flags"), &flags_choices, p),
                None => Some(InjectionType::Sw),
            };
            match (via, records, broadcast, overflow, flags) {
                (Via::Qemu, Some((records, source)), Some(broadcast), Some(overflow), _) => (
                    Some(Payload::Qemu {
                        records,
                        broadcast,
                        overflow,
                    }),
                    source,
                ),
                (Via::Debugfs, Some((records, source)), _, _, Some(flags)) => {
                    (Some(Payload::Debugfs { records, flags }), source)
                }
                _ => (None, Source::Inline),
            }
        }
        Via::Einj | Via::Hwpoison | Via::Aer => (source(via, &mut f, p), Source::Inline),
    };
    // The planner judges the request against its place: which method fits, each record.
    if let (Some(payload), Some(place)) = (&payload, &ctx.place) {
        let request = Request {
            payload: payload.clone(),
            place: place.clone(),
        };
        let count = payload.records().len();
        for problem in request.problems() {
            ok = false;
            let message = problem.error.to_string();
            match (&source, problem.record) {
                (Source::File { file, locs }, Some(i)) => {
                    let where_ = format!("{} (record {} of {count})", f.child("file"), i + 1);
                    p.add_in(file, locs[i], &where_, message);
                }
                _ if problem.field == "via" => p.add(node.loc, path, message),
                _ => match f.value_loc(problem.field) {
                    // Point at the field when it was written, else at the step.
                    Some(loc) => p.add(loc, &f.child(problem.field), message),
                    None => p.add(f.loc(), path, message),
                },
            }
        }
    }
    f.finish(p);
    if ok {
        payload
    } else {
        None
    }
}

/// The records of an inject step: written inline, or read from an mce-inject file.
fn records(f: &mut Fields, ctx: &Ctx, p: &mut Problems) -> Option<(Vec<MceRecord>, Source)> {
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
        return file_records(file_node, &f.child("file"), ctx, p);
    }
    let record = inline_record(f, p)?;
    Some((vec![record], Source::Inline))
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
    ctx: &Ctx,
    p: &mut Problems,
) -> Option<(Vec<MceRecord>, Source)> {
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
        Ok(located) => {
            let (locs, records) = located.into_iter().unzip();
            Some((records, Source::File { file, locs }))
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

/// An EINJ, hwpoison or AER step: its keys become the source's options, whose rules
/// (`crate::sources`) are the command line's.
fn source(via: Via, f: &mut Fields, p: &mut Problems) -> Option<Payload> {
    let mut ok = true;
    let mut num = |key: &str, f: &mut Fields, p: &mut Problems| -> Option<u64> {
        let n = f.take(key)?;
        let v = number(n, &f.child(key), p);
        ok &= v.is_some();
        v
    };
    let addr = num("addr", f, p);
    let einj_type = num("einj_type", f, p);
    let mask = num("mask", f, p);
    let apic = num("apic", f, p);
    let pfn = num("pfn", f, p);
    let mut flag = |key: &str, f: &mut Fields, p: &mut Problems| -> bool {
        match f.take(key) {
            Some(n) => boolean(n, &f.child(key), p).unwrap_or_else(|| {
                ok = false;
                false
            }),
            None => false,
        }
    };
    let notrigger = flag("notrigger", f, p);
    let unpoison = flag("unpoison", f, p);
    let correctable = flag("correctable", f, p);
    let advisory = flag("advisory", f, p);
    let mut text = |key: &str, f: &mut Fields, p: &mut Problems| -> Option<String> {
        let n = f.take(key)?;
        let v = string(n, &f.child(key), p);
        ok &= v.is_some();
        v
    };
    let sbdf_text = text("sbdf", f, p);
    let qdev = text("qdev", f, p);
    let sbdf = sbdf_text.and_then(|s| match Sbdf::parse(&s) {
        Ok(v) => Some(v),
        Err(e) => {
            let loc = f.value_loc("sbdf").unwrap_or(f.loc());
            p.add(loc, &f.child("sbdf"), e.to_string());
            ok = false;
            None
        }
    });
    let madvise = f.take("madvise").and_then(|n| {
        let choices = [
            ("hwpoison", MadviseArg::Hwpoison),
            ("soft-offline", MadviseArg::SoftOffline),
        ];
        let v = one_of(n, &f.child("madvise"), &choices, p);
        ok &= v.is_some();
        v
    });
    let page = f.take("page").and_then(|n| {
        let choices = [("free", PageArg::Free), ("page-cache", PageArg::PageCache)];
        let v = one_of(n, &f.child("page"), &choices, p);
        ok &= v.is_some();
        v
    });
    let offline = f.take("offline").and_then(|n| {
        let choices = [("hard", OfflineArg::Hard), ("soft", OfflineArg::Soft)];
        let v = one_of(n, &f.child("offline"), &choices, p);
        ok &= v.is_some();
        v
    });
    let aer_error = match f.take("aer_error") {
        Some(n) if matches!(n.value, Value::Seq(_)) => string_items(n, &f.child("aer_error"), p)
            .map(|v| v.into_iter().map(|(s, _)| s).collect()),
        Some(n) => string(n, &f.child("aer_error"), p).map(|s| vec![s]),
        None => Some(Vec::new()),
    };
    let tlp_header = match f.take("tlp_header") {
        Some(n) => tlp_header(n, &f.child("tlp_header"), p).map(Some),
        None => Some(None),
    };
    let (Some(aer_error), Some(tlp_header), true) = (aer_error, tlp_header, ok) else {
        return None;
    };
    let u32_of = |v: Option<u64>| v.map(|v| u32::try_from(v).unwrap_or(u32::MAX));
    let built = match via {
        Via::Einj => EinjArgs {
            einj_type,
            mask,
            apic: u32_of(apic),
            sbdf,
            notrigger,
        }
        .request(addr)
        .map(Payload::Einj),
        Via::Hwpoison => HwpoisonArgs {
            pfn,
            page,
            unpoison,
            filter_dev: None,
            filter_flags: None,
            filter_memcg: None,
            madvise,
            offline,
        }
        .request(addr)
        .map(Payload::Hwpoison),
        _ => AerArgs {
            aer_error,
            correctable,
            qdev,
            advisory,
            tlp_header,
            tlp_prefix: None,
        }
        .request(sbdf)
        .map(Payload::Aer),
    };
    match built {
        Ok(payload) => Some(payload),
        Err(e) => {
            p.add(f.loc(), f.path(), e.to_string());
            None
        }
    }
}

/// A TLP header log: a list of 4 numbers of 32 bits.
fn tlp_header(node: &Node, path: &str, p: &mut Problems) -> Option<[u32; 4]> {
    let mut words = Vec::new();
    for (ipath, item) in items(node, path, p)? {
        words.push(u32::try_from(number_in(item, &ipath, 0, u64::from(u32::MAX), p)?).ok()?);
    }
    match <[u32; 4]>::try_from(words) {
        Ok(w) => Some(w),
        Err(w) => {
            p.add(
                node.loc,
                path,
                format!("a TLP header log is 4 words, found {}", w.len()),
            );
            None
        }
    }
}
