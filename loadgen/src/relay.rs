//! `loadgen relay`: the per-message cost alone. N visitor ↔ operator pairs,
//! one conversation each, both sides sending to the other with up to
//! `--window` messages in flight (sent, not yet acknowledged), at the
//! highest rate the server takes or at a fixed total `--rate`; the echo
//! baseline over as many sockets with the same window is measured in the
//! same run, so the ratio is comparable across machines and runs.
//!
//! ```text
//! loadgen relay --server http://127.0.0.1:8080 --admin-password … --pairs 200 --window 8 \
//!     --duration 10s --echo-url ws://127.0.0.1:9001 --server-pid $(pgrep -n switchboard)
//! ```
//!
//! No chatbot, no calls for help, no think time: what is left is a message's
//! way through the server (socket → conversation → journal → the other
//! side's socket). A message acknowledged to its sender and never delivered
//! to the other side is counted as lost.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::{
    connect, echo, histogram, loopback_only, parse_duration, process_usage, stamp_of, stamped, ws_url, Api, EchoArgs, Parked, Percentiles,
};

#[derive(Args, Clone)]
pub struct RelayArgs {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    #[arg(long, env = "SWITCHBOARD_ADMIN_PASSWORD")]
    admin_password: String,
    /// Visitor ↔ operator pairs, one conversation each.
    #[arg(long, default_value_t = 50)]
    pairs: usize,
    /// Messages a side may have sent and not yet had acknowledged.
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// Total messages per second over all sides; without it, as fast as acks come back.
    #[arg(long)]
    rate: Option<f64>,
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Time between opening the last socket and the first send, while every
    /// side already reads: operators' sockets hold the `presence` event of each
    /// operator who came online after them (about 500,000 frames for 1,000
    /// operators), and reading that backlog while sending made the first half
    /// second's deliveries take 100–600 ms (BENCHMARKS.md, "Relay").
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    settle: Duration,
    /// Measure the echo baseline against this echo server first: 2 × pairs sockets, the same window.
    #[arg(long)]
    echo_url: Option<String>,
    /// Report the server's CPU per delivered message (a local process).
    #[arg(long)]
    server_pid: Option<u32>,
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Names of everything created start with this (several runs can share a server).
    #[arg(long, default_value = "relay")]
    prefix: String,
}

/// What every side records.
struct Tally {
    started: Instant,
    delivery: Mutex<Histogram<u64>>,
    /// (conversation, message id) acknowledged to its sender, and delivered to the other side.
    acked: Mutex<HashSet<(u64, u64)>>,
    delivered: Mutex<HashSet<(u64, u64)>>,
    errors: Mutex<HashMap<String, u64>>,
    /// Sends that found the window full when the fixed rate called for them.
    late: AtomicU64,
}

impl Tally {
    fn error(&self, kind: impl Into<String>) {
        *self.errors.lock().entry(kind.into()).or_default() += 1;
    }
}

/// One side of a pair.
struct Side {
    conversation: u64,
    /// `visitor` or `operator`: the author kind of what this side sends.
    kind: &'static str,
}

/// When a side sends at a fixed rate: its first send, then one per period.
/// Sides' first sends are spread over one period, so the total rate is
/// steady instead of every side sending at the same instant.
type Schedule = Option<(Instant, Duration)>;

#[derive(Serialize)]
struct RelayReport {
    pairs: usize,
    window: usize,
    rate: Option<f64>,
    wall_s: f64,
    delivered: u64,
    delivered_per_s: f64,
    acknowledged: u64,
    lost: u64,
    late: u64,
    delivery: Percentiles,
    errors: HashMap<String, u64>,
    echo_baseline_per_s: Option<f64>,
    percent_of_echo: Option<f64>,
    server_cpu_us_per_message: Option<f64>,
    server_rss_mb: Option<f64>,
}

