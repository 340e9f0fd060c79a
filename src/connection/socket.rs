//! The WebSocket under a connection: the socket itself, after the upgrade,
//! with actix-http's frame codec.
//!
//! Why not actix-ws (which Switchboard used until change 44): actix-ws puts
//! a tokio channel between its `Session` and the response body, a second
//! queue behind the connection's own bounded frame queue (change 28). That
//! channel cost every connection 1.8 KiB (its first block of 32 messages
//! and its state), and every frame out a trip through it and a wake-up of
//! the body.
//!
//! Why not a response body either (changes 44 to 52): actix-http's HTTP/1
//! dispatcher keeps an 8 KiB read buffer and an 8 KiB write buffer for as
//! long as the connection lives, and copies every frame out from the body
//! into its write buffer before writing it. An idle customer's connection
//! kept a page of each resident. Since change 53 the server's upgrade
//! service (`crate::http::ws`) takes the socket from actix-http once the
//! handshake is answered, and this module reads and writes it with buffers
//! that exist only while bytes are in them (docs/performance.md).
//!
//! Three pieces share one small struct on the connection's worker thread
//! (the connection's task and the pump both run there, so it is an
//! `Rc<RefCell<_>>`, never borrowed across an await):
//! - [`Writer`], owned by the connection: encodes frames into the buffer.
//!   The connection writes only while the buffer holds less than [`ROOM`]
//!   bytes the pump has not written, and otherwise waits for
//!   [`Writer::room`], so a client that reads slowly backs its frames up
//!   into the connection's bounded queue (whose overflow closes the
//!   connection) and not into this buffer;
//! - [`Pump`], the future that owns the socket: it writes whatever the
//!   writer encoded, one write for all the frames of a wake-up, and reads
//!   what the client sends while the reader keeps up;
//! - [`Reader`], what the client sends, decoded by the codec, a fragmented
//!   message joined into one.
//!
//! When the pump ends (the socket failed or closed), the writer's next
//! frame fails and the reader ends.
use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use actix_codec::{Decoder, Framed, FramedParts};
use actix_http::body::BodySize;
use actix_http::ws::{Codec, Frame, Item, OpCode, Parser, ProtocolError};
use actix_http::{h1, Response};
use bytes::{Buf, Bytes, BytesMut};
use futures_util::{SinkExt, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub use actix_http::ws::{CloseCode, CloseReason};

/// Bytes of frames the pump has not yet written beyond which the writer
/// waits. The pump writes whenever the socket takes them, so this is
/// reached only when the client reads more slowly than the server writes.
pub const ROOM: usize = 16 * 1024;

/// The most the pump reads from the socket at a time, onto its stack;
/// what came is copied into the reader's input, which is let go of once
/// the reader has decoded everything in it (the messages keep their part
/// until they are handled), so an idle connection holds no read buffer at
/// all.
const READ_CHUNK: usize = 4 * 1024;

/// The most a WebSocket frame's header takes (RFC 6455, 5.2: two bytes,
/// eight of length, four of mask).
const MAX_FRAME_HEADER: usize = 14;

/// From the moment the server closes a connection (its close frame, or
/// the writer gone), how long the pump gives the socket to take the last
/// frames and the client to close its side; then the socket is dropped,
/// whatever is left. A client that is only slow reads its close frame
/// well within it; one that never reads does not keep its socket.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// After its close frame is written and its side shut down, how long (at
/// most) the pump goes on reading, and dropping, what the client still
/// sends before it closes the socket. Closing a socket with unread bytes
/// in it makes the kernel answer with a reset, which can reach the client
/// before it has read the close frame; actix-web's default wait for a
/// client to disconnect is the same second.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// RFC 6455, 5.5: a control frame's payload is at most 125 bytes, so a
/// close frame's reason at most 123 after its two-byte code.
const MAX_CONTROL_PAYLOAD: usize = 125;
const MAX_CLOSE_REASON: usize = MAX_CONTROL_PAYLOAD - 2;

/// How the client's side of the socket ended.
enum ReadEnd {
    /// The client shut its side (or closed the socket).
    Eof,
    /// The socket failed.
    Lost(String),
}

/// What the writer, the pump and the reader share.
#[derive(Default)]
struct Shared {
    /// Encoded frames the pump has not written yet.
    out: BytesMut,
    /// Bytes read from the client and not yet decoded.
    input: BytesMut,
    /// The pump stopped reading because `input` is full; the reader wakes
    /// it once it has decoded some.
    input_full: bool,
    /// The client's side ended; the reader reports it once `input` is
    /// decoded.
    read_end: Option<ReadEnd>,
    /// The pump, waiting for frames to write or room to read into.
    pump: Option<Waker>,
    /// The writer, waiting for room.
    writer: Option<Waker>,
    /// The reader, waiting for the client; woken too when the pump goes.
    reader: Option<Waker>,
    /// A close frame is in `out`, or the writer is gone: the pump closes
    /// the socket once `out` is written.
    finished: bool,
    /// The pump is gone: nothing written now reaches the client.
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

/// A waker woken when it goes out of scope, whichever way that is.
struct WakeOnDrop(Option<Waker>);

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        wake(self.0.take());
    }
}

