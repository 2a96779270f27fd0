//! Webhooks against a real local receiver: signed, in order per conversation,
//! retried after 500s and timeouts without holding up another receiver,
//! durable across a restart and a SIGKILL.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::support::{free_port, ServerProcess, TestServer};

/// What the receiver does with the next request.
#[derive(Clone, Copy)]
pub enum Answer {
    Status(u16),
    /// Answers 200, but only after this long (longer than the server waits).
    Hang(Duration),
}

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Got {
    signature: String,
    body: String,
    json: Value,
}

#[derive(Default)]
struct Script {
    answers: Mutex<VecDeque<Answer>>,
    got: Mutex<Vec<Got>>,
}

/// An HTTP server on 127.0.0.1 that records every POST and answers as scripted (200 once the script is done).
pub struct Receiver {
    port: u16,
    script: Arc<Script>,
    server: actix_web::dev::ServerHandle,
}

async fn receive(req: HttpRequest, body: web::Bytes, script: web::Data<Script>) -> HttpResponse {
    let signature = req.headers().get("X-Switchboard-Signature").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = String::from_utf8_lossy(&body).into_owned();
    let answer = script.answers.lock().pop_front().unwrap_or(Answer::Status(200));
    let json = serde_json::from_str(&body).unwrap_or(Value::Null);
    match answer {
        Answer::Status(code) => {
            script.got.lock().push(Got { signature, body, json });
            HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap()).finish()
        }
        Answer::Hang(wait) => {
            actix_rt::time::sleep(wait).await;
            HttpResponse::Ok().finish()
        }
    }
}

