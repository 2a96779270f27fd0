//! `RouterActor`: the one place where operators are chosen, queues are kept in
//! order and the Looking-for-help board is maintained.
//!
//! Decisions are made one message at a time, so `max_sessions` and queue order
//! hold under any concurrency without locks on the routing state. The router
//! never sees chat messages: conversations tell it only about membership,
//! status and board changes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Addr, AsyncContext, Context, Handler, Message, MessageResult};

use super::conversation::{AssignOperator, ConversationActor, PassOn, Reassign, SetQueuePosition, Unassign};
use super::operator::{Deliver, DeliverPresence, OperatorActor};
use super::Core;
use crate::domain::assignment::{pick_operator, Candidate, ExpertiseSet, IfNobody, Need, Pick, Profile, RoutingOrder, Rule};
use crate::domain::conversation::{Assignment, Conversation, ConversationError, Kind, LeaveReason, Status};
use crate::domain::directory::{Channel, Directory, DirectoryDiff, RoutingOptions};
use crate::domain::operator::Presence;
use crate::domain::time::Timestamp;
use crate::domain::{ChannelId, ConversationId, ExpertiseId, OperatorId};
use crate::metrics::{ReasonLabel, RoutingLabels};
use crate::views::{BoardEntry, LiveStatus, ReaderBoard, SharedEntry};
use crate::ws::outbound::{timed, Timed};
use crate::ws::protocol::{AgentEvent, PresenceChange};

/// What the router knows of an operator beyond their profile.
#[derive(Default)]
struct Live {
    presence: Presence,
    /// Bumped on every presence change, so a grace timer knows whether the
    /// disconnection it was armed for is still the current one.
    presence_epoch: u64,
    /// Open livechats per channel, for `max_sessions`.
    per_channel: HashMap<ChannelId, u32>,
    /// Open livechats over all channels: the first tie-break.
    active_chats: u32,
    /// Sequence number of the last assignment (0 = never): the second tie-break.
    last_assigned: u64,
    /// Languages, country and expertise as routing compares them: taken from
    /// the directory when the operator comes online and after every directory change.
    profile: Profile,
}

impl Live {
    fn add_load(&mut self, channel: ChannelId) {
        *self.per_channel.entry(channel).or_default() += 1;
        self.active_chats += 1;
    }

    fn remove_load(&mut self, channel: ChannelId) {
        if let Some(load) = self.per_channel.get_mut(&channel) {
            *load = load.saturating_sub(1);
        }
        self.active_chats = self.active_chats.saturating_sub(1);
    }

    /// Takes `id`'s languages, country and expertise from `directory` again.
    fn refresh_profile(&mut self, id: OperatorId, directory: &Directory) {
        self.profile = directory.operator(id).map(Profile::of).unwrap_or_default();
    }
}

/// The operators of `channel` who may take one more of its conversations:
/// active, online, under the channel's `max_sessions`, and not `exclude`.
fn candidates<'a>(
    directory: &Directory,
    channel: &Channel,
    operators: &'a HashMap<OperatorId, Live>,
    exclude: &[OperatorId],
) -> Vec<Candidate<'a>> {
    let candidate = |id: OperatorId| {
        let live = operators.get(&id)?;
        let load = live.per_channel.get(&channel.id).copied().unwrap_or(0);
        let active = directory.operator(id).is_some_and(|op| op.active);
        if !active || live.presence != Presence::Online || channel.max_sessions.is_some_and(|max| load >= max) {
            return None;
        }
        Some(Candidate { id, profile: &live.profile, active_chats: live.active_chats, last_assigned: live.last_assigned })
    };
    channel.operator_ids.iter().filter(|id| !exclude.contains(id)).filter_map(|&id| candidate(id)).collect()
}

/// What a pushed board depends on: the reader's expertise and, for a member
/// of one of its conversations, who they are.
type BoardKey<'a> = (Option<&'a BTreeSet<ExpertiseId>>, Option<OperatorId>);

/// What routing needs to know about the visitor.
#[derive(Clone, Debug, Default)]
pub struct RoutingNeed {
    pub visitor_key: Option<String>,
    /// From the archive, for when this process has not seen the visitor served.
    pub previous_operator: Option<OperatorId>,
    pub lang: Option<String>,
    pub country: Option<String>,
    pub expertise: BTreeSet<ExpertiseId>,
}

impl RoutingNeed {
    /// The cascade's terms for this need on a channel ranking by `order`.
    fn wanted(&self, previous: Option<OperatorId>, order: RoutingOrder) -> Need<'_> {
        Need { previous, lang: self.lang.as_deref(), country: self.country.as_deref(), expertise: &self.expertise, order }
    }

    /// What a conversation's visitor and wanted expertise ask of routing.
    pub fn of(c: &Conversation) -> RoutingNeed {
        let visitor = c.visitor.as_ref();
        RoutingNeed {
            visitor_key: visitor.and_then(|v| v.key.clone()),
            previous_operator: visitor.and_then(|v| v.previous_operator),
            lang: visitor.and_then(|v| v.lang.clone()),
            country: visitor.and_then(|v| v.country.clone()),
            expertise: c.expertise_ids.clone(),
        }
    }
}

