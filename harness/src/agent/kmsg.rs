//! The kernel log, read from `/dev/kmsg` (Documentation/ABI/testing/dev-kmsg).
//!
//! Each record is one line `prio,seq,usec,flags[,more];message`, followed by
//! continuation lines that start with a space and carry `KEY=value` pairs.
//! The kernel escapes bytes below 0x20, from 0x7f, and the backslash as `\xNN`.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;

use serde::{Deserialize, Serialize};

/// One kernel log record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KmsgRecord {
    /// The kernel's sequence number: the cursor for the next `Kmsg` request.
    pub seq: u64,
    /// Microseconds since boot (the printk timestamp).
    pub usec: u64,
    /// Log level, 0 (emerg) to 7 (debug).
    pub level: u8,
    /// Syslog facility (0 = kernel).
    pub facility: u8,
    /// The message, unescaped.
    pub text: String,
    /// Continuation lines (`SUBSYSTEM=...`, `DEVICE=...`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dict: BTreeMap<String, String>,
}

/// A record line that does not follow the `/dev/kmsg` format.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("kernel log line {line:?} is not `prio,seq,usec,flags;message`: {problem}")]
pub struct KmsgParseError {
    pub line: String,
    pub problem: &'static str,
}

/// Parses any number of records (one `/dev/kmsg` read holds exactly one; a file may hold many).
pub fn parse_records(text: &str) -> Result<Vec<KmsgRecord>, KmsgParseError> {
    let mut records: Vec<KmsgRecord> = Vec::new();
    for line in text.lines() {
        if let Some(entry) = line.strip_prefix(' ') {
            let Some(record) = records.last_mut() else {
                return Err(KmsgParseError {
                    line: line.to_string(),
                    problem: "a continuation line comes before any record",
                });
            };
            let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
            record.dict.insert(unescape(key), unescape(value));
        } else if !line.is_empty() {
            records.push(parse_record_line(line)?);
        }
    }
    Ok(records)
}

fn parse_record_line(line: &str) -> Result<KmsgRecord, KmsgParseError> {
    let bad = |problem| KmsgParseError {
        line: line.to_string(),
        problem,
    };
    let (header, message) = line.split_once(';').ok_or_else(|| bad("no `;`"))?;
    let mut fields = header.split(',');
    let mut number = |problem| {
        fields
            .next()
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or_else(|| bad(problem))
    };
    let prio = number("the priority is not a number")?;
    let seq = number("the sequence number is not a number")?;
    let usec = number("the timestamp is not a number")?;
    Ok(KmsgRecord {
        seq,
        usec,
        level: (prio & 7) as u8,
        facility: (prio >> 3).min(u64::from(u8::MAX)) as u8,
        text: unescape(message),
        dict: BTreeMap::new(),
    })
}

