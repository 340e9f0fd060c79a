//! Durability across a crash: the real server binary is killed with
//! SIGKILL right after its last acknowledged reply and started again on the
//! same data directory. Everything acknowledged must be there: waiting
//! sessions in the same queues, order and wait start; active sessions with
//! their owner and transcript; favorites; team chat; unused session keys;
//! customers' resume tokens; session history over REST.

use std::time::Duration;

use crate::common::*;
use serde_json::Value;
use switchboard::client::Client;
use switchboard::domain::chat::ChatLine;
use switchboard::domain::ids::{ClientKind, QueueId, Role};
use switchboard::error::ErrorCode;
use switchboard::protocol::{CustomerView, Entry, QueueView, Reply, RequestBody};

async fn queue(c: &Client, q: &str) -> QueueView {
    match ok(
        c,
        RequestBody::ViewQueue {
            queue: q.parse().unwrap(),
            sort: Default::default(),
        },
    )
    .await
    {
        Reply::QueueView(v) => v,
        other => panic!("expected a queue view, got {other:?}"),
    }
}

/// What must survive of a queue: (session, customer, wait start, position).
fn queue_contents(v: &QueueView) -> Vec<(String, String, u64, usize)> {
    v.items
        .iter()
        .map(|i| {
            (
                i.summary.session.clone(),
                i.summary.customer_name.clone(),
                i.summary.wait_start,
                i.position,
            )
        })
        .collect()
}

async fn history(c: &Client, session: Option<&str>) -> Vec<ChatLine> {
    match ok(
        c,
        RequestBody::ChatHistory {
            session: session.map(str::to_string),
        },
    )
    .await
    {
        Reply::ChatHistory { lines } => lines,
        other => panic!("expected chat history, got {other:?}"),
    }
}

async fn team_history(c: &Client, team: &str) -> Vec<ChatLine> {
    match ok(c, RequestBody::TeamChatHistory { team: team.into() }).await {
        Reply::ChatHistory { lines } => lines,
        other => panic!("expected chat history, got {other:?}"),
    }
}

async fn customer_at(url: &str) -> Client {
    Client::connect(url, Role::Customer, ClientKind::Desktop)
        .await
        .expect("customer connects")
}

async fn resume(url: &str, token: &str) -> (Client, CustomerView) {
    let c = customer_at(url).await;
    match ok(&c, resume_session(token)).await {
        Reply::SessionStarted(view) => (c, view),
        other => panic!("expected the session, got {other:?}"),
    }
}