/// A queued conversation.
struct Waiting {
    conversation: ConversationId,
    addr: Addr<ConversationActor>,
    need: RoutingNeed,
    since: Instant,
}

/// An open livechat with an operator: whose capacity it uses.
struct Open {
    channel: ChannelId,
    members: BTreeSet<OperatorId>,
}

pub struct RouterActor {
    core: Arc<Core>,
    operators: HashMap<OperatorId, Live>,
    /// Per channel, in conversation id (arrival) order. Invariant: a non-empty queue means the channel
    /// had no candidate when last drained; every event that can create one drains it.
    queues: HashMap<ChannelId, VecDeque<Waiting>>,
    open: HashMap<ConversationId, Open>,
    /// Per channel, the last operator of each `visitor_key` (routing rule 1).
    previous: HashMap<ChannelId, HashMap<String, OperatorId>>,
    /// Conversations with status `need_help`.
    board: BTreeMap<ConversationId, BoardEntry>,
    last_assignment: u64,
    /// Queued conversations with a timer armed for the end of their expert wait.
    expert_timers: HashSet<ConversationId>,
    pending: Pending,
}

/// What the next push to every operator holds, gathered for [`PUSH_DELAY`]
/// so that changes in a burst (a busy team flagging and joining, a team
/// coming online at nine) cost each operator one push, not one per change.
#[derive(Default)]
struct Pending {
    /// A push is armed.
    armed: bool,
    boards: bool,
    presence: Vec<PresenceChange>,
}

/// How long changes are gathered before one push, per started hundred of
/// connected operators: 25 ms feels live, and as each push goes to every
/// connected operator, pushes then cost at most 4,000 frames a second
/// whatever the team's size (1,000 operators coming online together: about
/// ten `presences` frames each rather than one per colleague).
const PUSH_DELAY: Duration = Duration::from_millis(25);
const PUSH_DELAY_PER: usize = 100;

/// The outcome of looking for an operator.
enum Decision {
    Pick(Pick),
    NoCandidate,
    /// Nobody online holds the wanted expertise; the channel waits for an expert this much longer.
    WaitForExpert(Duration),
}

impl RouterActor {
    pub fn new(core: Arc<Core>) -> RouterActor {
        RouterActor {
            core,
            operators: HashMap::new(),
            queues: HashMap::new(),
            open: HashMap::new(),
            previous: HashMap::new(),
            board: BTreeMap::new(),
            last_assignment: 0,
            expert_timers: HashSet::new(),
            pending: Pending::default(),
        }
    }

    /// Rebuilds the routing state from recovered conversations: loads, queues
    /// (in arrival order), previous operators, the board. Presence starts
    /// offline for everyone; queues drain as operators connect.
    pub fn restore(&mut self, conversations: &[(Addr<ConversationActor>, Conversation)]) {
        let mut assignments = Vec::new();
        for (addr, c) in conversations {
            let (Kind::Livechat, Some(channel)) = (c.kind, c.channel_id) else { continue };
            match c.status() {
                Status::Queued => self.queues.entry(channel).or_default().push_back(Waiting {
                    conversation: c.id,
                    addr: addr.clone(),
                    need: RoutingNeed::of(c),
                    since: Instant::now(),
                }),
                Status::InProgress | Status::Waiting | Status::NeedHelp => {
                    for &member in c.members() {
                        self.add_load(member, channel);
                    }
                    self.open.insert(c.id, Open { channel, members: c.members().iter().copied().collect() });
                }
                Status::Bot | Status::Closed => {}
            }
            if c.status() == Status::NeedHelp {
                self.board.insert(c.id, BoardEntry::new(c, |id| self.core.operator_name(id)));
            }
            if let Some(assignment) = &c.assignment {
                assignments.push((assignment.at, c.id, channel, c.visitor.as_ref().and_then(|v| v.key.clone()), assignment.operator_id));
            }
        }
        assignments.sort_by_key(|&(at, id, ..)| (at, id));
        for (_, _, channel, key, operator) in assignments {
            self.last_assignment += 1;
            self.operators.entry(operator).or_default().last_assigned = self.last_assignment;
            if let Some(key) = key {
                self.previous.entry(channel).or_default().insert(key, operator);
            }
        }
        let channels: Vec<ChannelId> = self.queues.keys().copied().collect();
        for channel in channels {
            if let Some(queue) = self.queues.get_mut(&channel) {
                queue.make_contiguous().sort_by_key(|w| w.conversation);
            }
            self.announce_positions(channel);
        }
        self.core.metrics.queue_length.set(self.queues.values().map(|q| q.len() as i64).sum());
    }

