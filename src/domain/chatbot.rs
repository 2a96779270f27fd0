//! Chatbot scripts: their definition and validation, and [`ScriptRun`], the
//! state of one script walking one conversation.
//!
//! A script is immutable once built and shared as `Arc<Chatbot>`: editing a
//! chatbot builds a new one, and conversations that started with the old
//! version keep it, so an edit never breaks a running conversation.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::assignment::IfNobody;
use super::text::{self, InvalidField};
use super::visitor::Detail;
use super::{AnswerId, ChatbotId, ExpertiseId, StepId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Posted, then the next step follows at once.
    Text,
    /// The visitor picks one of the step's answers.
    QuestionSelection,
    QuestionEmail,
    QuestionPhone,
    /// One message of free text.
    FreeInputSingle,
    /// Messages until an empty line or a pause.
    FreeInputMulti,
    /// Hand the conversation to an operator holding the step's expertise.
    ForwardOperator,
}

impl StepKind {
    /// Whether the script stops at this step until the visitor writes.
    fn waits_for_input(self) -> bool {
        !matches!(self, StepKind::Text | StepKind::ForwardOperator)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Answer {
    pub id: AnswerId,
    pub label: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub id: StepId,
    pub kind: StepKind,
    pub message: String,
    pub answers: Vec<Answer>,
    pub only_if_answer_ids: BTreeSet<AnswerId>,
    pub expertise_ids: BTreeSet<ExpertiseId>,
}

impl Step {
    /// A step runs unless it is conditional and none of its answers was picked.
    fn applies(&self, picked: &BTreeSet<AnswerId>) -> bool {
        self.only_if_answer_ids.is_empty() || !self.only_if_answer_ids.is_disjoint(picked)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chatbot {
    pub id: ChatbotId,
    pub title: String,
    pub steps: Vec<Step>,
}

/// A step as a client sends it; ids are optional (assigned when absent).
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
pub struct StepInput {
    pub id: Option<StepId>,
    #[serde(rename = "type")]
    pub kind: StepKind,
    pub message: String,
    pub answers: Option<Vec<AnswerInput>>,
    pub only_if_answer_ids: Option<Vec<AnswerId>>,
    pub expertise_ids: Option<Vec<ExpertiseId>>,
}

#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
pub struct AnswerInput {
    pub id: Option<AnswerId>,
    pub label: String,
}

/// Validates `steps` and gives every step and answer an id.
///
/// Client-chosen ids are kept (so one request can create a step and refer to
/// its answers, and a PATCH keeps ids stable); missing ones continue after the
/// largest given. Every error names the step, e.g. `steps[2].answers`.
///
/// # Errors
/// The first rule broken, naming the step and field.
pub fn build_steps(
    steps: Vec<StepInput>,
    expertise_exists: impl Fn(ExpertiseId) -> bool,
    max_message_chars: usize,
) -> Result<Vec<Step>, InvalidField> {
    if steps.is_empty() {
        return Err(InvalidField::new("steps", "must hold at least one step"));
    }
    let mut step_ids = IdPool::new(steps.iter().filter_map(|s| s.id.map(|id| id.0)));
    let mut answer_ids = IdPool::new(steps.iter().flat_map(|s| s.answers.iter().flatten()).filter_map(|a| a.id.map(|id| id.0)));
    // Which step (by index) offers each answer, for the "earlier steps only" rule.
    let mut answer_step: HashMap<AnswerId, usize> = HashMap::new();
    let mut built = Vec::with_capacity(steps.len());
    for (i, input) in steps.into_iter().enumerate() {
        let at = |field: &str| format!("steps[{i}]{field}");
        let id = StepId(step_ids.take(input.id.map(|id| id.0)).map_err(|reason| InvalidField::new(at(".id"), reason))?);
        let message = text::bounded(at(".message"), &input.message, max_message_chars)?;
        let answers = match (input.kind, input.answers) {
            (StepKind::QuestionSelection, Some(answers)) if !answers.is_empty() => {
                let mut labels = HashSet::new();
                let mut built_answers = Vec::with_capacity(answers.len());
                for (j, answer) in answers.into_iter().enumerate() {
                    let field = || at(&format!(".answers[{j}]"));
                    let id = AnswerId(answer_ids.take(answer.id.map(|id| id.0)).map_err(|reason| InvalidField::new(field(), reason))?);
                    let label = text::name(format!("{}.label", field()), &answer.label)?;
                    if !labels.insert(label.to_lowercase()) {
                        return Err(InvalidField::new(field(), format!("repeats the label {label:?} within the step")));
                    }
                    answer_step.insert(id, i);
                    built_answers.push(Answer { id, label });
                }
                built_answers
            }
            (StepKind::QuestionSelection, _) => {
                return Err(InvalidField::new(at(".answers"), "a question_selection step needs at least one answer"));
            }
            (_, Some(answers)) if !answers.is_empty() => {
                return Err(InvalidField::new(at(".answers"), "are only allowed on question_selection steps"));
            }
            _ => Vec::new(),
        };
        let expertise_ids: BTreeSet<ExpertiseId> = match (input.kind, input.expertise_ids) {
            (StepKind::ForwardOperator, Some(ids)) => ids.into_iter().collect(),
            (_, Some(ids)) if !ids.is_empty() => {
                return Err(InvalidField::new(at(".expertise_ids"), "are only allowed on forward_operator steps"));
            }
            _ => BTreeSet::new(),
        };
        if let Some(&unknown) = expertise_ids.iter().find(|&&e| !expertise_exists(e)) {
            return Err(InvalidField::new(at(".expertise_ids"), format!("names unknown expertise {unknown}")));
        }
        let only_if_answer_ids: BTreeSet<AnswerId> = input.only_if_answer_ids.unwrap_or_default().into_iter().collect();
        for answer in &only_if_answer_ids {
            match answer_step.get(answer) {
                Some(&step) if step < i => {}
                _ => {
                    return Err(InvalidField::new(
                        at(".only_if_answer_ids"),
                        format!("answer {answer} is not an answer of an earlier step"),
                    ));
                }
            }
        }
        built.push(Step { id, kind: input.kind, message, answers, only_if_answer_ids, expertise_ids });
    }
    Ok(built)
}

/// Hands out ids: client-chosen ones once each, then fresh ones after the largest.
struct IdPool {
    given: HashSet<u64>,
    used: HashSet<u64>,
    next: u64,
}

impl IdPool {
    fn new(given: impl Iterator<Item = u64>) -> IdPool {
        let given: HashSet<u64> = given.collect();
        let next = given.iter().copied().max().unwrap_or(0) + 1;
        IdPool { given, used: HashSet::new(), next }
    }

    fn take(&mut self, requested: Option<u64>) -> Result<u64, String> {
        let id = match requested {
            Some(0) => return Err("ids must be positive integers".into()),
            Some(id) => id,
            None => {
                while self.given.contains(&self.next) {
                    self.next += 1;
                }
                self.next += 1;
                self.next - 1
            }
        };
        if !self.used.insert(id) {
            return Err(format!("id {id} is used twice within the chatbot"));
        }
        Ok(id)
    }
}

/// What the bot does next, for the conversation actor to carry out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BotAction {
    /// Post `body` as the bot (with `answers` for a selection question).
    Say { step_id: StepId, body: String, answers: Vec<Answer> },
    /// Ask the router for an operator; `if_nobody` says whether to wait in
    /// the queue or report back so the script can go on.
    Forward { expertise_ids: BTreeSet<ExpertiseId>, if_nobody: IfNobody },
    /// The visitor answered an e-mail or phone question: keep it in their context.
    Learn(Detail),
}

/// One script walking one conversation.
#[derive(Clone, Debug)]
pub struct ScriptRun {
    pub script: Arc<Chatbot>,
    /// Index of the next step to consider.
    pub next: usize,
    /// Index of the step waiting for the visitor's input, if any.
    pub waiting: Option<usize>,
    /// Answers picked so far, for `only_if_answer_ids`.
    pub picked: BTreeSet<AnswerId>,
    /// Set once an operator took over (or the conversation was queued): the bot is silent.
    pub stopped: bool,
}

impl ScriptRun {
    pub fn new(script: Arc<Chatbot>) -> ScriptRun {
        ScriptRun { script, next: 0, waiting: None, picked: BTreeSet::new(), stopped: false }
    }

    /// The bot's display name.
    pub fn name(&self) -> &str {
        &self.script.title
    }

    /// Whether the bot still has something to say or ask.
    #[cfg(test)]
    pub fn is_active(&self) -> bool {
        !self.stopped && (self.waiting.is_some() || self.next < self.script.steps.len())
    }

    /// Whether the bot is gathering a `free_input_multi` answer.
    pub fn collecting_multi(&self) -> bool {
        !self.stopped && self.waiting.is_some_and(|i| self.script.steps[i].kind == StepKind::FreeInputMulti)
    }

    /// The step waiting for an answer, if it is the selection question `step_id`.
    ///
    /// # Errors
    /// `Err(None)` when that question is not the one waiting, `Err(Some(field))`
    /// for an answer id the question does not offer.
    pub fn answer_label(&self, step_id: StepId, answer_id: AnswerId) -> Result<&str, Option<InvalidField>> {
        let step = self.waiting.map(|i| &self.script.steps[i]).filter(|s| !self.stopped && s.id == step_id).ok_or(None)?;
        step.answers
            .iter()
            .find(|a| a.id == answer_id)
            .map(|a| a.label.as_str())
            .ok_or_else(|| Some(InvalidField::new("answer_id", format!("is not an answer of step {step_id}"))))
    }

    /// The label of an answer anywhere in the script, asked or not: what a
    /// resent answer stored.
    pub fn label_of(&self, step_id: StepId, answer_id: AnswerId) -> Option<&str> {
        let step = self.script.steps.iter().find(|s| s.id == step_id)?;
        step.answers.iter().find(|a| a.id == answer_id).map(|a| a.label.as_str())
    }

    /// Runs steps from `next` until one waits for input, forwards, or the script ends.
    pub fn advance(&mut self) -> Vec<BotAction> {
        let mut actions = Vec::new();
        if self.stopped || self.waiting.is_some() {
            return actions;
        }
        while let Some(step) = self.script.steps.get(self.next) {
            let index = self.next;
            self.next += 1;
            if !step.applies(&self.picked) {
                continue;
            }
            actions.push(BotAction::Say { step_id: step.id, body: step.message.clone(), answers: step.answers.clone() });
            if step.kind == StepKind::ForwardOperator {
                let more_follow = self.script.steps[self.next..].iter().any(|s| s.applies(&self.picked));
                let if_nobody = if more_follow { IfNobody::GoOn } else { IfNobody::Queue };
                actions.push(BotAction::Forward { expertise_ids: step.expertise_ids.clone(), if_nobody });
                break;
            }
            if step.kind.waits_for_input() {
                self.waiting = Some(index);
                break;
            }
        }
        actions
    }

    /// The visitor wrote `body` (already stored): check it against the waiting
    /// step and move on, or say what is wrong and ask again.
    pub fn on_input(&mut self, body: &str) -> Vec<BotAction> {
        let Some(step) = self.waiting.filter(|_| !self.stopped).map(|i| &self.script.steps[i]) else {
            return Vec::new();
        };
        let input = body.trim();
        let retry = |body: String| vec![BotAction::Say { step_id: step.id, body, answers: step.answers.clone() }];
        match step.kind {
            StepKind::QuestionSelection => match step.answers.iter().find(|a| a.label.eq_ignore_ascii_case(input)) {
                Some(answer) => {
                    self.picked.insert(answer.id);
                }
                None => return retry("Please pick one of the answers below.".into()),
            },
            StepKind::QuestionEmail if !text::is_email(input) => {
                return retry(format!("{input:?} does not look like an email address. Could you check it?"));
            }
            StepKind::QuestionPhone if !text::is_phone(input) => {
                return retry(format!("{input:?} does not look like a phone number. Could you check it?"));
            }
            StepKind::FreeInputMulti if !input.is_empty() => return Vec::new(),
            _ => {}
        }
        let learned = match step.kind {
            StepKind::QuestionEmail => Some(Detail::Email(input.to_owned())),
            StepKind::QuestionPhone => Some(Detail::Phone(input.to_owned())),
            _ => None,
        };
        self.waiting = None;
        learned.map(BotAction::Learn).into_iter().chain(self.advance()).collect()
    }

    /// The visitor paused long enough: a `free_input_multi` answer is complete.
    pub fn end_multi(&mut self) -> Vec<BotAction> {
        if self.collecting_multi() {
            self.on_input("")
        } else {
            Vec::new()
        }
    }

    /// The script reached its end by itself: nothing left to say or ask, and
    /// no operator took over (a forward that found nobody let it go on).
    pub fn ran_out(&self) -> bool {
        !self.stopped && self.waiting.is_none() && self.next >= self.script.steps.len()
    }

    /// An operator took over, or the conversation was queued: the bot falls silent.
    pub fn stop(&mut self) {
        self.stopped = true;
        self.waiting = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(kind: StepKind, message: &str) -> StepInput {
        StepInput { id: None, kind, message: message.into(), answers: None, only_if_answer_ids: None, expertise_ids: None }
    }

    fn answers(labels: &[(u64, &str)]) -> Option<Vec<AnswerInput>> {
        Some(labels.iter().map(|&(id, label)| AnswerInput { id: Some(AnswerId(id)), label: label.into() }).collect())
    }

    fn build(steps: Vec<StepInput>) -> Result<Vec<Step>, InvalidField> {
        build_steps(steps, |e| e.0 < 10, 4000)
    }

    fn triage() -> Arc<Chatbot> {
        let mut question = step(StepKind::QuestionSelection, "Topic?");
        question.answers = answers(&[(1, "Billing"), (2, "Other")]);
        let mut forward = step(StepKind::ForwardOperator, "Connecting you");
        forward.only_if_answer_ids = Some(vec![AnswerId(1)]);
        forward.expertise_ids = Some(vec![ExpertiseId(5)]);
        let steps = build(vec![step(StepKind::Text, "Hi"), question, forward, step(StepKind::QuestionEmail, "Your email?")]).unwrap();
        Arc::new(Chatbot { id: ChatbotId(1), title: "Bot".into(), steps })
    }

    #[test]
    fn ids_given_are_kept_and_missing_ones_follow_the_largest() {
        let mut first = step(StepKind::Text, "a");
        first.id = Some(StepId(7));
        let steps = build(vec![step(StepKind::Text, "b"), first, step(StepKind::Text, "c")]).unwrap();
        let ids: Vec<u64> = steps.iter().map(|s| s.id.0).collect();
        assert_eq!(ids, [8, 7, 9]);
    }

    #[test]
    fn every_rule_names_the_step() {
        let field = |steps| build(steps).unwrap_err().field.into_owned();
        assert_eq!(field(vec![]), "steps");
        assert_eq!(field(vec![step(StepKind::Text, "ok"), step(StepKind::Text, "  ")]), "steps[1].message");
        assert_eq!(field(vec![step(StepKind::QuestionSelection, "?")]), "steps[0].answers");
        let mut text_with_answers = step(StepKind::Text, "hi");
        text_with_answers.answers = answers(&[(1, "x")]);
        assert_eq!(field(vec![text_with_answers]), "steps[0].answers");
        let mut text_with_expertise = step(StepKind::Text, "hi");
        text_with_expertise.expertise_ids = Some(vec![ExpertiseId(1)]);
        assert_eq!(field(vec![text_with_expertise]), "steps[0].expertise_ids");
        let mut unknown_expertise = step(StepKind::ForwardOperator, "go");
        unknown_expertise.expertise_ids = Some(vec![ExpertiseId(99)]);
        assert_eq!(field(vec![unknown_expertise]), "steps[0].expertise_ids");
        let mut early = step(StepKind::Text, "early");
        early.only_if_answer_ids = Some(vec![AnswerId(1)]);
        let mut question = step(StepKind::QuestionSelection, "?");
        question.answers = answers(&[(1, "x")]);
        assert_eq!(field(vec![early, question.clone()]), "steps[0].only_if_answer_ids");
        let mut own = question.clone();
        own.only_if_answer_ids = Some(vec![AnswerId(1)]);
        assert_eq!(field(vec![own]), "steps[0].only_if_answer_ids");
        assert_eq!(field(vec![question.clone(), question]), "steps[1].answers[0]");
    }

    #[test]
    fn a_selection_leads_to_its_conditional_forward() {
        let mut run = ScriptRun::new(triage());
        let actions = run.advance();
        assert_eq!(actions.len(), 2, "greeting then question: {actions:?}");
        assert!(matches!(&actions[1], BotAction::Say { answers, .. } if answers.len() == 2));
        let actions = run.on_input(" billing ");
        assert_eq!(actions.len(), 2);
        assert_eq!(actions[1], BotAction::Forward { expertise_ids: [ExpertiseId(5)].into(), if_nobody: IfNobody::GoOn });
        // Nobody answered the forward: the email question follows.
        let actions = run.advance();
        assert!(matches!(&actions[..], [BotAction::Say { body, .. }] if body == "Your email?"));
    }

    #[test]
    fn the_other_branch_skips_the_forward() {
        let mut run = ScriptRun::new(triage());
        run.advance();
        let actions = run.on_input("Other");
        assert!(matches!(&actions[..], [BotAction::Say { body, .. }] if body == "Your email?"));
    }

    #[test]
    fn invalid_input_is_asked_again_without_advancing() {
        let mut run = ScriptRun::new(triage());
        run.advance();
        assert!(matches!(&run.on_input("neither")[..], [BotAction::Say { answers, .. }] if answers.len() == 2));
        run.on_input("Other");
        assert_eq!(run.on_input("not an email").len(), 1);
        assert!(run.is_active());
        assert_eq!(run.on_input(" ann@example.com ")[..], [BotAction::Learn(Detail::Email("ann@example.com".into()))]);
        assert!(!run.is_active());
    }

    #[test]
    fn email_and_phone_checks() {
        assert!(text::is_email("a.b+c@example.co.uk"));
        for bad in ["", "a@", "@b.c", "a b@c.d", "a@b", "a@@b.c", "a@b..c"] {
            assert!(!text::is_email(bad), "{bad}");
        }
        assert!(text::is_phone("+32 (0)2 123 45 67"));
        for bad in ["12345", "call me", "12+345678", "1234567890123456"] {
            assert!(!text::is_phone(bad), "{bad}");
        }
    }
}
