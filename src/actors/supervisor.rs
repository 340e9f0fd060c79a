//! The supervisor: brings every actor back from the store at start-up,
//! and starts actors for reps and teams the admin API adds. (Waiting-session
//! rules, lost-connection fallback and routing also belong here; see
//! docs/architecture.md. The sessions-by-state gauge is kept by the session
//! actors themselves.)
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use actix::prelude::*;

use super::queue::{Enter, Invite, QueueActor, WaitingList};
use super::rep::{state_key, RepActor};
use super::session::{session_key, ApplyRule, RepLost, SessionActor, SESSION_KEY_PREFIX};
use super::Hub;
use crate::domain::chat::{session_chat_prefix, team_chat_prefix};
use crate::domain::ids::{now_ms, Millis, QueueId, RepId, SessionId};
use crate::domain::keys::SessionKey;
use crate::domain::queue::{InvitationSummary, SessionSummary};
use crate::domain::rep_state::RepState;
use crate::domain::rep_state::RepStatus;
use crate::domain::routing::{self, Candidate};
use crate::domain::rules::{self, Due, QueueRules, Routing, Waiting};
use crate::domain::session::{Session, SessionState};
use crate::error::AppResult;
use crate::error::{AppError, ErrorCode};
use crate::protocol::Event;
use crate::store::{self, Expect};

/// What start-up found, for the log.
#[derive(Debug, Default)]
pub struct Rebuilt {
    pub reps: usize,
    pub teams: usize,
    pub waiting: usize,
    pub active: usize,
    /// Session keys given back because their session was never stored.
    pub keys_released: usize,
}

/// Starts the actors of every rep and team in the catalog that has none.
pub async fn ensure_actors(hub: &Arc<Hub>) -> AppResult<()> {
    let (teams, reps): (Vec<String>, Vec<String>) = {
        let c = hub.catalog();
        (
            c.teams.keys().cloned().collect(),
            c.reps.keys().cloned().collect(),
        )
    };
    for team in teams {
        let queue = QueueId::team(team.clone());
        if !hub.directory.has_queue(&queue) {
            let lines = hub.store.scan_prefix(&team_chat_prefix(&team)).await?.len() as u64;
            let addr = QueueActor::new(queue.clone(), hub.clone(), lines).start();
            hub.directory.add_queue(queue, addr);
        }
    }
    for rep in reps {
        if !hub.directory.has_rep(&rep) {
            let (state, revision) =
                match store::load::<RepState>(hub.store.as_ref(), &state_key(&rep)).await? {
                    Some((s, r)) => (s, Some(r)),
                    None => (RepState::default(), None),
                };
            let addr = RepActor::new(rep.clone(), hub.clone(), state, revision).start();
            hub.directory.add_rep(rep.clone(), addr);
        }
        let personal = QueueId::rep(rep.clone());
        if !hub.directory.has_queue(&personal) {
            let addr = QueueActor::new(personal.clone(), hub.clone(), 0).start();
            hub.directory.add_queue(personal, addr);
        }
    }
    Ok(())
}

/// Rebuilds every live session from the store: waiting sessions go back to
/// their queues in their stored order with their original wait start;
/// active sessions come back active, waiting for their reps to reconnect.
pub async fn rebuild(hub: &Arc<Hub>) -> AppResult<Rebuilt> {
    ensure_actors(hub).await?;
    let mut report = Rebuilt {
        reps: hub.catalog().reps.len(),
        teams: hub.catalog().teams.len(),
        ..Rebuilt::default()
    };
    let mut waiting: Vec<(QueueId, SessionSummary)> = Vec::new();
    let mut invitations: Vec<(QueueId, InvitationSummary)> = Vec::new();
    for (key, mut session, revision) in
        store::load_all::<Session>(hub.store.as_ref(), "session/").await?
    {
        hub.observe_order(session.order);
        if session.is_ended() {
            continue;
        }
        session.chat_lines = hub
            .store
            .scan_prefix(&session_chat_prefix(&session.id))
            .await?
            .len() as u64;
        match &session.state {
            SessionState::Waiting { queue } => {
                waiting.push((queue.clone(), SessionSummary::of(&session)));
                report.waiting += 1;
            }
            _ => report.active += 1,
        }
        // Open invitations are shown by the invited queues: show them again.
        for inv in &session.invitations {
            invitations.push((
                inv.queue.clone(),
                InvitationSummary {
                    session: session.id.clone(),
                    display_name: session.display_name(),
                    invited_by: inv.by.clone(),
                    at: inv.at,
                },
            ));
        }
        tracing::debug!(%key, "session restored");
        let id = session.id.clone();
        let addr = SessionActor::new(hub.clone(), session, revision).start();
        hub.directory.add_session(id, addr);
    }
    report.keys_released = release_unstarted_keys(hub).await?;
    waiting.sort_by_key(|(_, s)| s.order);
    for (queue, summary) in waiting {
        match hub.directory.queue(&queue) {
            Ok(addr) => {
                addr.send(Enter {
                    summary,
                    alert: false,
                    reported: false,
                })
                .await?;
            }
            Err(_) => tracing::warn!(
                session = %summary.session,
                %queue,
                "session waits in a queue that no longer exists; it stays until a rep or the API moves it"
            ),
        }
    }
    for (queue, invitation) in invitations {
        match hub.directory.queue(&queue) {
            Ok(addr) => addr.send(Invite(invitation)).await?,
            Err(_) => tracing::warn!(
                session = %invitation.session,
                %queue,
                "invitation to a queue that no longer exists"
            ),
        }
    }
    Ok(report)
}

