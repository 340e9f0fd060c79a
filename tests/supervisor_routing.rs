//! Availability and automatic routing over the real protocol: status and
//! auto-assign (with the `status` event on the rep's other consoles), the
//! maximum of concurrent sessions, least-busy and skills routing with
//! offers that are accepted, declined or left to expire, priorities, and
//! manual accept / get next working alongside routing.

use std::time::{Duration, Instant};

use crate::common::*;
use reqwest::Method;
use serde_json::{json, Value};
use switchboard::client::{Client, Pushed};
use switchboard::config::Settings;
use switchboard::domain::ids::{ClientKind, QueueId, Role};
use switchboard::domain::rep_state::RepStatus;
use switchboard::domain::rules::{QueueRules, Routing};
use switchboard::error::ErrorCode;
use switchboard::protocol::{Event, Reply, RequestBody, ResumeFrom, Snapshot};

/// A server ticking every 50 ms whose network queue routes with `routing`.
async fn app_routing(routing: Routing, more: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    spawn_app_with(dir, move |s| {
        s.supervisor.rule_tick_ms = 50;
        s.rules.teams.insert(
            "network".into(),
            QueueRules {
                routing,
                ..QueueRules::default()
            },
        );
        more(s);
    })
    .await
}

fn is_offer(e: &Event, id: &str) -> bool {
    matches!(e, Event::Offer { session, .. } if session.session == id)
}

fn is_any_offer(e: &Event) -> bool {
    matches!(e, Event::Offer { .. })
}

async fn offer_for(rep: &mut Client, id: &str) -> Event {
    rep.wait_event(WAIT, |e| is_offer(e, id))
        .await
        .unwrap_or_else(|| panic!("no offer of {id}"))
}

async fn withdrawn(rep: &mut Client, id: &str) -> String {
    match rep
        .wait_event(
            WAIT,
            |e| matches!(e, Event::OfferWithdrawn { session, .. } if session == id),
        )
        .await
    {
        Some(Event::OfferWithdrawn { reason, .. }) => reason,
        other => panic!("no offer_withdrawn for {id}: {other:?}"),
    }
}

/// Which of `reps` is offered `id` first (by index), and the offer.
async fn offered_to(reps: &mut [&mut Client], id: &str) -> (usize, Event) {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        for (i, rep) in reps.iter_mut().enumerate() {
            if let Some(Pushed::Event { event, .. }) =
                rep.next_pushed(Duration::from_millis(10)).await
            {
                if is_offer(&event, id) {
                    return (i, event);
                }
            }
        }
    }
    panic!("nobody was offered {id}")
}

async fn set_status(c: &Client, status: RepStatus) -> Reply {
    reply_of(c, RequestBody::SetStatus { status }).await
}

async fn set_auto(c: &Client, enabled: bool) -> Reply {
    reply_of(c, RequestBody::SetAutoAssign { enabled }).await
}

async fn decline(c: &Client, id: &str) {
    reply_of(c, RequestBody::DeclineOffer { session: id.into() }).await;
}

async fn end(c: &Client, id: &str) {
    reply_of(c, end_session(id)).await;
}

async fn new_session(app: &TestApp, issue: &str, name: &str) -> (Client, String) {
    let mut c = app.customer(ClientKind::Desktop).await;
    let view = start_issue(&mut c, issue, name).await;
    (c, view.session)
}

