//! Routing beyond Odoo: expert wait, unanswered reassignment, offline grace,
//! and the routing report. Each option runs with a 1-second setting.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::TestServer;

async fn channel_with(s: &TestServer, operators: &[u64], options: Value) -> u64 {
    let mut body = json!({"name": "Options", "operator_ids": operators});
    for (k, v) in options.as_object().unwrap() {
        body[k] = v.clone();
    }
    s.post("/api/v1/channels", &s.admin, body).await.expect(201)["id"].as_u64().unwrap()
}

async fn assignment(s: &TestServer, conversation: u64) -> Value {
    s.conversation(conversation, &s.admin).await["assignment"].clone()
}

#[actix_rt::test]
async fn options_are_validated_and_shown() {
    let s = TestServer::start().await;
    let channel = channel_with(&s, &[], json!({"expert_wait_s": 30, "answer_timeout_s": 60, "offline_grace_s": 90})).await;
    let view = s.get(&format!("/api/v1/channels/{channel}"), &s.admin).await.expect(200);
    assert_eq!(
        (view["expert_wait_s"].clone(), view["answer_timeout_s"].clone(), view["offline_grace_s"].clone()),
        (json!(30), json!(60), json!(90))
    );
    let off = s.patch(&format!("/api/v1/channels/{channel}"), &s.admin, json!({"answer_timeout_s": null})).await.expect(200);
    assert_eq!(off["answer_timeout_s"], Value::Null);
    assert_eq!(off["expert_wait_s"], 30);
    let bad = s.patch(&format!("/api/v1/channels/{channel}"), &s.admin, json!({"offline_grace_s": 0})).await;
    assert_eq!(bad.status, 400);
    assert!(bad.body["error"]["message"].as_str().unwrap().contains("offline_grace_s"));
}

/// `routing_order: expertise_first` puts a holder of the wanted expertise
/// before a same-language operator without it (the default, Odoo's order,
/// does the opposite); it is shown, changed, validated and survives a restart.
#[actix_rt::test]
async fn expertise_first_reaches_a_holder_before_a_same_language_operator() {
    let s = TestServer::start().await;
    let technical = s.expertise("Technical").await;
    let (en, en_token) = s.operator("eddy", json!({"languages": ["en"]})).await;
    let (fr, fr_token) = s.operator("flo", json!({"languages": ["fr"], "expertise_ids": [technical]})).await;
    let (_en_ws, _) = s.agent(&en_token).await;
    let (_fr_ws, _) = s.agent(&fr_token).await;
    let odoo = channel_with(&s, &[en, fr], json!({})).await;
    assert_eq!(s.get(&format!("/api/v1/channels/{odoo}"), &s.admin).await.expect(200)["routing_order"], "odoo");
    let first = channel_with(&s, &[en, fr], json!({"routing_order": "expertise_first"})).await;
    let need = json!({"lang": "en", "expertise_ids": [technical]});
    let (by_odoo, _) = s.visit(odoo, need.clone()).await;
    let (by_expertise, _) = s.visit(first, need.clone()).await;
    let (a, b) = (assignment(&s, by_odoo).await, assignment(&s, by_expertise).await);
    assert_eq!((a["operator_id"].as_u64(), a["rule"].as_str()), (Some(en), Some("lang")));
    assert_eq!((b["operator_id"].as_u64(), b["rule"].as_str()), (Some(fr), Some("all_expertise")));
    let path = format!("/api/v1/channels/{odoo}");
    let bad = s.patch(&path, &s.admin, json!({"routing_order": "fastest"})).await;
    assert_eq!(bad.status, 400);
    assert!(bad.body["error"]["message"].as_str().unwrap().contains("routing_order"), "{:?}", bad.body);
    assert_eq!(s.patch(&path, &s.admin, json!({"routing_order": "expertise_first"})).await.expect(200)["routing_order"], "expertise_first");
    let s = s.restart().await;
    assert_eq!(s.get(&path, &s.admin).await.expect(200)["routing_order"], "expertise_first");
    assert_eq!(s.get(&format!("/api/v1/channels/{first}"), &s.admin).await.expect(200)["routing_order"], "expertise_first");
}

