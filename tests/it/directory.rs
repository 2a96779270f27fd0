//! Users, expertise and channels: the admin's records and each operator's preferences.

use reqwest::Method;
use serde_json::json;

use crate::support::TestServer;

/// An operator's expertise and the expertise's `operator_ids` are one relation seen from both sides.
#[actix_rt::test]
async fn expertise_and_operators_are_one_relation() {
    let s = TestServer::start().await;
    let (ann, ann_token) = s.operator("ann", json!({})).await;
    let (bob, _) = s.operator("bob", json!({})).await;
    let billing = s.post("/api/v1/expertise", &s.admin, json!({"name": "Billing", "operator_ids": [ann]})).await.expect(201);
    let id = billing["id"].as_u64().unwrap();
    assert_eq!(billing["operator_ids"], json!([ann]));
    assert_eq!(s.get(&format!("/api/v1/users/{ann}"), &s.admin).await.expect(200)["expertise_ids"], json!([id]));
    // Self-service from the other side...
    let me = s
        .patch("/api/v1/me/preferences", &ann_token, json!({"expertise_ids": [], "languages": ["fr", "EN"], "country": "be"}))
        .await
        .expect(200);
    assert_eq!(me["expertise_ids"], json!([]));
    assert_eq!(me["languages"], json!(["fr", "en"]));
    assert_eq!(me["country"], "BE");
    assert_eq!(s.get(&format!("/api/v1/expertise/{id}"), &s.admin).await.expect(200)["operator_ids"], json!([]));
    // ...and from the admin's user page.
    s.patch(&format!("/api/v1/users/{bob}"), &s.admin, json!({"expertise_ids": [id]})).await.expect(200);
    let listed = s.get("/api/v1/expertise", &ann_token).await.expect(200);
    assert_eq!(listed, json!([{"id": id, "name": "Billing", "operator_ids": [bob]}]));
    // Deleting removes it from every operator.
    assert_eq!(s.call(Method::DELETE, &format!("/api/v1/expertise/{id}"), Some(&s.admin), None).await.status, 204);
    assert_eq!(s.get(&format!("/api/v1/users/{bob}"), &s.admin).await.expect(200)["expertise_ids"], json!([]));
    s.get(&format!("/api/v1/expertise/{id}"), &s.admin).await.expect(404);
}

/// Renaming follows the same uniqueness rule; a user cannot change expertise.
#[actix_rt::test]
async fn expertise_names_stay_unique_and_users_only_read() {
    let s = TestServer::start().await;
    let (_, ann_token) = s.operator("ann", json!({})).await;
    let billing = s.expertise("Billing").await;
    let returns = s.expertise("Returns").await;
    s.patch(&format!("/api/v1/expertise/{returns}"), &s.admin, json!({"name": "billing"})).await.expect(409);
    s.patch(&format!("/api/v1/expertise/{billing}"), &s.admin, json!({"name": "BILLING"})).await.expect(200);
    s.post("/api/v1/expertise", &ann_token, json!({"name": "Sneaky"})).await.expect(403);
    s.patch(&format!("/api/v1/expertise/{billing}"), &ann_token, json!({"operator_ids": []})).await.expect(403);
    assert_eq!(s.get("/api/v1/expertise", &ann_token).await.expect(200).as_array().unwrap().len(), 2);
}

/// Deleting an expertise removes it from the conversations that wanted it.
#[actix_rt::test]
async fn a_deleted_expertise_leaves_conversations() {
    let s = TestServer::start().await;
    let billing = s.expertise("Billing").await;
    let channel = s.channel(&[], None).await;
    let (conversation, _) = s.visit(channel, json!({"expertise_ids": [billing]})).await;
    assert_eq!(s.conversation(conversation, &s.admin).await["expertise_ids"], json!([billing]));
    s.call(Method::DELETE, &format!("/api/v1/expertise/{billing}"), Some(&s.admin), None).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while s.conversation(conversation, &s.admin).await["expertise_ids"] != json!([]) {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Users are created with a role, languages and country; channels hold operators and a capacity.
#[actix_rt::test]
async fn users_and_channels_round_trip() {
    let s = TestServer::start().await;
    let created = s
        .post(
            "/api/v1/users",
            &s.admin,
            json!({"login": "zoe", "name": "Zoé", "password": "pw", "role": "admin", "languages": ["nl"], "country": "NL"}),
        )
        .await
        .expect(201);
    assert_eq!(created["role"], "admin");
    assert_eq!(created["presence"], "offline");
    assert_eq!(created["active_chats"], 0);
    assert!(created.get("password").is_none() && created.get("password_hash").is_none());
    let zoe = created["id"].as_u64().unwrap();
    let defaulted = s.post("/api/v1/users", &s.admin, json!({"login": "yan", "name": "Yan", "password": "pw"})).await.expect(201);
    assert_eq!(defaulted["role"], "user", "role defaults to user");
    let cleared = s.patch(&format!("/api/v1/users/{zoe}"), &s.admin, json!({"country": null})).await.expect(200);
    assert_eq!(cleared["country"], serde_json::Value::Null);
    let channel = s.post("/api/v1/channels", &s.admin, json!({"name": "Shop", "operator_ids": [zoe], "max_sessions": 2})).await.expect(201);
    assert_eq!(channel["operator_ids"], json!([zoe]));
    assert_eq!(channel["max_sessions"], 2);
    let id = channel["id"].as_u64().unwrap();
    let unlimited = s.patch(&format!("/api/v1/channels/{id}"), &s.admin, json!({"max_sessions": null})).await.expect(200);
    assert_eq!(unlimited["max_sessions"], serde_json::Value::Null);
    assert_eq!(s.call(Method::DELETE, &format!("/api/v1/channels/{id}"), Some(&s.admin), None).await.status, 204);
    s.call(Method::POST, &format!("/api/v1/channels/{id}/sessions"), None, Some(json!({}))).await.expect(404);
}
