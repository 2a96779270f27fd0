//! The queue between actors and a WebSocket session: what actors hold to
//! reach a session ([`SessionTx`]), the shared serialised event ([`Timed`]),
//! and the connection cap. A leaf: actors depend on it, it depends on nothing
//! of ours, so the actors never import the session loop.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytestring::ByteString;
use prometheus_client::metrics::gauge::Gauge;
use serde::Serialize;
use tokio::sync::{mpsc, Notify};

/// An event with the instant it was created, so delivery latency can be measured
/// at the moment it reaches the socket.
pub struct Timed<E> {
    pub event: E,
    pub created: Instant,
    /// The session whose command caused it, which is not sent it: that
    /// session's `ack` carries the same message (API.md v1.1), so the echo
    /// would be a third frame per chat message for nothing.
    pub origin: Option<SessionId>,
    /// The JSON text, made by the first session that writes it and shared by
    /// the others: an event fanned out to a hundred tabs is serialised once.
    json: OnceLock<ByteString>,
}

impl<E: Serialize> Timed<E> {
    pub fn json(&self) -> ByteString {
        // unwrap: our event types serialise infallibly (no maps with non-string keys).
        self.json.get_or_init(|| serde_json::to_string(&self.event).unwrap().into()).clone()
    }
}

/// Wraps `event` for delivery to any number of sessions.
pub fn timed<E>(event: E) -> Arc<Timed<E>> {
    timed_from(event, None)
}

/// Wraps `event` for delivery to every session but `origin`, the one whose command caused it.
pub fn timed_from<E>(event: E, origin: Option<SessionId>) -> Arc<Timed<E>> {
    Arc::new(Timed { event, created: Instant::now(), origin, json: OnceLock::new() })
}

/// Names one session (one socket) for as long as the process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionId(u64);

/// Why the server ends a session from the actors' side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The client let its outbound queue fill: it cannot keep up.
    TooSlow,
    /// The operator was deactivated: their connections end at once.
    Deactivated,
    /// The visitor was erased (a data-subject request): nothing is left to show.
    Erased,
}

/// The signal from actors to a session task that it must end, with the first reason given.
#[derive(Default)]
pub(super) struct Stop {
    pub(super) notify: Notify,
    reason: OnceLock<StopReason>,
}

impl Stop {
    pub(super) fn reason(&self) -> StopReason {
        self.given().unwrap_or(StopReason::TooSlow)
    }

    /// The reason, if the session was told to stop.
    pub(super) fn given(&self) -> Option<StopReason> {
        self.reason.get().copied()
    }
}

/// The feeding half of one session's outbound queue.
pub struct SessionTx<E> {
    tx: mpsc::Sender<Arc<Timed<E>>>,
    stop: Arc<Stop>,
    id: SessionId,
}

impl<E> Clone for SessionTx<E> {
    fn clone(&self) -> Self {
        SessionTx { tx: self.tx.clone(), stop: self.stop.clone(), id: self.id }
    }
}

impl<E> SessionTx<E> {
    /// Queues `event` without waiting, unless this session caused it (see
    /// [`Timed::origin`]). Returns `false` when the session is gone
    /// or too slow to keep up (it is then told to close); the caller should
    /// forget a session that returned `false`.
    pub fn deliver(&self, event: &Arc<Timed<E>>) -> bool {
        if event.origin == Some(self.id) {
            return true;
        }
        match self.tx.try_send(event.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.stop(StopReason::TooSlow);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Tells the session to close its socket now, for `reason`.
    pub fn stop(&self, reason: StopReason) {
        let _ = self.stop.reason.set(reason);
        self.stop.notify.notify_one();
    }

    /// Whether the session has ended (its socket closed).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Whether both handles feed the same session.
    pub fn same_session(&self, other: &SessionTx<E>) -> bool {
        self.id == other.id
    }

    pub fn id(&self) -> SessionId {
        self.id
    }
}

/// The draining half, owned by the session task.
pub struct SessionRx<E> {
    pub(super) rx: mpsc::Receiver<Arc<Timed<E>>>,
    pub(super) stop: Arc<Stop>,
}

/// A bounded outbound queue of `capacity` events, for a new session.
pub fn session_channel<E>(capacity: usize) -> (SessionTx<E>, SessionRx<E>) {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let id = SessionId(NEXT.fetch_add(1, Ordering::Relaxed));
    let (tx, rx) = mpsc::channel(capacity);
    let stop = Arc::new(Stop::default());
    (SessionTx { tx, stop: stop.clone(), id }, SessionRx { rx, stop })
}

/// Counts open WebSocket connections against the configured cap.
pub struct ConnectionSlots {
    open: AtomicUsize,
    max: usize,
}

/// One open connection; dropping it frees the slot.
pub struct Slot {
    slots: Arc<ConnectionSlots>,
    gauge: Gauge,
}

impl ConnectionSlots {
    pub fn new(max: usize) -> Arc<ConnectionSlots> {
        Arc::new(ConnectionSlots { open: AtomicUsize::new(0), max })
    }

    /// A slot, or `None` when the cap is reached (existing connections are unaffected).
    pub fn acquire(self: &Arc<Self>, gauge: Gauge) -> Option<Slot> {
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        gauge.inc();
        Some(Slot { slots: self.clone(), gauge })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gauge.dec();
        self.slots.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_full_queue_refuses_and_tells_the_session_to_close() {
        let (tx, rx) = session_channel::<u32>(2);
        let event = timed(7);
        assert!(tx.deliver(&event));
        assert!(tx.deliver(&event));
        assert!(!tx.deliver(&event), "third event does not fit");
        tokio::time::timeout(Duration::from_secs(1), rx.stop.notify.notified()).await.expect("stop signalled");
        assert_eq!(rx.stop.reason(), StopReason::TooSlow);
        drop(rx);
        assert!(!tx.deliver(&event), "a closed session refuses too");
    }

    #[tokio::test]
    async fn the_first_stop_reason_wins() {
        let (tx, rx) = session_channel::<u32>(2);
        tx.stop(StopReason::Deactivated);
        tx.stop(StopReason::TooSlow);
        tokio::time::timeout(Duration::from_secs(1), rx.stop.notify.notified()).await.expect("stop signalled");
        assert_eq!(rx.stop.reason(), StopReason::Deactivated);
    }
}
