//! `loadgen history`: what history costs and how it holds at a year's size.
//!
//! 1. Warm-up: `--warm-up` conversations are held and closed, `--warm-up-rounds`
//!    times (RSS read after each), and a round of searches runs (the allocator
//!    and the archive's caches settle), then the server's RSS is read: "before".
//! 2. `--conversations` visitors each write `--messages` lines of words drawn
//!    from a fixed vocabulary (held: RSS "held"), then all of them leave
//!    at `--close-rate` per second: the close rate and the archive rate, and a probe's delivery
//!    latency (visitor → operator, one message every 20 ms) while it runs
//!    against the same probe before it. After archiving: RSS "after".
//! 3. `--live` open conversations, then `--rounds` rounds of `--queries`
//!    searches each: one word; two words with a channel filter; the first
//!    page of `GET /history`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::{connect, histogram, loopback_only, process_usage, ws_url, Api, Percentiles};

#[derive(Args, Clone)]
pub struct HistoryArgs {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    #[arg(long, env = "SWITCHBOARD_ADMIN_PASSWORD")]
    admin_password: String,
    /// The server process, for its RSS.
    #[arg(long)]
    server_pid: u32,
    /// Conversations held, then closed (and archived).
    #[arg(long, default_value_t = 20_000)]
    conversations: usize,
    /// Visitor messages per conversation.
    #[arg(long, default_value_t = 50)]
    messages: usize,
    /// Conversations held and closed (then a round of searches) before the "before" RSS reading.
    #[arg(long, default_value_t = 20_000)]
    warm_up: usize,
    /// How many times the warm-up is held and closed: the allocator keeps a
    /// share of each peak for a few rounds before RSS levels off.
    #[arg(long, default_value_t = 1)]
    warm_up_rounds: usize,
    /// Open conversations during the searches.
    #[arg(long, default_value_t = 1_000)]
    live: usize,
    /// Searches of each kind per round.
    #[arg(long, default_value_t = 200)]
    queries: usize,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Requests in flight at once while filling.
    #[arg(long, default_value_t = 64)]
    parallel: usize,
    /// Visitors leaving per second in the closing phase.
    #[arg(long, default_value_t = 1000)]
    close_rate: u64,
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

/// Words the visitors write: 4,096 made-up words of two or three syllables.
fn vocabulary() -> Vec<String> {
    const SYLLABLES: [&str; 16] = ["ka", "lo", "mi", "nu", "pe", "ra", "si", "to", "ve", "zu", "bra", "cle", "dri", "fo", "gu", "ha"];
    let mut words = Vec::new();
    for a in SYLLABLES {
        for b in SYLLABLES {
            for c in SYLLABLES {
                words.push(format!("{a}{b}{c}"));
            }
        }
    }
    words
}

/// xorshift: deterministic, so two runs write the same text.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

#[derive(Serialize)]
struct Rss {
    /// After each warm-up round.
    warm_up_mb: Vec<f64>,
    before_mb: f64,
    held_mb: f64,
    after_mb: f64,
    /// after / before.
    after_over_before: f64,
}

#[derive(Serialize)]
struct Closing {
    conversations: usize,
    /// Visitors' `leave` acknowledged per second.
    closed_per_s: f64,
    /// Conversations in the archive per second, from the first leave to the last archived.
    archived_per_s: f64,
    probe_before: Percentiles,
    probe_during: Percentiles,
}

#[derive(Serialize)]
struct Round {
    one_word: Percentiles,
    two_words_channel: Percentiles,
    first_page: Percentiles,
}

#[derive(Serialize)]
struct Report {
    archived_messages: usize,
    fill_s: f64,
    rss: Rss,
    closing: Closing,
    rounds: Vec<Round>,
    /// Medians over the rounds of each kind's p95, in ms.
    median_p95_ms: [f64; 3],
}

fn rss_mb(pid: u32) -> anyhow::Result<f64> {
    Ok(process_usage(pid).context("server process not found")?.0 as f64 / 1e6)
}

/// RSS once freed memory went back to the system: jemalloc returns dirty pages after 10 s.
async fn settled_rss(pid: u32) -> anyhow::Result<f64> {
    tokio::time::sleep(Duration::from_secs(12)).await;
    rss_mb(pid)
}

async fn archived_total(api: &Api) -> anyhow::Result<f64> {
    api.metric("switchboard_archived_total").await
}

/// Waits (at most 10 minutes) until `total` conversations were archived in all.
async fn until_archived(api: &Api, total: f64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while archived_total(api).await? < total {
        anyhow::ensure!(Instant::now() < deadline, "archiving did not finish in 10 minutes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// A client of its own for one phase, so its keep-alive connections (and the
/// server's buffers for them) are gone when the phase ends and RSS is read.
fn phase_client(api: &Api) -> Arc<Api> {
    Arc::new(Api::new(&api.base))
}

/// Opens `count` conversations on `channels` (alternating), each with `messages` visitor lines; returns their visitor tokens.
async fn fill(api: &Api, args: &HistoryArgs, channels: &[u64], count: usize, messages: usize, seed: u64) -> anyhow::Result<Vec<String>> {
    let api = &phase_client(api);
    let words = Arc::new(vocabulary());
    let gate = Arc::new(Semaphore::new(args.parallel));
    let mut tasks = Vec::new();
    for i in 0..count {
        let (api, words, gate) = (api.clone(), words.clone(), gate.clone());
        let channel = channels[i % channels.len()];
        tasks.push(tokio::spawn(async move {
            let _slot = gate.acquire_owned().await?;
            let body = json!({"visitor_name": format!("Visitor {seed}-{i}"), "visitor_key": format!("vk-{}", i % 5000)});
            let opened = api.post(&format!("/channels/{channel}/sessions"), None, body).await?;
            let token = opened["visitor_token"].as_str().context("no visitor token")?.to_owned();
            let mut rng = Rng(seed.wrapping_mul(1_000_003).wrapping_add(i as u64) | 1);
            for _ in 0..messages {
                let line: Vec<&str> = (0..8).map(|_| words[rng.below(words.len())].as_str()).collect();
                api.post("/visitor/messages", Some(&token), json!({"body": line.join(" ")})).await?;
            }
            Ok::<_, anyhow::Error>(token)
        }));
    }
    let mut tokens = Vec::with_capacity(count);
    for task in tasks {
        tokens.push(task.await??);
    }
    Ok(tokens)
}

/// Every visitor leaves, `rate` per second; answers the wall time of the leaves.
async fn close_all(api: &Api, tokens: Vec<String>, rate: u64) -> anyhow::Result<Duration> {
    let api = &phase_client(api);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, token) in tokens.into_iter().enumerate() {
        let api = api.clone();
        let at = started + Duration::from_secs_f64(i as f64 / rate as f64);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            api.post("/visitor/leave", Some(&token), json!({})).await.map(|_| ())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(started.elapsed())
}

/// Delivery latency visitor → operator, one message every 20 ms, into the current phase's histogram.
struct Probe {
    phases: [Mutex<Histogram<u64>>; 2],
    phase: AtomicUsize,
    running: AtomicBool,
}

/// A new operator with a console open; answers their id and the console.
async fn console(api: &Api, admin: &str, login: &str) -> anyhow::Result<(u64, crate::Ws)> {
    let (operator, token) = api.new_operator(admin, login, Value::Null).await?;
    let (ws, _) = connect(ws_url(&api.base, &format!("/ws/agent?token={token}"))).await?;
    Ok((operator, ws))
}

/// An operator who stays online for the whole run, reading (and dropping) every event.
async fn operator_online(api: &Api, admin: &str, login: &str) -> anyhow::Result<u64> {
    let (operator, mut ws) = console(api, admin, login).await?;
    tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} });
    Ok(operator)
}

async fn start_probe(api: &Arc<Api>, admin: &str, login: &str, probe: Arc<Probe>) -> anyhow::Result<()> {
    let (operator, mut ws) = console(api, admin, login).await?;
    let channel =
        api.post("/channels", Some(admin), json!({"name": "probe", "operator_ids": [operator]})).await?["id"].as_u64().context("no id")?;
    let visitor = api.post(&format!("/channels/{channel}/sessions"), None, json!({})).await?["visitor_token"]
        .as_str()
        .context("no token")?
        .to_owned();
    let epoch = Instant::now();
    let reader = probe.clone();
    tokio::spawn(async move {
        while let Some(Ok(frame)) = ws.next().await {
            let WsMessage::Text(text) = frame else { continue };
            let Ok(event) = serde_json::from_str::<Value>(&text) else { continue };
            let sent = event["message"]["body"].as_str().and_then(|b| b.strip_prefix("probe ")).and_then(|t| t.parse::<u64>().ok());
            if let (Some(sent), "message") = (sent, event["type"].as_str().unwrap_or_default()) {
                let took = (epoch.elapsed().as_micros() as u64).saturating_sub(sent).max(1);
                let _ = reader.phases[reader.phase.load(Ordering::Relaxed)].lock().record(took);
            }
        }
    });
    let api = api.clone();
    tokio::spawn(async move {
        while probe.running.load(Ordering::Relaxed) {
            let body = json!({"body": format!("probe {}", epoch.elapsed().as_micros())});
            let _ = api.post("/visitor/messages", Some(&visitor), body).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    Ok(())
}

async fn timed(api: &Api, admin: &str, path: &str, into: &mut Histogram<u64>) -> anyhow::Result<()> {
    let started = Instant::now();
    api.call(reqwest::Method::GET, path, Some(admin), None).await?;
    into.record(started.elapsed().as_micros().max(1) as u64)?;
    Ok(())
}

/// `queries` searches of each kind, timed.
async fn search_round(api: &Api, admin: &str, channels: &[u64], queries: usize, rng: &mut Rng) -> anyhow::Result<Round> {
    let words = vocabulary();
    let (mut one, mut two, mut page) = (histogram(), histogram(), histogram());
    for _ in 0..queries {
        let word = &words[rng.below(words.len())];
        timed(api, admin, &format!("/history?q={word}"), &mut one).await?;
        let (a, b, channel) = (&words[rng.below(words.len())], &words[rng.below(words.len())], channels[rng.below(2)]);
        timed(api, admin, &format!("/history?q={a}%20{b}&channel_id={channel}"), &mut two).await?;
        timed(api, admin, "/history", &mut page).await?;
    }
    Ok(Round { one_word: (&one).into(), two_words_channel: (&two).into(), first_page: (&page).into() })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

pub async fn history(args: HistoryArgs) -> anyhow::Result<()> {
    loopback_only(&args.server)?;
    let api = Arc::new(Api::new(&args.server));
    let admin = api.login("admin", &args.admin_password).await?;
    // One online operator takes every conversation (nobody waits in a queue: a
    // 20,000-long queue is another measurement); their console's events are read and dropped.
    // Names carry the process id, so runs can follow each other on one server.
    let run = std::process::id();
    let archivist = operator_online(&api, &admin, &format!("history-archivist-{run}")).await?;
    let mut channels = Vec::new();
    for name in ["history-a", "history-b"] {
        let body = json!({"name": format!("{name}-{run}"), "operator_ids": [archivist]});
        channels.push(api.post("/channels", Some(&admin), body).await?["id"].as_u64().context("no id")?);
    }
    let probe = Arc::new(Probe {
        phases: [Mutex::new(histogram()), Mutex::new(histogram())],
        phase: AtomicUsize::new(0),
        running: AtomicBool::new(true),
    });
    start_probe(&api, &admin, &format!("history-probe-{run}"), probe.clone()).await?;

    // The warm-up does once what the measured part does (hold, close,
    // search), so "before" already holds what a server keeps once it has.
    let already = archived_total(&api).await?;
    let mut rng = Rng(0x5eed);
    let mut warm_up_mb = Vec::new();
    for round in 1..=args.warm_up_rounds {
        eprintln!("warm-up {round}/{}: {} conversations", args.warm_up_rounds, args.warm_up);
        let warm = fill(&api, &args, &channels, args.warm_up, args.messages, round as u64).await?;
        close_all(&api, warm, args.close_rate).await?;
        until_archived(&api, already + (round * args.warm_up) as f64).await?;
        if round < args.warm_up_rounds {
            warm_up_mb.push(settled_rss(args.server_pid).await?);
        }
    }
    eprintln!("searches");
    search_round(&api, &admin, &channels, args.queries, &mut rng).await?;
    let before_mb = settled_rss(args.server_pid).await?;

    eprintln!("filling: {} conversations × {} messages", args.conversations, args.messages);
    let started = Instant::now();
    let tokens = fill(&api, &args, &channels, args.conversations, args.messages, args.warm_up_rounds as u64 + 1).await?;
    let fill_s = started.elapsed().as_secs_f64();
    let held_mb = settled_rss(args.server_pid).await?;

    eprintln!("closing them all");
    // The probe's baseline, with everything held, as long as the closing will take; then the same probe while all leave.
    probe.phases[0].lock().reset();
    tokio::time::sleep(Duration::from_secs_f64(args.conversations as f64 / args.close_rate as f64)).await;
    probe.phase.store(1, Ordering::Relaxed);
    let started = Instant::now();
    let close_took = close_all(&api, tokens, args.close_rate).await?;
    until_archived(&api, already + (args.warm_up * args.warm_up_rounds + args.conversations) as f64).await?;
    let archive_took = started.elapsed();
    probe.running.store(false, Ordering::Relaxed);
    let after_mb = settled_rss(args.server_pid).await?;
    let closing = Closing {
        conversations: args.conversations,
        closed_per_s: args.conversations as f64 / close_took.as_secs_f64(),
        archived_per_s: args.conversations as f64 / archive_took.as_secs_f64(),
        probe_before: Percentiles::from(&*probe.phases[0].lock()),
        probe_during: Percentiles::from(&*probe.phases[1].lock()),
    };

    eprintln!("{} live conversations, then {} rounds of searches", args.live, args.rounds);
    fill(&api, &args, &channels, args.live, 5, 3).await?;
    let mut rounds = Vec::new();
    for _ in 0..args.rounds {
        rounds.push(search_round(&api, &admin, &channels, args.queries, &mut rng).await?);
    }
    let median_p95_ms = [
        median(rounds.iter().map(|r| r.one_word.p95_ms).collect()),
        median(rounds.iter().map(|r| r.two_words_channel.p95_ms).collect()),
        median(rounds.iter().map(|r| r.first_page.p95_ms).collect()),
    ];
    let report = Report {
        // Each also holds "… joined the conversation" and "Visitor left the conversation".
        archived_messages: (args.warm_up * args.warm_up_rounds + args.conversations) * (args.messages + 2),
        fill_s,
        rss: Rss { warm_up_mb, before_mb, held_mb, after_mb, after_over_before: after_mb / before_mb },
        closing,
        rounds,
        median_p95_ms,
    };
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    print(&report);
    Ok(())
}

fn print(r: &Report) {
    println!("| measure | value |");
    println!("|---|---|");
    println!("| archived messages (visitor lines, 'joined', 'left') | {} |", r.archived_messages);
    if !r.rss.warm_up_mb.is_empty() {
        let rounds: Vec<String> = r.rss.warm_up_mb.iter().map(|mb| format!("{mb:.1}")).collect();
        println!("| RSS after the warm-up rounds before the last (MB) | {} |", rounds.join(" · "));
    }
    println!(
        "| RSS before / held / after (MB) | {:.1} / {:.1} / {:.1} (after/before {:.3}) |",
        r.rss.before_mb, r.rss.held_mb, r.rss.after_mb, r.rss.after_over_before
    );
    let c = &r.closing;
    println!("| {} conversations closed: leaves/s, archived/s | {:.0} / {:.0} |", c.conversations, c.closed_per_s, c.archived_per_s);
    println!("| probe delivery p50 / p99 before closing (ms) | {:.2} / {:.2} |", c.probe_before.p50_ms, c.probe_before.p99_ms);
    println!("| probe delivery p50 / p99 while closing (ms) | {:.2} / {:.2} |", c.probe_during.p50_ms, c.probe_during.p99_ms);
    for (i, round) in r.rounds.iter().enumerate() {
        println!(
            "| round {}: p50 / p95 ms — one word; two words + channel; first page | {:.2} / {:.2}; {:.2} / {:.2}; {:.2} / {:.2} |",
            i + 1,
            round.one_word.p50_ms,
            round.one_word.p95_ms,
            round.two_words_channel.p50_ms,
            round.two_words_channel.p95_ms,
            round.first_page.p50_ms,
            round.first_page.p95_ms
        );
    }
    let [a, b, c] = r.median_p95_ms;
    println!("| median p95 (ms): one word; two words + channel; first page | {a:.2}; {b:.2}; {c:.2} |");
}
