//! One actor per live session: the only writer of its session record.
//!
//! Each changing request is handled the same way: run the domain method on
//! a copy, store the copy (conditional on the revision we hold), and only
//! when the write is durable make the copy live and tell everyone
//! (queues, reps, the customer). Handlers are atomic, so a second request
//! sees the result of the first: of fifty simultaneous accepts, one finds
//! the session waiting and forty-nine find it taken.
use std::sync::Arc;

use actix::prelude::*;

use super::hub::{pack_for, push_packed};
use super::queue::{Enter, Invite as QueueInvite, Leave as QueueLeave, Withdraw};
use super::rep::{InSession, RepActor};
use super::supervisor::SessionAccepted;
use super::{ConnHandle, Hub};
use crate::auth::{invalid_customer_token, new_customer_token};
use crate::domain::chat::{check_text, session_chat_key, session_chat_prefix, ChatLine};
use crate::domain::ids::*;
use crate::domain::keys::{hash_secret, new_session_id, normalise, SessionKey};
use crate::domain::outbox::{Outbox, Resume};
use crate::domain::queue::{InvitationSummary, SessionSummary};
use crate::domain::rules::Due;
use crate::domain::session::{
    rep_actor, Customer, EndReason, NewSession, RepLost as SessionRepLost, Session, SessionState,
    CUSTOMER,
};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::protocol::{
    CustomerView, Entry, Event, LeftQueueReason, ResumeFrom, ServerFrame, SessionDetails,
};
use crate::store::{self, Expect};

pub fn session_key(id: &str) -> String {
    format!("session/{id}")
}

/// Where session keys' records live; each under the hash of its key.
pub const SESSION_KEY_PREFIX: &str = "session_key/";

pub fn key_record_key(key: &str) -> String {
    format!("{SESSION_KEY_PREFIX}{}", hash_secret(key))
}

/// Who is speaking or acting in a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Speaker {
    Rep(RepId),
    Customer,
}

impl Speaker {
    fn actor(&self) -> String {
        match self {
            Speaker::Rep(r) => rep_actor(r),
            Speaker::Customer => CUSTOMER.to_string(),
        }
    }
}

pub struct SessionActor {
    hub: Arc<Hub>,
    session: Session,
    revision: u64,
    customer: Outbox<Event>,
    customer_conns: Vec<ConnHandle>,
    /// Last position told to the customer: (queue name, position, estimate).
    position: Option<(String, usize, Option<u64>)>,
    /// Armed while no customer connection is attached: when it fires the
    /// session ends as abandoned.
    customer_timer: Option<SpawnHandle>,
    /// A customer connection has attached since this actor started.
    customer_seen: bool,
}

/// Everything about a session for its reps and the REST API.
pub fn details(s: &Session) -> SessionDetails {
    SessionDetails {
        summary: SessionSummary::of(s),
        state: s.state.clone(),
        created_at: s.created_at,
        entered_through: s.entered_through.clone(),
        last_queue: s.last_queue.clone(),
        owner: s.owner.clone(),
        participants: s.participants.clone(),
        invitations: s.invitations.clone(),
        history: s.history.clone(),
        chat_lines: s.chat_lines,
    }
}

/// The `state` label of `switchboard_sessions` (ended sessions are not
/// counted: the gauge is of live sessions).
fn state_label(s: &SessionState) -> Option<&'static str> {
    match s {
        SessionState::Waiting { .. } => Some("waiting"),
        SessionState::Active => Some("active"),
        SessionState::Ended { .. } => None,
    }
}

fn state_name(s: &Session) -> &'static str {
    match s.state {
        SessionState::Waiting { .. } => "waiting",
        SessionState::Active => "active",
        SessionState::Ended { .. } => "ended",
    }
}

impl SessionActor {
    pub fn new(hub: Arc<Hub>, session: Session, revision: u64) -> Self {
        let customer = Outbox::new(hub.settings.replay_events);
        SessionActor {
            hub,
            session,
            revision,
            customer,
            customer_conns: Vec::new(),
            position: None,
            customer_timer: None,
            customer_seen: false,
        }
    }

    /// Starts or stops the customer's grace timer: it runs while no
    /// customer connection is attached.
    fn watch_customer(&mut self, ctx: &mut Context<Self>) {
        let gone = self.customer_conns.is_empty() && !self.session.is_ended();
        match (gone, self.customer_timer.is_some()) {
            (true, false) => {
                let grace = std::time::Duration::from_millis(self.hub.supervisor.customer_grace_ms);
                self.customer_timer = Some(ctx.run_later(grace, |act, ctx| {
                    act.customer_timer = None;
                    if act.customer_conns.is_empty() && !act.session.is_ended() {
                        ctx.notify(Abandon);
                    }
                }));
            }
            (false, true) => {
                if let Some(t) = self.customer_timer.take() {
                    ctx.cancel_future(t);
                }
            }
            _ => {}
        }
    }

    /// Everything that follows an end: the queue, invitations, reps and
    /// customer are told, and the actor stops.
    fn ended(&mut self, prev: Session, reason: String, ctx: &mut Context<Self>) {
        if let Some(queue) = prev.waiting_in() {
            self.tell_queue(
                queue,
                QueueLeave {
                    session: prev.id.clone(),
                    reason: LeftQueueReason::Ended,
                },
            );
        }
        self.withdraw_invitations(&prev);
        tracing::info!(session = %prev.id, %reason, "session ended");
        // Each rep hears of the end before being told they are free, as a
        // rep actor handles its mail in order.
        let reps = self.reachable_reps_of(&prev);
        self.push_everyone(
            &reps,
            Event::SessionEnded {
                session: prev.id.clone(),
                reason,
            },
        );
        for p in &prev.participants {
            if let Ok(addr) = self.hub.directory.rep(&p.rep) {
                addr.do_send(InSession {
                    session: prev.id.clone(),
                    joined: false,
                });
            }
        }
        self.finish(ctx);
    }

