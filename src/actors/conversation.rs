//! `ConversationActor`: one per conversation. Owns the transcript, members and
//! status; fans every change out to the visitor's sessions and to the members'
//! operator actors; tells the router what routing and the board need to know.

use std::collections::BTreeSet;
use std::sync::Arc;

use actix::fut::{self, ActorFutureExt, WrapFuture};
use actix::{Actor, AsyncContext, AtomicResponse, Context, Handler, Message, MessageResult, ResponseActFuture};

use super::operator::{Deliver, Track};
use super::router::{BoardChanged, ConversationClosed, ForwardToOperator, Forwarded, MembersChanged, RoutingNeed};
use super::Core;
use crate::domain::chatbot::{BotAction, ScriptRun};
use crate::domain::conversation::{
    Assignment, Author, AuthorKind, Conversation, ConversationError, Kind, Message as ChatMessage, Poster, RequestedStatus, Status,
};
use crate::domain::{AnswerId, ExpertiseId, MessageId, OperatorId, StepId};
use crate::views::{ConversationSummary, ConversationView, UserRef, VisitorConversationView};
use crate::ws::protocol::{AgentEvent, VisitorEvent};
use crate::ws::{timed, SessionTx, Timed};

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
}

/// The rest of a chatbot turn that waits on the router; the actor handles no
/// other message until it completes, so the script never interleaves.
type BotTurn = ResponseActFuture<ConversationActor, ()>;

fn turn_done() -> BotTurn {
    Box::pin(fut::ready(()))
}

impl Actor for ConversationActor {
    type Context = Context<Self>;
}

/// How a new member came in, which decides the event they receive.
#[derive(Clone, Copy)]
enum Arrival {
    Assigned,
    Invited,
    Joined,
}

impl ConversationActor {
    pub fn new(conversation: Conversation, core: Arc<Core>) -> ConversationActor {
        ConversationActor { conversation, core, visitors: Vec::new(), queue_position: None, input_generation: 0 }
    }

    /// What routing needs to know about this conversation's visitor.
    fn routing_need(&self) -> RoutingNeed {
        let c = &self.conversation;
        let visitor = c.visitor.as_ref();
        RoutingNeed {
            visitor_key: visitor.and_then(|v| v.key.clone()),
            lang: visitor.and_then(|v| v.lang.clone()),
            country: visitor.and_then(|v| v.country.clone()),
            expertise: c.expertise_ids.clone(),
        }
    }

    /// Asks the router for an operator. With `queue` the conversation waits in
    /// the queue if nobody is free; without, the script goes on.
    fn forward(&mut self, queue: bool, ctx: &mut Context<Self>) -> BotTurn {
        let Some(channel) = self.conversation.channel_id else {
            return turn_done();
        };
        let request =
            ForwardToOperator { conversation: self.conversation.id, addr: ctx.address(), channel, need: self.routing_need(), queue };
        Box::pin(self.core.router().send(request).into_actor(self).then(|result, act, ctx| match result {
            Ok(Forwarded::NoCandidate) => {
                let actions = act.conversation.bot_mut().map(ScriptRun::advance).unwrap_or_default();
                act.run_bot(actions, ctx)
            }
            // `AssignOperator` or `SetQueuePosition` is already on its way.
            Ok(Forwarded::Assigned(_) | Forwarded::Queued { .. }) => turn_done(),
            Err(error) => {
                tracing::warn!(conversation_id = %act.conversation.id, %error, "router unavailable; forward dropped");
                turn_done()
            }
        }))
    }

    /// Carries out what the chatbot decided: posts its lines, forwards, and
    /// arms the pause timer of a `free_input_multi` step.
    fn run_bot(&mut self, actions: Vec<BotAction>, ctx: &mut Context<Self>) -> BotTurn {
        for action in actions {
            match action {
                BotAction::Say { step_id, body, answers } => {
                    let message = self.conversation.append_bot(step_id, body, answers);
                    self.publish_message(&message);
                }
                BotAction::Forward { expertise_ids, queue } => {
                    self.conversation.expertise_ids.extend(expertise_ids);
                    return self.forward(queue, ctx);
                }
            }
        }
        if self.conversation.bot.as_ref().is_some_and(ScriptRun::collecting_multi) {
            let generation = self.input_generation;
            ctx.run_later(self.core.limits.bot_input_pause, move |act, ctx| {
                if act.input_generation == generation {
                    let actions = act.conversation.bot_mut().map(ScriptRun::end_multi).unwrap_or_default();
                    let turn = act.run_bot(actions, ctx);
                    ctx.wait(turn);
                }
            });
        }
        turn_done()
    }

