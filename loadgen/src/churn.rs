//! `loadgen churn`: visitor sockets opening and closing, for what a long-lived
//! server must not do: grow per connection, or keep anything after a socket closes.
//!
//! Two shapes, both against one set of visitor sessions opened up front:
//! - cycles (default): every session connects, then every socket closes, `--cycles` times.
//!   Reports the RSS per idle connected visitor and whether RSS climbs cycle after cycle.
//! - soak (`--duration`): sockets connect, send a typing frame, and close continuously at
//!   `--rate` per second. Reports RSS and open files cold, after `--warm-up` (the starting
//!   level) and at the end, errors, and that every session is still there.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::{connect, loopback_only, parse_duration, process_usage, ws_url, Api};

#[derive(Args, Clone)]
pub struct ChurnArgs {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    #[arg(long, env = "SWITCHBOARD_ADMIN_PASSWORD")]
    admin_password: String,
    /// The server process, for RSS and open files (required: that is what this measures).
    #[arg(long)]
    server_pid: u32,
    /// Visitor sessions, each with its conversation.
    #[arg(long, default_value_t = 10_000)]
    sessions: usize,
    /// Connect-all / close-all rounds.
    #[arg(long, default_value_t = 5)]
    cycles: usize,
    /// Soak instead: churn continuously this long.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Soak: connections opened (and closed) per second.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// Soak: the starting level is read after churning this long (the first
    /// connections warm the allocator and per-worker buffers once).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    warm_up: Duration,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 256)]
    parallel: usize,
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

/// The server's resident memory (MB) and open files.
#[derive(Clone, Copy, Debug, Serialize)]
struct Usage {
    rss_mb: f64,
    open_files: usize,
}

fn usage(pid: u32) -> anyhow::Result<Usage> {
    let (rss, _) = process_usage(pid).context("server process not found")?;
    let open_files = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count();
    Ok(Usage { rss_mb: rss as f64 / 1e6, open_files })
}

/// Lets the server finish closing sockets and return freed memory before a reading.
async fn settled(pid: u32) -> anyhow::Result<Usage> {
    tokio::time::sleep(Duration::from_secs(3)).await;
    usage(pid)
}

#[derive(Serialize)]
struct Cycle {
    connect_s: f64,
    connected: Usage,
    closed: Usage,
}

#[derive(Serialize)]
struct Report {
    sessions: usize,
    empty: Usage,
    with_sessions: Usage,
    cycles: Vec<Cycle>,
    soak: Option<Soak>,
    errors: u64,
    sessions_intact: usize,
}

#[derive(Serialize)]
struct Soak {
    seconds: f64,
    connections: u64,
    /// Before the first connection.
    cold: Usage,
    /// After `--warm-up`: the starting level.
    before: Usage,
    after: Usage,
}

struct Counts {
    errors: AtomicU64,
    connections: AtomicU64,
}

/// Opens a visitor socket and waits for its `hello`.
async fn open(base: &str, token: &str) -> anyhow::Result<crate::Ws> {
    let (mut ws, _) = connect(ws_url(base, &format!("/ws/visitor?token={token}"))).await?;
    let first = tokio::time::timeout(Duration::from_secs(30), ws.next()).await.context("no hello within 30 s")?;
    match first {
        Some(Ok(WsMessage::Text(text))) if serde_json::from_str::<Value>(&text)?["type"] == "hello" => Ok(ws),
        other => bail!("expected hello, got {other:?}"),
    }
}

pub async fn churn(args: ChurnArgs) -> anyhow::Result<()> {
    loopback_only(&args.server)?;
    let api = Api::new(&args.server);
    let admin = api.login("admin", &args.admin_password).await?;
    let empty = usage(args.server_pid)?;
    let name = format!("churn-{}", std::process::id());
    let channel = api.post("/channels", Some(&admin), json!({"name": name})).await?["id"].as_u64().unwrap_or_default();
    eprintln!("opening {} sessions…", args.sessions);
    let mut tokens = Vec::with_capacity(args.sessions);
    for _ in 0..args.sessions {
        let opened = api.post(&format!("/channels/{channel}/sessions"), None, json!({})).await?;
        tokens.push(opened["visitor_token"].as_str().unwrap_or_default().to_owned());
    }
    let tokens = Arc::new(tokens);
    let with_sessions = settled(args.server_pid).await?;
    let counts = Arc::new(Counts { errors: AtomicU64::new(0), connections: AtomicU64::new(0) });
    let gate = Arc::new(Semaphore::new(args.parallel));

    let mut cycles = Vec::new();
    let mut soak = None;
    match args.duration {
        None => {
            for cycle in 1..=args.cycles {
                let started = Instant::now();
                let mut opening = Vec::with_capacity(tokens.len());
                for token in tokens.iter() {
                    let (base, token, gate, counts) = (api.base.clone(), token.clone(), gate.clone(), counts.clone());
                    opening.push(tokio::spawn(async move {
                        let _permit = gate.acquire_owned().await.ok()?;
                        match open(&base, &token).await {
                            Ok(ws) => Some(ws),
                            Err(e) => {
                                if counts.errors.fetch_add(1, Ordering::Relaxed) < 5 {
                                    eprintln!("connect: {e:#}");
                                }
                                None
                            }
                        }
                    }));
                }
                let mut sockets = Vec::with_capacity(opening.len());
                for task in opening {
                    sockets.extend(task.await?);
                }
                let connect_s = started.elapsed().as_secs_f64();
                let connected = settled(args.server_pid).await?;
                for mut ws in sockets {
                    let _ = ws.close(None).await;
                }
                let closed = settled(args.server_pid).await?;
                eprintln!(
                    "cycle {cycle}: {} connected in {connect_s:.2} s, RSS {:.0} MB connected / {:.0} MB closed, {} / {} open files",
                    tokens.len(),
                    connected.rss_mb,
                    closed.rss_mb,
                    connected.open_files,
                    closed.open_files
                );
                cycles.push(Cycle { connect_s, connected, closed });
            }
        }
        Some(duration) => {
            let cold = usage(args.server_pid)?;
            let mut before = None;
            let started = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate.max(1) as f64));
            let mut next = 0usize;
            let mut last_report = Instant::now();
            while started.elapsed() < duration {
                tick.tick().await;
                let (base, token, gate, tally) = (api.base.clone(), tokens[next % tokens.len()].clone(), gate.clone(), counts.clone());
                next += 1;
                tokio::spawn(async move {
                    let Ok(_permit) = gate.acquire_owned().await else { return };
                    let cycle = async {
                        let mut ws = open(&base, &token).await?;
                        ws.send(WsMessage::Text(json!({"type": "typing", "typing": true}).to_string())).await?;
                        ws.close(None).await?;
                        anyhow::Ok(())
                    };
                    match cycle.await {
                        Ok(()) => tally.connections.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            if tally.errors.fetch_add(1, Ordering::Relaxed) < 5 {
                                eprintln!("soak: {e:#}");
                            }
                            0
                        }
                    };
                });
                if before.is_none() && started.elapsed() >= args.warm_up {
                    before = Some(usage(args.server_pid)?);
                }
                if last_report.elapsed() > Duration::from_secs(30) {
                    last_report = Instant::now();
                    let now = usage(args.server_pid)?;
                    eprintln!(
                        "{:>4.0} s: {} connections, {} errors, RSS {:.0} MB, {} open files",
                        started.elapsed().as_secs_f64(),
                        counts.connections.load(Ordering::Relaxed),
                        counts.errors.load(Ordering::Relaxed),
                        now.rss_mb,
                        now.open_files
                    );
                }
            }
            let _all_done = gate.acquire_many(args.parallel as u32).await?;
            let after = settled(args.server_pid).await?;
            soak = Some(Soak {
                seconds: started.elapsed().as_secs_f64(),
                connections: counts.connections.load(Ordering::Relaxed),
                cold,
                before: before.unwrap_or(cold),
                after,
            });
        }
    }

    let mut sessions_intact = 0;
    for token in tokens.iter() {
        let view = api.call(reqwest::Method::GET, "/visitor/conversation", Some(token), None).await;
        sessions_intact += usize::from(view.is_ok_and(|v| v["status"].is_string()));
    }
    let report = Report {
        sessions: tokens.len(),
        empty,
        with_sessions,
        cycles,
        soak,
        errors: counts.errors.load(Ordering::Relaxed),
        sessions_intact,
    };
    print(&report);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    if report.errors > 0 || report.sessions_intact != report.sessions {
        bail!("{} errors, {} of {} sessions intact", report.errors, report.sessions_intact, report.sessions);
    }
    Ok(())
}