/// Replaces a demo rep through the admin API with `extra` fields (skills,
/// max_sessions) on top of the demo's.
async fn put_demo_rep(port: u16, token: &str, id: &str, extra: Value) {
    let (name, teams) = match id {
        "alice" => ("Alice Network", json!(["network", "escalations"])),
        "bob" => ("Bob Network", json!(["network"])),
        other => panic!("no demo rep {other}"),
    };
    let mut body = json!({
        "username": id,
        "display_name": name,
        "teams": teams,
        "permissions": {"generate_session_keys": true, "transfer": true, "share": true},
        "public": true
    });
    for (k, v) in extra.as_object().expect("an object") {
        body[k] = v.clone();
    }
    let (status, answer) = rest_json(
        port,
        Method::PUT,
        &format!("/api/admin/reps/{id}"),
        Some(token),
        Some(body),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
}

async fn put_issue_type(port: u16, token: &str, id: &str, name: &str, priority: u8, skills: Value) {
    let (status, answer) = rest_json(
        port,
        Method::PUT,
        &format!("/api/admin/issue-types/{id}"),
        Some(token),
        Some(json!({"id": id, "name": name, "team": "network", "priority": priority, "skills": skills})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
}

// --- availability -------------------------------------------------------------------

#[actix_web::test]
async fn status_and_auto_assign_are_answered_and_shown_on_every_console() {
    let app = app_routing(Routing::None, |_| {}).await;
    let desk = app.rep("alice").await;
    let mut phone = app.rep("alice").await;
    let steps = [
        (
            RequestBody::SetStatus {
                status: RepStatus::Away,
            },
            RepStatus::Away,
            true,
        ),
        (
            RequestBody::SetAutoAssign { enabled: false },
            RepStatus::Away,
            false,
        ),
        (
            RequestBody::SetStatus {
                status: RepStatus::Busy,
            },
            RepStatus::Busy,
            false,
        ),
        (
            RequestBody::SetStatus {
                status: RepStatus::Available,
            },
            RepStatus::Available,
            false,
        ),
        (
            RequestBody::SetAutoAssign { enabled: true },
            RepStatus::Available,
            true,
        ),
    ];
    for (request, status, auto_assign) in steps {
        let reply = reply_of(&desk, request).await;
        assert_eq!(
            reply,
            Reply::Status {
                status,
                auto_assign
            }
        );
        let event = phone
            .wait_event(WAIT, |e| matches!(e, Event::Status { .. }))
            .await
            .expect("the other console is told");
        assert_eq!(
            event,
            Event::Status {
                status,
                auto_assign
            }
        );
    }
    // A console that logs in later is told the availability at once, in
    // `logged_in` and in a snapshot.
    reply_of(
        &desk,
        RequestBody::SetStatus {
            status: RepStatus::Busy,
        },
    )
    .await;
    reply_of(&desk, RequestBody::SetAutoAssign { enabled: false }).await;
    let mut later = Client::connect(&app.ws_url(), Role::Rep, ClientKind::Mobile)
        .await
        .expect("connects");
    let Reply::LoggedIn {
        token,
        status,
        auto_assign,
        ..
    } = later.login("alice", "alice-demo").await.expect("logs in")
    else {
        panic!("not logged_in")
    };
    assert_eq!((status, auto_assign), (RepStatus::Busy, false));
    let mut resumed = Client::connect(&app.ws_url(), Role::Rep, ClientKind::Desktop)
        .await
        .expect("connects");
    resumed
        .request(RequestBody::Login {
            username: None,
            password: None,
            token: Some(token),
            resume: Some(ResumeFrom {
                stream: "a stream from before".into(),
                after: 3,
            }),
        })
        .await
        .expect("logs in with the token");
    match resumed.next_pushed(WAIT).await {
        Some(Pushed::Snapshot {
            snapshot:
                Snapshot::Rep {
                    status,
                    auto_assign,
                    ..
                },
            ..
        }) => assert_eq!((status, auto_assign), (RepStatus::Busy, false)),
        other => panic!("expected a rep snapshot, got {other:?}"),
    }

    // Only reps have an availability.
    let customer = app.customer(ClientKind::Desktop).await;
    let err = customer
        .request(RequestBody::SetStatus {
            status: RepStatus::Away,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::WrongRole), "{err}");
}

#[actix_web::test]
async fn a_rep_at_their_maximum_cannot_take_another_session() {
    let app = app_routing(Routing::None, |_| {}).await;
    let token = rest_login(app.port, "admin").await;
    put_demo_rep(app.port, &token, "bob", json!({"max_sessions": 1})).await;
    let bob = app.rep("bob").await;
    let (_c1, s1) = new_session(&app, "vpn", "Dana").await;
    let (_c2, s2) = new_session(&app, "wifi", "Eve").await;
    accept(&bob, &s1).await.expect("the first is taken");
    let err = accept(&bob, &s2).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::TooManySessions));
    let err = bob.request(RequestBody::GetNext).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::TooManySessions));
    assert_eq!(
        queue_of(&bob, "team:network").await.items.len(),
        1,
        "s2 still waits"
    );
    end(&bob, &s1).await;
    accept(&bob, &s2)
        .await
        .expect("after ending one, the next can be taken");

    // A team maximum (rules) applies to reps without their own.
    let (status, body) = rest_json(
        app.port,
        Method::PUT,
        "/api/admin/rules/network",
        Some(&token),
        Some(json!({"max_sessions_per_rep": 2})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let alice = app.rep("alice").await;
    let mut keep = Vec::new();
    for name in ["F", "G", "H"] {
        keep.push(new_session(&app, "vpn", name).await);
    }
    accept(&alice, &keep[0].1).await.expect("first");
    accept(&alice, &keep[1].1).await.expect("second");
    let err = accept(&alice, &keep[2].1).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::TooManySessions));
}

