//! The browser UI in a real browser: Chromium driven over WebDriver
//! (`chromedriver`, installed by `.ci/run`). Screenshots go to `tests/artifacts/`.
//!
//! One test runs every scenario in turn against one chromedriver, so the
//! browsers do not compete with the rest of the suite for the two cores.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::support::{free_port, on_path, TestServer};

const WAIT: Duration = Duration::from_secs(10);

/// `CHROMEDRIVER` if set, else the first `chromedriver` on `PATH`, else where
/// Debian's package puts it.
fn chromedriver() -> Option<std::path::PathBuf> {
    let debian = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"].map(std::path::PathBuf::from);
    let given = std::env::var_os("CHROMEDRIVER").map(std::path::PathBuf::from).filter(|p| p.is_file());
    given.or_else(|| on_path("chromedriver")).or_else(|| debian.into_iter().find(|p| p.is_file()))
}

/// A chromedriver process; each `browser()` is a fresh headless Chromium.
struct Driver {
    process: Child,
    url: String,
}

impl Driver {
    /// `None` when chromedriver is not installed (a failure under CI, which installs it).
    fn start() -> Option<Driver> {
        let binary = chromedriver()?;
        let port = free_port();
        let process = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen in time");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Driver { process, url: format!("http://127.0.0.1:{port}") })
    }