/// Undoes the kernel's `\xNN` escaping; invalid UTF-8 becomes U+FFFD.
fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'x') {
            let hex = text
                .get(i + 2..i + 4)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(byte) = hex {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads every record still in the kernel's buffer with a sequence number above `after`.
///
/// Opens the file afresh each time: a new reader starts at the oldest record, and
/// non-blocking reads end with EAGAIN once the buffer is drained.
pub fn read_after(path: &Path, after: Option<u64>) -> io::Result<Vec<KmsgRecord>> {
    let mut file = open_nonblocking(path)?;
    let (records, _) = read_available(&mut file)?;
    Ok(records
        .into_iter()
        .filter(|r| after.is_none_or(|a| r.seq > a))
        .collect())
}

fn open_nonblocking(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

/// Every record that can be read now, and whether the file ended (a regular file does;
/// `/dev/kmsg` never does: it says EAGAIN until the kernel logs more).
fn read_available(file: &mut File) -> io::Result<(Vec<KmsgRecord>, bool)> {
    let (text, ended) = read_all_records(file)?;
    let records =
        parse_records(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok((records, ended))
}

fn read_all_records(file: &mut File) -> io::Result<(String, bool)> {
    // One record per read; a record is at most about 8 KiB (PRINTKRB_RECORD_MAX + dict).
    let mut chunk = vec![0u8; 16 * 1024];
    let mut all = Vec::new();
    let ended = loop {
        match file.read(&mut chunk) {
            Ok(0) => break true,
            Ok(n) => all.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
            // EPIPE: records were overwritten while we read; the next read resumes at the oldest.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    };
    // Messages are escaped by the kernel, so the text is ASCII; be lenient anyway.
    Ok((String::from_utf8_lossy(&all).into_owned(), ended))
}

/// Records kept in the agent's memory before the oldest are dropped (and counted). A burst of
/// 1000 corrected errors logs about 5000 (edac_mce_amd prints five lines for each).
const LOG_RECORDS: usize = 100_000;

/// The kernel log, drained into the agent's memory as the kernel writes it.
///
/// The kernel's ring is small (Debian: `CONFIG_LOG_BUF_SHIFT=17`, 128 KiB) and wraps while a
/// burst logs faster than anybody asks for it; records overwritten before they are read are
/// gone. So the agent reads `/dev/kmsg` with one open reader: a thread started by [`follow`]
/// drains it whenever the kernel logs more, and every request drains it first too, so a
/// reply holds everything the kernel had logged when the request came.
///
/// [`follow`]: KmsgLog::follow
pub struct KmsgLog {
    path: PathBuf,
    state: Mutex<LogState>,
}

struct LogState {
    file: File,
    records: VecDeque<KmsgRecord>,
    /// The newest sequence number read.
    last_seq: Option<u64>,
    /// Records the kernel overwrote before they were read (gaps in the sequence numbers).
    lost: u64,
    /// Records dropped from `records` to keep it within [`LOG_RECORDS`].
    evicted: u64,
    /// The file ended or failed: nothing more will come from it.
    ended: bool,
}

impl KmsgLog {
    /// Opens the log and reads what it holds already (the boot's records, from the oldest).
    pub fn open(path: &Path) -> io::Result<Arc<KmsgLog>> {
        let file = open_nonblocking(path)?;
        let log = Arc::new(KmsgLog {
            path: path.to_path_buf(),
            state: Mutex::new(LogState {
                file,
                records: VecDeque::new(),
                last_seq: None,
                lost: 0,
                evicted: 0,
                ended: false,
            }),
        });
        log.drain()?;
        Ok(log)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, LogState> {
        // A panic while holding the lock cannot leave the records half-written: keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads every record the kernel has logged since the last drain.
    pub fn drain(&self) -> io::Result<()> {
        let mut state = self.lock();
        if state.ended {
            return Ok(());
        }
        let (records, ended) = read_available(&mut state.file)?;
        state.ended = ended;
        for record in records {
            if let Some(last) = state.last_seq {
                state.lost += record.seq.saturating_sub(last + 1);
            }
            state.last_seq = Some(record.seq);
            state.records.push_back(record);
            if state.records.len() > LOG_RECORDS {
                state.records.pop_front();
                state.evicted += 1;
            }
        }
        Ok(())
    }

    /// Drains, then returns every record kept with a sequence number above `after`.
    pub fn after(&self, after: Option<u64>) -> io::Result<Vec<KmsgRecord>> {
        self.drain()?;
        let state = self.lock();
        let from = match after {
            None => 0,
            // Sequence numbers rise by one per record, so the first one wanted is easy to find.
            Some(after) => state.records.partition_point(|r| r.seq <= after),
        };
        Ok(state.records.range(from..).cloned().collect())
    }

    /// Drains, then returns the newest record.
    pub fn last(&self) -> io::Result<Option<KmsgRecord>> {
        self.drain()?;
        Ok(self.lock().records.back().cloned())
    }

    /// Records lost so far: overwritten by the kernel before they were read, or dropped from
    /// the agent's memory.
    pub fn lost(&self) -> u64 {
        let state = self.lock();
        state.lost + state.evicted
    }

    /// Starts a thread that drains the log whenever the kernel has logged more, until the
    /// file ends or fails (the failure is printed on the console; requests report it too).
    pub fn follow(self: &Arc<KmsgLog>) -> io::Result<()> {
        let log = Arc::clone(self);
        thread::Builder::new()
            .name("kmsg".into())
            .spawn(move || {
                if let Err(e) = log.follow_until_end() {
                    eprintln!(
                        "rasdrill-agent: stopped reading {}: {e}",
                        log.path.display()
                    );
                }
            })
            .map(drop)
    }

    fn follow_until_end(&self) -> io::Result<()> {
        // The descriptor stays open as long as `self`: the state owns the file.
        let fd = self.lock().file.as_raw_fd();
        loop {
            let mut pollfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // Blocks until the kernel logs a record we have not read (POLLIN), or overwrote
            // one (POLLERR|POLLPRI): either way a drain reads what there is.
            // SAFETY: one valid pollfd, for the length given.
            let rc = unsafe { libc::poll(&mut pollfd, 1, -1) };
            if rc < 0 {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(error);
            }
            self.drain()?;
            if self.lock().ended {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records_with_levels_and_continuation_lines() {
        let text = "6,339,5140900,-;NET: Registered protocol family 10\n\
                    4,340,5140910,-,caller=T1;mce: [Hardware Error]: Machine check events logged\n\
                    3,341,5141000,c;usb 1-1: device descriptor read\n SUBSYSTEM=usb\n DEVICE=c189:1\n\
                    30,342,5142000,-;systemd[1]: started\n";
        let records = parse_records(text).unwrap();
        assert_eq!(records.len(), 4);
        assert_eq!(records[0].seq, 339);
        assert_eq!(records[0].usec, 5_140_900);
        assert_eq!(records[0].level, 6);
        assert_eq!(records[0].facility, 0);
        assert_eq!(
            records[1].text,
            "mce: [Hardware Error]: Machine check events logged"
        );
        assert_eq!(records[1].level, 4);
        assert_eq!(
            records[2].dict.get("SUBSYSTEM").map(String::as_str),
            Some("usb")
        );
        assert_eq!(
            records[2].dict.get("DEVICE").map(String::as_str),
            Some("c189:1")
        );
        assert!(records[1].dict.is_empty());
        assert_eq!((records[3].facility, records[3].level), (3, 6));
    }

    #[test]
    fn unescapes_control_bytes_backslashes_and_utf8() {
        let records = parse_records("6,1,2,-;a\\x0ab\\x5cc \\xc3\\xa9 \\xzz\n").unwrap();
        assert_eq!(records[0].text, "a\nb\\c é \\xzz");
    }

    #[test]
    fn keeps_semicolons_inside_the_message() {
        let records = parse_records("5,7,8,-;x; y;z\n").unwrap();
        assert_eq!(records[0].text, "x; y;z");
    }

    #[test]
    fn rejects_malformed_lines_naming_the_line() {
        let err = parse_records("6,abc,2,-;text\n").unwrap_err();
        assert_eq!(err.problem, "the sequence number is not a number");
        assert!(err.to_string().contains("6,abc,2,-;text"));
        assert!(parse_records("no header here\n").is_err());
        assert!(parse_records(" KEY=value\n").is_err());
    }

    #[test]
    fn read_after_filters_by_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kmsg");
        std::fs::write(
            &path,
            "6,1,10,-;one\n6,2,20,-;two\n SUBSYSTEM=x\n6,3,30,-;three\n",
        )
        .unwrap();
        let all = read_after(&path, None).unwrap();
        assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
        let later = read_after(&path, Some(1)).unwrap();
        assert_eq!(
            later.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(),
            ["two", "three"]
        );
        assert!(read_after(&path, Some(3)).unwrap().is_empty());
    }

    #[test]
    fn the_log_keeps_records_counts_gaps_and_serves_cursors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kmsg");
        std::fs::write(&path, "6,1,10,-;one\n6,2,20,-;two\n6,5,50,-;five\n").unwrap();
        let log = KmsgLog::open(&path).unwrap();
        let seqs = |records: Vec<KmsgRecord>| records.iter().map(|r| r.seq).collect::<Vec<_>>();
        assert_eq!(seqs(log.after(None).unwrap()), [1, 2, 5]);
        assert_eq!(seqs(log.after(Some(1)).unwrap()), [2, 5]);
        assert_eq!(seqs(log.after(Some(2)).unwrap()), [5]);
        assert!(log.after(Some(5)).unwrap().is_empty());
        assert_eq!(
            log.last().unwrap().map(|r| r.text),
            Some("five".to_string())
        );
        // 3 and 4 were overwritten before they were read.
        assert_eq!(log.lost(), 2);
    }

    #[test]
    fn the_follower_drains_what_the_writer_adds_without_being_asked() {
        use rasdrill_qemu::wait::{wait_until, Deadline};
        use std::io::Write;
        use std::time::Duration;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kmsg");
        nix::unistd::mkfifo(
            &path,
            nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
        )
        .unwrap();
        // A writer first (read-write does not block on a FIFO): with none, a read is the end.
        let mut writer = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let log = KmsgLog::open(&path).unwrap();
        log.follow().unwrap();
        writer.write_all(b"6,1,10,-;one\n6,2,20,-;two\n").unwrap();
        let held = || (log.lock().records.len() == 2).then_some(());
        let deadline = Deadline::after(Duration::from_secs(10));
        assert!(
            wait_until(&deadline, Duration::from_millis(1), held).is_some(),
            "the follower did not read the records"
        );
        drop(writer);
        let ended = || log.lock().ended.then_some(());
        assert!(wait_until(&deadline, Duration::from_millis(1), ended).is_some());
        assert_eq!(log.after(Some(1)).unwrap()[0].text, "two");
    }
}
