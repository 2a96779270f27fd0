//! The on-disk types (format version 1), separate from the domain types so
//! either can change without silently changing the other (STYLE.md §4).
//!
//! Journal records are *state*, not operations: a directory record holds the
//! whole directory, a conversation record its new messages and its current
//! header. Replaying one twice, or replaying one already reflected in the
//! snapshot, changes nothing; that is what lets a snapshot be taken from
//! actors one by one while they keep working (see `snapshot`).

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::domain::assignment::{RoutingOrder, Rule};
use crate::domain::canned::CannedResponse;
use crate::domain::chatbot::{Answer, Chatbot, ScriptRun, Step, StepKind};
use crate::domain::conversation::{
    Assignment, Author, AuthorKind, Conversation, ConversationParts, HelpRequest, Kind, Message, Status, Visitor,
};
use crate::domain::directory::{Channel, Directory, DirectoryParts, Expertise, RoutingOptions};
use crate::domain::operator::{Operator, Role};
use crate::domain::time::Timestamp;
use crate::domain::visitor::{Page, VisitorContext};
use crate::domain::{AnswerId, CannedId, ChannelId, ChatbotId, ConversationId, ExpertiseId, MessageId, OperatorId, StepId};

/// Declares a stored copy of a domain enum with conversions both ways. The
/// stored variant order is the format: append new variants, never reorder.
macro_rules! stored_enum {
    ($stored:ident <=> $domain:ident { $($variant:ident),+ $(,)? }) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
        pub enum $stored { $($variant),+ }

        impl From<$domain> for $stored {
            fn from(value: $domain) -> $stored {
                match value { $($domain::$variant => $stored::$variant),+ }
            }
        }

        impl From<$stored> for $domain {
            fn from(value: $stored) -> $domain {
                match value { $($stored::$variant => $domain::$variant),+ }
            }
        }
    };
}

stored_enum!(RoleV1 <=> Role { Admin, User });
stored_enum!(KindV1 <=> Kind { Livechat, Direct });
stored_enum!(StatusV1 <=> Status { Bot, Queued, InProgress, Waiting, NeedHelp, Closed });

/// Who wrote a stored message. `OperatorNote` (appended when internal notes
/// came) is an operator's internal note: only operators write notes, so the
/// author kind carries the flag and `MessageV1` keeps its layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthorKindV1 {
    Visitor,
    Operator,
    Bot,
    System,
    OperatorNote,
}

impl AuthorKindV1 {
    fn of(m: &Message) -> AuthorKindV1 {
        match m.author.kind {
            AuthorKind::Operator if m.internal => AuthorKindV1::OperatorNote,
            AuthorKind::Operator => AuthorKindV1::Operator,
            AuthorKind::Visitor => AuthorKindV1::Visitor,
            AuthorKind::Bot => AuthorKindV1::Bot,
            AuthorKind::System => AuthorKindV1::System,
        }
    }

    /// The domain author kind and whether the message is internal.
    fn to_domain(self) -> (AuthorKind, bool) {
        match self {
            AuthorKindV1::Visitor => (AuthorKind::Visitor, false),
            AuthorKindV1::Operator => (AuthorKind::Operator, false),
            AuthorKindV1::Bot => (AuthorKind::Bot, false),
            AuthorKindV1::System => (AuthorKind::System, false),
            AuthorKindV1::OperatorNote => (AuthorKind::Operator, true),
        }
    }
}
stored_enum!(StepKindV1 <=> StepKind {
    Text,
    QuestionSelection,
    QuestionEmail,
    QuestionPhone,
    FreeInputSingle,
    FreeInputMulti,
    ForwardOperator,
});
stored_enum!(RuleV1 <=> Rule {
    PreviousOperator,
    LangAllExpertise,
    LangAnyExpertise,
    Lang,
    CountryAllExpertise,
    CountryAnyExpertise,
    Country,
    AllExpertise,
    AnyExpertise,
    AnyOperator,
    ExpertWaitExpired,
    Reassigned,
    Transferred,
});

