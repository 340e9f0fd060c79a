//! A support session and its state machine.
//!
//! ```text
//!            accept / join            leave (last rep) -> refused
//!  Waiting ------------------> Active ---------------------------+
//!     ^  \                      |  \                            |
//!     |   \ end                 |   transfer                    |
//!     |    v                    |    (back to Waiting elsewhere)|
//!     +---------- transfer -----+                               |
//!               Ended <------------- end (rep or customer) -----+
//! ```
//!
//! Every method checks its preconditions and either changes the session and
//! records a history entry, or returns an error and changes nothing. The
//! session actor calls these on a copy, stores the copy, and only then makes
//! it the live state, so a failed write leaves nothing half-done.
use serde::{Deserialize, Serialize};

use super::ids::*;
use crate::error::{AppError, ErrorCode};
use crate::store::Record;

/// What the customer told us, and from what client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub name: String,
    #[serde(default)]
    pub company: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub issue_type: Option<IssueTypeId>,
    pub client: ClientKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SessionState {
    Waiting { queue: QueueId },
    Active,
    Ended { reason: EndReason, at: Millis },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// A rep ended it.
    Rep,
    /// The customer ended it.
    Customer,
    /// The customer never came back (supervisor).
    Abandoned,
    /// No queue could take it after its rep was lost (supervisor).
    NoFallback,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub rep: RepId,
    pub joined_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    pub queue: QueueId,
    pub by: RepId,
    pub at: Millis,
}

impl EndReason {
    /// The name on the wire and in history.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Rep => "rep",
            EndReason::Customer => "customer",
            EndReason::Abandoned => "abandoned",
            EndReason::NoFallback => "no_fallback",
        }
    }
}

/// One line of a session's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at: Millis,
    /// `rep:<id>`, `customer` or `system`.
    pub actor: String,
    pub event: HistoryEvent,
    /// Free text: the queue, the other rep, the reason.
    #[serde(default)]
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryEvent {
    Created,
    EnteredQueue,
    Alerted,
    Accepted,
    Transferred,
    Invited,
    Joined,
    Left,
    OwnerChanged,
    Requeued,
    /// A waiting-session rule fired (detail says which and why).
    RuleFired,
    /// The supervisor marked the session view-only (mobile customer).
    MarkedViewOnly,
    Ended,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id: SessionId,
    pub created_at: Millis,
    /// Boxed: it is read rarely, and its 104 bytes inline put every
    /// session actor's task in jemalloc's 1,280-byte size class rather
    /// than 1,024 (docs/performance.md, change 38: measured, a waiting
    /// customer holds about 0.07 KiB less). The stored record is the same
    /// either way.
    pub customer: Box<Customer>,
    pub entry: EntryPath,
    /// Started from a web page's help link: shown as `[Browser] name`.
    pub browser: bool,
    /// Control actions are refused (a mobile customer client).
    pub view_only: bool,
    pub state: SessionState,
    /// The queue the session first entered.
    pub entered_through: QueueId,
    /// The queue the session most recently waited in.
    pub last_queue: QueueId,
    /// When the customer started waiting; kept across transfers and
    /// restarts so waits are honest.
    pub wait_start: Millis,
    /// When the session entered its current (or last) queue.
    pub queued_at: Millis,
    /// Orders sessions inside a queue: smaller waits longer. Assigned on
    /// every enqueue from a counter that never goes back.
    pub order: u64,
    /// The rep in charge; `None` while waiting.
    pub owner: Option<RepId>,
    /// Every rep in the session, the owner included, in joining order.
    pub participants: Vec<Participant>,
    pub invitations: Vec<Invitation>,
    pub history: Vec<HistoryEntry>,
    /// SHA-256 (hex) of the customer's resume token.
    pub customer_token_hash: String,
    /// Number of chat lines so far (the next line's sequence number).
    pub chat_lines: u64,
    /// Routing priority: higher is offered first.
    #[serde(default)]
    pub priority: u8,
    /// Skills a rep needs, general to specific (from the issue type).
    #[serde(default)]
    pub required_skills: Vec<String>,
    /// Shown as overdue (a waiting rule marked it) in its current queue.
    #[serde(default)]
    pub overdue: bool,
    /// Overdue steps already carried out in the current queue.
    #[serde(default)]
    pub overdue_steps: u32,
    /// The no-rep-available rule was handled in the current queue.
    #[serde(default)]
    pub no_rep_handled: bool,
    /// Times rules moved the session, and the queues they moved it out of
    /// (see domain::rules on bounce prevention).
    #[serde(default)]
    pub rule_moves: u32,
    #[serde(default)]
    pub left_by_rule: Vec<QueueId>,
    /// Why the session was last put back in a queue by the system, shown in
    /// its details ("requeued: representative connection lost").
    #[serde(default)]
    pub requeued: Option<String>,
}

