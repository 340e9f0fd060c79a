//! Reconnect and resume: a rep or customer whose connection drops comes
//! back with `resume` and gets exactly the events they missed, in order and
//! with the numbering continuing; when the gap is too old, or the stream is
//! from another run of the server, they get a snapshot instead.

use std::collections::BTreeSet;

use crate::common::*;
use switchboard::client::{Client, Pushed};
use switchboard::domain::ids::{ClientKind, QueueId, Role};
use switchboard::error::ErrorCode;
use switchboard::protocol::{
    Entry, Event, LeftQueueReason, Reply, RequestBody, ResumeFrom, Snapshot,
};

/// The connection drops: the server closes it (a frame over the hard limit
/// does that, as a broken network would), while the [`Client`] keeps its
/// token and the last event number it saw, ready for `reconnect()`.
async fn drop_connection(app: &TestApp, c: &mut Client) {
    let hard = switchboard::connection::hard_frame_limit(app.hub.settings.max_frame_bytes);
    let _ = c.send_raw(vec![0x90; hard + 1024]).await;
    loop {
        match c.next_pushed(WAIT).await {
            Some(Pushed::Closed) => break,
            None => panic!("the connection did not close"),
            Some(_) => {}
        }
    }
}

/// Waits for events on `c` until `done` holds for what arrived.
async fn collect_until(c: &mut Client, done: impl Fn(&[Pushed]) -> bool) -> Vec<Pushed> {
    let mut out = Vec::new();
    while !done(&out) {
        match c.next_pushed(WAIT).await {
            Some(p) => out.push(p),
            None => panic!("events missing; got {out:?}"),
        }
    }
    // Anything right behind belongs to the same burst.
    out.extend(pushed_until_quiet(c).await);
    out
}

fn events(ps: &[Pushed]) -> Vec<(u64, Event)> {
    ps.iter()
        .map(|p| match p {
            Pushed::Event { seq, event, .. } => (*seq, event.clone()),
            other => panic!("expected only events, got {other:?}"),
        })
        .collect()
}

fn has(ps: &[Pushed], want: impl Fn(&Event) -> bool) -> bool {
    ps.iter()
        .any(|p| matches!(p, Pushed::Event { event, .. } if want(event)))
}

