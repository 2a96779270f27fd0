//! `ConversationActor`: one per conversation. Owns the transcript, members and
//! status; fans every change out to the visitor's sessions and to the members'
//! operator actors; tells the router what routing and the board need to know.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::fut::{self, ActorFutureExt, WrapFuture};
use actix::{Actor, ActorContext, AsyncContext, Context, Handler, Message, MessageResult, ResponseActFuture};
use thiserror::Error;
use tokio::sync::oneshot;

use super::operator::{Deliver, Track};
use super::router::{
    BoardChanged, ConversationClosed, ForwardToOperator, Forwarded, HandOver, HandTo, MembersChanged, Reroute, RoutingNeed,
};
use super::Core;
use crate::domain::assignment::IfNobody;
use crate::domain::chatbot::{BotAction, ScriptRun};
use crate::domain::conversation::{
    Assignment, Audience, Author, AuthorKind, Conversation, ConversationError, Kind, LeaveReason, Message as ChatMessage, Poster,
    RequestedStatus, Status,
};
use crate::domain::history::{HistoryFilter, Viewer};
use crate::domain::report::Facts;
use crate::domain::time::Timestamp;
use crate::domain::visitor::Detail;
use crate::domain::webhook::WebhookEvent;
use crate::domain::{AnswerId, ChannelId, ExpertiseId, MessageId, OperatorId, StepId};
use crate::error::ApiError;
use crate::persist::records::{Journaled, RecordV1};
use crate::persist::Captured;
use crate::persist::StoreError;
use crate::views::{BoardEntry, ConversationSummary, ConversationView, HistoryItem, UserRef, VisitorConversationView};
use crate::ws::outbound::{timed, timed_from, SessionId, SessionTx, Timed};
use crate::ws::protocol::{AgentEvent, AssignReason, VisitorEvent};

pub struct ConversationActor {
    conversation: Conversation,
    core: Arc<Core>,
    /// The visitor's open widget connections (several tabs allowed).
    visitors: Vec<SessionTx<VisitorEvent>>,
    /// 1-based position in the channel queue while `queued`.
    queue_position: Option<u32>,
    /// Bumped by every visitor message, so only the latest pause timer of a
    /// `free_input_multi` step fires.
    input_generation: u64,
    /// The visitor's bearer token, stored with the conversation so a widget
    /// finds it again after a restart.
    visitor_token: Option<String>,
    /// What the journal already holds of the conversation.
    journaled: Journaled,
    /// Number of the last record sent to the journal, and of the last known durable.
    journal_seq: u64,
    durable_seq: u64,
    /// Notifications waiting for the record they reveal to be durable, in
    /// order, tagged with that record's number (`PENDING`: not committed yet).
    /// Nobody hears of a message that a crash could still take back.
    outbox: VecDeque<(u64, Effect)>,
    /// Closed and on its way to the archive (see [`Retire`]).
    retiring: bool,
    /// Who waits for the conversation to be archived (an erasure).
    on_retired: Vec<oneshot::Sender<()>>,
}

type Effect = Box<dyn FnOnce(&mut ConversationActor)>;

const PENDING: u64 = u64::MAX;

/// Why a conversation command failed: refused by the rules, or not stored.
#[derive(Debug, Error)]
pub enum CommandError {
    #[error(transparent)]
    Refused(#[from] ConversationError),
    #[error(transparent)]
    Storage(#[from] StoreError),
}

/// Mapped here rather than in `error.rs`, so the boundary's error type never
/// imports an actor.
impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> ApiError {
        match e {
            CommandError::Refused(e) => e.into(),
            CommandError::Storage(e) => e.into(),
        }
    }
}

/// The answer of a command that changes the conversation: sent once the change is durable.
pub type CommandReply<T> = ResponseActFuture<ConversationActor, Result<T, CommandError>>;

/// The rest of a chatbot turn that waits on the router; the actor handles no
/// other message until it completes, so the script never interleaves.
type BotTurn = ResponseActFuture<ConversationActor, ()>;

/// A command's answer: its refusal if refused, else its value once stored.
fn answer<T>(result: Result<T, ConversationError>, stored: Result<(), StoreError>) -> Result<T, CommandError> {
    let value = result?;
    stored?;
    Ok(value)
}

fn turn_done() -> BotTurn {
    Box::pin(fut::ready(()))
}

impl Actor for ConversationActor {
    type Context = Context<Self>;
}

/// Where a conversation actor's state comes from.
#[derive(Clone, Copy)]
pub enum Origin {
    /// Just opened: its first record is still to be written.
    New,
    /// Recovered from disk: the journal already holds it.
    Restored,
}

/// Whether a command changed who the members are (the router's loads follow them).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Members {
    Same,
    Changed,
}

/// How a new member came in, which decides the event they receive.
#[derive(Clone, Copy)]
enum Arrival {
    Assigned,
    /// Assigned by a member's transfer: `assigned` says so.
    Transferred,
    Invited,
    Joined,
}

impl ConversationActor {
    pub fn new(conversation: Conversation, core: Arc<Core>, visitor_token: Option<String>, origin: Origin) -> ConversationActor {
        let journaled = match origin {
            Origin::New => Journaled::Nothing,
            Origin::Restored => Journaled::holding(&conversation),
        };
        ConversationActor {
            conversation,
            core,
            visitors: Vec::new(),
            queue_position: None,
            input_generation: 0,
            visitor_token,
            journaled,
            journal_seq: 0,
            durable_seq: 0,
            outbox: VecDeque::new(),
            retiring: false,
            on_retired: Vec::new(),
        }
    }

    /// Runs `effect` once everything changed so far is durable.
    fn defer(&mut self, effect: impl FnOnce(&mut ConversationActor) + 'static) {
        self.outbox.push_back((PENDING, Box::new(effect)));
    }

    /// Journals what changed since the last record (nothing if nothing did);
    /// resolves once it is durable, after releasing the notifications it covers.
    fn commit(&mut self) -> ResponseActFuture<Self, Result<(), StoreError>> {
        let record = self.journaled.catch_up(&self.conversation, self.visitor_token.as_deref());
        let durable = record.map(|record| {
            self.journal_seq += 1;
            self.core.store.journal.append(&record)
        });
        let seq = self.journal_seq;
        for entry in self.outbox.iter_mut().rev().take_while(|(tag, _)| *tag == PENDING) {
            entry.0 = seq;
        }
        match durable {
            Some(durable) => Box::pin(durable.into_actor(self).map(move |stored, act, _| {
                act.settle(seq, stored.is_ok());
                stored
            })),
            None => {
                self.settle(self.durable_seq, true);
                Box::pin(fut::ready(Ok(())))
            }
        }
    }

    /// Record `seq` is durable (`ok`) or lost: release or drop what it covers.
    fn settle(&mut self, seq: u64, ok: bool) {
        if ok {
            self.durable_seq = self.durable_seq.max(seq);
        }
        while self.outbox.front().is_some_and(|(tag, _)| *tag <= seq.max(self.durable_seq)) {
            // unwrap: front checked just above.
            let (tag, effect) = self.outbox.pop_front().unwrap();
            if ok || tag <= self.durable_seq {
                effect(self);
            }
        }
    }

