//! Every change reaches live state through the Hub with all its consequences:
//! deleted channels leave nobody waiting, every change that can create a
//! routing candidate drains the queue, deactivated users are out at once,
//! and rule 1 sends a returning visitor to an expert when they ask for one.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{Ended, TestServer, WsClient};

async fn channel_with(s: &TestServer, body: Value) -> u64 {
    let mut full = json!({"name": "Site", "operator_ids": []});
    for (k, v) in body.as_object().unwrap() {
        full[k] = v.clone();
    }
    s.post("/api/v1/channels", &s.admin, full).await.expect(201)["id"].as_u64().unwrap()
}

async fn status(s: &TestServer, conversation: u64) -> Value {
    s.conversation(conversation, &s.admin).await["status"].clone()
}

async fn assigned_to(s: &TestServer, conversation: u64) -> Value {
    s.conversation(conversation, &s.admin).await["assignment"]["operator_id"].clone()
}

/// Waits (bounded) for the widget to hear `closed`.
async fn hears_closed(widget: &mut WsClient) {
    widget.next_of("closed").await;
}

#[actix_rt::test]
async fn deleting_a_channel_closes_its_waiting_conversations_and_refuses_new_sessions() {
    let s = TestServer::start().await;
    let (ann, ann_token) = s.operator("ann", json!({"name": "Ann"})).await;
    let (mut ann_ws, _) = s.agent(&ann_token).await;
    let direct = channel_with(&s, json!({"operator_ids": [ann], "max_sessions": 1})).await;
    let steps = json!([{"type": "question_selection", "message": "What do you need?", "answers": [{"label": "Help"}]}]);
    let chatbot = s.post("/api/v1/chatbots", &s.admin, json!({"title": "Bot", "steps": steps})).await.expect(201)["id"].clone();
    let botted = channel_with(&s, json!({"operator_ids": [ann], "chatbot_id": chatbot})).await;

    let (served, served_token) = s.visit(direct, json!({})).await;
    ann_ws.next_of("assigned").await;
    let (queued, queued_token) = s.visit(direct, json!({})).await;
    let (in_bot, bot_token) = s.visit(botted, json!({})).await;
    assert_eq!(status(&s, queued).await, "queued");
    assert_eq!(status(&s, in_bot).await, "bot");
    let (mut queued_widget, _) = s.widget(&queued_token, None).await;
    let (mut bot_widget, _) = s.widget(&bot_token, None).await;

    for channel in [direct, botted] {
        s.call(reqwest::Method::DELETE, &format!("/api/v1/channels/{channel}"), Some(&s.admin), None).await.expect(204);
    }
    hears_closed(&mut queued_widget).await;
    hears_closed(&mut bot_widget).await;
    assert_eq!(status(&s, queued).await, "closed");
    assert_eq!(status(&s, in_bot).await, "closed");
    // Nobody is left in a queue that no longer exists.
    let metrics = reqwest::get(s.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.lines().any(|l| l == "switchboard_queue_length 0"), "{metrics}");
    // The conversation that already had an operator goes on.
    assert_eq!(status(&s, served).await, "in_progress");
    s.post("/api/v1/visitor/messages", &served_token, json!({"body": "still here"})).await.expect(201);
    ann_ws.next_where("the visitor's message", |f| f["type"] == "message" && f["message"]["body"] == "still here").await;
    // New sessions on a deleted channel: 404.
    let res = s.call(reqwest::Method::POST, &format!("/api/v1/channels/{direct}/sessions"), None, Some(json!({}))).await;
    assert_eq!(res.expect(404)["error"]["code"], "not_found");
}

