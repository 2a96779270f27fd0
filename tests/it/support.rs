//! Test helpers: a real server on 127.0.0.1:0 with its own data dir, a JSON
//! HTTP client, and a WebSocket client whose every wait is bounded. Tests use
//! only these helpers to touch the raw API.

use std::net::SocketAddr;
use std::sync::Once;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};
use switchboard::config::Config;
use switchboard::startup::Application;
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Longest wait for anything the server should do promptly.
pub const TEST_WAIT: Duration = Duration::from_secs(5);

static LOGS: Once = Once::new();

fn init_logs() {
    LOGS.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            switchboard::telemetry::init(std::io::stderr);
        } else {
            switchboard::telemetry::init(std::io::sink);
        }
    });
}

/// A running Switchboard with its own data dir; dropping it stops it.
pub struct TestServer {
    pub addr: SocketAddr,
    http: reqwest::Client,
    pub admin: String,
    stop_tx: Option<oneshot::Sender<()>>,
    running: Option<actix_rt::task::JoinHandle<anyhow::Result<()>>>,
    pub data_dir: TempDir,
}

/// An HTTP answer: status and JSON body (`Value::Null` when empty or not JSON).
#[derive(Debug)]
pub struct Res {
    pub status: u16,
    pub body: Value,
    pub content_type: String,
}

impl Res {
    /// The body's `error.code`, asserting the documented error shape.
    pub fn error_code(&self) -> &str {
        assert!(self.content_type.starts_with("application/json"), "error without JSON: {self:?}");
        assert!(self.body["error"]["message"].is_string(), "error without message: {self:?}");
        self.body["error"]["code"].as_str().unwrap_or_else(|| panic!("no error code in {self:?}"))
    }