    /// Answers with `then` once everything changed so far is durable and
    /// announced (it runs in order with the notifications).
    fn once_durable<T: 'static>(&mut self, then: impl FnOnce(&mut Self) -> T + 'static) -> ResponseActFuture<Self, Result<T, StoreError>> {
        let (tx, rx) = oneshot::channel();
        self.outbox.push_back((
            self.journal_seq,
            Box::new(move |act: &mut Self| {
                let _ = tx.send(then(act));
            }),
        ));
        self.settle(self.durable_seq, true);
        if self.core.store.journal.has_failed() {
            // No record will ever settle again: what waits on one is dropped now, not left hanging.
            self.settle(self.journal_seq, false);
        }
        // Dropped unanswered only when the journal failed.
        Box::pin(async move { rx.await.map_err(|_| StoreError::Failed) }.into_actor(self))
    }

    /// Answers a read once everything it could show is durable and announced.
    fn read_durable<T: 'static>(&mut self, read: impl FnOnce(&mut Self) -> Result<T, ConversationError> + 'static) -> CommandReply<T> {
        Box::pin(self.once_durable(read).map(|answer, _, _| Ok(answer??)))
    }

    /// Answers `result` once the change is durable; a refusal is answered at once.
    fn reply<T: 'static>(&mut self, result: Result<T, ConversationError>) -> CommandReply<T> {
        let stored = self.commit();
        Box::pin(stored.map(move |stored, _, _| answer(result, stored)))
    }

    /// As [`Self::reply`], after a chatbot turn that waits on the router; the
    /// mailbox stays paused for the turn so the script never interleaves.
    fn reply_after<T: 'static>(
        &mut self,
        turn: Option<BotTurn>,
        result: Result<T, ConversationError>,
        ctx: &mut Context<Self>,
    ) -> CommandReply<T> {
        let Some(turn) = turn else {
            return self.reply(result);
        };
        let (tx, rx) = oneshot::channel();
        ctx.wait(turn.map(move |(), act, ctx| {
            let stored = act.commit();
            ctx.spawn(stored.map(move |stored, _, _| {
                let _ = tx.send(stored);
            }));
        }));
        Box::pin(async move { answer(result, rx.await.unwrap_or(Err(StoreError::Stopped))) }.into_actor(self))
    }

    /// Applies a command and replies once its change is durable.
    fn reply_with<T: 'static>(&mut self, apply: impl FnOnce(&mut Self) -> Result<T, ConversationError>) -> CommandReply<T> {
        let result = apply(self);
        self.reply(result)
    }

    /// Journals a change nobody waits on (a router decision, a timer).
    fn commit_in_background(&mut self, turn: Option<BotTurn>, ctx: &mut Context<Self>) {
        match turn {
            Some(turn) => {
                ctx.wait(turn.map(|(), act, ctx| act.commit_in_background(None, ctx)));
            }
            None => {
                let stored = self.commit();
                ctx.spawn(stored.map(|_, _, _| ()));
            }
        }
    }

    /// Asks the router for an operator; if nobody is free the conversation
    /// waits in the queue or the script goes on, as `if_nobody` says.
    fn forward(&mut self, if_nobody: IfNobody, ctx: &mut Context<Self>) -> BotTurn {
        let Some(channel) = self.conversation.channel_id else {
            return turn_done();
        };
        let request = ForwardToOperator {
            conversation: self.conversation.id,
            addr: ctx.address(),
            channel,
            need: RoutingNeed::of(&self.conversation),
            if_nobody,
        };
        Box::pin(self.core.router().send(request).into_actor(self).then(|result, act, ctx| match result {
            Ok(Forwarded::NoCandidate) => {
                let actions = act.conversation.bot_mut().map(ScriptRun::advance).unwrap_or_default();
                act.run_bot(actions, ctx).unwrap_or_else(turn_done)
            }
            // `AssignOperator` or `SetQueuePosition` is already on its way.
            Ok(Forwarded::Routed) => turn_done(),
            Err(error) => {
                tracing::warn!(conversation_id = %act.conversation.id, %error, "router unavailable; forward dropped");
                turn_done()
            }
        }))
    }

    /// Carries out what the chatbot decided: posts its lines, forwards, and
    /// arms the pause timer of a `free_input_multi` step. A forward waits on
    /// the router: that part is returned as a turn to run with the mailbox paused.
    fn run_bot(&mut self, actions: Vec<BotAction>, ctx: &mut Context<Self>) -> Option<BotTurn> {
        for action in actions {
            match action {
                BotAction::Say { step_id, body, answers } => {
                    let message = self.conversation.append_bot(step_id, body, answers);
                    self.publish_message(&message, None);
                }
                BotAction::Forward { expertise_ids, if_nobody } => {
                    self.conversation.expertise_ids.extend(expertise_ids);
                    return Some(self.forward(if_nobody, ctx));
                }
                BotAction::Learn(detail) => {
                    if self.conversation.visitor.as_mut().is_some_and(|v| v.context.learn(detail)) {
                        self.visitor_changed();
                    }
                }
            }
        }
        if self.conversation.status() == Status::Bot && self.conversation.bot.as_ref().is_some_and(ScriptRun::ran_out) {
            // The script is over and nobody took the chat: it ends here, and becomes a lead.
            let _ = self.close(Closer::Bot);
            return None;
        }
        if self.conversation.bot.as_ref().is_some_and(ScriptRun::collecting_multi) {
            let generation = self.input_generation;
            ctx.run_later(self.core.limits.bot_input_pause, move |act, ctx| {
                if act.input_generation == generation {
                    let actions = act.conversation.bot_mut().map(ScriptRun::end_multi).unwrap_or_default();
                    let turn = act.run_bot(actions, ctx);
                    act.commit_in_background(turn, ctx);
                }
            });
        }
        None
    }

    /// Stores a post and hands a visitor's words to the chatbot.
    fn post(&mut self, msg: PostMessage, ctx: &mut Context<Self>) -> (Result<Option<ChatMessage>, ConversationError>, Option<BotTurn>) {
        if let Some(client_ref) = msg.client_ref.as_deref() {
            // An answer's label is looked up in the whole script: a resent
            // answer arrives after the chatbot has moved on from its question.
            let (body, audience) = match &msg.content {
                Content::Text(body) => (body.as_str(), Audience::Everyone),
                Content::Note(body) => (body.as_str(), Audience::Team),
                Content::Answer { step_id, answer_id } => (
                    self.conversation.bot.as_ref().and_then(|bot| bot.label_of(*step_id, *answer_id)).unwrap_or_default(),
                    Audience::Everyone,
                ),
            };
            match self.conversation.resent(msg.poster, client_ref, body, audience) {
                Ok(None) => {}
                Ok(Some(message)) => return (Ok(Some(message.clone())), None),
                Err(reused) => return (Err(reused), None),
            }
        }
        let (body, audience) = match msg.content {
            Content::Text(body) => (body, Audience::Everyone),
            Content::Note(body) => (body, Audience::Team),
            Content::Answer { step_id, answer_id } => {
                match self.conversation.bot.as_ref().ok_or(None).and_then(|bot| bot.answer_label(step_id, answer_id)) {
                    Ok(label) => (label.to_owned(), Audience::Everyone),
                    Err(None) => return (Err(ConversationError::NotAwaitingAnswer(step_id)), None),
                    Err(Some(invalid)) => return (Err(invalid.into()), None),
                }
            }
        };
        let from_visitor = msg.poster == Poster::Visitor;
        if from_visitor {
            self.input_generation += 1;
            if body.trim().is_empty() && self.conversation.bot.as_ref().is_some_and(ScriptRun::collecting_multi) {
                // An empty line ends a multi-line answer; there is nothing to store.
                let actions = self.conversation.bot_mut().map(ScriptRun::end_multi).unwrap_or_default();
                return (Ok(None), self.run_bot(actions, ctx));
            }
        }
        let before = self.conversation.status();
        let author = self.author(msg.poster);
        let max_chars = self.core.limits.max_message_chars;
        let posted = match self.conversation.post(msg.poster, author, &body, msg.client_ref, audience, max_chars) {
            Ok(posted) => posted,
            Err(error) => return (Err(error), None),
        };
        self.publish_message(&posted, msg.origin);
        self.after_change(before, Members::Same);
        let actions = match self.conversation.bot_mut() {
            Some(bot) if from_visitor => bot.on_input(&posted.body),
            _ => Vec::new(),
        };
        (Ok(Some(posted)), self.run_bot(actions, ctx))
    }

    fn view(&self) -> ConversationView {
        ConversationView::from(&self.conversation)
    }

    fn visitor_view(&self) -> VisitorConversationView {
        VisitorConversationView::new(&self.conversation, self.queue_position, |id| self.core.operator_name(id))
    }

    fn notify_members(&mut self, event: AgentEvent) {
        self.notify_members_from(event, None);
    }

    /// As [`Self::notify_members`], except to the session `origin` whose command caused it.
    fn notify_members_from(&mut self, event: AgentEvent, origin: Option<SessionId>) {
        let members = self.conversation.members().to_vec();
        let event = timed_from(event, origin);
        self.defer(move |act| act.send_to(&members, &event));
    }

    /// Sends at once: only for what is never stored (typing) and inside deferred effects.
    fn send_to(&self, operators: &[OperatorId], event: &Arc<Timed<AgentEvent>>) {
        for &operator in operators {
            self.core.operator(operator).do_send(Deliver(event.clone()));
        }
    }

    fn notify_visitor(&mut self, event: VisitorEvent) {
        self.notify_visitor_from(event, None);
    }

    fn notify_visitor_from(&mut self, event: VisitorEvent, origin: Option<SessionId>) {
        self.defer(move |act| act.send_to_visitor(&timed_from(event, origin)));
    }

    fn send_to_visitor(&mut self, event: &Arc<Timed<VisitorEvent>>) {
        self.visitors.retain(|session| session.deliver(event));
    }

    fn author(&self, poster: Poster) -> Author {
        match poster {
            Poster::Visitor => Author {
                kind: AuthorKind::Visitor,
                id: None,
                name: self.conversation.visitor.as_ref().map_or_else(|| "Visitor".into(), |v| v.name.clone()),
            },
            Poster::Operator(id) => Author { kind: AuthorKind::Operator, id: Some(id), name: self.core.operator_name(id) },
        }
    }

    fn system_post(&mut self, body: String) -> ChatMessage {
        self.conversation.append(Author { kind: AuthorKind::System, id: None, name: "System".into() }, body)
    }

    /// Queues a webhook event once this command's record is durable; the
    /// data is not even built when nobody subscribes to `event`.
    fn hook<T: serde::Serialize + 'static>(&mut self, event: WebhookEvent, data: impl FnOnce(&Conversation) -> T) {
        if !self.core.webhooks.wants(event) {
            return;
        }
        let (id, data) = (self.conversation.id, data(&self.conversation));
        self.defer(move |act| act.core.webhooks.emit(event, Some(id), data));
    }

    /// Tells everyone of a new message but its `origin` session (its ack carries it).
    fn publish_message(&mut self, message: &ChatMessage, origin: Option<SessionId>) {
        self.core.metrics.messages.inc();
        self.hook(WebhookEvent::MessageCreated, |_| message.clone());
        self.notify_members_from(AgentEvent::Message { conversation_id: self.conversation.id, message: message.clone() }, origin);
        if !message.internal {
            self.notify_visitor_from(VisitorEvent::Message { message: message.clone() }, origin);
        }
    }

    /// Members see the visitor's context change (a page, an e-mail address).
    fn visitor_changed(&mut self) {
        if let Some(visitor) = &self.conversation.visitor {
            self.notify_members(AgentEvent::Visitor { conversation_id: self.conversation.id, visitor: visitor.clone() });
        }
    }

    /// Tells everyone what a command changed: status events, the router's
    /// capacity accounting, and the board. Called after every mutation.
    fn after_change(&mut self, before: Status, members: Members) {
        let c = &self.conversation;
        let (id, status, channel) = (c.id, c.status(), c.channel_id);
        if status != before {
            self.notify_members(AgentEvent::Status { conversation_id: id, status });
            if status.for_visitor() != before.for_visitor() && status != Status::Closed {
                let queue_position = self.queue_position.filter(|_| status == Status::Queued);
                self.notify_visitor(VisitorEvent::Status { status: status.for_visitor(), queue_position });
            }
        }
        if status == Status::Closed && before != Status::Closed {
            self.hook(WebhookEvent::ConversationClosed, |c| ConversationSummary::from(c));
            self.notify_members(AgentEvent::Closed { conversation_id: id });
            self.notify_visitor(VisitorEvent::Closed { can_rate: self.conversation.kind == Kind::Livechat });
            if let ([a, b], Kind::Direct) = (self.conversation.members(), self.conversation.kind) {
                self.core.forget_direct(*a, *b);
            }
            self.defer(move |act| {
                act.core.router().do_send(ConversationClosed { conversation: id, channel });
                // Once the close is durable the conversation moves to the archive.
                if let Some(me) = act.core.conversation(id) {
                    me.do_send(Retire);
                }
            });
        } else if members == Members::Changed && self.conversation.kind == Kind::Livechat {
            if let Some(channel) = channel {
                let members = self.conversation.members().to_vec();
                self.defer(move |act| act.core.router().do_send(MembersChanged { conversation: id, channel, members }));
            }
        }
        if before == Status::NeedHelp || status == Status::NeedHelp {
            let entry = (status == Status::NeedHelp).then(|| BoardEntry::new(&self.conversation, |id| self.core.operator_name(id)));
            self.defer(move |act| act.core.router().do_send(BoardChanged { conversation: id, entry }));
        }
    }

    /// `operator` is no longer a member (already done in the domain): tells
    /// them (with the router's reason, if it took them off) and everyone else.
    fn farewell(&mut self, operator: OperatorId, reason: Option<LeaveReason>) {
        let user = UserRef { id: operator, name: self.core.operator_name(operator) };
        let id = self.conversation.id;
        let mut told = self.conversation.members().to_vec();
        told.push(operator);
        let event = timed(AgentEvent::MemberLeft { conversation_id: id, user: user.clone(), reason });
        self.defer(move |act| {
            act.core.operator(operator).do_send(Track::Left(id));
            act.send_to(&told, &event);
        });
        let notice = self.system_post(format!("{} left the conversation", user.name));
        self.publish_message(&notice, None);
    }

    /// With `answer_timeout_s` on the channel: if `operator` has written
    /// nothing by then, ask the router to pass the conversation on.
    fn arm_answer_timeout(&mut self, operator: OperatorId, at: Timestamp, ctx: &mut Context<Self>) {
        let timeout =
            self.conversation.channel_id.and_then(|c| self.core.directory.read().channel(c).and_then(|c| c.options.answer_timeout_s));
        let Some(timeout) = timeout else { return };
        ctx.run_later(Duration::from_secs(timeout.into()), move |act, ctx| {
            let c = &act.conversation;
            let still_theirs = c.assignment.as_ref().is_some_and(|a| a.operator_id == operator && a.at == at) && c.is_member(operator);
            if still_theirs && c.status() != Status::Closed && !c.answered_since(operator, at) {
                ctx.notify(PassOn { from: operator, reason: LeaveReason::Unanswered });
            }
        });
    }

    /// Adds `operator` as a member (already done in the domain) and tells
    /// them, the other members and the visitor.
    fn welcome(&mut self, operator: OperatorId, arrival: Arrival) {
        let id = self.conversation.id;
        let user = UserRef { id: operator, name: self.core.operator_name(operator) };
        let notice = self.system_post(format!("{} joined the conversation", user.name));
        if matches!(arrival, Arrival::Assigned | Arrival::Transferred) {
            self.hook(WebhookEvent::ConversationAssigned, |c| ConversationSummary::from(c));
        }
        let arrived = match arrival {
            Arrival::Assigned => Some(AgentEvent::Assigned { conversation: self.view(), reason: None }),
            Arrival::Transferred => Some(AgentEvent::Assigned { conversation: self.view(), reason: Some(AssignReason::Transfer) }),
            Arrival::Invited => Some(AgentEvent::Invited { conversation: self.view() }),
            Arrival::Joined => None,
        };
        self.defer(move |act| {
            let addr = act.core.operator(operator);
            addr.do_send(Track::Joined(id));
            if let Some(event) = arrived {
                addr.do_send(Deliver(timed(event)));
            }
        });
        self.notify_members(AgentEvent::MemberJoined { conversation_id: id, user: user.clone() });
        self.notify_visitor(VisitorEvent::MemberJoined { user });
        self.publish_message(&notice, None);
    }
}

