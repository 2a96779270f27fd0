//! `GET /ws/agent?token=…`: an operator's console connection.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::outbound::SessionId;
use super::protocol::{AgentCommand, AgentEvent, PresenceFrames};
use super::{Ack, CommandHandler, SessionIo};
use crate::actors::conversation::Content;
use crate::domain::conversation::Poster;
use crate::domain::text::InvalidField;
use crate::error::{ApiError, ErrorBody};
use crate::http::client::client_origin;
use crate::http::extract::given;
use crate::hub::{Caller, Hub};
use crate::metrics::SocketKind;

#[derive(Debug, Deserialize)]
pub struct AgentQuery {
    token: Option<String>,
    presence: Option<String>,
}

impl AgentQuery {
    /// How this console takes presence changes: `each` (the default) or `batched`.
    fn presence(&self) -> Result<PresenceFrames, InvalidField> {
        match given(self.presence.as_ref()) {
            None | Some("each") => Ok(PresenceFrames::Each),
            Some("batched") => Ok(PresenceFrames::Batched),
            Some(_) => Err(InvalidField::new("presence", "must be `each` or `batched`")),
        }
    }
}

/// Executes an operator's commands.
struct AgentSession {
    hub: Arc<Hub>,
    caller: Caller,
    /// This socket, which its own messages' acks reach instead of an echo.
    session: SessionId,
}

impl CommandHandler for AgentSession {
    type Command = AgentCommand;
    type Event = AgentEvent;

    async fn handle(&self, command: AgentCommand, reference: Option<&str>) -> Result<Ack<AgentEvent>, ApiError> {
        let hub = &self.hub;
        let caller = &self.caller;
        match command {
            AgentCommand::Send { conversation_id, body, internal } => {
                let content = if internal { Content::Note(body) } else { Content::Text(body) };
                let message = hub
                    .post_message(conversation_id, Poster::Operator(caller.id), content, reference.map(str::to_owned), Some(self.session))
                    .await?;
                Ok(Ack::message(message))
            }
            AgentCommand::SetStatus { conversation_id, status, note } => {
                hub.set_status(conversation_id, caller, status, note).await?;
                Ok(Ack::empty())
            }
            AgentCommand::Join { conversation_id } => {
                hub.join(conversation_id, caller).await?;
                Ok(Ack::empty())
            }
            AgentCommand::Presence { presence } => {
                hub.set_presence(caller.id, presence.into()).await?;
                Ok(Ack::empty())
            }
            AgentCommand::Typing { conversation_id } => {
                hub.typing(conversation_id, Poster::Operator(caller.id)).await?;
                Ok(Ack::empty())
            }
            AgentCommand::Resume { conversation_id, after_id } => {
                let messages = hub.replay(conversation_id, caller, after_id).await?;
                let replay = messages.into_iter().map(|message| AgentEvent::Message { conversation_id, message }).collect();
                Ok(Ack { replay, message: None })
            }
        }
    }

    fn holds_events(command: &AgentCommand) -> bool {
        matches!(command, AgentCommand::Resume { .. })
    }
}

/// A browser page may open an operator socket only from the server's own
/// origin or a configured one: another site must not ride on a stolen token
/// inside a victim's browser. Clients that send no `Origin` (not browsers) pass.
///
/// # Errors
/// `Forbidden` for any other origin.
fn check_origin(req: &HttpRequest, allowed: &[String]) -> Result<(), ApiError> {
    let Some(origin) = req.headers().get(actix_web::http::header::ORIGIN) else { return Ok(()) };
    let origin = origin.to_str().unwrap_or_default().trim_end_matches('/');
    let own_origin = client_origin(req);
    let own_host = own_origin.split_once("://").map_or(own_origin.as_str(), |(_, host)| host);
    let own = origin.split_once("://").is_some_and(|(_, host)| host == own_host);
    if own || allowed.iter().any(|a| a.trim_end_matches('/') == origin) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!("origin {origin} may not open an operator connection (see --allowed-origins)")))
    }
}

/// Upgrades an operator's connection: registers the tab with their
/// `OperatorActor` (making them online), then greets with `hello`.
///
/// # Errors
/// 401 without a valid token, 503 `over_capacity` at the connection cap, 400 if not an upgrade
/// or `presence` is neither `each` nor `batched`.
#[utoipa::path(get, path = "/ws/agent", tag = "websocket",
    params(("token" = String, Query, description = "The operator's bearer token"),
           ("presence" = Option<String>, Query, description = "`each` (default): one `presence {user_id, presence}` event per change. \
            `batched`: one `presences {changes: [{user_id, presence}]}` event per gathering of changes (25 ms per started hundred of connected operators), oldest change first")),
    responses((status = 101, description = "WebSocket: see API.md for frames"),
              (status = 400, description = "Not a WebSocket upgrade, or `presence` is neither `each` nor `batched`", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, description = "`over_capacity`", body = ErrorBody)))]
pub async fn agent(
    req: HttpRequest,
    body: web::Payload,
    hub: web::Data<Hub>,
    query: web::Query<AgentQuery>,
) -> Result<HttpResponse, ApiError> {
    check_origin(&req, &hub.ws_config().allowed_origins)?;
    let presence = query.presence()?;
    let token = query.token.as_deref().ok_or_else(|| ApiError::Unauthorized("missing `token` query parameter".into()))?;
    let caller = hub.operator_caller(token).await?;
    let (response, io, tx) = SessionIo::open(&hub, SocketKind::Agent, &req, body)?;
    let greeting = vec![hub.connect_operator(&caller, tx.clone(), presence).await?];
    let hub = hub.into_inner();
    actix_web::rt::spawn(async move {
        let operator = caller.id;
        super::run(io, AgentSession { hub: hub.clone(), caller, session: tx.id() }, greeting).await;
        hub.disconnect_operator(operator, tx);
    });
    Ok(response)
}
