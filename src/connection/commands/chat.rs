//! Session chat (customer and reps) and team chat (reps).
use super::super::{Answer, Connection, Phase};
use super::rep;
use crate::actors::queue::{PostTeamChat, Stats};
use crate::actors::rep::MarkChatRead;
use crate::actors::session::{self, ChatHistory, Speaker};
use crate::domain::chat::{team_chat_prefix, ChatLine};
use crate::domain::ids::{QueueId, Role, SessionId, TeamId};
use crate::domain::session::rep_actor;
use crate::error::AppError;
use crate::protocol::Reply;
use crate::store;

/// Who is speaking and in which session.
fn speaker(
    conn: &Connection,
    session: Option<SessionId>,
) -> Result<(SessionId, Speaker), AppError> {
    match (&conn.phase, session) {
        (Phase::Customer { session, .. }, _) => Ok((session.clone(), Speaker::Customer)),
        (Phase::Rep { rep, .. }, Some(s)) => Ok((s, Speaker::Rep(rep.clone()))),
        (Phase::Rep { .. }, None) => Err(AppError::invalid("name the session")),
        (
            Phase::Greeted {
                role: Role::Customer,
                ..
            },
            _,
        ) => Err(AppError::invalid("start or resume a session first")),
        _ => Err(rep(conn)
            .err()
            .unwrap_or_else(|| AppError::invalid("log in first"))),
    }
}

pub async fn chat(conn: &mut Connection, session: Option<SessionId>, text: String) -> Answer {
    let (id, from) = speaker(conn, session)?;
    let line = crate::flows::ask_session(&conn.hub, &id, session::Chat { from, text }).await?;
    Ok(Reply::ChatSent { line })
}

pub async fn history(conn: &mut Connection, session: Option<SessionId>) -> Answer {
    let (id, reader) = speaker(conn, session)?;
    let lines = match conn.hub.directory.find_session(&id) {
        Some(addr) => addr.send(ChatHistory { reader }).await??,
        // Ended sessions: reps who were in them may still read the log.
        None => {
            let rep = rep(conn)?;
            crate::flows::session_details(&conn.hub, &id, Some(&rep)).await?;
            session::load_chat(&conn.hub, &id).await?
        }
    };
    Ok(Reply::ChatHistory { lines })
}

fn member(conn: &Connection, team: &TeamId) -> Result<(String, QueueId), AppError> {
    let rep = rep(conn)?;
    let queue = QueueId::team(team.clone());
    conn.hub.catalog().team(team)?;
    if !conn.hub.catalog().can_see(&rep, &queue) {
        return Err(AppError::permission(format!(
            "you are not a member of team {team}"
        )));
    }
    Ok((rep, queue))
}

pub async fn team_chat(conn: &mut Connection, team: TeamId, text: String) -> Answer {
    let (rep, queue) = member(conn, &team)?;
    let name = conn.hub.catalog().rep(&rep)?.display_name.clone();
    let line = conn
        .hub
        .directory
        .queue(&queue)?
        .send(PostTeamChat {
            from: rep_actor(&rep),
            name,
            text,
        })
        .await??;
    Ok(Reply::ChatSent { line })
}

pub async fn team_history(conn: &mut Connection, team: TeamId) -> Answer {
    member(conn, &team)?;
    let lines = store::load_all::<ChatLine>(conn.hub.store.as_ref(), &team_chat_prefix(&team))
        .await?
        .into_iter()
        .map(|(_, l, _)| l)
        .collect();
    Ok(Reply::ChatHistory { lines })
}

pub async fn mark_read(conn: &mut Connection, team: TeamId) -> Answer {
    let (rep, queue) = member(conn, &team)?;
    let stats = conn.hub.directory.queue(&queue)?.send(Stats).await?;
    conn.hub
        .directory
        .rep(&rep)?
        .send(MarkChatRead {
            team,
            lines: stats.chat_lines,
        })
        .await??;
    Ok(Reply::Ok)
}
