//! Missed chats: the visitors nobody talked to, for the channel's operators to follow up.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use super::extract::{given, id_param};
use crate::domain::lead::LeadStatus;
use crate::domain::text::InvalidField;
use crate::domain::{ChannelId, ConversationId};
use crate::error::{ApiError, ErrorBody};
use crate::hub::{Caller, Hub};
use crate::views::LeadView;

/// Filters arrive as text so a bad value is refused naming its field, and an
/// unknown parameter is refused rather than ignored.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LeadsQuery {
    /// `open` or `done`; both when absent.
    #[param(value_type = Option<LeadStatus>)]
    pub status: Option<String>,
    /// Only this channel's leads (an id that names no channel finds none).
    #[param(value_type = Option<u64>, minimum = 1)]
    pub channel_id: Option<String>,
}

impl LeadsQuery {
    fn parse(&self) -> Result<(Option<LeadStatus>, Option<ChannelId>), InvalidField> {
        let status = match given(self.status.as_ref()) {
            None => None,
            Some("open") => Some(LeadStatus::Open),
            Some("done") => Some(LeadStatus::Done),
            Some(_) => return Err(InvalidField::new("status", "must be open or done")),
        };
        Ok((status, id_param("channel_id", self.channel_id.as_ref())?.map(ChannelId)))
    }
}

/// Missed chats on the caller's channels (every channel for an admin), oldest first.
#[utoipa::path(get, path = "/api/v1/leads", tag = "leads", security(("bearer" = [])), params(LeadsQuery),
    responses((status = 200, body = Vec<LeadView>), (status = 400, description = "`status`, `channel_id` or an unknown parameter", body = ErrorBody),
              (status = 401, body = ErrorBody)))]
pub async fn list(hub: web::Data<Hub>, caller: Caller, query: web::Query<LeadsQuery>) -> Result<HttpResponse, ApiError> {
    let (status, channel) = query.parse()?;
    Ok(HttpResponse::Ok().json(hub.leads(&caller, status, channel).await?))
}

/// Takes the lead on (again, if the caller already holds it).
#[utoipa::path(post, path = "/api/v1/leads/{conversation_id}/claim", tag = "leads", security(("bearer" = [])), params(("conversation_id" = u64, Path)),
    responses((status = 200, body = LeadView), (status = 401, body = ErrorBody), (status = 403, description = "Not an operator of its channel", body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "Another operator holds it", body = ErrorBody)))]
pub async fn claim(hub: web::Data<Hub>, caller: Caller, id: web::Path<ConversationId>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(hub.claim_lead(&caller, *id).await?))
}

/// The follow-up is done (taking the lead on if nobody held it).
#[utoipa::path(post, path = "/api/v1/leads/{conversation_id}/done", tag = "leads", security(("bearer" = [])), params(("conversation_id" = u64, Path)),
    responses((status = 200, body = LeadView), (status = 401, body = ErrorBody), (status = 403, description = "Not an operator of its channel", body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "Another operator holds it (admins may finish it)", body = ErrorBody)))]
pub async fn done(hub: web::Data<Hub>, caller: Caller, id: web::Path<ConversationId>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(hub.finish_lead(&caller, *id).await?))
}
