//! Every role rule: each endpoint called as admin, user, visitor and anonymous.

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::TestServer;

/// One row: an endpoint and the status expected for admin, user (a member), visitor, anonymous.
struct Row {
    method: Method,
    path: String,
    body: Option<Value>,
    expected: [u16; 4],
}

fn row(method: Method, path: impl Into<String>, body: Option<Value>, expected: [u16; 4]) -> Row {
    Row { method, path: path.into(), body, expected }
}

/// The role table of API.md, endpoint by endpoint.
#[actix_rt::test]
async fn every_endpoint_enforces_its_roles() {
    let s = TestServer::start().await;
    let (ann, ann_token) = s.operator("ann", json!({})).await;
    let (bob, _) = s.operator("bob", json!({})).await;
    let (_ann_ws, _) = s.agent(&ann_token).await;
    let expertise = s.expertise("Billing").await;
    let spare_expertise = s.expertise("Spare").await;
    let channel = s.channel(&[ann], None).await;
    let spare_channel = s.channel(&[], None).await;
    let script = json!({"title": "Bot", "steps": [{"type": "text", "message": "Hi"}]});
    let chatbot = s.post("/api/v1/chatbots", &s.admin, script.clone()).await.expect(201)["id"].as_u64().unwrap();
    let spare_chatbot = s.post("/api/v1/chatbots", &s.admin, script.clone()).await.expect(201)["id"].as_u64().unwrap();
    let (conversation, visitor) = s.visit(channel, json!({})).await;
    let (second, _) = s.visit(channel, json!({})).await;
    // Put ann's WebSocket away so presence changes are answered (200) rather than 409.
    let c = format!("/api/v1/conversations/{conversation}");
    let rows = [
        row(Method::GET, "/healthz", None, [200, 200, 200, 200]),
        row(Method::GET, "/metrics", None, [200, 200, 200, 200]),
        row(Method::GET, "/api/openapi.json", None, [200, 200, 200, 200]),
        row(Method::GET, "/api/v1/users", None, [200, 200, 403, 401]),
        row(
            Method::POST,
            "/api/v1/users",
            Some(json!({"login": "new", "name": "New", "password": "pw", "role": "user"})),
            [201, 403, 403, 401],
        ),
        row(Method::GET, format!("/api/v1/users/{ann}"), None, [200, 200, 403, 401]),
        row(Method::PATCH, format!("/api/v1/users/{bob}"), Some(json!({"name": "Bobby"})), [200, 403, 403, 401]),
        row(Method::GET, "/api/v1/me", None, [200, 200, 403, 401]),
        row(Method::PATCH, "/api/v1/me/preferences", Some(json!({"languages": ["en"]})), [200, 200, 403, 401]),
        row(Method::PUT, "/api/v1/me/presence", Some(json!({"presence": "online"})), [409, 200, 403, 401]),
        row(Method::GET, "/api/v1/expertise", None, [200, 200, 403, 401]),
        row(Method::GET, format!("/api/v1/expertise/{expertise}"), None, [200, 200, 403, 401]),
        row(Method::POST, "/api/v1/expertise", Some(json!({"name": "Returns"})), [201, 403, 403, 401]),
        row(Method::PATCH, format!("/api/v1/expertise/{expertise}"), Some(json!({"operator_ids": [ann]})), [200, 403, 403, 401]),
        row(Method::DELETE, format!("/api/v1/expertise/{spare_expertise}"), None, [204, 403, 403, 401]),
        row(Method::GET, "/api/v1/channels", None, [200, 200, 403, 401]),
        row(Method::GET, format!("/api/v1/channels/{channel}"), None, [200, 200, 403, 401]),
        row(Method::POST, "/api/v1/channels", Some(json!({"name": "Shop"})), [201, 403, 403, 401]),
        row(Method::PATCH, format!("/api/v1/channels/{channel}"), Some(json!({"max_sessions": 10})), [200, 403, 403, 401]),
        row(Method::DELETE, format!("/api/v1/channels/{spare_channel}"), None, [204, 403, 403, 401]),
        row(Method::GET, "/api/v1/chatbots", None, [200, 200, 403, 401]),
        row(Method::GET, format!("/api/v1/chatbots/{chatbot}"), None, [200, 200, 403, 401]),
        row(Method::POST, "/api/v1/chatbots", Some(script), [201, 403, 403, 401]),
        row(Method::PATCH, format!("/api/v1/chatbots/{chatbot}"), Some(json!({"title": "Helper"})), [200, 403, 403, 401]),
        row(Method::DELETE, format!("/api/v1/chatbots/{spare_chatbot}"), None, [204, 403, 403, 401]),
        row(Method::POST, format!("/api/v1/channels/{channel}/sessions"), Some(json!({})), [201, 201, 201, 201]),
        row(Method::GET, "/api/v1/visitor/conversation", None, [403, 403, 200, 401]),
        row(Method::POST, "/api/v1/visitor/messages", Some(json!({"body": "hi"})), [403, 403, 201, 401]),
        row(Method::POST, "/api/v1/visitor/page", Some(json!({"url": "https://shop.example/"})), [403, 403, 204, 401]),
        row(Method::POST, "/api/v1/visitor/rating", Some(json!({"score": 5})), [403, 403, 409, 401]),
        row(Method::GET, "/api/v1/conversations", None, [200, 200, 403, 401]),
        row(Method::GET, "/api/v1/conversations?status=need_help", None, [200, 200, 403, 401]),
        row(Method::GET, c.clone(), None, [200, 200, 403, 401]),
        row(Method::POST, format!("{c}/messages"), Some(json!({"body": "hello"})), [403, 201, 403, 401]),
        row(Method::POST, format!("{c}/notes"), Some(json!({"body": "a note"})), [403, 201, 403, 401]),
        row(Method::GET, "/api/v1/canned_responses", None, [200, 200, 403, 401]),
        row(Method::POST, "/api/v1/canned_responses", Some(json!({"shortcut": "hi", "body": "Hello"})), [201, 201, 403, 401]),
        row(Method::POST, "/api/v1/canned_responses", Some(json!({"shortcut": "hi", "body": "Hi", "shared": true})), [201, 403, 403, 401]),
        row(Method::PUT, format!("{c}/status"), Some(json!({"status": "waiting"})), [403, 200, 403, 401]),
        row(Method::PUT, format!("{c}/expertise"), Some(json!({"expertise_ids": [expertise]})), [403, 200, 403, 401]),
        row(Method::GET, format!("{c}/invite_candidates"), None, [200, 200, 403, 401]),
        row(Method::POST, format!("{c}/join"), None, [409, 409, 403, 401]),
        row(Method::POST, format!("{c}/invite"), Some(json!({"user_ids": [bob]})), [403, 200, 403, 401]),
        row(Method::POST, format!("{c}/transfer"), Some(json!({"user_id": 999_999})), [400, 400, 403, 401]),
        row(Method::GET, "/api/v1/leads", None, [200, 200, 403, 401]),
        row(Method::GET, "/api/v1/webhooks", None, [200, 403, 403, 401]),
        row(Method::GET, "/api/v1/webhooks/999999/deliveries", None, [404, 403, 403, 401]),
        row(Method::POST, "/api/v1/webhooks/999999/test", None, [404, 403, 403, 401]),
        row(Method::POST, "/api/v1/leads/999999/claim", None, [404, 404, 403, 401]),
        row(Method::POST, "/api/v1/leads/999999/done", None, [404, 404, 403, 401]),
        row(Method::POST, "/api/v1/direct", Some(json!({"user_id": bob})), [201, 201, 403, 401]),
        row(Method::POST, format!("/api/v1/conversations/{second}/close"), None, [403, 200, 403, 401]),
        row(Method::PUT, "/api/v1/visitor/contact", Some(json!({"email": "vera@example.com"})), [403, 403, 204, 401]),
        row(Method::POST, "/api/v1/visitor/transcript", Some(json!({"email": "vera@example.com"})), [403, 403, 409, 401]),
        row(Method::POST, "/api/v1/visitor/leave", None, [403, 403, 200, 401]),
        row(Method::POST, "/api/v1/auth/logout", None, [204, 204, 403, 401]),
    ];
    let tokens = [Some(s.admin.clone()), Some(ann_token.clone()), Some(visitor.clone()), None];
    for row in rows {
        for (who, (token, expected)) in ["admin", "user", "visitor", "anonymous"].iter().zip(tokens.iter().zip(row.expected)) {
            let res = s.call(row.method.clone(), &row.path, token.as_deref(), row.body.clone()).await;
            assert_eq!(res.status, expected, "{} {} as {who}: {:?}", row.method, row.path, res.body);
            if expected >= 400 {
                res.error_code();
            }
        }
    }
}
