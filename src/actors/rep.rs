//! One actor per rep: starred queues, team chat read marks, the sessions
//! the rep is in, and the rep's consoles with their numbered event stream.
//!
//! A rep may have several consoles open (desktop and mobile): every event
//! goes to each of them, and the rep counts as online while any is. When
//! the last console goes, a grace timer starts; if no console is back when
//! it fires, the supervisor takes the rep's sessions through the fallback
//! order (see `domain::session::Session::rep_lost`).
use std::collections::BTreeSet;
use std::sync::Arc;

use actix::prelude::*;

use super::{ConnHandle, Hub};
use crate::domain::chat::ChatLine;
use crate::domain::ids::{QueueId, RepId, SessionId, TeamId};
use crate::domain::outbox::{Outbox, Resume};
use crate::domain::rep_state::{RepState, RepStatus};
use crate::error::{AppError, AppResult};
use crate::protocol::{Event, ResumeFrom, ServerFrame};
use crate::store::{self, Expect};

pub struct RepActor {
    id: RepId,
    hub: Arc<Hub>,
    state: RepState,
    /// Store revision of `state`, for conditional writes.
    revision: Option<u64>,
    /// Events are shared with the other reps they went to (an alert goes
    /// to a whole team), so a ring holds pointers, not copies.
    outbox: Outbox<Arc<Event>>,
    consoles: Vec<ConnHandle>,
    sessions: BTreeSet<SessionId>,
    /// Places held by `Reserve` for an accept or join not yet answered:
    /// only these may be given back by `Unreserve`. Once the session says
    /// the rep is in it (`InSession`), the place is the rep's for good.
    reserved: BTreeSet<SessionId>,
    /// Armed while the rep has sessions but no console.
    lost_timer: Option<SpawnHandle>,
}

pub fn state_key(rep: &str) -> String {
    format!("rep_state/{rep}")
}

impl RepActor {
    pub fn new(id: RepId, hub: Arc<Hub>, state: RepState, revision: Option<u64>) -> Self {
        let outbox = Outbox::unread(hub.settings.replay_events);
        RepActor {
            id,
            hub,
            state,
            revision,
            outbox,
            consoles: Vec::new(),
            sessions: BTreeSet::new(),
            reserved: BTreeSet::new(),
            lost_timer: None,
        }
    }

    /// Mirrors availability into the hub for routing and the public list.
    fn publish(&self) {
        self.hub.set_presence(
            &self.id,
            super::hub::Presence {
                consoles: self.consoles.len(),
                status: self.state.status,
                auto_assign: self.state.auto_assign,
                available_since: self.state.available_since,
                sessions: self.sessions.len() as u32,
                listening: self.outbox.is_open(),
            },
        );
    }

    /// Starts or stops the lost-connection grace timer to match the state:
    /// it runs while the rep is in sessions with no console connected.
    fn watch_connection(&mut self, ctx: &mut Context<Self>) {
        let lost = self.consoles.is_empty() && !self.sessions.is_empty();
        match (lost, self.lost_timer.is_some()) {
            (true, false) => {
                let grace = std::time::Duration::from_millis(self.hub.supervisor.rep_grace_ms);
                self.lost_timer = Some(ctx.run_later(grace, |act, ctx| {
                    act.lost_timer = None;
                    if act.consoles.is_empty() && !act.sessions.is_empty() {
                        match act.hub.directory.supervisor() {
                            Some(sup) => {
                                tracing::info!(rep = %act.id, sessions = act.sessions.len(), "rep connection lost past the grace period");
                                sup.do_send(super::supervisor::RepConnectionLost {
                                    rep: act.id.clone(),
                                    sessions: act.sessions.iter().cloned().collect(),
                                });
                            }
                            // Still starting up (restoring sessions): the
                            // rep gets another grace period once it runs.
                            None => act.watch_connection(ctx),
                        }
                    }
                }));
            }
            (false, true) => {
                if let Some(t) = self.lost_timer.take() {
                    ctx.cancel_future(t);
                }
            }
            _ => {}
        }
    }

    fn push(&mut self, event: impl Into<Arc<Event>>) {
        self.push_packed(event.into(), None);
    }

    /// Numbers the event in the rep's stream, keeps it for replay and
    /// sends it to every console; `packed` is its encoding when the sender
    /// made one for several reps.
    fn push_packed(&mut self, event: Arc<Event>, packed: Option<bytes::Bytes>) {
        let seq = self.outbox.push(event.clone());
        if self.consoles.is_empty() {
            return;
        }
        let frame = Arc::new(ServerFrame::Event {
            stream: self.outbox.stream().clone(),
            seq,
            event,
            packed,
        });
        let hub = self.hub.clone();
        let before = self.consoles.len();
        self.consoles.retain(|c| c.push(frame.clone(), &hub));
        if self.consoles.len() != before {
            // A slow console was dropped; its Detach re-arms the timer.
            self.publish();
        }
    }

