//! Chatbot scripts: readable by every operator, changed by admins only.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::{Admin, JsonBody};
use crate::domain::chatbot::StepInput;
use crate::domain::ChatbotId;
use crate::error::{ApiError, ErrorBody};
use crate::hub::{Caller, Hub};
use crate::views::ChatbotView;

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateChatbot {
    #[schema(schema_with = super::schema::name)]
    pub title: String,
    pub steps: Vec<StepInput>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateChatbot {
    #[schema(schema_with = super::schema::name_or_null)]
    pub title: Option<String>,
    /// Replaces the whole script; ids given are kept. Running conversations keep their version.
    pub steps: Option<Vec<StepInput>>,
}

/// Every chatbot.
#[utoipa::path(get, path = "/api/v1/chatbots", tag = "chatbots", security(("bearer" = [])),
    responses((status = 200, body = Vec<ChatbotView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(hub: web::Data<Hub>, _caller: Caller) -> HttpResponse {
    let all: Vec<ChatbotView> = hub.directory().chatbots().map(|c| ChatbotView::from(&**c)).collect();
    HttpResponse::Ok().json(all)
}

/// One chatbot.
#[utoipa::path(get, path = "/api/v1/chatbots/{id}", tag = "chatbots", security(("bearer" = [])), params(("id" = u64, Path)),
    responses((status = 200, body = ChatbotView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(hub: web::Data<Hub>, _caller: Caller, id: web::Path<ChatbotId>) -> Result<HttpResponse, ApiError> {
    let directory = hub.directory();
    let chatbot = directory.chatbot(*id).ok_or_else(|| ApiError::not_found("chatbot"))?;
    Ok(HttpResponse::Ok().json(ChatbotView::from(&**chatbot)))
}

/// Create a chatbot (admin). Every validation error names the offending step.
#[utoipa::path(post, path = "/api/v1/chatbots", tag = "chatbots", security(("bearer" = [])), request_body = CreateChatbot,
    responses((status = 201, body = ChatbotView), (status = 400, description = "Names the offending step, e.g. `steps[2].answers`", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create(hub: web::Data<Hub>, _admin: Admin, JsonBody(body): JsonBody<CreateChatbot>) -> Result<HttpResponse, ApiError> {
    let max_chars = hub.limits().max_message_chars;
    let view = hub.change_directory(|d| Ok(ChatbotView::from(&**d.create_chatbot(&body.title, body.steps, max_chars)?))).await?;
    Ok(HttpResponse::Created().json(view))
}

/// Change a chatbot's title or script (admin); running conversations keep the version they started with.
#[utoipa::path(patch, path = "/api/v1/chatbots/{id}", tag = "chatbots", security(("bearer" = [])), params(("id" = u64, Path)), request_body = UpdateChatbot,
    responses((status = 200, body = ChatbotView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update(
    hub: web::Data<Hub>,
    _admin: Admin,
    id: web::Path<ChatbotId>,
    JsonBody(body): JsonBody<UpdateChatbot>,
) -> Result<HttpResponse, ApiError> {
    let max_chars = hub.limits().max_message_chars;
    let view =
        hub.change_directory(|d| Ok(ChatbotView::from(&**d.update_chatbot(*id, body.title.as_deref(), body.steps, max_chars)?))).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Delete a chatbot (admin); channels using it then forward visitors to operators at once.
#[utoipa::path(delete, path = "/api/v1/chatbots/{id}", tag = "chatbots", security(("bearer" = [])), params(("id" = u64, Path)),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(hub: web::Data<Hub>, _admin: Admin, id: web::Path<ChatbotId>) -> Result<HttpResponse, ApiError> {
    hub.change_directory(|d| Ok(d.delete_chatbot(*id)?)).await?;
    Ok(HttpResponse::NoContent().finish())
}
