//! `GET /ws/agent?token=…`: an operator's console connection.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::protocol::{AgentCommand, AgentEvent};
use super::{Ack, CommandHandler, SessionIo};
use crate::actors::conversation::Content;
use crate::actors::operator::{Connect, Disconnect};
use crate::domain::conversation::{Poster, Status};
use crate::error::{ApiError, ErrorBody};
use crate::hub::{Caller, Hub};
use crate::metrics::Role;

#[derive(Debug, Deserialize)]
pub struct AgentQuery {
    token: Option<String>,
}

/// Executes an operator's commands.
struct AgentSession {
    hub: Arc<Hub>,
    caller: Caller,
}

impl CommandHandler for AgentSession {
    type Command = AgentCommand;
    type Event = AgentEvent;

    async fn handle(&mut self, command: AgentCommand, reference: Option<&str>) -> Result<Ack<AgentEvent>, ApiError> {
        let hub = &self.hub;
        let caller = &self.caller;
        match command {
            AgentCommand::Send { conversation_id, body } => {
                let message = hub
                    .post_message(conversation_id, Poster::Operator(caller.id), Content::Text(body), reference.map(str::to_owned))
                    .await?;
                Ok(Ack::message(message))
            }
            AgentCommand::SetStatus { conversation_id, status } => {
                hub.set_status(conversation_id, caller, status).await?;
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
}

/// The greeting: who the operator is, their open conversations, the board with their stars.
async fn hello(hub: &Hub, caller: &Caller) -> Result<AgentEvent, ApiError> {
    let user = hub.user(caller.id).await?;
    let mut conversations = hub.member_conversations(caller.id).await?;
    conversations.retain(|c| c.status != Status::Closed);
    let need_help = hub.board(caller.id).await?;
    Ok(AgentEvent::Hello { user, conversations, need_help })
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
    let own = origin.split_once("://").is_some_and(|(_, host)| host == req.connection_info().host());
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
/// 401 without a valid token, 503 `over_capacity` at the connection cap, 400 if not an upgrade.
#[utoipa::path(get, path = "/ws/agent", tag = "websocket", params(("token" = String, Query, description = "The operator's bearer token")),
    responses((status = 101, description = "WebSocket: see API.md for frames"), (status = 400, description = "Not a WebSocket upgrade", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, description = "`over_capacity`", body = ErrorBody)))]
pub async fn agent(
    req: HttpRequest,
    body: web::Payload,
    hub: web::Data<Hub>,
    query: web::Query<AgentQuery>,
) -> Result<HttpResponse, ApiError> {
    check_origin(&req, &hub.ws.allowed_origins)?;
    let token = query.token.as_deref().ok_or_else(|| ApiError::Unauthorized("missing `token` query parameter".into()))?;
    let caller = hub.operator_caller(token)?;
    let (response, io, tx) = SessionIo::open(&hub, Role::Agent, &req, body)?;
    let operator = hub.core.operator(caller.id);
    // Register before reading state, so an event after the snapshot below is queued, not lost.
    operator.send(Connect { session: tx.clone() }).await?;
    let greeting = match hello(&hub, &caller).await {
        Ok(hello) => vec![hello],
        Err(e) => {
            operator.do_send(Disconnect { session: tx });
            return Err(e);
        }
    };
    let hub = hub.into_inner();
    actix_web::rt::spawn(async move {
        super::run(io, AgentSession { hub, caller }, greeting).await;
        operator.do_send(Disconnect { session: tx });
    });
    Ok(response)
}
