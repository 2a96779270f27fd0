//! The one WebSocket session loop, used by operators and visitors alike:
//! heartbeat, frame limits, the bounded outbound queue, pipelined commands,
//! and closing.
//!
//! A session is a task, not an actor. Actors reach it through a [`SessionTx`]
//! and never wait on it: a full queue means the client is too slow, and the
//! session is told to close instead of stalling the actor.
//!
//! Commands are pipelined (API.md v1.1): a frame is dispatched to its actor as
//! soon as it is read, without waiting for the durability of the one before,
//! and up to [`MAX_IN_FLIGHT`] answers are awaited at once; they are written
//! in the order the frames arrived. Before, each command waited for its
//! journal write before the next frame was read, so one socket serving many
//! conversations relayed a third of what as many sockets did (issue 14).

pub mod operator;
pub mod outbound;
pub mod protocol;
pub mod visitor;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, ProtocolError};
use bytestring::ByteString;
use futures_util::stream::{FuturesOrdered, StreamExt};
use futures_util::task::noop_waker_ref;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;

use crate::config::WsConfig;
use crate::domain::conversation::Message;
use crate::error::ApiError;
use crate::hub::Hub;
use crate::metrics::{Metrics, SocketKind};
use outbound::{session_channel, SessionRx, SessionTx, Slot, StopReason};
use protocol::{Frame, RefOnly, Reply, MAX_REF_CHARS};

impl<E> SessionIo<E> {
    /// Everything to open a session on `req`: a connection slot (503 at the cap),
    /// the WebSocket handshake, and the outbound queue. Returns the upgrade
    /// response, the session's I/O, and the queue's feeding half for the actors.
    ///
    /// # Errors
    /// `OverCapacity` at the connection cap, `BadRequest` when `req` is not an upgrade.
    pub fn open(
        hub: &Hub,
        role: SocketKind,
        req: &HttpRequest,
        body: web::Payload,
    ) -> Result<(HttpResponse, SessionIo<E>, SessionTx<E>), ApiError> {
        let slot = hub.open_slot(role)?;
        let (response, socket, stream) = actix_ws::handle(req, body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let capacity = match role {
            SocketKind::Agent => hub.ws_config().agent_queue,
            SocketKind::Visitor => hub.ws_config().visitor_queue,
        };
        let (tx, rx) = session_channel(capacity);
        let io = SessionIo {
            socket,
            stream,
            rx,
            config: hub.ws_config().clone(),
            shutdown: hub.shutdown_signal(),
            metrics: hub.metrics().clone(),
            slot,
        };
        Ok((response, io, tx))
    }
}

/// What a successful command sends back: events to write first (a replay),
/// then the `ack`, carrying the stored message for a `send`.
pub struct Ack<E> {
    pub replay: Vec<E>,
    pub message: Option<Message>,
}

impl<E> Ack<E> {
    pub fn empty() -> Ack<E> {
        Ack { replay: Vec::new(), message: None }
    }

    /// The ack of a `send`: the stored message (none when nothing was stored).
    pub fn message(message: Option<Message>) -> Ack<E> {
        Ack { replay: Vec::new(), message }
    }
}

/// The role-specific part of a session: how it executes one command.
///
/// Sessions run on one worker thread each, so the futures need not be `Send`.
/// Several run at once (pipelining), hence `&self`.
#[allow(async_fn_in_trait)]
pub trait CommandHandler {
    type Command: DeserializeOwned;
    type Event: Serialize;

    /// Executes `command`; `reference` is the frame's `ref`, which makes a `send` idempotent.
    ///
    /// The command must reach its actor by the first `await` that waits
    /// (the session polls the future once when the frame arrives), so that
    /// a socket's commands are applied in the order they were sent.
    ///
    /// # Errors
    /// Any `ApiError`; it is answered as an `error` frame and the session goes on.
    async fn handle(&self, command: Self::Command, reference: Option<&str>) -> Result<Ack<Self::Event>, ApiError>;