/// Gives back every session key used by a session that was never stored.
/// A start uses its key up (durably, so two customers cannot both use
/// it) before it writes the session; a crash in between, or a failed
/// start whose give-back failed too, left the key used by nothing, and
/// its customer, never told of a session, refused `key_used`. Done at
/// start-up, before any connection, so no start is in flight.
/// Only used keys cost a look-up, and only of their own session.
async fn release_unstarted_keys(hub: &Hub) -> AppResult<usize> {
    let mut released = 0;
    for (key, mut record, revision) in
        store::load_all::<SessionKey>(hub.store.as_ref(), SESSION_KEY_PREFIX).await?
    {
        let Some(session) = record.used_by.take() else {
            continue;
        };
        if hub.store.get(&session_key(&session)).await?.is_some() {
            continue;
        }
        store::save(
            hub.store.as_ref(),
            &key,
            &record,
            Expect::Revision(revision),
        )
        .await?;
        tracing::warn!(%session, "session key given back: its session was never stored");
        released += 1;
    }
    Ok(released)
}

/// The supervisor actor: on every tick it runs the waiting-session rules
/// and automatic routing over every team queue; it takes over the sessions
/// of reps whose connection is lost.
///
/// Rules are evaluated from what is stored (when a session entered its
/// queue, which steps already fired), never from timers of their own, so
/// after a restart they simply continue: a step that fell due while the
/// server was down fires on the first tick.
pub struct Supervisor {
    hub: Arc<Hub>,
    /// Open routing offers, by session.
    offers: HashMap<SessionId, Offer>,
    /// Reps who declined (or let expire) an offer of each session.
    declined: HashMap<SessionId, HashSet<RepId>>,
    ticking: bool,
    /// After a start, reps get the rep grace period to reconnect before
    /// the no-rep-available rule may fire.
    started: std::time::Instant,
}

#[derive(Debug, Clone)]
struct Offer {
    rep: RepId,
    queue: QueueId,
    expires_at: Millis,
}

impl Supervisor {
    pub fn new(hub: Arc<Hub>) -> Self {
        Supervisor {
            hub,
            offers: HashMap::new(),
            declined: HashMap::new(),
            ticking: false,
            started: std::time::Instant::now(),
        }
    }

    /// A rule may only move a session into a queue that exists now.
    fn checked(&self, due: Due) -> Due {
        let exists = |q: &QueueId| {
            self.hub.catalog().check_queue(q).is_ok() && self.hub.directory.has_queue(q)
        };
        match due {
            Due::Overflow { step, to } if !exists(&to) => Due::SkipStep {
                step,
                why: "the overflow queue does not exist",
            },
            Due::NoRep { rule, to: Some(to) } if !exists(&to) => Due::NoRep { rule, to: None },
            other => other,
        }
    }

    fn withdraw(&mut self, session: &str, reason: &str) {
        if let Some(offer) = self.offers.remove(session) {
            self.hub.push_to_rep(
                &offer.rep,
                Event::OfferWithdrawn {
                    session: session.to_string(),
                    reason: reason.to_string(),
                },
            );
        }
    }