fn raw_ids<T>(ids: impl IntoIterator<Item = T>, raw: impl Fn(T) -> u64) -> Vec<u64> {
    ids.into_iter().map(raw).collect()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperatorV1 {
    pub id: u64,
    pub login: String,
    pub name: String,
    pub role: RoleV1,
    pub password_hash: String,
    pub languages: Vec<String>,
    pub country: Option<String>,
    pub expertise_ids: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelV1 {
    pub id: u64,
    pub name: String,
    pub operator_ids: Vec<u64>,
    pub max_sessions: Option<u32>,
    pub chatbot_id: Option<u64>,
    pub expert_wait_s: Option<u32>,
    pub answer_timeout_s: Option<u32>,
    pub offline_grace_s: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepV1 {
    pub id: u64,
    pub kind: StepKindV1,
    pub message: String,
    pub answers: Vec<(u64, String)>,
    pub only_if_answer_ids: Vec<u64>,
    pub expertise_ids: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatbotV1 {
    pub id: u64,
    pub title: String,
    pub steps: Vec<StepV1>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DirectoryV1 {
    pub last_id: u64,
    pub operators: Vec<OperatorV1>,
    pub expertise: Vec<(u64, String)>,
    pub channels: Vec<ChannelV1>,
    pub chatbots: Vec<ChatbotV1>,
}

/// The directory since users can be deactivated: version 1 and who is
/// inactive, so journals and snapshots written before still read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DirectoryV2 {
    pub base: DirectoryV1,
    pub inactive: Vec<u64>,
}

impl From<DirectoryV1> for DirectoryV2 {
    fn from(base: DirectoryV1) -> DirectoryV2 {
        DirectoryV2 { base, inactive: Vec::new() }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CannedV1 {
    pub id: u64,
    pub shortcut: String,
    pub body: String,
    /// `None` for a shared response.
    pub owner: Option<u64>,
}

/// The directory since canned responses: version 2 and the saved replies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DirectoryV3 {
    pub base: DirectoryV2,
    pub canned: Vec<CannedV1>,
}

impl From<DirectoryV2> for DirectoryV3 {
    fn from(base: DirectoryV2) -> DirectoryV3 {
        DirectoryV3 { base, canned: Vec::new() }
    }
}

impl From<DirectoryV1> for DirectoryV3 {
    fn from(base: DirectoryV1) -> DirectoryV3 {
        DirectoryV2::from(base).into()
    }
}

/// The directory since leads are e-mailed: version 3 and each channel's
/// `notify_email` (channel id, address), for the channels that have one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DirectoryV4 {
    pub base: DirectoryV3,
    pub notify_emails: Vec<(u64, String)>,
}

impl From<DirectoryV3> for DirectoryV4 {
    fn from(base: DirectoryV3) -> DirectoryV4 {
        DirectoryV4 { base, notify_emails: Vec::new() }
    }
}

impl From<DirectoryV2> for DirectoryV4 {
    fn from(base: DirectoryV2) -> DirectoryV4 {
        DirectoryV3::from(base).into()
    }
}

impl From<DirectoryV1> for DirectoryV4 {
    fn from(base: DirectoryV1) -> DirectoryV4 {
        DirectoryV3::from(base).into()
    }
}

/// The directory since channels choose their cascade's order: version 4 and
/// the ids of the channels that rank expertise first (the rest keep Odoo's).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DirectoryV5 {
    pub base: DirectoryV4,
    pub expertise_first: Vec<u64>,
}

/// Declares how older stored versions read as a newer one: through the
/// version just before it, with the newer one's `$fill` for what they lack.
macro_rules! upgrades {
    ($new:ident from $($old:ident),+ => |$base:ident| $fill:expr) => {
        $(impl From<$old> for $new {
            fn from(old: $old) -> $new {
                let $base = old.into();
                $fill
            }
        })+
    };
}

upgrades!(DirectoryV5 from DirectoryV1, DirectoryV2, DirectoryV3, DirectoryV4 => |base| DirectoryV5 { base, expertise_first: Vec::new() });

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VisitorV1 {
    pub name: String,
    pub lang: Option<String>,
    pub country: Option<String>,
    pub key: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AssignmentV1 {
    pub operator_id: u64,
    pub rule: RuleV1,
    pub candidates: u32,
    pub at_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageV1 {
    pub id: u64,
    pub author_kind: AuthorKindV1,
    pub author_id: Option<u64>,
    pub author_name: String,
    pub body: String,
    pub step_id: Option<u64>,
    pub answers: Option<Vec<(u64, String)>>,
    pub created_at_ms: i64,
    pub client_ref: Option<String>,
}

/// Where a chatbot is in its script; the script itself is stored once, when
/// the conversation starts, because it may be an older version than the current one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BotRunV1 {
    pub next: u32,
    pub waiting: Option<u32>,
    pub picked: Vec<u64>,
    pub stopped: bool,
}

/// The part of a conversation that changes, apart from its transcript.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeaderV1 {
    pub status: StatusV1,
    pub expertise_ids: Vec<u64>,
    pub members: Vec<u64>,
    pub assignment: Option<AssignmentV1>,
    pub need_help_since_ms: Option<i64>,
    pub bot: Option<BotRunV1>,
    /// Every assignment, oldest first.
    pub history: Vec<AssignmentV1>,
    /// Calls for help: (asked at, joined at).
    pub help_requests: Vec<(i64, Option<i64>)>,
    pub abandoned: bool,
}

/// Who made a call for help, and why; one per `HeaderV1::help_requests`, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HelpNoteV1 {
    /// `None` only for calls for help stored before requesters were (none are written so).
    pub by: Option<u64>,
    pub note: Option<String>,
}

/// The header since calls for help name who asked and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeaderV2 {
    pub base: HeaderV1,
    pub help_notes: Vec<HelpNoteV1>,
}

/// What is known of the visitor beyond `VisitorV1` (`domain::visitor::VisitorContext`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VisitorContextV1 {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub page_url: Option<String>,
    pub page_title: Option<String>,
    pub referrer: Option<String>,
    pub user_agent: Option<String>,
    pub timezone: Option<String>,
    /// (url, title, at), oldest first.
    pub pages: Vec<(String, String, i64)>,
}

