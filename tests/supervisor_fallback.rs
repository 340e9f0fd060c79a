//! What happens when a connection is lost, over the real protocol: a rep's
//! sessions fall back after the grace period in the documented order
//! (others in the session carry on; else the last queue it waited in; else
//! the queue it entered through; else the site's fallback queue; else it
//! ends), a rep coming back within the grace keeps everything, a customer
//! coming back within theirs gets what they missed and one who does not
//! abandons the session, also across a kill -9. And mobile customers'
//! sessions stay view-only through transfers, requeues, sharing and
//! restarts. Grace periods are shortened by configuration.

use std::time::{Duration, Instant};

use crate::common::*;
use reqwest::Method;
use serde_json::json;
use switchboard::client::Client;
use switchboard::config::Settings;
use switchboard::domain::ids::{ClientKind, QueueId, Role};
use switchboard::domain::session::{EndReason, HistoryEvent, SessionState};
use switchboard::error::ErrorCode;
use switchboard::protocol::{CustomerView, Entry, Event, Reply, RequestBody, SessionDetails};

const WHY: &str = "requeued: representative connection lost";

/// A server with a 300 ms rep grace (customers get a minute), ticking every
/// 50 ms.
async fn app_with(more: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    spawn_app_with(dir, move |s| {
        s.supervisor.rule_tick_ms = 50;
        s.supervisor.rep_grace_ms = 300;
        s.supervisor.customer_grace_ms = 60_000;
        more(s);
    })
    .await
}

fn events(d: &SessionDetails, kind: HistoryEvent) -> Vec<String> {
    d.history
        .iter()
        .filter(|h| h.event == kind)
        .map(|h| h.detail.clone())
        .collect()
}

/// A session started by `customer` and accepted by `rep`.
async fn active_session(rep: &Client, customer: &mut Client, issue: &str) -> CustomerView {
    let view = start_issue(customer, issue, "Dana").await;
    accept(rep, &view.session).await.expect("accepted");
    customer
        .wait_event(WAIT, |e| matches!(e, Event::RepJoined { .. }))
        .await
        .expect("customer sees the rep join");
    view
}

/// Alice serving a `kind` customer's vpn session while bob (also in
/// network) has had the session's first alert and nothing since: any
/// alert bob gets from now on is a requeue.
struct ServedByAlice {
    alice: Client,
    bob: Client,
    customer: Client,
    view: CustomerView,
}

async fn served_by_alice_watched_by_bob(app: &TestApp, kind: ClientKind) -> ServedByAlice {
    let alice = app.rep("alice").await;
    let mut bob = app.rep("bob").await;
    let mut customer = app.customer(kind).await;
    let view = active_session(&alice, &mut customer, "vpn").await;
    alert_for(&mut bob, &view.session).await;
    let _ = bob.drain();
    ServedByAlice {
        alice,
        bob,
        customer,
        view,
    }
}

/// `from` transfers `session` to the queue `to`, where `taker` gets the
/// alert and accepts it: the session's details as accepted.
async fn transferred_and_accepted(
    from: &Client,
    session: &str,
    to: &str,
    taker: &mut Client,
) -> SessionDetails {
    reply_of(from, transfer(session, to)).await;
    alert_for(taker, session).await;
    session_of(
        &accept(taker, session)
            .await
            .expect("the transfer is accepted"),
    )
    .clone()
}

/// Asserts, as `rep` sees `session`'s details, that the loss of `lost`
/// (`rep:dave`) requeued it to `queue` (`team:network`): it waits there
/// and its history has that one `requeued` line.
async fn assert_requeued_to(rep: &Client, session: &str, queue: &str, lost: &str) {
    let d = details_of(rep, session).await;
    assert_eq!(waiting_in(&d).as_deref(), Some(queue));
    assert_eq!(
        events(&d, HistoryEvent::Requeued),
        [format!("{WHY} ({lost}): to {queue}")]
    );
}

/// Polls the REST API (as the holder of `token`) until `session` is stored
/// as ended, naming `what` if it is not within [`WAIT`]: its details then.
async fn stored_as_ended(port: u16, token: &str, session: &str, what: &str) -> SessionDetails {
    eventually(WAIT, what, || async {
        let d = rest_details(port, token, session).await;
        matches!(d.state, SessionState::Ended { .. }).then_some(d)
    })
    .await
}

