//! Whose turn it is in a backfill: a backfill's runs are created together (one per past tick)
//! and at most `parallelism` of them execute at once, oldest tick first. Pure: the workflow's
//! runs in, the names of the runs that may start out.
//!
//! The answer depends only on what the runs' statuses say, so every reconcile (of any run, or
//! of the Workflow) reaches the same one, and a stale view only ever holds a run back: a run that
//! has started is counted as such from its own status write on, and a run seen as not started
//! keeps its place in the queue ahead of the later ones.

use std::sync::Arc;

use datajump_api::{BackfillRef, RunPhase, WorkflowRun, WorkflowRunStatus};

/// Whether a run has left the queue: a task of it started, or it ended.
pub fn started(status: Option<&WorkflowRunStatus>) -> bool {
    status.is_some_and(|s| s.phase != RunPhase::Pending || s.tasks.iter().any(|t| t.attempts > 0))
}

/// The backfill whose queue `run` (with status `status`) stands in: a backfill's run that
/// has neither started nor ended.
pub fn queued<'a>(run: &'a WorkflowRun, status: &WorkflowRunStatus) -> Option<&'a BackfillRef> {
    run.spec
        .backfill
        .as_ref()
        .filter(|_| !status.phase.is_finished() && !started(Some(status)))
}

/// The status of a run of `backfill` told to wait for its turn: `status` with a note saying
/// why, or `None` when it says so already (nothing to write).
pub fn waiting_status(
    status: &WorkflowRunStatus,
    backfill: &BackfillRef,
) -> Option<WorkflowRunStatus> {
    let message = format!(
        "waiting for its turn: backfill {} runs {} at a time, oldest first",
        backfill.name, backfill.parallelism
    );
    (status.message.as_deref() != Some(message.as_str())).then(|| WorkflowRunStatus {
        message: Some(message),
        ..status.clone()
    })
}

/// The status a backfill run whose turn came starts from: without the note that it waited.
pub fn turn_came(status: &WorkflowRunStatus) -> WorkflowRunStatus {
    WorkflowRunStatus {
        message: None,
        ..status.clone()
    }
}

/// The runs of backfill `name` that have not started and may start now: as many as
/// `parallelism` leaves beside the started, unfinished ones, oldest logical time first (the name
/// breaks ties).
pub fn turns(runs: &[Arc<WorkflowRun>], name: &str, parallelism: u32) -> Vec<String> {
    let members = runs.iter().filter(|r| {
        r.spec.backfill.as_ref().is_some_and(|b| b.name == name)
            && !r.status.as_ref().is_some_and(|s| s.phase.is_finished())
    });
    let mut running = 0usize;
    let mut queued: Vec<&WorkflowRun> = Vec::new();
    for run in members {
        if started(run.status.as_ref()) {
            running += 1;
        } else {
            queued.push(run);
        }
    }
    queued.sort_by(|a, b| {
        let key = |r: &WorkflowRun| {
            (
                r.spec.scheduled_time.or(r.spec.logical_time),
                r.metadata.name.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    let free = (parallelism as usize).saturating_sub(running);
    queued
        .into_iter()
        .take(free)
        .filter_map(|r| r.metadata.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use datajump_api::{BackfillRef, TaskStatus, WorkflowRunSpec};

    fn run(day: u32, backfill: &str, phase: RunPhase, attempts: u32) -> Arc<WorkflowRun> {
        let tick = Utc.with_ymd_and_hms(2026, 11, day, 2, 0, 0).single();
        let mut run = WorkflowRun::new(
            &format!("etl-202611{day:02}0200"),
            WorkflowRunSpec {
                workflow_name: "etl".into(),
                scheduled_time: tick,
                backfill: Some(BackfillRef {
                    name: backfill.into(),
                    parallelism: 2,
                }),
                ..WorkflowRunSpec::default()
            },
        );
        run.status = Some(WorkflowRunStatus {
            phase,
            tasks: vec![TaskStatus {
                name: "load".into(),
                attempts,
                ..TaskStatus::default()
            }],
            ..WorkflowRunStatus::default()
        });
        Arc::new(run)
    }

    #[test]
    fn the_oldest_queued_runs_take_the_free_places() {
        let runs = vec![
            run(5, "nov", RunPhase::Pending, 0),
            run(3, "nov", RunPhase::Pending, 0),
            run(4, "nov", RunPhase::Pending, 0),
            run(1, "nov", RunPhase::Succeeded, 1),
            run(2, "other", RunPhase::Pending, 0),
        ];
        assert_eq!(
            turns(&runs, "nov", 2),
            ["etl-202611030200", "etl-202611040200"]
        );
        assert_eq!(turns(&runs, "other", 2), ["etl-202611020200"]);
    }

    #[test]
    fn started_runs_hold_their_places_until_they_end() {
        let mut runs = vec![
            run(1, "nov", RunPhase::Running, 1),
            // Allowed before, its tasks waiting for the global cap: still first in the queue.
            run(2, "nov", RunPhase::Pending, 0),
            run(3, "nov", RunPhase::Pending, 0),
        ];
        assert_eq!(turns(&runs, "nov", 2), ["etl-202611020200"]);
        runs[0] = run(1, "nov", RunPhase::Failed, 1);
        assert_eq!(
            turns(&runs, "nov", 2),
            ["etl-202611020200", "etl-202611030200"]
        );
        // A task attempt without the phase written yet counts as started.
        runs[1] = run(2, "nov", RunPhase::Pending, 1);
        assert_eq!(turns(&runs, "nov", 2), ["etl-202611030200"]);
        assert!(turns(&runs, "nov", 1).is_empty());
    }

    #[test]
    fn a_queued_run_says_once_why_it_waits_and_starts_without_the_note() {
        let queued_run = run(2, "nov", RunPhase::Pending, 0);
        let status = queued_run.status.clone().unwrap_or_default();
        let backfill = queued(&queued_run, &status).expect("in the queue");
        let waiting = waiting_status(&status, backfill).expect("a note to write");
        assert_eq!(
            waiting.message.as_deref(),
            Some("waiting for its turn: backfill nov runs 2 at a time, oldest first")
        );
        assert_eq!(waiting.tasks, status.tasks, "nothing else changes");
        assert_eq!(waiting_status(&waiting, backfill), None, "said already");
        assert_eq!(turn_came(&waiting), status);
        for left in [
            run(1, "nov", RunPhase::Pending, 1),
            run(1, "nov", RunPhase::Failed, 0),
        ] {
            let status = left.status.clone().unwrap_or_default();
            assert_eq!(queued(&left, &status), None, "started or ended");
        }
    }
}
