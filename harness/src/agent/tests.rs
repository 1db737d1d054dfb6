//! The request loop and the client talking over a socket pair, with a directory standing in
//! for the guest's kernel files.

use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::stat::Mode;
use rasdrill_inject::debugfs::InjectionType;
use rasdrill_inject::MceRecord;

use rasdrill_qemu::wait::{wait_until, Deadline};

use super::client::{AgentClient, ClientError};
use super::init::probe_ready;
use super::process::Children;
use super::protocol::{RunSpec, SpawnSpec};
use super::server::{serve, Agent, Ending, Environment};
use super::trace::TraceBuffer;

const MCE_LINE: &str = "  kworker/0:2-47      [000] d..1.   123.456789: mce_record: CPU: 0, MCGc/s: 0/0, MC4: 9c7d410092080813, IPID: 0000000000000000, ADDR/MISC/SYND: 0000000012345000/0000000000000000/0000000000000000, RIP: 00:<0000000000000000>, TSC: 1f2e3d, PROCESSOR: 2:600f12, TIME: 1732600000, SOCKET: 0, APIC: 0";

struct Guest {
    root: tempfile::TempDir,
    client: AgentClient,
    server: JoinHandle<std::io::Result<Ending>>,
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

fn patience() -> Deadline {
    Deadline::after(Duration::from_secs(10))
}

/// A fake guest root: a kernel log, mce-inject's files and a FIFO as `trace_pipe`.
fn start_guest() -> Guest {
    let root = tempfile::tempdir().unwrap();
    let env = Environment {
        root: root.path().to_path_buf(),
    };
    std::fs::create_dir_all(env.path("/dev")).unwrap();
    std::fs::write(
        env.kmsg(),
        "6,1,100,-;Linux version 6.1.0-56-amd64\n\
         4,2,5000,-;mce: [Hardware Error]: Machine check events logged\n SUBSYSTEM=cpu\n",
    )
    .unwrap();
    // What the inject crate's preflight reads: online CPUs, their banks, the vendor, mce-inject.
    std::fs::create_dir_all(env.path("/sys/devices/system/cpu")).unwrap();
    std::fs::write(env.path("/sys/devices/system/cpu/online"), "0-1\n").unwrap();
    for cpu in 0..2 {
        let device = env.path(format!(
            "/sys/devices/system/machinecheck/machinecheck{cpu}"
        ));
        std::fs::create_dir_all(&device).unwrap();
        for bank in 0..10 {
            std::fs::write(device.join(format!("bank{bank}")), "ffffffffffffffff\n").unwrap();
        }
    }
    std::fs::create_dir_all(env.path("/proc")).unwrap();
    std::fs::write(
        env.path("/proc/cpuinfo"),
        "processor\t: 0\nvendor_id\t: AuthenticAMD\n",
    )
    .unwrap();
    let inject_dir = env.path("/sys/kernel/debug/mce-inject");
    std::fs::create_dir_all(&inject_dir).unwrap();
    for file in rasdrill_inject::debugfs::WRITE_ORDER {
        std::fs::write(inject_dir.join(file), "").unwrap();
    }
    let trace_pipe = root.path().join("trace_pipe");
    nix::unistd::mkfifo(&trace_pipe, Mode::S_IRUSR | Mode::S_IWUSR).unwrap();
    let trace = Ok(TraceBuffer::start(trace_pipe));

    let ready = probe_ready(
        Instant::now(),
        vec!["mce-inject".into()],
        vec!["mce/mce_record".into()],
        vec![],
    );
    let mut agent = Agent::new(env, ready, trace, Children::default());
    let (host, guest) = UnixStream::pair().unwrap();
    let server = thread::spawn(move || {
        let output = guest.try_clone()?;
        serve(&mut agent, BufReader::new(guest), output)
    });
    Guest {
        root,
        client: AgentClient::connect(host).unwrap(),
        server,
    }
}

#[test]
fn ready_status_files_and_poweroff() {
    let mut guest = start_guest();
    let ready = guest.client.wait_ready(soon()).unwrap();
    assert_eq!(ready.modules_loaded, ["mce-inject"]);
    assert_eq!(guest.client.status(soon()).unwrap(), ready);

    guest.client.mkdir("/etc/x", soon()).unwrap();
    guest
        .client
        .write_file("/etc/x/conf", "a = 1\n", soon())
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(guest.root.path().join("etc/x/conf")).unwrap(),
        "a = 1\n"
    );
    assert_eq!(
        guest.client.read_file("/etc/x/conf", soon()).unwrap(),
        "a = 1\n"
    );

    let err = guest.client.read_file("/nonexistent", soon()).unwrap_err();
    assert!(
        matches!(&err, ClientError::Agent { message, .. } if message.contains("cannot read") && message.contains("nonexistent")),
        "{err}"
    );
    // The connection still works after an error.
    guest.client.poweroff(soon()).unwrap();
    assert_eq!(guest.server.join().unwrap().unwrap(), Ending::Poweroff);
}

