//! Which rasdaemon a guest runs: Debian 12's 0.6.8 (the default), Debian 13's 0.8.3, or a
//! rasdaemon someone built (a path). A scenario (`rasdaemon: {version: 0.8.3}`) or a run
//! (`--rasdaemon 0.8.3|PATH`) chooses; all three can live in one guest side by side.
//!
//! - **0.6.8** comes from the machine's own apt (Debian 12): `rasdaemon`, `sqlite3` and
//!   `libsqlite3-0`, at their usual paths; the other libraries are the host's.
//! - **0.8.3** comes from Debian 13 "trixie" in the same archive, read with apt lists of its own
//!   inside the cache (`debian::Apt::suite`), never through the machine's apt sources. Its
//!   libraries need glibc 2.38, newer than Debian 12's, so everything it runs on comes from
//!   trixie too: the programs, every library they need and trixie's own dynamic loader, bundled
//!   once into `<cache>/bundles/rasdaemon-<version>` and copied to [`TRIXIE_DIR`] in the guest,
//!   where the programs run through that loader (`ld.so --library-path lib prog`).
//! - **A path** is a rasdaemon built on this machine: it links the host's libraries (ldd finds
//!   them) and runs from [`LOCAL`]; the database is read with Debian 12's sqlite3. It must use
//!   Debian's state directory (`./configure --localstatedir=/var`), where the database is read.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use rasdrill_qemu::debian::{Package, PackageCache};

use crate::collect::{CollectError, GuestNeeds};
use crate::guest::ExtraFile;

/// A rasdaemon to run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RasdaemonBuild {
    /// Debian 12's package (0.6.8).
    #[default]
    Debian12,
    /// Debian 13's package (0.8.3), with trixie's libraries and loader.
    Debian13,
    /// A rasdaemon built on this machine.
    Local(PathBuf),
}

/// The rasdaemon collector's name in scenarios, and the name the daemon is spawned under
/// (its errors, and those of fetching its programs, carry it).
pub const NAME: &str = "rasdaemon";

/// Debian 12's versions, the Debian 12 packages and where the programs are in the guest.
pub const DEBIAN12_VERSION: &str = "0.6.8";
pub const DEBIAN12_PACKAGES: [&str; 3] = ["rasdaemon", "sqlite3", "libsqlite3-0"];
pub const RASDAEMON: &str = "/usr/sbin/rasdaemon";
pub const SQLITE3: &str = "/usr/bin/sqlite3";

/// Debian 13: the suite, its rasdaemon version, and every package whose files the bundle takes
/// (the programs and the libraries they need, glibc and its loader included).
pub const DEBIAN13_SUITE: &str = "trixie";
pub const DEBIAN13_VERSION: &str = "0.8.3";
pub const DEBIAN13_PACKAGES: [&str; 9] = [
    "rasdaemon",
    "sqlite3",
    "libsqlite3-0",
    "libtraceevent1",
    "libc6",
    "libreadline8t64",
    "libtinfo6",
    "zlib1g",
    "libncursesw6",
];
/// Where the trixie bundle is in the guest: `bin/`, `lib/` (with the loader).
pub const TRIXIE_DIR: &str = "/opt/rasdaemon-trixie";
const LOADER: &str = "ld-linux-x86-64.so.2";

/// Where a locally built rasdaemon is in the guest (apart from Debian's, which may be there too).
pub const LOCAL: &str = "/opt/rasdaemon-local/rasdaemon";

impl FromStr for RasdaemonBuild {
    type Err = String;

    /// `0.6.8` (or `debian12`), `0.8.3` (or `debian13`), or a path to a built rasdaemon.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            DEBIAN12_VERSION | "debian12" => Ok(RasdaemonBuild::Debian12),
            DEBIAN13_VERSION | "debian13" => Ok(RasdaemonBuild::Debian13),
            _ if s.contains('/') => Ok(RasdaemonBuild::Local(PathBuf::from(s))),
            _ => Err(format!(
                "`{s}` is not a rasdaemon rasdrill knows: use {DEBIAN12_VERSION} (Debian 12), \
                 {DEBIAN13_VERSION} (Debian 13) or the path of a rasdaemon you built (with a `/`)"
            )),
        }
    }
}

impl fmt::Display for RasdaemonBuild {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RasdaemonBuild::Debian12 => write!(f, "{DEBIAN12_VERSION} (Debian 12)"),
            RasdaemonBuild::Debian13 => write!(f, "{DEBIAN13_VERSION} (Debian 13)"),
            RasdaemonBuild::Local(path) => write!(f, "{}", path.display()),
        }
    }
}

