//! The crash test: the real binary as a child process, clients writing and
//! recording every acknowledgement, `SIGKILL` at random moments, restart,
//! and every acknowledged write must be there exactly once.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

use crate::support::{budget, ServerProcess, WsClient};

/// Kills per run, unless `SWITCHBOARD_CRASH_KILLS` says; each cycle runs a
/// few hundred milliseconds of load.
const DEFAULT_KILLS: usize = 20;
const WRITERS: usize = 6;
/// Conversations opened, written to and closed per cycle, at most.
const CLOSED_PER_CYCLE: usize = 10;

/// A tiny deterministic generator (xorshift), seeded from the clock and printed, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn crash_server(dir: &TempDir) -> ServerProcess {
    let args = ["--snapshot-interval-s", "1", "--workers", "2", "--visitor-sessions-per-minute", "0"];
    ServerProcess::start(dir.path(), &args, &[("SWITCHBOARD_ADMIN_PASSWORD", "crash-pass"), ("RUST_LOG", "info")])
}

/// Everything the server acknowledged.
#[derive(Default)]
struct Acked {
    /// Per visitor token: body → message id.
    messages: HashMap<String, BTreeMap<String, u64>>,
    /// Per visitor token: the last page acknowledged (each writer has one request in flight).
    pages: HashMap<String, String>,
    expertise: Vec<String>,
    /// Shortcuts of the admin's own canned responses (stored in the directory).
    canned: Vec<String>,
    /// Conversations closed (the visitor left) after one message: id → that message's body.
    closed: BTreeMap<u64, String>,
    /// The operators' conversation: internal notes and transfers between two operators.
    team: Team,
}

/// Two operators hand one livechat back and forth and write internal notes in it.
#[derive(Default)]
struct Team {
    conversation: u64,
    visitor_token: String,
    /// (user id, token) of each operator.
    operators: Vec<(u64, String)>,
    /// Index in `operators` of the member, as last acknowledged.
    holder: usize,
    /// A transfer sent whose answer never came (the kill): it may or may not have happened.
    transfer_unanswered: bool,
    /// Note body → message id.
    notes: BTreeMap<String, u64>,
    transfers: usize,
}

async fn post(http: &reqwest::Client, url: String, token: &str, body: Value) -> Option<Value> {
    let res = http.post(url).bearer_auth(token).json(&body).timeout(Duration::from_secs(2)).send().await.ok()?;
    if res.status().is_success() {
        // A 204 has no body: acknowledged all the same.
        let text = res.text().await.ok()?;
        Some(serde_json::from_str(&text).unwrap_or(Value::Null))
    } else {
        None
    }
}

