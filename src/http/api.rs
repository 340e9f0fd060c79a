//! The REST API for reps and integrations: login, session keys (the command
//! API), queues, session history, the public rep list and portal links.
use std::sync::Arc;

use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::actors::Hub;
use crate::domain::catalog::Rep;
use crate::domain::ids::QueueId;
use crate::domain::queue::SortBy;
use crate::error::{AppError, ErrorCode};
use crate::flows;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/login", web::post().to(login))
        .route("/api/logout", web::post().to(logout))
        .route("/api/session-keys", web::post().to(generate_key))
        .route("/api/queues", web::get().to(list_queues))
        .route("/api/queues/{queue}", web::get().to(view_queue))
        .route("/api/sessions/{id}", web::get().to(session))
        .route("/api/teams", web::get().to(teams))
        .route("/api/reps", web::get().to(reps))
        .route("/api/public/reps", web::get().to(public_reps))
        .route("/portal/{portal}/key/{key}", web::get().to(portal_key))
        .route("/key/{key}", web::get().to(plain_key));
}

/// The rep behind `Authorization: Bearer <token>`.
pub struct Authed(pub Rep);

impl FromRequest for Authed {
    type Error = actix_web::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let hub = req.app_data::<web::Data<Arc<Hub>>>().cloned();
        let header = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Box::pin(async move {
            let hub = hub.ok_or_else(|| AppError::internal("no hub"))?;
            let token = header
                .as_deref()
                .and_then(|h| h.strip_prefix("Bearer "))
                .ok_or_else(|| {
                    AppError::new(
                        ErrorCode::LoginRequired,
                        "send Authorization: Bearer <token>",
                    )
                })?;
            Ok(Authed(flows::rep_for_token(&hub, token.trim()).await?))
        })
    }
}

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
}

async fn login(
    hub: web::Data<Arc<Hub>>,
    body: web::Json<LoginBody>,
) -> Result<HttpResponse, AppError> {
    let (rep, token) = flows::login_with_password(&hub, &body.username, &body.password).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "token": token,
        "rep": flows::rep_info(&hub, &rep),
    })))
}

async fn logout(
    hub: web::Data<Arc<Hub>>,
    req: HttpRequest,
    _: Authed,
) -> Result<HttpResponse, AppError> {
    let token = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or_default();
    flows::logout(&hub, token.trim()).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
struct KeyBody {
    valid_for_secs: u64,
    #[serde(default)]
    portal: Option<String>,
}

async fn generate_key(
    hub: web::Data<Arc<Hub>>,
    who: Authed,
    body: web::Json<KeyBody>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let (key, url, expires_at) =
        flows::generate_session_key(&hub, &who.0.id, body.valid_for_secs, body.portal).await?;
    Ok(HttpResponse::Created()
        .json(serde_json::json!({"key": key, "url": url, "expires_at": expires_at})))
}

async fn list_queues(hub: web::Data<Arc<Hub>>, who: Authed) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok().json(flows::list_queues(&hub, &who.0.id).await?))
}

#[derive(Deserialize)]
struct ViewQuery {
    #[serde(default)]
    sort: SortBy,
}

async fn view_queue(
    hub: web::Data<Arc<Hub>>,
    who: Authed,
    path: web::Path<String>,
    query: web::Query<ViewQuery>,
) -> Result<HttpResponse, AppError> {
    let queue: QueueId = path.into_inner().parse()?;
    // Admins see every queue; reps theirs.
    let viewer = (!who.0.permissions.admin).then_some(who.0.id.as_str());
    Ok(HttpResponse::Ok().json(flows::view_queue(&hub, viewer, &queue, query.sort).await?))
}

async fn session(
    hub: web::Data<Arc<Hub>>,
    who: Authed,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let viewer = (!who.0.permissions.admin).then_some(who.0.id.as_str());
    Ok(HttpResponse::Ok().json(flows::session_details(&hub, &path, viewer).await?))
}

async fn teams(hub: web::Data<Arc<Hub>>, _: Authed) -> HttpResponse {
    HttpResponse::Ok().json(flows::list_teams(&hub))
}

async fn reps(hub: web::Data<Arc<Hub>>, _: Authed) -> HttpResponse {
    HttpResponse::Ok().json(flows::list_reps(&hub))
}

async fn public_reps(hub: web::Data<Arc<Hub>>) -> HttpResponse {
    HttpResponse::Ok().json(flows::public_reps(&hub))
}

/// A session key's unique URL: tells the customer whose key it is and
/// whether it can still start a session (the portal page builds on this).
async fn portal_key(
    hub: web::Data<Arc<Hub>>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let (portal, key) = path.into_inner();
    let portal_name = hub
        .catalog()
        .portals
        .get(&portal)
        .map(|p| p.name.clone())
        .ok_or_else(|| AppError::not_found("portal", &portal))?;
    key_answer(&hub, Some((portal, portal_name)), &key).await
}

/// The URL of a key generated while no portal exists.
async fn plain_key(
    hub: web::Data<Arc<Hub>>,
    key: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    key_answer(&hub, None, &key).await
}

async fn key_answer(
    hub: &Hub,
    portal: Option<(String, String)>,
    key: &str,
) -> Result<HttpResponse, AppError> {
    let (rep, expires_at, usable, key_portal) = flows::key_status(hub, key).await?;
    // A key is only reachable through the portal it was made for.
    if key_portal.as_deref() != portal.as_ref().map(|(id, _)| id.as_str()) {
        return Err(AppError::new(
            ErrorCode::KeyUnknown,
            "that session key is not known on this portal",
        ));
    }
    let (portal, portal_name) = portal.unzip();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "portal": portal,
        "portal_name": portal_name,
        "key": crate::domain::keys::normalise(key),
        "rep": rep,
        "expires_at": expires_at,
        "usable": usable,
    })))
}
