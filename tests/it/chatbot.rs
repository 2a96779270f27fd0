//! Chatbot scripts: validation, every step type, and Forward to Operator by expertise.

use serde_json::{json, Value};

use crate::support::TestServer;

/// Creates a chatbot and a channel using it; returns (chatbot id, channel id).
async fn bot_channel(s: &TestServer, operators: &[u64], steps: Value) -> (u64, u64) {
    let chatbot =
        s.post("/api/v1/chatbots", &s.admin, json!({"title": "Helper", "steps": steps})).await.expect(201)["id"].as_u64().unwrap();
    let channel =
        s.post("/api/v1/channels", &s.admin, json!({"name": "Site", "operator_ids": operators, "chatbot_id": chatbot})).await.expect(201)
            ["id"]
            .as_u64()
            .unwrap();
    (chatbot, channel)
}

/// The bodies of the messages the visitor sees, in order.
async fn transcript(s: &TestServer, visitor: &str) -> Vec<String> {
    let view = s.visitor_view(visitor).await;
    view["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap().to_owned()).collect()
}

async fn say(s: &TestServer, visitor: &str, body: &str) -> Value {
    s.post("/api/v1/visitor/messages", visitor, json!({"body": body})).await.expect(201)
}

fn triage(billing: u64) -> Value {
    json!([
        {"id": 1, "type": "text", "message": "Hello!"},
        {"id": 2, "type": "question_selection", "message": "What do you need?",
         "answers": [{"id": 10, "label": "Billing"}, {"id": 11, "label": "Other"}]},
        {"id": 3, "type": "forward_operator", "message": "Finding a billing expert", "only_if_answer_ids": [10], "expertise_ids": [billing]},
        {"id": 4, "type": "text", "message": "Not billing then", "only_if_answer_ids": [11]},
        {"id": 5, "type": "question_email", "message": "Your email, please?"},
    ])
}

#[actix_rt::test]
async fn a_chain_of_text_steps_is_posted_at_once_with_step_ids() {
    let s = TestServer::start().await;
    let steps = json!([
        {"type": "text", "message": "One"},
        {"type": "text", "message": "Two"},
        {"type": "free_input_single", "message": "Three?"},
        {"type": "text", "message": "Four"},
    ]);
    let (chatbot, channel) = bot_channel(&s, &[], steps).await;
    let (_, visitor) = s.visit(channel, json!({})).await;
    let (_, hello) = s.widget(&visitor, None).await;
    assert_eq!(hello["conversation"]["status"], "bot");
    let messages = hello["conversation"]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    let script = s.get(&format!("/api/v1/chatbots/{chatbot}"), &s.admin).await.expect(200);
    for (message, step) in messages.iter().zip(script["steps"].as_array().unwrap()) {
        assert_eq!(message["author"]["kind"], "bot");
        assert_eq!(message["author"]["name"], "Helper");
        assert_eq!(message["step_id"], step["id"]);
        assert_eq!(message["body"], step["message"]);
    }
    say(&s, &visitor, "anything at all").await;
    assert_eq!(transcript(&s, &visitor).await, ["One", "Two", "Three?", "anything at all", "Four"]);
}

#[actix_rt::test]
async fn both_branches_of_a_selection_follow_their_conditions() {
    let s = TestServer::start().await;
    let billing = s.expertise("Billing").await;
    let (_, channel) = bot_channel(&s, &[], triage(billing)).await;

    // Branch "Other", picked with the `answer` frame.
    let (_, visitor) = s.visit(channel, json!({})).await;
    let (mut widget, hello) = s.widget(&visitor, None).await;
    let question = &hello["conversation"]["messages"][1];
    assert_eq!(question["answers"], json!([{"id": 10, "label": "Billing"}, {"id": 11, "label": "Other"}]));
    widget.send(json!({"type": "answer", "ref": "a1", "step_id": 2, "answer_id": 11})).await;
    let ack = widget.next_of("ack").await;
    assert_eq!(ack["ref"], "a1");
    assert_eq!(ack["message"]["body"], "Other");
    assert_eq!(ack["message"]["author"]["kind"], "visitor");
    assert_eq!(transcript(&s, &visitor).await, ["Hello!", "What do you need?", "Other", "Not billing then", "Your email, please?"]);
    // The question was answered: answering it again is a conflict, an unknown answer a bad request.
    widget.send(json!({"type": "answer", "ref": "a2", "step_id": 2, "answer_id": 10})).await;
    assert_eq!(widget.next_of("error").await["error"]["code"], "conflict");
    // A malformed answer frame gets an error and the connection stays usable.
    widget.send(json!({"type": "answer", "ref": "a3", "step_id": "two"})).await;
    let malformed = widget.next_of("error").await;
    assert_eq!((malformed["ref"].clone(), malformed["error"]["code"].clone()), (json!("a3"), json!("bad_request")));
    widget.send(json!({"type": "typing", "ref": "t1"})).await;
    assert_eq!(widget.next_of("ack").await["ref"], "t1");

    // Branch "Billing", typed as text (case-insensitive); nobody is online, so the script goes on.
    let (_, visitor) = s.visit(channel, json!({})).await;
    let (mut widget, _) = s.widget(&visitor, None).await;
    widget.send(json!({"type": "answer", "ref": "bad", "step_id": 2, "answer_id": 99})).await;
    let error = widget.next_of("error").await;
    assert_eq!(error["error"]["code"], "bad_request");
    assert!(error["error"]["message"].as_str().unwrap().contains("answer_id"), "{error}");
    say(&s, &visitor, "billing").await;
    assert_eq!(
        transcript(&s, &visitor).await,
        ["Hello!", "What do you need?", "billing", "Finding a billing expert", "Your email, please?"]
    );
    assert_eq!(s.visitor_view(&visitor).await["status"], "bot");
}

#[actix_rt::test]
async fn an_answer_that_is_no_option_is_asked_again() {
    let s = TestServer::start().await;
    let (_, channel) = bot_channel(&s, &[], triage(s.expertise("Billing").await)).await;
    let (_, visitor) = s.visit(channel, json!({})).await;
    say(&s, &visitor, "I want a refund").await;
    let view = s.visitor_view(&visitor).await;
    let last = view["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["author"]["kind"], "bot");
    assert_eq!(last["step_id"], 2);
    assert_eq!(last["answers"].as_array().unwrap().len(), 2);
    say(&s, &visitor, "Other").await;
    assert_eq!(transcript(&s, &visitor).await.last().unwrap(), "Your email, please?");
}

#[actix_rt::test]
async fn email_and_phone_questions_ask_again_until_valid() {
    let s = TestServer::start().await;
    let steps = json!([
        {"type": "question_email", "message": "Email?"},
        {"type": "question_phone", "message": "Phone?"},
        {"type": "text", "message": "Thanks"},
    ]);
    let (_, channel) = bot_channel(&s, &[], steps).await;
    let (_, visitor) = s.visit(channel, json!({})).await;
    say(&s, &visitor, "not-an-email").await;
    say(&s, &visitor, "ann@example").await;
    say(&s, &visitor, "ann@example.com").await;
    say(&s, &visitor, "call me maybe").await;
    say(&s, &visitor, "+32 2 555 01 23").await;
    let bodies = transcript(&s, &visitor).await;
    assert_eq!(bodies.len(), 11, "{bodies:?}");
    assert_eq!(bodies[0], "Email?");
    assert!(bodies[2].contains("email address"), "{bodies:?}");
    assert!(bodies[4].contains("email address"), "{bodies:?}");
    assert_eq!(bodies[6], "Phone?");
    assert!(bodies[8].contains("phone number"), "{bodies:?}");
    assert_eq!(bodies[9..], ["+32 2 555 01 23", "Thanks"]);
    // The retry lines come from the step they re-ask.
    let view = s.visitor_view(&visitor).await;
    assert_eq!(view["messages"][2]["step_id"], view["messages"][0]["step_id"]);
    // Not advanced past the phone question until it was valid.
    let (_, visitor) = s.visit(channel, json!({})).await;
    say(&s, &visitor, "a@b.co").await;
    say(&s, &visitor, "12").await;
    assert_eq!(s.visitor_view(&visitor).await["status"], "bot");
    assert!(transcript(&s, &visitor).await.last().unwrap().contains("phone number"));
}

#[actix_rt::test]
async fn multi_line_input_ends_on_an_empty_line_or_a_pause() {
    let s = TestServer::start().await;
    let steps = json!([
        {"type": "free_input_multi", "message": "Describe the problem"},
        {"type": "text", "message": "Got it"},
    ]);
    let (_, channel) = bot_channel(&s, &[], steps).await;
    let (_, visitor) = s.visit(channel, json!({})).await;
    say(&s, &visitor, "line one").await;
    say(&s, &visitor, "line two").await;
    s.post("/api/v1/visitor/messages", &visitor, json!({"body": "  "})).await.expect(204);
    assert_eq!(transcript(&s, &visitor).await, ["Describe the problem", "line one", "line two", "Got it"]);

    // The test server's pause is 300 ms.
    let (_, visitor) = s.visit(channel, json!({})).await;
    let (mut widget, _) = s.widget(&visitor, None).await;
    say(&s, &visitor, "only line").await;
    let done = widget.next_where("the bot's reply", |f| f["type"] == "message" && f["message"]["body"] == "Got it").await;
    assert_eq!(done["message"]["author"]["kind"], "bot");
}

#[actix_rt::test]
async fn forward_reaches_the_expert_and_falls_back_when_none_is_online() {
    let s = TestServer::start().await;
    let billing = s.expertise("Billing").await;
    let (expert, expert_token) = s.operator("expert", json!({"expertise_ids": [billing]})).await;
    let (generalist, generalist_token) = s.operator("generalist", json!({})).await;
    let (_, channel) = bot_channel(&s, &[generalist, expert], triage(billing)).await;
    let (mut expert_ws, _) = s.agent(&expert_token).await;
    let (mut generalist_ws, _) = s.agent(&generalist_token).await;

    let (conversation, visitor) = s.visit(channel, json!({})).await;
    say(&s, &visitor, "Billing").await;
    let assigned = expert_ws.next_of("assigned").await;
    let transcript_seen: Vec<&str> =
        assigned["conversation"]["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(&transcript_seen[..4], ["Hello!", "What do you need?", "Billing", "Finding a billing expert"]);
    let view = s.conversation(conversation, &s.admin).await;
    assert_eq!(view["assignment"]["operator_id"], expert);
    assert_eq!(view["assignment"]["rule"], "all_expertise");
    assert_eq!(view["expertise_ids"], json!([billing]));
    assert_eq!(view["status"], "in_progress");
    // The bot is silent now: the visitor's words go to the operator.
    say(&s, &visitor, "my invoice is wrong").await;
    let message =
        expert_ws.next_where("the visitor's message", |f| f["type"] == "message" && f["message"]["author"]["kind"] == "visitor").await;
    assert_eq!(message["message"]["body"], "my invoice is wrong");
    assert!(!transcript(&s, &visitor).await.contains(&"Your email, please?".to_owned()));

    // The expert goes away: the generalist gets the next billing visitor.
    expert_ws.send(json!({"type": "presence", "ref": "p", "presence": "away"})).await;
    expert_ws.next_of("ack").await;
    let (conversation, visitor) = s.visit(channel, json!({})).await;
    say(&s, &visitor, "Billing").await;
    generalist_ws.next_of("assigned").await;
    let view = s.conversation(conversation, &s.admin).await;
    assert_eq!(view["assignment"]["operator_id"], generalist);
    assert_eq!(view["assignment"]["rule"], "any_operator");
}

#[actix_rt::test]
async fn a_last_forward_queues_and_an_arriving_operator_takes_it() {
    let s = TestServer::start().await;
    let billing = s.expertise("Billing").await;
    let (ann, ann_token) = s.operator("ann", json!({"expertise_ids": [billing]})).await;
    let steps = json!([
        {"type": "text", "message": "Hi"},
        {"type": "forward_operator", "message": "Connecting you", "expertise_ids": [billing]},
    ]);
    let (_, channel) = bot_channel(&s, &[ann], steps).await;
    let (conversation, visitor) = s.visit(channel, json!({})).await;
    let view = s.visitor_view(&visitor).await;
    assert_eq!(view["status"], "queued");
    assert_eq!(view["queue_position"], 1);
    let (mut widget, _) = s.widget(&visitor, None).await;
    let (mut ann_ws, _) = s.agent(&ann_token).await;
    let assigned = ann_ws.next_of("assigned").await;
    assert_eq!(assigned["conversation"]["id"], conversation);
    assert_eq!(assigned["conversation"]["messages"][1]["body"], "Connecting you");
    let joined = widget.next_of("member_joined").await;
    assert_eq!(joined["user"]["id"], ann);
    assert_eq!(s.visitor_view(&visitor).await["status"], "in_progress");
}

#[actix_rt::test]
async fn editing_a_script_does_not_change_running_conversations() {
    let s = TestServer::start().await;
    let steps = json!([
        {"id": 1, "type": "free_input_single", "message": "Old question"},
        {"id": 2, "type": "text", "message": "Old ending"},
    ]);
    let (chatbot, channel) = bot_channel(&s, &[], steps).await;
    let (_, before) = s.visit(channel, json!({})).await;
    let edited = json!({"steps": [
        {"id": 1, "type": "free_input_single", "message": "New question"},
        {"id": 2, "type": "text", "message": "New ending"},
    ]});
    let view = s.patch(&format!("/api/v1/chatbots/{chatbot}"), &s.admin, edited).await.expect(200);
    assert_eq!(view["title"], "Helper");
    assert_eq!(view["steps"][0]["id"], 1);
    say(&s, &before, "answer").await;
    assert_eq!(transcript(&s, &before).await, ["Old question", "answer", "Old ending"]);
    let (_, after) = s.visit(channel, json!({})).await;
    say(&s, &after, "answer").await;
    assert_eq!(transcript(&s, &after).await, ["New question", "answer", "New ending"]);
}

#[actix_rt::test]
async fn every_validation_rule_names_the_step() {
    let s = TestServer::start().await;
    let billing = s.expertise("Billing").await;
    let cases = [
        (json!([]), "steps"),
        (json!([{"type": "text", "message": ""}]), "steps[0].message"),
        (json!([{"type": "text", "message": "x".repeat(4001)}]), "steps[0].message"),
        (json!([{"type": "text", "message": "ok"}, {"type": "question_selection", "message": "?"}]), "steps[1].answers"),
        (json!([{"type": "question_selection", "message": "?", "answers": []}]), "steps[0].answers"),
        (json!([{"type": "text", "message": "hi", "answers": [{"label": "x"}]}]), "steps[0].answers"),
        (json!([{"type": "text", "message": "hi", "expertise_ids": [billing]}]), "steps[0].expertise_ids"),
        (json!([{"type": "forward_operator", "message": "go", "expertise_ids": [9999]}]), "steps[0].expertise_ids"),
        (
            json!([{"type": "text", "message": "a", "only_if_answer_ids": [5]},
                   {"type": "question_selection", "message": "?", "answers": [{"id": 5, "label": "x"}]}]),
            "steps[0].only_if_answer_ids",
        ),
        (json!([{"type": "question_selection", "message": "?", "answers": [{"label": ""}]}]), "steps[0].answers[0].label"),
        (json!([{"id": 1, "type": "text", "message": "a"}, {"id": 1, "type": "text", "message": "b"}]), "steps[1].id"),
        (json!([{"id": 0, "type": "text", "message": "a"}]), "steps[0].id"),
    ];
    for (steps, field) in cases {
        let res = s.post("/api/v1/chatbots", &s.admin, json!({"title": "Bad", "steps": steps})).await;
        assert_eq!(res.status, 400, "{steps}: {}", res.body);
        assert_eq!(res.error_code(), "bad_request");
        let message = res.body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(&format!("`{field}`")), "expected {field}, got {message}");
    }
    let unknown_type = s.post("/api/v1/chatbots", &s.admin, json!({"title": "Bad", "steps": [{"type": "dance", "message": "x"}]})).await;
    assert_eq!(unknown_type.status, 400);
    assert!(unknown_type.body["error"]["message"].as_str().unwrap().contains("steps[0]"), "{}", unknown_type.body);
    let no_title = s.post("/api/v1/chatbots", &s.admin, json!({"title": " ", "steps": [{"type": "text", "message": "x"}]})).await;
    assert_eq!(no_title.error_code(), "bad_request");
    let unknown_bot = s.post("/api/v1/channels", &s.admin, json!({"name": "X", "chatbot_id": 9999})).await;
    assert_eq!(unknown_bot.status, 400);
    assert_eq!(s.patch("/api/v1/chatbots/9999", &s.admin, json!({"title": "x"})).await.status, 404);
}

#[actix_rt::test]
async fn deleting_things_a_script_refers_to_keeps_everything_consistent() {
    let s = TestServer::start().await;
    let billing = s.expertise("Billing").await;
    let (chatbot, channel) = bot_channel(&s, &[], triage(billing)).await;
    s.call(reqwest::Method::DELETE, &format!("/api/v1/expertise/{billing}"), Some(&s.admin), None).await.expect(204);
    let script = s.get(&format!("/api/v1/chatbots/{chatbot}"), &s.admin).await.expect(200);
    assert_eq!(script["steps"][2]["expertise_ids"], json!([]));
    s.call(reqwest::Method::DELETE, &format!("/api/v1/chatbots/{chatbot}"), Some(&s.admin), None).await.expect(204);
    let channel_view = s.get(&format!("/api/v1/channels/{channel}"), &s.admin).await.expect(200);
    assert_eq!(channel_view["chatbot_id"], Value::Null);
    // Without its bot the channel forwards at once (nobody online: queued).
    let (_, visitor) = s.visit(channel, json!({})).await;
    assert_eq!(s.visitor_view(&visitor).await["status"], "queued");
}

#[actix_rt::test]
async fn the_demo_support_bot_routes_by_topic_and_asks_for_an_email_when_nobody_is_free() {
    let s = TestServer::start_with(|config| config.demo = true).await;
    let channels = s.get("/api/v1/channels", &s.admin).await.expect(200);
    let website = channels.as_array().unwrap().iter().find(|c| c["name"] == "Website").unwrap().clone();
    let channel = website["id"].as_u64().unwrap();
    assert!(website["chatbot_id"].is_u64());

    // Nobody online: the forward fails and the bot asks for an email.
    let (_, visitor) = s.visit(channel, json!({})).await;
    say(&s, &visitor, "Technical").await;
    let bodies = transcript(&s, &visitor).await;
    assert!(bodies.last().unwrap().contains("Leave your email"), "{bodies:?}");

    // Bob holds Technical: once he is online a Technical visitor reaches him.
    let bob_token = s.login("bob", "demo").await;
    let (mut bob_ws, _) = s.agent(&bob_token).await;
    let (_, visitor) = s.visit(channel, json!({})).await;
    say(&s, &visitor, "Technical").await;
    let assigned = bob_ws.next_of("assigned").await;
    assert_eq!(assigned["conversation"]["assignment"]["rule"], "all_expertise");
}
