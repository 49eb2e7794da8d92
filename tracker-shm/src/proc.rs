//! Facts about processes from `/proc`.

use std::fs;

/// What `/proc/<pid>/stat` says about a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// Field 3: R, S, D, Z, T, ...
    pub(crate) state: char,
    /// Field 20: threads in the process.
    pub(crate) num_threads: u64,
    /// Field 22: start time in clock ticks since boot.
    pub(crate) start_time: u64,
}

/// Parses the text of `/proc/<pid>/stat`. The command name (field 2) may
/// hold spaces and parentheses, so fields are counted after the last `)`.
pub(crate) fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // `rest` starts at field 3: field 20 is 17 further, field 22 two more.
    let num_threads = fields.nth(16)?.parse().ok()?;
    let start_time = fields.nth(1)?.parse().ok()?;
    Some(ProcStat {
        state,
        num_threads,
        start_time,
    })
}

/// The stat of process `pid`, if it exists and can be read.
pub(crate) fn stat(pid: u32) -> Option<ProcStat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Threads of this process that have not ended, if `/proc` can tell. (A
/// main thread that ended while others run stays listed, as a zombie,
/// until the last one ends: it is not counted.)
pub(crate) fn own_running_threads() -> Option<usize> {
    let mut n = 0;
    for task in fs::read_dir("/proc/self/task").ok()?.flatten() {
        let Ok(text) = fs::read_to_string(task.path().join("stat")) else {
            continue; // ended meanwhile
        };
        if parse_stat(&text).is_some_and(|s| s.state != 'Z' && s.state != 'X') {
            n += 1;
        }
    }
    Some(n)
}

/// The command line of process `pid`, arguments joined by spaces.
pub(crate) fn cmdline(pid: u32) -> String {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let parts: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    parts.join(" ")
}

/// This process's resident set size in bytes, from `/proc/self/statm`
/// (0 if it cannot be read).
pub(crate) fn own_rss_bytes() -> u64 {
    let Ok(text) = fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = text
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .unwrap_or(0);
    pages.saturating_mul(crate::sys::page_size())
}

/// A short service name for a program run as `args` (its command line):
/// the script or module a Python interpreter runs, else the program's file
/// name. Never the whole command line.
pub(crate) fn default_service(args: &[String]) -> String {
    let base = |p: &str| -> String {
        let name = p.rsplit('/').next().unwrap_or(p);
        name.strip_suffix(".py").unwrap_or(name).to_string()
    };
    let Some(program) = args.first() else {
        return "unknown".into();
    };
    let program_name = base(program);
    if program_name.starts_with("python") {
        let mut rest = args[1..].iter();
        while let Some(a) = rest.next() {
            match a.as_str() {
                "-m" => return rest.next().map_or(program_name.clone(), |m| m.clone()),
                "-c" => return program_name,
                _ if a.starts_with("-m") && a.len() > 2 => return a[2..].to_string(),
                _ if a.starts_with('-') => {
                    if matches!(a.as_str(), "-W" | "-X" | "--check-hash-based-pycs") {
                        rest.next();
                    }
                }
                _ => return base(a),
            }
        }
    }
    program_name
}

/// This process's arguments, from `/proc/self/cmdline`.
pub(crate) fn own_args() -> Vec<String> {
    let raw = fs::read("/proc/self/cmdline").unwrap_or_default();
    raw.split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect()
}

/// The kernel's boot id as 16 bytes (zeros if unknown).
pub(crate) fn boot_id() -> [u8; 16] {
    let mut out = [0u8; 16];
    if let Ok(text) = fs::read_to_string("/proc/sys/kernel/random/boot_id") {
        let hex: Vec<u8> = text.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
        for (i, pair) in hex.chunks(2).take(16).enumerate() {
            let s = std::str::from_utf8(pair).unwrap_or("0");
            out[i] = u8::from_str_radix(s, 16).unwrap_or(0);
        }
    }
    out
}

/// The user ids of process `pid` (real, effective, saved, file system),
/// from `/proc/<pid>/status`; `None` if it cannot be read.
pub(crate) fn uids(pid: u32) -> Option<[u32; 4]> {
    parse_uids(&fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

pub(crate) fn parse_uids(status: &str) -> Option<[u32; 4]> {
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    let mut ids = line.split_whitespace().map(|v| v.parse::<u32>().ok());
    Some([ids.next()??, ids.next()??, ids.next()??, ids.next()??])
}

/// The pid of process `pid` in the pid namespace it was created in (the
/// last `NSpid` of `/proc/<pid>/status`): its pid as seen inside a
/// container. `None` if it cannot be read.
pub(crate) fn innermost_pid(pid: u32) -> Option<u32> {
    parse_innermost_pid(&fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

pub(crate) fn parse_innermost_pid(status: &str) -> Option<u32> {
    let line = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

/// The pids holding a `flock` on the file with this device and inode,
/// from `/proc/locks` (waiters, marked `->`, are not holders). `None` when
/// `/proc/locks` cannot be read.
///
/// Inside [`with_locks_read_once`], the table is read at the first call
/// and reused by the following ones.
pub(crate) fn flock_holders(dev: u64, ino: u64) -> Option<Vec<u32>> {
    LOCKS.with(|cell| {
        let mut scope = cell.borrow_mut();
        if let LockScope::NotRead = *scope {
            *scope = LockScope::Read(
                fs::read_to_string("/proc/locks")
                    .ok()
                    .map(|text| parse_flock_table(&text)),
            );
        }
        match &*scope {
            LockScope::Outside => Some(parse_flock_holders(
                &fs::read_to_string("/proc/locks").ok()?,
                dev,
                ino,
            )),
            LockScope::Read(table) => {
                let (major, minor) = major_minor(dev);
                Some(
                    table
                        .as_ref()?
                        .get(&(major, minor, ino))
                        .cloned()
                        .unwrap_or_default(),
                )
            }
            LockScope::NotRead => unreachable!("read just above"),
        }
    })
}

/// Where [`flock_holders`] gets the lock table from.
enum LockScope {
    /// Outside [`with_locks_read_once`]: read at every call.
    Outside,
    /// Inside it, before the first look-up.
    NotRead,
    /// Inside it: the table as read (`None`: unreadable).
    Read(Option<FlockTable>),
}

/// Holders of each locked file, by (major, minor, inode).
type FlockTable = std::collections::HashMap<(u64, u64, u64), Vec<u32>>;

thread_local! {
    static LOCKS: std::cell::RefCell<LockScope> = const { std::cell::RefCell::new(LockScope::Outside) };
}

/// Runs `f` with `/proc/locks` read at most once, at the first look-up
/// inside it (a reader going over many segments reads it once instead of
/// once per segment). Locks taken after that look-up are not seen, so `f`
/// lists the segments before it asks who holds their locks: a writer takes
/// its lock before its segment appears under its name.
pub fn with_locks_read_once<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            if self.0 {
                LOCKS.with(|cell| *cell.borrow_mut() = LockScope::Outside);
            }
        }
    }
    let outermost = LOCKS.with(|cell| {
        let mut scope = cell.borrow_mut();
        let outer = matches!(*scope, LockScope::Outside);
        if outer {
            *scope = LockScope::NotRead;
        }
        outer
    });
    let _reset = Reset(outermost);
    f()
}

fn parse_flock_table(locks: &str) -> FlockTable {
    let mut table = FlockTable::new();
    for (major, minor, ino, pid) in locks.lines().filter_map(parse_flock_line) {
        table.entry((major, minor, ino)).or_default().push(pid);
    }
    table
}

/// One holder's line of `/proc/locks`: (major, minor, inode, pid).
fn parse_flock_line(line: &str) -> Option<(u64, u64, u64, u32)> {
    // `N: FLOCK  ADVISORY  WRITE PID MAJ:MIN:INODE START END`
    let mut f = line.split_whitespace().skip(1);
    if f.next()? != "FLOCK" {
        return None; // POSIX and OFD locks, and `->` waiters
    }
    let pid: u32 = f.nth(2)?.parse().ok()?;
    let mut id = f.next()?.split(':');
    let maj = u64::from_str_radix(id.next()?, 16).ok()?;
    let min = u64::from_str_radix(id.next()?, 16).ok()?;
    let inode: u64 = id.next()?.parse().ok()?;
    Some((maj, min, inode, pid))
}

/// Splits a `st_dev` into (major, minor) as the kernel's 64-bit encoding
/// does.
fn major_minor(dev: u64) -> (u64, u64) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major, minor)
}

pub(crate) fn parse_flock_holders(locks: &str, dev: u64, ino: u64) -> Vec<u32> {
    let (major, minor) = major_minor(dev);
    locks
        .lines()
        .filter_map(parse_flock_line)
        .filter(|&(maj, min, inode, _)| (maj, min, inode) == (major, minor, ino))
        .map(|(.., pid)| pid)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_service_names_the_script_or_module() {
        let args = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            default_service(&args("/usr/bin/python3 -u /srv/app/web.py --port 80")),
            "web"
        );
        assert_eq!(
            default_service(&args("python3.11 -X dev -m gunicorn app:wsgi")),
            "gunicorn"
        );
        assert_eq!(default_service(&args("python3 -mcelery worker")), "celery");
        assert_eq!(default_service(&args("python3 -c pass")), "python3");
        assert_eq!(
            default_service(&args("/venv/bin/gunicorn -w 4 app:wsgi")),
            "gunicorn"
        );
        assert_eq!(default_service(&[]), "unknown");
        assert!(own_rss_bytes() > 0);
    }

    #[test]
    fn lock_holders_of_one_file() {
        let locks = "1: FLOCK  ADVISORY  WRITE 4242 00:1a:9001 0 EOF\n\
                     1: -> FLOCK  ADVISORY  WRITE 77 00:1a:9001 0 EOF\n\
                     2: POSIX  ADVISORY  WRITE 55 00:1a:9001 0 EOF\n\
                     3: FLOCK  ADVISORY  WRITE 66 00:1a:9002 0 EOF\n\
                     4: FLOCK  ADVISORY  READ 88 fd:01:9001 0 EOF\n";
        let dev = 0x1a; // 00:1a
        assert_eq!(parse_flock_holders(locks, dev, 9001), vec![4242]);
        let dev_fd01 = (0xfd << 8) | 0x01;
        assert_eq!(parse_flock_holders(locks, dev_fd01, 9001), vec![88]);
        assert!(parse_flock_holders("garbage\n1: FLOCK", dev, 9001).is_empty());
    }

    #[test]
    fn uids_from_status() {
        let status = "Name:\tpython3\nUid:\t1000\t1001\t1002\t1003\nGid:\t0\t0\t0\t0\n";
        assert_eq!(parse_uids(status), Some([1000, 1001, 1002, 1003]));
        assert_eq!(parse_uids("Uid:\t1\t2\n"), None);
        let me = uids(std::process::id()).unwrap();
        assert_eq!(me[1], crate::sys::uid());
    }

    #[test]
    fn the_innermost_pid_is_the_last_nspid() {
        assert_eq!(parse_innermost_pid("Name:\tx\nNSpid:\t4242\t7\n"), Some(7));
        assert_eq!(parse_innermost_pid("NSpid:\t4242\n"), Some(4242));
        assert_eq!(parse_innermost_pid("Name:\tx\n"), None);
        assert_eq!(innermost_pid(std::process::id()), Some(std::process::id()));
    }

    #[test]
    fn a_held_flock_is_listed_with_our_pid() {
        use std::os::unix::fs::MetadataExt;
        let dir = std::env::temp_dir().join(format!("pytracker-locks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let file = std::fs::File::create(&path).unwrap();
        crate::sys::lock_exclusive(&file).unwrap();
        let meta = file.metadata().unwrap();
        let holders = flock_holders(meta.dev(), meta.ino()).unwrap();
        assert_eq!(holders, vec![std::process::id()]);
        drop(file);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parses_names_with_spaces_and_parens() {
        let text = "1234 (my (odd) prog) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100";
        assert_eq!(
            parse_stat(text),
            Some(ProcStat {
                state: 'S',
                num_threads: 1,
                start_time: 987654
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1 2"), None);
    }

    #[test]
    fn own_process_is_readable() {
        let me = stat(std::process::id()).unwrap();
        assert!(me.start_time > 0);
        assert!(!cmdline(std::process::id()).is_empty());
    }
}
