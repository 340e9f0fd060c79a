//! The WebSocket upgrade, spoken byte by byte over plain TCP: since change
//! 53 the server answers every request that asks for a WebSocket itself
//! (src/http/ws.rs), outside actix-web's routes, so these check that what a
//! client sees is still what docs/api.md says: the 101 and its
//! subprotocol, the refusals with their status and body, and a first frame
//! sent before the answer came.
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// A handshake request for `path` with `extra` header lines.
fn request(method: &str, path: &str, extra: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n",)
}

fn upgrade_headers(version: &str) -> String {
    format!(
        "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: {version}\r\nSec-WebSocket-Key: {KEY}\r\n"
    )
}

/// Sends `bytes` and reads until the server closes or goes quiet: the
/// response's head (lowercased) and whatever followed it.
async fn exchange(app: &TestApp, bytes: &[u8]) -> (String, Vec<u8>) {
    let mut tcp = TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connects");
    tcp.write_all(bytes).await.expect("sends");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_millis(500), tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
    let end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a whole response head")
        + 4;
    let head = String::from_utf8_lossy(&got[..end]).to_lowercase();
    (head, got[end..].to_vec())
}

fn json_body(body: &[u8]) -> Value {
    serde_json::from_slice(body).expect("a JSON error body")
}

#[actix_web::test]
async fn the_handshake_is_answered_with_the_chosen_subprotocol() {
    let app = spawn_app().await;
    let extra = upgrade_headers("13") + "Sec-WebSocket-Protocol: chat, switchboard.json\r\n";
    let (head, _) = exchange(&app, request("GET", "/ws", &extra).as_bytes()).await;
    assert!(
        head.starts_with("http/1.1 101 switching protocols\r\n"),
        "{head}"
    );
    // RFC 6455, 1.3: the key with the protocol's GUID, hashed.
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=\r\n"),
        "{head}"
    );
    assert!(
        head.contains("sec-websocket-protocol: switchboard.json\r\n"),
        "{head}"
    );
    assert!(head.contains("connection: upgrade\r\n"), "{head}");
}

#[actix_web::test]
async fn an_upgrade_to_any_other_path_is_not_found() {
    let app = spawn_app().await;
    let (head, body) = exchange(
        &app,
        request("GET", "/chat", &upgrade_headers("13")).as_bytes(),
    )
    .await;
    assert!(head.starts_with("http/1.1 404"), "{head}");
    assert!(head.contains("connection: close\r\n"), "{head}");
    assert_eq!(
        json_body(&body),
        json!({"code": "not_found", "message": "no route for GET /chat"})
    );
}

#[actix_web::test]
async fn a_bad_handshake_is_refused_with_its_reason() {
    let app = spawn_app().await;
    // A WebSocket version the server does not speak.
    let (head, body) = exchange(
        &app,
        request("GET", "/ws", &upgrade_headers("8")).as_bytes(),
    )
    .await;
    assert!(
        head.starts_with("http/1.1 426 unsupported websocket version"),
        "{head}"
    );
    assert!(body.is_empty(), "{body:?}");
    // A method other than GET.
    let (head, _) = exchange(
        &app,
        request("POST", "/ws", &upgrade_headers("13")).as_bytes(),
    )
    .await;
    assert!(head.starts_with("http/1.1 405"), "{head}");
    // No key.
    let extra = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";
    let (head, _) = exchange(&app, request("GET", "/ws", extra).as_bytes()).await;
    assert!(head.starts_with("http/1.1 400 handshake error"), "{head}");
    // The server is still there for a proper one.
    let mut raw = Raw::connect(&app.ws_url()).await;
    raw.hello("customer").await;
}

#[actix_web::test]
async fn a_plain_request_for_the_socket_is_refused() {
    let app = spawn_app().await;
    let (head, _) = exchange(&app, request("GET", "/ws", "").as_bytes()).await;
    assert!(
        head.starts_with("http/1.1 400 no websocket upgrade header found"),
        "{head}"
    );
    // `Upgrade` naming more than the WebSocket is not taken for one.
    let extra = "Connection: Upgrade\r\nUpgrade: websocket, h2c\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let (head, body) = exchange(&app, request("GET", "/ws", extra).as_bytes()).await;
    assert!(head.starts_with("http/1.1 400"), "{head}");
    assert_eq!(json_body(&body)["code"], "invalid_request");
}

#[actix_web::test]
async fn while_shutting_down_an_upgrade_is_refused() {
    let app = spawn_app().await;
    app.hub.shutdown.cancel();
    let (head, body) = exchange(
        &app,
        request("GET", "/ws", &upgrade_headers("13")).as_bytes(),
    )
    .await;
    assert!(head.starts_with("http/1.1 503"), "{head}");
    assert_eq!(
        json_body(&body),
        json!({"code": "shutting_down", "message": "the server is shutting down"})
    );
}

/// A client that does not wait for the 101 before its first frame: the
/// frame came in with the request, and is answered.
#[actix_web::test]
async fn a_frame_sent_with_the_handshake_is_answered() {
    let app = spawn_app().await;
    let mut bytes = request("GET", "/ws", &upgrade_headers("13")).into_bytes();
    let hello = json!({"type": "hello", "id": 1, "protocol": 1, "role": "customer"}).to_string();
    // A masked text frame (RFC 6455, 5.2), mask 0.
    bytes.extend_from_slice(&[0x81, 0x80 | hello.len() as u8, 0, 0, 0, 0]);
    bytes.extend_from_slice(hello.as_bytes());
    let (head, rest) = exchange(&app, &bytes).await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert_eq!(rest[0], 0x81, "a text frame: {rest:?}");
    let (_, reply) = &server_frames(&rest)[0];
    let reply: Value = serde_json::from_slice(reply).expect("a JSON reply");
    assert_eq!(reply["re"], 1, "{reply}");
    assert_eq!(reply["body"]["kind"], "welcome", "{reply}");
}

/// The server's frames in `bytes` (unmasked, as a server sends them): each
/// one's opcode and payload.
fn server_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while bytes.len() >= 2 {
        let (len, at) = match bytes[1] & 0x7f {
            126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 => panic!("no server frame here is that long"),
            n => (n as usize, 2),
        };
        frames.push((bytes[0] & 0x0f, bytes[at..at + len].to_vec()));
        bytes = &bytes[at + len..];
    }
    frames
}

/// A frame that says it is a terabyte long is refused from its header:
/// the client gets `frame_too_large` and a 1009 close at once, without
/// the server waiting for (or holding) any of its payload.
#[actix_web::test]
async fn a_frame_declared_over_the_hard_limit_is_refused_at_once() {
    let app = spawn_app().await;
    let mut bytes = request("GET", "/ws", &upgrade_headers("13")).into_bytes();
    bytes.extend_from_slice(&[0x82, 0x80 | 127]);
    bytes.extend_from_slice(&(1u64 << 40).to_be_bytes());
    bytes.extend_from_slice(&[0, 0, 0, 0]);
    let (head, rest) = exchange(&app, &bytes).await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    let frames = server_frames(&rest);
    let error = frames
        .iter()
        .find(|(op, _)| *op == 0x2)
        .expect("an error frame");
    let error: Value = rmp_serde::from_slice(&error.1).expect("MessagePack");
    assert_eq!(error["code"], "frame_too_large", "{error}");
    let (op, close) = frames.last().expect("a close frame");
    assert_eq!(*op, 0x8);
    assert_eq!(u16::from_be_bytes([close[0], close[1]]), 1009);
}
