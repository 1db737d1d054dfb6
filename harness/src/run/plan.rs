//! Which guests a run boots: scenarios with equal guest specs share one guest.
//!
//! A guest's spec is everything that makes it what it is: the machine, the kernel, the modules
//! (the machine's decoders, the scenario's, its collectors'), the poll interval, the setup
//! (fake_panic, what collectors need) and the files collectors bring. Two scenarios whose specs
//! are equal cannot tell whether they shared a guest, which is what keeps results independent
//! of order (with each scenario's collectors starting fresh).

use std::path::PathBuf;

use rasdrill_inject::Vendor;
use rasdrill_qemu::kernel::Kernel;

use crate::agent::config::SetupStep;
use crate::collect::{self, Collector, Context, GuestNeeds};
use crate::guest::{AccelChoice, GuestSpec};
use crate::report::FailureKind;
use crate::scenario::{Machine, Scenario};

/// Where `fake_panic` lives (reference section 1).
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
    pub fn len(&self) -> usize {
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
    pub accel: AccelChoice,
    /// The executable that becomes the guest's `/init`.
    pub agent: PathBuf,
}

/// Groups guest scenarios by spec, in the order each spec first appears; local scenarios keep
/// their place. `note` hears what preparing says (a download).
pub fn plan<'a>(
    scenarios: &'a [Scenario],
    defaults: &GuestDefaults,
    note: &mut dyn FnMut(&str),
) -> Vec<Unit<'a>> {
    let mut units: Vec<Unit<'a>> = Vec::new();
    for scenario in scenarios {
        let Some(machine) = scenario.machine() else {
            units.push(Unit::Local(scenario));
            continue;
        };
        let prepared = collectors(scenario, &Context::for_guest(scenario))
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
                let spec = spec(scenario, machine, needs, defaults)?;
                Ok((collectors, spec))
            });
        let (collectors, spec) = match prepared {
            Ok(p) => p,
            Err(e) => {
                units.push(Unit::Broken(scenario, e));
                continue;
            }
        };
        let prepared = Prepared {
            scenario,
            collectors,
        };
        let same = units.iter_mut().find_map(|u| match u {
            Unit::Guest { spec: s, scenarios } if *s == spec => Some(scenarios),
            _ => None,
        });
        match same {
            Some(group) => group.push(prepared),
            None => units.push(Unit::Guest {
                spec,
                scenarios: vec![prepared],
            }),
        }
    }
    units
}

/// Fresh collectors for a scenario.
pub fn collectors(
    scenario: &Scenario,
    ctx: &Context,
) -> Result<Vec<Box<dyn Collector>>, NotRunnable> {
    scenario
        .collectors
        .iter()
        .map(|c| collect::build(c, ctx))
        .collect::<Result<_, _>>()
        .map_err(|e| NotRunnable {
            kind: FailureKind::Failed,
            message: e.to_string(),
        })
}

/// The guest a scenario needs.
fn spec(
    scenario: &Scenario,
    machine: &Machine,
    needs: GuestNeeds,
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
        None => defaults.kernel.cloned().ok_or_else(|| NotRunnable {
            kind: FailureKind::Infrastructure,
            message: "no guest kernel: none is cached and none could be fetched".into(),
        })?,
    };
    let mut modules: Vec<String> = Vec::new();
    let decoders: Vec<String> = match machine.profile {
        Some(p) => p.decoder_modules.iter().map(|m| m.to_string()).collect(),
        None if machine.vendor == Vendor::Amd => vec!["edac_mce_amd".to_string()],
        None => Vec::new(),
    };
    for m in decoders
        .into_iter()
        .chain(scenario.setup.modules.iter().cloned())
        .chain(needs.modules)
    {
        // The kernel treats `-` and `_` in module names alike; so does the spec.
        let m = m.replace('-', "_");
        if !modules.contains(&m) {
            modules.push(m);
        }
    }
    let mut setup = Vec::new();
    if scenario.setup.fake_panic {
        setup.push(SetupStep::Write {
            path: FAKE_PANIC.into(),
            value: "1".into(),
        });
    }
    setup.extend(needs.setup);
    Ok(GuestSpec {
        cpu_model: machine.cpu_model.clone(),
        vcpus: machine.vcpus,
        memory_mib: machine.memory_mib,
        kernel,
        modules,
        accel: defaults.accel,
        extra_files: needs.files,
        setup,
        poll_interval_s: scenario.setup.poll_interval.as_secs() as u32,
        agent: defaults.agent.clone(),
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
            accel: AccelChoice::Tcg,
            agent: "/bin/rasdrill".into(),
        };
        let scenarios = vec![
            scenario("a", &format!("machine: {{profile: amd-f15h}}\n{CE}")),
            scenario("b", &format!("machine: {{profile: intel-skx}}\n{CE}")),
            scenario(
                "c",
                &format!("machine: {{profile: amd-f15h}}\nsetup: {{modules: [edac-mce-amd]}}\n{CE}"),
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
        assert_eq!(shape, vec![vec!["a", "c"], vec!["b"], vec!["d"], vec!["e"]]);
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
    }

    #[test]
    fn without_a_kernel_guest_scenarios_cannot_run() {
        let defaults = GuestDefaults {
            kernel: None,
            accel: AccelChoice::Tcg,
            agent: "/bin/rasdrill".into(),
        };
        let scenarios = vec![scenario(
            "a",
            &format!("machine: {{profile: amd-f15h}}\n{CE}"),
        )];
        let units = plan(&scenarios, &defaults, &mut |_| {});
        assert!(matches!(&units[0], Unit::Broken(_, e) if e.kind == FailureKind::Infrastructure));
    }
}
