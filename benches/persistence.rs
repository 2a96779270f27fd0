//! Durability benchmarks: `cargo bench --bench persistence`.
//!
//! 1. Journal throughput, 64 concurrent writers, `--fsync always` (group
//!    commit) against `batch` and against a single writer.
//! 2. Snapshot write and restore of 1,000,000 messages over 10,000
//!    conversations: the file alone, a full server restart on it, and a live
//!    snapshot (capture time, longest actor pause, write time).
//! 3. p99 message delivery latency (visitor `send` → operator receives it)
//!    with and without snapshots being taken.
//!
//! Each figure is the median of several runs; `BENCH_SCALE=0.1` shrinks the
//! state for a quick look. Results go to BENCHMARKS.md by hand, with the machine.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use switchboard::auth::hash_password;
use switchboard::config::Config;
use switchboard::domain::directory::{Directory, NewChannel, NewOperator};
use switchboard::domain::operator::Role;
use switchboard::persist::journal::{FsyncMode, Journal};
use switchboard::persist::records::{
    AuthorKindV1, ConversationV1, ConversationV3, DirectoryV5, HeaderV1, KindV1, MessageV1, RecordV1, SnapshotV6, StatusV1, VisitorV1,
};
use switchboard::persist::snapshot;
use switchboard::startup::Application;
use tempfile::TempDir;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const RUNS: usize = 3;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn scale() -> f64 {
    std::env::var("BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0)
}

/// Data dirs on the real disk (under `target/`), where `fdatasync` costs what it costs in production.
fn data_dir() -> TempDir {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&base).unwrap();
    TempDir::new_in(base).unwrap()
}

fn message(id: u64, body: String) -> MessageV1 {
    let operator = id.is_multiple_of(2);
    MessageV1 {
        id,
        author_kind: if operator { AuthorKindV1::Operator } else { AuthorKindV1::Visitor },
        author_id: operator.then_some(1),
        author_name: if operator { "Administrator".into() } else { "Visitor".into() },
        body,
        step_id: None,
        answers: None,
        created_at_ms: 1_795_000_000_000 + id as i64,
        client_ref: Some(format!("ref-{id}")),
    }
}

// ---- 1. journal throughput ----