    /// One pass over a team queue's waiting sessions.
    fn run_queue(
        &mut self,
        queue: &QueueId,
        rules: &QueueRules,
        waiting: &[SessionSummary],
        now: Millis,
    ) {
        let watchers = self.hub.catalog().watchers(queue);
        let grace = std::time::Duration::from_millis(self.hub.supervisor.rep_grace_ms);
        let reps_available = self.started.elapsed() < grace
            || watchers.iter().any(|r| {
                self.hub
                    .presence(r)
                    .is_some_and(|p| p.consoles > 0 && p.status == RepStatus::Available)
            });
        for s in waiting {
            let w = Waiting {
                queue: queue.clone(),
                queued_at: s.queued_at,
                steps_done: s.rules.overdue_steps,
                no_rep_handled: s.rules.no_rep_handled,
                rule_moves: s.rules.rule_moves,
                left_by_rule: s.rules.left_by_rule.clone(),
            };
            if let Some(due) = rules::due(rules, &w, now, reps_available) {
                if let Some(addr) = self.hub.directory.find_session(&s.session) {
                    addr.do_send(ApplyRule {
                        queue: queue.clone(),
                        steps_done: w.steps_done,
                        due: self.checked(due),
                    });
                }
            }
        }
        if rules.routing != Routing::None {
            self.route(queue, rules.routing, waiting, &watchers, now);
        }
    }

    /// Offers waiting sessions (priority first, then longest wait) to the
    /// reps routing picks, one open offer per rep.
    fn route(
        &mut self,
        queue: &QueueId,
        routing: Routing,
        waiting: &[SessionSummary],
        watchers: &[RepId],
        now: Millis,
    ) {
        let busy: HashSet<RepId> = self.offers.values().map(|o| o.rep.clone()).collect();
        let mut candidates: Vec<Candidate> = watchers
            .iter()
            .filter(|r| !busy.contains(*r))
            .filter_map(|r| {
                let p = self.hub.presence(r)?;
                let ready = p.consoles > 0 && p.status == RepStatus::Available && p.auto_assign;
                ready.then(|| Candidate {
                    rep: r.clone(),
                    sessions: p.sessions,
                    max_sessions: self.hub.max_sessions(r),
                    available_since: p.available_since,
                    skills: self
                        .hub
                        .catalog()
                        .reps
                        .get(r)
                        .map(|x| x.skills.clone())
                        .unwrap_or_default(),
                })
            })
            .collect();
        let mut order: Vec<&SessionSummary> = waiting.iter().collect();
        // Stable: equal priorities keep queue order (longest wait first).
        order.sort_by_key(|s| std::cmp::Reverse(s.priority));
        let expires_at = now + self.hub.supervisor.offer_timeout_ms;
        for s in order {
            if candidates.is_empty() {
                break;
            }
            if self.offers.contains_key(&s.session) {
                continue;
            }
            let declined = self.declined.entry(s.session.clone()).or_default();
            let Some(rep) = routing::choose(routing, &candidates, &s.required_skills, declined)
            else {
                continue;
            };
            candidates.retain(|c| c.rep != rep);
            tracing::info!(session = %s.session, %rep, "routing offer");
            self.hub.push_to_rep(
                &rep,
                Event::Offer {
                    queue: queue.clone(),
                    session: Box::new(s.clone()),
                    expires_at,
                },
            );
            self.offers.insert(
                s.session.clone(),
                Offer {
                    rep,
                    queue: queue.clone(),
                    expires_at,
                },
            );
        }
    }