/// A conversation with what version 1 lacks: who made each call for help and
/// why, and the visitor's context (snapshot format 4, the archive's format 2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConversationV2 {
    pub base: ConversationV1,
    pub help_notes: Vec<HelpNoteV1>,
    pub visitor_context: Option<VisitorContextV1>,
}

/// The header since every operator ever a member keeps read access:
/// version 2 and who was ever a member.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeaderV3 {
    pub base: HeaderV2,
    pub ever_members: Vec<u64>,
}

/// A conversation since ever-members are kept (snapshot format 6). The
/// archive keeps format 2: its participants table holds them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConversationV3 {
    pub base: ConversationV2,
    pub ever_members: Vec<u64>,
}

// A conversation stored before ever-members were: restoring it derives them
// from its members, assignments and authors.
upgrades!(ConversationV3 from ConversationV1, ConversationV2 => |base| ConversationV3 { base, ever_members: Vec::new() });

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConversationV1 {
    pub id: u64,
    pub kind: KindV1,
    pub channel_id: Option<u64>,
    pub created_at_ms: i64,
    pub visitor: Option<VisitorV1>,
    /// The visitor's bearer token: a widget reconnecting after a restart must find its conversation.
    pub visitor_token: Option<String>,
    /// The script version this conversation runs, if it has a chatbot.
    pub script: Option<ChatbotV1>,
    pub header: HeaderV1,
    pub messages: Vec<MessageV1>,
}

/// One journal record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RecordV1 {
    /// The whole directory after an admin or preference change (it is small and changes rarely).
    Directory(Box<DirectoryV1>),
    TokenIssued {
        token: String,
        operator_id: u64,
    },
    TokenRevoked {
        token: String,
    },
    /// A new conversation, whole.
    ConversationStarted(Box<ConversationV1>),
    /// Messages appended since the last record of this conversation, and its header if it changed.
    ConversationChanged {
        id: u64,
        header: Option<HeaderV1>,
        messages: Vec<MessageV1>,
    },
    /// The whole directory, as `Directory` does since users can be deactivated.
    /// Variants are only ever appended: bincode stores their index.
    DirectoryV2(Box<DirectoryV2>),
    /// A closed conversation is committed to the archive (`archive`): it
    /// leaves live state, the snapshots and the replay.
    Archived {
        id: u64,
    },
    /// The whole directory, as `DirectoryV2` does, since canned responses.
    DirectoryV3(Box<DirectoryV3>),
    /// As `ConversationChanged`, since calls for help name who asked and why
    /// and visitors have a context (`visitor`: when it changed).
    ConversationChangedV2 {
        id: u64,
        header: Option<Box<HeaderV2>>,
        visitor: Option<Box<VisitorContextV1>>,
        messages: Vec<MessageV1>,
    },
    /// As `ConversationStarted`, with the visitor's context.
    ConversationStartedV2(Box<ConversationV2>),
    /// The whole directory, as `DirectoryV3` does, since channels e-mail their leads.
    DirectoryV4(Box<DirectoryV4>),
    /// As `ConversationStartedV2`, since ever-members are kept.
    ConversationStartedV3(Box<ConversationV3>),
    /// As `ConversationChangedV2`, with ever-members in the header.
    ConversationChangedV3 {
        id: u64,
        header: Option<Box<HeaderV3>>,
        visitor: Option<Box<VisitorContextV1>>,
        messages: Vec<MessageV1>,
    },
    /// The whole directory, as `DirectoryV4` does, since channels choose their routing order.
    DirectoryV5(Box<DirectoryV5>),
}

/// The whole state as a snapshot holds it; `journal_from` is the first journal
/// segment to replay over it. Each file format is this struct with its
/// versions of the directory and of conversations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot<D, C> {
    pub journal_from: u64,
    pub directory: D,
    /// Operator tokens (visitor tokens live in their conversation).
    pub tokens: Vec<(String, u64)>,
    pub conversations: Vec<C>,
}

impl<D, C> Snapshot<D, C> {
    /// The same state in a later format.
    pub fn upgrade<D2: From<D>, C2: From<C>>(self) -> Snapshot<D2, C2> {
        Snapshot {
            journal_from: self.journal_from,
            directory: self.directory.into(),
            tokens: self.tokens,
            conversations: self.conversations.into_iter().map(C2::from).collect(),
        }
    }
}