    /// Stores a changed state, then makes it the actor's. Nothing changes
    /// if the write fails.
    fn save(&mut self, next: RepState) -> ResponseActFuture<Self, AppResult<()>> {
        let expect = match self.revision {
            Some(r) => Expect::Revision(r),
            None => Expect::Absent,
        };
        let write = store::save_owned(&self.hub.store, state_key(&self.id), &next, expect);
        Box::pin(write.into_actor(self).map(move |res, act, _| {
            let revision = res.map_err(AppError::from)?;
            act.state = next;
            act.revision = Some(revision);
            Ok(())
        }))
    }
}

impl Actor for RepActor {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        self.publish();
    }
}

/// An event for this rep's consoles, with its MessagePack encoding when
/// the same event goes to several reps ([`crate::protocol::pack_event`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Push {
    pub event: Arc<Event>,
    pub packed: Option<bytes::Bytes>,
}

impl Handler<Push> for RepActor {
    type Result = ();
    fn handle(&mut self, msg: Push, _: &mut Context<Self>) {
        self.push_packed(msg.event, msg.packed);
    }
}

/// A console logs in. The reply says where the stream stands and what the
/// console missed since `resume`, or that it needs a snapshot.
#[derive(Message)]
#[rtype(result = "Attached")]
pub struct Attach {
    pub conn: ConnHandle,
    pub resume: Option<ResumeFrom>,
}

pub struct Attached {
    pub stream: String,
    pub seq: u64,
    pub resume: Resume<Arc<Event>>,
    /// The rep's availability, for `logged_in`.
    pub status: RepStatus,
    pub auto_assign: bool,
}

impl<A, M> actix::dev::MessageResponse<A, M> for Attached
where
    A: Actor,
    M: Message<Result = Attached>,
{
    fn handle(self, _: &mut A::Context, tx: Option<actix::dev::OneshotSender<Attached>>) {
        if let Some(tx) = tx {
            let _ = tx.send(self);
        }
    }
}

