//! The WebSocket protocol: acks and idempotent refs, malformed and oversized
//! frames, resume, presence, tabs, capacity and slow clients.

use std::time::Duration;

use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::support::{bodies, Ended, TestServer, WsClient};

/// ann connected and serving one visitor: (server, ann id, ann token, conversation, visitor token).
async fn served(s: &TestServer) -> (u64, String, WsClient, u64, String) {
    let (ann, ann_token) = s.operator("ann", json!({"name": "Ann"})).await;
    let (mut ws, _) = s.agent(&ann_token).await;
    let channel = s.channel(&[ann], None).await;
    let (conversation, visitor) = s.visit(channel, json!({})).await;
    ws.next_of("assigned").await;
    (ann, ann_token, ws, conversation, visitor)
}

/// A `send` is acknowledged with the stored message; resending the same `ref` stores nothing new.
#[actix_rt::test]
async fn a_resent_ref_is_acknowledged_again_but_stored_once() {
    let s = TestServer::start().await;
    let (_, ann_token, mut ann_ws, conversation, visitor) = served(&s).await;
    let (mut widget, _) = s.widget(&visitor, None).await;
    widget.send(json!({"type": "send", "body": "hello", "ref": "v-1"})).await;
    let ack = widget.next_of("ack").await;
    assert_eq!(ack["ref"], "v-1");
    assert_eq!(ack["message"]["body"], "hello");
    widget.send(json!({"type": "send", "body": "hello", "ref": "v-1"})).await;
    assert_eq!(widget.next_of("ack").await["message"]["id"], ack["message"]["id"]);
    // Also after reconnecting.
    widget.close().await;
    let (mut widget, _) = s.widget(&visitor, None).await;
    widget.send(json!({"type": "send", "body": "hello", "ref": "v-1"})).await;
    assert_eq!(widget.next_of("ack").await["message"]["id"], ack["message"]["id"]);
    ann_ws.send(json!({"type": "send", "conversation_id": conversation, "body": "hi", "ref": "a-1"})).await;
    let ann_ack = ann_ws.next_of("ack").await;
    ann_ws.send(json!({"type": "send", "conversation_id": conversation, "body": "hi", "ref": "a-1"})).await;
    assert_eq!(ann_ws.next_of("ack").await["message"]["id"], ann_ack["message"]["id"]);
    assert_eq!(bodies(&s.conversation(conversation, &ann_token).await["messages"]), ["hello", "hi"]);
}

/// A reused `ref` with another body is a `conflict` naming `ref` and stores
/// nothing (a console numbering refs from 1 after a reload lost messages
/// silently); a fresh ref for the same text is a new message.
#[actix_rt::test]
async fn a_reused_ref_with_another_body_is_a_conflict_and_stores_nothing() {
    let s = TestServer::start().await;
    let (_, ann_token, mut ann_ws, conversation, visitor) = served(&s).await;
    ann_ws.send(json!({"type": "send", "conversation_id": conversation, "body": "first", "ref": "c1"})).await;
    ann_ws.next_of("ack").await;
    ann_ws.send(json!({"type": "send", "conversation_id": conversation, "body": "second", "ref": "c1"})).await;
    let error = ann_ws.next_of("error").await;
    assert_eq!(error["ref"], "c1");
    assert_eq!(error["error"]["code"], "conflict");
    assert!(error["error"]["message"].as_str().unwrap().contains("ref"), "{error}");
    // The same text as an internal note under that ref is other content too.
    ann_ws.send(json!({"type": "send", "conversation_id": conversation, "body": "first", "internal": true, "ref": "c1"})).await;
    assert_eq!(ann_ws.next_of("error").await["error"]["code"], "conflict");
    let (mut widget, _) = s.widget(&visitor, None).await;
    widget.send(json!({"type": "send", "body": "mine", "ref": "v1"})).await;
    widget.next_of("ack").await;
    widget.send(json!({"type": "send", "body": "not mine", "ref": "v1"})).await;
    assert_eq!(widget.next_of("error").await["error"]["code"], "conflict");
    ann_ws.send(json!({"type": "send", "conversation_id": conversation, "body": "second", "ref": "c2"})).await;
    assert_eq!(ann_ws.next_of("ack").await["message"]["body"], "second");
    assert_eq!(bodies(&s.conversation(conversation, &ann_token).await["messages"]), ["first", "mine", "second"]);
}

