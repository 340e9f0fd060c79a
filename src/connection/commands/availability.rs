//! Availability for automatic routing: `set_status`, `set_auto_assign`,
//! `decline_offer`.
use super::super::{Answer, Connection};
use super::rep;
use crate::actors::rep::SetAvailability;
use crate::actors::supervisor::Decline;
use crate::domain::ids::SessionId;
use crate::domain::rep_state::RepStatus;
use crate::error::AppError;
use crate::protocol::Reply;

pub async fn set(
    conn: &mut Connection,
    status: Option<RepStatus>,
    auto_assign: Option<bool>,
) -> Answer {
    let rep = rep(conn)?;
    let (status, auto_assign) = conn
        .hub
        .directory
        .rep(&rep)?
        .send(SetAvailability {
            status,
            auto_assign,
        })
        .await??;
    Ok(Reply::Status {
        status,
        auto_assign,
    })
}

pub async fn decline(conn: &mut Connection, session: SessionId) -> Answer {
    let rep = rep(conn)?;
    let supervisor = conn
        .hub
        .directory
        .supervisor()
        .ok_or_else(|| AppError::internal("the supervisor is not running"))?;
    supervisor.send(Decline { rep, session }).await??;
    Ok(Reply::Ok)
}