    /// The session now waits in `to` (moved by a rule or requeued): the old
    /// queue lets go, the new one alerts, the customer is told.
    fn moved(&mut self, from: Option<QueueId>, to: &QueueId, path: &'static str) {
        if let Some(from) = from {
            self.tell_queue(
                &from,
                QueueLeave {
                    session: self.session.id.clone(),
                    reason: LeftQueueReason::Moved,
                },
            );
        }
        self.enter_queue(to);
        // What the customer was last told is of the queue it left: a
        // resume before the new queue's round tells (within a second)
        // shows no place rather than the old one.
        self.position = None;
        self.hub.metrics.queues.entered.get([path]).inc();
        let queue_name = self.hub.catalog().queue_name(to);
        self.push_customer(Event::Transferred { queue_name });
    }

    fn rep_name(&self, rep: &str) -> String {
        self.hub
            .catalog()
            .reps
            .get(rep)
            .map(|r| r.display_name.clone())
            .unwrap_or_else(|| rep.to_string())
    }

    fn customer_view(&self, token: String) -> CustomerView {
        let s = &self.session;
        let waiting = s.waiting_in().is_some();
        let (queue_name, position, estimate) = match (&self.position, waiting) {
            (Some((n, p, e)), true) => (Some(n.clone()), Some(*p), *e),
            _ => (None, None, None),
        };
        CustomerView {
            session: s.id.clone(),
            token,
            stream: self.customer.stream().to_string(),
            seq: self.customer.last_seq(),
            state: state_name(s).to_string(),
            queue_name,
            position,
            estimated_wait_secs: estimate,
            reps: s
                .participants
                .iter()
                .map(|p| self.rep_name(&p.rep))
                .collect(),
            view_only: s.view_only,
        }
    }

    /// Takes the event shared or not: the customer's ring keeps its own
    /// copy either way (an idle customer's few events are cheaper inline
    /// than behind an `Arc` each), and the frame shares what it is given.
    fn push_customer(&mut self, event: impl Into<Arc<Event>>) {
        self.push_customer_packed(event.into(), None);
    }

    /// [`Self::push_customer`], with the event's encoding when it was made
    /// once for several consoles.
    fn push_customer_packed(&mut self, event: Arc<Event>, packed: Option<bytes::Bytes>) {
        if self.customer_conns.is_empty() {
            // No frame to share it with: the ring takes it, uncopied if
            // nobody else holds it.
            self.customer.push(Arc::unwrap_or_clone(event));
            return;
        }
        let seq = self.customer.push(Event::clone(&event));
        let frame = Arc::new(ServerFrame::Event {
            stream: self.customer.stream().clone(),
            seq,
            event,
            packed,
        });
        let hub = self.hub.clone();
        self.customer_conns.retain(|c| c.push(frame.clone(), &hub));
    }

    /// Pushes one event to the reps `to` and to the customer. Going to more
    /// than one console (a chat line goes to the rep and the customer
    /// alike), it is encoded once here rather than once for each.
    fn push_everyone(&mut self, to: &[Addr<RepActor>], event: Event) {
        let event = Arc::new(event);
        let packed = pack_for(to.len() + self.customer_conns.len(), &event);
        push_packed(to, &event, packed.as_ref());
        self.push_customer_packed(event, packed);
    }

    /// The actors of `session`'s reps that a push can reach.
    fn reachable_reps_of(&self, session: &Session) -> Vec<Addr<RepActor>> {
        let reps = session.participants.iter().map(|p| p.rep.as_str());
        self.hub.reachable_reps(reps)
    }

    fn push_reps(&self, event: impl Into<Arc<Event>>) {
        let reps = self.session.participants.iter().map(|p| p.rep.as_str());
        self.hub.push_to_reps(reps, event);
    }

    fn push_updated(&self) {
        self.push_reps(Event::SessionUpdated {
            session: Box::new(details(&self.session)),
        });
    }

    fn tell_queue<M>(&self, queue: &QueueId, msg: M)
    where
        M: Message + Send + 'static,
        M::Result: Send,
        super::queue::QueueActor: Handler<M>,
    {
        if let Ok(addr) = self.hub.directory.queue(queue) {
            addr.do_send(msg);
        }
    }

    fn withdraw_invitations(&self, prev: &Session) {
        for inv in &prev.invitations {
            self.tell_queue(
                &inv.queue,
                Withdraw {
                    session: prev.id.clone(),
                },
            );
        }
    }

    fn enter_queue(&self, queue: &QueueId) {
        self.tell_queue(
            queue,
            Enter {
                summary: SessionSummary::of(&self.session),
                alert: true,
                reported: false,
            },
        );
    }

