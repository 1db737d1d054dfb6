//! Which guests a run boots: scenarios that need the same guest share one.
//!
//! What decides the guest: the machine, the kernel, the modules (the machine's decoders, the
//! scenario's, its collectors'), the poll interval and `fake_panic`. Scenarios equal in all of
//! these share a guest, which gets the files and setup steps all their collectors need: those
//! only add programs and tracefs instances, which no scenario sees unless its own collectors use
//! them. Modules are different: a module can change what the kernel decodes. Two scenarios of
//! one group cannot tell whether they shared a guest, which, with each scenario's collectors
//! starting fresh, keeps results independent of order.
//!
//! Within a group, scenarios run in file order, except that those expecting a panic run last:
//! a panic costs the guest, and the next scenario would have to boot another.

use crate::collect::rasdaemon_build::RasdaemonBuild;
use std::path::PathBuf;

use rasdrill_inject::Vendor;
use rasdrill_qemu::kernel::Kernel;
use rasdrill_qemu::modules;

use crate::agent::config::SetupStep;
use crate::collect::{self, Collector, Context, GuestNeeds};
use crate::guest::{AccelChoice, GuestSpec};
use crate::report::FailureKind;
use crate::scenario::{Machine, Scenario, StepKind};

/// Where `fake_panic` lives (docs/kernel-interfaces.md, "mce-inject debugfs").
pub const FAKE_PANIC: &str = "/sys/kernel/debug/mce/fake_panic";

/// A scenario that could not be prepared: it fails without running.
#[derive(Debug, Clone)]
pub struct NotRunnable {
    pub kind: FailureKind,
    pub message: String,
}

/// A guest scenario, prepared: its collectors (built fresh) and the guest it needs.
pub struct Prepared<'a> {
    pub scenario: &'a Scenario,
    pub collectors: Vec<Box<dyn Collector>>,
}

/// What the run does, in order.
// A run has a handful of units, made once: their size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Unit<'a> {
    /// One guest, booted once, for these scenarios (in file order).
    Guest {
        spec: GuestSpec,
        scenarios: Vec<Prepared<'a>>,
    },
    /// A scenario on this machine (its collectors are built when its target exists).
    Local(&'a Scenario),
    /// A scenario that cannot run (a collector's needs, its kernel).
    Broken(&'a Scenario, NotRunnable),
}

impl Unit<'_> {
    /// How many scenarios it runs.
    pub fn scenarios(&self) -> usize {
        match self {
            Unit::Guest { scenarios, .. } => scenarios.len(),
            Unit::Local(_) | Unit::Broken(..) => 1,
        }
    }
}

/// What every guest of a run has in common.
pub struct GuestDefaults<'k> {
    /// The kernel of scenarios that do not name one (`None`: none was found or fetched).
    pub kernel: Option<&'k Kernel>,
    /// The kernels of the pinned lines that scenarios name (`machine.kernel_line`).
    pub line_kernels: &'k [Kernel],
    pub accel: AccelChoice,
    /// The executable that becomes the guest's `/init`.
    pub agent: PathBuf,
    /// The rasdaemon of scenarios that do not choose one.
    pub rasdaemon: RasdaemonBuild,
    /// Guests the naive way (see [`GuestSpec::naive`]).
    pub naive: bool,
}

