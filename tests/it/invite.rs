//! Invite candidates and invitations.

use serde_json::json;

use crate::support::TestServer;

/// Candidates of a livechat show languages and expertise; online ones come first; `q` filters.
#[actix_rt::test]
async fn livechat_candidates_show_expertise_and_online_first() {
    let s = TestServer::start().await;
    let billing = s.expertise("Billing").await;
    let (ann, ann_token) = s.operator("ann", json!({})).await;
    let (zed, zed_token) = s.operator("zed", json!({"name": "Zed Online", "languages": ["fr"], "expertise_ids": [billing]})).await;
    let (abe, _) = s.operator("abe", json!({"name": "Abe Offline"})).await;
    let (_ann_ws, _) = s.agent(&ann_token).await;
    let (_zed_ws, _) = s.agent(&zed_token).await;
    let channel = s.channel(&[ann], None).await;
    let (conversation, _) = s.visit(channel, json!({})).await;
    let path = format!("/api/v1/conversations/{conversation}/invite_candidates");
    let candidates = s.get(&path, &ann_token).await.expect(200);
    let list = candidates.as_array().unwrap();
    let ids: Vec<u64> = list.iter().map(|c| c["id"].as_u64().unwrap()).collect();
    assert!(!ids.contains(&ann), "members are not candidates");
    assert_eq!(ids[0], zed, "online first: {candidates}");
    assert_eq!(list[0]["presence"], "online");
    assert_eq!(list[0]["languages"], json!(["fr"]));
    assert_eq!(list[0]["expertise"], json!([{"id": billing, "name": "Billing"}]));
    assert!(ids.contains(&abe));
    let filtered = s.get(&format!("{path}?q=abe"), &ann_token).await.expect(200);
    assert_eq!(filtered.as_array().unwrap().iter().map(|c| c["id"].clone()).collect::<Vec<_>>(), vec![json!(abe)]);
}

/// A direct conversation's candidates carry neither languages nor expertise.
#[actix_rt::test]
async fn direct_conversation_candidates_carry_no_expertise() {
    let s = TestServer::start().await;
    let billing = s.expertise("Billing").await;
    let (_, ann_token) = s.operator("ann", json!({})).await;
    let (bob, _) = s.operator("bob", json!({})).await;
    s.operator("carl", json!({"languages": ["en"], "expertise_ids": [billing]})).await;
    let direct = s.post("/api/v1/direct", &ann_token, json!({"user_id": bob})).await.expect(201);
    assert_eq!(direct["kind"], "direct");
    let path = format!("/api/v1/conversations/{}/invite_candidates", direct["id"]);
    let candidates = s.get(&path, &ann_token).await.expect(200);
    assert!(!candidates.as_array().unwrap().is_empty());
    for candidate in candidates.as_array().unwrap() {
        assert!(candidate.get("expertise").is_none(), "{candidate}");
        assert!(candidate.get("languages").is_none(), "{candidate}");
        assert!(candidate["presence"].is_string());
    }
}

