//! The WebSocket under a connection, over actix-http's frame codec.
//!
//! Why not actix-ws (which Switchboard used until change 44): actix-ws puts
//! a tokio channel between its `Session` and the response body, a second
//! queue behind the connection's own bounded frame queue (change 28). That
//! channel cost every connection 1.8 KiB (its first block of 32 messages
//! and its state), and every frame out a trip through it and a wake-up of
//! the body. Here the connection encodes each frame straight into a buffer
//! that the response body hands to actix-http (docs/performance.md,
//! change 44).
//!
//! Three pieces share one small struct on the connection's worker thread
//! (the connection's task and actix-http's dispatcher both run there, so
//! it is an `Rc<RefCell<_>>`, never borrowed across an await):
//! - [`Writer`], owned by the connection: encodes frames into the buffer.
//!   The connection writes only while the buffer holds less than [`ROOM`]
//!   bytes the body has not taken, and otherwise waits for
//!   [`Writer::room`], so a client that reads slowly backs its frames up
//!   into the connection's bounded queue (whose overflow closes the
//!   connection) and not into this buffer;
//! - [`Body`], the response body that actix-http's dispatcher polls when it
//!   can write: it takes the whole buffer;
//! - [`Reader`], what the client sends: actix-http's request payload,
//!   decoded by its codec, a fragmented message joined into one.
//!
//! When the dispatcher drops the body (the socket failed or closed), the
//! writer's next frame fails and the reader ends.
use std::cell::RefCell;
use std::convert::Infallible;
use std::future::poll_fn;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use actix_codec::Decoder;
use actix_http::body::{BodySize, MessageBody};
use actix_http::ws::{Codec, Frame, Item, OpCode, Parser, ProtocolError};
use actix_http::Payload;
use bytes::{Bytes, BytesMut};
use futures_util::Stream;

pub use actix_http::ws::{CloseCode, CloseReason};

/// Bytes of frames the body has not yet taken beyond which the writer
/// waits. The dispatcher takes them whenever its own write buffer is below
/// its flush threshold (8 KiB), so this is reached only when the client
/// reads more slowly than the server writes.
pub const ROOM: usize = 16 * 1024;

/// RFC 6455, 5.5: a control frame's payload is at most 125 bytes, so a
/// close frame's reason at most 123 after its two-byte code.
const MAX_CONTROL_PAYLOAD: usize = 125;
const MAX_CLOSE_REASON: usize = MAX_CONTROL_PAYLOAD - 2;

/// What the writer, the body and the reader share.
#[derive(Default)]
struct Shared {
    /// Encoded frames the body has not taken yet.
    out: BytesMut,
    /// The body, waiting for frames.
    body: Option<Waker>,
    /// The writer, waiting for room.
    writer: Option<Waker>,
    /// The reader, waiting for the client; woken too when the body goes.
    reader: Option<Waker>,
    /// A close frame is in `out`, or the writer is gone: the body ends
    /// once `out` is taken.
    finished: bool,
    /// The body was dropped: nothing written now reaches the client.
    gone: bool,
}

impl Shared {
    /// No frame may be written any more: the server closed the socket, or
    /// it is gone from under it.
    fn closed(&self) -> bool {
        self.gone || self.finished
    }
}

