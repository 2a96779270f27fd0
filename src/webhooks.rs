//! Webhook delivery: events are queued in the archive's `webhook_outbox`
//! (durable once there), then each webhook's own task POSTs them, signed,
//! oldest first and in order per conversation, retrying with exponential
//! back-off for 24 hours. A slow or dead receiver holds up only its own task:
//! chat and acknowledgements never wait for a webhook, nor does one webhook
//! for another.
//!
//! At-least-once: a delivery leaves the outbox after a 2xx (or after 24 h of
//! failures); a crash between the receiver's answer and that deletion sends it
//! again. An event is queued once its change is durable in the journal, through
//! an in-memory intake: a crash in the few milliseconds between the two loses
//! that event (README, "Webhooks").

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch, Notify};

use crate::archive::{Archive, Attempt, NewDelivery, QueuedDelivery, Tried};
use crate::domain::time::Timestamp;
use crate::domain::webhook::{self, is_internal, Webhook, WebhookEvent};
use crate::domain::ConversationId;

/// A delivery is retried for this long, then given up (and logged as such).
const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Back-off: 1 s, 2 s, 4 s, … at most an hour between tries.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Deliveries fetched per look at the outbox: at most one per conversation
/// (its oldest pending one), so they go out together, and their tries are
/// logged in one transaction. Large enough that a backlog drains far faster
/// than chat fills it (BENCHMARKS.md, "Webhook backlog").
const BATCH: usize = 128;
/// Events written to the outbox per transaction at most.
const INTAKE_BATCH: usize = 512;

/// The body every receiver gets: `{id, event, at, data}`.
#[derive(Serialize)]
struct Body<'a> {
    id: &'a str,
    event: &'static str,
    at: Timestamp,
    data: &'a serde_json::Value,
}

/// What the intake task is sent: an event, or a request to say when
/// everything sent before is in the outbox.
enum Intake {
    Event(Event),
    Flush(oneshot::Sender<()>),
}

struct Event {
    event: WebhookEvent,
    conversation: Option<ConversationId>,
    data: serde_json::Value,
    /// Only this webhook (a test event); `None`: every subscribed one.
    only: Option<u64>,
    name: &'static str,
}

/// The webhooks of the server and their delivery.
pub struct Webhooks {
    hooks: RwLock<Vec<Webhook>>,
    /// One bit per `WebhookEvent` someone subscribes to: the hot path's check.
    wanted: AtomicU8,
    intake: mpsc::UnboundedSender<Intake>,
    intake_rx: Mutex<Option<mpsc::UnboundedReceiver<Intake>>>,
    /// Per webhook: wakes its delivery task.
    wakers: Mutex<HashMap<u64, Arc<Notify>>>,
    pub allow_private: bool,
    timeout: Duration,
}

fn bit(event: WebhookEvent) -> u8 {
    1 << WebhookEvent::ALL.iter().position(|e| *e == event).unwrap_or(0)
}

/// The hex HMAC-SHA256 of `body` with `secret`, as `X-Switchboard-Signature` carries it after `sha256=`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    hex::encode(aws_lc_rs::hmac::sign(&key, body).as_ref())
}

fn backoff(attempts: u32) -> Duration {
    Duration::from_secs(1).saturating_mul(1 << attempts.saturating_sub(1).min(20)).min(MAX_BACKOFF)
}

impl Webhooks {
    pub fn new(hooks: Vec<Webhook>, allow_private: bool, timeout: Duration) -> Webhooks {
        let (intake, intake_rx) = mpsc::unbounded_channel();
        let webhooks = Webhooks {
            hooks: RwLock::new(Vec::new()),
            wanted: AtomicU8::new(0),
            intake,
            intake_rx: Mutex::new(Some(intake_rx)),
            wakers: Mutex::new(HashMap::new()),
            allow_private,
            timeout,
        };
        webhooks.replace_all(hooks);
        webhooks
    }

    fn replace_all(&self, hooks: Vec<Webhook>) {
        let wanted = hooks.iter().flat_map(|h| h.events.iter()).fold(0, |bits, e| bits | bit(*e));
        *self.hooks.write() = hooks;
        self.wanted.store(wanted, Ordering::Release);
    }

    pub fn list(&self) -> Vec<Webhook> {
        self.hooks.read().clone()
    }

    pub fn get(&self, id: u64) -> Option<Webhook> {
        self.hooks.read().iter().find(|h| h.id == id).cloned()
    }

    /// A webhook was stored (new or changed): it takes effect for the next event.
    pub fn saved(&self, hook: Webhook) {
        let mut hooks = self.list();
        hooks.retain(|h| h.id != hook.id);
        hooks.push(hook);
        hooks.sort_by_key(|h| h.id);
        self.replace_all(hooks);
    }

