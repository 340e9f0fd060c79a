//! SIGTERM in the middle of traffic: clients are told goodbye and the socket
//! closes, new connections are refused, the process exits 0, and after a
//! restart on the same data directory everything that was acknowledged
//! before the shutdown is there.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use switchboard::client::{Client, ClientError, Pushed};
use switchboard::domain::ids::{ClientKind, Role};
use switchboard::protocol::{Entry, Reply, RequestBody};

/// What one customer got acknowledged: its session, and its chat lines.
#[derive(Debug, Default, Clone)]
struct Acked {
    session: Option<String>,
    lines: Vec<String>,
}

/// A customer who starts a session, then chats until the server goes.
async fn chatty_customer(url: String, n: usize, acked: Arc<Mutex<Acked>>) -> Client {
    let mut c = Client::connect(&url, Role::Customer, ClientKind::Desktop)
        .await
        .expect("customer connects");
    let view = c
        .start_session(
            Entry::IssueForm {
                issue_type: "vpn".into(),
            },
            &format!("Customer {n}"),
            "Acme",
            "traffic",
        )
        .await
        .expect("session starts");
    acked.lock().unwrap().session = Some(view.session.clone());
    for i in 0.. {
        let text = format!("c{n} line {i}");
        match c
            .request(RequestBody::Chat {
                session: None,
                text: text.clone(),
            })
            .await
        {
            Ok(Reply::ChatSent { line }) => {
                assert_eq!(line.text, text);
                acked.lock().unwrap().lines.push(text);
            }
            Ok(other) => panic!("unexpected reply {other:?}"),
            // Refused or cut off by the shutdown: not acknowledged.
            Err(_) => break,
        }
    }
    c
}

/// New sessions keep arriving until the server goes; returns the ones
/// acknowledged.
async fn arrivals(url: String, acked: Arc<Mutex<Vec<String>>>) {
    for n in 0.. {
        let Ok(mut c) = Client::connect(&url, Role::Customer, ClientKind::Mobile).await else {
            break;
        };
        match c
            .start_session(
                Entry::SupportButton {
                    button: "desk-network".into(),
                },
                &format!("Arrival {n}"),
                "",
                "",
            )
            .await
        {
            Ok(view) => acked.lock().unwrap().push(view.session),
            Err(_) => break,
        }
    }
}

/// Waits for the goodbye frame, then the close.
async fn goodbye_then_closed(c: &mut Client) {
    let mut saw_goodbye = false;
    loop {
        match c.next_pushed(WAIT).await {
            Some(Pushed::Goodbye { reason }) => {
                assert!(reason.contains("reconnect"), "{reason}");
                saw_goodbye = true;
            }
            Some(Pushed::Closed) => break,
            Some(_) => continue,
            None => panic!("the connection neither said goodbye nor closed"),
        }
    }
    assert!(saw_goodbye, "no goodbye frame before the close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_mid_traffic_loses_nothing_acknowledged() {
    sigterm_mid_traffic("2").await;
}

/// The same with one worker: the connections are served on the actors'
/// own thread, which must still stop in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_mid_traffic_on_one_worker_loses_nothing_acknowledged() {
    sigterm_mid_traffic("1").await;
}

async fn sigterm_mid_traffic(workers: &str) {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("SWITCHBOARD_HEARTBEAT_MS", "200"),
        ("SWITCHBOARD_WORKERS", workers),
    ];
    let mut server = ServerProcess::start(dir.path(), &env);
    let url = server.ws_url();

    let mut rep = rep_at(&url, "alice").await;
    let mut idle = Client::connect(&url, Role::Customer, ClientKind::Browser)
        .await
        .expect("an idle connection");

    let chats: Vec<_> = (0..4)
        .map(|n| {
            let acked = Arc::new(Mutex::new(Acked::default()));
            let task = tokio::spawn(chatty_customer(url.clone(), n, acked.clone()));
            (acked, task)
        })
        .collect();
    let arrived = Arc::new(Mutex::new(Vec::new()));
    let arriving = tokio::spawn(arrivals(url.clone(), arrived.clone()));

    // Let traffic build up: every chatter has some lines acknowledged.
    let deadline = tokio::time::Instant::now() + WAIT;
    while chats.iter().any(|(a, _)| a.lock().unwrap().lines.len() < 5)
        || arrived.lock().unwrap().len() < 3
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "traffic is too slow"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let pid = server.child.id().to_string();
    let started = std::time::Instant::now();
    let sigterm = tokio::task::spawn_blocking(move || {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(status.success());
        server.child.wait().expect("server exits")
    });

    // Connected clients are told to reconnect, and closed.
    goodbye_then_closed(&mut rep).await;
    goodbye_then_closed(&mut idle).await;
    let denied = Client::connect(&url, Role::Rep, ClientKind::Desktop).await;
    assert!(
        matches!(denied, Err(ClientError::Io(_))),
        "a new connection during shutdown must be refused, got {:?}",
        denied.as_ref().map(|_| "a connection")
    );

    let status = sigterm.await.unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "shutdown took {:?}",
        started.elapsed()
    );

    let mut acked = Vec::new();
    for (a, task) in chats {
        let _client = tokio::time::timeout(WAIT, task)
            .await
            .expect("chatter stops")
            .unwrap();
        acked.push(a.lock().unwrap().clone());
    }
    tokio::time::timeout(WAIT, arriving)
        .await
        .expect("arrivals stop")
        .unwrap();
    let arrived = arrived.lock().unwrap().clone();
    eprintln!(
        "acknowledged before SIGTERM: {} chat lines in {} sessions, {} arrivals",
        acked.iter().map(|a| a.lines.len()).sum::<usize>(),
        acked.len(),
        arrived.len()
    );

    // Restart on the same data: every acknowledged session and line is back.
    let server = ServerProcess::start(dir.path(), &[]);
    let alice = server.rep("alice").await;
    let token = rest_login(server.port, "admin").await;
    for a in &acked {
        let session = a.session.as_ref().expect("session acknowledged");
        let (status, details) = rest_session(server.port, &token, session).await;
        assert!(
            (200..300).contains(&status),
            "session {session}: {status} {details}"
        );
        let stored = details["chat_lines"].as_u64().unwrap() as usize;
        assert!(
            stored >= a.lines.len(),
            "session {session}: {} lines acknowledged, {stored} stored",
            a.lines.len()
        );
        // The transcript has every acknowledged line, in order.
        let history = match alice
            .request(RequestBody::ChatHistory {
                session: Some(session.clone()),
            })
            .await
        {
            Ok(Reply::ChatHistory { lines }) => lines,
            other => panic!("chat history of {session}: {other:?}"),
        };
        let texts: Vec<&str> = history.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            &texts[..a.lines.len()],
            a.lines.iter().map(String::as_str).collect::<Vec<_>>(),
            "session {session}"
        );
    }
    for session in &arrived {
        let (status, details) = rest_session(server.port, &token, session).await;
        assert!(
            (200..300).contains(&status),
            "arrival {session}: {status} {details}"
        );
    }
}

/// A SIGTERM sent the moment the port is printed, before any client
/// connects, still stops the server in order (exit status 0), rather than
/// killing it with the signal's default action: scripts and supervisors
/// read that line to know the server is up.
#[test]
fn sigterm_right_after_start_is_an_ordered_stop() {
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let mut server = ServerProcess::start(dir.path(), &[]);
        let status = server.sigterm();
        assert!(status.success(), "{status}");
    }
}
