//! Segment directories of processes in other mount namespaces (containers),
//! seen through `/proc/PID/root`.
//!
//! A container's `/dev/shm` is usually its own tmpfs, invisible in the
//! host's. Root on the host (or anyone allowed to look into the process,
//! which `/proc/PID/root` requires) can still reach it as
//! `/proc/PID/root/dev/shm`. One process per mount namespace is enough:
//! its root shows what every process of that namespace sees.
//!
//! The directories come from the container, so they are untrusted: an
//! absolute symbolic link inside `/proc/PID/root` resolves against the
//! reader's root, not the container's. A directory is used only when no
//! component below `/proc/PID/root` is a symbolic link.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::naming::DIR_ENV;

/// Processes looked at, at most (a bound on the work of one listing).
const MAX_PROCESSES: usize = 1 << 16;
/// Bytes of a process's environment read, at most.
const MAX_ENVIRON: u64 = 1 << 20;

/// The segment directories of processes whose mount namespace is not this
/// process's, as `/proc/PID/root/...` paths: each namespace's
/// `$PYTRACKER_DIR` (from the environment of the process that represents
/// it) or else its `/dev/shm`, `$XDG_RUNTIME_DIR` and `/tmp`. Empty when
/// this process cannot look into others.
pub fn other_namespace_directories() -> Vec<PathBuf> {
    let Ok(own) = fs::read_link("/proc/self/ns/mnt") else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut seen = HashSet::from([own]);
    let mut out = Vec::new();
    for entry in entries.flatten().take(MAX_PROCESSES) {
        let name = entry.file_name();
        if !name.as_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        let proc_dir = entry.path();
        let Ok(ns) = fs::read_link(proc_dir.join("ns/mnt")) else {
            continue;
        };
        if !seen.insert(ns) {
            continue;
        }
        let root = proc_dir.join("root");
        for dir in candidates(&proc_dir) {
            if let Some(path) = inside(&root, &dir) {
                if !out.contains(&path) {
                    out.push(path);
                }
            }
        }
    }
    out
}

/// Where the process of `/proc/PID` (`proc_dir`) would put segments, as
/// absolute paths in its own mount namespace.
fn candidates(proc_dir: &Path) -> Vec<PathBuf> {
    let environ = read_environ(proc_dir);
    let var = |name: &str| {
        environ.split(|&b| b == 0).find_map(|kv| {
            let rest = kv.strip_prefix(name.as_bytes())?.strip_prefix(b"=")?;
            (!rest.is_empty()).then(|| PathBuf::from(OsStr::from_bytes(rest)))
        })
    };
    if let Some(dir) = var(DIR_ENV) {
        return vec![dir];
    }
    let mut dirs = vec![PathBuf::from("/dev/shm")];
    dirs.extend(var("XDG_RUNTIME_DIR"));
    dirs.push(PathBuf::from("/tmp"));
    dirs
}

fn read_environ(proc_dir: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    if let Ok(f) = fs::File::open(proc_dir.join("environ")) {
        let _ = f.take(MAX_ENVIRON).read_to_end(&mut out);
    }
    out
}

/// `root` joined with the absolute path `dir`, when `dir` is plain (no
/// `..`) and every component of it below `root` is a directory, not a
/// symbolic link.
fn inside(root: &Path, dir: &Path) -> Option<PathBuf> {
    if !dir.is_absolute() {
        return None;
    }
    let mut path = root.to_path_buf();
    for c in dir.components() {
        match c {
            Component::RootDir | Component::CurDir => continue,
            Component::Normal(part) => path.push(part),
            Component::ParentDir | Component::Prefix(_) => return None,
        }
        let meta = fs::symlink_metadata(&path).ok()?;
        if !meta.file_type().is_dir() {
            return None;
        }
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_behind_a_symbolic_link_is_refused() {
        let base = std::env::temp_dir().join(format!("pytracker-mounts-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(base.join("root/dev/shm")).unwrap();
        fs::create_dir_all(base.join("root/run")).unwrap();
        std::os::unix::fs::symlink("/etc", base.join("root/run/user")).unwrap();
        let root = base.join("root");
        assert_eq!(
            inside(&root, Path::new("/dev/shm")),
            Some(root.join("dev/shm"))
        );
        assert_eq!(inside(&root, Path::new("/run/user")), None);
        assert_eq!(inside(&root, Path::new("/run/user/0")), None);
        assert_eq!(inside(&root, Path::new("/dev/../etc")), None);
        assert_eq!(inside(&root, Path::new("dev/shm")), None);
        assert_eq!(inside(&root, Path::new("/missing")), None);
        fs::remove_dir_all(&base).unwrap();
    }
}
