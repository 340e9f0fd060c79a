//! GET /metrics: the exposition passes `promtool check metrics`, and after
//! a scripted scenario every counter and gauge says exactly what happened.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::*;
use futures_util::{SinkExt, StreamExt};
use switchboard::client::Client;
use switchboard::domain::ids::{ClientKind, QueueId, Role};
use switchboard::error::ErrorCode;
use switchboard::protocol::{Entry, Event, Reply, RequestBody};

/// One sample of the text exposition: name, labels, value.
#[derive(Debug, Clone)]
pub struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        let value: f64 = value.parse().expect("numeric value");
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let mut labels = BTreeMap::new();
                // Our label values never contain `",` so a plain split works.
                for pair in body.split("\",") {
                    if pair.is_empty() {
                        continue;
                    }
                    let (k, v) = pair.split_once("=\"").expect("label pair");
                    labels.insert(k.to_string(), v.trim_end_matches('"').to_string());
                }
                (name.to_string(), labels)
            }
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

/// The value of the series with exactly these labels (0 when absent).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples
        .iter()
        .find(|s| s.name == name && s.labels == want)
        .map(|s| s.value)
        .unwrap_or(0.0)
}

/// Sum over every series of `name` whose labels include these.
fn sum(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

async fn scrape(app: &TestApp) -> String {
    let resp = reqwest::get(app.http("/metrics"))
        .await
        .expect("GET /metrics");
    assert!(resp.status().is_success());
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(ctype.starts_with("text/plain"), "{ctype}");
    resp.text().await.expect("body")
}

/// Runs scripts/ensure-test-tools.sh (installs promtool and schemathesis
/// when missing).
pub fn ensure_test_tools() {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ensure-test-tools.sh");
    let status = std::process::Command::new("bash")
        .arg(script)
        .status()
        .expect("bash runs");
    assert!(status.success(), "scripts/ensure-test-tools.sh failed");
}

async fn customer(app: &TestApp, kind: ClientKind, entry: Entry, name: &str) -> (Client, String) {
    let mut c = app.customer(kind).await;
    let view = c
        .start_session(entry, name, "Acme", "help")
        .await
        .expect("session starts");
    (c, view.session)
}

/// The scenario both tests share. Returns the clients so their
/// connections stay open (and counted) while the metrics are read.
struct Scenario {
    _clients: Vec<Client>,
}

async fn run_scenario(app: &TestApp) -> Scenario {
    // Reps: alice and carol on desktops, bob on a mobile console.
    let mut alice = app.rep("alice").await;
    let mut carol = app.rep("carol").await;
    let mut bob = Client::connect(&app.ws_url(), Role::Rep, ClientKind::Mobile)
        .await
        .expect("bob connects");
    bob.login("bob", "bob-demo").await.expect("bob logs in");

    // Five customers, three paths.
    let (c1, s1) = customer(
        app,
        ClientKind::Desktop,
        Entry::IssueForm {
            issue_type: "vpn".into(),
        },
        "One",
    )
    .await;
    let (c2, s2) = customer(
        app,
        ClientKind::Mobile,
        Entry::IssueForm {
            issue_type: "invoice".into(),
        },
        "Two",
    )
    .await;
    let (c3, _s3) = customer(
        app,
        ClientKind::Desktop,
        Entry::SupportButton {
            button: "desk-network".into(),
        },
        "Three",
    )
    .await;
    let (c4, _s4) = customer(
        app,
        ClientKind::Browser,
        Entry::HelpLink {
            link: "billing-page".into(),
        },
        "Four",
    )
    .await;
    let (c5, _s5) = customer(
        app,
        ClientKind::Desktop,
        Entry::IssueForm {
            issue_type: "wifi".into(),
        },
        "Five",
    )
    .await;

    // Two accepts (one per team), one lost race.
    alert_for(&mut alice, &s1).await;
    accept(&alice, &s1).await.expect("alice accepts");
    let lost = accept(&bob, &s1).await.unwrap_err();
    assert_eq!(lost.code(), Some(ErrorCode::AlreadyTaken));
    alert_for(&mut carol, &s2).await;
    accept(&carol, &s2).await.expect("carol accepts");

    // One transfer: network -> billing.
    let reply = alice
        .request(RequestBody::Transfer {
            session: s1.clone(),
            to: QueueId::team("billing"),
        })
        .await
        .expect("alice transfers");
    assert_eq!(reply, Reply::Ok);

    // A customer who picks an issue type that does not exist: no session,
    // so the connection is not counted as a connected customer.
    let c6 = app.customer(ClientKind::Desktop).await;
    let err = c6
        .request(RequestBody::StartSession {
            entry: Entry::IssueForm {
                issue_type: "no-such-type".into(),
            },
            name: "Six".into(),
            company: String::new(),
            description: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound));

    // A raw socket that skips hello.
    let (mut raw, _) = tokio_tungstenite::connect_async(app.ws_url())
        .await
        .expect("raw socket");
    let frame = rmp_serde::to_vec_named(&serde_json::json!({"id": 1, "type": "list_queues"}))
        .expect("encode");
    raw.send(tokio_tungstenite::tungstenite::Message::Binary(frame))
        .await
        .expect("send");
    loop {
        match tokio::time::timeout(WAIT, raw.next()).await {
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Binary(_)))) => break,
            Ok(Some(Ok(_))) => continue,
            other => panic!("no error frame: {other:?}"),
        }
    }
    let _ = raw.close(None).await;
    // Finish the close handshake before dropping the socket.
    while let Ok(Some(Ok(_))) = tokio::time::timeout(WAIT, raw.next()).await {}

    Scenario {
        _clients: vec![alice, bob, carol, c1, c2, c3, c4, c5, c6],
    }
}

