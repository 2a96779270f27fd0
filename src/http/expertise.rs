//! Expertise: readable by every operator, changed by admins only.

use std::collections::BTreeSet;

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::{Admin, JsonBody};
use crate::domain::{ExpertiseId, OperatorId};
use crate::error::{ApiError, ErrorBody};
use crate::hub::{Caller, Hub};
use crate::views::ExpertiseView;

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateExpertise {
    #[schema(schema_with = super::schema::name)]
    pub name: String,
    #[serde(default)]
    pub operator_ids: Vec<OperatorId>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateExpertise {
    #[schema(schema_with = super::schema::name_or_null)]
    pub name: Option<String>,
    /// Replaces the holders.
    pub operator_ids: Option<Vec<OperatorId>>,
}

fn view(hub: &Hub, id: ExpertiseId) -> Result<ExpertiseView, ApiError> {
    let directory = hub.directory();
    let expertise = directory.expertise_by_id(id).ok_or_else(|| ApiError::not_found("expertise"))?;
    Ok(ExpertiseView::new(expertise, &directory))
}

/// Every expertise with the operators holding it.
#[utoipa::path(get, path = "/api/v1/expertise", tag = "expertise", security(("bearer" = [])),
    responses((status = 200, body = Vec<ExpertiseView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(hub: web::Data<Hub>, _caller: Caller) -> HttpResponse {
    let directory = hub.directory();
    let all: Vec<ExpertiseView> = directory.expertise().map(|e| ExpertiseView::new(e, &directory)).collect();
    HttpResponse::Ok().json(all)
}

/// One expertise.
#[utoipa::path(get, path = "/api/v1/expertise/{id}", tag = "expertise", security(("bearer" = [])), params(("id" = u64, Path)),
    responses((status = 200, body = ExpertiseView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(hub: web::Data<Hub>, _caller: Caller, id: web::Path<ExpertiseId>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(view(&hub, *id)?))
}

/// Create an expertise (admin).
#[utoipa::path(post, path = "/api/v1/expertise", tag = "expertise", security(("bearer" = [])), request_body = CreateExpertise,
    responses((status = 201, body = ExpertiseView), (status = 400, description = "Empty name or unknown operator id", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, description = "Name exists (case-insensitive)", body = ErrorBody)))]
pub async fn create(hub: web::Data<Hub>, _admin: Admin, JsonBody(body): JsonBody<CreateExpertise>) -> Result<HttpResponse, ApiError> {
    let holders: BTreeSet<OperatorId> = body.operator_ids.into_iter().collect();
    let id = hub.change_directory(|d| Ok(d.create_expertise(&body.name, &holders)?)).await?;
    Ok(HttpResponse::Created().json(view(&hub, id)?))
}

/// Rename an expertise or replace its holders (admin).
#[utoipa::path(patch, path = "/api/v1/expertise/{id}", tag = "expertise", security(("bearer" = [])), params(("id" = u64, Path)), request_body = UpdateExpertise,
    responses((status = 200, body = ExpertiseView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update(
    hub: web::Data<Hub>,
    _admin: Admin,
    id: web::Path<ExpertiseId>,
    JsonBody(body): JsonBody<UpdateExpertise>,
) -> Result<HttpResponse, ApiError> {
    let holders: Option<BTreeSet<OperatorId>> = body.operator_ids.map(|ids| ids.into_iter().collect());
    hub.change_directory(|d| Ok(d.update_expertise(*id, body.name.as_deref(), holders.as_ref())?)).await?;
    Ok(HttpResponse::Ok().json(view(&hub, *id)?))
}

/// Delete an expertise (admin): it disappears from every operator, queued visitor and conversation.
#[utoipa::path(delete, path = "/api/v1/expertise/{id}", tag = "expertise", security(("bearer" = [])), params(("id" = u64, Path)),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(hub: web::Data<Hub>, _admin: Admin, id: web::Path<ExpertiseId>) -> Result<HttpResponse, ApiError> {
    hub.change_directory(|d| Ok(d.delete_expertise(*id).map(drop)?)).await?;
    Ok(HttpResponse::NoContent().finish())
}