fn print(r: &Report) {
    let per = |mb: f64| mb * 1e6 / 1024.0 / r.sessions.max(1) as f64;
    println!("| figure | value |\n|---|---|");
    println!("| sessions | {} |", r.sessions);
    println!(
        "| RSS: empty / with sessions | {:.1} MB / {:.1} MB ({:.1} KiB per session) |",
        r.empty.rss_mb,
        r.with_sessions.rss_mb,
        per(r.with_sessions.rss_mb - r.empty.rss_mb)
    );
    if let Some(first) = r.cycles.first() {
        println!("| connect all | {:.2} s |", first.connect_s);
        println!("| RSS per idle connected visitor, socket only | {:.1} KiB |", per(first.connected.rss_mb - r.with_sessions.rss_mb));
        println!("| RSS per idle connected visitor, session + socket | {:.1} KiB |", per(first.connected.rss_mb - r.empty.rss_mb));
        for (i, c) in r.cycles.iter().enumerate() {
            println!(
                "| cycle {}: connect s / RSS connected / RSS closed / open files connected, closed | {:.2} / {:.1} MB / {:.1} MB / {}, {} |",
                i + 1,
                c.connect_s,
                c.connected.rss_mb,
                c.closed.rss_mb,
                c.connected.open_files,
                c.closed.open_files
            );
        }
        let last = r.cycles.last().unwrap_or(first);
        println!("| RSS closed after last cycle ÷ after first | {:.3} |", last.closed.rss_mb / first.closed.rss_mb);
    }
    if let Some(s) = &r.soak {
        println!("| soak | {:.0} s, {} connections |", s.seconds, s.connections);
        let change = |a: f64, b: f64| (b / a - 1.0) * 100.0;
        println!(
            "| RSS cold → after warm-up → end | {:.1} → {:.1} → {:.1} MB ({:+.1} % over the soak) |",
            s.cold.rss_mb,
            s.before.rss_mb,
            s.after.rss_mb,
            change(s.before.rss_mb, s.after.rss_mb)
        );
        println!(
            "| open files cold → after warm-up → end | {} → {} → {} ({:+.1} % over the soak) |",
            s.cold.open_files,
            s.before.open_files,
            s.after.open_files,
            change(s.before.open_files as f64, s.after.open_files as f64)
        );
    }
    println!("| errors | {} |", r.errors);
    println!("| sessions intact | {} of {} |", r.sessions_intact, r.sessions);
}
