//! `Hub`: the one way HTTP handlers and WebSocket sessions reach the server's
//! state. Every operation that changes something is one method here, with all
//! of its consequences (journal, router, boards, queues, sockets); handlers
//! only parse, authorise and map errors. Reads go through here too, so no
//! handler holds an actor address or the directory lock for writing.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use actix::Addr;
use futures_util::future::join_all;
use parking_lot::RwLockReadGuard;
use tokio::sync::watch;

use crate::actors::conversation::{
    AttachVisitor, Close, Closer, Content, ConversationActor, CopyForSnapshot, DirectoryPruned, GetConversation, GetFacts, GetSummary,
    GetVisitorConversation, Invite, Join, Leave, PostMessage, Reader, Replay, SetExpertise, SetStatus, Start, Typing,
};
use crate::actors::operator::{Connect, Deactivate, Deliver, Disconnect, ListConversations, SetPresence, Track};
use crate::actors::router::{DirectoryChanged, ListBoard, ListLive};
use crate::actors::Core;
use crate::auth::{verify_password, Auth, LoginAttempt, Principal};
use crate::config::{Limits, WsConfig};
use crate::domain::chatbot::ScriptRun;
use crate::domain::conversation::{Conversation, Message, Poster, RequestedStatus, Status, Visitor};
use crate::domain::directory::{Directory, DirectoryDiff};
use crate::domain::operator::{Presence, Role};
use crate::domain::report::{self, Facts, Scope};
use crate::domain::text::{self, InvalidField};
use crate::domain::{ChannelId, ConversationId, ExpertiseId, MessageId, OperatorId};
use crate::error::ApiError;
use crate::metrics::{RoleLabel, SocketKind};
use crate::persist::records::{DirectoryV2, RecordV1};
use crate::persist::{self, SnapshotStats, StoreError};
use crate::views::{BoardEntry, ConversationSummary, ConversationView, LiveStatus, RoutingReport, UserView, VisitorConversationView};
use crate::ws::outbound::{timed, ConnectionSlots, SessionTx, Slot};
use crate::ws::protocol::{AgentEvent, VisitorEvent};

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
    core: Arc<Core>,
    auth: Auth,
    ws: WsConfig,
    /// Largest JSON request body accepted (413 beyond).
    max_body_bytes: usize,
    slots: Arc<ConnectionSlots>,
    /// Flips to `true` when the server stops, closing every session.
    shutdown: watch::Receiver<bool>,
}

impl Hub {
    pub fn new(core: Arc<Core>, auth: Auth, ws: WsConfig, max_body_bytes: usize, shutdown: watch::Receiver<bool>) -> Hub {
        let slots = ConnectionSlots::new(ws.max_connections);
        Hub { core, auth, ws, max_body_bytes, slots, shutdown }
    }

    // ---- settings and plumbing the transports need ----

    pub fn ws_config(&self) -> &WsConfig {
        &self.ws
    }

    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    pub fn limits(&self) -> &Limits {
        &self.core.limits
    }

