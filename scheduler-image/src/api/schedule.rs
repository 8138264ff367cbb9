//! Cron schedules as a Kubernetes CronJob accepts them (5 fields or an `@hourly`-style macro),
//! evaluated in an IANA time zone.
//!
//! The syntax is checked here, field by field, so that errors say which field is wrong and why;
//! evaluation (including DST gaps and overlaps) is delegated to `croner` on a normalised pattern.
//! DST semantics: a wall-clock time skipped by a spring-forward gap fires at the first instant
//! after the gap; a fixed-time tick repeated by a fall-back overlap fires once (the earlier one).

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// A parsed, ready-to-evaluate schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    tz: Tz,
}

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

    /// Checks one field and returns it in numeric form for croner.
    fn normalise(&self, text: &str, allow_question: bool) -> Result<String, String> {
        let mut items = Vec::new();
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
                    (r, Some(step))
                }
                None => (item, None),
            };
            let range_text = match range {
                "*" => "*".to_string(),
                "?" if allow_question => "*".to_string(),
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
                        format!("{lo}-{hi}")
                    }
                    // `5/15` means "from 5 every 15" (robfig/cron, which Kubernetes uses).
                    None if step.is_some() => format!("{}-{}", self.value(range)?, self.max),
                    None => self.value(range)?.to_string(),
                },
            };
            items.push(match step {
                Some(s) => format!("{range_text}/{s}"),
                None => range_text,
            });
        }
        Ok(items.join(","))
    }
}

/// Checks a cron expression and returns its numeric 5-field form.
fn normalise(expr: &str) -> Result<String, String> {
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
    let fields = FIELDS
        .iter()
        .zip(&parts)
        .enumerate()
        .map(|(i, (field, text))| field.normalise(text, i == 2 || i == 4))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(fields.join(" "))
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
        let pattern = normalise(expr).map_err(cron_err)?;
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(&pattern)
            .map_err(|e| cron_err(e.to_string()))?;
        let tz = parse_timezone(timezone)?;
        Ok(Self { cron, tz })
    }

    /// The time zone the schedule is evaluated in.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The first tick strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&t.with_timezone(&self.tz), false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The last tick at or before `t`.
    pub fn latest_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&t.with_timezone(&self.tz), true)
            .ok()
            .map(|d| d.with_timezone(&Utc))
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
    fn tick_in_fall_back_overlap_fires_once() {
        // 02:30 happens twice in Berlin on 2026-10-25 (00:30 UTC and 01:30 UTC).
        let s = Schedule::parse("30 2 * * *", Some("Europe/Berlin")).expect("valid");
        let tick = s.next_after(utc(2026, 10, 24, 23, 0)).expect("a tick");
        assert_eq!(tick, utc(2026, 10, 25, 0, 30));
        assert_eq!(s.next_after(tick), Some(utc(2026, 10, 26, 1, 30)));
    }
}
