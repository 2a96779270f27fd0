//! Switchboard: a live-chat server for small support teams that routes each
//! visitor to an operator with the right expertise.
//!
//! # Layout
//! - [`config`]: settings with usable defaults, flags and environment overrides.
//! - [`startup`]: `Application::build` / `run_until_stopped`, shared by `main` and tests.
//! - [`shutdown`]: the signal future and the ordered stop.
//! - [`telemetry`]: `tracing` set-up.
//! - [`error`]: `ApiError`, the one error type at the HTTP/WebSocket boundary.
//! - [`domain`]: plain data and rules (directory, conversations, routing); no actix, no IO.
//! - [`actors`]: `RouterActor`, `ConversationActor`, `OperatorActor` and their messages.
//! - [`hub`]: the typed handle HTTP and WebSocket code use to reach the actors.
//! - [`views`]: the API's JSON shapes.
//! - [`http`]: routes and handlers; [`ws`]: WebSocket sessions and the wire protocol.
//! - [`auth`]: password hashing, tokens, login throttle.
//! - [`persist`]: snapshots, the journal and recovery.
//! - [`metrics`]: Prometheus metrics; [`demo`]: the `--demo` team.

pub mod actors;
pub mod auth;
pub mod config;
pub mod demo;
pub mod domain;
pub mod error;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod persist;
pub mod shutdown;
pub mod startup;
pub mod telemetry;
pub mod views;
pub mod ws;
