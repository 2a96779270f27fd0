//! History: closed conversations leave memory for the archive and stay
//! searchable, readable, downloadable; erasure; bad filters.

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::TestServer;

/// ann and bob on channel "A", carol alone on channel "B".
struct Team {
    s: TestServer,
    ann: (u64, String),
    carol: (u64, String),
    a: u64,
    b: u64,
}

async fn team() -> Team {
    let s = TestServer::start().await;
    let ann = s.operator("ann", json!({"name": "Ann"})).await;
    let bob = s.operator("bob", json!({"name": "Bob"})).await;
    let carol = s.operator("carol", json!({"name": "Carol"})).await;
    let a = s.post("/api/v1/channels", &s.admin, json!({"name": "A", "operator_ids": [ann.0, bob.0]})).await.expect(201)["id"]
        .as_u64()
        .unwrap();
    let b = s.post("/api/v1/channels", &s.admin, json!({"name": "B", "operator_ids": [carol.0]})).await.expect(201)["id"].as_u64().unwrap();
    Team { s, ann, carol, a, b }
}

/// A visitor on `channel` who writes `lines`, then the conversation is closed by the visitor leaving.
async fn chat(s: &TestServer, channel: u64, visitor: Value, lines: &[&str], close: bool) -> (u64, String) {
    let (id, token) = s.visit(channel, visitor).await;
    for line in lines {
        s.post("/api/v1/visitor/messages", &token, json!({"body": line})).await.expect(201);
    }
    if close {
        s.post("/api/v1/visitor/leave", &token, json!({})).await.expect(200);
    }
    (id, token)
}

fn ids(page: &Value) -> Vec<u64> {
    page["items"].as_array().unwrap().iter().map(|i| i["id"].as_u64().unwrap()).collect()
}

/// A closed conversation is archived (it leaves memory and the snapshot),
/// and is still found, read and rated by the same rules after a restart.
#[actix_rt::test]
async fn closed_conversations_leave_memory_and_stay_searchable() {
    let t = team().await;
    let s = &t.s;
    let (closed, visitor) = chat(s, t.a, json!({"visitor_name": "Zoé Martin"}), &["My Crème brûlée order is late", "order 42"], true).await;
    let (open, _) = chat(s, t.a, json!({"visitor_name": "Leo"}), &["another order question"], false).await;
    s.archived(1).await;

    let stats = s.post("/api/v1/admin/snapshot", &s.admin, json!({})).await.expect(200);
    assert_eq!(stats["conversations"], 1, "the snapshot holds live conversations only: {stats}");

    let found = s.get("/api/v1/history?q=creme%20BRULEE", &s.admin).await.expect(200);
    assert_eq!(ids(&found), [closed]);
    let item = &found["items"][0];
    assert_eq!(item["status"], "closed");
    assert!(item["closed_at"].is_string(), "{item}");
    assert_eq!(item["visitor_name"], "Zoé Martin");
    assert_eq!(item["channel_id"], t.a);
    assert_eq!(item["kind"], "livechat");
    assert_eq!(item["message_count"], 3, "two visitor lines and 'Visitor left the conversation'");
    assert_eq!(item["snippet"], "My Crème brûlée order is late");
    assert!(found.get("next_cursor").is_none());

    // Prefixes, AND, both stores at once, the visitor's name.
    assert_eq!(ids(&s.get("/api/v1/history?q=ord*", &s.admin).await.expect(200)), [open, closed]);
    assert_eq!(ids(&s.get("/api/v1/history?q=order%20late", &s.admin).await.expect(200)), [closed]);
    assert!(ids(&s.get("/api/v1/history?q=order%20pizza", &s.admin).await.expect(200)).is_empty());
    assert_eq!(ids(&s.get("/api/v1/history?q=zoe", &s.admin).await.expect(200)), [closed]);

    let view = s.conversation(closed, &s.admin).await;
    assert_eq!(view["status"], "closed");
    assert!(view["closed_at"].is_string());
    assert_eq!(view["messages"].as_array().unwrap().len(), 3);
    // The visitor's token still reads it; writing to it is a conflict, as for any closed conversation.
    assert_eq!(s.visitor_view(&visitor).await["status"], "closed");
    let refused = s.post("/api/v1/visitor/messages", &visitor, json!({"body": "hello?"})).await;
    assert_eq!(refused.expect(409)["error"]["code"], "conflict");

    let s = t.s.restart().await;
    assert_eq!(ids(&s.get("/api/v1/history?q=brulee", &s.admin).await.expect(200)), [closed]);
    assert_eq!(s.visitor_view(&visitor).await["messages"].as_array().unwrap().len(), 3);
    // New ids continue after the archived ones.
    let (next, _) = s.visit(t.a, json!({})).await;
    assert!(next > open, "{next} after {open}");
}