#[actix_rt::test]
async fn every_acknowledged_write_survives_sigkill() {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("crash test seed {seed}");
    let mut rng = Rng(seed);
    let kills = budget("SWITCHBOARD_CRASH_KILLS", DEFAULT_KILLS);
    let dir = TempDir::new().unwrap();
    let http = reqwest::Client::new();
    let acked = Rc::new(RefCell::new(Acked::default()));

    let server = crash_server(&dir);
    let login = json!({"login": "admin", "password": "crash-pass"});
    let admin =
        post(&http, format!("{}/api/v1/auth/login", server.base), "", login).await.expect("login")["token"].as_str().unwrap().to_owned();
    let channel = post(&http, format!("{}/api/v1/channels", server.base), &admin, json!({"name": "Crash"})).await.unwrap()["id"].clone();
    let mut visitors = Vec::new();
    let mut conversation_of = HashMap::new();
    for _ in 0..WRITERS {
        let opened = post(&http, format!("{}/api/v1/channels/{channel}/sessions", server.base), "", json!({})).await.unwrap();
        let token = opened["visitor_token"].as_str().unwrap().to_owned();
        conversation_of.insert(token.clone(), opened["conversation_id"].as_u64().unwrap());
        visitors.push(token);
    }
    let team = start_team(&http, &server.base, &admin).await;
    acked.borrow_mut().team = team;
    let mut server = Some(server);

    for cycle in 0..kills {
        let base = server.as_ref().unwrap().base.clone();
        // Both operators online (a transfer needs its target online); dropped with the server.
        let operators = acked.borrow().team.operators.clone();
        let online = connect(&base, &operators).await;
        let mut tasks = Vec::new();
        for (w, token) in visitors.iter().enumerate() {
            let (http, acked, token, base) = (http.clone(), acked.clone(), token.clone(), base.clone());
            tasks.push(actix_rt::spawn(async move {
                for i in 0.. {
                    if i % 4 == 3 {
                        // The visitor's context (a navigation) is journaled like messages.
                        let page = format!("https://crash.example/c{cycle}-w{w}-p{i}");
                        let url = format!("{base}/api/v1/visitor/page");
                        if post(&http, url, &token, json!({"url": page})).await.is_none() {
                            return;
                        }
                        acked.borrow_mut().pages.insert(token.clone(), page);
                        continue;
                    }
                    let body = format!("c{cycle}-w{w}-m{i}");
                    let url = format!("{base}/api/v1/visitor/messages");
                    let Some(message) = post(&http, url, &token, json!({"body": body})).await else { return };
                    acked.borrow_mut().messages.entry(token.clone()).or_default().insert(body, message["id"].as_u64().unwrap());
                }
            }));
        }
        let (http3, acked3, base3, channel) = (http.clone(), acked.clone(), base.clone(), channel.clone());
        tasks.push(actix_rt::spawn(async move {
            // Conversations that close (and move to the archive) while the kills happen.
            for i in 0..CLOSED_PER_CYCLE {
                let Some(opened) = post(&http3, format!("{base3}/api/v1/channels/{channel}/sessions"), "", json!({})).await else { return };
                let (id, token) = (opened["conversation_id"].as_u64().unwrap(), opened["visitor_token"].as_str().unwrap().to_owned());
                let body = format!("zq{cycle}x{i}");
                if post(&http3, format!("{base3}/api/v1/visitor/messages"), &token, json!({"body": body})).await.is_none() {
                    return;
                }
                if post(&http3, format!("{base3}/api/v1/visitor/leave"), &token, json!({})).await.is_none() {
                    return;
                }
                acked3.borrow_mut().closed.insert(id, body);
            }
        }));
        let (http4, acked4, base4) = (http.clone(), acked.clone(), base.clone());
        tasks.push(actix_rt::spawn(async move {
            // Notes by whoever holds the chat; every fifth step hands it to the other operator.
            let (conversation, operators) = {
                let team = &acked4.borrow().team;
                (team.conversation, team.operators.clone())
            };
            for i in 0.. {
                let holder = acked4.borrow().team.holder;
                let token = &operators[holder].1;
                if i % 5 == 4 {
                    let other = 1 - holder;
                    acked4.borrow_mut().team.transfer_unanswered = true;
                    let url = format!("{base4}/api/v1/conversations/{conversation}/transfer");
                    if post(&http4, url, token, json!({"user_id": operators[other].0})).await.is_none() {
                        return;
                    }
                    let team = &mut acked4.borrow_mut().team;
                    (team.holder, team.transfer_unanswered, team.transfers) = (other, false, team.transfers + 1);
                    continue;
                }
                let body = format!("note c{cycle}-{i}");
                let url = format!("{base4}/api/v1/conversations/{conversation}/notes");
                let Some(note) = post(&http4, url, token, json!({"body": body})).await else { return };
                acked4.borrow_mut().team.notes.insert(body, note["id"].as_u64().unwrap());
            }
        }));
        let (http2, acked2, admin2, base2) = (http.clone(), acked.clone(), admin.clone(), base.clone());
        tasks.push(actix_rt::spawn(async move {
            for i in 0.. {
                if i % 2 == 1 {
                    let shortcut = format!("c{cycle}-{i}");
                    let body = json!({"shortcut": shortcut, "body": "Saved before a crash"});
                    if post(&http2, format!("{base2}/api/v1/canned_responses"), &admin2, body).await.is_none() {
                        return;
                    }
                    acked2.borrow_mut().canned.push(shortcut);
                    continue;
                }
                let name = format!("E{cycle}-{i}");
                if post(&http2, format!("{base2}/api/v1/expertise"), &admin2, json!({"name": name})).await.is_none() {
                    return;
                }
                acked2.borrow_mut().expertise.push(name);
            }
        }));
        actix_rt::time::sleep(Duration::from_millis(100 + rng.below(400))).await;
        server.take().unwrap().kill();
        drop(online);
        for task in tasks {
            let _ = actix_rt::time::timeout(Duration::from_secs(5), task).await;
        }

        let restarted = crash_server(&dir);
        let mut expected = std::mem::take(&mut *acked.borrow_mut());
        verify(&http, &restarted.base, &admin, &conversation_of, &expected, cycle).await;
        verify_team(&http, &restarted.base, &admin, &mut expected.team, cycle).await;
        *acked.borrow_mut() = expected;
        server = Some(restarted);
    }
    let acked = acked.borrow();
    let total: usize = acked.messages.values().map(BTreeMap::len).sum();
    eprintln!(
        "crash test: {kills} kills, {total} acknowledged messages, {} expertise, {} canned responses, every visitor's last page, {} closed conversations (each a lead), {} internal notes and {} transfers all survived",
        acked.expertise.len(),
        acked.canned.len(),
        acked.closed.len(),
        acked.team.notes.len(),
        acked.team.transfers,
    );
    assert!(!acked.closed.is_empty(), "no conversation was closed during the kills");
    assert!(acked.team.transfers > 0 && !acked.team.notes.is_empty(), "no note or transfer was acknowledged");
    assert!(total > kills, "the load wrote too little to prove anything: {total}");
    server.take().unwrap().kill();
}

