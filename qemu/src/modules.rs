//! Kernel modules of one release: which file holds a module and what it depends on, from
//! `modules.dep` when depmod wrote one, or else from each module's `.modinfo` section (the
//! Debian .deb ships none: depmod normally runs in its postinst). The same index writes a
//! `modules.dep`, so the kernel cache can fill that gap once.
//!
//! Module names are compared with `-` and `_` treated alike, as the kernel and kmod do.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::decompress::{self, Format};
use crate::elf;

/// Why a module directory could not be read or a module set could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: expected `path/to/module.ko: dependency.ko ...`")]
    BadDepLine { path: PathBuf, line: usize },
    #[error("{path}: cannot read the module's .modinfo: {reason}")]
    BadModule { path: PathBuf, reason: String },
    #[error("module `{name}` is not in {dir} (neither a .ko file nor listed in modules.builtin)")]
    Unknown { name: String, dir: PathBuf },
    #[error("module `{module}` depends on `{dependency}`, which is not in {dir}")]
    MissingDependency {
        module: String,
        dependency: String,
        dir: PathBuf,
    },
    #[error("modules depend on each other in a cycle through `{name}`")]
    Cycle { name: String },
}

/// A module to load, in the order returned by [`ModuleIndex::load_order`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Normalised name (`-` replaced by `_`), e.g. `mce_inject`.
    pub name: String,
    /// Path relative to the modules directory, e.g. `kernel/arch/x86/kernel/cpu/mce/mce-inject.ko`.
    pub path: PathBuf,
}

#[derive(Debug, Clone)]
struct Entry {
    path: PathBuf,
    deps: Vec<String>,
}

/// The modules of one `lib/modules/<release>` directory.
#[derive(Debug, Clone)]
pub struct ModuleIndex {
    dir: PathBuf,
    modules: BTreeMap<String, Entry>,
    builtin: BTreeSet<String>,
}

/// `mce-inject`, `mce_inject.ko`, `kernel/x/mce-inject.ko.xz` -> `mce_inject`.
pub fn normalize(name_or_path: &str) -> String {
    let base = name_or_path.rsplit('/').next().unwrap_or(name_or_path);
    let stem = base.split(".ko").next().unwrap_or(base);
    stem.replace('-', "_")
}

impl ModuleIndex {
    /// Reads `dir/modules.dep` if it exists, else scans every module's `.modinfo`.
    pub fn load(dir: &Path) -> Result<ModuleIndex, ModuleError> {
        if dir.join("modules.dep").is_file() {
            ModuleIndex::from_modules_dep(dir)
        } else {
            ModuleIndex::scan(dir)
        }
    }

