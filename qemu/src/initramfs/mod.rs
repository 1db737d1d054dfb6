//! Building the guest's initramfs: a tree of entries written as one uncompressed cpio newc
//! archive.
//!
//! Uncompressed because the guest unpacks it faster than it could decompress it: under TCG
//! every byte of gzip inflate is emulated, while QEMU loads the raw bytes into guest memory
//! itself (measured: see `qemu/README.md`).

pub mod cpio;
mod libs;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::modules::{self, ModuleError, ModuleIndex};
use cpio::{CpioEntry, CpioWriter, S_IFCHR, S_IFDIR, S_IFLNK, S_IFREG};

/// Why an initramfs could not be assembled or written.
#[derive(Debug, thiserror::Error)]
pub enum InitramfsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write the initramfs to {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("image path {path:?} must be non-empty UTF-8 without `..`")]
    BadPath { path: PathBuf },
    #[error("cannot add /{path}: /{parent} is not a directory in the image")]
    ParentNotADirectory { path: String, parent: String },
    #[error("cannot add /{path} as a {kind}: it is already a directory in the image")]
    DirectoryInTheWay { path: String, kind: &'static str },
    #[error("cannot list the shared libraries of {exe}: {reason}")]
    Ldd { exe: PathBuf, reason: String },
    #[error("{exe} needs {library}, which the host's dynamic loader cannot find")]
    MissingLibrary { exe: PathBuf, library: String },
    #[error(transparent)]
    Module(#[from] ModuleError),
}

/// A module placed in the image, to be loaded in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestModule {
    /// Normalised module name (`mce_inject`).
    pub name: String,
    /// Absolute path inside the guest, e.g. `/lib/modules/6.1.0-56-amd64/kernel/.../mce-inject.ko`.
    pub path: PathBuf,
}

#[derive(Debug, Clone)]
enum Node {
    Dir { mode: u32 },
    File { mode: u32, source: Source },
    Symlink { target: String },
    CharDevice { mode: u32, major: u32, minor: u32 },
}

#[derive(Debug, Clone)]
enum Source {
    Bytes(Vec<u8>),
    Host(PathBuf),
}

/// The contents of an initramfs, keyed by path. Parent directories are created as needed
/// (mode 0755); adding a path twice keeps the last one. Host files are read when the archive
/// is written, so large trees cost no memory until then.
#[derive(Debug, Clone, Default)]
pub struct Initramfs {
    nodes: BTreeMap<String, Node>,
}

impl Initramfs {
    /// An empty image.
    pub fn new() -> Self {
        Self::default()
    }

    /// The directories every guest needs and `/dev/console` (char 5:1): the kernel opens the
    /// console for /init before anything could mount devtmpfs, and without this node /init
    /// runs with no stdin, stdout or stderr.
    pub fn with_base_layout() -> Self {
        let mut image = Self::new();
        for dir in ["dev", "proc", "sys", "run", "root", "etc"] {
            image
                .insert(dir, Node::Dir { mode: 0o755 })
                .expect("fixed path");
        }
        image
            .insert("tmp", Node::Dir { mode: 0o1777 })
            .expect("fixed path");
        image
            .char_device("/dev/console", 0o600, 5, 1)
            .expect("fixed path");
        image
    }

    /// A directory with permission bits `mode` (e.g. `0o755`).
    pub fn dir(&mut self, path: impl AsRef<Path>, mode: u32) -> Result<&mut Self, InitramfsError> {
        self.insert_at(path.as_ref(), Node::Dir { mode })
    }

    /// A regular file with the given contents and permission bits.
    pub fn file(
        &mut self,
        path: impl AsRef<Path>,
        contents: impl Into<Vec<u8>>,
        mode: u32,
    ) -> Result<&mut Self, InitramfsError> {
        self.insert_at(
            path.as_ref(),
            Node::File {
                mode,
                source: Source::Bytes(contents.into()),
            },
        )
    }

    /// A regular file copied from the host (symlinks followed); `mode` `None` keeps the host
    /// file's permission bits.
    pub fn host_file(
        &mut self,
        path: impl AsRef<Path>,
        host: &Path,
        mode: Option<u32>,
    ) -> Result<&mut Self, InitramfsError> {
        let meta = fs::metadata(host).map_err(|source| InitramfsError::Read {
            path: host.to_path_buf(),
            source,
        })?;
        let mode = mode.unwrap_or(meta.permissions().mode() & 0o7777);
        self.insert_at(
            path.as_ref(),
            Node::File {
                mode,
                source: Source::Host(host.to_path_buf()),
            },
        )
    }