/// Keeps `cx`'s waker in `slot`, cloning it only when it changed.
fn park(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

fn wake(waker: Option<Waker>) {
    if let Some(w) = waker {
        w.wake();
    }
}

/// The three ends of a new WebSocket whose request body is `payload`; the
/// reader refuses messages over `max_message` bytes, fragmented or not.
pub fn open(payload: Payload, max_message: usize) -> (Writer, Reader, Body) {
    let shared = Rc::new(RefCell::new(Shared::default()));
    let reader = Reader {
        shared: shared.clone(),
        payload,
        buf: BytesMut::new(),
        codec: Codec::new().max_size(max_message),
        fragments: None,
        max_message,
        done: false,
    };
    (
        Writer {
            shared: shared.clone(),
        },
        reader,
        Body { shared },
    )
}

/// The socket is closed: the frame was not written.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed;

/// Writes frames to the client. Frames are whole (never fragmented) and
/// unmasked, as a server's are.
pub struct Writer {
    shared: Rc<RefCell<Shared>>,
}

/// Each write appends its frame whatever the room: the caller checks
/// [`Writer::has_room`] first and, when there is none, waits for
/// [`Writer::room`], racing that wait against whatever else may close the
/// connection.
impl Writer {
    pub fn binary(&mut self, payload: &[u8]) -> Result<(), Closed> {
        self.write(OpCode::Binary, payload)
    }

    /// A `&str`, so a text frame is UTF-8 as RFC 6455 requires.
    pub fn text(&mut self, payload: &str) -> Result<(), Closed> {
        self.write(OpCode::Text, payload.as_bytes())
    }

    pub fn ping(&mut self, payload: &[u8]) -> Result<(), Closed> {
        self.write(OpCode::Ping, control_payload(payload))
    }

    pub fn pong(&mut self, payload: &[u8]) -> Result<(), Closed> {
        self.write(OpCode::Pong, control_payload(payload))
    }

    /// Neither closed by the server nor gone from under it.
    pub fn is_open(&self) -> bool {
        !self.shared.borrow().closed()
    }

    /// Whether a frame can be written without waiting.
    pub fn has_room(&self) -> bool {
        let s = self.shared.borrow();
        s.closed() || s.out.len() < ROOM
    }

    /// Waits until the body has taken enough that a frame may be written;
    /// `Closed` if it never will be. Cancel-safe: it only looks.
    pub async fn room(&mut self) -> Result<(), Closed> {
        poll_fn(|cx| {
            let mut s = self.shared.borrow_mut();
            if s.closed() {
                Poll::Ready(Err(Closed))
            } else if s.out.len() < ROOM {
                Poll::Ready(Ok(()))
            } else {
                park(&mut s.writer, cx);
                Poll::Pending
            }
        })
        .await
    }

    /// The close frame, and the end of the response body once it is
    /// written. It does not wait for room: a connection closes a client
    /// that reads too slowly, and one more small frame is the bound.
    pub fn close(&mut self, reason: Option<CloseReason>) -> Result<(), Closed> {
        let reason = reason.map(|mut r| {
            if let Some(d) = r.description.as_mut() {
                truncate_at_char(d, MAX_CLOSE_REASON);
            }
            r
        });
        self.append(true, |out| Parser::write_close(out, reason, false))
    }

    fn write(&mut self, op: OpCode, payload: &[u8]) -> Result<(), Closed> {
        self.append(false, |out| {
            Parser::write_message(out, payload, op, true, false)
        })
    }

    /// Encodes a frame into the buffer and wakes the body; after the last
    /// frame (`finish`) nothing more is written and the body ends.
    fn append(&mut self, finish: bool, encode: impl FnOnce(&mut BytesMut)) -> Result<(), Closed> {
        let body = {
            let mut s = self.shared.borrow_mut();
            if s.closed() {
                return Err(Closed);
            }
            encode(&mut s.out);
            s.finished = finish;
            s.body.take()
        };
        wake(body);
        Ok(())
    }
}

impl Drop for Writer {
    /// A connection that ends without a close frame (it panicked) still
    /// ends its response, so actix-http closes the socket.
    fn drop(&mut self) {
        let body = {
            let mut s = self.shared.borrow_mut();
            s.finished = true;
            s.body.take()
        };
        wake(body);
    }
}

fn control_payload(payload: &[u8]) -> &[u8] {
    &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)]
}

fn truncate_at_char(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// The WebSocket response's body: the frames the writer encoded.
pub struct Body {
    shared: Rc<RefCell<Shared>>,
}

impl MessageBody for Body {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let mut s = self.shared.borrow_mut();
        if !s.out.is_empty() {
            // Taken whole rather than split off: its room goes with it, so
            // an idle connection holds no buffer here, and a burst's large
            // one is not kept.
            let frames = std::mem::take(&mut s.out).freeze();
            let writer = s.writer.take();
            drop(s);
            wake(writer);
            return Poll::Ready(Some(Ok(frames)));
        }
        if s.finished {
            return Poll::Ready(None);
        }
        park(&mut s.body, cx);
        Poll::Pending
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        let (writer, reader) = {
            let mut s = self.shared.borrow_mut();
            s.gone = true;
            (s.writer.take(), s.reader.take())
        };
        wake(writer);
        wake(reader);
    }
}

/// A whole message from the client, or a control frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    Binary(Bytes),
    /// Checked to be UTF-8.
    Text(Bytes),
    Ping(Bytes),
    Pong,
    Close,
}

