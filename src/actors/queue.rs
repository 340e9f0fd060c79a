//! One actor per queue, team or personal.
//!
//! It keeps the waiting sessions in order (the order is the sessions' own
//! stored order keys, so a restart rebuilds the same queue), alerts the reps
//! who see the queue when a session enters, shows invitations to shared
//! sessions, tells waiting customers their position, and for a team queue
//! keeps the team's chat.
//!
//! The session actor is the source of truth for where a session waits; this
//! actor only mirrors it, so it never writes sessions to the store.
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use foldhash::{HashMap, HashMapExt};
use prometheus::{Histogram, IntGauge};

use super::rep::TeamChatPosted;
use super::session::PositionChanged;
use super::Hub;
use crate::domain::chat::{check_text, team_chat_key, ChatLine};
use crate::domain::ids::{now_ms, QueueId, SessionId};
use crate::domain::queue::{
    until_position_round, InvitationSummary, Queue, SessionSummary, SortBy,
};
use crate::error::{AppError, AppResult};
use crate::protocol::{Event, LeftQueueReason, QueueItem, QueueView};
use crate::store::{self, Expect};

/// Position updates are batched: a busy queue tells each customer at most
/// once per round, instead of once per change (which is O(queue length)
/// each). A second is soon enough for a "you are number 3" display, and it
/// bounds the cost of a long queue that moves fast: with 500 waiting and
/// five accepts a second, one round a second tells 500 customers where
/// five rounds would tell 2,500. Public so tests can wait a round out.
///
/// Each queue runs its rounds at its own instant of the second (a random
/// phase), not a second after its first change: queues that filled
/// together would otherwise keep running their rounds together, and a
/// hundred busy team queues then sent about 900 updates in the same few
/// milliseconds, every popup alert behind them waiting up to 12 ms
/// (docs/performance.md, change 41).
pub const POSITION_ROUND: Duration = Duration::from_secs(1);

pub struct QueueActor {
    id: QueueId,
    hub: Arc<Hub>,
    queue: Queue,
    /// Lines in the team chat (team queues only).
    chat_lines: u64,
    /// What each waiting customer was last told: (position, estimate).
    told: HashMap<SessionId, (usize, Option<u64>)>,
    positions_pending: bool,
    /// Rounds run at `started + round_phase + k * POSITION_ROUND`.
    started: Instant,
    round_phase: Duration,
    /// This queue's own metrics, looked up by its label the first time
    /// rather than on every enter and leave (docs/performance.md, change
    /// 37); not before, so a queue nobody used has no series.
    waiting_gauge: Option<IntGauge>,
    wait_seconds: Option<Histogram>,
}

impl QueueActor {
    pub fn new(id: QueueId, hub: Arc<Hub>, chat_lines: u64) -> Self {
        QueueActor {
            waiting_gauge: None,
            wait_seconds: None,
            id,
            hub,
            queue: Queue::default(),
            chat_lines,
            told: HashMap::new(),
            positions_pending: false,
            started: Instant::now(),
            round_phase: POSITION_ROUND.mul_f64(rand::random::<f64>()),
        }
    }

    fn gauge(&mut self) {
        let waiting = self.queue.len() as i64;
        let (id, metrics) = (&self.id, &self.hub.metrics.queues);
        self.waiting_gauge
            .get_or_insert_with(|| metrics.waiting.with_label_values(&[&id.to_string()]))
            .set(waiting);
    }

    fn schedule_positions(&mut self, ctx: &mut Context<Self>) {
        if !self.positions_pending {
            self.positions_pending = true;
            let wait =
                until_position_round(self.started.elapsed(), self.round_phase, POSITION_ROUND);
            ctx.run_later(wait, |act, _| act.tell_positions());
        }
    }

    fn tell_positions(&mut self) {
        self.positions_pending = false;
        let name = self.hub.catalog().queue_name(&self.id);
        let mut told = HashMap::with_capacity(self.queue.len());
        for (position, s) in self.queue.in_order() {
            let estimate = self.queue.estimate_secs(position);
            let now = (position, estimate);
            if self.told.get(&s.session) != Some(&now) {
                if let Some(addr) = self.hub.directory.find_session(&s.session) {
                    addr.do_send(PositionChanged {
                        queue_name: name.clone(),
                        position,
                        estimated_wait_secs: estimate,
                    });
                }
            }
            told.insert(s.session.clone(), now);
        }
        self.told = told;
    }
}