/// A new conversation begins: a visitor's chatbot starts, or, without one,
/// the conversation is forwarded to an operator. Answered once that is
/// decided and the conversation is durable.
#[derive(Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct Start;

impl Handler<Start> for ConversationActor {
    type Result = CommandReply<()>;

    fn handle(&mut self, _: Start, ctx: &mut Context<Self>) -> Self::Result {
        let livechat = self.conversation.kind == Kind::Livechat;
        self.hook(WebhookEvent::ConversationCreated, |c| ConversationSummary::from(c));
        let turn = match self.conversation.bot_mut() {
            Some(bot) => {
                let actions = bot.advance();
                self.run_bot(actions, ctx)
            }
            None if livechat => Some(self.forward(IfNobody::Queue, ctx)),
            None => None,
        };
        self.reply_after(turn, Ok(()), ctx)
    }
}

/// What is posted: text, an operator's internal note, or the visitor picking
/// an answer of the bot's question.
#[derive(Debug)]
pub enum Content {
    Text(String),
    /// Seen by operators only; it neither wakes the chatbot nor changes the status.
    Note(String),
    /// Stored as a visitor message holding the answer's label.
    Answer {
        step_id: StepId,
        answer_id: AnswerId,
    },
}

/// Post a chat message; answers with the stored message (the original one
/// when it resends what `client_ref` stored for the same author; other content
/// under a stored ref is refused with `RefReused`), or `None` when an
/// empty line ended a `free_input_multi` answer. The chatbot's reply, if
/// any, is posted before the answer is sent.
#[derive(Message)]
#[rtype(result = "Result<Option<ChatMessage>, CommandError>")]
pub struct PostMessage {
    pub poster: Poster,
    pub content: Content,
    pub client_ref: Option<String>,
    /// The WebSocket session that sent it, if any: not sent its own message back.
    pub origin: Option<SessionId>,
}

