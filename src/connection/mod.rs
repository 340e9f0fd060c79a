//! One client connection: a struct with a run loop.
//!
//! The loop races four things: a frame from the client, a frame queued for
//! the client by an actor, the heartbeat tick, and shutdown. Requests are
//! handled one at a time, in order, so replies come back in request order.
//!
//! Why not actix-web-actors: there every frame an actor writes goes into an
//! unbounded buffer, so one slow client can grow the server's memory
//! without limit. Here the actors write into a bounded queue per
//! connection ([`ConnHandle`]), and this loop moves frames to the socket
//! only as fast as the client reads them ([`socket::Writer`] waits when its
//! small buffer is full). A client that falls a whole queue behind is
//! closed and resumes from its last event number. (Why not actix-ws
//! either: `socket`'s header.)
mod commands;
pub mod socket;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tracing::Instrument;

use crate::actors::{outbound, ConnHandle, Hub, Outgoing};
use crate::domain::ids::{ClientKind, RepId, Role, SessionId};
use crate::error::{AppError, ErrorCode};
use crate::protocol::{
    decode_request, encode_frame, Encoding, Reply, Request, RequestBody, ServerFrame,
};
use socket::{CloseCode, CloseReason, Incoming, ReadError};

/// Frames larger than this are not even read: the connection is closed
/// with 1009 (message too big). Frames between `max_frame_bytes` and this
/// are read and answered with `frame_too_large`, and the connection stays.
pub fn hard_frame_limit(max_frame_bytes: usize) -> usize {
    (max_frame_bytes * 4).max(1024 * 1024)
}

/// The heartbeat's timers fire on a grid shared by every connection, this
/// many slots a heartbeat (100 ms of the default 25 s). Customers connect
/// at any moment, so without it their pings fall one or two milliseconds
/// apart and each wakes the server's thread on its own; on the grid, all
/// those due in one slot are sent in one wake-up and their pongs read in a
/// few. With 19,000 waiting customers connected over a heartbeat, the
/// server spent about 2.5 times the CPU on pings one by one that it did
/// on pings in one burst (docs/performance.md, change 56). A ping comes
/// at most one slot later than it would have.
const HEARTBEAT_SLOTS: u32 = 250;

/// `at` if it lies on the grid of `slot`s counted from `origin`, else the
/// next instant that does.
fn heartbeat_grid(at: Instant, origin: Instant, slot: Duration) -> Instant {
    let slot = slot.as_nanos().max(1);
    let past = at.saturating_duration_since(origin).as_nanos() % slot;
    match past {
        0 => at,
        // Less than one slot, which came from a `Duration`.
        _ => at + Duration::from_nanos((slot - past) as u64),
    }
}

/// Where the conversation stands.
pub enum Phase {
    /// Nothing yet: `hello` must come first.
    New,
    /// Said hello; a rep must log in, a customer start or resume a session.
    Greeted { role: Role, client: ClientKind },
    /// A logged-in rep.
    Rep {
        rep: RepId,
        client: ClientKind,
        token: String,
        conn: ConnHandle,
    },
    /// A customer in a session.
    Customer {
        session: SessionId,
        client: ClientKind,
        conn: ConnHandle,
    },
}

/// What woke a connection's run loop.
enum Wake {
    Shutdown,
    /// The outbound queue overflowed: the client reads too slowly.
    TooSlow,
    Outbound(Outgoing),
    Client(Option<Result<Incoming, ReadError>>),
    Heartbeat,
    /// `server.hello_timeout_ms` passed without a hello.
    HelloOverdue,
}

/// What the run loop does after a wake-up.
enum Next {
    Continue,
    /// Close, with a close frame when there is a reason to give.
    Close(Option<CloseReason>),
}

pub struct Connection {
    hub: Arc<Hub>,
    ws: socket::Writer,
    encoding: Encoding,
    phase: Phase,
    outbound: Option<outbound::Receiver<Outgoing>>,
    /// When the last ping went out (at first, when the connection opened):
    /// the next is due a heartbeat later.
    last_ping: Instant,
    /// Nothing at all (no pong, no frame) has been heard since that ping.
    awaiting_pong: bool,
    opened: Instant,
    /// Label values of the connected-clients gauge this connection counts in.
    counted: Option<(Role, ClientKind)>,
    /// Frames that must follow the current reply (a replay or snapshot
    /// after login or resume).
    pending: Vec<ServerFrame>,
    /// Every log line of this connection carries its fields: `conn`, and
    /// `role`, `client`, `rep` and `session` once they are known.
    span: tracing::Span,
}

