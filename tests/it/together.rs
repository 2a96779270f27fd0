//! Operators working together: internal notes and canned responses.

use std::time::Duration;

use serde_json::json;

use crate::support::{bodies, TestServer, WsClient};

/// ann (connected) serving Vera; returns (server, ann token, ann socket, conversation, visitor token).
async fn served() -> (TestServer, String, WsClient, u64, String) {
    let s = TestServer::start().await;
    let (ann, ann_token) = s.operator("ann", json!({"name": "Ann"})).await;
    let (mut ws, _) = s.agent(&ann_token).await;
    let channel = s.channel(&[ann], None).await;
    let (conversation, visitor) = s.visit(channel, json!({"visitor_name": "Vera"})).await;
    ws.next_of("assigned").await;
    (s, ann_token, ws, conversation, visitor)
}

/// A note reaches the members marked `internal` and never the visitor: not live,
/// not in the visitor's view, not on reconnect with `after`, not after a restart or once archived.
#[actix_rt::test]
async fn internal_notes_are_seen_by_operators_and_never_by_the_visitor() {
    let (s, ann_token, mut ann_ws, conversation, visitor) = served().await;
    let (mut widget, _) = s.widget(&visitor, None).await;
    let note = s.post(&format!("/api/v1/conversations/{conversation}/notes"), &ann_token, json!({"body": "VIP, refund quietly"})).await;
    let note = note.expect(201);
    assert_eq!(note["internal"], true);
    assert_eq!(note["author"]["kind"], "operator");
    let pushed = ann_ws.next_where("the note", |f| f["type"] == "message" && f["message"]["id"] == note["id"]).await;
    assert_eq!(pushed["message"]["internal"], true);
    // Over the socket too; the ack carries the stored note.
    ann_ws.send(json!({"type": "send", "ref": "n2", "conversation_id": conversation, "body": "second note", "internal": true})).await;
    let ack = ann_ws.next_where("ack n2", |f| f["type"] == "ack" && f["ref"] == "n2").await;
    assert_eq!(ack["message"]["internal"], true);
    let reply =
        s.post(&format!("/api/v1/conversations/{conversation}/messages"), &ann_token, json!({"body": "Hello Vera"})).await.expect(201);
    assert_eq!(reply["internal"], false);
    // The first message the widget receives is the reply: the notes never came.
    let first = widget.next_of("message").await;
    assert_eq!(first["message"]["body"], "Hello Vera");
    assert_eq!(bodies(&s.visitor_view(&visitor).await["messages"]), vec!["Hello Vera"]);
    let (mut again, hello) = s.widget(&visitor, Some(0)).await;
    assert_eq!(bodies(&hello["conversation"]["messages"]), vec!["Hello Vera"]);
    let replayed = again.next_where("replayed reply", |f| f["type"] == "message" && f["message"]["author"]["kind"] != "system").await;
    assert_eq!(replayed["message"]["body"], "Hello Vera");
    again.expect_no("message", Duration::from_millis(300)).await;
    let operator_view = s.conversation(conversation, &ann_token).await;
    assert_eq!(bodies(&operator_view["messages"]), vec!["VIP, refund quietly", "second note", "Hello Vera"]);

    let s = s.restart().await;
    let ann_token = s.login("ann", "pw").await;
    let messages = s.conversation(conversation, &ann_token).await["messages"].clone();
    assert_eq!(messages[1]["internal"], true, "the flag survives the journal: {messages}");
    assert_eq!(bodies(&s.visitor_view(&visitor).await["messages"]), vec!["Hello Vera"]);

    s.post(&format!("/api/v1/conversations/{conversation}/close"), &ann_token, json!({})).await.expect(200);
    s.archived(1).await;
    assert_eq!(bodies(&s.visitor_view(&visitor).await["messages"]), vec!["Hello Vera"]);
    let (_, hello) = s.widget(&visitor, Some(0)).await;
    assert_eq!(bodies(&hello["conversation"]["messages"]), vec!["Hello Vera"]);
    let archived = s.conversation(conversation, &ann_token).await;
    assert_eq!(archived["messages"][2]["internal"], true, "the flag survives the archive: {archived}");
    let (_, _, text) = s.download(&format!("/api/v1/conversations/{conversation}/transcript"), &ann_token).await;
    assert!(text.contains("Ann (internal note): VIP, refund quietly\n"), "{text}");
    assert!(text.contains("Ann: Hello Vera\n"), "{text}");
    let found = s.get("/api/v1/history?q=refund", &ann_token).await.expect(200);
    assert_eq!(found["items"][0]["id"], conversation, "operators search notes: {found}");
}

