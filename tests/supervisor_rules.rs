//! Waiting-session rules over the real protocol: overdue steps (mark, then
//! transfer to an overflow queue), the no-rep-available rule, persistent
//! queues, bounce prevention, rules set through the admin API, and rules
//! that fall due while the server is down (kill -9) firing right after the
//! restart. Timers are shortened by configuration: the supervisor ticks
//! every 50 ms and steps are due after a second or two.

use std::time::{Duration, Instant};

use crate::common::*;
use reqwest::Method;
use serde_json::{json, Value};
use switchboard::client::Client;
use switchboard::config::{SeedTarget, SeedTeam, Settings};
use switchboard::domain::ids::{ClientKind, QueueId};
use switchboard::domain::rules::{NoRepRule, OverdueAction, QueueRules};
use switchboard::domain::session::HistoryEvent;
use switchboard::protocol::{Entry, Event, RequestBody, SessionDetails};

fn mark(after_secs: u64) -> OverdueAction {
    OverdueAction::Mark { after_secs }
}

fn overflow(after_secs: u64, to: &str) -> OverdueAction {
    OverdueAction::Transfer {
        after_secs,
        to: QueueId::team(to),
    }
}

fn steps(overdue: Vec<OverdueAction>) -> QueueRules {
    QueueRules {
        overdue,
        ..QueueRules::default()
    }
}

/// A server whose supervisor ticks every 50 ms, with `rules` per team.
async fn app_with(rules: Vec<(&str, QueueRules)>, more: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    spawn_app_with(dir, move |s| {
        s.supervisor.rule_tick_ms = 50;
        // After a start, reps have the rep grace to come back before the
        // no-rep-available rule may fire: keep it short.
        s.supervisor.rep_grace_ms = 200;
        for (team, r) in rules {
            s.rules.teams.insert(team.to_string(), r);
        }
        more(s);
    })
    .await
}

/// Network's no-rep-available rule: tell the customer `message` (and
/// `redirect_url`), and move the session to billing unless the queue is
/// `persistent`.
fn no_rep_to_billing(message: &str, redirect_url: Option<&str>, persistent: bool) -> QueueRules {
    QueueRules {
        persistent,
        no_rep_available: Some(NoRepRule {
            message: message.into(),
            redirect_url: redirect_url.map(str::to_string),
            to: Some(QueueId::team("billing")),
        }),
        ..QueueRules::default()
    }
}

/// Waits for the customer to be told that no rep is available, with
/// `message` and `redirect_url`.
async fn told_nobody_available(customer: &mut Client, message: &str, redirect_url: Option<&str>) {
    let told = customer
        .wait_event(WAIT, |e| matches!(e, Event::NoRepAvailable { .. }))
        .await
        .expect("the customer is told nobody is available");
    assert_eq!(
        told,
        Event::NoRepAvailable {
            message: message.into(),
            redirect_url: redirect_url.map(str::to_string),
        }
    );
}

/// The details of every `rule_fired` history entry, in order.
fn rule_lines(d: &SessionDetails) -> Vec<String> {
    d.history
        .iter()
        .filter(|h| h.event == HistoryEvent::RuleFired)
        .map(|h| h.detail.clone())
        .collect()
}

/// Waits (up to 10 s) until `rep` sees `n` rule firings in `session`'s
/// history, naming `what` if they do not come: the details then.
async fn after_rules_fired(rep: &Client, session: &str, n: usize, what: &str) -> SessionDetails {
    eventually(Duration::from_secs(10), what, || async {
        let d = details_of(rep, session).await;
        (rule_lines(&d).len() == n).then_some(d)
    })
    .await
}

/// Every team's rules in force, as `GET /api/admin/rules` shows them.
async fn rules_in_force(port: u16, token: &str) -> Value {
    let (status, all) = rest_json(port, Method::GET, "/api/admin/rules", Some(token), None).await;
    assert_eq!(status, 200, "{all}");
    all
}

/// `PUT /api/admin/rules/{team}` with `rules`: the status and the body.
async fn put_rules(port: u16, token: &str, team: &str, rules: Value) -> (u16, Value) {
    rest_json(
        port,
        Method::PUT,
        &format!("/api/admin/rules/{team}"),
        Some(token),
        Some(rules),
    )
    .await
}

