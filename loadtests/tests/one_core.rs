//! A generator pinned to one core runs on one thread (change 42): tokio's
//! default runtime would start a worker per core of the machine, and they
//! would take turns at the one core with the main thread.
use std::path::Path;

use switchboard_loadtests::orchestrate::{pinned, start_and_read_port};
use switchboard_loadtests::procstat;

use crate::common::first_allowed_core;

#[test]
fn pinned_to_one_core_the_relay_runs_on_one_thread() {
    // Started the way `all` starts its relays.
    let exe = Path::new(env!("CARGO_BIN_EXE_switchboard-loadtests"));
    let mut cmd = pinned(first_allowed_core(), exe);
    cmd.args(["relay", "--port", "0"]);
    let (mut relay, _port) =
        start_and_read_port(cmd, "relay listening on port ").expect("the relay starts");
    // taskset execs the relay, so the child's pid is the relay's.
    let threads = procstat::sample(relay.id()).map(|s| s.threads);
    let _ = relay.kill();
    let _ = relay.wait();
    assert_eq!(
        threads,
        Some(1),
        "a one-core generator process runs one thread"
    );
}
