//! Bad input always gets a clear 4xx with a JSON error body: never a 500, a panic or a hang.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::support::TestServer;

/// Malformed JSON and wrong field types get 400 naming the field.
#[actix_rt::test]
async fn malformed_json_gets_400_naming_the_field() {
    let s = TestServer::start().await;
    let res = s.call_raw(Method::POST, "/api/v1/expertise", Some(&s.admin), b"{\"name\": ".to_vec()).await;
    assert_eq!(res.status, 400);
    assert_eq!(res.error_code(), "bad_request");
    let res = s.post("/api/v1/users", &s.admin, json!({"login": "x", "name": "x", "role": "user"})).await;
    assert_eq!(res.status, 400);
    assert!(res.body["error"]["message"].as_str().unwrap().contains("password"), "{:?}", res.body);
    let res = s.post("/api/v1/expertise", &s.admin, json!({"name": "Ok", "operator_ids": [1, "two"]})).await;
    assert!(res.expect(400)["error"]["message"].as_str().unwrap().contains("operator_ids[1]"));
    let res = s.post("/api/v1/users", &s.admin, json!({"login": "y", "name": "y", "password": "p", "role": "superuser"})).await;
    assert!(res.expect(400)["error"]["message"].as_str().unwrap().contains("role"));
    let res = s.call_raw(Method::POST, "/api/v1/expertise", Some(&s.admin), Vec::new()).await;
    assert!(res.expect(400)["error"]["message"].as_str().unwrap().contains("name"), "an empty body is `{{}}`: the missing field is named");
    let res = s.call_raw(Method::POST, "/api/v1/expertise", Some(&s.admin), b"[1,2]".to_vec()).await;
    res.expect(400);
    // Found by schemathesis: serde reads a struct from an array of its fields,
    // so `[null, null]` was a valid PATCH. Every body must be an object.
    let res = s.call_raw(Method::PATCH, "/api/v1/me/preferences", Some(&s.admin), b"[null, null]".to_vec()).await;
    assert!(res.expect(400)["error"]["message"].as_str().unwrap().contains("object"));
}

/// JSON Schema counts `3.0` as an integer, and so do we (Python and JavaScript clients send it).
#[actix_rt::test]
async fn integral_floats_are_integers() {
    let s = TestServer::start().await;
    let channel = s.post("/api/v1/channels", &s.admin, json!({"name": "Web", "max_sessions": 3.0})).await.expect(201);
    assert_eq!(channel["max_sessions"], 3);
    let res = s.post("/api/v1/channels", &s.admin, json!({"name": "Web", "max_sessions": 2.5})).await;
    assert!(res.expect(400)["error"]["message"].as_str().unwrap().contains("max_sessions"));
}

/// Field rules: empty or over-long names and bodies, bad language and country codes.
#[actix_rt::test]
async fn invalid_fields_get_400_naming_the_field() {
    let s = TestServer::start().await;
    let long = "n".repeat(101);
    for (path, body, field) in [
        ("/api/v1/expertise", json!({"name": "  "}), "name"),
        ("/api/v1/expertise", json!({"name": long}), "name"),
        ("/api/v1/channels", json!({"name": "c", "max_sessions": 0}), "max_sessions"),
        ("/api/v1/channels", json!({"name": "c", "operator_ids": [777]}), "operator_ids"),
        ("/api/v1/users", json!({"login": "a b", "name": "n", "password": "p", "role": "user"}), "login"),
        ("/api/v1/users", json!({"login": "ok", "name": "n", "password": "p", "role": "user", "languages": ["english!"]}), "languages"),
        ("/api/v1/users", json!({"login": "ok", "name": "n", "password": "p", "role": "user", "country": "BEL"}), "country"),
        ("/api/v1/users", json!({"login": "ok", "name": "n", "password": "", "role": "user"}), "password"),
    ] {
        let res = s.post(path, &s.admin, body.clone()).await;
        let message = res.expect(400)["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.contains(field), "{path} {body}: {message}");
    }
    s.patch("/api/v1/me/preferences", &s.admin, json!({"expertise_ids": [12345]})).await.expect(400);
    let channel = s.channel(&[], None).await;
    let sessions = format!("/api/v1/channels/{channel}/sessions");
    let visit = |body| s.call(Method::POST, &sessions, None, Some(body));
    assert!(visit(json!({"expertise_ids": [999]})).await.expect(400)["error"]["message"].as_str().unwrap().contains("expertise_ids"));
    assert!(visit(json!({"lang": "??"})).await.expect(400)["error"]["message"].as_str().unwrap().contains("lang"));
    assert!(visit(json!({"visitor_name": ""})).await.expect(400)["error"]["message"].as_str().unwrap().contains("visitor_name"));
    let (_, visitor) = s.visit(channel, json!({})).await;
    s.post("/api/v1/visitor/messages", &visitor, json!({"body": ""})).await.expect(400);
    s.post("/api/v1/visitor/messages", &visitor, json!({"body": "m".repeat(4001)})).await.expect(400);
    s.post("/api/v1/visitor/messages", &visitor, json!({"body": "m".repeat(4000)})).await.expect(201);
}

/// A body over 64 KiB gets 413 with the JSON error body.
#[actix_rt::test]
async fn oversized_bodies_get_413() {
    let s = TestServer::start().await;
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(70 * 1024));
    let res = s.call_raw(Method::POST, "/api/v1/expertise", Some(&s.admin), big.into_bytes()).await;
    assert_eq!(res.status, 413);
    assert_eq!(res.error_code(), "payload_too_large");
    let channel = s.channel(&[], None).await;
    let (_, visitor) = s.visit(channel, json!({})).await;
    let big = format!("{{\"body\": \"{}\"}}", "x".repeat(70 * 1024));
    let res = s.call_raw(Method::POST, "/api/v1/visitor/messages", Some(&visitor), big.into_bytes()).await;
    assert_eq!(res.error_code(), "payload_too_large");
}

