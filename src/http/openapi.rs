//! `GET /api/openapi.json`: the OpenAPI 3 document, generated from the handlers'
//! annotations so it cannot drift from the code.

use actix_web::HttpResponse;
use utoipa::openapi::path::Operation;
use utoipa::openapi::request_body::RequestBody;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Components, ContentBuilder, Ref, RefOr, Required, ResponseBuilder, Schema};
use utoipa::{Modify, OpenApi};

use super::{auth, canned, channels, chatbots, conversations, expertise, history, leads, ops, reports, users, visitor, webhooks};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        components.add_security_scheme("visitor", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// Rules that hold for every operation, stated once here instead of in 45 annotations.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_ref() else { return };
        let components = components.clone();
        for item in openapi.paths.paths.values_mut() {
            let ops = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for op in ops.into_iter().flatten() {
                document_bad_request(op);
                if let Some(body) = op.request_body.as_mut() {
                    mark_optional_when_empty_is_valid(body, &components);
                }
            }
        }
    }
}

/// Any operation answers 400 to a path id that is not a number, a bad query or malformed JSON.
fn document_bad_request(op: &mut Operation) {
    op.responses.responses.entry("400".into()).or_insert_with(|| {
        let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
        ResponseBuilder::new().description("Malformed request").content("application/json", content).build().into()
    });
}

/// An empty body reads as `{}` (see `JsonBody`), so a body whose fields are all
/// optional may be left out; the document should say so.
fn mark_optional_when_empty_is_valid(body: &mut RequestBody, components: &Components) {
    let all_optional = body.content.values().all(|content| {
        let schema = match &content.schema {
            Some(RefOr::Ref(r)) => r.ref_location.rsplit('/').next().and_then(|name| components.schemas.get(name)),
            Some(inline) => Some(inline),
            None => None,
        };
        matches!(schema, Some(RefOr::T(Schema::Object(object))) if object.required.is_empty())
    });
    if all_optional {
        body.required = Some(Required::False);
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Switchboard", description = "Live chat for small support teams, with expertise-based routing."),
    modifiers(&BearerAuth, &Conventions),
    paths(
        ops::healthz, ops::metrics, ops::snapshot, reports::routing,
        crate::ws::operator::agent, crate::ws::visitor::visitor,
        auth::login, auth::logout,
        users::list, users::create, users::get, users::update, users::me, users::preferences, users::presence,
        expertise::list, expertise::get, expertise::create, expertise::update, expertise::delete,
        channels::list, channels::get, channels::create, channels::update, channels::delete,
        chatbots::list, chatbots::get, chatbots::create, chatbots::update, chatbots::delete,
        visitor::open, visitor::conversation, visitor::post_message, visitor::leave, visitor::page, visitor::rate, visitor::transcript, visitor::contact,
        conversations::list, conversations::get, conversations::post_message, conversations::post_note, conversations::set_status,
        conversations::set_expertise, conversations::join, conversations::leave, conversations::invite_candidates,
        conversations::invite, conversations::transfer, conversations::close, conversations::direct,
        history::search, history::transcript, history::visitor_history, history::erase_visitor,
        canned::list, canned::get, canned::create, canned::update, canned::delete,
        leads::list, leads::claim, leads::done,
        webhooks::list, webhooks::get, webhooks::create, webhooks::update, webhooks::delete, webhooks::deliveries, webhooks::test,
    )
)]
pub struct ApiDoc;

/// The document.
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