/// Why the reader stopped. After an error it ends.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The socket failed under the WebSocket: nothing to answer.
    #[error("connection lost: {0}")]
    Lost(String),
    #[error("a message is over the {0} bytes the server reads")]
    TooLarge(usize),
    #[error("a text message is not UTF-8")]
    NotUtf8,
    /// The bytes are not WebSocket frames as RFC 6455 has them.
    #[error("{0}")]
    Protocol(ProtocolError),
}

/// A message arriving in fragments.
struct Fragments {
    text: bool,
    pieces: Vec<Bytes>,
    len: usize,
}

/// The client's messages, one at a time.
pub struct Reader {
    shared: Rc<RefCell<Shared>>,
    payload: Payload,
    /// Bytes read and not yet decoded: at most part of one frame between
    /// polls, and no allocation at all when that is nothing.
    buf: BytesMut,
    codec: Codec,
    /// Boxed: most connections never see a fragment, and every connection's
    /// task holds its reader for as long as it is open.
    fragments: Option<Box<Fragments>>,
    max_message: usize,
    done: bool,
}

impl Reader {
    /// What a decoded frame adds: a message, or nothing yet (a fragment).
    fn assemble(&mut self, frame: Frame) -> Result<Option<Incoming>, ReadError> {
        let (text, piece, last) = match frame {
            Frame::Binary(b) => return Ok(Some(Incoming::Binary(b))),
            Frame::Text(b) => return checked_text(b).map(Some),
            Frame::Ping(b) => return Ok(Some(Incoming::Ping(b))),
            Frame::Pong(_) => return Ok(Some(Incoming::Pong)),
            Frame::Close(_) => return Ok(Some(Incoming::Close)),
            Frame::Continuation(Item::FirstText(b)) => (Some(true), b, false),
            Frame::Continuation(Item::FirstBinary(b)) => (Some(false), b, false),
            Frame::Continuation(Item::Continue(b)) => (None, b, false),
            Frame::Continuation(Item::Last(b)) => (None, b, true),
        };
        // The codec refuses a fragment out of order, so `fragments` is set
        // exactly between a first fragment and the last.
        let mut f = match text {
            Some(text) => Box::new(Fragments {
                text,
                pieces: Vec::new(),
                len: 0,
            }),
            None => self
                .fragments
                .take()
                .ok_or(ReadError::Protocol(ProtocolError::ContinuationNotStarted))?,
        };
        f.len += piece.len();
        if f.len > self.max_message {
            return Err(ReadError::TooLarge(self.max_message));
        }
        // Empty fragments are skipped, so endless empty ones hold nothing.
        if !piece.is_empty() {
            f.pieces.push(piece);
        }
        if !last {
            self.fragments = Some(f);
            return Ok(None);
        }
        let f = *f;
        let joined = match <[Bytes; 1]>::try_from(f.pieces) {
            Ok([one]) => one,
            Err(pieces) => {
                let mut all = BytesMut::with_capacity(f.len);
                for p in pieces {
                    all.extend_from_slice(&p);
                }
                all.freeze()
            }
        };
        match f.text {
            true => checked_text(joined).map(Some),
            false => Ok(Some(Incoming::Binary(joined))),
        }
    }
}

fn checked_text(b: Bytes) -> Result<Incoming, ReadError> {
    match std::str::from_utf8(&b) {
        Ok(_) => Ok(Incoming::Text(b)),
        Err(_) => Err(ReadError::NotUtf8),
    }
}

