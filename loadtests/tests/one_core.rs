//! A generator pinned to one core runs on one thread (change 42): tokio's
//! default runtime would start a worker per core of the machine, and they
//! would take turns at the one core with the main thread.
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// The threads of a running process, from /proc.
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The first core this process may run on: a container's cpuset need not
/// include core 0.
fn first_allowed_core() -> String {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list in /proc/self/status");
    list.trim()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .expect("a core")
        .to_string()
}

#[test]
fn pinned_to_one_core_the_relay_runs_on_one_thread() {
    let core = first_allowed_core();
    let mut child = Command::new("taskset")
        .args(["-c", &core, env!("CARGO_BIN_EXE_switchboard-loadtests")])
        .args(["relay", "--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("taskset runs the relay");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("piped stdout");
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the relay says where it listens");
    assert!(line.starts_with("relay listening on port "), "{line:?}");
    // taskset execs the relay, so the child's pid is the relay's.
    let n = threads(child.id());
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(n, 1, "a one-core generator process runs one thread");
}