    /// A symbolic link `path -> target`.
    pub fn symlink(
        &mut self,
        path: impl AsRef<Path>,
        target: &str,
    ) -> Result<&mut Self, InitramfsError> {
        self.insert_at(
            path.as_ref(),
            Node::Symlink {
                target: target.to_owned(),
            },
        )
    }

    /// A character device node, e.g. `/dev/console` 5:1 or `/dev/kmsg` 1:11.
    pub fn char_device(
        &mut self,
        path: impl AsRef<Path>,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> Result<&mut Self, InitramfsError> {
        self.insert_at(path.as_ref(), Node::CharDevice { mode, major, minor })
    }

    /// Everything under the host directory `host_dir`, placed under `image_dir`: directories,
    /// regular files with their modes, symlinks as symlinks. Other file types are skipped.
    pub fn host_tree(
        &mut self,
        image_dir: impl AsRef<Path>,
        host_dir: &Path,
    ) -> Result<&mut Self, InitramfsError> {
        let image_dir = image_dir.as_ref();
        let read_err = |source| InitramfsError::Read {
            path: host_dir.to_path_buf(),
            source,
        };
        let meta = fs::symlink_metadata(host_dir).map_err(read_err)?;
        self.insert_at(
            image_dir,
            Node::Dir {
                mode: meta.mode() & 0o7777,
            },
        )?;
        let mut entries = fs::read_dir(host_dir)
            .map_err(read_err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(read_err)?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let host = entry.path();
            let inside = image_dir.join(entry.file_name());
            let meta = fs::symlink_metadata(&host).map_err(|source| InitramfsError::Read {
                path: host.clone(),
                source,
            })?;
            if meta.is_dir() {
                self.host_tree(&inside, &host)?;
            } else if meta.file_type().is_symlink() {
                let target = fs::read_link(&host).map_err(|source| InitramfsError::Read {
                    path: host.clone(),
                    source,
                })?;
                self.symlink(&inside, &target.to_string_lossy())?;
            } else if meta.is_file() {
                self.insert_at(
                    &inside,
                    Node::File {
                        mode: meta.mode() & 0o7777,
                        source: Source::Host(host),
                    },
                )?;
            }
        }
        Ok(self)
    }

    /// A host executable at `path`, plus the shared libraries and the dynamic loader it needs
    /// (as the host's loader resolves them, via `ldd`), each at the absolute path the loader
    /// searches. A static executable needs nothing more.
    pub fn executable(
        &mut self,
        path: impl AsRef<Path>,
        host: &Path,
    ) -> Result<&mut Self, InitramfsError> {
        self.executable_with_roots(path, host, &[])
    }

    /// Like [`Initramfs::executable`], for an executable whose libraries may come from
    /// unpacked packages (`dpkg-deb -x` trees) that the host has not installed: each root's
    /// `lib/x86_64-linux-gnu`, `usr/lib/x86_64-linux-gnu`, `lib` and `usr/lib` are searched
    /// before the host's directories, and a library found under a root is placed at its path
    /// inside that root (`<root>/usr/lib/...` becomes `/usr/lib/...`), where the guest's
    /// loader looks.
    pub fn executable_with_roots(
        &mut self,
        path: impl AsRef<Path>,
        host: &Path,
        roots: &[PathBuf],
    ) -> Result<&mut Self, InitramfsError> {
        self.host_file(path, host, Some(0o755))?;
        let search: Vec<PathBuf> = roots
            .iter()
            .flat_map(|root| {
                [
                    "lib/x86_64-linux-gnu",
                    "usr/lib/x86_64-linux-gnu",
                    "lib",
                    "usr/lib",
                ]
                .map(|dir| root.join(dir))
            })
            .filter(|dir| dir.is_dir())
            .collect();
        for lib in libs::needed_libraries(host, &search)? {
            let inside = roots
                .iter()
                .find_map(|root| lib.strip_prefix(root).ok())
                .map(|rel| Path::new("/").join(rel))
                .unwrap_or_else(|| lib.clone());
            self.host_file(&inside, &lib, None)?;
        }
        Ok(self)
    }

    /// The program the kernel runs first: a host executable placed at `/init` with its
    /// libraries.
    pub fn init(&mut self, host: &Path) -> Result<&mut Self, InitramfsError> {
        self.executable("/init", host)
    }

    /// The named modules and all their dependencies, copied to
    /// `/lib/modules/<release>/<path>` (release = the index directory's name). Returns them in
    /// load order (dependencies first); built-in modules are not in the list. Compressed
    /// modules are decompressed here, on the host, and placed as plain `.ko` files: the guest
    /// loads them with finit_module whatever its kernel's own decompression support.
    pub fn modules<S: AsRef<str>>(
        &mut self,
        index: &ModuleIndex,
        names: &[S],
    ) -> Result<Vec<GuestModule>, InitramfsError> {
        let release = index
            .dir()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let guest_dir = Path::new("/lib/modules").join(release);
        let mut loaded = Vec::new();
        for module in index.load_order(names)? {
            let host = index.dir().join(&module.path);
            let plain = modules::uncompressed_path(&module.path);
            let guest_path = guest_dir.join(&plain);
            if plain == module.path {
                self.host_file(&guest_path, &host, Some(0o644))?;
            } else {
                self.file(&guest_path, modules::read_module(&host)?, 0o644)?;
            }
            loaded.push(GuestModule {
                name: module.name,
                path: guest_path,
            });
        }
        Ok(loaded)
    }

    /// Paths in the image (without the leading `/`), in archive order.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.nodes.keys().map(String::as_str)
    }

