//! The routing report: does skills routing work? Per expertise and per
//! operator, computed from what each conversation remembers of its routing.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

use super::assignment::Rule;
use super::conversation::{Assignment, AuthorKind, Conversation, HelpRequest, Kind};
use super::directory::Directory;
use super::lead::Lead;
use super::time::Timestamp;
use super::{ChannelId, ConversationId, ExpertiseId, OperatorId};

/// What one conversation contributes to the report.
#[derive(Clone, Debug)]
pub struct Facts {
    pub id: ConversationId,
    pub channel: Option<ChannelId>,
    pub created_at: Timestamp,
    pub expertise: BTreeSet<ExpertiseId>,
    /// Every assignment, oldest first.
    pub history: Vec<Assignment>,
    /// The first message an operator wrote to the visitor after the first assignment.
    pub first_reply: Option<Timestamp>,
    pub help_requests: Vec<HelpRequest>,
    pub abandoned: bool,
    /// The visitor's score (archived conversations only).
    pub rating: Option<u8>,
    /// It ended without an operator: a lead (`Lead::of`).
    pub missed: bool,
}

impl Facts {
    /// `None` for direct conversations: they are not routed.
    pub fn of(c: &Conversation) -> Option<Facts> {
        if c.kind != Kind::Livechat {
            return None;
        }
        let first_assigned = c.history.first().map(|a| a.at);
        let first_reply = first_assigned.and_then(|since| {
            c.messages()
                .iter()
                .find(|m| m.author.kind == AuthorKind::Operator && !m.internal && m.created_at >= since)
                .map(|m| m.created_at)
        });
        Some(Facts {
            id: c.id,
            channel: c.channel_id,
            created_at: c.created_at,
            expertise: c.expertise_ids.clone(),
            history: c.history.clone(),
            first_reply,
            help_requests: c.help_requests.clone(),
            abandoned: c.abandoned,
            rating: c.rating.as_ref().map(|r| r.score),
            missed: Lead::of(c).is_some(),
        })
    }
}

/// Which conversations a report covers: created in `[from, to)`, on `channel`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Scope {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub channel: Option<ChannelId>,
}

