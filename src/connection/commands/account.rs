//! `login` and `logout` for reps.
use super::super::{Answer, Connection, Phase};
use crate::actors::rep::Attach;
use crate::domain::ids::Role;
use crate::error::{AppError, ErrorCode};
use crate::flows;
use crate::protocol::{Reply, ResumeFrom};

pub async fn login(
    conn: &mut Connection,
    username: Option<String>,
    password: Option<String>,
    token: Option<String>,
    resume: Option<ResumeFrom>,
) -> Answer {
    let client = match &conn.phase {
        Phase::Greeted {
            role: Role::Rep,
            client,
        } => *client,
        Phase::Greeted {
            role: Role::Customer,
            ..
        }
        | Phase::Customer { .. } => {
            return Err(AppError::new(
                ErrorCode::WrongRole,
                "customers do not log in; say hello as a rep",
            ))
        }
        Phase::Rep { .. } => {
            return Err(AppError::new(
                ErrorCode::InvalidRequest,
                "already logged in",
            ))
        }
        Phase::New => unreachable!("hello comes first"),
    };
    let hub = conn.hub.clone();
    let (rep, token) = match (username, password, token) {
        (Some(u), Some(p), None) => flows::login_with_password(&hub, &u, &p).await?,
        (None, None, Some(t)) => (flows::rep_for_token(&hub, &t).await?, t),
        _ => {
            return Err(AppError::invalid(
                "log in with either username and password, or a token",
            ))
        }
    };
    let (handle, rx) = hub.new_connection();
    let attached = hub
        .directory
        .rep(&rep.id)?
        .send(Attach {
            conn: handle.clone(),
            resume: resume.clone(),
        })
        .await?;
    conn.outbound = Some(rx);
    conn.phase = Phase::Rep {
        rep: rep.id.clone(),
        client,
        token: token.clone(),
        conn: handle,
    };
    conn.count(Some((Role::Rep, client)));
    let rep_id = rep.id.clone();
    let follow = conn
        .follow_resume(
            &attached.stream,
            attached.seq,
            attached.resume,
            || async move { flows::rep_snapshot(&hub, &rep_id).await },
        )
        .await;
    if let Err(e) = follow {
        // Not logged in after all: the console tries again.
        conn.detach();
        conn.phase = Phase::Greeted {
            role: Role::Rep,
            client,
        };
        return Err(e);
    }
    let hub = conn.hub.clone();
    Ok(Reply::LoggedIn {
        rep: flows::rep_info(&hub, &rep),
        token,
        stream: attached.stream,
        seq: attached.seq,
        status: attached.status,
        auto_assign: attached.auto_assign,
    })
}

pub async fn logout(conn: &mut Connection) -> Answer {
    let token = match &conn.phase {
        Phase::Rep { token, .. } => token.clone(),
        _ => return Err(AppError::new(ErrorCode::LoginRequired, "not logged in")),
    };
    flows::logout(&conn.hub, &token).await?;
    let client = match &conn.phase {
        Phase::Rep { client, .. } => *client,
        _ => unreachable!("checked above"),
    };
    conn.detach();
    conn.phase = Phase::Greeted {
        role: Role::Rep,
        client,
    };
    Ok(Reply::Ok)
}
