//! `Hub`: the one way HTTP handlers and WebSocket sessions reach the server's
//! state. Every operation that changes something is one method here, with all
//! of its consequences (journal, router, boards, queues, sockets); handlers
//! only parse, authorise and map errors. Reads go through here too, so no
//! handler holds an actor address or the directory lock for writing.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use actix::{Addr, Handler};
use futures_util::future::join_all;
use parking_lot::RwLockReadGuard;
use tokio::sync::watch;

use crate::actors::conversation::{
    AttachVisitor, ChangeVisitor, Close, Closer, Content, ConversationActor, DirectoryPruned, Erase, FindInHistory, GetConversation,
    GetFacts, GetSummary, GetVisitorConversation, Invite, Join, Leave, PostMessage, Reader, Replay, SetExpertise, SetStatus, Start,
    Transfer, Typing, UntilArchived, VisitorChange,
};
use crate::actors::operator::{Connect, Deactivate, Deliver, Disconnect, ListConversations, SetPresence, Track};
use crate::actors::router::{DirectoryChanged, ListBoard, ListLive};
use crate::actors::Core;
use crate::archive::{Archived, Attempt, Mail, RateRefused};
use crate::auth::{verify_password, LoginAttempt, Principal};
use crate::config::{Limits, WsConfig};
use crate::domain::chatbot::ScriptRun;
use crate::domain::conversation::{Conversation, ConversationError, Message, Poster, Rating, RequestedStatus, Status, Visitor};
use crate::domain::directory::{Directory, DirectoryDiff};
use crate::domain::history::{self, HistoryFilter, Viewer};
use crate::domain::lead::{Lead, LeadRefused, LeadStatus};
use crate::domain::operator::{Presence, Role};
use crate::domain::report::{self, Facts, Scope};
use crate::domain::text::{self, InvalidField};
use crate::domain::time::Timestamp;
use crate::domain::visitor::{self, Detail, VisitorContext};
use crate::domain::webhook::{self, Webhook, WebhookEvent};
use crate::domain::{ChannelId, ConversationId, ExpertiseId, MessageId, OperatorId};
use crate::error::ApiError;
use crate::metrics::{RoleLabel, SocketKind};
use crate::persist::records::{DirectoryV5, RecordV1};
use crate::persist::{self, SnapshotStats};
use crate::views::{
    transcript_text, BoardEntry, ConversationSummary, ConversationView, HistoryItem, HistoryPage, LeadView, LiveStatus, RoutingReport,
    UserView, VisitorConversationView,
};
use crate::ws::outbound::{timed, ConnectionSlots, SessionId, SessionTx, Slot};
use crate::ws::protocol::{AgentEvent, PresenceFrames, VisitorEvent};

/// A new webhook's fields, or the ones a change replaces (`None`: unchanged).
#[derive(Debug, Default)]
pub struct WebhookChange {
    pub url: Option<String>,
    pub events: Option<Vec<WebhookEvent>>,
    pub secret: Option<String>,
}

/// The operator making a request, as resolved from their token.
#[derive(Clone, Debug)]
pub struct Caller {
    pub id: OperatorId,
    pub role: Role,
    /// The token used, so logout can revoke exactly it.
    pub token: String,
}

/// A visitor opening a session on a channel (`POST /channels/{id}/sessions`).
#[derive(Debug, Default)]
pub struct NewVisitor {
    pub visitor_name: Option<String>,
    pub lang: Option<String>,
    pub country: Option<String>,
    pub expertise_ids: BTreeSet<ExpertiseId>,
    pub visitor_key: Option<String>,
    pub email: Option<String>,
    pub page_url: Option<String>,
    pub page_title: Option<String>,
    pub referrer: Option<String>,
    pub timezone: Option<String>,
    /// The `User-Agent` header of the request.
    pub user_agent: Option<String>,
}

/// Most results of `visitor_history`.
const MAX_VISITOR_HISTORY: usize = 100;

/// How long an erasure waits for open conversations to be closed and archived.
const ERASE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Longest `visitor_key`: an opaque id, not a place to store data.
pub const MAX_VISITOR_KEY_CHARS: usize = 128;