    /// Stores `next`; when durable, makes it live and runs `then` with the
    /// previous state. A failed write changes nothing.
    fn commit<R: 'static>(
        &mut self,
        next: Session,
        then: impl FnOnce(&mut Self, Session, &mut Context<Self>) -> R + 'static,
    ) -> AtomicResponse<Self, AppResult<R>> {
        let write = store::save_owned(
            &self.hub.store,
            session_key(&next.id),
            &next,
            Expect::Revision(self.revision),
        );
        AtomicResponse::new(Box::pin(write.into_actor(self).map(
            move |res, act, ctx| {
                let revision = res.map_err(AppError::from)?;
                act.revision = revision;
                let prev = std::mem::replace(&mut act.session, next);
                act.count_state(Some(&prev.state), Some(&act.session.state));
                Ok(then(act, prev, ctx))
            },
        )))
    }

    /// Checks `check` against the live state and, if it passes, commits the
    /// changed copy.
    fn change<R: 'static>(
        &mut self,
        check: impl FnOnce(&mut Session, &Hub) -> AppResult<()>,
        then: impl FnOnce(&mut Self, Session, &mut Context<Self>) -> R + 'static,
    ) -> AtomicResponse<Self, AppResult<R>> {
        let mut next = self.session.clone();
        if let Err(e) = check(&mut next, &self.hub) {
            return AtomicResponse::new(Box::pin(fut::ready(Err(e))));
        }
        self.commit(next, then)
    }

    /// Moves this session in the sessions-by-state gauge. Every state
    /// change goes through [`Self::commit`], so the gauge follows the
    /// sessions exactly.
    fn count_state(&self, from: Option<&SessionState>, to: Option<&SessionState>) {
        let gauge = &self.hub.metrics.queues.by_state;
        if let Some(label) = from.and_then(state_label) {
            gauge.get([label]).dec();
        }
        if let Some(label) = to.and_then(state_label) {
            gauge.get([label]).inc();
        }
    }

    fn finish(&mut self, ctx: &mut Context<Self>) {
        self.hub.directory.remove_session(&self.session.id);
        ctx.stop();
    }
}

impl Actor for SessionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.count_state(None, Some(&self.session.state));
        // After a restart nobody is attached yet: the customer has the
        // grace period to come back.
        self.watch_customer(ctx);
        for p in &self.session.participants {
            if let Ok(addr) = self.hub.directory.rep(&p.rep) {
                addr.do_send(InSession {
                    session: self.session.id.clone(),
                    joined: true,
                });
            }
        }
    }
}

type Reply<R> = AtomicResponse<SessionActor, AppResult<R>>;

fn fail<R: 'static>(e: AppError) -> Reply<R> {
    AtomicResponse::new(Box::pin(fut::ready(Err(e))))
}

fn require_permission(
    hub: &Hub,
    rep: &str,
    what: &str,
    has: impl Fn(&crate::domain::catalog::Permissions) -> bool,
) -> AppResult<()> {
    let catalog = hub.catalog();
    let r = catalog.rep(rep)?;
    if has(&r.permissions) {
        Ok(())
    } else {
        Err(AppError::permission(format!(
            "you do not have permission to {what}"
        )))
    }
}

// --- accept ---------------------------------------------------------------

#[derive(Message)]
#[rtype(result = "AppResult<SessionDetails>")]
pub struct Accept {
    pub rep: RepId,
}

impl Handler<Accept> for SessionActor {
    type Result = Reply<SessionDetails>;
    fn handle(&mut self, msg: Accept, _: &mut Context<Self>) -> Self::Result {
        let rep = msg.rep;
        if let Some(queue) = self.session.waiting_in() {
            if !self.hub.catalog().can_see(&rep, queue) {
                return fail(AppError::permission(format!(
                    "you cannot see queue {queue}"
                )));
            }
        }
        let now = now_ms();
        let who = rep.clone();
        self.change(
            move |s, _| s.accept(&who, now).map(|_| ()),
            move |act, prev, _| {
                let queue = prev
                    .waiting_in()
                    .cloned()
                    .unwrap_or(prev.last_queue.clone());
                act.tell_queue(
                    &queue,
                    QueueLeave {
                        session: act.session.id.clone(),
                        reason: LeftQueueReason::Accepted,
                    },
                );
                act.withdraw_invitations(&prev);
                act.hub.push_to_rep(
                    &rep,
                    Event::SessionUpdated {
                        session: Box::new(details(&act.session)),
                    },
                );
                if let Ok(addr) = act.hub.directory.rep(&rep) {
                    addr.do_send(InSession {
                        session: act.session.id.clone(),
                        joined: true,
                    });
                }
                if let Some(supervisor) = act.hub.directory.supervisor() {
                    supervisor.do_send(SessionAccepted {
                        rep: rep.clone(),
                        session: act.session.id.clone(),
                    });
                }
                act.hub.metrics.queues.accepts.inc();
                tracing::info!(session = %act.session.id, rep = %rep, %queue, "session accepted");
                let name = act.rep_name(&rep);
                act.push_customer(Event::RepJoined { name });
                details(&act.session)
            },
        )
    }
}

// --- transfer -------------------------------------------------------------

#[derive(Message)]
#[rtype(result = "AppResult<()>")]
pub struct Transfer {
    pub rep: RepId,
    pub to: QueueId,
}

impl Handler<Transfer> for SessionActor {
    type Result = Reply<()>;
    fn handle(&mut self, msg: Transfer, _: &mut Context<Self>) -> Self::Result {
        let (rep, to) = (msg.rep, msg.to);
        let by_rep = rep.clone();
        let order = self.hub.next_order();
        let now = now_ms();
        let target = to.clone();
        self.change(
            move |s, hub| {
                s.require_owner(&rep)?;
                require_permission(hub, &rep, "transfer sessions", |p| p.transfer)?;
                hub.catalog().check_queue(&target)?;
                s.transfer(&rep, target, order, now)
            },
            move |act, prev, _| {
                for p in &prev.participants {
                    act.hub.push_to_rep(
                        &p.rep,
                        Event::SessionClosed {
                            session: prev.id.clone(),
                            reason: format!("transferred to {to}"),
                        },
                    );
                    if let Ok(addr) = act.hub.directory.rep(&p.rep) {
                        addr.do_send(InSession {
                            session: prev.id.clone(),
                            joined: false,
                        });
                    }
                }
                act.withdraw_invitations(&prev);
                act.hub.metrics.queues.transfers.inc();
                tracing::info!(session = %act.session.id, rep = %by_rep, queue = %to, "session transferred");
                act.moved(None, &to, "transfer");
            },
        )
    }
}

// --- sharing ----------------------------------------------------------------