impl Handler<PostMessage> for ConversationActor {
    type Result = CommandReply<Option<ChatMessage>>;

    fn handle(&mut self, msg: PostMessage, ctx: &mut Context<Self>) -> Self::Result {
        let (result, turn) = self.post(msg, ctx);
        self.reply_after(turn, result, ctx)
    }
}

/// An operator asking to read.
#[derive(Clone, Debug)]
pub struct Reader {
    pub viewer: Viewer,
}

impl Reader {
    /// While open: members and admins, anyone while it looks for help. Once
    /// closed: whoever history shows it to (admins, the channel's operators, those who took part).
    fn check(&self, c: &Conversation) -> Result<(), ConversationError> {
        let v = &self.viewer;
        match c.status() {
            Status::Closed if v.sees(c.channel_id, c.participants()) => Ok(()),
            Status::Closed => Err(ConversationError::NotReadable),
            _ => c.check_readable(v.operator, v.is_admin),
        }
    }
}

/// The conversation as an operator sees it, if they may read it. Like every
/// read, answered once what it shows is durable: a read never reveals a
/// change that a failed journal write would take back.
#[derive(Message)]
#[rtype(result = "Result<ConversationView, CommandError>")]
pub struct GetConversation {
    pub reader: Reader,
}

impl Handler<GetConversation> for ConversationActor {
    type Result = CommandReply<ConversationView>;

    fn handle(&mut self, msg: GetConversation, _: &mut Context<Self>) -> Self::Result {
        self.read_durable(move |act| {
            msg.reader.check(&act.conversation)?;
            Ok(act.view())
        })
    }
}

/// The conversation as its visitor sees it.
#[derive(Message)]
#[rtype(result = "Result<VisitorConversationView, CommandError>")]
pub struct GetVisitorConversation;

impl Handler<GetVisitorConversation> for ConversationActor {
    type Result = CommandReply<VisitorConversationView>;

    fn handle(&mut self, _: GetVisitorConversation, _: &mut Context<Self>) -> Self::Result {
        self.read_durable(|act| Ok(act.visitor_view()))
    }
}

/// The list form of the conversation, checked against `reader` when given
/// (`None` when the caller already knows the reader is a member).
#[derive(Message)]
#[rtype(result = "Result<ConversationSummary, CommandError>")]
pub struct GetSummary {
    pub reader: Option<Reader>,
}

impl Handler<GetSummary> for ConversationActor {
    type Result = CommandReply<ConversationSummary>;

    fn handle(&mut self, msg: GetSummary, _: &mut Context<Self>) -> Self::Result {
        self.read_durable(move |act| {
            if let Some(reader) = msg.reader {
                reader.check(&act.conversation)?;
            }
            Ok(ConversationSummary::from(&act.conversation))
        })
    }
}

/// A member sets the status (`in_progress`, `waiting`, `need_help`).
#[derive(Message)]
#[rtype(result = "Result<ConversationView, CommandError>")]
pub struct SetStatus {
    pub by: OperatorId,
    pub status: RequestedStatus,
    /// Why help is needed (kept with a call for help only).
    pub note: Option<String>,
}

