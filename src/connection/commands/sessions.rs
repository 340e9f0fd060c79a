//! What reps do with sessions: look, accept, transfer, share, control, end.
use super::super::{Answer, Connection, Phase};
use super::rep;
use crate::actors::session::{Control, End, Invite, Leave, RequestView, Speaker, Transfer};
use crate::domain::ids::{QueueId, SessionId};
use crate::error::AppError;
use crate::flows;
use crate::protocol::Reply;

pub async fn details(conn: &mut Connection, session: SessionId) -> Answer {
    let rep = rep(conn)?;
    Ok(Reply::Session {
        session: flows::session_details(&conn.hub, &session, Some(&rep)).await?,
    })
}

pub async fn mine(conn: &mut Connection) -> Answer {
    let rep = rep(conn)?;
    Ok(Reply::Sessions {
        sessions: flows::my_sessions(&conn.hub, &rep).await?,
    })
}

pub async fn accept(conn: &mut Connection, session: SessionId) -> Answer {
    let rep = rep(conn)?;
    Ok(Reply::Session {
        session: flows::accept(&conn.hub, &rep, &session).await?,
    })
}

pub async fn get_next(conn: &mut Connection) -> Answer {
    let rep = rep(conn)?;
    Ok(Reply::Session {
        session: flows::get_next(&conn.hub, &rep).await?,
    })
}

pub async fn transfer(conn: &mut Connection, session: SessionId, to: QueueId) -> Answer {
    let rep = rep(conn)?;
    crate::flows::ask_session(&conn.hub, &session, Transfer { rep, to }).await?;
    Ok(Reply::Ok)
}

pub async fn invite(conn: &mut Connection, session: SessionId, to: QueueId) -> Answer {
    let rep = rep(conn)?;
    crate::flows::ask_session(&conn.hub, &session, Invite { rep, to }).await?;
    Ok(Reply::Ok)
}

pub async fn join(conn: &mut Connection, session: SessionId) -> Answer {
    let rep = rep(conn)?;
    Ok(Reply::Session {
        session: flows::join(&conn.hub, &rep, &session).await?,
    })
}

pub async fn leave(conn: &mut Connection, session: SessionId) -> Answer {
    let rep = rep(conn)?;
    crate::flows::ask_session(&conn.hub, &session, Leave { rep }).await?;
    Ok(Reply::Ok)
}

pub async fn control(conn: &mut Connection, session: SessionId, input: String) -> Answer {
    let rep = rep(conn)?;
    crate::flows::ask_session(&conn.hub, &session, Control { rep, input }).await?;
    Ok(Reply::Ok)
}

pub async fn request_view(conn: &mut Connection, session: SessionId) -> Answer {
    let rep = rep(conn)?;
    crate::flows::ask_session(&conn.hub, &session, RequestView { rep }).await?;
    Ok(Reply::Ok)
}

/// Reps name the session; customers end their own.
pub async fn end(conn: &mut Connection, session: Option<SessionId>) -> Answer {
    let (id, by) = match (&conn.phase, session) {
        (Phase::Customer { session, .. }, _) => (session.clone(), Speaker::Customer),
        (Phase::Rep { rep, .. }, Some(s)) => (s, Speaker::Rep(rep.clone())),
        (Phase::Rep { .. }, None) => return Err(AppError::invalid("name the session to end")),
        _ => {
            rep(conn)?;
            unreachable!("rep() fails outside a rep or customer phase")
        }
    };
    crate::flows::ask_session(&conn.hub, &id, End { by }).await?;
    Ok(Reply::Ok)
}
