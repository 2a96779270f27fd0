//! A conversation: its members, transcript and status, and the rules for
//! changing them (Odoo's automatic transitions included).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::assignment::Rule;
use super::chatbot::{Answer, ScriptRun};
use super::text::{self, InvalidField};
use super::time::Timestamp;
use super::visitor::VisitorContext;
use super::{ChannelId, ConversationId, ExpertiseId, MessageId, OperatorId, StepId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A website visitor with the operators helping them.
    Livechat,
    /// Two operators talking to each other.
    Direct,
}

/// The API's status names; see API.md "Conversation `status`".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Bot,
    Queued,
    InProgress,
    Waiting,
    NeedHelp,
    Closed,
}

impl Status {
    /// What the visitor is shown: operator-side triage states read as `in_progress`.
    pub fn for_visitor(self) -> Status {
        match self {
            Status::Waiting | Status::NeedHelp => Status::InProgress,
            other => other,
        }
    }
}

/// The statuses a member may set by hand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestedStatus {
    InProgress,
    Waiting,
    NeedHelp,
}

impl From<RequestedStatus> for Status {
    fn from(requested: RequestedStatus) -> Status {
        match requested {
            RequestedStatus::InProgress => Status::InProgress,
            RequestedStatus::Waiting => Status::Waiting,
            RequestedStatus::NeedHelp => Status::NeedHelp,
        }
    }
}

/// The anonymous website visitor of a livechat.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Visitor {
    pub name: String,
    pub lang: Option<String>,
    pub country: Option<String>,
    /// The widget's stable anonymous id (routing rule 1; history by visitor).
    #[serde(rename = "visitor_key", skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The operator of this visitor's last archived conversation on the
    /// channel, looked up when the session opened: routing rule 1 across
    /// restarts. A hint for routing, not stored.
    #[serde(skip)]
    pub previous_operator: Option<OperatorId>,
    #[serde(flatten)]
    pub context: VisitorContext,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthorKind {
    Visitor,
    Operator,
    Bot,
    System,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Author {
    pub kind: AuthorKind,
    /// The operator's id; absent for visitor, bot and system messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<OperatorId>,
    pub name: String,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Message {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub author: Author,
    pub body: String,
    /// The chatbot step a bot message comes from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_id: Option<StepId>,
    /// The choices of a bot's selection question.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answers: Option<Vec<Answer>>,
    pub created_at: Timestamp,
    /// An operator's internal note: members and readers see it, the visitor never does.
    pub internal: bool,
    /// The author's client `ref`, kept so a resend is recognised (also after a restart); never shown.
    #[serde(skip)]
    pub client_ref: Option<String>,
}

/// Why and when an operator was given a conversation.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Assignment {
    pub operator_id: OperatorId,
    pub rule: Rule,
    /// How many operators were eligible when the decision was made.
    pub candidates: u32,
    pub at: Timestamp,
}

/// Why an operator was taken off a conversation by the router, or handed it over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// They wrote nothing within the channel's `answer_timeout_s`.
    Unanswered,
    /// They stayed disconnected beyond the channel's `offline_grace_s`.
    Offline,
    /// An admin deactivated their account.
    Deactivated,
    /// They handed it to a colleague.
    Transferred,
}

/// Longest comment a satisfaction rating may carry.
pub const MAX_RATING_COMMENT_CHARS: usize = 1000;

/// The visitor's satisfaction once the chat ended (as Odoo: 1 unhappy, 3 neutral, 5 happy).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Rating {
    /// 1, 3 or 5.
    pub score: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    pub at: Timestamp,
}

impl Rating {
    /// A rating as given now: `score` must be 1, 3 or 5; a blank comment is none.
    ///
    /// # Errors
    /// `Invalid` naming `score` or `comment`.
    pub fn new(score: u8, comment: Option<&str>) -> Result<Rating, InvalidField> {
        if ![1, 3, 5].contains(&score) {
            return Err(InvalidField::new("score", "must be 1 (unhappy), 3 (neutral) or 5 (happy)"));
        }
        if comment.is_some_and(|c| c.chars().count() > MAX_RATING_COMMENT_CHARS) {
            return Err(InvalidField::new("comment", format!("must be at most {MAX_RATING_COMMENT_CHARS} characters")));
        }
        let comment = comment.map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned);
        Ok(Rating { score, comment, at: Timestamp::now() })
    }
}

/// Longest note a call for help may carry.
pub const MAX_HELP_NOTE_CHARS: usize = 200;