impl Handler<SetStatus> for ConversationActor {
    type Result = CommandReply<ConversationView>;

    fn handle(&mut self, msg: SetStatus, _: &mut Context<Self>) -> Self::Result {
        self.reply_with(|act| {
            let before = act.conversation.status();
            act.conversation.set_status(msg.by, msg.status, msg.note.as_deref())?;
            act.after_change(before, Members::Same);
            Ok(act.view())
        })
    }
}

/// A member replaces the wanted expertise (ids already checked to exist).
#[derive(Message)]
#[rtype(result = "Result<ConversationView, CommandError>")]
pub struct SetExpertise {
    pub by: OperatorId,
    pub expertise_ids: BTreeSet<ExpertiseId>,
}

impl Handler<SetExpertise> for ConversationActor {
    type Result = CommandReply<ConversationView>;

    fn handle(&mut self, msg: SetExpertise, _: &mut Context<Self>) -> Self::Result {
        self.reply_with(|act| {
            let before = act.conversation.status();
            act.conversation.set_expertise(msg.by, msg.expertise_ids)?;
            act.after_change(before, Members::Same);
            Ok(act.view())
        })
    }
}

/// An operator answers a call for help.
#[derive(Message)]
#[rtype(result = "Result<ConversationView, CommandError>")]
pub struct Join {
    pub operator: OperatorId,
}

impl Handler<Join> for ConversationActor {
    type Result = CommandReply<ConversationView>;

    fn handle(&mut self, msg: Join, _: &mut Context<Self>) -> Self::Result {
        self.reply_with(|act| {
            let before = act.conversation.status();
            act.conversation.join(msg.operator)?;
            act.after_change(before, Members::Changed);
            act.welcome(msg.operator, Arrival::Joined);
            Ok(act.view())
        })
    }
}

/// A member brings colleagues in (ids already checked to exist).
#[derive(Message)]
#[rtype(result = "Result<ConversationView, CommandError>")]
pub struct Invite {
    pub by: OperatorId,
    pub invitees: Vec<OperatorId>,
}

impl Handler<Invite> for ConversationActor {
    type Result = CommandReply<ConversationView>;

    fn handle(&mut self, msg: Invite, _: &mut Context<Self>) -> Self::Result {
        self.reply_with(|act| {
            let before = act.conversation.status();
            let added = act.conversation.invite(msg.by, &msg.invitees)?;
            act.after_change(before, if added.is_empty() { Members::Same } else { Members::Changed });
            for operator in added {
                act.welcome(operator, Arrival::Invited);
            }
            Ok(act.view())
        })
    }
}

/// A member hands the conversation to a colleague: `to`, or whom the router
/// picks for the conversation's (or the given) expertise. The mailbox stays
/// paused while the router decides, so nothing changes the conversation in between.
#[derive(Message)]
#[rtype(result = "Result<ConversationView, CommandError>")]
pub struct Transfer {
    pub by: OperatorId,
    pub to: Option<OperatorId>,
    /// Replaces the wanted expertise (ids already checked to exist).
    pub expertise: Option<BTreeSet<ExpertiseId>>,
}

impl Handler<Transfer> for ConversationActor {
    type Result = CommandReply<ConversationView>;

    fn handle(&mut self, msg: Transfer, ctx: &mut Context<Self>) -> Self::Result {
        let c = &self.conversation;
        if let Err(refused) = c.check_transfer(msg.by, msg.to) {
            return self.reply(Err(refused));
        }
        let Some(channel) = c.channel_id else { return self.reply(Err(ConversationError::NotLivechat)) };
        let mut need = RoutingNeed::of(c);
        if let Some(expertise) = &msg.expertise {
            need.expertise.clone_from(expertise);
        }
        let to = match (msg.to, &msg.expertise) {
            (Some(to), _) => HandTo::Operator(to),
            (None, Some(expertise)) if !expertise.is_empty() => HandTo::Holders,
            (None, _) => HandTo::Anyone,
        };
        let request = HandOver { conversation: c.id, channel, from: msg.by, to, need };
        let (tx, rx) = oneshot::channel();
        ctx.wait(self.core.router().send(request).into_actor(self).map(move |decided, act, ctx| {
            let result = match decided {
                Ok(Ok(assignment)) => act.transferred(msg.by, assignment, msg.expertise, ctx),
                Ok(Err(refused)) => Err(refused),
                // The router is gone: only while shutting down; nothing changed.
                Err(_) => Err(ConversationError::NobodyFree),
            };
            // Durability is awaited outside the pause: its notice comes through the mailbox.
            let reply = act.reply(result);
            ctx.spawn(reply.map(move |answer, _, _| {
                let _ = tx.send(answer);
            }));
        }));
        Box::pin(async move { rx.await.unwrap_or(Err(CommandError::Storage(StoreError::Stopped))) }.into_actor(self))
    }
}

impl ConversationActor {
    /// Applies the router's hand-over decision (already counted in its loads).
    fn transferred(
        &mut self,
        from: OperatorId,
        assignment: Assignment,
        expertise: Option<BTreeSet<ExpertiseId>>,
        ctx: &mut Context<Self>,
    ) -> Result<ConversationView, ConversationError> {
        let before = self.conversation.status();
        let (operator, at) = (assignment.operator_id, assignment.at);
        self.conversation.transfer(from, assignment, expertise)?;
        self.farewell(from, Some(LeaveReason::Transferred));
        self.welcome(operator, Arrival::Transferred);
        self.after_change(before, Members::Changed);
        self.arm_answer_timeout(operator, at, ctx);
        Ok(self.view())
    }
}

/// What the visitor's own side tells about them, kept in their context.
pub enum VisitorChange {
    /// A page of the site they opened (the last 20 are kept).
    Page { url: String, title: String },
    /// A way to reach them (the widget's "leave your e-mail"), as a bot's
    /// e-mail question would learn it, and in the lead if nobody answers.
    Contact(Detail),
}

/// Changes the visitor's context; members are told. 409 once closed.
#[derive(Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct ChangeVisitor(pub VisitorChange);

impl Handler<ChangeVisitor> for ConversationActor {
    type Result = CommandReply<()>;

    fn handle(&mut self, msg: ChangeVisitor, _: &mut Context<Self>) -> Self::Result {
        self.reply_with(|act| {
            if act.conversation.status() == Status::Closed {
                return Err(ConversationError::Closed);
            }
            let context = &mut act.conversation.visitor.as_mut().ok_or(ConversationError::NotLivechat)?.context;
            let changed = match msg.0 {
                VisitorChange::Page { url, title } => {
                    context.visit(url, title, Timestamp::now());
                    true
                }
                VisitorChange::Contact(detail) => context.learn(detail),
            };
            if changed {
                act.visitor_changed();
            }
            Ok(())
        })
    }
}

/// A member steps out of the conversation.
#[derive(Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct Leave {
    pub operator: OperatorId,
}

impl Handler<Leave> for ConversationActor {
    type Result = CommandReply<()>;

    fn handle(&mut self, msg: Leave, _: &mut Context<Self>) -> Self::Result {
        self.reply_with(|act| {
            let before = act.conversation.status();
            act.conversation.leave(msg.operator)?;
            act.farewell(msg.operator, None);
            act.after_change(before, Members::Changed);
            Ok(())
        })
    }
}