    /// The cascade over the channel's candidates, `exclude` left out. `waited`
    /// is how long a queued conversation has waited: with `expert_wait_s` set,
    /// it keeps waiting while no candidate holds any of the wanted expertise.
    fn decide(&self, channel: ChannelId, need: &RoutingNeed, exclude: &[OperatorId], waited: Option<Duration>) -> Decision {
        let directory = self.core.directory.read();
        let Some(channel_def) = directory.channel(channel) else {
            return Decision::NoCandidate;
        };
        let previous =
            need.visitor_key.as_deref().and_then(|key| self.previous.get(&channel)?.get(key).copied()).or(need.previous_operator);
        let candidates = candidates(&directory, channel_def, &self.operators, exclude);
        let wanted = need.wanted(previous, channel_def.options.routing_order);
        let Some(pick) = pick_operator(&wanted, candidates.iter().copied()) else {
            return Decision::NoCandidate;
        };
        let expert_online = || {
            let expertise = ExpertiseSet::of(&need.expertise);
            candidates.iter().any(|c| c.profile.holds_any(&expertise))
        };
        match (channel_def.options.expert_wait_s, waited) {
            (Some(limit), Some(waited)) if !need.expertise.is_empty() && !expert_online() => {
                let limit = Duration::from_secs(limit.into());
                if waited < limit {
                    Decision::WaitForExpert(limit - waited)
                } else {
                    Decision::Pick(Pick { rule: Rule::ExpertWaitExpired, ..pick })
                }
            }
            _ => Decision::Pick(pick),
        }
    }

    fn add_load(&mut self, operator: OperatorId, channel: ChannelId) {
        self.operators.entry(operator).or_default().add_load(channel);
    }

    fn remove_load(&mut self, operator: OperatorId, channel: ChannelId) {
        if let Some(live) = self.operators.get_mut(&operator) {
            live.remove_load(channel);
        }
    }

    /// The channel's routing options, off when the channel is gone.
    fn options(&self, channel: ChannelId) -> RoutingOptions {
        self.core.directory.read().channel(channel).map(|c| c.options).unwrap_or_default()
    }

    /// An operator's last connection dropped: one timer per distinct
    /// `offline_grace_s` among their channels.
    fn arm_grace(&self, operator: OperatorId, epoch: u64, ctx: &mut Context<Self>) {
        let graces: BTreeSet<u32> = {
            let directory = self.core.directory.read();
            directory.channels().filter(|c| c.operator_ids.contains(&operator)).filter_map(|c| c.options.offline_grace_s).collect()
        };
        for grace in graces {
            ctx.run_later(Duration::from_secs(grace.into()), move |act, ctx| act.grace_over(operator, epoch, grace, ctx));
        }
    }

    /// Per channel and wanted expertise: assignments, those to an expert, and the wait.
    fn count_routing(&self, channel: ChannelId, wanted: &BTreeSet<ExpertiseId>, operator: OperatorId, waited: Duration) {
        let held = self.core.directory.read().operator(operator).map(|op| op.expertise_ids.clone()).unwrap_or_default();
        let labels = |expertise: String| RoutingLabels { channel: channel.to_string(), expertise };
        let wanted: Vec<Option<ExpertiseId>> = if wanted.is_empty() { vec![None] } else { wanted.iter().copied().map(Some).collect() };
        for expertise in wanted {
            let label = labels(expertise.map_or_else(|| "none".into(), |e| e.to_string()));
            let metrics = &self.core.metrics;
            metrics.routed.get_or_create(&label).inc();
            if expertise.is_some_and(|e| held.contains(&e)) {
                metrics.routed_to_expert.get_or_create(&label).inc();
            }
            metrics.time_to_operator.get_or_create(&label).observe(waited.as_secs_f64());
        }
    }

    fn assign(&mut self, channel: ChannelId, waiting: Waiting, pick: Pick) {
        self.expert_timers.remove(&waiting.conversation);
        self.last_assignment += 1;
        self.operators.entry(pick.operator).or_default().last_assigned = self.last_assignment;
        self.add_load(pick.operator, channel);
        self.open.insert(waiting.conversation, Open { channel, members: [pick.operator].into() });
        if let Some(key) = waiting.need.visitor_key {
            self.previous.entry(channel).or_default().insert(key, pick.operator);
        }
        self.core.metrics.assignments.inc();
        self.core.metrics.assignment_latency.observe(waiting.since.elapsed().as_secs_f64());
        self.count_routing(channel, &waiting.need.expertise, pick.operator, waiting.since.elapsed());
        tracing::debug!(conversation_id = %waiting.conversation, operator_id = %pick.operator, rule = ?pick.rule, "assigned");
        let assignment = Assignment { operator_id: pick.operator, rule: pick.rule, candidates: pick.candidates, at: Timestamp::now() };
        waiting.addr.do_send(AssignOperator { assignment });
    }