impl RasdaemonBuild {
    /// The argv that starts `program` (`rasdaemon` or `sqlite3`) in the guest, before its own
    /// arguments.
    pub fn argv(&self, program: Program) -> Vec<String> {
        match (self, program) {
            (RasdaemonBuild::Debian13, _) => vec![
                format!("{TRIXIE_DIR}/lib/{LOADER}"),
                "--library-path".into(),
                format!("{TRIXIE_DIR}/lib"),
                format!("{TRIXIE_DIR}/bin/{}", program.name()),
            ],
            (RasdaemonBuild::Local(_), Program::Rasdaemon) => vec![LOCAL.into()],
            (_, Program::Rasdaemon) => vec![RASDAEMON.into()],
            (_, Program::Sqlite3) => vec![SQLITE3.into()],
        }
    }

    /// What the guest needs for this rasdaemon; fetches and bundles on first use.
    pub fn guest_needs(
        &self,
        cache_root: &Path,
        progress: &mut dyn FnMut(&str),
    ) -> Result<GuestNeeds, CollectError> {
        let files = match self {
            RasdaemonBuild::Debian12 => debian12(cache_root, progress)?,
            RasdaemonBuild::Debian13 => vec![ExtraFile::Tree {
                guest: PathBuf::from(TRIXIE_DIR),
                host: trixie_bundle(cache_root, progress)?,
            }],
            RasdaemonBuild::Local(path) => {
                if !path.is_file() {
                    return Err(failed(format!(
                        "{} is not a file (give the rasdaemon you built)",
                        path.display()
                    )));
                }
                let mut files = debian12(cache_root, progress)?;
                // Debian's daemon stays: only its sqlite3 is used.
                files.remove(0);
                files.push(ExtraFile::Executable {
                    guest: PathBuf::from(LOCAL),
                    host: path.clone(),
                });
                files
            }
        };
        Ok(GuestNeeds {
            files,
            ..GuestNeeds::default()
        })
    }
}

/// A program the collector runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    Rasdaemon,
    Sqlite3,
}

impl Program {
    fn name(self) -> &'static str {
        match self {
            Program::Rasdaemon => "rasdaemon",
            Program::Sqlite3 => "sqlite3",
        }
    }
}

fn failed(message: impl fmt::Display) -> CollectError {
    CollectError::failed(NAME, message.to_string())
}