impl Record for Session {
    const KIND: &'static str = "session";
    const VERSION: u32 = 1;
}

/// Everything needed to create a session.
pub struct NewSession {
    pub id: SessionId,
    pub priority: u8,
    pub required_skills: Vec<String>,
    pub customer: Customer,
    pub entry: EntryPath,
    pub browser: bool,
    pub queue: QueueId,
    pub order: u64,
    pub customer_token_hash: String,
    pub detail: String,
}

pub fn rep_actor(rep: &str) -> String {
    // Not `format!`: this is made for every line a rep says, and a concat
    // allocates once at the right size without the formatting machinery.
    ["rep:", rep].concat()
}

pub const CUSTOMER: &str = "customer";
pub const SYSTEM: &str = "system";

impl Session {
    pub fn new(n: NewSession, now: Millis) -> Session {
        let view_only = n.customer.client == ClientKind::Mobile;
        let mut s = Session {
            id: n.id,
            created_at: now,
            view_only,
            customer: Box::new(n.customer),
            entry: n.entry,
            browser: n.browser,
            state: SessionState::Waiting {
                queue: n.queue.clone(),
            },
            entered_through: n.queue.clone(),
            last_queue: n.queue.clone(),
            wait_start: now,
            queued_at: now,
            order: n.order,
            owner: None,
            participants: Vec::new(),
            invitations: Vec::new(),
            // Exactly the entries written below: a waiting session keeps
            // this Vec for as long as it waits, and a growing Vec would
            // reserve four (docs/performance.md, change 47).
            history: Vec::with_capacity(if view_only { 3 } else { 2 }),
            customer_token_hash: n.customer_token_hash,
            chat_lines: 0,
            priority: n.priority,
            required_skills: n.required_skills,
            overdue: false,
            overdue_steps: 0,
            no_rep_handled: false,
            rule_moves: 0,
            left_by_rule: Vec::new(),
            requeued: None,
        };
        s.record(
            now,
            CUSTOMER,
            HistoryEvent::Created,
            format!("via {}{}", s.entry.as_str(), n.detail),
        );
        if s.view_only {
            s.record(
                now,
                SYSTEM,
                HistoryEvent::MarkedViewOnly,
                "mobile customer client",
            );
        }
        s.record(now, SYSTEM, HistoryEvent::EnteredQueue, n.queue.to_string());
        s
    }

    /// How reps see the customer's name: browser sessions carry a prefix.
    pub fn display_name(&self) -> String {
        if self.browser {
            format!("[Browser] {}", self.customer.name)
        } else {
            self.customer.name.clone()
        }
    }

    pub fn waiting_in(&self) -> Option<&QueueId> {
        match &self.state {
            SessionState::Waiting { queue } => Some(queue),
            _ => None,
        }
    }

    pub fn is_ended(&self) -> bool {
        matches!(self.state, SessionState::Ended { .. })
    }

    pub fn is_participant(&self, rep: &str) -> bool {
        self.participants.iter().any(|p| p.rep == rep)
    }

    pub fn record(
        &mut self,
        at: Millis,
        actor: &str,
        event: HistoryEvent,
        detail: impl Into<String>,
    ) {
        self.history.push(HistoryEntry {
            at,
            actor: actor.to_string(),
            event,
            detail: detail.into(),
        });
    }

