//! The visitor's side: open a session on a channel, read it, write, leave.
//! Only these endpoints accept a visitor token, and only for its own conversation.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::client::ClientIp;
use super::conversations::{created, MessageBody};
use super::extract::{JsonBody, VisitorCaller};
use crate::actors::conversation::Content;
use crate::domain::conversation::{Message, Poster, Rating};
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
    #[schema(schema_with = super::schema::email_or_null)]
    pub email: Option<String>,
    /// The page the widget was opened on.
    #[schema(schema_with = super::schema::url_or_null)]
    pub page_url: Option<String>,
    #[schema(schema_with = super::schema::title_or_null)]
    pub page_title: Option<String>,
    #[schema(schema_with = super::schema::url_or_null)]
    pub referrer: Option<String>,
    /// IANA time zone name, e.g. `Europe/Brussels`.
    #[schema(schema_with = super::schema::timezone_or_null)]
    pub timezone: Option<String>,
}

/// The visitor's satisfaction with an ended conversation.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RatingBody {
    /// 1 unhappy, 3 neutral, 5 happy.
    #[schema(schema_with = super::schema::score)]
    pub score: u8,
    #[schema(max_length = 1000)]
    pub comment: Option<String>,
}

/// Where the visitor wants a copy of the conversation.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TranscriptBody {
    #[schema(schema_with = super::schema::email)]
    pub email: String,
}

/// How to reach the visitor.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ContactBody {
    #[schema(schema_with = super::schema::email)]
    pub email: String,
}

/// The transcript went to the outbox: it is sent even if the server restarts first.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Queued {
    /// Always `queued`.
    pub status: &'static str,
}

/// A page the visitor opened.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PageBody {
    #[schema(schema_with = super::schema::url)]
    pub url: String,
    #[serde(default)]
    #[schema(max_length = 200)]
    pub title: String,
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
    req: HttpRequest,
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
        email: body.email,
        page_url: body.page_url,
        page_title: body.page_title,
        referrer: body.referrer,
        timezone: body.timezone,
        user_agent: req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned),
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
    let message = hub.post_message(id, Poster::Visitor, Content::Text(body.body), None, None).await?;
    Ok(created(message))
}

/// The visitor opened a page of the site: operators see it in the visitor's context (the last 20 are kept).
#[utoipa::path(post, path = "/api/v1/visitor/page", tag = "visitor", security(("visitor" = [])), request_body = PageBody,
    responses((status = 204, description = "Recorded"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, description = "Conversation closed", body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn page(
    hub: web::Data<Hub>,
    VisitorCaller(id): VisitorCaller,
    JsonBody(body): JsonBody<PageBody>,
) -> Result<HttpResponse, ApiError> {
    hub.record_page(id, &body.url, &body.title).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Rate the ended conversation, once: its members are told, the routing report counts it.
#[utoipa::path(post, path = "/api/v1/visitor/rating", tag = "visitor", security(("visitor" = [])), request_body = RatingBody,
    responses((status = 201, body = Rating), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, description = "Still open, or already rated", body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn rate(
    hub: web::Data<Hub>,
    VisitorCaller(id): VisitorCaller,
    JsonBody(body): JsonBody<RatingBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Created().json(hub.rate(id, body.score, body.comment.as_deref()).await?))
}

/// Leaves an e-mail address to be contacted: operators see it in the visitor's
/// context, and a lead carries it if nobody answers.
#[utoipa::path(put, path = "/api/v1/visitor/contact", tag = "visitor", security(("visitor" = [])), request_body = ContactBody,
    responses((status = 204, description = "Recorded"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, description = "Conversation closed", body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn contact(
    hub: web::Data<Hub>,
    VisitorCaller(id): VisitorCaller,
    JsonBody(body): JsonBody<ContactBody>,
) -> Result<HttpResponse, ApiError> {
    hub.leave_contact(id, &body.email).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// E-mails the conversation so far (what the visitor saw) to `email`.
#[utoipa::path(post, path = "/api/v1/visitor/transcript", tag = "visitor", security(("visitor" = [])), request_body = TranscriptBody,
    responses((status = 202, body = Queued), (status = 400, description = "`email` is not an e-mail address", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, description = "This server sends no e-mail (started without `--smtp-url`)", body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn transcript(
    hub: web::Data<Hub>,
    VisitorCaller(id): VisitorCaller,
    JsonBody(body): JsonBody<TranscriptBody>,
) -> Result<HttpResponse, ApiError> {
    hub.mail_transcript(id, &body.email).await?;
    Ok(HttpResponse::Accepted().json(Queued { status: "queued" }))
}

/// The visitor leaves: the conversation closes and operators are told.
#[utoipa::path(post, path = "/api/v1/visitor/leave", tag = "visitor", security(("visitor" = [])),
    responses((status = 200, body = VisitorConversationView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, description = "Already closed", body = ErrorBody)))]
pub async fn leave(hub: web::Data<Hub>, VisitorCaller(id): VisitorCaller) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(hub.visitor_leave(id).await?))
}