fn check_scenario(m: &[Sample]) -> Result<(), String> {
    let mut wrong = Vec::new();
    let mut expect = |name: &str, labels: &[(&str, &str)], want: f64| {
        let got = value(m, name, labels);
        if got != want {
            wrong.push(format!("{name}{labels:?}: want {want}, got {got}"));
        }
    };
    let entered = "switchboard_sessions_entered_total";
    expect(entered, &[("path", "issue_form")], 3.0);
    expect(entered, &[("path", "support_button")], 1.0);
    expect(entered, &[("path", "browser_link")], 1.0);
    expect(entered, &[("path", "transfer")], 1.0);
    expect(entered, &[("path", "session_key")], 0.0);
    expect(entered, &[("path", "rep_choice")], 0.0);
    expect(entered, &[("path", "requeue")], 0.0);
    expect(entered, &[("path", "rule")], 0.0);
    expect("switchboard_accepts_total", &[], 2.0);
    expect("switchboard_transfers_total", &[], 1.0);
    expect("switchboard_sessions_abandoned_total", &[], 0.0);

    // network: c3, c5; billing: c4 and the transferred c1.
    let waiting = "switchboard_sessions_waiting";
    expect(waiting, &[("queue", "team:network")], 2.0);
    expect(waiting, &[("queue", "team:billing")], 2.0);
    expect(waiting, &[("queue", "team:escalations")], 0.0);
    expect("switchboard_sessions", &[("state", "waiting")], 4.0);
    expect("switchboard_sessions", &[("state", "active")], 1.0);
    expect(
        "switchboard_wait_seconds_count",
        &[("queue", "team:network")],
        1.0,
    );
    expect(
        "switchboard_wait_seconds_count",
        &[("queue", "team:billing")],
        1.0,
    );

    let conn = "switchboard_connected_clients";
    expect(conn, &[("role", "rep"), ("client", "desktop")], 2.0);
    expect(conn, &[("role", "rep"), ("client", "mobile")], 1.0);
    expect(conn, &[("role", "rep"), ("client", "browser")], 0.0);
    expect(conn, &[("role", "customer"), ("client", "desktop")], 3.0);
    expect(conn, &[("role", "customer"), ("client", "mobile")], 1.0);
    expect(conn, &[("role", "customer"), ("client", "browser")], 1.0);

    let errors = "switchboard_errors_total";
    expect(errors, &[("code", "already_taken")], 1.0);
    expect(errors, &[("code", "not_found")], 1.0);
    expect(errors, &[("code", "hello_required")], 1.0);
    if sum(m, errors, &[]) != 3.0 {
        let nonzero: Vec<_> = m
            .iter()
            .filter(|s| s.name == errors && s.value > 0.0)
            .map(|s| format!("{:?}={}", s.labels, s.value))
            .collect();
        wrong.push(format!("errors in all: want 3, got {nonzero:?}"));
    }

    // Requests in, by type: 3 reps + 6 customers said hello, the raw
    // socket did not.
    let msgs = "switchboard_protocol_messages_total";
    let mut expect_in = |t: &str, want: f64| {
        let got = value(m, msgs, &[("direction", "in"), ("type", t)]);
        if got != want {
            wrong.push(format!("{msgs} in {t}: want {want}, got {got}"));
        }
    };
    expect_in("hello", 9.0);
    expect_in("login", 3.0);
    expect_in("start_session", 6.0);
    expect_in("accept", 3.0);
    expect_in("transfer", 1.0);
    expect_in("list_queues", 1.0);
    let all_in = sum(m, msgs, &[("direction", "in")]);
    if all_in != 23.0 {
        wrong.push(format!("{msgs} in, all types: want 23, got {all_in}"));
    }
    // Out: 20 replies (23 requests less 3 errors), 3 errors; events on top.
    let replies = value(m, msgs, &[("direction", "out"), ("type", "reply")]);
    let error_frames = value(m, msgs, &[("direction", "out"), ("type", "error")]);
    if replies != 20.0 || error_frames != 3.0 {
        wrong.push(format!(
            "{msgs} out: want 20 replies and 3 errors, got {replies} and {error_frames}"
        ));
    }
    for kind in ["queue_entered", "queue_left", "rep_joined", "transferred"] {
        if value(m, msgs, &[("direction", "out"), ("type", kind)]) < 1.0 {
            wrong.push(format!("{msgs} out {kind}: want at least 1"));
        }
    }
    let bytes_in = value(
        m,
        "switchboard_protocol_bytes_total",
        &[("direction", "in")],
    );
    let bytes_out = value(
        m,
        "switchboard_protocol_bytes_total",
        &[("direction", "out")],
    );
    if bytes_in <= 0.0 || bytes_out <= bytes_in {
        wrong.push(format!("bytes in {bytes_in}, out {bytes_out}"));
    }
    if sum(m, "switchboard_store_write_seconds_count", &[]) < 10.0 {
        wrong.push("store writes were not timed".into());
    }
    if sum(m, "switchboard_store_flush_seconds_count", &[]) < 1.0 {
        wrong.push("store flushes were not timed".into());
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("\n"))
    }
}