/// An invitee becomes a member, is notified with the transcript, and the visitor sees them join.
#[actix_rt::test]
async fn an_invitee_joins_and_everyone_is_told() {
    let s = TestServer::start().await;
    let (ann, ann_token) = s.operator("ann", json!({})).await;
    let (bob, bob_token) = s.operator("bob", json!({"name": "Bob B"})).await;
    let (_ann_ws, _) = s.agent(&ann_token).await;
    let (mut bob_ws, _) = s.agent(&bob_token).await;
    let channel = s.channel(&[ann], None).await;
    let (conversation, visitor) = s.visit(channel, json!({})).await;
    s.post("/api/v1/visitor/messages", &visitor, json!({"body": "help me"})).await.expect(201);
    let (mut widget, _) = s.widget(&visitor, None).await;
    let view = s.post(&format!("/api/v1/conversations/{conversation}/invite"), &ann_token, json!({"user_ids": [bob]})).await.expect(200);
    assert_eq!(view["member_ids"], json!([ann, bob]));
    let invited = bob_ws.next_of("invited").await;
    let bodies: Vec<&str> = invited["conversation"]["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert!(bodies.contains(&"help me"), "{bodies:?}");
    assert_eq!(widget.next_of("member_joined").await["user"]["name"], "Bob B");
    assert_eq!(widget.next_of("message").await["message"]["body"], "Bob B joined the conversation");
    // A non-member cannot invite; unknown users and empty lists are refused.
    let (_, eve_token) = s.operator("eve", json!({})).await;
    s.post(&format!("/api/v1/conversations/{conversation}/invite"), &eve_token, json!({"user_ids": [bob]})).await.expect(403);
    s.post(&format!("/api/v1/conversations/{conversation}/invite"), &ann_token, json!({"user_ids": [999]})).await.expect(400);
    s.post(&format!("/api/v1/conversations/{conversation}/invite"), &ann_token, json!({"user_ids": []})).await.expect(400);
}

/// An invited helper who left without writing keeps read access, live and
/// once archived, across restarts (API.md v1.2: "ever a member" is literal);
/// someone never in it still has none.
#[actix_rt::test]
async fn an_invitee_who_left_without_writing_still_reads_it_after_a_restart() {
    let s = TestServer::start().await;
    let (ann, ann_token) = s.operator("ann", json!({})).await;
    let (bob, bob_token) = s.operator("bob", json!({})).await;
    let (_, eve_token) = s.operator("eve", json!({})).await;
    let (mut ann_ws, _) = s.agent(&ann_token).await;
    let channel = s.channel(&[ann], None).await;
    let (conversation, _) = s.visit(channel, json!({})).await;
    ann_ws.next_of("assigned").await;
    let path = format!("/api/v1/conversations/{conversation}");
    s.post(&format!("{path}/invite"), &ann_token, json!({"user_ids": [bob]})).await.expect(200);
    s.post(&format!("{path}/leave"), &bob_token, json!({})).await.expect(204);
    assert_eq!(s.conversation(conversation, &bob_token).await["member_ids"], json!([ann]));
    s.get(&path, &eve_token).await.expect(403);
    // Restarted while open (the journal), then closed, archived and restarted again.
    let s = s.restart().await;
    let (bob_token, eve_token, ann_token) = (s.login("bob", "pw").await, s.login("eve", "pw").await, s.login("ann", "pw").await);
    s.get(&path, &bob_token).await.expect(200);
    s.get(&path, &eve_token).await.expect(403);
    s.post(&format!("{path}/close"), &ann_token, json!({})).await.expect(200);
    s.archived(1).await;
    let s = s.restart().await;
    let (bob_token, eve_token) = (s.login("bob", "pw").await, s.login("eve", "pw").await);
    assert!(s.get(&path, &bob_token).await.expect(200)["closed_at"].is_string());
    s.get(&path, &eve_token).await.expect(403);
    let found = s.get("/api/v1/history", &bob_token).await.expect(200);
    assert!(found["items"].as_array().unwrap().iter().any(|i| i["id"] == conversation), "{found}");
}

/// At most 30 candidates are returned, however many operators there are.
#[actix_rt::test]
async fn at_most_thirty_candidates() {
    let s = TestServer::start().await;
    let (ann, ann_token) = s.operator("ann", json!({})).await;
    for i in 0..32 {
        s.post("/api/v1/users", &s.admin, json!({"login": format!("op{i}"), "name": format!("Op {i}"), "password": "pw"}))
            .await
            .expect(201);
    }
    let direct = s.post("/api/v1/direct", &ann_token, json!({"user_id": 1})).await.expect(201);
    let candidates = s.get(&format!("/api/v1/conversations/{}/invite_candidates", direct["id"]), &ann_token).await.expect(200);
    assert_eq!(candidates.as_array().unwrap().len(), 30);
    assert!(candidates.as_array().unwrap().iter().all(|c| c["id"] != ann && c["id"] != 1));
}
