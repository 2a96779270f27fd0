//! The API's JSON shapes, shared by HTTP responses and WebSocket events so that
//! a conversation looks the same whichever way a client receives it.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

use serde::Serialize;

use crate::domain::assignment::RoutingOrder;
use crate::domain::canned::CannedResponse;
use crate::domain::chatbot::{Answer, Chatbot, StepKind};
use crate::domain::conversation::{Assignment, Conversation, Kind, Message, Rating, Status, Visitor};
use crate::domain::directory::{Channel, Directory, Expertise};
use crate::domain::lead::{Lead, LeadReason, LeadStatus};
use crate::domain::operator::{Operator, Presence, Role};
use crate::domain::report::{ExpertiseRow, OperatorRow};
use crate::domain::time::Timestamp;
use crate::domain::{AnswerId, CannedId, ChannelId, ChatbotId, ConversationId, ExpertiseId, MessageId, OperatorId, StepId};

/// An operator with their live presence and load.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: OperatorId,
    pub login: String,
    pub name: String,
    pub role: Role,
    pub expertise_ids: Vec<ExpertiseId>,
    pub languages: Vec<String>,
    pub country: Option<String>,
    pub presence: Presence,
    pub active_chats: u32,
    /// `false` once deactivated: kept so history shows the name, never routed or logged in.
    pub active: bool,
}

impl UserView {
    pub fn new(operator: &Operator, live: LiveStatus) -> UserView {
        UserView {
            id: operator.id,
            login: operator.login.clone(),
            name: operator.name.clone(),
            role: operator.role,
            expertise_ids: operator.expertise_ids.iter().copied().collect(),
            languages: operator.languages.clone(),
            country: operator.country.clone(),
            presence: live.presence,
            active_chats: live.active_chats,
            active: operator.active,
        }
    }
}

/// What only the router knows about an operator: presence and open chats.
#[derive(Clone, Copy, Debug, Default)]
pub struct LiveStatus {
    pub presence: Presence,
    pub active_chats: u32,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct UserRef {
    pub id: OperatorId,
    pub name: String,
}

/// `[2026-11-30T09:00:00.000Z] Ann: Hello` per message; an internal note
/// reads `Ann (internal note): …`, so a transcript forwarded by an operator
/// cannot pass a note off as something the visitor was told. The one text
/// form of a conversation: downloads, lead mails and visitors' copies.
pub fn transcript_text<'a>(messages: impl IntoIterator<Item = &'a Message>) -> String {
    let mut text = String::new();
    for m in messages {
        let marker = if m.internal { " (internal note)" } else { "" };
        // unwrap: writing to a String cannot fail.
        writeln!(text, "[{}] {}{marker}: {}", m.created_at, m.author.name, m.body).unwrap();
    }
    text
}

/// A missed chat, as `GET /leads` and the `lead` event show it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct LeadView {
    pub conversation_id: ConversationId,
    pub channel_id: ChannelId,
    pub visitor_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    pub reason: LeadReason,
    pub created_at: Timestamp,
    pub status: LeadStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claimed_by: Option<UserRef>,
}

impl LeadView {
    pub fn new(lead: &Lead, name_of: impl Fn(OperatorId) -> String) -> LeadView {
        LeadView {
            conversation_id: lead.conversation_id,
            channel_id: lead.channel_id,
            visitor_name: lead.visitor_name.clone(),
            email: lead.email.clone(),
            phone: lead.phone.clone(),
            reason: lead.reason,
            created_at: lead.created_at,
            status: lead.status,
            claimed_by: lead.claimed_by.map(|id| UserRef { id, name: name_of(id) }),
        }
    }
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ExpertiseView {
    pub id: ExpertiseId,
    pub name: String,
    pub operator_ids: Vec<OperatorId>,
}

impl ExpertiseView {
    pub fn new(expertise: &Expertise, directory: &Directory) -> ExpertiseView {
        ExpertiseView { id: expertise.id, name: expertise.name.clone(), operator_ids: directory.holders(expertise.id) }
    }
}

/// A canned response as `/canned_responses` shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct CannedView {
    pub id: CannedId,
    pub shortcut: String,
    /// May hold `{visitor_name}` and `{operator_name}`, filled in by the console.
    pub body: String,
    pub shared: bool,
    /// The operator whose own response it is; absent for shared ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<OperatorId>,
}