impl Stream for Reader {
    type Item = Result<Incoming, ReadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match this.codec.decode(&mut this.buf) {
                Ok(Some(frame)) => match this.assemble(frame) {
                    Ok(Some(message)) => return Poll::Ready(Some(Ok(message))),
                    Ok(None) => continue,
                    Err(e) => {
                        this.done = true;
                        return Poll::Ready(Some(Err(e)));
                    }
                },
                Ok(None) => {}
                Err(e) => {
                    this.done = true;
                    let e = match e {
                        ProtocolError::Overflow => ReadError::TooLarge(this.max_message),
                        e => ReadError::Protocol(e),
                    };
                    return Poll::Ready(Some(Err(e)));
                }
            }
            if this.buf.is_empty() {
                // Let go of the block the last bytes came in (part of
                // actix-http's read buffer) rather than hold it while idle.
                this.buf = BytesMut::new();
            }
            if this.shared.borrow().gone {
                this.done = true;
                continue;
            }
            match Pin::new(&mut this.payload).poll_next(cx) {
                Poll::Ready(Some(Ok(bytes))) => match this.buf.is_empty() {
                    true => this.buf = BytesMut::from(bytes),
                    false => this.buf.extend_from_slice(&bytes),
                },
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(ReadError::Lost(e.to_string()))));
                }
                Poll::Ready(None) => this.done = true,
                Poll::Pending => {
                    park(&mut this.shared.borrow_mut().reader, cx);
                    return Poll::Pending;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_codec::Encoder;
    use actix_http::ws::Message;
    use futures_util::StreamExt;
    use std::future::Future;

    /// A reader fed `frames`, encoded as a client encodes them (masked),
    /// then the end of the request body.
    fn reader_of(frames: Vec<Message>, max: usize) -> (Writer, Reader, Body) {
        let mut codec = Codec::new().client_mode();
        let mut bytes = BytesMut::new();
        for f in frames {
            codec.encode(f, &mut bytes).expect("encodes");
        }
        open(Payload::from(bytes.freeze()), max)
    }

    async fn all(reader: &mut Reader) -> Vec<Result<Incoming, String>> {
        let mut got = Vec::new();
        while let Some(m) = reader.next().await {
            got.push(m.map_err(|e| e.to_string()));
        }
        got
    }

    #[actix_web::test]
    async fn whole_and_fragmented_messages_come_out_whole() {
        let (_w, mut r, _b) = reader_of(
            vec![
                Message::Binary(Bytes::from_static(b"one")),
                Message::Continuation(Item::FirstText(Bytes::from_static(b"h\xc3"))),
                Message::Ping(Bytes::from_static(b"p")),
                Message::Continuation(Item::Continue(Bytes::new())),
                Message::Continuation(Item::Last(Bytes::from_static(b"\xa9llo"))),
                Message::Continuation(Item::FirstBinary(Bytes::from_static(b"ab"))),
                Message::Continuation(Item::Last(Bytes::from_static(b"c"))),
                Message::Close(None),
            ],
            64,
        );
        assert_eq!(
            all(&mut r).await,
            vec![
                Ok(Incoming::Binary(Bytes::from_static(b"one"))),
                Ok(Incoming::Ping(Bytes::from_static(b"p"))),
                Ok(Incoming::Text(Bytes::from("héllo"))),
                Ok(Incoming::Binary(Bytes::from_static(b"abc"))),
                Ok(Incoming::Close),
            ]
        );
    }

    #[actix_web::test]
    async fn a_message_over_the_limit_ends_the_reader_whole_or_in_fragments() {
        let (_w, mut r, _b) = reader_of(vec![Message::Binary(Bytes::from(vec![0; 65]))], 64);
        assert_eq!(
            all(&mut r).await,
            vec![Err("a message is over the 64 bytes the server reads".into())]
        );
        let (_w, mut r, _b) = reader_of(
            vec![
                Message::Continuation(Item::FirstBinary(Bytes::from(vec![0; 40]))),
                Message::Continuation(Item::Last(Bytes::from(vec![0; 40]))),
                Message::Binary(Bytes::from_static(b"never read")),
            ],
            64,
        );
        let got = all(&mut r).await;
        assert_eq!(
            got,
            vec![Err("a message is over the 64 bytes the server reads".into())]
        );
    }

    #[actix_web::test]
    async fn text_that_is_not_utf8_is_an_error() {
        let (_w, mut r, _b) = reader_of(
            vec![Message::Continuation(Item::FirstText(Bytes::from_static(
                b"\xff",
            )))],
            64,
        );
        // Not yet: a fragment may end mid-character.
        assert_eq!(all(&mut r).await, vec![]);
        let mut codec = Codec::new().client_mode();
        let mut bytes = BytesMut::new();
        // Raw, since actix-http's own encoder only writes UTF-8 text.
        Parser::write_message(&mut bytes, b"\xff\xfe", OpCode::Text, true, true);
        codec
            .encode(Message::Binary(Bytes::from_static(b"after")), &mut bytes)
            .expect("encodes");
        let (_w, mut r, _b) = open(Payload::from(bytes.freeze()), 64);
        assert_eq!(
            all(&mut r).await,
            vec![Err("a text message is not UTF-8".into())]
        );
    }

    #[actix_web::test]
    async fn an_unmasked_frame_is_a_protocol_error() {
        let mut bytes = BytesMut::new();
        Parser::write_message(&mut bytes, b"x", OpCode::Binary, true, false);
        let (_w, mut r, _b) = open(Payload::from(bytes.freeze()), 64);
        let got = r.next().await;
        assert!(
            matches!(
                got,
                Some(Err(ReadError::Protocol(ProtocolError::UnmaskedFrame)))
            ),
            "{got:?}"
        );
        assert!(r.next().await.is_none());
    }

    /// The bytes the body yields until it waits or ends.
    fn drain(body: &mut Body) -> (Vec<u8>, bool) {
        let mut cx = Context::from_waker(Waker::noop());
        let mut out = Vec::new();
        loop {
            match Pin::new(&mut *body).poll_next(&mut cx) {
                Poll::Ready(Some(Ok(b))) => out.extend_from_slice(&b),
                Poll::Ready(None) => return (out, true),
                Poll::Pending => return (out, false),
                Poll::Ready(Some(Err(e))) => match e {},
            }
        }
    }

    /// Decodes server frames (unmasked) as a client does.
    fn frames(bytes: &[u8]) -> Vec<Frame> {
        let mut codec = Codec::new().client_mode().max_size(1 << 20);
        let mut buf = BytesMut::from(bytes);
        let mut got = Vec::new();
        while let Some(f) = codec.decode(&mut buf).expect("server frames decode") {
            got.push(f);
        }
        assert!(buf.is_empty(), "no partial frame left");
        got
    }

    #[actix_web::test]
    async fn the_body_carries_frames_in_order_and_ends_after_close() {
        let (mut w, _r, mut body) = reader_of(vec![], 64);
        assert_eq!(body.size(), BodySize::Stream);
        w.binary(b"\x81\xa1a").expect("open");
        w.text("héllo").expect("open");
        w.ping(&[7; 200]).expect("open");
        let long = "é".repeat(100);
        w.close(Some(CloseReason {
            code: CloseCode::Policy,
            description: Some(long),
        }))
        .expect("open");
        assert_eq!(w.binary(b"late"), Err(Closed));
        assert_eq!(w.room().await, Err(Closed));
        let (bytes, ended) = drain(&mut body);
        assert!(ended, "the body ends after the close frame");
        let got = frames(&bytes);
        assert_eq!(got[0], Frame::Binary(Bytes::from_static(b"\x81\xa1a")));
        assert_eq!(got[1], Frame::Text(Bytes::from("héllo")));
        assert_eq!(got[2], Frame::Ping(Bytes::from(vec![7; 125])));
        let Frame::Close(Some(reason)) = &got[3] else {
            panic!("a close frame, got {:?}", got[3]);
        };
        assert_eq!(reason.code, CloseCode::Policy);
        // 123 bytes at most, cut at a character's edge: 61 two-byte 'é'.
        assert_eq!(reason.description.as_deref(), Some(&*"é".repeat(61)));
        assert_eq!(got.len(), 4);
    }

    #[actix_web::test]
    async fn the_writer_waits_for_room_and_fails_once_the_body_is_gone() {
        // A request body that stays open, as a live client's does.
        let (_client, payload) = actix_http::h1::Payload::create(false);
        let (mut w, mut r, mut body) = open(Payload::from(payload), 64);
        let frame = [1u8; 1000];
        while w.has_room() {
            w.binary(&frame).expect("open");
        }
        // Full: the writer waits until the body takes the frames.
        let mut cx = Context::from_waker(Waker::noop());
        let mut waiting = Box::pin(w.room());
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        drop(waiting);
        let (bytes, ended) = drain(&mut body);
        assert!(!ended);
        assert_eq!(frames(&bytes).len(), ROOM.div_ceil(1004));
        assert!(w.has_room());
        w.room().await.expect("room again");
        w.binary(&frame).expect("open");
        // The dispatcher drops the body when the socket goes: the writer
        // fails, and the reader ends even though its payload never does.
        drop(body);
        assert!(w.has_room(), "nothing to wait for");
        assert_eq!(w.room().await, Err(Closed));
        assert_eq!(w.binary(&frame), Err(Closed));
        assert_eq!(w.close(None), Err(Closed));
        assert!(r.next().await.is_none());
    }
}
