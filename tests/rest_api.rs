//! The REST API as an integration would use it: login and bearer tokens,
//! session keys, queues, session history, the public lists, the admin
//! catalog routes (and that their changes take effect over the WebSocket
//! protocol), errors as `{code, message}` with the code's status, and the
//! health routes.

use crate::common::*;
use reqwest::Method;
use serde_json::{json, Value};
use switchboard::client::Client;
use switchboard::domain::ids::{ClientKind, QueueId, Role};
use switchboard::error::ErrorCode;
use switchboard::protocol::{Entry, Event, RequestBody};

/// One HTTP call to `app`: the status and the JSON body (`null` when empty).
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    rest_json(app.port, method, path, token, body).await
}

async fn get(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    call(app, Method::GET, path, Some(token), None).await
}

async fn put(app: &TestApp, path: &str, token: &str, body: Value) -> (u16, Value) {
    call(app, Method::PUT, path, Some(token), Some(body)).await
}

/// A PUT that must succeed (200): the answer; panics with the path and
/// the answer otherwise.
async fn put_ok(app: &TestApp, path: &str, token: &str, body: Value) -> Value {
    let (status, answer) = put(app, path, token, body).await;
    assert_eq!(status, 200, "PUT {path}: {answer}");
    answer
}

async fn delete(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    call(app, Method::DELETE, path, Some(token), None).await
}

/// Asserts an error answer: the status, the stable code and a sentence.
fn assert_error(answer: &(u16, Value), status: u16, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["code"], code, "{}", answer.1);
    assert!(
        answer.1["message"].as_str().is_some_and(|m| m.len() > 5),
        "an error carries a sentence: {}",
        answer.1
    );
}

fn ids(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("expected a list: {list}"))
        .iter()
        .map(|v| v[field].as_str().unwrap_or_default().to_string())
        .collect()
}

