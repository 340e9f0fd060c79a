//! The same relay on the stack Switchboard is built on: actix-web for the
//! HTTP upgrade, and actix-ws for the WebSocket, as Switchboard had it
//! until change 44 (docs/performance.md; since then Switchboard writes its
//! frames over actix-http's codec itself, which costs less). Its figures
//! beside the tokio-tungstenite relay's say what the chosen stack costs
//! before any of Switchboard's own work (queues, actors, storage), so a
//! gap to the relay can be split into "the stack" and "ours".
//!
//! Same protocol as [`super`]: the first frame is the connection's id,
//! a binary frame is relayed to the connection its first 8 bytes name (0:
//! back to the sender). Written as a plain actix-ws server would be: one
//! task per connection and a bounded outbound queue of the same size.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use actix_ws::Message;

use super::PeerTable;

type Peers = Arc<PeerTable<Bytes>>;

#[derive(Clone, Default)]
struct Relay {
    peers: Peers,
    next: Arc<AtomicU64>,
}

/// Binds `127.0.0.1:port` (0 for any) and returns the port and the running
/// server. Must be called inside an actix system (`actix_web::rt::System`);
/// the worker count is actix-web's default, one per core the process may
/// use, as Switchboard's is.
pub fn bind(port: u16) -> anyhow::Result<(u16, actix_web::dev::Server)> {
    let relay = Relay {
        next: Arc::new(AtomicU64::new(1)),
        ..Default::default()
    };
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(relay.clone()))
            .default_service(web::to(upgrade))
    })
    .bind(("127.0.0.1", port))?;
    let port = server
        .addrs()
        .first()
        .map(|a| a.port())
        .ok_or_else(|| anyhow::anyhow!("actix relay bound no address"))?;
    Ok((port, server.run()))
}

async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    relay: web::Data<Relay>,
) -> actix_web::Result<HttpResponse> {
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let id = relay.next.fetch_add(1, Ordering::Relaxed);
    actix_web::rt::spawn(connection(session, stream, id, relay.peers.clone()));
    Ok(response)
}

async fn connection(
    mut session: actix_ws::Session,
    mut stream: actix_ws::MessageStream,
    id: u64,
    peers: Peers,
) {
    let (tx, mut rx) = peers.join(id);
    if session.binary(id.to_be_bytes().to_vec()).await.is_ok() {
        loop {
            tokio::select! {
                msg = stream.recv() => match msg {
                    Some(Ok(Message::Binary(b))) => {
                        if let Some(to) = peers.destination(id, &tx, &b) {
                            let _ = to.try_send(b);
                        }
                    }
                    // tungstenite answers pings by itself; actix-ws leaves it to us.
                    Some(Ok(Message::Ping(p))) => {
                        if session.pong(&p).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
                out = rx.recv() => match out {
                    Some(b) => if session.binary(b).await.is_err() { break },
                    None => break,
                },
            }
        }
    }
    peers.leave(id);
    let _ = session.close(None).await;
}

#[cfg(test)]
mod tests {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    use super::super::{connect, frame, stamp_of};

    #[actix_rt::test]
    async fn relays_between_connections_and_echoes() {
        let (port, server) = super::bind(0).unwrap();
        let handle = server.handle();
        actix_rt::spawn(server);
        let url = format!("ws://127.0.0.1:{port}/");
        let mut a = connect(&url, None).await.unwrap();
        let mut b = connect(&url, None).await.unwrap();
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
        handle.stop(false).await;
    }
}
