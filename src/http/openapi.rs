//! `GET /api/openapi.json`: the OpenAPI 3 document, generated from the handlers'
//! annotations so it cannot drift from the code.

use actix_web::HttpResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{auth, channels, chatbots, conversations, expertise, ops, reports, users, visitor};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        components.add_security_scheme("visitor", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Switchboard", description = "Live chat for small support teams, with expertise-based routing."),
    modifiers(&BearerAuth),
    paths(
        ops::healthz, ops::metrics, ops::snapshot, reports::routing,
        crate::ws::operator::agent, crate::ws::visitor::visitor,
        auth::login, auth::logout,
        users::list, users::create, users::get, users::update, users::me, users::preferences, users::presence,
        expertise::list, expertise::get, expertise::create, expertise::update, expertise::delete,
        channels::list, channels::get, channels::create, channels::update, channels::delete,
        chatbots::list, chatbots::get, chatbots::create, chatbots::update, chatbots::delete,
        visitor::open, visitor::conversation, visitor::post_message, visitor::leave,
        conversations::list, conversations::get, conversations::post_message, conversations::set_status,
        conversations::set_expertise, conversations::join, conversations::leave, conversations::invite_candidates,
        conversations::invite, conversations::close, conversations::direct,
    )
)]
pub struct ApiDoc;

/// The document.
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