/// Notes follow the rules of messages: members only, not blank, not once closed, visitors cannot write them.
#[actix_rt::test]
async fn internal_notes_are_refused_where_messages_are() {
    let (s, ann_token, _ann_ws, conversation, visitor) = served().await;
    let path = format!("/api/v1/conversations/{conversation}/notes");
    let (_, bob_token) = s.operator("bob", json!({})).await;
    assert_eq!(s.post(&path, &bob_token, json!({"body": "hi"})).await.expect(403)["error"]["code"], "forbidden");
    assert_eq!(s.post(&path, &ann_token, json!({"body": "  "})).await.expect(400)["error"]["code"], "bad_request");
    s.post(&path, &ann_token, json!({})).await.expect(400);
    s.post(&path, &visitor, json!({"body": "hi"})).await.expect(403);
    s.post("/api/v1/conversations/999999/notes", &ann_token, json!({"body": "hi"})).await.expect(404);
    // The visitor's socket has no notes: the flag is not part of its `send`.
    let (mut widget, _) = s.widget(&visitor, None).await;
    widget.send(json!({"type": "send", "ref": "v", "body": "from Vera", "internal": true})).await;
    let ack = widget.next_where("ack v", |f| f["type"] == "ack" && f["ref"] == "v").await;
    assert_eq!(ack["message"]["internal"], false);
    s.post(&format!("/api/v1/conversations/{conversation}/close"), &ann_token, json!({})).await.expect(200);
    assert_eq!(s.post(&path, &ann_token, json!({"body": "late"})).await.expect(409)["error"]["code"], "conflict");
}

/// The list shows the shared responses and the caller's own; each set keeps its shortcuts unique,
/// an own one may share a shortcut with a shared one, and every change survives a restart.
#[actix_rt::test]
async fn canned_responses_are_shared_or_own_and_survive_a_restart() {
    let s = TestServer::start().await;
    let (ann, ann_token) = s.operator("ann", json!({})).await;
    let (_, bob_token) = s.operator("bob", json!({})).await;
    let path = "/api/v1/canned_responses";
    let shared = s.post(path, &s.admin, json!({"shortcut": "hello", "body": "Hello {visitor_name}!", "shared": true})).await.expect(201);
    assert_eq!(shared["shared"], true);
    assert!(shared.get("owner_id").is_none(), "{shared}");
    let own = s.post(path, &ann_token, json!({"shortcut": "hello", "body": "Hi, {operator_name} here"})).await.expect(201);
    assert_eq!((own["shared"].clone(), own["owner_id"].clone()), (json!(false), json!(ann)));
    s.post(path, &ann_token, json!({"shortcut": "refund", "body": "Refunds take 5 days."})).await.expect(201);
    let bobs = s.post(path, &bob_token, json!({"shortcut": "refund", "body": "Bob's refund text"})).await.expect(201);
    assert_eq!(s.post(path, &ann_token, json!({"shortcut": "refund", "body": "again"})).await.expect(409)["error"]["code"], "conflict");
    s.post(path, &s.admin, json!({"shortcut": "hello", "body": "twice", "shared": true})).await.expect(409);

    let listed = s.get(path, &ann_token).await.expect(200);
    let seen: Vec<(&str, bool)> =
        listed.as_array().unwrap().iter().map(|c| (c["shortcut"].as_str().unwrap(), c["shared"].as_bool().unwrap())).collect();
    assert_eq!(seen, vec![("hello", false), ("hello", true), ("refund", false)], "ann's own first, bob's not at all");
    let bob_list = s.get(path, &bob_token).await.expect(200);
    let bob_sees: Vec<&str> = bob_list.as_array().unwrap().iter().map(|c| c["body"].as_str().unwrap()).collect();
    assert_eq!(bob_sees, vec!["Hello {visitor_name}!", "Bob's refund text"]);

    let own_path = format!("{path}/{}", own["id"]);
    let edited = s.patch(&own_path, &ann_token, json!({"body": "Hi there", "shortcut": "hi"})).await.expect(200);
    assert_eq!((edited["shortcut"].as_str(), edited["body"].as_str()), (Some("hi"), Some("Hi there")));
    let s = s.restart().await;
    let ann_token = s.login("ann", "pw").await;
    let bob_token = s.login("bob", "pw").await;
    let after: Vec<String> =
        s.get(path, &ann_token).await.expect(200).as_array().unwrap().iter().map(|c| c["shortcut"].as_str().unwrap().to_owned()).collect();
    assert_eq!(after, vec!["hello", "hi", "refund"]);
    s.call(reqwest::Method::DELETE, &format!("{path}/{}", bobs["id"]), Some(&bob_token), None).await.expect(204);
    assert_eq!(s.get(path, &bob_token).await.expect(200).as_array().unwrap().len(), 1);
}

