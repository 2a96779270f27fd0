//! What `deploy/` ships works with this server: the alert rules and the
//! dashboard name only metrics it exports and promtool accepts the rules; the
//! Caddyfile proxies a real server, visitors limited per client, console
//! sockets upgraded from the public origin.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::{free_port, on_path, TestServer};

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(file)
}

/// `name` on PATH; `None` (skip) locally, a failure under CI, which installs it.
fn tool(name: &str) -> Option<PathBuf> {
    let found = on_path(name);
    if found.is_none() {
        assert!(std::env::var_os("CI").is_none(), "CI must install {name} (see .ci/run)");
        eprintln!("SKIPPED: {name} is not installed (apt-get install caddy prometheus)");
    }
    found
}

/// Every sample name the server can export, from the `# TYPE` lines of `/metrics`.
async fn exported(s: &TestServer) -> BTreeSet<String> {
    let text = reqwest::get(s.url("/metrics")).await.unwrap().text().await.unwrap();
    let mut names = BTreeSet::new();
    for line in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let mut parts = line.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else { continue };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    names
}

fn metrics_named(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("switchboard_") {
        let name: String = rest[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

#[actix_rt::test]
async fn alert_rules_and_dashboard_use_real_metrics() {
    let s = TestServer::start().await;
    let exported = exported(&s).await;
    for file in ["prometheus/alerts.yml", "grafana/switchboard.json"] {
        let text = std::fs::read_to_string(deploy(file)).unwrap();
        let named = metrics_named(&text);
        assert!(!named.is_empty(), "{file} names no metric");
        let unknown: Vec<&String> = named.difference(&exported).collect();
        assert!(unknown.is_empty(), "{file} uses metrics the server does not export: {unknown:?} (exported: {exported:?})");
    }
    serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(deploy("grafana/switchboard.json")).unwrap())
        .expect("dashboard JSON");
    let Some(promtool) = tool("promtool") else { return };
    let out = Command::new(promtool).args(["check", "rules"]).arg(deploy("prometheus/alerts.yml")).output().unwrap();
    assert!(out.status.success(), "promtool: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

/// Caddy with the shipped Caddyfile, killed on drop.
struct Caddy {
    child: Child,
    base: String,
    _home: tempfile::TempDir,
}

impl Drop for Caddy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn caddy_in_front_of(s: &TestServer) -> Option<Caddy> {
    let caddy = tool("caddy")?;
    let home = tempfile::TempDir::new().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let child = Command::new(caddy)
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(deploy("Caddyfile"))
        .env("SWITCHBOARD_SITE", &base)
        .env("SWITCHBOARD_UPSTREAM", s.addr.to_string())
        .env("CADDY_ADMIN", "off")
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path())
        .env("XDG_DATA_HOME", home.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("caddy starts");
    let caddy = Caddy { child, base, _home: home };
    let started = Instant::now();
    loop {
        if reqwest::get(format!("{}/healthz", caddy.base)).await.is_ok_and(|r| r.status() == 200) {
            return Some(caddy);
        }
        assert!(started.elapsed() < Duration::from_secs(15), "caddy did not proxy /healthz in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_rt::test]
async fn behind_the_shipped_caddyfile_visitors_and_consoles_work() {
    let s = TestServer::start_with(|c| {
        c.http.trusted_proxies = "127.0.0.1,::1".parse().unwrap();
        c.auth.visitor_sessions_per_minute = 2;
    })
    .await;
    let Some(caddy) = caddy_in_front_of(&s).await else { return };
    let channel = s.channel(&[], None).await;
    // Caddy replaces whatever X-Forwarded-For a client sends: made-up addresses
    // do not buy a visitor more sessions.
    let mut statuses = Vec::new();
    for spoofed in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        let res = reqwest::Client::new()
            .post(format!("{}/api/v1/channels/{channel}/sessions", caddy.base))
            .header("X-Forwarded-For", spoofed)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses, [201, 201, 429]);
    // A console page served through Caddy opens its socket through Caddy: the
    // public origin is accepted, and the same origin straight to the server is not.
    let (_, token) = s.operator("ann", json!({})).await;
    let ws_base = caddy.base.replace("http://", "ws://");
    let mut request = format!("{ws_base}/ws/agent?token={token}").into_client_request().unwrap();
    request.headers_mut().insert("Origin", caddy.base.parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("upgrade through caddy");
    use futures_util::StreamExt as _;
    let hello = tokio::time::timeout(Duration::from_secs(10), socket.next()).await.expect("hello in time").unwrap().unwrap();
    assert!(hello.to_text().unwrap().contains("\"hello\""), "{hello}");
    let mut direct = s.ws_url(&format!("/ws/agent?token={token}")).into_client_request().unwrap();
    direct.headers_mut().insert("Origin", caddy.base.parse().unwrap());
    assert!(tokio_tungstenite::connect_async(direct).await.is_err(), "another host's origin straight to the server");
}
