//! Schedule planning: given a workflow's schedule settings, what it last scheduled, its active
//! runs and `now`, decide which ticks get a run. Pure: the clock is an argument.
//!
//! Semantics follow a Kubernetes CronJob: a tick is due when it lies after the last scheduled
//! tick and at or before `now`; ticks older than `startingDeadlineSeconds` are missed; `Forbid`
//! holds a due tick back while a run is active (it starts later if still within the deadline);
//! `Replace` deletes the active runs first. The catch-up policy bounds how many missed ticks run.
//!
//! A workflow with several schedules has one stream of ticks, theirs merged in time order with
//! each instant once ([`Schedules`]): the policies, the deadline, the catch-up bound and
//! `lastScheduleTime` all apply to that stream, so two schedules that meet start one run.

use chrono::{DateTime, Duration, Utc};

use datajump_api::schedules::Schedules;
use datajump_api::{CatchUpPolicy, ConcurrencyPolicy, WorkflowSpec};

/// Upper bound on ticks examined per decision, so a long outage with a per-minute schedule
/// costs bounded work; older ticks are simply missed.
pub const MAX_TICKS_EXAMINED: usize = 1000;

/// What the schedule planner needs to know.
#[derive(Debug, Clone)]
pub struct TickInput<'a> {
    /// The current time.
    pub now: DateTime<Utc>,
    /// The workflow's schedules, as one.
    pub schedule: &'a Schedules,
    /// The workflow's settings (suspend, policies, deadline).
    pub spec: &'a WorkflowSpec,
    /// `status.lastScheduleTime`, or the workflow's creation time if it never ran.
    pub last_scheduled: DateTime<Utc>,
    /// Names of this workflow's runs that have not finished.
    pub active_runs: &'a [String],
}

/// The schedule planner's decision.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CronPlan {
    /// Ticks to create runs for, oldest first.
    pub create: Vec<DateTime<Utc>>,
    /// Active runs to delete first (`Replace`).
    pub delete_runs: Vec<String>,
    /// Ticks not run: beyond the starting deadline or dropped by the catch-up policy (counted
    /// up to [`MAX_TICKS_EXAMINED`]).
    pub missed: u64,
    /// A due tick held back by `Forbid`; it runs once the active run finishes, if still in time.
    pub held_back: Option<DateTime<Utc>>,
    /// New value for `status.lastScheduleTime`.
    pub last_scheduled: DateTime<Utc>,
    /// When to look again.
    pub wake_at: Option<DateTime<Utc>>,
}

/// Decides which ticks get a run.
pub fn plan_ticks(input: &TickInput<'_>) -> CronPlan {
    let TickInput {
        now,
        schedule,
        spec,
        last_scheduled,
        active_runs,
    } = *input;
    let mut plan = CronPlan {
        last_scheduled,
        wake_at: schedule.next_after(now),
        ..CronPlan::default()
    };
    if spec.suspend {
        // Nothing is consumed: on resume, ticks still within the deadline run.
        plan.wake_at = None;
        return plan;
    }
    let due = due_ticks(schedule, last_scheduled, now);
    let Some(&newest) = due.first() else {
        return plan;
    };
    let window_start = spec
        .starting_deadline_seconds
        .map(|s| now - Duration::seconds(s));
    let in_time: Vec<DateTime<Utc>> = due
        .iter()
        .copied()
        .filter(|t| window_start.is_none_or(|w| *t >= w))
        .collect();
    let wanted = match spec.catch_up_policy {
        CatchUpPolicy::Latest => 1,
        CatchUpPolicy::All => spec.max_catch_up_runs.max(1) as usize,
    };
    // `due` is newest first; keep the newest `wanted`, then run them oldest first.
    let mut chosen: Vec<DateTime<Utc>> = in_time.into_iter().take(wanted).collect();
    chosen.reverse();

    match spec.concurrency_policy {
        ConcurrencyPolicy::Forbid if !active_runs.is_empty() => {
            // Hold the oldest chosen tick; nothing is consumed, so it is retried when the
            // active run finishes (the run's watch event wakes us) or missed after the deadline.
            plan.held_back = chosen.first().copied();
            if chosen.is_empty() {
                plan.missed = due.len() as u64;
                plan.last_scheduled = newest;
            }
            if let (Some(held), Some(deadline)) = (plan.held_back, spec.starting_deadline_seconds) {
                let expiry = held + Duration::seconds(deadline) + Duration::seconds(1);
                plan.wake_at = Some(plan.wake_at.map_or(expiry, |w| w.min(expiry)));
            }
            return plan;
        }
        ConcurrencyPolicy::Forbid => {
            // Runs of one Forbid workflow never overlap: start the oldest chosen tick now and
            // leave the rest due.
            chosen.truncate(1);
        }
        ConcurrencyPolicy::Replace => {
            // Each run would replace the one before: only the newest matters.
            chosen.drain(..chosen.len().saturating_sub(1));
            // A run is replaced only by a new one: a missed tick (past the starting deadline)
            // starts nothing, so it stops nothing either.
            if !chosen.is_empty() {
                plan.delete_runs = active_runs.to_vec();
            }
        }
        ConcurrencyPolicy::Allow => {}
    }
    let created_up_to = chosen.last().copied();
    plan.create = chosen;
    match (spec.concurrency_policy, created_up_to) {
        // Forbid with catch-up: ticks newer than the started one stay due.
        (ConcurrencyPolicy::Forbid, Some(started)) => {
            plan.missed = due.iter().filter(|t| **t < started).count() as u64;
            plan.last_scheduled = started;
            if due.iter().any(|t| *t > started) {
                plan.wake_at = Some(now);
            }
        }
        _ => {
            plan.missed = (due.len() - plan.create.len()) as u64;
            plan.last_scheduled = newest;
        }
    }
    plan
}

