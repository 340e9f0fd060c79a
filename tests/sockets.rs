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

use std::os::fd::RawFd;

use crate::common::*;
use switchboard::domain::ids::ClientKind;

/// The port a socket is bound to (`getsockname`) and whether it has a
/// peer (`getpeername`): (port, connected), or None for a descriptor that
/// is not an IPv4 socket, or was closed meanwhile.
fn tcp_ends(fd: RawFd) -> Option<(u16, bool)> {
    // SAFETY: each call writes at most `len` bytes into the zeroed
    // `sockaddr_in` it is given, and only reads `fd`; a descriptor closed
    // by another thread meanwhile is an error (EBADF), not undefined.
    unsafe {
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let named = libc::getsockname(fd, &mut addr as *mut _ as *mut libc::sockaddr, &mut len);
        if named != 0 || i32::from(addr.sin_family) != libc::AF_INET {
            return None;
        }
        let port = u16::from_be(addr.sin_port);
        let mut peer: libc::sockaddr_in = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let connected =
            libc::getpeername(fd, &mut peer as *mut _ as *mut libc::sockaddr, &mut len) == 0;
        Some((port, connected))
    }
}

fn nodelay(fd: RawFd) -> bool {
    let mut on: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: writes one c_int into `on`, whose size `len` gives.
    let read = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            &mut on as *mut _ as *mut libc::c_void,
            &mut len,
        )
    };
    assert_eq!(read, 0, "getsockopt(TCP_NODELAY) on fd {fd}");
    on != 0
}

/// The server's side of every connection it accepted on `port`: sockets
/// bound to that port with a peer (the listener has none; the clients'
/// sides are bound to other ports).
fn accepted_sockets(port: u16) -> Vec<RawFd> {
    let mut fds = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd") {
        let Ok(entry) = entry else { continue };
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if tcp_ends(fd) == Some((port, true)) {
            fds.push(fd);
        }
    }
    fds
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
        "expected the rep's, the customer's and the REST client's connections, found {accepted:?}"
    );
    for fd in accepted {
        assert!(
            nodelay(fd),
            "the server's socket {fd} still runs Nagle's algorithm"
        );
    }
}
