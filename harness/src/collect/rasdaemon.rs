//! The `rasdaemon` collector: rasdaemon running inside the guest, what it printed about each
//! event and the rows of its SQLite database.
//!
//! Which rasdaemon (Debian 12's 0.6.8 by default, Debian 13's 0.8.3, or one you built) is
//! [`RasdaemonBuild`]'s business: it fetches the packages once into rasdrill's cache, with
//! `sqlite3` to read the database (perl's `ras-mc-ctl` would add 30 MB and seconds of boot).
//!
//! Each scenario gets a fresh daemon and an empty database, so what one scenario recorded is
//! never seen by the next:
//! - `start` empties the database (in WAL mode, so that reading it never makes rasdaemon's
//!   writes fail), prepares the `rasdaemon` tracefs instance (kernel 6.1 wakes
//!   rasdaemon only when the instance's `buffer_percent` is 0), clears what that instance
//!   buffered since the last daemon stopped, runs `rasdaemon -f -r`, and waits until it has
//!   created its tables.
//! - `collect` reads the database with `sqlite3`, then rasdaemon's standard output (it stores
//!   an event, then prints and flushes its line). One record is one database row, in any
//!   table; each comes with one printed line.
//! - `stop` sends SIGTERM (rasdaemon closes its database and exits 0), then collects a last
//!   time.
//!
//! The output lines: what rasdaemon printed for the events (its start-up and shutdown chatter
//! left out), then each row as `<table> id=<id>:` followed by one `  column=value` line per
//! column, values as SQLite's `quote()` gives them. Register columns also show their value in
//! hex, because rasdaemon stores `status` as a signed 64-bit integer and cuts `mcgcap` and
//! `mcgstatus` to 32 bits: `status=-7170503560998156269 (0x9c7d410092080813)`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rasdrill_qemu::kernel::KernelCache;
use rasdrill_qemu::wait::{wait_until, Deadline};

use crate::agent::protocol::{RunSpec, SpawnSpec, Spawned};
use crate::collect::rasdaemon_build::{Program, RasdaemonBuild};
use crate::collect::rasdaemon_events::{subscriptions, StartCost};
use crate::collect::{CollectError, Collected, Collector, GuestNeeds};
use crate::target::{Target, TargetError};

pub use crate::collect::rasdaemon_build::NAME;

/// rasdaemon's state directory and database (compiled into Debian's build).
pub const STATE_DIR: &str = "/var/lib/rasdaemon";
pub const DATABASE: &str = "/var/lib/rasdaemon/ras-mc_event.db";

/// The tracefs instance rasdaemon reads (it creates it when missing, with the kernel's
/// default `buffer_percent` of 50, which on kernel 6.1 never wakes it).
pub const INSTANCE: &str = "/sys/kernel/tracing/instances/rasdaemon";

/// rasdaemon logs these on stderr: the first once every event is enabled in its instance
/// (from then on nothing is lost: events wait in the buffer), the second once its database
/// has the `mce_record` table (the last one it prepares).
const LISTENING: &str = "Listening to events";
const RECORDING: &str = "Recording mce_record events";

/// Where the kernel lists its trace events, and its release.
const AVAILABLE_EVENTS: &str = "/sys/kernel/tracing/available_events";
const OSRELEASE: &str = "/proc/sys/kernel/osrelease";

/// Measured under TCG: about 0.25 s from the spawn to both lines (plus, for 0.8.3, its wait
/// for each trace event the kernel lacks: see [`StartCost`]).
const READY_TIMEOUT: Duration = Duration::from_secs(20);
const READY_POLL: Duration = Duration::from_millis(20);
/// rasdaemon exits within milliseconds of SIGTERM; then it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long a printed line may lag behind its database row (measured: milliseconds).
const OUTPUT_CATCH_UP: Duration = Duration::from_secs(2);
/// One `sqlite3` run: about 0.3 s under TCG.
const SQLITE_TIMEOUT: Duration = Duration::from_secs(20);

/// Lines rasdaemon prints on stdout that are about itself, not about an event.
const CHATTER: [&str; 3] = [
    "overriding event (",
    "Calling ras_mc_event_opendb()",
    "Calling ras_mc_event_closedb()",
];

