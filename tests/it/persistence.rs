//! Durability: a restart brings every kind of state back; damaged files get
//! the documented outcome. The crash test (SIGKILL) is in `crash.rs`.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use switchboard::persist::frame::frame;
use switchboard::persist::journal::SEGMENT_HEADER;
use switchboard::persist::records::RecordV1;
use switchboard::persist::{encode, list};
use tempfile::TempDir;

use crate::support::TestServer;

/// Every state the API shows, with presence normalised (everyone is offline after a restart).
async fn everything(s: &TestServer, conversations: &[u64], visitors: &[String]) -> Value {
    let mut users = s.get("/api/v1/users", &s.admin).await.expect(200);
    for user in users.as_array_mut().unwrap() {
        user["presence"] = json!("offline");
    }
    let mut read = Vec::new();
    for id in conversations {
        read.push(s.conversation(*id, &s.admin).await);
    }
    let mut seen = Vec::new();
    for token in visitors {
        seen.push(s.visitor_view(token).await);
    }
    json!({
        "users": users,
        "expertise": s.get("/api/v1/expertise", &s.admin).await.expect(200),
        "channels": s.get("/api/v1/channels", &s.admin).await.expect(200),
        "chatbots": s.get("/api/v1/chatbots", &s.admin).await.expect(200),
        "leads": s.get("/api/v1/leads", &s.admin).await.expect(200),
        "conversations": read,
        "visitors": seen,
    })
}