    fn not_ended(&self) -> Result<(), AppError> {
        if self.is_ended() {
            Err(AppError::new(
                ErrorCode::SessionEnded,
                format!("session {} has ended", self.id),
            ))
        } else {
            Ok(())
        }
    }

    /// The owner may do anything; other participants may chat and view.
    pub fn require_owner(&self, rep: &str) -> Result<(), AppError> {
        self.not_ended()?;
        if self.owner.as_deref() == Some(rep) {
            Ok(())
        } else if self.is_participant(rep) {
            Err(AppError::new(
                ErrorCode::NotOwner,
                "only the session's owner can do that",
            ))
        } else {
            Err(self.not_yours())
        }
    }

    pub fn require_participant(&self, rep: &str) -> Result<(), AppError> {
        self.not_ended()?;
        if self.is_participant(rep) {
            Ok(())
        } else {
            Err(self.not_yours())
        }
    }

    fn not_yours(&self) -> AppError {
        AppError::new(
            ErrorCode::NotYourSession,
            format!("you are not a participant of session {}", self.id),
        )
    }

    /// A rep takes a waiting session. Exactly one rep can win: the second
    /// finds it active.
    pub fn accept(&mut self, rep: &str, now: Millis) -> Result<QueueId, AppError> {
        self.not_ended()?;
        let queue = match &self.state {
            SessionState::Waiting { queue } => queue.clone(),
            SessionState::Active => {
                return Err(AppError::new(
                    ErrorCode::AlreadyTaken,
                    format!("session {} was already taken by another rep", self.id),
                ))
            }
            SessionState::Ended { .. } => unreachable!("checked above"),
        };
        self.state = SessionState::Active;
        self.owner = Some(rep.to_string());
        self.participants = vec![Participant {
            rep: rep.to_string(),
            joined_at: now,
        }];
        self.invitations.clear();
        self.requeued = None;
        let waited = now.saturating_sub(self.wait_start);
        self.record(
            now,
            &rep_actor(rep),
            HistoryEvent::Accepted,
            format!("from {queue} after {waited} ms"),
        );
        Ok(queue)
    }

    /// The owner moves the session to another queue; every rep leaves it and
    /// it waits again, keeping its original wait start.
    pub fn transfer(
        &mut self,
        rep: &str,
        to: QueueId,
        order: u64,
        now: Millis,
    ) -> Result<(), AppError> {
        self.require_owner(rep)?;
        // The transfer comes first in the history: it is why the session
        // enters the new queue.
        self.record(
            now,
            &rep_actor(rep),
            HistoryEvent::Transferred,
            to.to_string(),
        );
        self.enqueue(to.clone(), order, now);
        Ok(())
    }

    /// Puts the session back to waiting in `queue` (transfer, requeue).
    pub fn enqueue(&mut self, queue: QueueId, order: u64, now: Millis) {
        self.state = SessionState::Waiting {
            queue: queue.clone(),
        };
        self.owner = None;
        self.participants.clear();
        self.invitations.clear();
        self.last_queue = queue.clone();
        self.queued_at = now;
        self.order = order;
        self.overdue = false;
        self.overdue_steps = 0;
        self.no_rep_handled = false;
        self.record(now, SYSTEM, HistoryEvent::EnteredQueue, queue.to_string());
    }

    /// A participant invites a rep (their personal queue) or a team.
    pub fn invite(&mut self, rep: &str, queue: QueueId, now: Millis) -> Result<(), AppError> {
        self.require_participant(rep)?;
        if self.waiting_in().is_some() {
            return Err(AppError::new(
                ErrorCode::NotWaiting,
                "accept the session before inviting others",
            ));
        }
        if let QueueId::Rep(invitee) = &queue {
            if self.is_participant(invitee) {
                return Err(AppError::new(
                    ErrorCode::AlreadyInSession,
                    format!("rep {invitee} is already in the session"),
                ));
            }
        }
        if !self.invitations.iter().any(|i| i.queue == queue) {
            self.invitations.push(Invitation {
                queue: queue.clone(),
                by: rep.to_string(),
                at: now,
            });
        }
        self.record(
            now,
            &rep_actor(rep),
            HistoryEvent::Invited,
            queue.to_string(),
        );
        Ok(())
    }