/// Only owners and admins change a response, only admins share, another's own one is not found,
/// and bad shortcuts and bodies are refused with the field named.
#[actix_rt::test]
async fn canned_responses_refuse_bad_input_and_other_peoples_edits() {
    let s = TestServer::start().await;
    let (_, ann_token) = s.operator("ann", json!({})).await;
    let (_, bob_token) = s.operator("bob", json!({})).await;
    let path = "/api/v1/canned_responses";
    let shared = s.post(path, &s.admin, json!({"shortcut": "hello", "body": "Hello!", "shared": true})).await.expect(201);
    let anns = s.post(path, &ann_token, json!({"shortcut": "mine", "body": "Mine"})).await.expect(201);
    let shared_path = format!("{path}/{}", shared["id"]);
    let anns_path = format!("{path}/{}", anns["id"]);
    assert_eq!(s.patch(&shared_path, &ann_token, json!({"body": "Hijacked"})).await.expect(403)["error"]["code"], "forbidden");
    s.call(reqwest::Method::DELETE, &shared_path, Some(&ann_token), None).await.expect(403);
    assert_eq!(s.patch(&anns_path, &ann_token, json!({"shared": true})).await.expect(403)["error"]["code"], "forbidden");
    s.post(path, &ann_token, json!({"shortcut": "x", "body": "x", "shared": true})).await.expect(403);
    s.get(&anns_path, &bob_token).await.expect(404);
    s.patch(&anns_path, &bob_token, json!({"body": "Bob's now"})).await.expect(404);
    s.call(reqwest::Method::DELETE, &anns_path, Some(&bob_token), None).await.expect(404);
    s.get(&format!("{path}/999999"), &ann_token).await.expect(404);
    // The admin may change anyone's; sharing an own one moves it to the shared set.
    let now_shared = s.patch(&anns_path, &s.admin, json!({"shared": true})).await.expect(200);
    assert_eq!(now_shared["shared"], true);
    assert!(s.get(path, &bob_token).await.expect(200).as_array().unwrap().iter().any(|c| c["shortcut"] == "mine"));
    for (body, field) in [
        (json!({"shortcut": "", "body": "x"}), "shortcut"),
        (json!({"shortcut": "Hello", "body": "x"}), "shortcut"),
        (json!({"shortcut": "two words", "body": "x"}), "shortcut"),
        (json!({"shortcut": "x".repeat(33), "body": "x"}), "shortcut"),
        (json!({"shortcut": "ok", "body": "   "}), "body"),
        (json!({"shortcut": "ok", "body": "x".repeat(4001)}), "body"),
        (json!({"body": "no shortcut"}), "shortcut"),
        (json!({"shortcut": 5, "body": "x"}), "shortcut"),
    ] {
        let res = s.post(path, &ann_token, body.clone()).await;
        assert!(matches!(res.status, 400 | 413), "{body}: {res:?}");
        assert!(res.body["error"]["message"].as_str().unwrap().contains(field), "{body}: {res:?}");
    }
    s.patch(&shared_path, &s.admin, json!({"shortcut": "Nope"})).await.expect(400);
}