impl Actor for QueueActor {
    type Context = Context<Self>;
}

/// A session starts waiting here. Answers its position and estimate.
#[derive(Message)]
#[rtype(result = "(usize, Option<u64>)")]
pub struct Enter {
    pub summary: SessionSummary,
    /// Raise the popup alert (not when rebuilding after a restart).
    pub alert: bool,
    /// The caller tells the customer the answer itself (a new session's
    /// `session_started` reply), so the batched round only speaks again
    /// when the position or estimate changes, instead of repeating it.
    pub reported: bool,
}

impl Handler<Enter> for QueueActor {
    type Result = MessageResult<Enter>;
    fn handle(&mut self, msg: Enter, ctx: &mut Context<Self>) -> Self::Result {
        let summary = msg.summary;
        self.queue.insert(summary.clone());
        let position = self
            .queue
            .position(&summary.session)
            .unwrap_or(self.queue.len());
        let estimate = self.queue.estimate_secs(position);
        // After a transfer or a restart the customer hears their position
        // through the batched round; a new session's reply has told it
        // already (`reported`), so for them the round tells only a change.
        if msg.reported {
            self.told
                .insert(summary.session.clone(), (position, estimate));
        }
        self.gauge();
        self.schedule_positions(ctx);
        if msg.alert {
            self.hub.push_to_watchers(
                &self.id,
                Event::QueueEntered {
                    queue: self.id.clone(),
                    position,
                    session: Arc::new(summary),
                },
            );
        }
        MessageResult((position, estimate))
    }
}

/// A session stops waiting here.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub session: SessionId,
    pub reason: LeftQueueReason,
}

impl Handler<Leave> for QueueActor {
    type Result = ();
    fn handle(&mut self, msg: Leave, ctx: &mut Context<Self>) {
        let Some(left) = self.queue.remove(&msg.session) else {
            return;
        };
        self.told.remove(&msg.session);
        if msg.reason == LeftQueueReason::Accepted {
            // Time in this queue, not since the customer first asked: a
            // session that comes by transfer, rule or requeue has waited
            // elsewhere, and perhaps been served, before.
            let waited = now_ms().saturating_sub(left.queued_at);
            self.queue.record_wait(waited);
            let (id, metrics) = (&self.id, &self.hub.metrics.queues);
            self.wait_seconds
                .get_or_insert_with(|| metrics.wait_seconds.with_label_values(&[&id.to_string()]))
                .observe(waited as f64 / 1000.0);
        }
        self.gauge();
        self.hub.push_to_watchers(
            &self.id,
            Event::QueueLeft {
                queue: self.id.clone(),
                session: msg.session,
                reason: msg.reason,
            },
        );
        self.schedule_positions(ctx);
    }
}

/// An invitation to a shared session is addressed to this queue.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Invite(pub InvitationSummary);

impl Handler<Invite> for QueueActor {
    type Result = ();
    fn handle(&mut self, msg: Invite, _: &mut Context<Self>) {
        self.queue.invite(msg.0.clone());
        self.hub.push_to_watchers(
            &self.id,
            Event::Invited {
                queue: self.id.clone(),
                invitation: msg.0,
            },
        );
    }
}

/// An invitation was used, or its session ended or moved.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Withdraw {
    pub session: SessionId,
}

impl Handler<Withdraw> for QueueActor {
    type Result = ();
    fn handle(&mut self, msg: Withdraw, _: &mut Context<Self>) {
        if self.queue.withdraw_invitation(&msg.session).is_some() {
            self.hub.push_to_watchers(
                &self.id,
                Event::InvitationWithdrawn {
                    queue: self.id.clone(),
                    session: msg.session,
                },
            );
        }
    }
}

/// The queue as a rep views it.
#[derive(Message)]
#[rtype(result = "QueueView")]
pub struct View {
    pub sort: SortBy,
}