/// Format 1 (read, never written).
pub type SnapshotV1 = Snapshot<DirectoryV1, ConversationV1>;
/// Format 2, since users can be deactivated (read, never written).
pub type SnapshotV2 = Snapshot<DirectoryV2, ConversationV1>;
/// Format 3, since canned responses (read, never written).
pub type SnapshotV3 = Snapshot<DirectoryV3, ConversationV1>;
/// Format 4, since calls for help name who asked and why (read, never written).
pub type SnapshotV4 = Snapshot<DirectoryV3, ConversationV2>;
/// Format 5, since channels e-mail their leads (read, never written).
pub type SnapshotV5 = Snapshot<DirectoryV4, ConversationV2>;
/// Format 6, written now: routing orders and ever-members.
pub type SnapshotV6 = Snapshot<DirectoryV5, ConversationV3>;

impl From<ConversationV1> for ConversationV2 {
    /// A conversation stored before requesters were: its calls for help name nobody.
    fn from(base: ConversationV1) -> ConversationV2 {
        let help_notes = base.header.help_requests.iter().map(|_| HelpNoteV1 { by: None, note: None }).collect();
        ConversationV2 { base, help_notes, visitor_context: None }
    }
}

// ---- domain → stored ----

impl RecordV1 {
    /// The record of a directory change: the whole directory as it now is.
    pub fn directory(directory: &Directory) -> RecordV1 {
        RecordV1::DirectoryV5(Box::new(DirectoryV5::from(directory)))
    }
}

impl From<&Directory> for DirectoryV5 {
    fn from(d: &Directory) -> DirectoryV5 {
        let expertise_first = d.channels().filter(|c| c.options.routing_order == RoutingOrder::ExpertiseFirst).map(|c| c.id.0).collect();
        DirectoryV5 { base: DirectoryV4::from(d), expertise_first }
    }
}

impl From<&Directory> for DirectoryV4 {
    fn from(d: &Directory) -> DirectoryV4 {
        let notify_emails = d.channels().filter_map(|c| Some((c.id.0, c.notify_email.clone()?))).collect();
        DirectoryV4 { base: DirectoryV3::from(d), notify_emails }
    }
}

impl From<&Directory> for DirectoryV3 {
    fn from(d: &Directory) -> DirectoryV3 {
        let canned = d
            .canned_responses()
            .map(|c| CannedV1 { id: c.id.0, shortcut: c.shortcut.clone(), body: c.body.clone(), owner: c.owner.map(|o| o.0) })
            .collect();
        DirectoryV3 { base: DirectoryV2::from(d), canned }
    }
}

impl From<&Directory> for DirectoryV2 {
    fn from(d: &Directory) -> DirectoryV2 {
        DirectoryV2 { base: DirectoryV1::from(d), inactive: d.operators().filter(|o| !o.active).map(|o| o.id.0).collect() }
    }
}

impl From<&Directory> for DirectoryV1 {
    fn from(d: &Directory) -> DirectoryV1 {
        DirectoryV1 {
            last_id: d.last_id(),
            operators: d
                .operators()
                .map(|o| OperatorV1 {
                    id: o.id.0,
                    login: o.login.clone(),
                    name: o.name.clone(),
                    role: o.role.into(),
                    password_hash: o.password_hash.clone(),
                    languages: o.languages.clone(),
                    country: o.country.clone(),
                    expertise_ids: raw_ids(o.expertise_ids.iter().copied(), |e| e.0),
                })
                .collect(),
            expertise: d.expertise().map(|e| (e.id.0, e.name.clone())).collect(),
            channels: d
                .channels()
                .map(|c| ChannelV1 {
                    id: c.id.0,
                    name: c.name.clone(),
                    operator_ids: raw_ids(c.operator_ids.iter().copied(), |o| o.0),
                    max_sessions: c.max_sessions,
                    chatbot_id: c.chatbot_id.map(|b| b.0),
                    expert_wait_s: c.options.expert_wait_s,
                    answer_timeout_s: c.options.answer_timeout_s,
                    offline_grace_s: c.options.offline_grace_s,
                })
                .collect(),
            chatbots: d.chatbots().map(|c| ChatbotV1::from(&**c)).collect(),
        }
    }
}

impl From<&Chatbot> for ChatbotV1 {
    fn from(c: &Chatbot) -> ChatbotV1 {
        ChatbotV1 {
            id: c.id.0,
            title: c.title.clone(),
            steps: c
                .steps
                .iter()
                .map(|s| StepV1 {
                    id: s.id.0,
                    kind: s.kind.into(),
                    message: s.message.clone(),
                    answers: s.answers.iter().map(|a| (a.id.0, a.label.clone())).collect(),
                    only_if_answer_ids: raw_ids(s.only_if_answer_ids.iter().copied(), |a| a.0),
                    expertise_ids: raw_ids(s.expertise_ids.iter().copied(), |e| e.0),
                })
                .collect(),
        }
    }
}