    pub fn deleted(&self, id: u64) {
        let mut hooks = self.list();
        hooks.retain(|h| h.id != id);
        self.replace_all(hooks);
        if let Some(waker) = self.wakers.lock().get(&id) {
            waker.notify_one();
        }
    }

    /// Whether anyone subscribes to `event`: callers skip building the data otherwise.
    pub fn wants(&self, event: WebhookEvent) -> bool {
        self.wanted.load(Ordering::Acquire) & bit(event) != 0
    }

    /// Queues `event` for every webhook subscribed to it. Never blocks: the
    /// outbox write happens on the intake task.
    pub fn emit(&self, event: WebhookEvent, conversation: Option<ConversationId>, data: impl Serialize) {
        if !self.wants(event) {
            return;
        }
        let Ok(data) = serde_json::to_value(data) else { return };
        let _ = self.intake.send(Intake::Event(Event { event, conversation, data, only: None, name: event.name() }));
    }

    /// Resolves once every event emitted before is in the outbox (or after
    /// `wait`): the last step of a graceful stop, so a restart loses none.
    pub async fn flush(&self, wait: Duration) {
        let (tx, rx) = oneshot::channel();
        if self.intake.send(Intake::Flush(tx)).is_ok() {
            let _ = tokio::time::timeout(wait, rx).await;
        }
    }

    /// Queues a `webhook.test` event for one webhook (the admin's "send test event").
    pub fn test(&self, id: u64) {
        let data = serde_json::json!({ "webhook_id": id, "message": "A test event from Switchboard" });
        let test = Event { event: WebhookEvent::ConversationCreated, conversation: None, data, only: Some(id), name: "webhook.test" };
        let _ = self.intake.send(Intake::Event(test));
    }

    fn waker(&self, id: u64) -> (Arc<Notify>, bool) {
        let mut wakers = self.wakers.lock();
        let fresh = !wakers.contains_key(&id);
        (wakers.entry(id).or_default().clone(), fresh)
    }