/// One call for help: when it was made and when someone answered it by joining.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelpRequest {
    pub at: Timestamp,
    pub joined_at: Option<Timestamp>,
    /// Who asked; `None` only for calls stored before requesters were recorded.
    pub by: Option<OperatorId>,
    /// Why, in the requester's words (≤ 200 characters).
    pub note: Option<String>,
}

/// Who a posted message is for: everyone, or the team only (an internal note).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    Everyone,
    Team,
}

/// Who is posting: the key under which client `ref`s are remembered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Poster {
    Visitor,
    Operator(OperatorId),
}

/// Every way a conversation command can be refused.
///
/// One enum for all commands because they share most cases and the API maps
/// each case to one status code whichever command produced it.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConversationError {
    #[error("the conversation is closed")]
    Closed,
    #[error("only members of the conversation may do this")]
    NotMember,
    #[error("you may not read this conversation")]
    NotReadable,
    #[error("direct conversations have no status to change")]
    NotLivechat,
    #[error("the conversation has no operator yet")]
    NotAssigned,
    #[error("the conversation is no longer looking for help")]
    NotLookingForHelp,
    #[error("operator {0} is already a member")]
    AlreadyMember(OperatorId),
    #[error("the last operator of an open livechat cannot leave it: close it or invite someone first")]
    LastMember,
    #[error("the chatbot is not waiting for an answer to step {0}")]
    NotAwaitingAnswer(StepId),
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    #[error("operator {0} cannot take it now: not online, not in this channel's team, or at the channel's max_sessions")]
    CannotTake(OperatorId),
    #[error("nobody else can take it now")]
    NobodyFree,
    #[error("nobody holding that expertise can take it now")]
    NoHolderFree,
    #[error("the conversation is still open: it can be rated once it has ended")]
    NotEnded,
    #[error("the conversation was already rated")]
    AlreadyRated,
    /// A client reused a `ref` for other content: acknowledging the stored
    /// message would silently drop the new text, so it is refused instead.
    #[error("`ref` was already used for another message in this conversation: use a new ref for each message")]
    RefReused,
}

/// Everything stored about a conversation, for [`Conversation::restore`].
pub struct ConversationParts {
    pub id: ConversationId,
    pub kind: Kind,
    pub channel_id: Option<ChannelId>,
    pub status: Status,
    pub expertise_ids: BTreeSet<ExpertiseId>,
    pub members: Vec<OperatorId>,
    pub visitor: Option<Visitor>,
    pub assignment: Option<Assignment>,
    pub created_at: Timestamp,
    /// In id order, ids 1, 2, 3, …
    pub messages: Vec<Message>,
    pub need_help_since: Option<Timestamp>,
    pub bot: Option<ScriptRun>,
    pub history: Vec<Assignment>,
    pub help_requests: Vec<HelpRequest>,
    pub abandoned: bool,
    /// Every operator ever a member, as stored; those of `members`, `history`
    /// and the transcript are added on restore (records from before it was kept).
    pub ever_members: BTreeSet<OperatorId>,
    /// Known for archived conversations; a live one's is not stored (it leaves live state when closed).
    pub closed_at: Option<Timestamp>,
}

#[derive(Clone, Debug)]
pub struct Conversation {
    pub id: ConversationId,
    pub kind: Kind,
    pub channel_id: Option<ChannelId>,
    status: Status,
    pub expertise_ids: BTreeSet<ExpertiseId>,
    /// In the order they joined; the first is the assigned operator of a livechat.
    members: Vec<OperatorId>,
    /// Every operator who was a member at any moment, left or not: each keeps
    /// read access (an invited helper who never wrote included).
    ever_members: BTreeSet<OperatorId>,
    pub visitor: Option<Visitor>,
    pub assignment: Option<Assignment>,
    pub created_at: Timestamp,
    /// Invariant: `messages[i].id == i + 1`, so lookups by id are index arithmetic.
    /// Shared, immutable once stored: copies for views and snapshots are pointer copies.
    messages: Vec<Arc<Message>>,
    need_help_since: Option<Timestamp>,
    /// Client refs already stored, so a resent `send` is acknowledged, not duplicated.
    refs: HashMap<(Poster, String), MessageId>,
    /// The chatbot script, while the bot talks to the visitor.
    pub bot: Option<ScriptRun>,
    /// Every assignment, oldest first (the last is `assignment`): the routing report's source.
    pub history: Vec<Assignment>,
    pub help_requests: Vec<HelpRequest>,
    /// Closed by the visitor while waiting in the queue.
    pub abandoned: bool,
    /// When it was closed; set by [`Conversation::close`] (and restored from the archive).
    pub closed_at: Option<Timestamp>,
    /// The visitor's rating: given after the conversation left live state, so kept by the archive only.
    pub rating: Option<Rating>,
}

