//! The Looking-for-help board: live, per-operator stars, join.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{TestServer, WsClient};

/// A served conversation wanting Billing, with ann (Billing, assigned), bob (no expertise) and carl (Billing) connected.
struct Scene {
    s: TestServer,
    billing: u64,
    conversation: u64,
    visitor: String,
    ann: (u64, String, WsClient),
    bob: (u64, String, WsClient),
    carl: (u64, String, WsClient),
}

async fn scene() -> Scene {
    let s = TestServer::start().await;
    let billing = s.expertise("Billing").await;
    let (ann, ann_token) = s.operator("ann", json!({"expertise_ids": [billing]})).await;
    let (bob, bob_token) = s.operator("bob", json!({})).await;
    let (carl, carl_token) = s.operator("carl", json!({"expertise_ids": [billing]})).await;
    let (ann_ws, _) = s.agent(&ann_token).await;
    let (bob_ws, _) = s.agent(&bob_token).await;
    let (carl_ws, _) = s.agent(&carl_token).await;
    let channel = s.channel(&[ann], None).await;
    let (conversation, visitor) = s.visit(channel, json!({"visitor_name": "Vera", "expertise_ids": [billing]})).await;
    Scene {
        s,
        billing,
        conversation,
        visitor,
        ann: (ann, ann_token, ann_ws),
        bob: (bob, bob_token, bob_ws),
        carl: (carl, carl_token, carl_ws),
    }
}

/// The next `need_help` push, as (conversation ids, starred flags).
async fn board(ws: &mut WsClient) -> Vec<(u64, bool)> {
    let frame = ws.next_of("need_help").await;
    frame["conversations"].as_array().unwrap().iter().map(|c| (c["id"].as_u64().unwrap(), c["starred"].as_bool().unwrap())).collect()
}

async fn flag(sc: &Scene) -> Value {
    sc.s.put(&format!("/api/v1/conversations/{}/status", sc.conversation), &sc.ann.1, json!({"status": "need_help"})).await.expect(200)
}

/// Every operator sees the call for help live; only those holding its expertise see a star.
#[actix_rt::test]
async fn looking_for_help_is_starred_for_operators_with_matching_expertise() {
    let mut sc = scene().await;
    let view = flag(&sc).await;
    assert_eq!(view["status"], "need_help");
    assert!(view["need_help_since"].is_string());
    assert_eq!(board(&mut sc.bob.2).await, vec![(sc.conversation, false)]);
    assert_eq!(board(&mut sc.carl.2).await, vec![(sc.conversation, true)]);
    let listed = sc.s.get("/api/v1/conversations?status=need_help", &sc.bob.1).await.expect(200);
    let entry = &listed[0];
    assert_eq!(entry["id"], sc.conversation);
    assert_eq!(entry["visitor_name"], "Vera");
    assert_eq!(entry["expertise_ids"], json!([sc.billing]));
    assert_eq!(entry["operator_ids"], json!([sc.ann.0]));
    assert_eq!(entry["status"], "need_help");
    assert_eq!(entry["starred"], false);
    assert!(entry["need_help_since"].is_string());
    assert_eq!(sc.s.get("/api/v1/conversations?status=need_help", &sc.carl.1).await.expect(200)[0]["starred"], true);
}

/// Stars move at once when the conversation's or the operator's expertise changes.
#[actix_rt::test]
async fn stars_follow_expertise_changes() {
    let mut sc = scene().await;
    flag(&sc).await;
    assert_eq!(board(&mut sc.bob.2).await, vec![(sc.conversation, false)]);
    assert_eq!(board(&mut sc.carl.2).await, vec![(sc.conversation, true)]);
    // bob takes Billing in his preferences: his star appears.
    sc.s.patch("/api/v1/me/preferences", &sc.bob.1, json!({"expertise_ids": [sc.billing]})).await.expect(200);
    assert_eq!(board(&mut sc.bob.2).await, vec![(sc.conversation, true)]);
    // The conversation now wants Returns instead: both stars go.
    let returns = sc.s.expertise("Returns").await;
    let path = format!("/api/v1/conversations/{}/expertise", sc.conversation);
    sc.s.put(&path, &sc.ann.1, json!({"expertise_ids": [returns]})).await.expect(200);
    assert_eq!(board(&mut sc.bob.2).await, vec![(sc.conversation, false)]);
    assert_eq!(board(&mut sc.carl.2).await, vec![(sc.conversation, false)]);
    // The admin gives carl Returns through the expertise itself: carl's star comes back.
    sc.s.patch(&format!("/api/v1/expertise/{returns}"), &sc.s.admin, json!({"operator_ids": [sc.carl.0]})).await.expect(200);
    assert_eq!(board(&mut sc.carl.2).await, vec![(sc.conversation, true)]);
}

