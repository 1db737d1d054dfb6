//! The trace events each rasdaemon build subscribes to, and how long the build takes to start
//! on a kernel that lacks some of them.
//!
//! rasdaemon 0.8.2 and 0.8.3 open each event's `format` file through `wait_access`, which
//! polls for the file every millisecond for 30 s (upstream commit d22ed5e, meant for a tracefs
//! still being mounted). For an event the kernel does not have, that is 30 s lost before
//! rasdaemon gives up on it and moves on. Debian 13's 0.8.3 is built with CXL support and
//! subscribes to 8 CXL events that kernel 6.1 lacks: 4 minutes before it listens. rasdaemon
//! 0.8.4 checks that an event exists first (upstream commit 2143bd2); 0.6.8 has no wait.

use std::time::Duration;

use crate::collect::rasdaemon_build::RasdaemonBuild;

/// A trace event as `available_events` lists it: `group:name`.
pub type Event = &'static str;

/// What rasdaemon 0.6.8 subscribes to (ras-events.c, handle_ras_events, tag v0.6.8), as Debian
/// 12 configures it: the binary holds only these event names (no --enable-non-standard, -arm,
/// -devlink, -diskerror, -memory-failure).
const DEBIAN12_EVENTS: [Event; 4] = [
    "ras:mc_event",
    "ras:aer_event",
    "mce:mce_record",
    "ras:extlog_mem_event",
];

/// What rasdaemon 0.8.3 subscribes to (ras-events.c, handle_ras_events, tag v0.8.3), in that
/// order, as Debian 13 configures it: every optional handler on, CXL included, and the block
/// handler on `block_rq_error` (the binary holds exactly these event names).
const DEBIAN13_EVENTS: [Event; 18] = [
    "ras:mc_event",
    "ras:aer_event",
    "ras:non_standard_event",
    "ras:arm_event",
    "mce:mce_record",
    "ras:extlog_mem_event",
    "net:net_dev_xmit_timeout",
    "devlink:devlink_health_report",
    "block:block_rq_error",
    "ras:memory_failure_event",
    "cxl:cxl_poison",
    "cxl:cxl_aer_uncorrectable_error",
    "cxl:cxl_aer_correctable_error",
    "cxl:cxl_overflow",
    "cxl:cxl_generic_event",
    "cxl:cxl_general_media",
    "cxl:cxl_dram",
    "cxl:cxl_memory_module",
];

/// `wait_access(path, 30000)` in 0.8.2 and 0.8.3: 30 000 polls 1 ms apart.
pub const BUSY_WAIT: Duration = Duration::from_secs(30);

/// Under TCG a 1 ms `usleep` in the guest takes several ms, so the 30 s busy-wait takes minutes:
/// measured on kernel 6.1, two of the 8 waits were over and the third was not after 380 s, so one
/// takes 127 to 190 s. The deadline allows this much per missing event (a wait ends sooner when
/// rasdaemon is ready sooner, as under KVM).
const BUSY_WAIT_ALLOWANCE: Duration = Duration::from_secs(240);

/// What a build subscribes to and what each missing event costs it at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscriptions {
    pub events: &'static [Event],
    /// Zero when the build does not wait for a missing event.
    pub wait_per_missing: Duration,
}

/// What `build` subscribes to; `None` for a rasdaemon built here, whose configuration is not
/// known: it is assumed to carry the upstream fix (0.8.4 and later), so it starts at once.
pub fn subscriptions(build: &RasdaemonBuild) -> Option<Subscriptions> {
    match build {
        RasdaemonBuild::Debian12 => Some(Subscriptions {
            events: &DEBIAN12_EVENTS,
            wait_per_missing: Duration::ZERO,
        }),
        RasdaemonBuild::Debian13 => Some(Subscriptions {
            events: &DEBIAN13_EVENTS,
            wait_per_missing: BUSY_WAIT,
        }),
        RasdaemonBuild::Local(_) => None,
    }
}

/// What a start costs on one kernel: the events it lacks that the build waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartCost {
    /// The events waited for, in the order rasdaemon opens them.
    pub missing: Vec<Event>,
    /// How long rasdaemon spends waiting for them, by its own count.
    pub wait: Duration,
}