/// Who ends a conversation.
#[derive(Clone, Copy, Debug)]
pub enum Closer {
    /// A member operator.
    Operator(OperatorId),
    /// The visitor leaving: operators see "Visitor left the conversation".
    Visitor,
    /// An admin erasing the visitor's data.
    Erasure,
    /// The chatbot's script ran out with no operator in the conversation.
    Bot,
}

/// End the conversation for everyone.
#[derive(Message)]
#[rtype(result = "Result<ConversationView, CommandError>")]
pub struct Close {
    pub by: Closer,
}

impl Handler<Close> for ConversationActor {
    type Result = CommandReply<ConversationView>;

    fn handle(&mut self, msg: Close, _: &mut Context<Self>) -> Self::Result {
        self.reply_with(|act| {
            act.close(msg.by)?;
            Ok(act.view())
        })
    }
}

impl ConversationActor {
    fn close(&mut self, by: Closer) -> Result<(), ConversationError> {
        let before = self.conversation.status();
        if let Closer::Operator(operator) = by {
            if !self.conversation.is_member(operator) {
                return Err(ConversationError::NotMember);
            }
        }
        self.conversation.close()?;
        if let Closer::Visitor = by {
            let notice = self.system_post("Visitor left the conversation".into());
            self.publish_message(&notice, None);
        }
        self.queue_position = None;
        self.after_change(before, Members::Same);
        Ok(())
    }

    /// Stores the closed conversation in the archive, then journals that it
    /// left live state; on failure (a full disk) it stays live and is tried
    /// again, backing off up to a minute.
    fn archive(&mut self, ctx: &mut Context<Self>, retry_in: Duration) {
        let entry = self.core.archive_entry(&self.conversation, self.visitor_token.as_deref());
        let lead = entry.lead.clone();
        let (core, id) = (self.core.clone(), self.conversation.id);
        let archived = async move {
            core.archive.store(entry).await.map_err(|e| e.to_string())?;
            core.store.journal.append(&RecordV1::Archived { id: id.0 }).await.map_err(|e| e.to_string())
        };
        ctx.spawn(archived.into_actor(self).map(move |archived, act, ctx| match archived {
            Ok(()) => {
                if let Some(lead) = &lead {
                    let view = act.core.announce_lead(lead);
                    act.core.webhooks.emit(WebhookEvent::LeadCreated, Some(id), view);
                }
                act.retired(ctx);
            }
            Err(error) => {
                act.core.metrics.archive_failures.inc();
                tracing::error!(conversation_id = %id, %error, ?retry_in, "archiving failed; the conversation stays live and is retried");
                ctx.run_later(retry_in, move |act, ctx| act.archive(ctx, (retry_in * 2).min(Duration::from_secs(60))));
            }
        }));
    }

    /// The archive holds the conversation and the journal says so: it leaves memory.
    fn retired(&mut self, ctx: &mut Context<Self>) {
        let id = self.conversation.id;
        self.core.metrics.archived.inc();
        self.core.metrics.archive_pending.dec();
        self.core.forget_conversation(id);
        for &member in self.conversation.members() {
            self.core.operator(member).do_send(Track::Left(id));
        }
        let visitor_key = self.conversation.visitor.as_ref().and_then(|v| v.key.clone());
        self.core.keep_visitor_sessions(id, visitor_key, std::mem::take(&mut self.visitors));
        if let Some(token) = &self.visitor_token {
            // The archive answers for it from now on; memory holds live conversations only.
            self.core.auth.revoke(token);
        }
        for waiter in self.on_retired.drain(..) {
            let _ = waiter.send(());
        }
        ctx.stop();
    }
}

/// The conversation is closed and durable: move it to the archive.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Retire;

impl Handler<Retire> for ConversationActor {
    type Result = ();

    fn handle(&mut self, _: Retire, ctx: &mut Context<Self>) {
        if self.retiring || self.conversation.status() != Status::Closed {
            return;
        }
        self.retiring = true;
        self.core.metrics.archive_pending.inc();
        self.archive(ctx, Duration::from_millis(200));
    }
}

/// A data-subject erasure: close the conversation if it is open. Answers,
/// once the close is durable, with a receiver that fires when the
/// conversation is archived (the caller then erases it from the archive).
/// The wait happens outside: a stopping actor drops its own futures.
#[derive(Message)]
#[rtype(result = "Result<oneshot::Receiver<()>, CommandError>")]
pub struct Erase;

impl Handler<Erase> for ConversationActor {
    type Result = CommandReply<oneshot::Receiver<()>>;

    fn handle(&mut self, _: Erase, ctx: &mut Context<Self>) -> Self::Result {
        if self.conversation.status() == Status::Closed {
            let retired = self.when_retired(ctx);
            return self.reply(Ok(retired));
        }
        let (tx, rx) = oneshot::channel();
        self.on_retired.push(tx);
        let closed = self.close(Closer::Erasure).map(|()| rx);
        self.reply(closed)
    }
}

/// A closed conversation on its way to the archive (a rating is written
/// there): answers a receiver that fires once it is archived; `NotEnded` while open.
#[derive(Message)]
#[rtype(result = "Result<oneshot::Receiver<()>, CommandError>")]
pub struct UntilArchived;

impl Handler<UntilArchived> for ConversationActor {
    type Result = CommandReply<oneshot::Receiver<()>>;

    fn handle(&mut self, _: UntilArchived, ctx: &mut Context<Self>) -> Self::Result {
        let retired = (self.conversation.status() == Status::Closed).then(|| self.when_retired(ctx)).ok_or(ConversationError::NotEnded);
        self.reply(retired)
    }
}

impl ConversationActor {
    /// A receiver that fires once this closed conversation is archived and out
    /// of memory. Retiring starts now if it has not (restored closed, or its
    /// close still on the way); it happens once either way.
    fn when_retired(&mut self, ctx: &mut Context<Self>) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.on_retired.push(tx);
        ctx.notify(Retire);
        rx
    }
}

/// The router's decision: `assignment.operator_id` takes this conversation.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AssignOperator {
    pub assignment: Assignment,
}

impl Handler<AssignOperator> for ConversationActor {
    type Result = ();

    fn handle(&mut self, msg: AssignOperator, ctx: &mut Context<Self>) {
        let before = self.conversation.status();
        let operator = msg.assignment.operator_id;
        let at = msg.assignment.at;
        // A closed conversation refuses; the router frees the capacity when its
        // `ConversationClosed` arrives.
        if self.conversation.assign(msg.assignment).is_ok() {
            self.queue_position = None;
            self.after_change(before, Members::Same);
            self.welcome(operator, Arrival::Assigned);
            self.arm_answer_timeout(operator, at, ctx);
            self.commit_in_background(None, ctx);
        }
    }
}

/// Route this conversation again away from `from` (who did not answer, or went offline).
#[derive(Message)]
#[rtype(result = "()")]
pub struct PassOn {
    pub from: OperatorId,
    pub reason: LeaveReason,
}

impl Handler<PassOn> for ConversationActor {
    type Result = ();