pub async fn relay(args: RelayArgs) -> anyhow::Result<()> {
    loopback_only(&args.server)?;
    if args.pairs == 0 || args.window == 0 || args.rate.is_some_and(|r| !r.is_finite() || r <= 0.0) {
        bail!("--pairs, --window and --rate must be positive");
    }
    let echo_baseline = match &args.echo_url {
        Some(url) => {
            loopback_only(url)?;
            let echo_args =
                EchoArgs { url: url.clone(), connections: 2 * args.pairs, duration: Duration::from_secs(5), window: args.window };
            Some(echo(&echo_args).await?)
        }
        None => None,
    };
    let api = Api::new(&args.server);
    eprintln!("setting up {} pairs…", args.pairs);
    let sockets = set_up(&api, &args).await?;
    let tally = Arc::new(Tally {
        started: Instant::now(),
        delivery: Mutex::new(histogram()),
        acked: Mutex::new(HashSet::new()),
        delivered: Mutex::new(HashSet::new()),
        errors: Mutex::new(HashMap::new()),
        late: AtomicU64::new(0),
    });
    // Sides read from now on but send only from `start`.
    let start = Instant::now() + args.settle;
    eprintln!("set up; sending in {:?} for {:?}…", args.settle, args.duration);
    let send_until = start + args.duration;
    let period = args.rate.map(|rate| Duration::from_secs_f64(sockets.len() as f64 / rate));
    let n = sockets.len() as f64;
    let tasks: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, (side, ws))| {
            let schedule = period.map(|period| (start + period.mul_f64(i as f64 / n), period));
            tokio::spawn(run_side(tally.clone(), side, ws, args.window, (start, schedule), send_until))
        })
        .collect();
    tokio::time::sleep_until(start.into()).await;
    let usage_before = args.server_pid.and_then(process_usage);
    for task in tasks {
        task.await?;
    }
    let usage_after = args.server_pid.and_then(process_usage);
    let wall = args.duration.as_secs_f64();
    let acked = tally.acked.lock().clone();
    let delivered = tally.delivered.lock().clone();
    let n_delivered = delivered.len() as u64;
    let report = RelayReport {
        pairs: args.pairs,
        window: args.window,
        rate: args.rate,
        wall_s: wall,
        delivered: n_delivered,
        delivered_per_s: n_delivered as f64 / wall,
        acknowledged: acked.len() as u64,
        lost: acked.difference(&delivered).count() as u64,
        late: tally.late.load(Ordering::Relaxed),
        delivery: Percentiles::from(&*tally.delivery.lock()),
        errors: tally.errors.lock().clone(),
        echo_baseline_per_s: echo_baseline,
        percent_of_echo: echo_baseline.map(|e| n_delivered as f64 / wall / e * 100.0),
        server_cpu_us_per_message: usage_before
            .zip(usage_after)
            .map(|((_, before), (_, after))| (after - before) * 1e6 / n_delivered.max(1) as f64),
        server_rss_mb: usage_after.map(|(rss, _)| rss as f64 / 1e6),
    };
    print_report(&report);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    if report.lost > 0 {
        bail!("{} acknowledged messages were never delivered", report.lost);
    }
    Ok(())
}

/// Operators (each in one channel with `max_sessions` 1, online), then one
/// session per operator: the router gives each visitor a different operator.
/// Every socket is open before anyone sends, so the run measures relaying, not connecting.
async fn set_up(api: &Api, args: &RelayArgs) -> anyhow::Result<Vec<(Side, crate::Ws)>> {
    let admin = api.login("admin", &args.admin_password).await?;
    let run = format!("{}-{}", args.prefix, std::process::id());
    let operators = api.new_operators(&admin, &run, args.pairs, |i| json!({"name": format!("Relay {i}")})).await?;
    let ids: Vec<u64> = operators.iter().map(|(id, _)| *id).collect();
    let channel = json!({"name": format!("{run}-relay"), "operator_ids": ids, "max_sessions": 1});
    let channel = api.post("/channels", Some(&admin), channel).await?["id"].as_u64().unwrap_or_default();
    // Online = an agent socket open: each operator's stays open and becomes
    // their side of the pair, so nobody is offline between set-up and run.
    let mut consoles = HashMap::with_capacity(operators.len());
    for (id, token) in &operators {
        let (mut ws, _) = connect(ws_url(&api.base, &format!("/ws/agent?token={token}"))).await?;
        ws.next().await.context("no hello")??;
        consoles.insert(*id, Parked::new(ws, |_| {}));
    }
    let mut parked = Vec::with_capacity(2 * args.pairs);
    for i in 0..args.pairs {
        let opened = api.post(&format!("/channels/{channel}/sessions"), None, json!({"visitor_name": format!("R{i}")})).await?;
        let conversation = opened["conversation_id"].as_u64().unwrap_or_default();
        let token = opened["visitor_token"].as_str().unwrap_or_default();
        let seen = api.call(reqwest::Method::GET, "/visitor/conversation", Some(token), None).await?;
        let operator = seen["operator"]["id"].as_u64().context("a pair's conversation got no operator")?;
        let console = consoles.remove(&operator).with_context(|| format!("operator {operator} was given two pairs"))?;
        let (visitor, _) = connect(ws_url(&api.base, &format!("/ws/visitor?token={token}"))).await?;
        parked.push((Side { conversation, kind: "visitor" }, Parked::new(visitor, |_| {})));
        parked.push((Side { conversation, kind: "operator" }, console));
    }
    let mut sides = Vec::with_capacity(parked.len());
    for (side, socket) in parked {
        sides.push((side, socket.take().await?));
    }
    Ok(sides)
}

