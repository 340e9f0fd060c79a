//! The same relay on the stack Switchboard is built on: actix-http for the
//! HTTP upgrade, with an upgrade service that keeps the socket, and
//! Switchboard's own WebSocket layer (`switchboard::connection::socket`,
//! on actix-http's frame codec) for the frames. Its figures beside the
//! tokio-tungstenite relay's say what that stack costs before any of
//! Switchboard's own work (queues, actors, storage), so a gap to the relay
//! can be split into "the stack" and "ours". Until the twenty-fourth round
//! this relay ran on actix-ws, the WebSocket layer Switchboard had until
//! change 44 (docs/performance.md).
//!
//! Same protocol as [`super`]: the first frame is the connection's id,
//! a binary frame is relayed to the connection its first 8 bytes name (0:
//! back to the sender), a team frame to each connection it names. One
//! task per connection and a bounded outbound queue of the same size, as
//! the tokio-tungstenite relay has.
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix_codec::Framed;
use actix_http::{h1, HttpService, Request, Response};
use actix_service::{fn_factory, fn_service};
use actix_web::web::Bytes;
use futures_util::StreamExt;
use switchboard::connection::socket::{self, Incoming, Reader, Writer};
use switchboard::http::server::{self, ServerHandle};
use tokio::net::TcpStream;

use super::PeerTable;

type Peers = Arc<PeerTable<Bytes>>;

/// The largest message a connection takes: the relay's frames are small.
/// A limit, not a buffer: the reader allocates only what arrives. The
/// same figure as Switchboard's default `server.max_frame_bytes`.
const MAX_MESSAGE: usize = 64 * 1024;

#[derive(Clone, Default)]
struct Relay {
    peers: Peers,
    next: Arc<AtomicU64>,
}

/// Binds `127.0.0.1:port` (0 for any) and returns the port and the running
/// server. Must be called inside an actix system (`actix_web::rt::System`).
/// Served as Switchboard serves (`switchboard::http::server`, change 58):
/// workers that accept their own connections, one per core the process
/// may use, and with one core the connections on the calling thread.
pub fn bind(port: u16) -> anyhow::Result<(u16, ServerHandle)> {
    let relay = Relay {
        next: Arc::new(AtomicU64::new(1)),
        ..Default::default()
    };
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))
        .map_err(|e| anyhow::anyhow!("the relay cannot listen on 127.0.0.1:{port}: {e}"))?;
    let local = listener.local_addr()?;
    // As Switchboard's server is built (src/app.rs): actix-http with an
    // upgrade service that keeps the socket. The relay runs until its
    // process ends, so it has no use for the graceful-stop signal.
    let server = server::start(listener, 0, move |_graceful| {
        let relay = relay.clone();
        HttpService::build()
            // As Switchboard's server does, and as the tokio-tungstenite
            // relay does.
            .tcp_nodelay(true)
            .local_addr(local)
            .upgrade(fn_factory(move || {
                let relay = relay.clone();
                async move {
                    Ok::<_, ()>(fn_service(move |(req, framed)| {
                        upgrade(relay.clone(), req, framed)
                    }))
                }
            }))
            .finish(|_req| async { Ok::<_, Infallible>(Response::not_found()) })
            .tcp()
    })?;
    Ok((local.port(), server))
}

/// The upgrade as Switchboard's (src/http/ws.rs) does it, less the path,
/// the subprotocol and the shutdown check.
async fn upgrade(
    relay: Relay,
    req: Request,
    framed: Framed<TcpStream, h1::Codec>,
) -> Result<(), Infallible> {
    let answered = actix_http::ws::handshake(req.head());
    drop(req);
    let accepted = match answered {
        Ok(mut accepted) => accepted.finish().drop_body(),
        Err(_) => return Ok(()),
    };
    let Ok((writer, reader, pump)) = socket::accept(framed, accepted, MAX_MESSAGE).await else {
        return Ok(());
    };
    let id = relay.next.fetch_add(1, Ordering::Relaxed);
    actix_web::rt::spawn(connection(writer, reader, id, relay.peers.clone()));
    pump.await;
    Ok(())
}

async fn connection(mut writer: Writer, mut reader: Reader, id: u64, peers: Peers) {
    let (tx, mut rx) = peers.join(id);
    if writer.binary(&id.to_be_bytes()).is_ok() {
        loop {
            tokio::select! {
                msg = reader.next() => match msg {
                    Some(Ok(Incoming::Binary(b))) => {
                        if let Some(team) = peers.team(&b) {
                            for to in team {
                                let _ = to.try_send(b.clone());
                            }
                        } else if let Some(to) = peers.destination(id, &tx, &b) {
                            let _ = to.try_send(b);
                        }
                    }
                    // tungstenite answers pings by itself; this layer leaves
                    // it to us, as Switchboard's connection does.
                    Some(Ok(Incoming::Ping(p))) => {
                        if writer.pong(&p).is_err() {
                            break;
                        }
                    }
                    Some(Ok(Incoming::Close)) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
                // A frame out waits for room in the socket's buffer, as
                // Switchboard's do; the queue behind it is the bounded one.
                out = rx.recv() => match out {
                    Some(b) => {
                        if writer.room().await.is_err() || writer.binary(&b).is_err() {
                            break;
                        }
                    }
                    None => break,
                },
            }
        }
    }
    peers.leave(id);
    let _ = writer.close(None);
}

#[cfg(test)]
mod tests {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    use super::super::{connect, frame, stamp_of};

    #[actix_rt::test]
    async fn relays_between_connections_and_echoes() {
        let (port, server) = super::bind(0).unwrap();
        let url = format!("ws://127.0.0.1:{port}/");
        let mut a = connect(&url, None, false).await.unwrap();
        let mut b = connect(&url, None, false).await.unwrap();
        assert_ne!(a.id, b.id);
        a.sink.send(frame(b.id, 7, 32)).await.unwrap();
        match b.stream.next().await {
            Some(Ok(Message::Binary(m))) => assert_eq!(stamp_of(&m), Some(7)),
            other => panic!("{other:?}"),
        }
        a.sink.send(frame(0, 9, 32)).await.unwrap();
        match a.stream.next().await {
            Some(Ok(Message::Binary(m))) => assert_eq!(stamp_of(&m), Some(9)),
            other => panic!("{other:?}"),
        }
        // The clients go first: a stop waits for open connections (up to
        // its grace), as Switchboard's does.
        drop((a, b));
        server.stop().await;
    }
}