impl From<&Message> for MessageV1 {
    fn from(m: &Message) -> MessageV1 {
        MessageV1 {
            id: m.id.0,
            author_kind: AuthorKindV1::of(m),
            author_id: m.author.id.map(|o| o.0),
            author_name: m.author.name.clone(),
            body: m.body.clone(),
            step_id: m.step_id.map(|s| s.0),
            answers: m.answers.as_ref().map(|answers| answers.iter().map(|a| (a.id.0, a.label.clone())).collect()),
            created_at_ms: m.created_at.as_millis(),
            client_ref: m.client_ref.clone(),
        }
    }
}

impl From<&Assignment> for AssignmentV1 {
    fn from(a: &Assignment) -> AssignmentV1 {
        AssignmentV1 { operator_id: a.operator_id.0, rule: a.rule.into(), candidates: a.candidates, at_ms: a.at.as_millis() }
    }
}

impl From<&AssignmentV1> for Assignment {
    fn from(a: &AssignmentV1) -> Assignment {
        Assignment {
            operator_id: OperatorId(a.operator_id),
            rule: a.rule.into(),
            candidates: a.candidates,
            at: Timestamp::from_millis(a.at_ms),
        }
    }
}

impl From<&Conversation> for HeaderV1 {
    fn from(c: &Conversation) -> HeaderV1 {
        HeaderV1 {
            status: c.status().into(),
            expertise_ids: raw_ids(c.expertise_ids.iter().copied(), |e| e.0),
            members: raw_ids(c.members().iter().copied(), |o| o.0),
            assignment: c.assignment.as_ref().map(AssignmentV1::from),
            history: c.history.iter().map(AssignmentV1::from).collect(),
            help_requests: c.help_requests.iter().map(|h| (h.at.as_millis(), h.joined_at.map(Timestamp::as_millis))).collect(),
            abandoned: c.abandoned,
            need_help_since_ms: c.need_help_since().map(Timestamp::as_millis),
            bot: c.bot.as_ref().map(|b| BotRunV1 {
                next: b.next as u32,
                waiting: b.waiting.map(|w| w as u32),
                picked: raw_ids(b.picked.iter().copied(), |a| a.0),
                stopped: b.stopped,
            }),
        }
    }
}

fn help_notes(c: &Conversation) -> Vec<HelpNoteV1> {
    c.help_requests.iter().map(|h| HelpNoteV1 { by: h.by.map(|o| o.0), note: h.note.clone() }).collect()
}

impl From<&Conversation> for HeaderV2 {
    fn from(c: &Conversation) -> HeaderV2 {
        HeaderV2 { base: HeaderV1::from(c), help_notes: help_notes(c) }
    }
}

impl From<&Conversation> for HeaderV3 {
    fn from(c: &Conversation) -> HeaderV3 {
        HeaderV3 { base: HeaderV2::from(c), ever_members: ever_members(c) }
    }
}

impl From<&VisitorContext> for VisitorContextV1 {
    fn from(v: &VisitorContext) -> VisitorContextV1 {
        VisitorContextV1 {
            email: v.email.clone(),
            phone: v.phone.clone(),
            page_url: v.page_url.clone(),
            page_title: v.page_title.clone(),
            referrer: v.referrer.clone(),
            user_agent: v.user_agent.clone(),
            timezone: v.timezone.clone(),
            pages: v.pages.iter().map(|p| (p.url.clone(), p.title.clone(), p.at.as_millis())).collect(),
        }
    }
}

impl From<&VisitorContextV1> for VisitorContext {
    fn from(v: &VisitorContextV1) -> VisitorContext {
        VisitorContext {
            email: v.email.clone(),
            phone: v.phone.clone(),
            page_url: v.page_url.clone(),
            page_title: v.page_title.clone(),
            referrer: v.referrer.clone(),
            user_agent: v.user_agent.clone(),
            timezone: v.timezone.clone(),
            pages: v
                .pages
                .iter()
                .map(|(url, title, at)| Page { url: url.clone(), title: title.clone(), at: Timestamp::from_millis(*at) })
                .collect(),
        }
    }
}

impl ConversationV2 {
    /// The whole conversation.
    pub fn new(c: &Conversation, visitor_token: Option<&str>) -> ConversationV2 {
        let mut record = ConversationV2::without_messages(c, visitor_token);
        record.base.messages = c.messages().iter().map(|m| MessageV1::from(&**m)).collect();
        record
    }

    /// Everything but the transcript.
    pub fn without_messages(c: &Conversation, visitor_token: Option<&str>) -> ConversationV2 {
        ConversationV2 {
            base: ConversationV1::without_messages(c, visitor_token),
            help_notes: help_notes(c),
            visitor_context: c.visitor.as_ref().map(|v| VisitorContextV1::from(&v.context)),
        }
    }

