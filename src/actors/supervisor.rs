//! The supervisor: brings every actor back from the store at start-up,
//! starts actors for reps and teams the admin API adds, and keeps the
//! session-state gauges current. (Waiting-session rules, lost-connection
//! fallback and routing also belong here; see docs/architecture.md.)
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::queue::{Enter, Invite, QueueActor};
use super::rep::{state_key, RepActor};
use super::session::SessionActor;
use super::Hub;
use crate::domain::ids::QueueId;
use crate::domain::queue::{InvitationSummary, SessionSummary};
use crate::domain::rep_state::RepState;
use crate::domain::session::{Session, SessionState};
use crate::error::AppResult;
use crate::store;

/// How often the session-state gauges are refreshed.
const GAUGE_INTERVAL: Duration = Duration::from_secs(5);

/// What start-up found, for the log.
#[derive(Debug, Default)]
pub struct Rebuilt {
    pub reps: usize,
    pub teams: usize,
    pub waiting: usize,
    pub active: usize,
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
            let lines = hub
                .store
                .scan_prefix(&format!("teamchat/{team}/"))
                .await?
                .len() as u64;
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
            .scan_prefix(&format!("chat/{}/", session.id))
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
    waiting.sort_by_key(|(_, s)| s.order);
    for (queue, summary) in waiting {
        match hub.directory.queue(&queue) {
            Ok(addr) => {
                addr.send(Enter {
                    summary,
                    alert: false,
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

/// The supervisor actor. Today it refreshes the gauges of sessions by
/// state; the waiting-session rules and fallbacks will run from its timers.
pub struct Supervisor {
    hub: Arc<Hub>,
}

impl Supervisor {
    pub fn new(hub: Arc<Hub>) -> Self {
        Supervisor { hub }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(GAUGE_INTERVAL, |act, _| {
            act.hub
                .metrics
                .queues
                .by_state
                .with_label_values(&["live"])
                .set(act.hub.directory.session_count() as i64);
        });
    }
}
