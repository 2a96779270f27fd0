//! `Hub`: the handle through which HTTP handlers and WebSocket sessions reach
//! the actors. One typed async method per operation, so both transports share
//! the same checks and the same error mapping.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use actix::Addr;
use futures_util::future::join_all;
use tokio::sync::watch;

use crate::actors::conversation::{
    Capture, Content, ConversationActor, GetConversation, GetFacts, GetSummary, Join, PostMessage, Reader, Replay, SetStatus, Start, Typing,
};
use crate::actors::operator::{Deliver, ListConversations, SetPresence, Track};
use crate::actors::router::{ListBoard, ListLive, RefreshBoards};
use crate::actors::Core;
use crate::auth::{Auth, Principal};
use crate::config::WsConfig;
use crate::domain::chatbot::ScriptRun;
use crate::domain::conversation::{Conversation, Message, Poster, RequestedStatus, Visitor};
use crate::domain::operator::{Presence, Role};
use crate::domain::report::{self, Facts, Scope};
use crate::domain::text::{self, InvalidField};
use crate::domain::{ChannelId, ConversationId, ExpertiseId, MessageId, OperatorId};
use crate::error::ApiError;
use crate::persist::records::{DirectoryV1, RecordV1};
use crate::persist::{self, SnapshotStats, StoreError};
use crate::views::{BoardEntry, ConversationSummary, ConversationView, LiveStatus, RoutingReport, UserView};
use crate::ws::outbound::{timed, ConnectionSlots};
use crate::ws::protocol::AgentEvent;

/// The operator making a request, as resolved from their token.
#[derive(Clone, Debug)]
pub struct Caller {
    pub id: OperatorId,
    pub role: Role,
    /// The token used, so logout can revoke exactly it.
    pub token: String,
}

impl Caller {
    pub fn reader(&self) -> Reader {
        Reader { operator: self.id, is_admin: self.role == Role::Admin }
    }
}

/// A visitor opening a session on a channel (`POST /channels/{id}/sessions`).
#[derive(Debug, Default)]
pub struct NewVisitor {
    pub visitor_name: Option<String>,
    pub lang: Option<String>,
    pub country: Option<String>,
    pub expertise_ids: BTreeSet<ExpertiseId>,
    pub visitor_key: Option<String>,
}

/// Longest `visitor_key`: an opaque id, not a place to store data.
pub const MAX_VISITOR_KEY_CHARS: usize = 128;

pub struct Hub {
    pub core: Arc<Core>,
    pub auth: Auth,
    pub ws: WsConfig,
    /// Largest JSON request body accepted (413 beyond).
    pub max_body_bytes: usize,
    pub slots: Arc<ConnectionSlots>,
    /// Flips to `true` when the server stops, closing every session.
    pub shutdown: watch::Receiver<bool>,
}

impl Hub {
    /// # Errors
    /// `NotFound` when no such conversation exists.
    pub fn conversation(&self, id: ConversationId) -> Result<Addr<ConversationActor>, ApiError> {
        self.core.conversation(id).ok_or_else(|| ApiError::not_found("conversation"))
    }

    /// Resolves an operator's bearer token.
    ///
    /// # Errors
    /// `Unauthorized` for an unknown token, `Forbidden` for a visitor's token.
    pub fn operator_caller(&self, token: &str) -> Result<Caller, ApiError> {
        match self.auth.resolve(token) {
            Some(Principal::Operator(id)) => {
                let directory = self.core.directory.read();
                let operator = directory.operator(id).ok_or_else(|| ApiError::Unauthorized("invalid or expired token".into()))?;
                Ok(Caller { id, role: operator.role, token: token.to_owned() })
            }
            Some(Principal::Visitor(_)) => Err(ApiError::Forbidden("a visitor token cannot be used here".into())),
            None => Err(ApiError::Unauthorized("invalid or expired token".into())),
        }
    }

    /// Resolves a visitor's token to their one conversation.
    ///
    /// # Errors
    /// `Unauthorized` for an unknown token, `Forbidden` for an operator's token.
    pub fn visitor_conversation(&self, token: &str) -> Result<ConversationId, ApiError> {
        match self.auth.resolve(token) {
            Some(Principal::Visitor(id)) => Ok(id),
            Some(Principal::Operator(_)) => Err(ApiError::Forbidden("this endpoint is for visitors".into())),
            None => Err(ApiError::Unauthorized("invalid or expired visitor token".into())),
        }
    }

    /// Presence and load of every operator the router knows (others are offline and idle).
    pub async fn live(&self) -> Result<HashMap<OperatorId, LiveStatus>, ApiError> {
        Ok(self.core.router().send(ListLive).await?)
    }

