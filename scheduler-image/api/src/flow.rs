//! Control flow of a run: when a task starts given how the tasks it depends on ended (trigger
//! rules), what one task failing for good does to the rest of the run (failure strategy), and
//! which failed attempts are tried again (retry policy).
//!
//! Trigger rules follow Airflow's (which DolphinScheduler users meet as "conditions" and Argo
//! users as `depends` expressions): each is a decision on the phases of the upstream tasks that
//! is final as soon as it can be, so `AnyFailed` starts a clean-up task as soon as one upstream
//! task failed, and skips it once all ended without a failure.

use serde::{Deserialize, Serialize};

use crate::phase::TaskPhase;

/// When a task starts, given how the tasks in its `dependsOn` ended.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, schemars::JsonSchema,
)]
pub enum TriggerRule {
    /// Every upstream task succeeded (the default); skipped as soon as one failed or was skipped.
    #[default]
    AllSucceeded,
    /// Every upstream task ended, whatever the outcome (a clean-up or a report).
    AllDone,
    /// Every upstream task failed; skipped as soon as one succeeded or was skipped.
    AllFailed,
    /// At least one upstream task failed (an alert or a fallback), as soon as one did; skipped
    /// once all ended without a failure.
    AnyFailed,
    /// At least one upstream task succeeded, as soon as one did; skipped once all ended
    /// without one.
    AnySucceeded,
    /// No upstream task failed (succeeded or skipped, e.g. behind an optional branch); skipped
    /// as soon as one failed.
    NoneFailed,
}

/// What a trigger rule decides on the upstream phases as they stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The task may start.
    Start,
    /// The task can never start in this run.
    Skip,
    /// Not decided until more upstream tasks end.
    Wait,
}

impl TriggerRule {
    /// Whether the rule means anything for a task without upstream tasks. `AllSucceeded`,
    /// `AllDone` and `NoneFailed` start such a task at once; the others would skip it (or, for
    /// `AllFailed`, start it vacuously), which is a mistake in the workflow.
    pub fn needs_upstream(self) -> bool {
        matches!(self, Self::AllFailed | Self::AnyFailed | Self::AnySucceeded)
    }

    /// The decision for upstream tasks in `upstream` phases.
    pub fn decide(self, upstream: impl IntoIterator<Item = TaskPhase>) -> Decision {
        let (mut succeeded, mut failed, mut skipped, mut open) = (0usize, 0usize, 0usize, 0usize);
        for phase in upstream {
            match phase {
                TaskPhase::Succeeded => succeeded += 1,
                TaskPhase::Failed => failed += 1,
                TaskPhase::Skipped => skipped += 1,
                TaskPhase::Pending | TaskPhase::Running => open += 1,
            }
        }
        let wait_or = |done: Decision| if open > 0 { Decision::Wait } else { done };
        match self {
            Self::AllSucceeded if failed + skipped > 0 => Decision::Skip,
            Self::AllSucceeded => wait_or(Decision::Start),
            Self::AllDone => wait_or(Decision::Start),
            Self::AllFailed if succeeded + skipped > 0 => Decision::Skip,
            Self::AllFailed => wait_or(Decision::Start),
            Self::AnyFailed if failed > 0 => Decision::Start,
            Self::AnyFailed => wait_or(Decision::Skip),
            Self::AnySucceeded if succeeded > 0 => Decision::Start,
            Self::AnySucceeded => wait_or(Decision::Skip),
            Self::NoneFailed if failed > 0 => Decision::Skip,
            Self::NoneFailed => wait_or(Decision::Start),
        }
    }
}

/// What a task failing for good (its retries spent) does to the rest of the run.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum FailureStrategy {
    /// Independent branches carry on; tasks whose trigger rule can no longer be met are
    /// skipped (DolphinScheduler's "continue"). The default.
    #[default]
    Continue,
    /// Stop the run at once: running tasks are stopped (their Jobs deleted) and every task
    /// not started is skipped; only the `onExit` task still runs (DolphinScheduler's "end").
    FailFast,
}

/// Which failed attempts of a task are tried again (while `retries` last).
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum RetryOn {
    /// Every failed attempt (the default).
    #[default]
    Always,
    /// Only attempts whose task container ran and failed: a non-zero exit, OOMKilled, the
    /// task's timeout.
    OnFailure,
    /// Only attempts whose pod never ran the task: its image could not be pulled, its
    /// configuration was missing, no node fitted it, or the API server refused its Job. Retrying
    /// a data job that failed half-way may not be safe; retrying one that never started is.
    OnError,
}