impl Receiver {
    pub async fn start(port: u16, answers: &[Answer]) -> Receiver {
        let script = Arc::new(Script::default());
        script.answers.lock().extend(answers.iter().copied());
        let data = web::Data::from(script.clone());
        let server = HttpServer::new(move || App::new().app_data(data.clone()).default_service(web::to(receive)))
            .workers(1)
            .disable_signals()
            .bind(("127.0.0.1", port))
            .expect("the receiver binds")
            .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Receiver { port, script, server: handle }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn got(&self) -> Vec<Got> {
        self.script.got.lock().clone()
    }

    /// Waits until `pred` holds of what arrived.
    pub async fn wait_until(&self, what: &str, pred: impl Fn(&[Got]) -> bool) -> Vec<Got> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.got();
            if pred(&got) {
                return got;
            }
            assert!(Instant::now() < deadline, "{what}: got {:?}", got.iter().map(|g| g.json["event"].clone()).collect::<Vec<_>>());
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn stop(self) {
        self.server.stop(false).await;
    }
}

pub fn events(got: &[Got]) -> Vec<String> {
    got.iter().map(|g| g.json["event"].as_str().unwrap_or_default().to_owned()).collect()
}

fn message_bodies(got: &[Got]) -> Vec<String> {
    got.iter().filter(|g| g.json["event"] == "message.created").map(|g| g.json["data"]["body"].as_str().unwrap().to_owned()).collect()
}

fn expected_signature(secret: &str, body: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    format!("sha256={}", hex::encode(aws_lc_rs::hmac::sign(&key, body.as_bytes()).as_ref()))
}

fn all_events() -> Value {
    json!(["conversation.created", "conversation.assigned", "conversation.closed", "message.created", "lead.created", "rating.created"])
}

#[actix_rt::test]
async fn signed_events_arrive_in_order_for_each_conversation() {
    let receiver = Receiver::start(free_port(), &[]).await;
    let s = TestServer::start().await;
    let hook =
        s.post("/api/v1/webhooks", &s.admin, json!({"url": receiver.url(), "events": all_events(), "secret": "s3cret"})).await.expect(201);
    assert_eq!((hook["url"].as_str(), hook["secret"].as_str()), (Some(receiver.url().as_str()), Some("s3cret")));
    let (ann, ann_token) = s.operator("ann", json!({})).await;
    let (mut ann_ws, _) = s.agent(&ann_token).await;
    let channel = s.channel(&[ann], None).await;
    let (conversation, visitor) = s.visit(channel, json!({"visitor_name": "Vera"})).await;
    ann_ws.next_of("assigned").await;
    for i in 1..=5 {
        s.post("/api/v1/visitor/messages", &visitor, json!({"body": format!("m{i}")})).await.expect(201);
    }
    s.post(&format!("/api/v1/conversations/{conversation}/close"), &ann_token, json!({})).await.expect(200);
    s.post("/api/v1/visitor/rating", &visitor, json!({"score": 5})).await.expect(201);

    let got = receiver.wait_until("every event", |g| events(g).contains(&"rating.created".to_owned())).await;
    let names = events(&got);
    let at = |name: &str| names.iter().position(|n| n == name).unwrap_or_else(|| panic!("no {name} in {names:?}"));
    assert!(
        at("conversation.created") < at("conversation.assigned") && at("conversation.assigned") < at("conversation.closed"),
        "{names:?}"
    );
    assert_eq!(message_bodies(&got).iter().filter(|b| b.starts_with('m')).cloned().collect::<Vec<_>>(), ["m1", "m2", "m3", "m4", "m5"]);
    for g in &got {
        assert_eq!(g.signature, expected_signature("s3cret", &g.body), "signed with the secret");
        assert!(g.json["id"].as_str().is_some_and(|id| id.starts_with("evt_")) && g.json["at"].is_string(), "{}", g.body);
    }
    let closed = &got[at("conversation.closed")].json["data"];
    assert_eq!((closed["id"].as_u64(), closed["status"].as_str()), (Some(conversation), Some("closed")));
    assert_eq!(got[at("rating.created")].json["data"]["rating"]["score"], 5);

    let id = hook["id"].as_u64().unwrap();
    let log = s.get(&format!("/api/v1/webhooks/{id}/deliveries"), &s.admin).await.expect(200);
    assert_eq!(log.as_array().unwrap().len(), got.len());
    assert!(log.as_array().unwrap().iter().all(|a| a["status_code"] == 200 && a["attempt"] == 1), "{log}");
    // The admin's "send test event".
    s.post(&format!("/api/v1/webhooks/{id}/test"), &s.admin, json!({})).await.expect(202);
    receiver.wait_until("the test event", |g| events(g).contains(&"webhook.test".to_owned())).await;
    receiver.stop().await;
}

/// One receiver fails (two 500s, then a request that times out) while another
/// is healthy: the healthy one gets everything at once; the failing one gets
/// everything later, still in order, and the log shows each try.
#[actix_rt::test]
async fn a_failing_receiver_is_retried_without_holding_up_another() {
    let failing = Receiver::start(free_port(), &[Answer::Status(500), Answer::Status(503), Answer::Hang(Duration::from_secs(3))]).await;
    let healthy = Receiver::start(free_port(), &[]).await;
    let s = TestServer::start_with(|c| c.webhooks.timeout = Duration::from_secs(1)).await;
    let slow = s.post("/api/v1/webhooks", &s.admin, json!({"url": failing.url(), "events": ["message.created"]})).await.expect(201);
    assert_eq!(slow["secret"].as_str().map(str::len), Some(64), "a random secret");
    s.post("/api/v1/webhooks", &s.admin, json!({"url": healthy.url(), "events": ["message.created"]})).await.expect(201);
    let (_, visitor) = s.visit(s.channel(&[], None).await, json!({})).await;
    let started = Instant::now();
    for i in 1..=3 {
        s.post("/api/v1/visitor/messages", &visitor, json!({"body": format!("m{i}")})).await.expect(201);
    }
    healthy.wait_until("all three, at once", |g| message_bodies(g) == ["m1", "m2", "m3"]).await;
    assert!(started.elapsed() < Duration::from_secs(2), "the healthy receiver waited for the failing one: {:?}", started.elapsed());
    let got = failing.wait_until("all three, in the end", |g| message_bodies(g).len() >= 4).await;
    // The first was refused twice (recorded each time) and timed out once (not recorded), then came in order.
    assert_eq!(message_bodies(&got), ["m1", "m1", "m1", "m2", "m3"][..message_bodies(&got).len()]);
    let id = slow["id"].as_u64().unwrap();
    let log = s.get(&format!("/api/v1/webhooks/{id}/deliveries"), &s.admin).await.expect(200);
    let tries: Vec<(Value, Value, Value)> =
        log.as_array().unwrap().iter().rev().map(|a| (a["attempt"].clone(), a["status_code"].clone(), a["error"].clone())).collect();
    assert_eq!((tries[0].0.clone(), tries[0].1.clone()), (json!(1), json!(500)), "{log}");
    assert_eq!((tries[1].0.clone(), tries[1].1.clone()), (json!(2), json!(503)), "{log}");
    assert_eq!(tries[2].0, json!(3));
    assert!(tries[2].2.as_str().is_some_and(|e| e.contains("timed out")), "{log}");
    failing.stop().await;
    healthy.stop().await;
}

/// Deliveries pending while the receiver is down survive a graceful restart.
#[actix_rt::test]
async fn pending_deliveries_survive_a_restart() {
    let port = free_port();
    let s = TestServer::start().await;
    let url = format!("http://127.0.0.1:{port}/hook");
    s.post("/api/v1/webhooks", &s.admin, json!({"url": url, "events": ["message.created"]})).await.expect(201);
    let (_, visitor) = s.visit(s.channel(&[], None).await, json!({})).await;
    for i in 1..=3 {
        s.post("/api/v1/visitor/messages", &visitor, json!({"body": format!("m{i}")})).await.expect(201);
    }
    let s = s.restart().await;
    let receiver = Receiver::start(port, &[]).await;
    receiver.wait_until("every message after the restart", |g| message_bodies(g) == ["m1", "m2", "m3"]).await;
    drop(s);
    receiver.stop().await;
}

/// SIGKILL with deliveries pending: after the restart every event arrives (at
/// least once), each conversation's still in order.
#[actix_rt::test]
async fn pending_deliveries_survive_sigkill() {
    let port = free_port();
    let dir = TempDir::new().unwrap();
    let args = ["--webhook-allow-private", "--webhook-timeout-s", "1", "--visitor-sessions-per-minute", "0"];
    let env = [("SWITCHBOARD_ADMIN_PASSWORD", "kill-pass")];
    let server = ServerProcess::start(dir.path(), &args, &env);
    let http = reqwest::Client::new();
    let base = server.base.clone();
    let login =
        http.post(format!("{base}/api/v1/auth/login")).json(&json!({"login": "admin", "password": "kill-pass"})).send().await.unwrap();
    let admin = login.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    let post = |path: &str, token: &str, body: Value| http.post(format!("{base}{path}")).bearer_auth(token).json(&body).send();
    let url = format!("http://127.0.0.1:{port}/hook");
    assert_eq!(post("/api/v1/webhooks", &admin, json!({"url": url, "events": ["message.created"]})).await.unwrap().status(), 201);
    let channel = post("/api/v1/channels", &admin, json!({"name": "Web"})).await.unwrap().json::<Value>().await.unwrap()["id"].clone();
    let mut sent = Vec::new();
    for v in 0..3 {
        let opened = post(&format!("/api/v1/channels/{channel}/sessions"), "", json!({})).await.unwrap().json::<Value>().await.unwrap();
        let token = opened["visitor_token"].as_str().unwrap().to_owned();
        for i in 1..=4 {
            let body = format!("v{v}-m{i}");
            assert_eq!(post("/api/v1/visitor/messages", &token, json!({"body": body})).await.unwrap().status(), 201);
            sent.push(body);
        }
    }
    // The first tries failed (nobody listens): the deliveries are in the outbox.
    let hooks = http.get(format!("{base}/api/v1/webhooks")).bearer_auth(&admin).send().await.unwrap().json::<Value>().await.unwrap();
    let id = hooks[0]["id"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = http
            .get(format!("{base}/api/v1/webhooks/{id}/deliveries"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        if log.as_array().is_some_and(|l| !l.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "no delivery was tried");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill();

    let _restarted = ServerProcess::start(dir.path(), &args, &env);
    let receiver = Receiver::start(port, &[]).await;
    let got = receiver.wait_until("every message after the SIGKILL", |g| sent.iter().all(|b| message_bodies(g).contains(b))).await;
    for v in 0..3 {
        let prefix = format!("v{v}-");
        let mut seen: Vec<String> = message_bodies(&got).into_iter().filter(|b| b.starts_with(&prefix)).collect();
        seen.dedup();
        let expected: Vec<String> = (1..=4).map(|i| format!("v{v}-m{i}")).collect();
        assert_eq!(seen, expected, "in order per conversation (a repeat only right after itself)");
    }
    receiver.stop().await;
}

#[actix_rt::test]
async fn webhook_urls_and_fields_are_checked() {
    let s = TestServer::start_with(|c| c.webhooks.allow_private = false).await;
    let (_, user) = s.operator("ann", json!({})).await;
    let good = json!({"url": "https://93.184.216.34/hook", "events": ["lead.created"]});
    s.post("/api/v1/webhooks", &user, good.clone()).await.expect(403);
    for (body, field) in [
        (json!({"url": "ftp://93.184.216.34/", "events": ["lead.created"]}), "url"),
        (json!({"url": "http://127.0.0.1:9/hook", "events": ["lead.created"]}), "url"),
        (json!({"url": "http://[::1]/hook", "events": ["lead.created"]}), "url"),
        (json!({"url": "http://localhost:8080/hook", "events": ["lead.created"]}), "url"),
        (json!({"url": "http://169.254.169.254/latest", "events": ["lead.created"]}), "url"),
        (json!({"url": "https://93.184.216.34/hook", "events": []}), "events"),
        (json!({"url": "https://93.184.216.34/hook", "events": ["message.deleted"]}), "events"),
        (json!({"url": "https://93.184.216.34/hook", "events": ["lead.created"], "secret": ""}), "secret"),
        (json!({"url": "https://93.184.216.34/hook", "events": ["lead.created"], "secret": "x".repeat(257)}), "secret"),
    ] {
        let refused = s.post("/api/v1/webhooks", &s.admin, body.clone()).await.expect(400);
        assert!(refused["error"]["message"].as_str().unwrap().contains(field), "{body}: {refused}");
    }
    let created = s.post("/api/v1/webhooks", &s.admin, good).await.expect(201);
    let path = format!("/api/v1/webhooks/{}", created["id"]);
    s.patch(&path, &s.admin, json!({"url": "http://10.0.0.8/"})).await.expect(400);
    assert_eq!(
        s.patch(&path, &s.admin, json!({"events": ["rating.created", "lead.created"]})).await.expect(200)["events"],
        json!(["lead.created", "rating.created"])
    );
    assert_eq!(s.get("/api/v1/webhooks", &s.admin).await.expect(200).as_array().unwrap().len(), 1);
    s.call(reqwest::Method::DELETE, &path, Some(&s.admin), None).await.expect(204);
    s.call(reqwest::Method::DELETE, &path, Some(&s.admin), None).await.expect(404);
    s.get(&format!("{path}/deliveries"), &s.admin).await.expect(404);
    s.post(&format!("{path}/test"), &s.admin, json!({})).await.expect(404);
}