    /// Whether events queued for the session must wait until this command is
    /// answered: a `resume` replays what was missed *before* live events.
    fn holds_events(_command: &Self::Command) -> bool {
        false
    }
}

/// Most commands of one socket awaiting their answers at once; beyond it the
/// session reads no further frame until the oldest is answered, so a client
/// cannot queue unbounded work.
pub const MAX_IN_FLIGHT: usize = 64;

/// What one frame comes to, written when every earlier frame's answer has been.
struct Answer<E> {
    /// Events before the reply (a replay).
    replay: Vec<E>,
    /// `ack` or `error`; none for a successful command without `ref`.
    reply: Option<Reply>,
    /// Whether queued events were held back for it ([`CommandHandler::holds_events`]).
    held_events: bool,
}

type InFlight<'h, E> = Pin<Box<dyn Future<Output = Answer<E>> + 'h>>;

/// An answer that needs no waiting (a frame refused before reaching an actor).
fn at_once<'h, E: 'h>(reply: Reply) -> InFlight<'h, E> {
    Box::pin(std::future::ready(Answer { replay: Vec::new(), reply: Some(reply), held_events: false }))
}

/// Everything a session needs besides its role-specific handler.
pub struct SessionIo<E> {
    pub socket: actix_ws::Session,
    pub stream: actix_ws::MessageStream,
    pub rx: SessionRx<E>,
    pub config: WsConfig,
    pub shutdown: watch::Receiver<bool>,
    pub metrics: Arc<Metrics>,
    pub slot: Slot,
}

fn close(code: CloseCode, description: impl Into<String>) -> Option<CloseReason> {
    Some(CloseReason { code, description: Some(description.into()) })
}

/// The Close frame for a session the actors ended.
fn stopped(reason: StopReason) -> Option<CloseReason> {
    match reason {
        StopReason::TooSlow => close(CloseCode::Policy, "too slow: outbound queue full"),
        StopReason::Deactivated => close(CloseCode::Policy, "account deactivated"),
        StopReason::Erased => close(CloseCode::Normal, "visitor erased"),
    }
}

/// The connection can no longer be written to: closed, or stalled past the limit.
struct Gone;

/// Writes one JSON frame. A client that has not made room for it within
/// `limit` is treated as gone, so a stalled reader can never pin the session.
async fn write<T: Serialize>(socket: &mut actix_ws::Session, value: &T, limit: Duration) -> Result<(), Gone> {
    // unwrap: our event and reply types serialise infallibly (no maps with non-string keys).
    write_text(socket, serde_json::to_string(value).unwrap().into(), limit).await
}

async fn write_text(socket: &mut actix_ws::Session, text: ByteString, limit: Duration) -> Result<(), Gone> {
    match tokio::time::timeout(limit, socket.text(text)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(actix_ws::Closed)) | Err(_) => Err(Gone),
    }
}