/// Integer columns that hold a register or an address: shown in hex too.
const HEX_COLUMNS: [&str; 7] = [
    "mcgcap",
    "mcgstatus",
    "status",
    "addr",
    "misc",
    "address",
    "syndrome",
];

/// sqlite3 output separators that cannot occur in rasdaemon's data.
const FIELD_SEP: char = '\u{1f}';
const ROW_SEP: &str = "\u{1e}\n";

/// One database table, its columns in schema order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Table {
    name: String,
    columns: Vec<String>,
}

/// The `rasdaemon` collector of one scenario.
pub struct Rasdaemon {
    /// rasdrill's cache, where the packages are.
    cache_root: PathBuf,
    build: RasdaemonBuild,
    /// The daemon's output files, once started.
    spawned: Option<Spawned>,
    /// The database's tables, read once rasdaemon created them.
    tables: Vec<Table>,
    /// The last collection, taken by `stop`: what `collect` returns once the daemon is gone.
    final_collection: Option<Collected>,
}

impl Rasdaemon {
    /// A collector running `build`, whose packages live under `cache_root`.
    pub fn new(cache_root: PathBuf, build: RasdaemonBuild) -> Rasdaemon {
        Rasdaemon {
            cache_root,
            build,
            spawned: None,
            tables: Vec::new(),
            final_collection: None,
        }
    }

    /// A collector running `build`, using rasdrill's cache (the kernels' cache:
    /// `$RASDRILL_CACHE`, ...).
    pub fn from_env(build: RasdaemonBuild) -> Result<Rasdaemon, CollectError> {
        let cache =
            KernelCache::from_env().map_err(|e| CollectError::failed(NAME, e.to_string()))?;
        Ok(Rasdaemon::new(cache.root().to_path_buf(), build))
    }

    fn target_error(source: TargetError) -> CollectError {
        CollectError::target(NAME, source)
    }

    /// What starting this build costs on the guest's kernel, said through `progress` when it
    /// is slowed.
    fn start_cost(
        &self,
        target: &mut dyn Target,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Option<StartCost>, CollectError> {
        let Some(subs) = subscriptions(&self.build) else {
            return Ok(None);
        };
        let io = Self::target_error;
        let cost = StartCost::of(
            &subs,
            &target.read_file(Path::new(AVAILABLE_EVENTS)).map_err(io)?,
        );
        if !cost.missing.is_empty() {
            let kernel = target.read_file(Path::new(OSRELEASE)).map_err(io)?;
            if let Some(note) = cost.note(&self.build, kernel.trim()) {
                progress(&note);
            }
        }
        Ok(Some(cost))
    }

    /// Spawns the daemon and waits until it listens and has its tables: the usual time, plus
    /// what `cost` says it spends waiting for missing trace events.
    fn start_daemon(
        &mut self,
        target: &mut dyn Target,
        cost: Option<&StartCost>,
    ) -> Result<Spawned, CollectError> {
        let spawned = target
            .spawn(&SpawnSpec {
                name: NAME.into(),
                argv: [
                    self.build.argv(Program::Rasdaemon),
                    vec!["-f".into(), "-r".into()],
                ]
                .concat(),
                env: Default::default(),
                cwd: None,
            })
            .map_err(Self::target_error)?;
        let deadline =
            Deadline::after(READY_TIMEOUT + cost.map(StartCost::allowance).unwrap_or_default());
        let mut log = String::new();
        // Ends once rasdaemon is ready (true), has exited (false), or its files cannot be read.
        let ended = wait_until(&deadline, READY_POLL, || {
            let mut poll = || -> Result<Option<bool>, CollectError> {
                // 0.6.8 logs on stderr; 0.8.3 prints some of these lines on stdout.
                log = [&spawned.stderr, &spawned.stdout]
                    .into_iter()
                    .map(|f| target.read_file(f))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(Self::target_error)?
                    .concat();
                if log.contains(LISTENING) && log.contains(RECORDING) {
                    return Ok(Some(true));
                }
                Ok((!process_alive(target, spawned.pid)?).then_some(false))
            };
            poll().transpose()
        });
        let gone = match ended.transpose()? {
            Some(true) => return Ok(spawned),
            Some(false) => true,
            None => false,
        };
        let exit = target
            .kill(NAME, libc::SIGKILL, Duration::ZERO)
            .map_err(Self::target_error)?;
        let how = if gone {
            format!("exited ({exit:?})")
        } else {
            format!("was not ready after {:.1?}", deadline.elapsed())
        };
        Err(CollectError::failed(
            NAME,
            format!(
                "rasdaemon {} {how}: it never logged `{LISTENING}` and `{RECORDING}`; its \
                 stderr and stdout:\n{}",
                self.build,
                log.trim_end()
            ),
        ))
    }

    fn collect_now(&mut self, target: &mut dyn Target) -> Result<Collected, CollectError> {
        let Some(spawned) = &self.spawned else {
            return Err(CollectError::failed(NAME, "collect before start"));
        };
        let stdout_file = spawned.stdout.clone();
        let out = sqlite(
            target,
            &self.build,
            &["-readonly"],
            &rows_query(&self.tables),
        )?;
        let rows = parse_rows(&self.tables, &out)
            .map_err(|e| CollectError::failed(NAME, format!("reading {DATABASE}: {e}")))?;
        // rasdaemon stores an event, then prints and flushes its line: read the output after
        // the rows, and give a line that is still on its way a moment to arrive.
        let mut lines = Vec::new();
        let caught_up = wait_until(
            &Deadline::after(OUTPUT_CATCH_UP),
            READY_POLL,
            || match target.read_file(&stdout_file) {
                Ok(stdout) => {
                    lines = decoded_lines(&stdout);
                    (lines.len() >= rows.len()).then_some(Ok(()))
                }
                Err(e) => Some(Err(e)),
            },
        );
        caught_up.transpose().map_err(Self::target_error)?;
        for row in &rows {
            lines.extend(row.lines());
        }
        Ok(Collected {
            lines,
            records: rows.len(),
            ..Default::default()
        })
    }
}

impl Collector for Rasdaemon {
    fn name(&self) -> &str {
        NAME
    }