    /// The users with the given ids (all when `None`), with live status.
    pub async fn users(&self, only: Option<OperatorId>) -> Result<Vec<UserView>, ApiError> {
        let live = self.live().await?;
        let directory = self.core.directory.read();
        Ok(directory
            .operators()
            .filter(|op| only.is_none_or(|id| id == op.id))
            .map(|op| UserView::new(op, live.get(&op.id).copied().unwrap_or_default()))
            .collect())
    }

    /// # Errors
    /// `NotFound` when the user does not exist.
    pub async fn user(&self, id: OperatorId) -> Result<UserView, ApiError> {
        self.users(Some(id)).await?.pop().ok_or_else(|| ApiError::not_found("user"))
    }

    /// Opens a visitor's conversation on `channel` and forwards it to the router.
    ///
    /// # Errors
    /// `NotFound` channel, `BadRequest` for an invalid field or unknown expertise.
    pub async fn open_visitor_session(&self, channel: ChannelId, new: NewVisitor) -> Result<(ConversationId, String), ApiError> {
        // The channel's current script; the conversation keeps this version even if it is edited later.
        let script = {
            let directory = self.core.directory.read();
            let channel = directory.channel(channel).ok_or_else(|| ApiError::not_found("channel"))?;
            directory.check_expertise("expertise_ids", &new.expertise_ids)?;
            channel.chatbot_id.and_then(|id| directory.chatbot(id).cloned())
        };
        let lang = new.lang.as_deref().map(|l| text::language("lang", l)).transpose()?;
        let country = new.country.as_deref().map(text::country).transpose()?;
        let visitor_key = new.visitor_key.as_deref().map(|k| text::bounded("visitor_key", k, MAX_VISITOR_KEY_CHARS)).transpose()?;
        let id = self.core.next_conversation_id();
        let name = match new.visitor_name.as_deref() {
            Some(name) => text::name("visitor_name", name)?,
            None => format!("Visitor #{id}"),
        };
        let visitor = Visitor { name, lang, country, key: visitor_key };
        let conversation = Conversation::livechat(id, channel, visitor, new.expertise_ids, script.map(ScriptRun::new));
        let token = self.auth.issue(Principal::Visitor(id));
        let addr = self.core.start_conversation(conversation, Some(token.clone()));
        addr.send(Start).await??;
        Ok((id, token))
    }

    /// # Errors
    /// `NotFound`, or the conversation's refusal (`Forbidden`, `Conflict`, `BadRequest`).
    /// `None` when an empty line ended a chatbot's multi-line question (nothing stored).
    ///
    /// # Errors
    /// `NotFound`, or the conversation's refusal (`Forbidden`, `Conflict`, `BadRequest`).
    pub async fn post_message(
        &self,
        conversation: ConversationId,
        poster: Poster,
        content: Content,
        client_ref: Option<String>,
    ) -> Result<Option<Message>, ApiError> {
        Ok(self.conversation(conversation)?.send(PostMessage { poster, content, client_ref }).await??)
    }

    pub async fn read(&self, conversation: ConversationId, caller: &Caller) -> Result<ConversationView, ApiError> {
        Ok(self.conversation(conversation)?.send(GetConversation { reader: caller.reader() }).await??)
    }

    pub async fn set_status(
        &self,
        conversation: ConversationId,
        caller: &Caller,
        status: RequestedStatus,
    ) -> Result<ConversationView, ApiError> {
        Ok(self.conversation(conversation)?.send(SetStatus { by: caller.id, status }).await??)
    }

    pub async fn join(&self, conversation: ConversationId, caller: &Caller) -> Result<ConversationView, ApiError> {
        Ok(self.conversation(conversation)?.send(Join { operator: caller.id }).await??)
    }

    pub async fn replay(&self, conversation: ConversationId, caller: &Caller, after: MessageId) -> Result<Vec<Message>, ApiError> {
        Ok(self.conversation(conversation)?.send(Replay { reader: caller.reader(), after }).await??)
    }

    pub async fn typing(&self, conversation: ConversationId, poster: Poster) -> Result<(), ApiError> {
        Ok(self.conversation(conversation)?.send(Typing { poster }).await??)
    }

    /// # Errors
    /// `Conflict` when the operator has no open connection.
    pub async fn set_presence(&self, operator: OperatorId, presence: Presence) -> Result<Presence, ApiError> {
        self.core.operator(operator).send(SetPresence { presence }).await?.map_err(|e| ApiError::Conflict(e.to_string()))
    }

    /// The conversations `operator` belongs to, newest first.
    pub async fn member_conversations(&self, operator: OperatorId) -> Result<Vec<ConversationSummary>, ApiError> {
        let ids = self.core.operator(operator).send(ListConversations).await?;
        let requests = ids.iter().filter_map(|&id| self.core.conversation(id)).map(|addr| addr.send(GetSummary { reader: None }));
        let mut summaries: Vec<ConversationSummary> = join_all(requests).await.into_iter().filter_map(|r| r.ok()?.ok()).collect();
        summaries.sort_by_key(|s| std::cmp::Reverse(s.id));
        Ok(summaries)
    }