    /// Reads `dir/modules.dep` (and `modules.builtin` if present).
    pub fn from_modules_dep(dir: &Path) -> Result<ModuleIndex, ModuleError> {
        let dep_path = dir.join("modules.dep");
        let text = read_text(&dep_path)?;
        let mut modules = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let (path, deps) = line.split_once(':').ok_or(ModuleError::BadDepLine {
                path: dep_path.clone(),
                line: i + 1,
            })?;
            // depmod lists the closure so that loading from the end works: keep load order.
            let deps = deps.split_whitespace().rev().map(normalize).collect();
            modules.insert(
                normalize(path),
                Entry {
                    path: PathBuf::from(path),
                    deps,
                },
            );
        }
        Ok(ModuleIndex {
            builtin: read_builtin(dir)?,
            dir: dir.to_path_buf(),
            modules,
        })
    }

    /// Finds every `*.ko` (optionally `.xz`, `.gz` or `.zst` compressed) under `dir` and reads
    /// its name and `depends=` list from the `.modinfo` section.
    pub fn scan(dir: &Path) -> Result<ModuleIndex, ModuleError> {
        let mut files = Vec::new();
        find_module_files(dir, dir, &mut files)?;
        let mut modules = BTreeMap::new();
        for rel in files {
            let full = dir.join(&rel);
            let (name, deps) = read_modinfo(&full)?;
            let name = name.unwrap_or_else(|| normalize(&rel.to_string_lossy()));
            modules.insert(name, Entry { path: rel, deps });
        }
        Ok(ModuleIndex {
            builtin: read_builtin(dir)?,
            dir: dir.to_path_buf(),
            modules,
        })
    }

    /// The modules directory this index describes.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of loadable modules.
    pub fn len(&self) -> usize {
        self.modules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }

    /// The requested modules and everything they need, each once, dependencies first.
    /// Modules built into the kernel (`modules.builtin`) need no loading and are left out.
    pub fn load_order<S: AsRef<str>>(&self, names: &[S]) -> Result<Vec<Module>, ModuleError> {
        let mut order = Vec::new();
        let mut state = BTreeMap::new();
        for name in names {
            let name = normalize(name.as_ref());
            if !self.modules.contains_key(&name) && !self.builtin.contains(&name) {
                return Err(ModuleError::Unknown {
                    name,
                    dir: self.dir.clone(),
                });
            }
            self.visit(&name, &mut state, &mut order)?;
        }
        Ok(order)
    }

    /// Depth-first: a module is appended after all of its dependencies.
    fn visit(
        &self,
        name: &str,
        state: &mut BTreeMap<String, bool>,
        order: &mut Vec<Module>,
    ) -> Result<(), ModuleError> {
        match state.get(name) {
            Some(true) => return Ok(()),
            Some(false) => {
                return Err(ModuleError::Cycle {
                    name: name.to_owned(),
                })
            }
            None => {}
        }
        let Some(entry) = self.modules.get(name) else {
            return Ok(()); // built in
        };
        state.insert(name.to_owned(), false);
        for dep in &entry.deps {
            if !self.modules.contains_key(dep) && !self.builtin.contains(dep) {
                let dependency = dep.clone();
                return Err(ModuleError::MissingDependency {
                    module: name.to_owned(),
                    dependency,
                    dir: self.dir.clone(),
                });
            }
            self.visit(dep, state, order)?;
        }
        state.insert(name.to_owned(), true);
        order.push(Module {
            name: name.to_owned(),
            path: entry.path.clone(),
        });
        Ok(())
    }

    /// The text of a `modules.dep` in depmod's layout: each module's full dependency closure,
    /// listed so that loading from the end of the line backwards works (what modprobe does).
    pub fn to_modules_dep(&self) -> Result<String, ModuleError> {
        let mut out = String::new();
        for (name, entry) in &self.modules {
            let closure = self.load_order(&[name])?;
            out.push_str(&entry.path.to_string_lossy());
            out.push(':');
            for dep in closure.iter().rev().skip(1) {
                out.push(' ');
                out.push_str(&dep.path.to_string_lossy());
            }
            out.push('\n');
        }
        Ok(out)
    }
}

