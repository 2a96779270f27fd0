//! The actors and what each owns.
//!
//! - `RouterActor` (one, on a thread of its own): routing state (presence
//!   copies, loads, per-channel queues, previous operators) and the
//!   Looking-for-help board. Every assignment decision is made here, one at a time.
//!   Accepts: `ForwardToOperator`, `OperatorPresence`, `MembersChanged`,
//!   `ConversationClosed`, `BoardChanged`, `DirectoryChanged`, `Reroute`,
//!   `ListLive`, `ListBoard`; its timers (expert wait, offline grace) are `run_later`.
//! - `ConversationActor` (one per conversation, spread over the actor
//!   arbiters): transcript, members, status, fan-out to the visitor's sessions
//!   and to members' operator actors. Runs the chatbot script, and journals
//!   each change before anyone hears of it; reads wait for it too.
//!   Accepts: `Start`, `PostMessage`, `GetConversation`, `GetVisitorConversation`,
//!   `GetSummary`, `SetStatus`, `SetExpertise`, `Join`, `Invite`, `Leave`,
//!   `Close`, `AssignOperator`, `SetQueuePosition`, `AttachVisitor`, `Replay`,
//!   `Typing`, `DirectoryPruned`, `CopyForSnapshot`, `PassOn`, `Reassign`,
//!   `Unassign`, `GetFacts`, `FindInHistory`, `Retire` (closed and durable: archive, then stop), `Erase`.
//! - `OperatorActor` (one per operator): presence, the operator's sessions
//!   (tabs) and the events pushed to them, the conversations they belong to.
//!   Accepts: `Connect`, `Disconnect`, `SetPresence`, `Deliver`, `Track`,
//!   `ListConversations`, `Deactivate`.
//!
//! Chat traffic goes session → `ConversationActor` directly; the router only
//! hears about membership, status and board changes. Outside this module only
//! `hub.rs` sends these messages (and `startup.rs`, which builds the actors).

pub mod conversation;
pub mod operator;
pub mod router;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix::{Actor, Addr};
use actix_rt::ArbiterHandle;
use dashmap::DashMap;
use futures_util::future::join_all;
use parking_lot::RwLock;

use crate::archive::Archive;
use crate::archive::{Entry, Mail};
use crate::auth::Auth;
use crate::config::Limits;
use crate::domain::conversation::{Conversation, Kind, Status};
use crate::domain::directory::{Directory, DirectoryDiff};
use crate::domain::lead::{Lead, LeadReason};
use crate::domain::{ConversationId, OperatorId};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::persist::records::RecordV1;
use crate::persist::{Captured, Store, StoreError};
use crate::views::transcript_text;
use crate::views::LeadView;
use crate::webhooks::Webhooks;
use crate::ws::outbound::{timed, SessionId, SessionTx, StopReason};
use crate::ws::protocol::{AgentEvent, VisitorEvent};
use conversation::{ConversationActor, CopyForSnapshot, Origin};
use operator::Deliver;
use operator::OperatorActor;
use router::RouterActor;

/// State shared by every actor and request handler.
pub struct Core {
    /// Operators, expertise and channels: read on every request, written rarely
    /// and only through [`Core::change_directory`].
    pub directory: RwLock<Directory>,
    /// Held while a directory change is made durable, so changes apply in order.
    directory_writer: tokio::sync::Mutex<()>,
    pub registry: Registry,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    pub store: Store,
    /// Closed conversations, out of memory (and the mail outbox).
    pub archive: Arc<Archive>,
    /// Bearer tokens; conversation actors revoke their visitor's when archived.
    pub auth: Auth,
    /// Where events go out (`emit` never blocks).
    pub webhooks: Arc<Webhooks>,
    /// Set once in `Application::build`, before any request or actor can run.
    router: OnceLock<Addr<RouterActor>>,
}

/// What [`Core`] keeps its state in: the journal and snapshots, the archive, the tokens.
pub struct Stores {
    pub store: Store,
    pub archive: Archive,
    pub auth: Auth,
    pub webhooks: Arc<Webhooks>,
}

/// Where the live actors are.
pub struct Registry {
    conversations: DashMap<ConversationId, Addr<ConversationActor>>,
    operators: DashMap<OperatorId, Addr<OperatorActor>>,
    /// The open direct conversation of each pair of operators (lower id first).
    direct: DashMap<(OperatorId, OperatorId), ConversationId>,
    /// The threads conversation and operator actors run on, used round-robin.
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: AtomicUsize,
    last_conversation_id: AtomicU64,
    /// Visitor sockets of conversations that left memory. They stay open
    /// (the visitor may still rate, and the widget shows the ended chat), so
    /// an erasure must still find them to close them. Each session removes
    /// itself when it ends.
    retired_visitors: DashMap<ConversationId, RetiredVisitors>,
}

