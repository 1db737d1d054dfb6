//! Guest kernels: a cache of Debian kernels, each unpacked once as
//! `<cache>/kernels/<release>/{vmlinux, vmlinuz, config, modules/<release>/...}`.
//!
//! The cache is `$RASDRILL_CACHE`, else `$XDG_CACHE_HOME/rasdrill`, else `~/.cache/rasdrill`.
//! [`KernelCache::fetch`] needs no root: `apt-get download` and `dpkg-deb -x` into a
//! temporary directory inside the cache, then one rename makes the kernel visible, so a
//! reader never sees half of one. The uncompressed `vmlinux` is what guests boot (through
//! PVH): under TCG the decompressor in a bzImage costs about 2.7 s per boot.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::debian::{self, DebianError};
use crate::decompress::{self, Format};
use crate::modules::{ModuleError, ModuleIndex};
use crate::pinned;

/// Environment variable naming the cache directory.
pub const CACHE_ENV: &str = "RASDRILL_CACHE";

/// A kernel a guest can boot, with its modules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    /// `uname -r` of the kernel, e.g. `6.1.0-56-amd64`.
    pub release: String,
    /// The image given to QEMU's `-kernel`: the uncompressed vmlinux from the cache, or
    /// whatever the user passed with `--kernel` (a bzImage works too, more slowly).
    pub vmlinux: PathBuf,
    /// The `lib/modules/<release>` directory.
    pub modules_dir: PathBuf,
}

impl Kernel {
    /// A kernel from `--kernel PATH --modules DIR`; the release is the directory's name.
    pub fn from_paths(kernel: &Path, modules_dir: &Path) -> Result<Kernel, KernelError> {
        if !kernel.is_file() {
            return Err(KernelError::UserPath {
                option: "--kernel",
                path: kernel.to_path_buf(),
                expected: "a kernel image file",
            });
        }
        if !modules_dir.join("kernel").is_dir() {
            let expected = "a lib/modules/<release> directory (with a kernel/ subdirectory)";
            return Err(KernelError::UserPath {
                option: "--modules",
                path: modules_dir.to_path_buf(),
                expected,
            });
        }
        let release = modules_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Kernel {
            release,
            vmlinux: kernel.to_path_buf(),
            modules_dir: modules_dir.to_path_buf(),
        })
    }
}

/// Why a kernel could not be found or fetched.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("no cache directory: set RASDRILL_CACHE (or XDG_CACHE_HOME, or HOME)")]
    NoCacheDir,
    #[error(
        "kernel {release} is not in {dir} (cached: {cached}): run `rasdrill kernel fetch --release {release}`, \
         or pass --kernel PATH --modules DIR"
    )]
    NotCached {
        release: String,
        dir: PathBuf,
        cached: String,
    },
    #[error("{option} {path}: expected {expected}")]
    UserPath {
        option: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
    #[error(transparent)]
    Debian(#[from] DebianError),
    #[error("apt knows no package {package} (run apt-get update?); available: {available}")]
    UnknownPackage { package: String, available: String },
    #[error("{path}: not a kernel image this can unpack: {reason}")]
    BadImage { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Modules(#[from] ModuleError),
}

/// Progress of [`KernelCache::fetch`], for a progress display. `Display` gives one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchEvent {
    Resolved { package: String, release: String },
    AlreadyCached { release: String, dir: PathBuf },
    Downloading { package: String },
    Downloaded { file: String, bytes: u64 },
    Unpacking,
    ExtractingVmlinux { compressed_bytes: u64 },
    WritingModulesDep { modules: usize },
    Installed { release: String, dir: PathBuf },
}

impl fmt::Display for FetchEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchEvent::Resolved { package, release } => {
                write!(f, "kernel {release}: Debian package {package}")
            }
            FetchEvent::AlreadyCached { release, dir } => {
                write!(f, "kernel {release} is already in {}", dir.display())
            }
            FetchEvent::Downloading { package } => {
                write!(f, "downloading {package} (apt-get download)")
            }
            FetchEvent::Downloaded { file, bytes } => {
                write!(f, "downloaded {file} ({} MB)", bytes / 1_000_000)
            }
            FetchEvent::Unpacking => write!(f, "unpacking (dpkg-deb -x)"),
            FetchEvent::ExtractingVmlinux { compressed_bytes } => {
                write!(
                    f,
                    "extracting vmlinux from the bzImage ({} MB compressed)",
                    compressed_bytes / 1_000_000
                )
            }
            FetchEvent::WritingModulesDep { modules } => {
                write!(f, "writing modules.dep ({modules} modules)")
            }
            FetchEvent::Installed { release, dir } => {
                write!(f, "kernel {release} installed in {}", dir.display())
            }
        }
    }
}