    /// Stores a post and hands a visitor's words to the chatbot.
    fn post(&mut self, msg: PostMessage, ctx: &mut Context<Self>) -> (Result<Option<ChatMessage>, ConversationError>, BotTurn) {
        if let Some(message) = msg.client_ref.as_deref().and_then(|r| self.conversation.find_ref(msg.poster, r)) {
            return (Ok(Some(message.clone())), turn_done());
        }
        let body = match msg.content {
            Content::Text(body) => body,
            Content::Answer { step_id, answer_id } => {
                match self.conversation.bot.as_ref().ok_or(None).and_then(|bot| bot.answer_label(step_id, answer_id)) {
                    Ok(label) => label.to_owned(),
                    Err(None) => return (Err(ConversationError::NotAwaitingAnswer(step_id)), turn_done()),
                    Err(Some(invalid)) => return (Err(invalid.into()), turn_done()),
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
        let posted = match self.conversation.post(msg.poster, author, &body, msg.client_ref, max_chars) {
            Ok(posted) => posted,
            Err(error) => return (Err(error), turn_done()),
        };
        if posted.duplicate {
            return (Ok(Some(posted.message)), turn_done());
        }
        self.publish_message(&posted.message);
        self.after_change(before, false);
        let actions = match self.conversation.bot_mut() {
            Some(bot) if from_visitor => bot.on_input(&posted.message.body),
            _ => Vec::new(),
        };
        (Ok(Some(posted.message)), self.run_bot(actions, ctx))
    }

    fn view(&self) -> ConversationView {
        ConversationView::from(&self.conversation)
    }

    fn visitor_view(&self) -> VisitorConversationView {
        let c = &self.conversation;
        let operator = c
            .assignment
            .as_ref()
            .map(|a| a.operator_id)
            .filter(|&id| c.is_member(id))
            .or_else(|| c.members().first().copied())
            .map(|id| UserRef { id, name: self.core.operator_name(id) });
        VisitorConversationView {
            id: c.id,
            status: c.status().for_visitor(),
            queue_position: self.queue_position.filter(|_| c.status() == Status::Queued),
            operator,
            messages: c.messages().to_vec(),
        }
    }

    fn to_members(&self, event: AgentEvent) {
        self.to_members_except(&timed(event), None);
    }

    fn to_members_except(&self, event: &Arc<Timed<AgentEvent>>, except: Option<OperatorId>) {
        for &member in self.conversation.members() {
            if Some(member) != except {
                self.core.operator(member).do_send(Deliver(event.clone()));
            }
        }
    }

    fn notify_visitor(&mut self, event: VisitorEvent) {
        if self.visitors.is_empty() {
            return;
        }
        let event = timed(event);
        self.visitors.retain(|session| session.deliver(&event));
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

    fn publish_message(&mut self, message: &ChatMessage) {
        self.core.metrics.messages.inc();
        self.to_members(AgentEvent::Message { conversation_id: self.conversation.id, message: message.clone() });
        self.notify_visitor(VisitorEvent::Message { message: message.clone() });
    }

    /// Tells everyone what a command changed: status events, the router's
    /// capacity accounting, and the board. Called after every mutation.
    fn after_change(&mut self, before: Status, members_changed: bool) {
        let c = &self.conversation;
        let (id, status, channel) = (c.id, c.status(), c.channel_id);
        if status != before {
            self.to_members(AgentEvent::Status { conversation_id: id, status });
            if status.for_visitor() != before.for_visitor() && status != Status::Closed {
                let queue_position = self.queue_position.filter(|_| status == Status::Queued);
                self.notify_visitor(VisitorEvent::Status { status: status.for_visitor(), queue_position });
            }
        }
        let router = self.core.router().clone();
        if status == Status::Closed && before != Status::Closed {
            self.to_members(AgentEvent::Closed { conversation_id: id });
            self.notify_visitor(VisitorEvent::Closed);
            if let ([a, b], Kind::Direct) = (self.conversation.members(), self.conversation.kind) {
                self.core.forget_direct(*a, *b);
            }
            router.do_send(ConversationClosed { conversation: id, channel });
        } else if members_changed && self.conversation.kind == Kind::Livechat {
            if let Some(channel) = channel {
                router.do_send(MembersChanged { conversation: id, channel, members: self.conversation.members().to_vec() });
            }
        }
        if before == Status::NeedHelp || status == Status::NeedHelp {
            let entry = (status == Status::NeedHelp).then(|| ConversationSummary::from(&self.conversation));
            router.do_send(BoardChanged { conversation: id, entry });
        }
    }

    /// Adds `operator` as a member (already done in the domain) and tells
    /// them, the other members and the visitor.
    fn welcome(&mut self, operator: OperatorId, arrival: Arrival) {
        let id = self.conversation.id;
        let user = UserRef { id: operator, name: self.core.operator_name(operator) };
        let notice = self.system_post(format!("{} joined the conversation", user.name));
        let addr = self.core.operator(operator);
        addr.do_send(Track { conversation: id, member: true });
        match arrival {
            Arrival::Assigned => addr.do_send(Deliver(timed(AgentEvent::Assigned { conversation: self.view() }))),
            Arrival::Invited => addr.do_send(Deliver(timed(AgentEvent::Invited { conversation: self.view() }))),
            Arrival::Joined => {}
        }
        self.to_members(AgentEvent::MemberJoined { conversation_id: id, user: user.clone() });
        self.notify_visitor(VisitorEvent::MemberJoined { user });
        self.publish_message(&notice);
    }
}

/// The visitor opened the session: the chatbot starts, or, without one, the
/// conversation is forwarded to an operator. Answered once that is decided.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Start;

impl Handler<Start> for ConversationActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, _: Start, ctx: &mut Context<Self>) -> Self::Result {
        let turn = match self.conversation.bot_mut() {
            Some(bot) => {
                let actions = bot.advance();
                self.run_bot(actions, ctx)
            }
            None => self.forward(true, ctx),
        };
        AtomicResponse::new(turn)
    }
}

/// What is posted: text, or the visitor picking an answer of the bot's question.
#[derive(Debug)]
pub enum Content {
    Text(String),
    /// Stored as a visitor message holding the answer's label.
    Answer {
        step_id: StepId,
        answer_id: AnswerId,
    },
}

/// Post a chat message; answers with the stored message (the original one
/// when `client_ref` was already used by the same author), or `None` when an
/// empty line ended a `free_input_multi` answer. The chatbot's reply, if
/// any, is posted before the answer is sent.
#[derive(Message)]
#[rtype(result = "Result<Option<ChatMessage>, ConversationError>")]
pub struct PostMessage {
    pub poster: Poster,
    pub content: Content,
    pub client_ref: Option<String>,
}

impl Handler<PostMessage> for ConversationActor {
    type Result = AtomicResponse<Self, Result<Option<ChatMessage>, ConversationError>>;

    fn handle(&mut self, msg: PostMessage, ctx: &mut Context<Self>) -> Self::Result {
        let (result, bot_turn) = self.post(msg, ctx);
        AtomicResponse::new(Box::pin(bot_turn.map(move |(), _, _| result)))
    }
}

/// An operator asking to read: members and admins always, anyone while it looks for help.
#[derive(Clone, Copy, Debug)]
pub struct Reader {
    pub operator: OperatorId,
    pub is_admin: bool,
}

/// The conversation as an operator sees it, if they may read it.
#[derive(Message)]
#[rtype(result = "Result<ConversationView, ConversationError>")]
pub struct GetConversation {
    pub reader: Reader,
}

impl Handler<GetConversation> for ConversationActor {
    type Result = Result<ConversationView, ConversationError>;

    fn handle(&mut self, msg: GetConversation, _: &mut Context<Self>) -> Self::Result {
        self.conversation.check_readable(msg.reader.operator, msg.reader.is_admin)?;
        Ok(self.view())
    }
}

/// The conversation as its visitor sees it.
#[derive(Message)]
#[rtype(result = "VisitorConversationView")]
pub struct GetVisitorConversation;

impl Handler<GetVisitorConversation> for ConversationActor {
    type Result = MessageResult<GetVisitorConversation>;

    fn handle(&mut self, _: GetVisitorConversation, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.visitor_view())
    }
}

/// The list form of the conversation, checked against `reader` when given
/// (`None` when the caller already knows the reader is a member).
#[derive(Message)]
#[rtype(result = "Result<ConversationSummary, ConversationError>")]
pub struct GetSummary {
    pub reader: Option<Reader>,
}

impl Handler<GetSummary> for ConversationActor {
    type Result = Result<ConversationSummary, ConversationError>;