pub struct Hub {
    core: Arc<Core>,
    ws: WsConfig,
    /// Largest JSON request body accepted (413 beyond).
    max_body_bytes: usize,
    slots: Arc<ConnectionSlots>,
    /// Flips to `true` when the server stops, closing every session.
    shutdown: watch::Receiver<bool>,
}

impl Hub {
    pub fn new(core: Arc<Core>, ws: WsConfig, max_body_bytes: usize, shutdown: watch::Receiver<bool>) -> Hub {
        let slots = ConnectionSlots::new(ws.max_connections);
        Hub { core, ws, max_body_bytes, slots, shutdown }
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
        self.core.metrics.archive_memory.set(crate::archive::memory_used());
        self.core.metrics.encode()
    }

    /// Operators, expertise, channels and chatbots, for reading only: every
    /// change goes through a method below, so its consequences follow.
    pub fn directory(&self) -> RwLockReadGuard<'_, Directory> {
        self.core.directory.read()
    }

    /// The live actor's answer to `msg`; `None` when there is no live actor,
    /// or it retired (moved to the archive) while the message waited.
    async fn ask_live<M, T, E>(&self, id: ConversationId, msg: M) -> Option<Result<T, ApiError>>
    where
        M: actix::Message<Result = Result<T, E>> + Send + 'static,
        ConversationActor: Handler<M>,
        T: Send + 'static,
        E: Send + 'static,
        ApiError: From<E>,
    {
        let answer = self.core.conversation(id)?.send(msg).await.ok()?;
        Some(answer.map_err(ApiError::from))
    }

    /// Sends a command to a live conversation. One that is archived is
    /// closed: 409, as for a live closed one.
    async fn command<M, T, E>(&self, id: ConversationId, msg: M) -> Result<T, ApiError>
    where
        M: actix::Message<Result = Result<T, E>> + Send + 'static,
        ConversationActor: Handler<M>,
        T: Send + 'static,
        E: Send + 'static,
        ApiError: From<E>,
    {
        if let Some(answer) = self.ask_live(id, msg).await {
            return answer;
        }
        Err(match self.core.archive.contains(id).await {
            Ok(true) => ConversationError::Closed.into(),
            Ok(false) => ApiError::not_found("conversation"),
            Err(e) => e.into(),
        })
    }

    /// Reads a conversation: from its actor while live, else from the archive.
    async fn read_with<M, T, E>(
        &self,
        id: ConversationId,
        msg: M,
        archived: impl FnOnce(Archived) -> Result<T, ApiError>,
    ) -> Result<T, ApiError>
    where
        M: actix::Message<Result = Result<T, E>> + Send + 'static,
        ConversationActor: Handler<M>,
        T: Send + 'static,
        E: Send + 'static,
        ApiError: From<E>,
    {
        if let Some(answer) = self.ask_live(id, msg).await {
            return answer;
        }
        let found = self.core.archive.conversation(id).await?.ok_or_else(|| ApiError::not_found("conversation"))?;
        archived(found)
    }

    /// Who is searching or reading history, with the channels they belong to.
    fn viewer(&self, caller: &Caller) -> Viewer {
        Viewer::new(caller.id, caller.role == Role::Admin, &self.core.directory.read())
    }

    /// An archived conversation, if `caller` may read it.
    fn archived_for(&self, archived: Archived, caller: &Caller) -> Result<Conversation, ApiError> {
        if self.viewer(caller).sees(archived.conversation.channel_id, &archived.participants) {
            Ok(archived.conversation)
        } else {
            Err(ConversationError::NotReadable.into())
        }
    }

    // ---- who is calling ----

    /// Whom a bearer token stands for: a live token, or the visitor token of an
    /// archived conversation (memory holds live conversations' tokens only).
    async fn principal(&self, token: &str) -> Result<Option<Principal>, ApiError> {
        if let Some(principal) = self.core.auth.resolve(token) {
            return Ok(Some(principal));
        }
        Ok(self.core.archive.by_visitor_token(token.to_owned()).await?.map(Principal::Visitor))
    }

    /// Resolves an operator's bearer token.
    ///
    /// # Errors
    /// `Unauthorized` for an unknown token or a deactivated operator, `Forbidden` for a visitor's token.
    pub async fn operator_caller(&self, token: &str) -> Result<Caller, ApiError> {
        let invalid = || ApiError::Unauthorized("invalid or expired token".into());
        match self.principal(token).await? {
            Some(Principal::Operator(id)) => {
                let directory = self.core.directory.read();
                let operator = directory.operator(id).filter(|op| op.active).ok_or_else(invalid)?;
                Ok(Caller { id, role: operator.role, token: token.to_owned() })
            }
            Some(Principal::Visitor(_)) => Err(ApiError::Forbidden("a visitor token cannot be used here".into())),
            None => Err(invalid()),
        }
    }

    /// Resolves a visitor's token to their one conversation; the token of an
    /// archived conversation keeps working (to read it after it closed).
    ///
    /// # Errors
    /// `Unauthorized` for an unknown token, `Forbidden` for an operator's token.
    pub async fn visitor_conversation(&self, token: &str) -> Result<ConversationId, ApiError> {
        match self.principal(token).await? {
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
        self.core.auth.check_throttle(&attempt).map_err(ApiError::TooManyRequests)?;
        let found = self.core.directory.read().operator_by_login(login).filter(|op| op.active).map(|op| (op.id, op.password_hash.clone()));
        // A dummy hash for unknown logins, so both answers take as long.
        let hash = found.as_ref().map_or_else(|| self.core.auth.dummy_hash().to_owned(), |(_, hash)| hash.clone());
        // argon2 takes tens of milliseconds: keep it off the async worker.
        let matches = actix_web::web::block(move || verify_password(&hash, &password)).await.map_err(|e| ApiError::Internal(e.into()))?;
        let Some((id, _)) = found.filter(|_| matches) else {
            self.core.auth.record_failure(&attempt);
            return Err(ApiError::Unauthorized("invalid login or password".into()));
        };
        self.core.auth.record_success(&attempt);
        let token = self.core.auth.issue(Principal::Operator(id));
        self.core.store.journal.append(&RecordV1::TokenIssued { token: token.clone(), operator_id: id.0 }).await?;
        Ok((token, self.user(id).await?))
    }

    /// Revokes a token for good (also across restarts).
    ///
    /// # Errors
    /// `Unavailable` when it cannot be stored.
    pub async fn logout(&self, caller: &Caller) -> Result<(), ApiError> {
        self.core.auth.revoke(&caller.token);
        self.core.store.journal.append(&RecordV1::TokenRevoked { token: caller.token.clone() }).await?;
        Ok(())
    }

    /// Revokes every token of `operator`, for good.
    async fn revoke_operator_tokens(&self, operator: OperatorId) -> Result<(), ApiError> {
        let revoked = self.core.auth.revoke_operator(operator);
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
    pub async fn connect_operator(
        &self,
        caller: &Caller,
        session: SessionTx<AgentEvent>,
        presence: PresenceFrames,
    ) -> Result<AgentEvent, ApiError> {
        let operator = self.core.operator(caller.id);
        operator.send(Connect { session: session.clone(), presence }).await?;
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
        self.core.auth.count_session(ip).map_err(ApiError::TooManyRequests)?;
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
        let mut context = VisitorContext {
            email: new.email.as_deref().map(|e| visitor::email("email", e)).transpose()?,
            referrer: new.referrer.as_deref().map(|r| visitor::url("referrer", r)).transpose()?,
            timezone: new.timezone.as_deref().map(visitor::timezone).transpose()?,
            user_agent: new.user_agent.as_deref().and_then(visitor::user_agent),
            ..VisitorContext::default()
        };
        // A title alone (no page) is checked, then has nothing to describe.
        let title = new.page_title.as_deref().map(|t| visitor::title("page_title", t)).transpose()?.unwrap_or_default();
        if let Some(url) = new.page_url.as_deref() {
            context.visit(visitor::url("page_url", url)?, title, Timestamp::now());
        }
        let id = self.core.next_conversation_id();
        let name = visitor_name.unwrap_or_else(|| format!("Visitor #{id}"));
        let previous_operator = match &visitor_key {
            Some(key) => self.core.archive.previous_operator(channel, key.clone()).await?,
            None => None,
        };
        let visitor = Visitor { name, lang, country, key: visitor_key, previous_operator, context };
        let conversation = Conversation::livechat(id, channel, visitor, new.expertise_ids, script.map(ScriptRun::new));
        let token = self.core.auth.issue(Principal::Visitor(id));
        let addr = self.core.start_conversation(conversation, Some(token.clone()));
        addr.send(Start).await??;
        Ok((id, token))
    }

    /// The visitor rates their ended conversation: once its archiving is done
    /// (it is, a moment after it closed), the rating is written there, and
    /// the operators who were in it at the end are told.
    ///
    /// # Errors
    /// `BadRequest` for a score other than 1, 3, 5 or a long comment;
    /// `Conflict` while open or when already rated.
    pub async fn rate(&self, conversation: ConversationId, score: u8, comment: Option<&str>) -> Result<Rating, ApiError> {
        let rating = Rating::new(score, comment)?;
        if let Some(addr) = self.core.conversation(conversation) {
            // A mailbox error: it retired meanwhile, which is what we wait for.
            if let Ok(answer) = addr.send(UntilArchived).await {
                let archived = tokio::time::timeout(ERASE_TIMEOUT, answer?).await;
                if !matches!(archived, Ok(Ok(()))) {
                    return Err(ApiError::Unavailable("the conversation could not be archived in time; try again".into()));
                }
            }
        }
        let members = match self.core.archive.rate(conversation, rating.clone()).await? {
            Ok(members) => members,
            Err(RateRefused::AlreadyRated) => return Err(ConversationError::AlreadyRated.into()),
            Err(RateRefused::NotFound) => return Err(ApiError::not_found("conversation")),
        };
        let data = serde_json::json!({ "conversation_id": conversation, "rating": rating });
        self.core.webhooks.emit(WebhookEvent::RatingCreated, Some(conversation), data);
        let event = timed(AgentEvent::Rating { conversation_id: conversation, rating: rating.clone() });
        for member in members {
            self.core.operator(member).do_send(Deliver(event.clone()));
        }
        Ok(rating)
    }

    /// Channels whose leads `caller` sees: every one for an admin (`None`),
    /// else those they serve.
    fn lead_channels(&self, caller: &Caller) -> Option<BTreeSet<ChannelId>> {
        (caller.role != Role::Admin)
            .then(|| self.directory().channels().filter(|c| c.operator_ids.contains(&caller.id)).map(|c| c.id).collect())
    }

    /// Missed chats the caller may follow up, oldest first.
    pub async fn leads(&self, caller: &Caller, status: Option<LeadStatus>, channel: Option<ChannelId>) -> Result<Vec<LeadView>, ApiError> {
        let visible = match (self.lead_channels(caller), channel) {
            (None, only) => only.map(|c| BTreeSet::from([c])),
            (Some(mine), Some(only)) => Some(mine.into_iter().filter(|&c| c == only).collect()),
            (Some(mine), None) => Some(mine),
        };
        let leads = self.core.archive.leads(status, visible).await?;
        Ok(leads.iter().map(|l| LeadView::new(l, |id| self.core.operator_name(id))).collect())
    }

    /// The caller takes the lead on.
    ///
    /// # Errors
    /// `NotFound`; `Forbidden` off their channels; `Conflict` when another operator holds it.
    pub async fn claim_lead(&self, caller: &Caller, id: ConversationId) -> Result<LeadView, ApiError> {
        let by = caller.id;
        self.change_lead(caller, id, move |lead| lead.claim(by)).await
    }

    /// The caller followed the lead up.
    ///
    /// # Errors
    /// As `claim_lead` (an admin may finish a lead someone else holds).
    pub async fn finish_lead(&self, caller: &Caller, id: ConversationId) -> Result<LeadView, ApiError> {
        let (by, admin) = (caller.id, caller.role == Role::Admin);
        self.change_lead(caller, id, move |lead| lead.finish(by, admin)).await
    }

    async fn change_lead(
        &self,
        caller: &Caller,
        id: ConversationId,
        change: impl FnOnce(&mut Lead) -> Result<(), LeadRefused> + Send + 'static,
    ) -> Result<LeadView, ApiError> {
        let visible = self.lead_channels(caller);
        let changed = self
            .core
            .archive
            .change_lead(id, move |lead| {
                if visible.as_ref().is_some_and(|v| !v.contains(&lead.channel_id)) {
                    return Err(LeadRefused::NotYours);
                }
                change(lead)
            })
            .await?;
        match changed {
            Ok(lead) => Ok(self.core.announce_lead(&lead)),
            Err(LeadRefused::NotFound) => Err(ApiError::not_found("lead")),
            Err(LeadRefused::NotYours) => Err(ApiError::Forbidden("only the channel's operators and admins follow up its leads".into())),
            Err(LeadRefused::Held(holder)) => {
                Err(ApiError::Conflict(format!("{} already follows this lead up", self.core.operator_name(holder))))
            }
        }
    }

    /// Queues the conversation as the visitor sees it for e-mail to `email`.
    ///
    /// # Errors
    /// `BadRequest` for a malformed address; `Conflict` when the server sends no mail.
    pub async fn mail_transcript(&self, conversation: ConversationId, email: &str) -> Result<(), ApiError> {
        let to = visitor::email("email", email)?;
        if !self.core.limits.mail {
            return Err(ApiError::Conflict("this server sends no e-mail".into()));
        }
        let view = self.visitor_view(conversation).await?;
        let mail = Mail {
            to,
            subject: "Your chat transcript".into(),
            body: format!("Here is your conversation, as you asked:\n\n{}", transcript_text(view.messages.iter().map(AsRef::as_ref))),
        };
        Ok(self.core.archive.enqueue_mail(mail).await?)
    }

    // ---- webhooks ----

    /// Waits (a few seconds at most) until every webhook event emitted so far is in the outbox.
    pub async fn flush_webhooks(&self) {
        self.core.webhooks.flush(std::time::Duration::from_secs(5)).await;
    }

    pub fn webhooks(&self) -> Vec<Webhook> {
        self.core.webhooks.list()
    }

    /// # Errors
    /// `NotFound`.
    pub fn webhook(&self, id: u64) -> Result<Webhook, ApiError> {
        self.core.webhooks.get(id).ok_or_else(|| ApiError::not_found("webhook"))
    }

    /// Creates (`id` none) or changes a webhook; a new one without a secret gets a random one.
    ///
    /// # Errors
    /// `BadRequest` for a URL off the rules (checked after DNS resolution too,
    /// unless private targets are allowed), no events, a bad secret; `NotFound`.
    pub async fn save_webhook(&self, id: Option<u64>, change: WebhookChange) -> Result<Webhook, ApiError> {
        let mut hook = match id {
            Some(id) => self.webhook(id)?,
            None => Webhook { id: 0, url: String::new(), events: BTreeSet::new(), secret: crate::auth::new_token() },
        };
        let allow_private = self.core.webhooks.allow_private;
        if let Some(url) = change.url {
            let (url, host) = webhook::check_url(&url, allow_private)?;
            if !allow_private && host.parse::<std::net::IpAddr>().is_err() {
                let found: Vec<std::net::SocketAddr> =
                    tokio::net::lookup_host((host.as_str(), 0)).await.map(Iterator::collect).unwrap_or_default();
                if found.is_empty() || found.iter().any(|a| webhook::is_internal(a.ip())) {
                    return Err(InvalidField::new("url", "must name a host that resolves to public addresses only").into());
                }
            }
            hook.url = url;
        }
        if let Some(events) = change.events {
            if events.is_empty() {
                return Err(InvalidField::new("events", "must name at least one event").into());
            }
            hook.events = events.into_iter().collect();
        }
        if let Some(secret) = change.secret {
            if secret.is_empty() || secret.chars().count() > webhook::MAX_SECRET_CHARS {
                return Err(InvalidField::new("secret", format!("must be 1..={} characters", webhook::MAX_SECRET_CHARS)).into());
            }
            hook.secret = secret;
        }
        let saved = self.core.archive.save_webhook(hook).await?;
        self.core.webhooks.saved(saved.clone());
        Ok(saved)
    }

    /// # Errors
    /// `NotFound`.
    pub async fn delete_webhook(&self, id: u64) -> Result<(), ApiError> {
        if !self.core.archive.delete_webhook(id).await? {
            return Err(ApiError::not_found("webhook"));
        }
        self.core.webhooks.deleted(id);
        Ok(())
    }

    /// # Errors
    /// `NotFound`.
    pub async fn webhook_attempts(&self, id: u64) -> Result<Vec<Attempt>, ApiError> {
        self.webhook(id)?;
        Ok(self.core.archive.attempts(id).await?)
    }

    /// # Errors
    /// `NotFound`.
    pub fn test_webhook(&self, id: u64) -> Result<(), ApiError> {
        self.webhook(id)?;
        self.core.webhooks.test(id);
        Ok(())
    }

    /// The visitor opened a page.
    ///
    /// # Errors
    /// `BadRequest` for a URL or title off the rules, `Conflict` once closed.
    pub async fn record_page(&self, conversation: ConversationId, url: &str, title: &str) -> Result<(), ApiError> {
        let page = VisitorChange::Page { url: visitor::url("url", url)?, title: visitor::title("title", title)? };
        self.command(conversation, ChangeVisitor(page)).await
    }

    /// The visitor left their e-mail address to be contacted.
    ///
    /// # Errors
    /// `BadRequest` for a malformed address, `Conflict` once closed.
    pub async fn leave_contact(&self, conversation: ConversationId, email: &str) -> Result<(), ApiError> {
        let email = visitor::email("email", email)?;
        self.command(conversation, ChangeVisitor(VisitorChange::Contact(Detail::Email(email)))).await
    }

    /// The conversation as its visitor sees it, once everything in it is durable.
    pub async fn visitor_view(&self, conversation: ConversationId) -> Result<VisitorConversationView, ApiError> {
        self.read_with(conversation, GetVisitorConversation, |a| Ok(self.archived_visitor_view(&a.conversation))).await
    }

    fn archived_visitor_view(&self, c: &Conversation) -> VisitorConversationView {
        VisitorConversationView::new(c, None, |id| self.core.operator_name(id))
    }

    /// A widget connection ended; see [`Core::forget_visitor_session`].
    pub fn forget_visitor_session(&self, conversation: ConversationId, session: SessionId) {
        self.core.forget_visitor_session(conversation, session);
    }

    /// Registers a widget connection and answers its greeting (hello, then
    /// every message after `after`) in one step, so nothing falls between.
    pub async fn attach_visitor(
        &self,
        conversation: ConversationId,
        session: SessionTx<VisitorEvent>,
        after: Option<MessageId>,
    ) -> Result<Vec<VisitorEvent>, ApiError> {
        let kept = session.clone();
        self.read_with(conversation, AttachVisitor { session, after }, |a| {
            // Closed and archived: the greeting is all there is; nothing will
            // happen to it live, but the socket stays open (to rate, say).
            let c = &a.conversation;
            self.core.keep_visitor_sessions(conversation, c.visitor.as_ref().and_then(|v| v.key.clone()), vec![kept]);
            let mut greeting = vec![VisitorEvent::Hello { conversation: self.archived_visitor_view(c) }];
            if let Some(after) = after {
                greeting.extend(c.visitor_messages_after(after).map(|m| VisitorEvent::Message { message: (**m).clone() }));
            }
            Ok(greeting)
        })
        .await
    }

    /// The visitor leaves: the conversation closes and operators are told.
    ///
    /// # Errors
    /// `Conflict` when already closed.
    pub async fn visitor_leave(&self, conversation: ConversationId) -> Result<VisitorConversationView, ApiError> {
        self.command(conversation, Close { by: Closer::Visitor }).await?;
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
        origin: Option<SessionId>,
    ) -> Result<Option<Message>, ApiError> {
        self.command(conversation, PostMessage { poster, content, client_ref, origin }).await
    }

    /// A conversation, live or archived, that `caller` may read.
    pub async fn read(&self, conversation: ConversationId, caller: &Caller) -> Result<ConversationView, ApiError> {
        let reader = self.reader(caller);
        self.read_with(conversation, GetConversation { reader }, |a| Ok(ConversationView::from(&self.archived_for(a, caller)?))).await
    }

    /// The list form of a conversation the caller may read.
    pub async fn summary(&self, conversation: ConversationId, caller: &Caller) -> Result<ConversationSummary, ApiError> {
        let reader = Some(self.reader(caller));
        self.read_with(conversation, GetSummary { reader }, |a| Ok(ConversationSummary::from(&self.archived_for(a, caller)?))).await
    }

    fn reader(&self, caller: &Caller) -> Reader {
        Reader { viewer: self.viewer(caller) }
    }

    pub async fn set_status(
        &self,
        conversation: ConversationId,
        caller: &Caller,
        status: RequestedStatus,
        note: Option<String>,
    ) -> Result<ConversationView, ApiError> {
        self.command(conversation, SetStatus { by: caller.id, status, note }).await
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
        self.command(conversation, SetExpertise { by: caller.id, expertise_ids }).await
    }

    pub async fn join(&self, conversation: ConversationId, caller: &Caller) -> Result<ConversationView, ApiError> {
        self.command(conversation, Join { operator: caller.id }).await
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
        self.command(conversation, Invite { by: caller.id, invitees }).await
    }

    /// # Errors
    /// `BadRequest` for an unknown or deactivated user or unknown expertise, or the conversation's refusal.
    pub async fn transfer(
        &self,
        conversation: ConversationId,
        caller: &Caller,
        to: Option<OperatorId>,
        expertise: Option<BTreeSet<ExpertiseId>>,
    ) -> Result<ConversationView, ApiError> {
        {
            let directory = self.core.directory.read();
            if let Some(unknown) = to.filter(|&u| !directory.operator(u).is_some_and(|op| op.active)) {
                return Err(InvalidField::new("user_id", format!("names unknown user {unknown}")).into());
            }
            if let Some(expertise) = &expertise {
                directory.check_expertise("expertise_ids", expertise)?;
            }
        }
        self.command(conversation, Transfer { by: caller.id, to, expertise }).await
    }

    pub async fn leave(&self, conversation: ConversationId, caller: &Caller) -> Result<(), ApiError> {
        self.command(conversation, Leave { operator: caller.id }).await
    }

    pub async fn close(&self, conversation: ConversationId, caller: &Caller) -> Result<ConversationView, ApiError> {
        self.command(conversation, Close { by: Closer::Operator(caller.id) }).await
    }

    pub async fn replay(&self, conversation: ConversationId, caller: &Caller, after: MessageId) -> Result<Vec<Message>, ApiError> {
        let reader = self.reader(caller);
        self.read_with(conversation, Replay { reader, after }, |a| {
            Ok(self.archived_for(a, caller)?.messages_after(after).iter().map(|m| (**m).clone()).collect())
        })
        .await
    }

    pub async fn typing(&self, conversation: ConversationId, poster: Poster) -> Result<(), ApiError> {
        self.command(conversation, Typing { poster }).await
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
            self.command(id, Start).await?;
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

    // ---- history ----

    /// One page of `GET /history` for `caller`: live and archived
    /// conversations together, newest first.
    pub async fn history(&self, caller: &Caller, filter: HistoryFilter, limit: usize) -> Result<HistoryPage, ApiError> {
        self.search(filter, self.viewer(caller), limit).await
    }

    /// The live conversations a search finds, with their actors.
    async fn find_live(&self, filter: &HistoryFilter, viewer: &Viewer) -> Result<Vec<(Addr<ConversationActor>, HistoryItem)>, ApiError> {
        let (filter, viewer) = (Arc::new(filter.clone()), Arc::new(viewer.clone()));
        let asks = self.core.conversations().into_iter().map(|addr| {
            let ask = FindInHistory { filter: filter.clone(), viewer: viewer.clone() };
            async move { (addr.send(ask).await, addr) }
        });
        let mut found = Vec::new();
        for (answer, addr) in join_all(asks).await {
            // A mailbox error: it retired meanwhile, and the archive answers for it.
            if let Some(item) = answer.ok().transpose()?.flatten() {
                found.push((addr, item));
            }
        }
        Ok(found)
    }

    async fn search(&self, filter: HistoryFilter, viewer: Viewer, limit: usize) -> Result<HistoryPage, ApiError> {
        let (live, archived) =
            futures_util::join!(self.find_live(&filter, &viewer), self.core.archive.search(filter.clone(), viewer.clone(), limit + 1));
        let mut items: Vec<HistoryItem> = live?.into_iter().map(|(_, item)| item).collect();
        let live_ids: HashSet<ConversationId> = items.iter().map(|i| i.id).collect();
        items.extend(archived?.into_iter().filter(|i| !live_ids.contains(&i.id)));
        items.sort_by_key(|i| std::cmp::Reverse(i.id));
        let more = items.len() > limit;
        items.truncate(limit);
        let next_cursor = items.last().filter(|_| more).map(|last| history::cursor(last.id));
        Ok(HistoryPage { items, next_cursor })
    }

    /// The other conversations of the same visitor (`visitor_key`) that `caller` may see, newest first.
    pub async fn visitor_history(&self, conversation: ConversationId, caller: &Caller) -> Result<Vec<HistoryItem>, ApiError> {
        let view = self.read(conversation, caller).await?;
        let Some(visitor_key) = view.summary.visitor.and_then(|v| v.key) else { return Ok(Vec::new()) };
        let filter = HistoryFilter { visitor_key: Some(visitor_key), except: Some(conversation), ..HistoryFilter::default() };
        Ok(self.search(filter, self.viewer(caller), MAX_VISITOR_HISTORY).await?.items)
    }

    /// A data-subject erasure: every conversation of `visitor_key`, live
    /// ones closed first, is erased; answers how many.
    ///
    /// # Errors
    /// `Unavailable` when a conversation cannot be closed and archived in time, or the archive fails.
    pub async fn erase_visitor(&self, visitor_key: String) -> Result<usize, ApiError> {
        let everyone = Viewer { operator: OperatorId(0), is_admin: true, channels: BTreeSet::new() };
        let filter = HistoryFilter { visitor_key: Some(visitor_key.clone()), ..HistoryFilter::default() };
        let live = self.find_live(&filter, &everyone).await?;
        let mut archived = Vec::new();
        // A mailbox error (skipped by `flatten`): it retired meanwhile, which is what we wait for.
        for erased in join_all(live.into_iter().map(|(addr, _)| async move { addr.send(Erase).await })).await.into_iter().flatten() {
            archived.push(erased?);
        }
        let all_archived = tokio::time::timeout(ERASE_TIMEOUT, join_all(archived)).await;
        if all_archived.is_err() {
            return Err(ApiError::Unavailable("open conversations of this visitor could not be archived in time; try again".into()));
        }
        let erased = self.core.archive.erase_visitor(visitor_key.clone()).await?;
        self.core.end_visitor_sessions(&visitor_key);
        Ok(erased)
    }

    /// Deletes archived conversations closed more than `days` days ago.
    pub async fn sweep_history(&self, days: u32) -> Result<usize, ApiError> {
        let before = Timestamp::from_millis(Timestamp::now().as_millis() - i64::from(days) * 86_400_000);
        Ok(self.core.archive.sweep(before).await?)
    }

    // ---- operations ----

    /// Writes a snapshot of the whole state; see `persist` for why the copy
    /// can be taken actor by actor while chat goes on.
    ///
    /// # Errors
    /// When the journal failed, an actor is gone (shutting down) or the file cannot be written.
    pub async fn snapshot(&self) -> Result<SnapshotStats, ApiError> {
        let capture = || async {
            let directory = DirectoryV5::from(&*self.core.directory.read());
            let tokens = self.core.auth.operator_tokens();
            let (conversations, longest_pause) = self.core.copy_conversations(self.core.conversations_by_id()).await?;
            Ok(persist::Capture { directory, tokens, conversations, longest_pause })
        };
        Ok(self.core.store.snapshot(capture).await?)
    }

    /// The routing report over the conversations `scope` covers, live and archived.
    pub async fn routing_report(&self, scope: Scope) -> Result<RoutingReport, ApiError> {
        let live = self.live().await?;
        let (facts, archived) =
            futures_util::join!(join_all(self.core.conversations().iter().map(|addr| addr.send(GetFacts))), self.core.archive.facts(scope));
        // An actor that retired meanwhile answers from the archive instead.
        let mut facts: Vec<Facts> =
            facts.into_iter().filter_map(|f| f.ok()).collect::<Result<Vec<_>, _>>()?.into_iter().flatten().collect();
        let live_ids: HashSet<ConversationId> = facts.iter().map(|f| f.id).collect();
        facts.extend(archived?.into_iter().filter(|f| !live_ids.contains(&f.id)));
        facts.retain(|f| scope.covers(f));
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