#[derive(Message)]
#[rtype(result = "AppResult<()>")]
pub struct Invite {
    pub rep: RepId,
    pub to: QueueId,
}

impl Handler<Invite> for SessionActor {
    type Result = Reply<()>;
    fn handle(&mut self, msg: Invite, _: &mut Context<Self>) -> Self::Result {
        let (rep, to) = (msg.rep, msg.to);
        let allowed = self
            .session
            .require_participant(&rep)
            .and_then(|_| require_permission(&self.hub, &rep, "share sessions", |p| p.share));
        if let Err(e) = allowed {
            return fail(e);
        }
        // Inviting a queue that is already invited changes nothing: no
        // write, no history line, no second alert. Repeated, each would
        // grow the record and its every rewrite without end.
        if self.session.invitations.iter().any(|i| i.queue == to) {
            return AtomicResponse::new(Box::pin(fut::ready(Ok(()))));
        }
        let now = now_ms();
        let target = to.clone();
        let by = rep.clone();
        self.change(
            move |s, hub| {
                hub.catalog().check_queue(&target)?;
                s.invite(&rep, target, now)
            },
            move |act, _, _| {
                act.tell_queue(
                    &to,
                    QueueInvite(InvitationSummary {
                        session: act.session.id.clone(),
                        display_name: act.session.display_name(),
                        invited_by: by,
                        at: now,
                    }),
                );
                act.push_updated();
            },
        )
    }
}

#[derive(Message)]
#[rtype(result = "AppResult<SessionDetails>")]
pub struct Join {
    pub rep: RepId,
}

impl Handler<Join> for SessionActor {
    type Result = Reply<SessionDetails>;
    fn handle(&mut self, msg: Join, _: &mut Context<Self>) -> Self::Result {
        let rep = msg.rep;
        let now = now_ms();
        let who = rep.clone();
        let mut next = self.session.clone();
        let joined = {
            let catalog = self.hub.catalog();
            next.join(&who, |q| catalog.can_see(&who, q), now)
        };
        let used = match joined {
            Ok(inv) => inv,
            Err(e) => return fail(e),
        };
        self.commit(next, move |act, _, _| {
            act.tell_queue(
                &used.queue,
                Withdraw {
                    session: act.session.id.clone(),
                },
            );
            if let Ok(addr) = act.hub.directory.rep(&rep) {
                addr.do_send(InSession {
                    session: act.session.id.clone(),
                    joined: true,
                });
            }
            act.push_updated();
            let name = act.rep_name(&rep);
            act.push_customer(Event::RepJoined { name });
            details(&act.session)
        })
    }
}

#[derive(Message)]
#[rtype(result = "AppResult<()>")]
pub struct Leave {
    pub rep: RepId,
}

impl Handler<Leave> for SessionActor {
    type Result = Reply<()>;
    fn handle(&mut self, msg: Leave, _: &mut Context<Self>) -> Self::Result {
        let rep = msg.rep;
        let now = now_ms();
        let who = rep.clone();
        self.change(
            move |s, _| s.leave(&who, now).map(|_| ()),
            move |act, prev, _| {
                act.hub.push_to_rep(
                    &rep,
                    Event::SessionClosed {
                        session: prev.id.clone(),
                        reason: "left".into(),
                    },
                );
                if let Ok(addr) = act.hub.directory.rep(&rep) {
                    addr.do_send(InSession {
                        session: prev.id.clone(),
                        joined: false,
                    });
                }
                act.push_updated();
                let name = act.rep_name(&rep);
                act.push_customer(Event::RepLeft { name });
            },
        )
    }
}

// --- end ------------------------------------------------------------------------

#[derive(Message)]
#[rtype(result = "AppResult<()>")]
pub struct End {
    pub by: Speaker,
}

impl Handler<End> for SessionActor {
    type Result = Reply<()>;
    fn handle(&mut self, msg: End, _: &mut Context<Self>) -> Self::Result {
        let by = msg.by;
        let now = now_ms();
        let reason = match &by {
            Speaker::Rep(_) => EndReason::Rep,
            Speaker::Customer => EndReason::Customer,
        };
        let actor = by.actor();
        let who = by.clone();
        self.change(
            move |s, _| {
                if let Speaker::Rep(r) = &who {
                    s.require_owner(r)?;
                }
                s.end(&actor, reason, now)
            },
            move |act, prev, ctx| {
                let reason = match by {
                    Speaker::Rep(r) => format!("ended by {}", act.rep_name(&r)),
                    Speaker::Customer => "ended by the customer".to_string(),
                };
                act.ended(prev, reason, ctx);
            },
        )
    }
}

/// The customer did not come back within the grace period.
#[derive(Message)]
#[rtype(result = "AppResult<()>")]
pub struct Abandon;

impl Handler<Abandon> for SessionActor {
    type Result = Reply<()>;
    fn handle(&mut self, _: Abandon, _: &mut Context<Self>) -> Self::Result {
        // The timer saw no customer, but a resume may have reached the
        // mailbox first: a customer who came back in time keeps the session.
        if !self.customer_conns.is_empty() {
            return AtomicResponse::new(Box::pin(fut::ready(Ok(()))));
        }
        let now = now_ms();
        self.change(
            move |s, _| s.end(crate::domain::session::SYSTEM, EndReason::Abandoned, now),
            |act, prev, ctx| {
                act.hub.metrics.queues.abandoned.inc();
                act.ended(
                    prev,
                    "abandoned: the customer did not come back".into(),
                    ctx,
                );
            },
        )
    }
}

// --- the supervisor's actions ---------------------------------------------------------

/// The rep's every console has been gone past the grace period.
#[derive(Message)]
#[rtype(result = "AppResult<()>")]
pub struct RepLost {
    pub rep: RepId,
}