/// Asserts the session of `d` ended, for `why`.
fn assert_ended(d: &SessionDetails, why: EndReason) {
    assert!(
        matches!(&d.state, SessionState::Ended { reason, .. } if *reason == why),
        "expected ended ({why:?}), got {:?}",
        d.state
    );
}

/// Creates (or replaces) rep `id` through the admin API; password `<id>-demo`.
async fn put_rep(port: u16, token: &str, id: &str, teams: &[&str], public: bool) {
    let (status, body) = rest_json(
        port,
        Method::PUT,
        &format!("/api/admin/reps/{id}"),
        Some(token),
        Some(json!({
            "username": id,
            "display_name": format!("Temp {id}"),
            "password": format!("{id}-demo"),
            "teams": teams,
            "permissions": {"transfer": true, "share": true},
            "public": public
        })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

async fn delete_rep(port: u16, token: &str, id: &str) {
    let (status, body) = rest_json(
        port,
        Method::DELETE,
        &format!("/api/admin/reps/{id}"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
}

/// A customer's new connection `c` resumes the session of `token` from
/// the start: the reply.
async fn resumed(c: &Client, token: &str) -> Reply {
    reply_of(c, resume_session(token)).await
}

fn control(session: &str) -> RequestBody {
    RequestBody::Control {
        session: session.into(),
        input: "click 10 20".into(),
    }
}

// --- a rep's connection -----------------------------------------------------------

#[actix_web::test]
async fn a_lost_reps_session_goes_back_to_its_last_queue_after_the_grace() {
    let app = app_with(|_| {}).await;
    let ServedByAlice {
        alice,
        mut bob,
        mut customer,
        view,
    } = served_by_alice_watched_by_bob(&app, ClientKind::Desktop).await;
    let id = view.session.clone();
    let wait_start = details_of(&alice, &id).await.summary.wait_start;

    alice.close().await;
    let dropped = Instant::now();
    // The team is alerted when the session comes back.
    let (queue, session) = alert_queue(&mut bob, &id).await;
    assert!(
        dropped.elapsed() >= Duration::from_millis(250),
        "requeued after {:?}, before the 300 ms grace",
        dropped.elapsed()
    );
    assert_eq!(queue, "team:network");
    assert_eq!(session.requeued.as_deref(), Some(WHY));
    assert_eq!(
        session.wait_start, wait_start,
        "the original wait start is kept"
    );
    customer
        .wait_event(
            WAIT,
            |e| matches!(e, Event::RepLeft { name } if name == "Alice Network"),
        )
        .await
        .expect("the customer is told the rep left");
    told_transferred(&mut customer, "Network Support")
        .await
        .expect("and where the session waits now");

    let shown = queue_of(&bob, "team:network").await;
    let item = shown
        .items
        .iter()
        .find(|i| i.summary.session == id)
        .expect("waits in network again");
    assert_eq!(
        item.summary.requeued.as_deref(),
        Some(WHY),
        "the details say why"
    );
    assert_requeued_to(&bob, &id, "team:network", "rep:alice").await;
    let d = details_of(&bob, &id).await;
    assert_eq!(d.owner, None);
    assert!(d.participants.is_empty());
    // And it can be taken again.
    accept(&bob, &id)
        .await
        .expect("bob takes the requeued session");
}

#[actix_web::test]
async fn a_rep_back_within_the_grace_keeps_the_session() {
    let app = app_with(|_| {}).await;
    let ServedByAlice {
        mut alice,
        mut bob,
        mut customer,
        view,
    } = served_by_alice_watched_by_bob(&app, ClientKind::Desktop).await;
    let id = view.session.clone();

    // A reconnect (drop the socket, log in with the token, resume).
    let again = alice.reconnect().await.expect("reconnects");
    assert!(matches!(again, Reply::LoggedIn { .. }), "{again:?}");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let d = details_of(&alice, &id).await;
    assert_eq!(d.state, SessionState::Active);
    assert_eq!(d.owner.as_deref(), Some("alice"));
    assert!(events(&d, HistoryEvent::Requeued).is_empty());

    // Gone for a third of the grace, then a new connection logs in with a
    // token (obtained beforehand: a password check can be slow).
    let token = rest_login(app.port, "alice").await;
    alice.close().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let alice = Client::connect(&app.ws_url(), Role::Rep, ClientKind::Desktop)
        .await
        .expect("connects");
    reply_of(
        &alice,
        RequestBody::Login {
            username: None,
            password: None,
            token: Some(token),
            resume: None,
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let d = details_of(&alice, &id).await;
    assert_eq!(d.state, SessionState::Active, "{:?}", d.history);
    assert_eq!(d.owner.as_deref(), Some("alice"));
    assert!(events(&d, HistoryEvent::Requeued).is_empty());
    assert!(
        stays_quiet(
            &mut bob,
            |e| matches!(e, Event::QueueEntered { session, .. } if session.session == id)
        )
        .await,
        "the session never went back to the queue"
    );
    assert!(
        stays_quiet(&mut customer, |e| matches!(
            e,
            Event::RepLeft { .. } | Event::Transferred { .. }
        ))
        .await
    );
    chat(&alice, Some(&id), "still here").await;
    hears(&mut customer, "still here")
        .await
        .expect("the session works as before");
}

#[actix_web::test]
async fn losing_one_of_two_consoles_keeps_everything() {
    let app = app_with(|_| {}).await;
    let desk = app.rep("alice").await;
    let mut phone = app.rep("alice").await;
    let mut customer = app.customer(ClientKind::Desktop).await;
    let view = active_session(&desk, &mut customer, "vpn").await;
    let id = view.session.clone();
    desk.close().await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let d = details_of(&phone, &id).await;
    assert_eq!(d.state, SessionState::Active);
    assert_eq!(d.owner.as_deref(), Some("alice"));
    assert!(events(&d, HistoryEvent::Requeued).is_empty());
    chat(&customer, None, "hello?").await;
    hears(&mut phone, "hello?")
        .await
        .expect("the remaining console gets the session's events");
    assert!(stays_quiet(&mut customer, |e| matches!(e, Event::RepLeft { .. })).await);
}

#[actix_web::test]
async fn a_lost_owner_of_a_shared_session_hands_it_to_the_longest_present_rep() {
    let app = app_with(|_| {}).await;
    let alice = app.rep("alice").await;
    let mut bob = app.rep("bob").await;
    let mut carol = app.rep("carol").await;
    let mut customer = app.customer(ClientKind::Desktop).await;
    let view = active_session(&alice, &mut customer, "vpn").await;
    let id = view.session.clone();
    for to in ["rep:carol", "rep:bob"] {
        reply_of(&alice, invite(&id, to)).await;
    }
    // Carol joins first, so she has been in the session longest after alice.
    reply_of(&carol, join(&id)).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    reply_of(&bob, join(&id)).await;
    let _ = bob.drain();
    let _ = carol.drain();

    alice.close().await;
    let updated = carol
        .wait_event(WAIT, |e| {
            matches!(e, Event::SessionUpdated { session } if session.summary.session == id && session.owner.as_deref() == Some("carol"))
        })
        .await
        .expect("carol becomes the owner");
    let Event::SessionUpdated { session: d } = updated else {
        unreachable!()
    };
    assert_eq!(d.state, SessionState::Active, "the session stays active");
    let reps: Vec<&str> = d.participants.iter().map(|p| p.rep.as_str()).collect();
    assert_eq!(reps, ["carol", "bob"]);
    bob.wait_event(WAIT, |e| {
        matches!(e, Event::SessionUpdated { session } if session.owner.as_deref() == Some("carol"))
    })
    .await
    .expect("bob sees the new owner");
    customer
        .wait_event(
            WAIT,
            |e| matches!(e, Event::RepLeft { name } if name == "Alice Network"),
        )
        .await
        .expect("the customer sees alice leave");
    let d = details_of(&carol, &id).await;
    assert_eq!(
        events(&d, HistoryEvent::Left),
        ["rep:alice: connection lost"]
    );
    assert_eq!(events(&d, HistoryEvent::OwnerChanged), ["rep:carol"]);
    assert!(events(&d, HistoryEvent::Requeued).is_empty());
    // The new owner can do what owners do.
    reply_of(&carol, end_session(&id)).await;
}

#[actix_web::test]
async fn a_session_whose_last_queue_is_gone_falls_back_to_its_entry_queue() {
    let app = app_with(|_| {}).await;
    let token = rest_login(app.port, "admin").await;
    // A temporary team "temp" with one member, dave.
    let (status, body) = rest_json(
        app.port,
        Method::PUT,
        "/api/admin/teams/temp",
        Some(&token),
        Some(json!({"id": "temp", "name": "Temporary desk"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    put_rep(app.port, &token, "dave", &["temp"], false).await;
    let alice = app.rep("alice").await;
    let mut bob = app.rep("bob").await;
    let mut dave = app.rep("dave").await;
    let mut customer = app.customer(ClientKind::Desktop).await;
    let view = active_session(&alice, &mut customer, "vpn").await;
    let id = view.session.clone();
    let d = transferred_and_accepted(&alice, &id, "team:temp", &mut dave).await;
    assert_eq!(d.last_queue, QueueId::team("temp"));
    assert_eq!(d.entered_through, QueueId::team("network"));

    // The team is dissolved while dave works on the session, then his
    // connection drops: the last queue no longer exists.
    put_rep(app.port, &token, "dave", &[], false).await;
    let (status, body) = rest_json(
        app.port,
        Method::DELETE,
        "/api/admin/teams/temp",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    // The alert of the session's arrival in network, before the requeue's.
    alert_for(&mut bob, &id).await;
    let _ = bob.drain();
    dave.close().await;
    // The entry queue gets the session.
    let (queue, session) = alert_queue(&mut bob, &id).await;
    assert_eq!(queue, "team:network");
    assert_eq!(session.requeued.as_deref(), Some(WHY));
    assert_requeued_to(&bob, &id, "team:network", "rep:dave").await;
}

#[actix_web::test]
async fn a_lost_reps_own_personal_queue_is_skipped() {
    let app = app_with(|_| {}).await;
    let alice = app.rep("alice").await;
    let mut bob = app.rep("bob").await;
    let mut customer = app.customer(ClientKind::Desktop).await;
    let view = active_session(&alice, &mut customer, "vpn").await;
    let id = view.session.clone();
    transferred_and_accepted(&alice, &id, "rep:bob", &mut bob).await;
    let mut alice = alice;
    // The alert of the session's arrival in network, before the requeue's.
    alert_for(&mut alice, &id).await;
    let _ = alice.drain();
    // Bob's personal queue was the last one, but only bob sees it.
    bob.close().await;
    // The entry queue gets the session.
    let (queue, _) = alert_queue(&mut alice, &id).await;
    assert_eq!(queue, "team:network");
    let d = details_of(&alice, &id).await;
    assert_eq!(d.last_queue, QueueId::team("network"));
    assert_eq!(
        events(&d, HistoryEvent::Requeued),
        [format!("{WHY} (rep:bob): to team:network")]
    );
}

/// A customer of rep `dave`'s personal queue (entered through it), dave
/// deleted and disconnected: neither the last nor the entry queue exists.
async fn orphan_of_a_deleted_rep(app: &TestApp, token: &str) -> (Client, String) {
    put_rep(app.port, token, "dave", &["network"], true).await;
    let mut dave = app.rep("dave").await;
    let mut customer = app.customer(ClientKind::Desktop).await;
    let view = customer
        .start_session(Entry::Rep { rep: "dave".into() }, "Dana", "Acme", "")
        .await
        .expect("session with dave starts");
    alert_for(&mut dave, &view.session).await;
    let d = session_of(&accept(&dave, &view.session).await.expect("dave accepts")).clone();
    assert_eq!(d.entered_through, QueueId::rep("dave"));
    assert_eq!(d.last_queue, QueueId::rep("dave"));
    delete_rep(app.port, token, "dave").await;
    dave.close().await;
    (customer, view.session)
}

#[actix_web::test]
async fn with_neither_queue_left_the_site_fallback_queue_takes_the_session() {
    let app = app_with(|s| s.supervisor.fallback_queue = Some(QueueId::team("escalations"))).await;
    let token = rest_login(app.port, "admin").await;
    let mut admin = app.rep("admin").await;
    let (mut customer, id) = orphan_of_a_deleted_rep(&app, &token).await;
    // The fallback queue's team is alerted.
    let (queue, session) = alert_queue(&mut admin, &id).await;
    assert_eq!(queue, "team:escalations");
    assert_eq!(session.requeued.as_deref(), Some(WHY));
    told_transferred(&mut customer, "Escalations")
        .await
        .expect("the customer is told");
    assert_requeued_to(&admin, &id, "team:escalations", "rep:dave").await;
}

#[actix_web::test]
async fn with_no_queue_at_all_the_session_ends() {
    // The demo configuration names a fallback queue: this site has none.
    let app = app_with(|s| s.supervisor.fallback_queue = None).await;
    let token = rest_login(app.port, "admin").await;
    let (mut customer, id) = orphan_of_a_deleted_rep(&app, &token).await;
    customer
        .wait_event(
            WAIT,
            |e| matches!(e, Event::SessionEnded { session, .. } if *session == id),
        )
        .await
        .expect("the customer is told the session ended");
    let d = stored_as_ended(app.port, &token, &id, "the session to be stored as ended").await;
    assert_ended(&d, EndReason::NoFallback);
    let last = d.history.last().expect("history");
    assert_eq!(last.event, HistoryEvent::Ended);
    assert_eq!(last.detail, "no_fallback");
    assert_eq!(
        events(&d, HistoryEvent::Requeued),
        [format!("{WHY}: no queue can take it")]
    );
}

// --- a customer's connection --------------------------------------------------------

async fn customer_app() -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    spawn_app_with(dir, |s| {
        s.supervisor.rule_tick_ms = 50;
        s.supervisor.rep_grace_ms = 60_000;
        s.supervisor.customer_grace_ms = 300;
    })
    .await
}

#[actix_web::test]
async fn a_customer_back_within_the_grace_gets_what_was_missed() {
    let app = customer_app().await;
    let mut alice = app.rep("alice").await;
    let mut customer = app.customer(ClientKind::Desktop).await;
    let view = active_session(&alice, &mut customer, "vpn").await;
    let id = view.session.clone();
    let position = customer.position();
    customer.close().await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    chat(&alice, Some(&id), "are you still there?").await;

    let mut back = app.customer(ClientKind::Desktop).await;
    let reply = reply_of(
        &back,
        RequestBody::ResumeSession {
            token: view.token.clone(),
            resume: position,
        },
    )
    .await;
    let Reply::SessionStarted(again) = reply else {
        panic!("expected the session view, got {reply:?}")
    };
    assert_eq!(again.session, id);
    assert_eq!(again.state, "active");
    hears(&mut back, "are you still there?")
        .await
        .expect("the missed chat line is replayed");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        stays_quiet(&mut alice, |e| matches!(e, Event::SessionEnded { .. })).await,
        "not abandoned"
    );
    let d = details_of(&alice, &id).await;
    assert_eq!(d.state, SessionState::Active);
    chat(&back, None, "yes").await;
    hears(&mut alice, "yes")
        .await
        .expect("the session carries on");
}

#[actix_web::test]
async fn a_customer_gone_past_the_grace_abandons_the_session() {
    let app = customer_app().await;
    let mut alice = app.rep("alice").await;
    let mut bob = app.rep("bob").await;

    // An active session.
    let mut customer = app.customer(ClientKind::Desktop).await;
    let view = active_session(&alice, &mut customer, "vpn").await;
    let id = view.session.clone();
    customer.close().await;
    let gone = Instant::now();
    let ended = alice
        .wait_event(
            WAIT,
            |e| matches!(e, Event::SessionEnded { session, .. } if *session == id),
        )
        .await
        .expect("the rep is told the session ended");
    assert!(
        gone.elapsed() >= Duration::from_millis(250),
        "ended after {:?}",
        gone.elapsed()
    );
    let Event::SessionEnded { reason, .. } = ended else {
        unreachable!()
    };
    assert!(reason.contains("abandoned"), "{reason}");
    let d = details_of(&alice, &id).await;
    assert_ended(&d, EndReason::Abandoned);
    let last = d.history.last().expect("history");
    assert_eq!(
        (last.event, last.detail.as_str()),
        (HistoryEvent::Ended, "abandoned")
    );
    let late = app.customer(ClientKind::Desktop).await;
    assert_eq!(
        refused(&late, resume_session(&view.token)).await,
        ErrorCode::InvalidToken
    );

    // A waiting session leaves its queue.
    let mut customer = app.customer(ClientKind::Desktop).await;
    let view = start_issue(&mut customer, "wifi", "Eve").await;
    alert_for(&mut bob, &view.session).await;
    customer.close().await;
    bob.wait_event(WAIT, |e| {
        matches!(e, Event::QueueLeft { session, reason: switchboard::protocol::LeftQueueReason::Ended, .. } if *session == view.session)
    })
    .await
    .expect("the abandoned session leaves the queue");
    assert!(queue_of(&bob, "team:network").await.items.is_empty());
}

#[actix_web::test]
async fn after_a_restart_customers_who_do_not_come_back_abandon() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = [
        ("SWITCHBOARD_RULE_TICK_MS", "50"),
        ("SWITCHBOARD_CUSTOMER_GRACE_MS", "1500"),
    ];
    let mut server = ServerProcess::start(dir.path(), &env);
    let token = rest_login(server.port, "admin").await;
    let mut leaver = server.customer(ClientKind::Desktop).await;
    let left = start_issue(&mut leaver, "vpn", "Dana").await;
    let mut stayer = server.customer(ClientKind::Desktop).await;
    let stays = start_issue(&mut stayer, "invoice", "Eve").await;
    server.kill9();
    drop((leaver, stayer));

    let server = ServerProcess::start(dir.path(), &env);
    let up = Instant::now();
    let back = server.customer(ClientKind::Desktop).await;
    let reply = resumed(&back, &stays.token).await;
    assert!(
        matches!(reply, Reply::SessionStarted(ref v) if v.state == "waiting"),
        "{reply:?}"
    );

    let d = stored_as_ended(
        server.port,
        &token,
        &left.session,
        "the absent customer's session to end",
    )
    .await;
    assert!(
        up.elapsed() >= Duration::from_millis(1000),
        "abandoned {:?} after the restart, before the grace",
        up.elapsed()
    );
    assert_ended(&d, EndReason::Abandoned);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let d = rest_details(server.port, &token, &stays.session).await;
    assert_eq!(
        waiting_in(&d).as_deref(),
        Some("team:billing"),
        "the customer who came back keeps theirs"
    );
}

// --- mobile customers: view-only ----------------------------------------------------

#[actix_web::test]
async fn a_mobile_session_is_view_only_through_sharing_and_transfer() {
    let app = app_with(|_| {}).await;
    let alice = app.rep("alice").await;
    let mut bob = app.rep("bob").await;
    let mut admin = app.rep("admin").await;
    let mut customer = app.customer(ClientKind::Mobile).await;
    let view = start_issue(&mut customer, "vpn", "Dana").await;
    let id = view.session.clone();
    assert!(view.view_only, "the customer sees the mark");
    let (_, session) = alert_queue(&mut bob, &id).await;
    assert!(session.view_only, "the queue shows the mark");
    let d = details_of(&bob, &id).await;
    assert_eq!(
        events(&d, HistoryEvent::MarkedViewOnly),
        ["mobile customer client"]
    );

    accept(&alice, &id).await.expect("accepted");
    let err = alice.request(control(&id)).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ViewOnly));
    reply_of(
        &alice,
        RequestBody::RequestView {
            session: id.clone(),
        },
    )
    .await;

    // Sharing: the invitee cannot control either.
    reply_of(&alice, invite(&id, "rep:bob")).await;
    reply_of(&bob, join(&id)).await;
    let err = bob.request(control(&id)).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ViewOnly));

    // Transfer: the mark goes with the session.
    reply_of(&alice, transfer(&id, "team:escalations")).await;
    let (_, session) = alert_queue(&mut admin, &id).await;
    assert!(session.view_only);
    accept(&admin, &id).await.expect("admin accepts");
    let err = admin.request(control(&id)).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ViewOnly));
    let d = details_of(&admin, &id).await;
    assert_eq!(events(&d, HistoryEvent::MarkedViewOnly).len(), 1);
}

#[actix_web::test]
async fn a_mobile_session_stays_view_only_after_a_lost_rep_requeue() {
    let app = app_with(|_| {}).await;
    let ServedByAlice {
        alice,
        mut bob,
        customer: _customer,
        view,
    } = served_by_alice_watched_by_bob(&app, ClientKind::Mobile).await;
    let id = view.session.clone();
    alice.close().await;
    // Requeued.
    let (_, session) = alert_queue(&mut bob, &id).await;
    assert!(session.view_only);
    assert_eq!(session.requeued.as_deref(), Some(WHY));
    accept(&bob, &id).await.expect("bob accepts");
    let err = bob.request(control(&id)).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ViewOnly));
}

#[actix_web::test]
async fn a_mobile_session_stays_view_only_after_kill_9() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = ServerProcess::start(dir.path(), &[]);
    let mut customer = server.customer(ClientKind::Mobile).await;
    let view = start_issue(&mut customer, "vpn", "Dana").await;
    assert!(view.view_only);
    server.kill9();
    drop(customer);

    let server = ServerProcess::start(dir.path(), &[]);
    let bob = server.rep("bob").await;
    let shown = queue_of(&bob, "team:network").await;
    let item = shown
        .items
        .iter()
        .find(|i| i.summary.session == view.session)
        .expect("still waiting after the restart");
    assert!(item.summary.view_only);
    accept(&bob, &view.session).await.expect("bob accepts");
    let err = bob.request(control(&view.session)).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ViewOnly));
    let d = details_of(&bob, &view.session).await;
    assert_eq!(
        events(&d, HistoryEvent::MarkedViewOnly),
        ["mobile customer client"]
    );
    // The customer comes back on the phone and is still view-only.
    let phone = server.customer(ClientKind::Mobile).await;
    let reply = resumed(&phone, &view.token).await;
    assert!(
        matches!(reply, Reply::SessionStarted(ref v) if v.view_only),
        "{reply:?}"
    );
}