    /// Writes the archive. Paths come out sorted, so each directory precedes its contents.
    pub fn write_to<W: Write>(&self, out: W) -> Result<W, InitramfsError> {
        let werr = |source| InitramfsError::Write {
            path: PathBuf::from("<stream>"),
            source,
        };
        let mut writer = CpioWriter::new(out);
        for (name, node) in &self.nodes {
            let (mode, data, (rdev_major, rdev_minor)) = match node {
                Node::Dir { mode } => (S_IFDIR | mode, Vec::new(), (0, 0)),
                Node::File {
                    mode,
                    source: Source::Bytes(bytes),
                } => (S_IFREG | mode, bytes.clone(), (0, 0)),
                Node::File {
                    mode,
                    source: Source::Host(host),
                } => {
                    let data = fs::read(host).map_err(|source| InitramfsError::Read {
                        path: host.clone(),
                        source,
                    })?;
                    (S_IFREG | mode, data, (0, 0))
                }
                Node::Symlink { target } => (S_IFLNK | 0o777, target.as_bytes().to_vec(), (0, 0)),
                Node::CharDevice { mode, major, minor } => {
                    (S_IFCHR | mode, Vec::new(), (*major, *minor))
                }
            };
            writer
                .write_entry(&CpioEntry {
                    name: name.clone(),
                    mode,
                    rdev_major,
                    rdev_minor,
                    data,
                })
                .map_err(werr)?;
        }
        writer.finish().map_err(werr)
    }

    /// Writes the archive to `path` through a temporary file in the same directory, renamed
    /// into place, so a reader never sees half an image.
    pub fn write_file(&self, path: &Path) -> Result<(), InitramfsError> {
        let werr = |source| InitramfsError::Write {
            path: path.to_path_buf(),
            source,
        };
        let tmp = path.with_extension("partial");
        let file = fs::File::create(&tmp).map_err(werr)?;
        // write_to cannot know the file's name: its write errors get it here.
        let result = self
            .write_to(BufWriter::new(file))
            .map_err(|e| match e {
                InitramfsError::Write { source, .. } => werr(source),
                other => other,
            })
            .and_then(|buffered| {
                buffered
                    .into_inner()
                    .map_err(|e| werr(e.into_error()))?
                    .sync_all()
                    .map_err(werr)
            });
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        fs::rename(&tmp, path).map_err(werr)
    }

    fn insert_at(&mut self, path: &Path, node: Node) -> Result<&mut Self, InitramfsError> {
        let key = image_key(path)?;
        self.insert(&key, node)?;
        Ok(self)
    }