    fn handle(&mut self, msg: GetSummary, _: &mut Context<Self>) -> Self::Result {
        if let Some(reader) = msg.reader {
            self.conversation.check_readable(reader.operator, reader.is_admin)?;
        }
        Ok(ConversationSummary::from(&self.conversation))
    }
}

/// A member sets the status (`in_progress`, `waiting`, `need_help`).
#[derive(Message)]
#[rtype(result = "Result<ConversationView, ConversationError>")]
pub struct SetStatus {
    pub by: OperatorId,
    pub status: RequestedStatus,
}

impl Handler<SetStatus> for ConversationActor {
    type Result = Result<ConversationView, ConversationError>;

    fn handle(&mut self, msg: SetStatus, _: &mut Context<Self>) -> Self::Result {
        let before = self.conversation.status();
        self.conversation.set_status(msg.by, msg.status)?;
        self.after_change(before, false);
        Ok(self.view())
    }
}

/// A member replaces the wanted expertise (ids already checked to exist).
#[derive(Message)]
#[rtype(result = "Result<ConversationView, ConversationError>")]
pub struct SetExpertise {
    pub by: OperatorId,
    pub expertise_ids: BTreeSet<ExpertiseId>,
}

impl Handler<SetExpertise> for ConversationActor {
    type Result = Result<ConversationView, ConversationError>;