    /// Both programs, with libsqlite3 from its package. Fetches the packages on first use
    /// (about 1 s, 1.3 MB); afterwards one `apt-cache policy` call per process.
    fn guest_needs(&mut self, progress: &mut dyn FnMut(&str)) -> Result<GuestNeeds, CollectError> {
        guest_needs(&self.cache_root, &self.build, progress)
    }

    fn start(
        &mut self,
        target: &mut dyn Target,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(), CollectError> {
        if target.guest().is_none() {
            // On a lab machine rasdaemon is the machine's own service: emptying its database
            // or starting a second one would destroy what it recorded.
            return Err(CollectError::failed(
                NAME,
                "runs Debian's rasdaemon inside a guest only; on this machine use a `command` \
                 collector (e.g. `ras-mc-ctl --errors`)",
            ));
        }
        let io = Self::target_error;
        target.mkdir(Path::new(STATE_DIR)).map_err(io)?;
        // An empty file is an empty SQLite database; an empty journal or WAL holds nothing.
        for suffix in ["", "-journal", "-wal", "-shm"] {
            let file = format!("{DATABASE}{suffix}");
            target.write_file(Path::new(&file), "").map_err(io)?;
        }
        // In WAL mode our reads never block rasdaemon's writes. In its default (rollback
        // journal) mode a `sqlite3` reading at the wrong moment makes rasdaemon's insert fail
        // with SQLITE_BUSY and the record is lost (seen under TCG, where a read takes 0.3 s).
        let mode = sqlite(target, &self.build, &[], "PRAGMA journal_mode = WAL;\n")?;
        if mode.trim_end_matches(ROW_SEP).trim() != "wal" {
            return Err(CollectError::failed(
                NAME,
                format!("{DATABASE}: cannot switch to WAL mode: sqlite3 answered {mode:?}"),
            ));
        }
        let instance = Path::new(INSTANCE);
        target.mkdir(instance).map_err(io)?;
        target
            .write_file(&instance.join("buffer_percent"), "0")
            .map_err(io)?;
        // Truncating `trace` empties the instance's buffer: events from before this scenario.
        target.write_file(&instance.join("trace"), "").map_err(io)?;

        let cost = self.start_cost(target, progress)?;
        let spawned = self.start_daemon(target, cost.as_ref())?;
        self.spawned = Some(spawned);
        self.tables = parse_schema(&sqlite(target, &self.build, &["-readonly"], SCHEMA_QUERY)?);
        if !self.tables.iter().any(|t| t.name == "mce_record") {
            return Err(CollectError::failed(
                NAME,
                format!("{DATABASE} has no mce_record table after rasdaemon started"),
            ));
        }
        Ok(())
    }

    fn collect(&mut self, target: &mut dyn Target) -> Result<Collected, CollectError> {
        match &self.final_collection {
            Some(done) => Ok(done.clone()),
            None => self.collect_now(target),
        }
    }

    fn stop(&mut self, target: &mut dyn Target) -> Result<(), CollectError> {
        let Some(spawned) = self.spawned.clone() else {
            return Ok(());
        };
        if self.final_collection.is_some() {
            return Ok(());
        }
        let exit = target
            .kill(NAME, libc::SIGTERM, STOP_GRACE)
            .map_err(Self::target_error)?;
        let collected = self.collect_now(target)?;
        self.final_collection = Some(collected);
        // rasdaemon catches SIGTERM and exits 0 after closing its database.
        if !exit.success() {
            let log = target.read_file(&spawned.stderr).unwrap_or_default();
            return Err(CollectError::failed(
                NAME,
                format!(
                    "rasdaemon {} did not exit cleanly on SIGTERM ({exit:?}); its stderr:\n{}",
                    self.build,
                    log.trim_end()
                ),
            ));
        }
        Ok(())
    }
}

/// What the guest needs for `build` (see [`RasdaemonBuild::guest_needs`]). Asking apt for the
/// versions costs about 0.5 s and every scenario asks, so the answer is kept for the life of
/// the process, per cache and build.
pub fn guest_needs(
    cache_root: &Path,
    build: &RasdaemonBuild,
    progress: &mut dyn FnMut(&str),
) -> Result<GuestNeeds, CollectError> {
    type Key = (PathBuf, String);
    static RESOLVED: Mutex<BTreeMap<Key, GuestNeeds>> = Mutex::new(BTreeMap::new());
    let mut resolved = RESOLVED.lock().unwrap_or_else(|e| e.into_inner());
    let key = (cache_root.to_path_buf(), format!("{build:?}"));
    if let Some(needs) = resolved.get(&key) {
        return Ok(needs.clone());
    }
    let needs = build.guest_needs(cache_root, progress)?;
    resolved.insert(key, needs.clone());
    Ok(needs)
}

/// Runs `sqlite3 -batch <options> DATABASE` with `script` on its stdin (after settings that
/// make its output parseable); its stdout.
fn sqlite(
    target: &mut dyn Target,
    build: &RasdaemonBuild,
    options: &[&str],
    script: &str,
) -> Result<String, CollectError> {
    let mut argv = build.argv(Program::Sqlite3);
    argv.push("-batch".into());
    argv.extend(options.iter().map(|o| o.to_string()));
    argv.push(DATABASE.into());
    let mut spec = RunSpec::new(argv, SQLITE_TIMEOUT.as_millis() as u64);
    spec.stdin = Some(format!(
        ".timeout 5000\n.headers off\n.mode list\n.separator \"\\037\" \"\\036\\n\"\n{script}"
    ));
    let out = target.run(&spec).map_err(Rasdaemon::target_error)?;
    if out.timed_out || !out.exit.success() || !out.stderr.trim().is_empty() {
        return Err(CollectError::failed(
            NAME,
            format!(
                "`{}` failed ({:?}{}): {}",
                spec.argv.join(" "),
                out.exit,
                if out.timed_out { ", timed out" } else { "" },
                out.stderr.trim()
            ),
        ));
    }
    Ok(out.stdout)
}

/// Whether a process exists and is not a zombie (a daemon that died is one until reaped).
fn process_alive(target: &mut dyn Target, pid: u32) -> Result<bool, CollectError> {
    match target.read_file(Path::new(&format!("/proc/{pid}/stat"))) {
        Ok(stat) => Ok(stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))),
        // The agent reports a missing file as a refusal: the process is gone.
        Err(TargetError::Guest(crate::guest::GuestError::Refused { .. }))
        | Err(TargetError::Refused { .. }) => Ok(false),
        Err(e) => Err(Rasdaemon::target_error(e)),
    }
}