#[test]
fn kmsg_with_a_cursor() {
    let mut guest = start_guest();
    guest.client.wait_ready(soon()).unwrap();
    let records = guest.client.kmsg(None, soon()).unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(
        records[1].text,
        "mce: [Hardware Error]: Machine check events logged"
    );
    assert_eq!(
        records[1].dict.get("SUBSYSTEM").map(String::as_str),
        Some("cpu")
    );
    let later = guest.client.kmsg(Some(records[0].seq), soon()).unwrap();
    assert_eq!(later, records[1..]);
}

#[test]
fn inject_checks_then_writes_mce_inject_files_with_bank_last() {
    let mut guest = start_guest();
    guest.client.wait_ready(soon()).unwrap();
    let dir = guest.root.path().join("sys/kernel/debug/mce-inject");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let mut record = MceRecord {
        cpu: 1,
        bank: 12,
        status: 0x9c7d_4100_9208_0813,
        addr: 0x1234_5000,
        ..MceRecord::default()
    };
    let err = guest
        .client
        .inject(&record, InjectionType::Hw, soon())
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Agent { message, .. }
            if message.contains("injection refused before any write: bank 12")),
        "{err}"
    );
    assert_eq!(
        read("flags"),
        "",
        "nothing may be written when the preflight refuses"
    );

    record.bank = 4;
    let writes = guest
        .client
        .inject(&record, InjectionType::Hw, soon())
        .unwrap();
    assert_eq!(
        writes.first().unwrap(),
        &format!("write {} hw", dir.join("flags").display())
    );
    assert_eq!(
        writes.last().unwrap(),
        &format!("write {} 4", dir.join("bank").display())
    );
    assert_eq!(read("flags"), "hw\n");
    assert_eq!(read("status"), "0x9c7d410092080813\n");
    assert_eq!(read("addr"), "0x12345000\n");
    assert_eq!(read("cpu"), "1\n");
}

#[test]
fn trace_events_arrive_through_the_pipe_reader() {
    let mut guest = start_guest();
    guest.client.wait_ready(soon()).unwrap();
    assert!(guest.client.trace(None, soon()).unwrap().events.is_empty());
    // Opening the FIFO for writing blocks until the reader thread has it open.
    let mut pipe = std::fs::OpenOptions::new()
        .write(true)
        .open(guest.root.path().join("trace_pipe"))
        .unwrap();
    writeln!(pipe, "{MCE_LINE}\nCPU:0 [LOST 1 EVENTS]").unwrap();
    let client = &mut guest.client;
    let batch = wait_until(&patience(), Duration::from_millis(10), || {
        let batch = client.trace(None, soon()).unwrap();
        (batch.last_seq() == Some(2)).then_some(batch)
    })
    .expect("two trace lines");
    assert_eq!(batch.events.len(), 1);
    assert_eq!(batch.events[0].event, "mce_record");
    assert_eq!(batch.events[0].seq, 1);
    assert_eq!(batch.unparsed[0].line, "CPU:0 [LOST 1 EVENTS]");
    assert!(client.trace(Some(2), soon()).unwrap().last_seq().is_none());

    // A closed pipe stops the reader: once drained, requests say so.
    drop(pipe);
    let message = wait_until(&patience(), Duration::from_millis(10), || {
        match client.trace(Some(2), soon()) {
            Err(ClientError::Agent { message, .. }) => Some(message),
            Ok(_) => None,
            Err(e) => panic!("{e}"),
        }
    })
    .expect("the reader to stop");
    assert!(message.contains("trace_pipe ended"), "{message}");
}

#[test]
fn run_and_spawn_commands() {
    let mut guest = start_guest();
    guest.client.wait_ready(soon()).unwrap();
    let mut spec = RunSpec::new(["/bin/sh", "-c", "cat; echo err >&2; exit 2"], 5000);
    spec.stdin = Some("through stdin".into());
    let out = guest.client.run(&spec, soon()).unwrap();
    assert_eq!(
        (out.exit.code, out.stdout.as_str(), out.stderr.as_str()),
        (Some(2), "through stdin", "err\n")
    );

    let spawned = guest
        .client
        .spawn(
            &SpawnSpec {
                name: "sleeper".into(),
                argv: vec![
                    "/bin/sh".into(),
                    "-c".into(),
                    "echo up; exec sleep 60".into(),
                ],
                env: Default::default(),
                cwd: None,
            },
            soon(),
        )
        .unwrap();
    assert!(spawned
        .stdout
        .starts_with(guest.root.path().join("var/log/rasdrill")));
    let client = &mut guest.client;
    wait_until(&patience(), Duration::from_millis(5), || {
        let stdout = client
            .read_file("/var/log/rasdrill/sleeper.stdout", soon())
            .unwrap();
        (stdout == "up\n").then_some(())
    })
    .expect("the daemon's first line");
    let exit = guest
        .client
        .kill("sleeper", libc::SIGTERM, Duration::from_secs(5), soon())
        .unwrap();
    assert_eq!(exit.signal, Some(libc::SIGTERM));
}

