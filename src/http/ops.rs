//! Operations endpoints: health and metrics.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::Admin;
use crate::error::{ApiError, ErrorBody};
use crate::hub::Hub;
use crate::persist::SnapshotStats;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` while the server answers.
    pub status: &'static str,
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// Write a snapshot now (admin); answers once it is durably on disk.
#[utoipa::path(post, path = "/api/v1/admin/snapshot", tag = "ops", security(("bearer" = [])),
    responses((status = 200, body = SnapshotStats), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 503, description = "Storage failed", body = ErrorBody)))]
pub async fn snapshot(hub: web::Data<Hub>, _admin: Admin) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(hub.snapshot().await?))
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text", content_type = "text/plain")))]
pub async fn metrics(hub: web::Data<Hub>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(hub.metrics_text())
}