fn journal_throughput(mode: FsyncMode, writers: usize, window: Duration) -> f64 {
    let dir = data_dir();
    let (journal, _writer) = Journal::start(dir.path(), 1, mode, Duration::from_millis(50)).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let acked = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + window;
    runtime.block_on(async {
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let (journal, acked) = (journal.clone(), acked.clone());
                tokio::spawn(async move {
                    let mut id = 0;
                    while Instant::now() < deadline {
                        id += 1;
                        let body = format!("writer {w} says hello, this is message number {id} of the run");
                        let record = RecordV1::ConversationChanged { id: w as u64, header: None, messages: vec![message(id, body)] };
                        journal.append(&record).await.unwrap();
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    acked.load(Ordering::Relaxed) as f64 / window.as_secs_f64()
}

// ---- 2. snapshot and restore ----

fn synthetic_state(conversations: u64, per_conversation: u64) -> SnapshotV6 {
    let mut directory = Directory::default();
    let admin = NewOperator {
        login: "admin".into(),
        name: "Administrator".into(),
        password_hash: hash_password("bench").unwrap(),
        role: Role::Admin,
        languages: vec!["en".into()],
        country: None,
    };
    let admin = directory.create_operator(admin).unwrap().id;
    let channel = NewChannel {
        name: "Website".into(),
        operator_ids: [admin].into(),
        max_sessions: None,
        chatbot_id: None,
        options: Default::default(),
        notify_email: None,
    };
    let channel = directory.create_channel(channel).unwrap().id.0;
    let conversations = (1..=conversations)
        .map(|c| ConversationV1 {
            id: c,
            kind: KindV1::Livechat,
            channel_id: Some(channel),
            created_at_ms: 1_795_000_000_000,
            visitor: Some(VisitorV1 { name: format!("Visitor #{c}"), lang: Some("en".into()), country: None, key: None }),
            visitor_token: Some(format!("{c:064x}")),
            script: None,
            header: HeaderV1 {
                status: StatusV1::Closed,
                expertise_ids: vec![],
                members: vec![admin.0],
                assignment: None,
                need_help_since_ms: None,
                bot: None,
                history: vec![],
                help_requests: vec![],
                abandoned: false,
            },
            messages: (1..=per_conversation)
                .map(|m| message(m, format!("Message {m} of conversation {c}: could you check my last invoice, please?")))
                .collect(),
        })
        .map(ConversationV3::from)
        .collect();
    SnapshotV6 { journal_from: 1, directory: DirectoryV5::from(&directory), tokens: vec![], conversations }
}

struct SnapshotFigures {
    file_write_ms: f64,
    file_read_ms: f64,
    bytes: u64,
}

fn snapshot_file(state: &SnapshotV6) -> SnapshotFigures {
    let mut writes = Vec::new();
    let mut reads = Vec::new();
    let mut bytes = 0;
    for _ in 0..RUNS {
        let dir = data_dir();
        let started = Instant::now();
        bytes = snapshot::write(dir.path(), state).unwrap();
        writes.push(started.elapsed().as_secs_f64() * 1e3);
        let started = Instant::now();
        let back = snapshot::read(&snapshot::path(dir.path(), state.journal_from)).unwrap();
        reads.push(started.elapsed().as_secs_f64() * 1e3);
        assert_eq!(back.conversations.len(), state.conversations.len());
    }
    SnapshotFigures { file_write_ms: median(writes), file_read_ms: median(reads), bytes }
}

async fn call(http: &reqwest::Client, base: &str, path: &str, token: &str, body: Value) -> Value {
    let res = http.post(format!("{base}{path}")).bearer_auth(token).json(&body).send().await.unwrap();
    assert!(res.status().is_success(), "{path}: {}", res.status());
    res.json().await.unwrap_or(Value::Null)
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: String) -> Ws {
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

fn percentile(mut values: Vec<f64>, p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * p) as usize]
}

/// Visitors send for `window`; returns every send → operator-delivery latency in ms.
async fn delivery_latencies(base: &str, http: &reqwest::Client, admin: &str, channel: u64, window: Duration) -> Vec<f64> {
    let ws_base = base.replace("http://", "ws://");
    let mut agent = connect(format!("{ws_base}/ws/agent?token={admin}")).await;
    while let Some(Ok(frame)) = agent.next().await {
        if matches!(&frame, WsMessage::Text(t) if t.contains("\"hello\"")) {
            break;
        }
    }
    actix_rt::time::sleep(Duration::from_millis(100)).await;
    let epoch = Instant::now();
    let mut visitors = Vec::new();
    for _ in 0..16 {
        let opened = call(http, base, &format!("/api/v1/channels/{channel}/sessions"), "", json!({})).await;
        let token = opened["visitor_token"].as_str().unwrap().to_owned();
        visitors.push(connect(format!("{ws_base}/ws/visitor?token={token}")).await);
    }
    let senders: Vec<_> = visitors
        .into_iter()
        .enumerate()
        .map(|(v, mut ws)| {
            actix_rt::spawn(async move {
                let mut i = 0u64;
                let stop = Instant::now() + window;
                let mut ticks = actix_rt::time::interval(Duration::from_millis(5));
                while Instant::now() < stop {
                    ticks.tick().await;
                    i += 1;
                    let sent = epoch.elapsed().as_nanos();
                    let frame = json!({"type": "send", "ref": format!("{v}-{i}"), "body": format!("t={sent}")});
                    if ws.send(WsMessage::Text(frame.to_string())).await.is_err() {
                        return;
                    }
                    // Drain our own events so the server never sees a slow client.
                    while let Ok(Some(_)) = actix_rt::time::timeout(Duration::ZERO, ws.next()).await {}
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let stop = Instant::now() + window + Duration::from_millis(500);
    while let Ok(Some(Ok(frame))) = actix_rt::time::timeout(stop.saturating_duration_since(Instant::now()), agent.next()).await {
        let WsMessage::Text(text) = frame else { continue };
        let event: Value = serde_json::from_str(&text).unwrap();
        if event["type"] != "message" || event["message"]["author"]["kind"] != "visitor" {
            continue;
        }
        if let Some(sent) = event["message"]["body"].as_str().and_then(|b| b.strip_prefix("t=")).and_then(|t| t.parse::<u128>().ok()) {
            latencies.push((epoch.elapsed().as_nanos() - sent) as f64 / 1e6);
        }
    }
    for sender in senders {
        let _ = sender.await;
    }
    latencies
}

fn main() {
    let scale = scale();
    let window = Duration::from_secs(2);
    println!("## Journal throughput (acknowledged appends/s, median of {RUNS} runs of {} s)", window.as_secs());
    for (label, mode, writers) in [
        ("--fsync always, 64 writers", FsyncMode::Always, 64),
        ("--fsync always, 1 writer", FsyncMode::Always, 1),
        ("--fsync batch, 64 writers", FsyncMode::Batch, 64),
    ] {
        let rates: Vec<f64> = (0..RUNS).map(|_| journal_throughput(mode, writers, window)).collect();
        println!("| {label} | {:.0} |", median(rates));
    }

    let conversations = (10_000.0 * scale) as u64;
    let state = synthetic_state(conversations, 100);
    let messages = conversations * 100;
    println!("\n## Snapshot of {messages} messages over {conversations} conversations (median of {RUNS})");
    let file = snapshot_file(&state);
    println!("| snapshot file: encode + write + fsync | {:.0} ms ({} MB) |", file.file_write_ms, file.bytes / 1_000_000);
    println!("| snapshot file: read + verify + decode | {:.0} ms |", file.file_read_ms);

    let dir = data_dir();
    snapshot::write(dir.path(), &state).unwrap();
    drop(state);
    actix_rt::System::new().block_on(async move {
        let mut config = Config::for_tests(dir.path().to_owned());
        config.actor_threads = 2;
        config.http.workers = 2;
        config.ws.max_connections = 10_000;
        let started = Instant::now();
        let app = Application::build(config).await.unwrap();
        println!("| full restart: recover + start {conversations} actors + router | {:.0} ms |", started.elapsed().as_secs_f64() * 1e3);
        let base = format!("http://{}", app.local_addr());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = actix_rt::spawn(app.run_until_stopped(async {
            let _ = stop_rx.await;
        }));
        let http = reqwest::Client::new();
        let admin = call(&http, &base, "/api/v1/auth/login", "", json!({"login": "admin", "password": "bench"})).await["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut stats = Vec::new();
        for _ in 0..RUNS {
            stats.push(call(&http, &base, "/api/v1/admin/snapshot", &admin, json!({})).await);
        }
        let figure = |key: &str| median(stats.iter().map(|s| s[key].as_f64().unwrap()).collect());
        println!("| live snapshot: capture from actors | {:.0} ms |", figure("capture_ms"));
        println!("| live snapshot: longest pause of one actor | {:.2} ms |", figure("longest_actor_pause_ms"));
        println!("| live snapshot: encode + write + fsync | {:.0} ms |", figure("write_ms"));

        println!("\n## Delivery latency, visitor send → operator receives (16 visitors × 200 msg/s, {} s each)", window.as_secs());
        let channel =
            call(&http, &base, "/api/v1/channels", &admin, json!({"name": "Bench", "operator_ids": [1]})).await["id"].as_u64().unwrap();
        let quiet = delivery_latencies(&base, &http, &admin, channel, window).await;
        let snapshots = {
            let (http, base, admin) = (http.clone(), base.clone(), admin.clone());
            actix_rt::spawn(async move {
                let mut taken = 0;
                let stop = Instant::now() + window;
                while Instant::now() < stop {
                    call(&http, &base, "/api/v1/admin/snapshot", &admin, json!({})).await;
                    taken += 1;
                }
                taken
            })
        };
        let busy = delivery_latencies(&base, &http, &admin, channel, window).await;
        let taken = snapshots.await.unwrap();
        let (p50q, p99q, p50b, p99b) = (
            percentile(quiet.clone(), 0.5),
            percentile(quiet.clone(), 0.99),
            percentile(busy.clone(), 0.5),
            percentile(busy.clone(), 0.99),
        );
        println!("| without snapshots | {} messages | p50 {p50q:.2} ms | p99 {p99q:.2} ms |", quiet.len());
        println!("| with {taken} back-to-back snapshots | {} messages | p50 {p50b:.2} ms | p99 {p99b:.2} ms |", busy.len());
        println!("| p99 ratio (with / without) | {:.2} |", p99b / p99q);
        let _ = stop_tx.send(());
        let _ = server.await;
    });
}