    /// Assigns queued conversations of `channel` in arrival order while
    /// candidates remain. A conversation waiting for an expert is stepped over
    /// (its timer re-drains the channel when the wait runs out), so it never
    /// holds up the visitors behind it.
    fn drain(&mut self, channel: ChannelId, ctx: &mut Context<Self>) {
        let mut moved = false;
        let mut i = 0;
        while let Some(waiting) = self.queues.get(&channel).and_then(|q| q.get(i)) {
            match self.decide(channel, &waiting.need, &[], Some(waiting.since.elapsed())) {
                Decision::Pick(pick) => {
                    // unwrap: index `i` exists, checked just above.
                    let waiting = self.queues.get_mut(&channel).and_then(|q| q.remove(i)).unwrap();
                    self.assign(channel, waiting, pick);
                    moved = true;
                }
                Decision::WaitForExpert(left) => {
                    if self.expert_timers.insert(waiting.conversation) {
                        ctx.run_later(left, move |act, ctx| act.drain(channel, ctx));
                    }
                    i += 1;
                }
                Decision::NoCandidate => break,
            }
        }
        if moved {
            self.announce_positions(channel);
        }
        self.core.metrics.queue_length.set(self.queues.values().map(|q| q.len() as i64).sum());
    }

    /// Puts a conversation in its channel's queue, in arrival order, and
    /// drains it; a conversation still waiting hears its position.
    fn enqueue(&mut self, channel: ChannelId, waiting: Waiting, ctx: &mut Context<Self>) {
        let (conversation, addr) = (waiting.conversation, waiting.addr.clone());
        // Arrival order is conversation order (ids increase as visitors arrive),
        // whatever order the forwards reach the router in.
        let queue = self.queues.entry(channel).or_default();
        let at = queue.partition_point(|w| w.conversation < conversation);
        let jumped = at < queue.len();
        queue.insert(at, waiting);
        self.drain(channel, ctx);
        let Some(position) = self.queues.get(&channel).and_then(|q| q.iter().position(|w| w.conversation == conversation)) else {
            return; // assigned by the drain
        };
        if jumped {
            self.announce_positions(channel);
        } else {
            addr.do_send(SetQueuePosition(position as u32 + 1));
        }
    }

    /// An operator's offline grace ran out: if they are still away from the
    /// same disconnection, their livechats on channels with that grace are routed again.
    fn grace_over(&mut self, operator: OperatorId, epoch: u64, grace: u32, _: &mut Context<Self>) {
        let still_gone = self.operators.get(&operator).is_some_and(|l| l.presence == Presence::Offline && l.presence_epoch == epoch);
        if still_gone {
            self.pass_on(operator, LeaveReason::Offline, |options| options.offline_grace_s == Some(grace));
        }
    }

    /// Asks each open livechat of `operator` on a channel whose options pass
    /// `applies` to be routed again, away from them.
    fn pass_on(&self, operator: OperatorId, reason: LeaveReason, applies: impl Fn(RoutingOptions) -> bool) {
        for (&id, open) in &self.open {
            if open.members.contains(&operator) && applies(self.options(open.channel)) {
                if let Some(addr) = self.core.conversation(id) {
                    addr.do_send(PassOn { from: operator, reason });
                }
            }
        }
    }

    fn announce_positions(&self, channel: ChannelId) {
        for (i, waiting) in self.queues.get(&channel).into_iter().flatten().enumerate() {
            waiting.addr.do_send(SetQueuePosition(i as u32 + 1));
        }
    }

    /// Moves an open livechat's seat from `from` to `pick.operator`: loads,
    /// members, the tie-break clock, the returning-visitor memory, metrics.
    fn move_over(
        &mut self,
        conversation: &ConversationId,
        channel: ChannelId,
        from: OperatorId,
        pick: Pick,
        need: &RoutingNeed,
        reason: LeaveReason,
    ) -> Assignment {
        self.remove_load(from, channel);
        let newcomer = self.open.get_mut(conversation).is_some_and(|open| {
            open.members.remove(&from);
            open.members.insert(pick.operator)
        });
        if newcomer {
            self.add_load(pick.operator, channel);
        }
        self.last_assignment += 1;
        self.operators.entry(pick.operator).or_default().last_assigned = self.last_assignment;
        if let Some(key) = need.visitor_key.clone() {
            self.previous.entry(channel).or_default().insert(key, pick.operator);
        }
        self.core.metrics.reassignments.get_or_create(&ReasonLabel { reason: reason.into() }).inc();
        tracing::info!(conversation_id = %conversation, %from, to = %pick.operator, ?reason, "reassigned");
        Assignment { operator_id: pick.operator, rule: pick.rule, candidates: pick.candidates, at: Timestamp::now() }
    }

    /// The board as `reader` sees it, oldest call for help first.
    fn board_for(&self, reader: OperatorId, expertise: Option<&BTreeSet<ExpertiseId>>) -> Vec<BoardEntry> {
        let mut entries: Vec<BoardEntry> = self.board.values().map(|e| e.for_reader(reader, expertise)).collect();
        entries.sort_by_key(|e| (e.need_help_since, e.id));
        entries
    }