/// Debian 12's rasdaemon and sqlite3, with libsqlite3 from its package.
fn debian12(
    cache_root: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<ExtraFile>, CollectError> {
    let packages = PackageCache::new(cache_root)
        .fetch(&DEBIAN12_PACKAGES, &mut |event| {
            progress(&event.to_string())
        })
        .map_err(failed)?;
    let [rasdaemon, sqlite3, libsqlite3] =
        <[Package; 3]>::try_from(packages).expect("fetch returns one package per name");
    let program = |package: &Package, path: &str| ExtraFile::PackagedExecutable {
        guest: PathBuf::from(path),
        host: package.root.join(path.trim_start_matches('/')),
        library_roots: vec![libsqlite3.root.clone()],
    };
    Ok(vec![
        program(&rasdaemon, RASDAEMON),
        program(&sqlite3, SQLITE3),
    ])
}

/// `<cache>/bundles/rasdaemon-<debian version>`: trixie's rasdaemon and sqlite3 in `bin/`,
/// every library they need and the loader in `lib/`. Built once, in a temporary directory
/// renamed into place, so a reader never sees half a bundle.
fn trixie_bundle(
    cache_root: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<PathBuf, CollectError> {
    let packages = PackageCache::for_suite(cache_root, DEBIAN13_SUITE)
        .fetch(&DEBIAN13_PACKAGES, &mut |event| {
            progress(&event.to_string())
        })
        .map_err(failed)?;
    let bundles = cache_root.join("bundles");
    let bundle = bundles.join(format!("rasdaemon-{}", packages[0].version));
    if bundle.is_dir() {
        return Ok(bundle);
    }
    let io = |what: &Path, e: std::io::Error| failed(format!("{}: {e}", what.display()));
    let tmp = cache_root.join("tmp");
    for dir in [&bundles, &tmp] {
        fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    }
    let work = tempfile::Builder::new()
        .prefix("bundle-")
        .tempdir_in(&tmp)
        .map_err(|e| io(&tmp, e))?;
    let (bin, lib) = (work.path().join("bin"), work.path().join("lib"));
    for dir in [&bin, &lib] {
        fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    }
    // One directory of links to every package's libraries: the loader's search path is a
    // `:`-separated list, and package directories hold `:` (epochs, as in `1:1.8.4-2`).
    let search = work.path().join("search");
    fs::create_dir_all(&search).map_err(|e| io(&search, e))?;
    for package in &packages {
        let dir = package.root.join("usr/lib/x86_64-linux-gnu");
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let link = search.join(entry.file_name());
            if !link.exists() {
                std::os::unix::fs::symlink(entry.path(), &link).map_err(|e| io(&link, e))?;
            }
        }
    }
    let loader = search.join(LOADER);
    if !loader.is_file() {
        return Err(failed(format!("trixie's libc6 has no {LOADER}")));
    }
    let programs = [
        (&packages[0], "usr/sbin/rasdaemon"),
        (&packages[1], "usr/bin/sqlite3"),
    ];
    for (package, rel) in programs {
        let exe = package.root.join(rel);
        let name = exe.file_name().expect("a program has a name");
        fs::copy(&exe, bin.join(name)).map_err(|e| io(&exe, e))?;
        for library in needed(&loader, &search, &exe)? {
            let name = library.file_name().expect("a library has a name");
            // Copies follow symlinks: each soname becomes a file of its own.
            fs::copy(&library, lib.join(name)).map_err(|e| io(&library, e))?;
        }
    }
    fs::copy(&loader, lib.join(LOADER)).map_err(|e| io(&loader, e))?;
    fs::remove_dir_all(&search).map_err(|e| io(&search, e))?;
    if let Err(e) = fs::rename(work.path(), &bundle) {
        // Another run may have built it meanwhile: as good.
        if !bundle.is_dir() {
            return Err(io(&bundle, e));
        }
    }
    progress(&format!(
        "bundled trixie's rasdaemon into {}",
        bundle.display()
    ));
    Ok(bundle)
}

/// The libraries `exe` needs, as trixie's own loader resolves them in `search` (glibc's
/// `ld.so --list`, what ldd runs); a library it cannot find is an error naming it.
fn needed(loader: &Path, search: &Path, exe: &Path) -> Result<Vec<PathBuf>, CollectError> {
    let out = Command::new(loader)
        .arg("--library-path")
        .arg(search)
        .arg("--list")
        .arg(exe)
        .output()
        .map_err(|e| failed(format!("cannot run {}: {e}", loader.display())))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(failed(format!(
            "`{} --list {}` failed ({}): {}{}",
            loader.display(),
            exe.display(),
            out.status,
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut libs = Vec::new();
    for line in text.lines() {
        // "libc.so.6 => /…/libc.so.6 (0x…)"; the vDSO and the loader's own line have no file.
        let Some((name, rest)) = line.trim().split_once(" => ") else {
            continue;
        };
        let file = rest.split(" (0x").next().unwrap_or(rest).trim();
        if file == "not found" {
            return Err(failed(format!(
                "{} needs {name}, which no trixie package in the bundle has",
                exe.display()
            )));
        }
        if !name.contains(LOADER) {
            libs.push(PathBuf::from(file));
        }
    }
    Ok(libs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_paths_name_a_build_and_anything_else_is_refused() {
        assert_eq!("0.6.8".parse(), Ok(RasdaemonBuild::Debian12));
        assert_eq!("0.8.3".parse(), Ok(RasdaemonBuild::Debian13));
        assert_eq!(
            "./build/rasdaemon".parse(),
            Ok(RasdaemonBuild::Local("./build/rasdaemon".into()))
        );
        assert_eq!(
            "0.8.4".parse::<RasdaemonBuild>().unwrap_err(),
            "`0.8.4` is not a rasdaemon rasdrill knows: use 0.6.8 (Debian 12), 0.8.3 (Debian 13) \
             or the path of a rasdaemon you built (with a `/`)"
        );
    }

    #[test]
    fn trixie_programs_run_through_their_own_loader() {
        assert_eq!(
            RasdaemonBuild::Debian13.argv(Program::Rasdaemon),
            [
                "/opt/rasdaemon-trixie/lib/ld-linux-x86-64.so.2",
                "--library-path",
                "/opt/rasdaemon-trixie/lib",
                "/opt/rasdaemon-trixie/bin/rasdaemon"
            ]
        );
        assert_eq!(
            RasdaemonBuild::Local("/x/rasdaemon".into()).argv(Program::Sqlite3),
            ["/usr/bin/sqlite3"]
        );
        assert_eq!(
            RasdaemonBuild::Debian12.argv(Program::Rasdaemon),
            ["/usr/sbin/rasdaemon"]
        );
    }
}