/// Unknown ids get 404, unknown routes and wrong methods get JSON errors too.
#[actix_rt::test]
async fn unknown_ids_routes_and_methods_get_json_errors() {
    let s = TestServer::start().await;
    for path in ["/api/v1/conversations/999", "/api/v1/users/999", "/api/v1/expertise/999", "/api/v1/channels/999", "/nope", "/api/v1/nope"]
    {
        assert_eq!(s.get(path, &s.admin).await.expect(404)["error"]["code"], "not_found", "{path}");
    }
    s.call(Method::POST, "/api/v1/channels/999/sessions", None, Some(json!({}))).await.expect(404);
    s.patch("/api/v1/expertise/999", &s.admin, json!({"name": "x"})).await.expect(404);
    s.call(Method::DELETE, "/api/v1/channels/999", Some(&s.admin), None).await.expect(404);
    s.post("/api/v1/conversations/999/join", &s.admin, json!({})).await.expect(404);
    // Every known path answers a wrong method with 405 (schemathesis found single-method paths answering 404).
    for (method, path) in [(Method::PUT, "/api/v1/expertise"), (Method::DELETE, "/api/v1/me"), (Method::PATCH, "/healthz")] {
        let res = s.call(method, path, Some(&s.admin), Some(json!({}))).await;
        assert_eq!(res.status, 405, "{path}");
        assert_eq!(res.error_code(), "method_not_allowed");
    }
    s.get("/api/v1/conversations/abc", &s.admin).await.expect(400);
    s.get("/api/v1/conversations?status=sleeping", &s.admin).await.expect(400);
}

/// Transitions the state machine does not allow get 409.
#[actix_rt::test]
async fn invalid_transitions_get_409() {
    let s = TestServer::start().await;
    let (ann, ann_token) = s.operator("ann", json!({})).await;
    let channel = s.channel(&[ann], None).await;
    // Nobody online: the conversation is queued and ann is not a member.
    let (queued, _) = s.visit(channel, json!({})).await;
    s.post(&format!("/api/v1/conversations/{queued}/join"), &ann_token, json!({})).await.expect(409);
    let res = s.put(&format!("/api/v1/conversations/{queued}/status"), &ann_token, json!({"status": "closed"})).await;
    res.expect(400);
    let dup = s.post("/api/v1/expertise", &s.admin, json!({"name": "Billing"})).await;
    dup.expect(201);
    assert_eq!(s.post("/api/v1/expertise", &s.admin, json!({"name": "BILLING"})).await.expect(409)["error"]["code"], "conflict");
    s.post("/api/v1/users", &s.admin, json!({"login": "ann", "name": "Ann 2", "password": "pw", "role": "user"})).await.expect(409);
    // The last admin cannot be demoted.
    s.patch("/api/v1/users/1", &s.admin, json!({"role": "user"})).await.expect(409);
}

/// A client that sends its whole body before reading the answer (as
/// Python's `http.client` does) still reads the 413 or 401, not a reset, for
/// bodies up to 16 MiB: the server drains what it did not read.
#[actix_rt::test]
async fn a_client_sending_a_large_body_before_reading_gets_the_answer() {
    use std::io::{Read, Write};
    let s = TestServer::start().await;
    let addr = s.addr;
    let admin = s.admin.clone();
    let answers = actix_rt::task::spawn_blocking(move || {
        let body = format!("{{\"name\": \"{}\"}}", "x".repeat(4 * 1024 * 1024));
        [Some(admin.as_str()), None]
            .iter()
            .map(|token| {
                let mut tcp = std::net::TcpStream::connect(addr).unwrap();
                tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
                let head = format!(
                    "POST /api/v1/expertise HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                tcp.write_all(head.as_bytes()).unwrap();
                tcp.write_all(body.as_bytes()).expect("the whole body is accepted");
                let mut answer = String::new();
                tcp.read_to_string(&mut answer).expect("the answer is readable");
                answer
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert!(answers[0].starts_with("HTTP/1.1 413"), "{}", answers[0]);
    assert!(answers[0].contains("payload_too_large"), "{}", answers[0]);
    assert!(answers[1].starts_with("HTTP/1.1 401"), "{}", answers[1]);
    assert!(answers[1].contains("\"unauthorized\""), "{}", answers[1]);
}
