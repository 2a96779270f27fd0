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

fn set<T: Ord>(raw: &[u64], wrap: impl Fn(u64) -> T) -> BTreeSet<T> {
    raw.iter().copied().map(wrap).collect()
}

fn answers(raw: &[(u64, String)]) -> Vec<Answer> {
    raw.iter().map(|(id, label)| Answer { id: AnswerId(*id), label: label.clone() }).collect()
}

// The conversions, each way, and the journal's bookkeeping.
mod journaled;
mod restore;
mod stored;

pub use journaled::Journaled;

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
