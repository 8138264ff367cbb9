//! Cron schedules as a Kubernetes CronJob accepts them (5 fields or an `@hourly`-style macro),
//! evaluated in an IANA time zone.
//!
//! The syntax is checked field by field, so that errors say which field is wrong and why, and
//! compiled to bitsets; evaluation walks wall-clock time with field-sized jumps (about a
//! microsecond for a typical next tick) and maps each candidate into the time zone.
//!
//! Day matching follows Vixie cron / robfig (which Kubernetes uses): when both day fields are
//! restricted a day matches either; when one is `*` both must match.
//!
//! DST semantics: for a fixed-time schedule (one minute, one hour), a wall-clock time skipped by
//! a spring-forward gap fires at the first instant after the gap, and a time repeated by a
//! fall-back overlap fires once (the earlier instant). Interval schedules (`*/5 * * * *`) fire
//! at every real instant that matches: none inside a gap, both passes of an overlap.

use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone,
    Timelike, Utc,
};
use chrono_tz::Tz;

/// A parsed, ready-to-evaluate schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    /// Day-of-month field is `*` (or `?`): robfig's rule for combining the two day fields.
    dom_star: bool,
    dow_star: bool,
    /// Exactly one minute and one hour: a "fixed time" for DST purposes.
    fixed_time: bool,
    tz: Tz,
}

/// Upper bound on wall-clock jumps per search: enough for any schedule that fires at least once
/// in eight years (February 29 included); beyond, the schedule never fires.
const MAX_STEPS: usize = 20_000;

/// Why a schedule or time zone was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression is malformed.
    #[error("invalid cron schedule {expr:?}: {reason}")]
    Cron {
        /// The expression as written.
        expr: String,
        /// What is wrong, naming the field.
        reason: String,
    },
    /// The time zone is not in the IANA database.
    #[error("unknown time zone {0:?}; expected an IANA name such as \"Europe/Berlin\" or \"UTC\"")]
    Timezone(String),
}

/// One cron field: its name, value range, and accepted three-letter names (index = value - min).
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
    },
    Field {
        name: "day-of-month",
        min: 1,
        max: 31,
        names: &[],
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: MONTHS,
    },
    Field {
        name: "day-of-week",
        min: 0,
        max: 6,
        names: WEEKDAYS,
    },
];

/// Expands the macros Kubernetes accepts into their 5-field form.
fn expand_macro(expr: &str) -> Option<&'static str> {
    Some(match expr.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => return None,
    })
}

impl Field {
    fn value(&self, token: &str) -> Result<u32, String> {
        if let Ok(v) = token.parse::<u32>() {
            if v < self.min || v > self.max {
                return Err(format!(
                    "{} field: value {v} is out of range {}-{}",
                    self.name, self.min, self.max
                ));
            }
            return Ok(v);
        }
        let upper = token.to_ascii_uppercase();
        match self.names.iter().position(|n| *n == upper) {
            // Names map to min + index: JAN = 1, SUN = 0.
            Some(i) => Ok(self.min + i as u32),
            None if self.names.is_empty() => {
                Err(format!("{} field: {token:?} is not a number", self.name))
            }
            None => Err(format!(
                "{} field: {token:?} is neither a number in {}-{} nor one of {}",
                self.name,
                self.min,
                self.max,
                self.names.join(", ")
            )),
        }
    }

    /// Checks one field and compiles it to a bitset (bit `v` set = value `v` matches) and
    /// whether it is unrestricted for the day rule (an item `*` or `?` with step 1).
    fn compile(&self, text: &str, allow_question: bool) -> Result<(u64, bool), String> {
        let mut bits = 0u64;
        let mut star = false;
        for item in text.split(',') {
            if item.is_empty() {
                return Err(format!("{} field: empty list item in {text:?}", self.name));
            }
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => {
                    let step: u32 = s.parse().map_err(|_| {
                        format!("{} field: step {s:?} is not a positive number", self.name)
                    })?;
                    if step == 0 || step > self.max {
                        return Err(format!(
                            "{} field: step {step} must be between 1 and {}",
                            self.name, self.max
                        ));
                    }
                    (r, step)
                }
                None => (item, 1),
            };
            let (lo, hi) = match range {
                "*" => (self.min, self.max),
                "?" if allow_question => (self.min, self.max),
                "?" => {
                    return Err(format!(
                        "{} field: '?' is only allowed in day fields",
                        self.name
                    ));
                }
                _ => match range.split_once('-') {
                    Some((a, b)) => {
                        let (lo, hi) = (self.value(a)?, self.value(b)?);
                        if lo > hi {
                            return Err(format!(
                                "{} field: range {range:?} starts after it ends",
                                self.name
                            ));
                        }
                        (lo, hi)
                    }
                    // `5/15` means "from 5 every 15" (robfig/cron, which Kubernetes uses).
                    None if item.contains('/') => (self.value(range)?, self.max),
                    None => {
                        let v = self.value(range)?;
                        (v, v)
                    }
                },
            };
            // robfig (Kubernetes): an item `*` or `?` without a step above 1 leaves the field
            // unrestricted for the day rule, inside a list too (`*,5`).
            star |= matches!(range, "*" | "?") && step == 1;
            for v in (lo..=hi).step_by(step as usize) {
                bits |= 1 << v;
            }
        }
        Ok((bits, star))
    }
}

