//! Forward to operator: the preference cascade, availability, capacity and the queue.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::json;

use crate::support::TestServer;

/// Each cascade level wins over every lower one, and the rule is recorded.
#[actix_rt::test]
async fn each_cascade_level_picks_the_right_operator() {
    let s = TestServer::start().await;
    let a = s.expertise("A").await;
    let b = s.expertise("B").await;
    let profiles = [
        ("lang_all", json!({"languages": ["fr"], "expertise_ids": [a, b]}), "lang_all_expertise"),
        ("lang_any", json!({"languages": ["fr"], "expertise_ids": [a]}), "lang_any_expertise"),
        ("lang", json!({"languages": ["fr-BE"]}), "lang"),
        ("country_all", json!({"country": "BE", "expertise_ids": [a, b]}), "country_all_expertise"),
        ("country_any", json!({"country": "be", "expertise_ids": [b]}), "country_any_expertise"),
        ("country", json!({"country": "BE"}), "country"),
        ("all", json!({"expertise_ids": [a, b]}), "all_expertise"),
        ("any", json!({"expertise_ids": [b]}), "any_expertise"),
        ("none", json!({"languages": ["de"], "country": "DE"}), "any_operator"),
    ];
    // Created worst match first, so the winner of each level never wins merely by lowest id.
    let mut ops = Vec::new();
    let mut tokens = Vec::new();
    for (login, profile, rule) in profiles.into_iter().rev() {
        let (id, token) = s.operator(login, profile).await;
        tokens.push(token);
        ops.insert(0, (id, rule));
    }
    // Connected only now: these consoles are never read, so they stop answering
    // pings, and the test server drops a console that has not answered for its client timeout.
    let mut sockets = Vec::new();
    for token in &tokens {
        sockets.push(s.agent(token).await.0);
    }
    let mut remaining: Vec<u64> = ops.iter().map(|(id, _)| *id).collect();
    let channel = s.channel(&remaining, None).await;
    for (expected, rule) in ops {
        let (conversation, _) = s.visit(channel, json!({"lang": "fr", "country": "BE", "expertise_ids": [a, b]})).await;
        let view = s.conversation(conversation, &s.admin).await;
        assert_eq!(view["assignment"]["operator_id"], expected, "level {rule}: {view}");
        assert_eq!(view["assignment"]["rule"], rule);
        assert_eq!(view["assignment"]["candidates"], remaining.len());
        assert_eq!(view["status"], "in_progress");
        remaining.retain(|&id| id != expected);
        s.patch(&format!("/api/v1/channels/{channel}"), &s.admin, json!({"operator_ids": remaining})).await.expect(200);
    }
}

/// Offline and away operators are never candidates; with none online the visitor queues.
#[actix_rt::test]
async fn offline_and_away_operators_are_never_picked() {
    let s = TestServer::start().await;
    let (online, online_token) = s.operator("online", json!({})).await;
    let (offline, _) = s.operator("offline", json!({"languages": ["fr"]})).await;
    let (away, away_token) = s.operator("away", json!({"languages": ["fr"]})).await;
    let (mut online_ws, _) = s.agent(&online_token).await;
    let (_away_ws, _) = s.agent(&away_token).await;
    s.put("/api/v1/me/presence", &away_token, json!({"presence": "away"})).await.expect(200);
    let channel = s.channel(&[offline, away, online], None).await;
    for _ in 0..3 {
        let (conversation, _) = s.visit(channel, json!({"lang": "fr"})).await;
        let view = s.conversation(conversation, &s.admin).await;
        assert_eq!(view["assignment"]["operator_id"], online);
        assert_eq!(view["assignment"]["candidates"], 1);
        online_ws.next_of("assigned").await;
    }
    let lonely = s.channel(&[offline, away], None).await;
    // A widget may open its session with no body at all.
    let opened = s.call(reqwest::Method::POST, &format!("/api/v1/channels/{lonely}/sessions"), None, None).await.expect(201);
    let visitor = opened["visitor_token"].as_str().unwrap().to_owned();
    let view = s.visitor_view(&visitor).await;
    assert_eq!(view["status"], "queued");
    assert_eq!(view["queue_position"], 1);
}

