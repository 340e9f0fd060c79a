//! Logs: with `log.format = json` every line is a JSON object, and lines
//! about a connection or a session carry the rep's and the session's ids.

use std::time::Duration;

use crate::common::*;
use serde_json::Value;
use switchboard::client::Client;
use switchboard::domain::ids::{ClientKind, Role};

/// Whether `v` holds `key: want` anywhere (the line's fields, its current
/// span, or any span in its list).
fn has_field(v: &Value, key: &str, want: &str) -> bool {
    match v {
        Value::Object(map) => map
            .iter()
            .any(|(k, val)| (k == key && val.as_str() == Some(want)) || has_field(val, key, want)),
        Value::Array(items) => items.iter().any(|i| has_field(i, key, want)),
        _ => false,
    }
}

/// Waits until a line of `log` contains `what`; every line so far.
async fn lines_until(log: &LogLines, what: &str) -> Vec<String> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let lines = log.lock().unwrap().clone();
        if lines.iter().any(|l| l.contains(what)) {
            return lines;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no '{what}' line in the log:\n{}",
            lines.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Alice takes a customer's session from the queue and ends it: a whole
/// session's worth of log lines. The session's view.
async fn a_session_alice_takes_and_ends(url: &str) -> switchboard::protocol::CustomerView {
    let mut alice = rep_at(url, "alice").await;
    let mut customer = Client::connect(url, Role::Customer, ClientKind::Desktop)
        .await
        .unwrap();
    let view = start_issue(&mut customer, "vpn", "Dana").await;
    alert_for(&mut alice, &view.session).await;
    accept(&alice, &view.session).await.expect("alice accepts");
    alice
        .request(end_session(&view.session))
        .await
        .expect("alice ends the session");
    view
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_carry_rep_and_session_ids() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, log) = start_capturing_log(
        dir.path(),
        &[
            ("SWITCHBOARD_LOG_FORMAT", "json"),
            ("SWITCHBOARD_LOG_LEVEL", "info"),
        ],
    );
    let view = a_session_alice_takes_and_ends(&server.ws_url()).await;

    // Wait for the session's last line, then look at everything.
    let lines = lines_until(&log, "session ended").await;
    server.kill9();

    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for v in &parsed {
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{v}");
    }
    let rep_lines = parsed
        .iter()
        .filter(|v| has_field(v, "rep", "alice"))
        .count();
    let session_lines: Vec<&Value> = parsed
        .iter()
        .filter(|v| has_field(v, "session", &view.session))
        .collect();
    assert!(
        rep_lines >= 1,
        "no line carries rep=alice:\n{}",
        lines.join("\n")
    );
    // started, accepted, ended, and the customer's connection.
    assert!(
        session_lines.len() >= 3,
        "too few lines carry session={}:\n{}",
        view.session,
        lines.join("\n")
    );
    // The rep's connection span names the rep on its own lines.
    assert!(
        parsed
            .iter()
            .any(|v| v["span"]["name"] == "conn" && v["span"]["rep"] == "alice"),
        "no line in alice's connection span:\n{}",
        lines.join("\n")
    );
    // The session's start is logged in the customer's connection span
    // (at the default level the connection's own phases are not).
    assert!(
        parsed.iter().any(|v| v["span"]["name"] == "conn"
            && v["span"]["role"] == "customer"
            && v["fields"]["message"] == "session started"
            && v["fields"]["session"] == view.session.as_str()),
        "no 'session started' in the customer's connection span:\n{}",
        lines.join("\n")
    );
}

/// The default format is for people: plain text, not JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, log) = start_capturing_log(dir.path(), &[("SWITCHBOARD_LOG_LEVEL", "info")]);
    let _alice = server.rep("alice").await;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let lines = log.lock().unwrap().clone();
        if let Some(l) = lines.iter().find(|l| l.contains("listening")) {
            assert!(serde_json::from_str::<Value>(l).is_err(), "{l}");
            assert!(l.contains("INFO"), "{l}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", lines.join("\n"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill9();
}

/// The log is written by a thread of its own, in batches: what a session
/// logs still arrives, as plain lines when stderr is not a terminal (a
/// file or a journal has no use for colour codes), each connection's
/// fields once; a customer's connection does not repeat at the default
/// level what its session's lines say; and the last line before a stop
/// is written before the process exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_log_lines_are_plain_and_the_last_is_written_at_exit() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, log) = start_capturing_log(dir.path(), &[("SWITCHBOARD_LOG_LEVEL", "info")]);
    let view = a_session_alice_takes_and_ends(&server.ws_url()).await;
    lines_until(&log, "session ended").await;
    assert!(server.sigterm().success());
    let lines = lines_until(&log, "stopped").await;
    let all = lines.join("\n");
    assert!(
        lines.last().is_some_and(|l| l.contains("stopped")),
        "the stop's last line is the log's last:\n{all}"
    );
    assert!(!all.contains('\x1b'), "colour codes in a piped log:\n{all}");
    for l in &lines {
        for field in ["role=", "client=", "rep=", "session="] {
            assert!(l.matches(field).count() <= 1, "{field} twice: {l}");
        }
    }
    // Alice's log-in is a line; the customer's phases are not, since the
    // session's own lines (in the customer's span) say as much.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("connection phase changed") && l.contains("rep=\"alice\"")),
        "{all}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("connection phase changed") && l.contains("role=\"customer\"")),
        "{all}"
    );
    let started = lines
        .iter()
        .find(|l| l.contains("session started"))
        .unwrap_or_else(|| panic!("no 'session started':\n{all}"));
    assert!(
        started.contains("role=\"customer\"") && started.contains(&view.session),
        "{started}"
    );
}

/// The start-up log says which store opened and how much memory its cache
/// may take: the value the operator set, here through the environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_line_reports_the_cache_it_was_given() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, log) = start_capturing_log(
        dir.path(),
        &[
            ("SWITCHBOARD_LOG_FORMAT", "json"),
            ("SWITCHBOARD_LOG_LEVEL", "info"),
            ("SWITCHBOARD_STORE_CACHE_BYTES", "1048576"),
        ],
    );
    let _alice = server.rep("alice").await;
    let lines = log.lock().unwrap().clone();
    let store_open = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["fields"]["message"] == "store open")
        .unwrap_or_else(|| panic!("no 'store open' line:\n{}", lines.join("\n")));
    assert_eq!(store_open["fields"]["backend"], "sled", "{store_open}");
    assert_eq!(
        store_open["fields"]["cache_bytes"], 1_048_576,
        "{store_open}"
    );
    server.kill9();
}