/// A named colleague takes over: they get `assigned` with reason `transfer`, the caller leaves
/// (and frees their seat), everyone sees it, and the assignment record says `transferred`.
#[actix_rt::test]
async fn a_transfer_to_a_named_colleague_hands_the_chat_over() {
    let s = TestServer::start().await;
    let (ann, ann_token) = s.operator("ann", json!({"name": "Ann"})).await;
    let (bob, bob_token) = s.operator("bob", json!({"name": "Bob"})).await;
    let (mut ann_ws, _) = s.agent(&ann_token).await;
    let channel = s.channel(&[ann], Some(1)).await;
    let (conversation, visitor) = s.visit(channel, json!({"visitor_name": "Vera"})).await;
    ann_ws.next_of("assigned").await;
    // bob joins the team and comes online afterwards, so routing chose ann.
    s.patch(&format!("/api/v1/channels/{channel}"), &s.admin, json!({"operator_ids": [ann, bob]})).await.expect(200);
    let (mut bob_ws, _) = s.agent(&bob_token).await;
    let (mut widget, _) = s.widget(&visitor, None).await;
    let path = format!("/api/v1/conversations/{conversation}/transfer");
    let view = s.post(&path, &ann_token, json!({"user_id": bob})).await.expect(200);
    assert_eq!(view["member_ids"], json!([bob]));
    let assigned = bob_ws.next_of("assigned").await;
    assert_eq!(assigned["reason"], "transfer");
    assert_eq!(assigned["conversation"]["id"], conversation);
    let left = ann_ws.next_of("member_left").await;
    assert_eq!((left["user"]["id"].as_u64(), left["reason"].as_str()), (Some(ann), Some("transferred")));
    widget.next_where("ann leaving", |f| f["type"] == "message" && f["message"]["body"] == "Ann left the conversation").await;
    assert_eq!(widget.next_of("member_joined").await["user"]["name"], "Bob");
    let record = s.conversation(conversation, &bob_token).await;
    assert_eq!(record["assignment"]["rule"], "transferred");
    assert_eq!(record["assignment"]["operator_id"], bob);
    // Transferred away, ann keeps read access (API.md v1.2: ever a member).
    s.get(&format!("/api/v1/conversations/{conversation}"), &ann_token).await.expect(200);
    // ann's seat (max_sessions 1) is free again: the next visitor goes to her.
    s.put("/api/v1/me/presence", &bob_token, json!({"presence": "away"})).await.expect(200);
    let (next, _) = s.visit(channel, json!({"visitor_name": "Walt"})).await;
    assert_eq!(ann_ws.next_of("assigned").await["conversation"]["id"], next);

    let s = s.restart().await;
    let bob_token = s.login("bob", "pw").await;
    let record = s.conversation(conversation, &bob_token).await;
    assert_eq!((record["member_ids"].clone(), record["assignment"]["rule"].clone()), (json!([bob]), json!("transferred")));
}

/// Without a name the router picks among the team, the caller and members excluded,
/// for the expertise given — which becomes the conversation's.
#[actix_rt::test]
async fn a_transfer_by_expertise_goes_to_whom_the_router_picks() {
    let s = TestServer::start().await;
    let billing = s.expertise("Billing").await;
    let (ann, ann_token) = s.operator("ann", json!({})).await;
    let (bob, bob_token) = s.operator("bob", json!({})).await;
    let (carl, carl_token) = s.operator("carl", json!({"expertise_ids": [billing]})).await;
    let (mut ann_ws, _) = s.agent(&ann_token).await;
    let channel = s.channel(&[ann], None).await;
    let (conversation, _) = s.visit(channel, json!({"visitor_name": "Vera"})).await;
    ann_ws.next_of("assigned").await;
    s.patch(&format!("/api/v1/channels/{channel}"), &s.admin, json!({"operator_ids": [ann, bob, carl]})).await.expect(200);
    let (_bob_ws, _) = s.agent(&bob_token).await;
    let (mut carl_ws, _) = s.agent(&carl_token).await;
    let path = format!("/api/v1/conversations/{conversation}/transfer");
    let view = s.post(&path, &ann_token, json!({"expertise_ids": [billing]})).await.expect(200);
    assert_eq!((view["member_ids"].clone(), view["expertise_ids"].clone()), (json!([carl]), json!([billing])));
    assert_eq!(carl_ws.next_of("assigned").await["reason"], "transfer");
    // carl hands it on with no expertise named: bob is the only one left who can take it.
    let view = s.post(&path, &carl_token, json!({})).await.expect(200);
    assert_eq!(view["member_ids"], json!([bob]));
}

