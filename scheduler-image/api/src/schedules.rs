//! A workflow's schedules as one: whichever form the spec was written in (`schedule` with
//! `timezone`, or a `schedules` list), a non-empty list of cron schedules, each in its own time
//! zone, whose ticks are merged in time order with each instant once.
//!
//! Everything that asks "when does this workflow run" (the scheduler's tick planner, backfill,
//! the task variables, the plugin's views) goes through [`Schedules`], so none of it cares how
//! many schedules there are or which form was written. Two schedules that meet (the same UTC
//! instant, from the same zone or from different ones) give one tick: a run is named after its
//! instant ([`crate::names::scheduled_run_name`]), so one run per instant is also what the names
//! allow.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

use crate::schedule::{Schedule, ScheduleError};
use crate::workflow::WorkflowSpec;

/// At most this many entries in `spec.schedules` (the CRD says so too): each tick of the
/// workflow looks at every one of them.
pub const MAX_SCHEDULES: usize = 20;

/// One cron schedule as the spec writes it: the path of the object holding it (`spec`, or
/// `spec.schedules[2]`), whose fields are `schedule` and `timezone` in both forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written<'a> {
    /// The entry's index in `spec.schedules`; `None` for the one-schedule form.
    pub index: Option<usize>,
    /// The cron expression.
    pub schedule: &'a str,
    /// The IANA time zone, if given (UTC otherwise).
    pub timezone: Option<&'a str>,
}

impl Written<'_> {
    /// The path of one of its fields (`schedule` or `timezone`), as validation reports it.
    pub fn path(&self, field: &str) -> String {
        match self.index {
            None => format!("spec.{field}"),
            Some(i) => format!("spec.schedules[{i}].{field}"),
        }
    }
}

/// The cron schedules `spec` writes, in order: its `schedules` list, else its one `schedule`;
/// empty for a workflow run by hand only. (Validation refuses a spec with both forms; read
/// anyway, the list is taken.)
pub fn written(spec: &WorkflowSpec) -> Vec<Written<'_>> {
    match (&spec.schedules, &spec.schedule) {
        (Some(list), _) => list
            .iter()
            .enumerate()
            .map(|(i, s)| Written {
                index: Some(i),
                schedule: &s.schedule,
                timezone: s.timezone.as_deref(),
            })
            .collect(),
        (None, Some(expr)) => vec![Written {
            index: None,
            schedule: expr,
            timezone: spec.timezone.as_deref(),
        }],
        (None, None) => Vec::new(),
    }
}

/// A non-empty list of cron schedules, read as one: a tick is an instant at which any of them
/// fires, and two that fire at the same instant give one tick.
#[derive(Debug, Clone)]
pub struct Schedules {
    /// Never empty (every constructor checks), in the order written.
    entries: Vec<Schedule>,
}

impl From<Schedule> for Schedules {
    fn from(schedule: Schedule) -> Self {
        Self {
            entries: vec![schedule],
        }
    }
}

impl Schedules {
    /// Several schedules as one; `None` when there are none.
    pub fn new(entries: Vec<Schedule>) -> Option<Self> {
        (!entries.is_empty()).then_some(Self { entries })
    }

    /// The schedules of `spec`, whichever form it writes: `None` for a workflow run by hand
    /// only, the first entry that does not parse as an error (validation names every one).
    pub fn of(spec: &WorkflowSpec) -> Result<Option<Self>, ScheduleError> {
        let entries = written(spec)
            .into_iter()
            .map(|w| Schedule::parse(w.schedule, w.timezone))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(entries))
    }

    /// The first schedule written.
    pub fn first(&self) -> &Schedule {
        &self.entries[0]
    }

    /// The schedules, in the order written.
    pub fn iter(&self) -> impl Iterator<Item = &Schedule> {
        self.entries.iter()
    }

    /// How many schedules (at least one).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Always false: a `Schedules` has at least one schedule (for clippy's `len` convention).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The first tick strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.entries.iter().filter_map(|s| s.next_after(t)).min()
    }

    /// The last tick at or before `t`.
    pub fn latest_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.entries
            .iter()
            .filter_map(|s| s.latest_at_or_before(t))
            .max()
    }

    /// The ticks strictly after `t`, oldest first, each instant once.
    pub fn after(&self, t: DateTime<Utc>) -> Merged<'_> {
        Merged::new(self, Direction::Forward, t)
    }

    /// The ticks at or before `t`, newest first, each instant once.
    pub fn back_from(&self, t: DateTime<Utc>) -> Merged<'_> {
        Merged::new(self, Direction::Backward, t)
    }

    /// The time zone a tick at `t` belongs to: that of the first schedule (in the order written)
    /// that fires at `t`, else the first schedule's. A run's logical date is read in it.
    pub fn timezone_at(&self, t: DateTime<Utc>) -> Tz {
        self.entries
            .iter()
            .find(|s| s.latest_at_or_before(t) == Some(t))
            .unwrap_or(self.first())
            .timezone()
    }
}