/// Filters, cursor paging and who sees what.
#[actix_rt::test]
async fn history_filters_pages_and_visibility() {
    let t = team().await;
    let s = &t.s;
    let mut on_a = Vec::new();
    for i in 0..5 {
        on_a.push(chat(s, t.a, json!({"visitor_key": "k-a"}), &[&format!("question {i}")], i % 2 == 0).await.0);
    }
    let (on_b, _) = chat(s, t.b, json!({}), &["private matter"], true).await;
    s.archived(4).await;

    // Admin: everything, newest first, in pages that neither skip nor repeat.
    let seen = s.history_ids("limit=2").await;
    let mut all = on_a.clone();
    all.push(on_b);
    all.reverse();
    assert_eq!(seen, all);

    // ann belongs to A only: B's conversation is not hers to see, in the list or directly.
    let ann = &t.ann.1;
    let hers = ids(&s.get("/api/v1/history?limit=100", ann).await.expect(200));
    assert!(!hers.contains(&on_b) && hers.len() == 5, "{hers:?}");
    assert_eq!(s.get(&format!("/api/v1/conversations/{on_b}"), ann).await.expect(403)["error"]["code"], "forbidden");
    assert_eq!(s.get(&format!("/api/v1/conversations/{on_b}"), &t.carol.1).await.status, 200);

    let by_channel = ids(&s.get(&format!("/api/v1/history?channel_id={}", t.b), &s.admin).await.expect(200));
    assert_eq!(by_channel, [on_b]);
    let by_key = ids(&s.get("/api/v1/history?visitor_key=k-a&limit=100", &s.admin).await.expect(200));
    assert_eq!(by_key.len(), 5);
    let future = ids(&s.get("/api/v1/history?from=2999-01-01T00:00:00Z", &s.admin).await.expect(200));
    assert!(future.is_empty());
    let past = ids(&s.get("/api/v1/history?to=2999-01-01T00:00:00Z&from=2000-01-01T00:00:00Z", &s.admin).await.expect(200));
    assert_eq!(past.len(), 6);
    let served_by_carol = ids(&s.get(&format!("/api/v1/history?operator_id={}", t.carol.0), &s.admin).await.expect(200));
    assert!(served_by_carol.is_empty(), "nobody was online to be assigned: {served_by_carol:?}");

    // The visitor's other conversations, newest first, this one excluded.
    let others = s.get(&format!("/api/v1/conversations/{}/visitor_history", on_a[0]), &s.admin).await.expect(200);
    let other_ids: Vec<u64> = others.as_array().unwrap().iter().map(|i| i["id"].as_u64().unwrap()).collect();
    assert_eq!(other_ids, on_a[1..].iter().rev().copied().collect::<Vec<_>>());
}

/// Transcripts download as text or JSON, live or archived.
#[actix_rt::test]
async fn transcripts_download_as_text_and_json() {
    let t = team().await;
    let s = &t.s;
    let (closed, _) = chat(s, t.a, json!({"visitor_name": "Vera"}), &["hello there", "bye"], true).await;
    s.archived(1).await;
    let (status, disposition, text) = s.download(&format!("/api/v1/conversations/{closed}/transcript"), &s.admin).await;
    assert_eq!(status, 200);
    assert!(disposition.starts_with("attachment") && disposition.contains(&format!("conversation-{closed}.txt")), "{disposition}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with('[') && lines[0].ends_with("] Vera: hello there"), "{text}");
    assert!(lines[2].ends_with("] System: Visitor left the conversation"), "{text}");
    let (status, disposition, json) = s.download(&format!("/api/v1/conversations/{closed}/transcript?format=json"), &s.admin).await;
    assert_eq!(status, 200);
    assert!(disposition.contains(".json"), "{disposition}");
    let json: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["messages"].as_array().unwrap().len(), 3);
    assert_eq!(
        s.get(&format!("/api/v1/conversations/{closed}/transcript?format=pdf"), &s.admin).await.expect(400)["error"]["code"],
        "bad_request"
    );
    assert_eq!(s.get(&format!("/api/v1/conversations/{closed}/transcript"), &t.carol.1).await.expect(403)["error"]["code"], "forbidden");
}