/// A transfer "to whoever holds Technical" reaches a holder even when the
/// cascade would prefer a same-language colleague without it; with no
/// holder free it is a 409 in words, and nothing changes.
#[actix_rt::test]
async fn a_transfer_by_expertise_goes_only_to_a_holder() {
    let s = TestServer::start().await;
    let technical = s.expertise("Technical").await;
    let (ann, ann_token) = s.operator("ann", json!({"languages": ["en"]})).await;
    let (bob, bob_token) = s.operator("bob", json!({"languages": ["en"]})).await;
    let (carl, carl_token) = s.operator("carl", json!({"languages": ["fr"], "expertise_ids": [technical]})).await;
    let (mut ann_ws, _) = s.agent(&ann_token).await;
    let channel = s.channel(&[ann], None).await;
    let (conversation, _) = s.visit(channel, json!({"visitor_name": "Vera", "lang": "en"})).await;
    ann_ws.next_of("assigned").await;
    s.patch(&format!("/api/v1/channels/{channel}"), &s.admin, json!({"operator_ids": [ann, bob, carl]})).await.expect(200);
    let (_bob_ws, _) = s.agent(&bob_token).await;
    let path = format!("/api/v1/conversations/{conversation}/transfer");
    // carl is offline: bob speaks English but holds no Technical.
    let refused = s.post(&path, &ann_token, json!({"expertise_ids": [technical]})).await.expect(409);
    assert_eq!(refused["error"]["code"], "conflict");
    assert!(refused["error"]["message"].as_str().unwrap().contains("expertise"), "{refused}");
    assert_eq!(s.conversation(conversation, &ann_token).await["member_ids"], json!([ann]));
    let (mut carl_ws, _) = s.agent(&carl_token).await;
    let view = s.post(&path, &ann_token, json!({"expertise_ids": [technical]})).await.expect(200);
    assert_eq!(view["member_ids"], json!([carl]));
    assert_eq!(carl_ws.next_of("assigned").await["reason"], "transfer");
}

/// Each refusal of a transfer, with nothing changed.
#[actix_rt::test]
async fn transfers_are_refused_when_nobody_can_take_the_chat() {
    let s = TestServer::start().await;
    let billing = s.expertise("Billing").await;
    let (ann, ann_token) = s.operator("ann", json!({})).await;
    let (bob, bob_token) = s.operator("bob", json!({})).await;
    let (outsider, outsider_token) = s.operator("olga", json!({})).await;
    let (mut ann_ws, _) = s.agent(&ann_token).await;
    let channel = s.channel(&[ann], Some(1)).await;
    let (conversation, _) = s.visit(channel, json!({"visitor_name": "Vera"})).await;
    ann_ws.next_of("assigned").await;
    s.patch(&format!("/api/v1/channels/{channel}"), &s.admin, json!({"operator_ids": [ann, bob]})).await.expect(200);
    let path = format!("/api/v1/conversations/{conversation}/transfer");
    // bob is offline, olga online but not in the team, nobody else at all.
    assert_eq!(s.post(&path, &ann_token, json!({"user_id": bob})).await.expect(409)["error"]["code"], "conflict");
    let (_olga_ws, _) = s.agent(&outsider_token).await;
    s.post(&path, &ann_token, json!({"user_id": outsider})).await.expect(409);
    s.post(&path, &ann_token, json!({})).await.expect(409);
    s.post(&path, &ann_token, json!({"user_id": ann})).await.expect(409);
    s.post(&path, &ann_token, json!({"user_id": 999_999})).await.expect(400);
    s.post(&path, &ann_token, json!({"expertise_ids": [999_999]})).await.expect(400);
    s.post(&path, &ann_token, json!({"user_id": "bob"})).await.expect(400);
    s.post(&path, &outsider_token, json!({"user_id": bob})).await.expect(403);
    s.post("/api/v1/conversations/999999/transfer", &ann_token, json!({"user_id": bob})).await.expect(404);
    // bob online but at max_sessions (1) with a chat of his own.
    let (_bob_ws, _) = s.agent(&bob_token).await;
    s.put("/api/v1/me/presence", &ann_token, json!({"presence": "away"})).await.expect(200);
    let (busy, _) = s.visit(channel, json!({"visitor_name": "Walt"})).await;
    assert_eq!(s.conversation(busy, &bob_token).await["member_ids"], json!([bob]));
    s.post(&path, &ann_token, json!({"user_id": bob, "expertise_ids": [billing]})).await.expect(409);
    let unchanged = s.conversation(conversation, &ann_token).await;
    assert_eq!((unchanged["member_ids"].clone(), unchanged["expertise_ids"].clone()), (json!([ann]), json!([])));
    // A direct conversation is not routed; a closed one is over.
    let direct = s.post("/api/v1/direct", &ann_token, json!({"user_id": bob})).await.expect(201)["id"].as_u64().unwrap();
    s.post(&format!("/api/v1/conversations/{direct}/transfer"), &ann_token, json!({"user_id": bob})).await.expect(409);
    s.post(&format!("/api/v1/conversations/{conversation}/close"), &ann_token, json!({})).await.expect(200);
    s.post(&path, &ann_token, json!({})).await.expect(409);
}

