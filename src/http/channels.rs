//! Channels: each a website entry point with its operator team and capacity.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::{Admin, JsonBody};
use super::nullable;
use crate::domain::assignment::RoutingOrder;
use crate::domain::directory::{ChannelPatch, NewChannel, RoutingOptions};
use crate::domain::{ChannelId, ChatbotId, OperatorId};
use crate::error::{ApiError, ErrorBody};
use crate::hub::{Caller, Hub};
use crate::views::ChannelView;

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateChannel {
    #[schema(schema_with = super::schema::name)]
    pub name: String,
    #[serde(default)]
    pub operator_ids: Vec<OperatorId>,
    /// Per-operator cap on concurrent conversations of this channel; absent or null = unlimited.
    #[schema(value_type = Option<u64>, maximum = 4294967295.0)]
    pub max_sessions: Option<u32>,
    /// The script visitors meet first; absent or null = straight to an operator.
    pub chatbot_id: Option<ChatbotId>,
    /// Wait this long for an expert before anyone may take the visitor (null = off).
    #[schema(value_type = Option<u64>, maximum = 4294967295.0)]
    pub expert_wait_s: Option<u32>,
    /// Pass the conversation on if the assigned operator writes nothing this long (null = off).
    #[schema(value_type = Option<u64>, maximum = 4294967295.0)]
    pub answer_timeout_s: Option<u32>,
    /// Route an operator's chats again when they stay disconnected this long (null = off).
    #[schema(value_type = Option<u64>, maximum = 4294967295.0)]
    pub offline_grace_s: Option<u32>,
    /// `odoo` (default): language, country, then expertise; `expertise_first`: holders of the wanted expertise first.
    #[serde(default)]
    pub routing_order: RoutingOrder,
    /// E-mail each new lead (missed chat) here, when the server has `--smtp-url` (null = off).
    #[schema(schema_with = super::schema::email_or_null)]
    pub notify_email: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateChannel {
    #[schema(schema_with = super::schema::name_or_null)]
    pub name: Option<String>,
    pub operator_ids: Option<Vec<OperatorId>>,
    /// `null` = unlimited.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u64>, maximum = 4294967295.0)]
    pub max_sessions: Option<Option<u32>>,
    /// `null` = no chatbot.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u64>)]
    pub chatbot_id: Option<Option<ChatbotId>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u64>, maximum = 4294967295.0)]
    pub expert_wait_s: Option<Option<u32>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u64>, maximum = 4294967295.0)]
    pub answer_timeout_s: Option<Option<u32>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u64>, maximum = 4294967295.0)]
    pub offline_grace_s: Option<Option<u32>>,
    pub routing_order: Option<RoutingOrder>,
    /// `null` = leads are not e-mailed.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = super::schema::email_or_null)]
    pub notify_email: Option<Option<String>>,
}

/// Every channel.
#[utoipa::path(get, path = "/api/v1/channels", tag = "channels", security(("bearer" = [])),
    responses((status = 200, body = Vec<ChannelView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(hub: web::Data<Hub>, _caller: Caller) -> HttpResponse {
    let all: Vec<ChannelView> = hub.directory().channels().map(ChannelView::from).collect();
    HttpResponse::Ok().json(all)
}

/// One channel.
#[utoipa::path(get, path = "/api/v1/channels/{id}", tag = "channels", security(("bearer" = [])), params(("id" = u64, Path)),
    responses((status = 200, body = ChannelView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(hub: web::Data<Hub>, _caller: Caller, id: web::Path<ChannelId>) -> Result<HttpResponse, ApiError> {
    let directory = hub.directory();
    let channel = directory.channel(*id).ok_or_else(|| ApiError::not_found("channel"))?;
    Ok(HttpResponse::Ok().json(ChannelView::from(channel)))
}

/// Create a channel (admin).
#[utoipa::path(post, path = "/api/v1/channels", tag = "channels", security(("bearer" = [])), request_body = CreateChannel,
    responses((status = 201, body = ChannelView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create(hub: web::Data<Hub>, _admin: Admin, JsonBody(body): JsonBody<CreateChannel>) -> Result<HttpResponse, ApiError> {
    let new = NewChannel {
        name: body.name,
        operator_ids: body.operator_ids.into_iter().collect(),
        max_sessions: body.max_sessions,
        chatbot_id: body.chatbot_id,
        options: RoutingOptions {
            expert_wait_s: body.expert_wait_s,
            answer_timeout_s: body.answer_timeout_s,
            offline_grace_s: body.offline_grace_s,
            routing_order: body.routing_order,
        },
        notify_email: body.notify_email,
    };
    let view = hub.change_directory(|d| Ok(ChannelView::from(d.create_channel(new)?))).await?;
    Ok(HttpResponse::Created().json(view))
}

/// Change a channel (admin); its queue moves at once if capacity grew.
#[utoipa::path(patch, path = "/api/v1/channels/{id}", tag = "channels", security(("bearer" = [])), params(("id" = u64, Path)), request_body = UpdateChannel,
    responses((status = 200, body = ChannelView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update(
    hub: web::Data<Hub>,
    _admin: Admin,
    id: web::Path<ChannelId>,
    JsonBody(body): JsonBody<UpdateChannel>,
) -> Result<HttpResponse, ApiError> {
    let patch = ChannelPatch {
        name: body.name,
        operator_ids: body.operator_ids.map(|ids| ids.into_iter().collect()),
        max_sessions: body.max_sessions,
        chatbot_id: body.chatbot_id,
        expert_wait_s: body.expert_wait_s,
        answer_timeout_s: body.answer_timeout_s,
        offline_grace_s: body.offline_grace_s,
        routing_order: body.routing_order,
        notify_email: body.notify_email,
    };
    let view = hub.change_directory(|d| Ok(ChannelView::from(d.update_channel(*id, patch)?))).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Delete a channel (admin): new sessions on it get 404, its `bot` and
/// `queued` conversations are closed, those with an operator go on.
#[utoipa::path(delete, path = "/api/v1/channels/{id}", tag = "channels", security(("bearer" = [])), params(("id" = u64, Path)),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(hub: web::Data<Hub>, _admin: Admin, id: web::Path<ChannelId>) -> Result<HttpResponse, ApiError> {
    hub.change_directory(|d| Ok(d.delete_channel(*id)?)).await?;
    Ok(HttpResponse::NoContent().finish())
}
