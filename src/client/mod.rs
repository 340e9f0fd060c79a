//! The one Rust client: typed messages, the MessagePack codec, request and
//! reply matching, pushed events, and reconnect with replay. The tests, the
//! load generator and `switchboard-cli` all use it, so the protocol is
//! written once on the client side too.
//!
//! A reader task owns the socket's read half: replies go to whoever waits
//! for that request id, everything else (events, snapshots, goodbye, errors
//! without an id) to the event channel, and the reader remembers the last
//! event number seen so [`Client::reconnect`] can resume exactly there.
mod arrival;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

pub use arrival::{Arrivals, Transport};

use crate::domain::ids::{ClientKind, Role};
use crate::error::ErrorCode;
use crate::protocol::{
    CustomerView, Entry, Event, Reply, Request, RequestBody, ResumeFrom, ServerFrame, Snapshot,
    PROTOCOL_VERSION,
};

/// How long a request waits for its reply by default.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long opening a socket (the TCP connection and the WebSocket
/// upgrade) may take: a listener that accepts and never answers the
/// upgrade, such as a hung server or another service on the port, would
/// otherwise hold the caller for ever.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Pushed frames buffered for the application before the reader waits.
const EVENT_BUFFER: usize = 4096;

/// A client's WebSocket, over a [`Transport`].
pub type Socket = WebSocketStream<Transport>;
type Sink = SplitSink<Socket, Message>;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClientError {
    #[error("server error {code}: {message}")]
    Server { code: ErrorCode, message: String },
    #[error("connection error: {0}")]
    Io(String),
    #[error("no reply within the timeout")]
    Timeout,
    #[error("the connection is closed")]
    Closed,
    #[error("unexpected reply: {0}")]
    Unexpected(String),
}

impl ClientError {
    /// The server's error code, if the server refused.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Why [`Client::wait_for`] gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    /// The time ran out.
    TimedOut,
    /// The connection closed first.
    Closed,
}

/// Something the server sent without being asked.
#[derive(Debug, Clone, PartialEq)]
pub enum Pushed {
    Event {
        stream: String,
        seq: u64,
        event: Event,
    },
    Snapshot {
        stream: String,
        seq: u64,
        snapshot: Snapshot,
    },
    Goodbye {
        reason: String,
    },
    /// An error frame without a request id (a frame too broken to answer).
    Error {
        code: ErrorCode,
        message: String,
    },
    /// The socket closed.
    Closed,
}

/// How to get back in after a reconnect.
#[derive(Debug, Clone)]
enum Auth {
    None,
    Rep { token: String },
    Customer { token: String },
}

type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Reply, ClientError>>>>>;

/// A pushed frame on its way from the reader to the application, with
/// when it reached the socket if the connection is stamped.
struct Arrived {
    pushed: Pushed,
    at: Option<SystemTime>,
}

impl From<Pushed> for Arrived {
    fn from(pushed: Pushed) -> Self {
        Arrived { pushed, at: None }
    }
}

pub struct Client {
    url: String,
    /// The local address the socket binds to, if chosen (load tests spread
    /// connections over several 127.0.0.x sources).
    local: Option<std::net::IpAddr>,
    /// Whether pushed frames carry their arrival ([`Client::connect_stamped`]);
    /// reconnects keep it.
    stamped: bool,
    role: Role,
    kind: ClientKind,
    sink: Arc<tokio::sync::Mutex<Sink>>,
    waiters: Waiters,
    events_tx: mpsc::Sender<Arrived>,
    events: mpsc::Receiver<Arrived>,
    /// The last event seen: where a reconnect resumes.
    position: Arc<Mutex<Option<ResumeFrom>>>,
    next_id: AtomicU64,
    auth: Auth,
    reader: tokio::task::JoinHandle<()>,
    /// The server's ping interval, from its `welcome`.
    heartbeat: Duration,
}