/// A session as the REST API gives it, as JSON; the status must be 200.
async fn session_json(port: u16, token: &str, session: &str) -> Value {
    let (status, body) = rest_session(port, token, session).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn rep_token(reply: &Reply) -> String {
    match reply {
        Reply::LoggedIn { token, .. } => token.clone(),
        other => panic!("expected logged_in, got {other:?}"),
    }
}

#[actix_web::test]
async fn everything_acknowledged_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[]);
    let url = server.ws_url();
    let mut alice = Client::connect(&url, Role::Rep, ClientKind::Desktop)
        .await
        .unwrap();
    let alice_token = rep_token(&alice.login("alice", "alice-demo").await.unwrap());
    let bob = rep_at(&url, "bob").await;
    let carol = rep_at(&url, "carol").await;

    // Waiting sessions: five for network, two for billing, at distinct times.
    let mut customers = Vec::new();
    for (i, issue) in ["vpn", "wifi", "invoice", "vpn", "invoice", "wifi", "vpn"]
        .iter()
        .enumerate()
    {
        let mut c = customer_at(&url).await;
        start_issue(&mut c, issue, &format!("Customer {i}")).await;
        customers.push(c);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // An active session with a transcript.
    let mut dana = customer_at(&url).await;
    let active = start_issue(&mut dana, "vpn", "Dana").await;
    alert_for(&mut alice, &active.session).await;
    accept(&alice, &active.session).await.expect("accepts");
    for (rep, text) in [
        (false, "my VPN is down"),
        (true, "let me look"),
        (false, "thanks"),
        (true, "try again now"),
    ] {
        let (who, session) = if rep {
            (&alice, Some(active.session.clone()))
        } else {
            (&dana, None)
        };
        ok(
            who,
            RequestBody::Chat {
                session,
                text: text.into(),
            },
        )
        .await;
    }
    ok(
        &bob,
        RequestBody::Star {
            queue: "team:network".parse().unwrap(),
        },
    )
    .await;
    ok(
        &alice,
        RequestBody::TeamChat {
            team: "network".into(),
            text: "server restart at noon".into(),
        },
    )
    .await;

    let network_before = queue_contents(&queue(&alice, "team:network").await);
    let billing_before = queue_contents(&queue(&carol, "team:billing").await);
    assert_eq!(network_before.len(), 5, "{network_before:?}");
    assert_eq!(billing_before.len(), 2);
    let transcript_before = history(&alice, Some(&active.session)).await;
    assert_eq!(transcript_before.len(), 4);
    let team_before = team_history(&bob, "network").await;
    let rest_before = session_json(server.port, &alice_token, &active.session).await;

    // The last acknowledged write: an unused session key. Then SIGKILL.
    let key = match ok(
        &alice,
        RequestBody::GenerateSessionKey {
            valid_for_secs: 3600,
            portal: None,
        },
    )
    .await
    {
        Reply::SessionKey { key, .. } => key,
        other => panic!("{other:?}"),
    };
    server.kill9();
    drop((alice, bob, carol, customers, dana));

    let server = ServerProcess::start(dir.path(), &[]);
    let url = server.ws_url();
    let mut alice = rep_at(&url, "alice").await;
    let bob = rep_at(&url, "bob").await;
    let carol = rep_at(&url, "carol").await;

    assert_eq!(
        queue_contents(&queue(&alice, "team:network").await),
        network_before,
        "network sessions wait in the same order with the same wait start"
    );
    assert_eq!(
        queue_contents(&queue(&carol, "team:billing").await),
        billing_before
    );

    let details = match ok(
        &alice,
        RequestBody::SessionDetails {
            session: active.session.clone(),
        },
    )
    .await
    {
        Reply::Session { session } => session,
        other => panic!("{other:?}"),
    };
    assert_eq!(details.owner.as_deref(), Some("alice"));
    assert!(matches!(
        details.state,
        switchboard::domain::session::SessionState::Active
    ));
    assert_eq!(details.chat_lines, 4);
    assert_eq!(
        history(&alice, Some(&active.session)).await,
        transcript_before
    );

    let favorites = match ok(&bob, RequestBody::ListQueues).await {
        Reply::Queues { queues } => queues,
        other => panic!("{other:?}"),
    };
    let network = favorites
        .iter()
        .find(|q| q.queue == QueueId::team("network"))
        .unwrap();
    assert!(network.favorite, "bob's star survived");
    assert_eq!(network.waiting, network_before.len());
    assert_eq!(team_history(&bob, "network").await, team_before);

    // The customer comes back with their token: still active, same chat.
    let (dana, view) = resume(&url, &active.token).await;
    assert_eq!(view.state, "active");
    assert_eq!(view.reps, ["Alice Network"]);
    assert_eq!(history(&dana, None).await, transcript_before);
    // And the conversation goes on with the next line number.
    ok(
        &dana,
        RequestBody::Chat {
            session: None,
            text: "it works".into(),
        },
    )
    .await;
    let after = history(&alice, Some(&active.session)).await;
    assert_eq!(after.len(), 5);
    assert_eq!(after[4].seq, 4);

    // The key starts exactly one session, in alice's queue.
    let mut first = customer_at(&url).await;
    let started = first
        .start_session(Entry::SessionKey { key: key.clone() }, "Key User", "", "")
        .await
        .expect("the unused key still works");
    alert_for(&mut alice, &started.session).await;
    let mut second = customer_at(&url).await;
    let e = second
        .start_session(Entry::SessionKey { key }, "Key User 2", "", "")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::KeyUsed));

    // REST history: a fresh login after the restart sees the same record.
    let token = rep_token(
        &Client::connect(&url, Role::Rep, ClientKind::Desktop)
            .await
            .unwrap()
            .login("alice", "alice-demo")
            .await
            .unwrap(),
    );
    let rest_after = session_json(server.port, &token, &active.session).await;
    assert_eq!(rest_after["history"], rest_before["history"]);
    assert_eq!(rest_after["owner"], "alice");
    assert_eq!(rest_after["state"], "active");
    // The old token was stored too.
    let old = session_json(server.port, &alice_token, &active.session).await;
    assert_eq!(old["state"], "active");
}

