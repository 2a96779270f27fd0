//! What the journal already holds of each conversation.

#[allow(clippy::wildcard_imports, reason = "the bookkeeping uses the stored types and their domain counterparts alike")]
use super::*;

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