/// The three ends of a WebSocket over `io`, whose handshake is done.
/// `already_read` is what the client sent after its handshake request and
/// actix-http read with it (its first frames, if it did not wait for the
/// answer). The reader refuses messages over `max_message` bytes,
/// fragmented or not.
pub fn open<T>(io: T, already_read: BytesMut, max_message: usize) -> (Writer, Reader, Pump<T>) {
    let shared = Rc::new(RefCell::new(Shared {
        input: already_read,
        ..Shared::default()
    }));
    let reader = Reader {
        shared: shared.clone(),
        codec: Codec::new().max_size(max_message),
        fragments: None,
        max_message,
        done: false,
    };
    let pump = Pump {
        io,
        shared: shared.clone(),
        // A whole frame of the largest size fits: the reader refuses a
        // larger one from its header (`declared_length`), so a full buffer
        // always holds a frame to decode.
        input_limit: max_message.saturating_add(MAX_FRAME_HEADER),
        read_done: false,
        close_grace: CLOSE_GRACE,
        closing: None,
        shut: false,
    };
    (Writer { shared }, reader, pump)
}

/// Sends `accepted` (the handshake's `101 Switching Protocols`) on
/// `framed`, then [`open`]s its socket. Everything else of actix-http's
/// connection (its two 8 KiB buffers, its HTTP codec) is dropped here,
/// before the socket's long life begins; what the client sent after its
/// request is kept. Fails only if the answer cannot be written.
pub async fn accept<T: AsyncRead + AsyncWrite + Unpin>(
    mut framed: Framed<T, h1::Codec>,
    accepted: Response<()>,
    max_message: usize,
) -> std::io::Result<(Writer, Reader, Pump<T>)> {
    framed.send((accepted, BodySize::None).into()).await?;
    let FramedParts { io, read_buf, .. } = framed.into_parts();
    let already_read = match read_buf.is_empty() {
        true => BytesMut::new(),
        false => read_buf,
    };
    Ok(open(io, already_read, max_message))
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

    /// Waits until the pump has written enough that a frame may be
    /// written; `Closed` if it never will be. Cancel-safe: it only looks.
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

    /// The close frame, after which the pump closes the socket once it is
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

    /// Encodes a frame into the buffer and wakes the pump; after the last
    /// frame (`finish`) nothing more is written and the pump closes the
    /// socket. The pump runs once this wake-up's other work is done, so
    /// the frames a connection writes in one wake-up go out in one write.
    fn append(&mut self, finish: bool, encode: impl FnOnce(&mut BytesMut)) -> Result<(), Closed> {
        let pump = {
            let mut s = self.shared.borrow_mut();
            if s.closed() {
                return Err(Closed);
            }
            encode(&mut s.out);
            s.finished = finish;
            s.pump.take()
        };
        wake(pump);
        Ok(())
    }
}

