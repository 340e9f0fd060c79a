//! Queues as reps see them: which queues each rep sees and is alerted for,
//! favorites and team chat, the queue view and its sorts, the accept race,
//! get next, and the position updates waiting customers receive.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::*;
use switchboard::actors::queue::POSITION_ROUND;
use switchboard::admin::RepInput;
use switchboard::client::{Client, Pushed};
use switchboard::domain::catalog::Permissions;
use switchboard::domain::ids::{ClientKind, EntryPath, QueueId};
use switchboard::domain::queue::SortBy;
use switchboard::error::ErrorCode;
use switchboard::protocol::{
    CustomerView, Entry, Event, LeftQueueReason, QueueInfo, QueueKind, QueueView, Reply,
    RequestBody,
};

async fn queues(c: &Client) -> Vec<QueueInfo> {
    match ok(c, RequestBody::ListQueues).await {
        Reply::Queues { queues } => queues,
        other => panic!("expected queues, got {other:?}"),
    }
}

fn queue_ids(qs: &[QueueInfo]) -> Vec<String> {
    qs.iter().map(|q| q.queue.to_string()).collect()
}

fn find<'a>(qs: &'a [QueueInfo], queue: &str) -> &'a QueueInfo {
    qs.iter()
        .find(|q| q.queue.to_string() == queue)
        .unwrap_or_else(|| panic!("{queue} not listed"))
}

async fn view(c: &Client, queue: &str, sort: SortBy) -> QueueView {
    match ok(
        c,
        RequestBody::ViewQueue {
            queue: queue.parse().unwrap(),
            sort,
        },
    )
    .await
    {
        Reply::QueueView(v) => v,
        other => panic!("expected a queue view, got {other:?}"),
    }
}

/// A `kind` customer who filed the issue form for `issue_type` with
/// `[name, company, description]`: the connection (keep it, or the
/// session ends) and the session.
async fn filed_issue(
    app: &TestApp,
    kind: ClientKind,
    issue_type: &str,
    [name, company, description]: [&str; 3],
) -> (Client, CustomerView) {
    let mut c = app.customer(kind).await;
    let v = c
        .start_session(
            Entry::IssueForm {
                issue_type: issue_type.into(),
            },
            name,
            company,
            description,
        )
        .await
        .unwrap();
    (c, v)
}

/// Star `queue` (`team:network`, `rep:alice`) as a favorite.
fn star(queue: &str) -> RequestBody {
    RequestBody::Star {
        queue: queue.parse().unwrap(),
    }
}

fn favorites_of(r: Reply) -> Vec<String> {
    match r {
        Reply::Favorites { favorites } => favorites.iter().map(|q| q.to_string()).collect(),
        other => panic!("expected favorites, got {other:?}"),
    }
}

