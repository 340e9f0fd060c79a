//! Sessions once accepted: transfer to a team or a rep, sharing (invite,
//! join, leave, ownership), ordered and kept chat, ending by the customer,
//! and the history the REST API shows.

use std::time::Duration;

use crate::common::*;
use switchboard::client::Client;
use switchboard::domain::ids::{ClientKind, QueueId};
use switchboard::domain::session::HistoryEvent;
use switchboard::error::ErrorCode;
use switchboard::protocol::{Event, LeftQueueReason, Reply, RequestBody, SessionDetails};

fn events(d: &SessionDetails) -> Vec<HistoryEvent> {
    d.history.iter().map(|h| h.event).collect()
}

/// A vpn customer waiting in team:network, accepted by `rep`.
async fn accepted_by(app: &TestApp, rep: &Client, name: &str) -> (Client, String) {
    let mut c = app.customer(ClientKind::Desktop).await;
    let v = start_issue(&mut c, "vpn", name).await;
    accept(rep, &v.session).await.expect("accepted");
    (c, v.session)
}

#[actix_web::test]
async fn transfer_to_a_team_and_to_a_rep() {
    let app = spawn_app().await;
    let mut alice = app.rep("alice").await;
    let mut bob = app.rep("bob").await;
    let mut carol = app.rep("carol").await;

    // The targets a rep can pick from.
    match ok(&alice, RequestBody::ListTeams).await {
        Reply::Teams { teams } => {
            let got: Vec<_> = teams
                .iter()
                .map(|t| (t.id.as_str(), t.name.as_str(), t.queue.to_string()))
                .collect();
            assert_eq!(
                got,
                [
                    ("billing", "Billing", "team:billing".to_string()),
                    ("escalations", "Escalations", "team:escalations".to_string()),
                    ("network", "Network Support", "team:network".to_string()),
                ]
            );
        }
        other => panic!("{other:?}"),
    }
    match ok(&alice, RequestBody::ListReps).await {
        Reply::Reps { reps } => {
            let ids: Vec<_> = reps.iter().map(|r| r.id.as_str()).collect();
            assert_eq!(ids, ["admin", "alice", "bob", "carol"]);
            let carol_info = reps.iter().find(|r| r.id == "carol").unwrap();
            assert!(carol_info.online);
            assert!(!carol_info.public);
            assert_eq!(carol_info.teams, ["billing"]);
            assert!(!reps.iter().find(|r| r.id == "admin").unwrap().online);
        }
        other => panic!("{other:?}"),
    }

    let (mut customer, s) = accepted_by(&app, &alice, "Dana").await;
    alert_for(&mut bob, &s).await; // its first arrival, in team:network
    let before = details_of(&alice, &s).await;

    // Only the owner may transfer, only to a queue that exists.
    assert_eq!(
        refused(&bob, transfer(&s, "team:billing")).await,
        ErrorCode::NotYourSession
    );
    assert_eq!(
        refused(&alice, transfer(&s, "team:nowhere")).await,
        ErrorCode::NotFound
    );
    assert_eq!(
        refused(&alice, transfer(&s, "rep:nobody")).await,
        ErrorCode::NotFound
    );
    assert_eq!(
        refused(&alice, transfer("0123456789abcdef", "team:billing")).await,
        ErrorCode::NotFound
    );

    ok(&alice, transfer(&s, "team:billing")).await;
    match alert_for(&mut carol, &s).await {
        Event::QueueEntered { queue, session, .. } => {
            assert_eq!(queue.to_string(), "team:billing");
            assert_eq!(session.wait_start, before.summary.wait_start);
        }
        other => panic!("{other:?}"),
    }
    alice
        .wait_event(
            WAIT,
            |e| matches!(e, Event::SessionClosed { session, .. } if *session == s),
        )
        .await
        .expect("alice is out of the session");
    told_transferred(&mut customer, "Billing")
        .await
        .expect("the customer is told");
    assert!(stays_quiet(&mut bob, |e| matches!(e, Event::QueueEntered { .. })).await);

    let d = details_of(&carol, &s).await;
    assert_eq!(d.owner, None);
    assert!(d.participants.is_empty());
    assert_eq!(d.last_queue, QueueId::team("billing"));
    assert_eq!(d.entered_through, QueueId::team("network"));
    assert_eq!(d.summary.wait_start, before.summary.wait_start);
    let view = queue_of(&carol, "team:billing").await;
    assert_eq!(view.items.len(), 1);
    assert_eq!(view.items[0].summary.session, s);
    // Alice handed it on: it is no longer hers.
    match ok(&alice, RequestBody::MySessions).await {
        Reply::Sessions { sessions } => assert!(sessions.is_empty()),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        refused(
            &alice,
            RequestBody::Chat {
                session: Some(s.clone()),
                text: "still mine?".into()
            }
        )
        .await,
        ErrorCode::NotYourSession
    );

    // Carol takes it and passes it to bob personally.
    accept(&carol, &s).await.expect("carol accepts");
    ok(&carol, transfer(&s, "rep:bob")).await;
    match alert_for(&mut bob, &s).await {
        Event::QueueEntered { queue, .. } => assert_eq!(queue.to_string(), "rep:bob"),
        other => panic!("{other:?}"),
    }
    told_transferred(&mut customer, "Bob Network")
        .await
        .expect("told about the second transfer");
    accept(&bob, &s).await.expect("bob accepts");
    let d = details_of(&bob, &s).await;
    assert_eq!(
        events(&d),
        [
            HistoryEvent::Created,
            HistoryEvent::EnteredQueue,
            HistoryEvent::Accepted,
            HistoryEvent::Transferred,
            HistoryEvent::EnteredQueue,
            HistoryEvent::Accepted,
            HistoryEvent::Transferred,
            HistoryEvent::EnteredQueue,
            HistoryEvent::Accepted,
        ]
    );
}

