//! Recovery at scale: the real server binary with 1,000 waiting sessions
//! (team network and team billing), 100 active ones and waiting-session
//! rules pending is killed with SIGKILL and started again on the same data.
//! Every waiting session must be back in its queue in the same order with
//! its original wait start; pending rules must still be pending, and fire
//! when due; active sessions of a rep who reconnects within the grace stay
//! theirs, those of a rep who does not go back to their last queue.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::common::*;
use futures_util::future::join_all;
use reqwest::Method;
use serde_json::json;
use switchboard::client::Client;
use switchboard::domain::ids::{ClientKind, Role};
use switchboard::domain::session::{HistoryEvent, SessionState};
use switchboard::protocol::{Entry, QueueView, Reply, RequestBody};

const WAITING: usize = 1000;
const ACTIVE: usize = 100;
/// Sessions of a team whose overdue mark is due 3 s after they enter.
const SOON: usize = 10;
const BATCH: usize = 50;
const WHY: &str = "requeued: representative connection lost";

const ENV: [(&str, &str); 3] = [
    ("SWITCHBOARD_RULE_TICK_MS", "100"),
    ("SWITCHBOARD_REP_GRACE_MS", "1000"),
    ("SWITCHBOARD_CUSTOMER_GRACE_MS", "600000"),
];

/// Starts one session per issue type given, `BATCH` customers at a time;
/// each customer connection is closed once its session has started.
/// Answers the session ids in the order given.
async fn start_many(url: &str, issues: &[&str]) -> Vec<String> {
    let mut ids = Vec::with_capacity(issues.len());
    for (b, chunk) in issues.chunks(BATCH).enumerate() {
        let started = join_all(chunk.iter().enumerate().map(|(i, issue)| async move {
            let mut c = Client::connect(url, Role::Customer, ClientKind::Desktop)
                .await
                .expect("customer connects");
            let name = format!("Customer {:04}", b * BATCH + i);
            let view = c
                .start_session(
                    Entry::IssueForm {
                        issue_type: issue.to_string(),
                    },
                    &name,
                    "Acme",
                    "",
                )
                .await
                .expect("session starts");
            c.close().await;
            view.session
        }))
        .await;
        ids.extend(started);
    }
    ids
}

