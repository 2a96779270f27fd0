//! The HTTP API: `configure` is the single list of routes; each submodule
//! holds the handlers of one resource.

pub mod auth;
pub mod channels;
pub mod chatbots;
pub mod conversations;
pub mod expertise;
pub mod extract;
pub mod openapi;
pub mod ops;
pub mod reports;
pub mod ui;
pub mod users;
pub mod visitor;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Deserializer};

use crate::error::{ApiError, ErrorBody, ErrorDetail};

/// Deserialises a field that distinguishes "absent" (`None`) from "null" (`Some(None)`),
/// as PATCH bodies need; use with `#[serde(default, deserialize_with = "nullable")]`.
pub fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(de: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(de).map(Some)
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(ops::healthz))
        .route("/metrics", web::get().to(ops::metrics))
        .route("/api/openapi.json", web::get().to(openapi::document))
        .route("/ws/agent", web::get().to(crate::ws::operator::agent))
        .route("/ws/visitor", web::get().to(crate::ws::visitor::visitor))
        .configure(ui::configure)
        .service(
            web::scope("/api/v1")
                .route("/auth/login", web::post().to(auth::login))
                .route("/auth/logout", web::post().to(auth::logout))
                .service(web::resource("/users").get(users::list).post(users::create))
                .service(web::resource("/users/{id}").get(users::get).patch(users::update))
                .route("/me", web::get().to(users::me))
                .route("/me/preferences", web::patch().to(users::preferences))
                .route("/me/presence", web::put().to(users::presence))
                .service(web::resource("/expertise").get(expertise::list).post(expertise::create))
                .service(web::resource("/expertise/{id}").get(expertise::get).patch(expertise::update).delete(expertise::delete))
                .service(web::resource("/channels").get(channels::list).post(channels::create))
                .service(web::resource("/channels/{id}").get(channels::get).patch(channels::update).delete(channels::delete))
                .service(web::resource("/chatbots").get(chatbots::list).post(chatbots::create))
                .service(web::resource("/chatbots/{id}").get(chatbots::get).patch(chatbots::update).delete(chatbots::delete))
                .route("/channels/{id}/sessions", web::post().to(visitor::open))
                .route("/visitor/conversation", web::get().to(visitor::conversation))
                .route("/visitor/messages", web::post().to(visitor::post_message))
                .route("/visitor/leave", web::post().to(visitor::leave))
                .route("/conversations", web::get().to(conversations::list))
                .route("/conversations/{id}", web::get().to(conversations::get))
                .route("/conversations/{id}/messages", web::post().to(conversations::post_message))
                .route("/conversations/{id}/status", web::put().to(conversations::set_status))
                .route("/conversations/{id}/expertise", web::put().to(conversations::set_expertise))
                .route("/conversations/{id}/join", web::post().to(conversations::join))
                .route("/conversations/{id}/leave", web::post().to(conversations::leave))
                .route("/conversations/{id}/invite_candidates", web::get().to(conversations::invite_candidates))
                .route("/conversations/{id}/invite", web::post().to(conversations::invite))
                .route("/conversations/{id}/close", web::post().to(conversations::close))
                .route("/direct", web::post().to(conversations::direct))
                .route("/admin/snapshot", web::post().to(ops::snapshot))
                .route("/reports/routing", web::get().to(reports::routing)),
        )
        .default_service(web::to(not_found));
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("no such route".into()))
}

/// Path and query parameters that fail to parse (`/conversations/abc`) are malformed input.
pub fn path_error(err: actix_web::error::PathError, _: &actix_web::HttpRequest) -> actix_web::Error {
    ApiError::BadRequest(format!("invalid path parameter: {err}")).into()
}

pub fn query_error(err: actix_web::error::QueryPayloadError, _: &actix_web::HttpRequest) -> actix_web::Error {
    ApiError::BadRequest(format!("invalid query parameter: {err}")).into()
}

/// Gives every error response that actix produced itself (405, a 404 inside a
/// scope, a 400 from the WebSocket handshake) the same JSON body as ours.
pub fn json_error_body<B: MessageBody + 'static>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json || !(res.status().is_client_error() || res.status().is_server_error()) {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let message = status.canonical_reason().unwrap_or("error").to_owned();
    let (req, mut original) = res.into_parts();
    let allow = original.headers_mut().remove(header::ALLOW).next();
    let mut json: HttpResponse<BoxBody> = HttpResponse::build(status).json(ErrorBody { error: ErrorDetail { code, message } });
    if let Some(allow) = allow {
        json.headers_mut().insert(header::ALLOW, allow);
    }
    json.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(ErrorHandlerResponse::Response(ServiceResponse::new(req, json).map_into_right_body()))
}