    /// A rep joins through an invitation to them or to a team they are in.
    /// Returns the invitation used.
    pub fn join(
        &mut self,
        rep: &str,
        may_use: impl Fn(&QueueId) -> bool,
        now: Millis,
    ) -> Result<Invitation, AppError> {
        self.not_ended()?;
        if self.is_participant(rep) {
            return Err(AppError::new(
                ErrorCode::AlreadyInSession,
                "you are already in this session",
            ));
        }
        let idx = self
            .invitations
            .iter()
            .position(|i| i.queue == QueueId::rep(rep))
            .or_else(|| self.invitations.iter().position(|i| may_use(&i.queue)))
            .ok_or_else(|| {
                AppError::new(
                    ErrorCode::NotInvited,
                    "you have no invitation to this session",
                )
            })?;
        let inv = self.invitations.remove(idx);
        self.participants.push(Participant {
            rep: rep.to_string(),
            joined_at: now,
        });
        self.record(
            now,
            &rep_actor(rep),
            HistoryEvent::Joined,
            format!("invited to {}", inv.queue),
        );
        Ok(inv)
    }

    /// A rep leaves. The owner hands over to whoever has been in the
    /// session longest; the last rep cannot leave (end or transfer instead).
    /// Returns the new owner if ownership changed.
    pub fn leave(&mut self, rep: &str, now: Millis) -> Result<Option<RepId>, AppError> {
        self.require_participant(rep)?;
        if self.participants.len() == 1 {
            return Err(AppError::new(
                ErrorCode::LastRep,
                "you are the only rep in this session: end it or transfer it instead",
            ));
        }
        self.participants.retain(|p| p.rep != rep);
        self.record(now, &rep_actor(rep), HistoryEvent::Left, "");
        if self.owner.as_deref() == Some(rep) {
            let next = self
                .participants
                .iter()
                .min_by_key(|p| p.joined_at)
                .map(|p| p.rep.clone());
            self.owner = next.clone();
            if let Some(n) = &next {
                self.record(now, SYSTEM, HistoryEvent::OwnerChanged, rep_actor(n));
            }
            return Ok(next);
        }
        Ok(None)
    }

    /// Ends the session for good.
    pub fn end(&mut self, actor: &str, reason: EndReason, now: Millis) -> Result<(), AppError> {
        self.not_ended()?;
        self.state = SessionState::Ended { reason, at: now };
        self.invitations.clear();
        self.record(now, actor, HistoryEvent::Ended, reason.as_str());
        Ok(())
    }

    /// A waiting rule's overdue step `step` marks the session overdue.
    pub fn mark_overdue(&mut self, step: u32, now: Millis) {
        self.overdue = true;
        self.overdue_steps = step + 1;
        self.record(
            now,
            SYSTEM,
            HistoryEvent::RuleFired,
            format!("overdue step {}: marked overdue", step + 1),
        );
    }

    /// A waiting rule's step that could not move the session.
    pub fn skip_step(&mut self, step: u32, why: &str, now: Millis) {
        self.overdue_steps = step + 1;
        self.record(
            now,
            SYSTEM,
            HistoryEvent::RuleFired,
            format!("overdue step {}: stays ({why})", step + 1),
        );
    }

    /// A waiting rule moves the session to `to`. Returns the queue it left.
    pub fn rule_move(
        &mut self,
        to: QueueId,
        order: u64,
        reason: &str,
        now: Millis,
    ) -> Option<QueueId> {
        let from = self.waiting_in().cloned()?;
        self.left_by_rule.push(from.clone());
        self.rule_moves += 1;
        self.record(
            now,
            SYSTEM,
            HistoryEvent::RuleFired,
            format!("{reason}: moved from {from} to {to}"),
        );
        self.enqueue(to, order, now);
        Some(from)
    }

