//! The state of one planning step ([`Planner`]): every task's status as the step changes it,
//! the actions it collects, and the plan it ends with. The step's parts are in `observe`
//! (Jobs and pods into task states), `start` (trigger rules, starting attempts) and `finish`
//! (stopping the DAG, ending the run), and `shutdown` (stopping or terminating it on request).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::input::{LogArchiving, ObservedJob, RunInput};
use super::output::{Action, EventType, RunPlan};
use datajump_api::{
    RunCondition, RunPhase, Shutdown, TaskPhase, TaskSpec, TaskStatus, WorkflowRunStatus,
};

/// One step of planning a run: the tasks' statuses as they change, and what the step does.
pub(super) struct Planner<'a> {
    pub(super) input: &'a RunInput<'a>,
    /// Every task's spec: the DAG's, then the `onExit` task's (index `dag_len`).
    pub(super) specs: Vec<&'a TaskSpec>,
    /// Number of tasks in the DAG.
    pub(super) dag_len: usize,
    pub(super) tasks: Vec<TaskStatus>,
    /// Latest observed Job per task index.
    pub(super) latest_job: Vec<Option<&'a ObservedJob>>,
    pub(super) actions: Vec<Action>,
    pub(super) wake_at: Option<DateTime<Utc>>,
    pub(super) waits_for_slot: bool,
    pub(super) waits_for_pools: Vec<String>,
    pub(super) finished: Vec<(usize, TaskPhase)>,
    pub(super) phase: RunPhase,
    pub(super) start_time: Option<DateTime<Utc>>,
    pub(super) completion_time: Option<DateTime<Utc>>,
    pub(super) message: Option<String>,
    pub(super) conditions: Vec<RunCondition>,
    /// The `spec.shutdown` acted on (recorded in the status).
    pub(super) shutdown: Option<Shutdown>,
}

impl<'a> Planner<'a> {
    pub(super) fn new(input: &'a RunInput<'a>) -> Self {
        let specs: Vec<&TaskSpec> = input.spec.all_tasks().collect();
        let previous: HashMap<&str, &TaskStatus> = input
            .status
            .tasks
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();
        let tasks = specs
            .iter()
            .map(|t| {
                previous
                    .get(t.name.as_str())
                    .map(|s| (*s).clone())
                    .unwrap_or_else(|| TaskStatus {
                        name: t.name.clone(),
                        ..TaskStatus::default()
                    })
            })
            .collect();
        let index: HashMap<&str, usize> = specs
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.as_str(), i))
            .collect();
        let mut latest_job: Vec<Option<&ObservedJob>> = vec![None; specs.len()];
        for job in input.jobs {
            if let Some(&i) = index.get(job.task.as_str())
                && latest_job[i].is_none_or(|j| j.attempt < job.attempt)
            {
                latest_job[i] = Some(job);
            }
        }
        let status = input.status;
        Self {
            input,
            specs,
            dag_len: input.spec.tasks.len(),
            tasks,
            latest_job,
            actions: Vec::new(),
            wake_at: None,
            waits_for_slot: false,
            waits_for_pools: Vec::new(),
            finished: Vec::new(),
            phase: status.phase,
            start_time: status.start_time.or(Some(input.now)),
            completion_time: status.completion_time,
            message: status.message.clone(),
            conditions: status.conditions.clone(),
            shutdown: status.shutdown,
        }
    }

    pub(super) fn wake(&mut self, at: DateTime<Utc>) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }

    pub(super) fn event(&mut self, type_: EventType, reason: &'static str, message: String) {
        self.actions.push(Action::Event {
            type_,
            reason,
            message,
        });
    }

    pub(super) fn set_terminal(&mut self, i: usize, phase: TaskPhase, message: Option<String>) {
        let now = self.input.now;
        let task = &mut self.tasks[i];
        task.phase = phase;
        task.completion_time = Some(now);
        task.next_attempt_time = None;
        task.message = message;
        self.finished.push((i, phase));
    }

    /// Stops a running Job. With the log archive on, its pods
    /// are stopped where they run, so their logs outlive them ([`Action::KillPods`]); else the
    /// Job goes, in the foreground when `wait` (a terminate waits for the pods to be gone)
    /// or in the background.
    pub(super) fn stop_running_job(&mut self, job_name: String, wait: bool) {
        let action = match (self.input.log_archiving, wait) {
            (LogArchiving::On { .. }, _) => Action::KillPods { job_name },
            (LogArchiving::Off, true) => Action::TerminateJob { job_name },
            (LogArchiving::Off, false) => Action::DeleteJob { job_name },
        };
        self.actions.push(action);
    }

    pub(super) fn delete_job(&mut self, job: &ObservedJob) {
        self.actions.push(Action::DeleteJob {
            job_name: job.name.clone(),
        });
    }

    pub(super) fn finish(self) -> RunPlan {
        let succeeded = self
            .tasks
            .iter()
            .filter(|t| t.phase == TaskPhase::Succeeded)
            .count();
        let total = self.tasks.len();
        let outcome = self.outcome();
        RunPlan {
            status: WorkflowRunStatus {
                phase: self.phase,
                start_time: self.start_time,
                completion_time: self.completion_time,
                succeeded_tasks: succeeded as u32,
                total_tasks: total as u32,
                tasks: self.tasks,
                message: self.message,
                conditions: self.conditions,
                shutdown: self.shutdown,
                // The spec the run executes, recorded with its first step. A run that finished
                // before snapshots existed keeps none rather than get today's spec.
                workflow_spec: self.input.status.workflow_spec.clone().or_else(|| {
                    (!self.input.status.phase.is_finished())
                        .then(|| std::sync::Arc::clone(self.input.spec))
                }),
            },
            outcome,
            actions: self.actions,
            wake_at: self.wake_at,
            waits_for_slot: self.waits_for_slot,
            waits_for_pools: self.waits_for_pools,
            finished_tasks: self.finished,
        }
    }
}
