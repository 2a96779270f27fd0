//! `loadgen`: simulated visitors and operators against a Switchboard server,
//! plus a WebSocket echo baseline measured with the same client code.
//!
//! ```text
//! loadgen run  --server http://127.0.0.1:8080 --admin-password … --visitors 500 --ramp 10s
//! loadgen echo-server --bind 127.0.0.1:9001
//! loadgen echo --url ws://127.0.0.1:9001 --connections 100 --duration 10s
//! loadgen churn --server-pid $(pgrep -n switchboard) --sessions 10000 --cycles 5
//! loadgen history --server-pid $(pgrep -n switchboard) --conversations 20000 --messages 50
//! loadgen relay --pairs 200 --window 8 --duration 10s --echo-url ws://127.0.0.1:9001
//! loadgen presence --operators 1000 --presence batched
//! ```
//!
//! Traffic goes to loopback only and every run is bounded in time and count.
//! Latencies go into HDR histograms; a message that was acknowledged to its
//! sender but never reached the other side is counted as **lost**.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message as WsMessage;

mod churn;
mod history;
mod presence;
mod relay;

#[derive(Parser)]
#[command(about = "Load generator for Switchboard (loopback only)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Set up a team through the API and drive visitors and operators against it.
    Run(RunArgs),
    /// A minimal WebSocket echo server: the loopback baseline.
    EchoServer {
        #[arg(long, default_value = "127.0.0.1:9001")]
        bind: SocketAddr,
    },
    /// Measure round trips against an echo server.
    Echo(EchoArgs),
    /// Visitor sockets connecting and closing: memory per connection, leaks, soak.
    Churn(churn::ChurnArgs),
    /// History at a year's size: memory after archiving, archive rate, search latency.
    History(history::HistoryArgs),
    /// Visitor ↔ operator pairs relaying to each other: the per-message cost against the echo baseline.
    Relay(relay::RelayArgs),
    /// Operators opening their consoles together: frames per operator as the team grows.
    Presence(presence::PresenceArgs),
}

#[derive(Args, Clone)]
struct RunArgs {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    #[arg(long, env = "SWITCHBOARD_ADMIN_PASSWORD")]
    admin_password: String,
    #[arg(long, default_value_t = 20)]
    operators: usize,
    /// Visitors in all; they arrive evenly over `--ramp`.
    #[arg(long, default_value_t = 200)]
    visitors: usize,
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    ramp: Duration,
    /// Hard limit on the whole run (set-up excluded).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Messages each visitor sends (each waits for the operator's reply).
    #[arg(long, default_value_t = 3)]
    messages: usize,
    /// Operators answer each visitor message after this long.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    think: Duration,
    /// Spread each think time evenly over `think × (1 ± jitter)` (0 to 1), so
    /// replies stop arriving in the phase the ramp gave them: with a fixed
    /// think, a burst at the start comes back every cycle.
    #[arg(long, default_value_t = 0.0, value_parser = parse_share)]
    think_jitter: f64,
    /// Visitors stay connected, idle, until the end instead of leaving.
    #[arg(long)]
    stay: bool,
    /// Per-operator cap on concurrent conversations.
    #[arg(long, default_value_t = 1000)]
    max_sessions: u32,
    /// Share of conversations an operator flags Looking for help, once, after
    /// its first reply (another operator joins).
    #[arg(long, default_value_t = 0.05, value_parser = parse_share)]
    help_rate: f64,
    /// Report the server's RSS and CPU (a local process).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Also measure the echo baseline against this echo server, with the same connection count.
    #[arg(long)]
    echo_url: Option<String>,
    /// Write the report as JSON here too.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Names of everything created start with this (several runs can share a server).
    #[arg(long, default_value = "lg")]
    prefix: String,
}

#[derive(Args, Clone)]
struct EchoArgs {
    #[arg(long, default_value = "ws://127.0.0.1:9001")]
    url: String,
    #[arg(long, default_value_t = 100)]
    connections: usize,
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Frames each connection keeps in flight.
    #[arg(long, default_value_t = 1)]
    window: usize,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.find(|c: char| !c.is_ascii_digit() && c != '.').map_or((text, "s"), |i| text.split_at(i));
    let value: f64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 10s or 250ms"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" | "" => value,
        "m" => value * 60.0,
        _ => return Err(format!("unknown unit in {text:?} (ms, s, m)")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

fn parse_share(text: &str) -> Result<f64, String> {
    text.parse().ok().filter(|share: &f64| (0.0..=1.0).contains(share)).ok_or_else(|| format!("{text:?} is not a share from 0 to 1"))
}

fn loopback_only(url: &str) -> anyhow::Result<()> {
    let host = url.split("://").nth(1).unwrap_or(url).split(['/', ':']).next().unwrap_or_default();
    if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
        bail!("loadgen only targets loopback (127.0.0.1), not {host}");
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run(args).await,
            Command::Churn(args) => churn::churn(args).await,
            Command::History(args) => history::history(args).await,
            Command::Relay(args) => relay::relay(args).await,
            Command::Presence(args) => presence::presence(args).await,
            Command::EchoServer { bind } => echo_server(bind).await,
            Command::Echo(args) => {
                loopback_only(&args.url)?;
                let rate = echo(&args).await?;
                println!("echo baseline: {rate:.0} round trips/s over {} connections, {} in flight each", args.connections, args.window);
                Ok(())
            }
        }
    })
}

