//! Conversations as operators see them: lists, the Looking-for-help board,
//! messages, status, expertise, join, invite, close, direct conversations.

use std::collections::BTreeSet;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::AnyOfBuilder;
use utoipa::openapi::{RefOr, Schema};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use super::extract::JsonBody;
use crate::actors::conversation::Content;
use crate::domain::conversation::{Kind, Message, Poster, RequestedStatus, Status};
use crate::domain::operator::Presence;
use crate::domain::{ConversationId, ExpertiseId, OperatorId};
use crate::error::{ApiError, ErrorBody};
use crate::hub::{Caller, Hub};
use crate::views::{BoardEntry, ConversationSummary, ConversationView, ExpertiseRef, InviteCandidate};

#[derive(Debug, Deserialize, ToSchema)]
pub struct MessageBody {
    #[schema(schema_with = super::schema::message_body)]
    pub body: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct StatusBody {
    pub status: RequestedStatus,
    /// Why help is needed (`need_help` only; at most 200 characters, shown on the Looking-for-help board).
    #[schema(max_length = 200)]
    pub note: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ExpertiseBody {
    pub expertise_ids: Vec<ExpertiseId>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct InviteBody {
    #[schema(min_items = 1)]
    pub user_ids: Vec<OperatorId>,
}

/// Whom to hand over to: a named operator, or whoever the router picks for
/// `expertise_ids` (or, without them, the conversation's own expertise).
#[derive(Debug, Deserialize, ToSchema)]
pub struct TransferBody {
    pub user_id: Option<OperatorId>,
    /// Also becomes the conversation's wanted expertise.
    pub expertise_ids: Option<Vec<ExpertiseId>>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DirectBody {
    pub user_id: OperatorId,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// `need_help` gives the Looking-for-help board; another status filters the caller's conversations.
    pub status: Option<Status>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct CandidatesQuery {
    /// Case-insensitive part of a name or login.
    pub q: Option<String>,
}

/// Either list `GET /conversations` can answer.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ConversationList {
    Board(Vec<BoardEntry>),
    Mine(Vec<ConversationSummary>),
}

/// Written by hand because the derive says `oneOf`, and an empty list matches
/// both shapes: `anyOf` is what the body really promises.
impl utoipa::PartialSchema for ConversationList {
    fn schema() -> RefOr<Schema> {
        AnyOfBuilder::new()
            .item(Vec::<BoardEntry>::schema())
            .item(Vec::<ConversationSummary>::schema())
            .description(Some("The Looking-for-help board (`?status=need_help`), or the caller's conversations."))
            .into()
    }
}

impl ToSchema for ConversationList {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((BoardEntry::name().into(), BoardEntry::schema()));
        schemas.push((ConversationSummary::name().into(), ConversationSummary::schema()));
        BoardEntry::schemas(schemas);
        ConversationSummary::schemas(schemas);
    }
}

/// Most invite candidates returned: enough to pick from, small enough to render.
const MAX_INVITE_CANDIDATES: usize = 30;

/// The Looking-for-help board (`?status=need_help`), or the caller's conversations.
#[utoipa::path(get, path = "/api/v1/conversations", tag = "conversations", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, body = ConversationList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(hub: web::Data<Hub>, caller: Caller, query: web::Query<ListQuery>) -> Result<HttpResponse, ApiError> {
    let list = match query.status {
        Some(Status::NeedHelp) => ConversationList::Board(hub.board(caller.id).await?),
        Some(status) => {
            let mut mine = hub.member_conversations(caller.id).await?;
            mine.retain(|c| c.status == status);
            ConversationList::Mine(mine)
        }
        None => ConversationList::Mine(hub.member_conversations(caller.id).await?),
    };
    Ok(HttpResponse::Ok().json(list))
}

/// A conversation with its transcript: members and admins, or anyone while it looks for help.
#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "conversations", security(("bearer" = [])), params(("id" = u64, Path)),
    responses((status = 200, body = ConversationView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(hub: web::Data<Hub>, caller: Caller, id: web::Path<ConversationId>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(hub.read(*id, &caller).await?))
}

/// A member writes.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages", tag = "conversations", security(("bearer" = [])), params(("id" = u64, Path)),
    request_body = MessageBody,
    responses((status = 201, body = Message), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "Conversation closed", body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn post_message(
    hub: web::Data<Hub>,
    caller: Caller,
    id: web::Path<ConversationId>,
    JsonBody(body): JsonBody<MessageBody>,
) -> Result<HttpResponse, ApiError> {
    let message = hub.post_message(*id, Poster::Operator(caller.id), Content::Text(body.body), None, None).await?;
    Ok(created(message))
}

/// A member writes an internal note: members and readers see it, the visitor never does.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/notes", tag = "conversations", security(("bearer" = [])), params(("id" = u64, Path)),
    request_body = MessageBody,
    responses((status = 201, body = Message), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "Conversation closed", body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn post_note(
    hub: web::Data<Hub>,
    caller: Caller,
    id: web::Path<ConversationId>,
    JsonBody(body): JsonBody<MessageBody>,
) -> Result<HttpResponse, ApiError> {
    let message = hub.post_message(*id, Poster::Operator(caller.id), Content::Note(body.body), None, None).await?;
    Ok(created(message))
}

/// 201 with the stored message, or 204 when nothing was stored (an empty line
/// ending a chatbot's multi-line question).
pub fn created(message: Option<Message>) -> HttpResponse {
    match message {
        Some(message) => HttpResponse::Created().json(message),
        None => HttpResponse::NoContent().finish(),
    }
}

/// A member sets the status.
#[utoipa::path(put, path = "/api/v1/conversations/{id}/status", tag = "conversations", security(("bearer" = [])), params(("id" = u64, Path)),
    request_body = StatusBody,
    responses((status = 200, body = ConversationView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "Closed, direct, or no operator yet", body = ErrorBody)))]
pub async fn set_status(
    hub: web::Data<Hub>,
    caller: Caller,
    id: web::Path<ConversationId>,
    JsonBody(body): JsonBody<StatusBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(hub.set_status(*id, &caller, body.status, body.note).await?))
}

/// A member replaces the conversation's expertise; stars on the board move at once.
#[utoipa::path(put, path = "/api/v1/conversations/{id}/expertise", tag = "conversations", security(("bearer" = [])), params(("id" = u64, Path)),
    request_body = ExpertiseBody,
    responses((status = 200, body = ConversationView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn set_expertise(
    hub: web::Data<Hub>,
    caller: Caller,
    id: web::Path<ConversationId>,
    JsonBody(body): JsonBody<ExpertiseBody>,
) -> Result<HttpResponse, ApiError> {
    let expertise_ids: BTreeSet<ExpertiseId> = body.expertise_ids.into_iter().collect();
    Ok(HttpResponse::Ok().json(hub.set_expertise(*id, &caller, expertise_ids).await?))
}

/// Join a conversation that is looking for help.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/join", tag = "conversations", security(("bearer" = [])), params(("id" = u64, Path)),
    responses((status = 200, body = ConversationView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "No longer looking for help, or already a member", body = ErrorBody)))]
pub async fn join(hub: web::Data<Hub>, caller: Caller, id: web::Path<ConversationId>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(hub.join(*id, &caller).await?))
}

/// Step out of a conversation (the last operator of an open livechat cannot).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/leave", tag = "conversations", security(("bearer" = [])), params(("id" = u64, Path)),
    responses((status = 204, description = "Left"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn leave(hub: web::Data<Hub>, caller: Caller, id: web::Path<ConversationId>) -> Result<HttpResponse, ApiError> {
    hub.leave(*id, &caller).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Operators who could be invited: not yet members, online first, at most 30.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/invite_candidates", tag = "conversations", security(("bearer" = [])),
    params(("id" = u64, Path), CandidatesQuery),
    responses((status = 200, body = Vec<InviteCandidate>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn invite_candidates(
    hub: web::Data<Hub>,
    caller: Caller,
    id: web::Path<ConversationId>,
    query: web::Query<CandidatesQuery>,
) -> Result<HttpResponse, ApiError> {
    let summary = hub.summary(*id, &caller).await?;
    let live = hub.live().await?;
    let needle = query.q.as_deref().map(str::trim).unwrap_or_default().to_lowercase();
    let livechat = summary.kind == Kind::Livechat;
    let directory = hub.directory();
    let mut candidates: Vec<InviteCandidate> = directory
        .operators()
        .filter(|op| op.active && !summary.member_ids.contains(&op.id))
        .filter(|op| needle.is_empty() || op.name.to_lowercase().contains(&needle) || op.login.to_lowercase().contains(&needle))
        .map(|op| {
            let status = live.get(&op.id).copied().unwrap_or_default();
            let expertise = op
                .expertise_ids
                .iter()
                .filter_map(|&e| directory.expertise_by_id(e))
                .map(|e| ExpertiseRef { id: e.id, name: e.name.clone() })
                .collect();
            InviteCandidate {
                id: op.id,
                name: op.name.clone(),
                presence: status.presence,
                active_chats: status.active_chats,
                languages: livechat.then(|| op.languages.clone()),
                expertise: livechat.then_some(expertise),
            }
        })
        .collect();
    let rank = |p: Presence| match p {
        Presence::Online => 0,
        Presence::Away => 1,
        Presence::Offline => 2,
    };
    candidates.sort_by(|a, b| {
        rank(a.presence).cmp(&rank(b.presence)).then_with(|| a.name.to_lowercase().cmp(&b.name.to_lowercase())).then(a.id.cmp(&b.id))
    });
    candidates.truncate(MAX_INVITE_CANDIDATES);
    Ok(HttpResponse::Ok().json(candidates))
}

/// A member invites colleagues; each is notified and the visitor sees them join.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/invite", tag = "conversations", security(("bearer" = [])), params(("id" = u64, Path)),
    request_body = InviteBody,
    responses((status = 200, body = ConversationView), (status = 400, description = "Empty list or unknown user", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn invite(
    hub: web::Data<Hub>,
    caller: Caller,
    id: web::Path<ConversationId>,
    JsonBody(body): JsonBody<InviteBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(hub.invite(*id, &caller, body.user_ids).await?))
}

/// A member hands the conversation over and leaves it (rule `transferred`).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/transfer", tag = "conversations", security(("bearer" = [])), params(("id" = u64, Path)),
    request_body = TransferBody,
    responses((status = 200, body = ConversationView), (status = 400, description = "Unknown user or expertise", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, description = "Not a member", body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "Closed, not a livechat, or nobody (or not the named operator) can take it now", body = ErrorBody)))]
pub async fn transfer(
    hub: web::Data<Hub>,
    caller: Caller,
    id: web::Path<ConversationId>,
    JsonBody(body): JsonBody<TransferBody>,
) -> Result<HttpResponse, ApiError> {
    let expertise = body.expertise_ids.map(|ids| ids.into_iter().collect());
    Ok(HttpResponse::Ok().json(hub.transfer(*id, &caller, body.user_id, expertise).await?))
}

/// A member closes the conversation; the visitor is told and no more messages are accepted.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/close", tag = "conversations", security(("bearer" = [])), params(("id" = u64, Path)),
    responses((status = 200, body = ConversationView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "Already closed", body = ErrorBody)))]
pub async fn close(hub: web::Data<Hub>, caller: Caller, id: web::Path<ConversationId>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(hub.close(*id, &caller).await?))
}

/// The direct conversation with another operator (the open one if it exists).
#[utoipa::path(post, path = "/api/v1/direct", tag = "conversations", security(("bearer" = [])), request_body = DirectBody,
    responses((status = 201, body = ConversationView), (status = 400, description = "Yourself or an unknown user", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn direct(hub: web::Data<Hub>, caller: Caller, JsonBody(body): JsonBody<DirectBody>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Created().json(hub.open_direct(&caller, body.user_id).await?))
}
