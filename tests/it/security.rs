//! Security rules, each with its test: token lifetime and revocation, the
//! visitor session rate limit, operator socket origins, the page CSP.

use std::time::Duration;

use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Error as WsError;

use crate::support::TestServer;

#[actix_rt::test]
async fn an_idle_token_expires_but_a_used_one_lives() {
    let s = TestServer::start_with(|c| c.auth.token_idle_timeout = Duration::from_millis(800)).await;
    let (_, used) = s.operator("ann", json!({})).await;
    let (_, idle) = s.operator("bob", json!({})).await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        s.get("/api/v1/me", &used).await.expect(200);
    }
    assert_eq!(s.get("/api/v1/me", &idle).await.expect(401)["error"]["code"], "unauthorized");
    s.get("/api/v1/me", &used).await.expect(200);
}

#[actix_rt::test]
async fn a_password_change_logs_the_operator_out_everywhere() {
    let s = TestServer::start().await;
    let (ann, first) = s.operator("ann", json!({})).await;
    let second = s.login("ann", "pw").await;
    s.patch(&format!("/api/v1/users/{ann}"), &s.admin, json!({"password": "new-secret"})).await.expect(200);
    for token in [&first, &second] {
        s.get("/api/v1/me", token).await.expect(401);
    }
    let fresh = s.login("ann", "new-secret").await;
    s.get("/api/v1/me", &fresh).await.expect(200);
    // Other operators keep their sessions.
    s.get("/api/v1/me", &s.admin).await.expect(200);
}

#[actix_rt::test]
async fn one_address_cannot_open_unlimited_visitor_sessions() {
    let s = TestServer::start_with(|c| c.auth.visitor_sessions_per_minute = 3).await;
    let channel = s.channel(&[], None).await;
    for _ in 0..3 {
        s.visit(channel, json!({})).await;
    }
    let res = reqwest::Client::new().post(s.url(&format!("/api/v1/channels/{channel}/sessions"))).json(&json!({})).send().await.unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers().get("retry-after").is_some());
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_requests");
}

/// Opens a visitor session with extra request headers; the status.
async fn session_from(s: &TestServer, channel: u64, headers: &[(&str, &str)]) -> u16 {
    let mut req = reqwest::Client::new().post(s.url(&format!("/api/v1/channels/{channel}/sessions"))).json(&json!({}));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap().status().as_u16()
}

/// Behind a trusted proxy each visitor has their own limit, whichever header
/// the proxy uses, and a client cannot escape it by adding addresses of its own.
#[actix_rt::test]
async fn behind_a_trusted_proxy_limits_follow_the_client() {
    let s = TestServer::start_with(|c| {
        c.http.trusted_proxies = "127.0.0.1/32".parse().unwrap();
        c.auth.visitor_sessions_per_minute = 2;
        c.auth.max_login_failures = 1;
    })
    .await;
    let channel = s.channel(&[], None).await;
    let xff = |ip: &'static str| [("X-Forwarded-For", ip)];
    for _ in 0..2 {
        assert_eq!(session_from(&s, channel, &xff("203.0.113.1")).await, 201);
    }
    assert_eq!(session_from(&s, channel, &xff("203.0.113.1")).await, 429);
    assert_eq!(session_from(&s, channel, &xff("198.51.100.9, 203.0.113.1")).await, 429, "a forged left-hand hop changes nothing");
    assert_eq!(session_from(&s, channel, &xff("203.0.113.2")).await, 201, "another visitor behind the same proxy");
    for _ in 0..2 {
        assert_eq!(session_from(&s, channel, &[("Forwarded", "for=\"[2001:db8::5]:4711\";proto=https")]).await, 201);
    }
    assert_eq!(session_from(&s, channel, &[("Forwarded", "for=2001:db8::5")]).await, 429, "RFC 7239 `Forwarded` is read too");
    // Login failures are counted per client address as well (20 per address
    // here): one client guessing many logins locks out nobody else.
    let login = |ip: &'static str, login: String, password: &'static str| {
        let req = reqwest::Client::new().post(s.url("/api/v1/auth/login")).header("X-Forwarded-For", ip);
        async move { req.json(&json!({"login": login, "password": password})).send().await.unwrap().status().as_u16() }
    };
    for i in 0..20 {
        assert_eq!(login("203.0.113.66", format!("guess{i}"), "wrong").await, 401);
    }
    assert_eq!(login("203.0.113.66", "admin".into(), "admin-pass").await, 429);
    assert_eq!(login("203.0.113.67", "admin".into(), "admin-pass").await, 200);
}

