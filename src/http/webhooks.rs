//! Webhooks (admins): subscribe a URL to events, see its recent deliveries, send a test event.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Admin, JsonBody};
use crate::archive::Attempt;
use crate::domain::webhook::{Webhook, WebhookEvent};
use crate::error::{ApiError, ErrorBody};
use crate::hub::{Hub, WebhookChange};

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateWebhook {
    /// `http://` or `https://`; private and loopback addresses only with `--webhook-allow-private`.
    #[schema(schema_with = super::schema::webhook_url)]
    pub url: String,
    /// At least one.
    #[schema(min_items = 1)]
    pub events: Vec<WebhookEvent>,
    /// Signs each delivery (`X-Switchboard-Signature`); a random one when absent.
    #[schema(min_length = 1, max_length = 256)]
    pub secret: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateWebhook {
    #[schema(schema_with = super::schema::webhook_url)]
    pub url: Option<String>,
    #[schema(min_items = 1)]
    pub events: Option<Vec<WebhookEvent>>,
    #[schema(min_length = 1, max_length = 256)]
    pub secret: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    pub id: u64,
    pub url: String,
    pub events: Vec<WebhookEvent>,
    pub secret: String,
}

impl From<Webhook> for WebhookView {
    fn from(h: Webhook) -> WebhookView {
        WebhookView { id: h.id, url: h.url, events: h.events.into_iter().collect(), secret: h.secret }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TestQueued {
    /// Always `queued`: a `webhook.test` event goes out like any other.
    pub status: &'static str,
}

/// Every webhook.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    responses((status = 200, body = Vec<WebhookView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(hub: web::Data<Hub>, _admin: Admin) -> HttpResponse {
    HttpResponse::Ok().json(hub.webhooks().into_iter().map(WebhookView::from).collect::<Vec<_>>())
}

/// One webhook.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])), params(("id" = u64, Path)),
    responses((status = 200, body = WebhookView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(hub: web::Data<Hub>, _admin: Admin, id: web::Path<u64>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(WebhookView::from(hub.webhook(*id)?)))
}

/// Subscribe a URL to events.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", security(("bearer" = [])), request_body = CreateWebhook,
    responses((status = 201, body = WebhookView), (status = 400, description = "A URL that is not http(s), names no host, or reaches a private address", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create(hub: web::Data<Hub>, _admin: Admin, JsonBody(body): JsonBody<CreateWebhook>) -> Result<HttpResponse, ApiError> {
    let change = WebhookChange { url: Some(body.url), events: Some(body.events), secret: body.secret };
    Ok(HttpResponse::Created().json(WebhookView::from(hub.save_webhook(None, change).await?)))
}

/// Change a webhook's URL, events or secret.
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])), params(("id" = u64, Path)), request_body = UpdateWebhook,
    responses((status = 200, body = WebhookView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn update(
    hub: web::Data<Hub>,
    _admin: Admin,
    id: web::Path<u64>,
    JsonBody(body): JsonBody<UpdateWebhook>,
) -> Result<HttpResponse, ApiError> {
    let change = WebhookChange { url: body.url, events: body.events, secret: body.secret };
    Ok(HttpResponse::Ok().json(WebhookView::from(hub.save_webhook(Some(*id), change).await?)))
}

/// Delete a webhook and what it had pending.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])), params(("id" = u64, Path)),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(hub: web::Data<Hub>, _admin: Admin, id: web::Path<u64>) -> Result<HttpResponse, ApiError> {
    hub.delete_webhook(*id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The last 100 delivery attempts, newest first.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks", security(("bearer" = [])), params(("id" = u64, Path)),
    responses((status = 200, body = Vec<Attempt>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn deliveries(hub: web::Data<Hub>, _admin: Admin, id: web::Path<u64>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(hub.webhook_attempts(*id).await?))
}

/// Queue a `webhook.test` event for this webhook.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", tag = "webhooks", security(("bearer" = [])), params(("id" = u64, Path)),
    responses((status = 202, body = TestQueued), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn test(hub: web::Data<Hub>, _admin: Admin, id: web::Path<u64>) -> Result<HttpResponse, ApiError> {
    hub.test_webhook(*id)?;
    Ok(HttpResponse::Accepted().json(TestQueued { status: "queued" }))
}
