//! Bad input over a real WebSocket: every broken or refused request gets an
//! error frame with its stable code and a sentence, the connection keeps
//! working (a `ping` on the same socket gets its `pong`), other clients are
//! still served, nothing stored changes, and the error counter moves.

use std::time::Duration;

use crate::common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use switchboard::client::{Client, Pushed};
use switchboard::domain::ids::{ClientKind, Role};
use switchboard::error::ErrorCode;
use switchboard::protocol::{Event, Reply, RequestBody};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
use tokio_tungstenite::tungstenite::Message;

/// Asserts `f` is an error frame with `code`, a sentence, and `re`.
fn assert_error(f: &Value, code: &str, re: Option<u64>) {
    assert_eq!(f["type"], "error", "{f}");
    assert_eq!(f["code"], code, "{f}");
    let message = f["message"].as_str().unwrap_or_default();
    assert!(message.len() > 5, "an error carries a sentence: {f}");
    match re {
        Some(id) => assert_eq!(f["re"], json!(id), "{f}"),
        None => assert!(
            f.get("re").is_none_or(Value::is_null),
            "no request id could be read, so none is echoed: {f}"
        ),
    }
}

async fn refused(c: &Client, body: RequestBody) -> (ErrorCode, String) {
    match c.request(body).await {
        Err(switchboard::client::ClientError::Server { code, message }) => (code, message),
        other => panic!("expected a server error, got {other:?}"),
    }
}

async fn pong(c: &Client) {
    assert_eq!(
        c.request(RequestBody::Ping).await.expect("ping answered"),
        Reply::Pong
    );
}

/// The next error frame without `re`, skipping pushed events.
async fn next_error(c: &mut Client) -> (ErrorCode, String) {
    loop {
        match c.next_pushed(WAIT).await {
            Some(Pushed::Error { code, message }) => return (code, message),
            Some(Pushed::Event { .. }) => continue,
            other => panic!("expected an error frame, got {other:?}"),
        }
    }
}