/// An erasure closes the visitor's open conversations and deletes them all, for good.
#[actix_rt::test]
async fn erasing_a_visitor_deletes_live_and_archived_conversations() {
    let t = team().await;
    let s = &t.s;
    let (old, _) = chat(s, t.a, json!({"visitor_key": "erase-me"}), &["old"], true).await;
    let (live, token) = chat(s, t.a, json!({"visitor_key": "erase-me"}), &["new"], false).await;
    let (kept, _) = chat(s, t.a, json!({"visitor_key": "someone-else"}), &["stay"], false).await;
    s.archived(1).await;
    let (mut widget, _) = s.widget(&token, None).await;

    assert_eq!(s.call(Method::DELETE, "/api/v1/visitors/erase-me", Some(&t.ann.1), None).await.expect(403)["error"]["code"], "forbidden");
    let erased = s.call(Method::DELETE, "/api/v1/visitors/erase-me", Some(&s.admin), None).await.expect(200);
    assert_eq!(erased, json!({"deleted": 2}));
    widget.next_of("closed").await;
    for id in [old, live] {
        assert_eq!(s.get(&format!("/api/v1/conversations/{id}"), &s.admin).await.expect(404)["error"]["code"], "not_found");
    }
    assert!(ids(&s.get("/api/v1/history?visitor_key=erase-me", &s.admin).await.expect(200)).is_empty());
    assert_eq!(s.get(&format!("/api/v1/conversations/{kept}"), &s.admin).await.status, 200);
    let again = s.call(Method::DELETE, "/api/v1/visitors/erase-me", Some(&s.admin), None).await.expect(200);
    assert_eq!(again, json!({"deleted": 0}));
    let s = t.s.restart().await;
    assert!(ids(&s.get("/api/v1/history?q=old", &s.admin).await.expect(200)).is_empty(), "an erasure survives a restart");
}

/// The routing report counts archived conversations as it did live ones.
#[actix_rt::test]
async fn the_routing_report_covers_history() {
    let s = TestServer::start().await;
    let (ann, ann_token) = s.operator("ann", json!({"name": "Ann"})).await;
    let (mut ws, _) = s.agent(&ann_token).await;
    let channel = s.channel(&[ann], None).await;
    let (id, _) = s.visit(channel, json!({})).await;
    ws.next_of("assigned").await;
    let before = s.get("/api/v1/reports/routing", &s.admin).await.expect(200);
    s.post(&format!("/api/v1/conversations/{id}/close"), &ann_token, json!({})).await.expect(200);
    s.archived(1).await;
    let after = s.get("/api/v1/reports/routing", &s.admin).await.expect(200);
    assert_eq!(after["conversations"], 1);
    let assignments =
        |r: &Value| r["operators"].as_array().unwrap().iter().find(|o| o["operator_id"] == ann).unwrap()["assignments"].clone();
    assert_eq!(assignments(&after), assignments(&before));
    assert_eq!(assignments(&after), 1);
}

/// Every bad filter is a 400 naming what is wrong; FTS syntax is only ever words.
#[actix_rt::test]
async fn bad_history_filters_are_refused_by_name() {
    let t = team().await;
    let s = &t.s;
    chat(s, t.a, json!({}), &["near the (end)"], true).await;
    s.archived(1).await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("cursor=garbage", "cursor"),
        ("cursor=h1.0", "cursor"),
        ("cursor=h1.18446744073709551615", "cursor"),
        ("channel_id=abc", "channel_id"),
        ("operator_id=-1", "operator_id"),
        ("operator_id=9223372036854775808", "operator_id"),
        ("from=yesterday", "from"),
        ("to=2026-13-01", "to"),
        ("rating=2", "rating"),
        ("colour=red", "colour"),
    ] {
        let res = s.get(&format!("/api/v1/history?{query}"), &s.admin).await;
        let body = res.expect(400);
        assert!(body["error"]["message"].as_str().unwrap().contains(field), "{query}: {body}");
    }
    // Ids that name nothing find nothing; an empty typed parameter is refused, an empty `q` is no filter.
    for query in ["channel_id=999999", "expertise_id=999999", "operator_id=999999"] {
        assert!(ids(&s.get(&format!("/api/v1/history?{query}"), &s.admin).await.expect(200)).is_empty(), "{query}");
    }
    for field in ["channel_id", "operator_id", "expertise_id", "from", "to", "rating", "limit", "cursor"] {
        let body = s.get(&format!("/api/v1/history?{field}="), &s.admin).await.expect(400);
        assert!(body["error"]["message"].as_str().unwrap().contains(field), "{field}=: {body}");
    }
    assert_eq!(ids(&s.get("/api/v1/history?q=", &s.admin).await.expect(200)).len(), 1);
    let long = "x".repeat(201);
    assert_eq!(s.get(&format!("/api/v1/history?q={long}"), &s.admin).await.status, 400);
    for q in ["%22near", "NEAR(the%20end)", "-end", "end:", "(end", "the%20AND%20OR%20NOT", "*", "%22%22%22", "\u{0301}"] {
        let res = s.get(&format!("/api/v1/history?q={q}"), &s.admin).await;
        assert_eq!(res.status, 200, "q={q}: {res:?}");
    }
    assert_eq!(ids(&s.get("/api/v1/history?q=NEAR(the%20end)", &s.admin).await.expect(200)).len(), 1);
    assert_eq!(s.get("/api/v1/history", "not-a-token").await.expect(401)["error"]["code"], "unauthorized");
    let res = s.call(Method::DELETE, &format!("/api/v1/visitors/{}", "k".repeat(129)), Some(&s.admin), None).await;
    assert_eq!(res.expect(400)["error"]["code"], "bad_request");
}

