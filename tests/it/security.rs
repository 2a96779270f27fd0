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

/// The HTTP status of an operator socket upgrade sent with `origin`.
async fn upgrade_status(s: &TestServer, token: &str, origin: &str) -> u16 {
    let mut request = s.ws_url(&format!("/ws/agent?token={token}")).into_client_request().unwrap();
    request.headers_mut().insert("Origin", origin.parse().unwrap());
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