    /// The Looking-for-help board with `operator`'s stars.
    pub async fn board(&self, operator: OperatorId) -> Result<Vec<BoardEntry>, ApiError> {
        Ok(self.core.router().send(ListBoard { operator }).await?)
    }

    /// The direct conversation between `caller` and `other`, opened if needed.
    ///
    /// # Errors
    /// `BadRequest` when `other` is the caller or does not exist.
    pub async fn open_direct(&self, caller: &Caller, other: OperatorId) -> Result<ConversationView, ApiError> {
        if other == caller.id {
            return Err(InvalidField::new("user_id", "must be another operator, not yourself").into());
        }
        if self.core.directory.read().operator(other).is_none() {
            return Err(InvalidField::new("user_id", format!("names unknown user {other}")).into());
        }
        let (id, started) = self.core.open_direct(caller.id, other);
        if started {
            self.conversation(id)?.send(Start).await??;
        }
        let view = self.read(id, caller).await?;
        if started {
            for member in [caller.id, other] {
                self.core.operator(member).do_send(Track { conversation: id, member: true });
            }
            self.core.operator(other).do_send(Deliver(timed(AgentEvent::Invited { conversation: view.clone() })));
        }
        Ok(view)
    }

    /// Issues an operator's bearer token; answers once it is durable, so it
    /// keeps working after a restart.
    ///
    /// # Errors
    /// `Unavailable` when it cannot be stored.
    pub async fn issue_operator_token(&self, operator: OperatorId) -> Result<String, ApiError> {
        let token = self.auth.issue(Principal::Operator(operator));
        self.core.store.journal.append(&RecordV1::TokenIssued { token: token.clone(), operator_id: operator.0 }).await?;
        Ok(token)
    }

    /// Revokes a token for good (also across restarts).
    ///
    /// # Errors
    /// `Unavailable` when it cannot be stored.
    pub async fn revoke_token(&self, token: &str) -> Result<(), ApiError> {
        self.auth.revoke(token);
        self.core.store.journal.append(&RecordV1::TokenRevoked { token: token.to_owned() }).await?;
        Ok(())
    }

    /// Revokes every token of `operator`, for good.
    ///
    /// # Errors
    /// `Unavailable` when it cannot be stored.
    pub async fn revoke_operator_tokens(&self, operator: OperatorId) -> Result<(), ApiError> {
        let revoked = self.auth.revoke_operator(operator);
        let stored = revoked.into_iter().map(|token| self.core.store.journal.append(&RecordV1::TokenRevoked { token }));
        for result in join_all(stored).await {
            result?;
        }
        Ok(())
    }

    /// Writes a snapshot of the whole state; see `persist` for why the copy
    /// can be taken actor by actor while chat goes on.
    ///
    /// # Errors
    /// When the journal failed, an actor is gone (shutting down) or the file cannot be written.
    pub async fn snapshot(&self) -> Result<SnapshotStats, ApiError> {
        let capture = || async {
            let directory = DirectoryV1::from(&*self.core.directory.read());
            let tokens = self.auth.operator_tokens();
            let copies = join_all(self.core.conversations().iter().map(|addr| addr.send(Capture))).await;
            let copies = copies.into_iter().collect::<Result<Vec<_>, _>>().map_err(|_| StoreError::Stopped)?;
            let longest_pause = copies.iter().map(|&(_, took)| took).max().unwrap_or_default();
            let conversations = copies.into_iter().map(|(copy, _)| copy).collect();
            Ok(persist::Capture { directory, tokens, conversations, longest_pause })
        };
        Ok(self.core.store.snapshot(capture).await?)
    }

    /// The routing report over the conversations `scope` covers.
    pub async fn routing_report(&self, scope: Scope) -> Result<RoutingReport, ApiError> {
        let live = self.live().await?;
        let facts = join_all(self.core.conversations().iter().map(|addr| addr.send(GetFacts))).await;
        let facts: Vec<Facts> =
            facts.into_iter().collect::<Result<Vec<_>, _>>()?.into_iter().flatten().filter(|f| scope.covers(f)).collect();
        let active: HashMap<OperatorId, u32> = live.iter().map(|(&id, l)| (id, l.active_chats)).collect();
        let directory = self.core.directory.read();
        Ok(RoutingReport {
            from: scope.from,
            to: scope.to,
            channel_id: scope.channel,
            conversations: facts.len() as u32,
            expertise: report::expertise_rows(&facts, &directory),
            operators: report::operator_rows(&facts, &directory, &active),
        })
    }

    /// Operators' expertise changed: re-send their boards with fresh stars.
    pub fn expertise_changed(&self, operators: Vec<OperatorId>) {
        self.core.router().do_send(RefreshBoards { operators });
    }
}