/// Checks a cron expression and compiles its five fields: (bits, star) each.
fn compile(expr: &str) -> Result<[(u64, bool); 5], String> {
    let trimmed = expr.trim();
    if trimmed.is_empty() {
        return Err("the schedule is empty".into());
    }
    let body = if trimmed.starts_with('@') {
        expand_macro(trimmed).ok_or_else(|| {
            format!(
                "unknown macro {trimmed:?}; expected one of @yearly, @annually, @monthly, \
                 @weekly, @daily, @midnight, @hourly"
            )
        })?
    } else {
        trimmed
    };
    let parts: Vec<&str> = body.split_whitespace().collect();
    if parts.len() != 5 {
        return Err(format!(
            "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
            parts.len()
        ));
    }
    let mut out = [(0, false); 5];
    for (i, (field, text)) in FIELDS.iter().zip(&parts).enumerate() {
        out[i] = field.compile(text, i == 2 || i == 4)?;
    }
    Ok(out)
}

/// The smallest set bit at or above `from`, if any.
fn next_bit(bits: u64, from: u32) -> Option<u32> {
    let rest = bits.checked_shr(from).unwrap_or(0);
    (rest != 0).then(|| from + rest.trailing_zeros())
}

/// The largest set bit at or below `upto`, if any.
fn prev_bit(bits: u64, upto: u32) -> Option<u32> {
    let masked = if upto >= 63 {
        bits
    } else {
        bits & ((2u64 << upto) - 1)
    };
    (masked != 0).then(|| 63 - masked.leading_zeros())
}

fn midnight(date: NaiveDate) -> NaiveDateTime {
    date.and_hms_opt(0, 0, 0).unwrap_or_default()
}

fn at(date: NaiveDate, hour: u32, minute: u32) -> NaiveDateTime {
    date.and_hms_opt(hour, minute, 0)
        .unwrap_or_else(|| midnight(date))
}

