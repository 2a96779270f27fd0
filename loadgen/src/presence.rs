//! `loadgen presence`: what a team coming online costs. N operators open
//! their consoles together; every console is read until all go quiet, and
//! the report counts the frames they received and the events the server wrote
//! (`switchboard_delivery_latency_seconds_count`).
//!
//! ```text
//! loadgen presence --server http://127.0.0.1:8080 --admin-password … --operators 1000 --presence batched
//! ```
//!
//! Every presence change goes to every operator, so with one `presence` event
//! per change (`--presence each`, API.md v1) N operators make about N²/2
//! frames; `batched` consoles get one `presences` frame per gathering instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use futures_util::{stream, StreamExt};
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::{connect, loopback_only, ws_url, Api, Parked};

#[derive(Args, Clone)]
pub struct PresenceArgs {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    #[arg(long, env = "SWITCHBOARD_ADMIN_PASSWORD")]
    admin_password: String,
    #[arg(long, default_value_t = 1000)]
    operators: usize,
    /// How the consoles ask for presence changes: `each` or `batched`.
    #[arg(long, default_value = "each")]
    presence: String,
    /// Consoles connecting at once.
    #[arg(long, default_value_t = 64)]
    parallel: usize,
    /// Marks this run's operators' logins, so runs can follow each other on one server.
    #[arg(long, default_value = "presence")]
    prefix: String,
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

#[derive(Serialize)]
struct PresenceReport {
    operators: usize,
    presence: String,
    /// From the first connection to the last console's `hello`.
    connect_s: f64,
    /// Every text frame the consoles received, `hello` included.
    frames_received: u64,
    frames_per_operator: f64,
    /// Presence changes the frames carried (a `presences` frame carries several).
    presence_changes: u64,
    /// Events the server wrote to sockets meanwhile, from its own counter.
    server_events_written: f64,
}

/// What the consoles' readers count, and when the last frame came.
struct Tally {
    frames: AtomicU64,
    changes: AtomicU64,
    last_frame: Mutex<Instant>,
}

/// The server's count of events written to sockets.
const EVENTS_WRITTEN: &str = "switchboard_delivery_latency_seconds_count";

/// How long without a frame on any console counts as quiet.
const QUIET: Duration = Duration::from_secs(1);

pub async fn presence(args: PresenceArgs) -> anyhow::Result<()> {
    loopback_only(&args.server)?;
    if args.operators == 0 || args.parallel == 0 || !matches!(args.presence.as_str(), "each" | "batched") {
        bail!("--operators and --parallel must be positive, --presence `each` or `batched`");
    }
    let api = Arc::new(Api::new(&args.server));
    let admin = api.login("admin", &args.admin_password).await?;
    let run = format!("{}-{}", args.prefix, std::process::id());
    eprintln!("creating {} operators…", args.operators);
    let operators = api.new_operators(&admin, &run, args.operators, |_| Value::Null).await?;

    let written_before = api.metric(EVENTS_WRITTEN).await?;
    let tally = Arc::new(Tally { frames: AtomicU64::new(0), changes: AtomicU64::new(0), last_frame: Mutex::new(Instant::now()) });
    eprintln!("connecting their consoles ({} at a time)…", args.parallel);
    let started = Instant::now();
    let readers: Vec<Parked> = stream::iter(operators)
        .map(|(_, token)| {
            let url = ws_url(&api.base, &format!("/ws/agent?token={token}&presence={}", args.presence));
            let tally = tally.clone();
            async move {
                let (mut ws, _) = connect(url).await.context("console upgrade")?;
                let hello = ws.next().await.context("closed before hello")??;
                tally.count(&hello);
                anyhow::Ok(Parked::new(ws, move |frame| tally.count(frame)))
            }
        })
        .buffer_unordered(args.parallel)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let connect_s = started.elapsed().as_secs_f64();
    eprintln!("all connected in {connect_s:.2} s; waiting for quiet…");
    // Quiet: for a whole second neither did a console receive a frame nor did the server write one.
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut written = api.metric(EVENTS_WRITTEN).await?;
    loop {
        tokio::time::sleep(QUIET).await;
        let now = api.metric(EVENTS_WRITTEN).await?;
        if now == written && tally.last_frame.lock().elapsed() >= QUIET {
            break;
        }
        written = now;
        if Instant::now() > deadline {
            bail!("the consoles were still receiving frames after 5 minutes");
        }
    }
    let written = written - written_before;
    for reader in readers {
        reader.take().await?;
    }
    let frames = tally.frames.load(Ordering::Relaxed);
    let report = PresenceReport {
        operators: args.operators,
        presence: args.presence.clone(),
        connect_s,
        frames_received: frames,
        frames_per_operator: frames as f64 / args.operators as f64,
        presence_changes: tally.changes.load(Ordering::Relaxed),
        server_events_written: written,
    };
    println!("| measure | value |\n|---|---|");
    println!("| operators, presence frames | {}, {} |", report.operators, report.presence);
    println!("| all consoles connected in | {:.2} s |", report.connect_s);
    println!("| frames received (per operator) | {} ({:.1}) |", report.frames_received, report.frames_per_operator);
    println!("| presence changes they carried | {} |", report.presence_changes);
    println!("| events the server wrote | {} |", report.server_events_written);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}

impl Tally {
    fn count(&self, frame: &WsMessage) {
        let WsMessage::Text(text) = frame else { return };
        *self.last_frame.lock() = Instant::now();
        self.frames.fetch_add(1, Ordering::Relaxed);
        let event: Value = serde_json::from_str(text).unwrap_or_default();
        let changes = match event["type"].as_str() {
            Some("presence") => 1,
            Some("presences") => event["changes"].as_array().map_or(0, Vec::len) as u64,
            _ => 0,
        };
        self.changes.fetch_add(changes, Ordering::Relaxed);
    }
}