/// Two operators in a channel of their own, both online, and a visitor's chat routed to one of them.
async fn start_team(http: &reqwest::Client, base: &str, admin: &str) -> Team {
    let mut operators = Vec::new();
    for login in ["ana", "ben"] {
        let user = json!({"login": login, "name": login, "password": "team-pass", "role": "user"});
        let id = post(http, format!("{base}/api/v1/users"), admin, user).await.expect("an operator")["id"].as_u64().unwrap();
        let login = json!({"login": login, "password": "team-pass"});
        let token = post(http, format!("{base}/api/v1/auth/login"), "", login).await.expect("login")["token"].as_str().unwrap().to_owned();
        operators.push((id, token));
    }
    let ids: Vec<u64> = operators.iter().map(|(id, _)| *id).collect();
    let channel =
        post(http, format!("{base}/api/v1/channels"), admin, json!({"name": "Team", "operator_ids": ids})).await.unwrap()["id"].clone();
    let _online = connect(base, &operators).await;
    let opened = post(http, format!("{base}/api/v1/channels/{channel}/sessions"), "", json!({})).await.unwrap();
    let (conversation, token) = (opened["conversation_id"].as_u64().unwrap(), opened["visitor_token"].as_str().unwrap());
    post(http, format!("{base}/api/v1/visitor/messages"), token, json!({"body": "Hello team"})).await.expect("a visitor message");
    let mut team = Team { conversation, visitor_token: token.to_owned(), operators, ..Team::default() };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let view = get(http, &format!("{base}/api/v1/conversations/{conversation}"), admin).await;
        if let Some(holder) = team.holder_in(&view) {
            team.holder = holder;
            return team;
        }
        assert!(Instant::now() < deadline, "the team's chat was never routed: {view}");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Console sockets for `operators`, past their `hello`: they are online while these live.
async fn connect(base: &str, operators: &[(u64, String)]) -> Vec<WsClient> {
    let mut online = Vec::new();
    for (_, token) in operators {
        let mut socket = WsClient::connect(&format!("{}/ws/agent?token={token}", base.replacen("http", "ws", 1))).await;
        socket.next_of("hello").await;
        online.push(socket);
    }
    online
}

impl Team {
    /// Which operator the conversation `view` has as its only member.
    fn holder_in(&self, view: &Value) -> Option<usize> {
        match view["member_ids"].as_array()?.as_slice() {
            [only] => self.operators.iter().position(|(id, _)| only.as_u64() == Some(*id)),
            _ => None,
        }
    }
}

async fn get(http: &reqwest::Client, url: &str, token: &str) -> Value {
    let res = http.get(url).bearer_auth(token).send().await.unwrap();
    assert_eq!(res.status(), 200, "GET {url}");
    res.json().await.unwrap()
}

/// Every acknowledged note is there once with its id and never shown to the
/// visitor; the chat is with whom the last acknowledged transfer gave it to
/// (or, after an unanswered transfer, possibly its target).
async fn verify_team(http: &reqwest::Client, base: &str, admin: &str, team: &mut Team, cycle: usize) {
    let view = get(http, &format!("{base}/api/v1/conversations/{}", team.conversation), admin).await;
    let holder =
        team.holder_in(&view).unwrap_or_else(|| panic!("cycle {cycle}: the team's chat lost its operator: {}", view["member_ids"]));
    assert!(holder == team.holder || team.transfer_unanswered, "cycle {cycle}: the chat moved without an acknowledged transfer");
    if holder != team.holder {
        team.transfers += 1;
    }
    (team.holder, team.transfer_unanswered) = (holder, false);
    let mut notes: HashMap<&str, (u64, usize)> = HashMap::new();
    for message in view["messages"].as_array().unwrap().iter().filter(|m| m["internal"] == true) {
        let entry = notes.entry(message["body"].as_str().unwrap()).or_insert((message["id"].as_u64().unwrap(), 0));
        entry.1 += 1;
    }
    for (body, id) in &team.notes {
        assert_eq!(notes.get(body.as_str()), Some(&(*id, 1)), "cycle {cycle}: acknowledged note {body:?} lost, moved or doubled");
    }
    let seen_by_visitor = get(http, &format!("{base}/api/v1/visitor/conversation"), &team.visitor_token).await;
    let leaked: Vec<&Value> =
        seen_by_visitor["messages"].as_array().unwrap().iter().filter(|m| m["body"].as_str().unwrap().starts_with("note ")).collect();
    assert!(leaked.is_empty(), "cycle {cycle}: the visitor sees notes: {leaked:?}");
}

async fn verify(http: &reqwest::Client, base: &str, admin: &str, visitors: &HashMap<String, u64>, acked: &Acked, cycle: usize) {
    let started = Instant::now();
    eprintln!("cycle {cycle}: verifying {} closed conversations", acked.closed.len());
    for (token, conversation) in visitors {
        if let Some(page) = acked.pages.get(token) {
            let res = http.get(format!("{base}/api/v1/conversations/{conversation}")).bearer_auth(admin).send().await.unwrap();
            let view: Value = res.json().await.unwrap();
            let pages: Vec<&str> = view["visitor"]["pages"].as_array().unwrap().iter().map(|p| p["url"].as_str().unwrap()).collect();
            assert!(pages.contains(&page.as_str()), "cycle {cycle}: acknowledged page {page} lost: {pages:?}");
        }
        let res = http.get(format!("{base}/api/v1/visitor/conversation")).bearer_auth(token).send().await.unwrap();
        assert_eq!(res.status(), 200, "cycle {cycle}: a visitor token was lost");
        let view: Value = res.json().await.unwrap();
        let messages = view["messages"].as_array().unwrap();
        let mut seen: HashMap<&str, u64> = HashMap::new();
        for (i, message) in messages.iter().enumerate() {
            let id = message["id"].as_u64().unwrap();
            assert_eq!(id, i as u64 + 1, "cycle {cycle}: message ids must be 1, 2, 3, … without gaps");
            let body = message["body"].as_str().unwrap();
            assert!(seen.insert(body, id).is_none(), "cycle {cycle}: {body:?} stored twice");
        }
        for (body, id) in acked.messages.get(token).into_iter().flatten() {
            assert_eq!(seen.get(body.as_str()), Some(id), "cycle {cycle}: acknowledged message {body:?} lost or moved");
        }
    }
    let res = http.get(format!("{base}/api/v1/expertise")).bearer_auth(admin).send().await.unwrap();
    assert_eq!(res.status(), 200, "cycle {cycle}: the admin token was lost");
    let all: Value = res.json().await.unwrap();
    let names: Vec<&str> = all.as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    for name in &acked.expertise {
        assert_eq!(names.iter().filter(|n| **n == name).count(), 1, "cycle {cycle}: expertise {name} lost");
    }
    let canned: Value = http.get(format!("{base}/api/v1/canned_responses")).bearer_auth(admin).send().await.unwrap().json().await.unwrap();
    let shortcuts: Vec<&str> = canned.as_array().unwrap().iter().map(|c| c["shortcut"].as_str().unwrap()).collect();
    for shortcut in &acked.canned {
        assert_eq!(shortcuts.iter().filter(|s| **s == shortcut).count(), 1, "cycle {cycle}: canned response {shortcut} lost");
    }
    for (id, body) in &acked.closed {
        let res = http.get(format!("{base}/api/v1/conversations/{id}")).bearer_auth(admin).send().await.unwrap();
        assert_eq!(res.status(), 200, "cycle {cycle}: closed conversation {id} lost");
        let view: Value = res.json().await.unwrap();
        assert_eq!(view["status"], "closed", "cycle {cycle}: conversation {id} reopened");
        let bodies: Vec<&str> = view["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
        assert_eq!(bodies.iter().filter(|b| **b == body).count(), 1, "cycle {cycle}: {id}: {bodies:?}");
    }
    // History lists each of them exactly once (paging through every `zq…` conversation).
    let mut listed: Vec<u64> = Vec::new();
    let mut cursor = String::new();
    for _ in 0..1000 {
        let res = http.get(format!("{base}/api/v1/history?q=zq*&limit=100{cursor}")).bearer_auth(admin).send().await.unwrap();
        let page: Value = res.json().await.unwrap();
        listed.extend(page["items"].as_array().unwrap().iter().map(|i| i["id"].as_u64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    // Nobody serves the crash channel: each of them is a lead, exactly once.
    let leads = get(http, &format!("{base}/api/v1/leads"), admin).await;
    let leads: Vec<u64> = leads.as_array().unwrap().iter().map(|l| l["conversation_id"].as_u64().unwrap()).collect();
    for id in acked.closed.keys() {
        assert_eq!(leads.iter().filter(|l| *l == id).count(), 1, "cycle {cycle}: closed conversation {id} is not one lead");
    }
    let unique: std::collections::BTreeSet<u64> = listed.iter().copied().collect();
    assert_eq!(unique.len(), listed.len(), "cycle {cycle}: history lists a conversation twice");
    for id in acked.closed.keys() {
        assert!(unique.contains(id), "cycle {cycle}: history lost closed conversation {id}");
    }
    eprintln!("cycle {cycle}: verified in {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(30));
}
