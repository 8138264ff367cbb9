//! Speed budget: plan a backfill of 10,000 ticks (the most one backfill may hold) in under 50 ms —
//! an hourly schedule over 10,000 hours, with half of the runs already there.

use std::collections::BTreeSet;
use std::hint::black_box;

use chrono::{DateTime, Duration, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use datajump_api::backfill::{self, Bound, MAX_TICKS, Windows};
use datajump_api::schedule::Schedule;
use datajump_api::schedules::Schedules;

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
        .single()
        .expect("valid time")
}

fn bench(c: &mut Criterion) {
    let schedule = Schedules::from(
        Schedule::parse("0 * * * *", Some("Europe/Berlin")).expect("valid schedule"),
    );
    let to = start() + Duration::hours(MAX_TICKS as i64 - 1);
    let window = Windows::new(
        Bound::Instant(start()),
        Bound::Instant(to),
        &schedule,
        to + Duration::days(1),
    )
    .expect("valid window");
    let all = backfill::plan("etl", &schedule, &window, &BTreeSet::new()).expect("plans");
    assert_eq!(all.create.len(), MAX_TICKS, "the window holds 10,000 ticks");
    let existing: BTreeSet<String> = all
        .create
        .iter()
        .step_by(2)
        .map(|r| r.name.clone())
        .collect();
    c.bench_function("backfill plan 10,000 hourly ticks, half existing", |b| {
        b.iter(|| {
            let plan =
                backfill::plan("etl", &schedule, &window, black_box(&existing)).expect("plans");
            assert_eq!(plan.create.len(), MAX_TICKS / 2);
            plan
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