/// `DELETE /api/admin/rules/{team}`: back to the configuration's rules.
async fn delete_rules(port: u16, token: &str, team: &str) -> u16 {
    rest_json(
        port,
        Method::DELETE,
        &format!("/api/admin/rules/{team}"),
        Some(token),
        None,
    )
    .await
    .0
}

fn in_queue(v: &switchboard::protocol::QueueView, session: &str) -> bool {
    v.items.iter().any(|i| i.summary.session == session)
}

#[actix_web::test]
async fn overdue_session_is_marked_then_moved_to_the_overflow_queue() {
    let app = app_with(
        vec![("network", steps(vec![mark(1), overflow(2, "escalations")]))],
        |_| {},
    )
    .await;
    let mut alice = app.rep("alice").await; // network and escalations
    let mut bob = app.rep("bob").await; // network only
    let mut admin = app.rep("admin").await; // escalations only
    let mut customer = app.customer(ClientKind::Desktop).await;

    let view = start_issue(&mut customer, "vpn", "Dana").await;
    let started = Instant::now();
    let id = view.session.clone();
    let first = alert_for(&mut bob, &id).await;
    let Event::QueueEntered { session: first, .. } = first else {
        unreachable!()
    };
    assert!(!first.overdue, "not overdue on arrival");
    let wait_start = first.wait_start;

    // Step 1 (after 1 s): marked overdue, and the team is alerted again.
    let again = bob
        .wait_event(WAIT, |e| {
            matches!(e, Event::QueueEntered { session, .. } if session.session == id && session.overdue)
        })
        .await
        .expect("bob is alerted again when the session becomes overdue");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "the mark came after {:?}, before its step was due",
        started.elapsed()
    );
    let Event::QueueEntered { queue, .. } = again else {
        unreachable!()
    };
    assert_eq!(queue, QueueId::team("network"));
    alice
        .wait_event(WAIT, |e| {
            matches!(e, Event::QueueEntered { session, queue, .. }
                if session.session == id && session.overdue && *queue == QueueId::team("network"))
        })
        .await
        .expect("every rep of the team is alerted again");
    let shown = queue_of(&bob, "team:network").await;
    let item = shown
        .items
        .iter()
        .find(|i| i.summary.session == id)
        .expect("still waiting in network");
    assert!(item.summary.overdue, "view_queue shows it overdue");
    assert_eq!(item.summary.wait_start, wait_start);
    let d = details_of(&bob, &id).await;
    assert_eq!(rule_lines(&d), ["overdue step 1: marked overdue"]);
    assert!(
        !in_queue(&queue_of(&admin, "team:escalations").await, &id),
        "not moved before step 2 is due"
    );

    // Step 2 (after 2 s): moved to the overflow queue.
    let moved = admin
        .wait_event(WAIT, |e| {
            matches!(e, Event::QueueEntered { session, queue, .. }
                if session.session == id && *queue == QueueId::team("escalations"))
        })
        .await
        .expect("the overflow team is alerted");
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "moved after {:?}, before step 2 was due",
        started.elapsed()
    );
    let Event::QueueEntered { session: moved, .. } = moved else {
        unreachable!()
    };
    assert_eq!(moved.wait_start, wait_start, "the wait start is kept");
    assert!(!moved.overdue, "a new queue starts its own steps");
    told_transferred(&mut customer, "Escalations")
        .await
        .expect("the customer is told about the move");
    bob.wait_event(WAIT, |e| {
        matches!(e, Event::QueueLeft { session, reason: switchboard::protocol::LeftQueueReason::Moved, .. } if *session == id)
    })
    .await
    .expect("network's reps see it leave");
    alice
        .wait_event(WAIT, |e| {
            matches!(e, Event::QueueEntered { session, queue, .. }
                if session.session == id && *queue == QueueId::team("escalations"))
        })
        .await
        .expect("alice, also in escalations, is alerted there");

    assert!(!in_queue(&queue_of(&bob, "team:network").await, &id));
    let esc = queue_of(&admin, "team:escalations").await;
    let item = esc
        .items
        .iter()
        .find(|i| i.summary.session == id)
        .expect("waits in escalations");
    assert_eq!(item.summary.wait_start, wait_start);
    let d = details_of(&admin, &id).await;
    assert_eq!(waiting_in(&d).as_deref(), Some("team:escalations"));
    assert_eq!(d.summary.wait_start, wait_start);
    assert_eq!(
        rule_lines(&d),
        [
            "overdue step 1: marked overdue",
            "overdue step 2: moved from team:network to team:escalations"
        ]
    );
    let last = d.history.last().expect("history");
    assert_eq!(last.event, HistoryEvent::EnteredQueue);
    assert_eq!(last.detail, "team:escalations");
}