impl Drop for Writer {
    /// A connection that ends without a close frame (it panicked) still
    /// has its socket closed.
    fn drop(&mut self) {
        let pump = {
            let mut s = self.shared.borrow_mut();
            s.finished = true;
            s.pump.take()
        };
        wake(pump);
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

/// The future that owns the socket: it ends when the socket is closed, by
/// the server (after its close frame) or from under it.
pub struct Pump<T> {
    io: T,
    shared: Rc<RefCell<Shared>>,
    /// The most undecoded bytes the pump reads ahead of the reader.
    input_limit: usize,
    /// The client's side ended: nothing more to read.
    read_done: bool,
    /// [`CLOSE_GRACE`], but for tests.
    close_grace: Duration,
    /// Set once the server closes: when the pump gives up on the socket.
    closing: Option<Pin<Box<Sleep>>>,
    /// The close frame is written and the server's side shut down.
    shut: bool,
}

/// What one step of the pump did.
enum Step {
    /// Moved bytes: look again.
    Progress,
    /// Nothing to do until woken.
    Idle,
    /// The socket is done with.
    End,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Pump<T> {
    /// Writes what the writer encoded; once the close frame is written,
    /// shuts the server's side.
    fn write(&mut self, cx: &mut Context<'_>) -> Step {
        let mut s = self.shared.borrow_mut();
        if s.out.is_empty() {
            if !s.finished {
                return Step::Idle;
            }
            return match Pin::new(&mut self.io).poll_shutdown(cx) {
                Poll::Ready(Ok(())) => {
                    self.shut = true;
                    if let Some(deadline) = self.closing.as_mut() {
                        let linger = Instant::now() + CLOSE_LINGER;
                        if linger < deadline.deadline() {
                            deadline.as_mut().reset(linger);
                        }
                    }
                    Step::Progress
                }
                Poll::Ready(Err(_)) => Step::End,
                Poll::Pending => Step::Idle,
            };
        }
        match Pin::new(&mut self.io).poll_write(cx, &s.out) {
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => Step::End,
            Poll::Ready(Ok(n)) => {
                s.out.advance(n);
                if s.out.is_empty() {
                    // Let go of the block rather than hold it while idle,
                    // and a burst's large one with it.
                    s.out = BytesMut::new();
                }
                let writer = s.writer.take();
                drop(s);
                wake(writer);
                Step::Progress
            }
            Poll::Pending => Step::Idle,
        }
    }

    /// Reads what the client sent into the reader's input, unless the
    /// reader is a whole frame behind.
    fn read(&mut self, cx: &mut Context<'_>) -> Step {
        if self.read_done {
            return Step::Idle;
        }
        let mut s = self.shared.borrow_mut();
        if s.input.len() >= self.input_limit {
            s.input_full = true;
            return Step::Idle;
        }
        // Read onto the stack and keep only what came: most wake-ups of the
        // pump are for frames out, and find nothing to read, so reading
        // straight into the input would give it a block to hold each time.
        let mut scratch = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut buf = ReadBuf::uninit(&mut scratch);
        let end = match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
            Poll::Pending => return Step::Idle,
            Poll::Ready(Ok(())) if buf.filled().is_empty() => Some(ReadEnd::Eof),
            Poll::Ready(Ok(())) => {
                s.input.extend_from_slice(buf.filled());
                None
            }
            Poll::Ready(Err(e)) => Some(ReadEnd::Lost(e.to_string())),
        };
        if end.is_some() {
            self.read_done = true;
            s.read_end = end;
        }
        let reader = s.reader.take();
        drop(s);
        wake(reader);
        Step::Progress
    }

    /// After the close: drops what the client still sends until it closes
    /// its side or fails (the closing deadline ends it otherwise).
    fn linger(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut scratch = [0u8; 512];
        while !self.read_done {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => continue,
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(())
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Future for Pump<T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            if this.closing.is_none() && this.shared.borrow().finished {
                this.closing = Some(Box::pin(tokio::time::sleep(this.close_grace)));
            }
            if let Some(deadline) = this.closing.as_mut() {
                if deadline.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(());
                }
            }
            if this.shut {
                return this.linger(cx);
            }
            let wrote = this.write(cx);
            if let Step::End = wrote {
                return Poll::Ready(());
            }
            let read = this.read(cx);
            if let (Step::Idle, Step::Idle) = (&wrote, &read) {
                park(&mut this.shared.borrow_mut().pump, cx);
                return Poll::Pending;
            }
        }
    }
}

impl<T> Drop for Pump<T> {
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

/// A message arriving in fragments, copied together as they come: kept as
/// pieces, a client's million one-byte fragments would each hold a
/// `Bytes` (and the block it was read in) for a payload of a megabyte.
struct Fragments {
    text: bool,
    joined: BytesMut,
}

/// The client's messages, one at a time, decoded from what the pump read.
pub struct Reader {
    shared: Rc<RefCell<Shared>>,
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
                joined: BytesMut::new(),
            }),
            None => self
                .fragments
                .take()
                .ok_or(ReadError::Protocol(ProtocolError::ContinuationNotStarted))?,
        };
        if f.joined.len() + piece.len() > self.max_message {
            return Err(ReadError::TooLarge(self.max_message));
        }
        f.joined.extend_from_slice(&piece);
        if !last {
            self.fragments = Some(f);
            return Ok(None);
        }
        let joined = f.joined.freeze();
        match f.text {
            true => checked_text(joined).map(Some),
            false => Ok(Some(Incoming::Binary(joined))),
        }
    }
}