    /// Asserts the status, and for errors the JSON error shape; returns the body.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected answer: {self:?}");
        if status >= 400 {
            self.error_code();
        }
        self.body
    }
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let data_dir = TempDir::new().expect("temp dir");
        let mut server = TestServer::start_in(data_dir, adjust).await.expect("server builds");
        server.admin = server.login("admin", "admin-pass").await;
        server
    }

    /// Starts on an existing data dir (the admin token is left empty).
    ///
    /// # Errors
    /// When the server refuses to start on it.
    pub async fn start_in(data_dir: TempDir, adjust: impl FnOnce(&mut Config)) -> anyhow::Result<TestServer> {
        init_logs();
        let mut config = Config::for_tests(data_dir.path().to_path_buf());
        adjust(&mut config);
        let app = Application::build(config).await?;
        let addr = app.local_addr();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let running = actix_rt::spawn(app.run_until_stopped(async {
            let _ = stop_rx.await;
        }));
        Ok(TestServer {
            addr,
            http: reqwest::Client::new(),
            admin: String::new(),
            stop_tx: Some(stop_tx),
            running: Some(running),
            data_dir,
        })
    }

    /// Stops gracefully and starts again on the same data dir, keeping the admin token.
    pub async fn restart(self) -> TestServer {
        let admin = self.admin.clone();
        let data_dir = self.stop().await;
        let mut server = TestServer::start_in(data_dir, |_| {}).await.expect("server restarts");
        server.admin = admin;
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Any request; `token` goes in the Bearer header.
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Res {
        let mut req = self.http.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = tokio::time::timeout(TEST_WAIT, req.send()).await.expect("HTTP answer in time").expect("HTTP request");
        let status = res.status().as_u16();
        let content_type = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let bytes = res.bytes().await.expect("body");
        Res { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null), content_type }
    }

    /// A raw body, for malformed-input tests.
    pub async fn call_raw(&self, method: Method, path: &str, token: Option<&str>, body: Vec<u8>) -> Res {
        let mut req = self.http.request(method, self.url(path)).header("content-type", "application/json").body(body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let res = tokio::time::timeout(TEST_WAIT, req.send()).await.expect("HTTP answer in time").expect("HTTP request");
        let status = res.status().as_u16();
        let content_type = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let bytes = res.bytes().await.expect("body");
        Res { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null), content_type }
    }

    /// A GET answered with text (a download): status, `Content-Disposition`, body.
    pub async fn download(&self, path: &str, token: &str) -> (u16, String, String) {
        let req = self.http.get(self.url(path)).bearer_auth(token);
        let res = tokio::time::timeout(TEST_WAIT, req.send()).await.expect("HTTP answer in time").expect("HTTP request");
        let status = res.status().as_u16();
        let disposition = res.headers().get("content-disposition").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        (status, disposition, res.text().await.expect("body"))
    }

    /// Every id `GET /history?{query}` lists for the admin, following `next_cursor` page by page.
    pub async fn history_ids(&self, query: &str) -> Vec<u64> {
        let mut ids = Vec::new();
        let mut cursor = String::new();
        for _ in 0..1000 {
            let page = self.get(&format!("/api/v1/history?{query}{cursor}"), &self.admin).await.expect(200);
            ids.extend(page["items"].as_array().expect("items").iter().map(|i| i["id"].as_u64().expect("id")));
            match page["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => return ids,
            }
        }
        panic!("history did not end within 1000 pages");
    }

    /// Waits until at least `count` conversations were archived in all (they left memory).
    pub async fn archived(&self, count: u64) {
        let started = std::time::Instant::now();
        loop {
            let text = self.metrics_text().await;
            let archived = text
                .lines()
                .find_map(|l| l.strip_prefix("switchboard_archived_total "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0);
            if archived >= count as f64 {
                return;
            }
            assert!(started.elapsed() < TEST_WAIT, "only {archived} of {count} conversations archived in time");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics_text(&self) -> String {
        self.http.get(self.url("/metrics")).send().await.expect("metrics").text().await.expect("metrics text")
    }

    pub async fn get(&self, path: &str, token: &str) -> Res {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Res {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Res {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Res {
        self.call(Method::PATCH, path, Some(token), Some(body)).await
    }

    pub async fn login(&self, login: &str, password: &str) -> String {
        let body =
            self.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"login": login, "password": password}))).await.expect(200);
        body["token"].as_str().expect("token").to_owned()
    }

    /// Creates an operator (role `user`) with `profile` merged into the defaults; returns (id, token).
    pub async fn operator(&self, login: &str, profile: Value) -> (u64, String) {
        let mut body = json!({"login": login, "name": login, "password": "pw", "role": "user"});
        let expertise = profile.get("expertise_ids").cloned();
        for (k, v) in profile.as_object().into_iter().flatten() {
            if k != "expertise_ids" {
                body[k] = v.clone();
            }
        }
        let user = self.post("/api/v1/users", &self.admin, body).await.expect(201);
        let id = user["id"].as_u64().unwrap();
        if let Some(expertise) = expertise {
            self.patch(&format!("/api/v1/users/{id}"), &self.admin, json!({"expertise_ids": expertise})).await.expect(200);
        }
        (id, self.login(login, "pw").await)
    }

    pub async fn expertise(&self, name: &str) -> u64 {
        self.post("/api/v1/expertise", &self.admin, json!({"name": name})).await.expect(201)["id"].as_u64().unwrap()
    }

    pub async fn channel(&self, operator_ids: &[u64], max_sessions: Option<u32>) -> u64 {
        let body = json!({"name": "Website", "operator_ids": operator_ids, "max_sessions": max_sessions});
        self.post("/api/v1/channels", &self.admin, body).await.expect(201)["id"].as_u64().unwrap()
    }

    /// Opens a visitor session; returns (conversation id, visitor token).
    pub async fn visit(&self, channel: u64, body: Value) -> (u64, String) {
        let res = self.call(Method::POST, &format!("/api/v1/channels/{channel}/sessions"), None, Some(body)).await.expect(201);
        (res["conversation_id"].as_u64().unwrap(), res["visitor_token"].as_str().unwrap().to_owned())
    }

    pub async fn conversation(&self, id: u64, token: &str) -> Value {
        self.get(&format!("/api/v1/conversations/{id}"), token).await.expect(200)
    }

    pub async fn visitor_view(&self, visitor_token: &str) -> Value {
        self.get("/api/v1/visitor/conversation", visitor_token).await.expect(200)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// An operator's console connection, past its `hello` (returned alongside).
    pub async fn agent(&self, token: &str) -> (WsClient, Value) {
        let mut ws = WsClient::connect(&self.ws_url(&format!("/ws/agent?token={token}"))).await;
        let hello = ws.next_of("hello").await;
        (ws, hello)
    }

    /// A visitor's widget connection, past its `hello` (returned alongside).
    pub async fn widget(&self, visitor_token: &str, after: Option<u64>) -> (WsClient, Value) {
        let after = after.map(|a| format!("&after={a}")).unwrap_or_default();
        let mut ws = WsClient::connect(&self.ws_url(&format!("/ws/visitor?token={visitor_token}{after}"))).await;
        let hello = ws.next_of("hello").await;
        (ws, hello)
    }

    /// Stops the server, waits until it has (final snapshot included), and hands back its data dir.
    pub async fn stop(mut self) -> TempDir {
        if let Some(tx) = self.stop_tx.take() {
            let _ = tx.send(());
        }
        if let Some(running) = self.running.take() {
            let stopped = tokio::time::timeout(TEST_WAIT, running).await.expect("server stops in time");
            stopped.expect("server task").expect("server stops cleanly");
        }
        let placeholder = TempDir::new().expect("temp dir");
        std::mem::replace(&mut self.data_dir, placeholder)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop_tx.take() {
            let _ = tx.send(());
        }
    }
}

/// A WebSocket client speaking JSON frames; every wait is bounded by `TEST_WAIT`.
pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a connection ended.
#[derive(Debug)]
pub enum Ended {
    Closed(Option<CloseFrame<'static>>),
    Dropped,
}

impl WsClient {
    pub async fn connect(url: &str) -> WsClient {
        let (stream, _) =
            tokio::time::timeout(TEST_WAIT, tokio_tungstenite::connect_async(url)).await.expect("connect in time").expect("upgrade");
        WsClient { stream }
    }

    /// Tries to connect; the HTTP status of a refused upgrade.
    pub async fn refused(url: &str) -> u16 {
        match tokio::time::timeout(TEST_WAIT, tokio_tungstenite::connect_async(url)).await.expect("answer in time") {
            Ok(_) => panic!("upgrade to {url} unexpectedly accepted"),
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => res.status().as_u16(),
            Err(e) => panic!("unexpected error {e}"),
        }
    }

    pub async fn send(&mut self, frame: Value) {
        self.send_text(frame.to_string()).await;
    }

    pub async fn send_text(&mut self, text: String) {
        tokio::time::timeout(TEST_WAIT, self.stream.send(WsMessage::Text(text))).await.expect("send in time").expect("send");
    }

    /// The next JSON frame, or `None` if nothing comes within `wait`.
    pub async fn try_next(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.stream.next()).await.ok()?;
            match msg {
                Some(Ok(WsMessage::Text(text))) => return Some(serde_json::from_str(&text).expect("server sends JSON")),
                Some(Ok(WsMessage::Close(frame))) => panic!("connection closed: {frame:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("connection failed: {e}"),
                None => panic!("connection ended"),
            }
        }
    }

    /// Skips frames until one of type `kind` arrives.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        let deadline = tokio::time::Instant::now() + TEST_WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.try_next(left).await.unwrap_or_else(|| panic!("no `{kind}` frame in time"));
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// Skips frames until one satisfies `pred`.
    pub async fn next_where(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + TEST_WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.try_next(left).await.unwrap_or_else(|| panic!("no frame with {what} in time"));
            if pred(&frame) {
                return frame;
            }
        }
    }

    /// Asserts no frame of type `kind` arrives within `wait` (others are skipped).
    pub async fn expect_no(&mut self, kind: &str, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.try_next(left).await {
                Some(frame) if frame["type"] == kind => panic!("unexpected `{kind}`: {frame}"),
                Some(_) => continue,
                None => return,
            }
        }
    }

    /// Waits for the server to end the connection.
    pub async fn ended(&mut self) -> Ended {
        let deadline = tokio::time::Instant::now() + TEST_WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await.expect("connection ends in time") {
                Some(Ok(WsMessage::Close(frame))) => return Ended::Closed(frame.map(|f| f.into_owned())),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Ended::Dropped,
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }

    /// Sends a Close frame, waits for the server's and for the server to end
    /// the TCP connection (RFC 6455 §7.1.1); how long each took.
    pub async fn close_handshake(mut self) -> (Duration, Duration) {
        let started = std::time::Instant::now();
        self.stream.close(None).await.expect("close frame sent");
        let mut answered = None;
        loop {
            match tokio::time::timeout(TEST_WAIT, self.stream.next()).await.expect("close answered in time") {
                Some(Ok(WsMessage::Close(_))) => answered = Some(started.elapsed()),
                Some(Ok(_)) => continue,
                None | Some(Err(_)) => {
                    let ended = started.elapsed();
                    return (answered.expect("a Close frame before the end"), ended);
                }
            }
        }
    }
}

/// The real `switchboard` binary as a child process on 127.0.0.1:0, for tests
/// that kill it or read its log. Dropping it kills it.
pub struct ServerProcess {
    child: std::process::Child,
    pub base: String,
    log: std::sync::Arc<parking_lot::Mutex<String>>,
}

impl ServerProcess {
    /// Starts the binary with `--data-dir dir`, `args` and `env`; returns once it listens.
    pub fn start(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> ServerProcess {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["--bind", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir)
            .args(args)
            .env_remove("SWITCHBOARD_ADMIN_PASSWORD")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the server binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let log = std::sync::Arc::new(parking_lot::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let kept = log.clone();
        // Keep draining the log, or the server would block on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_owned());
                }
                if line.contains("ERROR") || line.contains("WARN") {
                    eprintln!("server: {line}");
                }
                let mut log = kept.lock();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(30)).expect("the server says where it listens");
        ServerProcess { child, base: format!("http://{addr}"), log }
    }

    /// Everything the server has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().clone()
    }

    /// `SIGKILL`, then reaps it.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("the killed server is reaped");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first `name` on `PATH`, if any.
pub fn on_path(name: &str) -> Option<std::path::PathBuf> {
    let dirs = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default();
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// A free loopback port, for a child process or a listener a test opens later.
///
/// Taken below Linux's ephemeral range (32768 and up), which `bind(0)` never
/// hands out: a port from the ephemeral range, once released, can go to another
/// test's listener (or server) before this test opens it again — the mail test
/// that keeps its SMTP port closed across a restart failed once in a full run.
/// A slow suite's size from the environment (`name`, a whole number), else
/// `default`: CI and the README's loops set budgets without editing tests.
pub fn budget(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(value) => value.parse().unwrap_or_else(|_| panic!("{name} must be a whole number, not {value:?}")),
        Err(_) => default,
    }
}

/// The bodies of the messages people wrote (system notices left out).
pub fn bodies(messages: &Value) -> Vec<&str> {
    messages.as_array().unwrap().iter().filter(|m| m["author"]["kind"] != "system").map(|m| m["body"].as_str().unwrap()).collect()
}

pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(0, 20_000 + (std::process::id() % 1_000) as u16 * 10, Ordering::Relaxed, Ordering::Relaxed);
    (0..1_000)
        .map(|_| NEXT.fetch_add(1, Ordering::Relaxed))
        .find(|&port| port < 32_768 && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
        .expect("a free port below the ephemeral range")
}

/// One mail an `SmtpSink` received.
#[derive(Clone, Debug)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    /// Headers and body as sent, quoted-printable soft line breaks joined.
    pub data: String,
}