fn read_text(path: &Path) -> Result<String, ModuleError> {
    fs::read_to_string(path).map_err(|source| ModuleError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn read_builtin(dir: &Path) -> Result<BTreeSet<String>, ModuleError> {
    let path = dir.join("modules.builtin");
    if !path.exists() {
        return Ok(BTreeSet::new());
    }
    Ok(read_text(&path)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(normalize)
        .collect())
}

fn is_module_file(name: &str) -> bool {
    [".ko", ".ko.xz", ".ko.gz", ".ko.zst"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// Collects module paths relative to `root`, not following symlinks (`build` and `source`
/// point into kernel headers).
fn find_module_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ModuleError> {
    let io = |source| ModuleError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries = fs::read_dir(dir)
        .map_err(io)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(io)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let kind = entry.file_type().map_err(io)?;
        let path = entry.path();
        if kind.is_dir() {
            find_module_files(root, &path, out)?;
        } else if kind.is_file() && is_module_file(&entry.file_name().to_string_lossy()) {
            out.push(path.strip_prefix(root).expect("under root").to_path_buf());
        }
    }
    Ok(())
}

/// A module file's ELF bytes: `.ko.xz`, `.ko.gz` and `.ko.zst` files (Debian's 6.12 kernels
/// ship `.ko.xz`) are decompressed, by their magic bytes.
pub fn read_module(path: &Path) -> Result<Vec<u8>, ModuleError> {
    let raw = fs::read(path).map_err(|source| ModuleError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    match Format::from_magic(&raw) {
        Some(format) => decompress::decompress(format, &raw).map_err(|e| ModuleError::BadModule {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
        None => Ok(raw),
    }
}

/// `kernel/x/mce-inject.ko.xz` -> `kernel/x/mce-inject.ko`: where a module goes once
/// decompressed. A plain `.ko` path is kept.
pub fn uncompressed_path(path: &Path) -> PathBuf {
    let text = path.to_string_lossy();
    match text.rfind(".ko.") {
        Some(at) if is_module_file(&text) => PathBuf::from(&text[..at + 3]),
        _ => path.to_path_buf(),
    }
}

/// Reads `name=` and `depends=` from a module's `.modinfo` (NUL-separated `key=value`).
fn read_modinfo(path: &Path) -> Result<(Option<String>, Vec<String>), ModuleError> {
    let bad = |reason: String| ModuleError::BadModule {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = read_module(path)?;
    let modinfo = elf::section(&bytes, ".modinfo")
        .map_err(bad)?
        .ok_or_else(|| bad("no .modinfo section".into()))?;
    let mut name = None;
    let mut deps = Vec::new();
    for field in modinfo.split(|&b| b == 0) {
        let field = String::from_utf8_lossy(field);
        if let Some(value) = field.strip_prefix("name=") {
            name = Some(normalize(value));
        } else if let Some(value) = field.strip_prefix("depends=") {
            deps.extend(value.split(',').filter(|d| !d.is_empty()).map(normalize));
        }
    }
    Ok((name, deps))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::tests::tiny_elf;

    fn write_module(dir: &Path, rel: &str, name: &str, depends: &str) {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let modinfo = format!("license=GPL\0depends={depends}\0name={name}\0vermagic=6.1.0\0");
        fs::write(path, tiny_elf(&[(".modinfo", modinfo.as_bytes())])).unwrap();
    }

    /// edac_mce_amd needs edac_core-ish helpers; a diamond makes the order matter.
    fn sample_tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write_module(
            d,
            "kernel/drivers/edac/top-mod.ko",
            "top_mod",
            "left_dep,right-dep",
        );
        write_module(d, "kernel/lib/left_dep.ko", "left_dep", "base_mod");
        write_module(
            d,
            "kernel/lib/right-dep.ko",
            "right_dep",
            "base_mod,core_builtin",
        );
        write_module(d, "kernel/lib/base_mod.ko", "base_mod", "");
        write_module(d, "kernel/arch/x86/mce-inject.ko", "mce_inject", "");
        fs::write(
            d.join("modules.builtin"),
            "kernel/drivers/core_builtin.ko\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn names_compare_with_dash_and_underscore_alike() {
        assert_eq!(normalize("mce-inject"), "mce_inject");
        assert_eq!(normalize("kernel/arch/x86/mce-inject.ko.xz"), "mce_inject");
        assert_eq!(normalize("edac_mce_amd.ko"), "edac_mce_amd");
    }

    #[test]
    fn load_order_puts_dependencies_first_once_each() {
        let tree = sample_tree();
        let index = ModuleIndex::scan(tree.path()).unwrap();
        assert_eq!(index.len(), 5);
        let order: Vec<_> = index
            .load_order(&["top-mod", "mce-inject", "base_mod"])
            .unwrap();
        let names: Vec<_> = order.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            ["base_mod", "left_dep", "right_dep", "top_mod", "mce_inject"]
        );
        assert_eq!(order[2].path, Path::new("kernel/lib/right-dep.ko"));
        // A built-in module is accepted and needs no loading.
        assert!(index.load_order(&["core-builtin"]).unwrap().is_empty());
    }

    #[test]
    fn generated_modules_dep_reads_back_to_the_same_order() {
        let tree = sample_tree();
        let scanned = ModuleIndex::scan(tree.path()).unwrap();
        let dep = scanned.to_modules_dep().unwrap();
        assert!(
            dep.contains("kernel/drivers/edac/top-mod.ko: kernel/lib/right-dep.ko kernel/lib/left_dep.ko kernel/lib/base_mod.ko\n"),
            "{dep}"
        );
        assert!(dep.contains("kernel/lib/base_mod.ko:\n"), "{dep}");
        fs::write(tree.path().join("modules.dep"), &dep).unwrap();
        let read = ModuleIndex::load(tree.path()).unwrap();
        assert_eq!(
            read.load_order(&["top_mod"]).unwrap(),
            scanned.load_order(&["top_mod"]).unwrap()
        );
    }

    #[test]
    fn unknown_and_missing_modules_are_named() {
        let tree = sample_tree();
        let index = ModuleIndex::scan(tree.path()).unwrap();
        let err = index.load_order(&["no-such"]).unwrap_err().to_string();
        assert!(err.starts_with("module `no_such` is not in "), "{err}");
        write_module(tree.path(), "kernel/broken.ko", "broken", "ghost");
        let index = ModuleIndex::scan(tree.path()).unwrap();
        let err = index.load_order(&["broken"]).unwrap_err().to_string();
        assert!(
            err.starts_with("module `broken` depends on `ghost`, which is not in "),
            "{err}"
        );
    }

    #[test]
    fn compressed_modules_are_indexed_read_and_renamed_as_plain_ko() {
        let tree = sample_tree();
        let d = tree.path();
        // Debian 6.12's layout: every module xz-compressed (one zstd here too).
        for (rel, tool, args) in [
            ("kernel/lib/base_mod.ko", "xz", &["-q"][..]),
            ("kernel/arch/x86/mce-inject.ko", "zstd", &["-q", "--rm"][..]),
        ] {
            let status = std::process::Command::new(tool)
                .args(args)
                .arg(d.join(rel))
                .status()
                .unwrap();
            assert!(status.success(), "{tool}");
        }
        let index = ModuleIndex::scan(d).unwrap();
        let dep = index.to_modules_dep().unwrap();
        assert!(
            dep.contains("kernel/lib/left_dep.ko: kernel/lib/base_mod.ko.xz\n"),
            "{dep}"
        );
        fs::write(d.join("modules.dep"), &dep).unwrap();
        let order = ModuleIndex::load(d)
            .unwrap()
            .load_order(&["left-dep", "mce_inject"])
            .unwrap();
        let paths: Vec<_> = order.iter().map(|m| m.path.to_str().unwrap()).collect();
        assert_eq!(
            paths,
            [
                "kernel/lib/base_mod.ko.xz",
                "kernel/lib/left_dep.ko",
                "kernel/arch/x86/mce-inject.ko.zst"
            ]
        );
        let elf = read_module(&d.join(&order[0].path)).unwrap();
        assert!(elf.starts_with(b"\x7fELF"));
        assert_eq!(
            uncompressed_path(&order[2].path),
            Path::new("kernel/arch/x86/mce-inject.ko")
        );
        assert_eq!(
            uncompressed_path(&order[1].path),
            Path::new("kernel/lib/left_dep.ko")
        );
    }

    #[test]
    fn a_dependency_cycle_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        write_module(dir.path(), "a.ko", "a", "b");
        write_module(dir.path(), "b.ko", "b", "a");
        let index = ModuleIndex::scan(dir.path()).unwrap();
        assert!(matches!(
            index.load_order(&["a"]),
            Err(ModuleError::Cycle { .. })
        ));
    }
}
