//! The product's flows in terms of actor messages, shared by the WebSocket
//! commands and the REST API so each is written once.
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::actors::queue::{First, Stats, View};
use crate::actors::rep::{GetView, RepView, Reserve, Unreserve};
use crate::actors::session::{self as session_actor, details, Accept, Details, Join};
use crate::actors::Hub;
use crate::auth::{bad_credentials, token_key, verify_password, RepToken};
use crate::domain::catalog::Rep;
use crate::domain::chat::session_chat_prefix;
use crate::domain::ids::*;
use crate::domain::keys::{check_validity, generate_key, random_token, SessionKey};
use crate::domain::queue::SortBy;
use crate::domain::session::Session;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::protocol::{
    QueueInfo, QueueKind, QueueView, RepInfo, SessionDetails, Snapshot, TeamInfo,
};
use crate::store::{self, Expect};

/// Checks a username and password; answers the rep and a new token.
pub async fn login_with_password(
    hub: &Hub,
    username: &str,
    password: &str,
) -> AppResult<(Rep, String)> {
    let rep = hub.catalog().rep_by_username(username).cloned();
    // Verify against a dummy hash when the user is unknown, so the answer
    // takes as long either way.
    let (hash, rep) = match rep {
        Some(r) => (r.password_hash.clone(), Some(r)),
        None => (String::new(), None),
    };
    let password = password.to_string();
    // One check per core at a time (see `Hub::password_checks`); the rest
    // wait their turn here, holding no memory.
    let ok = hub
        .password_work(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    let rep = match (ok, rep) {
        (true, Some(r)) => r,
        _ => return Err(bad_credentials()),
    };
    let token = random_token();
    store::save(
        hub.store.as_ref(),
        &token_key(&token),
        &RepToken {
            rep: rep.id.clone(),
            created_at: now_ms(),
        },
        Expect::Absent,
    )
    .await?;
    Ok((rep, token))
}

/// The rep a token belongs to.
pub async fn rep_for_token(hub: &Hub, token: &str) -> AppResult<Rep> {
    let invalid = || {
        AppError::new(
            ErrorCode::InvalidToken,
            "the token is unknown or revoked: log in again",
        )
    };
    if token.is_empty() || token.len() > 256 {
        return Err(invalid());
    }
    let (t, _) = store::load::<RepToken>(hub.store.as_ref(), &token_key(token))
        .await?
        .ok_or_else(invalid)?;
    hub.catalog().reps.get(&t.rep).cloned().ok_or_else(invalid)
}

pub async fn logout(hub: &Hub, token: &str) -> AppResult<()> {
    hub.store.delete(&token_key(token), Expect::Any).await?;
    Ok(())
}

pub fn rep_info(hub: &Hub, r: &Rep) -> RepInfo {
    RepInfo {
        id: r.id.clone(),
        display_name: r.display_name.clone(),
        teams: r.teams.clone(),
        online: hub.is_online(&r.id),
        public: r.public,
    }
}

pub fn list_reps(hub: &Hub) -> Vec<RepInfo> {
    hub.catalog()
        .reps
        .values()
        .map(|r| rep_info(hub, r))
        .collect()
}

/// The reps a customer may choose: logged in and public.
pub fn public_reps(hub: &Hub) -> Vec<RepInfo> {
    hub.catalog()
        .reps
        .values()
        .filter(|r| r.public && hub.is_online(&r.id))
        .map(|r| rep_info(hub, r))
        .collect()
}

pub fn list_teams(hub: &Hub) -> Vec<TeamInfo> {
    hub.catalog()
        .teams
        .values()
        .map(|t| TeamInfo {
            id: t.id.clone(),
            name: t.name.clone(),
            queue: QueueId::team(t.id.clone()),
        })
        .collect()
}

async fn rep_view(hub: &Hub, rep: &str) -> AppResult<RepView> {
    Ok(hub.directory.rep(rep)?.send(GetView).await?)
}

/// The queues a rep sees, with counts, stars and unread flags.
pub async fn list_queues(hub: &Hub, rep: &str) -> AppResult<Vec<QueueInfo>> {
    let view = rep_view(hub, rep).await?;
    let queues = hub.catalog().visible_queues(rep);
    let mut out = Vec::with_capacity(queues.len());
    for queue in queues {
        let stats = hub.directory.queue(&queue)?.send(Stats).await?;
        let (kind, chat_unread) = match &queue {
            QueueId::Rep(_) => (QueueKind::Personal, None),
            QueueId::Team(t) => (
                QueueKind::Team,
                Some(view.state.unread(t, stats.chat_lines)),
            ),
        };
        out.push(QueueInfo {
            name: hub.catalog().queue_name(&queue),
            favorite: view.state.favorites.contains(&queue),
            waiting: stats.waiting,
            invitations: stats.invitations,
            kind,
            chat_unread,
            queue,
        });
    }
    Ok(out)
}

pub async fn view_queue(
    hub: &Hub,
    rep: Option<&str>,
    queue: &QueueId,
    sort: SortBy,
) -> AppResult<QueueView> {
    if let Some(rep) = rep {
        if !hub.catalog().can_see(rep, queue) {
            return Err(AppError::permission(format!(
                "you cannot see queue {queue}"
            )));
        }
    }
    Ok(hub.directory.queue(queue)?.send(View { sort }).await?)
}

/// A session's details: from its actor while live, from the store after.
pub async fn session_details(
    hub: &Hub,
    id: &str,
    viewer: Option<&str>,
) -> AppResult<SessionDetails> {
    if let Some(addr) = hub.directory.find_session(id) {
        if let Ok(d) = addr
            .send(Details {
                viewer: viewer.map(str::to_string),
            })
            .await
        {
            return d;
        }
    }
    let s = stored_session(hub, id)
        .await?
        .ok_or_else(|| AppError::not_found("session", id))?;
    if let Some(rep) = viewer {
        if !s.is_participant(rep)
            && !s
                .history
                .iter()
                .any(|h| h.actor == crate::domain::session::rep_actor(rep))
        {
            return Err(AppError::new(
                ErrorCode::NotYourSession,
                "you had no part in this session",
            ));
        }
    }
    let mut d = details(&s);
    d.chat_lines = hub.store.scan_prefix(&session_chat_prefix(id)).await?.len() as u64;
    Ok(d)
}

pub async fn my_sessions(hub: &Hub, rep: &str) -> AppResult<Vec<SessionDetails>> {
    let view = rep_view(hub, rep).await?;
    let mut out = Vec::new();
    for id in view.sessions {
        if let Some(addr) = hub.directory.find_session(&id) {
            if let Ok(Ok(d)) = addr.send(Details { viewer: None }).await {
                out.push(d);
            }
        }
    }
    Ok(out)
}

/// A session as stored, ended ones included. Ids that cannot be ours
/// (clients send anything) are not looked up.
async fn stored_session(hub: &Hub, id: &str) -> AppResult<Option<Session>> {
    let ours = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric());
    if !ours {
        return Ok(None);
    }
    Ok(
        store::load::<Session>(hub.store.as_ref(), &session_actor::session_key(id))
            .await?
            .map(|(s, _)| s),
    )
}