/// A call for help says who asked and why; each operator's board says whether they are already in it;
/// all of it survives a restart (journal) and a second one (snapshot).
#[actix_rt::test]
async fn the_board_names_the_requester_the_note_and_membership() {
    let (s, ann_token, mut ann_ws, conversation, _) = served().await;
    let (_, bob_token) = s.operator("bob", json!({"name": "Bob"})).await;
    let (mut bob_ws, _) = s.agent(&bob_token).await;
    let status = format!("/api/v1/conversations/{conversation}/status");
    let long = "x".repeat(201);
    let refused = s.put(&status, &ann_token, json!({"status": "need_help", "note": long})).await.expect(400);
    assert!(refused["error"]["message"].as_str().unwrap().contains("note"), "{refused}");
    s.put(&status, &ann_token, json!({"status": "need_help", "note": " Customer wants a B2B refund "})).await.expect(200);
    let for_bob = bob_ws.next_where("a board with the call", |f| f["type"] == "need_help" && !f["conversations"][0].is_null()).await;
    let entry = &for_bob["conversations"][0];
    assert_eq!(entry["requested_by"]["name"], "Ann");
    assert_eq!(entry["note"], "Customer wants a B2B refund");
    assert_eq!(entry["is_member"], false);
    let for_ann = ann_ws.next_where("ann's board", |f| f["type"] == "need_help" && !f["conversations"][0].is_null()).await;
    assert_eq!(for_ann["conversations"][0]["is_member"], true);

    let s = s.restart().await;
    let ann_token = s.login("ann", "pw").await;
    let listed = s.get("/api/v1/conversations?status=need_help", &ann_token).await.expect(200);
    assert_eq!((listed[0]["note"].as_str(), listed[0]["is_member"].as_bool()), (Some("Customer wants a B2B refund"), Some(true)));
    assert_eq!(listed[0]["requested_by"]["name"], "Ann");
    s.post("/api/v1/admin/snapshot", &s.admin, json!({})).await.expect(200);
    let s = s.restart().await;
    let bob_token = s.login("bob", "pw").await;
    let listed = s.get("/api/v1/conversations?status=need_help", &bob_token).await.expect(200);
    assert_eq!((listed[0]["note"].as_str(), listed[0]["is_member"].as_bool()), (Some("Customer wants a B2B refund"), Some(false)));

    // Back to in progress, then a call over the socket with a blank note: no note.
    let ann_token = s.login("ann", "pw").await;
    s.put(&status, &ann_token, json!({"status": "in_progress"})).await.expect(200);
    let (mut ann_ws, _) = s.agent(&ann_token).await;
    ann_ws.send(json!({"type": "set_status", "ref": "h", "conversation_id": conversation, "status": "need_help", "note": "   "})).await;
    ann_ws.next_where("ack h", |f| f["type"] == "ack" && f["ref"] == "h").await;
    let listed = s.get("/api/v1/conversations?status=need_help", &bob_token).await.expect(200);
    assert!(listed[0].get("note").is_none(), "{listed}");
    assert_eq!(listed[0]["requested_by"]["name"], "Ann");
}
