//! Debian packages unpacked into rasdrill's cache, without root:
//! `<cache>/packages/<name>_<version>/root` is what `dpkg-deb -x` made of the package.
//!
//! [`PackageCache::fetch`] asks apt for each package's candidate version, runs one
//! `apt-get download` for those not cached yet, unpacks each into a temporary directory inside
//! the cache and renames it into place, so a reader never sees half a package. A package
//! already cached costs one `apt-cache policy` call and nothing else.
//!
//! The lower-level steps ([`candidate_versions`], [`download`], [`unpack`]) are public for
//! callers that stage a package's contents their own way (a kernel).

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The cache's subdirectory for unpacked packages.
pub const PACKAGES_DIR: &str = "packages";

/// An unpacked package in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    /// Debian's version string, e.g. `0.6.8-1.1` (an epoch keeps its `:`).
    pub version: String,
    /// The directory `dpkg-deb -x` unpacked the package into: `<root>/usr/sbin/...`.
    pub root: PathBuf,
}

/// Why packages could not be found, downloaded or unpacked.
#[derive(Debug, thiserror::Error)]
pub enum DebianError {
    #[error(
        "apt knows no package {package} (is it spelled right? are apt's lists current: run \
         `apt-get update` as root)"
    )]
    UnknownPackage { package: String },
    #[error("`{command}` failed: {detail}")]
    Tool { command: String, detail: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Progress of [`PackageCache::fetch`]; `Display` gives one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchEvent {
    /// Every package asked for is cached already.
    AllCached {
        packages: Vec<String>,
    },
    Downloading {
        packages: Vec<String>,
    },
    Downloaded {
        file: String,
        bytes: u64,
    },
    Unpacked {
        package: String,
        dir: PathBuf,
    },
}

impl fmt::Display for FetchEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchEvent::AllCached { packages } => {
                write!(f, "packages already cached: {}", packages.join(", "))
            }
            FetchEvent::Downloading { packages } => {
                write!(f, "downloading {} (apt-get download)", packages.join(", "))
            }
            FetchEvent::Downloaded { file, bytes } => {
                write!(f, "downloaded {file} ({} kB)", bytes / 1000)
            }
            FetchEvent::Unpacked { package, dir } => {
                write!(f, "unpacked {package} into {}", dir.display())
            }
        }
    }
}

/// The unpacked packages under a cache directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageCache {
    cache_root: PathBuf,
    apt: Apt,
}

impl PackageCache {
    /// Packages under `<cache_root>/packages`; temporary work goes to `<cache_root>/tmp`
    /// (the same file system, so the final rename is atomic).
    pub fn new(cache_root: impl Into<PathBuf>) -> PackageCache {
        PackageCache {
            cache_root: cache_root.into(),
            apt: Apt::host(),
        }
    }

    /// The same cache, with packages from another Debian suite (`trixie`): apt reads that
    /// suite's lists from `<cache_root>/apt/<suite>`, updated on first use; the machine's apt
    /// sources are never changed.
    pub fn for_suite(cache_root: impl Into<PathBuf>, suite: &str) -> PackageCache {
        let cache_root = cache_root.into();
        PackageCache {
            apt: Apt::suite(&cache_root, suite),
            cache_root,
        }
    }

    /// The cache's root directory.
    pub fn root(&self) -> &Path {
        &self.cache_root
    }

    /// `<cache>/packages`.
    pub fn dir(&self) -> PathBuf {
        self.cache_root.join(PACKAGES_DIR)
    }

    /// Where `name` at `version` is, or would be, unpacked.
    pub fn package(&self, name: &str, version: &str) -> Package {
        Package {
            name: name.to_owned(),
            version: version.to_owned(),
            root: self.dir().join(format!("{name}_{version}")).join("root"),
        }
    }

    /// apt's candidate version of each package in `names`, unpacked: downloads and unpacks
    /// the ones not cached yet. Returns them in the order of `names`.
    pub fn fetch(
        &self,
        names: &[&str],
        progress: &mut dyn FnMut(FetchEvent),
    ) -> Result<Vec<Package>, DebianError> {
        self.apt.update_if_stale()?;
        let versions = self.apt.candidate_versions(names)?;
        let packages: Vec<Package> = names
            .iter()
            .zip(&versions)
            .map(|(name, version)| self.package(name, version))
            .collect();
        let missing: Vec<&Package> = packages.iter().filter(|p| !p.root.is_dir()).collect();
        if missing.is_empty() {
            progress(FetchEvent::AllCached {
                packages: packages.iter().map(spec).collect(),
            });
            return Ok(packages);
        }

        // Removed on every exit path, with the .debs and whatever was not moved into place.
        let work = work_dir(&self.cache_root, "packages-", &self.dir())?;
        let wanted: Vec<(String, String)> = missing
            .iter()
            .map(|p| (p.name.clone(), p.version.clone()))
            .collect();
        progress(FetchEvent::Downloading {
            packages: missing.iter().map(|p| spec(p)).collect(),
        });
        let debs = self.apt.download(&wanted, work.path())?;
        for (package, deb) in missing.iter().zip(&debs) {
            let bytes = fs::metadata(deb).map(|m| m.len()).unwrap_or(0);
            let file = deb.file_name().unwrap_or_default().to_string_lossy().into();
            progress(FetchEvent::Downloaded { file, bytes });
            // <work>/<name>_<version>/root, renamed as a whole to <cache>/packages/<name>_<version>.
            let final_dir = package.root.parent().expect("a package root has a parent");
            let stage = work
                .path()
                .join(final_dir.file_name().expect("named directory"));
            unpack(deb, &stage.join("root"))?;
            if let Err(source) = fs::rename(&stage, final_dir) {
                // Another fetch may have installed the same package meanwhile: as good.
                if !package.root.is_dir() {
                    return Err(DebianError::Io {
                        path: final_dir.to_path_buf(),
                        source,
                    });
                }
            }
            progress(FetchEvent::Unpacked {
                package: spec(package),
                dir: package.root.clone(),
            });
        }
        Ok(packages)
    }
}

