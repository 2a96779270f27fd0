//! Operations: health, metrics, the OpenAPI document, graceful stop.

use serde_json::json;

use crate::support::{Ended, TestServer};

/// Health answers `{"status":"ok"}`; metrics are Prometheus text with the documented families.
#[actix_rt::test]
async fn health_and_metrics() {
    let s = TestServer::start().await;
    assert_eq!(s.get("/healthz", "").await.expect(200), json!({"status": "ok"}));
    let (ann, token) = s.operator("ann", json!({})).await;
    let (_ws, _) = s.agent(&token).await;
    let channel = s.channel(&[ann], None).await;
    s.visit(channel, json!({})).await;
    let text = reqwest::get(s.url("/metrics")).await.unwrap().text().await.unwrap();
    for family in [
        "switchboard_ws_connections",
        "switchboard_queue_length",
        "switchboard_assignment_latency_seconds_bucket",
        "switchboard_delivery_latency_seconds_bucket",
        "switchboard_assignments_total 1",
        "switchboard_snapshot_age_seconds",
    ] {
        assert!(text.contains(family), "missing {family} in\n{text}");
    }
}

/// The OpenAPI document lists every endpoint of the contract.
#[actix_rt::test]
async fn openapi_covers_the_contract() {
    let s = TestServer::start().await;
    let doc = s.get("/api/openapi.json", "").await.expect(200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/v1/auth/login", "post"),
        ("/api/v1/auth/logout", "post"),
        ("/api/v1/users", "get"),
        ("/api/v1/users", "post"),
        ("/api/v1/users/{id}", "patch"),
        ("/api/v1/me", "get"),
        ("/api/v1/me/preferences", "patch"),
        ("/api/v1/me/presence", "put"),
        ("/api/v1/expertise", "post"),
        ("/api/v1/expertise/{id}", "delete"),
        ("/api/v1/channels", "post"),
        ("/api/v1/channels/{id}", "patch"),
        ("/api/v1/channels/{id}/sessions", "post"),
        ("/api/v1/visitor/conversation", "get"),
        ("/api/v1/visitor/messages", "post"),
        ("/api/v1/visitor/leave", "post"),
        ("/api/v1/conversations", "get"),
        ("/api/v1/conversations/{id}", "get"),
        ("/api/v1/conversations/{id}/messages", "post"),
        ("/api/v1/conversations/{id}/status", "put"),
        ("/api/v1/conversations/{id}/expertise", "put"),
        ("/api/v1/conversations/{id}/join", "post"),
        ("/api/v1/conversations/{id}/invite_candidates", "get"),
        ("/api/v1/conversations/{id}/invite", "post"),
        ("/api/v1/conversations/{id}/close", "post"),
        ("/api/v1/direct", "post"),
        ("/healthz", "get"),
        ("/metrics", "get"),
        ("/api/v1/admin/snapshot", "post"),
        ("/api/v1/chatbots", "post"),
        ("/api/v1/chatbots/{id}", "patch"),
        ("/ws/agent", "get"),
        ("/ws/visitor", "get"),
    ] {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} missing from the OpenAPI document");
    }
}

/// Stopping the server closes WebSocket sessions with "going away" and stops listening.
#[actix_rt::test]
async fn graceful_stop_closes_sessions() {
    let s = TestServer::start().await;
    let (_, token) = s.operator("ann", json!({})).await;
    let (mut ws, _) = s.agent(&token).await;
    let addr = s.addr;
    let (_, ended) = tokio::join!(s.stop(), ws.ended());
    match ended {
        Ended::Closed(Some(frame)) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected a 1001 close, got {other:?}"),
    }
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// `/demo` without a channel to show is a page telling what to do, not an API error.
#[actix_rt::test]
async fn the_demo_page_without_a_channel_says_how_to_make_one() {
    let s = TestServer::start().await;
    let res = reqwest::get(s.url("/demo")).await.unwrap();
    assert_eq!(res.status(), 404);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(res.text().await.unwrap().contains("Administration → Channels"));
}
