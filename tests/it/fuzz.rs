//! API fuzzing: schemathesis (PyPI) against `/api/openapi.json`, once as an
//! admin and once as a plain operator. What it checks and each allowance it is
//! given, with the reason: `tests/schemathesis/schemathesis.toml`.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::json;

use crate::support::{budget, TestServer};

fn schemathesis_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis")
}

fn installed() -> bool {
    Command::new("st").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// Runs `st run` on the blocking pool, so the in-process server keeps
/// serving: `examples` per operation and phase, and `seconds` for the whole
/// run — schemathesis repeats fuzzing and stateful testing until that time is
/// spent, so the time is what bounds it (and its own CPU is the cost: the
/// server idles at 9 %).
async fn st_run(s: &TestServer, env: Vec<(&'static str, String)>, examples: usize, seconds: usize, extra: &[&str]) -> Output {
    let (examples, seconds) = (examples.max(1).to_string(), seconds.max(1).to_string());
    let mut cmd = Command::new("st");
    cmd.current_dir(schemathesis_dir())
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .envs(env)
        .args(["--config-file", "schemathesis.toml", "run", "--max-time", &seconds, "--max-examples", &examples, "--url", &s.url("")])
        .arg(s.url("/api/openapi.json"))
        .args(extra);
    tokio::task::spawn_blocking(move || cmd.output().expect("st runs")).await.expect("st finished")
}

#[track_caller]
fn assert_clean(who: &str, out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "schemathesis as {who} found problems:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("Coverage") && stdout.contains("Fuzzing"), "schemathesis as {who} ran no phase:\n{stdout}");
}

#[actix_rt::test]
async fn schemathesis_finds_no_undocumented_behaviour() {
    if !installed() {
        assert!(std::env::var_os("CI").is_none(), "CI must run schemathesis: pip install schemathesis (see .ci/run)");
        eprintln!("SKIPPED schemathesis: `st` is not installed (pip install schemathesis)");
        return;
    }
    let s = TestServer::start().await;
    // Something for every resource to find: expertise, operators, a channel with a chatbot, a visitor.
    let billing = s.expertise("Billing").await;
    let (fuzzer, admin_token) = s.operator("fuzzer", json!({"role": "admin", "expertise_ids": [billing]})).await;
    let (spare, _) = s.operator("spare", json!({"languages": ["fr"]})).await;
    let (plain, user_token) = s.operator("plain", json!({"expertise_ids": [billing]})).await;
    let script = json!({"title": "Bot", "steps": [
        {"type": "question_selection", "message": "Topic?", "answers": [{"label": "Billing"}]},
        {"type": "forward_operator", "message": "One moment", "expertise_ids": [billing]},
    ]});
    let chatbot = s.post("/api/v1/chatbots", &s.admin, script).await.expect(201)["id"].as_u64().unwrap();
    let body = json!({"name": "Website", "operator_ids": [fuzzer, spare], "chatbot_id": chatbot, "max_sessions": 3});
    let channel = s.post("/api/v1/channels", &s.admin, body).await.expect(201)["id"].as_u64().unwrap();
    let (_, visitor_token) = s.visit(channel, json!({"visitor_name": "Vera"})).await;

    let env = |token: &str| {
        vec![
            ("FUZZ_TOKEN", token.to_owned()),
            ("FUZZ_VISITOR_TOKEN", visitor_token.clone()),
            ("FUZZ_KEEP_IDS", format!("{fuzzer},{plain}")),
            ("FUZZ_SPARE_ID", spare.to_string()),
        ]
    };
    // As the admin: `SWITCHBOARD_FUZZ_EXAMPLES` per operation and phase
    // (default 100) within `SWITCHBOARD_FUZZ_SECONDS` (default 240; it was
    // 600 for each run, 20 minutes of a 36-minute CI). Raise them to explore further.
    let examples = budget("SWITCHBOARD_FUZZ_EXAMPLES", 100);
    let seconds = budget("SWITCHBOARD_FUZZ_SECONDS", 240);
    assert_clean("admin", &st_run(&s, env(&admin_token), examples, seconds, &[]).await);
    // A plain operator meets 403 on every admin endpoint by design (the role
    // table in roles.rs pins which); every other check still applies. Fewer
    // examples: the admin run above is the thorough one.
    let as_user = ["--exclude-checks", "positive_data_acceptance"];
    assert_clean("user", &st_run(&s, env(&user_token), examples / 4, seconds / 2, &as_user).await);
    s.get("/healthz", &s.admin).await.expect(200);
}