    fn handle(&mut self, msg: PassOn, ctx: &mut Context<Self>) {
        let c = &self.conversation;
        let (Kind::Livechat, Some(channel)) = (c.kind, c.channel_id) else { return };
        if c.status() == Status::Closed || !c.is_member(msg.from) {
            return;
        }
        let need = RoutingNeed::of(c);
        let reroute = Reroute { conversation: c.id, addr: ctx.address(), channel, from: msg.from, need, reason: msg.reason };
        self.core.router().do_send(reroute);
    }
}

/// The router's answer to a `Reroute`: `assignment.operator_id` takes over from `from`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reassign {
    pub from: OperatorId,
    pub reason: LeaveReason,
    pub assignment: Assignment,
}

impl Handler<Reassign> for ConversationActor {
    type Result = ();

    fn handle(&mut self, msg: Reassign, ctx: &mut Context<Self>) {
        let before = self.conversation.status();
        let (operator, at) = (msg.assignment.operator_id, msg.assignment.at);
        if self.conversation.reassign(msg.from, msg.assignment).is_ok() {
            self.farewell(msg.from, Some(msg.reason));
            self.welcome(operator, Arrival::Assigned);
            self.after_change(before, Members::Changed);
            self.arm_answer_timeout(operator, at, ctx);
            self.commit_in_background(None, ctx);
        }
    }
}

/// The router took `from` off the conversation and nobody could take it over
/// (only for a deactivated operator): with no operator left it queues again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unassign {
    pub from: OperatorId,
    pub reason: LeaveReason,
}

impl Handler<Unassign> for ConversationActor {
    type Result = ();

    fn handle(&mut self, msg: Unassign, ctx: &mut Context<Self>) {
        let before = self.conversation.status();
        if self.conversation.unassign(msg.from).is_err() {
            return;
        }
        self.farewell(msg.from, Some(msg.reason));
        // The router already dropped `from` from its loads: no `MembersChanged`.
        self.after_change(before, Members::Same);
        let turn = (self.conversation.status() == Status::Queued).then(|| self.forward(IfNobody::Queue, ctx));
        self.commit_in_background(turn, ctx);
    }
}

/// The conversation's place in its channel queue changed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetQueuePosition(pub u32);

impl Handler<SetQueuePosition> for ConversationActor {
    type Result = ();

    fn handle(&mut self, msg: SetQueuePosition, ctx: &mut Context<Self>) {
        if matches!(self.conversation.status(), Status::Closed) {
            return;
        }
        let before = self.conversation.status();
        self.conversation.enqueue();
        if self.queue_position == Some(msg.0) && before == Status::Queued {
            return;
        }
        self.queue_position = Some(msg.0);
        if before == Status::Queued {
            self.notify_visitor(VisitorEvent::Status { status: Status::Queued, queue_position: Some(msg.0) });
        } else {
            self.after_change(before, Members::Same);
        }
        self.commit_in_background(None, ctx);
    }
}

/// A visitor connection opens: answers the greeting (hello, then every message
/// after `after`) and registers the session for live events, atomically, so
/// nothing is missed in between.
#[derive(Message)]
#[rtype(result = "Result<Vec<VisitorEvent>, StoreError>")]
pub struct AttachVisitor {
    pub session: SessionTx<VisitorEvent>,
    pub after: Option<MessageId>,
}

impl Handler<AttachVisitor> for ConversationActor {
    type Result = ResponseActFuture<Self, Result<Vec<VisitorEvent>, StoreError>>;

    fn handle(&mut self, msg: AttachVisitor, _: &mut Context<Self>) -> Self::Result {
        let mut greeting = vec![VisitorEvent::Hello { conversation: self.visitor_view() }];
        if let Some(after) = msg.after {
            greeting.extend(self.conversation.visitor_messages_after(after).map(|m| VisitorEvent::Message { message: (**m).clone() }));
        }
        // Registered once the state greeted is durable: the session then gets
        // exactly the events that came after it, none twice.
        let session = msg.session;
        self.once_durable(move |act| {
            // Sessions that ended are dropped here too: an idle conversation
            // gets no event to find them by, and a widget reconnecting on every
            // page load would otherwise pile them up.
            act.visitors.retain(|s| !s.is_closed() && !s.same_session(&session));
            act.visitors.push(session);
            greeting
        })
    }
}

/// Messages after `after`, for an operator resuming after a reconnect.
#[derive(Message)]
#[rtype(result = "Result<Vec<ChatMessage>, CommandError>")]
pub struct Replay {
    pub reader: Reader,
    pub after: MessageId,
}

impl Handler<Replay> for ConversationActor {
    type Result = CommandReply<Vec<ChatMessage>>;

    fn handle(&mut self, msg: Replay, _: &mut Context<Self>) -> Self::Result {
        let replay = msg
            .reader
            .check(&self.conversation)
            .map(|()| self.conversation.messages_after(msg.after).iter().map(|m| (**m).clone()).collect());
        // Answered after the live events of the messages it holds went out, so none arrives twice.
        self.read_durable(move |_| replay)
    }
}

/// Someone is typing: tell the other side (not stored).
#[derive(Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct Typing {
    pub poster: Poster,
}

impl Handler<Typing> for ConversationActor {
    type Result = Result<(), CommandError>;

    fn handle(&mut self, msg: Typing, _: &mut Context<Self>) -> Self::Result {
        if let Poster::Operator(operator) = msg.poster {
            if !self.conversation.is_member(operator) {
                return Err(ConversationError::NotMember.into());
            }
        }
        if self.conversation.status() == Status::Closed {
            return Err(ConversationError::Closed.into());
        }
        let author = self.author(msg.poster);
        let id = self.conversation.id;
        let except = match msg.poster {
            Poster::Operator(operator) => Some(operator),
            Poster::Visitor => None,
        };
        let others: Vec<OperatorId> = self.conversation.members().iter().copied().filter(|&m| Some(m) != except).collect();
        self.send_to(&others, &timed(AgentEvent::Typing { conversation_id: id, author: author.clone() }));
        if msg.poster != Poster::Visitor {
            self.send_to_visitor(&timed(VisitorEvent::Typing { author }));
        }
        Ok(())
    }
}

/// Expertise or channels were deleted: stop wanting the expertise; a
/// conversation of a deleted channel that no operator took yet ends (nobody
/// is left waiting in a queue that no longer exists).
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct DirectoryPruned {
    pub expertise: Vec<ExpertiseId>,
    pub channels: Vec<ChannelId>,
}

impl Handler<DirectoryPruned> for ConversationActor {
    type Result = ();

    fn handle(&mut self, msg: DirectoryPruned, ctx: &mut Context<Self>) {
        let before = self.conversation.status();
        let mut changed = false;
        for expertise in &msg.expertise {
            changed |= self.conversation.expertise_ids.remove(expertise);
        }
        let orphaned = self.conversation.channel_id.is_some_and(|c| msg.channels.contains(&c));
        if orphaned && matches!(before, Status::Bot | Status::Queued) && self.conversation.close().is_ok() {
            self.queue_position = None;
            changed = true;
        }
        if changed {
            self.after_change(before, Members::Same);
            self.commit_in_background(None, ctx);
        }
    }
}