#[actix_rt::test]
async fn a_restart_brings_every_kind_of_state_back() {
    let s = TestServer::start().await;
    let billing = s.expertise("Billing").await;
    let (ann, ann_token) = s.operator("ann", json!({"languages": ["en", "fr"], "country": "BE", "expertise_ids": [billing]})).await;
    let (bob, bob_token) = s.operator("bob", json!({})).await;
    let (carl, _) = s.operator("carl", json!({"expertise_ids": [billing]})).await;
    let (mut ann_ws, _) = s.agent(&ann_token).await;
    let (mut bob_ws, _) = s.agent(&bob_token).await;
    let channel = s.channel(&[ann, bob], Some(1)).await;

    // In progress with ann, with a message sent under a ref; then looking for help.
    let (helped, helped_token) =
        s.visit(channel, json!({"visitor_name": "Vera", "lang": "en", "visitor_key": "k1", "expertise_ids": [billing]})).await;
    let (mut widget, _) = s.widget(&helped_token, None).await;
    widget.send(json!({"type": "send", "ref": "v-1", "body": "my invoice"})).await;
    let first = widget.next_of("ack").await["message"]["id"].clone();
    s.put(&format!("/api/v1/conversations/{helped}/status"), &ann_token, json!({"status": "need_help"})).await.expect(200);
    // With bob.
    let (busy, busy_token) = s.visit(channel, json!({})).await;
    // Closed by the visitor while waiting on a channel nobody staffs.
    let nobody = s.channel(&[], None).await;
    let (left, left_token) = s.visit(nobody, json!({})).await;
    s.post("/api/v1/visitor/leave", &left_token, json!({})).await.expect(200);
    // Both at capacity: these two queue, in order.
    let (queued_1, queued_1_token) = s.visit(channel, json!({})).await;
    let (queued_2, queued_2_token) = s.visit(channel, json!({})).await;
    assert_eq!(s.visitor_view(&queued_2_token).await["queue_position"], 2);
    // A chatbot mid-script, then its script edited: the conversation keeps the old one.
    let script = json!({"title": "Bot", "steps": [
        {"id": 1, "type": "question_email", "message": "Email?"},
        {"id": 2, "type": "text", "message": "Old thanks"}]});
    let chatbot = s.post("/api/v1/chatbots", &s.admin, script).await.expect(201)["id"].as_u64().unwrap();
    let bot_channel = s
        .post("/api/v1/channels", &s.admin, json!({"name": "Bot site", "chatbot_id": chatbot, "notify_email": "leads@example.com"}))
        .await
        .expect(201)["id"]
        .as_u64()
        .unwrap();
    let (botted, botted_token) = s.visit(bot_channel, json!({})).await;
    s.post("/api/v1/visitor/messages", &botted_token, json!({"body": "nope"})).await.expect(201);
    let new_steps = json!({"steps": [
        {"id": 1, "type": "question_email", "message": "Email?"},
        {"id": 2, "type": "text", "message": "New thanks"}]});
    s.patch(&format!("/api/v1/chatbots/{chatbot}"), &s.admin, new_steps).await.expect(200);
    // A direct conversation, and a logged-out token.
    let direct = s.post("/api/v1/direct", &ann_token, json!({"user_id": bob})).await.expect(201)["id"].as_u64().unwrap();
    s.post(&format!("/api/v1/conversations/{direct}/messages"), &ann_token, json!({"body": "lunch?"})).await.expect(201);
    let gone = s.login("carl", "pw").await;
    s.post("/api/v1/auth/logout", &gone, json!({})).await;
    ann_ws.next_of("need_help").await;
    drop((ann_ws, bob_ws.next_of("need_help").await, widget));

    let conversations = [helped, busy, left, queued_1, queued_2, botted, direct];
    let visitors = [helped_token.clone(), busy_token, left_token, queued_1_token, queued_2_token.clone(), botted_token.clone()];
    s.archived(1).await; // the visitor who left: archived, and a lead
    let before = everything(&s, &conversations, &visitors).await;
    let s = s.restart().await;
    assert_eq!(everything(&s, &conversations, &visitors).await, before);

    // Tokens: the admin's and ann's still work, the logged-out one does not.
    assert_eq!(s.get("/api/v1/me", &ann_token).await.expect(200)["id"], ann);
    assert_eq!(s.get("/api/v1/me", &gone).await.status, 401);
    // A resent ref is still recognised, and new ids continue after the old ones.
    let (mut widget, _) = s.widget(&helped_token, None).await;
    widget.send(json!({"type": "send", "ref": "v-1", "body": "my invoice"})).await;
    assert_eq!(widget.next_of("ack").await["message"]["id"], first);
    let next = s.post("/api/v1/visitor/messages", &helped_token, json!({"body": "still there?"})).await.expect(201);
    let last_before = before["conversations"][0]["messages"].as_array().unwrap().last().unwrap()["id"].as_u64().unwrap();
    assert_eq!(next["id"].as_u64().unwrap(), last_before + 1);
    // The board with carl's star, and the queue in order once an operator connects.
    let carl_token = s.login("carl", "pw").await;
    let (_, hello) = s.agent(&carl_token).await;
    assert_eq!(hello["need_help"][0]["id"], helped);
    assert_eq!(hello["need_help"][0]["starred"], true);
    let joined = s.post(&format!("/api/v1/conversations/{helped}/join"), &carl_token, json!({})).await.expect(200);
    assert_eq!(joined["member_ids"], json!([ann, carl]));
    // Bob is at capacity with `busy`; closing it serves the head of the queue.
    let (mut bob_ws, _) = s.agent(&bob_token).await;
    s.post(&format!("/api/v1/conversations/{busy}/close"), &bob_token, json!({})).await.expect(200);
    let assigned = bob_ws.next_of("assigned").await;
    assert_eq!(assigned["conversation"]["id"], queued_1);
    assert_eq!(s.visitor_view(&queued_2_token).await["queue_position"], 1);
    // The bot goes on with the version it started with.
    s.post("/api/v1/visitor/messages", &botted_token, json!({"body": "vera@example.com"})).await.expect(201);
    let view = s.visitor_view(&botted_token).await;
    assert_eq!(view["messages"].as_array().unwrap().last().unwrap()["body"], "Old thanks");
}

fn files(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let files = list(dir).unwrap();
    (files.snapshots.into_iter().map(|(_, p)| p).collect(), files.segments.into_iter().map(|(_, p)| p).collect())
}

fn append(path: &Path, bytes: &[u8]) {
    let mut all = fs::read(path).unwrap();
    all.extend_from_slice(bytes);
    fs::write(path, all).unwrap();
}

fn record(token: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    frame(&encode(&RecordV1::TokenRevoked { token: token.into() }), &mut bytes);
    bytes
}

