//! Missed chats: a livechat that ends without an operator ever in it becomes a
//! lead for its channel's operators, live and in `GET /leads`, to claim and finish.

use serde_json::{json, Value};

use crate::support::{TestServer, WsClient};

/// An operator of the channel, connected but away: told of leads, never routed a chat.
async fn away_operator(s: &TestServer, login: &str) -> (u64, String, WsClient) {
    let (id, token) = s.operator(login, json!({"name": login})).await;
    let (ws, _) = s.agent(&token).await;
    s.put("/api/v1/me/presence", &token, json!({"presence": "away"})).await.expect(200);
    (id, token, ws)
}

fn conversation_ids(leads: &Value) -> Vec<u64> {
    leads.as_array().unwrap().iter().map(|l| l["conversation_id"].as_u64().unwrap()).collect()
}

#[actix_rt::test]
async fn a_visitor_who_leaves_the_queue_is_a_lead_for_the_channels_operators() {
    let s = TestServer::start().await;
    let (ann, ann_token, mut ann_ws) = away_operator(&s, "ann").await;
    let (_, other_token) = s.operator("otto", json!({})).await;
    let channel = s.channel(&[ann], None).await;
    let elsewhere = s.channel(&[], None).await;
    let billing = s.expertise("Billing").await;
    let (conversation, visitor) = s.visit(channel, json!({"visitor_name": "Vera", "expertise_ids": [billing]})).await;
    s.post("/api/v1/visitor/messages", &visitor, json!({"body": "Is anyone there?"})).await.expect(201);
    s.post("/api/v1/visitor/leave", &visitor, json!({})).await.expect(200);

    let told = ann_ws.next_of("lead").await["lead"].clone();
    assert_eq!(told["conversation_id"], conversation);
    assert_eq!((told["reason"].as_str(), told["status"].as_str()), (Some("abandoned"), Some("open")));
    assert_eq!((told["channel_id"].as_u64(), told["visitor_name"].as_str()), (Some(channel), Some("Vera")));
    assert!(told["created_at"].is_string() && told.get("claimed_by").is_none() && told.get("email").is_none(), "{told}");

    assert_eq!(s.get("/api/v1/leads", &ann_token).await.expect(200), json!([told]));
    assert_eq!(conversation_ids(&s.get("/api/v1/leads", &s.admin).await.expect(200)), [conversation]);
    assert_eq!(s.get("/api/v1/leads", &other_token).await.expect(200), json!([]), "not Otto's channel");
    assert_eq!(s.get("/api/v1/leads?status=done", &ann_token).await.expect(200), json!([]));
    assert_eq!(
        conversation_ids(&s.get(&format!("/api/v1/leads?status=open&channel_id={channel}"), &ann_token).await.expect(200)),
        [conversation]
    );
    assert_eq!(s.get(&format!("/api/v1/leads?channel_id={elsewhere}"), &s.admin).await.expect(200), json!([]));
    // The routing report counts it as missed for the expertise it wanted.
    let report = s.get("/api/v1/reports/routing", &s.admin).await.expect(200);
    let row = report["expertise"].as_array().unwrap().iter().find(|e| e["expertise_id"] == billing).unwrap().clone();
    assert_eq!((row["missed"].as_u64(), row["abandoned_in_queue"].as_u64()), (Some(1), Some(1)), "{row}");
}

