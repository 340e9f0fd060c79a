//! `GET /ws`: the WebSocket upgrade, and the socket handed to a
//! [`Connection`].
//!
//! actix-http gives every request that asks to become a WebSocket (one with
//! `Upgrade: websocket`, whatever its path) to [`serve`], the server's
//! upgrade service (src/app.rs), instead of to the app's routes, together
//! with the connection's socket. Answering the handshake here and then
//! keeping the socket, rather than answering it from a route with a
//! streaming body as actix-web's WebSocket crates do, leaves actix-http's
//! HTTP/1 dispatcher out of every frame: its two 8 KiB buffers, kept for as
//! long as a connection lives, and a copy of every frame out
//! (docs/performance.md, change 53; [`socket`] has the rest).
use std::convert::Infallible;
use std::sync::Arc;

use actix_codec::Framed;
use actix_http::body::{BodySize, BoxBody, MessageBody};
use actix_http::{h1, ConnectionType, Request, Response};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use futures_util::SinkExt;
use tokio::net::TcpStream;

use crate::actors::Hub;
use crate::connection::{hard_frame_limit, socket, Connection};
use crate::error::{AppError, ErrorCode};

/// The one path that upgrades.
pub const PATH: &str = "/ws";

/// Offered subprotocols; either way the encoding follows the hello frame
/// (binary = MessagePack, text = JSON).
const SUBPROTOCOLS: &[&str] = &["switchboard.msgpack", "switchboard.json"];

/// The upgrade service: answers the handshake on `framed` and, when it is
/// accepted, runs the WebSocket until the socket closes. A refused
/// upgrade gets the same answer a route would give it, and the socket is
/// closed after it. A client that goes away mid-handshake is nothing to
/// report: it never had a connection.
pub async fn serve(
    hub: Arc<Hub>,
    req: Request,
    mut framed: Framed<TcpStream, h1::Codec>,
) -> Result<(), Infallible> {
    let answered = answer(&hub, &req);
    // Not held for the connection's life: the request's head and headers
    // are the handshake's alone.
    drop(req);
    let accepted = match answered {
        Ok(accepted) => accepted,
        Err(refusal) => {
            if let Err(e) = refuse(&mut framed, refusal).await {
                tracing::debug!(error = %e, "a refused upgrade's answer was not delivered");
            }
            return Ok(());
        }
    };
    let limit = hard_frame_limit(hub.settings.max_frame_bytes);
    let (writer, reader, pump) = match socket::accept(framed, accepted, limit).await {
        Ok(socket) => socket,
        Err(e) => {
            tracing::debug!(error = %e, "the client left during the WebSocket handshake");
            return Ok(());
        }
    };
    actix_web::rt::spawn(Connection::new(hub, writer).run(reader));
    pump.await;
    Ok(())
}

/// The `101 Switching Protocols` for `req`, or the response that refuses it.
fn answer(hub: &Hub, req: &Request) -> Result<Response<()>, Response<BoxBody>> {
    if req.path() != PATH {
        return Err(app_error(super::no_route_for(req.method(), req.path())));
    }
    if hub.shutdown.is_cancelled() {
        return Err(app_error(AppError::new(
            ErrorCode::ShuttingDown,
            "the server is shutting down",
        )));
    }
    // actix-http's own check and answer: 400 (405 for a method other than
    // GET) with the reason in the status line.
    let mut accepted = match actix_http::ws::handshake(req.head()) {
        Ok(accepted) => accepted,
        Err(e) => return Err(Response::from(&e)),
    };
    let offered = req.head().headers.get_all(header::SEC_WEBSOCKET_PROTOCOL);
    if let Some(protocol) = chosen_subprotocol(offered) {
        accepted.insert_header((header::SEC_WEBSOCKET_PROTOCOL, protocol));
    }
    Ok(accepted.finish().drop_body())
}

/// Writes `refusal` and its body, marked as the connection's last response.
async fn refuse(
    framed: &mut Framed<TcpStream, h1::Codec>,
    refusal: Response<BoxBody>,
) -> std::io::Result<()> {
    let (mut head, body) = refusal.into_parts();
    head.head_mut().set_connection_type(ConnectionType::Close);
    let body = body
        .try_into_bytes()
        .unwrap_or_else(|_| bytes::Bytes::new());
    framed
        .send((head, BodySize::Sized(body.len() as u64)).into())
        .await?;
    if !body.is_empty() {
        framed.send(h1::Message::Chunk(Some(body))).await?;
    }
    framed.send(h1::Message::Chunk(None)).await
}

fn app_error(e: AppError) -> Response<BoxBody> {
    e.error_response().into()
}

/// The route for `GET /ws` requests that do not ask for a WebSocket (those
/// that do never reach the routes): the handshake's refusal, as
/// [`serve`] gives it.
pub async fn not_an_upgrade(req: HttpRequest) -> actix_web::Result<HttpResponse> {
    // The only handshake that passes here names more than `websocket` in
    // its `Upgrade` header, which actix-http does not take for an upgrade.
    actix_http::ws::handshake(req.head())?;
    Err(AppError::new(
        ErrorCode::InvalidRequest,
        "the Upgrade header must be exactly `websocket`",
    )
    .into())
}

/// The first subprotocol the client offers that the server speaks.
fn chosen_subprotocol<'a>(
    offered: impl Iterator<Item = &'a header::HeaderValue>,
) -> Option<&'a str> {
    offered
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(str::trim))
        .find(|offered| SUBPROTOCOLS.contains(offered))
}
