//! How customers get in: one-time session keys (and their portal URL), the
//! public rep list, support buttons, the issue form, browser help links;
//! and what a mobile customer's session allows.

use std::time::Duration;

use crate::common::*;
use switchboard::actors::session::key_record_key;
use switchboard::client::Client;
use switchboard::domain::ids::{now_ms, ClientKind, EntryPath};
use switchboard::domain::keys::SessionKey;
use switchboard::error::ErrorCode;
use switchboard::protocol::{CustomerView, Entry, Event, Reply, RequestBody};
use switchboard::store::{self, Expect};

async fn enter(
    app: &TestApp,
    kind: ClientKind,
    entry: Entry,
    name: &str,
) -> (Client, CustomerView) {
    let mut c = app.customer(kind).await;
    let v = c
        .start_session(entry, name, "Acme", "help")
        .await
        .unwrap_or_else(|e| panic!("{name} cannot start: {e}"));
    (c, v)
}

/// Starts a session on a fresh connection and answers the refusal's code.
async fn entry_refused(app: &TestApp, entry: Entry, name: &str) -> ErrorCode {
    let c = app.customer(ClientKind::Desktop).await;
    refused(
        &c,
        RequestBody::StartSession {
            entry,
            name: name.into(),
            company: String::new(),
            description: String::new(),
        },
    )
    .await
}

fn key_entry(key: &str) -> Entry {
    Entry::SessionKey { key: key.into() }
}

async fn http_get(url: &str) -> (u16, serde_json::Value) {
    let r = reqwest::get(url).await.expect("HTTP request");
    let status = r.status().as_u16();
    (status, r.json().await.expect("JSON body"))
}

async fn generate(rep: &Client, secs: u64) -> (String, String, u64) {
    match ok(
        rep,
        RequestBody::GenerateSessionKey {
            valid_for_secs: secs,
            portal: Some("support".into()),
        },
    )
    .await
    {
        Reply::SessionKey {
            key,
            url,
            expires_at,
        } => (key, url, expires_at),
        other => panic!("expected a key, got {other:?}"),
    }
}

async fn write_key(app: &TestApp, key: &str, expires_at: u64) {
    store::save(
        app.hub.store.as_ref(),
        &key_record_key(key),
        &SessionKey {
            rep: "alice".into(),
            created_at: now_ms().saturating_sub(120_000),
            expires_at,
            portal: Some("support".into()),
            used_by: None,
        },
        Expect::Absent,
    )
    .await
    .expect("key record written");
}

#[actix_web::test]
async fn a_session_key_starts_one_session_in_the_reps_queue() {
    let app = spawn_app().await;
    let mut alice = app.rep("alice").await;
    let mut bob = app.rep("bob").await;

    let before = now_ms();
    let (key, url, expires_at) = generate(&alice, 600).await;
    assert!(!key.is_empty());
    let path = format!("/portal/support/key/{key}");
    assert!(url.ends_with(&path), "{url}");
    assert!(expires_at >= before + 600_000 && expires_at <= now_ms() + 600_000);

    let (status, body) = http_get(&app.http(&path)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["usable"], true, "{body}");
    assert_eq!(body["rep"], "Alice Network");
    assert_eq!(body["portal"], "support");
    assert_eq!(body["expires_at"], expires_at);

    // Typed as read over the phone: upper case, with dashes.
    let typed = format!("{}-{}", &key[..6], &key[6..]).to_uppercase();
    let (_c, v) = enter(&app, ClientKind::Desktop, key_entry(&typed), "Kim").await;
    assert_eq!(v.state, "waiting");
    assert_eq!(v.queue_name.as_deref(), Some("Alice Network"));
    let (queue, summary) = alert_queue(&mut alice, &v.session).await;
    assert_eq!(queue, "rep:alice");
    assert_eq!(summary.entry, EntryPath::SessionKey);
    assert!(stays_quiet(&mut bob, |e| matches!(e, Event::QueueEntered { .. })).await);

    let (status, body) = http_get(&app.http(&path)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["usable"], false, "{body}");

    assert_eq!(
        entry_refused(&app, key_entry(&key), "Kim again").await,
        ErrorCode::KeyUsed
    );
    assert_eq!(
        entry_refused(&app, key_entry("zzzzzzzzzzzz"), "Nobody").await,
        ErrorCode::KeyUnknown
    );
    let (status, body) = http_get(&app.http("/portal/support/key/zzzzzzzzzzzz")).await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "key_unknown");
}

