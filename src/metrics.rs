//! Prometheus metrics, encoded by `prometheus-client` for `GET /metrics`.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::domain::conversation::LeaveReason;
use std::sync::atomic::AtomicU64;

/// Which WebSocket endpoint a connection came through.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum SocketKind {
    Agent,
    Visitor,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleLabel {
    pub role: SocketKind,
}

/// Why the router passed a conversation on.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Reason {
    Unanswered,
    Offline,
    Deactivated,
    Transferred,
}

impl From<LeaveReason> for Reason {
    fn from(reason: LeaveReason) -> Reason {
        match reason {
            LeaveReason::Unanswered => Reason::Unanswered,
            LeaveReason::Offline => Reason::Offline,
            LeaveReason::Deactivated => Reason::Deactivated,
            LeaveReason::Transferred => Reason::Transferred,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: Reason,
}

/// Routing outcomes per channel and wanted expertise (`none` when the visitor wanted none).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoutingLabels {
    pub channel: String,
    pub expertise: String,
}

/// The server's metrics; cheap to update from any thread (atomics inside).
pub struct Metrics {
    registry: Registry,
    pub ws_connections: Family<RoleLabel, Gauge>,
    pub queue_length: Gauge,
    pub assignments: Counter,
    /// Forward to operator → assignment decided.
    pub assignment_latency: Histogram,
    pub messages: Counter,
    /// Event created → written to a recipient's socket.
    pub delivery_latency: Histogram,
    pub reassignments: Family<ReasonLabel, Counter>,
    /// Assignments per channel and wanted expertise, and how many went to an operator holding it.
    pub routed: Family<RoutingLabels, Counter>,
    pub routed_to_expert: Family<RoutingLabels, Counter>,
    /// Visitor arrival → operator assigned, per channel and wanted expertise.
    pub time_to_operator: Family<RoutingLabels, Histogram>,
    /// Set when scraped: how stale a restart from the last snapshot alone would be.
    pub snapshot_age: Gauge<f64, AtomicU64>,
    /// Closed conversations moved to the archive.
    pub archived: Counter,
    /// Archive writes that failed (the conversation stays live and is retried).
    pub archive_failures: Counter,
    /// Closed conversations waiting to be archived.
    pub archive_pending: Gauge,
    /// Memory SQLite holds (page caches, the full-text index's buffers), set when scraped.
    pub archive_memory: Gauge,
    /// Mails the SMTP server accepted, and attempts that failed (each retried or, if refused for good, dropped).
    pub mail_sent: Counter,
    pub mail_failures: Counter,
}

/// 50 µs … ~1.6 s: chat latencies of interest span these orders of magnitude.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.000_05, 2.0, 16)
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("switchboard");
        let ws_connections = Family::<RoleLabel, Gauge>::default();
        let queue_length = Gauge::default();
        let assignments = Counter::default();
        let assignment_latency = Histogram::new(latency_buckets());
        let messages = Counter::default();
        let delivery_latency = Histogram::new(latency_buckets());
        let snapshot_age = Gauge::<f64, AtomicU64>::default();
        let reassignments = Family::<ReasonLabel, Counter>::default();
        let routed = Family::<RoutingLabels, Counter>::default();
        let routed_to_expert = Family::<RoutingLabels, Counter>::default();
        let (archived, archive_failures, archive_pending, archive_memory) =
            (Counter::default(), Counter::default(), Gauge::default(), Gauge::default());
        let (mail_sent, mail_failures) = (Counter::default(), Counter::default());
        let time_to_operator =
            Family::<RoutingLabels, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(0.01, 2.0, 16)));
        registry.register("ws_connections", "Open WebSocket connections", ws_connections.clone());
        registry.register("queue_length", "Conversations waiting for an operator", queue_length.clone());
        registry.register("assignments", "Conversations given to an operator", assignments.clone());
        registry.register("assignment_latency_seconds", "Forward to operator until assigned", assignment_latency.clone());
        registry.register("messages", "Chat messages stored", messages.clone());
        registry.register("delivery_latency_seconds", "Event created until written to a socket", delivery_latency.clone());
        registry.register("snapshot_age_seconds", "Time since the last snapshot was written", snapshot_age.clone());
        registry.register("reassignments", "Conversations passed on by the router", reassignments.clone());
        registry.register("routed", "Assignments per channel and wanted expertise", routed.clone());
        registry.register("routed_to_expert", "Assignments to an operator holding the wanted expertise", routed_to_expert.clone());
        registry.register("time_to_operator_seconds", "Visitor arrival until an operator is assigned", time_to_operator.clone());
        registry.register("archived", "Closed conversations moved to the archive", archived.clone());
        registry.register("archive_failures", "Archive writes that failed and will be retried", archive_failures.clone());
        registry.register("archive_pending", "Closed conversations waiting to be archived", archive_pending.clone());
        registry.register("archive_memory_bytes", "Memory held by SQLite (page caches, index buffers)", archive_memory.clone());
        registry.register("mail_sent", "Mails the SMTP server accepted", mail_sent.clone());
        registry.register("mail_failures", "Mail attempts that failed (retried with back-off)", mail_failures.clone());
        Metrics {
            mail_sent,
            mail_failures,
            archived,
            archive_failures,
            archive_pending,
            archive_memory,
            registry,
            ws_connections,
            queue_length,
            assignments,
            assignment_latency,
            messages,
            delivery_latency,
            snapshot_age,
            reassignments,
            routed,
            routed_to_expert,
            time_to_operator,
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // unwrap: writing to a String cannot fail.
        prometheus_client::encoding::text::encode(&mut out, &self.registry).unwrap();
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