/// Nobody free: the demo-style bot asks for an e-mail, thanks the visitor and
/// the chat ends there, a lead carrying the address.
#[actix_rt::test]
async fn the_bot_ending_after_nobody_was_free_leaves_a_lead_with_the_email() {
    let s = TestServer::start().await;
    let (ann, ann_token, mut ann_ws) = away_operator(&s, "ann").await;
    let script = json!({"title": "Bot", "steps": [
        {"id": 1, "type": "forward_operator", "message": "Let me find someone"},
        {"id": 2, "type": "question_email", "message": "Nobody is free. Your e-mail?"},
        {"id": 3, "type": "text", "message": "Thanks! We'll be in touch."},
    ]});
    let bot = s.post("/api/v1/chatbots", &s.admin, script).await.expect(201)["id"].clone();
    let channel = s.post("/api/v1/channels", &s.admin, json!({"name": "Web", "operator_ids": [ann], "chatbot_id": bot})).await.expect(201)
        ["id"]
        .as_u64()
        .unwrap();
    let (conversation, visitor) = s.visit(channel, json!({"visitor_name": "Vera"})).await;
    let (mut widget, _) = s.widget(&visitor, None).await;
    s.post("/api/v1/visitor/messages", &visitor, json!({"body": "vera@example.com"})).await.expect(201);
    widget.next_where("the thanks", |f| f["type"] == "message" && f["message"]["body"] == "Thanks! We'll be in touch.").await;
    widget.next_of("closed").await;

    let lead = ann_ws.next_of("lead").await["lead"].clone();
    assert_eq!((lead["conversation_id"].as_u64(), lead["reason"].as_str()), (Some(conversation), Some("no_operator")));
    assert_eq!(lead["email"], "vera@example.com");
    assert_eq!(s.conversation(conversation, &ann_token).await["status"], "closed");
    assert_eq!(s.post("/api/v1/visitor/messages", &visitor, json!({"body": "Hello?"})).await.expect(409)["error"]["code"], "conflict");
}

/// A chat an operator took is no lead, however it ended.
#[actix_rt::test]
async fn a_chat_an_operator_took_is_never_a_lead() {
    let s = TestServer::start().await;
    let (ann, ann_token) = s.operator("ann", json!({})).await;
    let (mut ann_ws, _) = s.agent(&ann_token).await;
    let channel = s.channel(&[ann], None).await;
    let (conversation, visitor) = s.visit(channel, json!({})).await;
    ann_ws.next_of("assigned").await;
    s.post("/api/v1/visitor/leave", &visitor, json!({})).await.expect(200);
    s.archived(1).await;
    assert_eq!(s.conversation(conversation, &ann_token).await["status"], "closed");
    assert_eq!(s.get("/api/v1/leads", &s.admin).await.expect(200), json!([]));
}

#[actix_rt::test]
async fn one_operator_follows_a_lead_up_and_it_survives_a_restart() {
    let s = TestServer::start().await;
    let (ann, ann_token, mut ann_ws) = away_operator(&s, "ann").await;
    let (bob, bob_token, _bob_ws) = away_operator(&s, "bob").await;
    let (_, otto_token) = s.operator("otto", json!({})).await;
    let channel = s.channel(&[ann, bob], None).await;
    let (conversation, visitor) = s.visit(channel, json!({"visitor_key": "vk-lead-1"})).await;
    s.post("/api/v1/visitor/leave", &visitor, json!({})).await.expect(200);
    ann_ws.next_of("lead").await;
    let path = |what: &str| format!("/api/v1/leads/{conversation}/{what}");

    assert_eq!(s.post(&path("claim"), &otto_token, json!({})).await.expect(403)["error"]["code"], "forbidden");
    let claimed = s.post(&path("claim"), &ann_token, json!({})).await.expect(200);
    assert_eq!(claimed["claimed_by"], json!({"id": ann, "name": "ann"}));
    let told = ann_ws.next_of("lead").await["lead"].clone();
    assert_eq!(told, claimed, "the channel's operators see the claim live");
    s.post(&path("claim"), &ann_token, json!({})).await.expect(200);
    let held = s.post(&path("claim"), &bob_token, json!({})).await.expect(409);
    assert!(held["error"]["message"].as_str().unwrap().contains("ann"), "{held}");
    s.post(&path("done"), &bob_token, json!({})).await.expect(409);

    let s = s.restart().await;
    let ann_token = s.login("ann", "pw").await;
    let kept = s.get("/api/v1/leads?status=open", &ann_token).await.expect(200);
    assert_eq!(kept[0]["claimed_by"]["id"], ann, "the claim survived the restart: {kept}");
    let done = s.post(&format!("/api/v1/leads/{conversation}/done"), &ann_token, json!({})).await.expect(200);
    assert_eq!(done["status"], "done");
    assert_eq!(conversation_ids(&s.get("/api/v1/leads?status=done", &ann_token).await.expect(200)), [conversation]);

    // An admin closes anyone's lead; erasing the visitor erases their leads.
    let (conversation, visitor) = s.visit(channel, json!({"visitor_key": "vk-lead-1"})).await;
    s.post("/api/v1/visitor/leave", &visitor, json!({})).await.expect(200);
    s.archived(1).await; // counted since the restart
    let bob_token = s.login("bob", "pw").await;
    s.post(&format!("/api/v1/leads/{conversation}/claim"), &bob_token, json!({})).await.expect(200);
    assert_eq!(s.post(&format!("/api/v1/leads/{conversation}/done"), &s.admin, json!({})).await.expect(200)["status"], "done");
    s.call(reqwest::Method::DELETE, "/api/v1/visitors/vk-lead-1", Some(&s.admin), None).await.expect(200);
    assert_eq!(s.get("/api/v1/leads", &s.admin).await.expect(200), json!([]));
}