/// A local SMTP server that accepts every mail and keeps it: just enough of
/// RFC 5321 for a real client (lettre) to deliver to it. Dropping it stops it.
pub struct SmtpSink {
    pub port: u16,
    received: std::sync::Arc<parking_lot::Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpSink {
    /// Listens on `port` (0: any free one).
    pub async fn start(port: u16) -> SmtpSink {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("the SMTP sink binds");
        let port = listener.local_addr().unwrap().port();
        let received = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let kept = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(smtp_session(stream, kept.clone()));
            }
        });
        SmtpSink { port, received, task }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().clone()
    }

    /// Waits until `count` mails arrived; returns them all.
    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(tokio::time::Instant::now() < deadline, "only {} of {count} mails arrived: {received:?}", received.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn smtp_session(stream: TcpStream, received: std::sync::Arc<parking_lot::Mutex<Vec<Received>>>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut mail = Received { from: String::new(), to: Vec::new(), data: String::new() };
    if write.write_all(b"220 sink ESMTP\r\n").await.is_err() {
        return;
    }
    while let Ok(Some(line)) = tokio::time::timeout(TEST_WAIT, lines.next_line()).await.unwrap_or(Ok(None)) {
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            b"250-sink\r\n250 8BITMIME\r\n"
        } else if let Some(from) = upper.strip_prefix("MAIL FROM:").map(|_| &line[10..]) {
            mail = Received { from: from.trim().to_owned(), to: Vec::new(), data: String::new() };
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            mail.to.push(line[8..].trim().trim_matches(['<', '>']).to_owned());
            b"250 OK\r\n"
        } else if upper == "DATA" {
            if write.write_all(b"354 end with .\r\n").await.is_err() {
                return;
            }
            let mut data = String::new();
            while let Ok(Some(line)) = lines.next_line().await {
                if line == "." {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
                data.push('\n');
            }
            mail.data = data.replace("=\n", "");
            received.lock().push(mail.clone());
            b"250 OK queued\r\n"
        } else if upper == "QUIT" {
            let _ = write.write_all(b"221 bye\r\n").await;
            return;
        } else if upper == "RSET" || upper == "NOOP" {
            b"250 OK\r\n"
        } else {
            b"502 not here\r\n"
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}
