//! The idle scenario's figures are per connection, so it checks, after
//! reading them, that every connection it counted is still open: with one
//! generator process or several, and it notices when they are not.
use std::sync::atomic::AtomicU64;

use switchboard_loadtests::cli::{run_scenario, Scenario};
use switchboard_loadtests::scenarios::idle::{count_open, hold};
use switchboard_loadtests::scenarios::{Errors, Protocol};

use crate::common::{args, start_server, start_server_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_generator_processes_report_every_connection_still_open() {
    let dir = tempfile::tempdir().unwrap();
    let port = start_server(dir.path().join("data"));
    let mut idle = args(
        Scenario::Idle,
        format!("ws://127.0.0.1:{port}/ws"),
        Protocol::Switchboard,
    );
    idle.procs = 2;
    idle.connections = 21;
    idle.exe = Some(env!("CARGO_BIN_EXE_switchboard-loadtests").into());
    let result = run_scenario(&idle).await.expect("the run reports");
    assert_eq!(result.counts["generator_processes"], 2);
    assert_eq!(result.counts["connected"], 21, "{:?}", result.errors);
    assert_eq!(
        result.counts["open_after_window"], 21,
        "{:?}",
        result.errors
    );
    assert!(result.errors.is_empty(), "{:?}", result.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_server_closed_are_not_counted_open() {
    let dir = tempfile::tempdir().unwrap();
    let (port, stopper) = start_server_with(dir.path().join("data"), |_| {});
    let a = args(
        Scenario::Idle,
        format!("ws://127.0.0.1:{port}/ws"),
        Protocol::Switchboard,
    );
    let (t, p) = (a.target().unwrap(), a.params());
    let opened = AtomicU64::new(0);
    let errors = Errors::default();
    let mut held = hold(&t, &p, 0, 5, 0.0, &opened, &errors).await;
    assert_eq!(held.len(), 5, "{:?}", errors.first());
    assert_eq!(count_open(&mut held).await, 5);
    stopper.stop().await;
    assert_eq!(count_open(&mut held).await, 0);
}
