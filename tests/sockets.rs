//! The server's sockets send a frame at once: Nagle's algorithm is off on
//! every connection it accepts.
//!
//! With it on, a frame written while the client had not yet acknowledged
//! the last one waited for that acknowledgement, which a client with
//! nothing to say delays by up to 40 ms: every routed session's alert,
//! "accepted" and "ended" came 20 to 40 ms late (docs/performance.md,
//! change 52). How late depends on the kernel's acknowledgement timers, so
//! rather than time frames, this reads the option itself on the server's
//! side of real connections: the test runs the server in its own process,
//! so those sockets are among the process's file descriptors.

use std::net::TcpStream;
use std::os::fd::{BorrowedFd, RawFd};

use crate::common::*;
use switchboard::domain::ids::ClientKind;

/// The server's side of every connection it accepted on `port`: sockets
/// bound to that port with a peer (the listener has none; the clients'
/// sides are bound to other ports). Each is a duplicate of the server's
/// descriptor, so reading its options through std's `TcpStream` and
/// dropping it leaves the server's socket as it was.
fn accepted_sockets(port: u16) -> Vec<(RawFd, TcpStream)> {
    let mut sockets = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd") {
        let Ok(entry) = entry else { continue };
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        // SAFETY: the descriptor is borrowed only for the `dup` below; one
        // closed by another thread meanwhile fails it (EBADF) rather than
        // being used.
        let Ok(dup) = unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned() else {
            continue;
        };
        // Any descriptor will do here: one that is not a TCP socket fails
        // `local_addr` and is skipped.
        let socket = TcpStream::from(dup);
        if let (Ok(local), Ok(_)) = (socket.local_addr(), socket.peer_addr()) {
            if local.port() == port {
                sockets.push((fd, socket));
            }
        }
    }
    sockets
}

#[actix_web::test]
async fn every_connection_the_server_accepts_sends_without_nagle() {
    let app = spawn_app().await;
    // A rep, a customer in a session the rep is alerted to, and a REST
    // call's keep-alive connection: each kind of socket the server serves.
    let mut alice = app.rep("alice").await;
    let mut customer = app.customer(ClientKind::Desktop).await;
    let view = start_issue(&mut customer, "vpn", "Dee").await;
    alert_for(&mut alice, &view.session).await;
    let http = reqwest::Client::new();
    let ready = http.get(app.http("/readyz")).send().await.expect("readyz");
    assert!(ready.status().is_success());

    let accepted = accepted_sockets(app.port);
    assert!(
        accepted.len() >= 3,
        "expected the rep's, the customer's and the REST client's connections, found {:?}",
        accepted.iter().map(|(fd, _)| fd).collect::<Vec<_>>()
    );
    for (fd, socket) in accepted {
        let nodelay = socket.nodelay().expect("TCP_NODELAY can be read");
        assert!(
            nodelay,
            "the server's socket {fd} still runs Nagle's algorithm"
        );
    }
}