/// Joining sets `in_progress`, tells the visitor who joined, and empties the board.
#[actix_rt::test]
async fn joining_answers_the_call_and_the_visitor_is_told() {
    let mut sc = scene().await;
    let (mut widget, _) = sc.s.widget(&sc.visitor, None).await;
    flag(&sc).await;
    board(&mut sc.carl.2).await;
    board(&mut sc.bob.2).await;
    // Any operator may read before joining.
    let read = sc.s.conversation(sc.conversation, &sc.carl.1).await;
    assert_eq!(read["status"], "need_help");
    let joined = sc.s.post(&format!("/api/v1/conversations/{}/join", sc.conversation), &sc.carl.1, json!({})).await.expect(200);
    assert_eq!(joined["status"], "in_progress");
    assert_eq!(joined["member_ids"], json!([sc.ann.0, sc.carl.0]));
    let notice = widget.next_where("carl's join notice", |f| f["type"] == "message" && f["message"]["author"]["kind"] == "system").await;
    assert_eq!(notice["message"]["body"], "carl joined the conversation");
    assert_eq!(board(&mut sc.carl.2).await, vec![]);
    assert_eq!(board(&mut sc.bob.2).await, vec![]);
    let carl = sc.carl.0;
    let member_joined = sc.ann.2.next_where("carl joining", |f| f["type"] == "member_joined" && f["user"]["id"] == carl).await;
    assert_eq!(member_joined["conversation_id"], sc.conversation);
    // The visitor never saw `need_help`.
    assert_eq!(sc.s.visitor_view(&sc.visitor).await["status"], "in_progress");
    widget.expect_no("status", Duration::from_millis(200)).await;
    // Once answered, bob can no longer read it, nor join.
    sc.s.get(&format!("/api/v1/conversations/{}", sc.conversation), &sc.bob.1).await.expect(403);
    let late = sc.s.post(&format!("/api/v1/conversations/{}/join", sc.conversation), &sc.bob.1, json!({})).await;
    assert_eq!(late.expect(409)["error"]["code"], "conflict");
}

/// Two operators joining at the same moment: exactly one wins, the other gets 409.
#[actix_rt::test]
async fn simultaneous_joins_have_exactly_one_winner() {
    let sc = scene().await;
    flag(&sc).await;
    let path = format!("/api/v1/conversations/{}/join", sc.conversation);
    let (bob, carl) = tokio::join!(sc.s.post(&path, &sc.bob.1, json!({})), sc.s.post(&path, &sc.carl.1, json!({})));
    let mut statuses = [bob.status, carl.status];
    statuses.sort();
    assert_eq!(statuses, [200, 409]);
    let loser = if bob.status == 409 { bob } else { carl };
    assert_eq!(loser.error_code(), "conflict");
    assert_eq!(sc.s.conversation(sc.conversation, &sc.s.admin).await["member_ids"].as_array().unwrap().len(), 2);
}

/// Inviting someone also ends the call for help; the join command works over WebSocket too.
#[actix_rt::test]
async fn invite_or_ws_join_ends_the_call_for_help() {
    let mut sc = scene().await;
    flag(&sc).await;
    sc.s.post(&format!("/api/v1/conversations/{}/invite", sc.conversation), &sc.ann.1, json!({"user_ids": [sc.bob.0]})).await.expect(200);
    assert_eq!(sc.s.conversation(sc.conversation, &sc.s.admin).await["status"], "in_progress");
    assert!(sc.bob.2.next_of("invited").await["conversation"]["messages"].is_array());
    flag(&sc).await;
    sc.carl.2.send(json!({"type": "join", "conversation_id": sc.conversation, "ref": "j1"})).await;
    let ack = sc.carl.2.next_of("ack").await;
    assert_eq!(ack["ref"], "j1");
    sc.carl.2.send(json!({"type": "join", "conversation_id": sc.conversation, "ref": "j2"})).await;
    let error = sc.carl.2.next_of("error").await;
    assert_eq!(error["ref"], "j2");
    assert_eq!(error["error"]["code"], "conflict");
}

/// A visitor message does not clear `need_help`, and the board shows the latest message.
#[actix_rt::test]
async fn visitor_messages_keep_need_help_and_refresh_the_board() {
    let mut sc = scene().await;
    flag(&sc).await;
    board(&mut sc.bob.2).await;
    sc.s.post("/api/v1/visitor/messages", &sc.visitor, json!({"body": "anyone?"})).await.expect(201);
    let frame = sc.bob.2.next_of("need_help").await;
    assert_eq!(frame["conversations"][0]["last_message"]["body"], "anyone?");
    assert_eq!(sc.s.conversation(sc.conversation, &sc.s.admin).await["status"], "need_help");
}