impl Handler<RepLost> for SessionActor {
    type Result = Reply<()>;
    fn handle(&mut self, msg: RepLost, _: &mut Context<Self>) -> Self::Result {
        let rep = msg.rep;
        let now = now_ms();
        // A requeued session keeps its order key, so it waits again where
        // it would have been had it never been accepted: ahead of everyone
        // who came after it (a transfer, by contrast, joins the back).
        let order = self.session.order;
        let mut next = self.session.clone();
        let outcome = {
            let catalog = self.hub.catalog();
            let exists =
                |q: &QueueId| catalog.check_queue(q).is_ok() && self.hub.directory.has_queue(q);
            next.rep_lost(
                &rep,
                exists,
                self.hub.supervisor.fallback_queue.as_ref(),
                order,
                now,
            )
        };
        if outcome == SessionRepLost::NotInvolved {
            return fail(AppError::new(
                ErrorCode::NotYourSession,
                "the rep is not in this session",
            ));
        }
        self.commit(next, move |act, prev, ctx| {
            if let Ok(addr) = act.hub.directory.rep(&rep) {
                addr.do_send(InSession {
                    session: prev.id.clone(),
                    joined: false,
                });
            }
            let name = act.rep_name(&rep);
            match outcome {
                SessionRepLost::Left | SessionRepLost::OwnerChanged(_) => {
                    act.hub.push_to_rep(
                        &rep,
                        Event::SessionClosed {
                            session: prev.id.clone(),
                            reason: "left: connection lost".into(),
                        },
                    );
                    act.push_updated();
                    act.push_customer(Event::RepLeft { name });
                }
                SessionRepLost::Requeued(q) => {
                    act.hub
                        .metrics
                        .queues
                        .requeues
                        .get(["rep_connection_lost"])
                        .inc();
                    act.hub.push_to_rep(
                        &rep,
                        Event::SessionClosed {
                            session: prev.id.clone(),
                            reason: "requeued: representative connection lost".into(),
                        },
                    );
                    act.push_customer(Event::RepLeft { name });
                    // Nobody is left in the session to be joined: its
                    // invitations go, as on a transfer.
                    act.withdraw_invitations(&prev);
                    act.moved(None, &q, "requeue");
                }
                SessionRepLost::Ended => act.ended(
                    prev,
                    "no queue could take the session after its rep was lost".into(),
                    ctx,
                ),
                SessionRepLost::NotInvolved => {}
            }
        })
    }
}

/// A waiting-session rule is due. Carried out only if the session is still
/// where the supervisor saw it (same queue, same step), so a rule never
/// fires twice or on a session that has moved on.
#[derive(Message)]
#[rtype(result = "AppResult<()>")]
pub struct ApplyRule {
    pub queue: QueueId,
    pub steps_done: u32,
    pub due: Due,
}

impl Handler<ApplyRule> for SessionActor {
    type Result = Reply<()>;
    fn handle(&mut self, msg: ApplyRule, _: &mut Context<Self>) -> Self::Result {
        let s = &self.session;
        // A pass that read the queue before the last firing was stored
        // would fire the no-rep rule again: it fires once per queue.
        let told_already = matches!(msg.due, Due::NoRep { .. }) && s.no_rep_handled;
        if s.waiting_in() != Some(&msg.queue) || s.overdue_steps != msg.steps_done || told_already {
            return fail(AppError::new(ErrorCode::NotWaiting, "the session moved on"));
        }
        let now = now_ms();
        let mut next = self.session.clone();
        let action = match &msg.due {
            Due::Mark { .. } => "mark",
            Due::Overflow { .. } => "transfer",
            Due::SkipStep { .. } => "skip",
            Due::NoRep { .. } => "no_rep_available",
        };
        let mut moved: Option<(QueueId, QueueId)> = None;
        let mut told: Option<(String, Option<String>)> = None;
        match msg.due {
            Due::Mark { step } => next.mark_overdue(step, now),
            Due::SkipStep { step, why } => next.skip_step(step, why, now),
            Due::Overflow { step, to } => {
                let reason = format!("overdue step {}", step + 1);
                next.overdue_steps = step + 1;
                if let Some(from) = next.rule_move(to.clone(), self.hub.next_order(), &reason, now)
                {
                    moved = Some((from, to));
                }
            }
            Due::NoRep { rule, to } => {
                next.no_rep_told(now);
                told = Some((rule.message.clone(), rule.redirect_url.clone()));
                if let Some(to) = to {
                    if let Some(from) =
                        next.rule_move(to.clone(), self.hub.next_order(), "no rep available", now)
                    {
                        moved = Some((from, to));
                    }
                }
            }
        }
        self.commit(next, move |act, _, _| {
            act.hub.metrics.queues.rule_firings.get([action]).inc();
            tracing::info!(session = %act.session.id, action, "waiting-session rule fired");
            if let Some((message, redirect_url)) = told {
                act.push_customer(Event::NoRepAvailable {
                    message,
                    redirect_url,
                });
            }
            match moved {
                Some((from, to)) => act.moved(Some(from), &to, "rule"),
                // Marked or skipped: the queue shows the new state; only a
                // mark alerts the queue's reps again.
                None => act.tell_queue(
                    &msg.queue,
                    Enter {
                        summary: SessionSummary::of(&act.session),
                        alert: action == "mark",
                        reported: false,
                    },
                ),
            }
        })
    }
}

// --- chat, control, view -----------------------------------------------------------

#[derive(Message)]
#[rtype(result = "AppResult<ChatLine>")]
pub struct Chat {
    pub from: Speaker,
    pub text: String,
}