#[actix_web::test]
async fn reps_see_their_queues_and_only_their_alerts() {
    let app = spawn_app().await;
    let mut admin = app.rep("admin").await;
    let mut alice = app.rep("alice").await;
    let mut bob = app.rep("bob").await;
    let mut carol = app.rep("carol").await;

    assert_eq!(
        queue_ids(&queues(&alice).await),
        ["rep:alice", "team:network", "team:escalations"]
    );
    assert_eq!(queue_ids(&queues(&bob).await), ["rep:bob", "team:network"]);
    let carols = queues(&carol).await;
    assert_eq!(queue_ids(&carols), ["rep:carol", "team:billing"]);
    assert_eq!(carols[0].kind, QueueKind::Personal);
    assert_eq!(carols[1].kind, QueueKind::Team);
    assert_eq!(carols[1].name, "Billing");
    assert_eq!(carols[0].name, "Carol Billing");

    for (queue, code) in [
        ("team:billing", ErrorCode::PermissionDenied),
        ("rep:bob", ErrorCode::PermissionDenied),
    ] {
        let got = refused(
            &alice,
            RequestBody::ViewQueue {
                queue: queue.parse().unwrap(),
                sort: SortBy::Wait,
            },
        )
        .await;
        assert_eq!(got, code, "alice viewing {queue}");
    }
    assert_eq!(
        view(&alice, "team:network", SortBy::Wait).await.items.len(),
        0
    );

    // A team session alerts exactly the team's logged-in members.
    let mut customer = app.customer(ClientKind::Desktop).await;
    let s = start_issue(&mut customer, "vpn", "Dana").await;
    for rep in [&mut alice, &mut bob] {
        match alert_for(rep, &s.session).await {
            Event::QueueEntered {
                queue, position, ..
            } => {
                assert_eq!(queue.to_string(), "team:network");
                assert_eq!(position, 1);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(stays_quiet(&mut carol, |e| matches!(e, Event::QueueEntered { .. })).await);
    assert!(stays_quiet(&mut admin, |e| matches!(e, Event::QueueEntered { .. })).await);
    assert_eq!(find(&queues(&bob).await, "team:network").waiting, 1);
    assert_eq!(find(&queues(&carol).await, "team:billing").waiting, 0);

    // A personal-queue session alerts its rep only.
    let mut c2 = app.customer(ClientKind::Desktop).await;
    let s2 = c2
        .start_session(
            Entry::SupportButton {
                button: "desk-alice".into(),
            },
            "Eve",
            "",
            "",
        )
        .await
        .unwrap();
    alert_for(&mut alice, &s2.session).await;
    assert!(stays_quiet(&mut bob, |e| matches!(e, Event::QueueEntered { .. })).await);
    assert_eq!(find(&queues(&alice).await, "rep:alice").waiting, 1);

    // Someone outside the queue cannot accept from it either.
    assert_eq!(
        accept(&carol, &s.session).await.unwrap_err().code(),
        Some(ErrorCode::PermissionDenied)
    );
}

#[actix_web::test]
async fn a_rep_who_logs_in_late_sees_the_queue_and_no_stale_alerts() {
    let app = spawn_app().await;
    // Two customers wait in team network before bob has ever logged in.
    let mut dana = app.customer(ClientKind::Desktop).await;
    let first = start_issue(&mut dana, "vpn", "Dana").await;
    let mut eve = app.customer(ClientKind::Desktop).await;
    let second = start_issue(&mut eve, "vpn", "Eve").await;

    let mut bob = app.rep("bob").await;
    // The queue view shows both; no alert from before the login arrives.
    let waiting: Vec<String> = view(&bob, "team:network", SortBy::Wait)
        .await
        .items
        .into_iter()
        .map(|i| i.summary.session)
        .collect();
    assert_eq!(waiting, [first.session.clone(), second.session.clone()]);
    assert!(
        stays_quiet(&mut bob, |e| matches!(e, Event::QueueEntered { .. })).await,
        "no alert for a session that entered before the login"
    );

    // The next customer is the first event of bob's stream: nothing from
    // before his login was numbered in it.
    let mut fay = app.customer(ClientKind::Desktop).await;
    let third = start_issue(&mut fay, "vpn", "Fay").await;
    match bob.next_pushed(WAIT).await {
        Some(Pushed::Event {
            seq,
            event: Event::QueueEntered { session, .. },
            ..
        }) => {
            assert_eq!(session.session, third.session);
            assert_eq!(seq, 1, "the first event of the rep's stream");
        }
        other => panic!("expected the alert for {}, got {other:?}", third.session),
    }
}

#[actix_web::test]
async fn favorites_are_kept_per_rep_and_shared_between_consoles() {
    let app = spawn_app().await;
    let alice = app.rep("alice").await;
    let mut alice_phone = app.rep("alice").await;
    let bob = app.rep("bob").await;

    let favs = favorites_of(ok(&alice, star("team:network")).await);
    assert_eq!(favs, ["team:network"]);
    match alice_phone
        .wait_event(WAIT, |e| matches!(e, Event::Favorites { .. }))
        .await
    {
        Some(Event::Favorites { favorites }) => {
            assert_eq!(favorites, vec![QueueId::team("network")])
        }
        other => panic!("no favorites event on the other console: {other:?}"),
    }
    let favs = favorites_of(ok(&alice, star("rep:alice")).await);
    assert_eq!(
        favs.iter().collect::<BTreeSet<_>>(),
        ["rep:alice", "team:network"]
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>()
            .iter()
            .collect()
    );

    let qs = queues(&alice).await;
    assert!(find(&qs, "team:network").favorite);
    assert!(find(&qs, "rep:alice").favorite);
    assert!(!find(&qs, "team:escalations").favorite);
    // Stars are per rep.
    assert!(!find(&queues(&bob).await, "team:network").favorite);

    assert_eq!(
        refused(&alice, star("team:billing")).await,
        ErrorCode::PermissionDenied
    );
    assert_eq!(
        refused(&alice, star("rep:bob")).await,
        ErrorCode::PermissionDenied
    );

    // Logged out and back in: the stars are still there.
    ok(&alice, RequestBody::Logout).await;
    alice.close().await;
    alice_phone.close().await;
    let alice = app.rep("alice").await;
    let qs = queues(&alice).await;
    assert!(find(&qs, "team:network").favorite);
    assert!(find(&qs, "rep:alice").favorite);

    let favs = favorites_of(
        ok(
            &alice,
            RequestBody::Unstar {
                queue: QueueId::team("network"),
            },
        )
        .await,
    );
    assert_eq!(favs, ["rep:alice"]);
    assert!(!find(&queues(&alice).await, "team:network").favorite);
}

#[actix_web::test]
async fn team_chat_reaches_members_and_tracks_unread() {
    let app = spawn_app().await;
    let alice = app.rep("alice").await;
    let mut bob = app.rep("bob").await;
    let carol = app.rep("carol").await;

    assert_eq!(
        find(&queues(&bob).await, "team:network").chat_unread,
        Some(false)
    );
    assert_eq!(find(&queues(&bob).await, "rep:bob").chat_unread, None);

    for text in ["first", "second", "third"] {
        ok(
            &alice,
            RequestBody::TeamChat {
                team: "network".into(),
                text: text.into(),
            },
        )
        .await;
    }
    match bob
        .wait_event(WAIT, |e| matches!(e, Event::TeamChat { .. }))
        .await
    {
        Some(Event::TeamChat { team, line }) => {
            assert_eq!(team, "network");
            assert_eq!(line.text, "first");
            assert_eq!(line.name, "Alice Network");
        }
        other => panic!("bob got no team chat: {other:?}"),
    }
    bob.wait_event(
        WAIT,
        |e| matches!(e, Event::TeamUnread { team, unread: true } if team == "network"),
    )
    .await
    .expect("bob told the chat is unread");
    bob.wait_event(
        WAIT,
        |e| matches!(e, Event::TeamChat { line, .. } if line.text == "third"),
    )
    .await
    .expect("bob gets every line");

    assert_eq!(
        find(&queues(&bob).await, "team:network").chat_unread,
        Some(true)
    );
    // The writer has read what they wrote.
    assert_eq!(
        find(&queues(&alice).await, "team:network").chat_unread,
        Some(false)
    );

    ok(
        &bob,
        RequestBody::MarkTeamChatRead {
            team: "network".into(),
        },
    )
    .await;
    assert_eq!(
        find(&queues(&bob).await, "team:network").chat_unread,
        Some(false)
    );

    match ok(
        &bob,
        RequestBody::TeamChatHistory {
            team: "network".into(),
        },
    )
    .await
    {
        Reply::ChatHistory { lines } => {
            let texts: Vec<_> = lines.iter().map(|l| l.text.as_str()).collect();
            assert_eq!(texts, ["first", "second", "third"]);
            let seqs: Vec<_> = lines.iter().map(|l| l.seq).collect();
            assert_eq!(seqs, [0, 1, 2]);
        }
        other => panic!("expected history, got {other:?}"),
    }

    for body in [
        RequestBody::TeamChat {
            team: "network".into(),
            text: "let me in".into(),
        },
        RequestBody::TeamChatHistory {
            team: "network".into(),
        },
        RequestBody::MarkTeamChatRead {
            team: "network".into(),
        },
    ] {
        assert_eq!(refused(&carol, body).await, ErrorCode::PermissionDenied);
    }
}

#[actix_web::test]
async fn queue_view_shows_customers_and_sorts() {
    let app = spawn_app().await;
    let alice = app.rep("alice").await;

    let (_zoe, zoe_s) = filed_issue(
        &app,
        ClientKind::Desktop,
        "wifi",
        ["Zoe", "Zeta Ltd", "no signal upstairs"],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    let (_mia, mia_s) = filed_issue(&app, ClientKind::Desktop, "vpn", ["Mia", "Mu", "slow"]).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    let (_adam, adam_s) = filed_issue(
        &app,
        ClientKind::Mobile,
        "vpn",
        ["adam", "Acme", "tunnel drops"],
    )
    .await;

    // Each sort gives its own order: by wait Zoe, Mia, adam; by name adam,
    // Mia, Zoe; by issue Mia, adam (vpn, longest waiting first), Zoe.
    let v = view(&alice, "team:network", SortBy::Wait).await;
    assert_eq!(v.name, "Network Support");
    assert_eq!(v.sort, SortBy::Wait);
    let ids: Vec<_> = v.items.iter().map(|i| i.summary.session.clone()).collect();
    assert_eq!(
        ids,
        [
            zoe_s.session.clone(),
            mia_s.session.clone(),
            adam_s.session.clone()
        ]
    );
    let positions: Vec<_> = v.items.iter().map(|i| i.position).collect();
    assert_eq!(positions, [1, 2, 3]);
    assert!(v.items[0].waited_ms >= v.items[1].waited_ms);
    assert!(v.items[1].waited_ms >= v.items[2].waited_ms);
    assert!(v.items[0].waited_ms >= 60, "{}", v.items[0].waited_ms);

    let z = &v.items[0].summary;
    assert_eq!(z.customer_name, "Zoe");
    assert_eq!(z.display_name, "Zoe");
    assert_eq!(z.company, "Zeta Ltd");
    assert_eq!(z.issue_type.as_deref(), Some("wifi"));
    assert_eq!(z.description, "no signal upstairs");
    assert_eq!(z.client, ClientKind::Desktop);
    assert!(!z.browser);
    assert!(!z.view_only);
    assert_eq!(z.entry, EntryPath::IssueForm);
    let a = &v.items[2].summary;
    assert_eq!(a.customer_name, "adam");
    assert_eq!(a.client, ClientKind::Mobile);
    assert!(a.view_only);

    // By name (case-insensitive): adam, Mia, Zoe, keeping queue positions.
    let v = view(&alice, "team:network", SortBy::Name).await;
    assert_eq!(v.sort, SortBy::Name);
    let got: Vec<_> = v
        .items
        .iter()
        .map(|i| (i.summary.customer_name.as_str(), i.position))
        .collect();
    assert_eq!(got, [("adam", 3), ("Mia", 2), ("Zoe", 1)]);

    // By issue type, then longest waiting: vpn (Mia, then adam), then wifi.
    let v = view(&alice, "team:network", SortBy::Issue).await;
    assert_eq!(v.sort, SortBy::Issue);
    let got: Vec<_> = v
        .items
        .iter()
        .map(|i| (i.summary.customer_name.as_str(), i.position))
        .collect();
    assert_eq!(got, [("Mia", 2), ("adam", 3), ("Zoe", 1)]);

    // The queue view follows accepts.
    accept(&alice, &zoe_s.session).await.unwrap();
    let v = view(&alice, "team:network", SortBy::Wait).await;
    let got: Vec<_> = v
        .items
        .iter()
        .map(|i| (i.summary.customer_name.as_str(), i.position))
        .collect();
    assert_eq!(got, [("Mia", 1), ("adam", 2)]);
}

#[actix_web::test]
async fn fifty_reps_race_for_one_session_and_one_wins() {
    const RACERS: usize = 50;
    let app = spawn_app().await;
    let mut alice = app.rep("alice").await;
    let mut bob = app.rep("bob").await;
    for i in 0..RACERS {
        let id = format!("racer{i}");
        switchboard::admin::put_rep(
            &app.hub,
            &id,
            RepInput {
                username: id.clone(),
                display_name: format!("Racer {i}"),
                password: Some(format!("{id}-demo")),
                teams: vec!["network".into()],
                permissions: Permissions::default(),
                public: false,
                ..RepInput::default()
            },
        )
        .await
        .expect("rep created");
    }
    let mut racers = Vec::with_capacity(RACERS);
    for i in 0..RACERS {
        racers.push(app.rep(&format!("racer{i}")).await);
    }

    let mut customer = app.customer(ClientKind::Desktop).await;
    let s = start_issue(&mut customer, "vpn", "Dana").await;
    alert_for(&mut bob, &s.session).await;
    alert_for(&mut racers[RACERS - 1], &s.session).await;

    let results =
        futures_util::future::join_all(racers.iter().map(|r| accept(r, &s.session))).await;
    let winners: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one accept wins: {results:?}");
    let taken = results
        .iter()
        .filter(|r| r.as_ref().err().and_then(|e| e.code()) == Some(ErrorCode::AlreadyTaken))
        .count();
    assert_eq!(taken, RACERS - 1, "{results:?}");
    let winner = format!("racer{}", winners[0]);
    match &results[winners[0]] {
        Ok(Reply::Session { session }) => {
            assert_eq!(session.owner.as_deref(), Some(winner.as_str()));
            assert_eq!(session.participants.len(), 1);
        }
        other => panic!("{other:?}"),
    }

    // Everyone watching sees it leave the queue, accepted.
    let left = |e: &Event| matches!(e, Event::QueueLeft { session, reason: LeftQueueReason::Accepted, .. } if *session == s.session);
    for c in [&mut alice, &mut bob] {
        c.wait_event(WAIT, left).await.expect("queue_left");
    }
    for r in racers.iter_mut() {
        r.wait_event(WAIT, left).await.expect("queue_left");
    }
    assert!(view(&alice, "team:network", SortBy::Wait)
        .await
        .items
        .is_empty());
    customer
        .wait_event(
            WAIT,
            |e| matches!(e, Event::RepJoined { name } if *name == format!("Racer {}", winners[0])),
        )
        .await
        .expect("the customer hears who won");
}

#[actix_web::test]
async fn get_next_takes_the_longest_waiting_across_teams() {
    let app = spawn_app().await;
    let alice = app.rep("alice").await; // rep:alice, then network, then escalations
    let bob = app.rep("bob").await; // network only

    assert_eq!(
        refused(&bob, RequestBody::GetNext).await,
        ErrorCode::QueueEmpty
    );

    // The longest wait of all is in alice's personal queue, which get next
    // never takes from (protocol.md 6.9: team queues only).
    let mut pat = app.customer(ClientKind::Desktop).await;
    let personal = pat
        .start_session(
            Entry::SupportButton {
                button: "desk-alice".into(),
            },
            "Pat",
            "",
            "",
        )
        .await
        .unwrap()
        .session;
    tokio::time::sleep(Duration::from_millis(20)).await;

    let mut customers = Vec::new();
    let mut ids = Vec::new();
    for (issue, name) in [("vpn", "First"), ("wifi", "Second"), ("vpn", "Third")] {
        let mut c = app.customer(ClientKind::Desktop).await;
        ids.push(start_issue(&mut c, issue, name).await.session);
        customers.push(c);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let got = session_of(&ok(&bob, RequestBody::GetNext).await).clone();
    assert_eq!(got.summary.session, ids[0]);
    assert_eq!(got.owner.as_deref(), Some("bob"));

    // Alice moves the second customer to escalations, keeping their wait
    // start. Now one session waits in each of her teams: the second in
    // escalations (listed after network), waiting longer than the third in
    // network.
    accept(&alice, &ids[1]).await.unwrap();
    ok(&alice, transfer(&ids[1], "team:escalations")).await;
    let qs = queues(&alice).await;
    for (queue, waiting) in [
        ("rep:alice", 1),
        ("team:network", 1),
        ("team:escalations", 1),
    ] {
        assert_eq!(find(&qs, queue).waiting, waiting, "{queue}");
    }
    assert!(
        view(&alice, "team:escalations", SortBy::Wait).await.items[0]
            .summary
            .wait_start
            < view(&alice, "team:network", SortBy::Wait).await.items[0]
                .summary
                .wait_start
    );
    // Get next compares the two teams, and skips the personal queue.
    let got = session_of(&ok(&alice, RequestBody::GetNext).await).clone();
    assert_eq!(got.summary.session, ids[1], "the longest wait in her teams");
    assert_eq!(got.owner.as_deref(), Some("alice"));
    // Bob is not in escalations: he gets the third.
    let got = session_of(&ok(&bob, RequestBody::GetNext).await).clone();
    assert_eq!(got.summary.session, ids[2]);
    assert_eq!(
        refused(&bob, RequestBody::GetNext).await,
        ErrorCode::QueueEmpty
    );
    // Pat still waits for alice, but not in a team queue.
    assert_eq!(
        refused(&alice, RequestBody::GetNext).await,
        ErrorCode::QueueEmpty
    );
    let mine = view(&alice, "rep:alice", SortBy::Wait).await;
    let waiting: Vec<_> = mine.items.iter().map(|i| &i.summary.session).collect();
    assert_eq!(waiting, [&personal]);

    // Bob runs two sessions at once.
    match ok(&bob, RequestBody::MySessions).await {
        Reply::Sessions { sessions } => {
            let mine: BTreeSet<_> = sessions.iter().map(|s| s.summary.session.clone()).collect();
            assert_eq!(mine, [ids[0].clone(), ids[2].clone()].into_iter().collect());
            assert!(sessions.iter().all(|s| s.owner.as_deref() == Some("bob")));
        }
        other => panic!("{other:?}"),
    }
    for id in [&ids[0], &ids[2]] {
        chat(&bob, Some(id), "with you in a moment").await;
    }
    for c in customers.iter_mut().step_by(2) {
        c.wait_event(
            WAIT,
            |e| matches!(e, Event::Chat { line, .. } if line.text == "with you in a moment"),
        )
        .await
        .expect("both customers hear from bob");
    }
}

#[actix_web::test]
async fn waiting_customers_hear_their_position_and_estimate() {
    let app = spawn_app().await;
    let alice = app.rep("alice").await;
    let mut customers = Vec::new();
    let mut ids = Vec::new();
    for (i, name) in ["One", "Two", "Three"].into_iter().enumerate() {
        let mut c = app.customer(ClientKind::Desktop).await;
        let v = start_issue(&mut c, "vpn", name).await;
        assert_eq!(v.state, "waiting");
        assert_eq!(v.position, Some(i + 1), "{name}'s position on start");
        assert_eq!(v.queue_name.as_deref(), Some("Network Support"));
        assert_eq!(v.estimated_wait_secs, None, "no accept yet: no estimate");
        ids.push(v.session);
        customers.push(c);
    }
    // The reply told each their place; the queue's batched round, which
    // has run once all three have waited a round out, does not say it again
    // while it has not changed.
    tokio::time::sleep(POSITION_ROUND).await;
    for (i, c) in customers.iter_mut().enumerate() {
        let repeated: Vec<Pushed> = pushed_until_quiet(c)
            .await
            .into_iter()
            .filter(|p| {
                matches!(
                    p,
                    Pushed::Event {
                        event: Event::QueuePosition { .. },
                        ..
                    }
                )
            })
            .collect();
        assert!(repeated.is_empty(), "customer {i} told again: {repeated:?}");
    }

    accept(&alice, &ids[0]).await.unwrap();
    for (i, c) in customers.iter_mut().enumerate().skip(1) {
        match c
            .wait_event(
                WAIT,
                |e| matches!(e, Event::QueuePosition { position, .. } if *position == i),
            )
            .await
        {
            Some(Event::QueuePosition {
                estimated_wait_secs,
                ..
            }) => assert!(
                estimated_wait_secs.is_some(),
                "an estimate once a session was accepted"
            ),
            other => panic!("customer {i} not moved up: {other:?}"),
        }
    }
}
