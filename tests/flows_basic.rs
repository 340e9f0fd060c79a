//! The main path end to end: a customer files the issue form, the team's
//! reps are alerted, one accepts, they chat, the rep ends the session.

use crate::common::*;
use switchboard::domain::ids::ClientKind;
use switchboard::protocol::{Event, Reply, RequestBody};

#[actix_web::test]
async fn issue_form_alert_accept_chat_end() {
    let app = spawn_app().await;
    let mut alice = app.rep("alice").await;
    let mut bob = app.rep("bob").await;
    let mut carol = app.rep("carol").await; // billing: must not see network sessions
    let mut customer = app.customer(ClientKind::Desktop).await;

    let view = start_issue(&mut customer, "vpn", "Dana").await;
    assert_eq!(view.state, "waiting");
    assert_eq!(view.queue_name.as_deref(), Some("Network Support"));

    alert_for(&mut alice, &view.session).await;
    alert_for(&mut bob, &view.session).await;
    assert!(stays_quiet(&mut carol, |e| matches!(e, Event::QueueEntered { .. })).await);

    let accepted = accept(&alice, &view.session).await.expect("alice accepts");
    assert_eq!(session_of(&accepted).owner.as_deref(), Some("alice"));
    let err = accept(&bob, &view.session).await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(switchboard::error::ErrorCode::AlreadyTaken)
    );
    bob.wait_event(
        WAIT,
        |e| matches!(e, Event::QueueLeft { session, .. } if *session == view.session),
    )
    .await
    .expect("bob sees the session leave the queue");
    customer
        .wait_event(
            WAIT,
            |e| matches!(e, Event::RepJoined { name } if name == "Alice Network"),
        )
        .await
        .expect("customer told who joined");

    customer
        .request(RequestBody::Chat {
            session: None,
            text: "hello?".into(),
        })
        .await
        .expect("customer chats");
    alice
        .wait_event(
            WAIT,
            |e| matches!(e, Event::Chat { line, .. } if line.text == "hello?"),
        )
        .await
        .expect("rep gets the customer's line");
    alice
        .request(RequestBody::Chat {
            session: Some(view.session.clone()),
            text: "hi Dana".into(),
        })
        .await
        .expect("rep chats");
    customer
        .wait_event(
            WAIT,
            |e| matches!(e, Event::Chat { line, .. } if line.text == "hi Dana"),
        )
        .await
        .expect("customer gets the rep's line");

    alice
        .request(end_session(&view.session))
        .await
        .expect("rep ends");
    customer
        .wait_event(WAIT, |e| matches!(e, Event::SessionEnded { .. }))
        .await
        .expect("customer told it ended");

    let details = alice
        .request(RequestBody::SessionDetails {
            session: view.session.clone(),
        })
        .await
        .expect("history readable after the end");
    let events: Vec<_> = session_of(&details)
        .history
        .iter()
        .map(|h| format!("{:?}", h.event))
        .collect();
    assert_eq!(events, ["Created", "EnteredQueue", "Accepted", "Ended"]);
    let Reply::Session { session } = details else {
        unreachable!()
    };
    assert_eq!(session.chat_lines, 2);
}