    /// Pushes each connected operator (of `only`, or all) their own board.
    fn push_boards(&self, only: Option<&[OperatorId]>) {
        let directory = self.core.directory.read();
        let mut entries: Vec<&BoardEntry> = self.board.values().collect();
        entries.sort_by_key(|e| (e.need_help_since, e.id));
        let shared: Arc<[SharedEntry]> = entries.into_iter().map(|e| SharedEntry::new(e.clone())).collect();
        // Readers with the same expertise who are in none of the board's
        // conversations see the same board: one event for all of them.
        let members: BTreeSet<OperatorId> = self.board.values().flat_map(|e| e.operator_ids.iter().copied()).collect();
        let mut boards: HashMap<BoardKey, Arc<Timed<AgentEvent>>> = HashMap::new();
        for (id, operator) in self.connected() {
            if only.is_some_and(|only| !only.contains(&id)) {
                continue;
            }
            let expertise = directory.operator(id).map(|op| &op.expertise_ids);
            let board = boards
                .entry((expertise, members.contains(&id).then_some(id)))
                .or_insert_with(|| timed(AgentEvent::NeedHelp { conversations: ReaderBoard::new(shared.clone(), id, expertise) }));
            operator.do_send(Deliver(board.clone()));
        }
    }

    /// The operators with a console open, and their actors: who pushes go to.
    fn connected(&self) -> impl Iterator<Item = (OperatorId, Addr<OperatorActor>)> + '_ {
        self.core.registry.operators.iter().filter_map(|entry| {
            let connected = self.operators.get(entry.key()).is_some_and(|l| l.presence != Presence::Offline);
            connected.then(|| (*entry.key(), entry.value().clone()))
        })
    }

    /// Pushes every board once, shortly: changes that come in a burst (a
    /// busy team flagging and joining) cost one push per operator, not one per change.
    fn push_boards_soon(&mut self, ctx: &mut Context<Self>) {
        self.pending.boards = true;
        self.push_soon(ctx);
    }

    /// Arms the push of what is [`Pending`], unless it is armed already.
    fn push_soon(&mut self, ctx: &mut Context<Self>) {
        if !std::mem::replace(&mut self.pending.armed, true) {
            let connected = self.connected().count();
            let delay = PUSH_DELAY * connected.div_ceil(PUSH_DELAY_PER).max(1) as u32;
            ctx.run_later(delay, |act, _| {
                let pending = std::mem::take(&mut act.pending);
                // Presence, then boards: a console knows who is online before a board that may name them.
                act.push_presence(&pending.presence);
                if pending.boards {
                    act.push_boards(None);
                }
            });
        }
    }

    /// Sends `changes` to every connected operator, one `presence` event per
    /// change or one `presences` event for them all, as each tab asked.
    fn push_presence(&self, changes: &[PresenceChange]) {
        if changes.is_empty() {
            return;
        }
        let each: Arc<[Arc<Timed<AgentEvent>>]> =
            changes.iter().map(|c| timed(AgentEvent::Presence { user_id: c.user_id, presence: c.presence })).collect();
        let batched = timed(AgentEvent::Presences { changes: changes.into() });
        for (_, operator) in self.connected() {
            operator.do_send(DeliverPresence { each: each.clone(), batched: batched.clone() });
        }
    }
}

impl Actor for RouterActor {
    type Context = Context<Self>;
}

/// The outcome of a forward. The decision itself travels one way only: as
/// `AssignOperator` or `SetQueuePosition`, already sent when this answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forwarded {
    /// Assigned or queued: the conversation hears which by message.
    Routed,
    /// Nobody available and `IfNobody::GoOn`: nothing was sent.
    NoCandidate,
}

/// Find an operator for a conversation; if none is free, queue it or answer
/// `NoCandidate` as `if_nobody` says.
#[derive(Message)]
#[rtype(result = "Forwarded")]
pub struct ForwardToOperator {
    pub conversation: ConversationId,
    pub addr: Addr<ConversationActor>,
    pub channel: ChannelId,
    pub need: RoutingNeed,
    pub if_nobody: IfNobody,
}

impl Handler<ForwardToOperator> for RouterActor {
    type Result = MessageResult<ForwardToOperator>;

    fn handle(&mut self, msg: ForwardToOperator, ctx: &mut Context<Self>) -> Self::Result {
        let ForwardToOperator { conversation, addr, channel, need, if_nobody } = msg;
        let waiting = Waiting { conversation, addr, need, since: Instant::now() };
        if if_nobody == IfNobody::GoOn {
            // A non-empty queue means nobody is free, so this cannot jump it.
            return MessageResult(match self.decide(channel, &waiting.need, &[], None) {
                Decision::Pick(pick) => {
                    self.assign(channel, waiting, pick);
                    Forwarded::Routed
                }
                Decision::NoCandidate | Decision::WaitForExpert(_) => Forwarded::NoCandidate,
            });
        }
        self.enqueue(channel, waiting, ctx);
        MessageResult(Forwarded::Routed)
    }
}

