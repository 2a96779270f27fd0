//! `GET /api/v1/reports/routing` (admins): JSON, or CSV with `?format=csv` or `Accept: text/csv`.

use std::fmt::Write as _;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use super::extract::{id_param, time_param, Admin};
use crate::domain::report::{Ratings, Scope};
use crate::domain::ChannelId;
use crate::error::{ApiError, ErrorBody};
use crate::hub::Hub;
use crate::views::RoutingReport;

#[derive(Debug, Deserialize, IntoParams)]
pub struct ReportQuery {
    /// Conversations created at or after this RFC 3339 time.
    #[param(format = DateTime)]
    from: Option<String>,
    /// … and before this one.
    #[param(format = DateTime)]
    to: Option<String>,
    /// Only this channel's conversations. Text, so a value beyond the
    /// documented range is refused naming the field (ids are stored as i64).
    #[param(value_type = Option<u64>, minimum = 1)]
    channel_id: Option<String>,
    /// `csv` for CSV, `json` for JSON; absent = by the `Accept` header.
    #[param(inline)]
    format: Option<ReportFormat>,
}

#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    Csv,
    Json,
}

/// The routing report: does skills routing work, per expertise and per operator.
#[utoipa::path(get, path = "/api/v1/reports/routing", tag = "reports", security(("bearer" = [])), params(ReportQuery),
    responses((status = 200, description = "JSON, or CSV (`text/csv`) on request",
                content((RoutingReport = "application/json"), (String = "text/csv"))), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn routing(
    hub: web::Data<Hub>,
    _admin: Admin,
    req: HttpRequest,
    query: web::Query<ReportQuery>,
) -> Result<HttpResponse, ApiError> {
    let scope = Scope {
        from: time_param("from", query.from.as_deref())?,
        to: time_param("to", query.to.as_deref())?,
        channel: id_param("channel_id", query.channel_id.as_ref())?.map(ChannelId),
    };
    let report = hub.routing_report(scope).await?;
    let accepts_csv = req.headers().get(header::ACCEPT).and_then(|a| a.to_str().ok()).is_some_and(|a| a.contains("text/csv"));
    Ok(match query.format {
        Some(ReportFormat::Csv) => csv(&report),
        Some(ReportFormat::Json) => HttpResponse::Ok().json(report),
        None if accepts_csv => csv(&report),
        None => HttpResponse::Ok().json(report),
    })
}

const COLUMNS: &str = "section,id,name,conversations,served,served_by_expert,served_by_expert_share,\
time_to_operator_p50_s,time_to_operator_p90_s,time_to_first_reply_p50_s,time_to_first_reply_p90_s,\
need_help_requests,time_to_join_p50_s,time_to_join_p90_s,abandoned_in_queue,missed,assignments,reassignments,active_chats,\
ratings,rating_1_share,rating_3_share,rating_5_share";

fn number(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.3}")).unwrap_or_default()
}

/// The four rating columns.
fn ratings(r: &Ratings) -> String {
    format!("{},{},{},{}", r.ratings, number(r.rating_1_share), number(r.rating_3_share), number(r.rating_5_share))
}

/// One table: expertise rows fill the routing columns, operator rows the
/// assignment ones; both fill the rating columns.
fn csv(report: &RoutingReport) -> HttpResponse {
    let mut out = format!("{COLUMNS}\n");
    for e in &report.expertise {
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "expertise,{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},,,,{}",
            e.expertise_id,
            field(&e.name),
            e.conversations,
            e.served,
            e.served_by_expert,
            number(e.served_by_expert_share),
            number(e.time_to_operator_p50_s),
            number(e.time_to_operator_p90_s),
            number(e.time_to_first_reply_p50_s),
            number(e.time_to_first_reply_p90_s),
            e.need_help_requests,
            number(e.time_to_join_p50_s),
            number(e.time_to_join_p90_s),
            e.abandoned_in_queue,
            e.missed,
            ratings(&e.ratings),
        );
    }
    for o in &report.operators {
        let _ = writeln!(
            out,
            "operator,{},{},,,,,,,,,,,,,,{},{},{},{}",
            o.operator_id,
            field(&o.name),
            o.assignments,
            o.reassignments,
            o.active_chats,
            ratings(&o.ratings),
        );
    }
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((header::CONTENT_DISPOSITION, "attachment; filename=\"routing-report.csv\""))
        .body(out)
}

/// Quotes a CSV field; a leading `=`, `+`, `-` or `@` is defused so a
/// spreadsheet never runs a name as a formula.
fn field(text: &str) -> String {
    let defused = if text.starts_with(['=', '+', '-', '@']) { format!("'{text}") } else { text.to_owned() };
    format!("\"{}\"", defused.replace('"', "\"\""))
}