/// A request's place among the waiters, given up when dropped.
struct Waiting<'a> {
    waiters: &'a Waiters,
    id: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        lock(self.waiters).remove(&self.id);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Client {
    /// Connects to `url` (such as `ws://127.0.0.1:8080/ws`) and says hello.
    pub async fn connect(url: &str, role: Role, kind: ClientKind) -> Result<Client, ClientError> {
        Self::connect_from(url, None, role, kind).await
    }

    /// Like [`Client::connect`], with the socket bound to `local` (port
    /// chosen by the system) before connecting; reconnects bind it too.
    pub async fn connect_from(
        url: &str,
        local: Option<std::net::IpAddr>,
        role: Role,
        kind: ClientKind,
    ) -> Result<Client, ClientError> {
        Self::connect_with(url, local, false, role, kind).await
    }

    /// Like [`Client::connect_from`], and every pushed frame carries when
    /// the kernel received it ([`Client::next_pushed_at`]), so a latency
    /// leaves out how long this process took to read it. Linux only;
    /// elsewhere the time is `None`.
    pub async fn connect_stamped(
        url: &str,
        local: Option<std::net::IpAddr>,
        role: Role,
        kind: ClientKind,
    ) -> Result<Client, ClientError> {
        Self::connect_with(url, local, true, role, kind).await
    }

    async fn connect_with(
        url: &str,
        local: Option<std::net::IpAddr>,
        stamped: bool,
        role: Role,
        kind: ClientKind,
    ) -> Result<Client, ClientError> {
        let (events_tx, events) = mpsc::channel(EVENT_BUFFER);
        let waiters: Waiters = Arc::default();
        let position = Arc::new(Mutex::new(None));
        let (sink, reader) = open(
            url,
            local,
            stamped,
            waiters.clone(),
            events_tx.clone(),
            position.clone(),
        )
        .await?;
        let mut client = Client {
            url: url.to_string(),
            local,
            stamped,
            role,
            kind,
            sink: Arc::new(tokio::sync::Mutex::new(sink)),
            waiters,
            events_tx,
            events,
            position,
            next_id: AtomicU64::new(1),
            auth: Auth::None,
            reader,
            heartbeat: Duration::ZERO,
        };
        client.hello().await?;
        Ok(client)
    }

    /// The server's ping interval, as its `welcome` said: the period of
    /// an idle connection's only traffic.
    pub fn heartbeat(&self) -> Duration {
        self.heartbeat
    }

    async fn hello(&mut self) -> Result<(), ClientError> {
        match self
            .request(RequestBody::Hello {
                protocol: PROTOCOL_VERSION,
                role: self.role,
                client: self.kind,
            })
            .await?
        {
            Reply::Welcome { heartbeat_ms, .. } => {
                self.heartbeat = Duration::from_millis(heartbeat_ms);
                Ok(())
            }
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Sends a request and waits for its reply (or error).
    pub async fn request(&self, body: RequestBody) -> Result<Reply, ClientError> {
        self.request_timeout(body, REQUEST_TIMEOUT).await
    }

    pub async fn request_timeout(
        &self,
        body: RequestBody,
        timeout: Duration,
    ) -> Result<Reply, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let bytes = rmp_serde::to_vec_named(&Request { id, body })
            .map_err(|e| ClientError::Io(e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        lock(&self.waiters).insert(id, tx);
        // However this ends (a reply, an error, the timeout, or the caller
        // dropping this future), the waiter goes: one left behind would
        // wait for a reply that a reconnect's new socket never brings.
        let _waiting = Waiting {
            waiters: &self.waiters,
            id,
        };
        // The send counts against the timeout too: a server that stops
        // reading would otherwise hold this request, and the sink's lock
        // every other request waits for, without end.
        tokio::time::timeout(timeout, async {
            self.send_raw(bytes).await?;
            rx.await.map_err(|_| ClientError::Closed)?
        })
        .await
        .unwrap_or(Err(ClientError::Timeout))
    }

    /// Sends bytes as one binary frame, as they are (for testing bad input).
    pub async fn send_raw(&self, bytes: Vec<u8>) -> Result<(), ClientError> {
        self.sink
            .lock()
            .await
            .send(Message::Binary(bytes))
            .await
            .map_err(|e| ClientError::Io(e.to_string()))
    }

    /// Sends one text frame (the JSON encoding).
    pub async fn send_text(&self, text: String) -> Result<(), ClientError> {
        self.sink
            .lock()
            .await
            .send(Message::Text(text))
            .await
            .map_err(|e| ClientError::Io(e.to_string()))
    }

    /// Logs a rep in; afterwards [`Client::reconnect`] logs in again with
    /// the token and resumes the event stream.
    pub async fn login(&mut self, username: &str, password: &str) -> Result<Reply, ClientError> {
        let reply = self
            .request(RequestBody::Login {
                username: Some(username.into()),
                password: Some(password.into()),
                token: None,
                resume: None,
            })
            .await?;
        match &reply {
            Reply::LoggedIn {
                token, stream, seq, ..
            } => {
                self.auth = Auth::Rep {
                    token: token.clone(),
                };
                self.take_position(stream, *seq, false);
                Ok(reply)
            }
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Starts a customer session.
    pub async fn start_session(
        &mut self,
        entry: Entry,
        name: &str,
        company: &str,
        description: &str,
    ) -> Result<CustomerView, ClientError> {
        let reply = self
            .request(RequestBody::StartSession {
                entry,
                name: name.into(),
                company: company.into(),
                description: description.into(),
            })
            .await?;
        self.customer_attached(reply, false)
    }

    /// A customer's session, started or resumed. A resume asked for what
    /// came after the position: the replay or snapshot that follows the
    /// reply moves it, as the reader reads them; the reply's `seq` is where
    /// the replay will end, and taking it now would skip the replay should
    /// the connection drop first.
    fn customer_attached(
        &mut self,
        reply: Reply,
        resumed: bool,
    ) -> Result<CustomerView, ClientError> {
        match reply {
            Reply::SessionStarted(view) => {
                self.auth = Auth::Customer {
                    token: view.token.clone(),
                };
                self.take_position(&view.stream, view.seq, resumed);
                Ok(view)
            }
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Moves the position as a login's or a session's reply says
    /// ([`position_on_reply`]).
    fn take_position(&self, stream: &str, seq: u64, resumed: bool) {
        let mut pos = lock(&self.position);
        if let Some(next) = position_on_reply(pos.as_ref(), stream, seq, resumed) {
            *pos = Some(next);
        }
    }

    /// Where the event stream stands (last event seen).
    pub fn position(&self) -> Option<ResumeFrom> {
        lock(&self.position).clone()
    }

    /// Drops the socket and opens a new one, logs in again (rep token or
    /// customer session token) and resumes from the last event seen: the
    /// missed events (or a snapshot) arrive on the event channel.
    pub async fn reconnect(&mut self) -> Result<Reply, ClientError> {
        self.reader.abort();
        let _ = self.sink.lock().await.close().await;
        let (sink, reader) = open(
            &self.url,
            self.local,
            self.stamped,
            self.waiters.clone(),
            self.events_tx.clone(),
            self.position.clone(),
        )
        .await?;
        *self.sink.lock().await = sink;
        self.reader = reader;
        self.hello().await?;
        let resume = self.position();
        match self.auth.clone() {
            Auth::None => Ok(Reply::Ok),
            Auth::Rep { token } => {
                self.request(RequestBody::Login {
                    username: None,
                    password: None,
                    token: Some(token),
                    resume,
                })
                .await
            }
            Auth::Customer { token } => {
                let resumed = resume.is_some();
                let reply = self
                    .request(RequestBody::ResumeSession { token, resume })
                    .await?;
                self.customer_attached(reply.clone(), resumed)?;
                Ok(reply)
            }
        }
    }

    /// The next pushed frame, or `None` after `timeout`.
    pub async fn next_pushed(&mut self, timeout: Duration) -> Option<Pushed> {
        self.next_pushed_at(timeout).await.map(|(pushed, _)| pushed)
    }

    /// Like [`Client::next_pushed`], with when the frame reached the
    /// socket: known on a connection opened by [`Client::connect_stamped`]
    /// on Linux, otherwise `None`.
    pub async fn next_pushed_at(
        &mut self,
        timeout: Duration,
    ) -> Option<(Pushed, Option<SystemTime>)> {
        tokio::time::timeout(timeout, self.events.recv())
            .await
            .ok()
            .flatten()
            .map(|a| (a.pushed, a.at))
    }

    /// Waits for an event matching `want`, skipping others; `None` after
    /// `timeout` or once the connection closed ([`Client::wait_for`] says
    /// which).
    pub async fn wait_event(
        &mut self,
        timeout: Duration,
        want: impl Fn(&Event) -> bool,
    ) -> Option<Event> {
        self.wait_for(timeout, want).await.ok()
    }

    /// Like [`Client::wait_event`], saying why no matching event came: a
    /// server that closed the connection is not one that was slow.
    pub async fn wait_for(
        &mut self,
        timeout: Duration,
        want: impl Fn(&Event) -> bool,
    ) -> Result<Event, Missed> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_pushed(left).await.ok_or(Missed::TimedOut)? {
                Pushed::Event { event, .. } if want(&event) => return Ok(event),
                Pushed::Closed => return Err(Missed::Closed),
                _ => continue,
            }
        }
    }

    /// Drops events already received.
    pub fn drain(&mut self) -> Vec<Pushed> {
        let mut out = Vec::new();
        while let Ok(a) = self.events.try_recv() {
            out.push(a.pushed);
        }
        out
    }

    pub async fn close(self) {
        let _ = self.sink.lock().await.close().await;
        self.reader.abort();
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Opens a TCP connection (no delay) to `remote`, from the local address
/// `local` when one is given, the port chosen by the system.
///
/// On Linux the port is chosen when connecting, not when binding
/// (`IP_BIND_ADDRESS_NO_PORT`). A port taken at bind time must be free for
/// every destination, so a load generator that opens and closes thousands
/// of connections a second soon finds its ports all held in TIME_WAIT, and
/// each bind then searches the whole range on the generator's CPU. A port
/// taken at connect time only has to be free for this one destination, and
/// on loopback the kernel may reuse one in TIME_WAIT.
pub async fn connect_tcp_from(
    remote: std::net::SocketAddr,
    local: Option<std::net::IpAddr>,
) -> std::io::Result<TcpStream> {
    let Some(local) = local else {
        let stream = TcpStream::connect(remote).await?;
        stream.set_nodelay(true)?;
        return Ok(stream);
    };
    let socket = if local.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // IPv4 only: the load generator's sources are 127.0.0.x.
    #[cfg(target_os = "linux")]
    if local.is_ipv4() {
        turn_on(&socket, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT)?;
    }
    socket.bind(std::net::SocketAddr::new(local, 0))?;
    let stream = socket.connect(remote).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Turns on a socket's boolean option `name` at `level` (`setsockopt`
/// with an int of 1).
#[cfg(target_os = "linux")]
fn turn_on(
    socket: &impl std::os::fd::AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
) -> std::io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a plain setsockopt on an open socket the caller holds, with
    // a pointer to a live c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    match rc {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

async fn open(
    url: &str,
    local: Option<std::net::IpAddr>,
    stamped: bool,
    waiters: Waiters,
    events: mpsc::Sender<Arrived>,
    position: Arc<Mutex<Option<ResumeFrom>>>,
) -> Result<(Sink, tokio::task::JoinHandle<()>), ClientError> {
    let (socket, arrivals) =
        tokio::time::timeout(CONNECT_TIMEOUT, open_websocket(url, local, stamped))
            .await
            .map_err(|_| {
                ClientError::Io(format!(
                    "{url} did not answer the WebSocket upgrade within {} s",
                    CONNECT_TIMEOUT.as_secs()
                ))
            })??;
    let (sink, stream) = socket.split();
    let reader = tokio::spawn(read_loop(stream, arrivals, waiters, events, position));
    Ok((sink, reader))
}

/// The TCP connection to `url` (plain `ws://` only), from `local` if
/// given, upgraded to a WebSocket; with the handle its reads stamp, if
/// `stamped` and the system can. [`Client`] opens its socket here, and so
/// does the load tests' relay client, which speaks another protocol over
/// it.
pub async fn open_websocket(
    url: &str,
    local: Option<std::net::IpAddr>,
    stamped: bool,
) -> Result<(Socket, Option<Arrivals>), ClientError> {
    let io = |e: &dyn std::fmt::Display| ClientError::Io(e.to_string());
    let request = url.into_client_request().map_err(|e| io(&e))?;
    let (Some("ws"), Some(host)) = (request.uri().scheme_str(), request.uri().host()) else {
        return Err(ClientError::Io(format!("not a ws:// URL: {url}")));
    };
    let authority = format!("{host}:{}", request.uri().port_u16().unwrap_or(80));
    let stream = match local {
        // Every address the name resolves to, in turn, as a browser would.
        None => {
            let stream = TcpStream::connect(&authority).await.map_err(|e| io(&e))?;
            stream.set_nodelay(true).map_err(|e| io(&e))?;
            stream
        }
        Some(ip) => {
            let remote = tokio::net::lookup_host(&authority)
                .await
                .map_err(|e| io(&e))?
                .find(|a| a.is_ipv4() == ip.is_ipv4())
                .ok_or_else(|| ClientError::Io(format!("cannot resolve {authority}")))?;
            connect_tcp_from(remote, Some(ip))
                .await
                .map_err(|e| io(&e))?
        }
    };
    let transport = match stamped {
        true => Transport::stamped(stream).map_err(|e| io(&e))?,
        false => Transport::plain(stream),
    };
    let arrivals = transport.arrivals();
    let (socket, _) = tokio_tungstenite::client_async(request, transport)
        .await
        .map_err(|e| io(&e))?;
    Ok((socket, arrivals))
}

async fn read_loop(
    mut stream: SplitStream<Socket>,
    arrivals: Option<Arrivals>,
    waiters: Waiters,
    events: mpsc::Sender<Arrived>,
    position: Arc<Mutex<Option<ResumeFrom>>>,
) {
    while let Some(msg) = stream.next().await {
        let frame: ServerFrame = match msg {
            Ok(Message::Binary(b)) => match rmp_serde::from_slice(&b) {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!("undecodable frame from server: {e}");
                    continue;
                }
            },
            Ok(Message::Text(t)) => match serde_json::from_str(&t) {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!("undecodable text frame from server: {e}");
                    continue;
                }
            },
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        let mut seen = None;
        let pushed = match frame {
            ServerFrame::Reply { re, body } => {
                if let Some(w) = lock(&waiters).remove(&re) {
                    let _ = w.send(Ok(body));
                }
                continue;
            }
            ServerFrame::Error {
                re: Some(re),
                code,
                message,
            } => {
                if let Some(w) = lock(&waiters).remove(&re) {
                    let _ = w.send(Err(ClientError::Server { code, message }));
                }
                continue;
            }
            ServerFrame::Error {
                re: None,
                code,
                message,
            } => Pushed::Error { code, message },
            ServerFrame::Event {
                stream, seq, event, ..
            } => {
                let stream = stream.to_string();
                seen = Some(ResumeFrom {
                    stream: stream.clone(),
                    after: seq,
                });
                Pushed::Event {
                    stream,
                    seq,
                    // Decoded just now, so never shared: this moves it out.
                    event: std::sync::Arc::unwrap_or_clone(event),
                }
            }
            ServerFrame::Snapshot {
                stream,
                seq,
                snapshot,
            } => {
                seen = Some(ResumeFrom {
                    stream: stream.clone(),
                    after: seq,
                });
                Pushed::Snapshot {
                    stream,
                    seq,
                    snapshot,
                }
            }
            ServerFrame::Goodbye { reason } => Pushed::Goodbye { reason },
        };
        // The read that completed this frame is the latest one: nothing
        // reads this socket between it and here.
        let at = arrivals.as_ref().and_then(Arrivals::latest);
        if events.send(Arrived { pushed, at }).await.is_err() {
            break;
        }
        // Only once the event is handed on does it count as seen: a reader
        // stopped while it waited for room (a reconnect aborts it) would
        // otherwise resume after an event nobody received.
        if let Some(seen) = seen {
            *lock(&position) = Some(seen);
        }
    }
    // Fail whoever still waits, so no request hangs to its timeout.
    for (_, w) in lock(&waiters).drain() {
        let _ = w.send(Err(ClientError::Closed));
    }
    let _ = events.send(Pushed::Closed.into()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_listener_that_never_answers_the_upgrade_is_given_up_on() {
        // Accepts, reads nothing, answers nothing: a hung server.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/ws", listener.local_addr().unwrap());
        let held = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        // Both ways of connecting, side by side: each waits out the timeout.
        let attempts = [None, Some(std::net::Ipv4Addr::LOCALHOST.into())].map(|local| {
            let url = url.clone();
            tokio::spawn(async move {
                let attempt =
                    Client::connect_from(&url, local, Role::Customer, ClientKind::Desktop);
                let outcome = tokio::time::timeout(CONNECT_TIMEOUT * 3, attempt).await;
                (local, outcome.map(|o| o.err()))
            })
        });
        for attempt in attempts {
            let (local, outcome) = attempt.await.unwrap();
            let error = outcome.expect("the client gives up by itself");
            assert_eq!(
                error,
                Some(ClientError::Io(format!(
                    "{url} did not answer the WebSocket upgrade within 10 s"
                ))),
                "from {local:?}"
            );
        }
        held.abort();
    }

    /// A server that greets and then answers nothing: a request the
    /// caller stops waiting for must not stay among the waiters.
    #[tokio::test]
    async fn a_request_given_up_on_leaves_no_waiter() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/ws", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            let mut greeted = false;
            while let Some(Ok(msg)) = ws.next().await {
                let Message::Binary(b) = msg else { continue };
                let req: Request = rmp_serde::from_slice(&b).unwrap();
                if !greeted {
                    greeted = true;
                    let welcome = ServerFrame::Reply {
                        re: req.id,
                        body: Reply::Welcome {
                            protocol: PROTOCOL_VERSION,
                            server: "hung".into(),
                            max_frame_bytes: 1 << 16,
                            heartbeat_ms: 0,
                            pong_timeout_ms: 0,
                        },
                    };
                    let frame = rmp_serde::to_vec_named(&welcome).unwrap();
                    ws.send(Message::Binary(frame)).await.unwrap();
                }
            }
        });
        let client = Client::connect(&url, Role::Customer, ClientKind::Desktop)
            .await
            .unwrap();
        // Dropped by an outer timeout, before its own.
        let dropped = tokio::time::timeout(
            Duration::from_millis(200),
            client.request_timeout(RequestBody::Ping, Duration::from_secs(60)),
        )
        .await;
        assert!(dropped.is_err(), "the hung server answered: {dropped:?}");
        assert!(lock(&client.waiters).is_empty(), "a waiter was left");
        // Its own timeout, as before.
        let timed_out = client
            .request_timeout(RequestBody::Ping, Duration::from_millis(100))
            .await;
        assert_eq!(timed_out, Err(ClientError::Timeout));
        assert!(lock(&client.waiters).is_empty());
        server.abort();
    }
}

/// Where the event position goes when a login's or a session's reply
/// says its stream stood at `seq`: `None` keeps it. After a resume, the
/// replay or snapshot that follows the reply moves it as the reader reads
/// them; taking `seq` at once would skip the replay should the connection
/// drop first. Otherwise the reader may already have read an event sent
/// right behind the reply, and the later of the two is kept.
fn position_on_reply(
    now: Option<&ResumeFrom>,
    stream: &str,
    seq: u64,
    resumed: bool,
) -> Option<ResumeFrom> {
    let seen_later = now.is_some_and(|p| p.stream == stream && p.after > seq);
    (!resumed && !seen_later).then(|| ResumeFrom {
        stream: stream.to_string(),
        after: seq,
    })
}

#[cfg(test)]
mod position_tests {
    use super::*;

    fn at(stream: &str, after: u64) -> ResumeFrom {
        ResumeFrom {
            stream: stream.into(),
            after,
        }
    }

    #[test]
    fn a_first_reply_sets_the_position() {
        assert_eq!(position_on_reply(None, "s", 4, false), Some(at("s", 4)));
    }

    #[test]
    fn an_event_read_behind_the_reply_is_not_read_again() {
        // The reader saw event 5 before login() took the reply's 4.
        assert_eq!(position_on_reply(Some(&at("s", 5)), "s", 4, false), None);
        // A new stream (another session, a restarted server) starts over.
        assert_eq!(
            position_on_reply(Some(&at("old", 9)), "s", 4, false),
            Some(at("s", 4))
        );
    }

    #[test]
    fn a_resume_leaves_the_position_to_the_replay() {
        // At 50, resumed, the server's stream is at 60: 51 to 60 follow
        // the reply, and a drop before they are read must ask for them again.
        assert_eq!(position_on_reply(Some(&at("s", 50)), "s", 60, true), None);
        assert_eq!(position_on_reply(Some(&at("old", 50)), "s", 3, true), None);
    }
}