/// How an attempt failed, for [`RetryOn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptFailure {
    /// The task container ran and failed (or ran out of time).
    Failure,
    /// The task never ran: its pod could not start or its Job was refused.
    Error,
}

impl RetryOn {
    /// Whether an attempt that failed this way may be retried.
    pub fn retries(self, failure: AttemptFailure) -> bool {
        match self {
            Self::Always => true,
            Self::OnFailure => failure == AttemptFailure::Failure,
            Self::OnError => failure == AttemptFailure::Error,
        }
    }
}

/// Which tasks a retry from the failed ones keeps, given each task's dependents and whether it
/// succeeded: those that succeeded and depend, directly or not, on no task that runs again
/// (DolphinScheduler's "recover from failure"; Airflow's "clear failed, downstream"). A clean-up
/// that ran after the failed task runs again after its new attempt.
pub fn kept_by_retry(dependents: &[Vec<usize>], succeeded: &[bool]) -> Vec<bool> {
    let mut again: Vec<bool> = succeeded.iter().map(|s| !s).collect();
    let mut stack: Vec<usize> = (0..again.len()).filter(|&i| again[i]).collect();
    while let Some(i) = stack.pop() {
        for &d in dependents.get(i).into_iter().flatten() {
            if !again[d] {
                again[d] = true;
                stack.push(d);
            }
        }
    }
    again.into_iter().map(|a| !a).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskPhase::{Failed as F, Pending as P, Running as R, Skipped as K, Succeeded as S};

    #[test]
    fn each_rule_decides_as_soon_as_it_can() {
        use Decision::{Skip, Start, Wait};
        // (rule, upstream phases, decision)
        let cases: &[(TriggerRule, &[TaskPhase], Decision)] = &[
            (TriggerRule::AllSucceeded, &[S, S], Start),
            (TriggerRule::AllSucceeded, &[S, R], Wait),
            (TriggerRule::AllSucceeded, &[F, R], Skip),
            (TriggerRule::AllSucceeded, &[K, S], Skip),
            (TriggerRule::AllSucceeded, &[], Start),
            (TriggerRule::AllDone, &[S, F, K], Start),
            (TriggerRule::AllDone, &[F, P], Wait),
            (TriggerRule::AllFailed, &[F, F], Start),
            (TriggerRule::AllFailed, &[F, R], Wait),
            (TriggerRule::AllFailed, &[S, R], Skip),
            (TriggerRule::AllFailed, &[K, F], Skip),
            (TriggerRule::AnyFailed, &[F, R], Start),
            (TriggerRule::AnyFailed, &[S, R], Wait),
            (TriggerRule::AnyFailed, &[S, K], Skip),
            (TriggerRule::AnySucceeded, &[S, R], Start),
            (TriggerRule::AnySucceeded, &[F, P], Wait),
            (TriggerRule::AnySucceeded, &[F, K], Skip),
            (TriggerRule::NoneFailed, &[S, K], Start),
            (TriggerRule::NoneFailed, &[S, R], Wait),
            (TriggerRule::NoneFailed, &[F, R], Skip),
        ];
        for (rule, upstream, want) in cases {
            assert_eq!(
                rule.decide(upstream.iter().copied()),
                *want,
                "{rule:?} on {upstream:?}"
            );
        }
    }

    #[test]
    fn rules_that_need_upstream_tasks_are_named() {
        let needing: Vec<_> = [
            TriggerRule::AllSucceeded,
            TriggerRule::AllDone,
            TriggerRule::AllFailed,
            TriggerRule::AnyFailed,
            TriggerRule::AnySucceeded,
            TriggerRule::NoneFailed,
        ]
        .into_iter()
        .filter(|r| r.needs_upstream())
        .collect();
        assert_eq!(
            needing,
            [
                TriggerRule::AllFailed,
                TriggerRule::AnyFailed,
                TriggerRule::AnySucceeded
            ]
        );
    }

    #[test]
    fn a_retry_keeps_what_succeeded_upstream_of_every_failure() {
        // extract -> load -> {report, cleanup}; audit alone.
        let dependents = vec![vec![1], vec![2, 3], vec![], vec![], vec![]];
        let succeeded = [true, false, false, true, true];
        assert_eq!(
            kept_by_retry(&dependents, &succeeded),
            [true, false, false, false, true]
        );
    }

    #[test]
    fn retry_policies_pick_their_failures() {
        use AttemptFailure::{Error, Failure};
        assert!(RetryOn::Always.retries(Failure) && RetryOn::Always.retries(Error));
        assert!(RetryOn::OnFailure.retries(Failure) && !RetryOn::OnFailure.retries(Error));
        assert!(!RetryOn::OnError.retries(Failure) && RetryOn::OnError.retries(Error));
    }
}