#[actix_rt::test]
async fn an_expert_wait_runs_out_or_an_expert_arrives_in_time() {
    let s = TestServer::start().await;
    let billing = s.expertise("Billing").await;
    let (generalist, g_token) = s.operator("gina", json!({})).await;
    let (expert, e_token) = s.operator("ezra", json!({"expertise_ids": [billing]})).await;
    let (_g_ws, _) = s.agent(&g_token).await;
    let channel = channel_with(&s, &[generalist, expert], json!({"expert_wait_s": 1})).await;

    // Nobody online holds Billing: the visitor waits, and sees their place.
    let (waiting, waiting_token) = s.visit(channel, json!({"expertise_ids": [billing]})).await;
    let view = s.visitor_view(&waiting_token).await;
    assert_eq!((view["status"].clone(), view["queue_position"].clone()), (json!("queued"), json!(1)));
    // A visitor wanting no expertise is not held up behind them.
    let (plain, _) = s.visit(channel, json!({})).await;
    assert_eq!(assignment(&s, plain).await["operator_id"], generalist);
    // After the wait, anyone may take them.
    let (mut widget, _) = s.widget(&waiting_token, None).await;
    widget.next_of("member_joined").await;
    let given = assignment(&s, waiting).await;
    assert_eq!((given["operator_id"].clone(), given["rule"].clone()), (json!(generalist), json!("expert_wait_expired")));

    // An expert coming online within the wait takes the visitor at once.
    let (in_time, _) = s.visit(channel, json!({"expertise_ids": [billing]})).await;
    let (mut e_ws, _) = s.agent(&e_token).await;
    let assigned = e_ws.next_of("assigned").await;
    assert_eq!(assigned["conversation"]["id"], in_time);
    assert_eq!(assigned["conversation"]["assignment"]["rule"], "all_expertise");
}

#[actix_rt::test]
async fn a_silent_operator_loses_the_conversation_but_one_who_answers_keeps_it() {
    let s = TestServer::start().await;
    let (ann, ann_token) = s.operator("ann", json!({})).await;
    let (bob, bob_token) = s.operator("bob", json!({})).await;
    let (mut ann_ws, _) = s.agent(&ann_token).await;
    let (mut bob_ws, _) = s.agent(&bob_token).await;
    let channel = channel_with(&s, &[ann, bob], json!({"answer_timeout_s": 1})).await;

    let (silent, _) = s.visit(channel, json!({})).await;
    assert_eq!(assignment(&s, silent).await["operator_id"], ann);
    let passed = bob_ws.next_where("the passed-on conversation", |f| f["type"] == "assigned" && f["conversation"]["id"] == silent).await;
    assert_eq!(passed["conversation"]["assignment"]["rule"], "reassigned");
    let left = ann_ws.next_where("ann taken off", |f| f["type"] == "member_left" && f["user"]["id"] == ann).await;
    assert_eq!(left["reason"], "unanswered");
    let view = s.conversation(silent, &s.admin).await;
    assert_eq!(view["member_ids"], json!([bob]));

    // Bob now answers his next visitor in time: nothing moves.
    let (answered, _) = s.visit(channel, json!({})).await;
    let owner = assignment(&s, answered).await["operator_id"].as_u64().unwrap();
    let token = if owner == ann { &ann_token } else { &bob_token };
    s.post(&format!("/api/v1/conversations/{answered}/messages"), token, json!({"body": "Hello!"})).await.expect(201);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = assignment(&s, answered).await;
    assert_eq!((after["operator_id"].as_u64().unwrap(), after["rule"].clone()), (owner, json!("any_operator")));
}

