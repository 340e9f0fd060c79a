//! /healthz, /readyz, /metrics and the OpenAPI document.
use std::sync::Arc;

use actix_web::{web, HttpResponse};

use crate::actors::Hub;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics))
        .route("/api/openapi.json", web::get().to(openapi));
}

/// The OpenAPI 3 description of every REST route (docs/openapi.json;
/// tests/openapi.rs checks the server against it with schemathesis).
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI)
}

/// Alive: the process answers.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Ready: the store answers a read, and we are not shutting down.
async fn readyz(hub: web::Data<Arc<Hub>>) -> HttpResponse {
    if hub.shutdown.is_cancelled() {
        return HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"status": "shutting_down"}));
    }
    match hub.store.get("readyz/probe").await {
        Ok(_) => HttpResponse::Ok()
            .json(serde_json::json!({"status": "ready", "store": hub.store.backend()})),
        Err(e) => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"status": "store_unavailable", "message": e.to_string()})),
    }
}

async fn metrics(hub: web::Data<Arc<Hub>>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(hub.metrics.render())
}