#[actix_web::test]
async fn chat_lines_acknowledged_before_kill_9_survive() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[]);
    let url = server.ws_url();
    let mut alice = rep_at(&url, "alice").await;
    let mut customer = customer_at(&url).await;
    let view = start_issue(&mut customer, "vpn", "Dana").await;
    alert_for(&mut alice, &view.session).await;
    accept(&alice, &view.session).await.expect("accepts");

    let mut acked: Vec<String> = Vec::new();
    for round in 0..3 {
        if round > 0 {
            server = ServerProcess::start(dir.path(), &[]);
            let url = server.ws_url();
            alice = rep_at(&url, "alice").await;
            customer = resume(&url, &view.token).await.0;
            let lines = history(&alice, Some(&view.session)).await;
            let texts: Vec<_> = lines.iter().map(|l| l.text.clone()).collect();
            assert_eq!(texts, acked, "round {round}: every acknowledged line");
            let seqs: Vec<_> = lines.iter().map(|l| l.seq).collect();
            assert_eq!(seqs, (0..acked.len() as u64).collect::<Vec<_>>());
        }
        for i in 0..20 {
            let text = format!("round {round} line {i}");
            let (who, session) = if i % 2 == 0 {
                (&customer, None)
            } else {
                (&alice, Some(view.session.clone()))
            };
            match who
                .request(RequestBody::Chat {
                    session,
                    text: text.clone(),
                })
                .await
            {
                Ok(Reply::ChatSent { line }) => {
                    assert_eq!(line.seq, acked.len() as u64, "{text}");
                    acked.push(text);
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        // Right after the last acknowledgement.
        server.kill9();
    }
    let server = ServerProcess::start(dir.path(), &[]);
    let alice = server.rep("alice").await;
    let lines = history(&alice, Some(&view.session)).await;
    let texts: Vec<_> = lines.iter().map(|l| l.text.clone()).collect();
    assert_eq!(texts.len(), 60);
    assert_eq!(texts, acked);
}

#[actix_web::test]
async fn invitations_and_queue_order_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[]);
    let url = server.ws_url();
    let mut alice = rep_at(&url, "alice").await;
    let bob = rep_at(&url, "bob").await;
    let mut first = customer_at(&url).await;
    let waiting = start_issue(&mut first, "wifi", "Early").await;
    let mut dana = customer_at(&url).await;
    let shared = start_issue(&mut dana, "vpn", "Dana").await;
    alert_for(&mut alice, &shared.session).await;
    accept(&alice, &shared.session).await.expect("accepts");
    ok(
        &alice,
        RequestBody::Invite {
            session: shared.session.clone(),
            to: QueueId::rep("bob"),
        },
    )
    .await;
    ok(
        &alice,
        RequestBody::TeamChat {
            team: "network".into(),
            text: "before".into(),
        },
    )
    .await;
    let invited = queue(&bob, "rep:bob").await.invitations;
    assert_eq!(invited.len(), 1);
    assert_eq!(invited[0].session, shared.session);
    server.kill9();

    let server = ServerProcess::start(dir.path(), &[]);
    let url = server.ws_url();
    let alice = rep_at(&url, "alice").await;
    let bob = rep_at(&url, "bob").await;
    assert_eq!(
        queue(&bob, "rep:bob").await.invitations,
        invited,
        "bob's queue still shows the invitation"
    );
    match ok(
        &bob,
        RequestBody::Join {
            session: shared.session.clone(),
        },
    )
    .await
    {
        Reply::Session { session } => assert_eq!(session.participants.len(), 2),
        other => panic!("{other:?}"),
    }
    assert!(queue(&bob, "rep:bob").await.invitations.is_empty());

    // New sessions queue behind the ones from before the crash, and team
    // chat numbering carries on.
    let mut late = customer_at(&url).await;
    let later = start_issue(&mut late, "vpn", "Late").await;
    let order: Vec<_> = queue(&alice, "team:network")
        .await
        .items
        .iter()
        .map(|i| i.summary.session.clone())
        .collect();
    assert_eq!(order, [waiting.session, later.session]);
    match ok(
        &bob,
        RequestBody::TeamChat {
            team: "network".into(),
            text: "after".into(),
        },
    )
    .await
    {
        Reply::ChatSent { line } => assert_eq!(line.seq, 1),
        other => panic!("{other:?}"),
    }
    let texts: Vec<_> = team_history(&alice, "network")
        .await
        .into_iter()
        .map(|l| l.text)
        .collect();
    assert_eq!(texts, ["before", "after"]);
}