/// Every table with its columns, in schema order.
const SCHEMA_QUERY: &str = "SELECT m.name, p.name FROM sqlite_master AS m \
     JOIN pragma_table_info(m.name) AS p WHERE m.type = 'table' ORDER BY m.name, p.cid;\n";

fn sqlite_name(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// One SELECT per table: its name, then each column through `quote()`, in insertion order.
fn rows_query(tables: &[Table]) -> String {
    let mut script = String::new();
    for table in tables {
        let columns: Vec<String> = table
            .columns
            .iter()
            .map(|c| format!("quote({})", sqlite_name(c)))
            .collect();
        script.push_str(&format!(
            "SELECT '{}', {} FROM {} ORDER BY rowid;\n",
            table.name.replace('\'', "''"),
            columns.join(", "),
            sqlite_name(&table.name)
        ));
    }
    script
}

fn records(output: &str) -> impl Iterator<Item = Vec<&str>> {
    output
        .split(ROW_SEP)
        .filter(|r| !r.is_empty())
        .map(|r| r.split(FIELD_SEP).collect())
}

fn parse_schema(output: &str) -> Vec<Table> {
    let mut tables: Vec<Table> = Vec::new();
    for fields in records(output) {
        let [table, column] = fields[..] else {
            continue;
        };
        match tables.last_mut() {
            Some(t) if t.name == table => t.columns.push(column.to_owned()),
            _ => tables.push(Table {
                name: table.to_owned(),
                columns: vec![column.to_owned()],
            }),
        }
    }
    tables
}

/// One database row: its table, then `(column, quoted value)` in schema order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    table: String,
    values: Vec<(String, String)>,
}