impl StartCost {
    /// The cost of starting a build that subscribes to `subs` on a kernel whose
    /// `available_events` file reads `available`.
    pub fn of(subs: &Subscriptions, available: &str) -> StartCost {
        if subs.wait_per_missing.is_zero() {
            return StartCost {
                missing: Vec::new(),
                wait: Duration::ZERO,
            };
        }
        let present: Vec<&str> = available.lines().map(str::trim).collect();
        let missing: Vec<Event> = subs
            .events
            .iter()
            .copied()
            .filter(|e| !present.contains(e))
            .collect();
        StartCost {
            wait: subs.wait_per_missing * missing.len() as u32,
            missing,
        }
    }

    /// How much longer than usual to wait for rasdaemon to be ready.
    pub fn allowance(&self) -> Duration {
        BUSY_WAIT_ALLOWANCE * self.missing.len() as u32
    }

    /// The progress line explaining a slow start; `None` when the start is not slowed.
    pub fn note(&self, build: &RasdaemonBuild, kernel: &str) -> Option<String> {
        let n = self.missing.len();
        (n > 0).then(|| {
            format!(
                "rasdaemon {build} waits {} s for each of the {n} trace event{} kernel {kernel} \
                 lacks ({}): ready in about {} s, under TCG in up to {} s (fixed upstream in \
                 rasdaemon 0.8.4, commit 2143bd2)",
                BUSY_WAIT.as_secs(),
                if n == 1 { "" } else { "s" },
                self.missing.join(", "),
                self.wait.as_secs(),
                self.allowance().as_secs()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What kernel 6.1's `available_events` holds of what 0.8.3 asks for: no CXL events.
    const KERNEL_6_1: &str = "ras:mc_event\nras:aer_event\nras:non_standard_event\n\
        ras:arm_event\nmce:mce_record\nras:extlog_mem_event\nnet:net_dev_xmit_timeout\n\
        devlink:devlink_health_report\nblock:block_rq_error\nras:memory_failure_event\n\
        sched:sched_switch\n";

    #[test]
    fn debian_13_on_a_kernel_without_cxl_events_waits_for_each_of_the_8() {
        let subs = subscriptions(&RasdaemonBuild::Debian13).unwrap();
        let cost = StartCost::of(&subs, KERNEL_6_1);
        assert_eq!(
            cost.missing,
            [
                "cxl:cxl_poison",
                "cxl:cxl_aer_uncorrectable_error",
                "cxl:cxl_aer_correctable_error",
                "cxl:cxl_overflow",
                "cxl:cxl_generic_event",
                "cxl:cxl_general_media",
                "cxl:cxl_dram",
                "cxl:cxl_memory_module",
            ]
        );
        assert_eq!(cost.wait, Duration::from_secs(240));
        assert_eq!(cost.allowance(), Duration::from_secs(1920));
        assert_eq!(
            cost.note(&RasdaemonBuild::Debian13, "6.1.0-57-amd64")
                .unwrap(),
            "rasdaemon 0.8.3 (Debian 13) waits 30 s for each of the 8 trace events kernel \
             6.1.0-57-amd64 lacks (cxl:cxl_poison, cxl:cxl_aer_uncorrectable_error, \
             cxl:cxl_aer_correctable_error, cxl:cxl_overflow, cxl:cxl_generic_event, \
             cxl:cxl_general_media, cxl:cxl_dram, cxl:cxl_memory_module): ready in about 240 s, \
             under TCG in up to 1920 s (fixed upstream in rasdaemon 0.8.4, commit 2143bd2)"
        );
    }

    #[test]
    fn a_kernel_with_every_event_costs_nothing() {
        let subs = subscriptions(&RasdaemonBuild::Debian13).unwrap();
        let all = DEBIAN13_EVENTS.join("\n");
        let cost = StartCost::of(&subs, &all);
        assert_eq!(cost.missing, Vec::<Event>::new());
        assert_eq!(cost.allowance(), Duration::ZERO);
        assert_eq!(cost.note(&RasdaemonBuild::Debian13, "6.12"), None);
    }

    #[test]
    fn debian_12_never_waits_for_a_missing_event() {
        // 0.6.8 opens `format` once and gives up at once when it is missing.
        let subs = subscriptions(&RasdaemonBuild::Debian12).unwrap();
        let cost = StartCost::of(&subs, "sched:sched_switch\n");
        assert_eq!(cost.missing, Vec::<Event>::new());
        assert_eq!(cost.allowance(), Duration::ZERO);
        assert!(subscriptions(&RasdaemonBuild::Local("/tmp/rasdaemon".into())).is_none());
    }
}
