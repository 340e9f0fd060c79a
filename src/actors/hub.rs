//! What every actor and connection shares: the store, the catalog, the
//! directory, metrics and settings. One per running application (tests run
//! several side by side), passed around as `Arc<Hub>`.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use actix::Addr;
use foldhash::{HashMap, HashMapExt};
use tokio_util::sync::CancellationToken;

use super::directory::Directory;
use super::rep::{Push, RepActor};
use super::ConnHandle;
use crate::config::{RulesSettings, ServerSettings, SupervisorSettings};
use crate::domain::catalog::Catalog;
use crate::domain::ids::{now_ms, QueueId, RepId, TeamId};
use crate::domain::rep_state::RepStatus;
use crate::domain::rules::QueueRules;
use crate::metrics::Metrics;
use crate::protocol::{pack_event, Event};
use crate::store::SharedStore;

pub struct Hub {
    pub store: SharedStore,
    pub directory: Directory,
    pub metrics: Arc<Metrics>,
    pub settings: ServerSettings,
    /// Cancelled once, when the server starts shutting down.
    pub shutdown: CancellationToken,
    pub supervisor: SupervisorSettings,
    catalog: RwLock<Catalog>,
    /// Team -> the reps who see its queue, filled from the catalog on first
    /// use. Without it every queue event scans every rep (1,000 string
    /// comparisons per event with 1,000 reps). Emptied whenever the catalog
    /// is opened for writing.
    watchers: RwLock<HashMap<TeamId, Arc<[RepId]>>>,
    /// The waiting-session rules in force (config, then admin overrides).
    rules: RwLock<RulesSettings>,
    /// The rules as the configuration file set them, to go back to.
    configured_rules: RulesSettings,
    /// Each rep's availability, mirrored by their actor for the supervisor's
    /// routing and the public rep list.
    presence: RwLock<HashMap<RepId, Presence>>,
    /// Queue order keys: strictly increasing, and never below any key
    /// already stored (see `Supervisor`), so a restart keeps queue order.
    order: AtomicU64,
    next_conn: AtomicU64,
    /// When the hub was made: the origin of the grid every connection's
    /// heartbeat is timed on (`connection::heartbeat_grid`).
    pub started: Instant,
    /// Password checks running at once. Each argon2 check holds 19 MiB and
    /// tens of milliseconds of a core; a login storm (every rep reconnecting
    /// after a restart, or someone guessing passwords) would otherwise run
    /// hundreds at once in the blocking pool: 1,000 rep logins took the
    /// server to about 4 GB resident, and glibc keeps what it grew.
    pub password_checks: tokio::sync::Semaphore,
    /// Held by each admin change to the catalog or the rules from its
    /// checks to its last write: each checks the catalog, awaits the store,
    /// then changes the catalog, and two at once could both pass a check
    /// that only one may (two reps with one username; a team deleted while
    /// a rule is pointed at it).
    pub catalog_writes: tokio::sync::Mutex<()>,
}