/// A fresh directory under `<cache_root>/tmp` (removed when dropped) for staging what will be
/// renamed into `destination`, which is created too: both are in the cache, on one file
/// system, so that rename is atomic.
pub(crate) fn work_dir(
    cache_root: &Path,
    prefix: &str,
    destination: &Path,
) -> Result<tempfile::TempDir, DebianError> {
    let tmp_root = cache_root.join("tmp");
    for dir in [&tmp_root, destination] {
        fs::create_dir_all(dir).map_err(io(dir))?;
    }
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&tmp_root)
        .map_err(io(&tmp_root))
}

fn spec(package: &Package) -> String {
    format!("{} {}", package.name, package.version)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DebianError {
    let path = path.to_path_buf();
    move |source| DebianError::Io { path, source }
}

/// apt's candidate version of each package (what `apt-get download <name>` would fetch),
/// in the order of `names`, from the machine's own apt sources.
pub fn candidate_versions(names: &[&str]) -> Result<Vec<String>, DebianError> {
    Apt::host().candidate_versions(names)
}

/// Downloads exact versions with one `apt-get download` into `dir`, from the machine's own apt
/// sources; returns each package's .deb, in the order given. Needs apt's lists, not root.
pub fn download(packages: &[(String, String)], dir: &Path) -> Result<Vec<PathBuf>, DebianError> {
    Apt::host().download(packages, dir)
}

/// The Debian suites rasdrill can fetch from besides the machine's own, and the archive that
/// serves them (signed with the keys of debian-archive-keyring, which every Debian system has).
const ARCHIVE: &str = "http://deb.debian.org/debian";
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// A suite's lists older than this are fetched again: the archive drops superseded versions.
const LISTS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// How apt is run: with the machine's configuration, or with one suite's own source list and
/// lists inside rasdrill's cache (apt's `Dir::Etc::SourceList`, `Dir::State::Lists`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Apt {
    /// `None`: the machine's apt as it is.
    suite: Option<SuiteDirs>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct SuiteDirs {
    name: String,
    /// `<cache>/apt/<suite>`: sources.list, lists/, cache/.
    dir: PathBuf,
}

impl Apt {
    pub fn host() -> Apt {
        Apt { suite: None }
    }

    /// `suite` of Debian's archive, read with lists under `<cache_root>/apt/<suite>`.
    pub fn suite(cache_root: &Path, suite: &str) -> Apt {
        Apt {
            suite: Some(SuiteDirs {
                name: suite.to_owned(),
                dir: cache_root.join("apt").join(suite),
            }),
        }
    }

    /// The `-o` options that point apt at the suite's own files.
    fn options(&self) -> Vec<String> {
        let Some(s) = &self.suite else {
            return Vec::new();
        };
        let d = |rel: &str| s.dir.join(rel).display().to_string();
        vec![
            format!("Dir::Etc::SourceList={}", d("sources.list")),
            format!("Dir::Etc::SourceParts={}", d("sources.list.d")),
            format!("Dir::State::Lists={}", d("lists")),
            format!("Dir::Cache={}", d("cache")),
            // Only package lists: no AppStream metadata or icons.
            "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false".to_owned(),
            "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false".to_owned(),
            "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false".to_owned(),
        ]
        .into_iter()
        .flat_map(|o| ["-o".to_owned(), o])
        .collect()
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.args(self.options());
        c
    }

    /// For a suite: writes its source list and runs `apt-get update` when its lists are
    /// missing or older than a day. The machine's apt needs nothing.
    pub fn update_if_stale(&self) -> Result<(), DebianError> {
        let Some(s) = &self.suite else {
            return Ok(());
        };
        let lists = s.dir.join("lists");
        // apt dates its list files by the archive's clock: our own stamp says when we updated.
        let stamp = s.dir.join("updated");
        let fresh = fs::metadata(&stamp)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age < LISTS_MAX_AGE));
        if fresh {
            return Ok(());
        }
        for dir in [
            lists.join("partial"),
            s.dir.join("sources.list.d"),
            s.dir.join("cache/archives/partial"),
        ] {
            fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        let list = s.dir.join("sources.list");
        let line = format!("deb [signed-by={KEYRING}] {ARCHIVE} {} main\n", s.name);
        fs::write(&list, line).map_err(io(&list))?;
        run(self.command("apt-get").args(["update", "-qq"]))?;
        fs::write(&stamp, "").map_err(io(&stamp))
    }

    /// apt's candidate version of each package, in the order of `names`.
    pub fn candidate_versions(&self, names: &[&str]) -> Result<Vec<String>, DebianError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let text = run(self.command("apt-cache").arg("policy").args(names))?;
        let candidates = parse_policy(&text);
        names
            .iter()
            .map(|name| {
                candidates
                    .iter()
                    .find(|(n, _)| n == name)
                    .and_then(|(_, v)| v.clone())
                    .ok_or_else(|| DebianError::UnknownPackage {
                        package: name.to_string(),
                    })
            })
            .collect()
    }

    /// Downloads exact versions with one `apt-get download` into `dir`; returns each package's
    /// .deb, in the order given. Needs apt's lists, not root.
    pub fn download(
        &self,
        packages: &[(String, String)],
        dir: &Path,
    ) -> Result<Vec<PathBuf>, DebianError> {
        if packages.is_empty() {
            return Ok(Vec::new());
        }
        let args: Vec<String> = packages.iter().map(|(n, v)| format!("{n}={v}")).collect();
        run(self
            .command("apt-get")
            .args(["download", "-q"])
            .args(&args)
            .current_dir(dir))?;
        let files: Vec<String> = fs::read_dir(dir)
            .map_err(io(dir))?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()
            .map_err(io(dir))?;
        packages
            .iter()
            .map(|(name, _)| {
                // apt names them `<name>_<version, ':' as %3a>_<arch>.deb`; a name has no `_`.
                let prefix = format!("{name}_");
                files
                    .iter()
                    .find(|f| f.starts_with(&prefix) && f.ends_with(".deb"))
                    .map(|f| dir.join(f))
                    .ok_or_else(|| DebianError::Tool {
                        command: format!("apt-get download {}", args.join(" ")),
                        detail: format!("no {prefix}*.deb appeared in {}", dir.display()),
                    })
            })
            .collect()
    }
}