/// Groups guest scenarios by spec, in the order each spec first appears; local scenarios keep
/// their place. `note` hears what preparing says (a download).
pub fn plan<'a>(
    scenarios: &'a [Scenario],
    defaults: &GuestDefaults,
    note: &mut dyn FnMut(&str),
) -> Vec<Unit<'a>> {
    let mut units: Vec<Unit<'a>> = Vec::new();
    // Per unit: the guest it is, without what collectors add (`None` for other units).
    let mut identities: Vec<Option<GuestSpec>> = Vec::new();
    for scenario in scenarios {
        let Some(machine) = scenario.machine() else {
            units.push(Unit::Local(scenario));
            identities.push(None);
            continue;
        };
        let ctx = Context {
            rasdaemon: defaults.rasdaemon.clone(),
            ..Context::for_guest(scenario)
        };
        let prepared = collectors(scenario, &ctx)
            .and_then(|mut collectors| {
                let mut needs = GuestNeeds::default();
                for c in collectors.iter_mut() {
                    needs.merge(c.guest_needs(note).map_err(|e| NotRunnable {
                        kind: FailureKind::Failed,
                        message: e.to_string(),
                    })?);
                }
                Ok((collectors, needs))
            })
            .and_then(|(collectors, needs)| {
                let identity = identity(scenario, machine, &needs.modules, defaults)?;
                Ok((collectors, identity, needs))
            });
        let (collectors, identity, needs) = match prepared {
            Ok(p) => p,
            Err(e) => {
                units.push(Unit::Broken(scenario, e));
                identities.push(None);
                continue;
            }
        };
        let prepared = Prepared {
            scenario,
            collectors,
        };
        let same = identities
            .iter()
            .position(|i| i.as_ref() == Some(&identity));
        match same.map(|i| &mut units[i]) {
            Some(Unit::Guest { spec, scenarios }) => {
                add_needs(spec, needs);
                scenarios.push(prepared);
            }
            _ => {
                let mut spec = identity.clone();
                add_needs(&mut spec, needs);
                units.push(Unit::Guest {
                    spec,
                    scenarios: vec![prepared],
                });
                identities.push(Some(identity));
            }
        }
    }
    for unit in &mut units {
        if let Unit::Guest { scenarios, .. } = unit {
            // Stable: file order otherwise.
            scenarios.sort_by_key(|p| p.scenario.expects_panic());
        }
    }
    units
}

/// The files and setup steps a group's collectors need, each once.
fn add_needs(spec: &mut GuestSpec, needs: GuestNeeds) {
    collect::push_new(&mut spec.extra_files, needs.files);
    collect::push_new(&mut spec.setup, needs.setup);
}

/// Fresh collectors for a scenario.
pub fn collectors(
    scenario: &Scenario,
    ctx: &Context,
) -> Result<Vec<Box<dyn Collector>>, NotRunnable> {
    scenario
        .collectors
        .iter()
        .map(|c| collect::build(c, ctx, scenario.output_limit))
        .collect::<Result<_, _>>()
        .map_err(|e| NotRunnable {
            kind: FailureKind::Failed,
            message: e.to_string(),
        })
}

/// The driver of the PCIe topology's endpoint (an e1000e): with it bound, the AER driver's
/// recovery runs the endpoint driver's error handlers, as on a real machine.
pub const PCIE_ENDPOINT_DRIVER: &str = "e1000e";

/// The modules a guest scenario loads: its machine's decoders, the PCIe endpoint's driver, what
/// its steps deliver through (aer_inject), its own and its collectors'.
fn needed_modules(
    scenario: &Scenario,
    machine: &Machine,
    collector_modules: &[String],
) -> Vec<String> {
    let decoders: &[&str] = match machine.profile {
        Some(p) => p.decoder_modules,
        None if machine.vendor == Vendor::Amd => &["edac_mce_amd"],
        None => &[],
    };
    let mut modules: Vec<String> = Vec::new();
    // The kernel treats `-` and `_` in module names alike; so does the spec.
    collect::push_new(
        &mut modules,
        decoders
            .iter()
            .copied()
            .chain(machine.pcie.then_some(PCIE_ENDPOINT_DRIVER))
            .chain(
                scenario
                    .steps
                    .iter()
                    .flat_map(|s| match &s.kind {
                        StepKind::Inject(payload) => payload.guest_modules(),
                        _ => &[],
                    })
                    .copied(),
            )
            .chain(scenario.setup.modules.iter().map(String::as_str))
            .chain(collector_modules.iter().map(String::as_str))
            .map(modules::normalize),
    );
    modules
}