#[actix_web::test]
async fn login_and_bearer_tokens() {
    let app = spawn_app().await;
    let (status, body) = call(
        &app,
        Method::POST,
        "/api/login",
        None,
        Some(json!({"username": "alice", "password": "alice-demo"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rep"]["id"], "alice");
    assert_eq!(body["rep"]["display_name"], "Alice Network");
    let alice = body["token"].as_str().unwrap().to_string();
    assert!(alice.len() >= 32);

    for creds in [
        json!({"username": "alice", "password": "bob-demo"}),
        json!({"username": "nobody", "password": "nobody-demo"}),
        json!({"username": "alice", "password": ""}),
    ] {
        let a = call(&app, Method::POST, "/api/login", None, Some(creds)).await;
        assert_error(&a, 401, "bad_credentials");
    }
    let a = call(
        &app,
        Method::POST,
        "/api/login",
        None,
        Some(json!({"username": "alice"})),
    )
    .await;
    assert_error(&a, 400, "invalid_request");

    // No token, a bad token, a token that is not a bearer token.
    let a = call(&app, Method::GET, "/api/queues", None, None).await;
    assert_error(&a, 401, "login_required");
    assert_error(
        &get(&app, "/api/queues", "nope").await,
        401,
        "invalid_token",
    );
    let a = reqwest::Client::new()
        .get(app.http("/api/teams"))
        .header("Authorization", format!("Basic {alice}"))
        .send()
        .await
        .unwrap();
    assert_eq!(a.status().as_u16(), 401);
    let a = call(&app, Method::GET, "/api/admin/teams", None, None).await;
    assert_error(&a, 401, "login_required");

    // The token works, over REST and over the WebSocket.
    assert_eq!(get(&app, "/api/teams", &alice).await.0, 200);
    let ws = Client::connect(&app.ws_url(), Role::Rep, ClientKind::Desktop)
        .await
        .unwrap();
    ws.request(RequestBody::Login {
        username: None,
        password: None,
        token: Some(alice.clone()),
        resume: None,
    })
    .await
    .expect("a REST token logs in over the WebSocket");

    // Logout revokes it.
    let a = call(&app, Method::POST, "/api/logout", Some(&alice), None).await;
    assert_eq!(a.0, 204, "{}", a.1);
    assert_error(&get(&app, "/api/teams", &alice).await, 401, "invalid_token");
}

#[actix_web::test]
async fn session_keys_from_the_command_api() {
    let app = spawn_app().await;
    let alice = rest_login(app.port, "alice").await;
    let carol = rest_login(app.port, "carol").await;

    let (status, body) = call(
        &app,
        Method::POST,
        "/api/session-keys",
        Some(&alice),
        Some(json!({"valid_for_secs": 600})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let key = body["key"].as_str().unwrap().to_string();
    assert_eq!(key.len(), 12);
    let url = body["url"].as_str().unwrap();
    assert!(url.ends_with(&format!("/key/{key}")), "{url}");
    let expires = body["expires_at"].as_u64().unwrap();
    let now = switchboard::domain::ids::now_ms();
    assert!(
        expires > now + 590_000 && expires <= now + 600_000,
        "{body}"
    );

    // The portal page reads the key, and the key starts one session in
    // alice's personal queue.
    let (status, page) = call(
        &app,
        Method::GET,
        &format!("/portal/support/key/{key}"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["usable"], true);
    let mut alice_ws = app.rep("alice").await;
    let mut customer = app.customer(ClientKind::Desktop).await;
    let view = customer
        .start_session(
            Entry::SessionKey { key: key.clone() },
            "Dana",
            "Acme",
            "help",
        )
        .await
        .expect("the key starts a session");
    match alert_for(&mut alice_ws, &view.session).await {
        Event::QueueEntered { queue, .. } => assert_eq!(queue, QueueId::rep("alice")),
        other => panic!("{other:?}"),
    }
    let (status, page) = call(
        &app,
        Method::GET,
        &format!("/portal/support/key/{key}"),
        None,
        None,
    )
    .await;
    assert_eq!((status, &page["usable"]), (200, &json!(false)));

    // carol may not generate keys; bad bodies and periods are refused.
    for (token, body, status, code) in [
        (
            Some(carol.as_str()),
            json!({"valid_for_secs": 600}),
            403,
            "permission_denied",
        ),
        (
            Some(alice.as_str()),
            json!({"valid_for_secs": 1}),
            400,
            "invalid_request",
        ),
        (
            Some(alice.as_str()),
            json!({"valid_for_secs": 600, "portal": "ghost"}),
            404,
            "not_found",
        ),
        (
            Some(alice.as_str()),
            json!({"valid_for_secs": "soon"}),
            400,
            "invalid_request",
        ),
        (None, json!({"valid_for_secs": 600}), 401, "login_required"),
    ] {
        let a = call(
            &app,
            Method::POST,
            "/api/session-keys",
            token,
            Some(body.clone()),
        )
        .await;
        assert_eq!(a.0, status, "POST /api/session-keys {body}: {}", a.1);
        assert_error(&a, status, code);
    }
}

#[actix_web::test]
async fn queues_and_session_history() {
    let app = spawn_app().await;
    let alice = rest_login(app.port, "alice").await;
    let carol = rest_login(app.port, "carol").await;
    let admin = rest_login(app.port, "admin").await;
    let mut alice_ws = app.rep("alice").await;

    let mut c1 = app.customer(ClientKind::Desktop).await;
    let net = start_issue(&mut c1, "vpn", "Dana").await;
    let mut c2 = app.customer(ClientKind::Desktop).await;
    let bill = start_issue(&mut c2, "invoice", "Eve").await;

    let (status, list) = get(&app, "/api/queues", &alice).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        ids(&list, "queue"),
        ["rep:alice", "team:network", "team:escalations"]
    );
    assert_eq!(list[1]["waiting"], 1);

    let (status, view) = get(&app, "/api/queues/team:network", &alice).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["name"], "Network Support");
    assert_eq!(ids(&view["items"], "session"), [net.session.as_str()]);
    assert_eq!(view["items"][0]["customer_name"], "Dana");
    assert_eq!(view["items"][0]["position"], 1);
    // Two more, so that each sort gives its own order: by wait Dana, Zed,
    // Bea; by name Bea, Dana, Zed; by issue Dana, Bea (vpn, longest
    // waiting first), Zed.
    let mut c3 = app.customer(ClientKind::Desktop).await;
    let zed = start_issue(&mut c3, "wifi", "Zed").await;
    let mut c4 = app.customer(ClientKind::Desktop).await;
    let bea = start_issue(&mut c4, "vpn", "Bea").await;
    let (dana, zed, bea) = (
        net.session.as_str(),
        zed.session.as_str(),
        bea.session.as_str(),
    );
    for (query, sort, order) in [
        ("", "wait", [dana, zed, bea]),
        ("?sort=wait", "wait", [dana, zed, bea]),
        ("?sort=name", "name", [bea, dana, zed]),
        ("?sort=issue", "issue", [dana, bea, zed]),
    ] {
        let (status, view) = get(&app, &format!("/api/queues/team:network{query}"), &alice).await;
        assert_eq!(
            (status, &view["sort"]),
            (200, &json!(sort)),
            "{query}: {view}"
        );
        assert_eq!(ids(&view["items"], "session"), order, "{query}: {view}");
        let positions: Vec<_> = view["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["session"].as_str().unwrap(),
                    i["position"].as_u64().unwrap(),
                )
            })
            .collect();
        for (session, position) in positions {
            let queued = [dana, zed, bea].iter().position(|s| *s == session).unwrap();
            assert_eq!(position, queued as u64 + 1, "{query}: queue positions");
        }
    }
    assert_error(
        &get(&app, "/api/queues/team:network?sort=height", &alice).await,
        400,
        "invalid_request",
    );
    assert_error(
        &get(&app, "/api/queues/team:billing", &alice).await,
        403,
        "permission_denied",
    );
    assert_error(
        &get(&app, "/api/queues/rep:bob", &alice).await,
        403,
        "permission_denied",
    );
    let (status, view) = get(&app, "/api/queues/team:billing", &admin).await;
    assert_eq!(status, 200, "admin sees every queue: {view}");
    assert_eq!(ids(&view["items"], "session"), [bill.session.as_str()]);
    for bad in ["nowhere", "team:", "desk:x", "team:a%20b"] {
        assert_error(
            &get(&app, &format!("/api/queues/{bad}"), &alice).await,
            400,
            "invalid_request",
        );
    }
    assert_error(
        &get(&app, "/api/queues/team:ghost", &admin).await,
        404,
        "not_found",
    );

    // History of a live session, then of an ended one.
    alert_for(&mut alice_ws, &net.session).await;
    accept(&alice_ws, &net.session).await.expect("accepts");
    alice_ws
        .request(RequestBody::Chat {
            session: Some(net.session.clone()),
            text: "hi Dana".into(),
        })
        .await
        .unwrap();
    let path = format!("/api/sessions/{}", net.session);
    let (status, s) = get(&app, &path, &alice).await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["state"], "active");
    assert_eq!(s["owner"], "alice");
    assert_eq!(s["chat_lines"], 1);
    assert_error(&get(&app, &path, &carol).await, 403, "not_your_session");
    assert_eq!(get(&app, &path, &admin).await.0, 200);
    alice_ws.request(end_session(&net.session)).await.unwrap();
    let (status, s) = get(&app, &path, &alice).await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["state"], "ended");
    let events: Vec<_> = s["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(events, ["created", "entered_queue", "accepted", "ended"]);
    assert_eq!(s["chat_lines"], 1);
    assert_error(&get(&app, &path, &carol).await, 403, "not_your_session");
    // A waiting session in a queue carol sees.
    let (status, s) = get(&app, &format!("/api/sessions/{}", bill.session), &carol).await;
    assert_eq!((status, &s["state"]), (200, &json!("waiting")));
    for unknown in ["0123456789abcdef0123456789abcdef", "no-such-session"] {
        assert_error(
            &get(&app, &format!("/api/sessions/{unknown}"), &alice).await,
            404,
            "not_found",
        );
    }
}

#[actix_web::test]
async fn public_lists_and_health() {
    let app = spawn_app().await;
    let alice = rest_login(app.port, "alice").await;

    let (status, reps) = call(&app, Method::GET, "/api/public/reps", None, None).await;
    assert_eq!(status, 200);
    assert!(ids(&reps, "id").is_empty(), "nobody is online: {reps}");
    let _bob = app.rep("bob").await;
    let _carol = app.rep("carol").await; // online, but not public
    let (_, reps) = call(&app, Method::GET, "/api/public/reps", None, None).await;
    assert_eq!(ids(&reps, "id"), ["bob"]);
    assert_eq!(reps[0]["online"], true);

    let (status, teams) = get(&app, "/api/teams", &alice).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&teams, "id"), ["billing", "escalations", "network"]);
    assert_eq!(teams[2]["queue"], "team:network");
    let (status, reps) = get(&app, "/api/reps", &alice).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&reps, "id"), ["admin", "alice", "bob", "carol"]);
    assert!(
        !reps.to_string().contains("password"),
        "no password hashes leave the server"
    );

    for path in ["/healthz", "/readyz"] {
        let (status, body) = call(&app, Method::GET, path, None, None).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let metrics = reqwest::get(app.http("/metrics")).await.unwrap();
    assert_eq!(metrics.status().as_u16(), 200);
}