#[actix_web::test]
async fn a_rep_gets_exactly_the_missed_events_in_order() {
    let app = spawn_app().await;
    // Two consoles: `desk` stays connected throughout, `laptop` drops.
    let mut desk = app.rep("alice").await;
    let mut laptop = app.rep("alice").await;
    let bob = app.rep("bob").await;
    let mut dana = app.customer(ClientKind::Desktop).await;
    let active = start_issue(&mut dana, "vpn", "Dana").await;
    alert_for(&mut desk, &active.session).await;
    accept(&desk, &active.session).await.expect("accepts");
    // Both consoles got the same events so far, with the same numbers.
    let before_desk = pushed_until_quiet(&mut desk).await;
    let before_laptop = pushed_until_quiet(&mut laptop).await;
    assert_eq!(desk.position(), laptop.position());
    assert!(!before_desk.is_empty() || !before_laptop.is_empty());

    drop_connection(&app, &mut laptop).await;
    let left_at = laptop.position().expect("a position");

    // While the laptop is away: an alert, a chat line, team chat, the alert
    // withdrawn, and a session in alice's personal queue.
    let mut eve = app.customer(ClientKind::Desktop).await;
    let queued = start_issue(&mut eve, "vpn", "Eve").await;
    chat(&dana, None, "are you there?").await;
    bob.request(RequestBody::TeamChat {
        team: "network".into(),
        text: "lunch?".into(),
    })
    .await
    .unwrap();
    accept(&bob, &queued.session).await.expect("bob accepts");
    let mut fay = app.customer(ClientKind::Desktop).await;
    let personal = fay
        .start_session(
            Entry::SupportButton {
                button: "desk-alice".into(),
            },
            "Fay",
            "",
            "",
        )
        .await
        .unwrap();

    let gap = collect_until(&mut desk, |ps| {
        has(
            ps,
            |e| matches!(e, Event::QueueEntered { session, .. } if session.session == personal.session),
        ) && has(ps, |e| matches!(e, Event::QueueLeft { .. }))
            && has(ps, |e| matches!(e, Event::TeamUnread { .. }))
            && has(ps, |e| matches!(e, Event::Chat { .. }))
    })
    .await;
    let gap_events = events(&gap);
    let kinds: BTreeSet<_> = gap_events.iter().map(|(_, e)| e.kind()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "queue_entered",
            "chat",
            "team_chat",
            "team_unread",
            "queue_left"
        ]),
        "{gap_events:?}"
    );
    assert_eq!(gap_events.len(), 6, "{gap_events:?}");
    assert!(gap_events.iter().any(|(_, e)| matches!(e,
        Event::QueueLeft { session, reason: LeftQueueReason::Accepted, .. } if *session == queued.session)));
    assert!(gap_events
        .iter()
        .any(|(_, e)| matches!(e, Event::Chat { line, .. } if line.text == "are you there?")));

    // The laptop comes back and gets exactly those, numbered as before.
    let reply = laptop.reconnect().await.expect("resumes");
    let Reply::LoggedIn { stream, seq, .. } = reply else {
        panic!("expected logged_in, got {reply:?}")
    };
    assert_eq!(stream, left_at.stream, "the same stream continues");
    assert_eq!(seq, gap_events.last().unwrap().0);
    let replay = pushed_until_quiet(&mut laptop).await;
    assert_eq!(replay, gap, "the replay is what the other console saw");
    let seqs: Vec<u64> = events(&replay).iter().map(|(s, _)| *s).collect();
    let expected: Vec<u64> = (left_at.after + 1..=seq).collect();
    assert_eq!(seqs, expected, "no gap, no duplicate");

    // Nothing missed: a reconnect replays nothing...
    laptop.reconnect().await.expect("resumes again");
    assert!(pushed_until_quiet(&mut laptop).await.is_empty());
    // ... and new events reach both consoles with the next number.
    let mut gus = app.customer(ClientKind::Desktop).await;
    let next = start_issue(&mut gus, "wifi", "Gus").await;
    for console in [&mut desk, &mut laptop] {
        match console.next_pushed(WAIT).await {
            Some(Pushed::Event {
                seq: s,
                event: Event::QueueEntered { session, .. },
                ..
            }) => {
                assert_eq!(s, seq + 1);
                assert_eq!(session.session, next.session);
            }
            other => panic!("expected the alert, got {other:?}"),
        }
    }
}

#[actix_web::test]
async fn a_rep_too_far_behind_gets_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(dir, |s| s.server.replay_events = 16).await;
    let mut alice = app.rep("alice").await;
    let bob = app.rep("bob").await;
    bob.request(RequestBody::Star {
        queue: "team:network".parse().unwrap(),
    })
    .await
    .unwrap();
    drop_connection(&app, &mut alice).await;
    let left_at = alice.position().unwrap();

    // More events than the server keeps.
    let mut customers = Vec::new();
    let mut waiting = Vec::new();
    for i in 0..20 {
        let mut c = app.customer(ClientKind::Desktop).await;
        waiting.push(
            start_issue(&mut c, "vpn", &format!("Customer {i:02}"))
                .await
                .session,
        );
        customers.push(c);
    }
    alice
        .request(RequestBody::Ping)
        .await
        .expect_err("still disconnected");

    let reply = alice.reconnect().await.expect("logs in again");
    let Reply::LoggedIn { stream, seq, .. } = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(stream, left_at.stream);
    assert!(seq >= left_at.after + 20);
    let pushed = pushed_until_quiet(&mut alice).await;
    assert_eq!(
        pushed.len(),
        1,
        "only a snapshot, no partial replay: {pushed:?}"
    );
    let Pushed::Snapshot {
        stream: s,
        seq: at,
        snapshot,
    } = &pushed[0]
    else {
        panic!("expected a snapshot, got {:?}", pushed[0])
    };
    assert_eq!((s, *at), (&stream, seq));
    let Snapshot::Rep { queues, .. } = snapshot else {
        panic!("a rep snapshot")
    };
    let network = queues
        .iter()
        .find(|q| q.queue == QueueId::team("network"))
        .expect("the network queue is in the snapshot");
    let ids: Vec<_> = network
        .items
        .iter()
        .map(|i| i.summary.session.clone())
        .collect();
    assert_eq!(ids, waiting, "every waiting session, in order");
    let visible: Vec<_> = queues.iter().map(|q| q.queue.to_string()).collect();
    assert_eq!(visible, ["rep:alice", "team:network", "team:escalations"]);

    // The stream goes on from the snapshot's number.
    let mut late = app.customer(ClientKind::Desktop).await;
    let last = start_issue(&mut late, "vpn", "Late").await;
    match alice.next_pushed(WAIT).await {
        Some(Pushed::Event {
            seq: s,
            event: Event::QueueEntered { session, .. },
            ..
        }) => {
            assert_eq!(s, seq + 1);
            assert_eq!(session.session, last.session);
        }
        other => panic!("{other:?}"),
    }

    // A stream this server never issued (another run): a snapshot too.
    let mut fresh = Client::connect(&app.ws_url(), Role::Rep, ClientKind::Desktop)
        .await
        .unwrap();
    let token = match fresh.login("alice", "alice-demo").await.unwrap() {
        Reply::LoggedIn { token, .. } => token,
        other => panic!("{other:?}"),
    };
    let mut other = Client::connect(&app.ws_url(), Role::Rep, ClientKind::Desktop)
        .await
        .unwrap();
    other
        .request(RequestBody::Login {
            username: None,
            password: None,
            token: Some(token.clone()),
            resume: Some(ResumeFrom {
                stream: "0123456789abcdef0123456789abcdef".into(),
                after: 3,
            }),
        })
        .await
        .unwrap();
    assert!(matches!(
        other.next_pushed(WAIT).await,
        Some(Pushed::Snapshot { .. })
    ));
    // A number from the future of the right stream: a snapshot as well.
    let mut future = Client::connect(&app.ws_url(), Role::Rep, ClientKind::Desktop)
        .await
        .unwrap();
    future
        .request(RequestBody::Login {
            username: None,
            password: None,
            token: Some(token),
            resume: Some(ResumeFrom {
                stream,
                after: seq + 1000,
            }),
        })
        .await
        .unwrap();
    assert!(matches!(
        future.next_pushed(WAIT).await,
        Some(Pushed::Snapshot { .. })
    ));
}