#[actix_web::test]
async fn a_session_started_right_before_kill_9_is_waiting_after_it() {
    // A new session's alert goes out while its records are flushed, but the
    // customer's reply waits for the flush: whatever start was
    // acknowledged must come back, in its queue and resumable.
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[]);
    let url = server.ws_url();
    let mut alice = rep_at(&url, "alice").await;
    let mut started = Vec::new();
    for i in 0..5 {
        let mut c = customer_at(&url).await;
        let view = start_issue(&mut c, "vpn", &format!("Customer {i}")).await;
        alert_for(&mut alice, &view.session).await;
        started.push(view);
    }
    server.kill9();

    let server = ServerProcess::start(dir.path(), &[]);
    let url = server.ws_url();
    let alice = rep_at(&url, "alice").await;
    let waiting: Vec<String> = queue(&alice, "team:network")
        .await
        .items
        .iter()
        .map(|i| i.summary.session.clone())
        .collect();
    let expected: Vec<String> = started.iter().map(|v| v.session.clone()).collect();
    assert_eq!(waiting, expected, "every acknowledged start, in order");
    let last = started.last().expect("five started");
    let (_customer, view) = resume(&url, &last.token).await;
    assert_eq!(view.session, last.session);
}

#[actix_web::test]
async fn a_resume_token_from_before_change_48_still_resumes_its_session() {
    // Until change 48 a customer's token was 64 hex characters, found
    // through a `customer_token` record of its own. A session started then
    // is made here as that server left it: its record holds the old token's
    // hash, and the old record points at it. After an upgrade the customer
    // must still get back in with the token they were given.
    use std::sync::Arc;
    use switchboard::actors::session::session_key;
    use switchboard::auth::{customer_token_key, CustomerToken};
    use switchboard::domain::keys::{hash_secret, random_token};
    use switchboard::domain::session::Session;
    use switchboard::metrics::StoreMetrics;
    use switchboard::store::{self, Expect, SledStore};

    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[]);
    let url = server.ws_url();
    let mut customer = customer_at(&url).await;
    let started = start_issue(&mut customer, "vpn", "Old Token").await;
    server.kill9();

    let old_token = random_token();
    {
        let cache = switchboard::config::StoreSettings::DEFAULT_CACHE_BYTES;
        let sled =
            SledStore::open(dir.path(), cache, Arc::new(StoreMetrics::unregistered())).unwrap();
        let key = session_key(&started.session);
        let (mut session, revision) = store::load::<Session>(&sled, &key)
            .await
            .unwrap()
            .expect("the session was stored");
        session.customer_token_hash = hash_secret(&old_token);
        store::save(&sled, &key, &session, Expect::Revision(revision))
            .await
            .unwrap();
        let pointer = CustomerToken {
            session: started.session.clone(),
        };
        store::save(
            &sled,
            &customer_token_key(&old_token),
            &pointer,
            Expect::Absent,
        )
        .await
        .unwrap();
    }

    let server = ServerProcess::start(dir.path(), &[]);
    let url = server.ws_url();
    let (_customer, view) = resume(&url, &old_token).await;
    assert_eq!(view.session, started.session);
    assert_eq!(view.state, "waiting");
    // The session's record now says which token is its own: the one this
    // server handed out no longer opens it.
    let other = customer_at(&url).await;
    assert_eq!(
        refused(&other, resume_session(&started.token)).await,
        ErrorCode::InvalidToken
    );
}

#[actix_web::test]
async fn a_second_server_on_a_data_directory_in_use_is_refused_plainly() {
    // sled locks its directory: two servers on one would both believe they
    // own its records. The second must stop at once and say why, and the
    // first must go on serving as if nothing happened.
    let dir = tempfile::tempdir().unwrap();
    let mut first = ServerProcess::start(dir.path(), &[]);
    let mut customer = first.customer(ClientKind::Desktop).await;
    let started = start_issue(&mut customer, "vpn", "Before The Second").await;

    let second = server_command(dir.path(), &[])
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is in use: another server"),
        "the refusal says why: {stderr}"
    );
    assert!(
        stderr.contains(&dir.path().display().to_string()),
        "and names the directory: {stderr}"
    );

    let alice = first.rep("alice").await;
    let waiting = queue(&alice, "team:network").await;
    assert!(
        waiting
            .items
            .iter()
            .any(|i| i.summary.session == started.session),
        "the first server still serves its waiting customer"
    );
    // Once the first is gone the directory is free again.
    first.kill9();
    let again = ServerProcess::start(dir.path(), &[]);
    let (_customer, view) = resume(&again.ws_url(), &started.token).await;
    assert_eq!(view.session, started.session);
}

