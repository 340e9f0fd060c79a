//! A console that stops reading is closed once its bounded frame queue
//! overflows (1008, "too slow"), rather than buffered without limit or
//! left hanging, and everyone else is still served.

use std::time::Duration;

use crate::common::*;
use serde_json::json;
use switchboard::domain::ids::ClientKind;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

fn reps_connected(app: &TestApp) -> i64 {
    let gauge = &app.hub.metrics.connections.connected;
    gauge.get(["rep", "desktop"]).get()
}

#[actix_web::test]
async fn a_rep_console_that_stops_reading_is_closed_and_the_others_are_served() {
    let dir = tempfile::tempdir().expect("temp dir");
    let app = spawn_app_with(dir, |s| {
        s.server.outbound_queue = 8;
        // Only its slowness may close the silent console, not a missed pong.
        s.server.pong_timeout_ms = 120_000;
    })
    .await;

    // Alice's console, on a socket with a small receive buffer (the
    // server's side of a loopback socket still takes megabytes).
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let tcp = socket
        .connect(([127, 0, 0, 1], app.port).into())
        .await
        .expect("connects");
    let mut alice = Raw::over(&app.ws_url(), tcp).await;
    alice.hello("rep").await;
    alice.login("alice").await;
    let mut bob = app.rep("bob").await;
    assert_eq!(reps_connected(&app), 2);

    // Customers file VPN issues (team network: alice's and bob's), each
    // with the longest description, so that a view of the queue is 80 KiB.
    let description = "x".repeat(4000);
    let mut customers = Vec::new();
    let mut last = None;
    let file = async |customers: &mut Vec<switchboard::client::Client>| {
        let mut customer = app.customer(ClientKind::Desktop).await;
        let view = customer
            .start_session(
                switchboard::protocol::Entry::IssueForm {
                    issue_type: "vpn".into(),
                },
                "Dee",
                "Acme",
                &description,
            )
            .await
            .expect("session starts");
        customers.push(customer);
        view.session
    };
    for _ in 0..20 {
        last = Some(file(&mut customers).await);
    }
    // From here on alice's console reads nothing, but asks for the queue a
    // hundred times: 8 MB of replies, more than the kernel's buffers hold,
    // so her connection waits for her to read.
    for id in 1000..1100 {
        alice
            .send_mp(json!({"id": id, "type": "view_queue", "queue": "team:network"}))
            .await;
    }
    // More customers: their alerts for alice wait in her queue of eight
    // frames until it overflows and the server lets go of her console.
    let mut after = 0;
    while reps_connected(&app) == 2 {
        assert!(
            after < 100,
            "alice's console was not closed after {after} more alerts"
        );
        last = Some(file(&mut customers).await);
        after += 1;
        // The close follows the overflow on the server's own time.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(after > 8, "closed after {after} alerts, within its queue");
    let filed = customers.len();

    // Bob was served throughout: he has the last customer's alert, and the
    // server answers him.
    let last = last.expect("a customer");
    alert_for(&mut bob, last.as_str()).await;
    assert_eq!(queue_of(&bob, "team:network").await.items.len(), filed);

    // Alice's console, read at last, holds the alerts the server had
    // written and then the close frame that says why.
    let close = alice.close_frame().await.expect("a close code");
    assert_eq!(close.code, CloseCode::Policy, "{close:?}");
    assert!(close.reason.contains("too slow"), "{close:?}");
}
