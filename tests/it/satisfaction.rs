//! Satisfaction ratings: once per ended conversation, by HTTP or socket; the
//! members hear of it, history and the routing report count it.

use serde_json::json;

use crate::support::{Ended, TestServer};

/// Rated over HTTP after the operator closed it: the visitor's `closed` says it may,
/// the rating is stored once, survives a restart and shows in history and the report.
#[actix_rt::test]
async fn a_visitor_rates_an_ended_chat_once() {
    let s = TestServer::start().await;
    let billing = s.expertise("Billing").await;
    let (ann, ann_token) = s.operator("ann", json!({"expertise_ids": [billing]})).await;
    let (mut ann_ws, _) = s.agent(&ann_token).await;
    let channel = s.channel(&[ann], None).await;
    let (conversation, visitor) = s.visit(channel, json!({"visitor_name": "Vera", "expertise_ids": [billing]})).await;
    ann_ws.next_of("assigned").await;
    let (mut widget, _) = s.widget(&visitor, None).await;
    let early = s.post("/api/v1/visitor/rating", &visitor, json!({"score": 5})).await.expect(409);
    assert_eq!(early["error"]["code"], "conflict");
    s.post(&format!("/api/v1/conversations/{conversation}/close"), &ann_token, json!({})).await.expect(200);
    assert_eq!(widget.next_of("closed").await["can_rate"], true);

    let rating = s.post("/api/v1/visitor/rating", &visitor, json!({"score": 5, "comment": " Quick and kind "})).await.expect(201);
    assert_eq!((rating["score"].as_u64(), rating["comment"].as_str()), (Some(5), Some("Quick and kind")));
    assert!(rating["at"].is_string());
    let told = ann_ws.next_of("rating").await;
    assert_eq!((told["conversation_id"].as_u64(), told["rating"]["score"].as_u64()), (Some(conversation), Some(5)));
    assert_eq!(s.post("/api/v1/visitor/rating", &visitor, json!({"score": 1})).await.expect(409)["error"]["code"], "conflict");

    let s = s.restart().await;
    let ann_token = s.login("ann", "pw").await;
    assert_eq!(s.conversation(conversation, &ann_token).await["rating"]["comment"], "Quick and kind");
    let rated = s.get("/api/v1/history?rating=5", &ann_token).await.expect(200);
    assert_eq!((rated["items"][0]["id"].as_u64(), rated["items"][0]["rating"].as_u64()), (Some(conversation), Some(5)));
    assert_eq!(s.get("/api/v1/history?rating=1", &ann_token).await.expect(200)["items"], json!([]));
    let report = s.get("/api/v1/reports/routing", &s.admin).await.expect(200);
    let row = report["expertise"].as_array().unwrap().iter().find(|e| e["expertise_id"] == billing).unwrap().clone();
    assert_eq!((row["ratings"].as_u64(), row["rating_5_share"].as_f64(), row["rating_1_share"].as_f64()), (Some(1), Some(1.0), Some(0.0)));
    let ann_row = report["operators"].as_array().unwrap().iter().find(|o| o["operator_id"] == ann).unwrap().clone();
    assert_eq!(ann_row["ratings"], 1);
    let (status, _, csv) = s.download("/api/v1/reports/routing?format=csv", &s.admin).await;
    assert_eq!(status, 200);
    assert!(csv.lines().next().unwrap().ends_with(",ratings,rating_1_share,rating_3_share,rating_5_share"), "{csv}");
}

/// Over the socket, after the visitor left; the HTTP rating after it is a second one.
#[actix_rt::test]
async fn a_visitor_rates_over_the_socket() {
    let s = TestServer::start().await;
    let channel = s.channel(&[], None).await;
    let (_, visitor) = s.visit(channel, json!({"visitor_name": "Vera"})).await;
    let (mut widget, _) = s.widget(&visitor, None).await;
    s.post("/api/v1/visitor/leave", &visitor, json!({})).await.expect(200);
    assert_eq!(widget.next_of("closed").await["can_rate"], true);
    widget.send(json!({"type": "rate", "ref": "r", "score": 1, "comment": "Nobody answered"})).await;
    let ack = widget.next_where("ack r", |f| f["ref"] == "r").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    s.post("/api/v1/visitor/rating", &visitor, json!({"score": 3})).await.expect(409);
    let rated = s.get("/api/v1/history?rating=1", &s.admin).await.expect(200);
    assert_eq!(rated["items"].as_array().unwrap().len(), 1);
}