    async fn browser(&self) -> Client {
        let mut caps = serde_json::Map::new();
        let args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,860"];
        caps.insert("goog:chromeOptions".into(), json!({ "args": args }));
        ClientBuilder::rustls().expect("TLS roots").capabilities(caps).connect(&self.url).await.expect("a browser session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

async fn find(c: &Client, css: &str) -> Element {
    c.wait().at_most(WAIT).for_element(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"))
}

/// Waits until the text of `css` contains `text`.
async fn wait_text(c: &Client, css: &str, text: &str) -> Element {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(found) = c.find_all(Locator::Css(css)).await {
            for element in found {
                if element.text().await.is_ok_and(|t| t.contains(text)) {
                    return element;
                }
            }
        }
        assert!(Instant::now() < deadline, "no {css} containing {text:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until nothing matches `css`.
async fn wait_gone(c: &Client, css: &str) {
    let deadline = Instant::now() + WAIT;
    while !c.find_all(Locator::Css(css)).await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "{css} is still there");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Evaluates `expression` on the first `css` element (named `e`), in the
/// page in one step: the console may redraw it between two WebDriver calls.
async fn eval_on(c: &Client, css: &str, expression: &str) -> serde_json::Value {
    find(c, css).await;
    let script = format!("const e = document.querySelector(arguments[0]); return {expression};");
    c.execute(&script, vec![json!(css)]).await.unwrap()
}

/// Waits until `condition` (JavaScript) holds in the page.
async fn wait_for(c: &Client, condition: &str, what: &str) {
    let deadline = Instant::now() + WAIT;
    while c.execute(&format!("return !!({condition});"), vec![]).await.unwrap() != json!(true) {
        assert!(Instant::now() < deadline, "no {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Closes the console's WebSocket the next time it sends a frame, as a
/// dropped connection would; `window.switchboardHellos` then counts the
/// `hello`s of the sockets it opens again.
async fn drop_socket_on_next_send(c: &Client) {
    let script = "
        const send = WebSocket.prototype.send;
        WebSocket.prototype.send = function (data) { WebSocket.prototype.send = send; this.close(); };
        window.switchboardHellos = 0;
        const Base = window.WebSocket;
        window.WebSocket = class extends Base {
            constructor(...args) {
                super(...args);
                this.addEventListener('message', (e) => JSON.parse(e.data).type === 'hello' && window.switchboardHellos++);
            }
        };";
    c.execute(script, vec![]).await.unwrap();
}

/// The operator of this console picks Away in the top bar; returns once the server says so.
async fn go_away(c: &Client, s: &TestServer, operator: u64) {
    c.execute("const p = document.getElementById('presence'); p.value = 'away'; p.dispatchEvent(new Event('change'));", vec![])
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while s.get(&format!("/api/v1/users/{operator}"), &s.admin).await.expect(200)["presence"] != "away" {
        assert!(Instant::now() < deadline, "operator {operator} never went away");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What `act` does to an element.
enum Act<'a> {
    Click,
    Type(&'a str),
}

/// Does `what` to `css`, finding it again if the page re-rendered it in
/// between (the console redraws its lists and its pane on live events, so an
/// element found a moment ago may be gone; a stale element takes no keys).
async fn act(c: &Client, css: &str, what: Act<'_>) {
    let deadline = Instant::now() + WAIT;
    loop {
        let element = find(c, css).await;
        let done = match what {
            Act::Click => element.click().await,
            Act::Type(text) => element.send_keys(text).await,
        };
        match done {
            Ok(()) => return,
            Err(fantoccini::error::CmdError::Standard(e)) if e.error == fantoccini::error::ErrorStatus::StaleElementReference => {
                assert!(Instant::now() < deadline, "{css} kept going stale");
            }
            Err(e) => panic!("acting on {css}: {e}"),
        }
    }
}

async fn click(c: &Client, css: &str) {
    act(c, css, Act::Click).await
}

async fn type_into(c: &Client, css: &str, text: &str) {
    act(c, css, Act::Type(text)).await
}

async fn screenshot(c: &Client, name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), c.screenshot().await.unwrap()).unwrap();
}

async fn console(driver: &Driver, s: &TestServer, login: &str, password: &str) -> Client {
    let c = driver.browser().await;
    c.goto(&s.url("/")).await.unwrap();
    type_into(&c, "#login", login).await;
    type_into(&c, "#password", password).await;
    click(&c, "#login-form button[type=submit]").await;
    wait_text(&c, "#me", login).await;
    c
}

async fn send_in_console(c: &Client, text: &str) {
    type_into(c, "#composer-input", text).await;
    click(c, ".composer button[type=submit]").await;
}

async fn widget(driver: &Driver, s: &TestServer, channel: u64) -> Client {
    let c = driver.browser().await;
    c.goto(&s.url(&format!("/demo?channel={channel}"))).await.unwrap();
    click(&c, ".sbw-bubble").await;
    c
}

async fn send_in_widget(c: &Client, text: &str) {
    type_into(c, ".sbw-form input", text).await;
    click(c, ".sbw-form button").await;
}

/// The triage bot: Billing leads to a forward with the Billing expertise.
async fn billing_channel(s: &TestServer, billing: u64, operators: &[u64]) -> u64 {
    let script = json!({"title": "Support bot", "steps": [
        {"id": 1, "type": "text", "message": "Hello!"},
        {"id": 2, "type": "question_selection", "message": "What do you need help with?",
         "answers": [{"id": 1, "label": "Billing"}, {"id": 2, "label": "Something else"}]},
        {"id": 3, "type": "forward_operator", "message": "Connecting you to Billing", "only_if_answer_ids": [1], "expertise_ids": [billing]},
        {"id": 4, "type": "forward_operator", "message": "Connecting you", "only_if_answer_ids": [2]},
    ]});
    let chatbot = s.post("/api/v1/chatbots", &s.admin, script).await.expect(201)["id"].as_u64().unwrap();
    let body = json!({"name": "Website", "operator_ids": operators, "chatbot_id": chatbot});
    s.post("/api/v1/channels", &s.admin, body).await.expect(201)["id"].as_u64().unwrap()
}

#[actix_rt::test]
async fn the_ui_in_a_real_browser() {
    let Some(driver) = Driver::start() else {
        assert!(std::env::var_os("CI").is_none(), "CI must run the browser tests: install chromium-driver (see .ci/run)");
        eprintln!("SKIPPED browser tests: chromedriver is not installed (apt-get install chromium chromium-driver)");
        return;
    };
    let s = TestServer::start().await;
    looking_for_help_story(&driver, &s).await;
    user_supplied_text_is_never_markup(&driver, &s).await;
    a_user_cannot_edit_expertise(&driver, &s).await;
    the_widget_survives_a_reload(&driver, &s).await;
    history_search_open_download(&driver, &s).await;
    saved_replies_and_internal_notes(&driver, &s).await;
    a_background_chat_raises_the_title_count(&driver, &s).await;
    a_missed_chat_becomes_a_lead_in_the_console(&driver, &s).await;
    the_widget_on_a_phone(&driver).await;
}

/// A 390×844 phone: the widget fills the screen with a 16 px input; it names
/// the operator, shows times and their typing; text the server refuses (over
/// this server's 40 characters) stays in the box with the reason in words; an
/// ended chat stays closed after a reload until the visitor starts a new one.
async fn the_widget_on_a_phone(driver: &Driver) {
    let s = TestServer::start_with(|c| c.limits.max_message_chars = 40).await;
    let (pia, _) = s.operator("pia", json!({"name": "Pia Lund"})).await;
    let channel = s.channel(&[pia], None).await;
    let pia_console = console(driver, &s, "pia", "pw").await;
    let visitor = driver.browser().await;
    visitor.set_window_size(390, 844).await.unwrap();
    visitor.goto(&s.url(&format!("/demo?channel={channel}"))).await.unwrap();
    click(&visitor, ".sbw-bubble").await;
    send_in_widget(&visitor, "Hello").await;
    click(&pia_console, "#channels .item").await;
    wait_text(&pia_console, "#transcript", "Hello").await;
    type_into(&pia_console, "#composer-input", "Let me see").await;
    wait_text(&visitor, ".sbw-status", "Pia Lund is typing").await;
    click(&pia_console, ".composer button[type=submit]").await;
    wait_text(&visitor, ".sbw-msg", "Let me see").await;
    wait_text(&visitor, ".sbw-who", "Pia Lund").await;
    let shown =
        "({avatar: document.querySelector('.sbw-avatar').textContent, times: document.querySelectorAll('.sbw-msg .sbw-time').length,
        width: document.querySelector('.sbw-window').getBoundingClientRect().width, screen: window.innerWidth,
        font: getComputedStyle(document.querySelector('.sbw-form input')).fontSize})";
    let shown = visitor.execute(&format!("return {shown};"), vec![]).await.unwrap();
    assert_eq!((shown["avatar"].as_str(), shown["font"].as_str()), (Some("PL"), Some("16px")), "{shown}");
    assert!(shown["times"].as_u64() >= Some(2), "{shown}");
    assert_eq!(shown["width"].as_f64(), shown["screen"].as_f64(), "full-screen on a phone: {shown}");

    let long = "This question is longer than forty characters, sadly";
    send_in_widget(&visitor, long).await;
    wait_text(&visitor, ".sbw-error", "too long: at most 40 characters").await;
    let kept = visitor.execute("return document.querySelector('.sbw-form input').value;", vec![]).await.unwrap();
    assert_eq!(kept, long, "the refused text is back in the box");
    screenshot(&visitor, "widget-phone").await;

    let pia_token = s.login("pia", "pw").await;
    let conversation = s.get("/api/v1/conversations", &pia_token).await.expect(200)[0]["id"].as_u64().unwrap();
    s.post(&format!("/api/v1/conversations/{conversation}/close"), &pia_token, json!({})).await.expect(200);
    wait_text(&visitor, ".sbw-rate", "How did we do?").await;
    visitor.refresh().await.unwrap();
    find(&visitor, ".sbw-bubble").await;
    let open = visitor.execute("return !document.querySelector('.sbw-window').hidden;", vec![]).await.unwrap();
    assert_eq!(open, json!(false), "an ended chat does not pop open on the next page");
    click(&visitor, ".sbw-bubble").await;
    wait_text(&visitor, ".sbw-status", "This conversation has ended").await;
    click(&visitor, ".sbw-new").await;
    send_in_widget(&visitor, "A new question").await;
    wait_text(&pia_console, "#channels", "A new question").await;
    for browser in [pia_console, visitor] {
        browser.close().await.unwrap();
    }
}

/// Hana is away; a visitor writes, waits and leaves: Hana's console counts a
/// lead, lists it, and she claims it and marks it done.
async fn a_missed_chat_becomes_a_lead_in_the_console(driver: &Driver, s: &TestServer) {
    let (hana, _) = s.operator("hana", json!({"name": "Hana"})).await;
    let channel = s.channel(&[hana], None).await;
    let hana_console = console(driver, s, "hana", "pw").await;
    go_away(&hana_console, s, hana).await;
    let hana_token = s.login("hana", "pw").await;
    // Queued with nobody free, the visitor leaves an e-mail address instead of waiting.
    let visitor = widget(driver, s, channel).await;
    send_in_widget(&visitor, "Can someone call me back? 0470 12 34 56").await;
    wait_text(&visitor, ".sbw-status", "number 1 in the queue").await;
    type_into(&visitor, ".sbw-email input", "vera@example.com").await;
    click(&visitor, ".sbw-email button").await;
    wait_text(&visitor, ".sbw-log", "We will get back to you").await;
    screenshot(&visitor, "widget-left-email").await;
    wait_text(&hana_console, "#open-leads", "Leads (1)").await;
    click(&hana_console, "#open-leads").await;
    wait_text(&hana_console, "#leads-list .lead", "Left before an operator came").await;
    wait_text(&hana_console, "#leads-list .lead", "vera@example.com").await;
    click(&hana_console, "#leads-list .claim-lead").await;
    wait_text(&hana_console, "#leads-list .lead", "You follow this up").await;
    screenshot(&hana_console, "console-leads").await;
    click(&hana_console, "#leads-list .open-lead").await;
    wait_text(&hana_console, "#transcript", "Can someone call me back?").await;
    click(&hana_console, "#open-leads").await;
    click(&hana_console, "#leads-list .done-lead").await;
    wait_text(&hana_console, "#leads-list", "No missed chats.").await;
    wait_text(&hana_console, "#open-leads", "Leads").await;
    assert_eq!(s.get("/api/v1/leads?status=done", &hana_token).await.expect(200)[0]["claimed_by"]["id"], hana);
    for browser in [hana_console, visitor] {
        browser.close().await.unwrap();
    }
}

/// Gina talks with one visitor while another writes: the other chat shows an
/// unread badge and the tab title counts it, until she opens it.
async fn a_background_chat_raises_the_title_count(driver: &Driver, s: &TestServer) {
    let (gina, _) = s.operator("gina", json!({"name": "Gina"})).await;
    let channel = s.channel(&[gina], None).await;
    let gina_console = console(driver, s, "gina", "pw").await;
    let first = widget(driver, s, channel).await;
    send_in_widget(&first, "First visitor here").await;
    let second = widget(driver, s, channel).await;
    send_in_widget(&second, "Second visitor here").await;
    let token = s.login("gina", "pw").await;
    let deadline = Instant::now() + WAIT;
    let ids: Vec<u64> = loop {
        let listed = s.get("/api/v1/conversations", &token).await.expect(200);
        let listed: Vec<u64> = listed.as_array().unwrap().iter().map(|c| c["id"].as_u64().unwrap()).collect();
        if listed.len() == 2 {
            break listed;
        }
        assert!(Instant::now() < deadline, "Gina did not get both chats");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (older, newer) = (ids.iter().min().copied().unwrap(), ids.iter().max().copied().unwrap());
    let item = |id: u64| format!("#channels .item[data-conversation='{id}']");
    click(&gina_console, &item(newer)).await;
    wait_text(&gina_console, "#transcript", "Second visitor here").await;
    click(&gina_console, &item(older)).await;
    wait_text(&gina_console, "#transcript", "First visitor here").await;
    let count = "const m = document.title.match(/^\\((\\d+)\\)/); return m ? Number(m[1]) : 0;";
    let before = gina_console.execute(count, vec![]).await.unwrap().as_u64().unwrap();

    send_in_widget(&second, "Are you still there?").await;
    wait_text(&gina_console, &format!("{} .unread", item(newer)), "1").await;
    assert_eq!(gina_console.execute(count, vec![]).await.unwrap(), json!(before + 1), "the title counts the unread message");
    screenshot(&gina_console, "console-unread").await;
    click(&gina_console, &item(newer)).await;
    wait_gone(&gina_console, &format!("{} .unread", item(newer))).await;
    assert_eq!(gina_console.execute(count, vec![]).await.unwrap(), json!(before), "read once opened");
    for browser in [gina_console, first, second] {
        browser.close().await.unwrap();
    }
}

/// Dora saves a reply, expands it with `/thanks` in a chat, then writes an
/// internal note: the visitor gets the reply with their name, never the note.
async fn saved_replies_and_internal_notes(driver: &Driver, s: &TestServer) {
    let (dora, _) = s.operator("dora", json!({"name": "Dora"})).await;
    let channel = s.channel(&[dora], None).await;
    let dora_console = console(driver, s, "dora", "pw").await;
    // The keyboard shortcuts are listed from the sidebar (and with `?`).
    click(&dora_console, "#open-shortcuts").await;
    wait_text(&dora_console, "#shortcuts-list", "Next / previous chat").await;
    click(&dora_console, "#shortcuts-dialog button").await;
    click(&dora_console, "#open-canned").await;
    type_into(&dora_console, "#canned-shortcut", "thanks").await;
    type_into(&dora_console, "#canned-body", "Thanks {visitor_name}, happy to help!").await;
    click(&dora_console, "#canned-form button[type=submit]").await;
    wait_text(&dora_console, "#canned-list", "/thanks").await;
    screenshot(&dora_console, "console-saved-replies").await;

    let visitor = widget(driver, s, channel).await;
    type_into(&visitor, ".sbw-form input", "Hi, I am Vera").await;
    click(&visitor, ".sbw-form button").await;
    click(&dora_console, "#channels .item").await;
    wait_text(&dora_console, "#transcript", "Hi, I am Vera").await;
    // The widget told where the visitor is; the console shows it beside the chat.
    wait_text(&dora_console, "#visitor-context", "On page").await;
    let context = eval_on(&dora_console, "#visitor-context", "e.innerText").await;
    let context = context.as_str().unwrap();
    assert!(context.contains("Browser") && context.contains("Local time"), "{context}");
    let visitor_name = dora_console.execute("return document.getElementById('pane-title').textContent;", vec![]).await.unwrap();
    type_into(&dora_console, "#composer-input", "/tha").await;
    wait_text(&dora_console, "#canned-suggestions", "/thanks").await;
    type_into(&dora_console, "#composer-input", "\u{E004}").await; // Tab takes the first suggestion.
    let filled = dora_console.execute("return document.getElementById('composer-input').value;", vec![]).await.unwrap();
    assert_eq!(filled, format!("Thanks {}, happy to help!", visitor_name.as_str().unwrap()));
    click(&dora_console, ".composer button[type=submit]").await;
    wait_text(&visitor, ".sbw-msg", "happy to help!").await;

    click(&dora_console, "#composer-note").await;
    send_in_console(&dora_console, "Vera is a returning customer").await;
    wait_text(&dora_console, "#transcript .message.internal", "Vera is a returning customer").await;
    screenshot(&dora_console, "console-internal-note").await;
    // A tablet in portrait: the same pane, narrower list, buttons wrapped.
    dora_console.set_window_size(820, 1180).await.unwrap();
    find(&dora_console, "#composer-input").await;
    screenshot(&dora_console, "console-tablet").await;
    dora_console.set_window_size(1280, 800).await.unwrap();
    click(&dora_console, "#composer-note").await;
    send_in_console(&dora_console, "Anything else?").await;
    wait_text(&visitor, ".sbw-msg", "Anything else?").await;
    let shown = visitor.execute("return document.body.textContent;", vec![]).await.unwrap();
    assert!(!shown.as_str().unwrap().contains("returning customer"), "the visitor saw a note: {shown}");

    // A half-typed reply survives the pane being rebuilt (a status change from
    // another tab) and a reload of the page.
    let dora_token = s.login("dora", "pw").await;
    let conversation = s.get("/api/v1/conversations", &dora_token).await.expect(200)[0]["id"].as_u64().unwrap();
    type_into(&dora_console, "#composer-input", "Half a rep").await;
    s.put(&format!("/api/v1/conversations/{conversation}/status"), &dora_token, json!({"status": "waiting"})).await.expect(200);
    wait_text(&dora_console, "#pane-status", "Waiting").await;
    let draft = "return document.getElementById('composer-input').value;";
    assert_eq!(dora_console.execute(draft, vec![]).await.unwrap(), "Half a rep");
    dora_console.refresh().await.unwrap();
    click(&dora_console, "#channels .item").await;
    find(&dora_console, "#composer-input").await;
    assert_eq!(dora_console.execute(draft, vec![]).await.unwrap(), "Half a rep");
    // Sent after the reload, it and the next lines reach the visitor: the
    // page's command refs no longer restart at c1, which the server took for
    // resends of her earlier messages and acknowledged with those, storing
    // nothing (line 1 vanished so before this fix).
    click(&dora_console, ".composer button[type=submit]").await;
    wait_text(&visitor, ".sbw-msg", "Half a rep").await;
    for n in 1..=4 {
        send_in_console(&dora_console, &format!("After the reload, line {n}")).await;
        wait_text(&visitor, ".sbw-msg", &format!("After the reload, line {n}")).await;
    }

    // Dora hands the chat to Erin, who joined the team since.
    let (erin, _) = s.operator("erin", json!({"name": "Erin"})).await;
    s.patch(&format!("/api/v1/channels/{channel}"), &s.admin, json!({"operator_ids": [dora, erin]})).await.expect(200);
    let erin_console = console(driver, s, "erin", "pw").await;
    click(&dora_console, "#transfer").await;
    wait_text(&dora_console, "#invite-title", "Transfer to").await;
    click(&dora_console, &format!("#invite-list input[value='{erin}']")).await;
    click(&dora_console, "#invite-submit").await;
    wait_text(&visitor, ".sbw-msg", "Erin joined the conversation").await;
    wait_text(&erin_console, "#channels .item", "Erin joined the conversation").await;
    wait_gone(&dora_console, "#channels .item").await;

    // Erin closes the chat; the visitor rates it with a face and a comment.
    let erin_token = s.login("erin", "pw").await;
    s.post(&format!("/api/v1/conversations/{conversation}/close"), &erin_token, json!({})).await.expect(200);
    type_into(&visitor, ".sbw-comment", "Dora and Erin were great").await;
    click(&visitor, ".sbw-faces button[data-score='5']").await;
    wait_text(&visitor, ".sbw-rate", "Thank you").await;
    screenshot(&visitor, "widget-rated").await;
    let rated = s.conversation(conversation, &erin_token).await["rating"].clone();
    assert_eq!((rated["score"].as_u64(), rated["comment"].as_str()), (Some(5), Some("Dora and Erin were great")));
    dora_console.close().await.unwrap();
    erin_console.close().await.unwrap();
    visitor.close().await.unwrap();
}

/// Admin creates Billing in the UI; A (Billing) gets the visitor who answered
/// Billing; A asks for help; B sees it without a star, C with one; C joins.
async fn looking_for_help_story(driver: &Driver, s: &TestServer) {
    let (a, _) = s.operator("anna", json!({"name": "Anna"})).await;
    let (b, _) = s.operator("bruno", json!({"name": "Bruno"})).await;
    let (c, _) = s.operator("chloe", json!({"name": "Chloe"})).await;

    let admin = console(driver, s, "admin", "admin-pass").await;
    admin.goto(&s.url("/admin")).await.unwrap();
    type_into(&admin, "#expertise-form input[name=name]", "Billing").await;
    for operator in [a, c] {
        click(&admin, &format!("#expertise-form input[name=operator_ids][value='{operator}']")).await;
    }
    click(&admin, "#expertise-form button[type=submit]").await;
    wait_text(&admin, "#expertise-table", "Billing").await;
    screenshot(&admin, "admin-expertise").await;
    let expertise = s.get("/api/v1/expertise", &s.admin).await.expect(200);
    let billing = &expertise.as_array().unwrap().iter().find(|e| e["name"] == "Billing").expect("created in the UI").clone();
    assert_eq!(billing["operator_ids"], json!([a, c]));
    let channel = billing_channel(s, billing["id"].as_u64().unwrap(), &[a, b, c]).await;

    let anna = console(driver, s, "anna", "pw").await;
    let bruno = console(driver, s, "bruno", "pw").await;
    let chloe = console(driver, s, "chloe", "pw").await;
    // Chloe steps away so the router has one Billing expert to choose: Anna.
    go_away(&chloe, s, c).await;

    let visitor = widget(driver, s, channel).await;
    wait_text(&visitor, ".sbw-choices button", "Billing").await.click().await.unwrap();
    wait_text(&visitor, ".sbw-msg", "Anna joined the conversation").await;

    let read = eval_on(&anna, "#channels .item", "e.dataset.conversation").await;
    let conversation: u64 = read.as_str().unwrap().parse().unwrap();
    click(&anna, &format!("#channels .item[data-conversation='{conversation}']")).await;
    wait_text(&anna, "#transcript", "Connecting you to Billing").await;
    send_in_console(&anna, "Hello, I can help with your invoice").await;
    wait_text(&visitor, ".sbw-msg", "Hello, I can help with your invoice").await;
    screenshot(&visitor, "widget").await;

    type_into(&anna, "#help-note", "Invoice in two currencies").await;
    anna.execute(
        "const s = document.getElementById('status-select'); s.value = 'need_help'; s.dispatchEvent(new Event('change'));",
        vec![],
    )
    .await
    .unwrap();
    let on_board = format!("#need-help .item[data-conversation='{conversation}']");
    let board_line = "({starred: e.dataset.starred, text: e.innerText, star: e.querySelector('.star')?.title ?? null})";
    let for_bruno = eval_on(&bruno, &on_board, board_line).await;
    assert_eq!(for_bruno["starred"], "false");
    let told = for_bruno["text"].as_str().unwrap();
    assert!(told.contains("Anna asks") && told.contains("Invoice in two currencies"), "{told}");
    assert_eq!(for_bruno["star"], json!(null), "no star for Bruno");
    let for_chloe = eval_on(&chloe, &on_board, board_line).await;
    assert_eq!(for_chloe["starred"], "true");
    assert_eq!(for_chloe["star"], "Relevant to your expertise");
    screenshot(&chloe, "console-looking-for-help").await;

    // Bruno looks at the call too, and Anna starts a reply, while Chloe joins.
    click(&bruno, &on_board).await;
    find(&bruno, "#join").await;
    let draft = "return document.getElementById('composer-input').value;";
    type_into(&anna, "#composer-input", "Let me check the second currency").await;
    click(&chloe, &on_board).await;
    click(&chloe, "#join").await;
    wait_text(&visitor, ".sbw-msg", "Chloe joined the conversation").await;
    for operator in [&bruno, &chloe] {
        wait_gone(operator, &on_board).await;
    }
    wait_text(&chloe, "#pane-status", "In progress").await;
    screenshot(&chloe, "console-joined").await;
    // No stale Join for Bruno; Anna's pane was redrawn around her draft.
    find(&bruno, "#answered").await;
    wait_gone(&bruno, "#join").await;
    wait_text(&anna, "#transcript", "Chloe joined the conversation").await;
    assert_eq!(anna.execute(draft, vec![]).await.unwrap(), "Let me check the second currency");
    // Anna's connection drops mid-sentence: the console reconnects and the draft is still there.
    drop_socket_on_next_send(&anna).await;
    tokio::time::sleep(Duration::from_millis(2100)).await; // typing frames go at most every 2 s
    type_into(&anna, "#composer-input", " now").await;
    wait_for(&anna, "window.switchboardHellos >= 1", "a reconnect").await;
    find(&anna, "#composer-input").await;
    assert_eq!(anna.execute(draft, vec![]).await.unwrap(), "Let me check the second currency now");

    // Chloe helped and leaves (after confirming); Anna stays with the visitor.
    click(&chloe, "#leave").await;
    chloe.accept_alert().await.unwrap();
    wait_text(&visitor, ".sbw-msg", "Chloe left the conversation").await;
    wait_text(&anna, "#transcript", "Chloe left the conversation").await;
    wait_gone(&chloe, &format!("#channels .item[data-conversation='{conversation}']")).await;

    // The routing report page draws the day with the vendored charts.
    click(&admin, "#tab-reports").await;
    wait_text(&admin, "#report-expertise", "Billing").await;
    let drawn: bool = admin
        .execute(
            "return !!window.Chart && ['chart-served', 'chart-satisfaction'].every((id) => Chart.getChart(document.getElementById(id)) !== undefined);",
            vec![],
        )
        .await
        .unwrap()
        .as_bool()
        .unwrap();
    assert!(drawn, "the served-per-expertise and satisfaction charts are drawn");
    wait_text(&admin, "#report-operators", "Anna").await;
    screenshot(&admin, "admin-report").await;
    // Bruno leaves the team: the admin deactivates him from the Users table.
    click(&admin, "#tab-users").await;
    click(&admin, &format!("#users-table button[data-user='{b}']")).await;
    wait_text(&admin, "#users-table tr", "Deactivated").await;
    screenshot(&admin, "admin-users").await;
    // A reply every operator can use: the admin saves it from Saved replies.
    click(&admin, "#tab-canned").await;
    type_into(&admin, "#canned-admin-form input[name=shortcut]", "hours").await;
    type_into(&admin, "#canned-admin-form textarea[name=body]", "We answer from 9:00 to 18:00, {visitor_name}.").await;
    click(&admin, "#canned-admin-form button[type=submit]").await;
    wait_text(&admin, "#canned-table", "/hours").await;
    screenshot(&admin, "admin-saved-replies").await;
    let anna_token = s.login("anna", "pw").await;
    let seen = s.get("/api/v1/canned_responses", &anna_token).await.expect(200);
    assert!(seen.as_array().unwrap().iter().any(|c| c["shortcut"] == "hours" && c["shared"] == true), "{seen}");
    // A webhook for leads, tried with "Send test event", its delivery in the log.
    let receiver = crate::webhooks::Receiver::start(free_port(), &[]).await;
    click(&admin, "#tab-webhooks").await;
    type_into(&admin, "#webhook-form input[name=url]", &receiver.url()).await;
    click(&admin, "#webhook-form input[name=events][value='lead.created']").await;
    click(&admin, "#webhook-form button[type=submit]").await;
    wait_text(&admin, "#webhooks-table", &receiver.url()).await;
    click(&admin, "#webhooks-table .test-webhook").await;
    receiver.wait_until("the test event", |got| crate::webhooks::events(got).iter().any(|e| e == "webhook.test")).await;
    click(&admin, "#webhooks-table .show-deliveries").await;
    wait_text(&admin, "#deliveries-table", "webhook.test").await;
    screenshot(&admin, "admin-webhooks").await;
    receiver.stop().await;
    let bruno_now = s.get(&format!("/api/v1/users/{b}"), &s.admin).await.expect(200);
    assert_eq!(bruno_now["active"], false, "deactivated from the UI");
    for browser in [admin, anna, bruno, chloe, visitor] {
        browser.close().await.unwrap();
    }
}

/// Markup typed by a visitor or an operator shows as those characters.
async fn user_supplied_text_is_never_markup(driver: &Driver, s: &TestServer) {
    let attack = "<img src=x onerror=alert(1)>";
    let (operator, _) = s.operator("xavier", json!({"name": "<b>Xavier</b>"})).await;
    let channel = s.channel(&[operator], None).await;
    let console = console(driver, s, "xavier", "pw").await;
    let visitor = widget(driver, s, channel).await;
    click(&console, "#channels .item").await;
    send_in_widget(&visitor, attack).await;
    let shown = wait_text(&console, "#transcript .message .body", attack).await;
    assert_eq!(shown.text().await.unwrap(), attack);
    assert!(console.find_all(Locator::Css("#transcript img")).await.unwrap().is_empty());
    send_in_console(&console, attack).await;
    wait_text(&visitor, ".sbw-msg", attack).await;
    wait_text(&visitor, ".sbw-msg", "<b>Xavier</b> joined the conversation").await;
    assert!(visitor.find_all(Locator::Css(".sbw-log img, .sbw-log b")).await.unwrap().is_empty());
    for c in [&console, &visitor] {
        assert!(c.get_alert_text().await.is_err(), "no script ran");
    }
    console.close().await.unwrap();
    visitor.close().await.unwrap();
}

/// A user sees expertise and its holders, but no editing.
async fn a_user_cannot_edit_expertise(driver: &Driver, s: &TestServer) {
    s.operator("ursula", json!({})).await;
    let c = console(driver, s, "ursula", "pw").await;
    c.goto(&s.url("/admin")).await.unwrap();
    wait_text(&c, "#expertise-table", "Billing").await;
    assert!(c.find_all(Locator::Css("#expertise-form")).await.unwrap().is_empty(), "no expertise form for a user");
    assert!(c.find_all(Locator::Css("#tab-users, #expertise-table button")).await.unwrap().is_empty());
    c.close().await.unwrap();
}

/// Mid-conversation reload: the widget reopens on the same conversation and goes on.
async fn the_widget_survives_a_reload(driver: &Driver, s: &TestServer) {
    let (operator, _) = s.operator("rita", json!({})).await;
    let channel = s.channel(&[operator], None).await;
    let console = console(driver, s, "rita", "pw").await;
    let visitor = widget(driver, s, channel).await;
    send_in_widget(&visitor, "before the reload").await;
    click(&console, "#channels .item").await;
    wait_text(&console, "#transcript", "before the reload").await;
    visitor.refresh().await.unwrap();
    wait_text(&visitor, ".sbw-msg", "before the reload").await;
    send_in_console(&console, "still here").await;
    wait_text(&visitor, ".sbw-msg", "still here").await;
    send_in_widget(&visitor, "after the reload").await;
    wait_text(&console, "#transcript", "after the reload").await;
    // Still the one conversation: the reload did not open a second session.
    assert_eq!(console.find_all(Locator::Css("#channels .item")).await.unwrap().len(), 1);
    console.close().await.unwrap();
    visitor.close().await.unwrap();
}

/// History: search a closed (archived) conversation, open it read-only with
/// the visitor's previous conversation listed, download its transcript.
async fn history_search_open_download(driver: &Driver, s: &TestServer) {
    let channel = s.channel(&[], None).await;
    let mut last = 0;
    for line in ["first visit, about shipping", "my parcel never arrived"] {
        let (id, token) = s.visit(channel, json!({"visitor_name": "Vera", "visitor_key": "vera-browser"})).await;
        s.post("/api/v1/visitor/messages", &token, json!({"body": line})).await.expect(201);
        s.post("/api/v1/visitor/leave", &token, json!({})).await.expect(200);
        last = id;
    }
    let archived = s.get("/api/v1/history?q=parcel", &s.admin).await.expect(200);
    assert_eq!(archived["items"][0]["id"], last);
    let admin = console(driver, s, "admin", "admin-pass").await;
    click(&admin, "#open-history").await;
    type_into(&admin, "#history-q", "PARCEL").await;
    click(&admin, "#history-form button[type=submit]").await;
    let result = wait_text(&admin, "#history-results .item", "my parcel never arrived").await;
    screenshot(&admin, "console-history").await;
    result.click().await.unwrap();
    wait_text(&admin, "#transcript", "my parcel never arrived").await;
    wait_text(&admin, "#pane-status", "Closed").await;
    wait_text(&admin, "#previous", "Previous conversations (1)").await;
    assert!(admin.find_all(Locator::Css("#composer-input")).await.unwrap().is_empty(), "a closed conversation is read-only");
    click(&admin, "#download-transcript").await;
    find(&admin, "#transcript-download").await;
    let script = "const link = document.getElementById('transcript-download');
        return [link.download, decodeURIComponent(link.href.slice(link.href.indexOf(',') + 1))];";
    let downloaded = admin.execute(script, vec![]).await.unwrap();
    assert_eq!(downloaded[0], format!("conversation-{last}.txt"));
    assert!(downloaded[1].as_str().unwrap().contains("] Vera: my parcel never arrived"), "{downloaded}");
    screenshot(&admin, "console-history-transcript").await;
    click(&admin, "#previous .item").await;
    wait_text(&admin, "#transcript", "first visit, about shipping").await;
    admin.close().await.unwrap();
}
