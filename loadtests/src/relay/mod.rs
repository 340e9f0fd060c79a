//! The bare WebSocket relay: the baseline with no queues and no storage.
//!
//! Each connection gets an id, sent to it as the first frame (8 bytes, big
//! endian). A binary frame whose first 8 bytes name a connection is relayed
//! to it as it is; id 0 means "back to me" (an echo, for round trips). A
//! frame whose first 8 bytes are [`TEAM`] is relayed as it is to every
//! connection it names ([`team_frame`]): one frame in and one out to each
//! member of a team, the least a server that alerts a team must send. One
//! task per connection and a bounded outbound queue, as a plain
//! tokio-tungstenite server would be written.
//!
//! Started with a store ([`bind_durable`]), the relay writes each frame
//! for another connection through Switchboard's `SledStore`, under a key
//! of its own, and passes it on once the write is durable: a chat line's
//! least work where every line survives `kill -9` before anyone sees it.
//!
//! [`actix_stack`] is the same relay on Switchboard's own stack: actix-http
//! with the upgrade as Switchboard's server does it, and Switchboard's
//! WebSocket layer.
pub mod actix_stack;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use switchboard::client::{Arrivals, Socket};
use switchboard::store::{Expect, Store};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// Frames queued for one connection before further ones are dropped
/// (Switchboard's default outbound queue is the same size).
pub(crate) const OUTBOUND: usize = 1024;

/// Every open connection's outbound queue, by id: the whole of the relay's
/// state, shared by both stacks (`T` is each stack's frame type).
pub(crate) struct PeerTable<T>(Mutex<HashMap<u64, mpsc::Sender<T>>>);

impl<T> Default for PeerTable<T> {
    fn default() -> Self {
        PeerTable(Mutex::default())
    }
}

impl<T> PeerTable<T> {
    fn peers(&self) -> std::sync::MutexGuard<'_, HashMap<u64, mpsc::Sender<T>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers connection `id` with a new bounded outbound queue.
    pub(crate) fn join(&self, id: u64) -> (mpsc::Sender<T>, mpsc::Receiver<T>) {
        let (tx, rx) = mpsc::channel(OUTBOUND);
        self.peers().insert(id, tx.clone());
        (tx, rx)
    }

    pub(crate) fn leave(&self, id: u64) {
        self.peers().remove(&id);
    }

    /// The queues of the connections a [`team_frame`] names, those still
    /// connected, in the order named; None for any other frame. The caller
    /// `try_send`s to each, as to a [`destination`](Self::destination).
    pub(crate) fn team(&self, frame: &[u8]) -> Option<Vec<mpsc::Sender<T>>> {
        if word(frame, 0)? != TEAM {
            return None;
        }
        let n = usize::try_from(word(frame, 3)?).ok()?.min(MAX_TEAM);
        let peers = self.peers();
        Some(
            (0..n)
                .filter_map(|k| word(frame, 4 + k))
                .filter_map(|id| peers.get(&id).cloned())
                .collect(),
        )
    }

    /// The queue of the connection a frame's first 8 bytes name (0 or the
    /// sender's own id `me`: back to the sender, `own`); None for a short
    /// frame or an id no longer connected. The caller then `try_send`s, so
    /// a full queue (a slow consumer) drops the frame.
    pub(crate) fn destination(
        &self,
        me: u64,
        own: &mpsc::Sender<T>,
        frame: &[u8],
    ) -> Option<mpsc::Sender<T>> {
        let target = u64::from_be_bytes(frame.get(..8)?.try_into().ok()?);
        if target == 0 || target == me {
            Some(own.clone())
        } else {
            self.peers().get(&target).cloned()
        }
    }
}

/// The first word of a frame for a team: `[TEAM, stamp, wall, n, id 1 ..
/// id n, padding]`. No connection has this id (they count from 1).
pub const TEAM: u64 = u64::MAX;

/// The most connections one team frame names; a frame naming more is
/// relayed to the first `MAX_TEAM`.
pub const MAX_TEAM: usize = 64;

/// Big-endian word `i` of a frame, if the frame is that long.
fn word(frame: &[u8], i: usize) -> Option<u64> {
    let at = i.checked_mul(8)?;
    Some(u64::from_be_bytes(frame.get(at..at + 8)?.try_into().ok()?))
}