    fn handle(&mut self, msg: SetExpertise, _: &mut Context<Self>) -> Self::Result {
        let before = self.conversation.status();
        self.conversation.set_expertise(msg.by, msg.expertise_ids)?;
        self.after_change(before, false);
        Ok(self.view())
    }
}

/// An operator answers a call for help.
#[derive(Message)]
#[rtype(result = "Result<ConversationView, ConversationError>")]
pub struct Join {
    pub operator: OperatorId,
}

impl Handler<Join> for ConversationActor {
    type Result = Result<ConversationView, ConversationError>;

    fn handle(&mut self, msg: Join, _: &mut Context<Self>) -> Self::Result {
        let before = self.conversation.status();
        self.conversation.join(msg.operator)?;
        self.after_change(before, true);
        self.welcome(msg.operator, Arrival::Joined);
        Ok(self.view())
    }
}

/// A member brings colleagues in (ids already checked to exist).
#[derive(Message)]
#[rtype(result = "Result<ConversationView, ConversationError>")]
pub struct Invite {
    pub by: OperatorId,
    pub invitees: Vec<OperatorId>,
}

impl Handler<Invite> for ConversationActor {
    type Result = Result<ConversationView, ConversationError>;

    fn handle(&mut self, msg: Invite, _: &mut Context<Self>) -> Self::Result {
        let before = self.conversation.status();
        let added = self.conversation.invite(msg.by, &msg.invitees)?;
        self.after_change(before, !added.is_empty());
        for operator in added {
            self.welcome(operator, Arrival::Invited);
        }
        Ok(self.view())
    }
}

/// A member steps out of the conversation.
#[derive(Message)]
#[rtype(result = "Result<(), ConversationError>")]
pub struct Leave {
    pub operator: OperatorId,
}

impl Handler<Leave> for ConversationActor {
    type Result = Result<(), ConversationError>;

    fn handle(&mut self, msg: Leave, _: &mut Context<Self>) -> Self::Result {
        let before = self.conversation.status();
        let user = UserRef { id: msg.operator, name: self.core.operator_name(msg.operator) };
        self.conversation.leave(msg.operator)?;
        self.core.operator(msg.operator).do_send(Track { conversation: self.conversation.id, member: false });
        // The leaver is no longer a member but still hears that they left.
        let event = timed(AgentEvent::MemberLeft { conversation_id: self.conversation.id, user: user.clone() });
        self.core.operator(msg.operator).do_send(Deliver(event.clone()));
        self.to_members_except(&event, None);
        let notice = self.system_post(format!("{} left the conversation", user.name));
        self.publish_message(&notice);
        self.after_change(before, true);
        Ok(())
    }
}

/// Who ends a conversation.
#[derive(Clone, Copy, Debug)]
pub enum Closer {
    /// A member operator.
    Operator(OperatorId),
    /// The visitor leaving: operators see "Visitor left the conversation".
    Visitor,
}

/// End the conversation for everyone.
#[derive(Message)]
#[rtype(result = "Result<ConversationView, ConversationError>")]
pub struct Close {
    pub by: Closer,
}

impl Handler<Close> for ConversationActor {
    type Result = Result<ConversationView, ConversationError>;

