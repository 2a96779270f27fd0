//! The directory: operators, expertise and channels, with the rules that keep
//! them consistent (unique logins and expertise names, no dangling ids, at
//! least one admin).
//!
//! It is plain data; the application wraps it in one `RwLock` because these
//! records change rarely and are read on every request.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use thiserror::Error;

use super::assignment::RoutingOrder;
use super::canned::{self, CannedPatch, CannedResponse, Editor};
use super::chatbot::{build_steps, Chatbot, StepInput};
use super::operator::{Operator, Role};
use super::text::{self, InvalidField};
use super::visitor;
use super::{CannedId, ChannelId, ChatbotId, ExpertiseId, OperatorId};

/// A skill such as "Billing"; its holders live on the operators (see [`Operator`]).
#[derive(Clone, Debug)]
pub struct Expertise {
    pub id: ExpertiseId,
    pub name: String,
}

/// A livechat entry point with its team of operators.
#[derive(Clone, Debug)]
pub struct Channel {
    pub id: ChannelId,
    pub name: String,
    pub operator_ids: BTreeSet<OperatorId>,
    /// Per-operator cap on concurrent open conversations of this channel; `None` = unlimited.
    pub max_sessions: Option<u32>,
    /// The script visitors meet first; `None` forwards them to an operator at once.
    pub chatbot_id: Option<ChatbotId>,
    pub options: RoutingOptions,
    /// Where each new lead (missed chat) of the channel is e-mailed, when SMTP is set up.
    pub notify_email: Option<String>,
}

/// Routing beyond Odoo, per channel; each is off (`None`) by default, which is Odoo's behaviour.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoutingOptions {
    /// Seconds a visitor wanting expertise nobody online holds waits for an expert before anyone may take them.
    pub expert_wait_s: Option<u32>,
    /// Seconds the assigned operator has to write something before the conversation is passed on.
    pub answer_timeout_s: Option<u32>,
    /// Seconds an operator may stay disconnected before their open livechats are routed again.
    pub offline_grace_s: Option<u32>,
    /// Whether the cascade ranks language and country (Odoo) or expertise first.
    pub routing_order: RoutingOrder,
}

impl RoutingOptions {
    /// # Errors
    /// `Invalid` naming the option set to 0 or beyond a day.
    pub fn check(&self) -> Result<(), InvalidField> {
        for (field, value) in
            [("expert_wait_s", self.expert_wait_s), ("answer_timeout_s", self.answer_timeout_s), ("offline_grace_s", self.offline_grace_s)]
        {
            if value.is_some_and(|v| !(1..=86_400).contains(&v)) {
                return Err(InvalidField::new(field, "must be 1..=86400 seconds, or null for off"));
            }
        }
        Ok(())
    }
}