/// Waits for `rep`'s popup alert of `session`: the queue and the position
/// it entered at.
async fn alert_position(rep: &mut Client, session: &str) -> (String, usize) {
    match rep
        .wait_event(
            WAIT,
            |e| matches!(e, Event::QueueEntered { session: s, .. } if s.session == session),
        )
        .await
        .expect("the alert")
    {
        Event::QueueEntered {
            queue, position, ..
        } => (queue.to_string(), position),
        _ => unreachable!(),
    }
}

#[actix_web::test]
async fn a_requeued_session_keeps_its_place_ahead_of_later_customers() {
    let app = app_with(|_| {}).await;
    let alice = app.rep("alice").await;
    let mut bob = app.rep("bob").await;
    let mut first = app.customer(ClientKind::Desktop).await;
    let view = active_session(&alice, &mut first, "vpn").await;
    // Two customers come after the first and wait.
    let mut later = Vec::new();
    for name in ["Eve", "Finn"] {
        let mut c = app.customer(ClientKind::Desktop).await;
        start_issue(&mut c, "vpn", name).await;
        later.push(c);
    }
    let _ = bob.drain();
    alice.close().await;
    let (queue, position) = alert_position(&mut bob, &view.session).await;
    assert_eq!(queue, "team:network");
    assert_eq!(position, 1, "the first customer waits first again");
    let q = queue_of(&bob, "team:network").await;
    let names: Vec<_> = q
        .items
        .iter()
        .map(|i| i.summary.customer_name.as_str())
        .collect();
    assert_eq!(names, ["Dana", "Eve", "Finn"]);
}

