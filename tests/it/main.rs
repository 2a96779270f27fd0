//! The integration tests: each starts the real server on 127.0.0.1:0 and talks
//! to it over real HTTP and WebSocket connections.

mod architecture;
mod auth;
mod bad_input;
mod browser;
mod chatbot;
mod conversations;
mod crash;
mod deploy;
mod directory;
mod funnel;
mod fuzz;
mod history;
mod invite;
mod leads;
mod looking_for_help;
mod mail;
mod ops;
mod persistence;
mod roles;
mod routing;
mod routing_options;
mod satisfaction;
mod security;
mod support;
mod together;
mod visitor_context;
mod webhooks;
mod websocket;