    /// The no-rep-available rule was handled here (customer told).
    pub fn no_rep_told(&mut self, now: Millis) {
        self.no_rep_handled = true;
        self.record(
            now,
            SYSTEM,
            HistoryEvent::RuleFired,
            "no rep available: customer told",
        );
    }

    /// A rep's connection was lost past the grace period. The session falls
    /// back, in this order: if others are in it, the lost rep leaves (and the
    /// longest-present rep becomes owner); else it goes back to the last
    /// queue it waited in; else to the queue it entered through; else to the
    /// site's fallback queue; else it ends. `exists` says which queues still
    /// exist.
    pub fn rep_lost(
        &mut self,
        rep: &str,
        exists: impl Fn(&QueueId) -> bool,
        site_fallback: Option<&QueueId>,
        order: u64,
        now: Millis,
    ) -> RepLost {
        const WHY: &str = "requeued: representative connection lost";
        if self.is_ended() || !self.is_participant(rep) {
            return RepLost::NotInvolved;
        }
        if self.participants.len() > 1 {
            self.participants.retain(|p| p.rep != rep);
            self.record(
                now,
                SYSTEM,
                HistoryEvent::Left,
                format!("{}: connection lost", rep_actor(rep)),
            );
            if self.owner.as_deref() == Some(rep) {
                let next = self
                    .participants
                    .iter()
                    .min_by_key(|p| p.joined_at)
                    .map(|p| p.rep.clone());
                if let Some(n) = &next {
                    self.record(now, SYSTEM, HistoryEvent::OwnerChanged, rep_actor(n));
                }
                self.owner = next.clone();
                return RepLost::OwnerChanged(next);
            }
            return RepLost::Left;
        }
        // The lost rep's own personal queue is the last place to wait, since
        // only they see it: any other queue, the site's fallback included,
        // comes first, and only then does the session wait there for them
        // to come back rather than end (a session key's or a rep choice's
        // session has no other queue).
        let own = QueueId::rep(rep);
        let target = [
            Some(&self.last_queue),
            Some(&self.entered_through),
            site_fallback,
        ]
        .into_iter()
        .flatten()
        .find(|q| **q != own && exists(q))
        .or_else(|| {
            let was_there = self.last_queue == own || self.entered_through == own;
            (was_there && exists(&own)).then_some(&own)
        })
        .cloned();
        match target {
            Some(q) => {
                self.requeued = Some(WHY.to_string());
                self.record(
                    now,
                    SYSTEM,
                    HistoryEvent::Requeued,
                    format!("{WHY} ({}): to {q}", rep_actor(rep)),
                );
                self.enqueue(q.clone(), order, now);
                RepLost::Requeued(q)
            }
            None => {
                self.record(
                    now,
                    SYSTEM,
                    HistoryEvent::Requeued,
                    format!("{WHY}: no queue can take it"),
                );
                self.state = SessionState::Ended {
                    reason: EndReason::NoFallback,
                    at: now,
                };
                self.record(now, SYSTEM, HistoryEvent::Ended, "no_fallback");
                RepLost::Ended
            }
        }
    }

    /// Refuses control on view-only (mobile) sessions.
    pub fn check_control(&self, rep: &str) -> Result<(), AppError> {
        self.require_participant(rep)?;
        if self.view_only {
            return Err(AppError::new(
                ErrorCode::ViewOnly,
                "the customer is on a mobile client: the session is view-only and cannot be controlled",
            ));
        }
        Ok(())
    }
}