/// With a long `expert_wait_s`, a visitor wanting Billing waits while nobody
/// online holds it; each way of giving an online operator Billing (admin edit
/// of the user, the operator's own preferences, the expertise's holders) or
/// room (a `max_sessions` raise) or a seat (joining the channel's team)
/// serves them at once.
#[actix_rt::test]
async fn every_change_that_creates_a_candidate_drains_the_queue() {
    let s = TestServer::start().await;
    let billing = s.expertise("Billing").await;
    let (gina, gina_token) = s.operator("gina", json!({"name": "Gina"})).await;
    let (_gina_ws, _) = s.agent(&gina_token).await;
    let channel = channel_with(&s, json!({"operator_ids": [gina], "expert_wait_s": 600})).await;
    let wait_for = |conversation: u64| {
        let s = &s;
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            loop {
                let given = assigned_to(s, conversation).await;
                if given != Value::Null {
                    return given;
                }
                assert!(tokio::time::Instant::now() < deadline, "conversation {conversation} still waiting");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };

    // 1. An admin gives Gina Billing.
    let (first, _) = s.visit(channel, json!({"expertise_ids": [billing]})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(status(&s, first).await, "queued", "held for an expert");
    s.patch(&format!("/api/v1/users/{gina}"), &s.admin, json!({"expertise_ids": [billing]})).await.expect(200);
    assert_eq!(wait_for(first).await, gina);

    // 2. Gina takes Returns in her own preferences.
    let returns = s.expertise("Returns").await;
    let (second, _) = s.visit(channel, json!({"expertise_ids": [returns]})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(status(&s, second).await, "queued");
    s.patch("/api/v1/me/preferences", &gina_token, json!({"expertise_ids": [billing, returns]})).await.expect(200);
    assert_eq!(wait_for(second).await, gina);

    // 3. The expertise gets Gina as a holder.
    let (_, _) = (first, second);
    let legal = s.expertise("Legal").await;
    let (third, _) = s.visit(channel, json!({"expertise_ids": [legal]})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(status(&s, third).await, "queued");
    s.patch(&format!("/api/v1/expertise/{legal}"), &s.admin, json!({"operator_ids": [gina]})).await.expect(200);
    assert_eq!(wait_for(third).await, gina);

    // 4. A `max_sessions` raise: Gina is full at 3.
    s.patch(&format!("/api/v1/channels/{channel}"), &s.admin, json!({"max_sessions": 3})).await.expect(200);
    let (fourth, _) = s.visit(channel, json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(status(&s, fourth).await, "queued");
    s.patch(&format!("/api/v1/channels/{channel}"), &s.admin, json!({"max_sessions": 4})).await.expect(200);
    assert_eq!(wait_for(fourth).await, gina);

    // 5. The channel's team grows by an online operator.
    let (hugo, hugo_token) = s.operator("hugo", json!({"name": "Hugo"})).await;
    let (_hugo_ws, _) = s.agent(&hugo_token).await;
    let (fifth, _) = s.visit(channel, json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(status(&s, fifth).await, "queued");
    s.patch(&format!("/api/v1/channels/{channel}"), &s.admin, json!({"operator_ids": [gina, hugo]})).await.expect(200);
    assert_eq!(wait_for(fifth).await, hugo);
}

/// Rule 1: the previous operator comes first only when they hold some of the
/// wanted expertise, or none is wanted.
#[actix_rt::test]
async fn a_returning_visitor_asking_for_another_expertise_reaches_an_expert() {
    let s = TestServer::start().await;
    let billing = s.expertise("Billing").await;
    let (ann, ann_token) = s.operator("ann", json!({"name": "Ann"})).await;
    let (bob, bob_token) = s.operator("bob", json!({"name": "Bob", "expertise_ids": [billing]})).await;
    let (_ann_ws, _) = s.agent(&ann_token).await;
    let (_bob_ws, _) = s.agent(&bob_token).await;
    let channel = channel_with(&s, json!({"operator_ids": [ann, bob]})).await;
    let key = json!("returning-visitor");

    let (first, first_token) = s.visit(channel, json!({"visitor_key": key})).await;
    assert_eq!(assigned_to(&s, first).await, ann);
    s.post("/api/v1/visitor/leave", &first_token, json!({})).await.expect(200);

    let (second, second_token) = s.visit(channel, json!({"visitor_key": key, "expertise_ids": [billing]})).await;
    let given = s.conversation(second, &s.admin).await["assignment"].clone();
    assert_eq!((given["operator_id"].clone(), given["rule"].clone()), (json!(bob), json!("all_expertise")));
    s.post("/api/v1/visitor/leave", &second_token, json!({})).await.expect(200);

    // Wanting nothing, the previous operator (now Bob) comes first again.
    let (third, _) = s.visit(channel, json!({"visitor_key": key})).await;
    let given = s.conversation(third, &s.admin).await["assignment"].clone();
    assert_eq!((given["operator_id"].clone(), given["rule"].clone()), (json!(bob), json!("previous_operator")));
}

/// Ann (online) serving a visitor whose widget is open; Bob of the same channel, not yet connected.
struct Team {
    ann: u64,
    ann_token: String,
    ann_ws: WsClient,
    bob: u64,
    bob_token: String,
    channel: u64,
    chat: u64,
    widget: WsClient,
}

async fn ann_serving(s: &TestServer, ann_name: &str) -> Team {
    let (ann, ann_token) = s.operator("ann", json!({"name": ann_name})).await;
    let (bob, bob_token) = s.operator("bob", json!({"name": "Bob"})).await;
    let (mut ann_ws, _) = s.agent(&ann_token).await;
    let channel = channel_with(s, json!({"operator_ids": [ann, bob]})).await;
    let (chat, visitor) = s.visit(channel, json!({})).await;
    ann_ws.next_of("assigned").await;
    let (widget, _) = s.widget(&visitor, None).await;
    Team { ann, ann_token, ann_ws, bob, bob_token, channel, chat, widget }
}

#[actix_rt::test]
async fn a_deactivated_user_is_out_at_once_and_their_chats_move_on() {
    let s = TestServer::start().await;
    let Team { ann, ann_token, mut ann_ws, bob, bob_token, channel, chat, mut widget } = ann_serving(&s, "Ann Active").await;
    let (mut bob_ws, _) = s.agent(&bob_token).await;

    let user = s.patch(&format!("/api/v1/users/{ann}"), &s.admin, json!({"active": false})).await.expect(200);
    assert_eq!(user["active"], false);
    // Her socket closes, her token stops working, she cannot log in.
    match ann_ws.ended().await {
        Ended::Closed(Some(frame)) => assert_eq!(frame.reason, "account deactivated"),
        other => panic!("expected a close frame, got {other:?}"),
    }
    assert_eq!(s.get("/api/v1/me", &ann_token).await.expect(401)["error"]["code"], "unauthorized");
    let login = s.call(reqwest::Method::POST, "/api/v1/auth/login", None, Some(json!({"login": "ann", "password": "pw"}))).await;
    assert_eq!(login.expect(401)["error"]["code"], "unauthorized");
    // Her open chat goes to Bob, rule `reassigned`; the visitor sees who joined.
    let assigned = bob_ws.next_of("assigned").await;
    assert_eq!(assigned["conversation"]["id"], chat);
    let given = s.conversation(chat, &s.admin).await["assignment"].clone();
    assert_eq!((given["operator_id"].clone(), given["rule"].clone()), (json!(bob), json!("reassigned")));
    widget.next_where("Bob joined", |f| f["type"] == "member_joined" && f["user"]["name"] == "Bob").await;
    // She is never a routing candidate again; history keeps her name.
    let (next, _) = s.visit(channel, json!({})).await;
    assert_eq!(assigned_to(&s, next).await, bob);
    let transcript = s.conversation(chat, &s.admin).await["messages"].clone();
    assert!(transcript.as_array().unwrap().iter().any(|m| m["body"] == "Ann Active left the conversation"), "{transcript}");
    let users = s.get("/api/v1/users", &s.admin).await.expect(200);
    let listed = users.as_array().unwrap().iter().find(|u| u["id"] == ann).unwrap().clone();
    assert_eq!((listed["active"].clone(), listed["name"].clone()), (json!(false), json!("Ann Active")));
    // Reactivated, she can log in again.
    s.patch(&format!("/api/v1/users/{ann}"), &s.admin, json!({"active": true})).await.expect(200);
    s.login("ann", "pw").await;
}

#[actix_rt::test]
async fn a_deactivated_operator_with_nobody_to_take_over_sends_the_chat_back_to_the_queue() {
    let s = TestServer::start().await;
    let Team { ann, bob, bob_token, chat, mut widget, .. } = ann_serving(&s, "Ann").await;
    s.patch(&format!("/api/v1/users/{ann}"), &s.admin, json!({"active": false})).await.expect(200);
    widget.next_where("queued again", |f| f["type"] == "status" && f["status"] == "queued" && f["queue_position"] == 1).await;
    assert_eq!(s.conversation(chat, &s.admin).await["member_ids"], json!([]));
    // The next operator to come online takes it.
    let (mut bob_ws, _) = s.agent(&bob_token).await;
    assert_eq!(bob_ws.next_of("assigned").await["conversation"]["id"], chat);
    assert_eq!(assigned_to(&s, chat).await, bob);
}

#[actix_rt::test]
async fn the_last_active_admin_cannot_be_deactivated() {
    let s = TestServer::start().await;
    let me = s.get("/api/v1/me", &s.admin).await.expect(200)["id"].clone();
    let res = s.patch(&format!("/api/v1/users/{me}"), &s.admin, json!({"active": false})).await;
    assert_eq!(res.expect(409)["error"]["code"], "conflict");
    // With a second active admin it can, and that admin's token then stops working.
    let (other, _) = s.operator("root2", json!({"role": "admin"})).await;
    s.patch(&format!("/api/v1/users/{me}"), &s.admin, json!({"active": false})).await.expect(200);
    s.get("/api/v1/me", &s.admin).await.expect(401);
    // And the remaining one is now the last.
    let token = s.login("root2", "pw").await;
    let res = s.patch(&format!("/api/v1/users/{other}"), &token, json!({"active": false})).await;
    assert_eq!(res.expect(409)["error"]["code"], "conflict");
    // `active` must be a boolean.
    let bad = s.patch(&format!("/api/v1/users/{other}"), &token, json!({"active": "no"})).await;
    assert_eq!(bad.expect(400)["error"]["code"], "bad_request");
}

/// Deactivation is durable: after a restart the user is still out, and still listed.
#[actix_rt::test]
async fn a_deactivation_survives_a_restart() {
    let s = TestServer::start().await;
    let (ann, _) = s.operator("ann", json!({"name": "Ann"})).await;
    s.patch(&format!("/api/v1/users/{ann}"), &s.admin, json!({"active": false})).await.expect(200);
    let s = s.restart().await;
    let listed = s.get(&format!("/api/v1/users/{ann}"), &s.admin).await.expect(200);
    assert_eq!((listed["active"].clone(), listed["name"].clone()), (json!(false), json!("Ann")));
    let login = s.call(reqwest::Method::POST, "/api/v1/auth/login", None, Some(json!({"login": "ann", "password": "pw"}))).await;
    assert_eq!(login.expect(401)["error"]["code"], "unauthorized");
    // Through a snapshot too.
    s.post("/api/v1/admin/snapshot", &s.admin, json!({})).await.expect(200);
    let s = s.restart().await;
    assert_eq!(s.get(&format!("/api/v1/users/{ann}"), &s.admin).await.expect(200)["active"], false);
}
