//! Webhook backlog: `cargo bench --bench webhooks`.
//!
//! The state a receiver outage leaves: 100,000 deliveries queued in the
//! archive's outbox (1,000 conversations × 100 events, all due). The receiver
//! (a local actix-web server on 127.0.0.1) is up: how fast the outbox drains,
//! and whether every conversation's events arrive in order, none missing.
//! Each figure is the median of `RUNS` runs; `BENCH_SCALE=0.1` shrinks the
//! backlog for a quick look. Results go to BENCHMARKS.md by hand.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use parking_lot::Mutex;
use switchboard::archive::{Archive, NewDelivery};
use switchboard::domain::webhook::{Webhook, WebhookEvent};
use switchboard::domain::ConversationId;
use switchboard::webhooks::Webhooks;
use tempfile::TempDir;
use tokio::sync::watch;

const RUNS: usize = 3;
const CONVERSATIONS: u64 = 1_000;
/// The longest a drain may take before the run counts as failed.
const DRAIN_LIMIT: Duration = Duration::from_secs(600);

/// What the receiver saw: deliveries, and per conversation the last sequence number.
#[derive(Default)]
struct Received {
    count: AtomicU64,
    last: Mutex<HashMap<u64, u64>>,
    out_of_order: AtomicU64,
}

async fn receive(seen: web::Data<Received>, body: web::Json<serde_json::Value>) -> HttpResponse {
    let data = &body["data"];
    let (conversation, seq) = (data["conversation"].as_u64().unwrap_or(0), data["seq"].as_u64().unwrap_or(0));
    let previous = seen.last.lock().insert(conversation, seq);
    if previous.map_or(seq != 0, |p| seq != p + 1) {
        seen.out_of_order.fetch_add(1, Ordering::Relaxed);
    }
    seen.count.fetch_add(1, Ordering::Relaxed);
    HttpResponse::Ok().finish()
}

/// One drain: deliveries per second, and how many arrived out of order.
async fn drain(per_conversation: u64) -> (f64, u64) {
    let seen = web::Data::new(Received::default());
    let app_seen = seen.clone();
    let server = HttpServer::new(move || App::new().app_data(app_seen.clone()).route("/hook", web::post().to(receive)))
        .workers(1)
        .bind("127.0.0.1:0")
        .expect("bind the receiver");
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);

    let dir = TempDir::new().expect("temp dir");
    let archive = Arc::new(Archive::open(dir.path()).expect("archive"));
    let hook = Webhook { id: 0, url: format!("http://{addr}/hook"), events: [WebhookEvent::MessageCreated].into(), secret: "s".into() };
    let hook = archive.save_webhook(hook).await.expect("webhook");
    // Queued round-robin over the conversations, as chat fills an outbox.
    let mut batch = Vec::new();
    for seq in 0..per_conversation {
        for conversation in 0..CONVERSATIONS {
            let body = serde_json::json!({"id": format!("evt_{conversation}_{seq}"), "event": "message.created", "at": "2026-12-08T00:00:00Z",
                "data": {"conversation": conversation, "seq": seq}});
            batch.push(NewDelivery {
                webhook_id: hook.id,
                event_id: format!("evt_{conversation}_{seq}"),
                name: "message.created",
                conversation_id: Some(ConversationId(conversation + 1)),
                body: body.to_string(),
            });
        }
        if batch.len() >= 5_000 {
            archive.enqueue_deliveries(std::mem::take(&mut batch)).await.expect("enqueue");
        }
    }
    archive.enqueue_deliveries(batch).await.expect("enqueue");
    let total = per_conversation * CONVERSATIONS;

    let webhooks = Arc::new(Webhooks::new(vec![hook], true, Duration::from_secs(10)));
    let (stop, stopping) = watch::channel(false);
    let started = Instant::now();
    actix_rt::spawn(webhooks.run(archive.clone(), stopping));
    while seen.count.load(Ordering::Relaxed) < total && started.elapsed() < DRAIN_LIMIT {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let _ = stop.send(true);
    handle.stop(false).await;
    let delivered = seen.count.load(Ordering::Relaxed);
    assert_eq!(delivered, total, "the backlog did not drain within {DRAIN_LIMIT:?}");
    (total as f64 / elapsed, seen.out_of_order.load(Ordering::Relaxed))
}

fn main() {
    let scale: f64 = std::env::var("BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let per_conversation = ((100.0 * scale).round() as u64).max(1);
    actix_rt::System::new().block_on(async {
        let mut rates = Vec::new();
        for run in 0..RUNS {
            let (rate, out_of_order) = drain(per_conversation).await;
            println!("run {run}: {} deliveries drained at {rate:.0}/s, {out_of_order} out of order", per_conversation * CONVERSATIONS);
            assert_eq!(out_of_order, 0, "deliveries of a conversation arrived out of order");
            rates.push(rate);
        }
        rates.sort_by(f64::total_cmp);
        println!("webhook backlog of {}: median {:.0} deliveries/s", per_conversation * CONVERSATIONS, rates[RUNS / 2]);
    });
}