#[actix_web::test]
async fn no_rep_available_tells_the_customer_and_moves_the_session() {
    let rule = no_rep_to_billing(
        "All network reps are away",
        Some("https://example.test/hours"),
        false,
    );
    let app = app_with(vec![("network", rule)], |_| {}).await;
    let mut carol = app.rep("carol").await; // billing; no network rep is logged in
    let mut customer = app.customer(ClientKind::Desktop).await;

    let view = start_issue(&mut customer, "vpn", "Dana").await;
    let id = view.session.clone();
    told_nobody_available(
        &mut customer,
        "All network reps are away",
        Some("https://example.test/hours"),
    )
    .await;
    told_transferred(&mut customer, "Billing")
        .await
        .expect("and about the move");
    alert_for(&mut carol, &id).await;
    assert!(in_queue(&queue_of(&carol, "team:billing").await, &id));
    let d = details_of(&carol, &id).await;
    assert_eq!(waiting_in(&d).as_deref(), Some("team:billing"));
    assert_eq!(d.summary.wait_start, view_wait_start(&d));
    assert_eq!(
        rule_lines(&d),
        [
            "no rep available: customer told",
            "no rep available: moved from team:network to team:billing"
        ]
    );
}

#[actix_web::test]
async fn a_no_rep_rule_without_a_target_tells_the_customer_once_and_keeps_the_session() {
    // Not persistent, but the rule names no queue: the session stays in
    // network, where the rule could fire again on every tick.
    let rule = QueueRules {
        no_rep_available: Some(NoRepRule {
            message: "Nobody is here right now".into(),
            redirect_url: None,
            to: None,
        }),
        ..QueueRules::default()
    };
    let app = app_with(vec![("network", rule)], |s| s.supervisor.rule_tick_ms = 10).await;
    // Alice is logged in but away: she can look, but nobody is available.
    let mut alice = away(&app, "alice").await;
    let mut customer = app.customer(ClientKind::Desktop).await;

    let view = start_issue(&mut customer, "vpn", "Dana").await;
    let id = view.session.clone();
    told_nobody_available(&mut customer, "Nobody is here right now", None).await;
    // QUIET is forty ticks: the rule stays handled in this queue.
    assert!(
        stays_quiet(&mut customer, |e| matches!(
            e,
            Event::Transferred { .. } | Event::NoRepAvailable { .. }
        ))
        .await,
        "the customer is told once, and the session is not moved"
    );
    assert!(in_queue(&queue_of(&alice, "team:network").await, &id));
    let d = details_of(&alice, &id).await;
    assert_eq!(waiting_in(&d).as_deref(), Some("team:network"));
    assert_eq!(rule_lines(&d), ["no rep available: customer told"]);
    let _ = alice.drain();
}

/// `rep` logged in with their status set to away: they see their queues,
/// but no rep is available there.
async fn away(app: &TestApp, rep: &str) -> Client {
    let c = app.rep(rep).await;
    reply_of(
        &c,
        RequestBody::SetStatus {
            status: switchboard::domain::rep_state::RepStatus::Away,
        },
    )
    .await;
    c
}

/// The wait start as the session was created (the `created` history line).
fn view_wait_start(d: &SessionDetails) -> u64 {
    d.history
        .iter()
        .find(|h| h.event == HistoryEvent::Created)
        .expect("created")
        .at
}

#[actix_web::test]
async fn no_rep_available_in_a_persistent_queue_keeps_the_session() {
    let rule = no_rep_to_billing("Nobody is here right now", None, true);
    // The fastest tick: a rule must fire once even when the next pass
    // comes before the first firing is stored.
    let app = app_with(vec![("network", rule)], |s| s.supervisor.rule_tick_ms = 10).await;
    // Alice is logged in but away: she can look, but nobody is available.
    let mut alice = away(&app, "alice").await;
    let carol = app.rep("carol").await;
    let mut customer = app.customer(ClientKind::Desktop).await;

    let view = start_issue(&mut customer, "vpn", "Dana").await;
    let id = view.session.clone();
    told_nobody_available(&mut customer, "Nobody is here right now", None).await;
    assert!(
        stays_quiet(&mut customer, |e| matches!(
            e,
            Event::Transferred { .. } | Event::NoRepAvailable { .. }
        ))
        .await,
        "a persistent queue keeps the session, and the customer is told once"
    );
    assert!(in_queue(&queue_of(&alice, "team:network").await, &id));
    assert!(!in_queue(&queue_of(&carol, "team:billing").await, &id));
    let d = details_of(&alice, &id).await;
    assert_eq!(rule_lines(&d), ["no rep available: customer told"]);
    let _ = alice.drain();
}