/// Runs a session until the client leaves, times out, is too slow, breaks the
/// protocol, or the server shuts down. `greeting` is written before anything queued.
pub async fn run<H: CommandHandler>(io: SessionIo<H::Event>, handler: H, greeting: Vec<H::Event>) {
    let SessionIo { mut socket, stream, mut rx, config, mut shutdown, metrics, slot } = io;
    let mut stream = stream.max_frame_size(config.max_frame_bytes).aggregate_continuations().max_continuation_size(config.max_frame_bytes);
    let limit = config.client_timeout;
    for event in &greeting {
        if write(&mut socket, event, limit).await.is_err() {
            return;
        }
    }
    let mut heartbeat = tokio::time::interval(config.heartbeat_interval);
    let mut last_seen = Instant::now();
    let mut in_flight: FuturesOrdered<InFlight<'_, H::Event>> = FuturesOrdered::new();
    // In-flight commands that hold queued events back (a `resume`).
    let mut holding = 0usize;
    // The actors dropped the queue: right after telling the session to stop
    // (an erasure), or when they are gone (the server stopping). The session
    // ends once every answer is written, with the stop's reason if one was given.
    let mut queue_ended = false;
    let reason = loop {
        if queue_ended && in_flight.is_empty() {
            break rx.stop.given().map_or_else(|| close(CloseCode::Away, "server shutting down"), stopped);
        }
        tokio::select! {
            () = rx.stop.notify.notified() => break stopped(rx.stop.reason()),
            _ = shutdown.changed() => break close(CloseCode::Away, "server shutting down"),
            queued = rx.rx.recv(), if holding == 0 && !queue_ended => {
                let Some(timed) = queued else {
                    queue_ended = true;
                    continue;
                };
                // A full queue signals `stop` while we may be stuck writing: race the two.
                tokio::select! {
                    res = write_text(&mut socket, timed.json(), limit) => if res.is_err() { break None },
                    () = rx.stop.notify.notified() => break stopped(rx.stop.reason()),
                }
                metrics.delivery_latency.observe(timed.created.elapsed().as_secs_f64());
            }
            Some(answer) = in_flight.next(), if !in_flight.is_empty() => {
                holding -= usize::from(answer.held_events);
                if write_answer(&mut socket, &answer, limit).await.is_err() {
                    break None;
                }
            }
            _ = heartbeat.tick() => {
                if last_seen.elapsed() > config.client_timeout {
                    break close(CloseCode::Normal, "heartbeat timeout");
                }
                if !matches!(tokio::time::timeout(limit, socket.ping(b"")).await, Ok(Ok(()))) {
                    break None;
                }
            }
            incoming = stream.recv(), if in_flight.len() < MAX_IN_FLIGHT => {
                let msg = match incoming {
                    None => break None,
                    Some(Err(ProtocolError::Overflow)) => {
                        break close(CloseCode::Size, format!("frame exceeds {} bytes", config.max_frame_bytes));
                    }
                    Some(Err(e)) => break close(CloseCode::Protocol, e.to_string()),
                    Some(Ok(msg)) => msg,
                };
                last_seen = Instant::now();
                match msg {
                    AggregatedMessage::Text(text) => {
                        let answer = dispatch(&handler, &text);
                        holding += usize::from(answer.1);
                        in_flight.push_back(answer.0);
                    }
                    AggregatedMessage::Binary(_) => {
                        let error = ApiError::BadRequest("binary frames are not supported: send JSON text frames".into());
                        in_flight.push_back(at_once(Reply::Error { reference: None, error: error.detail() }));
                    }
                    AggregatedMessage::Ping(bytes) => {
                        if socket.pong(&bytes).await.is_err() {
                            break None;
                        }
                    }
                    AggregatedMessage::Pong(_) => {}
                    AggregatedMessage::Close(_) => break None,
                }
            }
        }
    };
    drop(slot);
    // Bounded too: closing a stalled connection must not hang the task.
    let _ = tokio::time::timeout(limit, socket.close(reason)).await;
}

/// Parses and checks a client frame, or gives the `error` reply for it (with
/// the frame's `ref` when one could be read), so a bad frame never ends the session.
pub fn decode<C: DeserializeOwned>(text: &str) -> Result<Frame<C>, Box<Reply>> {
    let frame = match serde_json::from_str::<Frame<C>>(text) {
        Ok(frame) => frame,
        Err(e) => {
            let reference =
                serde_json::from_str::<RefOnly>(text).ok().and_then(|r| r.reference).filter(|r| r.chars().count() <= MAX_REF_CHARS);
            let error = ApiError::BadRequest(format!("malformed frame: {e}"));
            return Err(Box::new(Reply::Error { reference, error: error.detail() }));
        }
    };
    if frame.reference.as_ref().is_some_and(|r| r.chars().count() > MAX_REF_CHARS) {
        let error = ApiError::BadRequest(format!("`ref` must be at most {MAX_REF_CHARS} characters"));
        return Err(Box::new(Reply::Error { reference: None, error: error.detail() }));
    }
    Ok(frame)
}