// ---- the echo baseline ----

async fn echo_server(bind: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(bind).await?;
    eprintln!("echo server on ws://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else { return };
            while let Some(Ok(frame)) = ws.next().await {
                if frame.is_text() && ws.send(frame).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Round trips per second: each connection keeps `window` frames in flight,
/// sending one more for each that comes back.
async fn echo(args: &EchoArgs) -> anyhow::Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + args.duration;
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let (mut ws, _) = connect(args.url.clone()).await.context("connecting to the echo server")?;
        let (done, window) = (done.clone(), args.window.max(1));
        tasks.push(tokio::spawn(async move {
            let frame = json!({"type": "send", "body": "x".repeat(60)}).to_string();
            for _ in 0..window {
                if ws.send(WsMessage::Text(frame.clone())).await.is_err() {
                    return;
                }
            }
            while Instant::now() < deadline {
                if ws.next().await.is_none() || ws.send(WsMessage::Text(frame.clone())).await.is_err() {
                    return;
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / args.duration.as_secs_f64())
}

// ---- the run ----

/// Microsecond histograms up to a minute, 3 significant digits.
fn histogram() -> Histogram<u64> {
    // unwrap: constant, valid bounds.
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap()
}

#[derive(Default)]
struct Counters {
    sessions: AtomicU64,
    connected: AtomicU64,
    queued: AtomicU64,
    assigned: AtomicU64,
    delivered: AtomicU64,
    left: AtomicU64,
    /// Conversations flagged Looking for help, and joins of them (acknowledged).
    calls_for_help: AtomicU64,
    joins: AtomicU64,
}

/// When every visitor is through set-up: given an operator, or given up before.
/// Delivery of what is sent from then on is the load the run is about,
/// without the connection storm of its start.
struct SetUpClock {
    visitors: u64,
    through: AtomicU64,
    /// µs since `Shared::started`; `u64::MAX` until the last visitor is through.
    done_at_us: AtomicU64,
}

impl SetUpClock {
    fn new(visitors: u64) -> SetUpClock {
        SetUpClock { visitors, through: AtomicU64::new(0), done_at_us: AtomicU64::new(u64::MAX) }
    }

    /// One more visitor is through; the last one stops the clock at `now_us`.
    fn through(&self, now_us: u64) {
        if self.through.fetch_add(1, Ordering::Relaxed) + 1 == self.visitors {
            self.done_at_us.store(now_us, Ordering::Relaxed);
        }
    }

    fn done_before(&self, sent_us: u64) -> bool {
        sent_us >= self.done_at_us.load(Ordering::Relaxed)
    }
}

struct Shared {
    started: Instant,
    counters: Counters,
    time_to_operator: Mutex<Histogram<u64>>,
    delivery: Mutex<Histogram<u64>>,
    /// Delivery of messages sent once every visitor was through set-up.
    delivery_after_set_up: Mutex<Histogram<u64>>,
    set_up: SetUpClock,
    errors: Mutex<HashMap<String, u64>>,
    /// (conversation, message id) acknowledged to its sender, and delivered to the other side.
    acked: Mutex<HashSet<(u64, u64)>>,
    delivered: Mutex<HashSet<(u64, u64)>>,
    /// Operator id → expertise they hold.
    expertise_of: HashMap<u64, HashSet<u64>>,
    /// Conversations wanting expertise, and those that got an operator holding it.
    routed_wanting: AtomicU64,
    routed_to_expert: AtomicU64,
    /// Per operator: open conversations now and the most at once.
    load: Mutex<HashMap<u64, (u32, u32)>>,
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    fn error(&self, kind: impl Into<String>) {
        *self.errors.lock().entry(kind.into()).or_default() += 1;
    }

    fn record(histogram: &Mutex<Histogram<u64>>, micros: u64) {
        let _ = histogram.lock().record(micros.max(1));
    }

    /// A message stamped `sent` arrived at the other side.
    fn delivered(&self, conversation: u64, message: &Value, sent: u64) {
        let latency = self.now_us().saturating_sub(sent);
        Shared::record(&self.delivery, latency);
        if self.set_up.done_before(sent) {
            Shared::record(&self.delivery_after_set_up, latency);
        }
        self.delivered.lock().insert((conversation, message["id"].as_u64().unwrap_or_default()));
        self.counters.delivered.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts one visitor through set-up, once: when it gets an operator, or when
/// it gives up before (dropped), so one failed session does not leave the
/// run without an end of set-up.
struct SetUp<'a> {
    shared: &'a Shared,
    done: AtomicBool,
}

impl SetUp<'_> {
    fn done(&self) {
        if !self.done.swap(true, Ordering::Relaxed) {
            self.shared.set_up.through(self.shared.now_us());
        }
    }
}

impl Drop for SetUp<'_> {
    fn drop(&mut self) {
        self.done();
    }
}

/// A message body carrying its send time (µs since `started`), so the receiver measures delivery.
fn stamped(started: Instant, text: &str) -> String {
    format!("{text} t={}", started.elapsed().as_micros())
}

fn stamp_of(body: &str) -> Option<u64> {
    body.rsplit_once(" t=")?.1.parse().ok()
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    /// A client of `server`'s API. Pooled connections idle for 2 s are
    /// dropped: the server closes them after 5 s (actix's keep-alive), and one
    /// reused just as it does fails the request with a reset, which a busy
    /// machine made happen in a history run.
    fn new(server: &str) -> Api {
        let http = reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(2)).build().expect("an HTTP client");
        Api { http, base: server.trim_end_matches('/').to_owned() }
    }

    async fn call(&self, method: reqwest::Method, path: &str, token: Option<&str>, body: Option<Value>) -> anyhow::Result<Value> {
        let mut request = self.http.request(method, format!("{}/api/v1{path}", self.base)).timeout(Duration::from_secs(10));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let res = request.send().await?;
        let status = res.status();
        let text = res.text().await?;
        if !status.is_success() {
            bail!("{path}: {status} {text}");
        }
        Ok(if text.is_empty() { Value::Null } else { serde_json::from_str(&text)? })
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, token, Some(body)).await
    }

    /// The sum of every series of the server's metric `name` (0 when it has none yet).
    async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let text = self.http.get(format!("{}/metrics", self.base)).send().await?.text().await?;
        let series = text.lines().filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let value = if rest.starts_with('{') { rest.split_once("} ")?.1 } else { rest.strip_prefix(' ')? };
            value.trim().parse::<f64>().ok()
        });
        Ok(series.sum())
    }

    /// A session token for `login`.
    async fn login(&self, login: &str, password: &str) -> anyhow::Result<String> {
        let session = self.post("/auth/login", None, json!({"login": login, "password": password})).await;
        Ok(session.with_context(|| format!("login as {login}"))?["token"].as_str().context("no token")?.to_owned())
    }

    /// Creates an operator called `login` with `fields` (`name`, `languages`…;
    /// the name defaults to the login) and logs them in: (id, token).
    async fn new_operator(&self, admin: &str, login: &str, mut fields: Value) -> anyhow::Result<(u64, String)> {
        const PASSWORD: &str = "loadgen-pw";
        fields["login"] = login.into();
        fields["password"] = PASSWORD.into();
        fields["role"] = "user".into();
        if fields.get("name").is_none() {
            fields["name"] = login.into();
        }
        let id = self.post("/users", Some(admin), fields).await?["id"].as_u64().context("no user id")?;
        Ok((id, self.login(login, PASSWORD).await?))
    }

    /// `n` operators, logins `{prefix}-op-{i}`, each with `fields(i)`: (id, token)
    /// in creation order. A few at a time: each is a password hash on the server.
    async fn new_operators(
        &self,
        admin: &str,
        prefix: &str,
        n: usize,
        fields: impl Fn(usize) -> Value,
    ) -> anyhow::Result<Vec<(u64, String)>> {
        futures_util::stream::iter(0..n)
            .map(|i| {
                let (login, fields) = (format!("{prefix}-op-{i}"), fields(i));
                async move { self.new_operator(admin, &login, fields).await }
            })
            .buffered(4)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }
}

