//! /api/admin/...: the catalog, for reps with the admin permission.
//!
//! Every kind has the same three routes: `GET /api/admin/<kind>` lists,
//! `PUT /api/admin/<kind>/{id}` creates or replaces, `DELETE` removes.
use std::sync::Arc;

use actix_web::{web, HttpResponse};

use super::api::Authed;
use crate::actors::Hub;
use crate::admin::{self, Kind, RepInput, RepOutput};
use crate::domain::catalog::{HelpLink, IssueType, Portal, SupportButton, Team};
use crate::error::AppError;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/admin/reps", web::get().to(list_reps))
        .route("/api/admin/reps/{id}", web::put().to(put_rep))
        .route("/api/admin/reps/{id}", web::delete().to(delete_rep));
    cfg.route("/api/admin/rules", web::get().to(get_rules))
        .route("/api/admin/rules/{team}", web::put().to(put_rules))
        .route("/api/admin/rules/{team}", web::delete().to(delete_rules));
    entries::<Team>(cfg, "teams");
    entries::<IssueType>(cfg, "issue-types");
    entries::<Portal>(cfg, "portals");
    entries::<SupportButton>(cfg, "support-buttons");
    entries::<HelpLink>(cfg, "help-links");
}

fn require_admin(who: &Authed) -> Result<(), AppError> {
    if who.0.permissions.admin {
        Ok(())
    } else {
        Err(AppError::permission(
            "the admin API needs the admin permission",
        ))
    }
}

fn entries<T>(cfg: &mut web::ServiceConfig, path: &str)
where
    T: admin::HasId + crate::store::Record + Clone + Listed + 'static,
{
    cfg.route(&format!("/api/admin/{path}"), web::get().to(list::<T>))
        .route(
            &format!("/api/admin/{path}/{{id}}"),
            web::put().to(put::<T>),
        )
        .route(
            &format!("/api/admin/{path}/{{id}}"),
            web::delete().to(delete::<T>),
        );
}

/// How to list each kind from the catalog.
pub trait Listed: Sized {
    fn all(c: &crate::domain::catalog::Catalog) -> Vec<Self>;
}

macro_rules! listed {
    ($t:ty, $field:ident) => {
        impl Listed for $t {
            fn all(c: &crate::domain::catalog::Catalog) -> Vec<Self> {
                c.$field.values().cloned().collect()
            }
        }
    };
}
listed!(Team, teams);
listed!(IssueType, issue_types);
listed!(Portal, portals);
listed!(SupportButton, buttons);
listed!(HelpLink, help_links);

async fn list<T: Listed + serde::Serialize>(
    hub: web::Data<Arc<Hub>>,
    who: Authed,
) -> Result<HttpResponse, AppError> {
    require_admin(&who)?;
    Ok(HttpResponse::Ok().json(T::all(&hub.catalog())))
}

async fn put<T>(
    hub: web::Data<Arc<Hub>>,
    who: Authed,
    id: web::Path<String>,
    body: web::Json<T>,
) -> Result<HttpResponse, AppError>
where
    T: admin::HasId + crate::store::Record + Clone,
{
    require_admin(&who)?;
    let saved = admin::put_entry(&hub, T::CATALOG_KIND, &id, body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(saved))
}

async fn delete<T: admin::HasId>(
    hub: web::Data<Arc<Hub>>,
    who: Authed,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    require_admin(&who)?;
    admin::delete_entry(&hub, T::CATALOG_KIND, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn list_reps(hub: web::Data<Arc<Hub>>, who: Authed) -> Result<HttpResponse, AppError> {
    require_admin(&who)?;
    let reps: Vec<RepOutput> = hub.catalog().reps.values().map(RepOutput::from).collect();
    Ok(HttpResponse::Ok().json(reps))
}

async fn put_rep(
    hub: web::Data<Arc<Hub>>,
    who: Authed,
    id: web::Path<String>,
    body: web::Json<RepInput>,
) -> Result<HttpResponse, AppError> {
    require_admin(&who)?;
    Ok(HttpResponse::Ok().json(admin::put_rep(&hub, &id, body.into_inner()).await?))
}

/// The waiting-session rules in force: the site default and each team's.
async fn get_rules(hub: web::Data<Arc<Hub>>, who: Authed) -> Result<HttpResponse, AppError> {
    require_admin(&who)?;
    Ok(HttpResponse::Ok().json(hub.rules()))
}

async fn put_rules(
    hub: web::Data<Arc<Hub>>,
    who: Authed,
    team: web::Path<String>,
    body: web::Json<crate::domain::rules::QueueRules>,
) -> Result<HttpResponse, AppError> {
    require_admin(&who)?;
    let rules = body.into_inner();
    admin::put_rules(&hub, &team, Some(rules.clone())).await?;
    Ok(HttpResponse::Ok().json(rules))
}

async fn delete_rules(
    hub: web::Data<Arc<Hub>>,
    who: Authed,
    team: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    require_admin(&who)?;
    admin::put_rules(&hub, &team, None).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn delete_rep(
    hub: web::Data<Arc<Hub>>,
    who: Authed,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    require_admin(&who)?;
    admin::delete_entry(&hub, Kind::Rep, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}