/// Commands sent back to back without waiting (pipelining, API.md v1.1) are
/// applied in the order sent and answered in that order — a malformed frame's
/// error and an unknown conversation's (answered from the archive, a slower
/// path) included, each in its place.
#[actix_rt::test]
async fn pipelined_commands_are_applied_and_answered_in_order() {
    let s = TestServer::start().await;
    let (_, ann_token, mut ann_ws, conversation, _) = served(&s).await;
    let mut expected = Vec::new();
    for i in 0..150 {
        match i {
            40 => {
                ann_ws.send(json!({"type": "send", "ref": "bad", "conversation_id": conversation})).await;
                expected.push("bad".to_owned());
            }
            90 => {
                ann_ws.send(json!({"type": "send", "conversation_id": 999_999, "body": "x", "ref": "nowhere"})).await;
                expected.push("nowhere".to_owned());
            }
            _ => {}
        }
        ann_ws.send(json!({"type": "send", "conversation_id": conversation, "body": format!("m{i}"), "ref": format!("p{i}")})).await;
        expected.push(format!("p{i}"));
    }
    let mut answered = Vec::new();
    let mut acked_ids = Vec::new();
    for _ in 0..expected.len() {
        let reply = ann_ws.next_where("an ack or error", |f| f["type"] == "ack" || f["type"] == "error").await;
        if reply["type"] == "ack" {
            acked_ids.push(reply["message"]["id"].as_u64().unwrap());
        }
        answered.push(reply["ref"].as_str().unwrap_or("(no ref)").to_owned());
    }
    assert_eq!(answered, expected);
    assert!(acked_ids.windows(2).all(|w| w[0] < w[1]), "acked in the order stored: {acked_ids:?}");
    let bodies: Vec<String> = s.conversation(conversation, &ann_token).await["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["author"]["kind"] == "operator")
        .map(|m| m["body"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(bodies, (0..150).map(|i| format!("m{i}")).collect::<Vec<_>>());
}

/// The socket that sent a message finds it in its `ack` and is not sent it
/// again as an event (API.md v1.1: a frame per message saved); the same
/// operator's other tab, the visitor's other tab and the other side are.
#[actix_rt::test]
async fn the_sending_socket_gets_its_message_in_the_ack_only() {
    let s = TestServer::start().await;
    let (_, ann_token, mut ann_ws, conversation, visitor) = served(&s).await;
    // The "Ann joined" notice is the assignment's last event to Ann. Once her
    // first socket has it, every event of the assignment has been handed to her
    // operator actor, so the tab opened below starts after all of them. A tab
    // opened between `assigned` and the notice is given the notice live, which
    // is right, but it is not the message this test counts.
    ann_ws.next_of("message").await;
    let (mut ann_tab, _) = s.agent(&ann_token).await;
    let (mut widget, _) = s.widget(&visitor, None).await;
    let (mut widget_tab, _) = s.widget(&visitor, None).await;
    let quiet = std::time::Duration::from_millis(300);

    ann_ws.send(json!({"type": "send", "conversation_id": conversation, "body": "from Ann", "ref": "a1"})).await;
    let id = ann_ws.next_of("ack").await["message"]["id"].clone();
    for (name, ws) in [("ann_tab", &mut ann_tab), ("widget", &mut widget), ("widget_tab", &mut widget_tab)] {
        let m = ws.next_of("message").await;
        assert_eq!(m["message"]["id"], id, "{name}: {m}");
    }
    ann_ws.expect_no("message", quiet).await;

    widget.send(json!({"type": "send", "body": "from Vera", "ref": "v1"})).await;
    let id = widget.next_of("ack").await["message"]["id"].clone();
    for ws in [&mut widget_tab, &mut ann_ws, &mut ann_tab] {
        assert_eq!(ws.next_of("message").await["message"]["id"], id);
    }
    widget.expect_no("message", quiet).await;
}

/// A malformed frame gets an `error` naming the problem, and the connection stays usable.
#[actix_rt::test]
async fn malformed_frames_get_an_error_and_the_connection_stays_open() {
    let s = TestServer::start().await;
    let (_, _, mut ann_ws, conversation, _) = served(&s).await;
    ann_ws.send_text("{not json".into()).await;
    let error = ann_ws.next_of("error").await;
    assert_eq!(error["error"]["code"], "bad_request");
    ann_ws.send(json!({"type": "teleport", "ref": "t1"})).await;
    let error = ann_ws.next_of("error").await;
    assert_eq!(error["ref"], "t1", "the ref of a malformed frame is echoed");
    assert!(error["error"]["message"].as_str().unwrap().contains("teleport"));
    ann_ws.send(json!({"type": "send", "conversation_id": conversation, "ref": "t2"})).await;
    assert!(ann_ws.next_of("error").await["error"]["message"].as_str().unwrap().contains("body"));
    ann_ws.send(json!({"type": "send", "conversation_id": conversation, "body": "x", "ref": "r".repeat(65)})).await;
    assert_eq!(ann_ws.next_of("error").await["error"]["code"], "bad_request");
    ann_ws.send(json!({"type": "send", "conversation_id": 9999, "body": "x", "ref": "t3"})).await;
    assert_eq!(ann_ws.next_of("error").await["error"]["code"], "not_found");
    ann_ws.send(json!({"type": "send", "conversation_id": conversation, "body": "   ", "ref": "t4"})).await;
    assert_eq!(ann_ws.next_of("error").await["error"]["code"], "bad_request");
    ann_ws.send(json!({"type": "send", "conversation_id": conversation, "body": "still here", "ref": "ok"})).await;
    assert_eq!(ann_ws.next_of("ack").await["ref"], "ok");
}

/// A frame over the size limit closes the connection with a reason.
#[actix_rt::test]
async fn an_oversized_frame_closes_the_connection_with_a_reason() {
    let s = TestServer::start().await;
    let (_, _, mut ann_ws, conversation, _) = served(&s).await;
    let huge = "x".repeat(70 * 1024);
    ann_ws.send(json!({"type": "send", "conversation_id": conversation, "body": huge})).await;
    match ann_ws.ended().await {
        Ended::Closed(Some(frame)) => {
            assert_eq!(frame.code, CloseCode::Size);
            assert!(frame.reason.contains("exceeds"), "{frame:?}");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    // The server is unaffected.
    s.get("/healthz", "").await.expect(200);
}

/// After a reconnect, `resume` replays every missed message in order; a widget does the same with `after`.
#[actix_rt::test]
async fn resume_and_after_replay_what_was_missed() {
    let s = TestServer::start().await;
    let (_, ann_token, ann_ws, conversation, visitor) = served(&s).await;
    let last_seen = s.conversation(conversation, &ann_token).await["messages"].as_array().unwrap().last().unwrap()["id"].as_u64().unwrap();
    ann_ws.close().await;
    for body in ["one", "two", "three"] {
        s.post("/api/v1/visitor/messages", &visitor, json!({"body": body})).await.expect(201);
    }
    let (mut ann_ws, hello) = s.agent(&ann_token).await;
    assert_eq!(hello["conversations"][0]["id"], conversation);
    ann_ws.send(json!({"type": "resume", "conversation_id": conversation, "after_id": last_seen, "ref": "r"})).await;
    let mut replayed = Vec::new();
    for _ in 0..3 {
        let frame = ann_ws.next_of("message").await;
        replayed.push(frame["message"]["body"].as_str().unwrap().to_owned());
    }
    assert_eq!(replayed, ["one", "two", "three"]);
    assert_eq!(ann_ws.next_of("ack").await["ref"], "r");

    let (mut widget, hello) = s.widget(&visitor, Some(last_seen + 1)).await;
    assert!(hello["conversation"]["messages"].as_array().unwrap().len() >= 4);
    assert_eq!(widget.next_of("message").await["message"]["body"], "two");
    assert_eq!(widget.next_of("message").await["message"]["body"], "three");
}

/// Presence follows connections and is pushed to every operator; every tab gets every event.
#[actix_rt::test]
async fn presence_follows_connections_and_tabs_all_receive_events() {
    let s = TestServer::start().await;
    let (ann, ann_token) = s.operator("ann", json!({})).await;
    let (bob, bob_token) = s.operator("bob", json!({})).await;
    let (mut bob_ws, _) = s.agent(&bob_token).await;
    let (mut tab1, hello) = s.agent(&ann_token).await;
    assert_eq!(hello["user"]["presence"], "online");
    let pushed = bob_ws.next_where("ann online", |f| f["type"] == "presence" && f["user_id"] == ann).await;
    assert_eq!(pushed["presence"], "online");
    let (mut tab2, _) = s.agent(&ann_token).await;
    tab2.send(json!({"type": "presence", "presence": "away", "ref": "p"})).await;
    assert_eq!(tab2.next_of("ack").await["ref"], "p");
    assert_eq!(bob_ws.next_of("presence").await["presence"], "away");
    let channel = s.channel(&[ann, bob], None).await;
    s.put("/api/v1/me/presence", &ann_token, json!({"presence": "online"})).await.expect(200);
    let (conversation, _) = s.visit(channel, json!({})).await;
    assert_eq!(tab1.next_of("assigned").await["conversation"]["id"], conversation);
    assert_eq!(tab2.next_of("assigned").await["conversation"]["id"], conversation);
    tab1.close().await;
    tab2.close().await;
    let offline = bob_ws.next_where("ann offline", |f| f["type"] == "presence" && f["presence"] == "offline").await;
    assert_eq!(offline["user_id"], ann);
    s.put("/api/v1/me/presence", &ann_token, json!({"presence": "online"})).await.expect(409);
    let me = s.get("/api/v1/me", &ann_token).await.expect(200);
    assert_eq!(me["presence"], "offline");
}

/// A console that asks for `presence=batched` gets every change, in order, in
/// `presences` frames and never a `presence` one; a default console on the same
/// server still gets one `presence` per change. Any other value is a 400 naming the field.
#[actix_rt::test]
async fn batched_presence_carries_every_change_in_order() {
    let s = TestServer::start().await;
    let (_, watcher_token) = s.operator("watcher", json!({})).await;
    let (_, plain_token) = s.operator("plain", json!({})).await;
    let (ann, ann_token) = s.operator("ann", json!({})).await;
    let mut batched = WsClient::connect(&s.ws_url(&format!("/ws/agent?token={watcher_token}&presence=batched"))).await;
    batched.next_of("hello").await;
    let (mut plain, _) = s.agent(&plain_token).await;
    let (_ann_ws, _) = s.agent(&ann_token).await;
    for presence in ["away", "online", "away", "online"] {
        s.put("/api/v1/me/presence", &ann_token, json!({"presence": presence})).await.expect(200);
    }
    let expected = ["online", "away", "online", "away", "online"];
    let mut seen = Vec::new();
    while seen.len() < expected.len() {
        let frame = batched.next_where("presence changes", |f| f["type"] == "presences" || f["type"] == "presence").await;
        assert_eq!(frame["type"], "presences", "a batched console got {frame}");
        let changes = frame["changes"].as_array().expect("changes").iter();
        seen.extend(changes.filter(|c| c["user_id"] == ann).map(|c| c["presence"].as_str().unwrap().to_owned()));
    }
    assert_eq!(seen, expected);
    for presence in expected {
        let each = plain.next_where("ann's presence", |f| f["type"] == "presence" && f["user_id"] == ann).await;
        assert_eq!(each["presence"], presence);
    }
    for value in ["sometimes", "", "BATCHED"] {
        let body = s.get(&format!("/ws/agent?token={watcher_token}&presence={value}"), "").await.expect(400);
        assert!(body["error"]["message"].as_str().unwrap().contains("presence"), "{value:?}: {body}");
    }
}

/// Above the connection cap, upgrades get 503 `over_capacity`; existing connections keep working.
#[actix_rt::test]
async fn upgrades_above_the_cap_are_refused_and_others_unaffected() {
    let s = TestServer::start_with(|c| c.ws.max_connections = 2).await;
    let (_, ann_token, mut ann_ws, conversation, visitor) = served(&s).await;
    let (_widget, _) = s.widget(&visitor, None).await;
    let status = WsClient::refused(&s.ws_url(&format!("/ws/agent?token={ann_token}"))).await;
    assert_eq!(status, 503);
    let res = s.get(&format!("/ws/visitor?token={visitor}"), "").await;
    assert_eq!(res.status, 503, "{res:?}");
    assert_eq!(res.error_code(), "over_capacity");
    ann_ws.send(json!({"type": "send", "conversation_id": conversation, "body": "fine", "ref": "f"})).await;
    assert_eq!(ann_ws.next_of("ack").await["ref"], "f");
}

/// Upgrades without a valid token are refused before the handshake.
#[actix_rt::test]
async fn upgrades_need_the_right_token() {
    let s = TestServer::start().await;
    let (_, _, _, _, visitor) = served(&s).await;
    assert_eq!(WsClient::refused(&s.ws_url("/ws/agent")).await, 401);
    assert_eq!(WsClient::refused(&s.ws_url("/ws/agent?token=nope")).await, 401);
    assert_eq!(WsClient::refused(&s.ws_url(&format!("/ws/agent?token={visitor}"))).await, 403);
    assert_eq!(WsClient::refused(&s.ws_url(&format!("/ws/visitor?token={}", s.admin))).await, 403);
    assert_eq!(WsClient::refused(&s.ws_url("/ws/visitor?token=nope")).await, 401);
}

/// A client that stops answering pings is disconnected after the timeout.
#[actix_rt::test]
async fn a_silent_client_is_disconnected() {
    let s = TestServer::start_with(|c| {
        c.ws.heartbeat_interval = Duration::from_millis(500);
        c.ws.client_timeout = Duration::from_secs(2);
    })
    .await;
    let (_, _, mut ann_ws, _, _) = served(&s).await;
    // Not reading means not answering pings (tungstenite pongs while reading).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(matches!(ann_ws.ended().await, Ended::Closed(_) | Ended::Dropped));
}

/// A client too slow to drain its queue is disconnected instead of stalling the conversation.
#[actix_rt::test]
async fn a_client_too_slow_to_drain_its_queue_is_disconnected() {
    let s = TestServer::start_with(|c| {
        // Room for the set-up's events (presence, status, `assigned`, the
        // joined notice) even when the session task is slow to run on a busy
        // machine, and far below what the flood queues.
        c.ws.agent_queue = 16;
        c.ws.client_timeout = Duration::from_secs(30);
    })
    .await;
    let (ann, _, slow_ws, conversation, visitor) = served(&s).await;
    let body = "y".repeat(4000);
    // Megabytes the never-reading operator socket cannot absorb.
    for _ in 0..30 {
        let posts = (0..50).map(|_| s.post("/api/v1/visitor/messages", &visitor, json!({"body": body})));
        for res in futures_util::future::join_all(posts).await {
            res.expect(201);
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let users = s.get(&format!("/api/v1/users/{ann}"), &s.admin).await.expect(200);
        if users["presence"] == "offline" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "slow client was never disconnected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The conversation kept going for the visitor.
    let view = s.visitor_view(&visitor).await;
    assert!(view["messages"].as_array().unwrap().len() > 1000, "conversation {conversation} stalled");
    drop(slow_ws);
}

/// RFC 6455 §5.5.1: a Close frame is answered at once, not at the next
/// heartbeat, so a console or widget that closes its socket never hangs.
#[actix_rt::test]
async fn a_close_frame_is_answered_at_once_on_both_sockets() {
    // A heartbeat far longer than the bound below, so only a prompt answer passes.
    let s = TestServer::start_with(|c| {
        c.ws.heartbeat_interval = Duration::from_secs(5);
        c.ws.client_timeout = Duration::from_secs(20);
    })
    .await;
    let (_ann, _token, agent, _conversation, visitor) = served(&s).await;
    let (widget, _) = s.widget(&visitor, None).await;
    for (who, socket) in [("console", agent), ("widget", widget)] {
        let (answered, ended) = socket.close_handshake().await;
        eprintln!("{who}: Close answered after {answered:?}, connection ended after {ended:?}");
        assert!(answered < Duration::from_millis(100), "{who}: Close answered after {answered:?}");
        assert!(ended < Duration::from_millis(100), "{who}: connection ended after {ended:?}");
    }
}