struct RetiredVisitors {
    visitor_key: Option<String>,
    sessions: Vec<SessionTx<VisitorEvent>>,
}

impl Core {
    /// Where the server keeps its state; see `startup.rs`.
    pub fn new(directory: Directory, metrics: Arc<Metrics>, limits: Limits, arbiters: Vec<ArbiterHandle>, stores: Stores) -> Arc<Core> {
        let Stores { store, archive, auth, webhooks } = stores;
        assert!(!arbiters.is_empty(), "at least one actor arbiter is needed");
        Arc::new(Core {
            directory: RwLock::new(directory),
            directory_writer: tokio::sync::Mutex::new(()),
            registry: Registry {
                conversations: DashMap::new(),
                operators: DashMap::new(),
                direct: DashMap::new(),
                arbiters,
                next_arbiter: AtomicUsize::new(0),
                last_conversation_id: AtomicU64::new(0),
                retired_visitors: DashMap::new(),
            },
            metrics,
            limits,
            store,
            archive: Arc::new(archive),
            auth,
            webhooks,
            router: OnceLock::new(),
        })
    }

    pub fn set_router(&self, router: Addr<RouterActor>) {
        // Ignoring a second call keeps the first router; build calls this once.
        let _ = self.router.set(router);
    }

    pub fn router(&self) -> &Addr<RouterActor> {
        // unwrap: set in Application::build before the server accepts requests.
        self.router.get().expect("router started before use")
    }

    fn next_arbiter(&self) -> &ArbiterHandle {
        let arbiters = &self.registry.arbiters;
        &arbiters[self.registry.next_arbiter.fetch_add(1, Ordering::Relaxed) % arbiters.len()]
    }