impl Conversation {
    /// A visitor's conversation: with its channel's chatbot talking first
    /// (`bot`), or else waiting for the router.
    pub fn livechat(
        id: ConversationId,
        channel_id: ChannelId,
        visitor: Visitor,
        expertise_ids: BTreeSet<ExpertiseId>,
        bot: Option<ScriptRun>,
    ) -> Conversation {
        let status = if bot.is_some() { Status::Bot } else { Status::Queued };
        let mut conversation = Conversation::new(id, Kind::Livechat, Some(channel_id), status, expertise_ids, vec![], Some(visitor));
        conversation.bot = bot;
        conversation
    }

    /// Two operators talking; it starts `in_progress` with both as members.
    pub fn direct(id: ConversationId, members: [OperatorId; 2]) -> Conversation {
        Conversation::new(id, Kind::Direct, None, Status::InProgress, BTreeSet::new(), members.to_vec(), None)
    }

    fn new(
        id: ConversationId,
        kind: Kind,
        channel_id: Option<ChannelId>,
        status: Status,
        expertise_ids: BTreeSet<ExpertiseId>,
        members: Vec<OperatorId>,
        visitor: Option<Visitor>,
    ) -> Conversation {
        Conversation {
            id,
            kind,
            channel_id,
            status,
            expertise_ids,
            ever_members: members.iter().copied().collect(),
            members,
            visitor,
            assignment: None,
            created_at: Timestamp::now(),
            messages: Vec::new(),
            need_help_since: None,
            refs: HashMap::new(),
            bot: None,
            history: Vec::new(),
            help_requests: Vec::new(),
            abandoned: false,
            closed_at: None,
            rating: None,
        }
    }

    /// Rebuilds a conversation from its stored parts (see `persist`); the
    /// index of client refs is derived from the messages.
    pub fn restore(parts: ConversationParts) -> Conversation {
        let refs = parts
            .messages
            .iter()
            .filter_map(|m| {
                let poster = match m.author.kind {
                    AuthorKind::Visitor => Poster::Visitor,
                    AuthorKind::Operator => Poster::Operator(m.author.id?),
                    AuthorKind::Bot | AuthorKind::System => return None,
                };
                Some(((poster, m.client_ref.clone()?), m.id))
            })
            .collect();
        let authors = parts.messages.iter().filter(|m| m.author.kind == AuthorKind::Operator).filter_map(|m| m.author.id);
        let mut ever_members = parts.ever_members;
        ever_members.extend(parts.members.iter().copied().chain(parts.history.iter().map(|a| a.operator_id)).chain(authors));
        Conversation {
            id: parts.id,
            kind: parts.kind,
            channel_id: parts.channel_id,
            status: parts.status,
            expertise_ids: parts.expertise_ids,
            ever_members,
            members: parts.members,
            visitor: parts.visitor,
            assignment: parts.assignment,
            created_at: parts.created_at,
            messages: parts.messages.into_iter().map(Arc::new).collect(),
            need_help_since: parts.need_help_since,
            refs,
            bot: parts.bot,
            history: parts.history,
            help_requests: parts.help_requests,
            abandoned: parts.abandoned,
            closed_at: parts.closed_at,
            rating: None,
        }
    }

    pub fn status(&self) -> Status {
        self.status
    }

    pub fn members(&self) -> &[OperatorId] {
        &self.members
    }

    pub fn is_member(&self, operator: OperatorId) -> bool {
        self.members.contains(&operator)
    }

    /// Every operator who ever took part: each one ever a member (members
    /// now, everyone ever assigned, invited or joined, and so every operator
    /// who wrote). History shows a conversation to them.
    pub fn participants(&self) -> &BTreeSet<OperatorId> {
        &self.ever_members
    }

    pub fn messages(&self) -> &[Arc<Message>] {
        &self.messages
    }

    pub fn last_message(&self) -> Option<&Message> {
        self.messages.last().map(|m| &**m)
    }

    /// Messages with an id greater than `after`, in order.
    pub fn messages_after(&self, after: MessageId) -> &[Arc<Message>] {
        let start = usize::try_from(after.0).unwrap_or(usize::MAX).min(self.messages.len());
        &self.messages[start..]
    }

