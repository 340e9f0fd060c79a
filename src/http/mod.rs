//! HTTP: the WebSocket endpoint, the REST API (JSON), health and metrics.
//! docs/api.md documents every route.
mod admin;
mod api;
mod ops;
pub mod server;
pub mod ws;

use actix_web::{http::StatusCode, web, HttpResponse, ResponseError};

use crate::error::{AppError, ErrorCode};

/// Registers every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(ws::PATH, web::get().to(ws::not_an_upgrade))
        .configure(ops::routes)
        .configure(api::routes)
        .configure(admin::routes)
        .default_service(web::to(no_route));
}

/// Unknown paths (and methods) get the API's error shape too.
async fn no_route(req: actix_web::HttpRequest) -> Result<HttpResponse, AppError> {
    Err(no_route_for(req.method(), req.path()))
}

fn no_route_for(method: &actix_web::http::Method, path: &str) -> AppError {
    AppError::new(ErrorCode::NotFound, format!("no route for {method} {path}"))
}

/// REST errors are JSON `{code, message}` with the code's HTTP status.
impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(serde_json::json!({
            "code": self.code,
            "message": self.message,
        }))
    }
}

/// Bad JSON bodies, paths and queries get the same error shape.
pub fn json_error(err: impl std::fmt::Display) -> actix_web::Error {
    AppError::new(ErrorCode::InvalidRequest, format!("bad request: {err}")).into()
}