#[actix_web::test]
async fn resuming_a_stream_from_before_a_restart_gets_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[]);
    let mut alice = Client::connect(&server.ws_url(), Role::Rep, ClientKind::Desktop)
        .await
        .unwrap();
    let token = match alice.login("alice", "alice-demo").await.unwrap() {
        Reply::LoggedIn { token, .. } => token,
        other => panic!("{other:?}"),
    };
    let mut customer = server.customer(ClientKind::Desktop).await;
    let view = start_issue(&mut customer, "vpn", "Dana").await;
    alert_for(&mut alice, &view.session).await;
    let old = alice.position().unwrap();
    assert!(old.after >= 1);
    server.kill9();

    let server = ServerProcess::start(dir.path(), &[]);
    let mut again = Client::connect(&server.ws_url(), Role::Rep, ClientKind::Desktop)
        .await
        .unwrap();
    let reply = again
        .request(RequestBody::Login {
            username: None,
            password: None,
            token: Some(token),
            resume: Some(old.clone()),
        })
        .await
        .expect("the token survived the restart");
    let Reply::LoggedIn { stream, seq, .. } = reply else {
        panic!("{reply:?}")
    };
    assert_ne!(stream, old.stream, "a new run, a new stream");
    match again.next_pushed(WAIT).await {
        Some(Pushed::Snapshot {
            stream: s,
            seq: at,
            snapshot: Snapshot::Rep { queues, .. },
        }) => {
            assert_eq!((s, at), (stream, seq));
            let network = queues
                .iter()
                .find(|q| q.queue == QueueId::team("network"))
                .unwrap();
            assert_eq!(network.items.len(), 1);
            assert_eq!(network.items[0].summary.session, view.session);
        }
        other => panic!("expected a snapshot, got {other:?}"),
    }
    // The customer's stream is new too: their resume gets a snapshot.
    let mut c = server.customer(ClientKind::Desktop).await;
    let reply = c
        .request(RequestBody::ResumeSession {
            token: view.token.clone(),
            resume: customer.position(),
        })
        .await
        .expect("the customer's token survived");
    assert!(matches!(reply, Reply::SessionStarted(ref v) if v.state == "waiting"));
    assert!(matches!(
        c.next_pushed(WAIT).await,
        Some(Pushed::Snapshot {
            snapshot: Snapshot::Customer { .. },
            ..
        })
    ));
}

