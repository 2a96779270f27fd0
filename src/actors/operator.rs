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
use crate::ws::protocol::AgentEvent;

pub struct OperatorActor {
    id: OperatorId,
    core: Arc<Core>,
    /// Invariant: empty exactly when `presence` is `Offline`.
    sessions: Vec<SessionTx<AgentEvent>>,
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
}

impl Actor for OperatorActor {
    type Context = Context<Self>;
}

/// A console tab connected: the first one makes the operator `online`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Connect {
    pub session: SessionTx<AgentEvent>,
}

impl Handler<Connect> for OperatorActor {
    type Result = ();

    fn handle(&mut self, msg: Connect, _: &mut Context<Self>) {
        self.sessions.push(msg.session);
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
        self.sessions.retain(|s| !s.same_session(&msg.session));
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
        let before = self.sessions.len();
        self.sessions.retain(|s| s.deliver(&msg.0));
        if self.sessions.len() != before {
            self.offline_if_no_sessions();
        }
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
        for session in self.sessions.drain(..) {
            session.stop(StopReason::Deactivated);
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