type Peers = Arc<PeerTable<Message>>;

/// Binds `127.0.0.1:port` (0 for any) and returns the port and the future
/// that serves until the process ends.
pub async fn bind(
    port: u16,
) -> anyhow::Result<(u16, impl std::future::Future<Output = ()> + Send)> {
    bind_with(port, None).await
}

/// [`bind`], writing each frame for another connection to `store`, durably,
/// before passing it on.
pub async fn bind_durable(
    port: u16,
    store: Arc<dyn Store>,
) -> anyhow::Result<(u16, impl std::future::Future<Output = ()> + Send)> {
    bind_with(port, Some(store)).await
}

async fn bind_with(
    port: u16,
    store: Option<Arc<dyn Store>>,
) -> anyhow::Result<(u16, impl std::future::Future<Output = ()> + Send)> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| anyhow::anyhow!("the relay cannot listen on 127.0.0.1:{port}: {e}"))?;
    let port = listener.local_addr()?.port();
    Ok((port, serve(listener, store)))
}

async fn serve(listener: TcpListener, store: Option<Arc<dyn Store>>) {
    let peers: Peers = Arc::default();
    let next = Arc::new(AtomicU64::new(1));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and the like: wait and go on.
                eprintln!("relay: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let id = next.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(connection(stream, id, peers.clone(), store.clone()));
    }
}

async fn connection(stream: TcpStream, id: u64, peers: Peers, store: Option<Arc<dyn Store>>) {
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = peers.join(id);
    // Frames from this connection written so far, for the store's keys.
    let mut written: u64 = 0;
    if sink
        .send(Message::Binary(id.to_be_bytes().to_vec()))
        .await
        .is_ok()
    {
        loop {
            tokio::select! {
                msg = source.next() => match msg {
                    Some(Ok(Message::Binary(b))) => {
                        if let Some(team) = peers.team(&b) {
                            for to in team {
                                let _ = to.try_send(Message::Binary(b.clone()));
                            }
                        } else if let Some(to) = peers.destination(id, &tx, &b) {
                            match &store {
                                Some(store) if !to.same_channel(&tx) => {
                                    written += 1;
                                    let key = format!("line/{id}/{written}");
                                    tokio::spawn(write_then_pass(store.clone(), key, b, to));
                                }
                                _ => {
                                    let _ = to.try_send(Message::Binary(b));
                                }
                            }
                        }
                    }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
                out = rx.recv() => match out {
                    Some(m) => if sink.send(m).await.is_err() { break },
                    None => break,
                },
            }
        }
    }
    peers.leave(id);
}

/// Writes `frame` under `key`, as a new key, and passes it to `to` once
/// the write is durable; a frame whose write fails is dropped, as one for
/// a full queue is.
async fn write_then_pass(
    store: Arc<dyn Store>,
    key: String,
    frame: Vec<u8>,
    to: mpsc::Sender<Message>,
) {
    match store.put(&key, frame.clone(), Expect::Absent).await {
        Ok(_) => {
            let _ = to.try_send(Message::Binary(frame));
        }
        Err(e) => eprintln!("relay: cannot write {key}: {e}"),
    }
}

/// A connection to the relay.
pub struct RelayClient {
    pub id: u64,
    pub sink: SplitSink<Socket, Message>,
    pub stream: SplitStream<Socket>,
    /// When the latest read reached the socket, if connected with
    /// `stamped` (as `switchboard::client::Client::connect_stamped`).
    pub arrivals: Option<Arrivals>,
}

/// Connects to `ws://127.0.0.1:port/` from `local` and reads the id;
/// `stamped` asks the kernel for each read's arrival time.
pub async fn connect(
    url: &str,
    local: Option<IpAddr>,
    stamped: bool,
) -> anyhow::Result<RelayClient> {
    let (ws, arrivals) = switchboard::client::open_websocket(url, local, stamped).await?;
    let (sink, mut stream) = ws.split();
    // A Switchboard server says nothing first, then refuses the missing
    // hello with an error frame: either way, say which server this is.
    let not_the_relay = "Is it a Switchboard server? Then leave out --protocol relay";
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
        .await
        .map_err(|_| anyhow::anyhow!("{url} sent no relay id within 10 s. {not_the_relay}"))?;
    let id = match first {
        Some(Ok(Message::Binary(b))) if b.len() == 8 => {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b);
            u64::from_be_bytes(a)
        }
        Some(Ok(Message::Binary(b))) => anyhow::bail!(
            "{url} sent a {}-byte frame where the relay sends its 8-byte id. {not_the_relay}",
            b.len()
        ),
        other => anyhow::bail!("{url} sent {other:?} where the relay sends its id"),
    };
    Ok(RelayClient {
        id,
        sink,
        stream,
        arrivals,
    })
}

