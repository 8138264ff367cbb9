//! Backfill ("complement data" in DolphinScheduler): one run per tick of a workflow's schedules in
//! a past window, each with that tick as its logical time and the name a scheduled run of that
//! tick would have ([`crate::names::scheduled_run_name`]), so backfilling twice, or a window the
//! scheduler already ran, creates nothing new. The ticks are those of all the workflow's schedules
//! merged, each instant once; a date bound is a calendar day in each schedule's own time zone, so
//! a backfill of November runs every schedule's November nights (the runs whose logical date is in
//! November). Pure: the window, the schedules and the names of the existing runs in; the runs to
//! create out.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::names::scheduled_run_name;
use crate::schedules::Schedules;

/// The most ticks one backfill may plan: a typo in a window (`--from 2016-…`) would otherwise
/// queue runs for years of minutes.
pub const MAX_TICKS: usize = 10_000;

/// Why a backfill cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackfillError {
    /// `from` is after `to`.
    #[error("the window is empty: --from {from} is after --to {to}")]
    EmptyWindow { from: String, to: String },
    /// The window starts in the future (backfill is for the past).
    #[error(
        "--from {from} is in the future: backfill runs only ticks that are due (at or before {now})"
    )]
    Future { from: String, now: String },
    /// A date or time the window names does not exist or is not understood.
    #[error(
        "{flag} {value:?}: expected a date (2026-11-01) or an RFC 3339 time (2026-11-01T02:00:00+08:00)"
    )]
    BadBound { flag: &'static str, value: String },
    /// Too many ticks.
    #[error(
        "the window holds more than {MAX_TICKS} ticks of the schedule; split it into smaller windows"
    )]
    TooManyTicks,
}

/// A window bound as given on the command line: a calendar date in the workflow's time zone, or
/// an exact instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// A whole day: as `--from`, its first instant; as `--to`, its last.
    Date(NaiveDate),
    /// An instant.
    Instant(DateTime<Utc>),
}

impl Bound {
    /// Parses `2026-11-01` or an RFC 3339 time; `flag` names the option in the error.
    pub fn parse(flag: &'static str, value: &str) -> Result<Self, BackfillError> {
        if let Ok(date) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
            return Ok(Self::Date(date));
        }
        DateTime::parse_from_rfc3339(value)
            .map(|t| Self::Instant(t.with_timezone(&Utc)))
            .map_err(|_| BackfillError::BadBound {
                flag,
                value: value.to_string(),
            })
    }
}

/// The first instant of `date` in `tz` (the first existing one on a day that starts in a DST gap).
fn start_of(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let mut t = date.and_time(NaiveTime::MIN);
    loop {
        if let Some(local) = tz.from_local_datetime(&t).earliest() {
            return local.with_timezone(&Utc);
        }
        t += chrono::Duration::minutes(1);
    }
}

/// A window of ticks, both ends included, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First instant included.
    pub from: DateTime<Utc>,
    /// Last instant included.
    pub to: DateTime<Utc>,
}

impl Window {
    /// The window `from..=to` in the schedule's time zone: a `--to` date includes that whole day.
    /// `now` bounds it: backfill never plans a tick that is not due yet.
    pub fn new(from: Bound, to: Bound, tz: Tz, now: DateTime<Utc>) -> Result<Self, BackfillError> {
        let from_t = match from {
            Bound::Date(d) => start_of(d, tz),
            Bound::Instant(t) => t,
        };
        let to_t = match to {
            Bound::Date(d) => {
                let next = d.succ_opt().ok_or(BackfillError::BadBound {
                    flag: "--to",
                    value: d.to_string(),
                })?;
                start_of(next, tz) - chrono::Duration::seconds(1)
            }
            Bound::Instant(t) => t,
        };
        if from_t > to_t {
            return Err(BackfillError::EmptyWindow {
                from: from_t.to_rfc3339(),
                to: to_t.to_rfc3339(),
            });
        }
        if from_t > now {
            return Err(BackfillError::Future {
                from: from_t.to_rfc3339(),
                now: now.to_rfc3339(),
            });
        }
        Ok(Self {
            from: from_t,
            to: to_t.min(now),
        })
    }
}

/// A backfill's window over a workflow's schedules: `--from..=--to` read in each schedule's own
/// time zone (the same instants for every schedule when both bounds are instants).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Windows {
    /// Each schedule's window, in the order of the schedules; `None` where it lies wholly in the
    /// future or is empty in that schedule's zone (only possible when dates and instants mix).
    each: Vec<Option<Window>>,
    /// From the earliest start to the latest end: what the backfill is named after.
    pub whole: Window,
}

