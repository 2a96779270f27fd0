//! The WebSocket wire contract: client commands and server events as serde
//! enums tagged by `type`. Tests and load tools use these same types.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::domain::conversation::{Author, LeaveReason, Message, Rating, RequestedStatus, Status, Visitor};
use crate::domain::operator::{Presence, SettablePresence};
use crate::domain::{AnswerId, ConversationId, MessageId, OperatorId, StepId};
use crate::error::ErrorDetail;
use crate::views::{BoardEntry, ConversationSummary, ConversationView, LeadView, ReaderBoard, UserRef, UserView, VisitorConversationView};

/// Longest client `ref`, so a client cannot make the server store large keys.
pub const MAX_REF_CHARS: usize = 64;

/// A client frame: a command plus the optional `ref` echoed in its `ack` or `error`.
#[derive(Debug, Deserialize)]
pub struct Frame<C> {
    #[serde(rename = "ref", default)]
    pub reference: Option<String>,
    #[serde(flatten)]
    pub command: C,
}

/// Only the `ref` of a frame, read when the frame as a whole is malformed so the
/// error can still be matched to the request.
#[derive(Debug, Deserialize)]
pub struct RefOnly {
    #[serde(rename = "ref")]
    pub reference: Option<String>,
}

/// Commands on `/ws/agent`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentCommand {
    Send {
        conversation_id: ConversationId,
        body: String,
        /// An internal note: members see it, the visitor never does.
        #[serde(default)]
        internal: bool,
    },
    SetStatus {
        conversation_id: ConversationId,
        status: RequestedStatus,
        /// Why help is needed (`need_help` only).
        #[serde(default)]
        note: Option<String>,
    },
    Join {
        conversation_id: ConversationId,
    },
    Presence {
        presence: SettablePresence,
    },
    Typing {
        conversation_id: ConversationId,
    },
    /// Replays every message with `id > after_id` before live ones.
    Resume {
        conversation_id: ConversationId,
        after_id: MessageId,
    },
}

/// Commands on `/ws/visitor`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum VisitorCommand {
    Send {
        body: String,
    },
    /// Picks an answer of the chatbot's selection question; stored as a
    /// visitor message holding the answer's label.
    Answer {
        step_id: StepId,
        answer_id: AnswerId,
    },
    Typing,
    /// Rates the ended conversation: 1 unhappy, 3 neutral, 5 happy.
    Rate {
        score: u8,
        #[serde(default)]
        comment: Option<String>,
    },
    /// The visitor opened a page of the site.
    Page {
        url: String,
        #[serde(default)]
        title: String,
    },
}

/// Why an `assigned` came other than routing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AssignReason {
    Transfer,
}

/// One operator's new presence, as the `presence` event states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PresenceChange {
    pub user_id: OperatorId,
    pub presence: Presence,
}

/// How a console receives presence changes (`/ws/agent?presence=…`).
///
/// Every change goes to every operator, so when N operators come online
/// together each `each` console receives N frames (N² in all); a `batched`
/// console receives one `presences` frame per gathering of changes instead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PresenceFrames {
    /// One `presence` event per change (API.md v1).
    #[default]
    Each,
    /// One `presences {changes}` event per gathering (an addition).
    Batched,
}

/// Events pushed to operators.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentEvent {
    Hello {
        user: UserView,
        conversations: Vec<ConversationSummary>,
        need_help: Vec<BoardEntry>,
    },
    Assigned {
        conversation: ConversationView,
        /// `transfer` when a colleague handed it over; absent when the router routed it.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<AssignReason>,
    },
    Invited {
        conversation: ConversationView,
    },
    Message {
        conversation_id: ConversationId,
        message: Message,
    },
    Status {
        conversation_id: ConversationId,
        status: Status,
    },
    MemberJoined {
        conversation_id: ConversationId,
        user: UserRef,
    },
    MemberLeft {
        conversation_id: ConversationId,
        user: UserRef,
        /// Set when the router took the conversation from them, and why.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<LeaveReason>,
    },
    Closed {
        conversation_id: ConversationId,
    },
    /// The whole Looking-for-help board, with this operator's stars and memberships.
    NeedHelp {
        conversations: ReaderBoard,
    },
    Presence {
        user_id: OperatorId,
        presence: Presence,
    },
    /// Every presence change of the last few milliseconds, oldest first, for a
    /// console that connected with `presence=batched` (see [`PresenceFrames`]).
    Presences {
        changes: Arc<[PresenceChange]>,
    },
    Typing {
        conversation_id: ConversationId,
        author: Author,
    },
    /// The visitor's context changed (a page opened, an e-mail address given).
    Visitor {
        conversation_id: ConversationId,
        visitor: Visitor,
    },
    /// The visitor rated the conversation after it ended.
    Rating {
        conversation_id: ConversationId,
        rating: Rating,
    },
    /// A missed chat on one of the operator's channels appeared, was claimed or was done.
    Lead {
        lead: LeadView,
    },
}

/// Events pushed to a visitor.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum VisitorEvent {
    Hello {
        conversation: VisitorConversationView,
    },
    Message {
        message: Message,
    },
    Status {
        status: Status,
        #[serde(skip_serializing_if = "Option::is_none")]
        queue_position: Option<u32>,
    },
    MemberJoined {
        user: UserRef,
    },
    /// `can_rate`: the visitor may now rate the conversation (`rate`, or `POST /visitor/rating`).
    Closed {
        can_rate: bool,
    },
    Typing {
        author: Author,
    },
}

/// The server's answer to one command.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    Ack {
        #[serde(rename = "ref")]
        reference: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<Message>,
    },
    Error {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        error: ErrorDetail,
    },
}