impl Handler<View> for QueueActor {
    type Result = MessageResult<View>;
    fn handle(&mut self, msg: View, _: &mut Context<Self>) -> Self::Result {
        let now = now_ms();
        let items = self
            .queue
            .view(msg.sort)
            .into_iter()
            .map(|(position, summary)| QueueItem {
                position,
                waited_ms: now.saturating_sub(summary.wait_start),
                summary,
            })
            .collect();
        MessageResult(QueueView {
            queue: self.id.clone(),
            name: self.hub.catalog().queue_name(&self.id),
            sort: msg.sort,
            items,
            invitations: self.queue.invitations().cloned().collect(),
        })
    }
}

/// Counts for the queue list.
#[derive(Message)]
#[rtype(result = "QueueStats")]
pub struct Stats;

#[derive(Debug, Clone, Copy, MessageResponse)]
pub struct QueueStats {
    pub waiting: usize,
    pub invitations: usize,
    pub chat_lines: u64,
    /// The longest-waiting session's order key and wait start.
    pub first: Option<(u64, u64)>,
}

impl Handler<Stats> for QueueActor {
    type Result = QueueStats;
    fn handle(&mut self, _: Stats, _: &mut Context<Self>) -> QueueStats {
        QueueStats {
            waiting: self.queue.len(),
            invitations: self.queue.invitations().count(),
            chat_lines: self.chat_lines,
            first: self.queue.first().map(|s| (s.order, s.wait_start)),
        }
    }
}

/// Every waiting session in queue order, for the supervisor's rules.
#[derive(Message)]
#[rtype(result = "Vec<SessionSummary>")]
pub struct WaitingList;

impl Handler<WaitingList> for QueueActor {
    type Result = MessageResult<WaitingList>;
    fn handle(&mut self, _: WaitingList, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.queue.in_order().map(|(_, s)| s.clone()).collect())
    }
}

/// The session waiting longest, for "get next".
#[derive(Message)]
#[rtype(result = "Option<SessionId>")]
pub struct First;

impl Handler<First> for QueueActor {
    type Result = Option<SessionId>;
    fn handle(&mut self, _: First, _: &mut Context<Self>) -> Option<SessionId> {
        self.queue.first().map(|s| s.session.clone())
    }
}

/// Where a session stands: (position, estimate).
#[derive(Message)]
#[rtype(result = "Option<(usize, Option<u64>)>")]
pub struct PositionOf(pub SessionId);

impl Handler<PositionOf> for QueueActor {
    type Result = Option<(usize, Option<u64>)>;
    fn handle(&mut self, msg: PositionOf, _: &mut Context<Self>) -> Self::Result {
        let p = self.queue.position(&msg.0)?;
        Some((p, self.queue.estimate_secs(p)))
    }
}

/// A rep writes in the team chat.
#[derive(Message)]
#[rtype(result = "AppResult<ChatLine>")]
pub struct PostTeamChat {
    pub from: String,
    pub name: String,
    pub text: String,
}

impl Handler<PostTeamChat> for QueueActor {
    type Result = AtomicResponse<Self, AppResult<ChatLine>>;
    fn handle(&mut self, msg: PostTeamChat, _: &mut Context<Self>) -> Self::Result {
        let QueueId::Team(team) = self.id.clone() else {
            return AtomicResponse::new(Box::pin(fut::ready(Err(AppError::invalid(
                "only teams have a team chat",
            )))));
        };
        if let Err(e) = check_text(&msg.text) {
            return AtomicResponse::new(Box::pin(fut::ready(Err(e))));
        }
        let line = ChatLine {
            seq: self.chat_lines,
            at: now_ms(),
            from: msg.from,
            name: msg.name,
            text: msg.text,
        };
        let key = team_chat_key(&team, line.seq);
        let write = store::save_owned(&self.hub.store, key, &line, Expect::Absent);
        AtomicResponse::new(Box::pin(write.into_actor(self).map(move |res, act, _| {
            res.map_err(AppError::from)?;
            act.chat_lines += 1;
            for rep in act.hub.watchers(&act.id).iter() {
                if let Ok(addr) = act.hub.directory.rep(rep) {
                    addr.do_send(TeamChatPosted {
                        team: team.clone(),
                        line: line.clone(),
                        lines: act.chat_lines,
                    });
                }
            }
            Ok(line)
        })))
    }
}
