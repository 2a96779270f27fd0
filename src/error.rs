//! `ApiError`: the one error type at the HTTP and WebSocket boundary, mapped to
//! a status code and a JSON body `{"error":{"code","message"}}` in one place.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::domain::conversation::ConversationError;
use crate::domain::directory::DirectoryError;
use crate::domain::text::InvalidField;
use crate::persist::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("request body exceeds {0} bytes")]
    PayloadTooLarge(usize),
    #[error("too many requests: try again in {0} s")]
    TooManyRequests(u64),
    #[error("the server is at its connection limit")]
    OverCapacity,
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected failure: logged in full, answered opaquely.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// The JSON error body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// `bad_request`, `unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `payload_too_large`, `too_many_requests`, `over_capacity`, `unavailable`, `internal`.
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn not_found(what: &str) -> ApiError {
        ApiError::NotFound(format!("{what} not found"))
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::TooManyRequests(_) => "too_many_requests",
            ApiError::OverCapacity => "over_capacity",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn detail(&self) -> ErrorDetail {
        ErrorDetail { code: self.code(), message: self.to_string() }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::OverCapacity | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(cause) = self {
            tracing::error!(error = ?cause, "internal error");
        }
        let mut res = HttpResponse::build(self.status_code());
        if let ApiError::TooManyRequests(secs) = self {
            res.insert_header(("Retry-After", secs.to_string()));
        }
        res.json(ErrorBody { error: self.detail() })
    }
}

impl From<InvalidField> for ApiError {
    fn from(e: InvalidField) -> ApiError {
        ApiError::BadRequest(e.to_string())
    }
}

impl From<DirectoryError> for ApiError {
    fn from(e: DirectoryError) -> ApiError {
        let message = e.to_string();
        match e {
            DirectoryError::Invalid(_)
            | DirectoryError::UnknownOperator { .. }
            | DirectoryError::UnknownExpertise { .. }
            | DirectoryError::UnknownChatbot { .. } => ApiError::BadRequest(message),
            DirectoryError::DuplicateLogin(_)
            | DirectoryError::DuplicateExpertise(_)
            | DirectoryError::DuplicateShortcut(_)
            | DirectoryError::LastAdmin => ApiError::Conflict(message),
            DirectoryError::NotFound(_) => ApiError::NotFound(message),
            DirectoryError::Forbidden(_) => ApiError::Forbidden(message),
        }
    }
}

impl From<ConversationError> for ApiError {
    fn from(e: ConversationError) -> ApiError {
        let message = e.to_string();
        match e {
            ConversationError::Invalid(_) => ApiError::BadRequest(message),
            ConversationError::NotMember | ConversationError::NotReadable => ApiError::Forbidden(message),
            ConversationError::Closed
            | ConversationError::NotLivechat
            | ConversationError::NotAssigned
            | ConversationError::NotLookingForHelp
            | ConversationError::AlreadyMember(_)
            | ConversationError::LastMember
            | ConversationError::NotAwaitingAnswer(_)
            | ConversationError::CannotTake(_)
            | ConversationError::NobodyFree
            | ConversationError::NoHolderFree
            | ConversationError::NotEnded
            | ConversationError::AlreadyRated
            | ConversationError::RefReused => ApiError::Conflict(message),
        }
    }
}

/// The actor is gone or its mailbox is closed: only during shutdown, so 503.
impl From<actix::MailboxError> for ApiError {
    fn from(e: actix::MailboxError) -> ApiError {
        tracing::warn!(error = %e, "actor unavailable");
        ApiError::Unavailable("the server is shutting down or overloaded".into())
    }
}

/// A write that cannot be made durable is refused, never acknowledged.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        ApiError::Unavailable(format!("cannot store the change: {e}"))
    }
}

impl From<crate::archive::ArchiveError> for ApiError {
    fn from(e: crate::archive::ArchiveError) -> ApiError {
        tracing::error!(error = %e, "archive unavailable");
        ApiError::Unavailable(format!("history is unavailable: {e}"))
    }
}
