//! `hello`: the first message on every connection.
use super::super::{Answer, Connection, Phase};
use crate::error::{AppError, ErrorCode};
use crate::protocol::{Reply, RequestBody, PROTOCOL_VERSION};

pub fn hello(conn: &mut Connection, body: RequestBody) -> Answer {
    let RequestBody::Hello {
        protocol,
        role,
        client,
    } = body
    else {
        unreachable!("dispatched on the type")
    };
    if protocol != PROTOCOL_VERSION {
        return Err(AppError::new(
            ErrorCode::UnsupportedProtocol,
            format!("this server speaks protocol version {PROTOCOL_VERSION}, not {protocol}"),
        ));
    }
    conn.phase = Phase::Greeted { role, client };
    Ok(Reply::Welcome {
        protocol: PROTOCOL_VERSION,
        server: format!("switchboard {}", env!("CARGO_PKG_VERSION")),
        max_frame_bytes: conn.hub.settings.max_frame_bytes,
        heartbeat_ms: conn.hub.settings.heartbeat_ms,
        pong_timeout_ms: conn.hub.settings.pong_timeout_ms,
    })
}