impl From<&CannedResponse> for CannedView {
    fn from(c: &CannedResponse) -> CannedView {
        CannedView { id: c.id, shortcut: c.shortcut.clone(), body: c.body.clone(), shared: c.owner.is_none(), owner_id: c.owner }
    }
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ExpertiseRef {
    pub id: ExpertiseId,
    pub name: String,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ChannelView {
    pub id: ChannelId,
    pub name: String,
    pub operator_ids: Vec<OperatorId>,
    pub max_sessions: Option<u32>,
    pub chatbot_id: Option<ChatbotId>,
    pub expert_wait_s: Option<u32>,
    pub answer_timeout_s: Option<u32>,
    pub offline_grace_s: Option<u32>,
    pub routing_order: RoutingOrder,
    /// Where new leads are e-mailed (with `--smtp-url`); null = nowhere.
    pub notify_email: Option<String>,
}

impl From<&Channel> for ChannelView {
    fn from(channel: &Channel) -> ChannelView {
        ChannelView {
            id: channel.id,
            name: channel.name.clone(),
            operator_ids: channel.operator_ids.iter().copied().collect(),
            max_sessions: channel.max_sessions,
            chatbot_id: channel.chatbot_id,
            expert_wait_s: channel.options.expert_wait_s,
            answer_timeout_s: channel.options.answer_timeout_s,
            offline_grace_s: channel.options.offline_grace_s,
            routing_order: channel.options.routing_order,
            notify_email: channel.notify_email.clone(),
        }
    }
}

/// A chatbot script as the API shows it; the same shape is accepted back.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ChatbotView {
    pub id: ChatbotId,
    pub title: String,
    pub steps: Vec<StepView>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct StepView {
    pub id: StepId,
    #[serde(rename = "type")]
    pub kind: StepKind,
    pub message: String,
    pub answers: Vec<Answer>,
    pub only_if_answer_ids: Vec<AnswerId>,
    pub expertise_ids: Vec<ExpertiseId>,
}

impl From<&Chatbot> for ChatbotView {
    fn from(chatbot: &Chatbot) -> ChatbotView {
        let steps = chatbot
            .steps
            .iter()
            .map(|s| StepView {
                id: s.id,
                kind: s.kind,
                message: s.message.clone(),
                answers: s.answers.clone(),
                only_if_answer_ids: s.only_if_answer_ids.iter().copied().collect(),
                expertise_ids: s.expertise_ids.iter().copied().collect(),
            })
            .collect();
        ChatbotView { id: chatbot.id, title: chatbot.title.clone(), steps }
    }
}

/// A conversation as operators see it: the summary plus the assignment record and transcript.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ConversationView {
    #[serde(flatten)]
    pub summary: ConversationSummary,
    pub assignment: Option<Assignment>,
    #[schema(value_type = Vec<Message>)]
    pub messages: Vec<Arc<Message>>,
}

impl From<&Conversation> for ConversationView {
    fn from(c: &Conversation) -> ConversationView {
        ConversationView { summary: ConversationSummary::from(c), assignment: c.assignment.clone(), messages: c.messages().to_vec() }
    }
}

/// A conversation in a list: everything but the transcript, plus its last message.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ConversationSummary {
    pub id: ConversationId,
    pub kind: Kind,
    pub channel_id: Option<ChannelId>,
    pub status: Status,
    pub expertise_ids: Vec<ExpertiseId>,
    pub member_ids: Vec<OperatorId>,
    pub visitor: Option<Visitor>,
    pub created_at: Timestamp,
    pub need_help_since: Option<Timestamp>,
    pub last_message: Option<Message>,
    /// When it was closed (closed conversations only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<Timestamp>,
    /// The visitor's satisfaction, once rated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rating: Option<Rating>,
}

