//! The routing rule: which available operator gets a visitor.
//!
//! Odoo's preference cascade (API.md "Routing"), first non-empty level wins,
//! with a deterministic tie-break instead of Odoo's random pick so that tests
//! and support staff can predict and explain every decision.

use std::collections::BTreeSet;

use serde::Serialize;

use super::operator::Operator;
use super::text::primary_language;
use super::{ExpertiseId, OperatorId};

/// The cascade level that chose an operator, as recorded in `assignment.rule`.
///
/// Variants are in cascade order: a lower variant is a better match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    PreviousOperator,
    LangAllExpertise,
    LangAnyExpertise,
    Lang,
    CountryAllExpertise,
    CountryAnyExpertise,
    Country,
    AllExpertise,
    AnyExpertise,
    AnyOperator,
    /// `expert_wait_s` ran out with no expert available: anyone may take it.
    ExpertWaitExpired,
    /// Passed on from an operator who did not answer or went offline.
    Reassigned,
    /// Handed over by a member (`POST /conversations/{id}/transfer`).
    Transferred,
}

/// How the cascade ranks its levels: a channel option (`routing_order`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoutingOrder {
    /// Odoo's cascade: language, then country, then expertise.
    #[default]
    Odoo,
    /// Wanted expertise first (all of it, then any), each by language, then
    /// country; only without any holder do language and country alone follow.
    /// For teams whose chatbot promises "an agent with matching expertise".
    ExpertiseFirst,
}

impl RoutingOrder {
    /// The place of `rule` in this order: lower is better. Rule names stay
    /// those of the level that matched; only their order changes.
    fn rank(self, rule: Rule) -> usize {
        const EXPERTISE_FIRST: [Rule; 10] = [
            Rule::PreviousOperator,
            Rule::LangAllExpertise,
            Rule::CountryAllExpertise,
            Rule::AllExpertise,
            Rule::LangAnyExpertise,
            Rule::CountryAnyExpertise,
            Rule::AnyExpertise,
            Rule::Lang,
            Rule::Country,
            Rule::AnyOperator,
        ];
        match self {
            RoutingOrder::Odoo => rule as usize,
            RoutingOrder::ExpertiseFirst => EXPERTISE_FIRST.iter().position(|&r| r == rule).unwrap_or(rule as usize),
        }
    }
}

/// What a forward to an operator does when nobody can take the conversation now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfNobody {
    /// Wait in the channel's queue (a visitor with no chatbot, or the script's last forward).
    Queue,
    /// Report back, so the chatbot goes on with its script.
    GoOn,
}

/// What the visitor brings to the decision.
#[derive(Clone, Copy, Debug)]
pub struct Need<'a> {
    /// The operator who last served this visitor on this channel.
    pub previous: Option<OperatorId>,
    pub lang: Option<&'a str>,
    pub country: Option<&'a str>,
    pub expertise: &'a BTreeSet<ExpertiseId>,
    pub order: RoutingOrder,
}

/// A short ASCII code (a language's primary subtag, a country) folded to
/// lower case and packed into an integer, so comparing two is one instruction.
/// Validation keeps operators' codes to 2–3 letters; a longer visitor code
/// has no `Code`, and so matches nobody, which is what a string compare said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Code(u64);

impl Code {
    fn of(s: &str) -> Option<Code> {
        // A NUL would pack like the end of a shorter code.
        if s.len() > 8 || !s.bytes().all(|b| b.is_ascii() && b != 0) {
            return None;
        }
        let mut bytes = [0u8; 8];
        for (b, c) in bytes.iter_mut().zip(s.bytes()) {
            *b = c.to_ascii_lowercase();
        }
        Some(Code(u64::from_le_bytes(bytes)))
    }
}

/// A set of expertise with a one-word summary (bit `id % 64`). Two sets whose
/// ids are all below 64 — a team's first expertise — are compared by the
/// summaries alone (one AND, one popcount); beyond that the summary still
/// answers "none in common", the usual answer for most of a team, before the
/// sorted ids are searched.
#[derive(Clone, Debug, Default)]
pub struct ExpertiseSet {
    summary: u64,
    /// Every id is below 64: the summary is the set.
    small: bool,
    ids: Box<[ExpertiseId]>,
}