/// What a request handler answers.
pub type Answer = Result<Reply, AppError>;

impl Connection {
    pub fn new(hub: Arc<Hub>, ws: socket::Writer) -> Self {
        let span = tracing::info_span!(
            "conn",
            conn = hub.next_connection_number(),
            role = tracing::field::Empty,
            client = tracing::field::Empty,
            rep = tracing::field::Empty,
            session = tracing::field::Empty,
        );
        Connection {
            hub,
            ws,
            encoding: Encoding::MessagePack,
            phase: Phase::New,
            outbound: None,
            last_ping: Instant::now(),
            awaiting_pong: false,
            opened: Instant::now(),
            counted: None,
            pending: Vec::new(),
            span,
        }
    }

    /// Serves the connection until it closes; everything logged meanwhile
    /// is in the connection's span.
    ///
    /// Not an `async fn`: an async fn keeps its arguments in its future
    /// beside the locals it moves them into (rust-lang/rust#62958), so the
    /// connection (248 bytes) and its stream were held several times over
    /// by every connection's task, 2,176 bytes in all; moved into one
    /// `async move` block and borrowed from there, each is held once
    /// (docs/performance.md, change 27).
    pub fn run(mut self, mut stream: socket::Reader) -> impl Future<Output = ()> {
        let span = self.span.clone();
        async move {
            let close = self.until_closed(&mut stream).await;
            self.detach();
            let _ = self.ws.close(close);
        }
        .instrument(span)
    }

    /// Records what the connection has become in its span, coming from
    /// phase `before`. The log's formatter appends every value recorded,
    /// so each field is recorded once: role and client when greeted, then
    /// the rep or the session.
    fn record_phase(&self, before: &str) {
        let span = &self.span;
        match &self.phase {
            Phase::New => {}
            Phase::Greeted { role, client } => {
                if before == "new" {
                    span.record("role", role.as_str());
                    span.record("client", client.as_str());
                }
            }
            Phase::Rep { rep, .. } => {
                span.record("rep", rep.as_str());
            }
            Phase::Customer { session, .. } => {
                span.record("session", session.as_str());
            }
        }
    }

    /// Whether a rep's console is on the other end (greeted as a rep or
    /// logged in).
    fn is_rep_connection(&self) -> bool {
        matches!(
            self.phase,
            Phase::Rep { .. }
                | Phase::Greeted {
                    role: Role::Rep,
                    ..
                }
        )
    }

    /// The run loop, until the connection is to close; returns why. Its
    /// timers and futures end with it, so they and the close handshake's
    /// state share their room in the task.
    async fn until_closed(&mut self, stream: &mut socket::Reader) -> Option<CloseReason> {
        // One timer keeps the heartbeat (docs/protocol.md 3.2): it is due
        // when the next ping is, or, while a ping is unanswered, at its
        // deadline. A live idle connection so wakes twice a heartbeat, for
        // the timer and for the pong, as with a plain interval, and a dead
        // one is closed a pong timeout after the first ping it misses.
        // Boxed, as tokio's own `Interval` boxes it: held inline, its
        // alignment padded every idle connection's task by about 0.1 KiB.
        let mut beat = Box::pin(tokio::time::sleep_until(self.heartbeat_due().into()));
        // What stops the connection from the server's side is watched by
        // one future, made once per attachment rather than once per wake-up:
        // a new one registers with its token under the token's lock and a
        // dropped one unregisters under it again, which with one for
        // shutdown and one for the kill token was about 4% of a join's
        // instructions (docs/performance.md, change 26).
        let mut attached = self.attachment();
        let mut stop = std::pin::pin!(self.stop_token().cancelled_owned());
        // Its own timer, not the heartbeat's: a long heartbeat must not let a
        // connection sit without a hello for longer. Made once, and dropped
        // once a hello is accepted: held inline, its 112 bytes stayed in
        // every connection's task for as long as the connection was open
        // (docs/performance.md, change 45).
        let mut hello_deadline = Some(Box::pin(tokio::time::sleep_until(
            tokio::time::Instant::from_std(
                self.opened + Duration::from_millis(self.hub.settings.hello_timeout_ms),
            ),
        )));
        loop {
            // The select only says what woke the loop; the work is done in
            // `on_wake`, boxed, so an idle connection's future holds the
            // branch futures and not the state of a request or a send
            // (several KiB per connection, with thousands connected).
            let wake = tokio::select! {
                biased;
                _ = &mut stop => match self.hub.shutdown.is_cancelled() {
                    true => Wake::Shutdown,
                    false => Wake::TooSlow,
                },
                Some(frame) = recv(&mut self.outbound) => Wake::Outbound(frame),
                msg = stream.next() => Wake::Client(msg),
                _ = &mut beat => Wake::Heartbeat,
                _ = overdue(&mut hello_deadline) => Wake::HelloOverdue,
            };
            if let Next::Close(reason) = Box::pin(self.on_wake(wake)).await {
                return reason;
            }
            if !matches!(self.phase, Phase::New) {
                hello_deadline = None;
            }
            if self.attachment() != attached {
                attached = self.attachment();
                stop.set(self.stop_token().cancelled_owned());
            }
            // Only a ping sent or answered moves the timer; resetting it
            // on every wake would cost a timer-wheel update per frame.
            let due = tokio::time::Instant::from_std(self.heartbeat_due());
            if beat.deadline() != due {
                beat.as_mut().reset(due);
            }
        }
    }