/// A frame for `target` (0: echo) carrying `stamp` (nanoseconds) and
/// padding up to `size` bytes.
pub fn frame(target: u64, stamp: u64, size: usize) -> Message {
    Message::Binary(frame_bytes(&[target, stamp], size))
}

/// `words` big-endian, then padding up to `size` bytes.
fn frame_bytes(words: &[u64], size: usize) -> Vec<u8> {
    let size = size.max(8 * words.len());
    let mut b = Vec::with_capacity(size);
    for w in words {
        b.extend_from_slice(&w.to_be_bytes());
    }
    b.resize(size, b'x');
    b
}

/// The stamp of a frame made by [`frame`].
pub fn stamp_of(b: &[u8]) -> Option<u64> {
    let mut a = [0u8; 8];
    a.copy_from_slice(b.get(8..16)?);
    Some(u64::from_be_bytes(a))
}

/// Like [`frame`], also carrying `wall`, the sender's clock time, so the
/// receiver can set it against the kernel's arrival stamp (the same
/// clock); `size` is at least 24 bytes.
pub fn frame_with_wall(target: u64, stamp: u64, wall: SystemTime, size: usize) -> Message {
    Message::Binary(frame_bytes(&[target, stamp, wall_ns(wall)], size))
}

/// A frame for each of the connections `team` names (at most [`MAX_TEAM`]),
/// carrying `stamp` and `wall` where [`frame_with_wall`] carries them, so
/// [`stamp_of`] and [`wall_of`] read either; `size` is a floor, as there.
pub fn team_frame(team: &[u64], stamp: u64, wall: SystemTime, size: usize) -> Message {
    let team = &team[..team.len().min(MAX_TEAM)];
    let mut words = vec![TEAM, stamp, wall_ns(wall), team.len() as u64];
    words.extend_from_slice(team);
    Message::Binary(frame_bytes(&words, size))
}

fn wall_ns(wall: SystemTime) -> u64 {
    wall.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64
}