impl Handler<Attach> for RepActor {
    type Result = Attached;
    fn handle(&mut self, msg: Attach, ctx: &mut Context<Self>) -> Attached {
        let resume = match &msg.resume {
            Some(r) => self.outbox.resume(&r.stream, r.after),
            // A fresh login fetches what it shows; nothing to replay.
            None => Resume::Replay(Vec::new()),
        };
        // This console learns the stream below: from now on it is kept.
        self.outbox.open();
        self.consoles.push(msg.conn);
        self.publish();
        self.watch_connection(ctx);
        Attached {
            stream: self.outbox.stream().to_string(),
            seq: self.outbox.last_seq(),
            resume,
            status: self.state.status,
            auto_assign: self.state.auto_assign,
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Detach {
    pub conn: u64,
}

impl Handler<Detach> for RepActor {
    type Result = ();
    fn handle(&mut self, msg: Detach, ctx: &mut Context<Self>) {
        self.consoles.retain(|c| c.id != msg.conn);
        self.publish();
        self.watch_connection(ctx);
    }
}

/// Stars (`on`) or unstars a queue; answers the new favorites.
#[derive(Message)]
#[rtype(result = "AppResult<Vec<QueueId>>")]
pub struct Star {
    pub queue: QueueId,
    pub on: bool,
}

impl Handler<Star> for RepActor {
    type Result = AtomicResponse<Self, AppResult<Vec<QueueId>>>;
    fn handle(&mut self, msg: Star, _: &mut Context<Self>) -> Self::Result {
        let mut next = self.state.clone();
        if msg.on {
            next.favorites.insert(msg.queue);
        } else {
            next.favorites.remove(&msg.queue);
        }
        let save = self.save(next);
        AtomicResponse::new(Box::pin(save.map(|res, act, _| {
            res?;
            let favorites: Vec<QueueId> = act.state.favorites.iter().cloned().collect();
            // Every console shows the same stars.
            act.push(Event::Favorites {
                favorites: favorites.clone(),
            });
            Ok(favorites)
        })))
    }
}

/// The rep has read a team's chat up to `lines` lines.
#[derive(Message)]
#[rtype(result = "AppResult<()>")]
pub struct MarkChatRead {
    pub team: TeamId,
    pub lines: u64,
}

impl Handler<MarkChatRead> for RepActor {
    type Result = AtomicResponse<Self, AppResult<()>>;
    fn handle(&mut self, msg: MarkChatRead, _: &mut Context<Self>) -> Self::Result {
        let mut next = self.state.clone();
        let read = next.chat_read.entry(msg.team.clone()).or_insert(0);
        *read = (*read).max(msg.lines);
        let team = msg.team;
        let save = self.save(next);
        AtomicResponse::new(Box::pin(save.map(move |res, act, _| {
            res?;
            act.push(Event::TeamUnread {
                team,
                unread: false,
            });
            Ok(())
        })))
    }
}

/// A line was posted to one of the rep's teams.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TeamChatPosted {
    pub team: TeamId,
    pub line: ChatLine,
    /// Lines in the team chat now.
    pub lines: u64,
}

impl Handler<TeamChatPosted> for RepActor {
    type Result = ();
    fn handle(&mut self, msg: TeamChatPosted, ctx: &mut Context<Self>) {
        let mine = msg.line.from == crate::domain::session::rep_actor(&self.id);
        self.push(Event::TeamChat {
            team: msg.team.clone(),
            line: msg.line,
        });
        if mine {
            // Writing in the chat means having read it.
            ctx.notify(MarkChatReadQuiet {
                team: msg.team,
                lines: msg.lines,
            });
        } else if self.state.unread(&msg.team, msg.lines) {
            self.push(Event::TeamUnread {
                team: msg.team,
                unread: true,
            });
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct MarkChatReadQuiet {
    team: TeamId,
    lines: u64,
}

impl Handler<MarkChatReadQuiet> for RepActor {
    type Result = AtomicResponse<Self, ()>;
    fn handle(&mut self, msg: MarkChatReadQuiet, _: &mut Context<Self>) -> Self::Result {
        let mut next = self.state.clone();
        next.chat_read.insert(msg.team, msg.lines);
        let save = self.save(next);
        AtomicResponse::new(Box::pin(save.map(|res, act, _| {
            if let Err(e) = res {
                tracing::warn!(rep = %act.id, error = %e, "could not store chat read mark");
            }
        })))
    }
}

/// The rep joined (`true`) or left a session.
#[derive(Message)]
#[rtype(result = "()")]
pub struct InSession {
    pub session: SessionId,
    pub joined: bool,
}

impl Handler<InSession> for RepActor {
    type Result = ();
    fn handle(&mut self, msg: InSession, ctx: &mut Context<Self>) {
        self.reserved.remove(&msg.session);
        if msg.joined {
            self.sessions.insert(msg.session);
        } else {
            self.sessions.remove(&msg.session);
        }
        self.publish();
        self.watch_connection(ctx);
    }
}

/// What the rep's console needs to draw itself.
#[derive(Message)]
#[rtype(result = "RepView")]
pub struct GetView;

#[derive(Debug, Clone, MessageResponse)]
pub struct RepView {
    pub state: RepState,
    pub sessions: Vec<SessionId>,
    pub online: bool,
}

impl Handler<GetView> for RepActor {
    type Result = RepView;
    fn handle(&mut self, _: GetView, _: &mut Context<Self>) -> RepView {
        RepView {
            state: self.state.clone(),
            sessions: self.sessions.iter().cloned().collect(),
            online: !self.consoles.is_empty(),
        }
    }
}

/// Holds a place for `session` among the rep's concurrent sessions before
/// an accept or join, so two consoles cannot both pass the maximum. The
/// place is given back with `Unreserve` if the accept or join fails.
/// Answers whether a new place was taken (false: the rep is already in it).
#[derive(Message)]
#[rtype(result = "AppResult<bool>")]
pub struct Reserve {
    pub session: SessionId,
    pub max: u32,
}

impl Handler<Reserve> for RepActor {
    type Result = AppResult<bool>;
    fn handle(&mut self, msg: Reserve, ctx: &mut Context<Self>) -> AppResult<bool> {
        if self.sessions.contains(&msg.session) {
            return Ok(false);
        }
        if self.sessions.len() as u32 >= msg.max {
            return Err(AppError::new(
                crate::error::ErrorCode::TooManySessions,
                format!(
                    "you already run {} sessions, the most you may",
                    self.sessions.len()
                ),
            ));
        }
        self.sessions.insert(msg.session.clone());
        self.reserved.insert(msg.session);
        self.publish();
        self.watch_connection(ctx);
        Ok(true)
    }
}

/// The accept or join a place was reserved for failed: give the place
/// back, unless the rep got into the session meanwhile some other way (a
/// second console's join, answered first), which `InSession` confirmed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unreserve {
    pub session: SessionId,
}

impl Handler<Unreserve> for RepActor {
    type Result = ();
    fn handle(&mut self, msg: Unreserve, ctx: &mut Context<Self>) {
        if self.reserved.remove(&msg.session) {
            self.sessions.remove(&msg.session);
            self.publish();
            self.watch_connection(ctx);
        }
    }
}

/// Changes availability: status and/or automatic assignment.
#[derive(Message)]
#[rtype(result = "AppResult<(RepStatus, bool)>")]
pub struct SetAvailability {
    pub status: Option<RepStatus>,
    pub auto_assign: Option<bool>,
}

impl Handler<SetAvailability> for RepActor {
    type Result = AtomicResponse<Self, AppResult<(RepStatus, bool)>>;
    fn handle(&mut self, msg: SetAvailability, _: &mut Context<Self>) -> Self::Result {
        let mut next = self.state.clone();
        if let Some(status) = msg.status {
            if status == RepStatus::Available && next.status != RepStatus::Available {
                next.available_since = crate::domain::ids::now_ms();
            }
            next.status = status;
        }
        if let Some(a) = msg.auto_assign {
            next.auto_assign = a;
        }
        let save = self.save(next);
        AtomicResponse::new(Box::pin(save.map(|res, act, _| {
            res?;
            act.publish();
            let (status, auto_assign) = (act.state.status, act.state.auto_assign);
            act.push(Event::Status {
                status,
                auto_assign,
            });
            Ok((status, auto_assign))
        })))
    }
}
