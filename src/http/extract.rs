//! Request extractors that fail with `ApiError`, so bad input always gets the
//! same JSON error body: bearer-token callers and a JSON body reader whose
//! errors name the offending field.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use bytes::BytesMut;
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::domain::operator::Role;
use crate::domain::text::InvalidField;
use crate::domain::time::Timestamp;
use crate::domain::ConversationId;
use crate::error::ApiError;
use crate::hub::{Caller, Hub};

fn hub(req: &HttpRequest) -> web::Data<Hub> {
    // unwrap: `Application::build` registers the Hub as app data for every route.
    req.app_data::<web::Data<Hub>>().expect("Hub registered as app data").clone()
}

fn bearer(req: &HttpRequest) -> Result<&str, ApiError> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::Unauthorized("missing `Authorization: Bearer <token>` header".into()))
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Caller, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let (token, hub) = (bearer(req).map(str::to_owned), hub(req));
        Box::pin(async move { hub.operator_caller(&token?).await })
    }
}

/// Proof that the caller holds the `admin` role (handlers that also need
/// who it is take a `Caller` as well).
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Admin, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let caller = Caller::from_request(req, payload);
        Box::pin(async move {
            match caller.await?.role {
                Role::Admin => Ok(Admin),
                Role::User => Err(ApiError::Forbidden("this requires the admin role".into())),
            }
        })
    }
}

/// A visitor, identified by their token, and the one conversation it opens.
pub struct VisitorCaller(pub ConversationId);

impl FromRequest for VisitorCaller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<VisitorCaller, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let (token, hub) = (bearer(req).map(str::to_owned), hub(req));
        Box::pin(async move { hub.visitor_conversation(&token?).await.map(VisitorCaller) })
    }
}

/// A JSON request body of at most `max_body_bytes`, any content type accepted; an empty body is `{}`.
///
/// Unlike `web::Json`, errors name the field (`expertise_ids[1]: invalid type…`)
/// and an oversized body is refused from its `Content-Length` without reading it.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<JsonBody<T>, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = hub(req).max_body_bytes();
        let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if declared.is_some_and(|n| n > limit) {
                return Err(ApiError::PayloadTooLarge(limit));
            }
            let mut body = BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("could not read the request body: {e}")))?;
                if body.len() + chunk.len() > limit {
                    return Err(ApiError::PayloadTooLarge(limit));
                }
                body.extend_from_slice(&chunk);
            }
            // No body reads as `{}`: optional-only requests need none, and a missing
            // required field is then reported by name.
            let body: &[u8] = if body.is_empty() { b"{}" } else { &body };
            // serde also reads a struct from an array of its fields in order
            // (`[null, null]`); every body of this API is an object.
            if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
                return Err(ApiError::BadRequest("invalid JSON body: expected a JSON object".into()));
            }
            let de = &mut serde_json::Deserializer::from_slice(body);
            let first = serde_path_to_error::deserialize(de);
            let retried = first.as_ref().err().and_then(|_| {
                let mut value: serde_json::Value = serde_json::from_slice(body).ok()?;
                integral_floats_to_integers(&mut value).then(|| serde_path_to_error::deserialize(value))
            });
            retried.unwrap_or(first).map(JsonBody).map_err(|e| {
                let path = e.path().to_string();
                match path.as_str() {
                    "." => ApiError::BadRequest(format!("invalid JSON body: {}", e.inner())),
                    _ => ApiError::BadRequest(format!("`{path}`: {}", e.inner())),
                }
            })
        })
    }
}

/// Rewrites numbers like `3.0` as `3`, returning whether any changed.
///
/// JSON Schema counts `3.0` as an integer and clients whose numbers are all
/// floats (JavaScript, Python's `float`) send it; serde's integer types refuse
/// it, so a body that failed to parse gets this second chance.
fn integral_floats_to_integers(value: &mut serde_json::Value) -> bool {
    use serde_json::{Number, Value};
    match value {
        Value::Number(n) => {
            let integral = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0);
            const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
            const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;
            let converted = integral.and_then(|f| match f {
                f if (0.0..TWO_POW_64).contains(&f) => Some(Number::from(f as u64)),
                f if (-TWO_POW_63..0.0).contains(&f) => Some(Number::from(f as i64)),
                _ => None,
            });
            converted.map(|c| *n = c).is_some()
        }
        Value::Array(items) => items.iter_mut().fold(false, |changed, v| integral_floats_to_integers(v) | changed),
        Value::Object(fields) => fields.values_mut().fold(false, |changed, v| integral_floats_to_integers(v) | changed),
        Value::Null | Value::Bool(_) | Value::String(_) => false,
    }
}

/// An optional RFC 3339 query parameter (`from`, `to`).
///
/// # Errors
/// `InvalidField` naming `field` when it is not such a time (an empty value is not).
pub fn time_param(field: &'static str, value: Option<&str>) -> Result<Option<Timestamp>, InvalidField> {
    value
        .map(|v| {
            Timestamp::parse(v)
                .ok_or_else(|| InvalidField::new(field, format!("{v:?} is not an RFC 3339 time such as 2026-11-30T09:00:00Z")))
        })
        .transpose()
}

/// A query parameter's value, surrounding spaces ignored.
pub fn given(value: Option<&String>) -> Option<&str> {
    value.map(|v| v.trim())
}

/// An id in a query parameter (absent when empty or not given).
///
/// # Errors
/// `InvalidField` naming `field` when it is not an integer in 1..=i64::MAX.
pub fn id_param(field: &'static str, value: Option<&String>) -> Result<Option<u64>, InvalidField> {
    given(value)
        .map(|v| {
            // SQLite's integers are i64: a larger id cannot name anything and is out of the documented range.
            let id = v.parse::<u64>().ok().filter(|&n| n > 0 && i64::try_from(n).is_ok());
            id.ok_or_else(|| InvalidField::new(field, format!("must be an integer in 1..={}", i64::MAX)))
        })
        .transpose()
}