/// Ticks in `(after, now]`, newest first, at most [`MAX_TICKS_EXAMINED`].
fn due_ticks(schedule: &Schedules, after: DateTime<Utc>, now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    schedule
        .back_from(now)
        .take_while(|t| *t > after)
        .take(MAX_TICKS_EXAMINED)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, d, h, mi, 0)
            .single()
            .expect("valid test time")
    }

    fn spec(schedule: &str) -> WorkflowSpec {
        serde_json::from_value(serde_json::json!({
            "schedule": schedule,
            "tasks": [{"name": "a", "image": "busybox"}],
        }))
        .expect("valid spec")
    }

    fn plan(
        spec: &WorkflowSpec,
        last: DateTime<Utc>,
        now: DateTime<Utc>,
        active: &[&str],
    ) -> CronPlan {
        let schedule = Schedules::of(spec)
            .expect("valid schedules")
            .expect("a scheduled workflow");
        let active: Vec<String> = active.iter().map(|s| s.to_string()).collect();
        plan_ticks(&TickInput {
            now,
            schedule: &schedule,
            spec,
            last_scheduled: last,
            active_runs: &active,
        })
    }

    #[test]
    fn nothing_due_before_the_first_tick() {
        let s = spec("@hourly");
        let p = plan(&s, utc(1, 10, 0), utc(1, 10, 59), &[]);
        assert!(p.create.is_empty());
        assert_eq!(p.wake_at, Some(utc(1, 11, 0)));
        assert_eq!(p.last_scheduled, utc(1, 10, 0));
    }

    #[test]
    fn a_due_tick_fires_exactly_once() {
        let s = spec("@hourly");
        let p = plan(&s, utc(1, 10, 0), utc(1, 11, 0), &[]);
        assert_eq!(p.create, [utc(1, 11, 0)]);
        assert_eq!(p.last_scheduled, utc(1, 11, 0));
        // Reconciling again with the updated status creates nothing more.
        let again = plan(
            &s,
            p.last_scheduled,
            utc(1, 11, 0) + Duration::seconds(5),
            &[],
        );
        assert!(again.create.is_empty());
    }

    #[test]
    fn missed_ticks_beyond_the_deadline_are_not_started() {
        let mut s = spec("*/10 * * * *");
        s.starting_deadline_seconds = Some(300);
        // Down from 10:00 to 11:07: ticks 10:10..11:00 are due, only none is within 5 minutes.
        let p = plan(&s, utc(1, 10, 0), utc(1, 11, 7), &[]);
        assert!(p.create.is_empty(), "{p:?}");
        assert_eq!(p.missed, 6);
        assert_eq!(p.last_scheduled, utc(1, 11, 0));
        // Within the deadline the latest tick starts and the older ones count as missed.
        let p = plan(&s, utc(1, 10, 0), utc(1, 11, 3), &[]);
        assert_eq!(p.create, [utc(1, 11, 0)]);
        assert_eq!(p.missed, 5);
    }

    #[test]
    fn catch_up_all_is_bounded_and_oldest_first() {
        let mut s = spec("@hourly");
        s.catch_up_policy = CatchUpPolicy::All;
        s.max_catch_up_runs = 3;
        let p = plan(&s, utc(1, 0, 0), utc(1, 6, 30), &[]);
        assert_eq!(p.create, [utc(1, 4, 0), utc(1, 5, 0), utc(1, 6, 0)]);
        assert_eq!(p.missed, 3);
        assert_eq!(p.last_scheduled, utc(1, 6, 0));
    }

    #[test]
    fn forbid_holds_the_tick_while_a_run_is_active_then_starts_it_in_time() {
        let mut s = spec("@hourly");
        s.concurrency_policy = ConcurrencyPolicy::Forbid;
        s.starting_deadline_seconds = Some(600);
        let held = plan(&s, utc(1, 10, 0), utc(1, 11, 2), &["etl-202603011000"]);
        assert!(held.create.is_empty());
        assert_eq!(held.held_back, Some(utc(1, 11, 0)));
        assert_eq!(
            held.last_scheduled,
            utc(1, 10, 0),
            "the tick is not consumed"
        );
        assert_eq!(held.wake_at, Some(utc(1, 11, 10) + Duration::seconds(1)));
        // The active run finished at 11:05: the held tick still starts.
        let p = plan(&s, utc(1, 10, 0), utc(1, 11, 5), &[]);
        assert_eq!(p.create, [utc(1, 11, 0)]);
        // Finished only at 11:15: the tick is past its deadline and missed.
        let late = plan(&s, utc(1, 10, 0), utc(1, 11, 15), &["etl-202603011000"]);
        assert!(late.create.is_empty() && late.held_back.is_none());
        assert_eq!((late.missed, late.last_scheduled), (1, utc(1, 11, 0)));
    }

    #[test]
    fn forbid_with_catch_up_runs_one_tick_at_a_time() {
        let mut s = spec("@hourly");
        s.concurrency_policy = ConcurrencyPolicy::Forbid;
        s.catch_up_policy = CatchUpPolicy::All;
        let p = plan(&s, utc(1, 0, 0), utc(1, 3, 30), &[]);
        assert_eq!(p.create, [utc(1, 1, 0)]);
        assert_eq!(p.last_scheduled, utc(1, 1, 0));
        assert_eq!(p.wake_at, Some(utc(1, 3, 30)));
    }

    #[test]
    fn replace_deletes_active_runs_and_starts_the_newest_tick() {
        let mut s = spec("@hourly");
        s.concurrency_policy = ConcurrencyPolicy::Replace;
        s.catch_up_policy = CatchUpPolicy::All;
        let p = plan(&s, utc(1, 9, 0), utc(1, 11, 1), &["etl-202603010900"]);
        assert_eq!(p.delete_runs, ["etl-202603010900"]);
        assert_eq!(p.create, [utc(1, 11, 0)]);
        assert_eq!(p.missed, 1);
    }

    #[test]
    fn replace_keeps_the_active_run_when_the_tick_is_missed() {
        let mut s = spec("@hourly");
        s.concurrency_policy = ConcurrencyPolicy::Replace;
        s.starting_deadline_seconds = Some(60);
        // The 11:00 tick is ten minutes old, beyond the one-minute deadline: nothing starts.
        let p = plan(&s, utc(1, 10, 0), utc(1, 11, 10), &["etl-202603011000"]);
        assert!(p.create.is_empty());
        assert!(p.delete_runs.is_empty(), "deleted {:?}", p.delete_runs);
        assert_eq!((p.missed, p.last_scheduled), (1, utc(1, 11, 0)));
    }

    #[test]
    fn suspended_workflows_consume_nothing() {
        let mut s = spec("@hourly");
        s.suspend = true;
        let p = plan(&s, utc(1, 9, 0), utc(1, 11, 1), &[]);
        assert!(p.create.is_empty());
        assert_eq!(
            (p.last_scheduled, p.missed, p.wake_at),
            (utc(1, 9, 0), 0, None)
        );
    }

    #[test]
    fn ticks_follow_the_dst_change_with_an_injected_clock() {
        // 02:30 Berlin is skipped on 2026-03-29; that day's tick fires at 03:00 CEST (01:00 UTC).
        let mut s = spec("30 2 * * *");
        s.timezone = Some("Europe/Berlin".into());
        let before = utc(28, 1, 30);
        let p = plan(&s, before, utc(29, 0, 59), &[]);
        assert!(p.create.is_empty());
        assert_eq!(p.wake_at, Some(utc(29, 1, 0)));
        let p = plan(&s, before, utc(29, 1, 0), &[]);
        assert_eq!(p.create, [utc(29, 1, 0)]);
        let p = plan(&s, utc(29, 1, 0), utc(30, 0, 30), &[]);
        assert_eq!(
            p.create,
            [utc(30, 0, 30)],
            "02:30 CEST = 00:30 UTC the day after"
        );
    }

    fn several(schedules: serde_json::Value) -> WorkflowSpec {
        serde_json::from_value(serde_json::json!({
            "schedules": schedules,
            "tasks": [{"name": "a", "image": "busybox"}],
        }))
        .expect("valid spec")
    }

    #[test]
    fn two_schedules_that_meet_start_one_run() {
        // Every 20 and every 30 minutes: they meet on the hour.
        let s = several(serde_json::json!([
            {"schedule": "*/20 * * * *"}, {"schedule": "*/30 * * * *"}
        ]));
        let p = plan(&s, utc(1, 9, 40), utc(1, 10, 0), &[]);
        assert_eq!(p.create, [utc(1, 10, 0)], "one run for the meeting");
        assert_eq!(p.missed, 0);
        assert_eq!(p.wake_at, Some(utc(1, 10, 20)), "the next tick of either");
        // Again with the status written: the meeting is not taken a second time.
        let again = plan(&s, p.last_scheduled, utc(1, 10, 0), &[]);
        assert!(again.create.is_empty(), "{again:?}");
        // Catching up over two hours: every instant of either once, the newest `maxCatchUpRuns`.
        let mut s = s;
        s.catch_up_policy = CatchUpPolicy::All;
        s.max_catch_up_runs = 100;
        let p = plan(&s, utc(1, 8, 0), utc(1, 10, 5), &[]);
        let minutes: Vec<(u32, u32)> = p
            .create
            .iter()
            .map(|t| (chrono::Timelike::hour(t), chrono::Timelike::minute(t)))
            .collect();
        assert_eq!(
            minutes,
            [
                (8, 20),
                (8, 30),
                (8, 40),
                (9, 0),
                (9, 20),
                (9, 30),
                (9, 40),
                (10, 0)
            ]
        );
        s.max_catch_up_runs = 3;
        let p = plan(&s, utc(1, 8, 0), utc(1, 10, 5), &[]);
        assert_eq!(p.create, [utc(1, 9, 30), utc(1, 9, 40), utc(1, 10, 0)]);
        assert_eq!((p.missed, p.last_scheduled), (5, utc(1, 10, 0)));
    }

    #[test]
    fn the_deadline_and_forbid_apply_across_schedules() {
        // A daily report at 09:00 Shanghai (01:00 UTC) and an hourly check at :30 UTC.
        let mut s = several(serde_json::json!([
            {"schedule": "0 9 * * *", "timezone": "Asia/Shanghai"},
            {"schedule": "30 * * * *"}
        ]));
        s.concurrency_policy = ConcurrencyPolicy::Forbid;
        s.starting_deadline_seconds = Some(600);
        // The 00:30 run is still active at 01:00: Shanghai's tick waits for it...
        let held = plan(&s, utc(2, 0, 30), utc(2, 1, 1), &["etl-202603020030"]);
        assert_eq!((held.held_back, held.create.len()), (Some(utc(2, 1, 0)), 0));
        // ...and starts once it ended, within the deadline.
        let p = plan(&s, utc(2, 0, 30), utc(2, 1, 4), &[]);
        assert_eq!(p.create, [utc(2, 1, 0)]);
        // Nothing ran from 00:30 to 01:35: 01:00 (Shanghai's) is past the deadline, 01:30 not.
        let p = plan(&s, utc(2, 0, 30), utc(2, 1, 35), &[]);
        assert_eq!((p.create.clone(), p.missed), (vec![utc(2, 1, 30)], 1));
    }

    #[test]
    fn schedules_in_different_zones_follow_their_own_dst() {
        // 02:30 Berlin (skipped on 2026-03-29: fires at 01:00 UTC) and 09:00 New York (EDT
        // since 8 March: 13:00 UTC).
        let s = several(serde_json::json!([
            {"schedule": "30 2 * * *", "timezone": "Europe/Berlin"},
            {"schedule": "0 9 * * *", "timezone": "America/New_York"}
        ]));
        let p = plan(&s, utc(28, 13, 0), utc(29, 0, 59), &[]);
        assert!(p.create.is_empty());
        assert_eq!(p.wake_at, Some(utc(29, 1, 0)));
        let p = plan(&s, utc(28, 13, 0), utc(29, 1, 0), &[]);
        assert_eq!(p.create, [utc(29, 1, 0)]);
        let p = plan(&s, utc(29, 1, 0), utc(29, 13, 0), &[]);
        assert_eq!(p.create, [utc(29, 13, 0)]);
        assert_eq!(p.wake_at, Some(utc(30, 0, 30)), "02:30 CEST the day after");
    }

    #[test]
    fn a_long_outage_examines_bounded_ticks() {
        let s = spec("* * * * *");
        let p = plan(&s, utc(1, 0, 0), utc(20, 0, 0), &[]);
        assert_eq!(p.create, [utc(20, 0, 0)]);
        assert_eq!(p.missed, MAX_TICKS_EXAMINED as u64 - 1);
    }
}