/// Without `--trusted-proxies` forwarding headers are the client's to invent: ignored.
#[actix_rt::test]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let s = TestServer::start_with(|c| c.auth.visitor_sessions_per_minute = 2).await;
    let channel = s.channel(&[], None).await;
    let statuses = [
        session_from(&s, channel, &[("X-Forwarded-For", "203.0.113.1")]).await,
        session_from(&s, channel, &[("X-Forwarded-For", "203.0.113.2")]).await,
        session_from(&s, channel, &[("Forwarded", "for=203.0.113.3")]).await,
    ];
    assert_eq!(statuses, [201, 201, 429]);
}

/// The HTTP status of an operator socket upgrade sent with `origin`.
async fn upgrade_status(s: &TestServer, token: &str, origin: &str) -> u16 {
    upgrade_status_with(s, token, origin, &[]).await
}

async fn upgrade_status_with(s: &TestServer, token: &str, origin: &str, headers: &[(&'static str, &str)]) -> u16 {
    let mut request = s.ws_url(&format!("/ws/agent?token={token}")).into_client_request().unwrap();
    request.headers_mut().insert("Origin", origin.parse().unwrap());
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => 101,
        Err(WsError::Http(res)) => res.status().as_u16(),
        Err(e) => panic!("unexpected: {e}"),
    }
}

#[actix_rt::test]
async fn operator_sockets_open_only_from_allowed_origins() {
    let s = TestServer::start_with(|c| c.ws.allowed_origins = vec!["https://support.example.com".into()]).await;
    let (_, token) = s.operator("ann", json!({})).await;
    assert_eq!(upgrade_status(&s, &token, "https://evil.example").await, 403);
    assert_eq!(upgrade_status(&s, &token, "https://support.example.com").await, 101);
    assert_eq!(upgrade_status(&s, &token, &s.url("")).await, 101, "the server's own pages");
}

/// Behind a trusted TLS proxy the console's origin is the public one the proxy
/// reports; the same headers from anyone else prove nothing.
#[actix_rt::test]
async fn the_origin_check_takes_the_public_host_from_a_trusted_proxy_only() {
    let public = [("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "chat.example.com")];
    let behind = TestServer::start_with(|c| c.http.trusted_proxies = "127.0.0.1".parse().unwrap()).await;
    let (_, token) = behind.operator("ann", json!({})).await;
    assert_eq!(upgrade_status_with(&behind, &token, "https://chat.example.com", &public).await, 101);
    assert_eq!(upgrade_status_with(&behind, &token, "https://evil.example", &public).await, 403);
    let exposed = TestServer::start().await;
    let (_, token) = exposed.operator("ann", json!({})).await;
    assert_eq!(upgrade_status_with(&exposed, &token, "https://chat.example.com", &public).await, 403);
}

#[actix_rt::test]
async fn pages_forbid_inline_script() {
    let s = TestServer::start().await;
    for page in ["/", "/admin"] {
        let res = reqwest::get(s.url(page)).await.unwrap();
        let policy = res.headers()["content-security-policy"].to_str().unwrap().to_owned();
        let directive = |name: &str| policy.split(';').map(str::trim).find(|d| d.starts_with(name)).map(str::to_owned);
        let scripts = directive("script-src").or_else(|| directive("default-src")).expect("a policy for scripts");
        assert!(scripts.contains("'self'") && !scripts.contains("unsafe-inline"), "{policy}");
        assert!(!res.text().await.unwrap().contains("<script>"), "no inline script in {page}");
    }
}

/// Runs the real binary at `RUST_LOG=debug` through logins (right and wrong),
/// a password change, console and widget WebSockets (whose URLs carry tokens),
/// a forged token and a logout; no password or token may appear in its log.
/// (One HTTP worker and one actor thread: the flags README suggests for a shared machine.)
#[actix_rt::test]
async fn no_secret_reaches_the_log() {
    use std::os::unix::fs::PermissionsExt as _;

    let dir = tempfile::TempDir::new().unwrap();
    let server = crate::support::ServerProcess::start(dir.path(), &["--workers", "1", "--actor-threads", "1"], &[("RUST_LOG", "debug")]);
    let password_file = dir.path().join("initial-admin-password");
    let admin_password = std::fs::read_to_string(&password_file).expect("the generated password is in the data dir");
    let admin_password = admin_password.trim().to_owned();
    assert_eq!(std::fs::metadata(&password_file).unwrap().permissions().mode() & 0o777, 0o600);

    let http = reqwest::Client::new();
    let base = server.base.clone();
    let call = |method: reqwest::Method, path: &str, token: Option<&str>, body: Option<serde_json::Value>| {
        let mut req = http.request(method, format!("{base}{path}"));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        async move {
            let res = req.send().await.expect("the server answers");
            (res.status().as_u16(), res.json::<serde_json::Value>().await.unwrap_or_default())
        }
    };
    let login = |login: &'static str, password: String| {
        call(reqwest::Method::POST, "/api/v1/auth/login", None, Some(json!({"login": login, "password": password})))
    };

    let mut secrets = vec![admin_password.clone(), "wrong-Secret-1".to_owned(), "ann-Secret-22".to_owned(), "ann-Secret-333".to_owned()];
    let (status, _) = login("admin", "wrong-Secret-1".into()).await;
    assert_eq!(status, 401);
    let admin = login("admin", admin_password).await.1["token"].as_str().unwrap().to_owned();
    let body = json!({"login": "ann", "name": "Ann", "password": "ann-Secret-22"});
    let (status, ann) = call(reqwest::Method::POST, "/api/v1/users", Some(&admin), Some(body)).await;
    assert_eq!(status, 201);
    let ann_id = ann["id"].as_u64().unwrap();
    let first = login("ann", "ann-Secret-22".into()).await.1["token"].as_str().unwrap().to_owned();
    let body = json!({"password": "ann-Secret-333"});
    assert_eq!(call(reqwest::Method::PATCH, &format!("/api/v1/users/{ann_id}"), Some(&admin), Some(body)).await.0, 200);
    let ann_token = login("ann", "ann-Secret-333".into()).await.1["token"].as_str().unwrap().to_owned();
    let forged = "f".repeat(64);
    assert_eq!(call(reqwest::Method::GET, "/api/v1/me", Some(&forged), None).await.0, 401);

    let body = json!({"name": "Web", "operator_ids": [ann_id]});
    let channel = call(reqwest::Method::POST, "/api/v1/channels", Some(&admin), Some(body)).await.1["id"].as_u64().unwrap();
    let (_, session) = call(reqwest::Method::POST, &format!("/api/v1/channels/{channel}/sessions"), None, Some(json!({}))).await;
    let visitor = session["visitor_token"].as_str().unwrap().to_owned();
    let ws = base.replace("http://", "ws://");
    let (mut console, _) = tokio_tungstenite::connect_async(format!("{ws}/ws/agent?token={ann_token}")).await.expect("console socket");
    let (mut widget, _) = tokio_tungstenite::connect_async(format!("{ws}/ws/visitor?token={visitor}")).await.expect("widget socket");
    let refused = tokio_tungstenite::connect_async(format!("{ws}/ws/agent?token={forged}")).await;
    assert!(refused.is_err(), "a forged token opens no console");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = futures_util::SinkExt::close(&mut console).await;
    let _ = futures_util::SinkExt::close(&mut widget).await;
    assert_eq!(call(reqwest::Method::POST, "/api/v1/auth/logout", Some(&admin), None).await.0, 204);
    tokio::time::sleep(Duration::from_millis(300)).await;

    secrets.extend([admin, first, ann_token, forged, visitor]);
    let log = server.log();
    assert!(log.contains("/ws/agent") && log.contains("initial-admin-password"), "the log records requests:\n{log}");
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "secret {secret:?} is in the log:\n{log}");
    }
}