#[actix_rt::test]
async fn bad_lead_requests_are_refused_by_name() {
    let s = TestServer::start().await;
    for (query, field) in [
        ("status=pending", "status"),
        ("status=", "status"),
        ("channel_id=abc", "channel_id"),
        ("channel_id=0", "channel_id"),
        ("owner=1", "owner"),
    ] {
        let refused = s.get(&format!("/api/v1/leads?{query}"), &s.admin).await.expect(400);
        assert!(refused["error"]["message"].as_str().unwrap().contains(field), "{query}: {refused}");
    }
    assert_eq!(s.post("/api/v1/leads/999/claim", &s.admin, json!({})).await.expect(404)["error"]["code"], "not_found");
    assert_eq!(s.post("/api/v1/leads/999/done", &s.admin, json!({})).await.expect(404)["error"]["code"], "not_found");
    assert_eq!(s.post("/api/v1/leads/abc/claim", &s.admin, json!({})).await.expect(400)["error"]["code"], "bad_request");
    assert_eq!(s.call(reqwest::Method::GET, "/api/v1/leads", None, None).await.expect(401)["error"]["code"], "unauthorized");
}

/// Queued with nobody free, the visitor leaves an e-mail address and goes:
/// the lead carries it, and operators saw it in the visitor's context.
#[actix_rt::test]
async fn a_queued_visitor_leaves_an_email_for_the_lead() {
    let s = TestServer::start().await;
    let (ann, _, mut ann_ws) = away_operator(&s, "ann").await;
    let channel = s.channel(&[ann], None).await;
    let (conversation, visitor) = s.visit(channel, json!({})).await;
    for bad in [json!({"email": "vera at example"}), json!({"email": ""}), json!({})] {
        s.put("/api/v1/visitor/contact", &visitor, bad).await.expect(400);
    }
    s.call(reqwest::Method::PUT, "/api/v1/visitor/contact", Some(&visitor), Some(json!({"email": "vera@example.com"}))).await.expect(204);
    assert_eq!(s.conversation(conversation, &s.admin).await["visitor"]["email"], "vera@example.com");
    s.post("/api/v1/visitor/leave", &visitor, json!({})).await.expect(200);
    let lead = ann_ws.next_of("lead").await["lead"].clone();
    assert_eq!((lead["email"].as_str(), lead["reason"].as_str()), (Some("vera@example.com"), Some("abandoned")));
    let late = s.put("/api/v1/visitor/contact", &visitor, json!({"email": "vera@example.com"})).await.expect(409);
    assert_eq!(late["error"]["code"], "conflict");
}
