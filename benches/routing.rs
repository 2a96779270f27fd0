//! One routing decision (`pick_operator`) over 1,000 candidates:
//! `cargo bench --bench routing`. Target ≤ 10 µs.

use std::collections::BTreeSet;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use switchboard::domain::assignment::{pick_operator, Candidate, Need, Profile, RoutingOrder};
use switchboard::domain::{ExpertiseId, OperatorId};

/// 1,000 operators over 4 languages, 5 countries and 10 expertise (1–2 each),
/// reduced to profiles as the router keeps them (once, not per decision).
fn team() -> Vec<Profile> {
    let languages = ["en", "fr", "de", "es"];
    let countries = ["BE", "FR", "DE", "ES", "US"];
    (0..1000u64)
        .map(|i| {
            let expertise: BTreeSet<ExpertiseId> = [ExpertiseId(i % 10), ExpertiseId((i / 10) % 10)].into_iter().collect();
            Profile::new(&[languages[(i % 4) as usize].to_owned()], Some(countries[(i % 5) as usize]), &expertise)
        })
        .collect()
}

fn decision(c: &mut Criterion) {
    let team = team();
    let mut group = c.benchmark_group("pick_operator, 1000 candidates");
    for wanted in 1..=3u64 {
        let expertise: BTreeSet<ExpertiseId> = (0..wanted).map(|e| ExpertiseId(e * 3 + 1)).collect();
        let need = Need { previous: None, lang: Some("de"), country: Some("ES"), expertise: &expertise, order: RoutingOrder::Odoo };
        group.bench_with_input(BenchmarkId::new("wanted expertise", wanted), &need, |b, need| {
            b.iter(|| {
                let candidates = team.iter().enumerate().map(|(i, profile)| Candidate {
                    id: OperatorId(i as u64 + 1),
                    profile,
                    active_chats: (i % 7) as u32,
                    last_assigned: (i * 31 % 1000) as u64,
                });
                black_box(pick_operator(black_box(need), candidates))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, decision);
criterion_main!(benches);