    pub fn next_conversation_id(&self) -> ConversationId {
        ConversationId(self.registry.last_conversation_id.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Starts the actor of a new conversation on the next arbiter and registers it.
    pub fn start_conversation(self: &Arc<Self>, conversation: Conversation, visitor_token: Option<String>) -> Addr<ConversationActor> {
        self.spawn_conversation(conversation, visitor_token, Origin::New)
    }

    /// New conversation ids continue after `id` (the highest ever archived).
    pub fn ids_after(&self, id: u64) {
        self.registry.last_conversation_id.fetch_max(id, Ordering::Relaxed);
    }

    /// An archived conversation leaves the registry.
    pub fn forget_conversation(&self, id: ConversationId) {
        self.registry.conversations.remove(&id);
    }

    /// Keeps the open visitor sockets of a conversation that leaves memory.
    pub fn keep_visitor_sessions(&self, id: ConversationId, visitor_key: Option<String>, mut sessions: Vec<SessionTx<VisitorEvent>>) {
        sessions.retain(|s| !s.is_closed());
        if !sessions.is_empty() {
            // Appended: a widget may reconnect to the archived conversation while another tab is still open.
            let mut kept =
                self.registry.retired_visitors.entry(id).or_insert_with(|| RetiredVisitors { visitor_key, sessions: Vec::new() });
            kept.sessions.retain(|s| !s.is_closed());
            kept.sessions.extend(sessions);
        }
    }

    /// A visitor socket ended: forgotten, if its conversation had left memory.
    pub fn forget_visitor_session(&self, id: ConversationId, session: SessionId) {
        self.registry.retired_visitors.remove_if_mut(&id, |_, kept| {
            kept.sessions.retain(|s| s.id() != session);
            kept.sessions.is_empty()
        });
    }

    /// Closes the sockets left open on an erased visitor's conversations.
    pub fn end_visitor_sessions(&self, visitor_key: &str) {
        self.registry.retired_visitors.retain(|_, kept| {
            let erased = kept.visitor_key.as_deref() == Some(visitor_key);
            if erased {
                kept.sessions.iter().for_each(|s| s.stop(StopReason::Erased));
            }
            !erased
        });
    }

    /// Starts the actor of a conversation recovered from disk, so ids continue after it.
    pub fn restore_conversation(self: &Arc<Self>, conversation: Conversation, visitor_token: Option<String>) -> Addr<ConversationActor> {
        self.ids_after(conversation.id.0);
        if let ([a, b], Kind::Direct, false) = (conversation.members(), conversation.kind, conversation.status() == Status::Closed) {
            self.registry.direct.insert((*a.min(b), *a.max(b)), conversation.id);
        }
        self.spawn_conversation(conversation, visitor_token, Origin::Restored)
    }

    fn spawn_conversation(self: &Arc<Self>, conversation: Conversation, token: Option<String>, origin: Origin) -> Addr<ConversationActor> {
        let id = conversation.id;
        let core = self.clone();
        let addr =
            ConversationActor::start_in_arbiter(self.next_arbiter(), move |_| ConversationActor::new(conversation, core, token, origin));
        self.registry.conversations.insert(id, addr.clone());
        addr
    }

    /// Makes a change on a copy of the directory, journals the copy, and
    /// only once that is durable puts it in place: nobody can read a change a
    /// crash could still take back. Changes are made one at a time, each on
    /// the result of the last. Answers the change's value and what it changed.
    ///
    /// # Errors
    /// The change's own error, or `Unavailable` when it cannot be stored.
    pub async fn change_directory<T>(
        &self,
        change: impl FnOnce(&mut Directory) -> Result<T, ApiError>,
    ) -> Result<(T, DirectoryDiff), ApiError> {
        let _one_at_a_time = self.directory_writer.lock().await;
        let mut next = self.directory.read().clone();
        let value = change(&mut next)?;
        self.store.journal.append(&RecordV1::directory(&next)).await?;
        let mut live = self.directory.write();
        let diff = live.diff(&next);
        *live = next;
        Ok((value, diff))
    }

    pub fn conversation(&self, id: ConversationId) -> Option<Addr<ConversationActor>> {
        self.registry.conversations.get(&id).map(|a| a.clone())
    }

    /// Every conversation actor, for the rare broadcasts (an expertise deleted).
    pub fn conversations(&self) -> Vec<Addr<ConversationActor>> {
        self.registry.conversations.iter().map(|e| e.value().clone()).collect()
    }

    /// Every conversation actor with its id (see [`Core::copy_conversations`]).
    pub fn conversations_by_id(&self) -> Vec<(ConversationId, Addr<ConversationActor>)> {
        self.registry.conversations.iter().map(|e| (*e.key(), e.value().clone())).collect()
    }

    /// Copies each of `live` for a snapshot, actor by actor; answers the
    /// copies and the longest any actor was held up.
    ///
    /// An actor listed in `live` may retire before its copy is asked for: the
    /// journal then already says it is archived, so it is left out (before,
    /// that answered 503, found by schemathesis closing chats around a snapshot).
    ///
    /// # Errors
    /// `Stopped` when an actor that is still registered cannot be reached (the
    /// server is stopping): a snapshot without it would lose it.
    pub async fn copy_conversations(
        &self,
        live: Vec<(ConversationId, Addr<ConversationActor>)>,
    ) -> Result<(Vec<Captured>, Duration), StoreError> {
        let answers = join_all(live.iter().map(|(_, addr)| addr.send(CopyForSnapshot))).await;
        let (mut copies, mut longest) = (Vec::with_capacity(answers.len()), Duration::ZERO);
        for ((id, _), answer) in live.iter().zip(answers) {
            match answer {
                Ok((copy, took)) => {
                    longest = longest.max(took);
                    copies.push(copy);
                }
                Err(_) if self.conversation(*id).is_none() => {}
                Err(_) => return Err(StoreError::Stopped),
            }
        }
        Ok((copies, longest))
    }

    /// The operator's actor, started on first use.
    pub fn operator(self: &Arc<Self>, id: OperatorId) -> Addr<OperatorActor> {
        if let Some(addr) = self.registry.operators.get(&id) {
            return addr.clone();
        }
        self.registry
            .operators
            .entry(id)
            .or_insert_with(|| {
                let core = self.clone();
                OperatorActor::start_in_arbiter(self.next_arbiter(), move |_| OperatorActor::new(id, core))
            })
            .clone()
    }

    /// The open direct conversation between `a` (first member) and `b`, started
    /// if there is none; `true` when it was started now. Atomic per pair, so two
    /// simultaneous requests cannot open two conversations.
    pub fn open_direct(self: &Arc<Self>, a: OperatorId, b: OperatorId) -> (ConversationId, bool) {
        let mut started = false;
        let id = *self.registry.direct.entry((a.min(b), a.max(b))).or_insert_with(|| {
            started = true;
            let id = self.next_conversation_id();
            self.start_conversation(Conversation::direct(id, [a, b]), None);
            id
        });
        (id, started)
    }

    pub fn forget_direct(&self, a: OperatorId, b: OperatorId) {
        self.registry.direct.remove(&(a.min(b), a.max(b)));
    }

    /// The archive's entry for a closed conversation: with its lead, unless
    /// its channel is gone (nobody would follow it up), and the lead's mail
    /// when mail is on and the channel has a `notify_email`.
    pub fn archive_entry(&self, c: &Conversation, visitor_token: Option<&str>) -> Entry {
        let mut entry = Entry::new(c, visitor_token);
        let directory = self.directory.read();
        let channel = entry.lead.as_ref().and_then(|lead| directory.channel(lead.channel_id));
        if channel.is_none() {
            entry.lead = None;
        }
        if let (Some(lead), Some(channel), true) = (&entry.lead, channel, self.limits.mail) {
            entry.lead_mail = channel.notify_email.as_ref().map(|to| lead_mail(to, &channel.name, lead, c));
        }
        entry
    }

    /// Tells the operators of the lead's channel (those online) what became of it.
    pub fn announce_lead(self: &Arc<Self>, lead: &Lead) -> LeadView {
        let view = LeadView::new(lead, |id| self.operator_name(id));
        let operators = self.directory.read().channel(lead.channel_id).map(|c| c.operator_ids.clone()).unwrap_or_default();
        let event = timed(AgentEvent::Lead { lead: view.clone() });
        for operator in operators {
            if self.registry.operators.contains_key(&operator) {
                self.operator(operator).do_send(Deliver(event.clone()));
            }
        }
        view
    }

    /// An operator's display name, or a placeholder if they were removed.
    pub fn operator_name(&self, id: OperatorId) -> String {
        self.directory.read().operator(id).map_or_else(|| format!("Operator #{id}"), |op| op.name.clone())
    }
}

/// The mail a channel gets for a new lead: who, how to reach them, why, and what they wrote.
fn lead_mail(to: &str, channel: &str, lead: &Lead, c: &Conversation) -> Mail {
    let mut body = format!("A visitor on {channel} did not reach an operator.\n\nVisitor: {}\n", lead.visitor_name);
    for (label, value) in [("E-mail", &lead.email), ("Phone", &lead.phone)] {
        if let Some(value) = value {
            body.push_str(&format!("{label}: {value}\n"));
        }
    }
    let reason = match lead.reason {
        LeadReason::NoOperator => "nobody was available",
        LeadReason::Abandoned => "the visitor left before an operator came",
    };
    body.push_str(&format!("Why: {reason}\nWhen: {}\n\nConversation #{}:\n", lead.created_at, lead.conversation_id));
    body.push_str(&transcript_text(c.messages().iter().map(AsRef::as_ref).filter(|m| !m.internal)));
    Mail { to: to.to_owned(), subject: format!("Missed chat on {channel}: {}", lead.visitor_name), body }
}

/// A core on the current arbiter with its journal in `dir`, for actor tests.
#[cfg(test)]
pub(crate) fn test_core(dir: &std::path::Path, directory: Directory) -> Arc<Core> {
    let store = Store::open(dir, 1, crate::persist::journal::FsyncMode::Always, Duration::from_millis(50)).unwrap();
    let limits = Limits { max_message_chars: 4000, bot_input_pause: Duration::from_secs(1), mail: false };
    let auth = Auth::new(crate::config::AuthConfig {
        max_login_failures: 5,
        login_window: Duration::from_secs(60),
        token_idle_timeout: Duration::from_secs(3600),
        visitor_sessions_per_minute: 0,
    });
    let webhooks = Arc::new(Webhooks::new(Vec::new(), true, Duration::from_secs(1)));
    let stores = Stores { store, archive: Archive::open(dir).unwrap(), auth, webhooks };
    Core::new(directory, Arc::new(Metrics::new()), limits, vec![actix_rt::Arbiter::current()], stores)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory change whose record cannot be stored is refused and never
    /// seen: the change is made on a copy that replaces the directory only
    /// once durable (before, it was applied in place first).
    #[actix_rt::test]
    async fn a_directory_change_that_cannot_be_stored_is_never_visible() {
        let dir = tempfile::TempDir::new().unwrap();
        let core = test_core(dir.path(), Directory::default());
        let none = std::collections::BTreeSet::new();
        core.change_directory(|d| Ok(d.create_expertise("Billing", &none)?)).await.unwrap();
        core.store.journal.sabotage();
        let refused = core.change_directory(|d| Ok(d.create_expertise("Returns", &none)?)).await;
        assert!(matches!(refused, Err(ApiError::Unavailable(_))), "{refused:?}");
        let names: Vec<String> = core.directory.read().expertise().map(|e| e.name.clone()).collect();
        assert_eq!(names, ["Billing"]);
    }
}