impl Row {
    /// `<table> id=<id>:` and one indented `column=value` line per other column.
    fn lines(&self) -> Vec<String> {
        let mut values = self.values.iter();
        let head = match self.values.first() {
            Some((column, value)) if column == "id" => {
                values.next();
                format!("{} id={value}:", self.table)
            }
            _ => format!("{}:", self.table),
        };
        let mut lines = vec![head];
        for (column, value) in values {
            let hex = HEX_COLUMNS
                .contains(&column.as_str())
                .then(|| value.parse::<i64>().ok())
                .flatten()
                .filter(|v| *v != 0)
                .map(|v| format!(" ({:#x})", v as u64))
                .unwrap_or_default();
            lines.push(format!("  {column}={value}{hex}"));
        }
        lines
    }
}

fn parse_rows(tables: &[Table], output: &str) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for fields in records(output) {
        let (name, values) = fields
            .split_first()
            .expect("split yields at least one field");
        let table = tables
            .iter()
            .find(|t| t.name == *name)
            .ok_or_else(|| format!("a row of unknown table {name:?}"))?;
        if values.len() != table.columns.len() {
            return Err(format!(
                "a row of {name} has {} values for {} columns",
                values.len(),
                table.columns.len()
            ));
        }
        rows.push(Row {
            table: table.name.clone(),
            values: table
                .columns
                .iter()
                .cloned()
                .zip(values.iter().map(|v| v.to_string()))
                .collect(),
        });
    }
    Ok(rows)
}