impl Windows {
    /// The window `from..=to` of each of `schedules`, bounded by `now`; an error only when no
    /// schedule has a window (the first schedule's reason).
    pub fn new(
        from: Bound,
        to: Bound,
        schedules: &Schedules,
        now: DateTime<Utc>,
    ) -> Result<Self, BackfillError> {
        let window = |tz| Window::new(from, to, tz, now);
        let each: Vec<Option<Window>> = schedules
            .iter()
            .map(|s| window(s.timezone()).ok())
            .collect();
        // The span of the windows there are; without any, the first schedule's reason.
        let whole = each.iter().flatten().fold(None, |span: Option<Window>, w| {
            Some(span.map_or(*w, |s| Window {
                from: s.from.min(w.from),
                to: s.to.max(w.to),
            }))
        });
        let whole = match whole {
            Some(whole) => whole,
            None => window(schedules.first().timezone())?,
        };
        Ok(Self { each, whole })
    }
}

/// Every tick of `schedules` in their `windows`, oldest first, each instant once.
pub fn ticks(
    schedules: &Schedules,
    windows: &Windows,
) -> Result<Vec<DateTime<Utc>>, BackfillError> {
    let mut out = Vec::new();
    let whole = windows.whole;
    for tick in schedules.after(whole.from - chrono::Duration::seconds(1)) {
        if tick > whole.to {
            break;
        }
        // A tick counts when it lies in the window of a schedule that fires at it (asked only
        // when the windows differ: for one schedule, or bounds that are instants, it does).
        let within = |w: &Option<Window>| w.is_some_and(|w| (w.from..=w.to).contains(&tick));
        let inside = windows.each.iter().all(within)
            || schedules
                .iter()
                .zip(&windows.each)
                .any(|(s, w)| within(w) && s.latest_at_or_before(tick) == Some(tick));
        if !inside {
            continue;
        }
        if out.len() == MAX_TICKS {
            return Err(BackfillError::TooManyTicks);
        }
        out.push(tick);
    }
    Ok(out)
}

/// One run a backfill would create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRun {
    /// Its name: the scheduled run name of its tick.
    pub name: String,
    /// Its logical time.
    pub logical_time: DateTime<Utc>,
}

/// What a backfill of `workflow` over `window` does: the runs to create (oldest first) and how many
/// of the window's ticks already have a run (`existing` holds the names of the workflow's runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Runs to create, oldest first.
    pub create: Vec<PlannedRun>,
    /// Ticks of the window that already have a run, scheduled or backfilled.
    pub existing: usize,
}