    /// What the visitor may see of `messages_after`: everything but internal notes.
    pub fn visitor_messages_after(&self, after: MessageId) -> impl Iterator<Item = &Arc<Message>> {
        self.messages_after(after).iter().filter(|m| !m.internal)
    }

    pub fn need_help_since(&self) -> Option<Timestamp> {
        self.need_help_since
    }

    /// Members and admins may always read; any operator may read while the
    /// conversation looks for help, so they can decide whether to join.
    pub fn check_readable(&self, operator: OperatorId, is_admin: bool) -> Result<(), ConversationError> {
        if is_admin || self.ever_members.contains(&operator) || self.status == Status::NeedHelp {
            Ok(())
        } else {
            Err(ConversationError::NotReadable)
        }
    }

    fn check_member(&self, operator: OperatorId) -> Result<(), ConversationError> {
        if self.is_member(operator) {
            Ok(())
        } else {
            Err(ConversationError::NotMember)
        }
    }

    fn check_open(&self) -> Result<(), ConversationError> {
        if self.status == Status::Closed {
            Err(ConversationError::Closed)
        } else {
            Ok(())
        }
    }

    fn set(&mut self, status: Status) -> bool {
        if self.status == status {
            return false;
        }
        self.need_help_since = (status == Status::NeedHelp).then(Timestamp::now);
        self.abandoned = status == Status::Closed && self.status == Status::Queued;
        self.closed_at = (status == Status::Closed).then(Timestamp::now);
        self.status = status;
        true
    }

    /// Appends a message by `author`. A visitor message moves `waiting` back to
    /// `in_progress` (but leaves `need_help` alone), as Odoo does.
    ///
    /// A resend is told apart beforehand with [`Self::resent`].
    ///
    /// # Errors
    /// `Closed`, `NotMember` for an operator outside the conversation (or a
    /// visitor writing an internal note), `Invalid` body, `RefReused` for a
    /// `client_ref` this poster already used.
    pub fn post(
        &mut self,
        poster: Poster,
        author: Author,
        body: &str,
        client_ref: Option<String>,
        audience: Audience,
        max_chars: usize,
    ) -> Result<Message, ConversationError> {
        if client_ref.as_deref().is_some_and(|r| self.find_ref(poster, r).is_some()) {
            return Err(ConversationError::RefReused);
        }
        match poster {
            Poster::Operator(operator) => self.check_member(operator)?,
            Poster::Visitor if audience == Audience::Team => return Err(ConversationError::NotMember),
            Poster::Visitor => {}
        }
        self.check_open()?;
        let body = text::bounded("body", body, max_chars)?;
        let message = self.push(author, body, None, None, client_ref.clone(), audience);
        if let Some(r) = client_ref {
            self.refs.insert((poster, r), message.id);
        }
        if poster == Poster::Visitor && self.status == Status::Waiting {
            self.set(Status::InProgress);
        }
        Ok(message)
    }

    /// Appends a message that needs no permission (system notices).
    pub fn append(&mut self, author: Author, body: String) -> Message {
        self.push(author, body, None, None, None, Audience::Everyone)
    }

    /// Appends what the chatbot says at `step_id`.
    pub fn append_bot(&mut self, step_id: StepId, body: String, answers: Vec<Answer>) -> Message {
        let name = self.bot.as_ref().map_or("Bot", |b| b.name()).to_owned();
        let answers = (!answers.is_empty()).then_some(answers);
        self.push(Author { kind: AuthorKind::Bot, id: None, name }, body, Some(step_id), answers, None, Audience::Everyone)
    }

    fn push(
        &mut self,
        author: Author,
        body: String,
        step_id: Option<StepId>,
        answers: Option<Vec<Answer>>,
        client_ref: Option<String>,
        audience: Audience,
    ) -> Message {
        let id = MessageId(self.messages.len() as u64 + 1);
        let internal = audience == Audience::Team;
        let message =
            Message { id, conversation_id: self.id, author, body, step_id, answers, created_at: Timestamp::now(), internal, client_ref };
        self.messages.push(Arc::new(message.clone()));
        message
    }

    /// The chatbot has the floor: it is talking and nobody took over yet.
    pub fn bot_mut(&mut self) -> Option<&mut ScriptRun> {
        self.bot.as_mut().filter(|b| !b.stopped && self.status != Status::Closed)
    }