    /// Handles one wake-up of the run loop: go on, or close.
    ///
    /// The run loop boxes this future on every wake-up (a frame out, a
    /// ping, a pong: 25 per join), so it is kept small (632 bytes), within
    /// the allocator's per-thread cache (1,032). A request (`on_frame`,
    /// which holds the state of every command) and the rare error and
    /// goodbye frames are boxed on their own; inline they made every box
    /// 3.9 KiB, a slow malloc and free each (docs/performance.md, change
    /// 21). `a_wake_up_fits_the_allocators_thread_cache` holds it there.
    async fn on_wake(&mut self, wake: Wake) -> Next {
        match wake {
            Wake::Shutdown => {
                Box::pin(self.send(&ServerFrame::Goodbye {
                    reason: "the server is shutting down: reconnect and resume".into(),
                }))
                .await;
                Next::Close(Some(CloseReason {
                    code: CloseCode::Restart,
                    description: Some("server shutting down".into()),
                }))
            }
            Wake::TooSlow => Next::Close(Some(CloseReason {
                code: CloseCode::Policy,
                description: Some("too slow: outbound queue full; reconnect and resume".into()),
            })),
            Wake::Outbound(frame) => {
                self.send(&frame).await;
                self.go_on_while_open()
            }
            Wake::Client(None) => Next::Close(None),
            Wake::Client(Some(Ok(m))) => {
                // Any frame answers a ping: the client is there.
                self.awaiting_pong = false;
                match m {
                    Incoming::Binary(b) => Box::pin(self.on_frame(&b, Encoding::MessagePack)).await,
                    Incoming::Text(t) => Box::pin(self.on_frame(&t, Encoding::Json)).await,
                    Incoming::Ping(p) => {
                        if self.writable().await {
                            let _ = self.ws.pong(&p);
                        }
                    }
                    Incoming::Pong => {}
                    Incoming::Close => return Next::Close(None),
                }
                Next::Continue
            }
            // The peer went away without a close handshake: nothing to
            // answer, and not the client's fault.
            Wake::Client(Some(Err(ReadError::Lost(e)))) => {
                tracing::debug!("connection lost: {e}");
                Next::Close(None)
            }
            Wake::Client(Some(Err(e))) => {
                // The WebSocket layer itself failed (a message over the hard
                // limit, text that is not UTF-8, a broken frame): the byte
                // stream cannot be trusted any more, so say why and close.
                let (code, close) = match e {
                    ReadError::TooLarge(_) => (ErrorCode::FrameTooLarge, CloseCode::Size),
                    ReadError::NotUtf8 => (ErrorCode::MalformedFrame, CloseCode::Invalid),
                    _ => (ErrorCode::MalformedFrame, CloseCode::Protocol),
                };
                Box::pin(
                    self.send_error(None, AppError::new(code, format!("WebSocket error: {e}"))),
                )
                .await;
                Next::Close(Some(CloseReason {
                    code: close,
                    description: Some(e.to_string()),
                }))
            }
            Wake::Heartbeat => {
                if self.awaiting_pong {
                    tracing::info!(
                        "closing connection: a ping unanswered for {} ms",
                        self.hub.settings.pong_timeout_ms
                    );
                    return Next::Close(Some(CloseReason {
                        code: CloseCode::Away,
                        description: Some("heartbeat timeout".into()),
                    }));
                }
                self.last_ping = Instant::now();
                self.awaiting_pong = true;
                if self.writable().await {
                    let _ = self.ws.ping(b"");
                }
                self.go_on_while_open()
            }
            Wake::HelloOverdue => {
                Box::pin(self.send_error(
                    None,
                    AppError::new(ErrorCode::HelloRequired, "no hello received in time"),
                ))
                .await;
                Next::Close(Some(CloseReason {
                    code: CloseCode::Policy,
                    description: Some("no hello".into()),
                }))
            }
        }
    }