/// The clock time of a frame made by [`frame_with_wall`].
pub fn wall_of(b: &[u8]) -> Option<SystemTime> {
    let mut a = [0u8; 8];
    a.copy_from_slice(b.get(16..24)?);
    Some(UNIX_EPOCH + Duration::from_nanos(u64::from_be_bytes(a)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn relays_between_connections_and_echoes() {
        let (port, server) = bind(0).await.unwrap();
        tokio::spawn(server);
        let url = format!("ws://127.0.0.1:{port}/");
        let mut a = connect(&url, None, false).await.unwrap();
        let mut b = connect(&url, Some("127.0.0.1".parse().unwrap()), true)
            .await
            .unwrap();
        assert!(a.arrivals.is_none());
        let arrivals = b.arrivals.clone().expect("stamped on Linux");
        // The kernel turns stamping on a moment after the first socket
        // asks, longer on a loaded machine: echo until a read is stamped.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            b.sink.send(frame(0, 1, 32)).await.unwrap();
            assert!(matches!(
                b.stream.next().await,
                Some(Ok(Message::Binary(_)))
            ));
            if arrivals.latest().is_some() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the kernel stamped no read in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let wall = SystemTime::now();
        a.sink
            .send(frame_with_wall(b.id, 7, wall, 32))
            .await
            .unwrap();
        match b.stream.next().await {
            Some(Ok(Message::Binary(m))) => {
                assert_eq!(stamp_of(&m), Some(7));
                assert_eq!(wall_of(&m), Some(wall));
                let arrived = arrivals.latest().expect("the read was stamped");
                assert!(arrived >= wall && arrived <= SystemTime::now());
            }
            other => panic!("{other:?}"),
        }
        a.sink.send(frame(0, 9, 32)).await.unwrap();
        match a.stream.next().await {
            Some(Ok(Message::Binary(m))) => assert_eq!(stamp_of(&m), Some(9)),
            other => panic!("{other:?}"),
        }
    }

    /// The durable relay passes a frame for another connection on once
    /// the store holds it, under the sender's key, and writes no echo.
    #[tokio::test]
    async fn the_durable_relay_writes_each_line_before_passing_it_on() {
        use switchboard::metrics::StoreMetrics;
        use switchboard::store::SledStore;
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            SledStore::open(
                dir.path(),
                crate::sled_bench::CACHE_BYTES,
                Arc::new(StoreMetrics::unregistered()),
            )
            .unwrap(),
        );
        let (port, server) = bind_durable(0, store.clone()).await.unwrap();
        tokio::spawn(server);
        let url = format!("ws://127.0.0.1:{port}/");
        let mut a = connect(&url, None, false).await.unwrap();
        let mut b = connect(&url, None, false).await.unwrap();
        for stamp in [7, 8] {
            a.sink.send(frame(b.id, stamp, 32)).await.unwrap();
            match b.stream.next().await {
                Some(Ok(Message::Binary(m))) => assert_eq!(stamp_of(&m), Some(stamp)),
                other => panic!("{other:?}"),
            }
        }
        for (n, stamp) in [(1, 7), (2, 8)] {
            let key = format!("line/{}/{n}", a.id);
            let stored = store.get(&key).await.unwrap();
            let stored = stored.unwrap_or_else(|| panic!("{key} was passed on unwritten"));
            assert_eq!(stamp_of(&stored.value), Some(stamp));
        }
        a.sink.send(frame(0, 9, 32)).await.unwrap();
        match a.stream.next().await {
            Some(Ok(Message::Binary(m))) => assert_eq!(stamp_of(&m), Some(9)),
            other => panic!("{other:?}"),
        }
        let lines = store.scan_prefix("line/").await.unwrap();
        assert_eq!(lines.len(), 2, "an echo is not written");
    }

    /// A team frame reaches every connection it names that is still
    /// connected, and only those; a frame that names more members than it
    /// holds is relayed to the ones it holds, and the relay serves on.
    #[tokio::test]
    async fn a_team_frame_reaches_each_member_it_names() {
        let (port, server) = bind(0).await.unwrap();
        tokio::spawn(server);
        let url = format!("ws://127.0.0.1:{port}/");
        let mut members = Vec::new();
        for _ in 0..3 {
            members.push(connect(&url, None, false).await.unwrap());
        }
        let mut outsider = connect(&url, None, false).await.unwrap();
        let mut sender = connect(&url, None, false).await.unwrap();
        let gone = members.pop().unwrap();
        let gone_id = gone.id;
        drop(gone);
        let ids: Vec<u64> = members.iter().map(|m| m.id).collect();
        let wall = SystemTime::now();
        let named = [ids.clone(), vec![gone_id]].concat();
        sender
            .sink
            .send(team_frame(&named, 42, wall, 160))
            .await
            .unwrap();
        for m in &mut members {
            match tokio::time::timeout(Duration::from_secs(5), m.stream.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) => {
                    assert_eq!(stamp_of(&b), Some(42));
                    assert_eq!(wall_of(&b), Some(wall));
                    assert!(b.len() >= 160);
                }
                other => panic!("member {}: {other:?}", m.id),
            }
        }
        let quiet = tokio::time::timeout(Duration::from_millis(200), outsider.stream.next());
        assert!(quiet.await.is_err(), "a connection the frame does not name");
        // Says it names 1,000 members and holds one: the one is told.
        let mut short = team_frame(&ids[..1], 43, wall, 0).into_data();
        short[24..32].copy_from_slice(&1000u64.to_be_bytes());
        sender.sink.send(Message::Binary(short)).await.unwrap();
        match tokio::time::timeout(Duration::from_secs(5), members[0].stream.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => assert_eq!(stamp_of(&b), Some(43)),
            other => panic!("{other:?}"),
        }
        sender.sink.send(frame(0, 44, 32)).await.unwrap();
        match sender.stream.next().await {
            Some(Ok(Message::Binary(b))) => assert_eq!(stamp_of(&b), Some(44)),
            other => panic!("the relay stopped serving: {other:?}"),
        }
    }
}