/// A start uses its session key up, durably, before it writes the session:
/// a crash in between leaves the key used by a session that was never
/// stored. The next start gives such a key back; a key whose session was
/// stored stays used. The crash is made here as it would leave the store.
#[actix_web::test]
async fn a_key_used_by_a_start_that_never_finished_is_given_back_at_restart() {
    use std::sync::Arc;
    use switchboard::actors::session::key_record_key;
    use switchboard::domain::ids::now_ms;
    use switchboard::domain::keys::SessionKey;
    use switchboard::metrics::StoreMetrics;
    use switchboard::store::{self, Expect, SledStore};

    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[]);
    let url = server.ws_url();
    let alice = rep_at(&url, "alice").await;
    let mut keys = Vec::new();
    for _ in 0..2 {
        match reply_of(
            &alice,
            RequestBody::GenerateSessionKey {
                valid_for_secs: 600,
                portal: None,
            },
        )
        .await
        {
            Reply::SessionKey { key, .. } => keys.push(key),
            other => panic!("expected a key, got {other:?}"),
        }
    }
    // The second key starts a session that is stored.
    let mut used = customer_at(&url).await;
    let started = used
        .start_session(
            Entry::SessionKey {
                key: keys[1].clone(),
            },
            "Kim",
            "",
            "",
        )
        .await
        .expect("the key starts a session");
    server.kill9();
    {
        // The first key, as a crash between its use and its session's
        // write leaves it.
        let cache = switchboard::config::StoreSettings::DEFAULT_CACHE_BYTES;
        let sled =
            SledStore::open(dir.path(), cache, Arc::new(StoreMetrics::unregistered())).unwrap();
        let rkey = key_record_key(&keys[0]);
        let (mut record, revision) = store::load::<SessionKey>(&sled, &rkey)
            .await
            .unwrap()
            .expect("the key was stored");
        assert!(record.expires_at > now_ms());
        record.used_by = Some("01a2e0000000000000000000deadbeef".into());
        store::save(&sled, &rkey, &record, Expect::Revision(revision))
            .await
            .unwrap();
    }

    let server = ServerProcess::start(dir.path(), &[]);
    let url = server.ws_url();
    let mut customer = customer_at(&url).await;
    let view = customer
        .start_session(
            Entry::SessionKey {
                key: keys[0].clone(),
            },
            "Lee",
            "",
            "",
        )
        .await
        .expect("the key whose session never started starts one now");
    assert_ne!(view.session, started.session);
    let again = customer_at(&url).await;
    let e = again
        .request(RequestBody::StartSession {
            entry: Entry::SessionKey {
                key: keys[1].clone(),
            },
            name: "Kim".into(),
            company: String::new(),
            description: String::new(),
        })
        .await
        .expect_err("a key whose session was stored stays used");
    assert_eq!(e.code(), Some(ErrorCode::KeyUsed));
}

/// A rep's availability (status and automatic assignment) is stored when
/// it is acknowledged: after a kill -9 the rep logs in to what they set.
#[actix_web::test]
async fn a_reps_availability_survives_kill_9() {
    use switchboard::domain::rep_state::RepStatus;
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[]);
    let alice = rep_at(&server.ws_url(), "alice").await;
    reply_of(
        &alice,
        RequestBody::SetStatus {
            status: RepStatus::Away,
        },
    )
    .await;
    reply_of(&alice, RequestBody::SetAutoAssign { enabled: false }).await;
    server.kill9();

    let server = ServerProcess::start(dir.path(), &[]);
    let mut again = Client::connect(&server.ws_url(), Role::Rep, ClientKind::Desktop)
        .await
        .expect("connects");
    match again.login("alice", "alice-demo").await.expect("logs in") {
        Reply::LoggedIn {
            status,
            auto_assign,
            ..
        } => assert_eq!((status, auto_assign), (RepStatus::Away, false)),
        other => panic!("expected a login, got {other:?}"),
    }
}
