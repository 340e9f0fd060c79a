//! A bare WebSocket for tests that must say exactly what a client sends and
//! see every frame the server writes, where `switchboard::client::Client`
//! would hide them.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;

use super::WAIT;

pub type Socket = tokio_tungstenite::WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A bare WebSocket: says exactly what the test writes, and shows every
/// frame the server sends (including `re`), decoded to JSON values.
pub struct Raw {
    pub ws: Socket,
    next_id: u64,
}

/// One frame from the server: whether it came as text, and its content.
pub struct Frame {
    pub text: bool,
    pub value: Value,
}

impl Raw {
    pub async fn connect(url: &str) -> Raw {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connects");
        Raw { ws, next_id: 100 }
    }

    /// Over a TCP connection the test set up itself (a small receive
    /// buffer, say).
    pub async fn over(url: &str, tcp: TcpStream) -> Raw {
        let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp))
            .await
            .expect("websocket upgrades");
        Raw { ws, next_id: 100 }
    }

    pub async fn send_mp(&mut self, v: Value) {
        let bytes = rmp_serde::to_vec_named(&v).expect("encodes");
        self.send_bytes(bytes).await;
    }

    pub async fn send_bytes(&mut self, b: Vec<u8>) {
        self.ws.send(Message::Binary(b)).await.expect("sends");
    }

    pub async fn send_text(&mut self, t: &str) {
        self.ws
            .send(Message::Text(t.to_string()))
            .await
            .expect("sends");
    }

    /// The next data frame (events included); `None` when the socket
    /// closed or nothing came within [`WAIT`].
    pub async fn recv(&mut self) -> Option<Frame> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next()).await.ok()??;
            match msg {
                Ok(Message::Binary(b)) => {
                    return Some(Frame {
                        text: false,
                        value: rmp_serde::from_slice(&b).expect("server frame is MessagePack"),
                    })
                }
                Ok(Message::Text(t)) => {
                    return Some(Frame {
                        text: true,
                        value: serde_json::from_str(&t).expect("server text frame is JSON"),
                    })
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// The next reply or error frame, skipping pushed events.
    pub async fn answer(&mut self) -> Frame {
        loop {
            let f = self.recv().await.expect("an answer before close/timeout");
            if matches!(f.value["type"].as_str(), Some("reply" | "error")) {
                return f;
            }
        }
    }

    /// Sends a MessagePack request with a fresh id; answers the reply or
    /// error frame.
    pub async fn call(&mut self, mut v: Value) -> Value {
        self.next_id += 1;
        v["id"] = json!(self.next_id);
        self.send_mp(v).await;
        let f = self.answer().await;
        assert!(!f.text, "a MessagePack connection answers in MessagePack");
        assert_eq!(f.value["re"], json!(self.next_id), "{}", f.value);
        f.value
    }

    /// Says hello; returns the `welcome` reply's body.
    pub async fn hello(&mut self, role: &str) -> Value {
        let r = self
            .call(json!({"type": "hello", "protocol": 1, "role": role}))
            .await;
        assert_eq!(r["body"]["kind"], "welcome", "{r}");
        r["body"].clone()
    }

    pub async fn login(&mut self, user: &str) {
        let r = self
            .call(json!({"type": "login", "username": user, "password": format!("{user}-demo")}))
            .await;
        assert_eq!(r["body"]["kind"], "logged_in", "{r}");
    }

    /// The close frame the server sends next, skipping any other frames;
    /// panics if the socket ends without one or nothing comes in [`WAIT`].
    pub async fn close_frame(&mut self) -> Option<CloseFrame<'static>> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await {
                Ok(Some(Ok(Message::Close(close)))) => return close,
                Ok(Some(Ok(_))) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    /// A `ping` on this same socket gets its `pong`.
    pub async fn pings(&mut self) -> bool {
        let r = self.call(json!({"type": "ping"})).await;
        r["type"] == "reply" && r["body"]["kind"] == "pong"
    }
}
