//! The server grows its table of open files to its open-file limit at
//! start (src/fd_table.rs): growing it later, as connections arrive,
//! stopped the acceptor for an RCU grace period (13 to 30 ms here) each
//! time the count of connections first crossed a power of two
//! (docs/performance.md, change 57). The kernel reports the table's size
//! as `FDSize`, and the limit as "Max open files". A server that reaches
//! its limit pauses its accepting and serves again once files are free.

use std::time::Duration;

use switchboard::fd_table::MAX_RESERVED;

use crate::common::{
    eventually, lines_saying, rest_json, server_command, spawn_capturing_log, start_capturing_log,
    LogLines,
};

/// A field of /proc/<pid>/status or /proc/<pid>/limits, by the text that
/// begins its line; the first number after it.
fn proc_number(file: &str, field: &str) -> u64 {
    let text = std::fs::read_to_string(file).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap_or_else(|| panic!("no {field} in {file}:\n{text}"));
    line.split_whitespace().next().unwrap().parse().unwrap()
}

/// Waits for the start-up's log line that names the table's reserved size.
async fn says_it_holds(log: &LogLines, reserved: u64) {
    let said = format!("table of open files holds {reserved}");
    eventually(
        Duration::from_secs(10),
        "the start-up's log line",
        || async { (lines_saying(log, &said) > 0).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn the_server_has_room_for_its_open_file_limit_before_the_first_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, log) = start_capturing_log(dir.path(), &[("SWITCHBOARD_LOG_LEVEL", "info")]);
    let pid = server.child.id();
    let soft = proc_number(&format!("/proc/{pid}/limits"), "Max open files");
    let wanted = soft.min(MAX_RESERVED);
    assert!(wanted > 256, "a limit of {soft} leaves too little to test");
    // No client has connected: only the table grown in advance explains
    // room for more than the few files the server holds open.
    let size = proc_number(&format!("/proc/{pid}/status"), "FDSize:");
    assert!(
        size >= wanted,
        "the table holds {size}, the limit is {soft}"
    );
    says_it_holds(&log, wanted).await;
    assert!(server.sigterm().success());
}

/// A server whose limit is lower than the machine's, such as the 1,024
/// many systems give a process by default, reserves that much and no
/// more, and serves.
#[tokio::test]
async fn a_lower_open_file_limit_is_what_the_server_reserves_and_it_still_serves() {
    use std::os::unix::process::CommandExt;
    const LIMIT: u64 = 1024;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = server_command(dir.path(), &[("SWITCHBOARD_LOG_LEVEL", "info")]);
    // SAFETY: the closure runs in the child between fork and exec, and
    // only calls prlimit, a plain system call that takes no lock and
    // allocates nothing.
    unsafe {
        cmd.pre_exec(|| lower_open_file_limit(0, LIMIT));
    }
    let (mut server, log) = spawn_capturing_log(cmd);
    let pid = server.child.id();
    let soft = proc_number(&format!("/proc/{pid}/limits"), "Max open files");
    assert_eq!(soft, LIMIT, "the machine's hard limit is under {LIMIT}");
    let size = proc_number(&format!("/proc/{pid}/status"), "FDSize:");
    assert!(size >= LIMIT, "the table holds {size}");
    says_it_holds(&log, LIMIT).await;
    let login = serde_json::json!({"username": "alice", "password": "alice-demo"});
    let (status, body) = rest_json(
        server.port,
        reqwest::Method::POST,
        "/api/login",
        None,
        Some(login),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["token"].is_string(), "{body}");
    assert!(server.sigterm().success());
}

/// Sets the soft open-file limit of process `pid` (0: this one) to
/// `soft`, or to its hard limit if that is lower. Safe between fork and
/// exec: prlimit is one system call, and nothing here allocates.
fn lower_open_file_limit(pid: libc::pid_t, soft: u64) -> std::io::Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit reads and writes only the structs passed, which
    // live for the calls.
    if unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    limit.rlim_cur = soft.min(limit.rlim_max);
    // SAFETY: as above.
    if unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &limit, std::ptr::null_mut()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A server that runs out of files cannot accept: it says so, pauses its
/// accepting rather than spin on the error, keeps running, and serves new
/// connections again once files are free (src/http/server.rs pauses a
/// worker's accepting for 500 ms after an error).
#[tokio::test]
async fn a_server_out_of_files_pauses_accepting_and_serves_again_once_they_free() {
    let dir = tempfile::tempdir().unwrap();
    // One worker, so one accept loop to count the errors of.
    let env = [
        ("SWITCHBOARD_LOG_LEVEL", "info"),
        ("SWITCHBOARD_WORKERS", "1"),
    ];
    let (mut server, log) = start_capturing_log(dir.path(), &env);
    let (status, _) = rest_json(server.port, reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(status, 200);
    let pid = server.child.id();
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as u64;
    // Room for a few connections more than the server holds now.
    lower_open_file_limit(pid as libc::pid_t, open + 4).expect("the server's limit is lowered");
    let limited = std::time::Instant::now();
    let held: Vec<_> = (0..16)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connects"))
        .collect();
    eventually(
        Duration::from_secs(10),
        "the accept error in the log",
        || async { (lines_saying(&log, "cannot accept a connection") > 0).then_some(()) },
    )
    .await;
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server exited"
    );
    // Once the held connections go, their files are free again, and the
    // server accepts the rest of its backlog and the new request.
    drop(held);
    let (status, body) = rest_json(server.port, reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(status, 200, "{body}");
    // One try every half second at most, not a loop on the error.
    let errors = lines_saying(&log, "cannot accept a connection") as u128;
    let most = limited.elapsed().as_millis() / 500 + 2;
    assert!(
        errors <= most,
        "{errors} accept errors logged, at most {most} expected"
    );
    assert!(server.sigterm().success());
}