/// What losing a rep did to a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepLost {
    NotInvolved,
    /// The rep left; others carry on.
    Left,
    /// The rep was the owner; the longest-present rep now is.
    OwnerChanged(Option<RepId>),
    /// Back to waiting in this queue.
    Requeued(QueueId),
    /// No queue could take it.
    Ended,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(client: ClientKind) -> Session {
        Session::new(
            NewSession {
                id: "s1".into(),
                priority: 0,
                required_skills: vec![],
                customer: Customer {
                    name: "Carol".into(),
                    company: "Acme".into(),
                    description: "printer".into(),
                    issue_type: None,
                    client,
                },
                entry: EntryPath::IssueForm,
                browser: false,
                queue: QueueId::team("net"),
                order: 1,
                customer_token_hash: String::new(),
                detail: String::new(),
            },
            1000,
        )
    }

    #[test]
    fn a_new_session_history_holds_no_spare_room() {
        // A waiting customer keeps this Vec for the whole wait (change 47).
        for client in [ClientKind::Desktop, ClientKind::Mobile] {
            let s = waiting(client);
            assert_eq!(s.history.capacity(), s.history.len(), "{client:?}");
        }
    }

    #[test]
    fn only_the_first_accept_wins() {
        let mut s = waiting(ClientKind::Desktop);
        assert_eq!(s.accept("alice", 2000).unwrap(), QueueId::team("net"));
        let err = s.accept("bob", 2001).unwrap_err();
        assert_eq!(err.code, ErrorCode::AlreadyTaken);
        assert_eq!(s.owner.as_deref(), Some("alice"));
    }

    #[test]
    fn transfer_keeps_the_original_wait_start() {
        let mut s = waiting(ClientKind::Desktop);
        s.accept("alice", 2000).unwrap();
        s.transfer("alice", QueueId::rep("bob"), 7, 3000).unwrap();
        assert_eq!(s.waiting_in(), Some(&QueueId::rep("bob")));
        assert_eq!(s.wait_start, 1000);
        assert_eq!(s.last_queue, QueueId::rep("bob"));
        assert!(s.participants.is_empty());
        assert_eq!(
            s.transfer("alice", QueueId::team("net"), 8, 3001)
                .unwrap_err()
                .code,
            ErrorCode::NotYourSession
        );
    }

    #[test]
    fn sharing_hands_ownership_to_the_longest_present() {
        let mut s = waiting(ClientKind::Desktop);
        s.accept("alice", 2000).unwrap();
        s.invite("alice", QueueId::rep("bob"), 2100).unwrap();
        s.invite("alice", QueueId::team("net"), 2150).unwrap();
        assert_eq!(
            s.join("carl", |_| false, 2200).unwrap_err().code,
            ErrorCode::NotInvited
        );
        s.join("bob", |_| false, 2300).unwrap();
        s.join("dan", |q| q == &QueueId::team("net"), 2400).unwrap();
        assert_eq!(
            s.require_owner("bob").unwrap_err().code,
            ErrorCode::NotOwner
        );
        assert_eq!(s.leave("alice", 2500).unwrap(), Some("bob".into()));
        assert_eq!(s.leave("dan", 2600).unwrap(), None);
        assert_eq!(s.leave("bob", 2700).unwrap_err().code, ErrorCode::LastRep);
        s.end("rep:bob", EndReason::Rep, 2800).unwrap();
        assert_eq!(
            s.end("customer", EndReason::Customer, 2900)
                .unwrap_err()
                .code,
            ErrorCode::SessionEnded
        );
        let events: Vec<_> = s.history.iter().map(|h| h.event).collect();
        assert_eq!(
            events,
            [
                HistoryEvent::Created,
                HistoryEvent::EnteredQueue,
                HistoryEvent::Accepted,
                HistoryEvent::Invited,
                HistoryEvent::Invited,
                HistoryEvent::Joined,
                HistoryEvent::Joined,
                HistoryEvent::Left,
                HistoryEvent::OwnerChanged,
                HistoryEvent::Left,
                HistoryEvent::Ended
            ]
        );
    }

    #[test]
    fn mobile_sessions_refuse_control_but_not_chat() {
        let mut s = waiting(ClientKind::Mobile);
        assert!(s.view_only);
        s.accept("alice", 2000).unwrap();
        assert_eq!(
            s.check_control("alice").unwrap_err().code,
            ErrorCode::ViewOnly
        );
        assert!(s.require_participant("alice").is_ok());
        let mut d = waiting(ClientKind::Desktop);
        d.accept("alice", 2000).unwrap();
        assert!(d.check_control("alice").is_ok());
    }

    /// Alice took the session and transferred it to `to`, where bob took it.
    fn taken_by_bob_after_transfer_to(to: QueueId) -> Session {
        let mut s = waiting(ClientKind::Desktop);
        s.accept("alice", 2000).unwrap();
        s.transfer("alice", to, 5, 2100).unwrap();
        s.accept("bob", 2200).unwrap();
        s
    }

    #[test]
    fn a_lost_rep_falls_back_in_the_documented_order() {
        let all = |_: &QueueId| true;
        // Shared: the longest-present rep takes over.
        let mut s = waiting(ClientKind::Desktop);
        s.accept("alice", 2000).unwrap();
        s.invite("alice", QueueId::rep("bob"), 2100).unwrap();
        s.invite("alice", QueueId::rep("cy"), 2100).unwrap();
        s.join("cy", |_| false, 2150).unwrap();
        s.join("bob", |_| false, 2200).unwrap();
        assert_eq!(
            s.rep_lost("alice", all, None, 9, 3000),
            RepLost::OwnerChanged(Some("cy".into()))
        );
        // Alone: back to the last queue it waited in.
        let mut s = taken_by_bob_after_transfer_to(QueueId::team("billing"));
        assert_eq!(
            s.rep_lost("bob", all, None, 9, 3000),
            RepLost::Requeued(QueueId::team("billing"))
        );
        assert_eq!(
            s.requeued.as_deref(),
            Some("requeued: representative connection lost")
        );
        assert_eq!(s.wait_start, 1000, "the original wait start is kept");
        // The last queue is gone: the entry queue; then the site fallback; then the end.
        let mut s = taken_by_bob_after_transfer_to(QueueId::rep("bob"));
        let gone = |q: &QueueId| *q != QueueId::rep("bob");
        assert_eq!(
            s.rep_lost("bob", gone, None, 9, 3000),
            RepLost::Requeued(QueueId::team("net"))
        );
        // The lost rep's own personal queue is skipped even though it exists.
        let mut s = taken_by_bob_after_transfer_to(QueueId::rep("bob"));
        assert_eq!(
            s.rep_lost("bob", all, None, 9, 3000),
            RepLost::Requeued(QueueId::team("net"))
        );
        assert_eq!(
            s.requeued.as_deref(),
            Some("requeued: representative connection lost")
        );
        s.accept("alice", 4000).unwrap();
        assert_eq!(s.requeued, None, "an accept clears the requeue note");
        let mut s = waiting(ClientKind::Desktop);
        s.accept("alice", 2000).unwrap();
        let fallback = QueueId::team("fallback");
        let only_fallback = |q: &QueueId| *q == QueueId::team("fallback");
        assert_eq!(
            s.rep_lost("alice", only_fallback, Some(&fallback), 9, 3000),
            RepLost::Requeued(fallback.clone())
        );
        let mut s = waiting(ClientKind::Desktop);
        s.accept("alice", 2000).unwrap();
        assert_eq!(
            s.rep_lost("alice", |_| false, None, 9, 3000),
            RepLost::Ended
        );
        assert!(s.is_ended());
    }

    #[test]
    fn rule_moves_remember_where_they_came_from() {
        let mut s = waiting(ClientKind::Mobile);
        s.mark_overdue(0, 5000);
        assert!(s.overdue);
        assert_eq!(
            s.rule_move(QueueId::team("overflow"), 3, "overdue step 2", 6000),
            Some(QueueId::team("net"))
        );
        assert_eq!(
            (s.rule_moves, s.left_by_rule.clone()),
            (1, vec![QueueId::team("net")])
        );
        assert!(!s.overdue, "a new queue starts its steps again");
        assert!(s.view_only, "the view-only mark stays");
        assert_eq!(s.wait_start, 1000);
    }
}