impl Scope {
    pub fn covers(&self, f: &Facts) -> bool {
        self.from.is_none_or(|from| f.created_at >= from)
            && self.to.is_none_or(|to| f.created_at < to)
            && self.channel.is_none_or(|channel| f.channel == Some(channel))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ExpertiseRow {
    pub expertise_id: ExpertiseId,
    pub name: String,
    /// Conversations that wanted this expertise.
    pub conversations: u32,
    /// Of those, how many an operator served, and how many an operator holding it.
    pub served: u32,
    pub served_by_expert: u32,
    /// `served_by_expert / served`; null when none was served.
    pub served_by_expert_share: Option<f64>,
    /// Seconds from the visitor's arrival to the first assignment.
    pub time_to_operator_p50_s: Option<f64>,
    pub time_to_operator_p90_s: Option<f64>,
    /// Seconds from the first assignment to the first operator message.
    pub time_to_first_reply_p50_s: Option<f64>,
    pub time_to_first_reply_p90_s: Option<f64>,
    pub need_help_requests: u32,
    /// Seconds from a call for help until someone joined (answered calls only).
    pub time_to_join_p50_s: Option<f64>,
    pub time_to_join_p90_s: Option<f64>,
    /// Visitors who left while queued.
    pub abandoned_in_queue: u32,
    /// Conversations that ended without an operator: leads (`GET /leads`).
    pub missed: u32,
    #[serde(flatten)]
    pub ratings: Ratings,
}

/// How visitors rated: how many ratings, and the share of each score
/// (1 unhappy, 3 neutral, 5 happy); the shares are null without ratings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Ratings {
    pub ratings: u32,
    pub rating_1_share: Option<f64>,
    pub rating_3_share: Option<f64>,
    pub rating_5_share: Option<f64>,
}

impl Ratings {
    fn of(scores: impl IntoIterator<Item = u8>) -> Ratings {
        let scores: Vec<u8> = scores.into_iter().collect();
        let share = |score: u8| (!scores.is_empty()).then(|| scores.iter().filter(|&&s| s == score).count() as f64 / scores.len() as f64);
        Ratings { ratings: scores.len() as u32, rating_1_share: share(1), rating_3_share: share(3), rating_5_share: share(5) }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct OperatorRow {
    pub operator_id: OperatorId,
    pub name: String,
    /// Conversations given to them, reassignments to them included.
    pub assignments: u32,
    /// Conversations taken from them because they did not answer or went offline.
    pub reassignments: u32,
    pub active_chats: u32,
    /// Ratings of the conversations they had at the end.
    #[serde(flatten)]
    pub ratings: Ratings,
}

/// Nearest-rank percentile of seconds; `None` for no samples.
fn percentile(samples: &mut [f64], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(f64::total_cmp);
    let rank = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    Some(samples[rank - 1])
}

fn seconds(later: Timestamp, earlier: Timestamp) -> f64 {
    later.millis_since(earlier) as f64 / 1000.0
}

/// One row per expertise of the directory.
pub fn expertise_rows(facts: &[Facts], directory: &Directory) -> Vec<ExpertiseRow> {
    directory
        .expertise()
        .map(|e| {
            let wanting: Vec<&Facts> = facts.iter().filter(|f| f.expertise.contains(&e.id)).collect();
            let served: Vec<&Facts> = wanting.iter().copied().filter(|f| !f.history.is_empty()).collect();
            let served_by_expert = served
                .iter()
                .filter(|f| {
                    f.history.last().and_then(|a| directory.operator(a.operator_id)).is_some_and(|op| op.expertise_ids.contains(&e.id))
                })
                .count() as u32;
            let mut to_operator: Vec<f64> = served.iter().filter_map(|f| Some(seconds(f.history.first()?.at, f.created_at))).collect();
            let mut to_reply: Vec<f64> = served.iter().filter_map(|f| Some(seconds(f.first_reply?, f.history.first()?.at))).collect();
            let requests: Vec<&HelpRequest> = wanting.iter().flat_map(|f| &f.help_requests).collect();
            let mut to_join: Vec<f64> = requests.iter().filter_map(|h| Some(seconds(h.joined_at?, h.at))).collect();
            ExpertiseRow {
                expertise_id: e.id,
                name: e.name.clone(),
                conversations: wanting.len() as u32,
                served: served.len() as u32,
                served_by_expert,
                served_by_expert_share: (!served.is_empty()).then(|| f64::from(served_by_expert) / served.len() as f64),
                time_to_operator_p50_s: percentile(&mut to_operator, 0.5),
                time_to_operator_p90_s: percentile(&mut to_operator, 0.9),
                time_to_first_reply_p50_s: percentile(&mut to_reply, 0.5),
                time_to_first_reply_p90_s: percentile(&mut to_reply, 0.9),
                need_help_requests: requests.len() as u32,
                time_to_join_p50_s: percentile(&mut to_join, 0.5),
                time_to_join_p90_s: percentile(&mut to_join, 0.9),
                abandoned_in_queue: wanting.iter().filter(|f| f.abandoned).count() as u32,
                missed: wanting.iter().filter(|f| f.missed).count() as u32,
                ratings: Ratings::of(wanting.iter().filter_map(|f| f.rating)),
            }
        })
        .collect()
}

/// One row per operator of the directory.
pub fn operator_rows(facts: &[Facts], directory: &Directory, active_chats: &HashMap<OperatorId, u32>) -> Vec<OperatorRow> {
    let mut assignments: HashMap<OperatorId, u32> = HashMap::new();
    let mut reassignments: HashMap<OperatorId, u32> = HashMap::new();
    let mut scores: HashMap<OperatorId, Vec<u8>> = HashMap::new();
    for f in facts {
        for (i, a) in f.history.iter().enumerate() {
            *assignments.entry(a.operator_id).or_default() += 1;
            // Taken away by the router (a transfer is the operator's own choice).
            if f.history.get(i + 1).is_some_and(|next| next.rule == Rule::Reassigned) {
                *reassignments.entry(a.operator_id).or_default() += 1;
            }
        }
        if let (Some(score), Some(last)) = (f.rating, f.history.last()) {
            scores.entry(last.operator_id).or_default().push(score);
        }
    }
    directory
        .operators()
        .map(|op| OperatorRow {
            operator_id: op.id,
            name: op.name.clone(),
            assignments: assignments.get(&op.id).copied().unwrap_or(0),
            reassignments: reassignments.get(&op.id).copied().unwrap_or(0),
            active_chats: active_chats.get(&op.id).copied().unwrap_or(0),
            ratings: Ratings::of(scores.remove(&op.id).unwrap_or_default()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut samples = vec![5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(percentile(&mut samples, 0.5), Some(3.0));
        assert_eq!(percentile(&mut samples, 0.9), Some(5.0));
        assert_eq!(percentile(&mut [7.0], 0.9), Some(7.0));
        assert_eq!(percentile(&mut [], 0.5), None);
    }
}