#[actix_web::test]
async fn counters_match_the_scenario() {
    let app = spawn_app().await;
    let _scenario = run_scenario(&app).await;
    // Queue moves after an accept or transfer reach the queue actors
    // asynchronously: give them a moment, then insist.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let m = parse(&scrape(&app).await);
        match check_scenario(&m) {
            Ok(()) => break,
            Err(e) if tokio::time::Instant::now() > deadline => {
                panic!("metrics do not match the scenario:\n{e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    // Closing connections takes them out of the gauge.
    drop(_scenario);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let m = parse(&scrape(&app).await);
        let open = sum(&m, "switchboard_connected_clients", &[]);
        if open == 0.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{open} clients still counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn promtool_accepts_the_exposition() {
    ensure_test_tools();
    let app = spawn_app().await;
    let _scenario = run_scenario(&app).await;
    let text = scrape(&app).await;
    // Every family has HELP and TYPE, and counters end in _total.
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut parts = line.split_whitespace().skip(2);
        let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
        assert!(name.starts_with("switchboard_"), "{line}");
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} has no help text"
        );
        if kind == "counter" {
            assert!(name.ends_with("_total"), "counter {name} lacks _total");
        }
    }
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().expect("promtool finishes");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- exposition ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A queue's wait is the time a session waited in that queue: a session
/// served for a while and then transferred has not waited that long in
/// the queue it is transferred to, and must not lengthen its estimates.
#[actix_web::test]
async fn a_queues_wait_is_counted_from_when_the_session_entered_it() {
    let app = spawn_app().await;
    let mut alice = app.rep("alice").await;
    let mut carol = app.rep("carol").await;
    let mut c = app.customer(ClientKind::Desktop).await;
    let view = start_issue(&mut c, "vpn", "Dana").await;
    alert_for(&mut alice, &view.session).await;
    accept(&alice, &view.session).await.expect("alice accepts");
    // Served by alice for a while, then handed to billing.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    reply_of(&alice, transfer(&view.session, "team:billing")).await;
    alert_for(&mut carol, &view.session).await;
    accept(&carol, &view.session).await.expect("carol accepts");

    let samples = parse(&scrape(&app).await);
    let billing = [("queue", "team:billing")];
    assert_eq!(
        value(&samples, "switchboard_wait_seconds_count", &billing),
        1.0
    );
    let waited = value(&samples, "switchboard_wait_seconds_sum", &billing);
    assert!(
        waited < 1.0,
        "billing counted {waited} s, the time since the customer first asked"
    );
}

/// The counters of what the supervisor does count it: a mark rule
/// firing, a lost rep's session requeued, a session abandoned.
#[actix_web::test]
async fn the_supervisors_work_is_counted() {
    use switchboard::domain::rules::{OverdueAction, QueueRules};
    let dir = tempfile::tempdir().expect("temp dir");
    let app = spawn_app_with(dir, |s| {
        s.supervisor.rule_tick_ms = 50;
        s.supervisor.rep_grace_ms = 300;
        s.supervisor.customer_grace_ms = 300;
        s.rules.teams.insert(
            "billing".into(),
            QueueRules {
                overdue: vec![OverdueAction::Mark { after_secs: 1 }],
                ..QueueRules::default()
            },
        );
    })
    .await;
    let mut carol = app.rep("carol").await;
    let mut bob = app.rep("bob").await;
    let alice = app.rep("alice").await;

    // Marked overdue after a second in billing.
    let mut waits = app.customer(ClientKind::Desktop).await;
    let marked = start_issue(&mut waits, "invoice", "Mo").await;
    carol
        .wait_event(Duration::from_secs(5), |e| {
            matches!(e, Event::QueueEntered { session, .. } if session.session == marked.session && session.overdue)
        })
        .await
        .expect("the session is marked overdue");
    // Served by alice, whose console goes: requeued to network.
    let mut served = app.customer(ClientKind::Desktop).await;
    let requeued = start_issue(&mut served, "vpn", "Ru").await;
    alert_for(&mut bob, &requeued.session).await;
    accept(&alice, &requeued.session)
        .await
        .expect("alice accepts");
    alice.close().await;
    bob.wait_event(Duration::from_secs(5), |e| {
        matches!(e, Event::QueueEntered { session, .. } if session.session == requeued.session && session.requeued.is_some())
    })
    .await
    .expect("the session is requeued");
    // Left by its customer: abandoned.
    let mut leaves = app.customer(ClientKind::Desktop).await;
    let abandoned = start_issue(&mut leaves, "vpn", "Ab").await;
    leaves.close().await;
    bob.wait_event(
        Duration::from_secs(5),
        |e| matches!(e, Event::QueueLeft { session, .. } if *session == abandoned.session),
    )
    .await
    .expect("the abandoned session leaves its queue");

    let samples = parse(&scrape(&app).await);
    let count = |name: &str, labels: &[(&str, &str)]| value(&samples, name, labels);
    assert_eq!(
        count("switchboard_rule_firings_total", &[("action", "mark")]),
        1.0
    );
    assert_eq!(
        count(
            "switchboard_requeues_total",
            &[("reason", "rep_connection_lost")]
        ),
        1.0
    );
    assert_eq!(
        count("switchboard_sessions_entered_total", &[("path", "requeue")]),
        1.0
    );
    assert_eq!(count("switchboard_sessions_abandoned_total", &[]), 1.0);
}
