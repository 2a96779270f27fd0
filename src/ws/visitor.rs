//! `GET /ws/visitor?token=…[&after=…]`: a visitor's widget connection.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::outbound::SessionId;
use super::protocol::{VisitorCommand, VisitorEvent};
use super::{Ack, CommandHandler, SessionIo};
use crate::actors::conversation::Content;
use crate::domain::conversation::Poster;
use crate::domain::{ConversationId, MessageId};
use crate::error::{ApiError, ErrorBody};
use crate::hub::Hub;
use crate::metrics::SocketKind;

#[derive(Debug, Deserialize)]
pub struct VisitorQuery {
    token: Option<String>,
    /// Replay every message with a greater id after `hello`.
    after: Option<MessageId>,
}

/// Executes a visitor's commands, always on their one conversation.
struct VisitorSession {
    hub: Arc<Hub>,
    conversation: ConversationId,
    /// This socket, which its own messages' acks reach instead of an echo.
    session: SessionId,
}

impl Drop for VisitorSession {
    /// The socket ended: the registry of sockets that outlive their
    /// conversation's actor forgets it (a no-op while the actor holds it).
    fn drop(&mut self) {
        self.hub.forget_visitor_session(self.conversation, self.session);
    }
}

impl CommandHandler for VisitorSession {
    type Command = VisitorCommand;
    type Event = VisitorEvent;

    async fn handle(&self, command: VisitorCommand, reference: Option<&str>) -> Result<Ack<VisitorEvent>, ApiError> {
        match command {
            VisitorCommand::Send { body } => {
                let message = self
                    .hub
                    .post_message(self.conversation, Poster::Visitor, Content::Text(body), reference.map(str::to_owned), Some(self.session))
                    .await?;
                Ok(Ack::message(message))
            }
            VisitorCommand::Answer { step_id, answer_id } => {
                let content = Content::Answer { step_id, answer_id };
                let message = self
                    .hub
                    .post_message(self.conversation, Poster::Visitor, content, reference.map(str::to_owned), Some(self.session))
                    .await?;
                Ok(Ack::message(message))
            }
            VisitorCommand::Typing => {
                self.hub.typing(self.conversation, Poster::Visitor).await?;
                Ok(Ack::empty())
            }
            VisitorCommand::Rate { score, comment } => {
                self.hub.rate(self.conversation, score, comment.as_deref()).await?;
                Ok(Ack::empty())
            }
            VisitorCommand::Page { url, title } => {
                self.hub.record_page(self.conversation, &url, &title).await?;
                Ok(Ack::empty())
            }
        }
    }
}

/// Upgrades a visitor's connection; the conversation actor answers the
/// greeting and registers the session in one step, so nothing falls between.
///
/// # Errors
/// 401 without a valid visitor token, 503 `over_capacity`, 400 if not an upgrade.
#[utoipa::path(get, path = "/ws/visitor", tag = "websocket",
    params(("token" = String, Query, description = "The visitor token"), ("after" = Option<u64>, Query, description = "Replay messages with a greater id")),
    responses((status = 101, description = "WebSocket: see API.md for frames"), (status = 400, description = "Not a WebSocket upgrade", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 503, description = "`over_capacity`", body = ErrorBody)))]
pub async fn visitor(
    req: HttpRequest,
    body: web::Payload,
    hub: web::Data<Hub>,
    query: web::Query<VisitorQuery>,
) -> Result<HttpResponse, ApiError> {
    let token = query.token.as_deref().ok_or_else(|| ApiError::Unauthorized("missing `token` query parameter".into()))?;
    let conversation = hub.visitor_conversation(token).await?;
    let (response, io, tx) = SessionIo::open(&hub, SocketKind::Visitor, &req, body)?;
    let session = tx.id();
    let greeting = hub.attach_visitor(conversation, tx, query.after).await?;
    let hub = hub.into_inner();
    actix_web::rt::spawn(super::run(io, VisitorSession { hub, conversation, session }, greeting));
    Ok(response)
}
