//! Memory and CPU time of a process, read from /proc (Linux only).
use std::path::Path;
use std::sync::OnceLock;

use serde::Serialize;

/// One reading of a process.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ProcSample {
    /// Resident set size, KiB.
    pub rss_kib: u64,
    /// User plus system CPU time so far, seconds (to the nanosecond where
    /// the kernel's process CPU clock can be read, else in clock ticks).
    pub cpu_secs: f64,
    /// Threads.
    pub threads: u64,
}

/// Clock ticks per second for /proc/<pid>/stat (almost always 100).
fn clk_tck() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// `pid`'s CPU time (every thread's, the exited ones too) to the
/// nanosecond, from the kernel's per-process CPU clock; `None` if that
/// clock cannot be read. /proc/<pid>/stat counts in clock ticks of 10 ms,
/// which over an idle window of 19,000 connections (about 25 ticks in all)
/// made the idle CPU figure move in steps of 4%.
fn cpu_clock_secs(pid: u32) -> Option<f64> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    let mut clock: libc::clockid_t = 0;
    // SAFETY: both calls only write to the locals passed by pointer.
    if unsafe { libc::clock_getcpuclockid(pid, &mut clock) } != 0 {
        return None;
    }
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    if unsafe { libc::clock_gettime(clock, &mut t) } != 0 {
        return None;
    }
    Some(t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9)
}

/// Reads `pid`'s RSS and CPU time; `None` if the process is gone.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 here.
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ProcSample {
        rss_kib: field("VmRSS:").unwrap_or(0),
        cpu_secs: cpu_clock_secs(pid).unwrap_or(ticks / clk_tck()),
        threads: field("Threads:").unwrap_or(0),
    })
}

/// The open-file limit of `pid`, (soft, hard); `None` for "unlimited" or
/// when it cannot be read.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct FileLimit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

pub fn open_file_limit(pid: u32) -> FileLimit {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
    let line = text.lines().find(|l| l.starts_with("Max open files"));
    let mut parts = line
        .map(|l| {
            l["Max open files".len()..]
                .split_whitespace()
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter();
    let num = |s: Option<&str>| s.and_then(|v| v.parse::<u64>().ok());
    FileLimit {
        soft: num(parts.next()),
        hard: num(parts.next()),
    }
}

/// How many file descriptors `pid` has open now.
pub fn open_files(pid: u32) -> Option<u64> {
    let dir = format!("/proc/{pid}/fd");
    Some(std::fs::read_dir(Path::new(&dir)).ok()?.count() as u64)
}

/// The cores this process may run on (`Cpus_allowed_list` in
/// /proc/self/status, such as `0-3,6`): a container's set need not start
/// at 0 or cover every core of the machine. `None` if it cannot be read.
pub fn allowed_cores() -> Option<Vec<usize>> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
    parse_core_list(list.trim())
}

/// `0-3,6` as `[0, 1, 2, 3, 6]`.
fn parse_core_list(list: &str) -> Option<Vec<usize>> {
    let mut cores = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((from, to)) => cores.extend(from.parse::<usize>().ok()?..=to.parse().ok()?),
            None => cores.push(part.parse().ok()?),
        }
    }
    Some(cores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_lists_read_as_the_kernel_writes_them() {
        assert_eq!(parse_core_list("0-1"), Some(vec![0, 1]));
        assert_eq!(parse_core_list("0-2,5,7-8"), Some(vec![0, 1, 2, 5, 7, 8]));
        assert_eq!(parse_core_list("3"), Some(vec![3]));
        assert_eq!(parse_core_list("x"), None);
        let mine = allowed_cores().expect("this process's cores");
        assert!(!mine.is_empty());
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        let s = sample(me).expect("own /proc entry");
        assert!(s.rss_kib > 0);
        assert!(s.threads >= 1);
        assert!(open_files(me).unwrap() > 0);
        // The kernel caps the open-file limit (`nr_open`), so it is never
        // "unlimited": both numbers must be read.
        let lim = open_file_limit(me);
        assert!(lim.soft.is_some() && lim.hard.is_some(), "{lim:?}");
        assert!(lim.soft <= lim.hard, "{lim:?}");
    }

    #[test]
    fn cpu_time_of_another_process_is_read_finer_than_clock_ticks() {
        // A child that burns some CPU, then sleeps while it is read.
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; exec sleep 30",
            ])
            .spawn()
            .expect("sh runs");
        let pid = child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        // Wait for the loop to end: the child is then `sleep`.
        while std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default() != "sleep\n"
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let precise = cpu_clock_secs(pid);
        let sampled = sample(pid);
        let _ = child.kill();
        let _ = child.wait();
        let precise = precise.expect("the child's CPU clock");
        let sampled = sampled.expect("the child's /proc entry");
        assert!(precise > 0.0, "the loop took CPU: {precise}");
        // `sleep` may still be starting between the two readings.
        assert!(sampled.cpu_secs >= precise, "{sampled:?} against {precise}");
        // Ticks of 10 ms would be whole numbers of hundredths.
        for secs in [precise, sampled.cpu_secs] {
            let hundredths = secs * 100.0;
            assert!(
                (hundredths - hundredths.round()).abs() > 1e-6,
                "{secs} s looks like whole clock ticks"
            );
        }
    }

    #[test]
    fn reads_another_process_limit() {
        // A child that lowered its own soft limit: the figure read must be
        // the child's, not ours.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "ulimit -S -n 123 && exec sleep 30"])
            .spawn()
            .expect("sh runs");
        let pid = child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut lim = open_file_limit(pid);
        // Until the shell has run `ulimit` it still shows our limit.
        while lim.soft != Some(123) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
            lim = open_file_limit(pid);
        }
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(lim.soft, Some(123));
        assert_eq!(lim.hard, open_file_limit(std::process::id()).hard);
    }

    #[test]
    fn a_missing_process_has_no_limit() {
        // pid_max is at most 2^22, so this pid never exists.
        let lim = open_file_limit(u32::MAX);
        assert_eq!((lim.soft, lim.hard), (None, None));
    }
}