#[actix_web::test]
async fn a_persistent_queue_is_not_left_by_a_transfer_step() {
    let rule = QueueRules {
        persistent: true,
        overdue: vec![mark(1), overflow(2, "escalations")],
        ..QueueRules::default()
    };
    let app = app_with(vec![("network", rule)], |_| {}).await;
    let bob = app.rep("bob").await;
    let admin = app.rep("admin").await;
    let mut customer = app.customer(ClientKind::Desktop).await;
    let view = start_issue(&mut customer, "vpn", "Dana").await;
    let id = view.session.clone();

    let d = after_rules_fired(&bob, &id, 2, "the transfer step to be skipped").await;
    assert_eq!(
        rule_lines(&d),
        [
            "overdue step 1: marked overdue",
            "overdue step 2: stays (persistent queue)"
        ]
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let d = details_of(&bob, &id).await;
    assert_eq!(waiting_in(&d).as_deref(), Some("team:network"));
    assert_eq!(rule_lines(&d).len(), 2, "nothing more fires");
    let net = queue_of(&bob, "team:network").await;
    let item = net
        .items
        .iter()
        .find(|i| i.summary.session == id)
        .expect("still in network");
    assert!(
        item.summary.overdue,
        "marking still happens in a persistent queue"
    );
    assert!(!in_queue(&queue_of(&admin, "team:escalations").await, &id));
    assert!(stays_quiet(&mut customer, |e| matches!(e, Event::Transferred { .. })).await);
}

#[actix_web::test]
async fn queues_overflowing_into_each_other_do_not_bounce_a_session() {
    let app = app_with(
        vec![
            ("network", steps(vec![overflow(1, "billing")])),
            (
                "billing",
                steps(vec![overflow(1, "network"), overflow(2, "network")]),
            ),
        ],
        |_| {},
    )
    .await;
    let mut bob = app.rep("bob").await;
    let mut carol = app.rep("carol").await;
    let mut customer = app.customer(ClientKind::Desktop).await;
    let view = start_issue(&mut customer, "vpn", "Dana").await;
    let id = view.session.clone();
    alert_for(&mut bob, &id).await;
    alert_for(&mut carol, &id).await;

    let d = after_rules_fired(&carol, &id, 3, "both billing steps to be skipped").await;
    assert_eq!(
        rule_lines(&d),
        [
            "overdue step 1: moved from team:network to team:billing",
            "overdue step 1: stays (would bounce back)",
            "overdue step 2: stays (would bounce back)"
        ]
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let d = details_of(&carol, &id).await;
    assert_eq!(waiting_in(&d).as_deref(), Some("team:billing"));
    assert_eq!(rule_lines(&d).len(), 3);
    let moves = d
        .history
        .iter()
        .filter(|h| h.event == HistoryEvent::EnteredQueue)
        .count();
    assert_eq!(moves, 2, "entered network, then billing once");
    assert!(in_queue(&queue_of(&carol, "team:billing").await, &id));
    assert!(!in_queue(&queue_of(&bob, "team:network").await, &id));
    assert!(
        stays_quiet(
            &mut bob,
            |e| matches!(e, Event::QueueEntered { session, .. } if session.session == id)
        )
        .await,
        "network never sees it again"
    );
}

#[actix_web::test]
async fn rules_move_a_session_at_most_three_times() {
    let chain = ["t1", "t2", "t3", "t4", "t5"];
    let rules: Vec<(&str, QueueRules)> = chain
        .windows(2)
        .map(|w| (w[0], steps(vec![overflow(1, w[1])])))
        .collect();
    let app = app_with(rules, |s| {
        for t in chain {
            s.seed.teams.push(SeedTeam {
                id: t.into(),
                name: format!("Team {t}"),
            });
        }
        s.seed.support_buttons.push(SeedTarget {
            id: "first".into(),
            name: "First in the chain".into(),
            queue: QueueId::team("t1"),
        });
    })
    .await;
    let token = rest_login(app.port, "admin").await;
    let mut customer = app.customer(ClientKind::Desktop).await;
    let view = customer
        .start_session(
            Entry::SupportButton {
                button: "first".into(),
            },
            "Dana",
            "Acme",
            "",
        )
        .await
        .expect("session starts");
    let id = view.session.clone();
    let d = eventually(
        Duration::from_secs(15),
        "the move limit to stop the chain",
        || async {
            let d = rest_details(app.port, &token, &id).await;
            (rule_lines(&d).len() == 4).then_some(d)
        },
    )
    .await;
    assert_eq!(
        rule_lines(&d),
        [
            "overdue step 1: moved from team:t1 to team:t2",
            "overdue step 1: moved from team:t2 to team:t3",
            "overdue step 1: moved from team:t3 to team:t4",
            "overdue step 1: stays (moved by rules too often)"
        ]
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let d = rest_details(app.port, &token, &id).await;
    assert_eq!(waiting_in(&d).as_deref(), Some("team:t4"));
    assert_eq!(rule_lines(&d).len(), 4);
}

#[actix_web::test]
async fn rules_set_through_the_admin_api_take_effect_and_revert() {
    // The configuration gives network a slow mark; the API overrides it.
    let app = app_with(vec![("network", steps(vec![mark(600)]))], |_| {}).await;
    let port = app.port;
    let token = rest_login(port, "admin").await;
    let all = rules_in_force(port, &token).await;
    assert_eq!(
        all["teams"]["network"]["overdue"],
        json!([{"action": "mark", "after_secs": 600}])
    );

    let fast = json!({
        "overdue": [
            {"action": "mark", "after_secs": 1},
            {"action": "transfer", "after_secs": 30, "to": "team:escalations"}
        ],
        "routing": "none"
    });
    let (status, echoed) = put_rules(port, &token, "network", fast.clone()).await;
    assert_eq!(status, 200, "{echoed}");
    assert_eq!(echoed["overdue"], fast["overdue"]);
    let all = rules_in_force(port, &token).await;
    assert_eq!(all["teams"]["network"]["overdue"], fast["overdue"]);

    // In force: a new session is marked after one second.
    let mut bob = app.rep("bob").await;
    let mut customer = app.customer(ClientKind::Desktop).await;
    let first = start_issue(&mut customer, "vpn", "Dana").await;
    bob.wait_event(WAIT, |e| {
        matches!(e, Event::QueueEntered { session, .. } if session.session == first.session && session.overdue)
    })
    .await
    .expect("the API's rule marks the session");

    // Refused: steps out of order, an unknown overflow queue, an unknown
    // team, an unknown field, and a rep without the admin permission.
    let bad_order = json!({"overdue": [
        {"action": "mark", "after_secs": 5},
        {"action": "mark", "after_secs": 2}
    ]});
    let answer = put_rules(port, &token, "network", bad_order).await;
    assert_eq!(answer.0, 400, "{}", answer.1);
    assert_eq!(answer.1["code"], "invalid_request", "{}", answer.1);
    let unknown_queue =
        json!({"overdue": [{"action": "transfer", "after_secs": 5, "to": "team:nowhere"}]});
    let answer = put_rules(port, &token, "network", unknown_queue).await;
    assert_eq!(answer.0, 404, "{}", answer.1);
    assert_eq!(answer.1["code"], "not_found", "{}", answer.1);
    let unknown_no_rep = json!({"no_rep_available": {"message": "x", "to": "team:nowhere"}});
    let answer = put_rules(port, &token, "network", unknown_no_rep).await;
    assert_eq!(answer.0, 404, "{}", answer.1);
    let answer = put_rules(port, &token, "nowhere", json!({})).await;
    assert_eq!(answer.0, 404, "{}", answer.1);
    let answer = put_rules(
        port,
        &token,
        "network",
        json!({"overdue": [], "colour": "red"}),
    )
    .await;
    assert_eq!(answer.0, 400, "{}", answer.1);
    let bob_token = rest_login(port, "bob").await;
    let answer = put_rules(port, &bob_token, "network", json!({})).await;
    assert_eq!(answer.0, 403, "{}", answer.1);
    let all = rules_in_force(port, &token).await;
    assert_eq!(
        all["teams"]["network"]["overdue"], fast["overdue"],
        "refused changes change nothing"
    );

    // DELETE goes back to the configuration's rules.
    assert_eq!(delete_rules(port, &token, "network").await, 204);
    let all = rules_in_force(port, &token).await;
    assert_eq!(
        all["teams"]["network"]["overdue"],
        json!([{"action": "mark", "after_secs": 600}])
    );
    let mut customer2 = app.customer(ClientKind::Desktop).await;
    let second = start_issue(&mut customer2, "wifi", "Eve").await;
    alert_for(&mut bob, &second.session).await;
    assert!(
        bob.wait_event(Duration::from_millis(1800), |e| {
            matches!(e, Event::QueueEntered { session, .. } if session.session == second.session && session.overdue)
        })
        .await
        .is_none(),
        "after DELETE the one-second mark no longer applies"
    );

    // Rules of a team without configured ones: set, then DELETE removes them.
    let (status, _) = put_rules(port, &token, "billing", json!({"persistent": true})).await;
    assert_eq!(status, 200);
    let all = rules_in_force(port, &token).await;
    assert_eq!(all["teams"]["billing"]["persistent"], true);
    assert_eq!(delete_rules(port, &token, "billing").await, 204);
    let all = rules_in_force(port, &token).await;
    assert_eq!(all["teams"].get("billing"), None::<&Value>, "{all}");
}

#[actix_web::test]
async fn a_step_due_while_the_server_was_down_fires_right_after_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = [("SWITCHBOARD_RULE_TICK_MS", "50")];
    let mut server = ServerProcess::start(dir.path(), &env);
    let token = rest_login(server.port, "admin").await;
    let rule = json!({"overdue": [{"action": "transfer", "after_secs": 3, "to": "team:billing"}]});
    let (status, body) = put_rules(server.port, &token, "network", rule).await;
    assert_eq!(status, 200, "{body}");

    let mut customer = server.customer(ClientKind::Desktop).await;
    let view = start_issue(&mut customer, "vpn", "Dana").await;
    let created = Instant::now();
    let before = rest_details(server.port, &token, &view.session).await;
    assert_eq!(waiting_in(&before).as_deref(), Some("team:network"));
    server.kill9();
    drop(customer);

    // The step falls due while the server is down.
    tokio::time::sleep(Duration::from_millis(3500).saturating_sub(created.elapsed())).await;
    let server = ServerProcess::start(dir.path(), &env);
    let up = Instant::now();
    let after = eventually(
        Duration::from_secs(10),
        "the overdue transfer after restart",
        || async {
            let d = rest_details(server.port, &token, &view.session).await;
            (waiting_in(&d).as_deref() == Some("team:billing")).then_some(d)
        },
    )
    .await;
    let took = up.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "the step fired {took:?} after the restart; expected within a couple of ticks"
    );
    assert_eq!(
        rule_lines(&after),
        ["overdue step 1: moved from team:network to team:billing"]
    );
    assert_eq!(
        after.summary.wait_start, before.summary.wait_start,
        "the wait start survives"
    );
    let rules = rules_in_force(server.port, &token).await;
    assert_eq!(
        rules["teams"]["network"]["overdue"][0]["to"], "team:billing",
        "API rules survive a restart"
    );
}

#[actix_web::test]
async fn deleting_a_team_is_refused_while_rules_or_sessions_need_it_and_keeps_its_rules() {
    let app = app_with(vec![], |_| {}).await;
    let port = app.port;
    let token = rest_login(port, "admin").await;
    let admin = |method: Method, path: &str, body: Option<Value>| {
        let token = token.clone();
        let path = path.to_string();
        async move { rest_json(port, method, &path, Some(&token), body).await }
    };
    let (status, body) = admin(
        Method::PUT,
        "/api/admin/teams/spare",
        Some(json!({"id": "spare", "name": "Spare"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = admin(
        Method::PUT,
        "/api/admin/issue-types/spare-part",
        Some(json!({"id": "spare-part", "name": "Spare part", "team": "spare"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = put_rules(port, &token, "spare", json!({"persistent": true})).await;
    assert_eq!(status, 200, "{body}");
    let mut customer = app.customer(ClientKind::Desktop).await;
    start_issue(&mut customer, "spare-part", "Gus").await;
    let (status, _) = admin(Method::DELETE, "/api/admin/issue-types/spare-part", None).await;
    assert_eq!(status, 204);

    // Another team's rules move sessions into spare: refused.
    let (status, body) = put_rules(
        port,
        &token,
        "billing",
        json!({"overdue": [{"action": "transfer", "after_secs": 600, "to": "team:spare"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = admin(Method::DELETE, "/api/admin/teams/spare", None).await;
    assert_conflict(status, &body, "rules");
    assert_eq!(delete_rules(port, &token, "billing").await, 204);

    // A customer still waits in spare: refused, and spare's own rules stay.
    let (status, body) = admin(Method::DELETE, "/api/admin/teams/spare", None).await;
    assert_conflict(status, &body, "still wait");
    let all = rules_in_force(port, &token).await;
    assert_eq!(
        all["teams"]["spare"]["persistent"], true,
        "a refused delete keeps the team's rules: {all}"
    );

    // Once the customer has gone, the team and its rules go together.
    customer
        .request(RequestBody::EndSession { session: None })
        .await
        .expect("the customer ends their session");
    let (status, body) = admin(Method::DELETE, "/api/admin/teams/spare", None).await;
    assert_eq!(status, 204, "{body}");
    let all = rules_in_force(port, &token).await;
    assert_eq!(all["teams"].get("spare"), None::<&Value>, "{all}");
}

#[actix_web::test]
async fn a_rep_cannot_be_deleted_while_rules_move_sessions_to_them() {
    let app = app_with(vec![], |_| {}).await;
    let port = app.port;
    let token = rest_login(port, "admin").await;
    let erin = json!({"username": "erin", "display_name": "Erin", "password": "erin-demo"});
    let (status, body) = rest_json(
        port,
        Method::PUT,
        "/api/admin/reps/erin",
        Some(&token),
        Some(erin),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let to_erin = json!({"no_rep_available": {"message": "Erin will call you", "to": "rep:erin"}});
    let (status, body) = put_rules(port, &token, "billing", to_erin).await;
    assert_eq!(status, 200, "{body}");

    let delete_erin = || {
        rest_json(
            port,
            Method::DELETE,
            "/api/admin/reps/erin",
            Some(&token),
            None,
        )
    };
    let (status, body) = delete_erin().await;
    // The refusal names the rules.
    assert_conflict(status, &body, "teams.billing");
    assert_eq!(delete_rules(port, &token, "billing").await, 204);
    let (status, body) = delete_erin().await;
    assert_eq!(status, 204, "{body}");
}

#[actix_web::test]
async fn rules_of_a_team_that_does_not_exist_hold_nothing_back() {
    // The configuration still has rules for a team that is gone (deleted
    // through the admin API, say), into a queue that does not exist yet:
    // the server starts, and they do not stop that queue's team from being
    // deleted once it does exist.
    let app = app_with(vec![("gone", steps(vec![overflow(60, "spare")]))], |_| {}).await;
    let port = app.port;
    let token = rest_login(port, "admin").await;
    let spare = json!({"id": "spare", "name": "Spare"});
    let (status, body) = rest_json(
        port,
        Method::PUT,
        "/api/admin/teams/spare",
        Some(&token),
        Some(spare),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = rest_json(
        port,
        Method::DELETE,
        "/api/admin/teams/spare",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
}

/// After a start, reps have the rep grace period to reconnect before the
/// no-rep-available rule may tell anyone that nobody is there.
#[actix_web::test]
async fn the_no_rep_rule_waits_out_the_rep_grace_after_a_start() {
    let rule = no_rep_to_billing("Nobody is here right now", None, true);
    let app = app_with(vec![("network", rule)], |s| {
        s.supervisor.rule_tick_ms = 10;
        s.supervisor.rep_grace_ms = 3000;
    })
    .await;
    // The grace began as the supervisor started, a moment before the
    // server was up.
    let up = Instant::now();
    // Nobody is logged in at all.
    let mut customer = app.customer(ClientKind::Desktop).await;
    start_issue(&mut customer, "vpn", "Dana").await;
    assert!(
        stays_quiet(&mut customer, |e| matches!(e, Event::NoRepAvailable { .. })).await,
        "told within the reps' grace after the start"
    );
    assert!(
        up.elapsed() < Duration::from_millis(2500),
        "the quiet check ran too late to say anything"
    );
    told_nobody_available(&mut customer, "Nobody is here right now", None).await;
    assert!(up.elapsed() >= Duration::from_millis(2500));
}