/// An operator's presence changed (sent by their `OperatorActor`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct OperatorPresence {
    pub operator: OperatorId,
    pub presence: Presence,
}

impl Handler<OperatorPresence> for RouterActor {
    type Result = ();

    fn handle(&mut self, msg: OperatorPresence, ctx: &mut Context<Self>) {
        let live = self.operators.entry(msg.operator).or_default();
        let was = std::mem::replace(&mut live.presence, msg.presence);
        if was == msg.presence {
            return;
        }
        live.presence_epoch += 1;
        let epoch = live.presence_epoch;
        if msg.presence == Presence::Online {
            live.refresh_profile(msg.operator, &self.core.directory.read());
        }
        if msg.presence == Presence::Offline {
            self.arm_grace(msg.operator, epoch, ctx);
        }
        self.pending.presence.push(PresenceChange { user_id: msg.operator, presence: msg.presence });
        self.push_soon(ctx);
        if msg.presence == Presence::Online {
            let channels: Vec<ChannelId> = {
                let directory = self.core.directory.read();
                directory.channels().filter(|c| c.operator_ids.contains(&msg.operator)).map(|c| c.id).collect()
            };
            for channel in channels {
                self.drain(channel, ctx);
            }
        }
    }
}

/// Pass an open livechat from `from` to another candidate (rule `reassigned`).
/// When nobody can take it, it stays where it is, except from a deactivated
/// operator, who leaves it anyway (to the queue if they were the last member).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reroute {
    pub conversation: ConversationId,
    pub addr: Addr<ConversationActor>,
    pub channel: ChannelId,
    pub from: OperatorId,
    pub need: RoutingNeed,
    pub reason: LeaveReason,
}

impl Handler<Reroute> for RouterActor {
    type Result = ();

    fn handle(&mut self, msg: Reroute, ctx: &mut Context<Self>) {
        if !self.open.get(&msg.conversation).is_some_and(|open| open.members.contains(&msg.from)) {
            return;
        }
        let Decision::Pick(pick) = self.decide(msg.channel, &msg.need, &[msg.from], None) else {
            if msg.reason == LeaveReason::Deactivated {
                self.remove_load(msg.from, msg.channel);
                let emptied = self.open.get_mut(&msg.conversation).is_some_and(|open| {
                    open.members.remove(&msg.from);
                    open.members.is_empty()
                });
                if emptied {
                    self.open.remove(&msg.conversation);
                }
                msg.addr.do_send(Unassign { from: msg.from, reason: msg.reason });
            }
            return;
        };
        let assignment =
            self.move_over(&msg.conversation, msg.channel, msg.from, Pick { rule: Rule::Reassigned, ..pick }, &msg.need, msg.reason);
        msg.addr.do_send(Reassign { from: msg.from, reason: msg.reason, assignment });
        // The freed seat may serve the queue (the old operator may be online, merely silent).
        self.drain(msg.channel, ctx);
    }
}

/// A member hands an open livechat over: to whom `to` allows, the cascade
/// picking for `need` among the channel's candidates not yet in it (rule `transferred`).
/// Answers the assignment, already counted in the loads, or why nobody can take it.
#[derive(Message)]
#[rtype(result = "Result<Assignment, ConversationError>")]
pub struct HandOver {
    pub conversation: ConversationId,
    pub channel: ChannelId,
    pub from: OperatorId,
    pub to: HandTo,
    pub need: RoutingNeed,
}

/// Whom a hand-over may reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandTo {
    /// That colleague, or nobody.
    Operator(OperatorId),
    /// Only holders of some of the need's expertise: a transfer "to whoever
    /// holds Technical" that lands with a non-expert has done the wrong thing.
    Holders,
    /// Whom the cascade picks.
    Anyone,
}

impl Handler<HandOver> for RouterActor {
    type Result = Result<Assignment, ConversationError>;

    fn handle(&mut self, msg: HandOver, ctx: &mut Context<Self>) -> Self::Result {
        let members: Vec<OperatorId> = match self.open.get(&msg.conversation) {
            Some(open) if open.members.contains(&msg.from) => open.members.iter().copied().collect(),
            _ => return Err(ConversationError::NotMember),
        };
        let pick = {
            let directory = self.core.directory.read();
            let Some(channel) = directory.channel(msg.channel) else { return Err(ConversationError::NobodyFree) };
            let candidates = candidates(&directory, channel, &self.operators, &members);
            match msg.to {
                HandTo::Operator(to) => candidates
                    .iter()
                    .any(|c| c.id == to)
                    .then_some(Pick { operator: to, rule: Rule::Transferred, candidates: 1 })
                    .ok_or(ConversationError::CannotTake(to))?,
                HandTo::Holders | HandTo::Anyone => {
                    let held = ExpertiseSet::of(&msg.need.expertise);
                    let holders_only = msg.to == HandTo::Holders;
                    let eligible = candidates.iter().copied().filter(|c| !holders_only || c.profile.holds_any(&held));
                    let refused = if holders_only { ConversationError::NoHolderFree } else { ConversationError::NobodyFree };
                    pick_operator(&msg.need.wanted(None, channel.options.routing_order), eligible).ok_or(refused)?
                }
            }
        };
        let assignment = self.move_over(
            &msg.conversation,
            msg.channel,
            msg.from,
            Pick { rule: Rule::Transferred, ..pick },
            &msg.need,
            LeaveReason::Transferred,
        );
        self.drain(msg.channel, ctx);
        Ok(assignment)
    }
}