/// Plans a backfill: every tick of the windows without a run gets one.
pub fn plan(
    workflow: &str,
    schedules: &Schedules,
    windows: &Windows,
    existing: &BTreeSet<String>,
) -> Result<Plan, BackfillError> {
    let mut create = Vec::new();
    let mut already = 0;
    for tick in ticks(schedules, windows)? {
        let name = scheduled_run_name(workflow, tick);
        if existing.contains(&name) {
            already += 1;
        } else {
            create.push(PlannedRun {
                name,
                logical_time: tick,
            });
        }
    }
    Ok(Plan {
        create,
        existing: already,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Schedule;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn date(s: &str) -> Bound {
        Bound::parse("--from", s).unwrap()
    }

    fn schedules(entries: &[(&str, Option<&str>)]) -> Schedules {
        let parsed = entries
            .iter()
            .map(|(expr, tz)| Schedule::parse(expr, *tz).unwrap())
            .collect();
        Schedules::new(parsed).unwrap()
    }

    fn one(expr: &str, tz: Option<&str>) -> Schedules {
        schedules(&[(expr, tz)])
    }

    #[test]
    fn a_month_of_a_nightly_schedule_is_one_run_per_night_in_its_time_zone() {
        let s = one("0 2 * * *", Some("Asia/Shanghai"));
        let now = utc("2026-12-01T00:00:00Z");
        let w = Windows::new(date("2026-11-01"), date("2026-11-30"), &s, now).unwrap();
        let ticks = ticks(&s, &w).unwrap();
        assert_eq!(ticks.len(), 30);
        // 02:00 in Shanghai is 18:00 UTC the day before.
        assert_eq!(ticks[0], utc("2026-10-31T18:00:00Z"));
        assert_eq!(ticks[29], utc("2026-11-29T18:00:00Z"));
    }

    #[test]
    fn dst_days_keep_one_tick_each() {
        // Europe/Berlin leaves summer time on 2026-10-25: that day is 25 hours long.
        let s = one("30 2 * * *", Some("Europe/Berlin"));
        let now = utc("2026-12-01T00:00:00Z");
        let w = Windows::new(date("2026-10-24"), date("2026-10-26"), &s, now).unwrap();
        assert_eq!(ticks(&s, &w).unwrap().len(), 3);
    }

    #[test]
    fn planning_twice_creates_nothing_new() {
        let s = one("0 * * * *", None);
        let now = utc("2026-12-01T00:00:00Z");
        let w = Windows::new(
            Bound::parse("--from", "2026-11-01T00:00:00Z").unwrap(),
            Bound::parse("--to", "2026-11-01T05:00:00Z").unwrap(),
            &s,
            now,
        )
        .unwrap();
        let first = plan("etl", &s, &w, &BTreeSet::new()).unwrap();
        assert_eq!(first.create.len(), 6, "00:00 to 05:00, both included");
        assert_eq!(first.create[0].name, "etl-202611010000");
        let existing: BTreeSet<String> = first.create.iter().map(|r| r.name.clone()).collect();
        let again = plan("etl", &s, &w, &existing).unwrap();
        assert!(again.create.is_empty());
        assert_eq!(again.existing, 6);
    }

    #[test]
    fn the_window_stops_at_now_and_must_not_be_empty_or_in_the_future() {
        let s = one("0 0 * * *", None);
        let now = utc("2026-11-10T12:00:00Z");
        let w = Windows::new(date("2026-11-08"), date("2026-11-30"), &s, now).unwrap();
        assert_eq!(
            ticks(&s, &w).unwrap().len(),
            3,
            "8th, 9th and 10th: the rest is not due"
        );
        let err = Windows::new(date("2026-11-09"), date("2026-11-08"), &s, now);
        assert!(matches!(err, Err(BackfillError::EmptyWindow { .. })));
        let err = Windows::new(date("2026-12-01"), date("2026-12-02"), &s, now);
        assert!(matches!(err, Err(BackfillError::Future { .. })));
        assert_eq!(
            Bound::parse("--to", "Nov 1").unwrap_err().to_string(),
            "--to \"Nov 1\": expected a date (2026-11-01) or an RFC 3339 time (2026-11-01T02:00:00+08:00)"
        );
    }

    #[test]
    fn a_backfill_runs_the_union_with_each_instant_once() {
        // Weekdays at 02:00 and every day at 02:00 and 14:00, all in Shanghai: weekday nights
        // are one tick, not two.
        let s = schedules(&[
            ("0 2 * * 1-5", Some("Asia/Shanghai")),
            ("0 2,14 * * *", Some("Asia/Shanghai")),
        ]);
        let now = utc("2026-12-01T00:00:00Z");
        let w = Windows::new(date("2026-11-02"), date("2026-11-08"), &s, now).unwrap();
        let planned = plan("etl", &s, &w, &BTreeSet::new()).unwrap();
        assert_eq!(planned.create.len(), 14, "a week of two ticks a day");
        let names: BTreeSet<&str> = planned.create.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names.len(), 14, "one name per instant");
        assert_eq!(planned.create[0].name, "etl-202611011800");
        assert_eq!(planned.create[1].name, "etl-202611020600");
    }

    #[test]
    fn a_date_is_that_day_in_each_schedules_own_zone() {
        // 23:30 in Berlin and 00:30 in Shanghai: for 2026-11-10 both run on the 10th where they
        // are, which is two instants a day apart in UTC.
        let s = schedules(&[
            ("30 23 * * *", Some("Europe/Berlin")),
            ("30 0 * * *", Some("Asia/Shanghai")),
        ]);
        let now = utc("2026-12-01T00:00:00Z");
        let w = Windows::new(date("2026-11-10"), date("2026-11-10"), &s, now).unwrap();
        assert_eq!(
            ticks(&s, &w).unwrap(),
            [utc("2026-11-09T16:30:00Z"), utc("2026-11-10T22:30:00Z")]
        );
        assert_eq!(
            w.whole,
            Window {
                from: utc("2026-11-09T16:00:00Z"),
                to: utc("2026-11-10T22:59:59Z")
            },
            "from Shanghai's midnight to Berlin's"
        );
        // The 21st has begun in Shanghai, not yet in Berlin: only Shanghai's night is due.
        let now = utc("2026-11-20T20:00:00Z");
        let w = Windows::new(date("2026-11-21"), date("2026-11-21"), &s, now).unwrap();
        assert_eq!(ticks(&s, &w).unwrap(), [utc("2026-11-20T16:30:00Z")]);
        assert_eq!(w.whole.from, utc("2026-11-20T16:00:00Z"));
        let future = Windows::new(date("2026-11-22"), date("2026-11-22"), &s, now);
        assert!(matches!(future, Err(BackfillError::Future { .. })));
    }

    #[test]
    fn too_many_ticks_is_refused() {
        let s = one("* * * * *", None);
        let now = utc("2026-12-01T00:00:00Z");
        let w = Windows::new(date("2026-11-01"), date("2026-11-30"), &s, now).unwrap();
        assert_eq!(ticks(&s, &w), Err(BackfillError::TooManyTicks));
    }
}