/// Alice serving a customer, who has invited team escalations (admin's).
struct Invited {
    alice: Client,
    admin: Client,
    customer: Client,
    session: String,
}

async fn invited_escalations(app: &TestApp) -> Invited {
    let alice = app.rep("alice").await;
    let mut admin = app.rep("admin").await;
    let mut customer = app.customer(ClientKind::Desktop).await;
    let view = active_session(&alice, &mut customer, "vpn").await;
    reply_of(&alice, invite(&view.session, "team:escalations")).await;
    admin
        .wait_event(WAIT, |e| matches!(e, Event::Invited { .. }))
        .await
        .expect("escalations is invited");
    Invited {
        alice,
        admin,
        customer,
        session: view.session,
    }
}

/// Asserts that escalations' invitation to `session` is withdrawn (`when`)
/// and gone from its queue.
async fn withdrawn_from_escalations(admin: &mut Client, session: &str, when: &str) {
    admin
        .wait_event(
            WAIT,
            |e| matches!(e, Event::InvitationWithdrawn { session: s, .. } if s == session),
        )
        .await
        .unwrap_or_else(|| panic!("the invitation is withdrawn {when}"));
    let q = queue_of(admin, "team:escalations").await;
    assert!(q.invitations.is_empty(), "{:?}", q.invitations);
}

