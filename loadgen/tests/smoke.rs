//! Small loadgen runs against a real server, so the harness cannot rot:
//! every visitor reaches an operator and nothing acknowledged is lost.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use switchboard::config::Config;
use switchboard::startup::Application;

/// Starts a real server, runs `loadgen <args> --server … --admin-password …
/// --json …` against it, stops the server; answers the JSON report.
async fn run_loadgen(args: &[&str]) -> Value {
    let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
    let data_dir = tempfile::TempDir::new().unwrap();
    let app = Application::build(Config::for_tests(data_dir.path().to_path_buf())).await.expect("server builds");
    let server = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = actix_rt::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let report = tempfile::NamedTempFile::new().unwrap();
    let path = report.path().to_owned();
    let output = actix_rt::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_loadgen"))
            .args(args)
            .args(["--server", &server, "--admin-password", "admin-pass", "--json"])
            .arg(&path)
            .output()
            .expect("loadgen runs")
    })
    .await
    .unwrap();
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    assert!(
        output.status.success(),
        "loadgen failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(report.path()).unwrap()).expect("a JSON report")
}

#[actix_rt::test]
async fn a_small_loadgen_run_loses_nothing() {
    let args = ["run", "--operators", "8", "--visitors", "120", "--ramp", "3s", "--duration", "30s", "--messages", "2", "--think", "20ms"];
    let report = run_loadgen(&[&args[..], &["--think-jitter", "0.5", "--help-rate", "0.25"]].concat()).await;
    assert_eq!(report["sessions"], 120, "{report}");
    // A quarter of the conversations, once each (8 operators with ~15 each: 3 or 4 apiece),
    // not a quarter of the replies (2 per conversation: twice as many).
    let calls = report["calls_for_help"].as_u64().unwrap();
    assert!((16..=36).contains(&calls), "{report}");
    assert_eq!(report["assigned"], 120, "{report}");
    assert_eq!(report["lost"], 0, "{report}");
    // Two visitor messages and two operator replies per visitor, each acknowledged and delivered.
    assert_eq!(report["acknowledged"], 480, "{report}");
    assert_eq!(report["errors"], serde_json::json!({}), "{report}");
    assert_eq!(report["capacity_violations"], 0);
    assert!(report["delivery"]["samples"].as_u64().unwrap() >= 480, "{report}");
    // Only what was sent once the last visitor had an operator: at least that
    // visitor's two messages and their replies, not the earlier visitors' first.
    let after_set_up = report["delivery_after_set_up"]["samples"].as_u64().unwrap();
    assert!((4..480).contains(&after_set_up), "{report}");
    assert!(report["wall_s"].as_f64().unwrap() < Duration::from_secs(30).as_secs_f64());
    // Loopback only.
    let refused = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["run", "--server", "http://example.com:8080", "--admin-password", "x"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("loopback"));
}

/// The relay scenario against a real server: every pair gets its own
/// operator, both sides' messages are acknowledged and delivered, and a
/// fixed rate is held (so the figures in BENCHMARKS.md come from a harness
/// that measures what it says).
#[actix_rt::test]
async fn a_small_relay_run_pairs_everyone_and_loses_nothing() {
    let args: &'static [&str] = &["relay", "--pairs", "6", "--window", "4", "--rate", "60", "--duration", "3s", "--settle", "200ms"];
    let report = run_loadgen(args).await;
    assert_eq!(report["lost"], 0, "{report}");
    assert_eq!(report["errors"], serde_json::json!({}), "{report}");
    // 60 msgs/s for 3 s over 12 sides (5 each per second): 180 sent, every one delivered.
    let delivered = report["delivered"].as_u64().unwrap();
    assert!((170..=186).contains(&delivered), "{report}");
    assert_eq!(report["acknowledged"], delivered, "{report}");
}

/// The presence scenario counts what the consoles receive: with `each`, one
/// frame per change besides `hello`; in both modes every console hears at
/// least every operator who came online after it (12 + 11 + … + 1 = 78).
#[actix_rt::test]
async fn a_small_presence_run_counts_every_change() {
    for mode in ["each", "batched"] {
        let report = run_loadgen(&["presence", "--operators", "12", "--parallel", "4", "--presence", mode]).await;
        let (frames, changes) = (report["frames_received"].as_u64().unwrap(), report["presence_changes"].as_u64().unwrap());
        assert!((78..=144).contains(&changes), "{report}");
        if mode == "each" {
            assert_eq!(frames, 12 + changes, "{report}");
        } else {
            assert!(frames > 12 && frames <= 12 + changes, "{report}");
        }
    }
}