// --- least busy -----------------------------------------------------------------------

#[actix_web::test]
async fn least_busy_offers_to_the_rep_with_fewer_sessions() {
    // A slower tick, so the second session usually arrives before the tick
    // that notices the first is gone.
    let app = app_routing(Routing::LeastBusy, |s| s.supervisor.rule_tick_ms = 300).await;
    let mut alice = app.rep("alice").await;
    let mut bob = app.rep("bob").await;
    // Alice opts out while bob is offered the first session, then takes it
    // by hand and opts back in; the next session comes right away.
    set_auto(&alice, false).await;
    let (_c1, s1) = new_session(&app, "vpn", "Dana").await;
    offer_for(&mut bob, &s1).await;
    let mut c2 = app.customer(ClientKind::Desktop).await;
    accept(&alice, &s1)
        .await
        .expect("alice takes the first by hand");
    set_auto(&alice, true).await;
    let s2 = start_issue(&mut c2, "vpn", "Eve").await.session;
    let (who, offer) = offered_to(&mut [&mut alice, &mut bob], &s2).await;
    assert_eq!(who, 1, "s2 was offered to alice, who already has a session");
    let Event::Offer {
        queue,
        session,
        expires_at,
    } = offer
    else {
        unreachable!()
    };
    assert_eq!(queue, QueueId::team("network"));
    assert_eq!(session.customer_name, "Eve");
    assert!(expires_at > switchboard::domain::ids::now_ms());
    // That bob was offered s2 first is the check: a session has one open
    // offer at a time (supervisor.md 7.3), so while bob holds it alice
    // cannot be offered it whatever routing does.
    let taken = accept(&bob, &s2).await.expect("bob takes the offer");
    assert_eq!(session_of(&taken).owner.as_deref(), Some("bob"));
    assert!(
        stays_quiet(
            &mut bob,
            |e| matches!(e, Event::OfferWithdrawn { session, .. } if *session == s2)
        )
        .await,
        "the rep who accepted their own offer is not told it was withdrawn"
    );

    // Right after an accept, the next session goes to the rep with fewer
    // sessions again (bob and alice have one each: the tie goes to
    // whoever is free of offers; both are).
    let (_c3, s3) = new_session(&app, "wifi", "Fay").await;
    let (who, _) = offered_to(&mut [&mut alice, &mut bob], &s3).await;
    let rep = if who == 0 { &alice } else { &bob };
    accept(rep, &s3).await.expect("the offered rep takes it");
    // Now whoever took s3 has two: s4 goes to the other.
    let (_c4, s4) = new_session(&app, "wifi", "Gus").await;
    let (next, _) = offered_to(&mut [&mut alice, &mut bob], &s4).await;
    assert_eq!(next, 1 - who, "s4 was offered to the rep with two sessions");
}