/// A live session's actor. An ended session answers `session_ended`, one
/// that never existed `not_found`.
pub async fn live_session(
    hub: &Hub,
    id: &str,
) -> AppResult<actix::Addr<session_actor::SessionActor>> {
    if let Some(addr) = hub.directory.find_session(id) {
        return Ok(addr);
    }
    if stored_session(hub, id).await?.is_some_and(|s| s.is_ended()) {
        return Err(AppError::new(
            ErrorCode::SessionEnded,
            format!("session {id} has ended"),
        ));
    }
    Err(AppError::not_found("session", id))
}

/// Asks a live session's actor. A session that ends stops its actor, and
/// whatever still waited in its mailbox (an accept or a chat line sent
/// just as the customer hung up) is dropped unread: that answers what the
/// request would have met a moment later, `session_ended`, not
/// `internal`.
pub async fn ask_session<M, T>(hub: &Hub, id: &str, msg: M) -> AppResult<T>
where
    M: actix::Message<Result = AppResult<T>> + Send + 'static,
    T: Send + 'static,
    session_actor::SessionActor: actix::Handler<M>,
{
    ask(hub, id, live_session(hub, id).await?, msg).await
}

/// [`ask_session`] of an actor already looked up.
async fn ask<M, T>(
    hub: &Hub,
    id: &str,
    addr: actix::Addr<session_actor::SessionActor>,
    msg: M,
) -> AppResult<T>
where
    M: actix::Message<Result = AppResult<T>> + Send + 'static,
    T: Send + 'static,
    session_actor::SessionActor: actix::Handler<M>,
{
    match addr.send(msg).await {
        Ok(answer) => answer,
        Err(actix::MailboxError::Closed) => {
            live_session(hub, id).await?;
            Err(AppError::new(
                ErrorCode::SessionEnded,
                format!("session {id} has ended"),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn accept(hub: &Hub, rep: &str, session: &str) -> AppResult<SessionDetails> {
    // An unknown or ended session is refused before a place is reserved.
    let addr = live_session(hub, session).await?;
    let accept = Accept {
        rep: rep.to_string(),
    };
    with_place(hub, rep, session, ask(hub, session, addr, accept)).await
}

/// Joins a shared session the rep is invited to.
pub async fn join(hub: &Hub, rep: &str, session: &str) -> AppResult<SessionDetails> {
    // An unknown or ended session is refused before a place is reserved.
    let addr = live_session(hub, session).await?;
    let join = Join {
        rep: rep.to_string(),
    };
    with_place(hub, rep, session, ask(hub, session, addr, join)).await
}

/// Holds a place among the rep's concurrent sessions while `take` runs,
/// and gives it back if `take` fails: an accept or join beyond the rep's
/// maximum is refused with `too_many_sessions`, even from two consoles at
/// once.
async fn with_place<T>(
    hub: &Hub,
    rep: &str,
    session: &str,
    take: impl std::future::Future<Output = AppResult<T>>,
) -> AppResult<T> {
    let rep_addr = hub.directory.rep(rep)?;
    let reserved = rep_addr
        .send(Reserve {
            session: session.to_string(),
            max: hub.max_sessions(rep),
        })
        .await??;
    let result = take.await;
    if result.is_err() && reserved {
        rep_addr.do_send(Unreserve {
            session: session.to_string(),
        });
    }
    result
}

/// Accepts the longest-waiting session of the rep's team queues. If another
/// rep takes it first, tries the next; gives up after a few races.
pub async fn get_next(hub: &Hub, rep: &str) -> AppResult<SessionDetails> {
    const RACES: usize = 8;
    let teams: Vec<QueueId> = hub
        .catalog()
        .visible_queues(rep)
        .into_iter()
        .filter(|q| matches!(q, QueueId::Team(_)))
        .collect();
    for _ in 0..RACES {
        let mut best: Option<(u64, QueueId)> = None;
        for q in &teams {
            let stats = hub.directory.queue(q)?.send(Stats).await?;
            if let Some((_, wait_start)) = stats.first {
                if best.as_ref().is_none_or(|(w, _)| wait_start < *w) {
                    best = Some((wait_start, q.clone()));
                }
            }
        }
        let Some((_, queue)) = best else {
            break;
        };
        let Some(session) = hub.directory.queue(&queue)?.send(First).await? else {
            continue;
        };
        match accept(hub, rep, &session).await {
            Err(e)
                if matches!(
                    e.code,
                    ErrorCode::AlreadyTaken | ErrorCode::NotFound | ErrorCode::SessionEnded
                ) =>
            {
                continue
            }
            other => return other,
        }
    }
    Err(AppError::new(
        ErrorCode::QueueEmpty,
        "no session is waiting in your team queues",
    ))
}

/// A one-time session key for `rep`'s personal queue.
pub async fn generate_session_key(
    hub: &Hub,
    rep: &str,
    valid_for_secs: u64,
    portal: Option<PortalId>,
) -> AppResult<(String, String, Millis)> {
    {
        let c = hub.catalog();
        let r = c.rep(rep)?;
        if !r.permissions.generate_session_keys {
            return Err(AppError::permission(
                "you do not have permission to generate session keys",
            ));
        }
        if let Some(p) = &portal {
            if !c.portals.contains_key(p) {
                return Err(AppError::not_found("portal", p));
            }
        }
    }
    check_validity(valid_for_secs)?;
    let portal = portal.or_else(|| hub.catalog().portals.keys().next().cloned());
    let now = now_ms();
    let record = SessionKey {
        rep: rep.to_string(),
        created_at: now,
        expires_at: now + valid_for_secs * 1000,
        portal: portal.clone(),
        used_by: None,
    };
    // A collision of 60 random bits is next to impossible; if it ever
    // happens the conditional write fails and we draw again.
    for _ in 0..4 {
        let key = generate_key();
        match store::save(
            hub.store.as_ref(),
            &session_actor::key_record_key(&key),
            &record,
            Expect::Absent,
        )
        .await
        {
            Ok(_) => {
                let base = hub.settings.public_url.trim_end_matches('/');
                let url = match &portal {
                    Some(p) => format!("{base}/portal/{p}/key/{key}"),
                    None => format!("{base}/key/{key}"),
                };
                return Ok((key, url, record.expires_at));
            }
            Err(crate::store::StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(AppError::internal("could not draw a fresh session key"))
}

/// What a rep's console shows, for a reconnect whose gap is too old.
pub async fn rep_snapshot(hub: &Arc<Hub>, rep: &str) -> AppResult<Snapshot> {
    let view = rep_view(hub, rep).await?;
    let mut queues = Vec::new();
    let mut chat_unread = BTreeMap::new();
    // Bind first: a guard in the loop head would be held across the awaits.
    let visible = hub.catalog().visible_queues(rep);
    for q in visible {
        let addr = hub.directory.queue(&q)?;
        if let QueueId::Team(t) = &q {
            let stats = addr.send(Stats).await?;
            chat_unread.insert(t.clone(), view.state.unread(t, stats.chat_lines));
        }
        queues.push(addr.send(View { sort: SortBy::Wait }).await?);
    }
    Ok(Snapshot::Rep {
        queues,
        sessions: my_sessions(hub, rep).await?,
        favorites: view.state.favorites.iter().cloned().collect(),
        chat_unread,
        status: view.state.status,
        auto_assign: view.state.auto_assign,
    })
}

/// Whose a session key is, when it expires, and whether it can still start
/// a session. Unknown keys are `key_unknown`.
/// Answers the rep's name, the expiry, whether it is usable and its portal.
pub async fn key_status(
    hub: &Hub,
    typed: &str,
) -> AppResult<(String, Millis, bool, Option<PortalId>)> {
    let key = crate::domain::keys::normalise(typed);
    if key.is_empty() || key.len() > 64 {
        return Err(AppError::new(
            ErrorCode::KeyUnknown,
            "that session key is not known",
        ));
    }
    let (k, _) =
        store::load::<SessionKey>(hub.store.as_ref(), &session_actor::key_record_key(&key))
            .await?
            .ok_or_else(|| AppError::new(ErrorCode::KeyUnknown, "that session key is not known"))?;
    let name = hub.catalog().queue_name(&QueueId::rep(k.rep.clone()));
    Ok((
        name,
        k.expires_at,
        k.check_usable(now_ms()).is_ok(),
        k.portal,
    ))
}