    /// Expired offers count as declined; offers of sessions no longer
    /// waiting in the queue they were offered from are withdrawn.
    fn tidy_offers(&mut self, waiting_in: &HashMap<SessionId, QueueId>, now: Millis) {
        let expired: Vec<(SessionId, RepId)> = self
            .offers
            .iter()
            .filter(|(_, o)| o.expires_at <= now)
            .map(|(s, o)| (s.clone(), o.rep.clone()))
            .collect();
        for (session, rep) in expired {
            self.declined
                .entry(session.clone())
                .or_default()
                .insert(rep);
            self.withdraw(&session, "expired");
        }
        let gone: Vec<SessionId> = self
            .offers
            .keys()
            .filter(|s| waiting_in.get(*s) != self.offers.get(*s).map(|o| &o.queue))
            .cloned()
            .collect();
        for session in gone {
            self.withdraw(&session, "no longer waiting");
        }
        self.declined.retain(|s, _| waiting_in.contains_key(s));
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let tick = std::time::Duration::from_millis(self.hub.supervisor.rule_tick_ms);
        ctx.run_interval(tick, |_, ctx| ctx.notify(Tick));
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Tick;

impl Handler<Tick> for Supervisor {
    type Result = ();
    fn handle(&mut self, _: Tick, ctx: &mut Context<Self>) {
        if self.ticking {
            return; // the previous pass is still gathering
        }
        self.ticking = true;
        // With no offer open and none declined, a queue whose rules are
        // inert has nothing to do this pass: asking for its waiting list
        // would copy every waiting session once a second for nothing (the
        // largest part of an idle server's CPU with thousands waiting).
        let quiet = self.offers.is_empty() && self.declined.is_empty();
        let hub = self.hub.clone();
        let gather = async move {
            let teams: Vec<QueueId> = hub
                .catalog()
                .teams
                .keys()
                .map(|t| QueueId::team(t.clone()))
                .collect();
            let mut out = Vec::with_capacity(teams.len());
            for queue in teams {
                let Some(rules) = hub.rules_for(&queue) else {
                    continue;
                };
                if quiet && rules.inert() {
                    continue;
                }
                let Ok(addr) = hub.directory.queue(&queue) else {
                    continue;
                };
                if let Ok(waiting) = addr.send(WaitingList).await {
                    out.push((queue, rules, waiting));
                }
            }
            out
        };
        ctx.spawn(gather.into_actor(self).map(|queues, act, _| {
            act.ticking = false;
            let now = now_ms();
            let mut waiting_in = HashMap::new();
            for (queue, _, waiting) in &queues {
                waiting_in.extend(waiting.iter().map(|s| (s.session.clone(), queue.clone())));
            }
            // Offers of sessions taken meanwhile, or expired, go first: a rep
            // holding a stale offer is free for this pass's routing.
            act.tidy_offers(&waiting_in, now);
            for (queue, rules, waiting) in &queues {
                act.run_queue(queue, rules, waiting, now);
            }
        }));
    }
}

/// A rep's consoles have all been gone past the grace period.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RepConnectionLost {
    pub rep: RepId,
    pub sessions: Vec<SessionId>,
}

impl Handler<RepConnectionLost> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: RepConnectionLost, _: &mut Context<Self>) {
        let offered: Vec<SessionId> = self
            .offers
            .iter()
            .filter(|(_, o)| o.rep == msg.rep)
            .map(|(s, _)| s.clone())
            .collect();
        for s in offered {
            self.withdraw(&s, "connection lost");
        }
        for session in msg.sessions {
            if let Some(addr) = self.hub.directory.find_session(&session) {
                addr.do_send(RepLost {
                    rep: msg.rep.clone(),
                });
            }
        }
    }
}

/// A session was accepted. The offered rep who took it has nothing to be
/// told; anyone else holding an offer of it learns at once rather than on
/// the next tick.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionAccepted {
    pub rep: RepId,
    pub session: SessionId,
}

impl Handler<SessionAccepted> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: SessionAccepted, _: &mut Context<Self>) {
        self.declined.remove(&msg.session);
        match self.offers.get(&msg.session) {
            Some(o) if o.rep == msg.rep => {
                self.offers.remove(&msg.session);
            }
            Some(_) => self.withdraw(&msg.session, "no longer waiting"),
            None => {}
        }
    }
}

/// A rep turns down a routing offer.
#[derive(Message)]
#[rtype(result = "AppResult<()>")]
pub struct Decline {
    pub rep: RepId,
    pub session: SessionId,
}

impl Handler<Decline> for Supervisor {
    type Result = AppResult<()>;
    fn handle(&mut self, msg: Decline, _: &mut Context<Self>) -> AppResult<()> {
        match self.offers.get(&msg.session) {
            Some(o) if o.rep == msg.rep => {
                self.declined
                    .entry(msg.session.clone())
                    .or_default()
                    .insert(msg.rep);
                self.withdraw(&msg.session, "declined");
                Ok(())
            }
            _ => Err(AppError::new(
                ErrorCode::NoOffer,
                "you have no offer of that session",
            )),
        }
    }
}