impl Handler<Chat> for SessionActor {
    type Result = Reply<ChatLine>;
    fn handle(&mut self, msg: Chat, _: &mut Context<Self>) -> Self::Result {
        if let Err(e) = check_text(&msg.text) {
            return fail(e);
        }
        let name = match &msg.from {
            Speaker::Rep(r) => {
                if let Err(e) = self.session.require_participant(r) {
                    return fail(e);
                }
                self.rep_name(r)
            }
            Speaker::Customer => {
                if self.session.is_ended() {
                    return fail(AppError::new(
                        ErrorCode::SessionEnded,
                        "the session has ended",
                    ));
                }
                self.session.customer.name.clone()
            }
        };
        if self.session.chat_lines >= self.hub.settings.max_chat_lines {
            return fail(AppError::invalid(format!(
                "this session holds its most chat lines ({}): no more can be added",
                self.hub.settings.max_chat_lines
            )));
        }
        let line = ChatLine {
            seq: self.session.chat_lines,
            at: now_ms(),
            from: msg.from.actor(),
            name,
            text: msg.text,
        };
        // The write needs no copy of the line, and the event is made once
        // and shared by the reps' frames and the customer's (a line used
        // to be copied four times: docs/performance.md, change 33).
        let key = session_chat_key(&self.session.id, line.seq);
        let write = store::save_owned(&self.hub.store, key, &line, Expect::Absent);
        AtomicResponse::new(Box::pin(write.into_actor(self).map(move |res, act, _| {
            res.map_err(AppError::from)?;
            act.session.chat_lines += 1;
            let event = Event::Chat {
                session: act.session.id.clone(),
                line: line.clone(),
            };
            let reps = act.reachable_reps_of(&act.session);
            act.push_everyone(&reps, event);
            Ok(line)
        })))
    }
}

/// Lines `from..` of the transcript, for someone allowed to read it.
#[derive(Message)]
#[rtype(result = "AppResult<Vec<ChatLine>>")]
pub struct ChatHistory {
    pub reader: Speaker,
}

impl Handler<ChatHistory> for SessionActor {
    type Result = ResponseFuture<AppResult<Vec<ChatLine>>>;
    fn handle(&mut self, msg: ChatHistory, _: &mut Context<Self>) -> Self::Result {
        let allowed = match &msg.reader {
            Speaker::Rep(r) => self.check_viewer(r),
            Speaker::Customer => Ok(()),
        };
        let hub = self.hub.clone();
        let id = self.session.id.clone();
        Box::pin(async move {
            allowed?;
            load_chat(&hub, &id).await
        })
    }
}

pub async fn load_chat(hub: &Hub, session: &str) -> AppResult<Vec<ChatLine>> {
    let lines =
        store::load_all::<ChatLine>(hub.store.as_ref(), &session_chat_prefix(session)).await?;
    Ok(lines.into_iter().map(|(_, l, _)| l).collect())
}

#[derive(Message)]
#[rtype(result = "AppResult<()>")]
pub struct Control {
    pub rep: RepId,
    pub input: String,
}

impl Handler<Control> for SessionActor {
    type Result = AppResult<()>;
    fn handle(&mut self, msg: Control, _: &mut Context<Self>) -> AppResult<()> {
        self.session.check_control(&msg.rep)?;
        if msg.input.is_empty() || msg.input.len() > 4096 {
            return Err(AppError::invalid("a control input is 1 to 4096 bytes"));
        }
        self.push_customer(Event::ControlInput { input: msg.input });
        Ok(())
    }
}

#[derive(Message)]
#[rtype(result = "AppResult<()>")]
pub struct RequestView {
    pub rep: RepId,
}

impl Handler<RequestView> for SessionActor {
    type Result = AppResult<()>;
    fn handle(&mut self, msg: RequestView, _: &mut Context<Self>) -> AppResult<()> {
        self.session.require_participant(&msg.rep)?;
        let by = self.rep_name(&msg.rep);
        self.push_customer(Event::ViewRequested { by });
        Ok(())
    }
}

// --- reading ----------------------------------------------------------------------

impl SessionActor {
    /// A rep may look at a session they are in, one waiting in a queue they
    /// see, or one they are invited to.
    fn check_viewer(&self, rep: &str) -> AppResult<()> {
        let s = &self.session;
        let catalog = self.hub.catalog();
        let ok = s.is_participant(rep)
            || s.waiting_in().is_some_and(|q| catalog.can_see(rep, q))
            || s.invitations.iter().any(|i| catalog.can_see(rep, &i.queue));
        if ok {
            Ok(())
        } else {
            Err(AppError::new(
                ErrorCode::NotYourSession,
                format!("session {} is not in any of your queues", s.id),
            ))
        }
    }
}

/// The session's details. `viewer` is `None` for the admin API.
#[derive(Message)]
#[rtype(result = "AppResult<SessionDetails>")]
pub struct Details {
    pub viewer: Option<RepId>,
}

impl Handler<Details> for SessionActor {
    type Result = AppResult<SessionDetails>;
    fn handle(&mut self, msg: Details, _: &mut Context<Self>) -> Self::Result {
        if let Some(rep) = &msg.viewer {
            self.check_viewer(rep)?;
        }
        Ok(details(&self.session))
    }
}

// --- the customer's connection ------------------------------------------------------

/// Attaches a customer's connection, if `token` is the session's resume
/// token; any other token is `invalid_token`, as an unknown one is.
#[derive(Message)]
#[rtype(result = "AppResult<CustomerAttached>")]
pub struct AttachCustomer {
    pub conn: ConnHandle,
    pub token: String,
    pub resume: Option<ResumeFrom>,
}

#[derive(MessageResponse)]
pub struct CustomerAttached {
    pub view: CustomerView,
    pub resume: Resume<Event>,
}