    /// A receiver that flips to `true` when the server stops.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    /// A connection slot for a new WebSocket of `kind`.
    ///
    /// # Errors
    /// `OverCapacity` at the configured cap; existing connections are unaffected.
    pub fn open_slot(&self, kind: SocketKind) -> Result<Slot, ApiError> {
        let gauge = self.core.metrics.ws_connections.get_or_create(&RoleLabel { role: kind }).clone();
        self.slots.acquire(gauge).ok_or(ApiError::OverCapacity)
    }

    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.core.metrics
    }

    /// The Prometheus text exposition, with the snapshot age read now.
    pub fn metrics_text(&self) -> String {
        self.core.metrics.snapshot_age.set(self.core.store.snapshot_age().as_secs_f64());
        self.core.metrics.encode()
    }

    /// Operators, expertise, channels and chatbots, for reading only: every
    /// change goes through a method below, so its consequences follow.
    pub fn directory(&self) -> RwLockReadGuard<'_, Directory> {
        self.core.directory.read()
    }

    fn conversation(&self, id: ConversationId) -> Result<Addr<ConversationActor>, ApiError> {
        self.core.conversation(id).ok_or_else(|| ApiError::not_found("conversation"))
    }

    // ---- who is calling ----

    /// Resolves an operator's bearer token.
    ///
    /// # Errors
    /// `Unauthorized` for an unknown token or a deactivated operator, `Forbidden` for a visitor's token.
    pub fn operator_caller(&self, token: &str) -> Result<Caller, ApiError> {
        let invalid = || ApiError::Unauthorized("invalid or expired token".into());
        match self.auth.resolve(token) {
            Some(Principal::Operator(id)) => {
                let directory = self.core.directory.read();
                let operator = directory.operator(id).filter(|op| op.active).ok_or_else(invalid)?;
                Ok(Caller { id, role: operator.role, token: token.to_owned() })
            }
            Some(Principal::Visitor(_)) => Err(ApiError::Forbidden("a visitor token cannot be used here".into())),
            None => Err(invalid()),
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

    /// Checks a login and password and issues a token that survives a restart.
    ///
    /// # Errors
    /// `TooManyRequests` when throttled; `Unauthorized` with the same message
    /// for an unknown login, a wrong password or a deactivated operator.
    pub async fn login(&self, login: &str, password: String, ip: Option<&str>) -> Result<(String, UserView), ApiError> {
        let attempt = LoginAttempt::new(login, ip);
        self.auth.check_throttle(&attempt).map_err(ApiError::TooManyRequests)?;
        let found = self.core.directory.read().operator_by_login(login).filter(|op| op.active).map(|op| (op.id, op.password_hash.clone()));
        // A dummy hash for unknown logins, so both answers take as long.
        let hash = found.as_ref().map_or_else(|| self.auth.dummy_hash().to_owned(), |(_, hash)| hash.clone());
        // argon2 takes tens of milliseconds: keep it off the async worker.
        let matches = actix_web::web::block(move || verify_password(&hash, &password)).await.map_err(|e| ApiError::Internal(e.into()))?;
        let Some((id, _)) = found.filter(|_| matches) else {
            self.auth.record_failure(&attempt);
            return Err(ApiError::Unauthorized("invalid login or password".into()));
        };
        self.auth.record_success(&attempt);
        let token = self.auth.issue(Principal::Operator(id));
        self.core.store.journal.append(&RecordV1::TokenIssued { token: token.clone(), operator_id: id.0 }).await?;
        Ok((token, self.user(id).await?))
    }

    /// Revokes a token for good (also across restarts).
    ///
    /// # Errors
    /// `Unavailable` when it cannot be stored.
    pub async fn logout(&self, caller: &Caller) -> Result<(), ApiError> {
        self.auth.revoke(&caller.token);
        self.core.store.journal.append(&RecordV1::TokenRevoked { token: caller.token.clone() }).await?;
        Ok(())
    }

    /// Revokes every token of `operator`, for good.
    async fn revoke_operator_tokens(&self, operator: OperatorId) -> Result<(), ApiError> {
        let revoked = self.auth.revoke_operator(operator);
        let stored = revoked.into_iter().map(|token| self.core.store.journal.append(&RecordV1::TokenRevoked { token }));
        for result in join_all(stored).await {
            result?;
        }
        Ok(())
    }

    // ---- the directory ----

    /// Makes a directory change durable, then what follows from it: the
    /// same for every kind of change, computed from before and after.
    ///
    /// # Errors
    /// The change's own refusal, or `Unavailable` when it cannot be stored.
    pub async fn change_directory<T>(&self, change: impl FnOnce(&mut Directory) -> Result<T, ApiError>) -> Result<T, ApiError> {
        let (value, diff) = self.core.change_directory(change).await?;
        self.follow(diff).await?;
        Ok(value)
    }

    /// What a directory change means for live state.
    async fn follow(&self, diff: DirectoryDiff) -> Result<(), ApiError> {
        for &operator in &diff.credentials_revoked {
            // Whoever learned the old password, or holds a deactivated account's token, is out everywhere.
            self.revoke_operator_tokens(operator).await?;
        }
        for &operator in &diff.deactivated {
            self.core.operator(operator).do_send(Deactivate);
        }
        if !diff.expertise_deleted.is_empty() || !diff.channels_deleted.is_empty() {
            let pruned = DirectoryPruned { expertise: diff.expertise_deleted.clone(), channels: diff.channels_deleted.clone() };
            for conversation in self.core.conversations() {
                conversation.do_send(pruned.clone());
            }
        }
        self.core.router().do_send(DirectoryChanged(diff));
        Ok(())
    }

    // ---- operators ----

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

    /// # Errors
    /// `Conflict` when the operator has no open connection.
    pub async fn set_presence(&self, operator: OperatorId, presence: Presence) -> Result<Presence, ApiError> {
        self.core.operator(operator).send(SetPresence { presence }).await?.map_err(|e| ApiError::Conflict(e.to_string()))
    }

    /// Registers a console tab, making the operator online, and answers its
    /// greeting. Registered before the state is read, so an event after the
    /// greeting is queued, not lost.
    ///
    /// # Errors
    /// As the reads of the greeting; the tab is unregistered then.
    pub async fn connect_operator(&self, caller: &Caller, session: SessionTx<AgentEvent>) -> Result<AgentEvent, ApiError> {
        let operator = self.core.operator(caller.id);
        operator.send(Connect { session: session.clone() }).await?;
        let hello = async {
            let user = self.user(caller.id).await?;
            let mut conversations = self.member_conversations(caller.id).await?;
            conversations.retain(|c| c.status != Status::Closed);
            let need_help = self.board(caller.id).await?;
            Ok(AgentEvent::Hello { user, conversations, need_help })
        };
        let hello = hello.await;
        if hello.is_err() {
            operator.do_send(Disconnect { session });
        }
        hello
    }

    /// A console tab closed.
    pub fn disconnect_operator(&self, operator: OperatorId, session: SessionTx<AgentEvent>) {
        self.core.operator(operator).do_send(Disconnect { session });
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

    // ---- visitors ----

    /// Opens a visitor's conversation on `channel` and forwards it to the router.
    ///
    /// # Errors
    /// `NotFound` channel, `BadRequest` for an invalid field or unknown expertise,
    /// `TooManyRequests` beyond the per-address session limit.
    pub async fn open_visitor_session(&self, channel: ChannelId, new: NewVisitor, ip: &str) -> Result<(ConversationId, String), ApiError> {
        self.auth.count_session(ip).map_err(ApiError::TooManyRequests)?;
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
        let visitor_name = new.visitor_name.as_deref().map(|name| text::name("visitor_name", name)).transpose()?;
        let id = self.core.next_conversation_id();
        let name = visitor_name.unwrap_or_else(|| format!("Visitor #{id}"));
        let visitor = Visitor { name, lang, country, key: visitor_key };
        let conversation = Conversation::livechat(id, channel, visitor, new.expertise_ids, script.map(ScriptRun::new));
        let token = self.auth.issue(Principal::Visitor(id));
        let addr = self.core.start_conversation(conversation, Some(token.clone()));
        addr.send(Start).await??;
        Ok((id, token))
    }

    /// The conversation as its visitor sees it, once everything in it is durable.
    pub async fn visitor_view(&self, conversation: ConversationId) -> Result<VisitorConversationView, ApiError> {
        Ok(self.conversation(conversation)?.send(GetVisitorConversation).await??)
    }

    /// Registers a widget connection and answers its greeting (hello, then
    /// every message after `after`) in one step, so nothing falls between.
    pub async fn attach_visitor(
        &self,
        conversation: ConversationId,
        session: SessionTx<VisitorEvent>,
        after: Option<MessageId>,
    ) -> Result<Vec<VisitorEvent>, ApiError> {
        Ok(self.conversation(conversation)?.send(AttachVisitor { session, after }).await??)
    }

    /// The visitor leaves: the conversation closes and operators are told.
    ///
    /// # Errors
    /// `Conflict` when already closed.
    pub async fn visitor_leave(&self, conversation: ConversationId) -> Result<VisitorConversationView, ApiError> {
        self.conversation(conversation)?.send(Close { by: Closer::Visitor }).await??;
        self.visitor_view(conversation).await
    }

    // ---- conversations ----

    /// Posts a message; `None` when an empty line ended a chatbot's multi-line
    /// question (nothing stored).
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

    /// The list form of a conversation the caller may read.
    pub async fn summary(&self, conversation: ConversationId, caller: &Caller) -> Result<ConversationSummary, ApiError> {
        Ok(self.conversation(conversation)?.send(GetSummary { reader: Some(caller.reader()) }).await??)
    }

    pub async fn set_status(
        &self,
        conversation: ConversationId,
        caller: &Caller,
        status: RequestedStatus,
    ) -> Result<ConversationView, ApiError> {
        Ok(self.conversation(conversation)?.send(SetStatus { by: caller.id, status }).await??)
    }

    /// # Errors
    /// `BadRequest` for an unknown expertise id, or the conversation's refusal.
    pub async fn set_expertise(
        &self,
        conversation: ConversationId,
        caller: &Caller,
        expertise_ids: BTreeSet<ExpertiseId>,
    ) -> Result<ConversationView, ApiError> {
        self.core.directory.read().check_expertise("expertise_ids", &expertise_ids)?;
        Ok(self.conversation(conversation)?.send(SetExpertise { by: caller.id, expertise_ids }).await??)
    }

    pub async fn join(&self, conversation: ConversationId, caller: &Caller) -> Result<ConversationView, ApiError> {
        Ok(self.conversation(conversation)?.send(Join { operator: caller.id }).await??)
    }

    /// # Errors
    /// `BadRequest` for an empty list or an unknown or deactivated user, or the conversation's refusal.
    pub async fn invite(
        &self,
        conversation: ConversationId,
        caller: &Caller,
        invitees: Vec<OperatorId>,
    ) -> Result<ConversationView, ApiError> {
        if invitees.is_empty() {
            return Err(InvalidField::new("user_ids", "must name at least one user").into());
        }
        if let Some(unknown) = invitees.iter().find(|&&u| !self.core.directory.read().operator(u).is_some_and(|op| op.active)) {
            return Err(InvalidField::new("user_ids", format!("names unknown user {unknown}")).into());
        }
        Ok(self.conversation(conversation)?.send(Invite { by: caller.id, invitees }).await??)
    }

    pub async fn leave(&self, conversation: ConversationId, caller: &Caller) -> Result<(), ApiError> {
        Ok(self.conversation(conversation)?.send(Leave { operator: caller.id }).await??)
    }

    pub async fn close(&self, conversation: ConversationId, caller: &Caller) -> Result<ConversationView, ApiError> {
        Ok(self.conversation(conversation)?.send(Close { by: Closer::Operator(caller.id) }).await??)
    }

    pub async fn replay(&self, conversation: ConversationId, caller: &Caller, after: MessageId) -> Result<Vec<Message>, ApiError> {
        Ok(self.conversation(conversation)?.send(Replay { reader: caller.reader(), after }).await??)
    }

    pub async fn typing(&self, conversation: ConversationId, poster: Poster) -> Result<(), ApiError> {
        Ok(self.conversation(conversation)?.send(Typing { poster }).await??)
    }

    /// The direct conversation between `caller` and `other`, opened if needed.
    ///
    /// # Errors
    /// `BadRequest` when `other` is the caller or does not exist.
    pub async fn open_direct(&self, caller: &Caller, other: OperatorId) -> Result<ConversationView, ApiError> {
        if other == caller.id {
            return Err(InvalidField::new("user_id", "must be another operator, not yourself").into());
        }
        if !self.core.directory.read().operator(other).is_some_and(|op| op.active) {
            return Err(InvalidField::new("user_id", format!("names unknown user {other}")).into());
        }
        let (id, started) = self.core.open_direct(caller.id, other);
        if started {
            self.conversation(id)?.send(Start).await??;
        }
        let view = self.read(id, caller).await?;
        if started {
            for member in [caller.id, other] {
                self.core.operator(member).do_send(Track::Joined(id));
            }
            self.core.operator(other).do_send(Deliver(timed(AgentEvent::Invited { conversation: view.clone() })));
        }
        Ok(view)
    }

    // ---- operations ----

    /// Writes a snapshot of the whole state; see `persist` for why the copy
    /// can be taken actor by actor while chat goes on.
    ///
    /// # Errors
    /// When the journal failed, an actor is gone (shutting down) or the file cannot be written.
    pub async fn snapshot(&self) -> Result<SnapshotStats, ApiError> {
        let capture = || async {
            let directory = DirectoryV2::from(&*self.core.directory.read());
            let tokens = self.auth.operator_tokens();
            let copies = join_all(self.core.conversations().iter().map(|addr| addr.send(CopyForSnapshot))).await;
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
        let facts: Vec<Facts> = facts
            .into_iter()
            .map(|f| Ok::<_, ApiError>(f??))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .filter(|f| scope.covers(f))
            .collect();
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
}