/// The members of an open livechat changed (join, invite, leave): loads follow.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MembersChanged {
    pub conversation: ConversationId,
    pub channel: ChannelId,
    pub members: Vec<OperatorId>,
}

impl Handler<MembersChanged> for RouterActor {
    type Result = ();

    fn handle(&mut self, msg: MembersChanged, ctx: &mut Context<Self>) {
        let new: BTreeSet<OperatorId> = msg.members.into_iter().collect();
        let old = match self.open.get_mut(&msg.conversation) {
            Some(open) => std::mem::replace(&mut open.members, new.clone()),
            None => {
                self.open.insert(msg.conversation, Open { channel: msg.channel, members: new.clone() });
                BTreeSet::new()
            }
        };
        for &added in new.difference(&old) {
            self.add_load(added, msg.channel);
        }
        let removed: Vec<OperatorId> = old.difference(&new).copied().collect();
        for &gone in &removed {
            self.remove_load(gone, msg.channel);
        }
        if !removed.is_empty() {
            self.drain(msg.channel, ctx);
        }
    }
}

/// A conversation ended: it leaves the queue and the board, and frees capacity.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ConversationClosed {
    pub conversation: ConversationId,
    pub channel: Option<ChannelId>,
}

impl Handler<ConversationClosed> for RouterActor {
    type Result = ();

    fn handle(&mut self, msg: ConversationClosed, ctx: &mut Context<Self>) {
        if let Some(channel) = msg.channel {
            let queue = self.queues.entry(channel).or_default();
            if let Some(i) = queue.iter().position(|w| w.conversation == msg.conversation) {
                queue.remove(i);
                self.announce_positions(channel);
                self.core.metrics.queue_length.dec();
            }
        }
        if let Some(open) = self.open.remove(&msg.conversation) {
            for member in open.members {
                self.remove_load(member, open.channel);
            }
            self.drain(open.channel, ctx);
        }
        if self.board.remove(&msg.conversation).is_some() {
            self.push_boards_soon(ctx);
        }
    }
}

/// A conversation entered, changed on, or left the board (`None`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct BoardChanged {
    pub conversation: ConversationId,
    pub entry: Option<BoardEntry>,
}

impl Handler<BoardChanged> for RouterActor {
    type Result = ();

    fn handle(&mut self, msg: BoardChanged, ctx: &mut Context<Self>) {
        let changed = match msg.entry {
            Some(entry) => {
                self.board.insert(msg.conversation, entry);
                true
            }
            None => self.board.remove(&msg.conversation).is_some(),
        };
        if changed {
            self.push_boards_soon(ctx);
        }
    }
}

/// A directory change is durable and in place (sent by the Hub for every
/// change): queues drain if it created a candidate (expertise gained,
/// `max_sessions` raised, an operator added to a channel), stars move,
/// deleted expertise stops being wanted, deactivated operators' chats move on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DirectoryChanged(pub DirectoryDiff);

impl Handler<DirectoryChanged> for RouterActor {
    type Result = ();

    fn handle(&mut self, DirectoryChanged(diff): DirectoryChanged, ctx: &mut Context<Self>) {
        {
            let directory = self.core.directory.read();
            for (&id, live) in &mut self.operators {
                live.refresh_profile(id, &directory);
            }
        }
        for waiting in self.queues.values_mut().flatten() {
            for expertise in &diff.expertise_deleted {
                waiting.need.expertise.remove(expertise);
            }
        }
        for channel in &diff.channels_deleted {
            self.previous.remove(channel);
        }
        for &operator in &diff.deactivated {
            self.pass_on(operator, LeaveReason::Deactivated, |_| true);
        }
        if !diff.expertise_moved.is_empty() && !self.board.is_empty() {
            self.push_boards(Some(&diff.expertise_moved));
        }
        let waiting: Vec<ChannelId> = self.queues.iter().filter(|(_, q)| !q.is_empty()).map(|(&c, _)| c).collect();
        for channel in waiting {
            self.drain(channel, ctx);
        }
    }
}

/// Presence and load of every operator the router has seen.
#[derive(Message)]
#[rtype(result = "HashMap<OperatorId, LiveStatus>")]
pub struct ListLive;

impl Handler<ListLive> for RouterActor {
    type Result = MessageResult<ListLive>;

    fn handle(&mut self, _: ListLive, _: &mut Context<Self>) -> Self::Result {
        MessageResult(
            self.operators
                .iter()
                .map(|(&id, live)| (id, LiveStatus { presence: live.presence, active_chats: live.active_chats }))
                .collect(),
        )
    }
}

