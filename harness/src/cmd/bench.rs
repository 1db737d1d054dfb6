//! `rasdrill bench`: the numbers behind the README's performance claims, measured on this machine.
//!
//! `boot`: cold start to agent ready, the cost every guest pays. Each run builds the
//! initramfs, starts QEMU and waits for the agent's `Ready`, then powers the guest off.

use std::time::Duration;

use clap::{Args, Subcommand};

use crate::cmd::kernel::KernelArgs;
use crate::exit::Failure;
use crate::guest::{AccelChoice, Guest, GuestSpec};
use crate::profile::{Profile, DEFAULT_PROFILE};

pub const EXAMPLES: &str = "\
Examples:
  # Cold start to agent ready, median of 5 boots of the default guest:
  rasdrill bench boot
  # More runs, another profile, forced TCG:
  rasdrill bench boot --runs 9 --profile intel-skx --accel tcg
  # The reference configuration (1 vCPU, 256 MiB):
  rasdrill bench boot --vcpus 1";

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Cold start to agent ready: QEMU start, kernel boot, agent setup
    Boot(BootArgs),
}

#[derive(Debug, Args)]
pub struct BootArgs {
    /// How many boots (the median is reported; at least 5 for a stable figure)
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub runs: u32,
    /// The machine profile to boot
    #[arg(long, default_value = DEFAULT_PROFILE, value_parser = super::profile)]
    pub profile: &'static Profile,
    /// vCPUs instead of the profile's (bringing up each extra vCPU costs about a second under TCG)
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub vcpus: Option<u32>,
    #[arg(long, value_enum, default_value_t = AccelChoice::Tcg)]
    pub accel: AccelChoice,
    #[command(flatten)]
    pub kernel: KernelArgs,
}

pub fn run(cmd: BenchCommand) -> Result<(), Failure> {
    match cmd {
        BenchCommand::Boot(args) => boot(args),
    }
}

fn boot(args: BootArgs) -> Result<(), Failure> {
    let p = args.profile;
    let mut spec = GuestSpec::for_profile(
        p,
        args.kernel.resolve()?,
        args.accel,
        super::this_executable()?,
    );
    if let Some(vcpus) = args.vcpus {
        spec.vcpus = vcpus;
    }
    let mut host = Vec::new();
    let mut guest_uptime = Vec::new();
    for i in 1..=args.runs {
        let guest = Guest::boot(&spec, &mut |_| {}).map_err(Failure::infrastructure)?;
        let t = guest.boot_time();
        let up = Duration::from_millis(guest.ready().uptime_ms);
        eprintln!(
            "rasdrill: boot {i}/{}: agent ready {:.3} s after QEMU started (guest uptime {:.3} s)",
            args.runs,
            t.as_secs_f64(),
            up.as_secs_f64()
        );
        guest.shutdown();
        host.push(t);
        guest_uptime.push(up);
    }
    let (min, median, max) = stats(&mut host);
    let (_, up_median, _) = stats(&mut guest_uptime);
    crate::exit::print(format_args!(
        "boot to agent ready, {} ({} vCPU, {} MiB, {}), {} runs: median {:.3} s (min {:.3} s, max {:.3} s); \
         guest uptime at ready: median {:.3} s\n",
        p.name,
        spec.vcpus,
        p.memory_mib,
        format!("{:?}", args.accel).to_lowercase(),
        args.runs,
        median.as_secs_f64(),
        min.as_secs_f64(),
        max.as_secs_f64(),
        up_median.as_secs_f64()
    ))
}

/// Minimum, median (lower median for an even count) and maximum.
fn stats(samples: &mut [Duration]) -> (Duration, Duration, Duration) {
    samples.sort();
    (
        samples[0],
        samples[(samples.len() - 1) / 2],
        samples[samples.len() - 1],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let ms = Duration::from_millis;
        let mut odd = [ms(30), ms(10), ms(20)];
        assert_eq!(stats(&mut odd), (ms(10), ms(20), ms(30)));
        let mut even = [ms(40), ms(10), ms(30), ms(20)];
        assert_eq!(stats(&mut even), (ms(10), ms(20), ms(40)));
    }
}