#[actix_web::test]
async fn a_participant_who_is_not_the_owner_cannot_transfer() {
    let app = spawn_app().await;
    let alice = app.rep("alice").await;
    let bob = app.rep("bob").await;
    let (_c, s) = accepted_by(&app, &alice, "Dana").await;
    ok(&alice, invite(&s, "rep:bob")).await;
    ok(&bob, join(&s)).await;
    assert_eq!(
        refused(&bob, transfer(&s, "team:billing")).await,
        ErrorCode::NotOwner
    );
    assert_eq!(refused(&bob, end_session(&s)).await, ErrorCode::NotOwner);
}

#[actix_web::test]
async fn sharing_a_session_invite_join_leave_end() {
    let app = spawn_app().await;
    let mut alice = app.rep("alice").await;
    let mut bob = app.rep("bob").await;
    let mut carol = app.rep("carol").await;
    let (mut customer, s) = accepted_by(&app, &alice, "Dana").await;

    // Nobody joins uninvited.
    assert_eq!(refused(&bob, join(&s)).await, ErrorCode::NotInvited);
    assert_eq!(
        refused(&alice, invite(&s, "rep:alice")).await,
        ErrorCode::AlreadyInSession
    );
    assert_eq!(
        refused(&bob, invite(&s, "rep:carol")).await,
        ErrorCode::NotYourSession
    );

    // A personal invitation: an `invited` event and an entry in bob's
    // personal queue view.
    ok(&alice, invite(&s, "rep:bob")).await;
    match bob
        .wait_event(WAIT, |e| matches!(e, Event::Invited { .. }))
        .await
    {
        Some(Event::Invited { queue, invitation }) => {
            assert_eq!(queue.to_string(), "rep:bob");
            assert_eq!(invitation.session, s);
            assert_eq!(invitation.invited_by, "alice");
            assert_eq!(invitation.display_name, "Dana");
        }
        other => panic!("bob not invited: {other:?}"),
    }
    let bobs = queue_of(&bob, "rep:bob").await;
    assert!(bobs.items.is_empty());
    assert_eq!(bobs.invitations.len(), 1);
    assert_eq!(bobs.invitations[0].session, s);
    match ok(&bob, RequestBody::ListQueues).await {
        Reply::Queues { queues } => {
            let mine = queues
                .iter()
                .find(|q| q.queue == QueueId::rep("bob"))
                .unwrap();
            assert_eq!(mine.invitations, 1);
        }
        other => panic!("{other:?}"),
    }
    // The invitee may look before joining.
    assert_eq!(details_of(&bob, &s).await.summary.session, s);

    let joined = session_of(&ok(&bob, join(&s)).await).clone();
    assert_eq!(joined.owner.as_deref(), Some("alice"));
    let who: Vec<_> = joined.participants.iter().map(|p| p.rep.as_str()).collect();
    assert_eq!(who, ["alice", "bob"]);
    customer
        .wait_event(
            WAIT,
            |e| matches!(e, Event::RepJoined { name } if name == "Bob Network"),
        )
        .await
        .expect("the customer hears bob joined");
    alice
        .wait_event(
            WAIT,
            |e| matches!(e, Event::SessionUpdated { session } if session.participants.len() == 2),
        )
        .await
        .expect("the owner sees bob join");
    bob.wait_event(
        WAIT,
        |e| matches!(e, Event::InvitationWithdrawn { session, .. } if *session == s),
    )
    .await
    .expect("the used invitation leaves bob's queue");
    assert_eq!(refused(&bob, join(&s)).await, ErrorCode::AlreadyInSession);

    // A team invitation: any member of billing may use it.
    ok(&alice, invite(&s, "team:billing")).await;
    match carol
        .wait_event(WAIT, |e| matches!(e, Event::Invited { .. }))
        .await
    {
        Some(Event::Invited { queue, .. }) => assert_eq!(queue.to_string(), "team:billing"),
        other => panic!("carol's team not invited: {other:?}"),
    }
    let joined = session_of(&ok(&carol, join(&s)).await).clone();
    assert_eq!(joined.participants.len(), 3);

    // The owner leaves: the longest-present participant (bob) takes over.
    ok(&alice, leave(&s)).await;
    alice
        .wait_event(
            WAIT,
            |e| matches!(e, Event::SessionClosed { session, .. } if *session == s),
        )
        .await
        .expect("alice is out");
    customer
        .wait_event(
            WAIT,
            |e| matches!(e, Event::RepLeft { name } if name == "Alice Network"),
        )
        .await
        .expect("the customer hears alice left");
    bob.wait_event(WAIT, |e| {
        matches!(e, Event::SessionUpdated { session } if session.owner.as_deref() == Some("bob"))
    })
    .await
    .expect("bob is told he owns it");
    let d = details_of(&carol, &s).await;
    assert_eq!(d.owner.as_deref(), Some("bob"));
    assert_eq!(
        refused(&carol, transfer(&s, "team:network")).await,
        ErrorCode::NotOwner
    );

    // Down to one rep, who cannot leave.
    ok(&carol, leave(&s)).await;
    assert_eq!(refused(&bob, leave(&s)).await, ErrorCode::LastRep);

    // Bring carol back, then the owner ends it for everyone.
    ok(&bob, invite(&s, "rep:carol")).await;
    ok(&carol, join(&s)).await;
    ok(&bob, end_session(&s)).await;
    for rep in [&mut bob, &mut carol] {
        rep.wait_event(
            WAIT,
            |e| matches!(e, Event::SessionEnded { session, .. } if *session == s),
        )
        .await
        .expect("every rep told it ended");
    }
    customer
        .wait_event(WAIT, |e| matches!(e, Event::SessionEnded { .. }))
        .await
        .expect("the customer told it ended");

    let d = details_of(&alice, &s).await;
    assert_eq!(
        events(&d),
        [
            HistoryEvent::Created,
            HistoryEvent::EnteredQueue,
            HistoryEvent::Accepted,
            HistoryEvent::Invited,
            HistoryEvent::Joined,
            HistoryEvent::Invited,
            HistoryEvent::Joined,
            HistoryEvent::Left,
            HistoryEvent::OwnerChanged,
            HistoryEvent::Left,
            HistoryEvent::Invited,
            HistoryEvent::Joined,
            HistoryEvent::Ended,
        ]
    );
}