    /// The domain conversation.
    pub fn to_domain(&self) -> Conversation {
        Conversation::restore(self.parts())
    }

    fn parts(&self) -> ConversationParts {
        let mut parts = self.base.parts();
        for (request, stored) in parts.help_requests.iter_mut().zip(&self.help_notes) {
            request.by = stored.by.map(OperatorId);
            request.note.clone_from(&stored.note);
        }
        if let (Some(visitor), Some(context)) = (&mut parts.visitor, &self.visitor_context) {
            visitor.context = VisitorContext::from(context);
        }
        parts
    }

    /// As [`ConversationV1::apply`], taking the notes with the header and the visitor's context.
    pub fn apply(&mut self, header: Option<HeaderV2>, visitor: Option<VisitorContextV1>, messages: Vec<MessageV1>) {
        match header {
            Some(header) => {
                self.base.apply(Some(header.base), messages);
                self.help_notes = header.help_notes;
            }
            None => self.base.apply(None, messages),
        }
        if visitor.is_some() {
            self.visitor_context = visitor;
        }
    }

    /// As [`ConversationV1::apply`] for a record written before requesters were.
    pub fn apply_v1(&mut self, header: Option<HeaderV1>, messages: Vec<MessageV1>) {
        let header = header.map(|base| {
            let mut notes = std::mem::take(&mut self.help_notes);
            notes.resize(base.help_requests.len(), HelpNoteV1 { by: None, note: None });
            HeaderV2 { base, help_notes: notes }
        });
        self.apply(header, None, messages);
    }
}

impl ConversationV3 {
    /// The whole conversation.
    pub fn new(c: &Conversation, visitor_token: Option<&str>) -> ConversationV3 {
        ConversationV3 { base: ConversationV2::new(c, visitor_token), ever_members: ever_members(c) }
    }

    /// Everything but the transcript.
    pub fn without_messages(c: &Conversation, visitor_token: Option<&str>) -> ConversationV3 {
        ConversationV3 { base: ConversationV2::without_messages(c, visitor_token), ever_members: ever_members(c) }
    }

    pub fn id(&self) -> u64 {
        self.base.base.id
    }

    pub fn visitor_token(&self) -> Option<&str> {
        self.base.base.visitor_token.as_deref()
    }

    /// The domain conversation.
    pub fn to_domain(&self) -> Conversation {
        let mut parts = self.base.parts();
        parts.ever_members = set(&self.ever_members, OperatorId);
        Conversation::restore(parts)
    }

    /// As [`ConversationV2::apply`], taking ever-members with the header.
    pub fn apply(&mut self, header: Option<HeaderV3>, visitor: Option<VisitorContextV1>, messages: Vec<MessageV1>) {
        match header {
            Some(header) => {
                self.base.apply(Some(header.base), visitor, messages);
                self.ever_members = header.ever_members;
            }
            None => self.base.apply(None, visitor, messages),
        }
    }
}

fn ever_members(c: &Conversation) -> Vec<u64> {
    raw_ids(c.participants().iter().copied(), |o| o.0)
}

impl ConversationV1 {
    /// The whole conversation.
    pub fn new(c: &Conversation, visitor_token: Option<&str>) -> ConversationV1 {
        let mut record = ConversationV1::without_messages(c, visitor_token);
        record.messages = c.messages().iter().map(|m| MessageV1::from(&**m)).collect();
        record
    }

    /// Everything but the transcript.
    pub fn without_messages(c: &Conversation, visitor_token: Option<&str>) -> ConversationV1 {
        ConversationV1 {
            id: c.id.0,
            kind: c.kind.into(),
            channel_id: c.channel_id.map(|ch| ch.0),
            created_at_ms: c.created_at.as_millis(),
            visitor: c.visitor.as_ref().map(|v| VisitorV1 {
                name: v.name.clone(),
                lang: v.lang.clone(),
                country: v.country.clone(),
                key: v.key.clone(),
            }),
            visitor_token: visitor_token.map(str::to_owned),
            script: c.bot.as_ref().map(|b| ChatbotV1::from(&*b.script)),
            header: HeaderV1::from(c),
            messages: Vec::new(),
        }
    }
}

// ---- stored → domain ----

fn set<T: Ord>(raw: &[u64], wrap: impl Fn(u64) -> T) -> BTreeSet<T> {
    raw.iter().copied().map(wrap).collect()
}

fn answers(raw: &[(u64, String)]) -> Vec<Answer> {
    raw.iter().map(|(id, label)| Answer { id: AnswerId(*id), label: label.clone() }).collect()
}

impl From<&ChatbotV1> for Chatbot {
    fn from(c: &ChatbotV1) -> Chatbot {
        Chatbot {
            id: ChatbotId(c.id),
            title: c.title.clone(),
            steps: c
                .steps
                .iter()
                .map(|s| Step {
                    id: StepId(s.id),
                    kind: s.kind.into(),
                    message: s.message.clone(),
                    answers: answers(&s.answers),
                    only_if_answer_ids: set(&s.only_if_answer_ids, AnswerId),
                    expertise_ids: set(&s.expertise_ids, ExpertiseId),
                })
                .collect(),
        }
    }
}

