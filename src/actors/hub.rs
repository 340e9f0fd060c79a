//! What every actor and connection shares: the store, the catalog, the
//! directory, metrics and settings. One per running application (tests run
//! several side by side), passed around as `Arc<Hub>`.
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio_util::sync::CancellationToken;

use super::directory::Directory;
use super::rep::Push;
use super::ConnHandle;
use crate::config::ServerSettings;
use crate::domain::catalog::Catalog;
use crate::domain::ids::{now_ms, QueueId, RepId};
use crate::metrics::Metrics;
use crate::protocol::Event;
use crate::store::SharedStore;

pub struct Hub {
    pub store: SharedStore,
    pub directory: Directory,
    pub metrics: Arc<Metrics>,
    pub settings: ServerSettings,
    /// Cancelled once, when the server starts shutting down.
    pub shutdown: CancellationToken,
    catalog: RwLock<Catalog>,
    /// Reps with at least one console connected.
    online: RwLock<HashSet<RepId>>,
    /// Queue order keys: strictly increasing, and never below any key
    /// already stored (see `Supervisor`), so a restart keeps queue order.
    order: AtomicU64,
    next_conn: AtomicU64,
}

impl Hub {
    pub fn new(
        store: SharedStore,
        metrics: Arc<Metrics>,
        settings: ServerSettings,
        catalog: Catalog,
        shutdown: CancellationToken,
    ) -> Self {
        Hub {
            store,
            directory: Directory::default(),
            metrics,
            settings,
            shutdown,
            catalog: RwLock::new(catalog),
            online: RwLock::new(HashSet::new()),
            order: AtomicU64::new(0),
            next_conn: AtomicU64::new(1),
        }
    }

    /// The catalog, for reading. Hold the guard briefly and never across an
    /// `.await`.
    pub fn catalog(&self) -> RwLockReadGuard<'_, Catalog> {
        self.catalog.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn catalog_mut(&self) -> RwLockWriteGuard<'_, Catalog> {
        self.catalog.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The next queue order key: microseconds since the epoch, bumped so it
    /// is always above the last one given out.
    pub fn next_order(&self) -> u64 {
        let now = now_ms().saturating_mul(1000);
        let mut prev = self.order.load(Ordering::Relaxed);
        loop {
            let next = now.max(prev + 1);
            match self
                .order
                .compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(p) => prev = p,
            }
        }
    }

    /// Makes sure future order keys are above `seen` (called at start-up
    /// with every stored key).
    pub fn observe_order(&self, seen: u64) {
        self.order.fetch_max(seen, Ordering::Relaxed);
    }

    pub fn new_connection(&self) -> (ConnHandle, tokio::sync::mpsc::Receiver<super::Outgoing>) {
        ConnHandle::new(
            self.next_conn.fetch_add(1, Ordering::Relaxed),
            self.settings.outbound_queue,
        )
    }

    pub fn set_online(&self, rep: &str, online: bool) {
        let mut set = self.online.write().unwrap_or_else(|p| p.into_inner());
        if online {
            set.insert(rep.to_string());
        } else {
            set.remove(rep);
        }
    }

    pub fn is_online(&self, rep: &str) -> bool {
        self.online
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(rep)
    }

    /// Pushes an event to one rep (all their consoles), numbered in their
    /// stream.
    pub fn push_to_rep(&self, rep: &str, event: Event) {
        if let Ok(addr) = self.directory.rep(rep) {
            addr.do_send(Push(event));
        }
    }

    /// Pushes an event to every rep who sees a queue.
    pub fn push_to_watchers(&self, queue: &QueueId, event: Event) {
        let watchers = self.catalog().watchers(queue);
        for rep in watchers {
            self.push_to_rep(&rep, event.clone());
        }
    }
}
