//! Canned responses: every operator reads the shared ones and keeps their own;
//! only admins share (see `domain::canned`).

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::JsonBody;
use crate::domain::canned::{CannedPatch, Editor};
use crate::domain::operator::Role;
use crate::domain::CannedId;
use crate::error::{ApiError, ErrorBody};
use crate::hub::{Caller, Hub};
use crate::views::CannedView;

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateCanned {
    /// Typed after `/` in the console: 1 to 32 of `a-z 0-9 _ -`.
    #[schema(schema_with = super::schema::shortcut)]
    pub shortcut: String,
    #[schema(schema_with = super::schema::message_body)]
    pub body: String,
    /// Seen by every operator; admins only. Default: the caller's own.
    #[serde(default)]
    pub shared: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateCanned {
    #[schema(schema_with = super::schema::shortcut_or_null)]
    pub shortcut: Option<String>,
    #[schema(schema_with = super::schema::message_body_or_null)]
    pub body: Option<String>,
    /// `true` shares it (admins only); `false` makes a shared one the admin's own.
    pub shared: Option<bool>,
}

fn editor(caller: &Caller) -> Editor {
    Editor { id: caller.id, is_admin: caller.role == Role::Admin }
}

fn view(hub: &Hub, id: CannedId, caller: &Caller) -> Result<CannedView, ApiError> {
    Ok(CannedView::from(hub.directory().canned(id, editor(caller))?))
}

/// The shared canned responses and the caller's own, by shortcut (an own one first when both have it).
#[utoipa::path(get, path = "/api/v1/canned_responses", tag = "canned responses", security(("bearer" = [])),
    responses((status = 200, body = Vec<CannedView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(hub: web::Data<Hub>, caller: Caller) -> HttpResponse {
    let me = editor(&caller);
    let mut all: Vec<CannedView> = hub.directory().canned_responses().filter(|c| c.visible_to(me)).map(CannedView::from).collect();
    all.sort_by(|a, b| (&a.shortcut, a.shared, a.id).cmp(&(&b.shortcut, b.shared, b.id)));
    HttpResponse::Ok().json(all)
}

/// One canned response the caller may see or change.
#[utoipa::path(get, path = "/api/v1/canned_responses/{id}", tag = "canned responses", security(("bearer" = [])), params(("id" = u64, Path)),
    responses((status = 200, body = CannedView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(hub: web::Data<Hub>, caller: Caller, id: web::Path<CannedId>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(view(&hub, *id, &caller)?))
}

/// Save a reply: the caller's own, or shared with every operator (admins).
#[utoipa::path(post, path = "/api/v1/canned_responses", tag = "canned responses", security(("bearer" = [])), request_body = CreateCanned,
    responses((status = 201, body = CannedView), (status = 400, description = "Invalid shortcut or blank body", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, description = "Sharing needs an admin", body = ErrorBody),
              (status = 409, description = "Shortcut taken in the same set (shared, or the caller's own)", body = ErrorBody)))]
pub async fn create(hub: web::Data<Hub>, caller: Caller, JsonBody(body): JsonBody<CreateCanned>) -> Result<HttpResponse, ApiError> {
    let max_chars = hub.limits().max_message_chars;
    let shared = body.shared.unwrap_or(false);
    let id = hub.change_directory(|d| Ok(d.create_canned(editor(&caller), &body.shortcut, &body.body, shared, max_chars)?)).await?;
    Ok(HttpResponse::Created().json(view(&hub, id, &caller)?))
}

/// Change a canned response (its owner, or an admin).
#[utoipa::path(patch, path = "/api/v1/canned_responses/{id}", tag = "canned responses", security(("bearer" = [])), params(("id" = u64, Path)),
    request_body = UpdateCanned,
    responses((status = 200, body = CannedView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update(
    hub: web::Data<Hub>,
    caller: Caller,
    id: web::Path<CannedId>,
    JsonBody(body): JsonBody<UpdateCanned>,
) -> Result<HttpResponse, ApiError> {
    let max_chars = hub.limits().max_message_chars;
    let patch = CannedPatch { shortcut: body.shortcut, body: body.body, shared: body.shared };
    hub.change_directory(|d| Ok(d.update_canned(*id, editor(&caller), patch, max_chars)?)).await?;
    Ok(HttpResponse::Ok().json(view(&hub, *id, &caller)?))
}

/// Delete a canned response (its owner, or an admin).
#[utoipa::path(delete, path = "/api/v1/canned_responses/{id}", tag = "canned responses", security(("bearer" = [])), params(("id" = u64, Path)),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(hub: web::Data<Hub>, caller: Caller, id: web::Path<CannedId>) -> Result<HttpResponse, ApiError> {
    hub.change_directory(|d| Ok(d.delete_canned(*id, editor(&caller))?)).await?;
    Ok(HttpResponse::NoContent().finish())
}