/// Every module a guest scenario names (its machine's decoders and `setup.modules`) that its
/// kernel lacks, in words, found in the kernel's `modules.dep` and `modules.builtin` before
/// any guest boots. `kernel` is the run's default kernel, `line_kernels` those of the lines
/// scenarios name; a scenario's own is read from its `machine.kernel`.
pub fn missing_modules(
    scenarios: &[Scenario],
    kernel: Option<&Kernel>,
    line_kernels: &[Kernel],
) -> Vec<String> {
    let mut problems = Vec::new();
    for scenario in scenarios {
        let Some(machine) = scenario.machine() else {
            continue;
        };
        let (release, dir) = match (&machine.kernel, machine.kernel_line, kernel) {
            (Some(own), _, _) => match &own.modules {
                Some(dir) => (own.path.display().to_string(), dir.clone()),
                None => continue, // refused with its own message when planned
            },
            (None, Some(line), _) => {
                match line_kernels.iter().find(|k| k.release == line.release) {
                    Some(k) => (k.release.clone(), k.modules_dir.clone()),
                    None => continue, // not cached: refused with its own message when planned
                }
            }
            (None, None, Some(k)) => (k.release.clone(), k.modules_dir.clone()),
            (None, None, None) => continue,
        };
        let index = match modules::ModuleIndex::load(&dir) {
            Ok(index) => index,
            Err(e) => {
                problems.push(format!("{}: {e}", scenario.file.display()));
                continue;
            }
        };
        for name in needed_modules(scenario, machine, &[]) {
            if let Err(e @ modules::ModuleError::Unknown { .. }) = index.load_order(&[&name]) {
                problems.push(format!(
                    "{}: the scenario needs module `{name}`, which kernel {release} lacks: {e}",
                    scenario.file.display()
                ));
            }
        }
    }
    problems
}