async fn queue_rest(port: u16, token: &str, queue: &str) -> QueueView {
    let (status, body) = rest_json(
        port,
        Method::GET,
        &format!("/api/queues/{queue}"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).expect("a queue view")
}

/// What must survive of a queue, in queue order (the view is sorted by
/// wait): (session, wait start, position).
fn contents(v: &QueueView) -> Vec<(String, u64, usize)> {
    let mut items: Vec<(String, u64, usize)> = v
        .items
        .iter()
        .map(|i| (i.summary.session.clone(), i.summary.wait_start, i.position))
        .collect();
    items.sort_by_key(|(_, _, position)| *position);
    items
}

/// Panics with the first difference (the lists are long).
fn assert_same(what: &str, after: &[(String, u64, usize)], before: &[(String, u64, usize)]) {
    assert_eq!(after.len(), before.len(), "{what}: lengths differ");
    if let Some(i) = (0..after.len()).find(|&i| after[i] != before[i]) {
        panic!(
            "{what}: first difference at index {i}: {:?} after, {:?} before",
            after[i], before[i]
        );
    }
}

async fn put_rules(port: u16, token: &str, team: &str, rules: serde_json::Value) {
    let (status, body) = rest_json(
        port,
        Method::PUT,
        &format!("/api/admin/rules/{team}"),
        Some(token),
        Some(rules),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

async fn login(url: &str, user: &str) -> (Client, String) {
    let mut c = Client::connect(url, Role::Rep, ClientKind::Desktop)
        .await
        .expect("rep connects");
    let reply = c
        .login(user, &format!("{user}-demo"))
        .await
        .expect("logs in");
    let Reply::LoggedIn { token, .. } = reply else {
        unreachable!()
    };
    (c, token)
}

#[actix_web::test]
async fn a_thousand_waiting_and_a_hundred_active_sessions_survive_kill_9() {
    let test_started = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = ServerProcess::start(dir.path(), &ENV);
    let port = server.port;
    let url = server.ws_url();
    let token = rest_login(port, "admin").await;

    // Rules: marks far off for network and billing (pending at the crash),
    // a mark 3 s after entry for escalations; reps may run 60 sessions.
    put_rules(
        port,
        &token,
        "network",
        json!({"overdue": [{"action": "mark", "after_secs": 60}], "max_sessions_per_rep": 60}),
    )
    .await;
    put_rules(
        port,
        &token,
        "billing",
        json!({"overdue": [{"action": "mark", "after_secs": 60}]}),
    )
    .await;
    put_rules(
        port,
        &token,
        "escalations",
        json!({"overdue": [{"action": "mark", "after_secs": 3}]}),
    )
    .await;
    let (status, body) = rest_json(
        port,
        Method::PUT,
        "/api/admin/issue-types/outage",
        Some(&token),
        Some(json!({"id": "outage", "name": "Office is offline", "team": "escalations"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // 100 active sessions: alice takes 50, bob 50.
    let (mut alice, _) = login(&url, "alice").await;
    let (mut bob, bob_token) = login(&url, "bob").await;
    let active = start_many(&url, &["vpn"; ACTIVE]).await;
    let (alices, bobs) = active.split_at(ACTIVE / 2);
    let mut active_wait_start = std::collections::HashMap::new();
    for (rep, ids) in [(&alice, alices), (&bob, bobs)] {
        let accepted = join_all(ids.iter().map(|id| accept(rep, id))).await;
        for (id, r) in ids.iter().zip(accepted) {
            let d = session_of(&r.unwrap_or_else(|e| panic!("accept {id}: {e}"))).clone();
            active_wait_start.insert(id.clone(), d.summary.wait_start);
        }
    }
    let _ = alice.drain();
    let _ = bob.drain();

    // 1,000 waiting sessions, half network, half billing, interleaved.
    let issues: Vec<&str> = (0..WAITING)
        .map(|i| if i % 2 == 0 { "vpn" } else { "invoice" })
        .collect();
    let waiting = start_many(&url, &issues).await;
    assert_eq!(waiting.len(), WAITING);
    let _ = alice.drain();
    let _ = bob.drain();
    let network_before = queue_rest(port, &token, "team:network").await;
    let billing_before = queue_rest(port, &token, "team:billing").await;
    assert_eq!(network_before.items.len(), WAITING / 2);
    assert_eq!(billing_before.items.len(), WAITING / 2);
    let before_ids: BTreeSet<String> = network_before
        .items
        .iter()
        .chain(&billing_before.items)
        .map(|i| i.summary.session.clone())
        .collect();
    assert_eq!(
        before_ids,
        waiting.iter().cloned().collect(),
        "every session waits"
    );
    assert!(
        network_before
            .items
            .iter()
            .chain(&billing_before.items)
            .all(|i| !i.summary.overdue),
        "the 60 s marks are pending"
    );

    // A few sessions whose mark falls due in 3 s, then the crash.
    let soon = start_many(&url, &["outage"; SOON]).await;
    let esc_before = queue_rest(port, &token, "team:escalations").await;
    assert_eq!(esc_before.items.len(), SOON);
    assert!(
        esc_before.items.iter().all(|i| !i.summary.overdue),
        "not due yet"
    );
    let setup = test_started.elapsed();
    server.kill9();
    drop((alice, bob));

    let server = ServerProcess::start(dir.path(), &ENV);
    let up = Instant::now();
    let port = server.port;
    let url = server.ws_url();
    // Bob comes back at once with his token; alice does not.
    let mut bob = Client::connect(&url, Role::Rep, ClientKind::Desktop)
        .await
        .expect("bob reconnects");
    reply_of(
        &bob,
        RequestBody::Login {
            username: None,
            password: None,
            token: Some(bob_token),
            resume: None,
        },
    )
    .await;
    let bob_back = up.elapsed();

    // Every waiting session is back, in order, with its wait start, not
    // overdue; then alice's 50 come back to network, keeping their places:
    // ahead of the 500 who started after them.
    let billing_after = queue_rest(port, &token, "team:billing").await;
    assert_same(
        "billing",
        &contents(&billing_after),
        &contents(&billing_before),
    );
    assert!(billing_after.items.iter().all(|i| !i.summary.overdue));
    let network_after = eventually(
        Duration::from_secs(30),
        "alice's sessions to be requeued",
        || async {
            let v = queue_rest(port, &token, "team:network").await;
            (v.items.len() == WAITING / 2 + ACTIVE / 2).then_some(v)
        },
    )
    .await;
    let requeued_after = up.elapsed();
    let all = contents(&network_after);
    let moved_back = |items: &[(String, u64, usize)], by: usize| -> Vec<(String, u64, usize)> {
        items
            .iter()
            .map(|(s, w, p)| (s.clone(), *w, p + by))
            .collect()
    };
    assert_same(
        "network",
        &all[ACTIVE / 2..],
        &moved_back(&contents(&network_before), ACTIVE / 2),
    );
    // (Started in concurrent batches, so their order among themselves is
    // the server's arrival order, which the test does not know.)
    let head: BTreeSet<String> = all[..ACTIVE / 2]
        .iter()
        .map(|(s, _, _)| s.clone())
        .collect();
    assert_eq!(
        head,
        alices.iter().cloned().collect(),
        "alice's sessions are requeued first, where they started"
    );
    for item in network_after
        .items
        .iter()
        .filter(|i| head.contains(&i.summary.session))
    {
        assert_eq!(item.summary.requeued.as_deref(), Some(WHY));
        assert_eq!(
            item.summary.wait_start, active_wait_start[&item.summary.session],
            "a requeued session keeps its wait start"
        );
    }
    assert!(
        network_after.items.iter().all(|i| !i.summary.overdue),
        "still pending"
    );
    assert!(
        requeued_after >= Duration::from_millis(500),
        "requeued {requeued_after:?} after the restart: before the grace"
    );

    // Bob, back within the grace, still has his 50.
    let mine = match reply_of(&bob, RequestBody::MySessions).await {
        Reply::Sessions { sessions } => sessions,
        other => panic!("expected sessions, got {other:?}"),
    };
    let mine: BTreeSet<String> = mine
        .iter()
        .filter(|d| d.state == SessionState::Active && d.owner.as_deref() == Some("bob"))
        .map(|d| d.summary.session.clone())
        .collect();
    assert_eq!(
        mine,
        bobs.iter().cloned().collect(),
        "bob reconnected {bob_back:?} after the restart and keeps his sessions"
    );
    let sample = rest_details(port, &token, &bobs[0]).await;
    assert!(sample
        .history
        .iter()
        .all(|h| h.event != HistoryEvent::Requeued));

    // The 3 s marks fire once due, measured from when each session entered.
    let esc = eventually(
        Duration::from_secs(15),
        "the escalations marks to fire",
        || async {
            let v = queue_rest(port, &token, "team:escalations").await;
            v.items.iter().all(|i| i.summary.overdue).then_some(v)
        },
    )
    .await;
    assert_eq!(esc.items.len(), SOON);
    for id in &soon {
        let d = rest_details(port, &token, id).await;
        let fired: Vec<_> = d
            .history
            .iter()
            .filter(|h| h.event == HistoryEvent::RuleFired)
            .collect();
        assert_eq!(fired.len(), 1, "{:?}", d.history);
        assert_eq!(fired[0].detail, "overdue step 1: marked overdue");
        assert!(
            fired[0].at >= d.summary.queued_at + 3000,
            "marked {} ms after entering, before it was due",
            fired[0].at - d.summary.queued_at
        );
    }
    let total = test_started.elapsed();
    println!(
        "setup {setup:?}; bob back {bob_back:?}; alice's requeued {requeued_after:?} after restart; total {total:?}"
    );
    let _ = bob.drain();
}

/// Even when the rep grace is shorter than the start-up itself, a rep who
/// never comes back loses their sessions to the fallback order.
#[actix_web::test]
async fn a_rep_grace_shorter_than_the_restart_still_requeues() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = [
        ("SWITCHBOARD_RULE_TICK_MS", "50"),
        ("SWITCHBOARD_REP_GRACE_MS", "1"),
    ];
    let mut server = ServerProcess::start(dir.path(), &env);
    let token = rest_login(server.port, "admin").await;
    let (alice, _) = login(&server.ws_url(), "alice").await;
    let ids = start_many(&server.ws_url(), &["vpn"; 3]).await;
    for id in &ids {
        accept(&alice, id).await.expect("accepted");
    }
    // Sessions to restore, so the start-up takes longer than the grace.
    start_many(&server.ws_url(), &["invoice"; 300]).await;
    server.kill9();
    drop(alice);

    let server = ServerProcess::start(dir.path(), &env);
    for id in &ids {
        let d = eventually(
            Duration::from_secs(10),
            "the lost rep's session to be requeued",
            || async {
                let d = rest_details(server.port, &token, id).await;
                (d.state != SessionState::Active).then_some(d)
            },
        )
        .await;
        assert_eq!(
            d.state,
            SessionState::Waiting {
                queue: "team:network".parse().unwrap()
            }
        );
        assert_eq!(d.summary.requeued.as_deref(), Some(WHY));
    }
}