/// The directory of cached kernels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelCache {
    root: PathBuf,
}

impl KernelCache {
    /// `$RASDRILL_CACHE`, else `$XDG_CACHE_HOME/rasdrill`, else `$HOME/.cache/rasdrill`.
    pub fn from_env() -> Result<KernelCache, KernelError> {
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let root = var(CACHE_ENV)
            .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("rasdrill")))
            .or_else(|| var("HOME").map(|d| d.join(".cache/rasdrill")))
            .ok_or(KernelError::NoCacheDir)?;
        Ok(KernelCache { root })
    }

    /// A cache at `root` (which need not exist yet).
    pub fn at(root: impl Into<PathBuf>) -> KernelCache {
        KernelCache { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<cache>/kernels`.
    pub fn kernels_dir(&self) -> PathBuf {
        self.root.join("kernels")
    }

    /// Every complete cached kernel, oldest release first.
    pub fn list(&self) -> Result<Vec<Kernel>, KernelError> {
        let dir = self.kernels_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(KernelError::Io { path: dir, source }),
        };
        let mut kernels = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| KernelError::Io {
                path: dir.clone(),
                source,
            })?;
            let release = entry.file_name().to_string_lossy().into_owned();
            let kernel = cached_kernel(&entry.path(), &release);
            if kernel.vmlinux.is_file() && kernel.modules_dir.join("modules.dep").is_file() {
                kernels.push(kernel);
            }
        }
        kernels.sort_by_key(|k| version_key(&k.release));
        Ok(kernels)
    }

    /// The cached kernel for `release` (`6.1.0-56`, `6.1.0-56-amd64`, or a pinned line such as
    /// `6.1`), by default the default line's pinned release: never just the newest cached, so
    /// that fetching another kernel cannot change what a run boots.
    pub fn find(&self, release: Option<&str>) -> Result<Kernel, KernelError> {
        let kernels = self.list()?;
        let wanted = full_release(release.unwrap_or(pinned::DEFAULT_LINE));
        if let Some(kernel) = kernels.iter().find(|k| k.release == wanted) {
            return Ok(kernel.clone());
        }
        let cached = kernels
            .iter()
            .map(|k| k.release.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        Err(KernelError::NotCached {
            release: wanted,
            dir: self.kernels_dir(),
            cached: if cached.is_empty() {
                "none".into()
            } else {
                cached
            },
        })
    }

    /// Downloads and unpacks Debian's kernel for `release` (as [`KernelCache::find`] reads it;
    /// default: the default line's pin), unless it is cached already. Needs apt's package
    /// lists, not root.
    pub fn fetch(
        &self,
        release: Option<&str>,
        progress: &mut dyn FnMut(FetchEvent),
    ) -> Result<Kernel, KernelError> {
        let (package, version, release) = resolve_package(release)?;
        progress(FetchEvent::Resolved {
            package: package.clone(),
            release: release.clone(),
        });
        let target = self.kernels_dir().join(&release);
        if let Ok(kernel) = self.find(Some(&release)) {
            progress(FetchEvent::AlreadyCached {
                release,
                dir: target,
            });
            return Ok(kernel);
        }
        // Removed on every exit path, with the .deb and whatever was not kept.
        let work = debian::work_dir(&self.root, "fetch-", &self.kernels_dir())?;

        progress(FetchEvent::Downloading {
            package: package.clone(),
        });
        let debs = debian::download(&[(package.clone(), version)], work.path())?;
        let deb = &debs[0];
        let bytes = fs::metadata(deb).map(|m| m.len()).unwrap_or(0);
        progress(FetchEvent::Downloaded {
            file: deb.file_name().unwrap_or_default().to_string_lossy().into(),
            bytes,
        });

        progress(FetchEvent::Unpacking);
        let unpacked = work.path().join("root");
        debian::unpack(deb, &unpacked)?;
        let stage = work.path().join("stage");
        stage_kernel(&unpacked, &release, &stage, progress)?;

        if let Err(source) = fs::rename(&stage, &target) {
            // Another fetch may have installed the same release meanwhile: that one is as good.
            if self.find(Some(&release)).is_err() {
                return Err(KernelError::Io {
                    path: target,
                    source,
                });
            }
        }
        progress(FetchEvent::Installed {
            release: release.clone(),
            dir: target,
        });
        self.find(Some(&release))
    }
}

fn cached_kernel(dir: &Path, release: &str) -> Kernel {
    Kernel {
        release: release.to_owned(),
        vmlinux: dir.join("vmlinux"),
        modules_dir: dir.join("modules").join(release),
    }
}

/// Moves what a guest needs out of the unpacked package into `stage`, adding the vmlinux
/// and, when the package has none, modules.dep.
fn stage_kernel(
    unpacked: &Path,
    release: &str,
    stage: &Path,
    progress: &mut dyn FnMut(FetchEvent),
) -> Result<(), KernelError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KernelError::Io { path, source }
    };
    let modules_src = [
        unpacked.join("lib/modules").join(release),
        unpacked.join("usr/lib/modules").join(release),
    ]
    .into_iter()
    .find(|p| p.is_dir())
    .ok_or_else(|| KernelError::Io {
        path: unpacked.join("lib/modules").join(release),
        source: std::io::ErrorKind::NotFound.into(),
    })?;
    let vmlinuz = unpacked.join("boot").join(format!("vmlinuz-{release}"));
    let modules = stage.join("modules").join(release);
    fs::create_dir_all(stage.join("modules")).map_err(io(stage))?;
    fs::rename(&modules_src, &modules).map_err(io(&modules_src))?;
    let staged_vmlinuz = stage.join("vmlinuz");
    fs::rename(&vmlinuz, &staged_vmlinuz).map_err(io(&vmlinuz))?;
    let config = unpacked.join("boot").join(format!("config-{release}"));
    if config.is_file() {
        fs::rename(&config, stage.join("config")).map_err(io(&config))?;
    }

    let image = fs::read(&staged_vmlinuz).map_err(io(&staged_vmlinuz))?;
    progress(FetchEvent::ExtractingVmlinux {
        compressed_bytes: image.len() as u64,
    });
    let vmlinux = extract_vmlinux(&image).map_err(|reason| KernelError::BadImage {
        path: vmlinuz.clone(),
        reason,
    })?;
    fs::write(stage.join("vmlinux"), vmlinux).map_err(io(&stage.join("vmlinux")))?;

    if !modules.join("modules.dep").is_file() {
        let index = ModuleIndex::scan(&modules)?;
        progress(FetchEvent::WritingModulesDep {
            modules: index.len(),
        });
        fs::write(modules.join("modules.dep"), index.to_modules_dep()?).map_err(io(&modules))?;
    }
    Ok(())
}

/// The uncompressed kernel ELF inside a bzImage.
///
/// Boot protocol (Documentation/arch/x86/boot.rst): "HdrS" at 0x202, the protocol version
/// at 0x206 (2.08+ has the payload fields), setup_sects at 0x1f1 (0 means 4); the
/// protected-mode code starts at (setup_sects + 1) * 512, and payload_offset (0x248) and
/// payload_length (0x24c) locate the compressed kernel relative to that start.
pub fn extract_vmlinux(bzimage: &[u8]) -> Result<Vec<u8>, String> {
    let u32_at = |at: usize| {
        bzimage
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    };
    if bzimage.get(0x202..0x206) != Some(b"HdrS") {
        return Err("no \"HdrS\" boot header at 0x202 (not a bzImage)".into());
    }
    let version = bzimage
        .get(0x206..0x208)
        .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]));
    if version < 0x208 {
        return Err(format!(
            "boot protocol {}.{:02} has no payload fields (needs 2.08+)",
            version >> 8,
            version & 0xff
        ));
    }
    let setup_sects = match bzimage[0x1f1] {
        0 => 4,
        n => n as usize,
    };
    let start = (setup_sects + 1) * 512;
    let (offset, length) = (
        u32_at(0x248).unwrap_or(0) as usize,
        u32_at(0x24c).unwrap_or(0) as usize,
    );
    let payload = bzimage
        .get(start + offset..start + offset + length)
        .ok_or_else(|| {
            format!(
                "payload ({length} bytes at {:#x}) runs past the end of the file",
                start + offset
            )
        })?;
    let format = Format::from_magic(payload).ok_or_else(|| {
        let magic: String = payload.iter().take(6).map(|b| format!("{b:02x}")).collect();
        format!("payload compression with magic {magic} is not supported (xz, gzip and zstd are)")
    })?;
    // The build appends the uncompressed size after an xz or zstd stream; zstd rejects
    // trailing bytes (xz is told to stop after one stream).
    let payload = match format {
        Format::Zstd => &payload[..payload.len().saturating_sub(4)],
        _ => payload,
    };
    let vmlinux = decompress::decompress(format, payload).map_err(|e| e.to_string())?;
    if !vmlinux.starts_with(b"\x7fELF") {
        return Err("the decompressed payload is not an ELF file".into());
    }
    Ok(vmlinux)
}

/// `6.1` (a pinned line) -> its pinned release; `6.1.0-56` -> `6.1.0-56-amd64`; a full
/// release is kept.
fn full_release(release: &str) -> String {
    if let Some(line) = pinned::by_name(release) {
        line.release.to_owned()
    } else if release.ends_with("-amd64") {
        release.to_owned()
    } else {
        format!("{release}-amd64")
    }
}

/// Orders releases by their numbers: 6.1.0-9 < 6.1.0-56 < 6.12.107+deb12.
fn version_key(release: &str) -> Vec<(u64, String)> {
    let mut key = Vec::new();
    let mut rest = release;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let (number, after) = rest.split_at(digits);
        let text_len = after.len()
            - after
                .trim_start_matches(|c: char| !c.is_ascii_digit())
                .len();
        let (text, after) = after.split_at(text_len);
        key.push((number.parse().unwrap_or(0), text.to_owned()));
        rest = after;
    }
    key
}

/// The package to download, its version and the release it holds. Prefers the `-unsigned`
/// package (the same kernel without the Secure Boot signature), else the signed one.
fn resolve_package(release: Option<&str>) -> Result<(String, String, String), KernelError> {
    let release = full_release(release.unwrap_or(pinned::DEFAULT_LINE));
    for package in [
        format!("linux-image-{release}-unsigned"),
        format!("linux-image-{release}"),
    ] {
        match debian::candidate_versions(&[&package]) {
            Ok(versions) => return Ok((package, versions[0].clone(), release)),
            Err(DebianError::UnknownPackage { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    let available = debian::run(Command::new("apt-cache").args([
        "search",
        "--names-only",
        "^linux-image-[0-9].*-amd64-unsigned$",
    ]))
    .map(|text| {
        let releases: Vec<_> = text
            .lines()
            .filter_map(|l| l.split(' ').next())
            .map(|p| {
                p.trim_start_matches("linux-image-")
                    .trim_end_matches("-unsigned")
            })
            .collect();
        if releases.is_empty() {
            "none".into()
        } else {
            releases.join(", ")
        }
    })
    .unwrap_or_else(|e| e.to_string());
    Err(KernelError::UnknownPackage {
        package: format!("linux-image-{release}-unsigned"),
        available,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::Stdio;

    /// A bzImage-shaped file: boot header fields plus a payload compressed by the real tool.
    fn fake_bzimage(tool: &str, kernel: &[u8], append_size: bool) -> Vec<u8> {
        let mut child = Command::new(tool)
            .arg("-c")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(kernel).unwrap();
        let mut payload = child.wait_with_output().unwrap().stdout;
        if append_size {
            payload.extend_from_slice(&(kernel.len() as u32).to_le_bytes());
        }
        let setup_sects = 3u8;
        let start = (setup_sects as usize + 1) * 512;
        let payload_offset = 0x40;
        let mut image = vec![0u8; start + payload_offset];
        image[0x1f1] = setup_sects;
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x206..0x208].copy_from_slice(&0x20fu16.to_le_bytes());
        image[0x248..0x24c].copy_from_slice(&(payload_offset as u32).to_le_bytes());
        image[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        image.extend_from_slice(&payload);
        image.extend_from_slice(b"trailing setup data that is not payload");
        image
    }

    fn elf_like() -> Vec<u8> {
        let mut kernel = b"\x7fELF\x02\x01\x01".to_vec();
        kernel.extend((0..100_000u32).map(|i| (i % 13) as u8));
        kernel
    }

    #[test]
    fn extracts_an_xz_payload_with_the_appended_size() {
        let kernel = elf_like();
        assert_eq!(
            extract_vmlinux(&fake_bzimage("xz", &kernel, true)).unwrap(),
            kernel
        );
    }

    #[test]
    fn extracts_a_gzip_payload() {
        let kernel = elf_like();
        assert_eq!(
            extract_vmlinux(&fake_bzimage("gzip", &kernel, false)).unwrap(),
            kernel
        );
    }

    #[test]
    fn rejects_what_is_not_a_bzimage() {
        assert!(extract_vmlinux(&[0u8; 4096])
            .unwrap_err()
            .contains("not a bzImage"));
        let mut image = fake_bzimage("gzip", &elf_like(), false);
        let payload_at = 4 * 512 + 0x40;
        image[payload_at..payload_at + 2].copy_from_slice(b"BZ");
        assert!(
            extract_vmlinux(&image).unwrap_err().contains("magic 425a"),
            "not supported"
        );
    }

    #[test]
    fn releases_sort_by_number() {
        let mut releases = vec!["6.12.107+deb12-amd64", "6.1.0-56-amd64", "6.1.0-9-amd64"];
        releases.sort_by_key(|r| version_key(r));
        assert_eq!(
            releases,
            ["6.1.0-9-amd64", "6.1.0-56-amd64", "6.12.107+deb12-amd64"]
        );
        assert_eq!(full_release("6.1.0-56"), "6.1.0-56-amd64");
        assert_eq!(full_release("6.1.0-56-amd64"), "6.1.0-56-amd64");
    }

    fn fake_cached(cache: &KernelCache, release: &str, complete: bool) {
        let kernel = cached_kernel(&cache.kernels_dir().join(release), release);
        fs::create_dir_all(kernel.modules_dir.join("kernel")).unwrap();
        fs::write(&kernel.vmlinux, b"\x7fELF").unwrap();
        if complete {
            fs::write(kernel.modules_dir.join("modules.dep"), "").unwrap();
        }
    }

    #[test]
    fn find_picks_the_pinned_default_never_the_newest_or_the_named_one() {
        let dir = tempfile::tempdir().unwrap();
        let cache = KernelCache::at(dir.path());
        let pinned = pinned::default_line().release;
        let err = cache.find(None).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "kernel {pinned} is not in {}/kernels (cached: none): run `rasdrill kernel fetch --release {pinned}`, \
                 or pass --kernel PATH --modules DIR",
                dir.path().display()
            )
        );
        fake_cached(&cache, "6.1.0-9-amd64", true);
        fake_cached(&cache, "6.12.999+deb12-amd64", true); // newer, cached later: not the default
        fake_cached(&cache, "6.1.0-99-amd64", false); // half-written: ignored
        assert!(cache.find(None).is_err());
        fake_cached(&cache, pinned, true);
        assert_eq!(cache.find(None).unwrap().release, pinned);
        assert_eq!(
            cache.find(Some(pinned::DEFAULT_LINE)).unwrap().release,
            pinned
        );
        let named = cache.find(Some("6.1.0-9")).unwrap();
        assert_eq!(
            named.vmlinux,
            dir.path().join("kernels/6.1.0-9-amd64/vmlinux")
        );
        assert_eq!(
            named.modules_dir,
            dir.path()
                .join("kernels/6.1.0-9-amd64/modules/6.1.0-9-amd64")
        );
        let err = cache.find(Some("6.1.0-99")).unwrap_err().to_string();
        assert!(err.starts_with("kernel 6.1.0-99-amd64 is not in "), "{err}");
        assert!(
            err.contains("run `rasdrill kernel fetch --release 6.1.0-99-amd64`"),
            "{err}"
        );
    }

    #[test]
    fn user_paths_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let modules = dir.path().join("lib/modules/6.1.0-56-amd64");
        fs::create_dir_all(modules.join("kernel")).unwrap();
        let image = dir.path().join("vmlinux");
        let err = Kernel::from_paths(&image, &modules)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!("--kernel {}: expected a kernel image file", image.display())
        );
        fs::write(&image, b"x").unwrap();
        let kernel = Kernel::from_paths(&image, &modules).unwrap();
        assert_eq!(kernel.release, "6.1.0-56-amd64");
        let err = Kernel::from_paths(&image, dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with(
                "expected a lib/modules/<release> directory (with a kernel/ subdirectory)"
            ),
            "{err}"
        );
    }
}