#[actix_web::test]
async fn session_key_rules() {
    let app = spawn_app().await;
    let alice = app.rep("alice").await;
    let carol = app.rep("carol").await;

    let gen = |secs: u64, portal: Option<&str>| RequestBody::GenerateSessionKey {
        valid_for_secs: secs,
        portal: portal.map(str::to_string),
    };
    assert_eq!(
        refused(&carol, gen(600, Some("support"))).await,
        ErrorCode::PermissionDenied
    );
    for secs in [0, 59, 8 * 24 * 3600] {
        assert_eq!(
            refused(&alice, gen(secs, Some("support"))).await,
            ErrorCode::InvalidRequest,
            "valid_for_secs {secs}"
        );
    }
    assert_eq!(
        refused(&alice, gen(600, Some("nowhere"))).await,
        ErrorCode::NotFound
    );
    let customer = app.customer(ClientKind::Desktop).await;
    assert_eq!(
        refused(&customer, gen(600, None)).await,
        ErrorCode::WrongRole
    );

    // An expired key.
    let expired = "expiredkey22";
    write_key(&app, expired, now_ms() - 1_000).await;
    assert_eq!(
        entry_refused(&app, key_entry(expired), "Late").await,
        ErrorCode::KeyExpired
    );
    let (status, body) = http_get(&app.http(&format!("/portal/support/key/{expired}"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["usable"], false);
}

#[actix_web::test]
async fn a_started_session_outlives_its_keys_period() {
    let app = spawn_app().await;
    let mut alice = app.rep("alice").await;
    let key = "shortkey2345";
    write_key(&app, key, now_ms() + 1_500).await;
    let (mut customer, v) = enter(&app, ClientKind::Desktop, key_entry(key), "Pat").await;
    alert_for(&mut alice, &v.session).await;

    tokio::time::sleep(Duration::from_millis(1_800)).await;
    // The key is over, the session is not.
    assert_eq!(
        entry_refused(&app, key_entry(key), "Other").await,
        ErrorCode::KeyUsed
    );
    let accepted = accept(&alice, &v.session).await.expect("still acceptable");
    assert_eq!(session_of(&accepted).owner.as_deref(), Some("alice"));
    chat(&alice, Some(&v.session), "still here").await;
    hears(&mut customer, "still here")
        .await
        .expect("the session works after the key's period");
}

#[actix_web::test]
async fn choosing_a_rep_from_the_public_list() {
    let app = spawn_app().await;
    let mut alice = app.rep("alice").await;
    let bob = app.rep("bob").await;
    let _carol = app.rep("carol").await;

    let public = |r: Reply| match r {
        Reply::Reps { reps } => reps.into_iter().map(|r| r.id).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    let customer = app.customer(ClientKind::Desktop).await;
    assert_eq!(
        public(ok(&customer, RequestBody::PublicReps).await),
        ["alice", "bob"]
    );

    ok(&bob, RequestBody::Logout).await;
    // The logout's detach is asynchronous: allow it to land.
    let mut listed = Vec::new();
    for _ in 0..50 {
        listed = public(ok(&customer, RequestBody::PublicReps).await);
        if listed == ["alice"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(listed, ["alice"]);

    let rep = |r: &str| Entry::Rep { rep: r.into() };
    assert_eq!(
        entry_refused(&app, rep("bob"), "Lou").await,
        ErrorCode::RepUnavailable
    );
    assert_eq!(
        entry_refused(&app, rep("carol"), "Lou").await,
        ErrorCode::RepUnavailable
    );
    assert_eq!(
        entry_refused(&app, rep("nobody"), "Lou").await,
        ErrorCode::NotFound
    );

    let (_c, v) = enter(&app, ClientKind::Desktop, rep("alice"), "Lou").await;
    let (queue, summary) = alert_queue(&mut alice, &v.session).await;
    assert_eq!(queue, "rep:alice");
    assert_eq!(summary.entry, EntryPath::RepChoice);
    assert_eq!(summary.customer_name, "Lou");

    // Once alice is gone too, nobody is listed or choosable.
    alice.close().await;
    let mut listed = vec!["x".to_string()];
    for _ in 0..50 {
        listed = public(ok(&customer, RequestBody::PublicReps).await);
        if listed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(listed.is_empty(), "{listed:?}");
    assert_eq!(
        entry_refused(&app, rep("alice"), "Lou").await,
        ErrorCode::RepUnavailable
    );
}

#[actix_web::test]
async fn buttons_issue_form_and_help_links_route_to_their_queues() {
    let app = spawn_app().await;
    let mut alice = app.rep("alice").await;
    let mut bob = app.rep("bob").await;
    let mut carol = app.rep("carol").await;

    let button = |b: &str| Entry::SupportButton { button: b.into() };
    let (_c1, v) = enter(&app, ClientKind::Desktop, button("desk-alice"), "Ann").await;
    let (queue, summary) = alert_queue(&mut alice, &v.session).await;
    assert_eq!(queue, "rep:alice");
    assert_eq!(summary.entry, EntryPath::SupportButton);
    assert_eq!(v.queue_name.as_deref(), Some("Alice Network"));

    let (_c2, v) = enter(&app, ClientKind::Desktop, button("desk-network"), "Ben").await;
    assert_eq!(alert_queue(&mut bob, &v.session).await.0, "team:network");
    assert_eq!(alert_queue(&mut alice, &v.session).await.0, "team:network");
    assert_eq!(v.queue_name.as_deref(), Some("Network Support"));

    let (_c3, v) = enter(
        &app,
        ClientKind::Desktop,
        Entry::IssueForm {
            issue_type: "invoice".into(),
        },
        "Cat",
    )
    .await;
    let (queue, summary) = alert_queue(&mut carol, &v.session).await;
    assert_eq!(queue, "team:billing");
    assert_eq!(summary.issue_type.as_deref(), Some("invoice"));
    assert_eq!(summary.entry, EntryPath::IssueForm);
    assert!(!summary.browser);

    let (_c4, v) = enter(
        &app,
        ClientKind::Browser,
        Entry::HelpLink {
            link: "billing-page".into(),
        },
        "Dee",
    )
    .await;
    let (queue, summary) = alert_queue(&mut carol, &v.session).await;
    assert_eq!(queue, "team:billing");
    assert!(summary.browser);
    assert_eq!(summary.display_name, "[Browser] Dee");
    assert_eq!(summary.customer_name, "Dee");
    assert_eq!(summary.entry, EntryPath::BrowserLink);
    let view = queue_of(&carol, "team:billing").await;
    let names: Vec<_> = view
        .items
        .iter()
        .map(|i| (i.summary.display_name.as_str(), i.summary.browser))
        .collect();
    assert_eq!(names, [("Cat", false), ("[Browser] Dee", true)]);
    assert!(stays_quiet(&mut bob, |e| matches!(e, Event::QueueEntered { .. })).await);

    for (entry, code) in [
        (button("no-such-button"), ErrorCode::NotFound),
        (
            Entry::IssueForm {
                issue_type: "printer".into(),
            },
            ErrorCode::NotFound,
        ),
        (
            Entry::HelpLink {
                link: "no-such-page".into(),
            },
            ErrorCode::NotFound,
        ),
    ] {
        assert_eq!(
            entry_refused(&app, entry.clone(), "Eve").await,
            code,
            "{entry:?}"
        );
    }
    for name in ["", "   "] {
        assert_eq!(
            entry_refused(&app, button("desk-network"), name).await,
            ErrorCode::InvalidRequest,
            "name {name:?}"
        );
    }
    // A refused start leaves the connection usable.
    let mut c = app.customer(ClientKind::Desktop).await;
    assert_eq!(
        refused(
            &c,
            RequestBody::StartSession {
                entry: button("nope"),
                name: "Fay".into(),
                company: String::new(),
                description: String::new(),
            }
        )
        .await,
        ErrorCode::NotFound
    );
    c.start_session(button("desk-network"), "Fay", "", "")
        .await
        .expect("second try works");
}

#[actix_web::test]
async fn mobile_sessions_are_view_only() {
    let app = spawn_app().await;
    let alice = app.rep("alice").await;

    let (mut phone, v) = enter(
        &app,
        ClientKind::Mobile,
        Entry::IssueForm {
            issue_type: "wifi".into(),
        },
        "Moe",
    )
    .await;
    assert!(v.view_only);
    let accepted = accept(&alice, &v.session).await.unwrap();
    assert!(session_of(&accepted).summary.view_only);
    assert_eq!(session_of(&accepted).summary.client, ClientKind::Mobile);

    assert_eq!(
        refused(
            &alice,
            RequestBody::Control {
                session: v.session.clone(),
                input: "click 10 10".into(),
            }
        )
        .await,
        ErrorCode::ViewOnly
    );
    ok(
        &alice,
        RequestBody::RequestView {
            session: v.session.clone(),
        },
    )
    .await;
    phone
        .wait_event(
            WAIT,
            |e| matches!(e, Event::ViewRequested { by } if by == "Alice Network"),
        )
        .await
        .expect("the phone is asked to share its screen");
    chat(&alice, Some(&v.session), "tap settings").await;
    hears(&mut phone, "tap settings")
        .await
        .expect("chat works on mobile");
    assert!(stays_quiet(&mut phone, |e| matches!(e, Event::ControlInput { .. })).await);

    // A desktop customer can be controlled.
    let (mut desk, v) = enter(
        &app,
        ClientKind::Desktop,
        Entry::IssueForm {
            issue_type: "wifi".into(),
        },
        "Dot",
    )
    .await;
    assert!(!v.view_only);
    accept(&alice, &v.session).await.unwrap();
    ok(
        &alice,
        RequestBody::Control {
            session: v.session.clone(),
            input: "click 10 10".into(),
        },
    )
    .await;
    desk.wait_event(
        WAIT,
        |e| matches!(e, Event::ControlInput { input } if input == "click 10 10"),
    )
    .await
    .expect("the desktop receives the control input");
}

#[actix_web::test]
async fn a_name_is_one_to_200_bytes_after_trimming() {
    let app = spawn_app().await;
    let mut alice = app.rep("alice").await;
    let issue = || Entry::IssueForm {
        issue_type: "vpn".into(),
    };
    for name in ["", "   ", &"n".repeat(201)] {
        assert_eq!(
            entry_refused(&app, issue(), name).await,
            ErrorCode::InvalidRequest,
            "name of {} bytes",
            name.len()
        );
    }
    // 200 bytes of name with spaces around it: what is kept is the name.
    let name = "n".repeat(200);
    let mut customer = app.customer(ClientKind::Desktop).await;
    let view = start_issue(&mut customer, "vpn", &format!("  {name}  ")).await;
    let (_, summary) = alert_queue(&mut alice, &view.session).await;
    assert_eq!(summary.customer_name, name);
}

/// A key made while the site has no portal has its own URL, `/key/{key}`,
/// which says whose it is and whether it can still start a session; a
/// portal's page does not know it, and `/key/` does not know a portal's.
#[actix_web::test]
async fn a_key_made_without_a_portal_is_read_at_its_own_url() {
    let dir = tempfile::tempdir().expect("temp dir");
    let app = spawn_app_with(dir, |s| s.seed.portals.clear()).await;
    let mut alice = app.rep("alice").await;
    let (key, url) = match ok(
        &alice,
        RequestBody::GenerateSessionKey {
            valid_for_secs: 600,
            portal: None,
        },
    )
    .await
    {
        Reply::SessionKey { key, url, .. } => (key, url),
        other => panic!("expected a key, got {other:?}"),
    };
    // Built on `server.public_url`, which these tests leave at its default.
    assert!(url.ends_with(&format!("/key/{key}")), "{url}");
    let url = app.http(&format!("/key/{key}"));
    let (status, page) = http_get(&url).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["key"], key.as_str());
    assert_eq!(page["rep"], "Alice Network");
    assert_eq!(page["usable"], true);
    assert!(
        page["portal"].is_null() && page["portal_name"].is_null(),
        "{page}"
    );
    let (status, body) = http_get(&app.http(&format!("/portal/support/key/{key}"))).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );

    let (_c, v) = enter(&app, ClientKind::Desktop, key_entry(&key), "Kai").await;
    alert_for(&mut alice, &v.session).await;
    let (status, page) = http_get(&url).await;
    assert_eq!((status, &page["usable"]), (200, &serde_json::json!(false)));

    // On a site with a portal, /key/ does not answer for the portal's keys.
    let app = spawn_app().await;
    let alice = app.rep("alice").await;
    let (key, _, _) = generate(&alice, 600).await;
    let (status, body) = http_get(&app.http(&format!("/key/{key}"))).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("key_unknown")),
        "{body}"
    );
}

/// A rep whose personal queue a support button leads to, or in whose
/// queue a customer waits, cannot be deleted: the button would lead
/// nowhere and the customer would wait where nobody sees them.
#[actix_web::test]
async fn a_rep_a_button_or_a_waiting_customer_needs_cannot_be_deleted() {
    let app = spawn_app().await;
    let admin = rest_login(app.port, "admin").await;
    let delete = |path: &'static str| {
        let admin = admin.clone();
        async move { rest_json(app.port, reqwest::Method::DELETE, path, Some(&admin), None).await }
    };
    // The demo's desk-alice button leads to rep:alice.
    let (status, body) = delete("/api/admin/reps/alice").await;
    assert_conflict(status, &body, "support buttons");
    let (status, _) = delete("/api/admin/support-buttons/desk-alice").await;
    assert_eq!(status, 204);
    // A customer who chose alice waits in her queue.
    let mut alice = app.rep("alice").await;
    let (_c, v) = enter(
        &app,
        ClientKind::Desktop,
        Entry::Rep {
            rep: "alice".into(),
        },
        "Wes",
    )
    .await;
    alert_for(&mut alice, &v.session).await;
    let (status, body) = delete("/api/admin/reps/alice").await;
    assert_conflict(status, &body, "still wait");
    // The refusals kept alice: she still logs in.
    app.rep("alice").await;
}
