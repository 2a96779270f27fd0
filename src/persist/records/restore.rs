//! Stored → domain: the live state a record or snapshot restores.

#[allow(clippy::wildcard_imports, reason = "the conversions use the stored types and their domain counterparts alike")]
use super::*;

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
    pub(super) fn parts(&self) -> ConversationParts {
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