/// A socket read in the background until it is taken back, each frame handed
/// to a callback: a client answers the server's pings only while it reads, and
/// the server drops a socket after 30 s without a pong, which setting up a
/// thousand sockets can outlast.
struct Parked {
    stop: tokio::sync::oneshot::Sender<()>,
    reader: tokio::task::JoinHandle<anyhow::Result<Ws>>,
}

impl Parked {
    fn new(mut ws: Ws, mut on_frame: impl FnMut(&WsMessage) + Send + 'static) -> Parked {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let reader = tokio::spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    _ = &mut stopped => return Ok(ws),
                    frame = ws.next() => on_frame(&frame.context("closed while parked")??),
                }
            }
        });
        Parked { stop, reader }
    }

    /// Stops reading and gives the socket back.
    async fn take(self) -> anyhow::Result<Ws> {
        let _ = self.stop.send(());
        self.reader.await?
    }
}

struct Team {
    admin: String,
    /// (id, token) per operator.
    operators: Vec<(u64, String)>,
    expertise: Vec<u64>,
    bot_channel: u64,
    plain_channel: u64,
    /// The bot's selection step and its answer per expertise.
    question: u64,
    answers: Vec<u64>,
}

/// Expertise, operators (languages and expertise spread over them), a chatbot
/// that forwards by expertise, and two channels: with and without the bot.
async fn set_up(api: &Api, args: &RunArgs) -> anyhow::Result<(Team, HashMap<u64, HashSet<u64>>)> {
    let admin = api.login("admin", &args.admin_password).await?;
    let p = &args.prefix;
    let run = std::process::id();
    let kinds = args.operators.clamp(1, 10);
    let mut expertise = Vec::new();
    for i in 0..kinds {
        let e = api.post("/expertise", Some(&admin), json!({"name": format!("{p}-{run}-topic-{i}")})).await?;
        expertise.push(e["id"].as_u64().unwrap_or_default());
    }
    let languages = ["en", "fr", "de", "es"];
    let operators = api
        .new_operators(
            &admin,
            &format!("{p}-{run}"),
            args.operators,
            |i| json!({"name": format!("Operator {i}"), "languages": [languages[i % languages.len()]]}),
        )
        .await?;
    let mut holds = HashMap::new();
    for (i, (id, _)) in operators.iter().enumerate() {
        let mine: HashSet<u64> = [expertise[i % kinds]].into_iter().chain((i % 3 == 0).then(|| expertise[(i + 1) % kinds])).collect();
        api.call(reqwest::Method::PATCH, &format!("/users/{id}"), Some(&admin), Some(json!({"expertise_ids": mine}))).await?;
        holds.insert(*id, mine);
    }
    let answers: Vec<Value> = (0..kinds).map(|i| json!({"id": 100 + i, "label": format!("Topic {i}")})).collect();
    let mut steps = vec![
        json!({"id": 1, "type": "text", "message": "Hello from the load test bot"}),
        json!({"id": 2, "type": "question_selection", "message": "Which topic?", "answers": answers}),
    ];
    for (i, e) in expertise.iter().enumerate() {
        steps.push(json!({"id": 10 + i, "type": "forward_operator", "message": "Connecting you", "only_if_answer_ids": [100 + i], "expertise_ids": [e]}));
    }
    let chatbot =
        api.post("/chatbots", Some(&admin), json!({"title": format!("{p} bot"), "steps": steps})).await?["id"].as_u64().unwrap_or_default();
    let ids: Vec<u64> = operators.iter().map(|(id, _)| *id).collect();
    let channel = |name: &str, bot: Option<u64>| json!({"name": format!("{p}-{run}-{name}"), "operator_ids": ids, "max_sessions": args.max_sessions, "chatbot_id": bot});
    let bot_channel = api.post("/channels", Some(&admin), channel("bot", Some(chatbot))).await?["id"].as_u64().unwrap_or_default();
    let plain_channel = api.post("/channels", Some(&admin), channel("plain", None)).await?["id"].as_u64().unwrap_or_default();
    let answers = (0..kinds).map(|i| 100 + i as u64).collect();
    Ok((Team { admin, operators, expertise, bot_channel, plain_channel, question: 2, answers }, holds))
}

