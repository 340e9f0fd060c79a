//! The main path end to end: a customer files the issue form, the team's
//! reps are alerted, one accepts, they chat, the rep ends the session.

use crate::common::*;
use reqwest::Method;
use switchboard::client::Client;
use switchboard::domain::ids::{ClientKind, Role};
use switchboard::error::ErrorCode;
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

/// `logout` revokes the console's token everywhere it is used (another
/// console logging in with it, a REST client) and takes this console back
/// to before its login; the rep's other consoles stay connected.
#[actix_web::test]
async fn logout_revokes_the_token_for_every_client_that_holds_it() {
    let app = spawn_app().await;
    let mut desk = Client::connect(&app.ws_url(), Role::Rep, ClientKind::Desktop)
        .await
        .expect("connects");
    let token = match desk.login("alice", "alice-demo").await.expect("logs in") {
        Reply::LoggedIn { token, .. } => token,
        other => panic!("expected a login, got {other:?}"),
    };
    let phone = app.rep("alice").await;
    let by_token = |token: &str| RequestBody::Login {
        username: None,
        password: None,
        token: Some(token.to_string()),
        resume: None,
    };
    let laptop = Client::connect(&app.ws_url(), Role::Rep, ClientKind::Desktop)
        .await
        .expect("connects");
    reply_of(&laptop, by_token(&token)).await;
    let rest = |token: String| async move {
        rest_json(app.port, Method::GET, "/api/queues", Some(&token), None).await
    };
    assert_eq!(rest(token.clone()).await.0, 200);

    ok(&desk, RequestBody::Logout).await;
    let (status, body) = rest(token.clone()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_token")),
        "{body}"
    );
    let late = Client::connect(&app.ws_url(), Role::Rep, ClientKind::Desktop)
        .await
        .expect("connects");
    let e = late.request(by_token(&token)).await.expect_err("revoked");
    assert_eq!(e.code(), Some(ErrorCode::InvalidToken));
    let e = desk
        .request(RequestBody::ListQueues)
        .await
        .expect_err("this console is logged out");
    assert_eq!(e.code(), Some(ErrorCode::LoginRequired));
    // The other consoles are still connected and answered.
    for console in [&phone, &laptop] {
        match reply_of(console, RequestBody::Ping).await {
            Reply::Pong => {}
            other => panic!("expected a pong, got {other:?}"),
        }
    }
}