fn first_of_next_month(d: NaiveDate) -> Option<NaiveDate> {
    let (y, m) = if d.month() == 12 {
        (d.year() + 1, 1)
    } else {
        (d.year(), d.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1)
}

/// Parses an IANA time zone name (`None` = UTC).
pub fn parse_timezone(name: Option<&str>) -> Result<Tz, ScheduleError> {
    match name {
        None => Ok(Tz::UTC),
        Some(n) => Tz::from_str(n).map_err(|_| ScheduleError::Timezone(n.to_string())),
    }
}

impl Schedule {
    /// Parses a schedule and its time zone.
    pub fn parse(expr: &str, timezone: Option<&str>) -> Result<Self, ScheduleError> {
        let cron_err = |reason: String| ScheduleError::Cron {
            expr: expr.to_string(),
            reason,
        };
        let [minutes, hours, dom, months, dow] = compile(expr).map_err(cron_err)?;
        let tz = parse_timezone(timezone)?;
        let schedule = Self {
            minutes: minutes.0,
            hours: hours.0,
            days_of_month: dom.0,
            months: months.0,
            days_of_week: dow.0,
            dom_star: dom.1,
            dow_star: dow.1,
            fixed_time: minutes.0.count_ones() == 1 && hours.0.count_ones() == 1,
            tz,
        };
        let probe = NaiveDate::from_ymd_opt(2000, 1, 1)
            .map(midnight)
            .unwrap_or_default();
        if schedule.next_wall_clock(probe).is_none() {
            return Err(cron_err(
                "the schedule never fires (no such day, e.g. February 30)".into(),
            ));
        }
        Ok(schedule)
    }

    /// The time zone the schedule is evaluated in.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    fn day_matches(&self, d: NaiveDate) -> bool {
        let dom = self.days_of_month & (1 << d.day()) != 0;
        let dow = self.days_of_week & (1 << d.weekday().num_days_from_sunday()) != 0;
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first matching wall-clock minute at or after `c`.
    fn next_wall_clock(&self, mut c: NaiveDateTime) -> Option<NaiveDateTime> {
        for _ in 0..MAX_STEPS {
            let d = c.date();
            if self.months & (1 << d.month()) == 0 {
                c = midnight(first_of_next_month(d)?);
            } else if !self.day_matches(d) {
                c = midnight(d.succ_opt()?);
            } else if self.hours & (1 << c.hour()) == 0 {
                c = match next_bit(self.hours, c.hour() + 1).filter(|h| *h < 24) {
                    Some(h) => at(d, h, 0),
                    None => midnight(d.succ_opt()?),
                };
            } else {
                match next_bit(self.minutes, c.minute()).filter(|m| *m < 60) {
                    Some(m) => return Some(at(d, c.hour(), m)),
                    None if c.hour() == 23 => c = midnight(d.succ_opt()?),
                    None => c = at(d, c.hour() + 1, 0),
                }
            }
        }
        None
    }

    /// The last matching wall-clock minute at or before `c`.
    fn prev_wall_clock(&self, mut c: NaiveDateTime) -> Option<NaiveDateTime> {
        let last_minute_before = |d: NaiveDate| d.pred_opt().map(|p| at(p, 23, 59));
        for _ in 0..MAX_STEPS {
            let d = c.date();
            if self.months & (1 << d.month()) == 0 {
                c = last_minute_before(d.with_day(1)?)?;
            } else if !self.day_matches(d) {
                c = last_minute_before(d)?;
            } else if self.hours & (1 << c.hour()) == 0 {
                c = match c
                    .hour()
                    .checked_sub(1)
                    .and_then(|h| prev_bit(self.hours, h))
                {
                    Some(h) => at(d, h, 59),
                    None => last_minute_before(d)?,
                };
            } else {
                match prev_bit(self.minutes, c.minute()) {
                    Some(m) => return Some(at(d, c.hour(), m)),
                    None if c.hour() == 0 => c = last_minute_before(d)?,
                    None => c = at(d, c.hour() - 1, 59),
                }
            }
        }
        None
    }

    /// The first real instant at or after a wall-clock time that a DST gap skipped.
    fn after_gap(&self, n: NaiveDateTime) -> Option<DateTime<Utc>> {
        (1..=180).find_map(|k| {
            self.tz
                .from_local_datetime(&(n + Duration::minutes(k)))
                .earliest()
                .map(|d| d.with_timezone(&Utc))
        })
    }

    /// The instants a matching wall-clock minute fires at (none, one or two, earliest first)
    /// and whether the minute is ambiguous (repeated by a fall-back overlap).
    fn instants(&self, n: NaiveDateTime) -> ([Option<DateTime<Utc>>; 2], bool) {
        let utc = |d: DateTime<Tz>| d.with_timezone(&Utc);
        match self.tz.from_local_datetime(&n) {
            LocalResult::Single(d) => ([Some(utc(d)), None], false),
            LocalResult::Ambiguous(a, _) if self.fixed_time => ([Some(utc(a)), None], true),
            LocalResult::Ambiguous(a, b) => ([Some(utc(a)), Some(utc(b))], true),
            LocalResult::None if self.fixed_time => ([self.after_gap(n), None], false),
            LocalResult::None => ([None, None], false),
        }
    }

    /// How far wall-clock order may disagree with real-time order around `t`: an hour or two
    /// near a DST transition, nothing elsewhere (the common, fast case).
    fn slack(&self, t: DateTime<Utc>) -> Duration {
        let offset = |x: DateTime<Utc>| self.tz.offset_from_utc_datetime(&x.naive_utc()).fix();
        let window = Duration::hours(3);
        if offset(t - window) != offset(t) || offset(t + window) != offset(t) {
            window
        } else {
            Duration::zero()
        }
    }

    /// The first tick strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.tz).naive_local() - self.slack(t);
        let mut c = local.with_second(0)?.with_nanosecond(0)?;
        let mut best: Option<DateTime<Utc>> = None;
        for _ in 0..MAX_STEPS {
            let n = self.next_wall_clock(c)?;
            let (instants, ambiguous) = self.instants(n);
            for d in instants.into_iter().flatten().filter(|d| *d > t) {
                best = Some(best.map_or(d, |b| b.min(d)));
            }
            // Past an unambiguous match, later wall-clock times only map to later instants.
            if best.is_some() && !ambiguous && instants[0].is_some_and(|d| d > t) {
                return best;
            }
            c = n + Duration::minutes(1);
        }
        best
    }

    /// The last tick at or before `t`.
    pub fn latest_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.tz).naive_local() + self.slack(t);
        let mut c = local.with_second(0)?.with_nanosecond(0)?;
        let mut best: Option<DateTime<Utc>> = None;
        for _ in 0..MAX_STEPS {
            let n = self.prev_wall_clock(c)?;
            let (instants, ambiguous) = self.instants(n);
            for d in instants.into_iter().flatten().filter(|d| *d <= t) {
                best = Some(best.map_or(d, |b| b.max(d)));
            }
            if best.is_some() && !ambiguous && instants[0].is_some_and(|d| d <= t) {
                return best;
            }
            c = n - Duration::minutes(1);
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("valid test time")
    }

    #[test]
    fn accepts_kubernetes_syntax_and_macros() {
        for expr in [
            "*/5 * * * *",
            "0 3 * * MON-FRI",
            "15 2 1,15 JAN,jul ?",
            "5/15 * * * *",
            "@hourly",
            "@Daily",
            "@midnight",
            "0 0 * * 0",
        ] {
            assert!(Schedule::parse(expr, None).is_ok(), "{expr} should parse");
        }
    }

    #[test]
    fn rejects_bad_fields_naming_them() {
        let cases = [
            ("0 24 * * *", "hour field: value 24 is out of range 0-23"),
            ("* * * *", "expected 5 fields"),
            ("0 0 * * * *", "found 6"),
            ("@every 5m", "unknown macro"),
            ("0 0 L * *", "day-of-month field: \"L\" is not a number"),
            ("0 0 * FOO *", "month field: \"FOO\" is neither"),
            ("*/0 * * * *", "step 0 must be between"),
            ("5-1 * * * *", "starts after it ends"),
            ("? * * * *", "only allowed in day fields"),
            ("0 0 * * 7", "out of range 0-6"),
            ("", "empty"),
        ];
        for (expr, want) in cases {
            let err = Schedule::parse(expr, None).expect_err(expr).to_string();
            assert!(err.contains(want), "{expr}: {err} should contain {want}");
        }
    }

    #[test]
    fn rejects_unknown_timezone() {
        let err = Schedule::parse("@daily", Some("Mars/Olympus")).expect_err("bad tz");
        assert_eq!(err, ScheduleError::Timezone("Mars/Olympus".into()));
    }

    #[test]
    fn hourly_macro_fires_on_the_hour() {
        let s = Schedule::parse("@hourly", None).expect("valid");
        assert_eq!(
            s.next_after(utc(2026, 1, 1, 10, 0)),
            Some(utc(2026, 1, 1, 11, 0))
        );
        assert_eq!(
            s.latest_at_or_before(utc(2026, 1, 1, 10, 59)),
            Some(utc(2026, 1, 1, 10, 0))
        );
        assert_eq!(
            s.latest_at_or_before(utc(2026, 1, 1, 10, 0)),
            Some(utc(2026, 1, 1, 10, 0))
        );
    }

    #[test]
    fn timezone_shifts_ticks_and_follows_dst() {
        let s = Schedule::parse("0 9 * * *", Some("Europe/Berlin")).expect("valid");
        // Winter: CET = UTC+1.
        assert_eq!(
            s.next_after(utc(2026, 3, 27, 0, 0)),
            Some(utc(2026, 3, 27, 8, 0))
        );
        // After the 2026-03-29 spring-forward: CEST = UTC+2.
        assert_eq!(
            s.next_after(utc(2026, 3, 29, 0, 0)),
            Some(utc(2026, 3, 29, 7, 0))
        );
    }

    #[test]
    fn tick_in_spring_forward_gap_fires_once_after_the_gap() {
        // 02:30 does not exist in Berlin on 2026-03-29 (02:00 -> 03:00 local, i.e. 01:00 UTC).
        let s = Schedule::parse("30 2 * * *", Some("Europe/Berlin")).expect("valid");
        let tick = s.next_after(utc(2026, 3, 28, 23, 0)).expect("a tick");
        assert_eq!(
            tick,
            utc(2026, 3, 29, 1, 0),
            "fires at 03:00 CEST, the first instant after"
        );
        let following = s.next_after(tick).expect("next tick");
        assert_eq!(
            following,
            utc(2026, 3, 30, 0, 30),
            "then back to 02:30 CEST"
        );
    }

    #[test]
    fn interval_schedules_fire_in_both_passes_of_an_overlap_and_skip_gaps() {
        let s = Schedule::parse("0,30 * * * *", Some("Europe/Berlin")).expect("valid");
        // 2026-10-25: 02:00-02:59 local happens at 00:00-00:59 UTC (CEST) and 01:00-01:59 (CET).
        let mut t = utc(2026, 10, 24, 23, 40);
        let mut ticks = Vec::new();
        for _ in 0..6 {
            t = s.next_after(t).expect("tick");
            ticks.push(t);
        }
        let want: Vec<_> = [(0, 0), (0, 30), (1, 0), (1, 30), (2, 0), (2, 30)]
            .iter()
            .map(|(h, m)| utc(2026, 10, 25, *h, *m))
            .collect();
        assert_eq!(ticks, want, "every real half hour, both passes of 02:xx");
        // Backwards gives the same ticks.
        assert_eq!(
            s.latest_at_or_before(utc(2026, 10, 25, 1, 5)),
            Some(utc(2026, 10, 25, 1, 0))
        );
        assert_eq!(
            s.latest_at_or_before(utc(2026, 10, 25, 0, 59)),
            Some(utc(2026, 10, 25, 0, 30))
        );
        // Spring forward: 02:00 and 02:30 local do not exist on 2026-03-29 (01:00 UTC = 03:00).
        assert_eq!(
            s.next_after(utc(2026, 3, 29, 0, 30)),
            Some(utc(2026, 3, 29, 1, 0))
        );
        assert_eq!(
            s.next_after(utc(2026, 3, 29, 1, 0)),
            Some(utc(2026, 3, 29, 1, 30))
        );
    }

    #[test]
    fn day_fields_combine_like_kubernetes() {
        // Both restricted: the 13th OR any Friday.
        let s = Schedule::parse("0 0 13 * FRI", None).expect("valid");
        assert_eq!(
            s.next_after(utc(2026, 2, 1, 0, 0)),
            Some(utc(2026, 2, 6, 0, 0)),
            "Friday 6th"
        );
        assert_eq!(
            s.next_after(utc(2026, 2, 10, 0, 0)),
            Some(utc(2026, 2, 13, 0, 0)),
            "the 13th"
        );
        // Day of month is '*': only Mondays; a '*' inside a list counts too (robfig's star bit).
        for expr in ["0 0 * * MON", "0 0 *,5 * MON", "0 0 ? * MON"] {
            let s = Schedule::parse(expr, None).expect("valid");
            assert_eq!(
                s.next_after(utc(2026, 2, 1, 0, 0)),
                Some(utc(2026, 2, 2, 0, 0)),
                "{expr}"
            );
        }
        // Leap day: every four years.
        let s = Schedule::parse("0 0 29 2 *", None).expect("valid");
        assert_eq!(
            s.next_after(utc(2026, 1, 1, 0, 0)),
            Some(utc(2028, 2, 29, 0, 0))
        );
        assert_eq!(
            s.latest_at_or_before(utc(2026, 1, 1, 0, 0)),
            Some(utc(2024, 2, 29, 0, 0))
        );
    }

    #[test]
    fn a_schedule_that_never_fires_is_rejected() {
        let err = Schedule::parse("0 0 30 2 *", None)
            .expect_err("February 30")
            .to_string();
        assert!(err.contains("never fires"), "{err}");
    }

    #[test]
    fn steps_and_ranges() {
        let s = Schedule::parse("5/20 9-10 * * *", None).expect("valid");
        let mut t = utc(2026, 1, 1, 0, 0);
        let mut got = Vec::new();
        for _ in 0..7 {
            t = s.next_after(t).expect("tick");
            got.push((t.hour(), t.minute()));
        }
        assert_eq!(
            got,
            [
                (9, 5),
                (9, 25),
                (9, 45),
                (10, 5),
                (10, 25),
                (10, 45),
                (9, 5)
            ]
        );
    }

    #[test]
    fn tick_in_fall_back_overlap_fires_once() {
        // 02:30 happens twice in Berlin on 2026-10-25 (00:30 UTC and 01:30 UTC).
        let s = Schedule::parse("30 2 * * *", Some("Europe/Berlin")).expect("valid");
        let tick = s.next_after(utc(2026, 10, 24, 23, 0)).expect("a tick");
        assert_eq!(tick, utc(2026, 10, 25, 0, 30));
        assert_eq!(s.next_after(tick), Some(utc(2026, 10, 26, 1, 30)));
    }
}