/// The value of `switchboard_errors_total{code="<code>"}` (0 if absent).
async fn error_count(app: &TestApp, code: &str) -> u64 {
    let text = reqwest::get(app.http("/metrics"))
        .await
        .expect("metrics reachable")
        .text()
        .await
        .expect("metrics body");
    let want = format!("switchboard_errors_total{{code=\"{code}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&want))
        .map(|v| v.trim().parse().expect("a counter value"))
        .unwrap_or(0)
}

#[actix_web::test]
async fn broken_frames_get_an_error_and_the_connection_stays() {
    let app = spawn_app().await;
    let bob = app.rep("bob").await;
    let mut customer = app.customer(ClientKind::Desktop).await;
    let view = start_issue(&mut customer, "vpn", "Dana").await;
    let before = details_of(&bob, &view.session).await;

    let mut raw = Raw::connect(&app.ws_url()).await;
    raw.hello("rep").await;
    raw.login("alice").await;

    // Not MessagePack at all: no id can be read.
    raw.send_bytes(vec![0xc1, 0xff, 0x00]).await;
    assert_error(&raw.answer().await.value, "malformed_frame", None);
    assert!(raw.pings().await);

    // MessagePack, but an array instead of a map.
    raw.send_mp(json!([1, "accept", view.session])).await;
    assert_error(&raw.answer().await.value, "malformed_frame", None);
    assert!(raw.pings().await);

    // A map without `type`: the id is echoed.
    raw.send_mp(json!({"id": 7, "session": view.session})).await;
    assert_error(&raw.answer().await.value, "invalid_request", Some(7));
    assert!(raw.pings().await);

    // An unknown type.
    raw.send_mp(json!({"type": "teleport", "id": 8})).await;
    let f = raw.answer().await.value;
    assert_error(&f, "unknown_type", Some(8));
    assert!(f["message"].as_str().unwrap().contains("teleport"), "{f}");
    assert!(raw.pings().await);

    // A missing field: the message names it.
    let f = raw.call(json!({"type": "accept"})).await;
    assert_error(&f, "invalid_request", f["re"].as_u64());
    assert!(f["message"].as_str().unwrap().contains("session"), "{f}");
    assert!(raw.pings().await);

    // Wrong field types and values.
    for queue in [json!(42), json!("nowhere"), json!("team:a b"), json!(null)] {
        let f = raw
            .call(json!({"type": "view_queue", "queue": queue}))
            .await;
        assert_error(&f, "invalid_request", f["re"].as_u64());
        assert!(f["message"].as_str().unwrap().contains("view_queue"), "{f}");
        assert!(raw.pings().await);
    }
    let f = raw
        .call(json!({"type": "accept", "session": ["not", "a", "string"]}))
        .await;
    assert_error(&f, "invalid_request", f["re"].as_u64());
    assert!(raw.pings().await);

    // The same socket still does real work, and so does everyone else.
    let r = raw
        .call(json!({"type": "view_queue", "queue": "team:network"}))
        .await;
    assert_eq!(r["body"]["kind"], "queue_view", "{r}");
    assert_eq!(r["body"]["items"][0]["session"], json!(view.session));
    pong(&bob).await;
    pong(&customer).await;

    // Nothing stored changed: the session still waits, untouched.
    assert_eq!(details_of(&bob, &view.session).await, before);
    assert_eq!(error_count(&app, "malformed_frame").await, 2);
    assert_eq!(error_count(&app, "unknown_type").await, 1);
    assert_eq!(error_count(&app, "invalid_request").await, 7);
}

#[actix_web::test]
async fn oversized_frames_are_refused_and_huge_ones_close_the_connection() {
    let app = spawn_app().await;
    let max = app.hub.settings.max_frame_bytes;
    let hard = switchboard::connection::hard_frame_limit(max);
    let mut alice = app.rep("alice").await;
    let mut customer = app.customer(ClientKind::Desktop).await;
    let view = start_issue(&mut customer, "vpn", "Dana").await;
    alert_for(&mut alice, &view.session).await;
    let before = details_of(&alice, &view.session).await;

    // Over max_frame_bytes but under the hard limit: answered, kept open.
    // (A chat line that would otherwise be valid MessagePack.)
    let text = "x".repeat(max + 100);
    let big = rmp_serde::to_vec_named(&json!({
        "type": "chat", "id": 5000, "session": view.session, "text": text
    }))
    .unwrap();
    assert!(big.len() > max && big.len() < hard);
    alice.send_raw(big).await.expect("sent");
    let (code, message) = next_error(&mut alice).await;
    assert_eq!(code, ErrorCode::FrameTooLarge);
    assert!(message.contains(&max.to_string()), "{message}");
    pong(&alice).await;
    assert_eq!(
        error_count(&app, "frame_too_large").await,
        1,
        "the error is counted"
    );

    // Far over the hard limit: the server closes this connection...
    let _ = alice.send_raw(vec![0x90; hard * 2]).await;
    let mut closed = false;
    for _ in 0..3 {
        match alice.next_pushed(WAIT).await {
            Some(Pushed::Closed) => {
                closed = true;
                break;
            }
            None => panic!("the server left the connection open"),
            Some(Pushed::Error { code, .. }) => assert_eq!(code, ErrorCode::FrameTooLarge),
            Some(_) => {}
        }
    }
    assert!(closed, "the connection is closed");
    assert!(alice.request(RequestBody::Ping).await.is_err());

    // ... and keeps serving everyone else and new connections.
    pong(&customer).await;
    let again = app.rep("alice").await;
    pong(&again).await;
    assert_eq!(details_of(&again, &view.session).await, before);
    assert_eq!(
        customer
            .request(RequestBody::ChatHistory { session: None })
            .await
            .unwrap(),
        Reply::ChatHistory { lines: vec![] },
        "no chat line was stored"
    );
}

/// The close code the server sends next, skipping other frames.
async fn close_code(raw: &mut Raw) -> u16 {
    let close = raw.close_frame().await.expect("a close frame with a code");
    close.code.into()
}

/// One WebSocket frame of a fragmented message (RFC 6455, 5.4).
fn fragment(data: &[u8], opcode: OpCode, last: bool) -> Message {
    Message::Frame(WsFrame::message(data.to_vec(), opcode, last))
}

#[actix_web::test]
async fn fragments_are_joined_and_bad_text_or_too_many_close_the_connection() {
    let app = spawn_app().await;
    let hard = switchboard::connection::hard_frame_limit(app.hub.settings.max_frame_bytes);
    let binary = OpCode::Data(Data::Binary);
    let more = OpCode::Data(Data::Continue);

    // A request in three fragments, with a ping between two of them: the
    // server joins them and answers the request.
    let mut raw = Raw::connect(&app.ws_url()).await;
    raw.hello("rep").await;
    let bytes = rmp_serde::to_vec_named(&json!({"type": "ping", "id": 9})).expect("encodes");
    let (first, rest) = bytes.split_at(3);
    let (second, third) = rest.split_at(2);
    for m in [
        fragment(first, binary, false),
        Message::Ping(b"hi".to_vec()),
        fragment(second, more, false),
        fragment(third, more, true),
    ] {
        raw.ws.send(m).await.expect("sends");
    }
    let f = raw.answer().await.value;
    assert_eq!(
        (&f["re"], &f["body"]["kind"]),
        (&json!(9), &json!("pong")),
        "{f}"
    );

    // A text frame that is not UTF-8: refused, and closed with 1007.
    raw.ws
        .send(fragment(
            &[b'{', 0xff, 0xfe],
            OpCode::Data(Data::Text),
            true,
        ))
        .await
        .expect("sends");
    let f = raw.answer().await.value;
    assert_error(&f, "malformed_frame", None);
    assert!(f["message"].as_str().unwrap().contains("UTF-8"), "{f}");
    assert_eq!(close_code(&mut raw).await, 1007);

    // Fragments each under the hard limit that add up to more: refused,
    // and closed with 1009.
    let mut raw = Raw::connect(&app.ws_url()).await;
    raw.hello("rep").await;
    let piece = vec![0x90; hard / 2 + 1];
    for m in [
        fragment(&piece, binary, false),
        fragment(&piece, more, false),
        fragment(&piece, more, true),
    ] {
        // The server may close before the last fragment is written.
        let _ = raw.ws.send(m).await;
    }
    assert_error(&raw.answer().await.value, "frame_too_large", None);
    assert_eq!(close_code(&mut raw).await, 1009);

    // The server serves the next connection as before.
    let mut again = Raw::connect(&app.ws_url()).await;
    again.hello("rep").await;
    assert!(again.pings().await);
    assert_eq!(error_count(&app, "malformed_frame").await, 1);
    assert_eq!(error_count(&app, "frame_too_large").await, 1);
}

#[actix_web::test]
async fn conversation_order_errors() {
    let app = spawn_app().await;

    // Anything but hello (and ping) before hello.
    let mut raw = Raw::connect(&app.ws_url()).await;
    let f = raw.call(json!({"type": "list_queues"})).await;
    assert_error(&f, "hello_required", f["re"].as_u64());
    let f = raw
        .call(json!({"type": "login", "username": "alice", "password": "alice-demo"}))
        .await;
    assert_error(&f, "hello_required", f["re"].as_u64());
    assert!(raw.pings().await);

    // The wrong protocol version: refused, and hello can be tried again.
    let f = raw
        .call(json!({"type": "hello", "protocol": 99, "role": "rep"}))
        .await;
    assert_error(&f, "unsupported_protocol", f["re"].as_u64());
    assert!(f["message"].as_str().unwrap().contains("99"), "{f}");
    assert!(raw.pings().await);
    raw.hello("rep").await;

    // A second hello.
    let f = raw
        .call(json!({"type": "hello", "protocol": 1, "role": "rep"}))
        .await;
    assert_error(&f, "already_hello", f["re"].as_u64());
    assert!(raw.pings().await);

    // A rep request before login.
    let f = raw.call(json!({"type": "list_queues"})).await;
    assert_error(&f, "login_required", f["re"].as_u64());
    assert!(raw.pings().await);

    // Bad credentials, then a bad token: still not logged in.
    let f = raw
        .call(json!({"type": "login", "username": "alice", "password": "wrong"}))
        .await;
    assert_error(&f, "bad_credentials", f["re"].as_u64());
    let f = raw
        .call(json!({"type": "login", "username": "nobody", "password": "nobody-demo"}))
        .await;
    assert_error(&f, "bad_credentials", f["re"].as_u64());
    let f = raw
        .call(json!({"type": "login", "token": "not-a-token"}))
        .await;
    assert_error(&f, "invalid_token", f["re"].as_u64());
    let f = raw.call(json!({"type": "list_queues"})).await;
    assert_error(&f, "login_required", f["re"].as_u64());
    assert!(raw.pings().await);
    raw.login("alice").await;
    let r = raw.call(json!({"type": "list_queues"})).await;
    assert_eq!(r["body"]["kind"], "queues", "{r}");

    // The customer side.
    let mut customer = app.customer(ClientKind::Desktop).await;
    let (code, _) = refused(
        &customer,
        RequestBody::Login {
            username: Some("alice".into()),
            password: Some("alice-demo".into()),
            token: None,
            resume: None,
        },
    )
    .await;
    assert_eq!(code, ErrorCode::WrongRole);
    let (code, _) = refused(
        &customer,
        RequestBody::ResumeSession {
            token: "f".repeat(64),
            resume: None,
        },
    )
    .await;
    assert_eq!(code, ErrorCode::InvalidToken);
    pong(&customer).await;
    let view = start_issue(&mut customer, "vpn", "Dana").await;
    for body in [
        RequestBody::ListQueues,
        RequestBody::Accept {
            session: view.session.clone(),
        },
        RequestBody::MySessions,
    ] {
        let (code, message) = refused(&customer, body).await;
        assert_eq!(code, ErrorCode::WrongRole, "{message}");
    }
    pong(&customer).await;

    // A rep connection asking for customer things.
    let alice = app.rep("alice").await;
    let (code, _) = refused(
        &alice,
        RequestBody::StartSession {
            entry: switchboard::protocol::Entry::IssueForm {
                issue_type: "vpn".into(),
            },
            name: "Eve".into(),
            company: String::new(),
            description: String::new(),
        },
    )
    .await;
    assert_eq!(code, ErrorCode::WrongRole);
    let (code, _) = refused(
        &alice,
        RequestBody::Hello {
            protocol: 1,
            role: Role::Rep,
            client: ClientKind::Desktop,
        },
    )
    .await;
    assert_eq!(code, ErrorCode::AlreadyHello);
    pong(&alice).await;

    // Nothing new was stored: only Dana's session waits.
    match alice
        .request(RequestBody::ViewQueue {
            queue: "team:network".parse().unwrap(),
            sort: Default::default(),
        })
        .await
        .unwrap()
    {
        Reply::QueueView(v) => {
            let ids: Vec<_> = v.items.iter().map(|i| i.summary.session.clone()).collect();
            assert_eq!(ids, [view.session.as_str()]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(error_count(&app, "hello_required").await, 2);
    assert_eq!(error_count(&app, "unsupported_protocol").await, 1);
    assert_eq!(error_count(&app, "already_hello").await, 2);
    assert_eq!(error_count(&app, "login_required").await, 2);
    assert_eq!(error_count(&app, "bad_credentials").await, 2);
    assert_eq!(error_count(&app, "invalid_token").await, 2);
    assert_eq!(error_count(&app, "wrong_role").await, 5);
}

#[actix_web::test]
async fn requests_about_other_reps_sessions_are_refused() {
    let app = spawn_app().await;
    let mut alice = app.rep("alice").await;
    let bob = app.rep("bob").await;
    let carol = app.rep("carol").await;

    // One session waits in billing (bob cannot see it), one is alice's.
    let mut billing_customer = app.customer(ClientKind::Desktop).await;
    let billing = start_issue(&mut billing_customer, "invoice", "Fay").await;
    let mut net_customer = app.customer(ClientKind::Desktop).await;
    let owned = start_issue(&mut net_customer, "vpn", "Gus").await;
    alert_for(&mut alice, &owned.session).await;
    accept(&alice, &owned.session).await.expect("alice accepts");
    alice
        .request(RequestBody::Chat {
            session: Some(owned.session.clone()),
            text: "hello Gus".into(),
        })
        .await
        .expect("alice chats");
    let billing_before = details_of(&carol, &billing.session).await;
    let owned_before = details_of(&alice, &owned.session).await;

    let mut seen = Vec::new();
    for (session, expect_accept) in [
        (&billing.session, ErrorCode::PermissionDenied),
        (&owned.session, ErrorCode::AlreadyTaken),
    ] {
        let s = session.clone();
        let cases = [
            (
                RequestBody::SessionDetails { session: s.clone() },
                ErrorCode::NotYourSession,
            ),
            (RequestBody::Accept { session: s.clone() }, expect_accept),
            (
                RequestBody::Chat {
                    session: Some(s.clone()),
                    text: "let me in".into(),
                },
                ErrorCode::NotYourSession,
            ),
            (
                RequestBody::ChatHistory {
                    session: Some(s.clone()),
                },
                ErrorCode::NotYourSession,
            ),
            (end_session(&s), ErrorCode::NotYourSession),
            (
                RequestBody::Transfer {
                    session: s.clone(),
                    to: "team:network".parse().unwrap(),
                },
                ErrorCode::NotYourSession,
            ),
            (
                RequestBody::Control {
                    session: s.clone(),
                    input: "click".into(),
                },
                ErrorCode::NotYourSession,
            ),
        ];
        for (body, want) in cases {
            let name = body.type_name();
            let (code, message) = refused(&bob, body).await;
            assert_eq!(code, want, "bob's {name} on {s}: {message}");
            seen.push(code);
            pong(&bob).await;
        }
    }
    // A queue bob does not see, and a session that does not exist.
    let (code, _) = refused(
        &bob,
        RequestBody::ViewQueue {
            queue: "team:billing".parse().unwrap(),
            sort: Default::default(),
        },
    )
    .await;
    assert_eq!(code, ErrorCode::PermissionDenied);
    let (code, _) = refused(
        &bob,
        RequestBody::Accept {
            session: "0123456789abcdef".into(),
        },
    )
    .await;
    assert_eq!(code, ErrorCode::NotFound);

    // Nothing changed for either session or their customers.
    assert_eq!(details_of(&carol, &billing.session).await, billing_before);
    assert_eq!(details_of(&alice, &owned.session).await, owned_before);
    assert_eq!(owned_before.owner.as_deref(), Some("alice"));
    assert_eq!(owned_before.chat_lines, 1);
    match net_customer
        .request(RequestBody::ChatHistory { session: None })
        .await
        .unwrap()
    {
        Reply::ChatHistory { lines } => {
            let texts: Vec<_> = lines.iter().map(|l| l.text.as_str()).collect();
            assert_eq!(texts, ["hello Gus"]);
        }
        other => panic!("{other:?}"),
    }
    pong(&billing_customer).await;
    let not_yours = seen
        .iter()
        .filter(|c| **c == ErrorCode::NotYourSession)
        .count() as u64;
    assert_eq!(error_count(&app, "not_your_session").await, not_yours);
    assert_eq!(error_count(&app, "permission_denied").await, 2);
}

#[actix_web::test]
async fn chat_text_must_be_one_to_4096_bytes() {
    let app = spawn_app().await;
    let mut alice = app.rep("alice").await;
    let mut customer = app.customer(ClientKind::Desktop).await;
    let view = start_issue(&mut customer, "vpn", "Dana").await;
    alert_for(&mut alice, &view.session).await;
    accept(&alice, &view.session).await.expect("accepts");

    for text in [
        String::new(),
        "   ".into(),
        "é".repeat(2049),
        "y".repeat(4097),
    ] {
        let (code, message) = refused(
            &alice,
            RequestBody::Chat {
                session: Some(view.session.clone()),
                text: text.clone(),
            },
        )
        .await;
        assert_eq!(code, ErrorCode::InvalidRequest, "{message}");
        let (code, _) = refused(
            &customer,
            RequestBody::Chat {
                session: None,
                text: text.clone(),
            },
        )
        .await;
        assert_eq!(code, ErrorCode::InvalidRequest);
        let (code, _) = refused(
            &alice,
            RequestBody::TeamChat {
                team: "network".into(),
                text,
            },
        )
        .await;
        assert_eq!(code, ErrorCode::InvalidRequest);
    }
    pong(&alice).await;
    pong(&customer).await;
    // Exactly 4096 bytes is fine.
    alice
        .request(RequestBody::Chat {
            session: Some(view.session.clone()),
            text: "z".repeat(4096),
        })
        .await
        .expect("4096 bytes accepted");
    match customer
        .request(RequestBody::ChatHistory { session: None })
        .await
        .unwrap()
    {
        Reply::ChatHistory { lines } => {
            assert_eq!(lines.len(), 1, "only the valid line was stored");
            assert_eq!(lines[0].text.len(), 4096);
        }
        other => panic!("{other:?}"),
    }
    match alice
        .request(RequestBody::TeamChatHistory {
            team: "network".into(),
        })
        .await
        .unwrap()
    {
        Reply::ChatHistory { lines } => assert!(lines.is_empty()),
        other => panic!("{other:?}"),
    }
    assert_eq!(error_count(&app, "invalid_request").await, 12);
}

#[actix_web::test]
async fn json_text_frames_work_the_same() {
    let app = spawn_app().await;
    let bob = app.rep("bob").await;
    let mut raw = Raw::connect(&app.ws_url()).await;

    raw.send_text(r#"{"type":"hello","id":1,"protocol":1,"role":"rep"}"#)
        .await;
    let f = raw.answer().await;
    assert!(f.text, "a connection whose hello was text gets JSON");
    assert_eq!(f.value["body"]["kind"], "welcome", "{}", f.value);
    assert_eq!(f.value["re"], 1);

    raw.send_text(r#"{"type":"login","id":2,"username":"alice","password":"alice-demo"}"#)
        .await;
    let f = raw.answer().await;
    assert!(f.text);
    assert_eq!(f.value["body"]["kind"], "logged_in", "{}", f.value);

    // Malformed JSON.
    raw.send_text(r#"{"type": "ping", "id": 3"#).await;
    let f = raw.answer().await;
    assert!(f.text);
    assert_error(&f.value, "malformed_frame", None);
    raw.send_text("[1,2,3]").await;
    assert_error(&raw.answer().await.value, "malformed_frame", None);

    // Unknown type and wrong field type, answered in JSON with `re`.
    raw.send_text(r#"{"type":"fly","id":4}"#).await;
    let f = raw.answer().await;
    assert!(f.text);
    assert_error(&f.value, "unknown_type", Some(4));
    raw.send_text(r#"{"type":"view_queue","id":5,"queue":42}"#)
        .await;
    assert_error(&raw.answer().await.value, "invalid_request", Some(5));
    raw.send_text(r#"{"type":"accept","id":6}"#).await;
    let f = raw.answer().await.value;
    assert_error(&f, "invalid_request", Some(6));
    assert!(f["message"].as_str().unwrap().contains("session"), "{f}");

    // The connection works afterwards.
    raw.send_text(r#"{"type":"ping","id":7}"#).await;
    let f = raw.answer().await;
    assert!(f.text);
    assert_eq!(f.value["re"], 7);
    assert_eq!(f.value["body"]["kind"], "pong");
    raw.send_text(r#"{"type":"view_queue","id":8,"queue":"team:network"}"#)
        .await;
    let f = raw.answer().await;
    assert_eq!(f.value["body"]["kind"], "queue_view", "{}", f.value);
    pong(&bob).await;
    assert_eq!(error_count(&app, "malformed_frame").await, 2);
    assert_eq!(error_count(&app, "unknown_type").await, 1);
}

/// A chat line and a session's end go to the rep and the customer encoded
/// once for all their MessagePack consoles; a console that speaks JSON
/// still gets its own JSON frame, with the same content.
#[actix_web::test]
async fn an_event_shared_by_consoles_reaches_json_and_messagepack_alike() {
    let app = spawn_app().await;
    let mut alice_json = Raw::connect(&app.ws_url()).await;
    alice_json
        .send_text(r#"{"type":"hello","id":1,"protocol":1,"role":"rep"}"#)
        .await;
    assert_eq!(alice_json.answer().await.value["body"]["kind"], "welcome");
    alice_json
        .send_text(r#"{"type":"login","id":2,"username":"alice","password":"alice-demo"}"#)
        .await;
    assert_eq!(alice_json.answer().await.value["body"]["kind"], "logged_in");
    let mut alice = app.rep("alice").await;
    let mut customer = app.customer(ClientKind::Desktop).await;
    let view = start_issue(&mut customer, "vpn", "Dana").await;
    alert_for(&mut alice, &view.session).await;
    accept(&alice, &view.session).await.expect("accepted");

    chat(&customer, None, "the VPN drops").await;
    for c in [&mut alice, &mut customer] {
        match hears(c, "the VPN drops").await {
            Some(Event::Chat { session, line }) => {
                assert_eq!(session, view.session);
                assert_eq!((line.seq, line.from.as_str()), (0, "customer"));
            }
            other => panic!("no chat line, got {other:?}"),
        }
    }
    let line = json_event(&mut alice_json, "chat").await;
    assert_eq!(line["session"], json!(view.session), "{line}");
    assert_eq!(line["line"]["text"], "the VPN drops", "{line}");
    assert_eq!(line["line"]["name"], "Dana", "{line}");

    customer
        .request(RequestBody::EndSession { session: None })
        .await
        .expect("the customer ends it");
    for c in [&mut alice, &mut customer] {
        let ended = c
            .wait_event(WAIT, |e| matches!(e, Event::SessionEnded { .. }))
            .await;
        assert!(
            matches!(&ended, Some(Event::SessionEnded { session, .. }) if *session == view.session),
            "{ended:?}"
        );
    }
    let ended = json_event(&mut alice_json, "session_ended").await;
    assert_eq!(ended["session"], json!(view.session), "{ended}");
}

/// The next pushed event of `kind` on a JSON console: it must come as a
/// text frame, numbered in the console's stream.
async fn json_event(raw: &mut Raw, kind: &str) -> Value {
    loop {
        let f = raw
            .recv()
            .await
            .unwrap_or_else(|| panic!("no {kind} event"));
        if f.value["type"] == "event" && f.value["event"]["kind"] == kind {
            assert!(f.text, "a JSON console gets JSON: {}", f.value);
            assert!(f.value["seq"].is_u64(), "{}", f.value);
            assert!(f.value["stream"].is_string(), "{}", f.value);
            return f.value["event"].clone();
        }
    }
}

#[actix_web::test]
async fn a_broken_client_does_not_disturb_others() {
    let app = spawn_app().await;
    let mut alice = app.rep("alice").await;
    let mut customer = app.customer(ClientKind::Desktop).await;
    let mut noisy = Raw::connect(&app.ws_url()).await;
    noisy.hello("rep").await;
    noisy.login("bob").await;
    for i in 0..50u8 {
        noisy.send_bytes(vec![0xc1, i]).await;
    }
    for _ in 0..50 {
        assert_error(&noisy.answer().await.value, "malformed_frame", None);
    }
    // Meanwhile the normal flow runs unharmed.
    let view = start_issue(&mut customer, "vpn", "Dana").await;
    alert_for(&mut alice, &view.session).await;
    accept(&alice, &view.session).await.expect("accepts");
    assert!(noisy.pings().await);
    let c = Client::connect(&app.ws_url(), Role::Customer, ClientKind::Mobile)
        .await
        .expect("new connections are served");
    pong(&c).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(error_count(&app, "malformed_frame").await, 50);
}

/// A connection that never says hello is told so and closed after
/// `server.hello_timeout_ms`, on its own timer: a long heartbeat does not
/// let it linger.
#[actix_web::test]
async fn a_connection_without_hello_is_closed_on_time_whatever_the_heartbeat() {
    let dir = tempfile::tempdir().expect("temp dir");
    let app = spawn_app_with(dir, |s| {
        s.server.heartbeat_ms = 60_000;
        s.server.pong_timeout_ms = 120_000;
        s.server.hello_timeout_ms = 300;
    })
    .await;
    let started = std::time::Instant::now();
    let mut raw = Raw::connect(&app.ws_url()).await;
    let f = raw.recv().await.expect("an error frame before the close");
    assert_error(&f.value, "hello_required", None);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "told after {:?}, not after the hello timeout",
        started.elapsed()
    );
    let close = raw.close_frame().await;
    assert_eq!(close.map(|c| u16::from(c.code)), Some(1008), "policy close");
    // The server itself is fine: the next client is served.
    let mut next = Raw::connect(&app.ws_url()).await;
    next.hello("customer").await;
    assert!(next.pings().await);
}

/// The heartbeat (docs/protocol.md §3.2). A client that answers the
/// server's pings stays connected however long it says nothing itself; one
/// that stops answering is closed with 1001 "heartbeat timeout" once a
/// ping has gone unanswered for `server.pong_timeout_ms`, and not before.
#[actix_web::test]
async fn a_silent_connection_is_closed_and_one_that_answers_pings_is_kept() {
    use tokio::io::AsyncReadExt;

    let dir = tempfile::tempdir().expect("temp dir");
    let app = spawn_app_with(dir, |s| {
        s.server.heartbeat_ms = 100;
        s.server.pong_timeout_ms = 1_000;
    })
    .await;
    let mut answering = Raw::connect(&app.ws_url()).await;
    let welcome = answering.hello("customer").await;
    // The welcome tells a client both intervals, so it need not know the
    // server's configuration; the client library keeps the heartbeat.
    assert_eq!(welcome["heartbeat_ms"], 100, "{welcome}");
    assert_eq!(welcome["pong_timeout_ms"], 1_000, "{welcome}");
    let client = Client::connect(&app.ws_url(), Role::Customer, ClientKind::Desktop)
        .await
        .expect("connects");
    assert_eq!(client.heartbeat(), Duration::from_millis(100));
    client.close().await;
    let mut silent = Raw::connect(&app.ws_url()).await;
    silent.hello("customer").await;
    let quiet_from = std::time::Instant::now();

    // The silent client stops speaking WebSocket: from here on its bytes
    // are read straight off the TCP socket, so no pong ever goes back
    // (tungstenite would answer each ping as it read it).
    let raw_reader = tokio::spawn(async move {
        let tcp = match silent.ws.get_mut() {
            tokio_tungstenite::MaybeTlsStream::Plain(tcp) => tcp,
            _ => panic!("a plain TCP test connection"),
        };
        // Pings keep coming, so the deadline is for the whole read, not
        // for each read.
        let deadline = tokio::time::Instant::from_std(quiet_from) + WAIT;
        let mut bytes = Vec::new();
        let mut buf = [0u8; 512];
        loop {
            match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
                Err(_) => panic!("the silent connection was not closed within {WAIT:?}"),
            }
        }
        (bytes, quiet_from.elapsed())
    });

    // Two and a half client timeouts long, the answering client only
    // reads: the server's pings, each answered by tungstenite.
    let until = tokio::time::Instant::now() + Duration::from_millis(2_500);
    let mut pings = 0;
    while let Ok(msg) = tokio::time::timeout_at(until, answering.ws.next()).await {
        match msg {
            Some(Ok(Message::Ping(_))) => pings += 1,
            other => panic!("only pings while nobody speaks, got {other:?}"),
        }
    }
    assert!(pings >= 5, "the server pings a quiet client: {pings} pings");
    assert!(answering.pings().await, "kept open past pong_timeout_ms");
    // The server answers the client's own WebSocket ping, payload and all.
    answering
        .ws
        .send(Message::Ping(b"still there?".to_vec()))
        .await
        .expect("sends");
    let pong = loop {
        match tokio::time::timeout(WAIT, answering.ws.next()).await {
            Ok(Some(Ok(Message::Pong(p)))) => break p,
            Ok(Some(Ok(Message::Ping(_)))) => continue,
            other => panic!("expected a pong, got {other:?}"),
        }
    };
    assert_eq!(pong, b"still there?");

    let (bytes, closed_after) = raw_reader.await.expect("reader finishes");
    // Its first unanswered ping went out within a heartbeat (100 ms) of
    // its going quiet, so the close comes a pong timeout (1 s) after that,
    // by 1.1 s: not sooner, and (with slack for a busy test machine) not
    // a further pong timeout or more later.
    assert!(
        closed_after >= Duration::from_millis(1_000),
        "closed after {closed_after:?}, before pong_timeout_ms"
    );
    assert!(
        closed_after < Duration::from_millis(3_000),
        "closed after {closed_after:?}, long after its first unanswered ping"
    );
    // Server frames are unmasked and small here: [FIN|opcode, length, payload].
    let mut frames = Vec::new();
    let mut rest = &bytes[..];
    while rest.len() >= 2 {
        let (opcode, len) = (rest[0] & 0x0f, usize::from(rest[1] & 0x7f));
        assert!(
            len < 126 && rest.len() >= 2 + len,
            "a short frame: {bytes:?}"
        );
        frames.push((opcode, rest[2..2 + len].to_vec()));
        rest = &rest[2 + len..];
    }
    let close = frames.iter().find(|(op, _)| *op == 0x8);
    let (_, payload) = close.unwrap_or_else(|| panic!("no close frame in {frames:?}"));
    assert_eq!(
        u16::from_be_bytes([payload[0], payload[1]]),
        1001,
        "going away"
    );
    assert_eq!(&payload[2..], b"heartbeat timeout");
    assert!(
        frames.iter().any(|(op, _)| *op == 0x9),
        "pinged before being closed: {frames:?}"
    );
}

/// A session holds at most `server.max_chat_lines` lines: the next is
/// refused with a clear error, the connection carries on, and what was
/// said is kept.
#[actix_web::test]
async fn a_session_holds_at_most_its_chat_lines() {
    let dir = tempfile::tempdir().expect("temp dir");
    let app = spawn_app_with(dir, |s| s.server.max_chat_lines = 3).await;
    let mut alice = app.rep("alice").await;
    let mut customer = app.customer(ClientKind::Desktop).await;
    let view = start_issue(&mut customer, "vpn", "Dana").await;
    alert_for(&mut alice, &view.session).await;
    accept(&alice, &view.session).await.expect("accepts");
    let say = |text: &str| RequestBody::Chat {
        session: None,
        text: text.into(),
    };
    for i in 0..3 {
        customer
            .request(say(&format!("line {i}")))
            .await
            .expect("within the bound");
    }
    let (code, message) = refused(&customer, say("one too many")).await;
    assert_eq!(code, ErrorCode::InvalidRequest);
    assert!(message.contains("most chat lines"), "{message}");
    pong(&customer).await;
    match customer
        .request(RequestBody::ChatHistory { session: None })
        .await
        .expect("history")
    {
        Reply::ChatHistory { lines } => {
            let texts: Vec<_> = lines.iter().map(|l| l.text.as_str()).collect();
            assert_eq!(texts, ["line 0", "line 1", "line 2"]);
        }
        other => panic!("expected the history, got {other:?}"),
    }
}
