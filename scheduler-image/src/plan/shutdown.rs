//! Ending a run early on request (`spec.shutdown`). `Stop`: tasks not started are skipped, no
//! retry is made, running tasks finish. `Terminate`: running tasks are stopped too, their Jobs
//! deleted in the foreground, so each Job holds its slot under the cap until its pods are gone;
//! the `onExit` task starts, and the run ends, only once they are (or after
//! [`TERMINATE_WAIT_SECONDS`], should a node never confirm). Then the run ends `Stopped` or
//! `Terminated`.
//!
//! The request is acted on once and recorded (`status.shutdown`), and re-applying it is
//! harmless, so a scheduler restarted in the middle (or a new leader) finishes the job: it
//! deletes what is still running and skips what was not started. A run whose DAG already ended
//! (only its `onExit` task may still run) is finishing and ignores the request.

use chrono::Duration;

use super::input::JobState;
use super::output::EventType;
use super::planner::Planner;
use datajump_api::{Shutdown, TaskPhase};

/// How long a terminated run waits for the Jobs it deleted to be gone (their pods' grace period,
/// 30 s by default, and the garbage collector) before its `onExit` task starts regardless.
pub(super) const TERMINATE_WAIT_SECONDS: i64 = 120;

/// The reason recorded on a task stopped by a terminate.
pub(super) const TERMINATED: &str = "Terminated";

/// What a shutdown did to the tasks, in words: "stopped" or "terminated".
fn done(shutdown: Shutdown) -> &'static str {
    match shutdown {
        Shutdown::Stop => "stopped",
        Shutdown::Terminate => "terminated",
    }
}

impl Planner<'_> {
    /// Acts on the run's `spec.shutdown` (the one recorded, when it went further): the first
    /// time, records it with an Event; every time, makes sure nothing new starts and, under
    /// `Terminate`, that nothing of the DAG runs.
    pub(super) fn shut_down(&mut self) {
        let Some(shutdown) = self.input.shutdown.max(self.shutdown) else {
            return;
        };
        if self.shutdown != Some(shutdown) {
            if self.dag_done() {
                // Every task ended before the request: the run is finishing as it would.
                return;
            }
            self.acknowledge(shutdown);
        }
        for i in 0..self.dag_len {
            match self.tasks[i].phase {
                TaskPhase::Pending => self.drop_pending(i, shutdown),
                TaskPhase::Running if shutdown == Shutdown::Terminate => self.terminate_task(i),
                _ => {}
            }
        }
    }

    /// Records the shutdown and says so in an Event and the run's message.
    fn acknowledge(&mut self, shutdown: Shutdown) {
        self.shutdown = Some(shutdown);
        let running: Vec<&str> = self.tasks[..self.dag_len]
            .iter()
            .filter(|t| t.phase == TaskPhase::Running)
            .map(|t| t.name.as_str())
            .collect();
        let running = match running.as_slice() {
            [] => "no task runs".to_string(),
            names => format!("running: {}", names.join(", ")),
        };
        let (reason, what) = match shutdown {
            Shutdown::Stop => (
                "RunStopping",
                "stopping on request: no new task starts, running tasks finish",
            ),
            Shutdown::Terminate => (
                "RunTerminating",
                "terminating on request: running tasks are stopped",
            ),
        };
        self.message = Some(what.to_string());
        self.event(
            EventType::Normal,
            reason,
            format!("run {}: {what} ({running})", self.input.run_name),
        );
    }

    /// A task not running: it will not start. One that never started is Skipped; one waiting
    /// to retry a failed attempt is Failed with that attempt's failure.
    fn drop_pending(&mut self, i: usize, shutdown: Shutdown) {
        let task = &self.tasks[i];
        let (phase, message) = if task.attempts == 0 {
            (
                TaskPhase::Skipped,
                format!("not started: the run was {}", done(shutdown)),
            )
        } else {
            let failure = task.message.as_deref().unwrap_or("the last attempt failed");
            (
                TaskPhase::Failed,
                format!("{failure}; not retried: the run was {}", done(shutdown)),
            )
        };
        self.set_terminal(i, phase, Some(message));
    }

    /// Stops running task `i`: its Job is deleted in the foreground (unless its deletion is
    /// under way already), or with the log archive on its pods are stopped where they run
    /// (so their logs can be archived), and the task is Failed with reason `Terminated`.
    fn terminate_task(&mut self, i: usize) {
        let attempt = self.tasks[i].attempts;
        let deleting = self.latest_job[i].is_some_and(|j| j.attempt == attempt && j.deleting);
        if !deleting && let Some(job_name) = self.tasks[i].job_name.clone() {
            // By name, observed or not: a Job the cache does not show yet is deleted too.
            self.stop_running_job(job_name, true);
        }
        let task = &mut self.tasks[i];
        task.reason = Some(TERMINATED.into());
        task.exit_code = None;
        let message = format!("attempt {attempt} terminated: the run was terminated");
        self.set_terminal(i, TaskPhase::Failed, Some(message));
    }

    /// Whether nothing of a terminated run's DAG still runs: the Jobs it deleted are gone (or
    /// were given [`TERMINATE_WAIT_SECONDS`]); until then, asks to be woken when that wait
    /// ends (the Jobs' own deletion wakes the run before). Always true for other runs.
    pub(super) fn terminated_jobs_gone(&mut self) -> bool {
        if self.shutdown != Some(Shutdown::Terminate) {
            return true;
        }
        let now = self.input.now;
        let mut gone = true;
        for i in 0..self.dag_len {
            if !self.latest_job[i].is_some_and(|j| j.state == JobState::Active) {
                continue;
            }
            let until = self.tasks[i].completion_time.unwrap_or(now)
                + Duration::seconds(TERMINATE_WAIT_SECONDS);
            if now < until {
                gone = false;
                self.wake(until);
            }
        }
        gone
    }
}
