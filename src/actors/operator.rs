//! `OperatorActor`: one per operator. Owns their presence and their open
//! sessions (one per console tab), pushes events to every tab, and remembers
//! which conversations they belong to.

use std::collections::BTreeSet;
use std::sync::Arc;

use actix::{Actor, Context, Handler, Message, MessageResult};
use thiserror::Error;

use super::router::OperatorPresence;
use super::Core;
use crate::domain::operator::Presence;
use crate::domain::{ConversationId, OperatorId};
use crate::ws::outbound::{SessionTx, StopReason, Timed};
use crate::ws::protocol::{AgentEvent, PresenceFrames};

/// One console tab: its outbound queue and how it takes presence changes.
struct Tab {
    session: SessionTx<AgentEvent>,
    presence: PresenceFrames,
}

pub struct OperatorActor {
    id: OperatorId,
    core: Arc<Core>,
    /// Invariant: empty exactly when `presence` is `Offline`.
    sessions: Vec<Tab>,
    presence: Presence,
    conversations: BTreeSet<ConversationId>,
}

impl OperatorActor {
    pub fn new(id: OperatorId, core: Arc<Core>) -> OperatorActor {
        OperatorActor { id, core, sessions: Vec::new(), presence: Presence::Offline, conversations: BTreeSet::new() }
    }

    fn set_presence(&mut self, presence: Presence) {
        if self.presence != presence {
            self.presence = presence;
            self.core.router().do_send(OperatorPresence { operator: self.id, presence });
        }
    }

    /// Called after sessions went away: with none left the operator is offline.
    fn offline_if_no_sessions(&mut self) {
        if self.sessions.is_empty() {
            self.set_presence(Presence::Offline);
        }
    }

    /// Queues to every tab what `deliver` gives it, forgetting the tabs that
    /// are gone or too slow (it answers `false` for those).
    fn deliver(&mut self, deliver: impl Fn(&Tab) -> bool) {
        let before = self.sessions.len();
        self.sessions.retain(deliver);
        if self.sessions.len() != before {
            self.offline_if_no_sessions();
        }
    }
}

impl Actor for OperatorActor {
    type Context = Context<Self>;
}

/// A console tab connected: the first one makes the operator `online`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Connect {
    pub session: SessionTx<AgentEvent>,
    pub presence: PresenceFrames,
}

impl Handler<Connect> for OperatorActor {
    type Result = ();

    fn handle(&mut self, msg: Connect, _: &mut Context<Self>) {
        self.sessions.push(Tab { session: msg.session, presence: msg.presence });
        if self.presence == Presence::Offline {
            self.set_presence(Presence::Online);
        }
    }
}

/// A console tab closed: the last one makes the operator `offline`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect {
    pub session: SessionTx<AgentEvent>,
}

impl Handler<Disconnect> for OperatorActor {
    type Result = ();

    fn handle(&mut self, msg: Disconnect, _: &mut Context<Self>) {
        self.sessions.retain(|tab| !tab.session.same_session(&msg.session));
        self.offline_if_no_sessions();
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SetPresenceError {
    #[error("presence can only change while connected: open /ws/agent first")]
    NotConnected,
}

/// The operator switches between `online` and `away`; answers the new presence.
#[derive(Message)]
#[rtype(result = "Result<Presence, SetPresenceError>")]
pub struct SetPresence {
    pub presence: Presence,
}

impl Handler<SetPresence> for OperatorActor {
    type Result = Result<Presence, SetPresenceError>;

    fn handle(&mut self, msg: SetPresence, _: &mut Context<Self>) -> Self::Result {
        if self.sessions.is_empty() {
            return Err(SetPresenceError::NotConnected);
        }
        self.set_presence(msg.presence);
        Ok(self.presence)
    }
}

/// Push an event to every tab of the operator.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deliver(pub Arc<Timed<AgentEvent>>);

impl Handler<Deliver> for OperatorActor {
    type Result = ();

    fn handle(&mut self, msg: Deliver, _: &mut Context<Self>) {
        self.deliver(|tab| tab.session.deliver(&msg.0));
    }
}

/// Presence changes the router gathered, in both forms: each tab gets the one it asked for.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DeliverPresence {
    /// One `presence` event per change, in order.
    pub each: Arc<[Arc<Timed<AgentEvent>>]>,
    /// One `presences` event with all of them.
    pub batched: Arc<Timed<AgentEvent>>,
}

impl Handler<DeliverPresence> for OperatorActor {
    type Result = ();

    fn handle(&mut self, msg: DeliverPresence, _: &mut Context<Self>) {
        self.deliver(|tab| match tab.presence {
            PresenceFrames::Each => msg.each.iter().all(|event| tab.session.deliver(event)),
            PresenceFrames::Batched => tab.session.deliver(&msg.batched),
        });
    }
}

/// The operator became, or stopped being, a member of a conversation.
#[derive(Message)]
#[rtype(result = "()")]
pub enum Track {
    Joined(ConversationId),
    Left(ConversationId),
}

impl Handler<Track> for OperatorActor {
    type Result = ();

    fn handle(&mut self, msg: Track, _: &mut Context<Self>) {
        match msg {
            Track::Joined(conversation) => self.conversations.insert(conversation),
            Track::Left(conversation) => self.conversations.remove(&conversation),
        };
    }
}

/// An admin deactivated the operator: every console tab closes now, which
/// makes them offline (the router routes their chats again).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deactivate;

impl Handler<Deactivate> for OperatorActor {
    type Result = ();

    fn handle(&mut self, _: Deactivate, _: &mut Context<Self>) {
        for tab in self.sessions.drain(..) {
            tab.session.stop(StopReason::Deactivated);
        }
        self.set_presence(Presence::Offline);
    }
}

/// The conversations the operator belongs to.
#[derive(Message)]
#[rtype(result = "Vec<ConversationId>")]
pub struct ListConversations;

impl Handler<ListConversations> for OperatorActor {
    type Result = MessageResult<ListConversations>;

    fn handle(&mut self, _: ListConversations, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.conversations.iter().copied().collect())
    }
}
