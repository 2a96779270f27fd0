//! The one WebSocket session loop, used by operators and visitors alike:
//! heartbeat, frame limits, the bounded outbound queue, and closing.
//!
//! A session is a task, not an actor. Actors reach it through a [`SessionTx`]
//! and never wait on it: a full queue means the client is too slow, and the
//! session is told to close instead of stalling the actor.

pub mod operator;
pub mod outbound;
pub mod protocol;
pub mod visitor;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, ProtocolError};
use bytestring::ByteString;
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
#[allow(async_fn_in_trait)]
pub trait CommandHandler {
    type Command: DeserializeOwned;
    type Event: Serialize;

    /// Executes `command`; `reference` is the frame's `ref`, which makes a `send` idempotent.
    ///
    /// # Errors
    /// Any `ApiError`; it is answered as an `error` frame and the session goes on.
    async fn handle(&mut self, command: Self::Command, reference: Option<&str>) -> Result<Ack<Self::Event>, ApiError>;
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
pub async fn run<H: CommandHandler>(io: SessionIo<H::Event>, mut handler: H, greeting: Vec<H::Event>) {
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
    let reason = loop {
        tokio::select! {
            () = rx.stop.notify.notified() => break stopped(rx.stop.reason()),
            _ = shutdown.changed() => break close(CloseCode::Away, "server shutting down"),
            queued = rx.rx.recv() => {
                let Some(timed) = queued else { break close(CloseCode::Away, "session replaced") };
                // A full queue signals `stop` while we may be stuck writing: race the two.
                tokio::select! {
                    res = write_text(&mut socket, timed.json(), limit) => if res.is_err() { break None },
                    () = rx.stop.notify.notified() => break stopped(rx.stop.reason()),
                }
                metrics.delivery_latency.observe(timed.created.elapsed().as_secs_f64());
            }
            _ = heartbeat.tick() => {
                if last_seen.elapsed() > config.client_timeout {
                    break close(CloseCode::Normal, "heartbeat timeout");
                }
                if !matches!(tokio::time::timeout(limit, socket.ping(b"")).await, Ok(Ok(()))) {
                    break None;
                }
            }
            incoming = stream.recv() => {
                let msg = match incoming {
                    None => break None,
                    Some(Err(ProtocolError::Overflow)) => {
                        break close(CloseCode::Size, format!("frame exceeds {} bytes", config.max_frame_bytes));
                    }
                    Some(Err(e)) => break close(CloseCode::Protocol, e.to_string()),
                    Some(Ok(msg)) => msg,
                };
                last_seen = Instant::now();
                let res = match msg {
                    AggregatedMessage::Text(text) => on_text(&mut socket, &mut handler, &text, limit).await,
                    AggregatedMessage::Binary(_) => {
                        let error = ApiError::BadRequest("binary frames are not supported: send JSON text frames".into());
                        write(&mut socket, &Reply::Error { reference: None, error: error.detail() }, limit).await
                    }
                    AggregatedMessage::Ping(bytes) => socket.pong(&bytes).await.map_err(|_| Gone),
                    AggregatedMessage::Pong(_) => Ok(()),
                    AggregatedMessage::Close(_) => break None,
                };
                if res.is_err() {
                    break None;
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

/// Parses and executes one text frame, answering with `ack` or `error`.
async fn on_text<H: CommandHandler>(socket: &mut actix_ws::Session, handler: &mut H, text: &str, limit: Duration) -> Result<(), Gone> {
    let frame = match decode::<H::Command>(text) {
        Ok(frame) => frame,
        Err(reply) => return write(socket, &*reply, limit).await,
    };
    match handler.handle(frame.command, frame.reference.as_deref()).await {
        Ok(ack) => {
            for event in &ack.replay {
                write(socket, event, limit).await?;
            }
            match frame.reference {
                Some(reference) => write(socket, &Reply::Ack { reference, message: ack.message }, limit).await,
                None => Ok(()),
            }
        }
        Err(error) => write(socket, &Reply::Error { reference: frame.reference, error: error.detail() }, limit).await,
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