    /// Runs delivery until `stopping` says so, and the intake for as long as
    /// the process does (events emitted while stopping are still written).
    pub async fn run(self: Arc<Self>, archive: Arc<Archive>, stopping: watch::Receiver<bool>) {
        let Some(mut intake) = self.intake_rx.lock().take() else { return };
        let client = match client(self.allow_private, self.timeout) {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(%error, "webhooks are off: no HTTP client");
                return;
            }
        };
        for hook in self.list() {
            self.clone().start_worker(hook.id, archive.clone(), client.clone(), stopping.clone());
        }
        while let Some(first) = intake.recv().await {
            let mut events = Vec::new();
            let mut flushed = Vec::new();
            let mut next = Some(first);
            while let Some(item) = next.take() {
                match item {
                    Intake::Event(event) => events.push(event),
                    Intake::Flush(done) => flushed.push(done),
                }
                if events.len() < INTAKE_BATCH {
                    next = intake.try_recv().ok();
                }
            }
            self.write(events, &archive, &client, &stopping).await;
            for done in flushed {
                let _ = done.send(());
            }
        }
    }

    /// Queues `events` in the outbox and wakes the webhooks they go to.
    async fn write(
        self: &Arc<Self>,
        events: Vec<Event>,
        archive: &Arc<Archive>,
        client: &reqwest::Client,
        stopping: &watch::Receiver<bool>,
    ) {
        let deliveries = self.deliveries(events);
        if deliveries.is_empty() {
            return;
        }
        let hooks: Vec<u64> = deliveries.iter().map(|d| d.webhook_id).collect();
        if let Err(error) = archive.enqueue_deliveries(deliveries).await {
            tracing::error!(%error, "webhook events could not be queued; they are lost");
            return;
        }
        for id in hooks {
            let (waker, fresh) = self.waker(id);
            if fresh && !*stopping.borrow() {
                self.clone().start_worker(id, archive.clone(), client.clone(), stopping.clone());
            }
            waker.notify_one();
        }
    }

    /// One delivery per event and subscribed webhook, each with the event's id and body.
    fn deliveries(&self, events: Vec<Event>) -> Vec<NewDelivery> {
        let hooks = self.hooks.read();
        let mut out = Vec::new();
        for e in events {
            let mut id = [0u8; 12];
            aws_lc_rs::rand::fill(&mut id).unwrap_or_default();
            let event_id = format!("evt_{}", hex::encode(id));
            let body = Body { id: &event_id, event: e.name, at: Timestamp::now(), data: &e.data };
            let Ok(body) = serde_json::to_string(&body) else { continue };
            let to = hooks.iter().filter(|h| e.only.map_or(h.events.contains(&e.event), |only| h.id == only));
            out.extend(to.map(|h| NewDelivery {
                webhook_id: h.id,
                event_id: event_id.clone(),
                name: e.name,
                conversation_id: e.conversation,
                body: body.clone(),
            }));
        }
        out
    }

    fn start_worker(self: Arc<Self>, id: u64, archive: Arc<Archive>, client: reqwest::Client, stopping: watch::Receiver<bool>) {
        let (waker, _) = self.waker(id);
        actix_rt::spawn(async move { self.work(id, &waker, &archive, &client, stopping).await });
    }

    /// One webhook's task: deliver what is due, then sleep until the next is due or something new comes.
    async fn work(&self, id: u64, waker: &Notify, archive: &Archive, client: &reqwest::Client, mut stopping: watch::Receiver<bool>) {
        loop {
            let Some(hook) = self.get(id) else {
                self.wakers.lock().remove(&id);
                return;
            };
            let due = archive.due_deliveries(id, Timestamp::now(), BATCH).await.unwrap_or_default();
            if !due.is_empty() {
                // Each is the head of its conversation: sending them at once keeps the order per conversation.
                let tried = join_all(due.into_iter().map(|delivery| async {
                    let (attempt, retry_at) = self.attempt(&hook, &delivery, client).await;
                    Tried { delivery, attempt, retry_at }
                }))
                .await;
                if let Err(error) = archive.deliveries_tried(tried).await {
                    tracing::error!(%error, webhook = id, "webhook deliveries could not be recorded");
                }
                continue;
            }
            let wait = match archive.next_delivery_at(id).await {
                Ok(Some(at)) => Duration::from_millis(at.millis_since(Timestamp::now()).max(1)),
                _ => MAX_BACKOFF,
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = waker.notified() => {}
                _ = stopping.changed() => return,
            }
        }
    }

    /// POSTs one delivery; what the log records, and when to retry (none: done or given up).
    async fn attempt(&self, hook: &Webhook, d: &QueuedDelivery, client: &reqwest::Client) -> (Attempt, Option<Timestamp>) {
        let now = Timestamp::now();
        let mut attempt = Attempt {
            event_id: d.event_id.clone(),
            event: d.event.clone(),
            at: now,
            status_code: None,
            error: None,
            attempt: d.attempts + 1,
        };
        let sent = match webhook::check_url(&hook.url, self.allow_private) {
            Err(refused) => Err(refused.to_string()),
            Ok(_) => client
                .post(&hook.url)
                .header("Content-Type", "application/json")
                .header("X-Switchboard-Event", d.event.as_str())
                .header("X-Switchboard-Delivery", d.event_id.as_str())
                .header("X-Switchboard-Signature", format!("sha256={}", signature(&hook.secret, d.body.as_bytes())))
                .body(d.body.clone())
                .send()
                .await
                .map_err(|e| describe(&e)),
        };
        match sent {
            Ok(res) if res.status().is_success() => {
                attempt.status_code = Some(res.status().as_u16());
                return (attempt, None);
            }
            Ok(res) => {
                attempt.status_code = Some(res.status().as_u16());
                attempt.error = Some(format!("the receiver answered {}", res.status()));
            }
            Err(error) => attempt.error = Some(error),
        }
        if now.millis_since(d.created_at) >= GIVE_UP_AFTER.as_millis() as u64 {
            attempt.error = attempt.error.map(|e| format!("{e}; given up after 24 h"));
            tracing::warn!(webhook = hook.id, event = %d.event_id, "webhook delivery given up after 24 h");
            return (attempt, None);
        }
        (attempt, Some(now.plus(backoff(d.attempts + 1))))
    }
}

/// A reqwest error in a few words (its source chain says what really happened).
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() { "timed out".to_owned() } else { error.to_string() };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The HTTP client: no redirects (a redirect could lead inside), a timeout
/// per request, and — unless private targets are allowed — a resolver that
/// drops internal addresses, so a host name cannot point inside either.
fn client(allow_private: bool, timeout: Duration) -> reqwest::Result<reqwest::Client> {
    let builder =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(timeout).user_agent("Switchboard-Webhooks/1");
    if allow_private {
        return builder.build();
    }
    builder.dns_resolver(Arc::new(PublicOnly)).build()
}

/// Resolves host names to their public addresses only.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found.into_iter().filter(|a| !is_internal(a.ip())).collect();
            if public.is_empty() {
                return Err(format!("{} resolves to no public address", name.as_str()).into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_in_hex() {
        // RFC 4231, test case 2.
        assert_eq!(signature("Jefe", b"what do ya want for nothing?"), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn back_off_doubles_up_to_an_hour() {
        assert_eq!((1..=4).map(|n| backoff(n).as_secs()).collect::<Vec<_>>(), [1, 2, 4, 8]);
        assert_eq!(backoff(13), MAX_BACKOFF);
    }
}