#[test]
fn a_line_that_is_not_a_request_gets_an_error_with_its_id() {
    let (host, guest) = UnixStream::pair().unwrap();
    let ready = probe_ready(Instant::now(), vec![], vec![], vec![]);
    let env = Environment {
        root: "/nonexistent".into(),
    };
    let mut agent = Agent::new(
        env,
        ready,
        Err("no tracefs in this test".into()),
        Children::default(),
    );
    let server = thread::spawn(move || {
        let output = guest.try_clone().unwrap();
        serve(&mut agent, BufReader::new(guest), output).unwrap()
    });
    let mut writer = host.try_clone().unwrap();
    let mut reader = BufReader::new(host);
    let mut line = String::new();
    let mut next_line = |line: &mut String| {
        line.clear();
        std::io::BufRead::read_line(&mut reader, line).unwrap();
        serde_json::from_str::<serde_json::Value>(line).unwrap()
    };
    assert_eq!(next_line(&mut line)["type"], "ready");
    writer
        .write_all(b"{\"id\":7,\"request\":{\"kind\":\"reboot\"}}\n")
        .unwrap();
    let reply = next_line(&mut line);
    assert_eq!(
        (reply["type"].as_str(), reply["id"].as_u64()),
        (Some("error"), Some(7))
    );
    assert!(
        reply["message"].as_str().unwrap().contains("reboot"),
        "{reply}"
    );
    writer
        .write_all(b"not json\n{\"id\":8,\"request\":{\"kind\":\"trace\"}}\n")
        .unwrap();
    assert_eq!(next_line(&mut line)["id"], 0);
    let reply = next_line(&mut line);
    assert_eq!(reply["id"], 8);
    assert!(
        reply["message"]
            .as_str()
            .unwrap()
            .contains("no tracefs in this test"),
        "{reply}"
    );
    drop(writer);
    drop(reader);
    assert_eq!(server.join().unwrap(), Ending::InputClosed);
}

#[test]
fn client_waits_are_bounded_and_keep_partial_lines() {
    let (host, mut agent_side) = UnixStream::pair().unwrap();
    let mut client = AgentClient::connect(host).unwrap();
    let ready = probe_ready(Instant::now(), vec![], vec![], vec![]);
    let line = super::protocol::to_line(&super::protocol::FromAgent::Ready(ready.clone()));
    let (first, rest) = line.split_at(line.len() / 2);

    // Noise before Ready (a host that connected mid-line), then half of Ready.
    agent_side
        .write_all(format!("tail of something\n{first}").as_bytes())
        .unwrap();
    let started = Instant::now();
    let err = client
        .wait_ready(Instant::now() + Duration::from_millis(200))
        .unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    match &err {
        ClientError::Timeout { what, elapsed } => {
            assert!(*elapsed >= Duration::from_millis(200));
            assert!(what.contains("tail of something"), "{what}");
        }
        other => panic!("expected a timeout, got {other}"),
    }
    assert!(err.to_string().starts_with("timed out after"));

    agent_side.write_all(rest.as_bytes()).unwrap();
    assert_eq!(client.wait_ready(soon()).unwrap(), ready);

    // A request nobody answers times out; the late reply is skipped by the next request.
    let err = client
        .status(Instant::now() + Duration::from_millis(100))
        .unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
    let late = super::protocol::FromAgent::Ok {
        id: 1,
        reply: super::protocol::Reply::Done,
    };
    let answer = super::protocol::FromAgent::Ok {
        id: 2,
        reply: super::protocol::Reply::Status(ready.clone()),
    };
    agent_side
        .write_all(super::protocol::to_line(&late).as_bytes())
        .unwrap();
    agent_side
        .write_all(super::protocol::to_line(&answer).as_bytes())
        .unwrap();
    assert_eq!(client.status(soon()).unwrap(), ready);

    drop(agent_side);
    let err = client.status(soon()).unwrap_err();
    assert!(matches!(err, ClientError::Closed { .. }), "{err}");
}

#[test]
fn run_refuses_unless_pid_1() {
    // A test process is never PID 1: `run` must not mount or power off anything.
    assert!(!super::is_init());
    let err = super::run().unwrap_err();
    assert!(matches!(err, super::AgentError::NotInit { pid } if pid == std::process::id()));
    assert!(err.to_string().contains("must run as PID 1"));
}