    fn handle(&mut self, msg: Close, _: &mut Context<Self>) -> Self::Result {
        let before = self.conversation.status();
        if let Closer::Operator(operator) = msg.by {
            if !self.conversation.is_member(operator) {
                return Err(ConversationError::NotMember);
            }
        }
        self.conversation.close()?;
        if let Closer::Visitor = msg.by {
            let notice = self.system_post("Visitor left the conversation".into());
            self.publish_message(&notice);
        }
        self.queue_position = None;
        self.after_change(before, false);
        Ok(self.view())
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

    fn handle(&mut self, msg: AssignOperator, _: &mut Context<Self>) {
        let before = self.conversation.status();
        let operator = msg.assignment.operator_id;
        // A closed conversation refuses; the router frees the capacity when its
        // `ConversationClosed` arrives.
        if self.conversation.assign(msg.assignment).is_ok() {
            self.queue_position = None;
            self.after_change(before, false);
            self.welcome(operator, Arrival::Assigned);
        }
    }
}

/// The conversation's place in its channel queue changed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetQueuePosition(pub u32);

impl Handler<SetQueuePosition> for ConversationActor {
    type Result = ();

    fn handle(&mut self, msg: SetQueuePosition, _: &mut Context<Self>) {
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
            self.after_change(before, false);
        }
    }
}

/// A visitor connection opens: answers the greeting (hello, then every message
/// after `after`) and registers the session for live events, atomically, so
/// nothing is missed in between.
#[derive(Message)]
#[rtype(result = "Vec<VisitorEvent>")]
pub struct AttachVisitor {
    pub session: SessionTx<VisitorEvent>,
    pub after: Option<MessageId>,
}

impl Handler<AttachVisitor> for ConversationActor {
    type Result = MessageResult<AttachVisitor>;

    fn handle(&mut self, msg: AttachVisitor, _: &mut Context<Self>) -> Self::Result {
        let mut greeting = vec![VisitorEvent::Hello { conversation: self.visitor_view() }];
        if let Some(after) = msg.after {
            greeting.extend(self.conversation.messages_after(after).iter().map(|m| VisitorEvent::Message { message: m.clone() }));
        }
        self.visitors.retain(|s| !s.same_session(&msg.session));
        self.visitors.push(msg.session);
        MessageResult(greeting)
    }
}

/// Messages after `after`, for an operator resuming after a reconnect.
#[derive(Message)]
#[rtype(result = "Result<Vec<ChatMessage>, ConversationError>")]
pub struct Replay {
    pub reader: Reader,
    pub after: MessageId,
}

impl Handler<Replay> for ConversationActor {
    type Result = Result<Vec<ChatMessage>, ConversationError>;

    fn handle(&mut self, msg: Replay, _: &mut Context<Self>) -> Self::Result {
        self.conversation.check_readable(msg.reader.operator, msg.reader.is_admin)?;
        Ok(self.conversation.messages_after(msg.after).to_vec())
    }
}

/// Someone is typing: tell the other side (not stored).
#[derive(Message)]
#[rtype(result = "Result<(), ConversationError>")]
pub struct Typing {
    pub poster: Poster,
}

impl Handler<Typing> for ConversationActor {
    type Result = Result<(), ConversationError>;

    fn handle(&mut self, msg: Typing, _: &mut Context<Self>) -> Self::Result {
        if let Poster::Operator(operator) = msg.poster {
            if !self.conversation.is_member(operator) {
                return Err(ConversationError::NotMember);
            }
        }
        if self.conversation.status() == Status::Closed {
            return Err(ConversationError::Closed);
        }
        let author = self.author(msg.poster);
        let id = self.conversation.id;
        let except = match msg.poster {
            Poster::Operator(operator) => Some(operator),
            Poster::Visitor => None,
        };
        self.to_members_except(&timed(AgentEvent::Typing { conversation_id: id, author: author.clone() }), except);
        if msg.poster != Poster::Visitor {
            self.notify_visitor(VisitorEvent::Typing { author });
        }
        Ok(())
    }
}

/// An expertise was deleted: stop wanting it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ForgetExpertise(pub ExpertiseId);

impl Handler<ForgetExpertise> for ConversationActor {
    type Result = ();

    fn handle(&mut self, msg: ForgetExpertise, _: &mut Context<Self>) {
        if self.conversation.expertise_ids.remove(&msg.0) {
            let status = self.conversation.status();
            self.after_change(status, false);
        }
    }
}
