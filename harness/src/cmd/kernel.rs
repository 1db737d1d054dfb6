//! `rasdrill kernel`: the guest kernels in the cache, and `--kernel/--modules` for any other.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use rasdrill_qemu::kernel::{Kernel, KernelCache};
use rasdrill_qemu::pinned;

use crate::exit::Failure;

pub const EXAMPLES: &str = "\
Examples:
  # Download every pinned kernel line into the cache (once; later calls are no-ops):
  rasdrill kernel fetch
  # One pinned line, or any Debian ABI:
  rasdrill kernel fetch --release 6.1
  rasdrill kernel fetch --release 6.12.115+deb12
  # What is cached, and where:
  rasdrill kernel list

The cache is $RASDRILL_CACHE, else $XDG_CACHE_HOME/rasdrill, else ~/.cache/rasdrill.";

#[derive(Debug, Subcommand)]
pub enum KernelCommand {
    /// Download and unpack a Debian kernel (linux-image-<abi>-amd64-unsigned) into the cache
    Fetch {
        /// A pinned line (6.1) or a Debian kernel ABI (6.1.0-56) (default: every pinned line)
        #[arg(long)]
        release: Option<String>,
    },
    /// List the cached kernels
    List,
}

/// Which kernel a guest boots: a cached one, or any other the user names.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Guest kernel")]
pub struct KernelArgs {
    /// Boot this kernel image (a vmlinux boots fastest; a bzImage works) instead of a cached one
    #[arg(long, value_name = "PATH", requires = "modules")]
    pub kernel: Option<PathBuf>,
    /// The lib/modules/<release> directory that goes with --kernel
    #[arg(long, value_name = "DIR", requires = "kernel")]
    pub modules: Option<PathBuf>,
    /// Use the cached kernel of this release or pinned line (default: the default pinned line)
    #[arg(
        long = "kernel-release",
        value_name = "RELEASE",
        conflicts_with = "kernel"
    )]
    pub release: Option<String>,
}

impl KernelArgs {
    /// The kernel to boot. Nothing cached is an error that says how to get one.
    pub fn resolve(&self) -> Result<Kernel, Failure> {
        match (&self.kernel, &self.modules) {
            (Some(kernel), Some(modules)) => {
                Ok(Kernel::from_paths(kernel, modules).map_err(Failure::bad_input)?)
            }
            _ => {
                let cache = KernelCache::from_env().map_err(Failure::bad_input)?;
                cache
                    .find(self.release.as_deref())
                    .map_err(Failure::infrastructure)
            }
        }
    }
}

pub fn run(cmd: KernelCommand) -> Result<(), Failure> {
    let cache = KernelCache::from_env().map_err(Failure::bad_input)?;
    match cmd {
        KernelCommand::Fetch { release } => {
            let releases = match &release {
                Some(release) => vec![release.as_str()],
                None => pinned::LINES.iter().map(|l| l.release).collect(),
            };
            for release in releases {
                let kernel = cache
                    .fetch(Some(release), &mut |event| eprintln!("rasdrill: {event}"))
                    .map_err(Failure::infrastructure)?;
                crate::exit::print(format_args!(
                    "{}\t{}\n",
                    kernel.release,
                    kernel.vmlinux.display()
                ))?;
            }
            Ok(())
        }
        KernelCommand::List => {
            let kernels = cache.list().map_err(Failure::infrastructure)?;
            if kernels.is_empty() {
                eprintln!(
                    "no kernel in {}: run `rasdrill kernel fetch`",
                    cache.kernels_dir().display()
                );
            }
            for k in kernels {
                crate::exit::print(format_args!("{}\t{}\n", k.release, k.vmlinux.display()))?;
            }
            Ok(())
        }
    }
}