#[actix_web::test]
async fn a_declined_offer_goes_to_the_next_rep_and_never_back() {
    let app = app_routing(Routing::LeastBusy, |_| {}).await;
    let mut alice = app.rep("alice").await;
    let mut bob = app.rep("bob").await;
    let (_c, id) = new_session(&app, "vpn", "Dana").await;
    let (first, _) = offered_to(&mut [&mut alice, &mut bob], &id).await;
    let (mut x, mut y) = if first == 0 {
        (alice, bob)
    } else {
        (bob, alice)
    };

    decline(&x, &id).await;
    assert_eq!(withdrawn(&mut x, &id).await, "declined");
    offer_for(&mut y, &id).await;
    let err = x
        .request(RequestBody::DeclineOffer {
            session: id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(ErrorCode::NoOffer),
        "x has no offer any more"
    );

    decline(&y, &id).await;
    assert_eq!(withdrawn(&mut y, &id).await, "declined");
    // Everyone declined: it stays in the queue, offered to nobody.
    for rep in [&mut x, &mut y] {
        assert!(
            rep.wait_event(Duration::from_millis(800), |e| is_offer(e, &id))
                .await
                .is_none(),
            "never offered again to a rep who declined"
        );
    }
    let shown = queue_of(&x, "team:network").await;
    assert!(shown.items.iter().any(|i| i.summary.session == id));
    accept(&x, &id)
        .await
        .expect("it can still be taken by hand");
}

#[actix_web::test]
async fn an_expired_offer_moves_on_like_a_decline() {
    let app = app_routing(Routing::LeastBusy, |s| s.supervisor.offer_timeout_ms = 300).await;
    let mut alice = app.rep("alice").await;
    let mut bob = app.rep("bob").await;
    let (_c, id) = new_session(&app, "vpn", "Dana").await;
    let (first, _) = offered_to(&mut [&mut alice, &mut bob], &id).await;
    let offered = Instant::now();
    let (mut x, mut y) = if first == 0 {
        (alice, bob)
    } else {
        (bob, alice)
    };
    assert_eq!(withdrawn(&mut x, &id).await, "expired");
    assert!(
        offered.elapsed() >= Duration::from_millis(200),
        "expired after {:?}",
        offered.elapsed()
    );
    offer_for(&mut y, &id).await;
    assert_eq!(withdrawn(&mut y, &id).await, "expired");
    for rep in [&mut x, &mut y] {
        assert!(
            rep.wait_event(Duration::from_millis(800), |e| is_offer(e, &id))
                .await
                .is_none(),
            "an expired offer is not made again to the same rep"
        );
    }
    let err = x
        .request(RequestBody::DeclineOffer {
            session: id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NoOffer));
    assert!(queue_of(&x, "team:network")
        .await
        .items
        .iter()
        .any(|i| i.summary.session == id));
}

#[actix_web::test]
async fn away_reps_and_reps_without_auto_assign_get_no_offers() {
    let app = app_routing(Routing::LeastBusy, |_| {}).await;
    let mut alice = app.rep("alice").await;
    let mut bob = app.rep("bob").await;
    set_status(&alice, RepStatus::Away).await;
    set_auto(&bob, false).await;
    let (_c, id) = new_session(&app, "vpn", "Dana").await;
    alert_for(&mut bob, &id).await;
    for rep in [&mut alice, &mut bob] {
        assert!(
            rep.wait_event(Duration::from_millis(600), is_any_offer)
                .await
                .is_none(),
            "no offer while away or opted out"
        );
    }
    set_status(&bob, RepStatus::Busy).await;
    set_auto(&bob, true).await;
    assert!(
        bob.wait_event(Duration::from_millis(600), is_any_offer)
            .await
            .is_none(),
        "busy reps get no offers either"
    );
    set_status(&bob, RepStatus::Available).await;
    offer_for(&mut bob, &id).await;
    assert!(stays_quiet(&mut alice, is_any_offer).await);
}

// --- skills ------------------------------------------------------------------------------

/// A skills-routing server where a vpn issue needs the skills `network` and
/// `vpn`, with alice's and bob's skills set to `alice_skills` and
/// `bob_skills`: the server and their logged-in consoles.
async fn skills_app(alice_skills: Value, bob_skills: Value) -> (TestApp, Client, Client) {
    let app = app_routing(Routing::Skills, |_| {}).await;
    let token = rest_login(app.port, "admin").await;
    put_issue_type(
        app.port,
        &token,
        "vpn",
        "VPN will not connect",
        0,
        json!(["network", "vpn"]),
    )
    .await;
    put_demo_rep(app.port, &token, "alice", json!({ "skills": alice_skills })).await;
    put_demo_rep(app.port, &token, "bob", json!({ "skills": bob_skills })).await;
    let alice = app.rep("alice").await;
    let bob = app.rep("bob").await;
    (app, alice, bob)
}

/// Makes `busier` the busier of the two reps: with `other` opted out of
/// auto-assign, `busier` is offered a wifi session and accepts it; then
/// `other` opts back in and both consoles are drained. The wifi customer's
/// connection is returned so the session stays.
async fn make_busier(app: &TestApp, busier: &mut Client, other: &mut Client) -> Client {
    set_auto(other, false).await;
    let (customer, s0) = new_session(app, "wifi", "Zed").await;
    offer_for(busier, &s0).await;
    accept(busier, &s0)
        .await
        .expect("the busier rep takes the wifi session");
    set_auto(other, true).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = busier.drain();
    let _ = other.drain();
    customer
}

#[actix_web::test]
async fn skills_routing_prefers_the_rep_with_the_preferred_skill() {
    let (app, mut alice, mut bob) = skills_app(
        json!({"network": "preferred", "vpn": "less_preferred"}),
        json!({"network": "preferred", "vpn": "preferred"}),
    )
    .await;
    // Bob is the busier one: least busy alone would pick alice.
    let _c0 = make_busier(&app, &mut bob, &mut alice).await;

    let (_c1, s1) = new_session(&app, "vpn", "Dana").await;
    let (who, offer) = offered_to(&mut [&mut alice, &mut bob], &s1).await;
    assert_eq!(who, 1, "vpn preferred (bob) beats less busy (alice)");
    let Event::Offer { session, .. } = offer else {
        unreachable!()
    };
    assert_eq!(session.required_skills, ["network", "vpn"]);
    // Declined by the preferred rep: the less-preferred one is next.
    decline(&bob, &s1).await;
    offer_for(&mut alice, &s1).await;
}

#[actix_web::test]
async fn skills_routing_falls_back_to_the_general_skill() {
    // Nobody has vpn (bob has it, but as ignored); only alice has network.
    let (app, mut alice, mut bob) =
        skills_app(json!({"network": "preferred"}), json!({"vpn": "ignored"})).await;
    // Alice is the busier one: least busy alone would pick bob.
    let _c0 = make_busier(&app, &mut alice, &mut bob).await;

    let (_c1, s1) = new_session(&app, "vpn", "Dana").await;
    let (who, _) = offered_to(&mut [&mut alice, &mut bob], &s1).await;
    assert_eq!(
        who, 0,
        "the network skill (alice) beats least busy (bob) when nobody has vpn"
    );
}

// --- priority, and routing alongside manual work ------------------------------------------

#[actix_web::test]
async fn a_higher_priority_session_is_offered_before_an_older_one() {
    let app = app_routing(Routing::LeastBusy, |_| {}).await;
    let token = rest_login(app.port, "admin").await;
    put_issue_type(
        app.port,
        &token,
        "outage",
        "Office is offline",
        5,
        json!([]),
    )
    .await;
    let mut bob = app.rep("bob").await;
    set_auto(&bob, false).await;
    let (_c1, older) = new_session(&app, "wifi", "Dana").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (_c2, urgent) = new_session(&app, "outage", "Eve").await;
    let _ = bob.drain();
    set_auto(&bob, true).await;
    let first = bob
        .wait_event(WAIT, is_any_offer)
        .await
        .expect("bob gets an offer");
    let Event::Offer { session, .. } = first else {
        unreachable!()
    };
    assert_eq!(
        session.session, urgent,
        "the priority 5 session comes first"
    );
    assert_eq!(session.priority, 5);
    accept(&bob, &urgent).await.expect("accepted");
    offer_for(&mut bob, &older).await;
}

#[actix_web::test]
async fn manual_accept_and_get_next_work_alongside_routing() {
    let app = app_routing(Routing::LeastBusy, |_| {}).await;
    let alice = app.rep("alice").await;
    let mut bob = app.rep("bob").await;
    set_auto(&alice, false).await;

    let (_c1, s1) = new_session(&app, "vpn", "Dana").await;
    offer_for(&mut bob, &s1).await;
    let got = reply_of(&alice, RequestBody::GetNext).await;
    assert_eq!(
        session_of(&got).summary.session,
        s1,
        "get next takes the offered session"
    );
    assert_eq!(withdrawn(&mut bob, &s1).await, "no longer waiting");
    let err = accept(&bob, &s1).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::AlreadyTaken));

    let (_c2, s2) = new_session(&app, "wifi", "Eve").await;
    offer_for(&mut bob, &s2).await;
    accept(&alice, &s2)
        .await
        .expect("a manual accept beats the offer");
    assert_eq!(withdrawn(&mut bob, &s2).await, "no longer waiting");
    let err = bob
        .request(RequestBody::DeclineOffer {
            session: s2.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NoOffer));
}

