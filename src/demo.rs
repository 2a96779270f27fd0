//! `--demo`: a sample team so a newcomer can try routing at once.
//! The logins are documented in README.md; every demo password is `demo`.

use anyhow::Context as _;

use crate::auth::hash_password;
use crate::domain::chatbot::{AnswerInput, StepInput, StepKind};
use crate::domain::directory::{ChannelPatch, Directory, NewChannel, NewOperator, OperatorPatch};
use crate::domain::operator::Role;
use crate::domain::{AnswerId, ChatbotId, ExpertiseId};

/// Adds expertise, four operators and a "Website" channel to `directory`.
///
/// # Errors
/// When a demo record clashes with an existing one.
pub fn seed(directory: &mut Directory) -> anyhow::Result<()> {
    let empty = Default::default();
    let billing = directory.create_expertise("Billing", &empty)?;
    let technical = directory.create_expertise("Technical", &empty)?;
    let sales = directory.create_expertise("Sales", &empty)?;
    // unwrap: a fixed, valid password.
    let password_hash = hash_password("demo").unwrap();
    let team = [
        ("alice", "Alice Martin", vec!["en", "fr"], Some("BE"), vec![billing]),
        ("bob", "Bob Dupont", vec!["fr"], Some("FR"), vec![technical]),
        ("carol", "Carol Smith", vec!["en"], Some("US"), vec![sales, billing]),
        ("dave", "Dave Jones", vec!["en"], Some("GB"), vec![]),
    ];
    let mut operator_ids = std::collections::BTreeSet::new();
    for (login, name, languages, country, expertise) in team {
        let new = NewOperator {
            login: login.into(),
            name: name.into(),
            password_hash: password_hash.clone(),
            role: Role::User,
            languages: languages.into_iter().map(String::from).collect(),
            country: country.map(String::from),
        };
        let id = directory.create_operator(new).with_context(|| format!("demo user {login}"))?.id;
        directory.update_operator(id, OperatorPatch { expertise_ids: Some(expertise.into_iter().collect()), ..Default::default() })?;
        operator_ids.insert(id);
    }
    let channel = directory
        .create_channel(NewChannel {
            name: "Website".into(),
            operator_ids,
            max_sessions: Some(5),
            chatbot_id: None,
            options: Default::default(),
            notify_email: None,
        })?
        .id;
    let chatbot_id = support_bot(directory, [billing, technical, sales])?;
    directory.update_channel(channel, ChannelPatch { chatbot_id: Some(Some(chatbot_id)), ..Default::default() })?;
    tracing::info!("demo team seeded: alice, bob, carol, dave (password `demo`), channel \"Website\" with the \"Support bot\"");
    Ok(())
}

/// Greets, asks for the topic, forwards to an operator holding the matching
/// expertise, and asks for an email when nobody is available.
fn support_bot(directory: &mut Directory, topics: [ExpertiseId; 3]) -> anyhow::Result<ChatbotId> {
    let step = |kind, message: &str| StepInput {
        id: None,
        kind,
        message: message.into(),
        answers: None,
        only_if_answer_ids: None,
        expertise_ids: None,
    };
    let labels = ["Billing", "Technical", "Sales"];
    let mut question = step(StepKind::QuestionSelection, "What do you need help with?");
    question.answers =
        Some(labels.iter().zip(1..).map(|(label, id)| AnswerInput { id: Some(AnswerId(id)), label: (*label).into() }).collect());
    let mut steps = vec![step(StepKind::Text, "Hello! I'm the Switchboard support bot."), question];
    for ((label, expertise), answer) in labels.iter().zip(topics).zip(1..) {
        let mut forward = step(StepKind::ForwardOperator, &format!("Let me find someone from {label} for you."));
        forward.only_if_answer_ids = Some(vec![AnswerId(answer)]);
        forward.expertise_ids = Some(vec![expertise]);
        steps.push(forward);
    }
    steps.push(step(StepKind::QuestionEmail, "Nobody is available right now. Leave your email and we'll get back to you."));
    steps.push(step(StepKind::Text, "Thanks! We'll be in touch soon."));
    Ok(directory.create_chatbot("Support bot", steps, 4000)?.id)
}