/// A WebSocket with Nagle's algorithm off, as a latency-sensitive client should be.
async fn connect(
    url: String,
) -> Result<(Ws, tokio_tungstenite::tungstenite::handshake::client::Response), tokio_tungstenite::tungstenite::Error> {
    tokio_tungstenite::connect_async_with_config(url, None, true).await
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn ws_url(base: &str, path: &str) -> String {
    format!("{}{path}", base.replacen("http://", "ws://", 1))
}

/// An operator: takes assignments, answers every visitor message after the
/// think time, sometimes asks for help, joins others' calls for help.
/// When a run stops sending, and when it stops listening: in between, messages
/// already acknowledged still arrive, so a run cut by `--duration` does not
/// count what was in flight at the cut as lost.
#[derive(Clone, Copy)]
struct Window {
    send_until: Instant,
    read_until: Instant,
}

/// How long receivers keep listening after the senders stopped.
const DRAIN: Duration = Duration::from_secs(2);

impl Window {
    fn sending(&self) -> bool {
        Instant::now() < self.send_until
    }

    fn read_left(&self) -> Duration {
        self.read_until.saturating_duration_since(Instant::now())
    }
}

async fn operator(shared: Arc<Shared>, base: String, id: u64, token: String, args: RunArgs, window: Window) {
    let Ok((ws, _)) = connect(ws_url(&base, &format!("/ws/agent?token={token}"))).await else {
        shared.error("operator connect");
        return;
    };
    let (mut tx, mut rx) = ws.split();
    let (out, mut outbox) = tokio::sync::mpsc::unbounded_channel::<Value>();
    tokio::spawn(async move {
        while let Some(frame) = outbox.recv().await {
            if tx.send(WsMessage::Text(frame.to_string())).await.is_err() {
                return;
            }
        }
    });
    let mut seq = 0u64;
    let mut mine: HashSet<u64> = HashSet::new();
    // Conversations this operator will flag Looking for help after its first
    // reply: every `1 / help_rate`-th one it is assigned.
    let (mut taken, mut to_flag) = (0u64, HashSet::new());
    loop {
        let frame = match tokio::time::timeout(window.read_left(), rx.next()).await {
            Err(_) => return,
            Ok(Some(Ok(frame))) => frame,
            Ok(end) => {
                let why = match end {
                    Some(Err(e)) => e.to_string(),
                    _ => "stream ended".into(),
                };
                return shared.error(format!("operator disconnected: {why}"));
            }
        };
        if let WsMessage::Close(reason) = &frame {
            return shared
                .error(format!("operator closed by server: {}", reason.as_ref().map(|r| r.reason.to_string()).unwrap_or_default()));
        }
        let WsMessage::Text(text) = frame else { continue };
        let Ok(event) = serde_json::from_str::<Value>(&text) else { continue };
        match event["type"].as_str().unwrap_or_default() {
            "assigned" | "invited" => {
                let conversation = event["conversation"]["id"].as_u64().unwrap_or_default();
                if event["type"] == "assigned" && mine.insert(conversation) {
                    taken += 1;
                    if every_nth(taken, args.help_rate) {
                        to_flag.insert(conversation);
                    }
                    let mut load = shared.load.lock();
                    let entry = load.entry(id).or_default();
                    entry.0 += 1;
                    entry.1 = entry.1.max(entry.0);
                }
            }
            "closed" | "member_left" if event["type"] == "closed" || event["user"]["id"] == id => {
                let conversation = event["conversation_id"].as_u64().unwrap_or_default();
                to_flag.remove(&conversation);
                if mine.remove(&conversation) {
                    if let Some(entry) = shared.load.lock().get_mut(&id) {
                        entry.0 = entry.0.saturating_sub(1);
                    }
                }
            }
            // Only the assigned operator answers; one who joined to help stays quiet.
            "message"
                if event["message"]["author"]["kind"] == "visitor"
                    && mine.contains(&event["conversation_id"].as_u64().unwrap_or_default()) =>
            {
                let conversation = event["conversation_id"].as_u64().unwrap_or_default();
                let body = event["message"]["body"].as_str().unwrap_or_default().to_owned();
                if let Some(sent) = stamp_of(&body) {
                    shared.delivered(conversation, &event["message"], sent);
                }
                seq += 1;
                let (out, shared, think) = (out.clone(), shared.clone(), spread(args.think, args.think_jitter, seq));
                let help = to_flag.remove(&conversation);
                tokio::spawn(async move {
                    tokio::time::sleep(think).await;
                    if !window.sending() {
                        return;
                    }
                    let reply = stamped(shared.started, &format!("re: {}", body.split(" t=").next().unwrap_or_default()));
                    let _ =
                        out.send(json!({"type": "send", "ref": format!("o{id}-{seq}"), "conversation_id": conversation, "body": reply}));
                    if help {
                        let _ = out.send(json!({"type": "set_status", "ref": format!("h{id}-{seq}"), "conversation_id": conversation, "status": "need_help"}));
                    }
                });
            }
            "need_help" => {
                // Like a person: answer the oldest call that is ours to answer (starred: our expertise).
                let ours = |e: &&Value| e["starred"] == true && !e["operator_ids"].as_array().is_some_and(|m| m.contains(&json!(id)));
                let board = event["conversations"].as_array().filter(|_| window.sending());
                if let Some(entry) = board.and_then(|board| board.iter().find(ours)) {
                    let _ = out.send(json!({"type": "join", "ref": format!("j{id}-{}", entry["id"]), "conversation_id": entry["id"]}));
                }
            }
            "ack" if event["message"].is_object() => {
                let m = &event["message"];
                shared.acked.lock().insert((m["conversation_id"].as_u64().unwrap_or_default(), m["id"].as_u64().unwrap_or_default()));
            }
            "ack" => {
                let counter = match event["ref"].as_str().and_then(|r| r.chars().next()) {
                    Some('h') => &shared.counters.calls_for_help,
                    Some('j') => &shared.counters.joins,
                    _ => continue,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
            "error" => {
                let code = event["error"]["code"].as_str().unwrap_or("error");
                // Expected races, by design: two operators joining the same call (one
                // gets 409), a call for help on a conversation its visitor just left.
                if !(code == "conflict" && event["ref"].as_str().is_some_and(|r| r.starts_with(['j', 'h']))) {
                    shared.error(format!("operator {code}"));
                }
            }
            _ => {}
        }
    }
}

/// Whether the `n`-th of a series is one of the `share` picked: spread evenly,
/// one in every `1 / share`.
fn every_nth(n: u64, share: f64) -> bool {
    share > 0.0 && (n as f64 * share).fract() + share >= 1.0
}

/// The `n`-th think time of a series, spread evenly over `think × (1 ± jitter)`:
/// the golden-ratio sequence fills the range without a random source.
fn spread(think: Duration, jitter: f64, n: u64) -> Duration {
    const GOLDEN: f64 = 0.618_033_988_749_894_9;
    think.mul_f64(1.0 - jitter + 2.0 * jitter * (n as f64 * GOLDEN).fract())
}

/// A visitor: opens a session (bot channel: answers the topic question;
/// plain channel: names the expertise), waits for an operator, exchanges
/// messages, then leaves (or stays until the end with `--stay`).
async fn visitor(shared: Arc<Shared>, api: Arc<Api>, team: Arc<Team>, n: usize, args: RunArgs, window: Window) {
    let started = Instant::now();
    let set_up = SetUp { shared: &shared, done: AtomicBool::new(false) };
    let topic = n % team.expertise.len();
    let with_bot = n % 10 < 7;
    let body = if with_bot {
        json!({"visitor_name": format!("V{n}")})
    } else {
        json!({"visitor_name": format!("V{n}"), "expertise_ids": [team.expertise[topic]]})
    };
    let channel = if with_bot { team.bot_channel } else { team.plain_channel };
    let opened = match api.post(&format!("/channels/{channel}/sessions"), None, body).await {
        Ok(opened) => opened,
        Err(e) => return shared.error(format!("session: {}", e.to_string().chars().take(60).collect::<String>())),
    };
    shared.counters.sessions.fetch_add(1, Ordering::Relaxed);
    let conversation = opened["conversation_id"].as_u64().unwrap_or_default();
    let token = opened["visitor_token"].as_str().unwrap_or_default().to_owned();
    let Ok((ws, _)) = connect(ws_url(&api.base, &format!("/ws/visitor?token={token}"))).await else {
        return shared.error("visitor connect");
    };
    shared.counters.connected.fetch_add(1, Ordering::Relaxed);
    let (mut tx, mut rx) = ws.split();
    let mut sent = 0;
    let mut replies = 0;
    let mut queued = false;
    let got_operator = |operator: u64| {
        Shared::record(&shared.time_to_operator, started.elapsed().as_micros() as u64);
        shared.counters.assigned.fetch_add(1, Ordering::Relaxed);
        set_up.done();
        shared.routed_wanting.fetch_add(1, Ordering::Relaxed);
        if shared.expertise_of.get(&operator).is_some_and(|held| held.contains(&team.expertise[topic])) {
            shared.routed_to_expert.fetch_add(1, Ordering::Relaxed);
        }
    };
    let send = |text: String, i: usize| json!({"type": "send", "ref": format!("v{n}-{i}"), "body": text}).to_string();
    while let Ok(Some(Ok(frame))) = tokio::time::timeout(window.read_left(), rx.next()).await {
        let WsMessage::Text(text) = frame else { continue };
        let Ok(event) = serde_json::from_str::<Value>(&text) else { continue };
        let mut next = None;
        match event["type"].as_str().unwrap_or_default() {
            "hello" if with_bot => {
                let answer = json!({"type": "answer", "ref": format!("a{n}"), "step_id": team.question, "answer_id": team.answers[topic]});
                next = Some(answer.to_string());
            }
            // Without a bot the router decided during the session request: the greeting names the operator.
            "hello" => {
                if let Some(operator) = event["conversation"]["operator"]["id"].as_u64() {
                    got_operator(operator);
                    sent += 1;
                    next = Some(send(stamped(shared.started, &format!("hello {n}")), sent));
                }
            }
            "status" if event["status"] == "queued" && !queued => {
                queued = true;
                shared.counters.queued.fetch_add(1, Ordering::Relaxed);
            }
            "member_joined" if sent == 0 => {
                got_operator(event["user"]["id"].as_u64().unwrap_or_default());
                sent += 1;
                next = Some(send(stamped(shared.started, &format!("hello {n}")), sent));
            }
            "message" if event["message"]["author"]["kind"] == "operator" => {
                if let Some(at) = event["message"]["body"].as_str().and_then(stamp_of) {
                    shared.delivered(conversation, &event["message"], at);
                    replies += 1;
                    if sent < args.messages {
                        sent += 1;
                        next = Some(send(stamped(shared.started, &format!("message {sent} from {n}")), sent));
                    } else if replies >= args.messages && !args.stay {
                        break;
                    }
                }
            }
            // Chat messages only: a bot answer reaches the operator inside `assigned`, not as a message.
            "ack" if event["message"].is_object() && event["ref"].as_str().is_some_and(|r| r.starts_with('v')) => {
                shared.acked.lock().insert((conversation, event["message"]["id"].as_u64().unwrap_or_default()));
            }
            "error" => shared.error(format!("visitor {}", event["error"]["code"].as_str().unwrap_or("error"))),
            _ => {}
        }
        if let Some(frame) = next.filter(|_| window.sending()) {
            if tx.send(WsMessage::Text(frame)).await.is_err() {
                return shared.error("visitor send");
            }
        }
    }
    if window.sending() {
        let _ = api.post("/visitor/leave", Some(&token), json!({})).await;
        shared.counters.left.fetch_add(1, Ordering::Relaxed);
    }
}

/// (RSS bytes, CPU seconds) of a local process, from /proc.
fn process_usage(pid: u32) -> Option<(u64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib: u64 = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some((rss_kib * 1024, ticks / 100.0))
}

#[derive(Serialize)]
struct Percentiles {
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    samples: u64,
}

impl From<&Histogram<u64>> for Percentiles {
    fn from(h: &Histogram<u64>) -> Percentiles {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Percentiles {
            p50_ms: ms(0.5),
            p95_ms: ms(0.95),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: h.max() as f64 / 1000.0,
            samples: h.len(),
        }
    }
}

#[derive(Serialize)]
struct Report {
    visitors: usize,
    operators: usize,
    wall_s: f64,
    sessions: u64,
    sessions_per_s: f64,
    connected: u64,
    queued: u64,
    assigned: u64,
    time_to_operator: Percentiles,
    delivery: Percentiles,
    delivery_after_set_up: Percentiles,
    delivered: u64,
    delivered_per_s: f64,
    calls_for_help: u64,
    joins: u64,
    acknowledged: u64,
    lost: u64,
    errors: HashMap<String, u64>,
    share_to_expert: Option<f64>,
    capacity_violations: u32,
    server_rss_mb: Option<f64>,
    server_cpu_percent: Option<f64>,
    echo_baseline_per_s: Option<f64>,
    percent_of_echo: Option<f64>,
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    loopback_only(&args.server)?;
    let api = Arc::new(Api::new(&args.server));
    let echo_baseline = match &args.echo_url {
        Some(url) => {
            loopback_only(url)?;
            let echo_args =
                EchoArgs { url: url.clone(), connections: args.visitors.min(1000), duration: Duration::from_secs(5), window: 1 };
            Some(echo(&echo_args).await?)
        }
        None => None,
    };
    eprintln!("setting up {} operators…", args.operators);
    let (team, holds) = set_up(&api, &args).await?;
    let team = Arc::new(team);
    let shared = Arc::new(Shared {
        started: Instant::now(),
        counters: Counters::default(),
        time_to_operator: Mutex::new(histogram()),
        delivery: Mutex::new(histogram()),
        delivery_after_set_up: Mutex::new(histogram()),
        set_up: SetUpClock::new(args.visitors as u64),
        errors: Mutex::new(HashMap::new()),
        acked: Mutex::new(HashSet::new()),
        delivered: Mutex::new(HashSet::new()),
        expertise_of: holds,
        routed_wanting: AtomicU64::new(0),
        routed_to_expert: AtomicU64::new(0),
        load: Mutex::new(HashMap::new()),
    });
    let usage_before = args.server_pid.and_then(process_usage);
    let start = Instant::now();
    let deadline = start + args.duration;
    let window = Window { send_until: deadline, read_until: deadline + DRAIN };
    let mut tasks = Vec::new();
    for (id, token) in team.operators.clone() {
        tasks.push(tokio::spawn(operator(shared.clone(), api.base.clone(), id, token, args.clone(), window)));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let progress = {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let c = &shared.counters;
                let delivered = c.delivered.load(Ordering::Relaxed);
                eprint!(
                    "\r t={:>4.0}s sessions={} connected={} queued={} assigned={} left={} msgs/s={} errors={}   ",
                    shared.started.elapsed().as_secs_f64(),
                    c.sessions.load(Ordering::Relaxed),
                    c.connected.load(Ordering::Relaxed),
                    c.queued.load(Ordering::Relaxed),
                    c.assigned.load(Ordering::Relaxed),
                    c.left.load(Ordering::Relaxed),
                    delivered - last,
                    shared.errors.lock().values().sum::<u64>(),
                );
                last = delivered;
            }
        })
    };
    let interval = args.ramp.div_f64(args.visitors.max(1) as f64);
    let mut visitors = Vec::with_capacity(args.visitors);
    for n in 0..args.visitors {
        // Open loop: arrivals follow the schedule whatever the server does.
        let due = start + interval.mul_f64(n as f64);
        tokio::time::sleep_until(due.into()).await;
        if Instant::now() >= deadline {
            break;
        }
        visitors.push(tokio::spawn(visitor(shared.clone(), api.clone(), team.clone(), n, args.clone(), window)));
    }
    for v in visitors {
        let _ = v.await;
    }
    // A run cut by `--duration` sent nothing while draining: rates are over the sending time.
    let wall = start.elapsed().min(args.duration).as_secs_f64();
    // Stragglers: give in-flight deliveries a moment before counting losses.
    tokio::time::sleep(Duration::from_millis(500)).await;
    progress.abort();
    eprintln!();
    let usage_after = args.server_pid.and_then(process_usage);
    let c = &shared.counters;
    let acked = shared.acked.lock().clone();
    let delivered = shared.delivered.lock().clone();
    let lost = acked.difference(&delivered).count() as u64;
    let max_sessions = args.max_sessions;
    let report = Report {
        visitors: args.visitors,
        operators: args.operators,
        wall_s: wall,
        sessions: c.sessions.load(Ordering::Relaxed),
        sessions_per_s: c.sessions.load(Ordering::Relaxed) as f64 / args.ramp.as_secs_f64().min(wall).max(0.001),
        connected: c.connected.load(Ordering::Relaxed),
        queued: c.queued.load(Ordering::Relaxed),
        assigned: c.assigned.load(Ordering::Relaxed),
        time_to_operator: Percentiles::from(&*shared.time_to_operator.lock()),
        delivery: Percentiles::from(&*shared.delivery.lock()),
        delivery_after_set_up: Percentiles::from(&*shared.delivery_after_set_up.lock()),
        delivered: c.delivered.load(Ordering::Relaxed),
        delivered_per_s: c.delivered.load(Ordering::Relaxed) as f64 / wall,
        calls_for_help: c.calls_for_help.load(Ordering::Relaxed),
        joins: c.joins.load(Ordering::Relaxed),
        acknowledged: acked.len() as u64,
        lost,
        errors: shared.errors.lock().clone(),
        share_to_expert: {
            let wanting = shared.routed_wanting.load(Ordering::Relaxed);
            (wanting > 0).then(|| shared.routed_to_expert.load(Ordering::Relaxed) as f64 / wanting as f64)
        },
        capacity_violations: shared.load.lock().values().filter(|(_, most)| *most > max_sessions).count() as u32,
        server_rss_mb: usage_after.map(|(rss, _)| rss as f64 / 1e6),
        server_cpu_percent: usage_before.zip(usage_after).map(|((_, a), (_, b))| (b - a) / wall * 100.0),
        echo_baseline_per_s: echo_baseline,
        percent_of_echo: echo_baseline.map(|e| c.delivered.load(Ordering::Relaxed) as f64 / wall / e * 100.0),
    };
    for task in tasks {
        task.abort();
    }
    print_report(&report);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    let _ = api.post("/auth/logout", Some(&team.admin), json!({})).await;
    if report.lost > 0 {
        bail!("{} acknowledged messages were never delivered", report.lost);
    }
    Ok(())
}

fn print_report(r: &Report) {
    let p = |x: &Percentiles| {
        format!(
            "p50 {:.2} / p95 {:.2} / p99 {:.2} / p99.9 {:.2} / max {:.2} ms ({} samples)",
            x.p50_ms, x.p95_ms, x.p99_ms, x.p999_ms, x.max_ms, x.samples
        )
    };
    println!("| figure | value |\n|---|---|");
    println!("| visitors / operators | {} / {} |", r.visitors, r.operators);
    println!("| sessions opened | {} ({:.0}/s) |", r.sessions, r.sessions_per_s);
    println!("| connected / queued at some point / got an operator | {} / {} / {} |", r.connected, r.queued, r.assigned);
    println!("| time to operator | {} |", p(&r.time_to_operator));
    println!("| delivery latency | {} |", p(&r.delivery));
    println!("| delivery latency, sent once every visitor was through set-up | {} |", p(&r.delivery_after_set_up));
    println!("| delivered messages | {} ({:.0}/s over {:.1} s) |", r.delivered, r.delivered_per_s, r.wall_s);
    println!("| acknowledged / lost | {} / **{}** |", r.acknowledged, r.lost);
    println!("| calls for help / joins | {} / {} |", r.calls_for_help, r.joins);
    println!(
        "| routed to an operator holding the wanted expertise | {} |",
        r.share_to_expert.map_or("—".into(), |s| format!("{:.1} %", s * 100.0))
    );
    println!("| capacity violations | {} |", r.capacity_violations);
    println!("| errors | {} |", if r.errors.is_empty() { "none".into() } else { format!("{:?}", r.errors) });
    if let (Some(rss), Some(cpu)) = (r.server_rss_mb, r.server_cpu_percent) {
        println!("| server RSS / CPU | {rss:.0} MB / {cpu:.0} % |");
    }
    if let (Some(echo), Some(pct)) = (r.echo_baseline_per_s, r.percent_of_echo) {
        println!("| echo baseline (same run) | {echo:.0} round trips/s; delivered/s = {pct:.0} % of it |");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_up_ends_with_the_last_visitor_through() {
        let clock = SetUpClock::new(3);
        clock.through(10);
        clock.through(20);
        assert!(!clock.done_before(u64::MAX - 1), "two of three through: not over");
        clock.through(30);
        assert!(clock.done_before(30) && !clock.done_before(29));
        clock.through(40);
        assert!(clock.done_before(35), "a count past the last does not move the end");
    }

    #[test]
    fn think_times_fill_the_jitter_range_evenly_around_the_think_time() {
        let think = Duration::from_secs(4);
        let times: Vec<f64> = (1..=1000).map(|n| spread(think, 0.5, n).as_secs_f64()).collect();
        assert!(times.iter().all(|t| (2.0..=6.0).contains(t)));
        let mean = times.iter().sum::<f64>() / times.len() as f64;
        assert!((mean - 4.0).abs() < 0.02, "mean {mean}");
        for quarter in 0..4 {
            let low = 2.0 + f64::from(quarter);
            let count = times.iter().filter(|t| (low..low + 1.0).contains(*t)).count();
            assert!((240..=260).contains(&count), "{count} in [{low}, {})", low + 1.0);
        }
        assert_eq!(spread(think, 0.0, 7), think);
    }

    #[test]
    fn shares_outside_zero_to_one_are_refused() {
        assert_eq!(parse_share("0.25"), Ok(0.25));
        assert!(parse_share("1.5").is_err());
        assert!(parse_share("-0.1").is_err());
        assert!(parse_share("half").is_err());
    }
}