impl Hub {
    pub fn new(
        store: SharedStore,
        metrics: Arc<Metrics>,
        settings: ServerSettings,
        supervisor: SupervisorSettings,
        rules: RulesSettings,
        catalog: Catalog,
        shutdown: CancellationToken,
    ) -> Self {
        Hub {
            store,
            directory: Directory::default(),
            metrics,
            settings,
            shutdown,
            supervisor,
            catalog: RwLock::new(catalog),
            watchers: RwLock::new(HashMap::new()),
            configured_rules: rules.clone(),
            rules: RwLock::new(rules),
            presence: RwLock::new(HashMap::new()),
            order: AtomicU64::new(0),
            next_conn: AtomicU64::new(1),
            started: Instant::now(),
            password_checks: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            ),
            catalog_writes: tokio::sync::Mutex::new(()),
        }
    }

    /// Runs `work`, an argon2 hash or check, on tokio's blocking pool under
    /// a [`Self::password_checks`] permit: off the async threads, one of
    /// which may be the actors' own, and at most one per core at a time.
    /// `None` if it could not run (the permits closed, or `work` panicked).
    pub async fn password_work<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let _permit = self.password_checks.acquire().await.ok()?;
        tokio::task::spawn_blocking(work).await.ok()
    }

    /// The catalog, for reading. Hold the guard briefly and never across an
    /// `.await`.
    pub fn catalog(&self) -> RwLockReadGuard<'_, Catalog> {
        self.catalog.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn catalog_mut(&self) -> RwLockWriteGuard<'_, Catalog> {
        let guard = self.catalog.write().unwrap_or_else(|p| p.into_inner());
        // Any change may move reps between teams. Emptied while the write
        // lock is held: a list is only cached under the read lock (see
        // `watchers`), so none computed from the old catalog survives.
        self.watchers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        guard
    }

    /// The reps who see a queue (see [`Catalog::watchers`]), cached per team.
    pub fn watchers(&self, queue: &QueueId) -> Arc<[RepId]> {
        let QueueId::Team(team) = queue else {
            return self.catalog().watchers(queue).into();
        };
        let cached = self
            .watchers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(team)
            .cloned();
        if let Some(w) = cached {
            return w;
        }
        let catalog = self.catalog();
        let w: Arc<[RepId]> = catalog.watchers(queue).into();
        self.watchers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(team.clone(), w.clone());
        // The catalog's read lock is released only now, after the insert.
        drop(catalog);
        w
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

    pub fn new_connection(&self) -> (ConnHandle, super::outbound::Receiver<super::Outgoing>) {
        ConnHandle::new(
            self.next_conn.fetch_add(1, Ordering::Relaxed),
            self.settings.outbound_queue,
            &self.shutdown,
        )
    }

    /// A number for a new WebSocket connection, for its log lines.
    pub fn next_connection_number(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    pub fn set_presence(&self, rep: &str, presence: Presence) {
        self.presence
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(rep.to_string(), presence);
    }

    pub fn presence(&self, rep: &str) -> Option<Presence> {
        self.presence
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(rep)
            .cloned()
    }

    /// A rep with at least one console connected.
    pub fn is_online(&self, rep: &str) -> bool {
        self.presence(rep).is_some_and(|p| p.consoles > 0)
    }

    /// The rules of a team queue (personal queues have none).
    pub fn rules_for(&self, queue: &QueueId) -> Option<QueueRules> {
        let QueueId::Team(team) = queue else {
            return None;
        };
        let rules = self.rules.read().unwrap_or_else(|p| p.into_inner());
        Some(rules.teams.get(team).unwrap_or(&rules.default).clone())
    }

    pub fn rules(&self) -> RulesSettings {
        self.rules.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Sets a team's rules; `None` goes back to the configuration's.
    pub fn set_team_rules(&self, team: &str, rules: Option<QueueRules>) {
        let mut all = self.rules.write().unwrap_or_else(|p| p.into_inner());
        match rules.or_else(|| self.configured_rules.teams.get(team).cloned()) {
            Some(r) => all.teams.insert(team.to_string(), r),
            None => all.teams.remove(team),
        };
    }

    /// How many sessions a rep may run at once: their own maximum, else the
    /// largest of their teams' maxima, else the site default.
    pub fn max_sessions(&self, rep: &str) -> u32 {
        let (own, teams) = {
            let catalog = self.catalog();
            match catalog.reps.get(rep) {
                Some(r) => (r.max_sessions, r.teams.clone()),
                None => (None, Vec::new()),
            }
        };
        own.unwrap_or_else(|| {
            teams
                .into_iter()
                .filter_map(|t| {
                    self.rules_for(&QueueId::team(t))
                        .and_then(|q| q.max_sessions_per_rep)
                })
                .max()
                .unwrap_or(self.supervisor.max_sessions_per_rep)
        })
    }

    /// Whether pushing to a rep can reach anyone: only once a console has
    /// been given the rep's stream since the server started. Before that no
    /// console can ask for the rep's events, and a queue event would be a
    /// message to an actor that drops it; with a team of ten and one rep
    /// logged in, nine of every ten.
    fn listening(&self, rep: &str) -> bool {
        self.presence
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(rep)
            .is_some_and(|p| p.listening)
    }

    /// Pushes an event to one rep (all their consoles), numbered in their
    /// stream; nothing if no console has ever been given that stream.
    pub fn push_to_rep(&self, rep: &str, event: Event) {
        if let Some(addr) = self.reachable(rep) {
            addr.do_send(Push {
                event: Arc::new(event),
                packed: None,
            });
        }
    }

    /// Pushes one event to several reps. It is shared, not copied: each
    /// rep keeps it for replay, and an alert goes to every rep of a team.
    /// When it goes to more than one, it is also encoded once here, not
    /// once for each rep's console (docs/performance.md, change 32). An
    /// event already in an `Arc` is shared with whoever else holds it.
    pub fn push_to_reps<'a>(
        &self,
        reps: impl IntoIterator<Item = &'a str>,
        event: impl Into<Arc<Event>>,
    ) {
        let to = self.reachable_reps(reps);
        if to.is_empty() {
            return;
        }
        let event = event.into();
        let packed = pack_for(to.len(), &event);
        push_packed(&to, &event, packed.as_ref());
    }

    /// The actors of those `reps` a push can reach ([`Hub::reachable`]).
    pub fn reachable_reps<'a>(
        &self,
        reps: impl IntoIterator<Item = &'a str>,
    ) -> Vec<Addr<RepActor>> {
        reps.into_iter()
            .filter_map(|rep| self.reachable(rep))
            .collect()
    }

    /// Pushes an event to every rep who sees a queue.
    pub fn push_to_watchers(&self, queue: &QueueId, event: Event) {
        let watchers = self.watchers(queue);
        self.push_to_reps(watchers.iter().map(String::as_str), event);
    }

    /// The rep's actor, if a push to the rep can reach anyone
    /// ([`Hub::listening`]).
    fn reachable(&self, rep: &str) -> Option<Addr<RepActor>> {
        match self.listening(rep) {
            true => self.directory.rep(rep).ok(),
            false => None,
        }
    }
}

/// The encoding of an event going to `recipients` consoles or rep
/// actors, made once when there is more than one to share it; with one,
/// its frame encodes the event itself.
pub fn pack_for(recipients: usize, event: &Event) -> Option<bytes::Bytes> {
    match recipients {
        0 | 1 => None,
        _ => pack_event(event),
    }
}

/// Sends one event to rep actors, with its encoding when the sender made
/// it once for several consoles ([`crate::protocol::pack_event`]).
pub fn push_packed(to: &[Addr<RepActor>], event: &Arc<Event>, packed: Option<&bytes::Bytes>) {
    for addr in to {
        addr.do_send(Push {
            event: event.clone(),
            packed: packed.cloned(),
        });
    }
}

/// A rep's availability as routing and the public list see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    /// Consoles connected now.
    pub consoles: usize,
    pub status: RepStatus,
    pub auto_assign: bool,
    pub available_since: crate::domain::ids::Millis,
    /// Sessions the rep is in (or has reserved a place for).
    pub sessions: u32,
    /// A console has been given the rep's event stream since the server
    /// started (see [`Hub::push_to_rep`]).
    pub listening: bool,
}