    fn silence_bot(&mut self) {
        if let Some(bot) = &mut self.bot {
            bot.stop();
        }
    }

    /// The message `poster` already stored under `client_ref`, if any.
    /// The message an earlier post by `poster` with `client_ref` stored, when
    /// this one is its resend: the same body (as stored, trimmed) for the same
    /// audience. A client retrying after a lost ack gets the original back.
    ///
    /// # Errors
    /// `RefReused` when the ref is stored with other content.
    pub fn resent(&self, poster: Poster, client_ref: &str, body: &str, audience: Audience) -> Result<Option<&Message>, ConversationError> {
        match self.find_ref(poster, client_ref) {
            None => Ok(None),
            Some(m) if m.body == body.trim() && m.internal == (audience == Audience::Team) => Ok(Some(m)),
            Some(_) => Err(ConversationError::RefReused),
        }
    }

    fn find_ref(&self, poster: Poster, client_ref: &str) -> Option<&Message> {
        let id = self.refs.get(&(poster, client_ref.to_owned()))?;
        self.messages.get(usize::try_from(id.0).ok()?.checked_sub(1)?).map(|m| &**m)
    }

    /// A member sets the status by hand; returns whether it changed.
    ///
    /// # Errors
    /// `NotMember`, `Closed`, `NotLivechat`, `NotAssigned` (no operator yet).
    pub fn set_status(&mut self, by: OperatorId, requested: RequestedStatus, note: Option<&str>) -> Result<bool, ConversationError> {
        self.check_member(by)?;
        self.check_open()?;
        if self.kind == Kind::Direct {
            return Err(ConversationError::NotLivechat);
        }
        if matches!(self.status, Status::Bot | Status::Queued) {
            return Err(ConversationError::NotAssigned);
        }
        // A blank note is no note; only a call for help keeps one.
        let note = match note.filter(|n| !n.trim().is_empty()) {
            Some(note) if requested == RequestedStatus::NeedHelp => Some(text::bounded("note", note, MAX_HELP_NOTE_CHARS)?),
            _ => None,
        };
        let changed = self.set(requested.into());
        if let (true, Some(at)) = (changed, self.need_help_since) {
            self.help_requests.push(HelpRequest { at, joined_at: None, by: Some(by), note });
        }
        Ok(changed)
    }

    /// The router gave this conversation to `assignment.operator_id`.
    ///
    /// # Errors
    /// `Closed` when the visitor left before the decision arrived.
    pub fn assign(&mut self, assignment: Assignment) -> Result<(), ConversationError> {
        self.check_open()?;
        if !self.is_member(assignment.operator_id) {
            self.members.push(assignment.operator_id);
            self.ever_members.insert(assignment.operator_id);
        }
        self.silence_bot();
        self.history.push(assignment.clone());
        self.assignment = Some(assignment);
        self.set(Status::InProgress);
        Ok(())
    }

    /// The conversation waits in its channel's queue.
    pub fn enqueue(&mut self) {
        if self.status != Status::Closed {
            self.silence_bot();
            self.set(Status::Queued);
        }
    }

    /// Any operator answers a call for help: only while the status is `need_help`.
    ///
    /// # Errors
    /// `NotLookingForHelp` (also when closed), `AlreadyMember`.
    pub fn join(&mut self, operator: OperatorId) -> Result<(), ConversationError> {
        if self.status != Status::NeedHelp {
            return Err(ConversationError::NotLookingForHelp);
        }
        if self.is_member(operator) {
            return Err(ConversationError::AlreadyMember(operator));
        }
        self.add_member(operator);
        Ok(())
    }

    /// A member adds colleagues; returns those not already members, in order.
    ///
    /// # Errors
    /// `NotMember`, `Closed`.
    pub fn invite(&mut self, by: OperatorId, invitees: &[OperatorId]) -> Result<Vec<OperatorId>, ConversationError> {
        self.check_member(by)?;
        self.check_open()?;
        let mut added = Vec::new();
        for &operator in invitees {
            if !self.is_member(operator) {
                self.add_member(operator);
                added.push(operator);
            }
        }
        Ok(added)
    }

    /// A new member always ends a call for help, whichever way they came in.
    fn add_member(&mut self, operator: OperatorId) {
        self.members.push(operator);
        self.ever_members.insert(operator);
        if self.status == Status::NeedHelp {
            if let Some(request) = self.help_requests.last_mut() {
                request.joined_at = Some(Timestamp::now());
            }
            self.set(Status::InProgress);
        }
    }