/// A server with one expertise "Kept", stopped gracefully; its data dir.
async fn stopped_with_data() -> TempDir {
    let s = TestServer::start().await;
    s.expertise("Kept").await;
    s.stop().await
}

async fn expertise_names(data_dir: TempDir) -> Vec<String> {
    let mut s = TestServer::start_in(data_dir, |_| {}).await.expect("server starts");
    s.admin = s.login("admin", "admin-pass").await;
    let all = s.get("/api/v1/expertise", &s.admin).await.expect(200);
    all.as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_owned()).collect()
}

#[actix_rt::test]
async fn a_torn_journal_tail_is_truncated_and_the_server_starts() {
    let data_dir = stopped_with_data().await;
    let (_, segments) = files(data_dir.path());
    let last = segments.last().unwrap().clone();
    let whole = record("torn");
    append(&last, &whole[..whole.len() / 2]);
    assert_eq!(expertise_names(data_dir).await, ["Kept"]);
}

#[actix_rt::test]
async fn damage_before_the_last_record_refuses_to_start_naming_file_and_offset() {
    let data_dir = stopped_with_data().await;
    let (_, segments) = files(data_dir.path());
    let last = segments.last().unwrap().clone();
    let mut two = record("first");
    two.extend(record("second"));
    two[10] ^= 0xff;
    append(&last, &two);
    let error = TestServer::start_in(data_dir, |_| {}).await.err().expect("refuses to start").to_string();
    let name = last.file_name().unwrap().to_str().unwrap();
    assert!(error.contains(name), "{error}");
    assert!(error.contains(&format!("byte {SEGMENT_HEADER}")), "{error}");
    assert!(error.contains("corrupt"), "{error}");
}

