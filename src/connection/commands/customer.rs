//! Customers: start a session, or resume one after a dropped connection.
use std::sync::Arc;

use super::super::{Answer, Connection, Phase};
use crate::actors::session::{self, AttachCustomer};
use crate::auth::{
    customer_token_key, customer_token_session, invalid_customer_token, CustomerToken,
};
use crate::domain::ids::{ClientKind, Role};
use crate::protocol::{Entry, Reply, ResumeFrom, Snapshot};
use crate::store;

fn client(conn: &Connection) -> ClientKind {
    match &conn.phase {
        Phase::Greeted { client, .. } => *client,
        _ => ClientKind::Desktop,
    }
}

pub async fn start(
    conn: &mut Connection,
    entry: Entry,
    name: String,
    company: String,
    description: String,
) -> Answer {
    let hub = conn.hub.clone();
    let client = client(conn);
    let (addr, token, _) = session::start(
        &hub,
        session::StartRequest {
            entry,
            name,
            company,
            description,
            client,
        },
    )
    .await?;
    attach(conn, addr, token, None, client).await
}

pub async fn resume(conn: &mut Connection, token: String, resume: Option<ResumeFrom>) -> Answer {
    let hub = conn.hub.clone();
    if token.is_empty() || token.len() > 256 {
        return Err(invalid_customer_token());
    }
    // The token names its session; the session's actor checks the rest.
    let session = match customer_token_session(&token) {
        Some(id) => id.to_string(),
        // A token from before change 48 has a record of its own.
        None => {
            store::load::<CustomerToken>(hub.store.as_ref(), &customer_token_key(&token))
                .await?
                .ok_or_else(invalid_customer_token)?
                .0
                .session
        }
    };
    let addr = hub
        .directory
        .find_session(&session)
        .ok_or_else(invalid_customer_token)?;
    let client = client(conn);
    attach(conn, addr, token, resume, client).await
}

async fn attach(
    conn: &mut Connection,
    addr: actix::Addr<session::SessionActor>,
    token: String,
    resume: Option<ResumeFrom>,
    client: ClientKind,
) -> Answer {
    let hub = conn.hub.clone();
    let (handle, rx) = hub.new_connection();
    let attached = addr
        .send(AttachCustomer {
            conn: handle.clone(),
            token,
            resume,
        })
        .await??;
    let view = attached.view;
    conn.outbound = Some(rx);
    conn.phase = Phase::Customer {
        session: view.session.clone(),
        client,
        conn: handle,
    };
    conn.count(Some((Role::Customer, client)));
    let (id, snapshot_view) = (view.session.clone(), view.clone());
    let follow = conn
        .follow_resume(
            &view.stream,
            view.seq,
            attached.resume.map(Arc::new),
            || async move {
                let chat = session::load_chat(&hub, &id).await?;
                Ok(Snapshot::Customer {
                    view: snapshot_view,
                    chat,
                })
            },
        )
        .await;
    if let Err(e) = follow {
        conn.detach();
        conn.phase = Phase::Greeted {
            role: Role::Customer,
            client,
        };
        return Err(e);
    }
    Ok(Reply::SessionStarted(view))
}