    /// When the heartbeat timer should next fire: the pong deadline while a
    /// ping is unanswered, else the next ping; on the heartbeat's grid.
    fn heartbeat_due(&self) -> Instant {
        let s = &self.hub.settings;
        let wait = match self.awaiting_pong {
            true => s.pong_timeout_ms,
            false => s.heartbeat_ms,
        };
        let slot = Duration::from_millis(s.heartbeat_ms) / HEARTBEAT_SLOTS;
        heartbeat_grid(
            self.last_ping + Duration::from_millis(wait),
            self.hub.started,
            slot,
        )
    }

    /// Which of the actors' handles this connection is attached with, if
    /// any: a new one after every hello-to-login or session start.
    fn attachment(&self) -> Option<u64> {
        match &self.phase {
            Phase::Rep { conn, .. } | Phase::Customer { conn, .. } => Some(conn.id),
            _ => None,
        }
    }

    /// Cancelled when the server closes this connection: the attachment's
    /// kill token (a child of the shutdown token), or before attaching the
    /// shutdown token itself.
    fn stop_token(&self) -> tokio_util::sync::CancellationToken {
        match &self.phase {
            Phase::Rep { conn, .. } | Phase::Customer { conn, .. } => conn.kill.clone(),
            _ => self.hub.shutdown.clone(),
        }
    }

    /// Leaves the rep's or session's list of connections.
    fn detach(&mut self) {
        match std::mem::replace(&mut self.phase, Phase::New) {
            Phase::Rep { rep, conn, .. } => {
                if let Ok(addr) = self.hub.directory.rep(&rep) {
                    addr.do_send(crate::actors::rep::Detach { conn: conn.id });
                }
            }
            Phase::Customer { session, conn, .. } => {
                if let Some(addr) = self.hub.directory.find_session(&session) {
                    addr.do_send(crate::actors::session::DetachCustomer { conn: conn.id });
                }
            }
            _ => {}
        }
        self.outbound = None;
        self.count(None);
    }

    /// Moves this connection's count in the connected-clients gauge.
    fn count(&mut self, now: Option<(Role, ClientKind)>) {
        let gauge = &self.hub.metrics.connections.connected;
        if let Some((r, c)) = self.counted.take() {
            gauge.get([r.as_str(), c.as_str()]).dec();
        }
        if let Some((r, c)) = now {
            gauge.get([r.as_str(), c.as_str()]).inc();
            self.counted = Some((r, c));
        }
    }

    async fn on_frame(&mut self, bytes: &[u8], enc: Encoding) {
        self.hub
            .metrics
            .connections
            .bytes_in
            .inc_by(bytes.len() as u64);
        if matches!(self.phase, Phase::New) {
            // The hello's encoding is the connection's.
            self.encoding = enc;
        }
        if bytes.len() > self.hub.settings.max_frame_bytes {
            let e = AppError::new(
                ErrorCode::FrameTooLarge,
                format!(
                    "the frame is {} bytes; the server reads at most {}",
                    bytes.len(),
                    self.hub.settings.max_frame_bytes
                ),
            );
            self.send_error(None, e).await;
            return;
        }
        let req = match decode_request(bytes, enc) {
            Ok(r) => r,
            Err(e) => {
                self.count_request("invalid");
                self.send_error(e.re, e.error).await;
                return;
            }
        };
        self.count_request(req.body.type_name());
        let id = req.id;
        let kind = req.body.type_name();
        let before = self.phase_name();
        let answer = self.dispatch(req).await;
        if self.phase_name() != before {
            self.record_phase(before);
            // A rep's log-in and log-out are worth a line at the default
            // level; a customer's connection changes phase twice in every
            // session, whose start is logged by the session already.
            if self.is_rep_connection() {
                tracing::info!(
                    request = kind,
                    phase = self.phase_name(),
                    "connection phase changed"
                );
            } else {
                tracing::debug!(
                    request = kind,
                    phase = self.phase_name(),
                    "connection phase changed"
                );
            }
        }
        match answer {
            Ok(body) => {
                let frame = ServerFrame::Reply { re: id, body };
                self.send(&frame).await;
                self.after_reply().await;
            }
            Err(e) => {
                self.pending.clear();
                self.send_error(Some(id), e).await
            }
        }
    }

