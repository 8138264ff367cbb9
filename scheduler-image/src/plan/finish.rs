//! Finishing: the run deadline and fail-fast stopping the DAG, the DAG's outcome, and the end
//! of the run once the DAG and its `onExit` task ended (`Stopped` or `Terminated` when a
//! shutdown ended it).

use chrono::Duration;

use super::input::{DEADLINE_EXCEEDED, JobState};
use super::output::{EventType, Outcome};
use super::planner::Planner;
use super::shutdown::TERMINATED;
use datajump_api::{
    CONDITION_COMPLETE, CONDITION_FAILED, CONDITION_STOPPED, FailureStrategy, RunCondition,
    RunPhase, Shutdown, TaskPhase, TaskStatus,
};

/// The reason recorded on a running task the scheduler stopped because the run's deadline
/// passed or another task failed under fail-fast.
pub(super) const STOPPED: &str = "Stopped";

impl Planner<'_> {
    pub(super) fn deadline_exceeded(&self) -> bool {
        match (self.input.spec.active_deadline_seconds, self.start_time) {
            (Some(d), Some(start)) => self.input.now >= start + Duration::seconds(d),
            _ => false,
        }
    }

    /// The first task (in the workflow's order) that failed for good, when the workflow fails
    /// fast.
    pub(super) fn fails_fast(&self) -> Option<String> {
        if self.input.spec.failure_strategy != FailureStrategy::FailFast {
            return None;
        }
        self.tasks[..self.dag_len]
            .iter()
            .find(|t| t.phase == TaskPhase::Failed)
            .map(|t| t.name.clone())
    }

    /// Stops the DAG (the deadline passed, or a task failed and the workflow fails fast):
    /// running attempts are stopped and fail, tasks not started are skipped. The `onExit` task
    /// is not the DAG's: it still runs.
    pub(super) fn stop_dag(&mut self, message: String) {
        for i in 0..self.dag_len {
            match self.tasks[i].phase {
                TaskPhase::Running => {
                    if let Some(job) = self.tasks[i].job_name.clone() {
                        self.stop_running_job(job, false);
                    }
                    self.tasks[i].reason = Some(STOPPED.into());
                    self.set_terminal(i, TaskPhase::Failed, Some(message.clone()));
                }
                TaskPhase::Pending => {
                    self.set_terminal(i, TaskPhase::Skipped, Some(message.clone()))
                }
                _ => {}
            }
        }
    }

    /// How the DAG ended, once all of its tasks did.
    pub(super) fn outcome(&self) -> Option<Outcome> {
        if !self.dag_done() {
            return None;
        }
        let failed_tasks: Vec<String> = self.tasks[..self.dag_len]
            .iter()
            .filter(|t| t.phase == TaskPhase::Failed)
            .map(|t| t.name.clone())
            .collect();
        let phase = match self.shutdown {
            Some(shutdown) => shutdown.phase(),
            None if failed_tasks.is_empty() && !self.deadline_exceeded() => RunPhase::Succeeded,
            None => RunPhase::Failed,
        };
        Some(Outcome {
            phase,
            failed_tasks,
        })
    }

    /// Ends the run once the DAG and the `onExit` task (if any) ended: Failed when a task
    /// failed, the deadline passed or the `onExit` task failed; Stopped or Terminated when a
    /// shutdown ended it (see [`Self::end_shut_down`]).
    pub(super) fn complete_if_done(&mut self) {
        let Some(outcome) = self.outcome() else {
            return;
        };
        let exit = self
            .tasks
            .get(self.dag_len)
            .map(|t| (t.name.clone(), t.phase));
        if exit.as_ref().is_some_and(|(_, phase)| !phase.is_terminal()) {
            return;
        }
        if !self.terminated_jobs_gone() {
            return;
        }
        let exit_failed = exit
            .filter(|(_, phase)| *phase == TaskPhase::Failed)
            .map(|(name, _)| format!("the onExit task {name} failed"));
        if let Some(shutdown) = self.shutdown {
            self.end_shut_down(shutdown, exit_failed);
            return;
        }
        let (reason, message) = if self.deadline_exceeded() {
            (
                DEADLINE_EXCEEDED,
                "the run exceeded activeDeadlineSeconds".to_string(),
            )
        } else if !outcome.failed_tasks.is_empty() {
            (
                "TasksFailed",
                format!("failed tasks: {}", outcome.failed_tasks.join(", ")),
            )
        } else if let Some(exit_failed) = &exit_failed {
            ("ExitHandlerFailed", exit_failed.clone())
        } else {
            let done = self
                .tasks
                .iter()
                .filter(|t| t.phase == TaskPhase::Succeeded)
                .count();
            let skipped = self.tasks.len() - done;
            let message = match skipped {
                0 => format!("all {done} tasks succeeded"),
                _ => format!("{done} tasks succeeded, {skipped} skipped by their trigger rules"),
            };
            self.end(RunPhase::Succeeded, "Completed", message);
            return;
        };
        let message = match exit_failed {
            Some(exit_failed) if reason != "ExitHandlerFailed" => {
                format!("{message}; {exit_failed}")
            }
            _ => message,
        };
        self.end(RunPhase::Failed, reason, message);
    }

    /// Ends a run that a shutdown ended, its message counting what became of the DAG's tasks
    /// (`stopped on request: 2 tasks succeeded, 1 terminated (load), 3 not started`); a failed
    /// `onExit` task is named too, but the phase stays the one asked for.
    fn end_shut_down(&mut self, shutdown: Shutdown, exit_failed: Option<String>) {
        let dag = &self.tasks[..self.dag_len];
        let count = |phase: TaskPhase| dag.iter().filter(|t| t.phase == phase).count();
        let names = |keep: &dyn Fn(&TaskStatus) -> bool| -> Vec<&str> {
            dag.iter()
                .filter(|t| keep(t))
                .map(|t| t.name.as_str())
                .collect()
        };
        let terminated = |t: &TaskStatus| t.reason.as_deref() == Some(TERMINATED);
        let killed = names(&|t| t.phase == TaskPhase::Failed && terminated(t));
        let failed = names(&|t| t.phase == TaskPhase::Failed && !terminated(t));
        let mut parts = vec![format!("{} tasks succeeded", count(TaskPhase::Succeeded))];
        if !killed.is_empty() {
            parts.push(format!(
                "{} terminated ({})",
                killed.len(),
                killed.join(", ")
            ));
        }
        if !failed.is_empty() {
            parts.push(format!("{} failed ({})", failed.len(), failed.join(", ")));
        }
        parts.push(format!("{} not started", count(TaskPhase::Skipped)));
        let (verb, reason) = match shutdown {
            Shutdown::Stop => ("stopped", "StopRequested"),
            Shutdown::Terminate => ("terminated", "TerminateRequested"),
        };
        let mut message = format!("{verb} on request: {}", parts.join(", "));
        if let Some(exit_failed) = exit_failed {
            message = format!("{message}; {exit_failed}");
        }
        self.end(shutdown.phase(), reason, message);
    }

    pub(super) fn end(&mut self, phase: RunPhase, reason: &'static str, message: String) {
        let now = self.input.now;
        self.phase = phase;
        self.completion_time = Some(now);
        let (type_, cond, event_reason) = match phase {
            RunPhase::Succeeded => (EventType::Normal, CONDITION_COMPLETE, "RunSucceeded"),
            RunPhase::Stopped => (EventType::Normal, CONDITION_STOPPED, "RunStopped"),
            RunPhase::Terminated => (EventType::Normal, CONDITION_STOPPED, "RunTerminated"),
            _ => (EventType::Warning, CONDITION_FAILED, "RunFailed"),
        };
        RunCondition::set(
            &mut self.conditions,
            RunCondition::now_true(cond, reason, &message, now),
        );
        self.event(type_, event_reason, message.clone());
        self.message = Some(message);
        self.wake_at = None;
    }

    /// After the run ended (deadline, replaced), make sure nothing it started keeps running
    /// (a Job being deleted already is on its way).
    pub(super) fn stop_leftover_jobs(&mut self) {
        for job in self.input.jobs {
            if job.state == JobState::Active && !job.deleting {
                self.stop_running_job(job.name.clone(), false);
            }
        }
    }
}
