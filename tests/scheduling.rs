//! `server.batch_scheduling`: by default the real server binary puts
//! every one of its threads under SCHED_BATCH (docs/configuration.md);
//! set to false, it leaves them all under the default policy. Read from
//! /proc, as an operator would check it.

use crate::common::*;
use switchboard::domain::ids::ClientKind;

/// SCHED_OTHER and SCHED_BATCH, as /proc reports a thread's policy.
const DEFAULT_POLICY: u32 = 0;
const BATCH_POLICY: u32 = 3;

/// Each thread of `pid` with its name and scheduling policy: field 41 of
/// /proc/<pid>/task/<tid>/stat, counted after the name in parentheses
/// (field 2), which may hold spaces.
fn thread_policies(pid: u32) -> Vec<(String, u32)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the server's threads");
    tasks
        .map(|task| {
            let stat = std::fs::read_to_string(task.expect("a thread").path().join("stat"))
                .expect("a thread's stat");
            let (head, rest) = stat.rsplit_once(')').expect("stat has the name");
            let name = head.split_once('(').map_or("", |(_, n)| n).to_string();
            // `rest` starts at field 3.
            let policy = rest.split_whitespace().nth(41 - 3).expect("field 41");
            (name, policy.parse().expect("a policy number"))
        })
        .collect()
}

/// A server that has done some work, so that the threads started on
/// demand (sled's I/O pool, the store's flusher) exist: a rep logged in
/// and a customer's session durably queued.
async fn busy_server(extra_env: &[(&str, &str)]) -> (tempfile::TempDir, ServerProcess) {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), extra_env);
    let _alice = server.rep("alice").await;
    let mut customer = server.customer(ClientKind::Desktop).await;
    start_issue(&mut customer, "vpn", "Dana").await;
    (dir, server)
}

/// The threads of a busy server started with `extra_env` whose policy is
/// not `policy`, once it is known to have its threads started on demand.
async fn threads_not_under(policy: u32, extra_env: &[(&str, &str)]) -> Vec<(String, u32)> {
    let (_dir, server) = busy_server(extra_env).await;
    let threads = thread_policies(server.child.id());
    assert!(
        threads.len() >= 4,
        "expected the runtime's, sled's and the flusher's threads: {threads:?}"
    );
    threads.into_iter().filter(|(_, p)| *p != policy).collect()
}

#[tokio::test]
async fn by_default_every_thread_runs_under_sched_batch() {
    let other = threads_not_under(BATCH_POLICY, &[]).await;
    assert!(other.is_empty(), "threads not under SCHED_BATCH: {other:?}");
}

#[tokio::test]
async fn with_batch_scheduling_off_every_thread_keeps_the_default_policy() {
    let other =
        threads_not_under(DEFAULT_POLICY, &[("SWITCHBOARD_BATCH_SCHEDULING", "false")]).await;
    assert!(other.is_empty(), "threads not under the default: {other:?}");
}