/// The visitor's socket outlives the conversation's time in memory (API.md
/// v1.2): 3 s after `closed`, archived by then, it is still open and takes a
/// `rate`; a socket opened afterwards on the archived conversation too.
#[actix_rt::test]
async fn a_visitor_socket_stays_open_after_closed_and_rates_later() {
    let s = TestServer::start().await;
    let (ann, ann_token) = s.operator("ann", json!({})).await;
    let (mut ann_ws, _) = s.agent(&ann_token).await;
    let channel = s.channel(&[ann], None).await;
    let (conversation, visitor) = s.visit(channel, json!({"visitor_name": "Vera", "visitor_key": "rates-later"})).await;
    ann_ws.next_of("assigned").await;
    let (mut widget, _) = s.widget(&visitor, None).await;
    s.post(&format!("/api/v1/conversations/{conversation}/close"), &ann_token, json!({})).await.expect(200);
    widget.next_of("closed").await;
    s.archived(1).await;
    let (mut late, hello) = s.widget(&visitor, None).await;
    assert_eq!(hello["conversation"]["status"], "closed");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    widget.send(json!({"type": "rate", "ref": "r", "score": 5, "comment": "Thanks"})).await;
    assert_eq!(widget.next_where("ack r", |f| f["ref"] == "r").await["type"], "ack");
    late.send(json!({"type": "rate", "ref": "again", "score": 1})).await;
    assert_eq!(late.next_where("error again", |f| f["ref"] == "again").await["error"]["code"], "conflict");
    assert_eq!(s.conversation(conversation, &ann_token).await["rating"]["score"], 5);
    // An erasure closes both, saying why.
    s.post(&format!("/api/v1/conversations/{conversation}/close"), &ann_token, json!({})).await.expect(409);
    s.call(reqwest::Method::DELETE, "/api/v1/visitors/rates-later", Some(&s.admin), None).await.expect(200);
    for socket in [&mut widget, &mut late] {
        match socket.ended().await {
            Ended::Closed(Some(frame)) => assert_eq!(frame.reason, "visitor erased"),
            other => panic!("closed without a reason: {other:?}"),
        }
    }
}

/// Scores other than 1, 3, 5, long comments and callers other than the visitor are refused.
#[actix_rt::test]
async fn bad_ratings_are_refused() {
    let s = TestServer::start().await;
    let channel = s.channel(&[], None).await;
    let (_, visitor) = s.visit(channel, json!({})).await;
    s.post("/api/v1/visitor/leave", &visitor, json!({})).await.expect(200);
    for (body, field) in [
        (json!({"score": 2}), "score"),
        (json!({"score": 0}), "score"),
        (json!({"score": "5"}), "score"),
        (json!({}), "score"),
        (json!({"score": 5, "comment": "x".repeat(1001)}), "comment"),
    ] {
        let res = s.post("/api/v1/visitor/rating", &visitor, body.clone()).await;
        assert_eq!(res.status, 400, "{body}: {res:?}");
        assert!(res.body["error"]["message"].as_str().unwrap().contains(field), "{body}: {res:?}");
    }
    s.post("/api/v1/visitor/rating", &s.admin, json!({"score": 5})).await.expect(403);
    s.call(reqwest::Method::POST, "/api/v1/visitor/rating", None, Some(json!({"score": 5}))).await.expect(401);
    s.post("/api/v1/visitor/rating", &visitor, json!({"score": 3, "comment": "   "})).await.expect(201);
}