#[actix_rt::test]
async fn an_operator_gone_past_the_grace_loses_their_chats_but_a_quick_reconnect_changes_nothing() {
    let s = TestServer::start().await;
    let (ann, ann_token) = s.operator("ann", json!({})).await;
    let (bob, bob_token) = s.operator("bob", json!({})).await;
    let (ann_ws, _) = s.agent(&ann_token).await;
    let (mut bob_ws, _) = s.agent(&bob_token).await;
    let channel = channel_with(&s, &[ann, bob], json!({"offline_grace_s": 1})).await;
    let (first, _) = s.visit(channel, json!({})).await;
    assert_eq!(assignment(&s, first).await["operator_id"], ann);

    // A quick reconnect within the grace: nothing moves.
    ann_ws.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (ann_ws, _) = s.agent(&ann_token).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(assignment(&s, first).await["operator_id"], ann);

    // Gone for good: past the grace, bob takes over.
    ann_ws.close().await;
    let passed = bob_ws.next_where("the passed-on conversation", |f| f["type"] == "assigned" && f["conversation"]["id"] == first).await;
    assert_eq!(passed["conversation"]["assignment"]["rule"], "reassigned");
    assert_eq!(s.conversation(first, &s.admin).await["member_ids"], json!([bob]));
}

fn seconds_between(later: &Value, earlier: &Value) -> f64 {
    let parse = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    (parse(later) - parse(earlier)).num_milliseconds() as f64 / 1000.0
}

/// CSV rows by (section, id) → column → value.
fn parse_csv(text: &str) -> std::collections::HashMap<(String, String), std::collections::HashMap<String, String>> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let mut rows = std::collections::HashMap::new();
    for line in lines {
        // The tests' names have no commas, so quotes are all there is to strip.
        let cells: Vec<String> = line.split(',').map(|c| c.trim_matches('"').to_owned()).collect();
        assert_eq!(cells.len(), header.len(), "{line}");
        let row: std::collections::HashMap<String, String> = header.iter().map(|h| h.to_string()).zip(cells.iter().cloned()).collect();
        rows.insert((cells[0].clone(), cells[1].clone()), row);
    }
    rows
}