impl From<&Conversation> for ConversationSummary {
    fn from(c: &Conversation) -> ConversationSummary {
        ConversationSummary {
            id: c.id,
            kind: c.kind,
            channel_id: c.channel_id,
            status: c.status(),
            expertise_ids: c.expertise_ids.iter().copied().collect(),
            member_ids: c.members().to_vec(),
            visitor: c.visitor.clone(),
            created_at: c.created_at,
            need_help_since: c.need_help_since(),
            last_message: c.last_message().cloned(),
            closed_at: c.closed_at,
            rating: c.rating.clone(),
        }
    }
}

/// One result of `GET /history`: a conversation, live or archived, without its transcript.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryItem {
    pub id: ConversationId,
    pub channel_id: Option<ChannelId>,
    pub kind: Kind,
    pub visitor_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visitor_email: Option<String>,
    /// Every operator who took part.
    pub operator_ids: Vec<OperatorId>,
    pub expertise_ids: Vec<ExpertiseId>,
    pub status: Status,
    pub created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<Timestamp>,
    /// Every stored message, system and bot lines included.
    pub message_count: u64,
    /// The visitor's score, once rated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rating: Option<u8>,
    /// The best-matching message body (at most 200 characters) when `q` matched a message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snippet: Option<String>,
}

impl HistoryItem {
    pub fn new(c: &Conversation, snippet: Option<String>) -> HistoryItem {
        HistoryItem {
            id: c.id,
            channel_id: c.channel_id,
            kind: c.kind,
            visitor_name: c.visitor.as_ref().map(|v| v.name.clone()),
            visitor_email: c.visitor.as_ref().and_then(|v| v.context.email.clone()),
            operator_ids: c.participants().iter().copied().collect(),
            expertise_ids: c.expertise_ids.iter().copied().collect(),
            status: c.status(),
            created_at: c.created_at,
            closed_at: c.closed_at,
            message_count: c.messages().len() as u64,
            rating: None,
            snippet,
        }
    }
}

/// `GET /history`: one page, newest first.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryPage {
    pub items: Vec<HistoryItem>,
    /// Pass as `cursor` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A conversation as its visitor sees it: no expertise, no assignment record,
/// and `waiting`/`need_help` read as `in_progress`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct VisitorConversationView {
    pub id: ConversationId,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<UserRef>,
    #[schema(value_type = Vec<Message>)]
    pub messages: Vec<Arc<Message>>,
}

impl VisitorConversationView {
    /// `queue_position` is the live actor's; `name_of` names the operator shown.
    pub fn new(c: &Conversation, queue_position: Option<u32>, name_of: impl Fn(OperatorId) -> String) -> VisitorConversationView {
        let operator = c
            .assignment
            .as_ref()
            .map(|a| a.operator_id)
            .filter(|&id| c.is_member(id))
            .or_else(|| c.members().first().copied())
            .map(|id| UserRef { id, name: name_of(id) });
        VisitorConversationView {
            id: c.id,
            status: c.status().for_visitor(),
            queue_position: queue_position.filter(|_| c.status() == Status::Queued),
            operator,
            messages: c.visitor_messages_after(MessageId(0)).cloned().collect(),
        }
    }
}

/// One entry of the Looking-for-help board, with the reader's own star.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct BoardEntry {
    pub id: ConversationId,
    pub channel_id: Option<ChannelId>,
    pub visitor_name: Option<String>,
    pub expertise_ids: Vec<ExpertiseId>,
    pub operator_ids: Vec<OperatorId>,
    pub status: Status,
    pub last_message: Option<Message>,
    pub need_help_since: Option<Timestamp>,
    /// Who asked for help (absent only for calls made before requesters were recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<UserRef>,
    /// Why, in the requester's words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The reader holds at least one of the conversation's expertise.
    pub starred: bool,
    /// The reader is already in it: nothing to join.
    pub is_member: bool,
}

