//! Differential test of the cron evaluator (`datajump_api::schedule`) against the `croner` crate:
//! seeded, generated CronJob expressions (lists, ranges, steps, `n/step`, month and weekday names
//! in any case, `?`, macros) in several time zones, at random instants and at instants close to
//! DST transitions, both directions (next tick after, last tick at or before).
//!
//! Then the same for several schedules read as one (`datajump_api::schedules`): seeded groups of
//! two to four generated expressions, each in its own zone, whose merged ticks (each instant
//! once) must be croner's ticks of each, put together — next and previous tick and a walk of
//! several ticks both ways — at random instants and near DST transitions.
//!
//! croner follows the same Vixie-cron rules our evaluator documents (day-of-month OR day-of-week
//! unless one is unrestricted; fixed-time schedules fire once after a DST gap and once in an
//! overlap, interval schedules skip the gap and fire in both passes). Where croner's syntax or
//! classification differs from Kubernetes CronJob's (robfig/cron), `croner_pattern` rewrites the
//! expression into croner's spelling of the same schedule; each rewrite says why.

use std::collections::BTreeSet;
use std::str::FromStr;

use chrono::{DateTime, Duration, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::CronParser;
use croner::{Cron, JobType};
use datajump_api::schedule::Schedule;
use datajump_api::schedules::Schedules;

const ZONES: [&str; 5] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Shanghai",
    // A 30-minute DST shift: gaps and overlaps that are not whole hours.
    "Australia/Lord_Howe",
];
const EXPRESSIONS: usize = 1000;
const RANDOM_INSTANTS: usize = 6;
const NEAR_DST_INSTANTS: usize = 8;

/// SplitMix64: a seeded, dependency-free PRNG, so the corpus is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.next() % u64::from(hi - lo + 1)) as u32
    }

    fn percent(&mut self, p: u32) -> bool {
        self.range(0, 99) < p
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.range(0, items.len() as u32 - 1) as usize]
    }
}

struct FieldSpec {
    min: u32,
    max: u32,
    names: &'static [&'static str],
    day: bool,
}

const MINUTE: FieldSpec = FieldSpec {
    min: 0,
    max: 59,
    names: &[],
    day: false,
};
const HOUR: FieldSpec = FieldSpec {
    min: 0,
    max: 23,
    names: &[],
    day: false,
};
const DOM: FieldSpec = FieldSpec {
    min: 1,
    max: 31,
    names: &[],
    day: true,
};
const MONTH: FieldSpec = FieldSpec {
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
    day: false,
};
const DOW: FieldSpec = FieldSpec {
    min: 0,
    max: 6,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    day: true,
};

fn value(rng: &mut Rng, f: &FieldSpec, v: u32, end_of_range: bool) -> String {
    // croner rewrites a range ending in `-SUN` to `-7` (Sunday as 7), so `SUN-SUN` would be the
    // whole week there, while robfig reads it as 0-0. Such a range is written with numbers.
    let sunday_end = end_of_range && f.day && v == 0;
    if f.names.is_empty() || sunday_end || !rng.percent(40) {
        return v.to_string();
    }
    let name = f.names[(v - f.min) as usize];
    match rng.range(0, 2) {
        0 => name.to_string(),
        1 => name.to_ascii_lowercase(),
        _ => name[..1].to_string() + &name[1..].to_ascii_lowercase(),
    }
}

fn item(rng: &mut Rng, f: &FieldSpec) -> String {
    let (a, b) = (rng.range(f.min, f.max), rng.range(f.min, f.max));
    let (lo, hi) = (a.min(b), a.max(b));
    // Our evaluator rejects steps above the field's maximum (robfig accepts them).
    let step = rng.range(1, f.max.clamp(2, 20));
    match rng.range(0, 9) {
        0..=3 => value(rng, f, a, false),
        4 | 5 => format!("{}-{}", value(rng, f, lo, false), value(rng, f, hi, true)),
        6 => format!(
            "{}-{}/{step}",
            value(rng, f, lo, false),
            value(rng, f, hi, true)
        ),
        // robfig's `n/step`: from n to the field's maximum.
        7 => format!("{}/{step}", value(rng, f, a, false)),
        8 => format!("*/{step}"),
        _ if f.day => rng.pick(&["*", "?", "*/1"]).to_string(),
        _ => "*".to_string(),
    }
}