#[actix_web::test]
async fn a_requeued_session_withdraws_its_invitations() {
    let app = app_with(|_| {}).await;
    // The customer stays connected: only the rep is lost.
    let Invited {
        alice,
        mut admin,
        customer: _customer,
        session: id,
    } = invited_escalations(&app).await;
    alice.close().await;
    withdrawn_from_escalations(&mut admin, &id, "once nobody is in the session").await;
}

/// A customer who chose alice on the public site, served by her until her
/// console closed: the customer and their session's start.
async fn chose_alice_who_was_lost(app: &TestApp) -> (Client, CustomerView) {
    let alice = app.rep("alice").await;
    let mut customer = app.customer(ClientKind::Desktop).await;
    let view = customer
        .start_session(
            Entry::Rep {
                rep: "alice".into(),
            },
            "Dana",
            "Acme",
            "",
        )
        .await
        .expect("the customer chooses alice");
    accept(&alice, &view.session).await.expect("alice accepts");
    alice.close().await;
    (customer, view)
}

/// A session with no queue but its lost rep's own (it came by rep choice)
/// goes to the site's fallback queue if there is one, and else waits in
/// the rep's personal queue for them to come back: it does not end.
#[actix_web::test]
async fn a_rep_choice_session_waits_for_its_lost_rep_when_no_other_queue_can_take_it() {
    let app = app_with(|s| s.supervisor.fallback_queue = None).await;
    let (mut customer, view) = chose_alice_who_was_lost(&app).await;
    told_transferred(&mut customer, "Alice Network")
        .await
        .expect("the customer is told they wait again");
    let alice = app.rep("alice").await;
    let d = details_of(&alice, &view.session).await;
    assert_eq!(waiting_in(&d).as_deref(), Some("rep:alice"));
    assert_eq!(
        events(&d, HistoryEvent::Requeued),
        [format!("{WHY} (rep:alice): to rep:alice")]
    );
    accept(&alice, &view.session)
        .await
        .expect("alice, back, takes the session again");

    // With a fallback queue, that team takes it instead.
    let app = app_with(|s| s.supervisor.fallback_queue = Some(QueueId::team("escalations"))).await;
    let mut admin = app.rep("admin").await;
    let (_customer, view) = chose_alice_who_was_lost(&app).await;
    let (queue, _) = alert_position(&mut admin, &view.session).await;
    assert_eq!(queue, "team:escalations");
}

/// A session its customer abandons takes its open invitations with it.
#[actix_web::test]
async fn an_abandoned_session_withdraws_its_invitations() {
    let app = customer_app().await;
    let Invited {
        alice,
        mut admin,
        customer,
        session: id,
    } = invited_escalations(&app).await;
    customer.close().await;
    withdrawn_from_escalations(&mut admin, &id, "once its customer abandoned it").await;
    assert_ended(&details_of(&alice, &id).await, EndReason::Abandoned);
}