    fn phase_name(&self) -> &'static str {
        match &self.phase {
            Phase::New => "new",
            Phase::Greeted { .. } => "greeted",
            Phase::Rep { .. } => "rep",
            Phase::Customer { .. } => "customer",
        }
    }

    fn count_request(&self, kind: &'static str) {
        self.hub.metrics.connections.messages_in.get([kind]).inc();
    }

    /// Waits until a frame may be written to the socket: false if it
    /// never will be, because the socket is gone or because the server
    /// closes this connection meanwhile.
    async fn writable(&mut self) -> bool {
        if self.ws.has_room() {
            return self.ws.is_open();
        }
        // Wait for the client to read, but not past the stop token: a
        // client that stopped reading overflows its frame queue, and its
        // connection must then close, not wait here for ever.
        let stop = self.stop_token();
        tokio::select! {
            room = self.ws.room() => room.is_ok(),
            _ = stop.cancelled() => false,
        }
    }

    /// After a frame that may not have been written: close if the socket
    /// is gone; otherwise go on, and if the server is closing this
    /// connection the loop sees it next and closes with its reason.
    fn go_on_while_open(&self) -> Next {
        match self.ws.is_open() {
            true => Next::Continue,
            false => Next::Close(None),
        }
    }

    /// Writes one frame to the socket, unless it cannot be written
    /// ([`Connection::writable`]).
    async fn send(&mut self, frame: &ServerFrame) {
        if !self.writable().await {
            return;
        }
        let bytes = encode_frame(frame, self.encoding);
        self.hub.metrics.connections.sent(frame.kind(), bytes.len());
        // A frame not written is not lost track of: the socket is gone,
        // and the run loop closes when it next looks.
        let _ = match self.encoding {
            Encoding::MessagePack => self.ws.binary(&bytes),
            // Our JSON encoder only ever produces UTF-8; the lossy path is
            // there only so a broken encoder cannot panic a connection.
            Encoding::Json => match std::str::from_utf8(&bytes) {
                Ok(text) => self.ws.text(text),
                Err(_) => self.ws.text(&String::from_utf8_lossy(&bytes)),
            },
        };
    }

    async fn send_error(&mut self, re: Option<u64>, e: AppError) {
        self.hub
            .metrics
            .connections
            .errors
            .get([e.code.as_str()])
            .inc();
        let frame = ServerFrame::Error {
            re,
            code: e.code,
            message: e.message,
        };
        self.send(&frame).await;
    }

    /// After attaching to a stream: queue the events missed since the
    /// client's resume point, or (when the gap cannot be filled) a snapshot,
    /// to follow the reply.
    async fn follow_resume<F, Fut>(
        &mut self,
        stream: &str,
        seq: u64,
        resume: crate::domain::outbox::Resume<Arc<crate::protocol::Event>>,
        snapshot: F,
    ) -> Result<(), AppError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<crate::protocol::Snapshot, AppError>>,
    {
        match resume {
            crate::domain::outbox::Resume::Replay(events) => {
                let stream: std::sync::Arc<str> = stream.into();
                for (seq, event) in events {
                    self.pending.push(ServerFrame::Event {
                        stream: stream.clone(),
                        seq,
                        event,
                        packed: None,
                    });
                }
            }
            crate::domain::outbox::Resume::Snapshot => {
                self.pending.push(ServerFrame::Snapshot {
                    stream: stream.to_string(),
                    seq,
                    snapshot: snapshot().await?,
                });
            }
        }
        Ok(())
    }

    /// Sends what the handler queued to follow its reply.
    async fn after_reply(&mut self) {
        for f in std::mem::take(&mut self.pending) {
            self.send(&f).await;
        }
    }

    async fn dispatch(&mut self, req: Request) -> Answer {
        use RequestBody as B;
        match (&self.phase, &req.body) {
            (_, B::Ping) => Ok(Reply::Pong),
            (Phase::New, B::Hello { .. }) => commands::hello::hello(self, req.body),
            (Phase::New, _) => Err(AppError::new(
                ErrorCode::HelloRequired,
                "send 'hello' first",
            )),
            (_, B::Hello { .. }) => Err(AppError::new(
                ErrorCode::AlreadyHello,
                "'hello' was already sent",
            )),
            _ => commands::dispatch(self, req.body).await,
        }
    }
}