impl From<&DirectoryV5> for Directory {
    fn from(v5: &DirectoryV5) -> Directory {
        let v4 = &v5.base;
        let v3 = &v4.base;
        let v2 = &v3.base;
        let d = &v2.base;
        Directory::restore(DirectoryParts {
            operators: d
                .operators
                .iter()
                .map(|o| Operator {
                    id: OperatorId(o.id),
                    login: o.login.clone(),
                    name: o.name.clone(),
                    role: o.role.into(),
                    password_hash: o.password_hash.clone(),
                    languages: o.languages.clone(),
                    country: o.country.clone(),
                    expertise_ids: set(&o.expertise_ids, ExpertiseId),
                    active: !v2.inactive.contains(&o.id),
                })
                .collect(),
            expertise: d.expertise.iter().map(|(id, name)| Expertise { id: ExpertiseId(*id), name: name.clone() }).collect(),
            channels: d
                .channels
                .iter()
                .map(|c| Channel {
                    id: ChannelId(c.id),
                    name: c.name.clone(),
                    operator_ids: set(&c.operator_ids, OperatorId),
                    max_sessions: c.max_sessions,
                    chatbot_id: c.chatbot_id.map(ChatbotId),
                    options: RoutingOptions {
                        expert_wait_s: c.expert_wait_s,
                        answer_timeout_s: c.answer_timeout_s,
                        offline_grace_s: c.offline_grace_s,
                        routing_order: if v5.expertise_first.contains(&c.id) { RoutingOrder::ExpertiseFirst } else { RoutingOrder::Odoo },
                    },
                    notify_email: v4.notify_emails.iter().find(|(id, _)| *id == c.id).map(|(_, e)| e.clone()),
                })
                .collect(),
            chatbots: d.chatbots.iter().map(Chatbot::from).collect(),
            canned: v3
                .canned
                .iter()
                .map(|c| CannedResponse {
                    id: CannedId(c.id),
                    shortcut: c.shortcut.clone(),
                    body: c.body.clone(),
                    owner: c.owner.map(OperatorId),
                })
                .collect(),
            last_id: d.last_id,
        })
    }
}

impl MessageV1 {
    pub fn to_domain(&self, conversation_id: ConversationId) -> Message {
        let (kind, internal) = self.author_kind.to_domain();
        Message {
            id: MessageId(self.id),
            conversation_id,
            author: Author { kind, id: self.author_id.map(OperatorId), name: self.author_name.clone() },
            body: self.body.clone(),
            step_id: self.step_id.map(StepId),
            answers: self.answers.as_deref().map(answers),
            created_at: Timestamp::from_millis(self.created_at_ms),
            internal,
            client_ref: self.client_ref.clone(),
        }
    }
}

impl ConversationV1 {
    fn parts(&self) -> ConversationParts {
        let id = ConversationId(self.id);
        let h = &self.header;
        let bot = match (&self.script, &h.bot) {
            (Some(script), Some(run)) => Some(ScriptRun {
                script: Arc::new(Chatbot::from(script)),
                next: run.next as usize,
                waiting: run.waiting.map(|w| w as usize).filter(|&w| w < script.steps.len()),
                picked: set(&run.picked, AnswerId),
                stopped: run.stopped,
            }),
            _ => None,
        };
        ConversationParts {
            id,
            kind: self.kind.into(),
            channel_id: self.channel_id.map(ChannelId),
            status: h.status.into(),
            expertise_ids: set(&h.expertise_ids, ExpertiseId),
            members: h.members.iter().copied().map(OperatorId).collect(),
            visitor: self.visitor.as_ref().map(|v| Visitor {
                name: v.name.clone(),
                lang: v.lang.clone(),
                country: v.country.clone(),
                key: v.key.clone(),
                previous_operator: None,
                context: VisitorContext::default(),
            }),
            assignment: h.assignment.as_ref().map(Assignment::from),
            history: h.history.iter().map(Assignment::from).collect(),
            help_requests: h
                .help_requests
                .iter()
                .map(|&(at, joined)| HelpRequest {
                    at: Timestamp::from_millis(at),
                    joined_at: joined.map(Timestamp::from_millis),
                    by: None,
                    note: None,
                })
                .collect(),
            abandoned: h.abandoned,
            closed_at: None,
            created_at: Timestamp::from_millis(self.created_at_ms),
            messages: self.messages.iter().map(|m| m.to_domain(id)).collect(),
            need_help_since: h.need_help_since_ms.map(Timestamp::from_millis),
            bot,
            ever_members: BTreeSet::new(),
        }
    }

