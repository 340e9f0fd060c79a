//! GET /ws: upgrades to a WebSocket and hands it to a [`Connection`].
use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::actors::Hub;
use crate::connection::Connection;
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
    let (response, session, stream) = actix_ws::handle_with_protocols(&req, body, SUBPROTOCOLS)?;
    let conn = Connection::new(hub.get_ref().clone(), session);
    actix_web::rt::spawn(conn.run(stream));
    Ok(response)
}