    /// Passes the conversation from `from` to `assignment.operator_id` (an
    /// unanswered or disconnected operator's chat, routed again).
    ///
    /// # Errors
    /// `Closed`, or `NotMember` when `from` is no longer in it (nothing to pass on).
    pub fn reassign(&mut self, from: OperatorId, assignment: Assignment) -> Result<(), ConversationError> {
        self.check_open()?;
        self.check_member(from)?;
        self.members.retain(|&m| m != from);
        self.assign(assignment)
    }

    /// Whether `from` may hand this conversation over (to `to`, when named).
    ///
    /// # Errors
    /// `Closed`, `NotMember`, `NotLivechat`, `AlreadyMember` for a named operator already in it.
    pub fn check_transfer(&self, from: OperatorId, to: Option<OperatorId>) -> Result<(), ConversationError> {
        self.check_open()?;
        self.check_member(from)?;
        if self.kind != Kind::Livechat {
            return Err(ConversationError::NotLivechat);
        }
        match to {
            Some(to) if self.is_member(to) => Err(ConversationError::AlreadyMember(to)),
            _ => Ok(()),
        }
    }

    /// `from` hands over to the operator the router chose (rule `transferred`),
    /// the wanted expertise becoming `expertise` when given.
    ///
    /// # Errors
    /// As `check_transfer`.
    pub fn transfer(
        &mut self,
        from: OperatorId,
        assignment: Assignment,
        expertise: Option<BTreeSet<ExpertiseId>>,
    ) -> Result<(), ConversationError> {
        self.check_transfer(from, Some(assignment.operator_id))?;
        if let Some(expertise) = expertise {
            self.expertise_ids = expertise;
        }
        self.reassign(from, assignment)
    }

    /// The router takes `operator` off an open livechat with nobody to take
    /// over (they were deactivated): with no member left it waits in the queue.
    ///
    /// # Errors
    /// `Closed`, `NotMember`.
    pub fn unassign(&mut self, operator: OperatorId) -> Result<(), ConversationError> {
        self.check_open()?;
        self.check_member(operator)?;
        self.members.retain(|&m| m != operator);
        if self.members.is_empty() {
            self.enqueue();
        }
        Ok(())
    }

    /// Whether `operator` wrote anything to the visitor since `since` (a note is no answer).
    pub fn answered_since(&self, operator: OperatorId, since: Timestamp) -> bool {
        self.messages.iter().rev().take_while(|m| m.created_at >= since).any(|m| m.author.id == Some(operator) && !m.internal)
    }

    /// A member steps out; an open livechat keeps at least one operator.
    ///
    /// # Errors
    /// `NotMember`, `LastMember`.
    pub fn leave(&mut self, operator: OperatorId) -> Result<(), ConversationError> {
        self.check_member(operator)?;
        if self.kind == Kind::Livechat && self.status != Status::Closed && self.members.len() == 1 {
            return Err(ConversationError::LastMember);
        }
        self.members.retain(|&m| m != operator);
        Ok(())
    }

    /// Ends the conversation for everyone.
    ///
    /// # Errors
    /// `Closed` when it already is.
    pub fn close(&mut self) -> Result<(), ConversationError> {
        self.check_open()?;
        self.set(Status::Closed);
        Ok(())
    }

