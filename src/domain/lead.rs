//! Missed chats: a visitor who reached out and never got an operator becomes a
//! lead, so someone follows up instead of the conversation vanishing.
//!
//! The rule is a function of the closed conversation alone, so it gives the
//! same answer when a replay after a crash archives the conversation again.

use serde::{Deserialize, Serialize};

use super::chatbot::ScriptRun;
use super::conversation::{Conversation, Kind, Status};
use super::time::Timestamp;
use super::{ChannelId, ConversationId, OperatorId};

/// Why nobody talked to the visitor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeadReason {
    /// The chatbot reached its end without handing over (a forward found nobody).
    NoOperator,
    /// The visitor left: while queued, or while the chatbot talked.
    Abandoned,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeadStatus {
    Open,
    Done,
}

/// A missed chat to follow up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lead {
    pub conversation_id: ConversationId,
    pub channel_id: ChannelId,
    pub visitor_name: String,
    pub visitor_key: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub reason: LeadReason,
    pub created_at: Timestamp,
    pub status: LeadStatus,
    /// The operator following it up, once one claimed it.
    pub claimed_by: Option<OperatorId>,
}

impl Lead {
    /// The lead a closed livechat leaves behind, if no operator ever took part in it.
    pub fn of(c: &Conversation) -> Option<Lead> {
        if c.kind != Kind::Livechat || c.status() != Status::Closed || !c.participants().is_empty() {
            return None;
        }
        let visitor = c.visitor.as_ref()?;
        let ran_out = c.bot.as_ref().is_some_and(ScriptRun::ran_out);
        Some(Lead {
            conversation_id: c.id,
            channel_id: c.channel_id?,
            visitor_name: visitor.name.clone(),
            visitor_key: visitor.key.clone(),
            email: visitor.context.email.clone(),
            phone: visitor.context.phone.clone(),
            reason: if ran_out && !c.abandoned { LeadReason::NoOperator } else { LeadReason::Abandoned },
            created_at: c.closed_at.unwrap_or_else(Timestamp::now),
            status: LeadStatus::Open,
            claimed_by: None,
        })
    }

    /// `by` takes the lead on; taking it again is fine.
    ///
    /// # Errors
    /// `Held` by whom, when another operator already holds it.
    pub fn claim(&mut self, by: OperatorId) -> Result<(), LeadRefused> {
        match self.claimed_by {
            Some(holder) if holder != by => Err(LeadRefused::Held(holder)),
            _ => {
                self.claimed_by = Some(by);
                Ok(())
            }
        }
    }

    /// The follow-up is done. An admin may close anyone's lead; an operator
    /// only one nobody else holds (taking it on, if nobody did).
    ///
    /// # Errors
    /// `Held`, when another operator holds it and `by` is not an admin.
    pub fn finish(&mut self, by: OperatorId, is_admin: bool) -> Result<(), LeadRefused> {
        if !is_admin {
            self.claim(by)?;
        }
        self.status = LeadStatus::Done;
        Ok(())
    }
}

/// Why a lead was not changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeadRefused {
    NotFound,
    /// On a channel the caller does not serve.
    NotYours,
    Held(OperatorId),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead() -> Lead {
        Lead {
            conversation_id: ConversationId(1),
            channel_id: ChannelId(1),
            visitor_name: "Visitor #1".into(),
            visitor_key: None,
            email: None,
            phone: None,
            reason: LeadReason::Abandoned,
            created_at: Timestamp::now(),
            status: LeadStatus::Open,
            claimed_by: None,
        }
    }

    #[test]
    fn one_operator_holds_a_lead_and_only_they_or_an_admin_finish_it() {
        let mut l = lead();
        assert_eq!(l.claim(OperatorId(2)), Ok(()));
        assert_eq!(l.claim(OperatorId(2)), Ok(()), "claiming again is harmless");
        assert_eq!(l.claim(OperatorId(3)), Err(LeadRefused::Held(OperatorId(2))));
        assert_eq!(l.finish(OperatorId(3), false), Err(LeadRefused::Held(OperatorId(2))));
        assert_eq!(l.status, LeadStatus::Open);
        assert_eq!(l.finish(OperatorId(9), true), Ok(()));
        assert_eq!((l.status, l.claimed_by), (LeadStatus::Done, Some(OperatorId(2))));
        let mut unclaimed = lead();
        assert_eq!(unclaimed.finish(OperatorId(3), false), Ok(()));
        assert_eq!(unclaimed.claimed_by, Some(OperatorId(3)), "finishing takes it on");
    }
}