impl ExpertiseSet {
    pub fn of(ids: &BTreeSet<ExpertiseId>) -> ExpertiseSet {
        ExpertiseSet {
            summary: ids.iter().fold(0, |s, id| s | 1 << (id.0 % 64)),
            small: ids.iter().all(|id| id.0 < 64),
            ids: ids.iter().copied().collect(),
        }
    }

    /// How many of `wanted` this set holds.
    fn held(&self, wanted: &ExpertiseSet) -> usize {
        let common = self.summary & wanted.summary;
        if common == 0 {
            0
        } else if self.small && wanted.small {
            common.count_ones() as usize
        } else {
            wanted.ids.iter().filter(|id| self.ids.binary_search(id).is_ok()).count()
        }
    }
}

/// An operator as the cascade compares them, reduced once from their
/// profile (when it changes), not at every decision: a decision over 1,000
/// candidates is then integer compares, no string or tree walks.
#[derive(Clone, Debug, Default)]
pub struct Profile {
    /// Primary subtags: `pt-BR` and `pt` speak the same language.
    languages: Box<[Code]>,
    country: Option<Code>,
    expertise: ExpertiseSet,
}

impl Profile {
    pub fn new(languages: &[String], country: Option<&str>, expertise: &BTreeSet<ExpertiseId>) -> Profile {
        Profile {
            languages: languages.iter().filter_map(|l| Code::of(primary_language(l))).collect(),
            country: country.and_then(Code::of),
            expertise: ExpertiseSet::of(expertise),
        }
    }

    pub fn of(operator: &Operator) -> Profile {
        Profile::new(&operator.languages, operator.country.as_deref(), &operator.expertise_ids)
    }

    /// Whether the operator holds any of `wanted`.
    pub fn holds_any(&self, wanted: &ExpertiseSet) -> bool {
        self.expertise.held(wanted) > 0
    }
}

/// An operator who is online and below the channel's `max_sessions`.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    pub id: OperatorId,
    pub profile: &'a Profile,
    /// Open livechats the operator is a member of, over all channels.
    pub active_chats: u32,
    /// Sequence number of the operator's last assignment; 0 = never, so it sorts first.
    pub last_assigned: u64,
}

/// A routing decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pick {
    pub operator: OperatorId,
    pub rule: Rule,
    /// How many candidates there were in all (not only at the winning level).
    pub candidates: u32,
}

/// [`Need`] in [`Profile`]'s terms, once per decision rather than per candidate.
struct Wanted {
    previous: Option<OperatorId>,
    lang: Option<Code>,
    country: Option<Code>,
    expertise: ExpertiseSet,
}

/// The best cascade level `candidate` reaches for `wanted`.
#[inline]
fn level(wanted: &Wanted, candidate: &Candidate) -> Rule {
    let profile = candidate.profile;
    let held = profile.expertise.held(&wanted.expertise);
    let n_wanted = wanted.expertise.ids.len();
    // The previous operator comes first only if they can help with what the
    // visitor asks for now: a returning visitor who names another expertise
    // should reach an expert, not whoever served them last time.
    if wanted.previous == Some(candidate.id) && (n_wanted == 0 || held > 0) {
        return Rule::PreviousOperator;
    }
    let all = n_wanted > 0 && held == n_wanted;
    let any = held > 0;
    let same_lang = wanted.lang.is_some_and(|lang| profile.languages.contains(&lang));
    let same_country = wanted.country.is_some() && wanted.country == profile.country;
    match (same_lang, same_country, all, any) {
        (true, _, true, _) => Rule::LangAllExpertise,
        (true, _, _, true) => Rule::LangAnyExpertise,
        (true, _, _, _) => Rule::Lang,
        (_, true, true, _) => Rule::CountryAllExpertise,
        (_, true, _, true) => Rule::CountryAnyExpertise,
        (_, true, _, _) => Rule::Country,
        (_, _, true, _) => Rule::AllExpertise,
        (_, _, _, true) => Rule::AnyExpertise,
        _ => Rule::AnyOperator,
    }
}