/// An archive that is not a database stops the server, naming the file.
#[actix_rt::test]
async fn a_corrupt_archive_refuses_to_start() {
    let dir = tempfile::TempDir::new().unwrap();
    std::fs::write(dir.path().join("history.sqlite3"), b"this is not a database, it is a text file of some length..........").unwrap();
    let refused = TestServer::start_in(dir, |_| {}).await.err().expect("refuses to start");
    assert!(format!("{refused:#}").contains("history.sqlite3"), "{refused:#}");
}

/// `switchboard backup` while the server runs gives a data directory that starts with everything in it.
#[actix_rt::test]
async fn a_backup_taken_while_running_restores() {
    let t = team().await;
    let s = &t.s;
    let (closed, _) = chat(s, t.a, json!({}), &["archived line"], true).await;
    let (open, _) = chat(s, t.a, json!({}), &["live line"], false).await;
    s.archived(1).await;
    let to = tempfile::TempDir::new().unwrap();
    let target = to.path().join("copy");
    let copied = switchboard::backup::run(s.data_dir.path(), &target).unwrap();
    assert!(copied.archive && copied.segments >= 1, "{copied:?}");
    assert!(switchboard::backup::run(s.data_dir.path(), &target).is_err(), "never into a directory that holds files");
    let restored_dir = tempfile::TempDir::new().unwrap();
    for entry in std::fs::read_dir(&target).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), restored_dir.path().join(entry.file_name())).unwrap();
    }
    let mut restored = TestServer::start_in(restored_dir, |_| {}).await.unwrap();
    restored.admin = restored.login("admin", "admin-pass").await;
    assert_eq!(ids(&restored.get("/api/v1/history?q=archived", &restored.admin).await.expect(200)), [closed]);
    assert_eq!(restored.conversation(open, &restored.admin).await["status"], "queued");
}

/// `--retention-days`: conversations closed longer ago than that are deleted (at start, then hourly).
#[actix_rt::test]
async fn retention_deletes_what_aged_out() {
    let t = team().await;
    let (old, _) = chat(&t.s, t.a, json!({}), &["ancient words"], true).await;
    let (recent, _) = chat(&t.s, t.a, json!({}), &["recent words"], true).await;
    t.s.archived(2).await;
    let admin = t.s.admin.clone();
    let dir = t.s.stop().await;
    // Three days pass for the first one.
    let db = rusqlite::Connection::open(dir.path().join("history.sqlite3")).unwrap();
    db.execute("UPDATE conversations SET closed_at = closed_at - 3 * 86400000 WHERE id = ?1", [old as i64]).unwrap();
    drop(db);
    let mut s = TestServer::start_in(dir, |c| c.retention_days = Some(2)).await.unwrap();
    s.admin = admin;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while s.get(&format!("/api/v1/conversations/{old}"), &s.admin).await.status != 404 {
        assert!(std::time::Instant::now() < deadline, "the aged conversation was not deleted");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(s.get(&format!("/api/v1/conversations/{recent}"), &s.admin).await.status, 200);
    assert!(ids(&s.get("/api/v1/history?q=ancient", &s.admin).await.expect(200)).is_empty());
}