/// The Looking-for-help board with `operator`'s stars.
#[derive(Message)]
#[rtype(result = "Vec<BoardEntry>")]
pub struct ListBoard {
    pub operator: OperatorId,
}

impl Handler<ListBoard> for RouterActor {
    type Result = MessageResult<ListBoard>;

    fn handle(&mut self, msg: ListBoard, _: &mut Context<Self>) -> Self::Result {
        let directory = self.core.directory.read();
        MessageResult(self.board_for(msg.operator, directory.operator(msg.operator).map(|op| &op.expertise_ids)))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::domain::directory::{NewChannel, NewOperator};
    use crate::domain::operator::Role;

    #[derive(Clone, Debug)]
    enum Event {
        /// A visitor (language, country) asks for an operator.
        Route(Option<&'static str>, Option<&'static str>),
        /// The `n`-th open conversation ends.
        Close(usize),
        Presence(usize, Presence),
    }

    fn event(operators: usize) -> impl Strategy<Value = Event> {
        let presence = prop::sample::select(vec![Presence::Online, Presence::Away, Presence::Offline]);
        prop_oneof![
            4 => (prop::option::of(prop::sample::select(vec!["en", "fr"])), prop::option::of(prop::sample::select(vec!["BE", "FR"])))
                .prop_map(|(lang, country)| Event::Route(lang, country)),
            2 => (0..64usize).prop_map(Event::Close),
            1 => (0..operators, presence).prop_map(|(i, p)| Event::Presence(i, p)),
        ]
    }

    fn setting() -> impl Strategy<Value = (Vec<(bool, bool)>, Option<u32>, Vec<Event>)> {
        (1..8usize, prop::option::of(1..4u32))
            .prop_flat_map(|(n, max)| (prop::collection::vec(any::<(bool, bool)>(), n), Just(max), prop::collection::vec(event(n), 0..80)))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Over any sequence of requests, closings and presence changes, the
        /// router's choice is always an online operator of the channel below
        /// `max_sessions`, so no operator ever holds more than `max_sessions`.
        #[test]
        fn routing_never_exceeds_capacity_nor_picks_an_absent_operator((profiles, max, events) in setting()) {
            let mut directory = Directory::default();
            let mut ids = BTreeSet::new();
            for (i, (french, belgian)) in profiles.iter().enumerate() {
                let new = NewOperator {
                    login: format!("op{i}"),
                    name: format!("Op {i}"),
                    password_hash: String::new(),
                    role: Role::User,
                    languages: vec![if *french { "fr" } else { "en" }.to_owned()],
                    country: belgian.then(|| "BE".to_owned()),
                };
                ids.insert(directory.create_operator(new).unwrap().id);
            }
            let new = NewChannel { name: "Web".into(), operator_ids: ids.clone(), max_sessions: max, chatbot_id: None, notify_email: None, options: RoutingOptions::default() };
            let channel = directory.create_channel(new).unwrap().clone();
            let ids: Vec<OperatorId> = ids.into_iter().collect();
            let mut live: HashMap<OperatorId, Live> = ids.iter().map(|&id| (id, Live::default())).collect();
            let mut open: Vec<OperatorId> = Vec::new();
            let nobody = BTreeSet::new();
            for event in events {
                match event {
                    Event::Route(lang, country) => {
                        let found = candidates(&directory, &channel, &live, &[]);
                        let need = Need { previous: None, lang, country, expertise: &nobody, order: RoutingOrder::Odoo };
                        if let Some(pick) = pick_operator(&need, found.iter().copied()) {
                            let chosen = &live[&pick.operator];
                            prop_assert_eq!(chosen.presence, Presence::Online);
                            prop_assert!(max.is_none_or(|m| chosen.per_channel.get(&channel.id).copied().unwrap_or(0) < m));
                            live.get_mut(&pick.operator).unwrap().add_load(channel.id);
                            open.push(pick.operator);
                        } else {
                            // Nobody picked only when nobody online has room.
                            let room = ids.iter().any(|id| {
                                let l = &live[id];
                                l.presence == Presence::Online && max.is_none_or(|m| l.per_channel.get(&channel.id).copied().unwrap_or(0) < m)
                            });
                            prop_assert!(!room);
                        }
                    }
                    Event::Close(n) if !open.is_empty() => {
                        let operator = open.remove(n % open.len());
                        live.get_mut(&operator).unwrap().remove_load(channel.id);
                    }
                    Event::Close(_) => {}
                    Event::Presence(i, presence) => live.get_mut(&ids[i]).unwrap().presence = presence,
                }
                for (id, l) in &live {
                    let load = l.per_channel.get(&channel.id).copied().unwrap_or(0);
                    prop_assert!(max.is_none_or(|m| load <= m), "{:?} holds {} > {:?}", id, load, max);
                    prop_assert_eq!(load as usize, open.iter().filter(|&&o| o == *id).count());
                }
            }
        }
    }
}