    /// Applies a later record of this conversation: appends the messages it
    /// does not have yet (by id, so replaying twice changes nothing) and takes its header.
    pub fn apply(&mut self, header: Option<HeaderV1>, messages: Vec<MessageV1>) {
        let have = self.messages.last().map_or(0, |m| m.id);
        self.messages.extend(messages.into_iter().filter(|m| m.id > have));
        if let Some(header) = header {
            self.header = header;
        }
    }
}

/// What the journal holds of one conversation, so each record carries only
/// what changed since the last (the actor's commits and the replay tests share it).
#[derive(Clone, Debug)]
#[expect(clippy::large_enum_variant, reason = "one per conversation actor, replaced in place; boxing would allocate on every commit")]
pub enum Journaled {
    Nothing,
    UpTo { messages: usize, header: HeaderV3, visitor: Option<VisitorContext> },
}

impl Journaled {
    /// The journal (or a snapshot) holds `c` as it is.
    pub fn holding(c: &Conversation) -> Journaled {
        Journaled::UpTo { messages: c.messages().len(), header: HeaderV3::from(c), visitor: c.visitor.as_ref().map(|v| v.context.clone()) }
    }

    /// The record that brings the journal up to date with `c` (none when it
    /// is), counted as written.
    pub fn catch_up(&mut self, c: &Conversation, visitor_token: Option<&str>) -> Option<RecordV1> {
        let header = HeaderV3::from(c);
        let count = c.messages().len();
        let context = c.visitor.as_ref().map(|v| &v.context);
        let record = match &*self {
            Journaled::Nothing => Some(RecordV1::ConversationStartedV3(Box::new(ConversationV3::new(c, visitor_token)))),
            Journaled::UpTo { messages, header: held, visitor } if *messages == count && *held == header && visitor.as_ref() == context => {
                return None;
            }
            Journaled::UpTo { messages, header: held, visitor } => Some(RecordV1::ConversationChangedV3 {
                id: c.id.0,
                header: (*held != header).then(|| Box::new(header.clone())),
                visitor: context.filter(|&now| visitor.as_ref() != Some(now)).map(|now| Box::new(VisitorContextV1::from(now))),
                messages: c.messages()[*messages..].iter().map(|m| MessageV1::from(&**m)).collect(),
            }),
        };
        *self = Journaled::UpTo { messages: count, header, visitor: context.cloned() };
        record
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::domain::conversation::{Audience, Poster, RequestedStatus};
    use crate::domain::visitor::Detail;
    use crate::persist::{decode, encode};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// A conversation → record → bincode → record → conversation → record is the identity.
        #[test]
        fn a_conversation_survives_the_round_trip(
            posts in prop::collection::vec((0u8..3, "\\PC{1,40}", prop::option::of("[a-z0-9]{1,8}")), 0..30),
            assigned in any::<bool>(),
            help in any::<bool>(),
            note in prop::option::of("\\PC{1,30}"),
            page in prop::option::of("https://[a-z]{1,10}\\.example/[a-z]{0,8}"),
            lang in prop::option::of("[a-z]{2}"),
        ) {
            let mut visitor = Visitor { name: "Vera".into(), lang, country: Some("BE".into()), key: Some("k".into()), previous_operator: None, context: VisitorContext::default() };
            if let Some(url) = &page {
                visitor.context.visit(url.clone(), "Title".into(), Timestamp::now());
                visitor.context.learn(Detail::Email("vera@example.com".into()));
            }
            let mut c = Conversation::livechat(ConversationId(7), ChannelId(3), visitor, [ExpertiseId(2)].into(), None);
            let ann = OperatorId(5);
            if assigned {
                c.assign(Assignment { operator_id: ann, rule: Rule::LangAllExpertise, candidates: 2, at: Timestamp::now() }).unwrap();
            }
            // 0: the visitor writes, 1: the operator, 2: the operator's internal note.
            for (who, body, client_ref) in posts {
                let (poster, kind, audience) = match who {
                    1 | 2 if assigned => {
                        (Poster::Operator(ann), AuthorKind::Operator, if who == 2 { Audience::Team } else { Audience::Everyone })
                    }
                    _ => (Poster::Visitor, AuthorKind::Visitor, Audience::Everyone),
                };
                let author = Author { kind, id: (kind == AuthorKind::Operator).then_some(ann), name: "n".into() };
                let _ = c.post(poster, author, &body, client_ref, audience, 4000);
            }
            if assigned && help {
                c.set_status(ann, RequestedStatus::NeedHelp, note.as_deref()).unwrap();
            }
            let record = ConversationV2::new(&c, Some("token"));
            let decoded: ConversationV2 = decode(&encode(&record)).unwrap();
            prop_assert_eq!(&decoded, &record);
            let again = ConversationV2::new(&decoded.to_domain(), Some("token"));
            prop_assert_eq!(again, record);
        }
    }
}