/// The payload length a frame's header declares (RFC 6455, 5.2), or 0
/// while the header is not all there.
fn declared_length(header: &[u8]) -> u64 {
    match header {
        [_, second, rest @ ..] => match second & 0x7f {
            126 => match rest {
                [a, b, ..] => u16::from_be_bytes([*a, *b]).into(),
                _ => 0,
            },
            127 => match rest.get(..8) {
                Some(long) => long.try_into().map(u64::from_be_bytes).unwrap_or(0),
                None => 0,
            },
            short => short.into(),
        },
        _ => 0,
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
            let mut s = this.shared.borrow_mut();
            let decoded = this.codec.decode(&mut s.input);
            if s.input.is_empty() {
                // Let go of the block the last bytes came in (the decoded
                // frames keep their part) rather than hold it while idle.
                s.input = BytesMut::new();
            }
            // The pump stopped reading a whole frame ahead: it may go on.
            // Woken on every way out of this pass, errors included: a pump
            // left asleep here is never woken again, and would hold the
            // socket with the close frame unwritten for good.
            let pump = WakeOnDrop(match s.input_full {
                true => {
                    s.input_full = false;
                    s.pump.take()
                }
                false => None,
            });
            match decoded {
                Ok(Some(frame)) => {
                    drop(s);
                    drop(pump);
                    match this.assemble(frame) {
                        Ok(Some(message)) => return Poll::Ready(Some(Ok(message))),
                        Ok(None) => continue,
                        Err(e) => {
                            this.done = true;
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                }
                // actix-http's parser refuses a frame over the limit only
                // once all of it has arrived: a client could make the server
                // hold gigabytes first. Its header says how long it is.
                Ok(None) if declared_length(&s.input) > this.max_message as u64 => {
                    this.done = true;
                    return Poll::Ready(Some(Err(ReadError::TooLarge(this.max_message))));
                }
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
            if s.gone {
                this.done = true;
                continue;
            }
            match s.read_end.take() {
                Some(ReadEnd::Eof) => this.done = true,
                Some(ReadEnd::Lost(e)) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(ReadError::Lost(e))));
                }
                None => {
                    park(&mut s.reader, cx);
                    drop(s);
                    drop(pump);
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    /// Frames encoded as a client encodes them (masked).
    fn client_frames(frames: Vec<Message>) -> BytesMut {
        let mut codec = Codec::new().client_mode();
        let mut bytes = BytesMut::new();
        for f in frames {
            codec.encode(f, &mut bytes).expect("encodes");
        }
        bytes
    }

    /// A socket whose pump runs on this thread, and the client's end of it.
    fn socket(max: usize, capacity: usize) -> (Writer, Reader, DuplexStream) {
        let (server, client) = tokio::io::duplex(capacity);
        let (w, r, pump) = open(server, BytesMut::new(), max);
        actix_rt::spawn(pump);
        (w, r, client)
    }

    /// A reader fed `frames`, then the end of the client's side.
    async fn reader_of(frames: Vec<Message>, max: usize) -> (Writer, Reader, DuplexStream) {
        let (w, r, mut client) = socket(max, 64 * 1024);
        client
            .write_all(&client_frames(frames))
            .await
            .expect("writes");
        client.shutdown().await.expect("shuts its side");
        (w, r, client)
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
        let (_w, mut r, _c) = reader_of(
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
        )
        .await;
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

    /// What actix-http read past the handshake request comes first.
    #[actix_web::test]
    async fn bytes_read_with_the_handshake_come_first() {
        let (server, mut client) = tokio::io::duplex(1024);
        let early = client_frames(vec![Message::Binary(Bytes::from_static(b"early"))]);
        let (_w, mut r, pump) = open(server, early, 64);
        actix_rt::spawn(pump);
        client
            .write_all(&client_frames(vec![Message::Binary(Bytes::from_static(
                b"late",
            ))]))
            .await
            .expect("writes");
        client.shutdown().await.expect("shuts its side");
        assert_eq!(
            all(&mut r).await,
            vec![
                Ok(Incoming::Binary(Bytes::from_static(b"early"))),
                Ok(Incoming::Binary(Bytes::from_static(b"late"))),
            ]
        );
    }

    #[actix_web::test]
    async fn a_message_over_the_limit_ends_the_reader_whole_or_in_fragments() {
        let (_w, mut r, _c) = reader_of(vec![Message::Binary(Bytes::from(vec![0; 65]))], 64).await;
        assert_eq!(
            all(&mut r).await,
            vec![Err("a message is over the 64 bytes the server reads".into())]
        );
        let (_w, mut r, _c) = reader_of(
            vec![
                Message::Continuation(Item::FirstBinary(Bytes::from(vec![0; 40]))),
                Message::Continuation(Item::Last(Bytes::from(vec![0; 40]))),
                Message::Binary(Bytes::from_static(b"never read")),
            ],
            64,
        )
        .await;
        let got = all(&mut r).await;
        assert_eq!(
            got,
            vec![Err("a message is over the 64 bytes the server reads".into())]
        );
    }

    /// Refused from its header: a client cannot make the server hold a
    /// frame it will refuse anyway.
    #[actix_web::test]
    async fn a_frame_over_the_limit_is_refused_before_its_payload_arrives() {
        for declared in [65u64, 70_000, 1 << 40] {
            let (_w, mut r, mut client) = socket(64, 64 * 1024);
            // A binary frame's header, masked, whose payload never comes.
            let mut header = vec![0x82u8];
            match declared {
                0..=125 => header.push(0x80 | declared as u8),
                126..=65_535 => {
                    header.push(0x80 | 126);
                    header.extend_from_slice(&(declared as u16).to_be_bytes());
                }
                _ => {
                    header.push(0x80 | 127);
                    header.extend_from_slice(&declared.to_be_bytes());
                }
            }
            header.extend_from_slice(&[1, 2, 3, 4]);
            client.write_all(&header).await.expect("writes");
            let got = tokio::time::timeout(Duration::from_secs(5), r.next()).await;
            assert!(
                matches!(got, Ok(Some(Err(ReadError::TooLarge(64))))),
                "declared {declared}: {got:?}"
            );
        }
        assert_eq!(declared_length(&[0x82]), 0, "not all there yet");
        assert_eq!(declared_length(&[0x82, 0xfe, 1]), 0, "not all there yet");
        assert_eq!(declared_length(&[0x82, 0x85]), 5);
    }

    /// The pump had stopped reading, waiting for the reader, when the
    /// reader refused what came: it must still write the close, or the
    /// socket stays open for good.
    #[actix_web::test]
    async fn a_refusal_while_the_pump_waits_for_the_reader_still_closes() {
        let (mut w, mut r, mut client) = socket(64, 64 * 1024);
        let mut bytes = client_frames(vec![Message::Binary(Bytes::from(vec![7u8; 60]))]);
        // A frame declaring 2^40 bytes, and more than a read-ahead of them.
        bytes.extend_from_slice(&[0x82, 0x80 | 127]);
        bytes.extend_from_slice(&(1u64 << 40).to_be_bytes());
        bytes.extend_from_slice(&[1, 2, 3, 4]);
        bytes.extend_from_slice(&[0u8; 2 * READ_CHUNK]);
        client.write_all(&bytes).await.expect("writes");
        tokio::time::sleep(Duration::from_millis(20)).await;
        let first = r.next().await;
        assert_eq!(
            first.map(|m| m.ok()),
            Some(Some(Incoming::Binary(Bytes::from(vec![7u8; 60]))))
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            r.shared.borrow().input_full,
            "the pump waits for the reader"
        );
        let refused = r.next().await;
        assert!(
            matches!(refused, Some(Err(ReadError::TooLarge(64)))),
            "{refused:?}"
        );
        w.close(None).expect("open");
        let mut close = [0u8; 2];
        let read =
            tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut close)).await;
        assert!(read.is_ok(), "the close frame never came: the pump sleeps");
        assert_eq!(frames(&close), vec![Frame::Close(None)]);
    }

    /// A message in a thousand one-byte fragments holds about its payload,
    /// not a thousand pieces, while it arrives.
    #[actix_web::test]
    async fn a_message_in_tiny_fragments_holds_only_its_payload() {
        // One client codec for all of it: it refuses a last fragment it
        // saw no first for.
        let mut codec = Codec::new().client_mode();
        let mut bytes = BytesMut::new();
        let mut encode = |m: Message| {
            codec.encode(m, &mut bytes).expect("encodes");
        };
        encode(Message::Continuation(Item::FirstBinary(
            Bytes::from_static(b"a"),
        )));
        for _ in 0..1000 {
            encode(Message::Continuation(Item::Continue(Bytes::from_static(
                b"b",
            ))));
        }
        let (_w, mut r, mut client) = socket(4096, 64 * 1024);
        client.write_all(&bytes.split()).await.expect("writes");
        // Nothing comes out yet: the last fragment is still to come.
        let early = tokio::time::timeout(Duration::from_millis(100), r.next()).await;
        assert!(early.is_err(), "{early:?}");
        let held = r.fragments.as_ref().map(|f| f.joined.capacity());
        assert!(
            held.is_some_and(|c| (1001..=4096).contains(&c)),
            "{held:?} bytes held for 1,001 bytes of payload"
        );
        codec
            .encode(
                Message::Continuation(Item::Last(Bytes::from_static(b"c"))),
                &mut bytes,
            )
            .expect("encodes");
        client.write_all(&bytes).await.expect("writes");
        let mut want = vec![b'a'];
        want.extend([b'b'; 1000]);
        want.push(b'c');
        let got = r.next().await.map(|m| m.ok());
        assert_eq!(got, Some(Some(Incoming::Binary(Bytes::from(want)))));
    }

    #[actix_web::test]
    async fn text_that_is_not_utf8_is_an_error() {
        let (_w, mut r, _c) = reader_of(
            vec![Message::Continuation(Item::FirstText(Bytes::from_static(
                b"\xff",
            )))],
            64,
        )
        .await;
        // Not yet: a fragment may end mid-character.
        assert_eq!(all(&mut r).await, vec![]);
        let mut bytes = BytesMut::new();
        // Raw, since actix-http's own encoder only writes UTF-8 text.
        Parser::write_message(&mut bytes, b"\xff\xfe", OpCode::Text, true, true);
        bytes.extend_from_slice(&client_frames(vec![Message::Binary(Bytes::from_static(
            b"after",
        ))]));
        let (_w, mut r, mut client) = socket(64, 1024);
        client.write_all(&bytes).await.expect("writes");
        client.shutdown().await.expect("shuts its side");
        assert_eq!(
            all(&mut r).await,
            vec![Err("a text message is not UTF-8".into())]
        );
    }

    #[actix_web::test]
    async fn an_unmasked_frame_is_a_protocol_error() {
        let mut bytes = BytesMut::new();
        Parser::write_message(&mut bytes, b"x", OpCode::Binary, true, false);
        let (_w, mut r, mut client) = socket(64, 1024);
        client.write_all(&bytes).await.expect("writes");
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
    async fn frames_go_out_in_order_and_the_socket_closes_after_close() {
        let (mut w, _r, mut client) = socket(64, 64 * 1024);
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
        // The server shuts its side after the close frame: the client
        // reads to the end.
        let mut bytes = Vec::new();
        client.read_to_end(&mut bytes).await.expect("reads");
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
    async fn the_writer_waits_for_room_and_fails_once_the_pump_is_gone() {
        // A client that reads nothing yet: the socket takes 1 KiB.
        let (server, mut client) = tokio::io::duplex(1024);
        let (mut w, mut r, pump) = open(server, BytesMut::new(), 64);
        let pump = actix_rt::spawn(pump);
        let frame = [1u8; 1000];
        // Fill the socket, then the writer's room behind it.
        for _ in 0..2 {
            while w.has_room() {
                w.binary(&frame).expect("open");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!w.has_room());
        // Full: the writer waits until the pump has written some.
        let waiting = tokio::time::timeout(Duration::from_millis(50), w.room()).await;
        assert!(waiting.is_err(), "no room while the client reads nothing");
        let mut some = vec![0u8; 8 * 1024];
        client.read_exact(&mut some).await.expect("reads");
        w.room().await.expect("room again");
        w.binary(&frame).expect("open");
        // The socket goes from under the connection: the writer fails, and
        // the reader ends though the client never closed.
        pump.abort();
        let _ = pump.await;
        assert!(w.has_room(), "nothing to wait for");
        assert_eq!(w.room().await, Err(Closed));
        assert_eq!(w.binary(&frame), Err(Closed));
        assert_eq!(w.close(None), Err(Closed));
        assert!(r.next().await.is_none());
    }

    /// A client that never reads its close frame does not keep its socket:
    /// the pump gives up on it once the grace is over.
    #[actix_web::test]
    async fn a_client_that_never_reads_is_let_go_after_the_grace() {
        let (server, _client) = tokio::io::duplex(1024);
        let (mut w, _r, mut pump) = open(server, BytesMut::new(), 64);
        pump.close_grace = Duration::from_millis(100);
        let pump = actix_rt::spawn(pump);
        w.binary(&[1u8; 4000]).expect("open");
        w.close(None).expect("open");
        let ended = tokio::time::timeout(Duration::from_secs(5), pump).await;
        assert!(ended.is_ok(), "the pump still holds the socket");
        assert_eq!(w.room().await, Err(Closed));
    }

    /// What change 53 is for: once a connection has nothing in flight, it
    /// holds no buffer, in either direction.
    #[actix_web::test]
    async fn an_idle_socket_holds_no_buffers() {
        let (mut w, mut r, mut client) = socket(64, 64 * 1024);
        client
            .write_all(&client_frames(vec![Message::Binary(Bytes::from_static(
                b"hello",
            ))]))
            .await
            .expect("writes");
        let got = r.next().await;
        assert_eq!(
            got.map(|m| m.ok()),
            Some(Some(Incoming::Binary(Bytes::from_static(b"hello"))))
        );
        w.binary(b"welcome").expect("open");
        let mut answer = [0u8; 9];
        client
            .read_exact(&mut answer)
            .await
            .expect("reads the frame");
        assert_eq!(
            frames(&answer),
            vec![Frame::Binary(Bytes::from_static(b"welcome"))]
        );
        // The reader has let go of its block; the pump of its own once the
        // write returned, before the client could read it.
        let s = w.shared.borrow();
        assert_eq!((s.input.capacity(), s.out.capacity()), (0, 0));
    }

    /// A client that sends faster than the connection reads is read at most
    /// a frame and one read ahead, and nothing it sent is lost.
    #[actix_web::test]
    async fn the_pump_reads_only_a_frame_ahead_of_the_reader() {
        let (_w, mut r, mut client) = socket(64, 64 * 1024);
        let many: Vec<Message> = (0..200u8)
            .map(|i| Message::Binary(Bytes::from(vec![i; 60])))
            .collect();
        client
            .write_all(&client_frames(many))
            .await
            .expect("writes");
        // Let the pump run until it stops for the reader.
        tokio::time::sleep(Duration::from_millis(20)).await;
        {
            let s = r.shared.borrow();
            assert!(s.input_full, "the pump waits for the reader");
            assert!(s.input.len() < 64 + MAX_FRAME_HEADER + READ_CHUNK);
        }
        client.shutdown().await.expect("shuts its side");
        let got = all(&mut r).await;
        assert_eq!(got.len(), 200);
        for (i, m) in got.into_iter().enumerate() {
            assert_eq!(m, Ok(Incoming::Binary(Bytes::from(vec![i as u8; 60]))));
        }
    }
}
