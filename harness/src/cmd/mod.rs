//! One module per `rasdrill` command: its arguments (clap) and what it does.

pub mod bench;
pub mod diff;
pub mod fuzz;
pub mod guest_inject;
pub mod inject;
pub mod kernel;
pub mod records;
pub mod run;

use rasdrill_inject::mcelang;

/// A clap value parser for C-style numbers (`42`, `0x2a`, `052`), with the language's hints.
pub fn number(s: &str) -> Result<u64, String> {
    mcelang::parse_number(s)
}

/// A clap value parser for 32-bit C-style numbers.
pub fn number_u32(s: &str) -> Result<u32, String> {
    let v = number(s)?;
    u32::try_from(v).map_err(|_| format!("{s} is too large: at most {}", u32::MAX))
}

/// A clap value parser for a status: a number or flags (`VAL UC EN 0x134`).
pub fn status(s: &str) -> Result<u64, String> {
    mcelang::parse_status_words(s)
}

/// A clap value parser for a machine profile name (`amd-f15h`, `intel-skx`, ...).
pub fn profile(s: &str) -> Result<&'static crate::profile::Profile, String> {
    s.parse::<&'static crate::profile::Profile>()
        .map_err(|e| e.to_string())
}

/// How a command that builds its own guest scenario (`inject --guest`, `fuzz`) runs it: one
/// shared guest, no golden files, nothing guarded (the guest is throw-away).
pub fn flag_run_options(
    accel: crate::guest::AccelChoice,
    kernel: &kernel::KernelArgs,
) -> Result<crate::run::Options, crate::exit::Failure> {
    Ok(crate::run::Options {
        golden_dir: std::path::PathBuf::new(),
        mode: None,
        accel,
        allow: rasdrill_inject::guard::Allow::default(),
        kernel: Some(kernel.resolve()?),
        line_kernels: Vec::new(),
        agent: this_executable()?,
        rasdaemon: Default::default(),
        guests: crate::run::GuestReuse::Shared,
    })
}

/// This executable: what a guest runs as its /init.
pub fn this_executable() -> Result<std::path::PathBuf, crate::exit::Failure> {
    std::env::current_exe().map_err(|e| {
        crate::exit::Failure::infrastructure(format!("cannot find this executable: {e}"))
    })
}
