//! GET /ws: upgrades to a WebSocket and hands it to a [`Connection`].
use std::sync::Arc;

use actix_web::body::BoxBody;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::actors::Hub;
use crate::connection::{hard_frame_limit, socket, Connection};
use crate::error::{AppError, ErrorCode};

/// Offered subprotocols; either way the encoding follows the hello frame
/// (binary = MessagePack, text = JSON).
const SUBPROTOCOLS: &[&str] = &["switchboard.msgpack", "switchboard.json"];

pub async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    hub: web::Data<Arc<Hub>>,
) -> actix_web::Result<HttpResponse> {
    if hub.shutdown.is_cancelled() {
        return Err(AppError::new(ErrorCode::ShuttingDown, "the server is shutting down").into());
    }
    // A request that is not a WebSocket handshake gets actix-http's answer
    // (400, or 405 for a method other than GET) and its reason.
    let mut response = actix_http::ws::handshake(req.head())?;
    if let Some(protocol) = chosen_subprotocol(&req) {
        response.insert_header((header::SEC_WEBSOCKET_PROTOCOL, protocol));
    }
    let limit = hard_frame_limit(hub.settings.max_frame_bytes);
    let (writer, reader, body) = socket::open(body.into_inner(), limit);
    let conn = Connection::new(hub.get_ref().clone(), writer);
    actix_web::rt::spawn(conn.run(reader));
    Ok(response.message_body(BoxBody::new(body))?.into())
}

/// The first subprotocol the client offers that the server speaks.
fn chosen_subprotocol(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(str::trim))
        .find(|offered| SUBPROTOCOLS.contains(offered))
}
