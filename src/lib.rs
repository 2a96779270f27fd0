//! Switchboard: a live-chat server for small support teams that routes each
//! visitor to an operator with the right expertise.
//!
//! # Layout
//! - [`config`]: settings with usable defaults, flags and environment overrides.
//! - [`startup`]: `Application::build` / `run_until_stopped`, shared by `main` and tests.
//! - [`shutdown`]: the signal future and the ordered stop.
//! - [`telemetry`]: `tracing` set-up.
//! - `error`: `ApiError`, the one error type at the HTTP/WebSocket boundary.
//! - [`domain`]: plain data and rules (directory, conversations, routing); no actix, no IO.
//! - `actors`: `RouterActor`, `ConversationActor`, `OperatorActor` and their messages.
//! - `hub`: the one way HTTP and WebSocket code reach state: every change, with its consequences.
//! - `views`: the API's JSON shapes.
//! - `http`: routes and handlers; `ws`: WebSocket sessions and the wire protocol.
//! - [`auth`]: password hashing, tokens, login throttle.
//! - [`backup`]: `switchboard backup`, a consistent copy of a running server's data directory.
//! - [`persist`]: snapshots, the journal and recovery; `archive`: closed conversations in SQLite (history, search).
//! - `metrics`: Prometheus metrics; `demo`: the `--demo` team.
//!
//! Modules are `pub(crate)` so rustc reports dead code; the public ones are
//! what `main`, the integration tests, the benchmarks and the load generator's
//! smoke test need (`config`, `startup`, `shutdown`, `telemetry`; `domain`,
//! `persist` and `auth::hash_password` for the benchmarks' synthetic state).

pub(crate) mod actors;
/// Public for `benches/webhooks.rs`, which drains a backlog through it.
pub mod archive;
pub mod auth;
pub mod backup;
pub mod config;
pub(crate) mod demo;
pub mod domain;
pub(crate) mod error;
pub(crate) mod http;
pub(crate) mod hub;
pub mod mail;
pub(crate) mod metrics;
pub mod persist;
pub mod shutdown;
pub mod startup;
pub mod telemetry;
pub(crate) mod views;
/// Public for `benches/webhooks.rs`.
pub mod webhooks;
pub(crate) mod ws;