/// An offer of a session that stops waiting in its queue is withdrawn,
/// `no longer waiting`, whether its customer ends it or another rep takes
/// it by hand.
#[actix_web::test]
async fn an_offer_is_withdrawn_when_its_session_stops_waiting() {
    let app = app_routing(Routing::LeastBusy, |_| {}).await;
    let mut alice = app.rep("alice").await;
    let mut bob = app.rep("bob").await;

    // The customer gives up while the offer is open.
    let (customer, id) = new_session(&app, "vpn", "Dana").await;
    let (first, _) = offered_to(&mut [&mut alice, &mut bob], &id).await;
    reply_of(&customer, RequestBody::EndSession { session: None }).await;
    let offered = if first == 0 { &mut alice } else { &mut bob };
    assert_eq!(withdrawn(offered, &id).await, "no longer waiting");

    // Another rep takes it by hand while the offer is open.
    let (_customer, id) = new_session(&app, "vpn", "Eve").await;
    let (first, _) = offered_to(&mut [&mut alice, &mut bob], &id).await;
    let (offered, other) = if first == 0 {
        (&mut alice, &bob)
    } else {
        (&mut bob, &alice)
    };
    accept(other, &id).await.expect("taken by hand");
    assert_eq!(withdrawn(offered, &id).await, "no longer waiting");
}
