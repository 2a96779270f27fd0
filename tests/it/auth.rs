//! Login, logout, throttling.

use reqwest::Method;
use serde_json::json;

use crate::support::TestServer;

/// A login returns a working token and the user; logout revokes exactly that token.
#[actix_rt::test]
async fn login_and_logout() {
    let s = TestServer::start().await;
    s.operator("ann", json!({"name": "Ann"})).await;
    let res = s.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"login": "ann", "password": "pw"}))).await.expect(200);
    assert_eq!(res["user"]["login"], "ann");
    assert_eq!(res["user"]["role"], "user");
    let token = res["token"].as_str().unwrap();
    assert!(token.len() >= 32);
    let other = s.login("ann", "pw").await;
    s.get("/api/v1/me", token).await.expect(200);
    let out = s.call(Method::POST, "/api/v1/auth/logout", Some(token), None).await;
    assert_eq!(out.status, 204);
    assert_eq!(s.get("/api/v1/me", token).await.expect(401)["error"]["code"], "unauthorized");
    s.get("/api/v1/me", &other).await.expect(200);
}

/// Bad credentials get the same 401 whether or not the login exists; repeated failures get 429.
#[actix_rt::test]
async fn bad_credentials_are_indistinguishable_and_throttled() {
    let s = TestServer::start().await;
    s.operator("ann", json!({})).await;
    let wrong = s.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"login": "ann", "password": "nope"}))).await;
    let unknown = s.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"login": "ghost", "password": "nope"}))).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(unknown.status, 401);
    assert_eq!(wrong.body, unknown.body);
    for _ in 0..4 {
        s.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"login": "ann", "password": "nope"}))).await.expect(401);
    }
    let throttled = s.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"login": "ann", "password": "pw"}))).await;
    assert_eq!(throttled.status, 429);
    assert_eq!(throttled.error_code(), "too_many_requests");
}

/// A password change through the admin takes effect at once.
#[actix_rt::test]
async fn an_admin_can_reset_a_password() {
    let s = TestServer::start().await;
    let (ann, _) = s.operator("ann", json!({})).await;
    s.patch(&format!("/api/v1/users/{ann}"), &s.admin, json!({"password": "n3w"})).await.expect(200);
    s.login("ann", "n3w").await;
    s.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"login": "ann", "password": "pw"}))).await.expect(401);
}
