//! The past-ticket index at 10,000 tickets: building it, and finding the tickets like a new
//! question. Tickets are made from the fixture channel's questions and fixes, varied.
//! Run: `cargo bench --bench past_tickets`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use itbot::slack::Ts;
use itbot::telemetry::UserText;
use itbot::tickets::{Ending, PastTicket, TicketIndex};

const TICKETS: usize = 10_000;

/// 10,000 tickets from the fixture's questions and replies, each with a few words changed.
fn tickets() -> Vec<PastTicket> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/past_tickets.jsonl");
    let fixture: Vec<serde_json::Value> = std::fs::read_to_string(path)
        .expect("fixture present")
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let extra = [
        "again",
        "today",
        "urgent",
        "on my mac",
        "from home",
        "since monday",
        "please help",
        "at the office",
    ];
    let endings = [Ending::BotResolved, Ending::PersonResolved, Ending::Escalated, Ending::Unknown];
    (0..TICKETS)
        .map(|i| {
            let t = &fixture[i % fixture.len()];
            let fix =
                t["replies"].as_array().and_then(|r| r.last()).and_then(|r| r["text"].as_str()).unwrap_or("");
            PastTicket {
                thread: Ts(format!("{}.{:06}", 1_600_000_000 + i, i % 1_000_000)),
                question: UserText::new(format!(
                    "{} {}",
                    t["question"].as_str().unwrap_or(""),
                    extra[i % extra.len()]
                )),
                ending: endings[i % endings.len()],
                resolution: Some(UserText::new(fix)),
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let tickets = tickets();
    c.bench_function("past tickets: build an index of 10,000", |b| {
        b.iter(|| {
            let mut index = TicketIndex::new(TICKETS);
            for t in tickets.iter().cloned() {
                index.upsert(t);
            }
            black_box(index.len())
        })
    });
    let mut index = TicketIndex::new(TICKETS);
    for t in tickets.iter().cloned() {
        index.upsert(t);
    }
    let queries = [
        "my aws vpn client is stuck on connecting from home",
        "okta verify push not arriving after I got a new phone",
        "git push says repository not found for our private repo",
        "printer on the 3rd floor asks for a PIN",
    ];
    c.bench_function("past tickets: top 3 of 10,000 for a question", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            black_box(index.similar(queries[i % queries.len()], 3, None))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
