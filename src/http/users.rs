//! Operators: the admin's user management and each operator's own preferences.

use std::collections::BTreeSet;

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::{Admin, JsonBody};
use super::nullable;
use crate::auth::hash_password;
use crate::domain::directory::{NewOperator, OperatorPatch};
use crate::domain::operator::{Role, SettablePresence};
use crate::domain::text;
use crate::domain::{ExpertiseId, OperatorId};
use crate::error::{ApiError, ErrorBody};
use crate::hub::{Caller, Hub};
use crate::views::UserView;

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateUser {
    #[schema(schema_with = super::schema::login)]
    pub login: String,
    #[schema(schema_with = super::schema::name)]
    pub name: String,
    #[schema(schema_with = super::schema::password)]
    pub password: String,
    /// Defaults to `user`.
    #[serde(default = "default_role")]
    pub role: Role,
    #[serde(default)]
    #[schema(schema_with = super::schema::language_list)]
    pub languages: Vec<String>,
    #[schema(schema_with = super::schema::country_or_null)]
    pub country: Option<String>,
}

fn default_role() -> Role {
    Role::User
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct UpdateUser {
    #[schema(schema_with = super::schema::name_or_null)]
    pub name: Option<String>,
    #[schema(schema_with = super::schema::password_or_null)]
    pub password: Option<String>,
    pub role: Option<Role>,
    #[schema(schema_with = super::schema::language_list_or_null)]
    pub languages: Option<Vec<String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = super::schema::country_or_null)]
    pub country: Option<Option<String>>,
    pub expertise_ids: Option<Vec<ExpertiseId>>,
    /// `false` deactivates the user: no login, tokens revoked, sockets closed,
    /// open livechats routed again; `true` reactivates.
    pub active: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdatePreferences {
    pub expertise_ids: Option<Vec<ExpertiseId>>,
    #[schema(schema_with = super::schema::language_list_or_null)]
    pub languages: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = super::schema::country_or_null)]
    pub country: Option<Option<String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PresenceRequest {
    pub presence: SettablePresence,
}

fn check_login(login: &str) -> Result<String, ApiError> {
    if login.chars().any(char::is_whitespace) {
        return Err(ApiError::BadRequest("`login` must not contain spaces".into()));
    }
    Ok(text::bounded("login", login, text::MAX_LOGIN_CHARS)?)
}

async fn hash(password: String) -> Result<String, ApiError> {
    Ok(web::block(move || hash_password(&password)).await.map_err(|e| ApiError::Internal(e.into()))??)
}

/// Validates a patch's fields and hashes its password, outside the directory lock.
async fn operator_patch(body: UpdateUser) -> Result<OperatorPatch, ApiError> {
    Ok(OperatorPatch {
        name: body.name.as_deref().map(|n| text::name("name", n)).transpose()?,
        password_hash: match body.password {
            Some(password) => Some(hash(password).await?),
            None => None,
        },
        role: body.role,
        languages: body.languages.as_deref().map(text::languages).transpose()?,
        country: body.country.map(|c| c.as_deref().map(text::country).transpose()).transpose()?,
        expertise_ids: body.expertise_ids.map(|ids| ids.into_iter().collect::<BTreeSet<_>>()),
        active: body.active,
    })
}

/// Applies a validated patch; its consequences (stars, queues, tokens, sockets) follow in the Hub.
async fn apply_patch(hub: &Hub, id: OperatorId, patch: OperatorPatch) -> Result<UserView, ApiError> {
    hub.change_directory(|d| Ok(d.update_operator(id, patch).map(drop)?)).await?;
    hub.user(id).await
}

/// Every operator, with presence and load.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = Vec<UserView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(hub: web::Data<Hub>, _caller: Caller) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(hub.users(None).await?))
}

/// Create an operator (admin).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", security(("bearer" = [])), request_body = CreateUser,
    responses((status = 201, body = UserView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, description = "Login taken", body = ErrorBody)))]
pub async fn create(hub: web::Data<Hub>, _admin: Admin, JsonBody(body): JsonBody<CreateUser>) -> Result<HttpResponse, ApiError> {
    let login = check_login(&body.login)?;
    let name = text::name("name", &body.name)?;
    let languages = text::languages(&body.languages)?;
    let country = body.country.as_deref().map(text::country).transpose()?;
    let password_hash = hash(body.password).await?;
    let new = NewOperator { login, name, password_hash, role: body.role, languages, country };
    let id = hub.change_directory(|d| Ok(d.create_operator(new)?.id)).await?;
    Ok(HttpResponse::Created().json(hub.user(id).await?))
}

/// One operator.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])), params(("id" = u64, Path)),
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(hub: web::Data<Hub>, _caller: Caller, id: web::Path<OperatorId>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(hub.user(*id).await?))
}

/// Change an operator (admin); `expertise_ids` replaces their expertise.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])), params(("id" = u64, Path)), request_body = UpdateUser,
    responses((status = 200, body = UserView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "Would remove the last admin", body = ErrorBody)))]
pub async fn update(
    hub: web::Data<Hub>,
    _admin: Admin,
    id: web::Path<OperatorId>,
    JsonBody(body): JsonBody<UpdateUser>,
) -> Result<HttpResponse, ApiError> {
    let patch = operator_patch(body).await?;
    Ok(HttpResponse::Ok().json(apply_patch(&hub, *id, patch).await?))
}

/// The caller.
#[utoipa::path(get, path = "/api/v1/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn me(hub: web::Data<Hub>, caller: Caller) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(hub.user(caller.id).await?))
}

/// The caller sets their own expertise, languages and country (any role).
#[utoipa::path(patch, path = "/api/v1/me/preferences", tag = "users", security(("bearer" = [])), request_body = UpdatePreferences,
    responses((status = 200, body = UserView), (status = 400, description = "Invalid field or unknown expertise id", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn preferences(
    hub: web::Data<Hub>,
    caller: Caller,
    JsonBody(body): JsonBody<UpdatePreferences>,
) -> Result<HttpResponse, ApiError> {
    let patch = operator_patch(UpdateUser {
        languages: body.languages,
        country: body.country,
        expertise_ids: body.expertise_ids,
        ..Default::default()
    })
    .await?;
    Ok(HttpResponse::Ok().json(apply_patch(&hub, caller.id, patch).await?))
}

/// Switch between `online` and `away` (needs an open agent WebSocket).
#[utoipa::path(put, path = "/api/v1/me/presence", tag = "users", security(("bearer" = [])), request_body = PresenceRequest,
    responses((status = 200, body = UserView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, description = "No open agent connection", body = ErrorBody)))]
pub async fn presence(hub: web::Data<Hub>, caller: Caller, JsonBody(body): JsonBody<PresenceRequest>) -> Result<HttpResponse, ApiError> {
    // The operator actor tells the router before answering, so the read below sees the change.
    hub.set_presence(caller.id, body.presence.into()).await?;
    Ok(HttpResponse::Ok().json(hub.user(caller.id).await?))
}
