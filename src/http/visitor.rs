//! The visitor's side: open a session on a channel, read it, write, leave.
//! Only these endpoints accept a visitor token, and only for its own conversation.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::client::ClientIp;
use super::conversations::{created, MessageBody};
use super::extract::{JsonBody, VisitorCaller};
use crate::actors::conversation::Content;
use crate::domain::conversation::{Message, Poster};
use crate::domain::{ChannelId, ConversationId, ExpertiseId};
use crate::error::{ApiError, ErrorBody};
use crate::hub::{Hub, NewVisitor};
use crate::views::VisitorConversationView;

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct OpenSession {
    #[schema(schema_with = super::schema::name_or_null)]
    pub visitor_name: Option<String>,
    #[schema(schema_with = super::schema::language_or_null)]
    pub lang: Option<String>,
    #[schema(schema_with = super::schema::country_or_null)]
    pub country: Option<String>,
    /// Wanted expertise: routing prefers operators holding it.
    #[serde(default)]
    pub expertise_ids: Vec<ExpertiseId>,
    /// A stable anonymous id kept by the widget; same key = same visitor (routing rule 1).
    #[schema(schema_with = super::schema::visitor_key_or_null)]
    pub visitor_key: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionOpened {
    pub conversation_id: ConversationId,
    /// The visitor's bearer token for `/visitor/*` and `/ws/visitor`.
    pub visitor_token: String,
}

/// Open a visitor session; without a chatbot it is forwarded to an operator at once.
#[utoipa::path(post, path = "/api/v1/channels/{id}/sessions", tag = "visitor", params(("id" = u64, Path)), request_body = OpenSession,
    responses((status = 201, body = SessionOpened), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
              (status = 429, description = "Too many sessions from this address", body = ErrorBody)))]
pub async fn open(
    ip: ClientIp,
    hub: web::Data<Hub>,
    channel: web::Path<ChannelId>,
    JsonBody(body): JsonBody<OpenSession>,
) -> Result<HttpResponse, ApiError> {
    let new = NewVisitor {
        visitor_name: body.visitor_name,
        lang: body.lang,
        country: body.country,
        expertise_ids: body.expertise_ids.into_iter().collect(),
        visitor_key: body.visitor_key,
    };
    let (conversation_id, visitor_token) = hub.open_visitor_session(*channel, new, &ip.0.to_string()).await?;
    Ok(HttpResponse::Created().json(SessionOpened { conversation_id, visitor_token }))
}

/// The visitor's conversation, as they see it.
#[utoipa::path(get, path = "/api/v1/visitor/conversation", tag = "visitor", security(("visitor" = [])),
    responses((status = 200, body = VisitorConversationView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn conversation(hub: web::Data<Hub>, VisitorCaller(id): VisitorCaller) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(hub.visitor_view(id).await?))
}

/// The visitor writes.
#[utoipa::path(post, path = "/api/v1/visitor/messages", tag = "visitor", security(("visitor" = [])), request_body = MessageBody,
    responses((status = 201, body = Message), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, description = "Conversation closed", body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn post_message(
    hub: web::Data<Hub>,
    VisitorCaller(id): VisitorCaller,
    JsonBody(body): JsonBody<MessageBody>,
) -> Result<HttpResponse, ApiError> {
    let message = hub.post_message(id, Poster::Visitor, Content::Text(body.body), None).await?;
    Ok(created(message))
}

/// The visitor leaves: the conversation closes and operators are told.
#[utoipa::path(post, path = "/api/v1/visitor/leave", tag = "visitor", security(("visitor" = [])),
    responses((status = 200, body = VisitorConversationView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, description = "Already closed", body = ErrorBody)))]
pub async fn leave(hub: web::Data<Hub>, VisitorCaller(id): VisitorCaller) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(hub.visitor_leave(id).await?))
}
