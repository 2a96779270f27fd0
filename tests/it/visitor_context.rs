//! Visitor context: what the widget tells about the visitor, pages as they
//! navigate, what the chatbot learns — seen by operators, never by the visitor.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::TestServer;

fn context_session() -> Value {
    json!({
        "visitor_name": "Vera",
        "visitor_key": "vera-key",
        "email": "vera@example.com",
        "page_url": "https://shop.example/pricing",
        "page_title": "Pricing",
        "referrer": "https://search.example/?q=shop",
        "timezone": "Europe/Brussels",
    })
}

/// Everything the session named, the `User-Agent`, and each page opened since:
/// operators see it live and after a restart and once archived; the visitor's view has none of it.
#[actix_rt::test]
async fn operators_see_the_visitors_context_and_the_visitor_does_not() {
    let s = TestServer::start().await;
    let (ann, ann_token) = s.operator("ann", json!({})).await;
    let (mut ann_ws, _) = s.agent(&ann_token).await;
    let channel = s.channel(&[ann], None).await;
    let res = reqwest::Client::new()
        .post(s.url(&format!("/api/v1/channels/{channel}/sessions")))
        .header("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0")
        .json(&context_session())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let opened: Value = res.json().await.unwrap();
    let (conversation, visitor) = (opened["conversation_id"].as_u64().unwrap(), opened["visitor_token"].as_str().unwrap().to_owned());
    let assigned = ann_ws.next_of("assigned").await;
    let seen = &assigned["conversation"]["visitor"];
    assert_eq!(seen["email"], "vera@example.com");
    assert_eq!(seen["visitor_key"], "vera-key");
    assert_eq!(seen["page_url"], "https://shop.example/pricing");
    assert_eq!(seen["page_title"], "Pricing");
    assert_eq!(seen["referrer"], "https://search.example/?q=shop");
    assert_eq!(seen["timezone"], "Europe/Brussels");
    assert_eq!(seen["user_agent"], "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0");
    assert_eq!(seen["pages"].as_array().unwrap().len(), 1);

    // Navigation over HTTP and over the socket; members hear of each.
    s.post("/api/v1/visitor/page", &visitor, json!({"url": "https://shop.example/checkout", "title": "Checkout"})).await.expect(204);
    let event = ann_ws.next_of("visitor").await;
    assert_eq!(event["conversation_id"], conversation);
    assert_eq!(event["visitor"]["page_url"], "https://shop.example/checkout");
    let (mut widget, _) = s.widget(&visitor, None).await;
    widget.send(json!({"type": "page", "ref": "p", "url": "https://shop.example/help", "title": "Help"})).await;
    widget.next_where("ack p", |f| f["type"] == "ack" && f["ref"] == "p").await;
    assert_eq!(ann_ws.next_of("visitor").await["visitor"]["pages"].as_array().unwrap().len(), 3);
    for i in 0..22 {
        s.post("/api/v1/visitor/page", &visitor, json!({"url": format!("https://shop.example/p/{i}")})).await.expect(204);
    }
    let pages = s.conversation(conversation, &ann_token).await["visitor"]["pages"].clone();
    assert_eq!(pages.as_array().unwrap().len(), 20, "the last 20 are kept");
    assert_eq!(pages[19]["url"], "https://shop.example/p/21");
    assert!(pages[19]["at"].is_string());

    let own = s.visitor_view(&visitor).await.to_string();
    for private in ["vera@example.com", "Firefox", "Europe/Brussels", "shop.example"] {
        assert!(!own.contains(private), "the visitor's view carries {private}: {own}");
    }

    let s = s.restart().await;
    let ann_token = s.login("ann", "pw").await;
    let after = s.conversation(conversation, &ann_token).await["visitor"].clone();
    assert_eq!((after["email"].as_str(), after["pages"].as_array().unwrap().len()), (Some("vera@example.com"), 20));
    s.post(&format!("/api/v1/conversations/{conversation}/close"), &ann_token, json!({})).await.expect(200);
    s.archived(1).await;
    let archived = s.conversation(conversation, &ann_token).await["visitor"].clone();
    assert_eq!((archived["email"].as_str(), archived["timezone"].as_str()), (Some("vera@example.com"), Some("Europe/Brussels")));
    let found = s.get("/api/v1/history?q=vera%40example.com", &ann_token).await.expect(200);
    assert_eq!(found["items"][0]["id"], conversation, "found by e-mail address: {found}");
    assert_eq!(found["items"][0]["visitor_email"], "vera@example.com");
    s.post("/api/v1/visitor/page", &visitor, json!({"url": "https://shop.example/late"})).await.expect(409);
}

/// An answer to the chatbot's e-mail or phone question fills the visitor's context.
#[actix_rt::test]
async fn the_chatbot_fills_in_email_and_phone() {
    let s = TestServer::start().await;
    let script = json!({"title": "Contact", "steps": [
        {"id": 1, "type": "question_email", "message": "Your e-mail?"},
        {"id": 2, "type": "question_phone", "message": "Your phone?"},
        {"id": 3, "type": "text", "message": "Thanks!"},
    ]});
    let chatbot = s.post("/api/v1/chatbots", &s.admin, script).await.expect(201)["id"].as_u64().unwrap();
    let channel =
        s.post("/api/v1/channels", &s.admin, json!({"name": "Site", "chatbot_id": chatbot})).await.expect(201)["id"].as_u64().unwrap();
    let (conversation, visitor) = s.visit(channel, json!({"visitor_name": "Vera"})).await;
    for answer in ["vera@example.com", "+32 470 12 34 56"] {
        s.post("/api/v1/visitor/messages", &visitor, json!({"body": answer})).await.expect(201);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let seen = s.conversation(conversation, &s.admin).await["visitor"].clone();
        if seen["phone"] == "+32 470 12 34 56" {
            assert_eq!(seen["email"], "vera@example.com");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the phone number never reached the context: {seen}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Each field is checked and named when wrong; pages only from the conversation's visitor.
#[actix_rt::test]
async fn bad_context_is_refused_with_the_field_named() {
    let s = TestServer::start().await;
    let channel = s.channel(&[], None).await;
    let path = format!("/api/v1/channels/{channel}/sessions");
    for (field, value) in [
        ("email", json!("not-an-address")),
        ("page_url", json!("javascript:alert(1)")),
        ("page_url", json!("https://shop.example/a b")),
        ("referrer", json!("ftp://files.example")),
        ("timezone", json!("Mars/Olympus Mons")),
        ("page_title", json!("t".repeat(201))),
        ("page_url", json!(5)),
    ] {
        let res = s.call(reqwest::Method::POST, &path, None, Some(json!({ field: value }))).await;
        assert_eq!(res.status, 400, "{field}={value}: {res:?}");
        assert!(res.body["error"]["message"].as_str().unwrap().contains(field), "{field}: {res:?}");
    }
    let (_, visitor) = s.visit(channel, json!({})).await;
    s.post("/api/v1/visitor/page", &visitor, json!({"title": "no url"})).await.expect(400);
    s.post("/api/v1/visitor/page", &visitor, json!({"url": "notaurl"})).await.expect(400);
    s.post("/api/v1/visitor/page", &s.admin, json!({"url": "https://shop.example/"})).await.expect(403);
    s.call(reqwest::Method::POST, "/api/v1/visitor/page", None, Some(json!({"url": "https://shop.example/"}))).await.expect(401);
}
