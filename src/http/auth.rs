//! Login and logout.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::client::ClientIp;
use super::extract::JsonBody;
use crate::error::{ApiError, ErrorBody};
use crate::hub::{Caller, Hub};
use crate::views::UserView;

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub login: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    pub token: String,
    pub user: UserView,
}

/// Exchange a login and password for a bearer token.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 400, body = ErrorBody),
              (status = 401, description = "Bad credentials (same answer whether the login exists or not)", body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 429, description = "Too many failed attempts", body = ErrorBody)))]
pub async fn login(ip: ClientIp, hub: web::Data<Hub>, JsonBody(body): JsonBody<LoginRequest>) -> Result<HttpResponse, ApiError> {
    let (token, user) = hub.login(&body.login, body.password, Some(&ip.0.to_string())).await?;
    Ok(HttpResponse::Ok().json(LoginResponse { token, user }))
}

/// Revoke the token used for this request.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "The token no longer works"), (status = 401, body = ErrorBody)))]
pub async fn logout(hub: web::Data<Hub>, caller: Caller) -> Result<HttpResponse, ApiError> {
    hub.logout(&caller).await?;
    Ok(HttpResponse::NoContent().finish())
}