fn field(rng: &mut Rng, f: &FieldSpec) -> String {
    if rng.percent(30) {
        return if f.day {
            rng.pick(&["*", "*", "?", "*/1"]).to_string()
        } else {
            "*".to_string()
        };
    }
    // Hours near DST transitions (01:00-03:59 in these zones) are common, so that fixed-time
    // schedules meet gaps and overlaps often.
    if std::ptr::eq(f, &HOUR) && rng.percent(35) {
        return rng.range(1, 3).to_string();
    }
    let n = if rng.percent(60) { 1 } else { rng.range(2, 3) };
    (0..n).map(|_| item(rng, f)).collect::<Vec<_>>().join(",")
}

fn expression(rng: &mut Rng) -> String {
    if rng.percent(5) {
        let m = rng.pick(&[
            "@yearly",
            "@annually",
            "@monthly",
            "@weekly",
            "@daily",
            "@midnight",
            "@hourly",
        ]);
        return if rng.percent(50) {
            m.to_ascii_uppercase()
        } else {
            m.to_string()
        };
    }
    // A single minute often, so that fixed-time schedules are a good share of the corpus.
    let minute = if rng.percent(45) {
        rng.range(0, 59).to_string()
    } else {
        field(rng, &MINUTE)
    };
    [
        minute,
        field(rng, &HOUR),
        field(rng, &DOM),
        field(rng, &MONTH),
        field(rng, &DOW),
    ]
    .join(" ")
}

/// The same schedule in croner's spelling.
fn croner_pattern(expr: &str, parser: &CronParser) -> String {
    // croner has no `@midnight`; Kubernetes (robfig) accepts it as `@daily`.
    if expr.eq_ignore_ascii_case("@midnight") {
        return "@daily".into();
    }
    if expr.starts_with('@') {
        return expr.into();
    }
    let mut fields: Vec<String> = expr.split(' ').map(str::to_string).collect();
    // A list item `*`/`?` with step 1 (`*/1`, `8-10,*`) selects the whole range. croner accepts
    // `*` only as a whole field or before a step, and for the day rule treats a day field as
    // unrestricted only when it is exactly `*` or `?`, where robfig (and our evaluator) look at
    // every item. The field's values are the full range either way, so `*` is the same field.
    for field in &mut fields {
        let star = field.split(',').any(|it| {
            let (range, step) = it.split_once('/').unwrap_or((it, "1"));
            matches!(range, "*" | "?") && step == "1"
        });
        if star {
            *field = "*".into();
        }
    }
    // robfig's `n/step` runs to the field's maximum, which for weekdays is 6 (Saturday); croner's
    // weekday field runs to 7 (Sunday again), so `3/4` would add Sunday there. Spell the range out.
    fields[4] = fields[4]
        .split(',')
        .map(|it| match it.split_once('/') {
            Some((from, step)) if !from.contains('-') && from != "*" => format!("{from}-6/{step}"),
            _ => it.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",");
    // DST rules: our evaluator calls a schedule fixed-time when it selects one minute and one
    // hour; croner decides by spelling (no step, no wildcard), so `40/30` (only minute 40) is an
    // interval schedule there. Write single values as numbers so both classify alike.
    let pattern = fields.join(" ");
    let cron = parser
        .parse(&pattern)
        .unwrap_or_else(|e| panic!("croner rejects {pattern:?} (from {expr:?}): {e}"));
    let (minutes, hours) = (cron.pattern.minutes.values(), cron.pattern.hours.values());
    if minutes.len() == 1 && hours.len() == 1 {
        fields[0] = minutes[0].to_string();
        fields[1] = hours[0].to_string();
    }
    fields.join(" ")
}

/// Instants close to each DST transition of `tz` in 2025-2027 (none for zones without DST).
fn transitions(tz: Tz) -> Vec<DateTime<Utc>> {
    let offset = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc()).fix();
    let mut t = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let end = Utc.with_ymd_and_hms(2028, 1, 1, 0, 0, 0).unwrap();
    let mut out = Vec::new();
    while t < end {
        let next = t + Duration::minutes(30);
        if offset(t) != offset(next) {
            out.push(next);
        }
        t = next;
    }
    out
}

fn random_instant(rng: &mut Rng) -> DateTime<Utc> {
    let from = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let span = 7 * 366 * 24 * 3600;
    from + Duration::seconds(i64::from(rng.range(0, span)))
}

struct Mismatch {
    expr: String,
    croner: String,
    zone: &'static str,
    direction: &'static str,
    at: DateTime<Utc>,
    ours: Option<DateTime<Utc>>,
    theirs: Option<DateTime<Utc>>,
}

