//! `server.workers`: with one, the server binary serves every connection on
//! the thread its rep, team queue and session actors run on and starts no
//! worker thread; with more, one thread each. Either way a customer is
//! routed to a rep, they chat, the session ends, REST answers, and SIGTERM
//! stops the server cleanly.

use crate::common::*;
use switchboard::domain::ids::ClientKind;
use switchboard::protocol::Event;

/// The threads actix-rt started as arbiters: the HTTP workers (the
/// kernel keeps the first 15 bytes of "actix-rt|system:0|arbiter:N").
fn worker_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the server's threads are listed")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("actix-rt|system"))
        .count()
}

/// A customer files the form, a rep accepts, each hears the other, the
/// rep ends it; then REST answers.
async fn route_one_session(server: &ServerProcess) {
    let mut alice = server.rep("alice").await;
    let mut customer = server.customer(ClientKind::Desktop).await;
    let view = start_issue(&mut customer, "vpn", "Dana").await;
    alert_for(&mut alice, &view.session).await;
    accept(&alice, &view.session).await.expect("alice accepts");
    chat(&customer, None, "hello?").await;
    assert!(hears(&mut alice, "hello?").await.is_some());
    chat(&alice, Some(&view.session), "hi Dana").await;
    assert!(hears(&mut customer, "hi Dana").await.is_some());
    ok(&alice, end_session(&view.session)).await;
    customer
        .wait_event(WAIT, |e| matches!(e, Event::SessionEnded { .. }))
        .await
        .expect("the customer is told it ended");
    let (status, _) = rest_json(server.port, reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn one_worker_serves_on_the_actors_thread_and_starts_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, log) = start_capturing_log(
        dir.path(),
        &[
            ("SWITCHBOARD_WORKERS", "1"),
            ("SWITCHBOARD_LOG_LEVEL", "info"),
        ],
    );
    assert_eq!(worker_threads(server.child.id()), 0);
    route_one_session(&server).await;
    assert!(lines_saying(&log, "serving connections on the actors' thread") > 0);
    assert!(server.sigterm().success());
}

#[tokio::test]
async fn three_workers_are_three_threads_and_serve_alike() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[("SWITCHBOARD_WORKERS", "3")]);
    assert_eq!(worker_threads(server.child.id()), 3);
    route_one_session(&server).await;
    assert!(server.sigterm().success());
}
