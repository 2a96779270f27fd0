//! E-mail through a real SMTP dialogue (a local sink): new leads to the
//! channel's `notify_email`, transcripts to visitors, and a durable outbox that
//! waits for a server that is down, across a restart, sending each mail once.

use serde_json::json;
use switchboard::config::Config;
use switchboard::mail::MailConfig;

use crate::support::{free_port, SmtpSink, TestServer};

fn mail_through(sink_url: String) -> impl FnOnce(&mut Config) {
    move |config| config.mail = Some(MailConfig { url: sink_url, from: "Switchboard <switchboard@example.com>".into() })
}

/// A channel whose leads are e-mailed and nobody online to take its visitors.
async fn unattended_channel(s: &TestServer) -> u64 {
    let body = json!({"name": "Shop", "operator_ids": [], "notify_email": "team@example.com"});
    let channel = s.post("/api/v1/channels", &s.admin, body).await.expect(201);
    assert_eq!(channel["notify_email"], "team@example.com");
    channel["id"].as_u64().unwrap()
}

#[actix_rt::test]
async fn a_new_lead_is_mailed_to_its_channel_and_a_visitor_gets_their_transcript() {
    let sink = SmtpSink::start(0).await;
    let s = TestServer::start_with(mail_through(sink.url())).await;
    let channel = unattended_channel(&s).await;
    let (conversation, visitor) = s.visit(channel, json!({"visitor_name": "Vera", "email": "vera@example.com"})).await;
    s.post("/api/v1/visitor/messages", &visitor, json!({"body": "My parcel is late"})).await.expect(201);
    s.post("/api/v1/visitor/leave", &visitor, json!({})).await.expect(200);

    let lead_mail = &sink.wait_for(1).await[0];
    assert_eq!(lead_mail.to, ["team@example.com"]);
    assert!(lead_mail.from.contains("switchboard@example.com"), "{}", lead_mail.from);
    for expected in [
        "Subject: Missed chat on Shop: Vera",
        "From: Switchboard <switchboard@example.com>",
        "E-mail: vera@example.com",
        "My parcel is late",
        &format!("Conversation #{conversation}"),
    ] {
        assert!(lead_mail.data.contains(expected), "{expected:?} not in {}", lead_mail.data);
    }

    // The visitor asks for a copy: what they saw, never an internal note.
    let (ann, ann_token) = s.operator("ann", json!({})).await;
    let (_ann_ws, _) = s.agent(&ann_token).await;
    let served = s.channel(&[ann], None).await;
    let (second, visitor) = s.visit(served, json!({"visitor_name": "Vera"})).await;
    s.post(&format!("/api/v1/conversations/{second}/messages"), &ann_token, json!({"body": "Your refund is on its way"})).await.expect(201);
    s.post(&format!("/api/v1/conversations/{second}/notes"), &ann_token, json!({"body": "second late parcel this month"}))
        .await
        .expect(201);
    let queued = s.post("/api/v1/visitor/transcript", &visitor, json!({"email": "vera@example.com"})).await.expect(202);
    assert_eq!(queued["status"], "queued");
    let transcript = sink.wait_for(2).await[1].clone();
    assert_eq!(transcript.to, ["vera@example.com"]);
    assert!(
        transcript.data.contains("Subject: Your chat transcript") && transcript.data.contains("Your refund is on its way"),
        "{}",
        transcript.data
    );
    assert!(!transcript.data.contains("late parcel this month"), "a note reached the visitor: {}", transcript.data);
}

/// The SMTP server is down while leads come in and the server restarts: every
/// mail waits in the outbox and arrives once the SMTP server is back, once each.
#[actix_rt::test]
async fn mail_waits_for_a_down_smtp_server_across_a_restart() {
    let port = free_port();
    let url = format!("smtp://127.0.0.1:{port}");
    let s = TestServer::start_with(mail_through(url.clone())).await;
    let channel = unattended_channel(&s).await;
    for name in ["Ada", "Bea", "Cy"] {
        let (_, visitor) = s.visit(channel, json!({"visitor_name": name})).await;
        s.post("/api/v1/visitor/leave", &visitor, json!({})).await.expect(200);
    }
    s.archived(3).await;
    // Tried and refused (nothing listens), so retried later.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !s.metrics_text().await.lines().any(|l| l.starts_with("switchboard_mail_failures_total ") && !l.ends_with(" 0")) {
        assert!(std::time::Instant::now() < deadline, "the sender never tried");
        actix_rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let admin = s.admin.clone();
    let data_dir = s.stop().await;
    let mut s = TestServer::start_in(data_dir, mail_through(url)).await.expect("restarts");
    s.admin = admin;
    let sink = SmtpSink::start(port).await;
    let mails = sink.wait_for(3).await;
    let mut subjects: Vec<String> =
        mails.iter().filter_map(|m| m.data.lines().find(|l| l.starts_with("Subject:")).map(str::to_owned)).collect();
    subjects.sort();
    assert_eq!(subjects, ["Subject: Missed chat on Shop: Ada", "Subject: Missed chat on Shop: Bea", "Subject: Missed chat on Shop: Cy"]);
    actix_rt::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(sink.received().len(), 3, "a mail went out twice");
    assert_eq!(s.get("/api/v1/leads", &s.admin).await.expect(200).as_array().unwrap().len(), 3);
}

#[actix_rt::test]
async fn bad_mail_settings_are_refused() {
    let s = TestServer::start().await;
    let (_, visitor) = s.visit(s.channel(&[], None).await, json!({})).await;
    let refused = s.post("/api/v1/visitor/transcript", &visitor, json!({"email": "not-an-address"})).await.expect(400);
    assert!(refused["error"]["message"].as_str().unwrap().contains("email"), "{refused}");
    s.post("/api/v1/visitor/transcript", &visitor, json!({})).await.expect(400);
    let off = s.post("/api/v1/visitor/transcript", &visitor, json!({"email": "vera@example.com"})).await.expect(409);
    assert!(off["error"]["message"].as_str().unwrap().contains("no e-mail"), "{off}");
    let bad = s.post("/api/v1/channels", &s.admin, json!({"name": "X", "notify_email": "team at example"})).await.expect(400);
    assert!(bad["error"]["message"].as_str().unwrap().contains("notify_email"), "{bad}");
    let channel = s.channel(&[], None).await;
    let path = format!("/api/v1/channels/{channel}");
    s.patch(&path, &s.admin, json!({"notify_email": "@nowhere"})).await.expect(400);
    assert_eq!(s.patch(&path, &s.admin, json!({"notify_email": "team@example.com"})).await.expect(200)["notify_email"], "team@example.com");
    assert_eq!(s.patch(&path, &s.admin, json!({"notify_email": null})).await.expect(200)["notify_email"], json!(null));

    // An SMTP URL the server cannot use stops it at start, saying which flag is wrong.
    let dir = tempfile::TempDir::new().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["--bind", "127.0.0.1:0", "--smtp-url", "http://mail.example.com"])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .expect("the binary runs");
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("--smtp-url") && said.contains("not an SMTP URL"), "{said}");
}