    /// A member replaces the wanted expertise (already checked to exist).
    ///
    /// # Errors
    /// `NotMember`, `NotLivechat`.
    pub fn set_expertise(&mut self, by: OperatorId, ids: BTreeSet<ExpertiseId>) -> Result<(), ConversationError> {
        self.check_member(by)?;
        if self.kind == Kind::Direct {
            return Err(ConversationError::NotLivechat);
        }
        self.expertise_ids = ids;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const ANN: OperatorId = OperatorId(1);
    const BOB: OperatorId = OperatorId(2);

    pub(crate) fn visitor() -> Visitor {
        Visitor { name: "V".into(), lang: None, country: None, key: None, previous_operator: None, context: VisitorContext::default() }
    }

    fn assigned() -> Conversation {
        let mut c = Conversation::livechat(ConversationId(1), ChannelId(1), visitor(), BTreeSet::new(), None);
        c.assign(Assignment { operator_id: ANN, rule: Rule::AnyOperator, candidates: 1, at: Timestamp::now() }).unwrap();
        c
    }

    fn author() -> Author {
        Author { kind: AuthorKind::Visitor, id: None, name: "V".into() }
    }

    #[test]
    fn visitor_message_ends_waiting_but_not_need_help() {
        let mut c = assigned();
        c.set_status(ANN, RequestedStatus::Waiting, None).unwrap();
        c.post(Poster::Visitor, author(), "hi", None, Audience::Everyone, 4000).unwrap();
        assert_eq!(c.status(), Status::InProgress);
        c.set_status(ANN, RequestedStatus::NeedHelp, None).unwrap();
        c.post(Poster::Visitor, author(), "still there?", None, Audience::Everyone, 4000).unwrap();
        assert_eq!(c.status(), Status::NeedHelp);
        assert!(c.need_help_since().is_some());
    }

    #[test]
    fn join_only_while_looking_for_help_and_it_ends_the_call() {
        let mut c = assigned();
        assert_eq!(c.join(BOB), Err(ConversationError::NotLookingForHelp));
        c.set_status(ANN, RequestedStatus::NeedHelp, None).unwrap();
        c.join(BOB).unwrap();
        assert_eq!(c.status(), Status::InProgress);
        assert_eq!(c.need_help_since(), None);
        assert_eq!(c.join(OperatorId(3)), Err(ConversationError::NotLookingForHelp));
    }

    #[test]
    fn invite_ends_need_help_too() {
        let mut c = assigned();
        c.set_status(ANN, RequestedStatus::NeedHelp, None).unwrap();
        assert_eq!(c.invite(ANN, &[ANN, BOB]).unwrap(), vec![BOB]);
        assert_eq!(c.status(), Status::InProgress);
        assert_eq!(c.invite(OperatorId(9), &[BOB]), Err(ConversationError::NotMember));
    }

    #[test]
    fn a_resent_ref_returns_the_stored_message() {
        let mut c = assigned();
        let first = c.post(Poster::Visitor, author(), "once", Some("r1".into()), Audience::Everyone, 4000).unwrap();
        let again = c.resent(Poster::Visitor, "r1", " once ", Audience::Everyone).unwrap().unwrap();
        assert_eq!(first.id, again.id);
        assert_eq!(
            c.post(Poster::Visitor, author(), "once", Some("r1".into()), Audience::Everyone, 4000).err(),
            Some(ConversationError::RefReused)
        );
        assert_eq!(c.messages().len(), 1);
        // Other text, or the same text as a note, under that ref is no resend.
        assert_eq!(
            c.resent(Poster::Visitor, "r1", "twice", Audience::Everyone).map(|m| m.map(|m| m.id)),
            Err(ConversationError::RefReused)
        );
        assert_eq!(c.resent(Poster::Visitor, "r1", "once", Audience::Team).map(|m| m.map(|m| m.id)), Err(ConversationError::RefReused));
        assert_eq!(c.resent(Poster::Visitor, "r2", "once", Audience::Everyone).map(|m| m.map(|m| m.id)), Ok(None));
        // The same ref from another author is another message.
        c.post(Poster::Operator(ANN), author(), "mine", Some("r1".into()), Audience::Everyone, 4000).unwrap();
        assert_eq!(c.messages().len(), 2);
    }

    #[test]
    fn closed_conversations_accept_nothing() {
        let mut c = assigned();
        c.close().unwrap();
        assert_eq!(c.close(), Err(ConversationError::Closed));
        assert!(matches!(c.post(Poster::Visitor, author(), "hello?", None, Audience::Everyone, 4000), Err(ConversationError::Closed)));
        assert_eq!(c.set_status(ANN, RequestedStatus::InProgress, None), Err(ConversationError::Closed));
    }

    #[test]
    fn status_needs_an_operator_and_a_livechat() {
        let mut queued = Conversation::livechat(ConversationId(1), ChannelId(1), visitor(), BTreeSet::new(), None);
        assert_eq!(queued.set_status(ANN, RequestedStatus::Waiting, None), Err(ConversationError::NotMember));
        let mut direct = Conversation::direct(ConversationId(2), [ANN, BOB]);
        assert_eq!(direct.set_status(ANN, RequestedStatus::NeedHelp, None), Err(ConversationError::NotLivechat));
    }

    #[test]
    fn messages_after_is_by_id() {
        let mut c = assigned();
        for body in ["a", "b", "c"] {
            c.post(Poster::Visitor, author(), body, None, Audience::Everyone, 4000).unwrap();
        }
        let after: Vec<_> = c.messages_after(MessageId(1)).iter().map(|m| m.body.as_str()).collect();
        assert_eq!(after, ["b", "c"]);
        assert!(c.messages_after(MessageId(99)).is_empty());
    }

    #[test]
    fn the_last_operator_cannot_leave_an_open_livechat() {
        let mut c = assigned();
        assert_eq!(c.leave(ANN), Err(ConversationError::LastMember));
        c.invite(ANN, &[BOB]).unwrap();
        c.leave(ANN).unwrap();
        assert_eq!(c.members(), [BOB]);
    }

    /// Random command sequences, shared with the journal replay property in `persist`.
    pub(crate) mod properties {
        use proptest::prelude::*;

        use super::*;

        #[derive(Clone, Debug)]
        pub(crate) enum Command {
            VisitorPost,
            OperatorPost(u64),
            SetStatus(u64, RequestedStatus),
            Join(u64),
            Invite(u64, u64),
            Leave(u64),
            Close,
            Assign(u64),
            Enqueue,
        }

        pub(crate) fn command() -> impl Strategy<Value = Command> {
            let op = 1u64..4;
            let requested = prop::sample::select(vec![RequestedStatus::InProgress, RequestedStatus::Waiting, RequestedStatus::NeedHelp]);
            prop_oneof![
                Just(Command::VisitorPost),
                op.clone().prop_map(Command::OperatorPost),
                (op.clone(), requested).prop_map(|(o, r)| Command::SetStatus(o, r)),
                op.clone().prop_map(Command::Join),
                (op.clone(), op.clone()).prop_map(|(a, b)| Command::Invite(a, b)),
                op.clone().prop_map(Command::Leave),
                Just(Command::Close),
                op.prop_map(Command::Assign),
                Just(Command::Enqueue),
            ]
        }

        pub(crate) fn apply(c: &mut Conversation, command: &Command) {
            let author = |kind| Author { kind, id: None, name: "x".into() };
            let _ = match *command {
                Command::VisitorPost => c.post(Poster::Visitor, author(AuthorKind::Visitor), "hi", None, Audience::Everyone, 100).map(drop),
                Command::OperatorPost(o) => {
                    c.post(Poster::Operator(OperatorId(o)), author(AuthorKind::Operator), "hello", None, Audience::Everyone, 100).map(drop)
                }
                Command::SetStatus(o, r) => c.set_status(OperatorId(o), r, Some("why")).map(drop),
                Command::Join(o) => c.join(OperatorId(o)),
                Command::Invite(by, o) => c.invite(OperatorId(by), &[OperatorId(o)]).map(drop),
                Command::Leave(o) => c.leave(OperatorId(o)),
                Command::Close => c.close(),
                Command::Assign(o) => {
                    c.assign(Assignment { operator_id: OperatorId(o), rule: Rule::AnyOperator, candidates: 1, at: Timestamp::now() })
                }
                Command::Enqueue => {
                    c.enqueue();
                    Ok(())
                }
            };
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Whatever the commands, the conversation stays within API.md's state machine.
            #[test]
            fn any_command_sequence_keeps_the_documented_states(commands in prop::collection::vec(command(), 0..40)) {
                let mut c = Conversation::livechat(ConversationId(1), ChannelId(1), visitor(), BTreeSet::new(), None);
                for command in &commands {
                    let before = c.status();
                    let messages_before = c.messages().len();
                    apply(&mut c, command);
                    let after = c.status();
                    // Closed is final, and a closed conversation takes no message.
                    if before == Status::Closed {
                        prop_assert_eq!(after, Status::Closed);
                        prop_assert_eq!(c.messages().len(), messages_before);
                    }
                    // `need_help` and its timestamp go together.
                    prop_assert_eq!(after == Status::NeedHelp, c.need_help_since().is_some());
                    // Operator-side statuses need an operator in the conversation.
                    if matches!(after, Status::InProgress | Status::Waiting | Status::NeedHelp) {
                        prop_assert!(!c.members().is_empty(), "{:?} without members", after);
                    }
                    // A visitor message ends `waiting`, never `need_help`.
                    if matches!(command, Command::VisitorPost) && before == Status::Waiting {
                        prop_assert_eq!(after, Status::InProgress);
                    }
                    if matches!(command, Command::VisitorPost) && before == Status::NeedHelp {
                        prop_assert_eq!(after, Status::NeedHelp);
                    }
                    // Ids stay 1, 2, 3, …
                    for (i, m) in c.messages().iter().enumerate() {
                        prop_assert_eq!(m.id, MessageId(i as u64 + 1));
                    }
                }
            }
        }
    }
}