    fn insert(&mut self, key: &str, node: Node) -> Result<(), InitramfsError> {
        let mut parent = String::new();
        for component in key
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .expect("non-empty key")
            .1
        {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(component);
            match self.nodes.get(&parent) {
                Some(Node::Dir { .. }) => {}
                Some(_) => {
                    return Err(InitramfsError::ParentNotADirectory {
                        path: key.to_owned(),
                        parent,
                    })
                }
                None => {
                    self.nodes.insert(parent.clone(), Node::Dir { mode: 0o755 });
                }
            }
        }
        if let (Some(Node::Dir { .. }), false) =
            (self.nodes.get(key), matches!(node, Node::Dir { .. }))
        {
            let kind = match node {
                Node::Symlink { .. } => "symlink",
                Node::CharDevice { .. } => "device node",
                _ => "file",
            };
            return Err(InitramfsError::DirectoryInTheWay {
                path: key.to_owned(),
                kind,
            });
        }
        self.nodes.insert(key.to_owned(), node);
        Ok(())
    }
}

/// `/dev/console` or `dev/console` -> `dev/console`; rejects `..` and non-UTF-8.
fn image_key(path: &Path) -> Result<String, InitramfsError> {
    let bad = || InitramfsError::BadPath {
        path: path.to_path_buf(),
    };
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(part) => parts.push(part.to_str().ok_or_else(bad)?),
            Component::ParentDir | Component::Prefix(_) => return Err(bad()),
        }
    }
    if parts.is_empty() {
        return Err(bad());
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpio::read_newc;

    fn archive(image: &Initramfs) -> Vec<CpioEntry> {
        read_newc(&image.write_to(Vec::new()).unwrap()).unwrap()
    }

    #[test]
    fn base_layout_has_console_node_and_parents_precede_children() {
        let mut image = Initramfs::with_base_layout();
        image.file("/etc/hostname", "guest\n", 0o644).unwrap();
        image.symlink("/bin/sh", "busybox").unwrap();
        let entries = archive(&image);
        let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "bin",
                "bin/sh",
                "dev",
                "dev/console",
                "etc",
                "etc/hostname",
                "proc",
                "root",
                "run",
                "sys",
                "tmp"
            ]
        );
        let console = &entries[3];
        assert_eq!(
            (console.mode, console.rdev_major, console.rdev_minor),
            (S_IFCHR | 0o600, 5, 1)
        );
        assert_eq!(entries[1].mode, S_IFLNK | 0o777);
        assert_eq!(entries[1].data, b"busybox");
        assert_eq!(entries[10].mode, S_IFDIR | 0o1777);
    }

    #[test]
    fn host_tree_keeps_modes_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::write(dir.path().join("sub/tool"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(
            dir.path().join("sub/tool"),
            fs::Permissions::from_mode(0o750),
        )
        .unwrap();
        std::os::unix::fs::symlink("sub/tool", dir.path().join("link")).unwrap();
        let mut image = Initramfs::new();
        image.host_tree("/opt/x", dir.path()).unwrap();
        let entries = archive(&image);
        let find = |n: &str| {
            entries
                .iter()
                .find(|e| e.name == n)
                .unwrap_or_else(|| panic!("{n} missing"))
        };
        assert_eq!(find("opt/x/sub/tool").mode, S_IFREG | 0o750);
        assert_eq!(find("opt/x/sub/tool").data, b"#!/bin/sh\n");
        assert_eq!(find("opt/x/link").data, b"sub/tool");
        assert_eq!(find("opt").mode, S_IFDIR | 0o755);
    }

    #[test]
    fn a_dynamic_executable_brings_its_libraries_and_loader() {
        // /bin/sh (dash) is dynamically linked on every Debian system.
        let mut image = Initramfs::new();
        image.executable("/bin/sh", Path::new("/bin/sh")).unwrap();
        let paths: Vec<_> = image.paths().collect();
        assert!(paths.contains(&"bin/sh"));
        assert!(paths.iter().any(|p| p.ends_with("/libc.so.6")), "{paths:?}");
        assert!(paths.contains(&"lib64/ld-linux-x86-64.so.2"), "{paths:?}");
        // The loader is a real file in the image even though the host has a symlink there.
        let entries = archive(&image);
        let loader = entries
            .iter()
            .find(|e| e.name == "lib64/ld-linux-x86-64.so.2")
            .unwrap();
        assert_eq!(loader.mode & cpio::S_IFMT, S_IFREG);
        assert!(loader.data.starts_with(b"\x7fELF"));
    }

    #[test]
    fn libraries_from_an_unpacked_package_go_to_their_path_inside_it() {
        // apt links libz (through libapt-pkg); an unpacked "package" that ships libz wins over
        // the host's copy, and lands where the guest's loader looks.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("zlib1g/root");
        let lib_dir = root.join("usr/lib/x86_64-linux-gnu");
        fs::create_dir_all(&lib_dir).unwrap();
        fs::copy("/lib/x86_64-linux-gnu/libz.so.1", lib_dir.join("libz.so.1")).unwrap();
        let mut image = Initramfs::new();
        image
            .executable_with_roots("/usr/bin/apt", Path::new("/usr/bin/apt"), &[root])
            .unwrap();
        match image.nodes.get("usr/lib/x86_64-linux-gnu/libz.so.1") {
            Some(Node::File {
                source: Source::Host(host),
                ..
            }) => assert_eq!(host, &lib_dir.join("libz.so.1")),
            other => panic!("libz is {other:?}"),
        }
        assert!(!image.nodes.contains_key("lib/x86_64-linux-gnu/libz.so.1"));
        assert!(image.nodes.contains_key("lib/x86_64-linux-gnu/libc.so.6"));
    }

    #[test]
    fn compressed_modules_land_decompressed_as_plain_ko() {
        let dir = tempfile::tempdir().unwrap();
        let release = dir.path().join("6.12.115+deb12-amd64");
        let module = release.join("kernel/arch/x86/mce-inject.ko");
        fs::create_dir_all(module.parent().unwrap()).unwrap();
        let elf = crate::elf::tests::tiny_elf(&[(".modinfo", b"name=mce_inject\0depends=\0")]);
        fs::write(&module, &elf).unwrap();
        let status = std::process::Command::new("xz")
            .arg(&module)
            .status()
            .unwrap();
        assert!(status.success());
        let index = ModuleIndex::scan(&release).unwrap();
        let mut image = Initramfs::new();
        let loaded = image.modules(&index, &["mce-inject"]).unwrap();
        let guest = "lib/modules/6.12.115+deb12-amd64/kernel/arch/x86/mce-inject.ko";
        assert_eq!(loaded[0].path, Path::new("/").join(guest));
        let entries = archive(&image);
        let entry = entries.iter().find(|e| e.name == guest).expect(guest);
        assert_eq!(entry.data, elf);
    }

    #[test]
    fn a_static_executable_needs_nothing_else() {
        let mut image = Initramfs::new();
        image.init(Path::new("/bin/busybox")).unwrap();
        assert_eq!(image.paths().collect::<Vec<_>>(), ["init"]);
    }

    #[test]
    fn bad_paths_and_file_over_directory_are_refused() {
        let mut image = Initramfs::new();
        assert!(matches!(
            image.file("/a/../b", "x", 0o644),
            Err(InitramfsError::BadPath { .. })
        ));
        assert!(matches!(
            image.file("/", "x", 0o644),
            Err(InitramfsError::BadPath { .. })
        ));
        image.file("/etc/x", "x", 0o644).unwrap();
        let err = image.file("/etc", "x", 0o644).unwrap_err().to_string();
        assert_eq!(
            err,
            "cannot add /etc as a file: it is already a directory in the image"
        );
        let err = image.file("/etc/x/y", "x", 0o644).unwrap_err().to_string();
        assert_eq!(
            err,
            "cannot add /etc/x/y: /etc/x is not a directory in the image"
        );
    }

    #[test]
    fn write_file_replaces_atomically_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("initrd.cpio");
        let mut image = Initramfs::with_base_layout();
        image.file("/init", "#!/bin/sh\n", 0o755).unwrap();
        image.write_file(&out).unwrap();
        let entries = read_newc(&fs::read(&out).unwrap()).unwrap();
        assert!(entries
            .iter()
            .any(|e| e.name == "init" && e.mode == S_IFREG | 0o755));
        assert!(!out.with_extension("partial").exists());
    }
}