#[actix_web::test]
async fn a_customer_gets_the_missed_lines_in_order() {
    let app = spawn_app().await;
    let mut alice = app.rep("alice").await;
    let mut customer = app.customer(ClientKind::Desktop).await;
    let view = start_issue(&mut customer, "vpn", "Dana").await;
    // Nothing after the reply before the drop: the queue does not repeat
    // the position the reply told.
    assert!(pushed_until_quiet(&mut customer).await.is_empty());
    drop_connection(&app, &mut customer).await;
    let left_at = customer.position().unwrap();

    alert_for(&mut alice, &view.session).await;
    accept(&alice, &view.session).await.unwrap();
    for text in ["hello Dana", "I see your ticket", "please restart"] {
        chat(&alice, Some(&view.session), text).await;
    }

    let reply = customer.reconnect().await.expect("resumes");
    let Reply::SessionStarted(now) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(now.state, "active");
    assert_eq!(now.reps, ["Alice Network"]);
    assert_eq!(now.stream, left_at.stream);
    let replay = events(&pushed_until_quiet(&mut customer).await);
    let seqs: Vec<u64> = replay.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (left_at.after + 1..=now.seq).collect::<Vec<_>>());
    let got: Vec<String> = replay
        .iter()
        .map(|(_, e)| match e {
            Event::RepJoined { name } => format!("joined {name}"),
            Event::Chat { line, .. } => format!("chat {}", line.text),
            other => format!("other {other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        [
            "joined Alice Network",
            "chat hello Dana",
            "chat I see your ticket",
            "chat please restart"
        ]
    );

    // The customer carries on on the resumed connection.
    chat(&customer, None, "done").await;
    hears(&mut alice, "done").await.expect("alice hears it");
    match customer.next_pushed(WAIT).await {
        Some(Pushed::Event {
            seq,
            event: Event::Chat { line, .. },
            ..
        }) => {
            assert_eq!(seq, now.seq + 1);
            assert_eq!(line.text, "done");
        }
        other => panic!("{other:?}"),
    }

    // A token begins with its session's id; the rest is the secret. An
    // unknown token of the old shape, this session's id with another
    // secret, a token naming no session and the real token cut short are
    // all refused alike, and the connection stays.
    assert!(now.token.starts_with(&view.session), "{}", now.token);
    let stranger = app.customer(ClientKind::Desktop).await;
    let forged = format!("{}{}", view.session, "0".repeat(64));
    let nobody = format!("{}{}", "0".repeat(32), &now.token[32..]);
    for token in ["0".repeat(64), forged, nobody, now.token[..95].to_string()] {
        let code = refused(&stranger, resume_session(&token)).await;
        assert_eq!(code, ErrorCode::InvalidToken, "{token}");
    }
    assert_eq!(ok(&stranger, RequestBody::Ping).await, Reply::Pong);

    // Once the session has ended its own token is refused too.
    ok(&alice, end_session(&view.session)).await;
    assert_eq!(
        refused(&stranger, resume_session(&now.token)).await,
        ErrorCode::InvalidToken
    );
}

#[actix_web::test]
async fn a_customer_too_far_behind_gets_a_snapshot_with_the_transcript() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(dir, |s| s.server.replay_events = 16).await;
    let mut alice = app.rep("alice").await;
    let mut customer = app.customer(ClientKind::Desktop).await;
    let view = start_issue(&mut customer, "vpn", "Dana").await;
    alert_for(&mut alice, &view.session).await;
    accept(&alice, &view.session).await.unwrap();
    customer
        .wait_event(WAIT, |e| matches!(e, Event::RepJoined { .. }))
        .await
        .unwrap();
    drop_connection(&app, &mut customer).await;
    for i in 0..20 {
        chat(&alice, Some(&view.session), &format!("line {i}")).await;
    }
    let reply = customer.reconnect().await.unwrap();
    let Reply::SessionStarted(now) = reply else {
        panic!("{reply:?}")
    };
    let pushed = pushed_until_quiet(&mut customer).await;
    assert_eq!(pushed.len(), 1, "{pushed:?}");
    match &pushed[0] {
        Pushed::Snapshot {
            seq,
            snapshot: Snapshot::Customer { view: v, chat },
            ..
        } => {
            assert_eq!(*seq, now.seq);
            assert_eq!(v.state, "active");
            let texts: Vec<_> = chat.iter().map(|l| l.text.clone()).collect();
            assert_eq!(
                texts,
                (0..20).map(|i| format!("line {i}")).collect::<Vec<_>>()
            );
        }
        other => panic!("expected a snapshot, got {other:?}"),
    }
}