/// Resolves when the hello deadline passes; never once it is dropped.
async fn overdue(deadline: &mut Option<std::pin::Pin<Box<tokio::time::Sleep>>>) {
    match deadline {
        Some(d) => d.as_mut().await,
        None => std::future::pending().await,
    }
}

/// The next queued frame; never resolves while nothing is attached, or
/// once the actor has let go of this connection.
async fn recv(rx: &mut Option<outbound::Receiver<Outgoing>>) -> Option<Outgoing> {
    if let Some(inner) = rx {
        if let Some(frame) = inner.recv().await {
            return Some(frame);
        }
        *rx = None;
    }
    std::future::pending().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RulesSettings, ServerSettings, SupervisorSettings};
    use crate::domain::catalog::Catalog;
    use crate::metrics::Metrics;
    use crate::store::SledStore;
    use tokio_util::sync::CancellationToken;

    /// glibc's per-thread cache takes chunks up to this size; a larger
    /// malloc goes to the arena (docs/performance.md, change 21).
    const THREAD_CACHE_BYTES: usize = 1032;

    /// A connection of a hub with an empty catalog, and its stream.
    async fn connection(dir: &std::path::Path) -> (Connection, socket::Reader) {
        let metrics = Arc::new(Metrics::new());
        let cache = crate::config::StoreSettings::DEFAULT_CACHE_BYTES;
        let store = SledStore::open(dir, cache, metrics.store.clone()).expect("sled");
        let hub = Arc::new(Hub::new(
            Arc::new(store),
            metrics,
            ServerSettings::default(),
            SupervisorSettings::default(),
            RulesSettings::default(),
            Catalog::default(),
            CancellationToken::new(),
        ));
        let (server, _client) = tokio::io::duplex(1024);
        let (writer, reader, _pump) = socket::open(server, bytes::BytesMut::new(), 1 << 20);
        (Connection::new(hub, writer), reader)
    }

    /// The run loop boxes `on_wake` on every wake-up. The test runs in a
    /// debug build, but the future's layout is the same there as in a
    /// release build (632 bytes in both), so a change that grows it past
    /// the cache fails here.
    #[actix_web::test]
    async fn a_wake_up_fits_the_allocators_thread_cache() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut conn, _stream) = connection(dir.path()).await;
        let wake = conn.on_wake(Wake::Heartbeat);
        let size = std::mem::size_of_val(&wake);
        assert!(
            size <= THREAD_CACHE_BYTES,
            "on_wake's future is {size} bytes, over the {THREAD_CACHE_BYTES} of the allocator's thread cache: box what grew it"
        );
    }

    /// Every connection's task holds this future for as long as the
    /// connection is open: 19,000 of them in the idle scenario. As async
    /// fns, `run` and `serve` made it 1,960 bytes (the connection and its
    /// stream held several times over), and tokio's task around it 2,176;
    /// it was 840 with actix-ws's session and streams, a 1,024-byte task,
    /// 760 with the socket's writer and reader (change 44), and is 632
    /// with the hello deadline boxed and the reader's fragments too
    /// (change 45); with tokio's header, trailer and bookkeeping (at most
    /// 104 bytes) and its 128-byte alignment the task is 768. Like
    /// `on_wake`'s, the layout is the same in debug and release builds.
    #[actix_web::test]
    async fn a_connections_task_holds_each_thing_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (conn, stream) = connection(dir.path()).await;
        let task = conn.run(stream);
        let size = std::mem::size_of_val(&task);
        assert!(
            size <= 768 - 104,
            "the connection's future is {size} bytes, which makes its task over 768: what is held twice?"
        );
    }

    #[test]
    fn heartbeats_due_in_one_slot_fire_together_and_never_early() {
        let origin = Instant::now();
        let slot = Duration::from_millis(100);
        let at = |ms: u64| origin + Duration::from_millis(ms);
        // Pings due 1 ms apart within one slot share its end.
        for due in [25_001, 25_037, 25_099, 25_100] {
            assert_eq!(heartbeat_grid(at(due), origin, slot), at(25_100), "{due}");
        }
        assert_eq!(heartbeat_grid(at(25_101), origin, slot), at(25_200));
        // On the grid already: unchanged.
        assert_eq!(heartbeat_grid(at(25_000), origin, slot), at(25_000));
        // The default: 250 slots of a 25 s heartbeat are 100 ms each.
        assert_eq!(Duration::from_millis(25_000) / HEARTBEAT_SLOTS, slot);
    }
}
