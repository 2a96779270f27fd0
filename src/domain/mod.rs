//! Plain data and the rules over it: who the operators are, what expertise exists,
//! how a conversation may change status, and how an operator is picked.
//!
//! Nothing here knows about actors, sockets or disk; that keeps every rule
//! unit-testable in place and lets the snapshot format evolve separately.

pub mod assignment;
pub mod canned;
pub mod chatbot;
pub mod conversation;
pub mod directory;
pub mod history;
pub mod ids;
pub mod lead;
pub mod operator;
pub mod report;
pub mod search;
pub mod text;
pub mod time;
pub mod visitor;
pub mod webhook;

pub use ids::{AnswerId, CannedId, ChannelId, ChatbotId, ConversationId, ExpertiseId, MessageId, OperatorId, StepId};