#[actix_rt::test]
async fn the_routing_report_counts_a_scripted_day_and_csv_agrees_with_json() {
    let s = TestServer::start().await;
    let billing = s.expertise("Billing").await;
    let (expert, e_token) = s.operator("ezra", json!({"expertise_ids": [billing]})).await;
    let (generalist, g_token) = s.operator("gina", json!({})).await;
    let (_e_ws, _) = s.agent(&e_token).await;
    let (_g_ws, _) = s.agent(&g_token).await;
    let channel = channel_with(&s, &[expert, generalist], json!({"max_sessions": 1})).await;

    // 1: Billing, to the expert, who replies and later asks for help; gina joins.
    let (one, _) = s.visit(channel, json!({"expertise_ids": [billing]})).await;
    s.post(&format!("/api/v1/conversations/{one}/messages"), &e_token, json!({"body": "Hi"})).await.expect(201);
    // 2: Billing, the expert is full: gina, who replies.
    let (two, _) = s.visit(channel, json!({"expertise_ids": [billing]})).await;
    s.post(&format!("/api/v1/conversations/{two}/messages"), &g_token, json!({"body": "Hello"})).await.expect(201);
    // 3: Billing, everyone full: queued, then the visitor gives up.
    let (_, three_token) = s.visit(channel, json!({"expertise_ids": [billing]})).await;
    s.post("/api/v1/visitor/leave", &three_token, json!({})).await.expect(200);
    // 4: no expertise wanted; leaves while queued too.
    let (_, four_token) = s.visit(channel, json!({})).await;
    s.post("/api/v1/visitor/leave", &four_token, json!({})).await.expect(200);
    s.put(&format!("/api/v1/conversations/{one}/status"), &e_token, json!({"status": "need_help"})).await.expect(200);
    s.post(&format!("/api/v1/conversations/{one}/join"), &g_token, json!({})).await.expect(200);

    // The expected figures, from the conversations themselves.
    let (c1, c2) = (s.conversation(one, &s.admin).await, s.conversation(two, &s.admin).await);
    let to_operator =
        [seconds_between(&c1["assignment"]["at"], &c1["created_at"]), seconds_between(&c2["assignment"]["at"], &c2["created_at"])];
    let reply = |c: &Value| {
        let first = c["messages"].as_array().unwrap().iter().find(|m| m["author"]["kind"] == "operator").unwrap();
        seconds_between(&first["created_at"], &c["assignment"]["at"])
    };
    let to_reply = [reply(&c1), reply(&c2)];
    let span = |v: [f64; 2]| (v[0].min(v[1]), v[0].max(v[1]));

    let report = s.get(&format!("/api/v1/reports/routing?channel_id={channel}"), &s.admin).await.expect(200);
    assert_eq!(report["conversations"], 4);
    let row = report["expertise"].as_array().unwrap().iter().find(|r| r["expertise_id"] == billing).unwrap().clone();
    assert_eq!(row["conversations"], 3);
    assert_eq!(row["served"], 2);
    assert_eq!(row["served_by_expert"], 1);
    assert_eq!(row["served_by_expert_share"], 0.5);
    assert_eq!(row["abandoned_in_queue"], 1);
    assert_eq!(row["need_help_requests"], 1);
    // Nearest rank over two samples: p50 is the smaller, p90 the larger.
    let close = |got: &Value, want: f64| assert!((got.as_f64().unwrap() - want).abs() < 0.002, "{got} vs {want}");
    close(&row["time_to_operator_p50_s"], span(to_operator).0);
    close(&row["time_to_operator_p90_s"], span(to_operator).1);
    close(&row["time_to_first_reply_p50_s"], span(to_reply).0);
    close(&row["time_to_first_reply_p90_s"], span(to_reply).1);
    assert!(row["time_to_join_p50_s"].as_f64().unwrap() >= 0.0);
    let operators = report["operators"].as_array().unwrap();
    let of = |id: u64| operators.iter().find(|o| o["operator_id"] == id).unwrap().clone();
    assert_eq!((of(expert)["assignments"].clone(), of(expert)["active_chats"].clone()), (json!(1), json!(1)));
    assert_eq!((of(generalist)["assignments"].clone(), of(generalist)["active_chats"].clone()), (json!(1), json!(2)));
    assert_eq!(of(generalist)["reassignments"], 0);

    // Nothing before the conversations were created, for another channel, or after `to`.
    let later = s.get("/api/v1/reports/routing?from=2999-01-01T00:00:00Z", &s.admin).await.expect(200);
    assert_eq!(later["conversations"], 0);
    assert_eq!(s.get("/api/v1/reports/routing?from=yesterday", &s.admin).await.status, 400);
    for bad in ["format=xml", "channel_id=abc", "channel_id=0", "channel_id=9223372036854775808", "to=2026-13-01T00:00:00Z"] {
        let res = s.get(&format!("/api/v1/reports/routing?{bad}"), &s.admin).await;
        assert_eq!(res.status, 400, "{bad}");
        assert_eq!(res.error_code(), "bad_request");
    }
    let (_, user) = s.operator("ursula", json!({})).await;
    assert_eq!(s.get("/api/v1/reports/routing", &user).await.status, 403);

    // CSV, by parameter and by Accept, says the same.
    let csv = reqwest::Client::new()
        .get(s.url(&format!("/api/v1/reports/routing?channel_id={channel}")))
        .bearer_auth(&s.admin)
        .header("Accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert!(csv.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let rows = parse_csv(&csv.text().await.unwrap());
    let by_param = reqwest::Client::new()
        .get(s.url(&format!("/api/v1/reports/routing?channel_id={channel}&format=csv")))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(parse_csv(&by_param.text().await.unwrap()), rows);
    for e in report["expertise"].as_array().unwrap() {
        let row = &rows[&("expertise".to_owned(), e["expertise_id"].to_string())];
        for (key, value) in e.as_object().unwrap() {
            let csv_value = if key == "expertise_id" { &row["id"] } else { &row[key.as_str()] };
            match value {
                Value::Null => assert_eq!(csv_value, "", "{key}"),
                Value::String(text) => assert_eq!(csv_value, text, "{key}"),
                Value::Number(n) if n.is_f64() => close(value, csv_value.parse().unwrap()),
                other => assert_eq!(csv_value, &other.to_string(), "{key}"),
            }
        }
    }
    for o in operators {
        let row = &rows[&("operator".to_owned(), o["operator_id"].to_string())];
        for key in ["assignments", "reassignments", "active_chats"] {
            assert_eq!(row[key], o[key].to_string(), "{key}");
        }
        assert_eq!(row["name"], o["name"].as_str().unwrap());
    }
}
