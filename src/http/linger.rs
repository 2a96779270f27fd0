//! Reads what is left of a request body before answering, in our code rather
//! than actix's connection "linger".
//!
//! When an answer is ready before the client finished sending its body (a 413
//! for an oversized body, a 401 before the body is looked at), closing with
//! unread bytes makes the kernel reset the connection, and a client that sends
//! its whole body before reading (Python's `http.client`, `curl` without
//! `Expect`) loses the answer. actix guards against that by lingering after the
//! response, but that cannot be limited to plain HTTP: a WebSocket's request body
//! is the socket itself and never ends, so every closing handshake kept the TCP
//! connection open for the linger (0.5–1 s with actix's cached clock), where
//! RFC 6455 §7.1.1 wants the server to close it at once. So actix's linger is
//! off (`startup.rs`) and this middleware drains the rest of a non-WebSocket body,
//! bounded in bytes and time, before the answer goes out.

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

/// Most bytes read and thrown away after an early answer; a client sending
/// more has its connection reset, as it would have without the drain.
const MAX_DRAIN_BYTES: usize = 16 * 1024 * 1024;
/// Longest time spent draining, so a slow sender cannot hold a worker.
const MAX_DRAIN_TIME: Duration = Duration::from_secs(2);

/// The request body, shared between the handler and the drain below.
#[derive(Clone)]
struct Shared(Rc<RefCell<Body>>);

struct Body {
    payload: Payload,
    ended: bool,
}

impl Stream for Shared {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut body = self.0.borrow_mut();
        let next = Pin::new(&mut body.payload).poll_next(cx);
        if matches!(next, Poll::Ready(None | Some(Err(_)))) {
            body.ended = true;
        }
        next
    }
}

/// The middleware: hands the handler a shared body, then drains what it left.
///
/// # Errors
/// Whatever the inner service answers.
pub async fn drain_unread_body(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // An upgrade request's body is the connection itself, whatever the answer:
    // nothing to drain, and waiting for its end would wait for the client.
    if req.head().upgrade() {
        return next.call(req).await;
    }
    let shared = Shared(Rc::new(RefCell::new(Body { payload: req.take_payload(), ended: false })));
    req.set_payload(Payload::from(Box::pin(shared.clone()) as Pin<Box<dyn Stream<Item = _>>>));
    let res = next.call(req).await;
    let ended = shared.0.borrow().ended;
    if !ended {
        drain(shared).await;
    }
    res
}

async fn drain(mut body: Shared) {
    let mut read = 0;
    let _ = tokio::time::timeout(MAX_DRAIN_TIME, async {
        while let Some(Ok(chunk)) = body.next().await {
            read += chunk.len();
            if read > MAX_DRAIN_BYTES {
                break;
            }
        }
    })
    .await;
}