#[actix_web::test]
async fn ending_withdraws_open_invitations() {
    let app = spawn_app().await;
    let alice = app.rep("alice").await;
    let mut bob = app.rep("bob").await;
    let (_c, s) = accepted_by(&app, &alice, "Dana").await;
    ok(&alice, invite(&s, "rep:bob")).await;
    bob.wait_event(WAIT, |e| matches!(e, Event::Invited { .. }))
        .await
        .expect("invited");
    ok(&alice, end_session(&s)).await;
    bob.wait_event(
        WAIT,
        |e| matches!(e, Event::InvitationWithdrawn { session, .. } if *session == s),
    )
    .await
    .expect("the invitation goes away with the session");
    let bobs = queue_of(&bob, "rep:bob").await;
    assert!(bobs.invitations.is_empty());
    assert_eq!(refused(&bob, join(&s)).await, ErrorCode::SessionEnded);
}

#[actix_web::test]
async fn chat_is_ordered_and_kept() {
    let app = spawn_app().await;
    let mut alice = app.rep("alice").await;
    let (mut customer, s) = accepted_by(&app, &alice, "Dana").await;

    let mut sent = Vec::new();
    for i in 0..20 {
        let text = format!("line {i}");
        if i % 2 == 0 {
            chat(&customer, None, &text).await;
        } else {
            chat(&alice, Some(&s), &text).await;
        }
        sent.push(text);
    }

    for (who, c) in [("customer", &mut customer), ("alice", &mut alice)] {
        let mut got = Vec::new();
        while got.len() < 20 {
            match c
                .wait_event(WAIT, |e| matches!(e, Event::Chat { .. }))
                .await
            {
                Some(Event::Chat { session, line }) => {
                    assert_eq!(session, s);
                    got.push(line);
                }
                other => panic!("{who} got {} lines, then {other:?}", got.len()),
            }
        }
        let texts: Vec<_> = got.iter().map(|l| l.text.clone()).collect();
        assert_eq!(texts, sent, "{who} sees the lines in order");
        let seqs: Vec<_> = got.iter().map(|l| l.seq).collect();
        assert_eq!(seqs, (0..20).collect::<Vec<u64>>(), "{who}");
        assert_eq!(got[0].from, "customer");
        assert_eq!(got[0].name, "Dana");
        assert_eq!(got[1].from, "rep:alice");
        assert_eq!(got[1].name, "Alice Network");
    }

    for c in [&customer, &alice] {
        let body = RequestBody::ChatHistory {
            session: if std::ptr::eq(c, &customer) {
                None
            } else {
                Some(s.clone())
            },
        };
        match ok(c, body).await {
            Reply::ChatHistory { lines } => {
                let texts: Vec<_> = lines.iter().map(|l| l.text.clone()).collect();
                assert_eq!(texts, sent);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(details_of(&alice, &s).await.chat_lines, 20);

    // Empty lines are refused and change nothing.
    assert_eq!(
        refused(
            &customer,
            RequestBody::Chat {
                session: None,
                text: "  ".into()
            }
        )
        .await,
        ErrorCode::InvalidRequest
    );
    // Kept after the end, for the reps who were in it.
    ok(&alice, end_session(&s)).await;
    match ok(
        &alice,
        RequestBody::ChatHistory {
            session: Some(s.clone()),
        },
    )
    .await
    {
        Reply::ChatHistory { lines } => assert_eq!(lines.len(), 20),
        other => panic!("{other:?}"),
    }
    let bob = app.rep("bob").await;
    assert_eq!(
        refused(
            &bob,
            RequestBody::ChatHistory {
                session: Some(s.clone())
            }
        )
        .await,
        ErrorCode::NotYourSession
    );
}

#[actix_web::test]
async fn customer_ends_the_session_and_history_is_in_the_api() {
    let app = spawn_app().await;
    let mut alice = app.rep("alice").await;
    let mut bob = app.rep("bob").await;
    let (mut customer, s) = accepted_by(&app, &alice, "Dana").await;
    ok(&alice, invite(&s, "rep:bob")).await;
    ok(&bob, join(&s)).await;
    ok(&bob, leave(&s)).await;
    ok(&alice, invite(&s, "team:network")).await;
    ok(&bob, join(&s)).await;

    ok(&customer, RequestBody::EndSession { session: None }).await;
    for rep in [&mut alice, &mut bob] {
        match rep
            .wait_event(
                WAIT,
                |e| matches!(e, Event::SessionEnded { session, .. } if *session == s),
            )
            .await
        {
            Some(Event::SessionEnded { reason, .. }) => {
                assert_eq!(reason, "ended by the customer")
            }
            other => panic!("{other:?}"),
        }
    }
    customer
        .wait_event(WAIT, |e| matches!(e, Event::SessionEnded { .. }))
        .await
        .expect("the customer sees it ended");
    // Nothing more can be said in an ended session.
    assert_eq!(
        refused(
            &customer,
            RequestBody::Chat {
                session: None,
                text: "wait".into()
            }
        )
        .await,
        ErrorCode::SessionEnded
    );
    match ok(&alice, RequestBody::MySessions).await {
        Reply::Sessions { sessions } => assert!(sessions.is_empty()),
        other => panic!("{other:?}"),
    }

    let d = details_of(&alice, &s).await;
    let last = d.history.last().unwrap();
    assert_eq!(last.event, HistoryEvent::Ended);
    assert_eq!(last.actor, "customer");

    let token = rest_login(app.port, "alice").await;
    let (status, body) = rest_session(app.port, &token, &s).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["session"], s.as_str());
    assert_eq!(body["state"], "ended");
    let history: Vec<(String, String)> = body["history"]
        .as_array()
        .expect("a history")
        .iter()
        .map(|h| {
            (
                h["event"].as_str().unwrap().to_string(),
                h["actor"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expect = [
        ("created", "customer"),
        ("entered_queue", "system"),
        ("accepted", "rep:alice"),
        ("invited", "rep:alice"),
        ("joined", "rep:bob"),
        ("left", "rep:bob"),
        ("invited", "rep:alice"),
        ("joined", "rep:bob"),
        ("ended", "customer"),
    ]
    .map(|(e, a)| (e.to_string(), a.to_string()));
    assert_eq!(history, expect);

    // Someone who had no part in it is refused; nobody without a token.
    let carol = rest_login(app.port, "carol").await;
    let (status, body) = rest_session(app.port, &carol, &s).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "not_your_session");
    let r = reqwest::get(app.http(&format!("/api/sessions/{s}")))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let admin = rest_login(app.port, "admin").await;
    let (status, _) = rest_session(app.port, &admin, &s).await;
    assert_eq!(status, 200);
}

#[actix_web::test]
async fn a_waiting_customer_can_give_up() {
    let app = spawn_app().await;
    let mut bob = app.rep("bob").await;
    let mut customer = app.customer(ClientKind::Desktop).await;
    let v = start_issue(&mut customer, "vpn", "Dana").await;
    alert_for(&mut bob, &v.session).await;
    ok(&customer, RequestBody::EndSession { session: None }).await;
    bob.wait_event(WAIT, |e| {
        matches!(e, Event::QueueLeft { session, reason: LeftQueueReason::Ended, .. } if *session == v.session)
    })
    .await
    .expect("the session leaves the queue");
    assert_eq!(
        accept(&bob, &v.session).await.unwrap_err().code(),
        Some(ErrorCode::SessionEnded)
    );
    // Bob had no part in it; an admin reads its history.
    assert_eq!(
        refused(
            &bob,
            RequestBody::SessionDetails {
                session: v.session.clone()
            }
        )
        .await,
        ErrorCode::NotYourSession
    );
    let admin = rest_login(app.port, "admin").await;
    let (status, body) = rest_session(app.port, &admin, &v.session).await;
    assert_eq!(status, 200, "{body}");
    let history: Vec<_> = body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(history, ["created", "entered_queue", "ended"]);
}

/// A rep's request that reaches a session just as its customer ends it is
/// answered as the ended session it meets (`session_ended`), never with
/// `internal`: the actor of an ended session stops with the request still
/// in its mailbox.
#[actix_web::test]
async fn a_request_racing_the_customers_end_gets_session_ended() {
    let app = spawn_app().await;
    let mut alice = app.rep("alice").await;
    let mut met_the_end = 0;
    for i in 0..20 {
        let mut customer = app.customer(ClientKind::Desktop).await;
        let view = start_issue(&mut customer, "vpn", &format!("Racer {i}")).await;
        alert_for(&mut alice, &view.session).await;
        // The accept sent with the end, or a millisecond or two after it:
        // it then meets the end's write in the session's mailbox, or the
        // ended session, but meets the end either way.
        let lag = Duration::from_millis(i % 3);
        let (ended, accepted) = tokio::join!(
            customer.request(RequestBody::EndSession { session: None }),
            async {
                if !lag.is_zero() {
                    tokio::time::sleep(lag).await;
                }
                accept(&alice, &view.session).await
            },
        );
        ended.expect("the customer ends their session");
        let outcome = match accepted {
            Ok(_) => "accepted".to_string(),
            Err(e) => format!("{:?}", e.code()),
        };
        assert!(
            outcome == "accepted" || outcome == "Some(SessionEnded)",
            "accept racing the end answered {outcome}"
        );
        met_the_end += usize::from(outcome != "accepted");
        let _ = alice.drain();
    }
    assert!(
        met_the_end > 0,
        "no accept ever met the end: no race was run"
    );
    // Alice's connection carried on through all of it.
    queue_of(&alice, "team:network").await;
}

/// Inviting a queue twice is answered `ok` and changes nothing: one
/// history line, one alert, one invitation.
#[actix_web::test]
async fn inviting_the_same_queue_again_changes_nothing() {
    let app = spawn_app().await;
    let alice = app.rep("alice").await;
    let mut admin = app.rep("admin").await;
    let (_customer, id) = accepted_by(&app, &alice, "Dana").await;
    for _ in 0..3 {
        reply_of(&alice, invite(&id, "team:escalations")).await;
    }
    admin
        .wait_event(WAIT, |e| matches!(e, Event::Invited { .. }))
        .await
        .expect("escalations is invited");
    assert!(
        stays_quiet(&mut admin, |e| matches!(e, Event::Invited { .. })).await,
        "a second alert for the same invitation"
    );
    let d = details_of(&alice, &id).await;
    assert_eq!(d.invitations.len(), 1);
    let invited = events(&d)
        .into_iter()
        .filter(|e| *e == HistoryEvent::Invited)
        .count();
    assert_eq!(invited, 1, "{:?}", d.history);
    // Still refused to someone who is not in the session.
    let bob = app.rep("bob").await;
    let e = bob
        .request(invite(&id, "team:escalations"))
        .await
        .expect_err("bob is not in the session");
    assert_eq!(e.code(), Some(ErrorCode::NotYourSession));
}

/// A rep's two consoles race: one accepts a session (too late: it is
/// active), the other joins it through an invitation. However the two
/// cross, the rep ends up in the session and the server knows it: it is
/// in their sessions, which is what a lost connection would requeue.
#[actix_web::test]
async fn an_accept_that_fails_does_not_undo_a_join_from_another_console() {
    let app = spawn_app().await;
    let mut bob = app.rep("bob").await;
    let desk = app.rep("alice").await;
    let laptop = app.rep("alice").await;
    for i in 0..10 {
        let mut customer = app.customer(ClientKind::Desktop).await;
        let view = start_issue(&mut customer, "vpn", &format!("Race {i}")).await;
        let id = view.session.clone();
        alert_for(&mut bob, &id).await;
        accept(&bob, &id).await.expect("bob accepts");
        reply_of(&bob, invite(&id, "rep:alice")).await;
        let (accepted, joined) = tokio::join!(accept(&desk, &id), laptop.request(join(&id)));
        assert!(accepted.is_err(), "the session was already active");
        joined.expect("the invitation is used");
        let mine = match reply_of(&desk, RequestBody::MySessions).await {
            Reply::Sessions { sessions } => sessions,
            other => panic!("expected sessions, got {other:?}"),
        };
        assert!(
            mine.iter().any(|d| d.summary.session == id),
            "round {i}: alice is in the session but the server forgot it"
        );
        reply_of(&bob, end_session(&id)).await;
        let _ = bob.drain();
    }
}

/// A customer who resumes just after a transfer is not shown the queue
/// they left: their view names the new queue once it has told them their
/// place, and none before.
#[actix_web::test]
async fn a_resume_right_after_a_transfer_does_not_show_the_old_queue() {
    let app = spawn_app().await;
    let alice = app.rep("alice").await;
    let mut customer = app.customer(ClientKind::Desktop).await;
    let started = start_issue(&mut customer, "vpn", "Dana").await;
    let (id, token) = (started.session, started.token);
    accept(&alice, &id).await.expect("accepted");
    ok(&alice, transfer(&id, "team:billing")).await;
    let again = app.customer(ClientKind::Desktop).await;
    let view = match reply_of(&again, resume_session(&token)).await {
        Reply::SessionStarted(view) => view,
        other => panic!("expected the customer's view, got {other:?}"),
    };
    assert_eq!(view.state, "waiting");
    assert!(
        matches!(view.queue_name.as_deref(), None | Some("Billing")),
        "{view:?}"
    );
}

/// Joining a shared session takes one of the rep's places like an accept:
/// at their maximum it is refused, and once a session ends they may join.
#[actix_web::test]
async fn a_rep_at_their_maximum_cannot_join_until_a_session_ends() {
    let dir = tempfile::tempdir().expect("temp dir");
    let app = spawn_app_with(dir, |s| s.supervisor.max_sessions_per_rep = 1).await;
    let alice = app.rep("alice").await;
    let bob = app.rep("bob").await;
    let (_first, busy) = accepted_by(&app, &alice, "Dana").await;
    let (_second, shared) = accepted_by(&app, &bob, "Eve").await;
    reply_of(&bob, invite(&shared, "rep:alice")).await;
    let e = alice
        .request(join(&shared))
        .await
        .expect_err("alice runs her one session");
    assert_eq!(e.code(), Some(ErrorCode::TooManySessions));
    reply_of(&alice, end_session(&busy)).await;
    match reply_of(&alice, join(&shared)).await {
        Reply::Session { session } => {
            assert!(session.participants.iter().any(|p| p.rep == "alice"));
        }
        other => panic!("expected the session, got {other:?}"),
    }
}
