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

use rasdrill_inject::request::{Request, Via};

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
        Via::Einj | Via::Hwpoison | Via::Aer => &["via"],
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
        (Via::Edac, _) => "via: edac injects DRAM accesses, not MCE records",
        _ => "it belongs to via: edac",
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
            let broadcast = match f.take("broadcast") {
                Some(n) => boolean(n, &f.child("broadcast"), p),
                None => Some(false),
            };
            let flags_choices = InjectionType::ALL.map(|t| (t.as_str(), t));
            let flags = match f.take("flags") {
                Some(n) => one_of(n, &f.child("flags"), &flags_choices, p),
                None => Some(InjectionType::Sw),
            };
            match (via, records, broadcast, flags) {
                (Via::Qemu, Some((records, source)), Some(broadcast), _) => {
                    (Some(Payload::Qemu { records, broadcast }), source)
                }
                (Via::Debugfs, Some((records, source)), _, Some(flags)) => {
                    (Some(Payload::Debugfs { records, flags }), source)
                }
                _ => (None, Source::Inline),
            }
        }
        Via::Einj | Via::Hwpoison | Via::Aer => (None, Source::Inline),
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
