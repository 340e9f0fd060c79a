//! Id to address, for every live actor.
//!
//! Everything that talks to a rep, queue or session looks its address up
//! here at the moment it needs it. Today every address is local; a cluster
//! mode replaces the lookup, not the callers.
use std::sync::RwLock;

use actix::Addr;
use foldhash::HashMap;

use super::queue::QueueActor;
use super::rep::RepActor;
use super::session::SessionActor;
use super::supervisor::Supervisor;
use crate::domain::ids::{QueueId, RepId, SessionId};
use crate::error::{AppError, ErrorCode};

#[derive(Default)]
pub struct Directory {
    reps: RwLock<HashMap<RepId, Addr<RepActor>>>,
    queues: RwLock<HashMap<QueueId, Addr<QueueActor>>>,
    sessions: RwLock<HashMap<SessionId, Addr<SessionActor>>>,
    supervisor: std::sync::OnceLock<Addr<Supervisor>>,
}

// A poisoned lock only means another thread panicked while holding it; the
// maps themselves are always consistent (single inserts and removes), so we
// keep serving.
macro_rules! read {
    ($l:expr) => {
        $l.read().unwrap_or_else(|p| p.into_inner())
    };
}
macro_rules! write {
    ($l:expr) => {
        $l.write().unwrap_or_else(|p| p.into_inner())
    };
}

impl Directory {
    pub fn rep(&self, id: &str) -> Result<Addr<RepActor>, AppError> {
        read!(self.reps)
            .get(id)
            .cloned()
            .ok_or_else(|| AppError::not_found("rep", id))
    }

    pub fn queue(&self, id: &QueueId) -> Result<Addr<QueueActor>, AppError> {
        read!(self.queues)
            .get(id)
            .cloned()
            .ok_or_else(|| AppError::not_found("queue", id))
    }

    /// A live (not ended) session.
    pub fn session(&self, id: &str) -> Result<Addr<SessionActor>, AppError> {
        self.find_session(id).ok_or_else(|| {
            AppError::new(
                ErrorCode::NotFound,
                format!(
                    "no live session with id '{}'",
                    id.chars().take(80).collect::<String>()
                ),
            )
        })
    }

    /// A live session, or `None`: for callers to whom a session that has
    /// ended is normal (a customer's connection closing after its session
    /// ended, once per routed session), and for whom building the error
    /// would be wasted (about 1% of a routed session's instructions).
    pub fn find_session(&self, id: &str) -> Option<Addr<SessionActor>> {
        read!(self.sessions).get(id).cloned()
    }

    /// The supervisor, once started.
    pub fn supervisor(&self) -> Option<Addr<Supervisor>> {
        self.supervisor.get().cloned()
    }

    pub fn set_supervisor(&self, addr: Addr<Supervisor>) {
        let _ = self.supervisor.set(addr);
    }

    pub fn add_rep(&self, id: RepId, addr: Addr<RepActor>) {
        write!(self.reps).insert(id, addr);
    }

    pub fn add_queue(&self, id: QueueId, addr: Addr<QueueActor>) {
        write!(self.queues).insert(id, addr);
    }

    pub fn add_session(&self, id: SessionId, addr: Addr<SessionActor>) {
        write!(self.sessions).insert(id, addr);
    }

    pub fn remove_session(&self, id: &str) {
        write!(self.sessions).remove(id);
    }

    pub fn has_rep(&self, id: &str) -> bool {
        read!(self.reps).contains_key(id)
    }

    pub fn has_queue(&self, id: &QueueId) -> bool {
        read!(self.queues).contains_key(id)
    }

    pub fn session_count(&self) -> usize {
        read!(self.sessions).len()
    }

    pub fn session_ids(&self) -> Vec<SessionId> {
        read!(self.sessions).keys().cloned().collect()
    }
}