/// The guest a scenario needs, before its collectors' files and setup steps are added.
fn identity(
    scenario: &Scenario,
    machine: &Machine,
    collector_modules: &[String],
    defaults: &GuestDefaults,
) -> Result<GuestSpec, NotRunnable> {
    let kernel = match &machine.kernel {
        Some(k) => {
            let Some(modules) = &k.modules else {
                return Err(NotRunnable {
                    kind: FailureKind::BadInput,
                    message: format!(
                        "machine.kernel: {} needs `modules:` too (its lib/modules/<release> directory): \
                         the guest loads its decoders and mce-inject from there",
                        k.path.display()
                    ),
                });
            };
            Kernel::from_paths(&k.path, modules).map_err(|e| NotRunnable {
                kind: FailureKind::BadInput,
                message: format!("machine.kernel: {e}"),
            })?
        }
        None => match machine.kernel_line {
            Some(line) => defaults
                .line_kernels
                .iter()
                .find(|k| k.release == line.release)
                .cloned()
                .ok_or_else(|| NotRunnable {
                    kind: FailureKind::Infrastructure,
                    message: format!(
                        "no guest kernel for pinned line {}: {} is not cached (rasdrill kernel fetch)",
                        line.name, line.release
                    ),
                })?,
            None => defaults.kernel.cloned().ok_or_else(|| NotRunnable {
                kind: FailureKind::Infrastructure,
                message: "no guest kernel: none is cached and none could be fetched".into(),
            })?,
        },
    };
    let modules = needed_modules(scenario, machine, collector_modules);
    let mut setup = Vec::new();
    if scenario.setup.fake_panic {
        setup.push(SetupStep::Write {
            path: FAKE_PANIC.into(),
            value: "1".into(),
        });
    }
    Ok(GuestSpec {
        cpu_model: machine.cpu_model.clone(),
        vcpus: machine.vcpus,
        memory_mib: machine.memory_mib,
        kernel,
        kernel_args: machine.kernel_args.clone(),
        modules,
        accel: defaults.accel,
        extra_files: Vec::new(),
        setup,
        poll_interval_s: scenario.setup.poll_interval.as_secs() as u32,
        agent: defaults.agent.clone(),
        naive: defaults.naive,
        pcie: machine.pcie,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn scenario(name: &str, body: &str) -> Scenario {
        let text = format!("name: {name}\ndescription: d\n{body}");
        crate::scenario::from_str(Path::new(&format!("{name}.yaml")), &text).unwrap()
    }

    fn kernel() -> Kernel {
        Kernel {
            release: "6.1.0-56-amd64".into(),
            vmlinux: "/k/vmlinux".into(),
            modules_dir: "/k/modules".into(),
        }
    }

    const CE: &str = "steps:\n  - inject: {via: qemu, bank: 4, status: 0x9c7d410092080813}\n";

    #[test]
    fn equal_guests_are_shared_and_different_ones_are_not() {
        let k = kernel();
        let defaults = GuestDefaults {
            kernel: Some(&k),
            line_kernels: &[],
            accel: AccelChoice::Tcg,
            agent: "/bin/rasdrill".into(),
            rasdaemon: RasdaemonBuild::default(),
            naive: false,
        };
        let panics = "steps:\n  - inject: {via: qemu, bank: 4, status: 0xbe00000000000813}\n  - expect_panic: {timeout_s: 5}\n";
        let scenarios = vec![
            scenario("a", &format!("machine: {{profile: amd-f15h}}\n{panics}")),
            scenario("b", &format!("machine: {{profile: intel-skx}}\n{CE}")),
            scenario(
                "c",
                &format!(
                    "machine: {{profile: amd-f15h}}\nsetup: {{modules: [edac-mce-amd]}}\n\
                     collectors: [command: {{name: x, needs: [sh], collect: [sh, -c, \"true\"]}}]\n{CE}"
                ),
            ),
            scenario(
                "d",
                &format!("machine: {{profile: amd-f15h}}\nsetup: {{fake_panic: true}}\n{CE}"),
            ),
            scenario(
                "e",
                "target: {local: {root: .}}\nsteps:\n  - inject: {via: edac, mc: 0, section: 0, word: 0, ecc_vector: 0x1, access: read}\n",
            ),
        ];
        let units = plan(&scenarios, &defaults, &mut |_| {});
        let shape: Vec<Vec<&str>> = units
            .iter()
            .map(|u| match u {
                Unit::Guest { scenarios, .. } => {
                    scenarios.iter().map(|p| p.scenario.name.as_str()).collect()
                }
                Unit::Local(s) => vec![s.name.as_str()],
                Unit::Broken(s, _) => vec![s.name.as_str()],
            })
            .collect();
        // a panics: it runs last in its group. c's collector brings a program to the group.
        assert_eq!(shape, vec![vec!["c", "a"], vec!["b"], vec!["d"], vec!["e"]]);
        let Unit::Guest { spec, .. } = &units[2] else {
            panic!("d boots its own guest")
        };
        assert_eq!(
            spec.setup,
            vec![SetupStep::Write {
                path: FAKE_PANIC.into(),
                value: "1".into()
            }]
        );
        let Unit::Guest { spec, .. } = &units[0] else {
            panic!("a boots a guest")
        };
        assert_eq!(spec.modules, vec!["edac_mce_amd"]);
        assert!(
            matches!(&spec.extra_files[..], [crate::guest::ExtraFile::Executable { guest, .. }] if guest.ends_with("usr/bin/sh")),
            "{:?}",
            spec.extra_files
        );
    }

    #[test]
    fn without_a_kernel_guest_scenarios_cannot_run() {
        let defaults = GuestDefaults {
            kernel: None,
            line_kernels: &[],
            accel: AccelChoice::Tcg,
            agent: "/bin/rasdrill".into(),
            rasdaemon: RasdaemonBuild::default(),
            naive: false,
        };
        let scenarios = vec![scenario(
            "a",
            &format!("machine: {{profile: amd-f15h}}\n{CE}"),
        )];
        let units = plan(&scenarios, &defaults, &mut |_| {});
        assert!(matches!(&units[0], Unit::Broken(_, e) if e.kind == FailureKind::Infrastructure));
    }
}