#[actix_rt::test]
async fn a_damaged_snapshot_falls_back_to_the_previous_one_and_the_journal() {
    let s = TestServer::start().await;
    s.expertise("Before").await;
    s.post("/api/v1/admin/snapshot", &s.admin, json!({})).await.expect(200);
    s.expertise("After").await;
    let data_dir = s.stop().await;
    let (snapshots, _) = files(data_dir.path());
    assert_eq!(snapshots.len(), 2);
    let newest = snapshots.last().unwrap();
    let mut bytes = fs::read(newest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(newest, bytes).unwrap();
    assert_eq!(expertise_names(data_dir).await, ["Before", "After"]);
}

#[actix_rt::test]
async fn files_of_which_nothing_is_readable_refuse_to_start() {
    let data_dir = stopped_with_data().await;
    let (snapshots, _) = files(data_dir.path());
    assert_eq!(snapshots.len(), 1, "the older journal was pruned");
    fs::write(&snapshots[0], b"SWBSNAP1 but not really").unwrap();
    let error = TestServer::start_in(data_dir, |_| {}).await.err().expect("refuses to start").to_string();
    assert!(error.contains("refusing to start"), "{error}");
}

#[actix_rt::test]
async fn an_empty_data_dir_starts_fresh_and_a_file_in_its_place_refuses() {
    let data_dir = TempDir::new().unwrap();
    fs::write(data_dir.path().join(".gitkeep"), b"").unwrap();
    assert_eq!(expertise_names(data_dir).await, Vec::<String>::new());

    let holder = TempDir::new().unwrap();
    let not_a_dir = holder.path().join("data");
    fs::write(&not_a_dir, b"I am a file").unwrap();
    let mut config = switchboard::config::Config::for_tests(not_a_dir.clone());
    config.http.bind = ([127, 0, 0, 1], 0).into();
    let error = switchboard::startup::Application::build(config).await.err().expect("refuses to start");
    assert!(format!("{error:#}").contains(not_a_dir.to_str().unwrap()), "{error:#}");
}

#[actix_rt::test]
async fn the_snapshot_endpoint_is_admin_only_and_reports_what_it_wrote() {
    let s = TestServer::start().await;
    let (_, token) = s.operator("ann", json!({})).await;
    s.visit(s.channel(&[], None).await, json!({})).await;
    assert_eq!(s.post("/api/v1/admin/snapshot", &token, json!({})).await.status, 403);
    let stats = s.post("/api/v1/admin/snapshot", &s.admin, json!({})).await.expect(200);
    assert_eq!(stats["conversations"], 1);
    assert!(stats["bytes"].as_u64().unwrap() > 0);
    let metrics = reqwest::get(s.url("/metrics")).await.unwrap().text().await.unwrap();
    let age: f64 = metrics.lines().find_map(|l| l.strip_prefix("switchboard_snapshot_age_seconds ")).unwrap().parse().unwrap();
    assert!(age < 5.0, "{age}");
}

/// A conversation the crash caught between its close and its archiving is
/// archived at the next start, and its id is never handed out again — even
/// when it was the highest (it was, until the crash test found it).
#[actix_rt::test]
async fn an_id_closed_but_not_yet_archived_is_never_reused() {
    use std::collections::BTreeSet;
    use switchboard::domain::conversation::{Conversation, Visitor};
    use switchboard::domain::visitor::VisitorContext;
    use switchboard::domain::{ChannelId, ConversationId};
    use switchboard::persist::records::ConversationV2;

    let data_dir = stopped_with_data().await;
    let visitor =
        Visitor { name: "Vera".into(), lang: None, country: None, key: None, previous_operator: None, context: VisitorContext::default() };
    let mut closed = Conversation::livechat(ConversationId(1000), ChannelId(1), visitor, BTreeSet::new(), None);
    closed.close().unwrap();
    let mut bytes = Vec::new();
    frame(&encode(&RecordV1::ConversationStartedV2(Box::new(ConversationV2::new(&closed, Some("t"))))), &mut bytes);
    let (_, segments) = files(data_dir.path());
    append(segments.last().unwrap(), &bytes);

    let mut s = TestServer::start_in(data_dir, |_| {}).await.expect("server starts");
    s.admin = s.login("admin", "admin-pass").await;
    let channel = s.channel(&[], None).await;
    let (id, _) = s.visit(channel, json!({})).await;
    assert!(id > 1000, "id {id} handed out again");
    assert_eq!(s.get("/api/v1/conversations/1000", &s.admin).await.expect(200)["status"], "closed");
}

/// Snapshots taken while conversations close and leave for the archive all
/// succeed, and a restart on them finds every conversation exactly once.
/// (Schemathesis once got a 503 here: an actor that retired mid-copy was taken
/// for a stopping server. That window is too narrow to hit on purpose over
/// HTTP; the unit test `a_conversation_that_retires_during_a_snapshot_is_left_out` pins it.)
#[actix_rt::test]
async fn snapshots_taken_while_conversations_retire_succeed() {
    const CHATS: usize = 200;
    let s = TestServer::start().await;
    let channel = s.channel(&[], None).await;
    let mut visitors = Vec::new();
    for i in 0..CHATS {
        let (id, token) = s.visit(channel, json!({})).await;
        s.post("/api/v1/visitor/messages", &token, json!({"body": format!("line {i}")})).await.expect(201);
        visitors.push((id, token));
    }
    let leaves = futures_util::future::join_all(
        visitors.iter().map(|(_, token)| async { s.post("/api/v1/visitor/leave", token, json!({})).await.expect(200) }),
    );
    let snapshots = async {
        let mut taken = 0;
        while taken < 1000 {
            let answer = s.post("/api/v1/admin/snapshot", &s.admin, json!({})).await;
            assert_eq!(answer.status, 200, "snapshot {taken} while conversations retire: {}", answer.body);
            taken += 1;
            if s.metrics_text().await.contains(&format!("switchboard_archived_total {CHATS}\n")) {
                break;
            }
        }
        taken
    };
    let (_, taken) = futures_util::join!(leaves, snapshots);
    assert!(taken > 0);
    s.archived(CHATS as u64).await;

    let s = s.restart().await;
    let mut found = s.history_ids("limit=100").await;
    found.sort_unstable();
    let expected: Vec<u64> = visitors.iter().map(|(id, _)| *id).collect();
    assert_eq!(found, expected);
    for (_, token) in &visitors {
        assert_eq!(s.visitor_view(token).await["status"], "closed");
    }
}