/// From `start`, sends with at most `window` unacknowledged, at the side's rate or as fast
/// as acks allow, until `send_until`; keeps reading for [`crate::DRAIN`] more.
async fn run_side(
    tally: Arc<Tally>,
    side: Side,
    ws: crate::Ws,
    window: usize,
    (start, schedule): (Instant, Schedule),
    send_until: Instant,
) {
    let (mut tx, mut rx) = ws.split();
    let permits = Arc::new(Semaphore::new(window));
    let sender = {
        let (tally, permits) = (tally.clone(), permits.clone());
        let target = (side.kind == "operator").then_some(side.conversation);
        let mut tick = schedule.map(|(first, period)| tokio::time::interval_at(first.into(), period));
        tokio::spawn(async move {
            tokio::time::sleep_until(start.into()).await;
            for n in 0u64.. {
                if let Some(tick) = &mut tick {
                    tick.tick().await;
                    if permits.available_permits() == 0 {
                        tally.late.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let Ok(Ok(permit)) = tokio::time::timeout_at(send_until.into(), permits.acquire()).await else { return };
                // A permit at hand wins over an expired timeout: check the clock too.
                if Instant::now() >= send_until {
                    return;
                }
                permit.forget();
                let mut frame = json!({"type": "send", "ref": format!("r{n}"), "body": stamped(tally.started, "relay")});
                if let Some(conversation) = target {
                    frame["conversation_id"] = json!(conversation);
                }
                if tx.send(WsMessage::Text(frame.to_string())).await.is_err() {
                    return tally.error("send failed");
                }
            }
        })
    };
    let read_until = send_until + crate::DRAIN;
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(read_until.into(), rx.next()).await {
        let WsMessage::Text(text) = frame else { continue };
        let Ok(event) = serde_json::from_str::<Value>(&text) else { continue };
        let message = &event["message"];
        let id = (side.conversation, message["id"].as_u64().unwrap_or_default());
        match event["type"].as_str().unwrap_or_default() {
            "ack" if message.is_object() => {
                tally.acked.lock().insert(id);
                permits.add_permits(1);
            }
            "message" if message["author"]["kind"] != side.kind => {
                if let Some(sent) = message["body"].as_str().and_then(stamp_of) {
                    let now = tally.started.elapsed().as_micros() as u64;
                    let _ = tally.delivery.lock().record(now.saturating_sub(sent).max(1));
                    tally.delivered.lock().insert(id);
                }
            }
            // A refused send is answered too: its place in the window is free again.
            "error" => {
                tally.error(format!("{} {}", side.kind, event["error"]["code"].as_str().unwrap_or("error")));
                permits.add_permits(1);
            }
            _ => {}
        }
    }
    sender.abort();
}

fn print_report(r: &RelayReport) {
    let d = &r.delivery;
    let mode = r.rate.map_or("max rate".to_owned(), |rate| format!("fixed {rate:.0} msgs/s"));
    println!("| figure | value |\n|---|---|");
    println!("| pairs / window / mode | {} / {} / {mode} |", r.pairs, r.window);
    println!("| delivered | {} ({:.0} msgs/s over {:.1} s) |", r.delivered, r.delivered_per_s, r.wall_s);
    println!(
        "| delivery latency | p50 {:.2} / p99 {:.2} / p99.9 {:.2} / max {:.2} ms ({} samples) |",
        d.p50_ms, d.p99_ms, d.p999_ms, d.max_ms, d.samples
    );
    println!("| acknowledged / lost | {} / **{}** |", r.acknowledged, r.lost);
    if r.rate.is_some() {
        println!("| sends that found the window full | {} |", r.late);
    }
    println!("| errors | {} |", if r.errors.is_empty() { "none".into() } else { format!("{:?}", r.errors) });
    if let (Some(echo), Some(pct)) = (r.echo_baseline_per_s, r.percent_of_echo) {
        println!(
            "| echo baseline (same run, {} sockets, window {}) | {echo:.0} round trips/s; delivered/s = **{pct:.0} %** of it |",
            2 * r.pairs,
            r.window
        );
    }
    if let (Some(us), Some(rss)) = (r.server_cpu_us_per_message, r.server_rss_mb) {
        println!("| server CPU per delivered message / RSS | {us:.1} µs / {rss:.0} MB |");
    }
}