#[test]
fn next_and_previous_ticks_agree_with_croner() {
    let parser = CronParser::builder()
        // robfig's `n/step` ("from n every step"), which croner calls sloppy.
        .sloppy_ranges(true)
        .build();
    let mut rng = Rng(0x00C0_FFEE_D474_1234);
    let mut mismatches = Vec::new();
    let (mut compared, mut never_fire) = (0usize, 0usize);
    let mut fixed_time = 0usize;
    let zone_transitions: Vec<(&'static str, Tz, Vec<DateTime<Utc>>)> = ZONES
        .iter()
        .map(|z| {
            let tz = Tz::from_str(z).expect("zone");
            (*z, tz, transitions(tz))
        })
        .collect();
    assert!(
        zone_transitions.iter().filter(|z| !z.2.is_empty()).count() >= 3,
        "the DST zones have transitions"
    );

    for _ in 0..EXPRESSIONS {
        let expr = expression(&mut rng);
        let croner_expr = croner_pattern(&expr, &parser);
        let cron: Cron = parser
            .parse(&croner_expr)
            .unwrap_or_else(|e| panic!("croner rejects {croner_expr:?} (from {expr:?}): {e}"));
        fixed_time += usize::from(cron.determine_job_type() == JobType::FixedTime);
        for (zone, tz, near) in &zone_transitions {
            let ours = match Schedule::parse(&expr, Some(zone)) {
                Ok(s) => s,
                Err(e) if e.to_string().contains("never fires") => {
                    never_fire += 1;
                    break;
                }
                Err(e) => panic!("generated {expr:?} is rejected: {e}"),
            };
            let mut instants: Vec<DateTime<Utc>> = (0..RANDOM_INSTANTS)
                .map(|_| random_instant(&mut rng))
                .collect();
            if !near.is_empty() {
                for _ in 0..NEAR_DST_INSTANTS {
                    let base = near[rng.range(0, near.len() as u32 - 1) as usize];
                    let shift = i64::from(rng.range(0, 6 * 3600)) - 3 * 3600;
                    instants.push(base + Duration::seconds(shift));
                }
            }
            for at in instants {
                let local = at.with_timezone(tz);
                let checks = [
                    (
                        "next after",
                        ours.next_after(at),
                        cron.find_next_occurrence(&local, false),
                    ),
                    (
                        "latest at or before",
                        ours.latest_at_or_before(at),
                        cron.find_previous_occurrence(&local, true),
                    ),
                ];
                for (direction, ours, theirs) in checks {
                    compared += 1;
                    let theirs = theirs.ok().map(|t| t.with_timezone(&Utc));
                    if ours != theirs {
                        mismatches.push(Mismatch {
                            expr: expr.clone(),
                            croner: croner_expr.clone(),
                            zone,
                            direction,
                            at,
                            ours,
                            theirs,
                        });
                    }
                }
            }
        }
    }

    println!(
        "{compared} comparisons over {EXPRESSIONS} expressions and {} zones; {fixed_time} fixed-time \
         (by croner); {never_fire} expressions never fire (rejected by ours, skipped)",
        ZONES.len()
    );
    assert!(
        never_fire * 10 < EXPRESSIONS,
        "the corpus is mostly schedules that fire"
    );
    let show = |t: Option<DateTime<Utc>>, tz: Tz| {
        t.map_or("none".to_string(), |t| {
            format!("{t} ({})", t.with_timezone(&tz).format("%F %T %Z"))
        })
    };
    let report: Vec<String> = mismatches
        .iter()
        .take(20)
        .map(|m| {
            let tz = Tz::from_str(m.zone).expect("zone");
            format!(
                "{:?} (croner {:?}) in {}, {} {}: ours {}, croner {}",
                m.expr,
                m.croner,
                m.zone,
                m.direction,
                show(Some(m.at), tz),
                show(m.ours, tz),
                show(m.theirs, tz),
            )
        })
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} of {compared} ticks differ from croner:\n{}",
        mismatches.len(),
        report.join("\n")
    );
}

const GROUPS: usize = 300;
/// Ticks compared in each walk of a group's merged schedule.
const WALK: usize = 6;

/// One schedule of a group: ours, croner's, and where it runs.
struct Member {
    expr: String,
    zone: Tz,
    ours: Schedule,
    cron: Cron,
}

impl Member {
    /// croner's ticks of this member from `at`: up to `n`, forwards (strictly after) or
    /// backwards (at or before).
    fn croner_ticks(&self, at: DateTime<Utc>, n: usize, forwards: bool) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut cursor = at.with_timezone(&self.zone);
        let mut inclusive = !forwards;
        while out.len() < n {
            let next = if forwards {
                self.cron.find_next_occurrence(&cursor, false)
            } else {
                self.cron.find_previous_occurrence(&cursor, inclusive)
            };
            let Ok(t) = next else { break };
            out.push(t.with_timezone(&Utc));
            cursor = t;
            inclusive = false;
        }
        out
    }
}

