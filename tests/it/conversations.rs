//! Conversations: messages, statuses and Odoo's automatic transitions, close, leave, direct chats.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{TestServer, WsClient};

/// ann (connected) serving one visitor; returns (server, ann id, ann token, ann socket, conversation, visitor token).
async fn served() -> (TestServer, u64, String, WsClient, u64, String) {
    let s = TestServer::start().await;
    let (ann, ann_token) = s.operator("ann", json!({"name": "Ann"})).await;
    let (mut ws, _) = s.agent(&ann_token).await;
    let channel = s.channel(&[ann], None).await;
    let (conversation, visitor) = s.visit(channel, json!({"visitor_name": "Vera", "lang": "en"})).await;
    ws.next_of("assigned").await;
    (s, ann, ann_token, ws, conversation, visitor)
}

/// Messages posted over HTTP reach the other side live, with increasing ids and the right authors.
#[actix_rt::test]
async fn messages_flow_both_ways_with_increasing_ids() {
    let (s, ann, ann_token, mut ann_ws, conversation, visitor) = served().await;
    let (mut widget, hello) = s.widget(&visitor, None).await;
    assert_eq!(hello["conversation"]["operator"]["name"], "Ann");
    let from_visitor = s.post("/api/v1/visitor/messages", &visitor, json!({"body": " hello "})).await.expect(201);
    assert_eq!(from_visitor["body"], "hello", "bodies are trimmed");
    assert_eq!(from_visitor["author"], json!({"kind": "visitor", "name": "Vera"}));
    assert_eq!(from_visitor["conversation_id"], conversation);
    let pushed = ann_ws.next_where("visitor message", |f| f["type"] == "message" && f["message"]["author"]["kind"] == "visitor").await;
    assert_eq!(pushed["conversation_id"], conversation);
    assert_eq!(pushed["message"]["id"], from_visitor["id"]);
    let from_ann =
        s.post(&format!("/api/v1/conversations/{conversation}/messages"), &ann_token, json!({"body": "hi Vera"})).await.expect(201);
    assert_eq!(from_ann["author"], json!({"kind": "operator", "id": ann, "name": "Ann"}));
    assert!(from_ann["id"].as_u64() > from_visitor["id"].as_u64());
    let received = widget.next_where("ann's reply", |f| f["type"] == "message" && f["message"]["author"]["kind"] == "operator").await;
    assert_eq!(received["message"]["body"], "hi Vera");
    assert!(received["message"]["created_at"].as_str().unwrap().ends_with('Z'));
    let transcript = s.conversation(conversation, &ann_token).await["messages"].as_array().unwrap().clone();
    let ids: Vec<u64> = transcript.iter().map(|m| m["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
}

/// `waiting` returns to `in_progress` when the visitor writes; the visitor only ever sees `in_progress`.
#[actix_rt::test]
async fn waiting_ends_when_the_visitor_writes() {
    let (s, _, ann_token, mut ann_ws, conversation, visitor) = served().await;
    let status = format!("/api/v1/conversations/{conversation}/status");
    let view = s.put(&status, &ann_token, json!({"status": "waiting"})).await.expect(200);
    assert_eq!(view["status"], "waiting");
    assert_eq!(ann_ws.next_of("status").await["status"], "waiting");
    let seen = s.visitor_view(&visitor).await;
    assert_eq!(seen["status"], "in_progress");
    assert!(seen.get("expertise_ids").is_none() && seen.get("assignment").is_none(), "{seen}");
    s.post("/api/v1/visitor/messages", &visitor, json!({"body": "back"})).await.expect(201);
    assert_eq!(ann_ws.next_of("status").await["status"], "in_progress");
    assert_eq!(s.conversation(conversation, &ann_token).await["status"], "in_progress");
}

/// Closing tells the visitor and accepts no further messages from anyone.
#[actix_rt::test]
async fn a_closed_conversation_accepts_nothing() {
    let (s, _, ann_token, mut ann_ws, conversation, visitor) = served().await;
    let (mut widget, _) = s.widget(&visitor, None).await;
    let closed = s.post(&format!("/api/v1/conversations/{conversation}/close"), &ann_token, json!({})).await.expect(200);
    assert_eq!(closed["status"], "closed");
    widget.next_of("closed").await;
    assert_eq!(ann_ws.next_of("closed").await["conversation_id"], conversation);
    assert_eq!(s.post("/api/v1/visitor/messages", &visitor, json!({"body": "wait"})).await.expect(409)["error"]["code"], "conflict");
    s.post(&format!("/api/v1/conversations/{conversation}/messages"), &ann_token, json!({"body": "bye"})).await.expect(409);
    s.post(&format!("/api/v1/conversations/{conversation}/close"), &ann_token, json!({})).await.expect(409);
    s.put(&format!("/api/v1/conversations/{conversation}/status"), &ann_token, json!({"status": "waiting"})).await.expect(409);
    assert_eq!(s.visitor_view(&visitor).await["status"], "closed");
}

/// A visitor leaving closes the conversation and operators read "Visitor left the conversation".
#[actix_rt::test]
async fn a_leaving_visitor_is_announced_to_operators() {
    let (s, _, _, mut ann_ws, conversation, visitor) = served().await;
    let left = s.post("/api/v1/visitor/leave", &visitor, json!({})).await.expect(200);
    assert_eq!(left["status"], "closed");
    let notice =
        ann_ws.next_where("leave notice", |f| f["type"] == "message" && f["message"]["body"] == "Visitor left the conversation").await;
    assert_eq!(notice["message"]["author"]["kind"], "system");
    assert_eq!(ann_ws.next_of("closed").await["conversation_id"], conversation);
    s.post("/api/v1/visitor/leave", &visitor, json!({})).await.expect(409);
    let users = s.get("/api/v1/users", &s.admin).await.expect(200);
    assert!(users.as_array().unwrap().iter().all(|u| u["active_chats"] == 0), "capacity is freed: {users}");
}

/// Operators can talk to each other; the same pair reuses its open conversation.
#[actix_rt::test]
async fn direct_conversations_between_operators() {
    let s = TestServer::start().await;
    let (ann, ann_token) = s.operator("ann", json!({})).await;
    let (bob, bob_token) = s.operator("bob", json!({})).await;
    let (mut bob_ws, _) = s.agent(&bob_token).await;
    let direct = s.post("/api/v1/direct", &ann_token, json!({"user_id": bob})).await.expect(201);
    assert_eq!(direct["kind"], "direct");
    assert_eq!(direct["member_ids"], json!([ann, bob]));
    assert_eq!(direct["visitor"], Value::Null);
    let id = direct["id"].as_u64().unwrap();
    assert_eq!(bob_ws.next_of("invited").await["conversation"]["id"], id);
    s.post(&format!("/api/v1/conversations/{id}/messages"), &ann_token, json!({"body": "coffee?"})).await.expect(201);
    assert_eq!(bob_ws.next_of("message").await["message"]["body"], "coffee?");
    let again = s.post("/api/v1/direct", &bob_token, json!({"user_id": ann})).await.expect(201);
    assert_eq!(again["id"], id);
    s.put(&format!("/api/v1/conversations/{id}/status"), &ann_token, json!({"status": "need_help"})).await.expect(409);
    s.post("/api/v1/direct", &ann_token, json!({"user_id": ann})).await.expect(400);
    s.post("/api/v1/direct", &ann_token, json!({"user_id": 4242})).await.expect(400);
    let mine = s.get("/api/v1/conversations", &bob_token).await.expect(200);
    assert_eq!(mine.as_array().unwrap().iter().map(|c| c["id"].clone()).collect::<Vec<_>>(), vec![json!(id)]);
}

/// Admins read any conversation; other non-members get 403 unless it looks for help.
#[actix_rt::test]
async fn only_members_and_admins_read_a_conversation() {
    let (s, _, ann_token, _, conversation, _) = served().await;
    let (_, eve_token) = s.operator("eve", json!({})).await;
    s.get(&format!("/api/v1/conversations/{conversation}"), &eve_token).await.expect(403);
    s.post(&format!("/api/v1/conversations/{conversation}/messages"), &eve_token, json!({"body": "hi"})).await.expect(403);
    let admin_view = s.conversation(conversation, &s.admin).await;
    assert_eq!(admin_view["kind"], "livechat");
    assert_eq!(admin_view["visitor"]["name"], "Vera");
    assert_eq!(admin_view["visitor"]["lang"], "en");
    assert!(admin_view["created_at"].is_string());
    let mine = s.get("/api/v1/conversations", &ann_token).await.expect(200);
    assert_eq!(mine[0]["id"], conversation);
    assert_eq!(s.get("/api/v1/conversations?status=closed", &ann_token).await.expect(200), json!([]));
}

/// An operator can step out once a colleague is in; the last one cannot abandon the visitor.
#[actix_rt::test]
async fn operators_may_leave_but_not_abandon_a_visitor() {
    let (s, ann, ann_token, _, conversation, _) = served().await;
    let (bob, bob_token) = s.operator("bob", json!({})).await;
    let (mut bob_ws, _) = s.agent(&bob_token).await;
    s.post(&format!("/api/v1/conversations/{conversation}/leave"), &ann_token, json!({})).await.expect(409);
    s.post(&format!("/api/v1/conversations/{conversation}/invite"), &ann_token, json!({"user_ids": [bob]})).await.expect(200);
    s.post(&format!("/api/v1/conversations/{conversation}/leave"), &ann_token, json!({})).await.expect(204);
    assert_eq!(bob_ws.next_of("member_left").await["user"]["id"], ann);
    assert_eq!(s.conversation(conversation, &bob_token).await["member_ids"], json!([bob]));
}

/// Typing notices reach the other side and are not stored.
#[actix_rt::test]
async fn typing_reaches_the_other_side() {
    let (s, _, _, mut ann_ws, conversation, visitor) = served().await;
    let (mut widget, _) = s.widget(&visitor, None).await;
    widget.send(json!({"type": "typing"})).await;
    let typing = ann_ws.next_of("typing").await;
    assert_eq!(typing["conversation_id"], conversation);
    assert_eq!(typing["author"]["kind"], "visitor");
    ann_ws.send(json!({"type": "typing", "conversation_id": conversation})).await;
    assert_eq!(widget.next_of("typing").await["author"]["kind"], "operator");
    widget.expect_no("message", Duration::from_millis(100)).await;
    assert_eq!(s.visitor_view(&visitor).await["messages"].as_array().unwrap().len(), 1, "only the join notice");
}