/// Why a directory change was refused.
#[derive(Debug, Error)]
pub enum DirectoryError {
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    #[error("login {0:?} is already taken")]
    DuplicateLogin(String),
    #[error("an expertise named {0:?} already exists")]
    DuplicateExpertise(String),
    #[error("`{field}` names unknown operator {id}")]
    UnknownOperator { field: &'static str, id: OperatorId },
    #[error("`{field}` names unknown expertise {id}")]
    UnknownExpertise { field: &'static str, id: ExpertiseId },
    #[error("`{field}` names unknown chatbot {id}")]
    UnknownChatbot { field: &'static str, id: ChatbotId },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("the last active admin can be neither demoted nor deactivated")]
    LastAdmin,
    #[error("a canned response with shortcut {0:?} already exists")]
    DuplicateShortcut(String),
    #[error("{0}")]
    Forbidden(&'static str),
}

/// The fields of a new operator, already validated by the caller except for uniqueness.
pub struct NewOperator {
    pub login: String,
    pub name: String,
    pub password_hash: String,
    pub role: Role,
    pub languages: Vec<String>,
    pub country: Option<String>,
}

/// A partial update of an operator; `None` leaves a field as it is.
#[derive(Default)]
pub struct OperatorPatch {
    pub name: Option<String>,
    pub password_hash: Option<String>,
    pub role: Option<Role>,
    pub languages: Option<Vec<String>>,
    pub country: Option<Option<String>>,
    pub expertise_ids: Option<BTreeSet<ExpertiseId>>,
    pub active: Option<bool>,
}

/// A partial update of a channel; `None` leaves a field as it is.
#[derive(Default)]
pub struct ChannelPatch {
    pub name: Option<String>,
    pub operator_ids: Option<BTreeSet<OperatorId>>,
    pub max_sessions: Option<Option<u32>>,
    pub chatbot_id: Option<Option<ChatbotId>>,
    pub expert_wait_s: Option<Option<u32>>,
    pub answer_timeout_s: Option<Option<u32>>,
    pub offline_grace_s: Option<Option<u32>>,
    pub routing_order: Option<RoutingOrder>,
    pub notify_email: Option<Option<String>>,
}

/// The fields of a new channel.
pub struct NewChannel {
    pub name: String,
    pub operator_ids: BTreeSet<OperatorId>,
    pub max_sessions: Option<u32>,
    pub chatbot_id: Option<ChatbotId>,
    pub options: RoutingOptions,
    pub notify_email: Option<String>,
}

/// Cloned for every change: the change is made on a copy that replaces the
/// live directory only once its journal record is durable (see `Core::change_directory`).
#[derive(Clone, Default)]
pub struct Directory {
    operators: BTreeMap<OperatorId, Operator>,
    expertise: BTreeMap<ExpertiseId, Expertise>,
    channels: BTreeMap<ChannelId, Channel>,
    /// Each the current version; running conversations may hold older ones.
    chatbots: BTreeMap<ChatbotId, Arc<Chatbot>>,
    canned: BTreeMap<CannedId, CannedResponse>,
    /// Ids are never reused, even after a delete, so a stale reference can't hit a newcomer.
    last_id: u64,
}

/// What a directory change did that live state must follow: computed from
/// the directory before and after, so every way of making a change (admin
/// edit, preferences, expertise holders, deletions) has the same effects.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DirectoryDiff {
    /// Operators whose expertise changed: their stars on the board move.
    pub expertise_moved: Vec<OperatorId>,
    pub expertise_deleted: Vec<ExpertiseId>,
    pub channels_deleted: Vec<ChannelId>,
    pub deactivated: Vec<OperatorId>,
    /// Password changed or deactivated: whoever held their tokens is logged out.
    pub credentials_revoked: Vec<OperatorId>,
}

impl Directory {
    /// What changed from `self` to `after`.
    pub fn diff(&self, after: &Directory) -> DirectoryDiff {
        let mut diff = DirectoryDiff {
            expertise_deleted: self.expertise.keys().filter(|id| !after.expertise.contains_key(id)).copied().collect(),
            channels_deleted: self.channels.keys().filter(|id| !after.channels.contains_key(id)).copied().collect(),
            ..DirectoryDiff::default()
        };
        for new in after.operators.values() {
            let old = self.operators.get(&new.id);
            if old.map_or(!new.expertise_ids.is_empty(), |old| old.expertise_ids != new.expertise_ids) {
                diff.expertise_moved.push(new.id);
            }
            let Some(old) = old else { continue };
            let deactivated = old.active && !new.active;
            if deactivated {
                diff.deactivated.push(new.id);
            }
            if deactivated || old.password_hash != new.password_hash {
                diff.credentials_revoked.push(new.id);
            }
        }
        diff
    }
}

/// Everything stored about the directory, for [`Directory::restore`].
pub struct DirectoryParts {
    pub operators: Vec<Operator>,
    pub expertise: Vec<Expertise>,
    pub channels: Vec<Channel>,
    pub chatbots: Vec<Chatbot>,
    pub canned: Vec<CannedResponse>,
    pub last_id: u64,
}

impl Directory {
    pub fn restore(parts: DirectoryParts) -> Directory {
        Directory {
            operators: parts.operators.into_iter().map(|o| (o.id, o)).collect(),
            expertise: parts.expertise.into_iter().map(|e| (e.id, e)).collect(),
            channels: parts.channels.into_iter().map(|c| (c.id, c)).collect(),
            chatbots: parts.chatbots.into_iter().map(|c| (c.id, Arc::new(c))).collect(),
            canned: parts.canned.into_iter().map(|c| (c.id, c)).collect(),
            last_id: parts.last_id,
        }
    }

    /// The last id handed out (ids are never reused).
    pub fn last_id(&self) -> u64 {
        self.last_id
    }

    fn next_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    // ---- operators ----

    pub fn operators(&self) -> impl Iterator<Item = &Operator> {
        self.operators.values()
    }

    pub fn operator(&self, id: OperatorId) -> Option<&Operator> {
        self.operators.get(&id)
    }

    pub fn operator_by_login(&self, login: &str) -> Option<&Operator> {
        self.operators.values().find(|op| op.login == login)
    }

    /// # Errors
    /// `DuplicateLogin` when the login is taken.
    pub fn create_operator(&mut self, new: NewOperator) -> Result<&Operator, DirectoryError> {
        if self.operator_by_login(&new.login).is_some() {
            return Err(DirectoryError::DuplicateLogin(new.login));
        }
        let id = OperatorId(self.next_id());
        let operator = Operator {
            id,
            login: new.login,
            name: new.name,
            role: new.role,
            password_hash: new.password_hash,
            languages: new.languages,
            country: new.country,
            expertise_ids: BTreeSet::new(),
            active: true,
        };
        Ok(self.operators.entry(id).or_insert(operator))
    }

    /// # Errors
    /// `NotFound`, `UnknownExpertise`, or `LastAdmin` when it would demote or
    /// deactivate the only active admin.
    pub fn update_operator(&mut self, id: OperatorId, patch: OperatorPatch) -> Result<&Operator, DirectoryError> {
        let current = self.operators.get(&id).ok_or(DirectoryError::NotFound("user"))?;
        if let Some(ids) = &patch.expertise_ids {
            self.check_expertise("expertise_ids", ids)?;
        }
        let is_active_admin = |op: &Operator| op.role == Role::Admin && op.active;
        let loses_admin = is_active_admin(current) && (patch.role == Some(Role::User) || patch.active == Some(false));
        if loses_admin && self.operators.values().filter(|op| is_active_admin(op)).count() == 1 {
            return Err(DirectoryError::LastAdmin);
        }
        // unwrap: presence checked above and nothing was removed since.
        let operator = self.operators.get_mut(&id).unwrap();
        if let Some(name) = patch.name {
            operator.name = name;
        }
        if let Some(hash) = patch.password_hash {
            operator.password_hash = hash;
        }
        if let Some(role) = patch.role {
            operator.role = role;
        }
        if let Some(languages) = patch.languages {
            operator.languages = languages;
        }
        if let Some(country) = patch.country {
            operator.country = country;
        }
        if let Some(ids) = patch.expertise_ids {
            operator.expertise_ids = ids;
        }
        if let Some(active) = patch.active {
            operator.active = active;
        }
        Ok(operator)
    }

    fn check_operators(&self, field: &'static str, ids: &BTreeSet<OperatorId>) -> Result<(), DirectoryError> {
        match ids.iter().find(|id| !self.operators.contains_key(id)) {
            Some(&id) => Err(DirectoryError::UnknownOperator { field, id }),
            None => Ok(()),
        }
    }

    // ---- expertise ----

    pub fn expertise(&self) -> impl Iterator<Item = &Expertise> {
        self.expertise.values()
    }

    pub fn expertise_by_id(&self, id: ExpertiseId) -> Option<&Expertise> {
        self.expertise.get(&id)
    }

    /// The operators holding `id`: the other side of the one operator ↔ expertise relation.
    pub fn holders(&self, id: ExpertiseId) -> Vec<OperatorId> {
        self.operators.values().filter(|op| op.expertise_ids.contains(&id)).map(|op| op.id).collect()
    }

    /// # Errors
    /// `UnknownExpertise` naming `field` when an id does not exist.
    pub fn check_expertise(&self, field: &'static str, ids: &BTreeSet<ExpertiseId>) -> Result<(), DirectoryError> {
        match ids.iter().find(|id| !self.expertise.contains_key(id)) {
            Some(&id) => Err(DirectoryError::UnknownExpertise { field, id }),
            None => Ok(()),
        }
    }

    fn check_expertise_name(&self, name: &str, except: Option<ExpertiseId>) -> Result<String, DirectoryError> {
        let name = text::name("name", name)?;
        let taken = self.expertise.values().any(|e| Some(e.id) != except && e.name.to_lowercase() == name.to_lowercase());
        if taken {
            return Err(DirectoryError::DuplicateExpertise(name));
        }
        Ok(name)
    }

    /// # Errors
    /// `Invalid` on an empty name, `DuplicateExpertise` (case-insensitive), `UnknownOperator`.
    pub fn create_expertise(&mut self, name: &str, operator_ids: &BTreeSet<OperatorId>) -> Result<ExpertiseId, DirectoryError> {
        let name = self.check_expertise_name(name, None)?;
        self.check_operators("operator_ids", operator_ids)?;
        let id = ExpertiseId(self.next_id());
        self.expertise.insert(id, Expertise { id, name });
        self.set_holders(id, operator_ids);
        Ok(id)
    }

    /// Renames and/or replaces the holders of an expertise.
    ///
    /// # Errors
    /// As [`Directory::create_expertise`], plus `NotFound`.
    pub fn update_expertise(
        &mut self,
        id: ExpertiseId,
        name: Option<&str>,
        operator_ids: Option<&BTreeSet<OperatorId>>,
    ) -> Result<(), DirectoryError> {
        if !self.expertise.contains_key(&id) {
            return Err(DirectoryError::NotFound("expertise"));
        }
        let name = name.map(|n| self.check_expertise_name(n, Some(id))).transpose()?;
        if let Some(ids) = operator_ids {
            self.check_operators("operator_ids", ids)?;
        }
        if let (Some(name), Some(expertise)) = (name, self.expertise.get_mut(&id)) {
            expertise.name = name;
        }
        if let Some(ids) = operator_ids {
            self.set_holders(id, ids);
        }
        Ok(())
    }

    fn set_holders(&mut self, id: ExpertiseId, holders: &BTreeSet<OperatorId>) {
        for operator in self.operators.values_mut() {
            if holders.contains(&operator.id) {
                operator.expertise_ids.insert(id);
            } else {
                operator.expertise_ids.remove(&id);
            }
        }
    }

    /// Deletes an expertise and removes it from every operator and chatbot
    /// step; returns the former holders.
    ///
    /// # Errors
    /// `NotFound`.
    pub fn delete_expertise(&mut self, id: ExpertiseId) -> Result<Vec<OperatorId>, DirectoryError> {
        self.expertise.remove(&id).ok_or(DirectoryError::NotFound("expertise"))?;
        let holders = self.holders(id);
        self.set_holders(id, &BTreeSet::new());
        for chatbot in self.chatbots.values_mut() {
            if chatbot.steps.iter().any(|s| s.expertise_ids.contains(&id)) {
                let edited = Arc::make_mut(chatbot);
                for step in &mut edited.steps {
                    step.expertise_ids.remove(&id);
                }
            }
        }
        Ok(holders)
    }

    // ---- channels ----

    pub fn channels(&self) -> impl Iterator<Item = &Channel> {
        self.channels.values()
    }

    pub fn channel(&self, id: ChannelId) -> Option<&Channel> {
        self.channels.get(&id)
    }

    /// # Errors
    /// `Invalid` on a bad name or a zero `max_sessions`, `UnknownOperator`, `UnknownChatbot`.
    pub fn create_channel(&mut self, new: NewChannel) -> Result<&Channel, DirectoryError> {
        let name = text::name("name", &new.name)?;
        self.check_operators("operator_ids", &new.operator_ids)?;
        check_max_sessions(new.max_sessions)?;
        self.check_chatbot(new.chatbot_id)?;
        new.options.check()?;
        let notify_email = new.notify_email.as_deref().map(|e| visitor::email("notify_email", e)).transpose()?;
        let id = ChannelId(self.next_id());
        let channel = Channel {
            id,
            name,
            operator_ids: new.operator_ids,
            max_sessions: new.max_sessions,
            chatbot_id: new.chatbot_id,
            options: new.options,
            notify_email,
        };
        Ok(self.channels.entry(id).or_insert(channel))
    }

    fn check_chatbot(&self, id: Option<ChatbotId>) -> Result<(), DirectoryError> {
        match id {
            Some(id) if !self.chatbots.contains_key(&id) => Err(DirectoryError::UnknownChatbot { field: "chatbot_id", id }),
            _ => Ok(()),
        }
    }

    /// # Errors
    /// As [`Directory::create_channel`], plus `NotFound`.
    pub fn update_channel(&mut self, id: ChannelId, patch: ChannelPatch) -> Result<&Channel, DirectoryError> {
        if !self.channels.contains_key(&id) {
            return Err(DirectoryError::NotFound("channel"));
        }
        let name = patch.name.as_deref().map(|n| text::name("name", n)).transpose()?;
        if let Some(ids) = &patch.operator_ids {
            self.check_operators("operator_ids", ids)?;
        }
        if let Some(max) = patch.max_sessions {
            check_max_sessions(max)?;
        }
        if let Some(chatbot) = patch.chatbot_id {
            self.check_chatbot(chatbot)?;
        }
        let current = self.channels[&id].options;
        let options = RoutingOptions {
            expert_wait_s: patch.expert_wait_s.unwrap_or(current.expert_wait_s),
            answer_timeout_s: patch.answer_timeout_s.unwrap_or(current.answer_timeout_s),
            offline_grace_s: patch.offline_grace_s.unwrap_or(current.offline_grace_s),
            routing_order: patch.routing_order.unwrap_or(current.routing_order),
        };
        options.check()?;
        let notify_email = patch.notify_email.map(|e| e.as_deref().map(|e| visitor::email("notify_email", e)).transpose()).transpose()?;
        // unwrap: presence checked above.
        let channel = self.channels.get_mut(&id).unwrap();
        if let Some(notify_email) = notify_email {
            channel.notify_email = notify_email;
        }
        if let Some(name) = name {
            channel.name = name;
        }
        if let Some(ids) = patch.operator_ids {
            channel.operator_ids = ids;
        }
        if let Some(max) = patch.max_sessions {
            channel.max_sessions = max;
        }
        if let Some(chatbot) = patch.chatbot_id {
            channel.chatbot_id = chatbot;
        }
        channel.options = options;
        Ok(channel)
    }

    /// # Errors
    /// `NotFound`.
    pub fn delete_channel(&mut self, id: ChannelId) -> Result<(), DirectoryError> {
        self.channels.remove(&id).map(drop).ok_or(DirectoryError::NotFound("channel"))
    }

    // ---- chatbots ----

    pub fn chatbots(&self) -> impl Iterator<Item = &Arc<Chatbot>> {
        self.chatbots.values()
    }

    pub fn chatbot(&self, id: ChatbotId) -> Option<&Arc<Chatbot>> {
        self.chatbots.get(&id)
    }

    /// # Errors
    /// `Invalid` naming the title or the offending step.
    pub fn create_chatbot(&mut self, title: &str, steps: Vec<StepInput>, max_chars: usize) -> Result<&Arc<Chatbot>, DirectoryError> {
        let title = text::name("title", title)?;
        let steps = build_steps(steps, |e| self.expertise.contains_key(&e), max_chars)?;
        let id = ChatbotId(self.next_id());
        Ok(self.chatbots.entry(id).or_insert(Arc::new(Chatbot { id, title, steps })))
    }

    /// Replaces the title and/or the script. Conversations already running keep
    /// the version they started with.
    ///
    /// # Errors
    /// As [`Directory::create_chatbot`], plus `NotFound`.
    pub fn update_chatbot(
        &mut self,
        id: ChatbotId,
        title: Option<&str>,
        steps: Option<Vec<StepInput>>,
        max_chars: usize,
    ) -> Result<&Arc<Chatbot>, DirectoryError> {
        let current = self.chatbots.get(&id).ok_or(DirectoryError::NotFound("chatbot"))?;
        let title = title.map(|t| text::name("title", t)).transpose()?.unwrap_or_else(|| current.title.clone());
        let steps = match steps {
            Some(steps) => build_steps(steps, |e| self.expertise.contains_key(&e), max_chars)?,
            None => current.steps.clone(),
        };
        // unwrap: presence checked above.
        let chatbot = self.chatbots.get_mut(&id).unwrap();
        *chatbot = Arc::new(Chatbot { id, title, steps });
        Ok(chatbot)
    }

    /// Deletes a chatbot; channels that used it forward visitors to operators at once.
    ///
    /// # Errors
    /// `NotFound`.
    pub fn delete_chatbot(&mut self, id: ChatbotId) -> Result<(), DirectoryError> {
        self.chatbots.remove(&id).ok_or(DirectoryError::NotFound("chatbot"))?;
        for channel in self.channels.values_mut().filter(|c| c.chatbot_id == Some(id)) {
            channel.chatbot_id = None;
        }
        Ok(())
    }

    // ---- canned responses ----

    /// Every canned response, everyone's (for storage and tests; readers filter with `visible_to`).
    pub fn canned_responses(&self) -> impl Iterator<Item = &CannedResponse> {
        self.canned.values()
    }

    /// One canned response `editor` may see or change.
    ///
    /// # Errors
    /// `NotFound` also for another operator's own one, so ids reveal nothing.
    pub fn canned(&self, id: CannedId, editor: Editor) -> Result<&CannedResponse, DirectoryError> {
        self.canned.get(&id).filter(|c| c.visible_to(editor) || c.editable_by(editor)).ok_or(DirectoryError::NotFound("canned response"))
    }

    /// Adds a shared response (admins only) or one of the editor's own.
    ///
    /// # Errors
    /// `Invalid` shortcut or body, `Forbidden` sharing by a non-admin, `DuplicateShortcut`.
    pub fn create_canned(
        &mut self,
        editor: Editor,
        shortcut: &str,
        body: &str,
        shared: bool,
        max_chars: usize,
    ) -> Result<CannedId, DirectoryError> {
        let owner = self.canned_owner(editor, shared)?;
        let response =
            CannedResponse { id: CannedId(0), shortcut: canned::shortcut(shortcut)?, body: text::bounded("body", body, max_chars)?, owner };
        self.check_shortcut(&response)?;
        let id = CannedId(self.next_id());
        self.canned.insert(id, CannedResponse { id, ..response });
        Ok(id)
    }

    /// Changes a response the editor may change; `shared: false` on a shared one makes it the admin's own.
    ///
    /// # Errors
    /// `NotFound`, `Forbidden` (not theirs, or sharing by a non-admin), `Invalid`, `DuplicateShortcut`.
    pub fn update_canned(&mut self, id: CannedId, editor: Editor, patch: CannedPatch, max_chars: usize) -> Result<(), DirectoryError> {
        let mut response = self.editable_canned(id, editor)?.clone();
        if let Some(shortcut) = patch.shortcut {
            response.shortcut = canned::shortcut(&shortcut)?;
        }
        if let Some(body) = patch.body {
            response.body = text::bounded("body", &body, max_chars)?;
        }
        if let Some(shared) = patch.shared.filter(|&shared| shared != response.owner.is_none()) {
            response.owner = self.canned_owner(editor, shared)?;
        }
        self.check_shortcut(&response)?;
        self.canned.insert(id, response);
        Ok(())
    }

    /// # Errors
    /// `NotFound`, `Forbidden`.
    pub fn delete_canned(&mut self, id: CannedId, editor: Editor) -> Result<(), DirectoryError> {
        self.editable_canned(id, editor)?;
        self.canned.remove(&id);
        Ok(())
    }

    fn editable_canned(&self, id: CannedId, editor: Editor) -> Result<&CannedResponse, DirectoryError> {
        let response = self.canned(id, editor)?;
        if response.editable_by(editor) {
            Ok(response)
        } else {
            Err(DirectoryError::Forbidden("only admins change shared canned responses"))
        }
    }

    fn canned_owner(&self, editor: Editor, shared: bool) -> Result<Option<OperatorId>, DirectoryError> {
        match shared {
            true if !editor.is_admin => Err(DirectoryError::Forbidden("only admins share canned responses")),
            true => Ok(None),
            false => Ok(Some(editor.id)),
        }
    }

    /// Unique among the shared ones and among each operator's own.
    fn check_shortcut(&self, response: &CannedResponse) -> Result<(), DirectoryError> {
        let taken = self.canned.values().any(|c| c.id != response.id && c.owner == response.owner && c.shortcut == response.shortcut);
        if taken {
            return Err(DirectoryError::DuplicateShortcut(response.shortcut.clone()));
        }
        Ok(())
    }
}

fn check_max_sessions(max: Option<u32>) -> Result<(), InvalidField> {
    match max {
        Some(0) => Err(InvalidField::new("max_sessions", "must be at least 1, or null for unlimited")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_operator(login: &str, role: Role) -> NewOperator {
        NewOperator { login: login.into(), name: login.into(), password_hash: String::new(), role, languages: vec![], country: None }
    }

    #[test]
    fn expertise_relation_is_one_relation_seen_from_both_sides() {
        let mut dir = Directory::default();
        let ann = dir.create_operator(new_operator("ann", Role::Admin)).unwrap().id;
        let bob = dir.create_operator(new_operator("bob", Role::User)).unwrap().id;
        let billing = dir.create_expertise("Billing", &[ann].into()).unwrap();
        assert_eq!(dir.holders(billing), vec![ann]);
        dir.update_operator(bob, OperatorPatch { expertise_ids: Some([billing].into()), ..Default::default() }).unwrap();
        assert_eq!(dir.holders(billing), vec![ann, bob]);
        dir.update_expertise(billing, None, Some(&[bob].into())).unwrap();
        assert!(dir.operator(ann).unwrap().expertise_ids.is_empty());
        assert_eq!(dir.delete_expertise(billing).unwrap(), vec![bob]);
        assert!(dir.operator(bob).unwrap().expertise_ids.is_empty());
    }

    #[test]
    fn expertise_names_are_unique_case_insensitively() {
        let mut dir = Directory::default();
        dir.create_expertise("Billing", &BTreeSet::new()).unwrap();
        assert!(matches!(dir.create_expertise("billing ", &BTreeSet::new()), Err(DirectoryError::DuplicateExpertise(_))));
        assert!(matches!(dir.create_expertise(" ", &BTreeSet::new()), Err(DirectoryError::Invalid(_))));
        assert!(matches!(
            dir.create_expertise("Returns", &[OperatorId(99)].into()),
            Err(DirectoryError::UnknownOperator { id: OperatorId(99), .. })
        ));
    }

    #[test]
    fn the_last_admin_cannot_be_demoted() {
        let mut dir = Directory::default();
        let ann = dir.create_operator(new_operator("ann", Role::Admin)).unwrap().id;
        let demote = || OperatorPatch { role: Some(Role::User), ..Default::default() };
        assert!(matches!(dir.update_operator(ann, demote()), Err(DirectoryError::LastAdmin)));
        dir.create_operator(new_operator("bob", Role::Admin)).unwrap();
        assert!(dir.update_operator(ann, demote()).is_ok());
    }
}
