//! Which conversations a history search finds and who may see them: the
//! rules shared by live conversations (checked in memory) and archived ones
//! (checked in SQL by `archive`), stated once here.

use std::collections::BTreeSet;

use super::conversation::Conversation;
use super::directory::Directory;
use super::search::Terms;
use super::time::Timestamp;
use super::{ChannelId, ConversationId, ExpertiseId, OperatorId};

/// Longest snippet, in characters.
pub const SNIPPET_CHARS: usize = 200;

/// `GET /history`'s filters, all optional, all required to hold.
#[derive(Clone, Debug, Default)]
pub struct HistoryFilter {
    pub terms: Terms,
    pub channel: Option<ChannelId>,
    pub operator: Option<OperatorId>,
    pub expertise: Option<ExpertiseId>,
    pub visitor_key: Option<String>,
    /// `from <= created_at < to`.
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub rating: Option<u8>,
    /// The cursor: only conversations with a smaller id (ids follow creation order).
    pub before: Option<ConversationId>,
    /// Never this one (a visitor's other conversations).
    pub except: Option<ConversationId>,
}

/// Who is searching. Admins see everything; an operator sees the
/// conversations of channels they belong to and those they ever took part in.
#[derive(Clone, Debug)]
pub struct Viewer {
    pub operator: OperatorId,
    pub is_admin: bool,
    /// The channels the operator belongs to.
    pub channels: BTreeSet<ChannelId>,
}

impl Viewer {
    pub fn new(operator: OperatorId, is_admin: bool, directory: &Directory) -> Viewer {
        let channels = directory.channels().filter(|c| c.operator_ids.contains(&operator)).map(|c| c.id).collect();
        Viewer { operator, is_admin, channels }
    }

    pub fn sees(&self, channel: Option<ChannelId>, participants: &BTreeSet<OperatorId>) -> bool {
        self.is_admin || channel.is_some_and(|c| self.channels.contains(&c)) || participants.contains(&self.operator)
    }
}

/// A live conversation the search found, with its snippet when `q` matched a message.
pub struct Found {
    pub snippet: Option<String>,
}

impl HistoryFilter {
    /// Whether the search finds live conversation `c` for `viewer`.
    pub fn find(&self, c: &Conversation, viewer: &Viewer) -> Option<Found> {
        let participants = c.participants();
        let visitor_key = c.visitor.as_ref().and_then(|v| v.key.as_deref());
        let kept = viewer.sees(c.channel_id, participants)
            && self.before.is_none_or(|b| c.id < b)
            && self.except != Some(c.id)
            && self.channel.is_none_or(|ch| c.channel_id == Some(ch))
            && self.operator.is_none_or(|op| participants.contains(&op))
            && self.expertise.is_none_or(|e| c.expertise_ids.contains(&e))
            && self.visitor_key.as_deref().is_none_or(|k| visitor_key == Some(k))
            && self.from.is_none_or(|from| c.created_at >= from)
            && self.to.is_none_or(|to| c.created_at < to)
            // Live conversations are not rated yet.
            && self.rating.is_none();
        if !kept {
            return None;
        }
        if self.terms.is_empty() {
            return Some(Found { snippet: None });
        }
        if let Some(m) = c.messages().iter().rev().find(|m| self.terms.matches(&m.body)) {
            return Some(Found { snippet: Some(snippet(&m.body)) });
        }
        // As the archive's row 0: the visitor is found by name and e-mail address.
        let visitor = c.visitor.as_ref()?;
        let who = visitor.context.email.as_ref().map_or_else(|| visitor.name.clone(), |email| format!("{} {email}", visitor.name));
        self.terms.matches(&who).then_some(Found { snippet: None })
    }
}

/// A message body cut to [`SNIPPET_CHARS`] characters.
pub fn snippet(body: &str) -> String {
    match body.char_indices().nth(SNIPPET_CHARS) {
        Some((end, _)) => body[..end].to_owned(),
        None => body.to_owned(),
    }
}

/// The opaque `next_cursor` for a page that ended at conversation `last`.
pub fn cursor(last: ConversationId) -> String {
    format!("h1.{}", last.0)
}

/// Conversation ids stay below this, so the archive's message keys (`id << 24 | n`) fit in SQLite's i64.
pub const MAX_CONVERSATION_ID: u64 = 1 << 39;

/// Reads a cursor made by [`cursor`]; `None` when it is not one.
pub fn parse_cursor(text: &str) -> Option<ConversationId> {
    let id: u64 = text.strip_prefix("h1.")?.parse().ok()?;
    (1..=MAX_CONVERSATION_ID).contains(&id).then_some(ConversationId(id))
}