impl BoardEntry {
    /// The entry of a conversation looking for help, for no reader in particular
    /// (`starred` and `is_member` false): the router sets them per reader.
    pub fn new(c: &Conversation, name_of: impl Fn(OperatorId) -> String) -> BoardEntry {
        let request = c.help_requests.last();
        BoardEntry {
            id: c.id,
            channel_id: c.channel_id,
            visitor_name: c.visitor.as_ref().map(|v| v.name.clone()),
            expertise_ids: c.expertise_ids.iter().copied().collect(),
            operator_ids: c.members().to_vec(),
            status: c.status(),
            last_message: c.last_message().cloned(),
            need_help_since: c.need_help_since(),
            requested_by: request.and_then(|r| r.by).map(|id| UserRef { id, name: name_of(id) }),
            note: request.and_then(|r| r.note.clone()),
            starred: false,
            is_member: false,
        }
    }

    /// This entry as `reader` sees it: their star (they hold one of its expertise) and membership.
    pub fn for_reader(&self, reader: OperatorId, expertise: Option<&BTreeSet<ExpertiseId>>) -> BoardEntry {
        let (starred, is_member) = self.flags_for(reader, expertise);
        BoardEntry { starred, is_member, ..self.clone() }
    }

    /// `(starred, is_member)` for `reader`.
    fn flags_for(&self, reader: OperatorId, expertise: Option<&BTreeSet<ExpertiseId>>) -> (bool, bool) {
        (expertise.is_some_and(|mine| self.expertise_ids.iter().any(|e| mine.contains(e))), self.operator_ids.contains(&reader))
    }
}

/// The board as pushed to one reader. Its entries are shared by every reader
/// of one push and each is rendered at most once per form (starred or not,
/// member or not), so pushing to many operators costs one serialisation per
/// entry and form, then a copy of text per reader — not one serialisation per reader.
#[derive(Debug)]
pub struct ReaderBoard {
    entries: Arc<[SharedEntry]>,
    /// Per entry: `starred as usize | (is_member as usize) << 1`.
    forms: Vec<u8>,
}

/// A board entry with its JSON in each of its four reader forms, made on first use.
#[derive(Debug)]
pub struct SharedEntry {
    entry: BoardEntry,
    forms: [std::sync::OnceLock<Box<serde_json::value::RawValue>>; 4],
}

impl SharedEntry {
    pub fn new(entry: BoardEntry) -> SharedEntry {
        SharedEntry { entry, forms: Default::default() }
    }
}

impl ReaderBoard {
    /// `entries` (already in board order) as `reader` sees them.
    pub fn new(entries: Arc<[SharedEntry]>, reader: OperatorId, expertise: Option<&BTreeSet<ExpertiseId>>) -> ReaderBoard {
        let forms = entries
            .iter()
            .map(|shared| {
                let (starred, is_member) = shared.entry.flags_for(reader, expertise);
                u8::from(starred) | (u8::from(is_member) << 1)
            })
            .collect();
        ReaderBoard { entries, forms }
    }
}

impl Serialize for ReaderBoard {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.entries.len()))?;
        for (shared, &form) in self.entries.iter().zip(&self.forms) {
            let raw = shared.forms[usize::from(form)].get_or_init(|| {
                let seen = BoardEntry { starred: form & 1 != 0, is_member: form & 2 != 0, ..shared.entry.clone() };
                // unwrap: a board entry serialises infallibly, and serde_json's output is valid JSON.
                serde_json::value::RawValue::from_string(serde_json::to_string(&seen).unwrap()).unwrap()
            });
            seq.serialize_element(&**raw)?;
        }
        seq.end()
    }
}

/// `GET /api/v1/reports/routing`: per expertise and per operator.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct RoutingReport {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub channel_id: Option<ChannelId>,
    /// Livechats covered.
    pub conversations: u32,
    pub expertise: Vec<ExpertiseRow>,
    pub operators: Vec<OperatorRow>,
}

/// An operator who could be invited into a conversation.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct InviteCandidate {
    pub id: OperatorId,
    pub name: String,
    pub presence: Presence,
    pub active_chats: u32,
    /// Livechats only: a direct conversation has no visitor to match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub languages: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expertise: Option<Vec<ExpertiseRef>>,
}
