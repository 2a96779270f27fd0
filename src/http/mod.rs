//! The HTTP API: `configure` is the single list of routes; each submodule
//! holds the handlers of one resource.

pub mod auth;
pub mod canned;
pub mod channels;
pub mod chatbots;
pub mod client;
pub mod conversations;
pub mod expertise;
pub mod extract;
pub mod history;
pub mod leads;
pub mod linger;
pub mod openapi;
pub mod ops;
pub mod reports;
pub mod schema;
pub mod ui;
pub mod users;
pub mod visitor;
pub mod webhooks;

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

/// Registers every route. Each path is one `resource`, so a known path with the wrong
/// method answers 405 with an `Allow` header rather than 404.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/healthz").get(ops::healthz))
        .service(web::resource("/metrics").get(ops::metrics))
        .service(web::resource("/api/openapi.json").get(openapi::document))
        .service(web::resource("/ws/agent").get(crate::ws::operator::agent))
        .service(web::resource("/ws/visitor").get(crate::ws::visitor::visitor))
        .configure(ui::configure)
        .service(
            web::scope("/api/v1")
                .service(web::resource("/auth/login").post(auth::login))
                .service(web::resource("/auth/logout").post(auth::logout))
                .service(web::resource("/users").get(users::list).post(users::create))
                .service(web::resource("/users/{id}").get(users::get).patch(users::update))
                .service(web::resource("/me").get(users::me))
                .service(web::resource("/me/preferences").patch(users::preferences))
                .service(web::resource("/me/presence").put(users::presence))
                .service(web::resource("/expertise").get(expertise::list).post(expertise::create))
                .service(web::resource("/expertise/{id}").get(expertise::get).patch(expertise::update).delete(expertise::delete))
                .service(web::resource("/channels").get(channels::list).post(channels::create))
                .service(web::resource("/channels/{id}").get(channels::get).patch(channels::update).delete(channels::delete))
                .service(web::resource("/chatbots").get(chatbots::list).post(chatbots::create))
                .service(web::resource("/chatbots/{id}").get(chatbots::get).patch(chatbots::update).delete(chatbots::delete))
                .service(web::resource("/channels/{id}/sessions").post(visitor::open))
                .service(web::resource("/visitor/conversation").get(visitor::conversation))
                .service(web::resource("/visitor/messages").post(visitor::post_message))
                .service(web::resource("/visitor/leave").post(visitor::leave))
                .service(web::resource("/visitor/page").post(visitor::page))
                .service(web::resource("/visitor/rating").post(visitor::rate))
                .service(web::resource("/visitor/transcript").post(visitor::transcript))
                .service(web::resource("/visitor/contact").put(visitor::contact))
                .service(web::resource("/conversations").get(conversations::list))
                .service(web::resource("/conversations/{id}").get(conversations::get))
                .service(web::resource("/conversations/{id}/messages").post(conversations::post_message))
                .service(web::resource("/conversations/{id}/notes").post(conversations::post_note))
                .service(web::resource("/conversations/{id}/status").put(conversations::set_status))
                .service(web::resource("/conversations/{id}/expertise").put(conversations::set_expertise))
                .service(web::resource("/conversations/{id}/join").post(conversations::join))
                .service(web::resource("/conversations/{id}/leave").post(conversations::leave))
                .service(web::resource("/conversations/{id}/invite_candidates").get(conversations::invite_candidates))
                .service(web::resource("/conversations/{id}/invite").post(conversations::invite))
                .service(web::resource("/conversations/{id}/transfer").post(conversations::transfer))
                .service(web::resource("/conversations/{id}/close").post(conversations::close))
                .service(web::resource("/conversations/{id}/transcript").get(history::transcript))
                .service(web::resource("/conversations/{id}/visitor_history").get(history::visitor_history))
                .service(web::resource("/history").get(history::search))
                .service(web::resource("/visitors/{visitor_key}").delete(history::erase_visitor))
                .service(web::resource("/direct").post(conversations::direct))
                .service(web::resource("/canned_responses").get(canned::list).post(canned::create))
                .service(web::resource("/canned_responses/{id}").get(canned::get).patch(canned::update).delete(canned::delete))
                .service(web::resource("/leads").get(leads::list))
                .service(web::resource("/leads/{conversation_id}/claim").post(leads::claim))
                .service(web::resource("/leads/{conversation_id}/done").post(leads::done))
                .service(web::resource("/webhooks").get(webhooks::list).post(webhooks::create))
                .service(web::resource("/webhooks/{id}").get(webhooks::get).patch(webhooks::update).delete(webhooks::delete))
                .service(web::resource("/webhooks/{id}/deliveries").get(webhooks::deliveries))
                .service(web::resource("/webhooks/{id}/test").post(webhooks::test))
                .service(web::resource("/admin/snapshot").post(ops::snapshot))
                .service(web::resource("/reports/routing").get(reports::routing)),
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
/// scope, a 400 from the WebSocket handshake) the same JSON body as ours. A
/// page made for people (`text/html`, e.g. `/demo` without a channel) stays one.
pub fn json_error_body<B: MessageBody + 'static>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let ours = res.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        let v = v.as_bytes();
        v.starts_with(b"application/json") || v.starts_with(b"text/html")
    });
    if ours || !(res.status().is_client_error() || res.status().is_server_error()) {
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