impl Handler<AttachCustomer> for SessionActor {
    type Result = AppResult<CustomerAttached>;
    fn handle(&mut self, msg: AttachCustomer, ctx: &mut Context<Self>) -> Self::Result {
        if hash_secret(&msg.token) != self.session.customer_token_hash {
            return Err(invalid_customer_token());
        }
        let resume = match &msg.resume {
            Some(r) => self.customer.resume(&r.stream, r.after),
            // The first connection since the actor started also gets what
            // was pushed before it attached (a rule can fire between the
            // session's start and the customer's attach).
            None if !self.customer_seen => {
                let stream = self.customer.stream().to_string();
                self.customer.resume(&stream, 0)
            }
            None => Resume::Replay(Vec::new()),
        };
        self.customer_seen = true;
        self.customer_conns.push(msg.conn);
        self.watch_customer(ctx);
        Ok(CustomerAttached {
            view: self.customer_view(msg.token),
            resume,
        })
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct DetachCustomer {
    pub conn: u64,
}

impl Handler<DetachCustomer> for SessionActor {
    type Result = ();
    fn handle(&mut self, msg: DetachCustomer, ctx: &mut Context<Self>) {
        self.customer_conns.retain(|c| c.id != msg.conn);
        self.watch_customer(ctx);
    }
}

/// From the queue: the customer's place changed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PositionChanged {
    pub queue_name: String,
    pub position: usize,
    pub estimated_wait_secs: Option<u64>,
}

impl Handler<PositionChanged> for SessionActor {
    type Result = ();
    fn handle(&mut self, msg: PositionChanged, _: &mut Context<Self>) {
        if self.session.waiting_in().is_none() {
            return;
        }
        self.position = Some((
            msg.queue_name.clone(),
            msg.position,
            msg.estimated_wait_secs,
        ));
        self.push_customer(Event::QueuePosition {
            queue_name: msg.queue_name,
            position: msg.position,
            estimated_wait_secs: msg.estimated_wait_secs,
        });
    }
}

/// The new session's records could not be made durable: it never started.
/// The actor leaves the directory and the state gauge and stops.
#[derive(Message)]
#[rtype(result = "()")]
struct StartFailed;

impl Handler<StartFailed> for SessionActor {
    type Result = ();
    fn handle(&mut self, _: StartFailed, ctx: &mut Context<Self>) {
        self.count_state(Some(&self.session.state), None);
        self.finish(ctx);
    }
}

/// A new session's first place, for the customer's first view: not pushed
/// as an event (the first attach replays what was pushed before it, and
/// the view already shows this).
#[derive(Message)]
#[rtype(result = "()")]
struct StartPosition(PositionChanged);

impl Handler<StartPosition> for SessionActor {
    type Result = ();
    fn handle(&mut self, StartPosition(msg): StartPosition, _: &mut Context<Self>) {
        if self.session.waiting_in().is_some() && self.position.is_none() {
            self.position = Some((msg.queue_name, msg.position, msg.estimated_wait_secs));
        }
    }
}

// --- starting a session -------------------------------------------------------------

/// What a customer sends to start a session.
pub struct StartRequest {
    pub entry: Entry,
    pub name: String,
    pub company: String,
    pub description: String,
    pub client: ClientKind,
}

const MAX_NAME: usize = 200;
const MAX_DESCRIPTION: usize = 4000;

fn check_customer_text(r: &StartRequest) -> AppResult<()> {
    // The name is stored trimmed, so its limit counts what is stored.
    let name = r.name.trim();
    if name.is_empty() {
        return Err(AppError::invalid("please give your name"));
    }
    if name.len() > MAX_NAME || r.company.len() > MAX_NAME {
        return Err(AppError::invalid(format!(
            "name and company are at most {MAX_NAME} bytes"
        )));
    }
    if r.description.len() > MAX_DESCRIPTION {
        return Err(AppError::invalid(format!(
            "the description is at most {MAX_DESCRIPTION} bytes"
        )));
    }
    Ok(())
}

/// Where an entry leads: (queue, path, browser flag, issue type, detail).
fn resolve(
    hub: &Hub,
    entry: &Entry,
) -> AppResult<(QueueId, EntryPath, bool, Option<IssueTypeId>, String)> {
    let catalog = hub.catalog();
    match entry {
        Entry::SessionKey { .. } => unreachable!("session keys are resolved against the store"),
        Entry::Rep { rep } => {
            let r = catalog.rep(rep)?;
            if !r.public || !hub.is_online(rep) {
                return Err(AppError::new(
                    ErrorCode::RepUnavailable,
                    format!("{} is not available right now", r.display_name),
                ));
            }
            Ok((
                QueueId::rep(rep),
                EntryPath::RepChoice,
                false,
                None,
                format!(" (chose {rep})"),
            ))
        }
        Entry::SupportButton { button } => {
            let b = catalog
                .buttons
                .get(button)
                .ok_or_else(|| AppError::not_found("support button", button))?;
            Ok((
                b.queue.clone(),
                EntryPath::SupportButton,
                false,
                None,
                format!(" ({button})"),
            ))
        }
        Entry::IssueForm { issue_type } => {
            let it = catalog
                .issue_types
                .get(issue_type)
                .ok_or_else(|| AppError::not_found("issue type", issue_type))?;
            Ok((
                QueueId::team(it.team.clone()),
                EntryPath::IssueForm,
                false,
                Some(it.id.clone()),
                format!(" ({})", it.name),
            ))
        }
        Entry::HelpLink { link } => {
            let l = catalog
                .help_links
                .get(link)
                .ok_or_else(|| AppError::not_found("help link", link))?;
            Ok((
                l.queue.clone(),
                EntryPath::BrowserLink,
                true,
                None,
                format!(" ({link})"),
            ))
        }
    }
}

/// Uses up a session key for `session`; answers the rep's queue.
async fn use_key(hub: &Hub, typed: &str, session: &str) -> AppResult<QueueId> {
    let key = normalise(typed);
    if key.is_empty() || key.len() > 64 {
        return Err(AppError::new(
            ErrorCode::KeyUnknown,
            "that session key is not known",
        ));
    }
    let rkey = key_record_key(&key);
    let (mut record, revision) = store::load::<SessionKey>(hub.store.as_ref(), &rkey)
        .await?
        .ok_or_else(|| AppError::new(ErrorCode::KeyUnknown, "that session key is not known"))?;
    record.check_usable(now_ms())?;
    record.used_by = Some(session.to_string());
    match store::save(
        hub.store.as_ref(),
        &rkey,
        &record,
        Expect::Revision(revision),
    )
    .await
    {
        Ok(_) => Ok(QueueId::rep(record.rep)),
        // Someone else used it between our read and write.
        Err(crate::store::StoreError::Conflict { .. }) => Err(AppError::new(
            ErrorCode::KeyUsed,
            "this session key has already been used",
        )),
        Err(e) => Err(e.into()),
    }
}

/// Starts a session: resolves the entry to a queue, stores the session (whose
/// record holds the hash of the customer's resume token), starts its actor
/// and puts it in the queue. Answers the actor, the customer's token and the
/// queue position.
pub async fn start(
    hub: &Arc<Hub>,
    req: StartRequest,
) -> AppResult<(Addr<SessionActor>, String, (usize, Option<u64>))> {
    check_customer_text(&req)?;
    let id = new_session_id(now_ms());
    let key = match &req.entry {
        Entry::SessionKey { key } => Some(key.clone()),
        _ => None,
    };
    let started = start_with_id(hub, req, &id).await;
    if let (Err(_), Some(key)) = (&started, key) {
        // The key was used up for a session that did not start: give it back.
        release_key(hub, &key, &id).await;
    }
    started
}

/// Undoes `use_key` for a session that failed to start.
async fn release_key(hub: &Hub, typed: &str, session: &str) {
    let rkey = key_record_key(&normalise(typed));
    if let Ok(Some((mut record, revision))) =
        store::load::<SessionKey>(hub.store.as_ref(), &rkey).await
    {
        if record.used_by.as_deref() == Some(session) {
            record.used_by = None;
            let _ = store::save(
                hub.store.as_ref(),
                &rkey,
                &record,
                Expect::Revision(revision),
            )
            .await;
        }
    }
}

async fn start_with_id(
    hub: &Arc<Hub>,
    req: StartRequest,
    id: &str,
) -> AppResult<(Addr<SessionActor>, String, (usize, Option<u64>))> {
    let id = id.to_string();
    let (queue, path, browser, issue_type, detail) = match &req.entry {
        Entry::SessionKey { key } => (
            use_key(hub, key, &id).await?,
            EntryPath::SessionKey,
            false,
            None,
            String::new(),
        ),
        other => resolve(hub, other)?,
    };
    hub.catalog().check_queue(&queue)?;
    let (priority, required_skills) = issue_type
        .as_ref()
        .and_then(|it| {
            hub.catalog()
                .issue_types
                .get(it)
                .map(|t| (t.priority, t.skills.clone()))
        })
        .unwrap_or_default();
    let token = new_customer_token(&id);
    let token_hash = hash_secret(&token);
    let session = Session::new(
        NewSession {
            id: id.clone(),
            priority,
            required_skills,
            customer: Customer {
                name: req.name.trim().to_string(),
                company: req.company,
                description: req.description,
                issue_type,
                client: req.client,
            },
            entry: path,
            browser,
            queue: queue.clone(),
            order: hub.next_order(),
            customer_token_hash: token_hash,
            detail,
        },
        now_ms(),
    );
    // The record is written before it is durable, and the session enters
    // its queue (raising the reps' popup alert) while it is flushed: the
    // alert does not wait for the disk, but the customer's
    // reply does, so what is acknowledged is durable. Should the flush fail
    // the session is taken out of its queue again. A crash in between
    // loses a session nobody was told exists; the reps who saw its alert
    // get a fresh queue view when they reconnect.
    // The queue's actor is looked up before anything is written, so a
    // queue that is gone leaves no record and no actor behind.
    let queue_addr = hub.directory.queue(&queue)?;
    let revision = store::save_unflushed(
        hub.store.as_ref(),
        &session_key(&id),
        &session,
        Expect::Absent,
    )
    .await?;
    let summary = SessionSummary::of(&session);
    let addr = SessionActor::new(hub.clone(), session, revision).start();
    hub.directory.add_session(id.clone(), addr.clone());
    let (entered, flushed) = futures_util::future::join(
        queue_addr.send(Enter {
            summary,
            alert: true,
            // The session_started reply carries the answer (StartPosition).
            reported: true,
        }),
        hub.store.flush(),
    )
    .await;
    if let Err(e) = flushed {
        queue_addr.do_send(QueueLeave {
            session: id.clone(),
            reason: LeftQueueReason::Ended,
        });
        addr.do_send(StartFailed);
        return Err(e.into());
    }
    let (position, estimated_wait_secs) = entered?;
    tracing::info!(session = %id, path = path.as_str(), %queue, "session started");
    hub.metrics.queues.entered.get([path.as_str()]).inc();
    // So the customer's first view already shows their place. Not awaited:
    // the customer's attach, which reads it, is the next message to the same
    // mailbox, and an actor handles its messages in order. Awaiting it cost
    // a round trip between threads on every start.
    let queue_name = hub.catalog().queue_name(&queue);
    addr.do_send(StartPosition(PositionChanged {
        queue_name,
        position,
        estimated_wait_secs,
    }));
    Ok((addr, token, (position, estimated_wait_secs)))
}