#[actix_web::test]
async fn admin_catalog_changes_take_effect() {
    let app = spawn_app().await;
    let admin = rest_login(app.port, "admin").await;
    let alice = rest_login(app.port, "alice").await;

    // Non-admins get nothing.
    for (method, path) in [
        (Method::GET, "/api/admin/reps"),
        (Method::GET, "/api/admin/teams"),
        (Method::PUT, "/api/admin/teams/hackers"),
        (Method::DELETE, "/api/admin/teams/network"),
        (Method::DELETE, "/api/admin/reps/bob"),
    ] {
        let body = (method == Method::PUT).then(|| json!({"id": "hackers", "name": "H"}));
        let a = call(&app, method, path, Some(&alice), body).await;
        assert_error(&a, 403, "permission_denied");
    }

    // A new team, an issue type routed to it, and a rep in it.
    put_ok(
        &app,
        "/api/admin/teams/printers",
        &admin,
        json!({"id": "printers", "name": "Printer Support"}),
    )
    .await;
    let (_, teams) = get(&app, "/api/admin/teams", &admin).await;
    assert!(ids(&teams, "id").contains(&"printers".to_string()));
    put_ok(
        &app,
        "/api/admin/issue-types/jam",
        &admin,
        json!({"id": "jam", "name": "Paper jam", "team": "printers"}),
    )
    .await;
    let rep = put_ok(
        &app,
        "/api/admin/reps/dave",
        &admin,
        json!({"username": "dave", "display_name": "Dave Printers", "password": "dave-demo",
               "teams": ["printers"], "public": true}),
    )
    .await;
    assert!(!rep.to_string().contains("dave-demo"));
    let (_, reps) = get(&app, "/api/admin/reps", &admin).await;
    assert!(ids(&reps, "id").contains(&"dave".to_string()));
    assert!(!reps.to_string().contains("argon2"), "no hashes: {reps}");

    // dave logs in over the WebSocket and is alerted for the new type.
    let mut dave = app.rep("dave").await;
    let mut customer = app.customer(ClientKind::Desktop).await;
    let view = start_issue(&mut customer, "jam", "Fay").await;
    assert_eq!(view.queue_name.as_deref(), Some("Printer Support"));
    alert_for(&mut dave, &view.session).await;
    let (_, q) = get(&app, "/api/queues/team:printers", &admin).await;
    assert_eq!(ids(&q["items"], "session"), [view.session.as_str()]);

    // Replacing: dave's display name changes, his password stays.
    put_ok(
        &app,
        "/api/admin/reps/dave",
        &admin,
        json!({"username": "dave", "display_name": "David", "teams": ["printers"]}),
    )
    .await;
    app.rep("dave").await; // the old password still works
    let (_, reps) = get(&app, "/api/admin/reps", &admin).await;
    let d = reps
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "dave")
        .unwrap();
    assert_eq!(d["display_name"], "David");

    // Buttons, links and portals.
    put_ok(
        &app,
        "/api/admin/support-buttons/desk-printers",
        &admin,
        json!({"id": "desk-printers", "name": "Printer help", "queue": "team:printers"}),
    )
    .await;
    let mut c2 = app.customer(ClientKind::Desktop).await;
    let v2 = c2
        .start_session(
            Entry::SupportButton {
                button: "desk-printers".into(),
            },
            "Gus",
            "",
            "",
        )
        .await
        .expect("the new button works");
    alert_for(&mut dave, &v2.session).await;
    put_ok(
        &app,
        "/api/admin/help-links/printer-page",
        &admin,
        json!({"id": "printer-page", "name": "Printer page", "queue": "team:printers"}),
    )
    .await;
    let mut c3 = app.customer(ClientKind::Browser).await;
    let v3 = c3
        .start_session(
            Entry::HelpLink {
                link: "printer-page".into(),
            },
            "Hal",
            "",
            "",
        )
        .await
        .expect("the new link works");
    let alert = alert_for(&mut dave, &v3.session).await;
    assert!(format!("{alert:?}").contains("[Browser] Hal"), "{alert:?}");
    put_ok(
        &app,
        "/api/admin/portals/printers-portal",
        &admin,
        json!({"id": "printers-portal", "name": "Printers portal"}),
    )
    .await;
    let (_, portals) = get(&app, "/api/admin/portals", &admin).await;
    assert!(ids(&portals, "id").contains(&"printers-portal".to_string()));
    let (status, k) = call(
        &app,
        Method::POST,
        "/api/session-keys",
        Some(&alice),
        Some(json!({"valid_for_secs": 600, "portal": "printers-portal"})),
    )
    .await;
    assert_eq!(status, 201, "{k}");
    assert!(k["url"]
        .as_str()
        .unwrap()
        .contains("/portal/printers-portal/key/"));
    for (path, id) in [
        ("/api/admin/support-buttons", "desk-printers"),
        ("/api/admin/help-links", "printer-page"),
        ("/api/admin/issue-types", "jam"),
    ] {
        let (status, list) = get(&app, path, &admin).await;
        assert_eq!(status, 200);
        assert!(ids(&list, "id").contains(&id.to_string()), "{path}: {list}");
    }

    // Refusals: a team still in use, a missing reference, bad ids, bad JSON.
    assert_error(
        &delete(&app, "/api/admin/teams/printers", &admin).await,
        409,
        "conflict",
    );
    for (path, body, status, code) in [
        (
            "/api/admin/issue-types/ghostly",
            json!({"id": "ghostly", "name": "Ghost", "team": "ghost"}),
            404,
            "not_found",
        ),
        (
            "/api/admin/reps/erin",
            json!({"username": "erin", "display_name": "Erin", "password": "erin-demo", "teams": ["ghost"]}),
            404,
            "not_found",
        ),
        (
            "/api/admin/reps/erin",
            json!({"username": "alice", "display_name": "Erin", "password": "erin-demo"}),
            409,
            "conflict",
        ),
        (
            "/api/admin/reps/erin",
            json!({"username": "erin", "display_name": "Erin"}),
            400,
            "invalid_request",
        ),
        (
            "/api/admin/teams/a%20b",
            json!({"id": "a b", "name": "Spaces"}),
            400,
            "invalid_request",
        ),
        (
            "/api/admin/reps/a%20b",
            json!({"username": "ab", "display_name": "AB", "password": "erin-demo"}),
            400,
            "invalid_request",
        ),
        (
            "/api/admin/teams/other",
            json!({"id": "printers", "name": "Sneaky"}),
            400,
            "invalid_request",
        ),
        (
            "/api/admin/support-buttons/bad-button",
            json!({"id": "bad-button", "name": "Bad", "queue": "somewhere"}),
            400,
            "invalid_request",
        ),
    ] {
        let answer = put(&app, path, &admin, body).await;
        assert_eq!(answer.0, status, "PUT {path}: {}", answer.1);
        assert_error(&answer, status, code);
    }
    let raw = reqwest::Client::new()
        .put(app.http("/api/admin/teams/broken"))
        .bearer_auth(&admin)
        .header("Content-Type", "application/json")
        .body("{\"id\": \"broken\", ")
        .send()
        .await
        .unwrap();
    let status = raw.status().as_u16();
    let body: Value = raw.json().await.expect("a JSON error body");
    assert_error(&(status, body), 400, "invalid_request");
    assert_error(
        &delete(&app, "/api/admin/issue-types/ghostly", &admin).await,
        404,
        "not_found",
    );
    let (_, teams) = get(&app, "/api/admin/teams", &admin).await;
    assert!(!ids(&teams, "id")
        .iter()
        .any(|t| t == "broken" || t == "other"));

    // Deleting: the issue type stops routing, the rep cannot log in, and
    // once nothing uses it the team goes too.
    let (status, _) = delete(&app, "/api/admin/issue-types/jam", &admin).await;
    assert_eq!(status, 204);
    let (_, list) = get(&app, "/api/admin/issue-types", &admin).await;
    assert!(!ids(&list, "id").contains(&"jam".to_string()));
    let mut c4 = app.customer(ClientKind::Desktop).await;
    let e = c4
        .start_session(
            Entry::IssueForm {
                issue_type: "jam".into(),
            },
            "Ivy",
            "",
            "",
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NotFound));
    for path in [
        "/api/admin/support-buttons/desk-printers",
        "/api/admin/help-links/printer-page",
        "/api/admin/reps/dave",
    ] {
        assert_eq!(delete(&app, path, &admin).await.0, 204, "{path}");
    }
    let (_, reps) = get(&app, "/api/admin/reps", &admin).await;
    assert!(!ids(&reps, "id").contains(&"dave".to_string()));
    let mut ws = Client::connect(&app.ws_url(), Role::Rep, ClientKind::Desktop)
        .await
        .unwrap();
    let e = ws.login("dave", "dave-demo").await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::BadCredentials));
    for c in [&customer, &c2, &c3] {
        c.request(RequestBody::EndSession { session: None })
            .await
            .expect("the customer ends their session");
    }
    let (status, _) = delete(&app, "/api/admin/teams/printers", &admin).await;
    assert_eq!(status, 204);
    let (_, teams) = get(&app, "/api/admin/teams", &admin).await;
    assert!(!ids(&teams, "id").contains(&"printers".to_string()));
    assert_error(
        &delete(&app, "/api/admin/teams/printers", &admin).await,
        404,
        "not_found",
    );
}

/// Admin changes to the catalog check it, await the store, then change
/// it: at once, two could both pass a check only one may. Ten new reps
/// sent together with one username: exactly one is created.
#[actix_web::test]
async fn reps_created_at_once_with_one_username_make_one_rep() {
    let app = spawn_app().await;
    let admin = rest_login(app.port, "admin").await;
    let paths: Vec<String> = (0..10)
        .map(|i| format!("/api/admin/reps/twin{i}"))
        .collect();
    let answers = futures_util::future::join_all(paths.iter().enumerate().map(|(i, path)| {
        put(
            &app,
            path,
            &admin,
            json!({"username": "twin", "display_name": format!("Twin {i}"), "password": "twin-demo"}),
        )
    }))
    .await;
    let created = answers.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!(created, 1, "{answers:?}");
    for (status, body) in answers.iter().filter(|(status, _)| *status != 200) {
        assert_eq!(*status, 409, "{body}");
        assert_eq!(body["code"], "conflict", "{body}");
    }
    let (_, reps) = get(&app, "/api/admin/reps", &admin).await;
    let twins = reps
        .as_array()
        .expect("a list")
        .iter()
        .filter(|r| r["username"] == "twin")
        .count();
    assert_eq!(twins, 1, "{reps}");
}