/// 50 visitors racing for 2 operators with `max_sessions = 3`: 6 are served,
/// 44 queue with distinct positions, and capacity frees them in queue order.
#[actix_rt::test]
async fn fifty_visitors_racing_for_two_operators_respect_capacity_and_queue_order() {
    let s = TestServer::start().await;
    let (ann, ann_token) = s.operator("ann", json!({})).await;
    let (bob, bob_token) = s.operator("bob", json!({})).await;
    let (_ann_ws, _) = s.agent(&ann_token).await;
    let (_bob_ws, _) = s.agent(&bob_token).await;
    let channel = s.channel(&[ann, bob], Some(3)).await;

    let visits = (0..50).map(|i| s.visit(channel, json!({"visitor_name": format!("v{i}")})));
    let visitors = join_all(visits).await;
    let mut served = Vec::new();
    let mut queued = Vec::new();
    for (conversation, token) in &visitors {
        let view = s.visitor_view(token).await;
        match view["status"].as_str().unwrap() {
            "in_progress" => served.push(*conversation),
            "queued" => queued.push((view["queue_position"].as_u64().unwrap(), *conversation, token.clone())),
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(served.len(), 6);
    queued.sort();
    let positions: Vec<u64> = queued.iter().map(|q| q.0).collect();
    assert_eq!(positions, (1..=44).collect::<Vec<_>>());
    // Arrival order: a conversation created later (higher id) never queues ahead of an earlier one.
    assert!(queued.windows(2).all(|w| w[0].1 < w[1].1), "queue is not in arrival order");
    let users = s.get("/api/v1/users", &s.admin).await.expect(200);
    for user in users.as_array().unwrap().iter().filter(|u| u["id"] == ann || u["id"] == bob) {
        assert_eq!(user["active_chats"], 3, "{user}");
    }

    // Freeing one seat serves the head of the queue, and everyone behind moves up.
    let (mut second_ws, _) = s.widget(&queued[1].2, None).await;
    let operator_token = |conversation: u64| {
        let ann_token = ann_token.clone();
        let bob_token = bob_token.clone();
        let s = &s;
        async move {
            let view = s.conversation(conversation, &s.admin).await;
            if view["assignment"]["operator_id"] == ann {
                ann_token
            } else {
                bob_token
            }
        }
    };
    let closer = operator_token(served[0]).await;
    s.post(&format!("/api/v1/conversations/{}/close", served[0]), &closer, json!({})).await.expect(200);
    let moved = second_ws.next_of("status").await;
    assert_eq!(moved["queue_position"], 1);
    assert_eq!(s.visitor_view(&queued[0].2).await["status"], "in_progress");
    for (position, _, token) in &queued[2..5] {
        assert_eq!(s.visitor_view(token).await["queue_position"], position - 1);
    }
}

/// A queued visitor is served as soon as an operator comes online.
#[actix_rt::test]
async fn the_queue_drains_when_an_operator_comes_online() {
    let s = TestServer::start().await;
    let (ann, ann_token) = s.operator("ann", json!({})).await;
    let channel = s.channel(&[ann], None).await;
    let (conversation, visitor) = s.visit(channel, json!({"visitor_name": "Vera"})).await;
    let (mut widget, hello) = s.widget(&visitor, None).await;
    assert_eq!(hello["conversation"]["status"], "queued");
    assert_eq!(hello["conversation"]["queue_position"], 1);
    let (mut ann_ws, _) = s.agent(&ann_token).await;
    let assigned = ann_ws.next_of("assigned").await;
    assert_eq!(assigned["conversation"]["id"], conversation);
    assert_eq!(widget.next_of("status").await["status"], "in_progress");
    let joined = widget.next_of("member_joined").await;
    assert_eq!(joined["user"]["name"], "ann");
    let notice = widget.next_of("message").await;
    assert_eq!(notice["message"]["body"], "ann joined the conversation");
    assert_eq!(notice["message"]["author"]["kind"], "system");
}

/// Raising a channel's capacity serves its queue at once; a visitor who leaves the queue drops out of it.
#[actix_rt::test]
async fn queue_moves_on_capacity_change_and_leavers_drop_out() {
    let s = TestServer::start().await;
    let (ann, ann_token) = s.operator("ann", json!({})).await;
    let (_ann_ws, _) = s.agent(&ann_token).await;
    let channel = s.channel(&[ann], Some(1)).await;
    s.visit(channel, json!({})).await;
    let (_, second) = s.visit(channel, json!({})).await;
    let (_, third) = s.visit(channel, json!({})).await;
    assert_eq!(s.visitor_view(&third).await["queue_position"], 2);
    s.post("/api/v1/visitor/leave", &second, json!({})).await.expect(200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while s.visitor_view(&third).await["queue_position"] != 1 {
        assert!(tokio::time::Instant::now() < deadline, "queue did not move");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.patch(&format!("/api/v1/channels/{channel}"), &s.admin, json!({"max_sessions": 2})).await.expect(200);
    while s.visitor_view(&third).await["status"] != "in_progress" {
        assert!(tokio::time::Instant::now() < deadline, "capacity change did not serve the queue");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A returning visitor (same `visitor_key`) gets their previous operator even when another is less busy.
#[actix_rt::test]
async fn a_returning_visitor_gets_their_previous_operator() {
    let s = TestServer::start().await;
    let (ann, ann_token) = s.operator("ann", json!({})).await;
    let (bob, bob_token) = s.operator("bob", json!({})).await;
    let (_a, _) = s.agent(&ann_token).await;
    let (_b, _) = s.agent(&bob_token).await;
    let channel = s.channel(&[ann, bob], None).await;
    let (first, token) = s.visit(channel, json!({"visitor_key": "k-123"})).await;
    assert_eq!(s.conversation(first, &s.admin).await["assignment"]["operator_id"], ann);
    s.post("/api/v1/visitor/leave", &token, json!({})).await.expect(200);
    // Both now get one chat each; bob has waited longer since his last one, so he is next in line...
    let (second, _) = s.visit(channel, json!({})).await;
    assert_eq!(s.conversation(second, &s.admin).await["assignment"]["operator_id"], bob);
    let (third, _) = s.visit(channel, json!({})).await;
    assert_eq!(s.conversation(third, &s.admin).await["assignment"]["operator_id"], ann);
    // ...but the returning visitor still goes to ann.
    let (again, _) = s.visit(channel, json!({"visitor_key": "k-123"})).await;
    let view = s.conversation(again, &s.admin).await;
    assert_eq!(view["assignment"]["operator_id"], ann);
    assert_eq!(view["assignment"]["rule"], "previous_operator");
}

/// Rule 1 across a restart: by then the visitor's last conversation is in the archive.
#[actix_rt::test]
async fn a_returning_visitor_gets_their_previous_operator_after_a_restart() {
    let s = TestServer::start().await;
    let (ann, ann_token) = s.operator("ann", json!({})).await;
    let (bob, bob_token) = s.operator("bob", json!({})).await;
    let channel = s.channel(&[ann, bob], None).await;
    {
        let (_a, _) = s.agent(&ann_token).await;
        let (first, token) = s.visit(channel, json!({"visitor_key": "k-restart"})).await;
        assert_eq!(s.conversation(first, &s.admin).await["assignment"]["operator_id"], ann);
        s.post("/api/v1/visitor/leave", &token, json!({})).await.expect(200);
        // ann keeps one open chat, so without rule 1 the less busy bob is next.
        s.visit(channel, json!({})).await;
        s.archived(1).await;
    }
    let s = s.restart().await;
    let (_b, _) = s.agent(&bob_token).await;
    let (_a, _) = s.agent(&ann_token).await;
    let (again, _) = s.visit(channel, json!({"visitor_key": "k-restart"})).await;
    let view = s.conversation(again, &s.admin).await;
    assert_eq!(view["assignment"]["operator_id"], ann, "{view}");
    assert_eq!(view["assignment"]["rule"], "previous_operator");
    let (other, _) = s.visit(channel, json!({})).await;
    assert_eq!(s.conversation(other, &s.admin).await["assignment"]["operator_id"], bob);
}
