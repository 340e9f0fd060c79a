//! Actors: thin actix shells around the domain.
//!
//! - [`session::SessionActor`]: one per live session; the only writer of its
//!   session record, so "exactly one rep wins an accept" is just the actor
//!   handling one message at a time.
//! - [`queue::QueueActor`]: one per queue, team or personal; orders waiting
//!   sessions, raises alerts, tells customers their position, and for teams
//!   keeps the team chat.
//! - [`rep::RepActor`]: one per rep; favorites, chat read marks, the rep's
//!   consoles (connections) and their numbered event stream.
//! - [`supervisor::Supervisor`]: rebuilds every actor from the store at
//!   start-up and creates actors as the catalog grows.
//!
//! Actors find each other through the [`directory::Directory`] (id to
//! address), never by holding each other's addresses, so a cluster can later
//! place them on other nodes.
//!
//! Handlers that write to the store use `AtomicResponse`: the actor handles
//! nothing else until the write is durable and the new state is in place.
pub mod directory;
pub mod hub;
pub mod outbound;
pub mod queue;
pub mod rep;
pub mod session;
pub mod supervisor;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::protocol::ServerFrame;

pub use hub::Hub;

/// A frame on its way to one connection.
pub type Outgoing = Arc<ServerFrame>;

/// How an actor reaches one client connection: a *bounded* queue of frames.
/// When it is full the client is not keeping up, and rather than buffer
/// without limit the connection is closed (the client reconnects and
/// resumes from its last event number).
#[derive(Clone, Debug)]
pub struct ConnHandle {
    pub id: u64,
    tx: outbound::Sender<Outgoing>,
    /// Cancelled to close the connection (slow consumer, logout). A child
    /// of the server's shutdown token, so shutdown cancels it too and the
    /// connection watches one token, not two.
    pub kill: CancellationToken,
}

impl ConnHandle {
    pub fn new(
        id: u64,
        capacity: usize,
        shutdown: &CancellationToken,
    ) -> (ConnHandle, outbound::Receiver<Outgoing>) {
        let (tx, rx) = outbound::channel(capacity);
        (
            ConnHandle {
                id,
                tx,
                kill: shutdown.child_token(),
            },
            rx,
        )
    }

    /// Queues a frame without waiting. Returns false (and closes the
    /// connection) when the client is too slow or already gone.
    pub fn push(&self, frame: Outgoing, hub: &Hub) -> bool {
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(outbound::SendError::Full) => {
                hub.metrics.connections.slow_consumers.inc();
                tracing::warn!(
                    conn = self.id,
                    "outbound queue full: closing slow connection"
                );
                self.kill.cancel();
                false
            }
            Err(outbound::SendError::Closed) => false,
        }
    }
}