/// `(package, candidate)` pairs from `apt-cache policy` (run in the C locale); `None` when
/// apt has no candidate (`(none)`: a virtual or uninstallable package).
fn parse_policy(text: &str) -> Vec<(String, Option<String>)> {
    let mut found = Vec::new();
    for line in text.lines() {
        if !line.starts_with(' ') {
            if let Some(name) = line.strip_suffix(':') {
                found.push((name.to_owned(), None));
            }
        } else if let Some(version) = line.trim().strip_prefix("Candidate: ") {
            if let Some(last) = found.last_mut() {
                last.1 = (version != "(none)").then(|| version.to_owned());
            }
        }
    }
    found
}

/// `dpkg-deb -x deb dest`: the package's files, no maintainer scripts, no root needed.
pub fn unpack(deb: &Path, dest: &Path) -> Result<(), DebianError> {
    // dpkg-deb creates `dest` itself, but not its parents.
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(io(parent))?;
    }
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(dest))?;
    Ok(())
}

/// Runs a tool to completion in the C locale; its stdout, or its stderr in the error.
pub(crate) fn run(command: &mut Command) -> Result<String, DebianError> {
    command.env("LC_ALL", "C");
    let line = format!(
        "{} {}",
        command.get_program().to_string_lossy(),
        command
            .get_args()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let output = command.output().map_err(|e| DebianError::Tool {
        command: line.clone(),
        detail: format!("cannot run it: {e}"),
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(DebianError::Tool {
            command: line,
            detail: format!("{}: {}", output.status, stderr.trim()),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_gives_each_candidate_or_none() {
        let text = "rasdaemon:\n  Installed: (none)\n  Candidate: 0.6.8-1.1\n  Version table:\n     \
                    0.6.8-1.1 500\n        500 http://deb.debian.org/debian bookworm/main amd64 Packages\n\
                    mail-transport-agent:\n  Installed: (none)\n  Candidate: (none)\n  Version table:\n\
                    libfoo:\n  Installed: 1:2.0-1\n  Candidate: 1:2.0-1\n";
        assert_eq!(
            parse_policy(text),
            vec![
                ("rasdaemon".to_owned(), Some("0.6.8-1.1".to_owned())),
                ("mail-transport-agent".to_owned(), None),
                ("libfoo".to_owned(), Some("1:2.0-1".to_owned())),
            ]
        );
    }

    #[test]
    fn a_cached_package_lives_under_its_name_and_version() {
        let cache = PackageCache::new("/c");
        let p = cache.package("rasdaemon", "0.6.8-1.1");
        assert_eq!(
            p.root,
            PathBuf::from("/c/packages/rasdaemon_0.6.8-1.1/root")
        );
    }

    #[test]
    fn an_unknown_package_is_named_with_what_to_do() {
        let err = candidate_versions(&["rasdrill-no-such-package"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "apt knows no package rasdrill-no-such-package (is it spelled right? are apt's lists \
             current: run `apt-get update` as root)"
        );
    }
}