/// Which way a [`Merged`] walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Oldest first, strictly after the start.
    Forward,
    /// Newest first, at or before the start.
    Backward,
}

/// The ticks of several schedules merged in time order, each instant once: a k-way merge that
/// asks each schedule for its next tick only once the previous one was taken, so walking `n`
/// ticks costs about `n` evaluations whatever the number of schedules.
#[derive(Debug, Clone)]
pub struct Merged<'a> {
    schedules: &'a Schedules,
    direction: Direction,
    /// Each schedule's next tick in the walk's direction (`None`: it has no more).
    heads: Vec<Option<DateTime<Utc>>>,
}

impl<'a> Merged<'a> {
    fn new(schedules: &'a Schedules, direction: Direction, t: DateTime<Utc>) -> Self {
        let heads = schedules
            .entries
            .iter()
            .map(|s| match direction {
                Direction::Forward => s.next_after(t),
                Direction::Backward => s.latest_at_or_before(t),
            })
            .collect();
        Self {
            schedules,
            direction,
            heads,
        }
    }
}

impl Iterator for Merged<'_> {
    type Item = DateTime<Utc>;

    fn next(&mut self) -> Option<DateTime<Utc>> {
        let heads = self.heads.iter().flatten();
        let tick = match self.direction {
            Direction::Forward => heads.min(),
            Direction::Backward => heads.max(),
        }
        .copied()?;
        // Every schedule that fires at this instant moves on: the instant is given once.
        for (schedule, head) in self.schedules.entries.iter().zip(&mut self.heads) {
            if *head == Some(tick) {
                *head = match self.direction {
                    Direction::Forward => schedule.next_after(tick),
                    Direction::Backward => {
                        schedule.latest_at_or_before(tick - Duration::seconds(1))
                    }
                };
            }
        }
        Some(tick)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, TimeZone};

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("valid test time")
    }

    fn schedules(entries: &[(&str, Option<&str>)]) -> Schedules {
        let parsed = entries
            .iter()
            .map(|(expr, tz)| Schedule::parse(expr, *tz).expect("valid schedule"))
            .collect();
        Schedules::new(parsed).expect("at least one")
    }

    fn spec(yaml: &str) -> WorkflowSpec {
        serde_yaml::from_str(yaml).expect("valid spec yaml")
    }

    #[test]
    fn two_schedules_that_meet_give_one_tick() {
        // Every 2 and every 3 minutes: they meet at :00 and :06.
        let s = schedules(&[("*/2 * * * *", None), ("*/3 * * * *", None)]);
        let got: Vec<u32> = s
            .after(utc(2026, 1, 1, 9, 59))
            .take(8)
            .map(|t| chrono::Timelike::minute(&t))
            .collect();
        assert_eq!(got, [0, 2, 3, 4, 6, 8, 9, 10], "00 and 06 once each");
        let back: Vec<u32> = s
            .back_from(utc(2026, 1, 1, 10, 6))
            .take(5)
            .map(|t| chrono::Timelike::minute(&t))
            .collect();
        assert_eq!(
            back,
            [6, 4, 3, 2, 0],
            "backwards too, from the instant itself"
        );
        assert_eq!(
            s.next_after(utc(2026, 1, 1, 10, 4)),
            Some(utc(2026, 1, 1, 10, 6))
        );
        assert_eq!(
            s.latest_at_or_before(utc(2026, 1, 1, 10, 5)),
            Some(utc(2026, 1, 1, 10, 4))
        );
    }

    #[test]
    fn different_zones_meet_at_the_same_utc_instant() {
        // 10:00 in Shanghai (UTC+8) is 03:00 in Berlin (CET, UTC+1) on 2 January: both fire at
        // 02:00 UTC, which is one tick, read in the first schedule's zone.
        let s = schedules(&[
            ("0 10 * * *", Some("Asia/Shanghai")),
            ("0 3 * * *", Some("Europe/Berlin")),
            ("0 12 * * *", Some("America/New_York")),
        ]);
        let ticks: Vec<_> = s.after(utc(2026, 1, 1, 12, 0)).take(3).collect();
        assert_eq!(
            ticks,
            [
                utc(2026, 1, 1, 17, 0),
                utc(2026, 1, 2, 2, 0),
                utc(2026, 1, 2, 17, 0)
            ],
            "New York's noon (17:00 UTC), then the meeting, then New York again"
        );
        assert_eq!(
            s.timezone_at(utc(2026, 1, 2, 2, 0)),
            chrono_tz::Asia::Shanghai
        );
        assert_eq!(
            s.timezone_at(utc(2026, 1, 1, 17, 0)),
            chrono_tz::America::New_York
        );
        // Not a tick at all: the first schedule's zone.
        assert_eq!(
            s.timezone_at(utc(2026, 1, 1, 5, 7)),
            chrono_tz::Asia::Shanghai
        );
    }

    #[test]
    fn a_dst_change_in_one_zone_moves_only_its_ticks() {
        // 02:30 Berlin is skipped on 2026-03-29 (fires at 03:00 CEST = 01:00 UTC); 01:00 UTC
        // is also a tick of the second schedule, so that day the two meet and run once.
        let s = schedules(&[("30 2 * * *", Some("Europe/Berlin")), ("0 1 * * *", None)]);
        let ticks: Vec<_> = s.after(utc(2026, 3, 28, 0, 0)).take(5).collect();
        assert_eq!(
            ticks,
            [
                utc(2026, 3, 28, 1, 0),
                utc(2026, 3, 28, 1, 30),
                utc(2026, 3, 29, 1, 0),
                utc(2026, 3, 30, 0, 30),
                utc(2026, 3, 30, 1, 0),
            ],
            "28th: both (CET); 29th: the gap's tick meets UTC's; 30th: CEST"
        );
        // Fall back on 2026-10-25: 02:30 happens twice and fires once (00:30 UTC).
        let ticks: Vec<_> = s.after(utc(2026, 10, 24, 23, 0)).take(3).collect();
        assert_eq!(
            ticks,
            [
                utc(2026, 10, 25, 0, 30),
                utc(2026, 10, 25, 1, 0),
                utc(2026, 10, 26, 1, 0)
            ]
        );
        assert_eq!(
            s.back_from(utc(2026, 10, 26, 1, 29))
                .take(3)
                .collect::<Vec<_>>(),
            [
                utc(2026, 10, 26, 1, 0),
                utc(2026, 10, 25, 1, 0),
                utc(2026, 10, 25, 0, 30)
            ],
            "the 26th's 02:30 CET is 01:30 UTC, not yet"
        );
    }

    #[test]
    fn both_forms_read_as_the_same_schedules() {
        let one = spec("schedule: '0 2 * * *'\ntimezone: Asia/Shanghai\ntasks: []\n");
        let list =
            spec("schedules: [{schedule: '0 2 * * *', timezone: Asia/Shanghai}]\ntasks: []\n");
        let (a, b) = (
            Schedules::of(&one).expect("valid").expect("scheduled"),
            Schedules::of(&list).expect("valid").expect("scheduled"),
        );
        let from = utc(2026, 1, 1, 0, 0);
        assert_eq!(
            a.after(from).take(10).collect::<Vec<_>>(),
            b.after(from).take(10).collect::<Vec<_>>()
        );
        assert_eq!(written(&one)[0].path("timezone"), "spec.timezone");
        assert_eq!(
            written(&list)[0].path("schedule"),
            "spec.schedules[0].schedule"
        );
        let manual = spec("timezone: Asia/Shanghai\ntasks: []\n");
        assert!(Schedules::of(&manual).expect("valid").is_none());
        let bad = spec("schedules: [{schedule: '@daily'}, {schedule: '0 0 * *'}]\ntasks: []\n");
        assert!(Schedules::of(&bad).is_err());
    }

    #[test]
    fn the_merge_agrees_with_next_after_over_a_year_of_mixed_schedules() {
        let s = schedules(&[
            ("*/20 9-17 * * MON-FRI", Some("Asia/Shanghai")),
            ("30 2 * * *", Some("Europe/Berlin")),
            ("0 */6 * * *", Some("America/New_York")),
            ("15 1 1 * *", Some("Australia/Lord_Howe")),
        ]);
        let start = utc(2026, 1, 1, 0, 0);
        let merged: Vec<_> = s.after(start).take_while(|t| t.year() < 2027).collect();
        let mut stepped = Vec::new();
        let mut t = start;
        while let Some(next) = s.next_after(t).filter(|n| n.year() < 2027) {
            stepped.push(next);
            t = next;
        }
        assert_eq!(merged, stepped);
        assert!(
            merged.windows(2).all(|w| w[0] < w[1]),
            "strictly increasing"
        );
        let end = *merged.last().expect("ticks");
        let mut back: Vec<_> = s.back_from(end).take_while(|t| *t > start).collect();
        back.reverse();
        assert_eq!(back, merged, "walking back gives the same ticks");
    }
}
