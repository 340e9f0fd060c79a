//! `list_queues`, `view_queue`, `star`, `unstar`.
use super::super::{Answer, Connection};
use super::rep;
use crate::actors::rep::Star;
use crate::domain::ids::QueueId;
use crate::domain::queue::SortBy;
use crate::error::AppError;
use crate::flows;
use crate::protocol::Reply;

pub async fn list(conn: &mut Connection) -> Answer {
    let rep = rep(conn)?;
    Ok(Reply::Queues {
        queues: flows::list_queues(&conn.hub, &rep).await?,
    })
}

pub async fn view(conn: &mut Connection, queue: QueueId, sort: SortBy) -> Answer {
    let rep = rep(conn)?;
    Ok(Reply::QueueView(
        flows::view_queue(&conn.hub, Some(&rep), &queue, sort).await?,
    ))
}

pub async fn star(conn: &mut Connection, queue: QueueId, on: bool) -> Answer {
    let rep = rep(conn)?;
    if !conn.hub.catalog().can_see(&rep, &queue) {
        return Err(AppError::permission(format!(
            "you cannot see queue {queue}"
        )));
    }
    let favorites = conn
        .hub
        .directory
        .rep(&rep)?
        .send(Star { queue, on })
        .await??;
    Ok(Reply::Favorites { favorites })
}