/// A group of two to four schedules that fire, each in a zone of [`ZONES`]; `None` when a
/// generated one never fires (rejected by ours, as in the single-schedule test).
fn group(rng: &mut Rng, parser: &CronParser) -> Option<Vec<Member>> {
    let size = rng.range(2, 4);
    let mut members = Vec::new();
    for _ in 0..size {
        // Now and then the same expression again in another zone, so that schedules a whole
        // number of hours apart meet often.
        let expr = match members.last() {
            Some(Member { expr, .. }) if rng.percent(25) => expr.clone(),
            _ => expression(rng),
        };
        let zone = ZONES[rng.range(0, ZONES.len() as u32 - 1) as usize];
        let ours = Schedule::parse(&expr, Some(zone)).ok()?;
        let croner_expr = croner_pattern(&expr, parser);
        let cron = parser
            .parse(&croner_expr)
            .unwrap_or_else(|e| panic!("croner rejects {croner_expr:?} (from {expr:?}): {e}"));
        members.push(Member {
            expr,
            zone: Tz::from_str(zone).expect("zone"),
            ours,
            cron,
        });
    }
    Some(members)
}

#[test]
fn several_schedules_merge_into_croners_ticks_each_instant_once() {
    let parser = CronParser::builder().sloppy_ranges(true).build();
    let mut rng = Rng(0x5EED_0F5C_4ED0_1E55);
    let near: Vec<DateTime<Utc>> = ZONES
        .iter()
        .flat_map(|z| transitions(Tz::from_str(z).expect("zone")))
        .collect();
    let (mut groups, mut compared, mut meetings) = (0usize, 0usize, 0usize);
    let mut mismatches = Vec::new();
    while groups < GROUPS {
        let Some(members) = group(&mut rng, &parser) else {
            continue;
        };
        groups += 1;
        let schedules = Schedules::new(members.iter().map(|m| m.ours.clone()).collect())
            .expect("a group is never empty");
        let mut instants: Vec<DateTime<Utc>> = (0..RANDOM_INSTANTS)
            .map(|_| random_instant(&mut rng))
            .collect();
        for _ in 0..NEAR_DST_INSTANTS {
            let base = near[rng.range(0, near.len() as u32 - 1) as usize];
            let shift = i64::from(rng.range(0, 6 * 3600)) - 3 * 3600;
            instants.push(base + Duration::seconds(shift));
        }
        for at in instants {
            for forwards in [true, false] {
                // croner's ticks of each member, put together: a set, so each instant once.
                let each: Vec<Vec<DateTime<Utc>>> = members
                    .iter()
                    .map(|m| m.croner_ticks(at, WALK, forwards))
                    .collect();
                let theirs: BTreeSet<DateTime<Utc>> = each.iter().flatten().copied().collect();
                // Instants where two members fired: meetings the merge must give once.
                meetings += each.iter().map(Vec::len).sum::<usize>() - theirs.len();
                let theirs: Vec<DateTime<Utc>> = if forwards {
                    theirs.into_iter().take(WALK).collect()
                } else {
                    theirs.into_iter().rev().take(WALK).collect()
                };
                let ours: Vec<DateTime<Utc>> = if forwards {
                    schedules.after(at).take(WALK).collect()
                } else {
                    schedules.back_from(at).take(WALK).collect()
                };
                let one = if forwards {
                    schedules.next_after(at)
                } else {
                    schedules.latest_at_or_before(at)
                };
                compared += 1;
                if ours != theirs || one != theirs.first().copied() {
                    mismatches.push(format!(
                        "{} {} {at}: ours {ours:?} (one: {one:?}), croner {theirs:?}",
                        members
                            .iter()
                            .map(|m| format!("{:?} in {}", m.expr, m.zone))
                            .collect::<Vec<_>>()
                            .join(" + "),
                        if forwards { "after" } else { "at or before" },
                    ));
                }
            }
        }
    }
    println!(
        "{compared} walks of {WALK} ticks over {GROUPS} groups of 2-4 schedules; {meetings} \
         instants where two or more schedules met"
    );
    assert!(
        meetings > GROUPS,
        "the corpus has schedules that meet ({meetings})"
    );
    assert!(
        mismatches.is_empty(),
        "{} of {compared} walks differ from croner:\n{}",
        mismatches.len(),
        mismatches
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
