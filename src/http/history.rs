//! History: search over live and archived conversations, transcripts, a
//! visitor's other conversations, and erasing a visitor's data.

use actix_web::http::header::{ContentDisposition, DispositionParam, DispositionType};
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use super::extract::{given, id_param, time_param, Admin};
use crate::domain::history::{parse_cursor, HistoryFilter};
use crate::domain::search::{Terms, MAX_QUERY_CHARS};
use crate::domain::text::InvalidField;
use crate::domain::{ChannelId, ConversationId, ExpertiseId, OperatorId};
use crate::error::{ApiError, ErrorBody};
use crate::hub::{Caller, Hub, MAX_VISITOR_KEY_CHARS};
use crate::views::{transcript_text, ConversationView, HistoryItem, HistoryPage};

/// Results per page unless `limit` says otherwise, and the most it may say.
const DEFAULT_LIMIT: usize = 25;
const MAX_LIMIT: usize = 100;

/// Every filter arrives as text so a bad value (an empty one included, where
/// the document states a type) is refused naming its field; an unknown
/// parameter is refused too, because a typo must not silently widen a search.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Words in message bodies or the visitor's name: case- and accent-insensitive, `word*` for a prefix, all required.
    #[param(max_length = 200)]
    pub q: Option<String>,
    /// Only this channel's conversations (an id that names no channel finds none).
    #[param(value_type = Option<u64>, minimum = 1)]
    pub channel_id: Option<String>,
    /// Conversations this operator took part in.
    #[param(value_type = Option<u64>, minimum = 1)]
    pub operator_id: Option<String>,
    #[param(value_type = Option<u64>, minimum = 1)]
    pub expertise_id: Option<String>,
    #[param(max_length = 128)]
    pub visitor_key: Option<String>,
    /// `from <= created_at < to`.
    #[param(format = DateTime)]
    pub from: Option<String>,
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// The visitor's score: 1, 3 or 5.
    #[param(pattern = "^[135]$")]
    pub rating: Option<String>,
    /// 1..=100, default 25.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^h1\.[1-9][0-9]{0,10}$")]
    pub cursor: Option<String>,
}

impl HistoryQuery {
    /// The filter and page size, or the first field that is wrong.
    fn parse(&self) -> Result<(HistoryFilter, usize), ApiError> {
        if given(self.q.as_ref()).is_some_and(|q| q.chars().count() > MAX_QUERY_CHARS) {
            return Err(InvalidField::new("q", format!("must be at most {MAX_QUERY_CHARS} characters")).into());
        }
        let limit = match given(self.limit.as_ref()) {
            None => DEFAULT_LIMIT,
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| InvalidField::new("limit", format!("must be an integer in 1..={MAX_LIMIT}")))?,
        };
        let rating = match given(self.rating.as_ref()) {
            None => None,
            Some(r @ ("1" | "3" | "5")) => r.parse().ok(),
            Some(_) => return Err(InvalidField::new("rating", "must be 1, 3 or 5").into()),
        };
        let before = match given(self.cursor.as_ref()) {
            None => None,
            Some(c) => Some(parse_cursor(c).ok_or_else(|| InvalidField::new("cursor", "is not a cursor this server gave out"))?),
        };
        let visitor_key = given(self.visitor_key.as_ref()).map(str::to_owned);
        if visitor_key.as_ref().is_some_and(|k| k.chars().count() > MAX_VISITOR_KEY_CHARS) {
            return Err(InvalidField::new("visitor_key", format!("must be at most {MAX_VISITOR_KEY_CHARS} characters")).into());
        }
        let channel = id_param("channel_id", self.channel_id.as_ref())?.map(ChannelId);
        let operator = id_param("operator_id", self.operator_id.as_ref())?.map(OperatorId);
        let expertise = id_param("expertise_id", self.expertise_id.as_ref())?.map(ExpertiseId);
        let filter = HistoryFilter {
            terms: given(self.q.as_ref()).map(Terms::parse).unwrap_or_default(),
            channel,
            operator,
            expertise,
            visitor_key,
            from: time_param("from", self.from.as_deref())?,
            to: time_param("to", self.to.as_deref())?,
            rating,
            before,
            except: None,
        };
        Ok((filter, limit))
    }
}

/// Searches every conversation the caller may see, live and closed, newest first.
#[utoipa::path(get, path = "/api/v1/history", tag = "history", security(("bearer" = [])), params(HistoryQuery),
    responses((status = 200, body = HistoryPage), (status = 400, description = "A filter's value, `limit`, `cursor` or an unknown parameter", body = ErrorBody),
              (status = 401, body = ErrorBody)))]
pub async fn search(hub: web::Data<Hub>, caller: Caller, query: web::Query<HistoryQuery>) -> Result<HttpResponse, ApiError> {
    let (filter, limit) = query.parse()?;
    Ok(HttpResponse::Ok().json(hub.history(&caller, filter, limit).await?))
}

#[derive(Clone, Copy, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TranscriptFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TranscriptQuery {
    /// `text` (default): one line per message, `[time] name: body`; `json`: the conversation object.
    pub format: Option<TranscriptFormat>,
}

/// The whole conversation as a download.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/transcript", tag = "history", security(("bearer" = [])),
    params(("id" = u64, Path), TranscriptQuery),
    responses((status = 200, description = "`Content-Disposition: attachment`", content((String = "text/plain"), (ConversationView = "application/json"))),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn transcript(
    hub: web::Data<Hub>,
    caller: Caller,
    id: web::Path<ConversationId>,
    query: web::Query<TranscriptQuery>,
) -> Result<HttpResponse, ApiError> {
    let view = hub.read(*id, &caller).await?;
    let format = query.format.unwrap_or_default();
    let extension = match format {
        TranscriptFormat::Text => "txt",
        TranscriptFormat::Json => "json",
    };
    let mut response = HttpResponse::Ok();
    response.insert_header(ContentDisposition {
        disposition: DispositionType::Attachment,
        parameters: vec![DispositionParam::Filename(format!("conversation-{id}.{extension}"))],
    });
    Ok(match format {
        TranscriptFormat::Text => {
            response.content_type("text/plain; charset=utf-8").body(transcript_text(view.messages.iter().map(AsRef::as_ref)))
        }
        TranscriptFormat::Json => response.json(view),
    })
}

/// The visitor's other conversations (same `visitor_key`) the caller may see, newest first.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/visitor_history", tag = "history", security(("bearer" = [])), params(("id" = u64, Path)),
    responses((status = 200, body = Vec<HistoryItem>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn visitor_history(hub: web::Data<Hub>, caller: Caller, id: web::Path<ConversationId>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(hub.visitor_history(*id, &caller).await?))
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Erased {
    /// Conversations erased, live ones included.
    pub deleted: usize,
}

/// Erases every conversation of a visitor (a data-subject request); open ones are closed first.
#[utoipa::path(delete, path = "/api/v1/visitors/{visitor_key}", tag = "history", security(("bearer" = [])), params(("visitor_key" = String, Path)),
    responses((status = 200, body = Erased), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 503, description = "Open conversations could not be archived in time; retry", body = ErrorBody)))]
pub async fn erase_visitor(hub: web::Data<Hub>, _: Admin, visitor_key: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let key = visitor_key.into_inner();
    if key.is_empty() || key.chars().count() > MAX_VISITOR_KEY_CHARS {
        return Err(InvalidField::new("visitor_key", format!("must be 1..={MAX_VISITOR_KEY_CHARS} characters")).into());
    }
    Ok(HttpResponse::Ok().json(Erased { deleted: hub.erase_visitor(key).await? }))
}