/// What rasdaemon printed about events: its stdout without its own chatter. Event lines start
/// like `trace_pipe`'s (`<...>-17 [000] 0.000000: mce_record: ...`); as in the `trace`
/// collector, the task, PID, CPU and time columns go: they say where the tracepoint fired
/// (for an mce-inject `sw` record, whichever CPU the injecting write ran on), not what was
/// decoded.
fn decoded_lines(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && !CHATTER.iter().any(|c| l.starts_with(c)))
        .map(|l| match crate::agent::trace::parse_line(l) {
            Some(event) => super::trace::line(&event),
            None => l.to_owned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mce_table() -> Table {
        Table {
            name: "mce_record".into(),
            columns: [
                "id",
                "timestamp",
                "mcgcap",
                "mcgstatus",
                "status",
                "addr",
                "tsc",
                "bank",
                "error_msg",
            ]
            .map(String::from)
            .to_vec(),
        }
    }

    #[test]
    fn schema_output_gives_tables_with_columns_in_order() {
        let out = "aer_event\u{1f}id\u{1e}\naer_event\u{1f}dev_name\u{1e}\n\
                   mce_record\u{1f}id\u{1e}\nmce_record\u{1f}timestamp\u{1e}\n";
        assert_eq!(
            parse_schema(out),
            vec![
                Table {
                    name: "aer_event".into(),
                    columns: vec!["id".into(), "dev_name".into()]
                },
                Table {
                    name: "mce_record".into(),
                    columns: vec!["id".into(), "timestamp".into()]
                },
            ]
        );
        assert_eq!(parse_schema(""), vec![]);
    }

    #[test]
    fn the_rows_query_quotes_every_column_of_every_table() {
        let query = rows_query(&[mce_table()]);
        assert!(
            query.starts_with("SELECT 'mce_record', quote(\"id\"), quote(\"timestamp\"), "),
            "{query}"
        );
        assert!(
            query.ends_with(" FROM \"mce_record\" ORDER BY rowid;\n"),
            "{query}"
        );
    }

    #[test]
    fn rows_show_every_column_with_registers_in_hex_too() {
        // As rasdaemon stored a corrected DRAM ECC error: status signed, mcgcap cut to 32 bits.
        let out = "mce_record\u{1f}1\u{1f}'2026-11-26 09:05:25 +0000'\u{1f}16777482\u{1f}0\u{1f}\
                   -7170503560998156269\u{1f}305418240\u{1f}0\u{1f}4\u{1f}'x, y|z'\u{1e}\n";
        let rows = parse_rows(&[mce_table()], out).unwrap();
        assert_eq!(
            rows[0].lines(),
            [
                "mce_record id=1:",
                "  timestamp='2026-11-26 09:05:25 +0000'",
                "  mcgcap=16777482 (0x100010a)",
                "  mcgstatus=0",
                "  status=-7170503560998156269 (0x9c7d410092080813)",
                "  addr=305418240 (0x12345000)",
                "  tsc=0",
                "  bank=4",
                "  error_msg='x, y|z'",
            ]
        );
    }

    #[test]
    fn a_row_that_does_not_fit_its_table_is_an_error() {
        let err = parse_rows(&[mce_table()], "mce_record\u{1f}1\u{1f}2\u{1e}\n").unwrap_err();
        assert_eq!(err, "a row of mce_record has 2 values for 9 columns");
        let err = parse_rows(&[mce_table()], "mc_event\u{1f}1\u{1e}\n").unwrap_err();
        assert_eq!(err, "a row of unknown table \"mc_event\"");
    }

    #[test]
    fn decoded_lines_leave_out_the_daemons_own_chatter() {
        let stdout = "overriding event (113) mce:mce_record with new print handler\n\
                      Calling ras_mc_event_opendb()\n\
                      \x20          <...>-17    [000]     0.000000: mce_record:           2026-11-26 09:05:25 +0000 bank=4, status= 9c7d410092080813   \n\
                      Calling ras_mc_event_closedb()\n";
        assert_eq!(
            decoded_lines(stdout),
            ["mce_record:           2026-11-26 09:05:25 +0000 bank=4, status= 9c7d410092080813"]
        );
    }

    #[test]
    fn the_normaliser_replaces_what_varies_and_keeps_the_decoded_values() {
        let table = Table {
            name: "mce_record".into(),
            columns: ["id", "timestamp", "status", "ip", "tsc", "walltime"]
                .map(String::from)
                .to_vec(),
        };
        let out =
            "mce_record\u{1f}1\u{1f}'2026-11-26 09:14:53 +0000'\u{1f}-7170503560998156269\u{1f}\
                   0\u{1f}4180145871\u{1f}1795684186\u{1e}\n";
        let lines = parse_rows(&[table], out).unwrap()[0].lines();
        assert_eq!(
            crate::normalize::normalize(&lines.join("\n")),
            "mce_record id=1:\n  timestamp='<DATE>'\n  \
             status=-7170503560998156269 (0x9c7d410092080813)\n  ip=0\n  tsc=<TSC>\n  walltime=<EPOCH>"
        );
    }
}
