//! Domain → stored: what each record and snapshot holds of the live state.

#[allow(clippy::wildcard_imports, reason = "the conversions use the stored types and their domain counterparts alike")]
use super::*;

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
