//! Request handlers, grouped by concept. Each takes the connection and the
//! request body and answers a [`Reply`] or an error; none can drop the
//! connection.
pub mod account;
pub mod availability;
pub mod chat;
pub mod customer;
pub mod hello;
pub mod queues;
pub mod sessions;

use super::{Answer, Connection, Phase};
use crate::domain::ids::{RepId, SessionId};
use crate::error::{AppError, ErrorCode};
use crate::protocol::{Reply, RequestBody as B};

/// The logged-in rep, or the right error.
pub fn rep(conn: &Connection) -> Result<RepId, AppError> {
    match &conn.phase {
        Phase::Rep { rep, .. } => Ok(rep.clone()),
        Phase::Greeted {
            role: crate::domain::ids::Role::Customer,
            ..
        }
        | Phase::Customer { .. } => Err(AppError::new(
            ErrorCode::WrongRole,
            "this request is for reps; this connection is a customer's",
        )),
        _ => Err(AppError::new(ErrorCode::LoginRequired, "log in first")),
    }
}

/// The customer's session, or the right error.
pub fn customer(conn: &Connection) -> Result<SessionId, AppError> {
    match &conn.phase {
        Phase::Customer { session, .. } => Ok(session.clone()),
        Phase::Greeted {
            role: crate::domain::ids::Role::Customer,
            ..
        } => Err(AppError::new(
            ErrorCode::InvalidRequest,
            "start or resume a session first",
        )),
        _ => Err(AppError::new(
            ErrorCode::WrongRole,
            "this request is for customers",
        )),
    }
}

fn customers_only(conn: &Connection) -> Result<(), AppError> {
    match &conn.phase {
        Phase::Greeted {
            role: crate::domain::ids::Role::Customer,
            ..
        } => Ok(()),
        Phase::Customer { .. } => Err(AppError::new(
            ErrorCode::InvalidRequest,
            "this connection already has a session",
        )),
        _ => Err(AppError::new(
            ErrorCode::WrongRole,
            "this request is for customers",
        )),
    }
}

pub async fn dispatch(conn: &mut Connection, body: B) -> Answer {
    let hub = conn.hub.clone();
    match body {
        B::Hello { .. } | B::Ping => unreachable!("handled by the connection"),
        B::Login {
            username,
            password,
            token,
            resume,
        } => account::login(conn, username, password, token, resume).await,
        B::Logout => account::logout(conn).await,
        B::SetStatus { status } => availability::set(conn, Some(status), None).await,
        B::SetAutoAssign { enabled } => availability::set(conn, None, Some(enabled)).await,
        B::DeclineOffer { session } => availability::decline(conn, session).await,
        B::ListReps => {
            rep(conn)?;
            Ok(Reply::Reps {
                reps: crate::flows::list_reps(&hub),
            })
        }
        B::ListTeams => {
            rep(conn)?;
            Ok(Reply::Teams {
                teams: crate::flows::list_teams(&hub),
            })
        }
        B::PublicReps => {
            customers_only(conn).or_else(|_| customer(conn).map(|_| ()))?;
            Ok(Reply::Reps {
                reps: crate::flows::public_reps(&hub),
            })
        }
        B::ListQueues => queues::list(conn).await,
        B::ViewQueue { queue, sort } => queues::view(conn, queue, sort).await,
        B::Star { queue } => queues::star(conn, queue, true).await,
        B::Unstar { queue } => queues::star(conn, queue, false).await,
        B::SessionDetails { session } => sessions::details(conn, session).await,
        B::MySessions => sessions::mine(conn).await,
        B::Accept { session } => sessions::accept(conn, session).await,
        B::GetNext => sessions::get_next(conn).await,
        B::Transfer { session, to } => sessions::transfer(conn, session, to).await,
        B::Invite { session, to } => sessions::invite(conn, session, to).await,
        B::Join { session } => sessions::join(conn, session).await,
        B::Leave { session } => sessions::leave(conn, session).await,
        B::Control { session, input } => sessions::control(conn, session, input).await,
        B::RequestView { session } => sessions::request_view(conn, session).await,
        B::EndSession { session } => sessions::end(conn, session).await,
        B::GenerateSessionKey {
            valid_for_secs,
            portal,
        } => {
            let rep = rep(conn)?;
            let (key, url, expires_at) =
                crate::flows::generate_session_key(&hub, &rep, valid_for_secs, portal).await?;
            Ok(Reply::SessionKey {
                key,
                url,
                expires_at,
            })
        }
        B::Chat { session, text } => chat::chat(conn, session, text).await,
        B::ChatHistory { session } => chat::history(conn, session).await,
        B::TeamChat { team, text } => chat::team_chat(conn, team, text).await,
        B::TeamChatHistory { team } => chat::team_history(conn, team).await,
        B::MarkTeamChatRead { team } => chat::mark_read(conn, team).await,
        B::StartSession {
            entry,
            name,
            company,
            description,
        } => {
            customers_only(conn)?;
            customer::start(conn, entry, name, company, description).await
        }
        B::ResumeSession { token, resume } => {
            customers_only(conn)?;
            customer::resume(conn, token, resume).await
        }
    }
}