/// A copy of the conversation for a snapshot, and how long the copy held
/// the actor up (the snapshot's only pause of chat). The transcript is shared,
/// not copied: the snapshot thread turns it into records.
#[derive(Message)]
#[rtype(result = "(Captured, Duration)")]
pub struct CopyForSnapshot;

impl Handler<CopyForSnapshot> for ConversationActor {
    type Result = MessageResult<CopyForSnapshot>;

    fn handle(&mut self, _: CopyForSnapshot, _: &mut Context<Self>) -> Self::Result {
        let started = Instant::now();
        let copy = Captured::new(&self.conversation, self.visitor_token.as_deref());
        MessageResult((copy, started.elapsed()))
    }
}

/// This conversation as a history search result, if the search finds it.
#[derive(Message)]
#[rtype(result = "Result<Option<HistoryItem>, CommandError>")]
pub struct FindInHistory {
    pub filter: Arc<HistoryFilter>,
    pub viewer: Arc<Viewer>,
}

impl Handler<FindInHistory> for ConversationActor {
    type Result = CommandReply<Option<HistoryItem>>;

    fn handle(&mut self, msg: FindInHistory, _: &mut Context<Self>) -> Self::Result {
        self.read_durable(move |act| {
            let c = &act.conversation;
            Ok(msg.filter.find(c, &msg.viewer).map(|found| HistoryItem::new(c, found.snippet)))
        })
    }
}

/// What this conversation contributes to the routing report (`None` for a direct one).
#[derive(Message)]
#[rtype(result = "Result<Option<Facts>, CommandError>")]
pub struct GetFacts;

impl Handler<GetFacts> for ConversationActor {
    type Result = CommandReply<Option<Facts>>;

    fn handle(&mut self, _: GetFacts, _: &mut Context<Self>) -> Self::Result {
        self.read_durable(|act| Ok(Facts::of(&act.conversation)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::actors::test_core;
    use crate::domain::conversation::Conversation;
    use crate::domain::directory::{Directory, NewOperator};
    use crate::domain::operator::Role;
    use crate::domain::ConversationId;

    /// A core whose directory holds operators ann and bob.
    fn ann_and_bob(dir: &std::path::Path) -> (Arc<Core>, OperatorId, OperatorId) {
        let mut directory = Directory::default();
        let mut operator = |login: &str| {
            let new = NewOperator {
                login: login.into(),
                name: login.into(),
                password_hash: String::new(),
                role: Role::User,
                languages: vec![],
                country: None,
            };
            directory.create_operator(new).unwrap().id
        };
        let (ann, bob) = (operator("ann"), operator("bob"));
        (test_core(dir, directory), ann, bob)
    }

    fn reader(operator: OperatorId) -> Reader {
        Reader { viewer: Viewer { operator, is_admin: false, channels: BTreeSet::new() } }
    }

    /// A conversation whose archive write fails (a full disk) stays live and
    /// readable, the failure is counted, and it is archived once space is back.
    #[actix_rt::test]
    async fn a_conversation_the_archive_cannot_take_stays_live_until_it_can() {
        use actix::Actor as _;

        let dir = tempfile::TempDir::new().unwrap();
        let (core, ann, bob) = ann_and_bob(dir.path());
        core.set_router(crate::actors::router::RouterActor::new(core.clone()).start());
        core.archive.limit_pages(1).await;
        let id = ConversationId(1);
        let addr = core.start_conversation(Conversation::direct(id, [ann, bob]), None);
        addr.send(Start).await.unwrap().unwrap();
        // Long enough to need pages the capped file cannot add.
        let body = format!("keep me {}", "x".repeat(3900));
        for _ in 0..4 {
            let post = PostMessage { poster: Poster::Operator(ann), content: Content::Text(body.clone()), client_ref: None, origin: None };
            addr.send(post).await.unwrap().unwrap();
        }
        addr.send(Close { by: Closer::Operator(ann) }).await.unwrap().unwrap();

        let deadline = Instant::now() + Duration::from_secs(5);
        while core.metrics.archive_failures.get() == 0 {
            assert!(Instant::now() < deadline, "the failed archive write is counted");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(core.conversation(id).is_some(), "still live");
        let view = addr.send(GetConversation { reader: reader(bob) }).await.unwrap().unwrap();
        assert_eq!(view.messages[0].body, body);

        core.archive.limit_pages(u32::MAX.into()).await;
        while core.conversation(id).is_some() {
            assert!(Instant::now() < deadline + Duration::from_secs(5), "archived once there is room");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let archived = core.archive.conversation(id).await.unwrap().expect("in the archive");
        assert_eq!(archived.conversation.messages()[0].body, body);
        assert_eq!(archived.conversation.messages().len(), 4);
    }

    /// A conversation listed for a snapshot that retires before its copy is
    /// asked for is left out of the copy, not taken for a stopping server.
    #[actix_rt::test]
    async fn a_conversation_that_retires_during_a_snapshot_is_left_out() {
        use actix::Actor as _;

        let dir = tempfile::TempDir::new().unwrap();
        let (core, ann, bob) = ann_and_bob(dir.path());
        core.set_router(crate::actors::router::RouterActor::new(core.clone()).start());
        let (leaving, staying) = (ConversationId(1), ConversationId(2));
        for id in [leaving, staying] {
            core.start_conversation(Conversation::direct(id, [ann, bob]), None).send(Start).await.unwrap().unwrap();
        }
        let listed = core.conversations_by_id();
        let addr = core.conversation(leaving).unwrap();
        let retired = addr.send(Close { by: Closer::Operator(ann) }).await.unwrap();
        retired.unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while core.conversation(leaving).is_some() || addr.connected() {
            assert!(Instant::now() < deadline, "archived and stopped in time");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (copies, _) = core.copy_conversations(listed).await.expect("a retired conversation is no error");
        assert_eq!(copies.len(), 1, "only the live one is copied");
    }

    /// A read that reaches the actor while a change's record is on its way to
    /// the journal waits for it; when the write then fails, the read does not
    /// reveal the change (before, it answered from memory at once).
    #[actix_rt::test]
    async fn a_read_never_reveals_a_change_whose_journal_write_fails() {
        let dir = tempfile::TempDir::new().unwrap();
        let (core, ann, bob) = ann_and_bob(dir.path());
        let addr = core.start_conversation(Conversation::direct(ConversationId(1), [ann, bob]), None);
        addr.send(Start).await.unwrap().unwrap();

        core.store.journal.sabotage();
        let post = PostMessage { poster: Poster::Operator(ann), content: Content::Text("lost".into()), client_ref: None, origin: None };
        let (posted, read) = futures_util::join!(addr.send(post), addr.send(GetConversation { reader: reader(bob) }));
        assert!(matches!(posted.unwrap(), Err(CommandError::Storage(_))), "the post is refused");
        match read.unwrap() {
            Err(CommandError::Storage(_)) => {}
            Ok(view) => assert!(view.messages.is_empty(), "the read revealed a message that was never stored: {:?}", view.messages),
            Err(other) => panic!("unexpected refusal {other}"),
        }
        // Every later read says storage failed, rather than hanging or answering from memory.
        let later = tokio::time::timeout(Duration::from_secs(5), addr.send(GetConversation { reader: reader(bob) }));
        assert!(matches!(later.await.expect("answered").unwrap(), Err(CommandError::Storage(_))));
    }
}