/// Parses one text frame and starts its command; answers the command's
/// answer-to-be and whether it holds queued events back.
///
/// The command's future is polled once here, so it reaches its actor now,
/// before any later frame's command does: that is what keeps a socket's
/// commands in order while their answers are awaited together.
fn dispatch<'h, H: CommandHandler>(handler: &'h H, text: &str) -> (InFlight<'h, H::Event>, bool) {
    let frame = match decode::<H::Command>(text) {
        Ok(frame) => frame,
        Err(reply) => return (at_once(*reply), false),
    };
    let held_events = H::holds_events(&frame.command);
    let mut answer: InFlight<'h, H::Event> = Box::pin(async move {
        let (replay, reply) = match handler.handle(frame.command, frame.reference.as_deref()).await {
            Ok(ack) => (ack.replay, frame.reference.map(|reference| Reply::Ack { reference, message: ack.message })),
            Err(error) => (Vec::new(), Some(Reply::Error { reference: frame.reference, error: error.detail() })),
        };
        Answer { replay, reply, held_events }
    });
    // The session's own waker takes over when `FuturesOrdered` polls it next.
    if let Poll::Ready(done) = answer.as_mut().poll(&mut Context::from_waker(noop_waker_ref())) {
        answer = Box::pin(std::future::ready(done));
    }
    (answer, held_events)
}

/// Writes a command's replay, then its `ack` or `error`.
async fn write_answer<E: Serialize>(socket: &mut actix_ws::Session, answer: &Answer<E>, limit: Duration) -> Result<(), Gone> {
    for event in &answer.replay {
        write(socket, event, limit).await?;
    }
    match &answer.reply {
        Some(reply) => write(socket, reply, limit).await,
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    mod decoding {
        use proptest::prelude::*;
        use serde_json::{json, Value};

        use super::super::protocol::{AgentCommand, Reply, VisitorCommand};
        use super::super::{decode, MAX_REF_CHARS};

        /// JSON shaped like our frames (known keys, any values), which reaches deeper than random text.
        fn frame_like() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(|f| json!(f)),
                ".{0,80}".prop_map(Value::from),
                prop::sample::select(vec!["send", "answer", "typing", "join", "resume", "presence", "set_status", "online", "need_help"])
                    .prop_map(Value::from),
            ];
            let value = leaf.prop_recursive(3, 24, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                    prop::collection::btree_map(".{0,8}", inner, 0..4).prop_map(|m| json!(m))
                ]
            });
            let keys = prop::sample::select(vec![
                "type",
                "ref",
                "body",
                "conversation_id",
                "step_id",
                "answer_id",
                "after_id",
                "status",
                "presence",
                "x",
            ]);
            prop::collection::btree_map(keys, value, 0..6).prop_map(|m| json!(m))
        }

        fn check(text: &str) {
            for result in [decode::<AgentCommand>(text).map(|f| f.reference), decode::<VisitorCommand>(text).map(|f| f.reference)] {
                match result.map_err(|reply| *reply) {
                    Ok(reference) => assert!(reference.is_none_or(|r| r.chars().count() <= MAX_REF_CHARS)),
                    Err(Reply::Error { reference, error }) => {
                        assert_eq!(error.code, "bad_request");
                        assert!(reference.is_none_or(|r| r.chars().count() <= MAX_REF_CHARS));
                    }
                    Err(Reply::Ack { .. }) => panic!("a decode error is never an ack"),
                }
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Any text at all: an answer, never a panic.
            #[test]
            fn arbitrary_text_never_panics(text in ".{0,300}") {
                check(&text);
            }

            #[test]
            fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
                check(&String::from_utf8_lossy(&bytes));
            }

            #[test]
            fn frame_shaped_json_never_panics(value in frame_like()) {
                check(&value.to_string());
            }
        }
    }
}