/// Picks the operator for `need` among `candidates`, or `None` when there are none.
///
/// Within the best level: fewest active chats, then longest since the last
/// assignment, then lowest id. One pass over the candidates.
pub fn pick_operator<'a>(need: &Need, candidates: impl IntoIterator<Item = Candidate<'a>>) -> Option<Pick> {
    let wanted = Wanted {
        previous: need.previous,
        lang: need.lang.and_then(|l| Code::of(primary_language(l))),
        country: need.country.and_then(Code::of),
        expertise: ExpertiseSet::of(need.expertise),
    };
    let mut n_candidates = 0u32;
    let mut best: Option<((usize, u32, u64, OperatorId), Rule)> = None;
    for candidate in candidates {
        n_candidates += 1;
        let rule = level(&wanted, &candidate);
        let key = (need.order.rank(rule), candidate.active_chats, candidate.last_assigned, candidate.id);
        if best.is_none_or(|(b, _)| key < b) {
            best = Some((key, rule));
        }
    }
    best.map(|((_, _, _, operator), rule)| Pick { operator, rule, candidates: n_candidates })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Op {
        id: u64,
        languages: Vec<String>,
        country: Option<&'static str>,
        expertise: BTreeSet<ExpertiseId>,
        active: u32,
        last: u64,
    }

    fn op(id: u64, langs: &[&str], country: Option<&'static str>, expertise: &[u64]) -> Op {
        Op {
            id,
            languages: langs.iter().map(|l| l.to_string()).collect(),
            country,
            expertise: expertise.iter().map(|&e| ExpertiseId(e)).collect(),
            active: 0,
            last: 0,
        }
    }

    fn pick(need: &Need, ops: &[Op]) -> Option<(u64, Rule)> {
        let profiles: Vec<Profile> = ops.iter().map(|o| Profile::new(&o.languages, o.country, &o.expertise)).collect();
        let candidates = ops.iter().zip(&profiles).map(|(o, profile)| Candidate {
            id: OperatorId(o.id),
            profile,
            active_chats: o.active,
            last_assigned: o.last,
        });
        pick_operator(need, candidates).map(|p| (p.operator.0, p.rule))
    }

    fn need<'a>(lang: Option<&'a str>, country: Option<&'a str>, expertise: &'a BTreeSet<ExpertiseId>) -> Need<'a> {
        Need { previous: None, lang, country, expertise, order: RoutingOrder::Odoo }
    }

    #[test]
    fn each_cascade_level_wins_over_the_next() {
        let wanted: BTreeSet<_> = [ExpertiseId(1), ExpertiseId(2)].into();
        let mut ops = vec![
            op(10, &[], None, &[]),              // any_operator
            op(9, &[], None, &[1]),              // any_expertise
            op(8, &[], None, &[1, 2]),           // all_expertise
            op(7, &[], Some("BE"), &[]),         // country
            op(6, &[], Some("BE"), &[2]),        // country_any
            op(5, &[], Some("BE"), &[1, 2]),     // country_all
            op(4, &["fr"], None, &[]),           // lang
            op(3, &["fr"], None, &[1]),          // lang_any
            op(2, &["fr-BE"], None, &[1, 2, 3]), // lang_all
            op(1, &[], None, &[2]),              // previous, holding some of the wanted expertise
        ];
        let expected = [
            (1, Rule::PreviousOperator),
            (2, Rule::LangAllExpertise),
            (3, Rule::LangAnyExpertise),
            (4, Rule::Lang),
            (5, Rule::CountryAllExpertise),
            (6, Rule::CountryAnyExpertise),
            (7, Rule::Country),
            (8, Rule::AllExpertise),
            (9, Rule::AnyExpertise),
            (10, Rule::AnyOperator),
        ];
        for (id, rule) in expected {
            let mut n = need(Some("fr"), Some("be"), &wanted);
            n.previous = Some(OperatorId(1));
            assert_eq!(pick(&n, &ops), Some((id, rule)), "expected operator {id}");
            ops.retain(|o| o.id != id);
        }
        assert_eq!(pick(&need(None, None, &wanted), &ops), None);
    }

    /// `expertise_first`: every level holding all wanted expertise beats every
    /// level holding some, which beats language and country alone; the rule
    /// names are those of the level that matched.
    #[test]
    fn expertise_first_ranks_holders_before_language_and_country() {
        let wanted: BTreeSet<_> = [ExpertiseId(1), ExpertiseId(2)].into();
        let mut ops = vec![
            op(10, &[], None, &[]),          // any_operator
            op(9, &[], Some("BE"), &[]),     // country
            op(8, &["fr"], None, &[]),       // lang
            op(7, &[], None, &[1]),          // any_expertise
            op(6, &[], Some("BE"), &[2]),    // country_any
            op(5, &["fr"], None, &[1]),      // lang_any
            op(4, &[], None, &[1, 2]),       // all_expertise
            op(3, &[], Some("BE"), &[1, 2]), // country_all
            op(2, &["fr"], None, &[1, 2]),   // lang_all
            op(1, &[], None, &[2]),          // previous, holding some
        ];
        let expected = [
            (1, Rule::PreviousOperator),
            (2, Rule::LangAllExpertise),
            (3, Rule::CountryAllExpertise),
            (4, Rule::AllExpertise),
            (5, Rule::LangAnyExpertise),
            (6, Rule::CountryAnyExpertise),
            (7, Rule::AnyExpertise),
            (8, Rule::Lang),
            (9, Rule::Country),
            (10, Rule::AnyOperator),
        ];
        for (id, rule) in expected {
            let mut n = need(Some("fr"), Some("be"), &wanted);
            n.previous = Some(OperatorId(1));
            n.order = RoutingOrder::ExpertiseFirst;
            assert_eq!(pick(&n, &ops), Some((id, rule)), "expected operator {id}");
            ops.retain(|o| o.id != id);
        }
    }

    /// Rule 1 serves a returning visitor's previous operator only when they hold
    /// some of what is wanted now (or nothing is wanted): a visitor who asks the
    /// chatbot for Billing reaches a Billing expert, not last week's operator.
    #[test]
    fn the_previous_operator_comes_first_only_with_the_wanted_expertise() {
        let billing: BTreeSet<_> = [ExpertiseId(1)].into();
        let none = BTreeSet::new();
        let ops = [op(1, &[], None, &[]), op(2, &[], None, &[1])];
        let mut wants_billing = need(None, None, &billing);
        wants_billing.previous = Some(OperatorId(1));
        assert_eq!(pick(&wants_billing, &ops), Some((2, Rule::AllExpertise)));
        let mut wants_nothing = need(None, None, &none);
        wants_nothing.previous = Some(OperatorId(1));
        assert_eq!(pick(&wants_nothing, &ops), Some((1, Rule::PreviousOperator)));
        wants_billing.previous = Some(OperatorId(2));
        assert_eq!(pick(&wants_billing, &ops), Some((2, Rule::PreviousOperator)));
    }

    #[test]
    fn no_wanted_expertise_skips_the_expertise_levels() {
        let none = BTreeSet::new();
        let ops = [op(1, &["en"], None, &[1]), op(2, &["fr"], None, &[])];
        assert_eq!(pick(&need(Some("fr"), None, &none), &ops), Some((2, Rule::Lang)));
        assert_eq!(pick(&need(None, None, &none), &ops), Some((1, Rule::AnyOperator)));
    }

    #[test]
    fn ties_go_to_fewest_chats_then_longest_idle_then_lowest_id() {
        let none = BTreeSet::new();
        let mut ops = vec![op(3, &[], None, &[]), op(2, &[], None, &[]), op(1, &[], None, &[])];
        assert_eq!(pick(&need(None, None, &none), &ops).unwrap().0, 1);
        ops[2].last = 5; // 1 was assigned most recently
        ops[1].last = 4;
        assert_eq!(pick(&need(None, None, &none), &ops).unwrap().0, 3);
        ops[0].active = 1;
        assert_eq!(pick(&need(None, None, &none), &ops).unwrap().0, 2);
    }

    #[test]
    fn candidates_counts_every_eligible_operator() {
        let none = BTreeSet::new();
        let profile = Profile::default();
        let candidates = (1..=2).map(|id| Candidate { id: OperatorId(id), profile: &profile, active_chats: 0, last_assigned: 0 });
        assert_eq!(pick_operator(&need(None, None, &none), candidates).unwrap().candidates, 2);
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// API.md's cascade, written out literally as ten filters: the
        /// reference `pick_operator` must agree with.
        fn reference(need: &Need, ops: &[Op]) -> Option<(u64, Rule)> {
            let lang = |o: &Op| need.lang.is_some_and(|l| o.languages.iter().any(|x| primary_language(x) == primary_language(l)));
            let country = |o: &Op| need.country.is_some_and(|c| o.country == Some(c));
            let all = |o: &Op| !need.expertise.is_empty() && need.expertise.iter().all(|e| o.expertise.contains(e));
            let any = |o: &Op| need.expertise.iter().any(|e| o.expertise.contains(e));
            type Fits<'a> = Box<dyn Fn(&Op) -> bool + 'a>;
            let levels: [(Rule, Fits); 10] = [
                (
                    Rule::PreviousOperator,
                    Box::new(|o: &Op| need.previous == Some(OperatorId(o.id)) && (need.expertise.is_empty() || any(o))),
                ),
                (Rule::LangAllExpertise, Box::new(|o: &Op| lang(o) && all(o))),
                (Rule::LangAnyExpertise, Box::new(|o: &Op| lang(o) && any(o))),
                (Rule::Lang, Box::new(lang)),
                (Rule::CountryAllExpertise, Box::new(|o: &Op| country(o) && all(o))),
                (Rule::CountryAnyExpertise, Box::new(|o: &Op| country(o) && any(o))),
                (Rule::Country, Box::new(country)),
                (Rule::AllExpertise, Box::new(all)),
                (Rule::AnyExpertise, Box::new(any)),
                (Rule::AnyOperator, Box::new(|_: &Op| true)),
            ];
            levels
                .iter()
                .find_map(|(rule, fits)| ops.iter().filter(|o| fits(o)).min_by_key(|o| (o.active, o.last, o.id)).map(|o| (o.id, *rule)))
        }

        /// Ids that share a bit of [`ExpertiseSet`]'s summary (1, 65, 129 and
        /// 2, 66), so a summary that answered alone would be caught out.
        fn expertise_id() -> impl Strategy<Value = u64> {
            prop::sample::select(vec![1u64, 2, 3, 4, 65, 66, 129])
        }

        fn operators() -> impl Strategy<Value = Vec<Op>> {
            let one = (
                prop::collection::vec(prop::sample::select(vec!["en", "fr", "de", "en-gb"]), 0..3),
                prop::option::of(prop::sample::select(vec!["BE", "FR", "DE"])),
                prop::collection::btree_set(expertise_id(), 0..4),
                0u32..4,
                0u64..5,
            );
            prop::collection::vec(one, 0..12).prop_map(|ops| {
                ops.into_iter()
                    .enumerate()
                    .map(|(i, (langs, country, expertise, active, last))| {
                        let mut o = op(i as u64 + 1, &langs, country, &expertise.into_iter().collect::<Vec<_>>());
                        o.active = active;
                        o.last = last;
                        o
                    })
                    .collect()
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(3000))]

            /// The pick is a candidate, from the first non-empty cascade level, with the documented tie-break.
            #[test]
            fn pick_follows_the_documented_cascade(
                ops in operators(),
                previous in prop::option::of(1u64..14),
                lang in prop::option::of(prop::sample::select(vec!["en", "fr", "de", "en-us"])),
                country in prop::option::of(prop::sample::select(vec!["BE", "FR", "DE"])),
                wanted in prop::collection::btree_set(expertise_id(), 0..3),
            ) {
                let wanted: BTreeSet<ExpertiseId> = wanted.into_iter().map(ExpertiseId).collect();
                let need = Need { previous: previous.map(OperatorId), lang, country, expertise: &wanted, order: RoutingOrder::Odoo };
                prop_assert_eq!(pick(&need, &ops), reference(&need, &ops));
            }
        }
    }
}
