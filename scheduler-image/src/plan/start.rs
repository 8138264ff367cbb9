//! Starting: which pending tasks their trigger rules let start (or skip), and starting them
//! within the run's parallelism, the free slots of the global cap and of their task pools —
//! a task of a pool the scheduler does not have is refused at once.

use std::collections::{BTreeMap, HashMap};

use chrono::Duration;

use super::output::{Action, EventType};
use super::planner::Planner;
use super::retry::refuse;
use datajump_api::flow::Decision;
use datajump_api::names::job_name;
use datajump_api::validate::Dag;
use datajump_api::{RunPhase, TaskPhase, TaskSpec, TaskStatus};

/// Room to start tasks in, as one step spends it.
struct Room {
    /// Tasks that may still start: within the run's parallelism and the global cap.
    budget: usize,
    /// Whether the global cap, not the run's parallelism, sets the budget: then nothing of
    /// this run may change to trigger it again (its slots are other runs' Jobs), so a task it
    /// holds back waits to be woken when a slot frees.
    cap_binds: bool,
    /// Free slots of each task pool.
    pool_free: HashMap<String, usize>,
}

impl Planner<'_> {
    /// Decides, in dependency order, which pending tasks may start by their trigger rules, and
    /// skips those whose rule can no longer be met (which may decide their dependents in
    /// turn, further down the same pass). Returns whether each DAG task may start.
    pub(super) fn apply_trigger_rules(&mut self) -> Vec<bool> {
        let dag = self.input.dag;
        let mut startable = vec![false; self.dag_len];
        for i in topological_order(dag) {
            if self.tasks[i].phase != TaskPhase::Pending {
                continue;
            }
            let rule = self.specs[i].trigger_rule;
            let upstream = dag.deps[i].iter().map(|&d| self.tasks[d].phase);
            match rule.decide(upstream) {
                Decision::Start => startable[i] = true,
                Decision::Wait => {}
                // A task whose attempt already ran is not skipped: it retries.
                Decision::Skip if self.latest_job[i].is_some() => {}
                Decision::Skip => {
                    let message = skip_message(rule, &self.specs, &dag.deps[i], &self.tasks);
                    self.set_terminal(i, TaskPhase::Skipped, Some(message));
                }
            }
        }
        startable
    }

    /// Whether every task of the DAG ended (the `onExit` task may start, once a terminated
    /// run's Jobs are gone).
    pub(super) fn dag_done(&self) -> bool {
        self.tasks[..self.dag_len]
            .iter()
            .all(|t| t.phase.is_terminal())
    }

    /// Starts the ready tasks the room allows (see [`Room`]), creates again the Jobs of
    /// started attempts that went missing, and marks the run started.
    pub(super) fn start_ready_tasks(&mut self, startable: &[bool]) {
        let exit_ready = self.dag_done() && self.terminated_jobs_gone();
        let mut room = self.room();
        let started_before = self.tasks.iter().any(|t| t.attempts > 0);
        for i in 0..self.tasks.len() {
            if self.recreate_missing_job(i) {
                continue;
            }
            let ready = startable.get(i).copied().unwrap_or(exit_ready);
            if ready && self.tasks[i].phase == TaskPhase::Pending {
                self.start_task(i, &mut room);
            }
        }
        if self.phase == RunPhase::Pending && self.tasks.iter().any(|t| t.attempts > 0) {
            self.phase = RunPhase::Running;
            if !started_before {
                self.event(
                    EventType::Normal,
                    "RunStarted",
                    format!("started run {}", self.input.run_name),
                );
            }
        }
        if let (Some(d), Some(start)) = (self.input.spec.active_deadline_seconds, self.start_time) {
            self.wake(start + Duration::seconds(d));
        }
    }

    /// The room this step has: the run's parallelism less its running tasks, within the free
    /// slots of the global cap and of the task pools.
    fn room(&self) -> Room {
        let running = self
            .tasks
            .iter()
            .filter(|t| t.phase == TaskPhase::Running)
            .count();
        let per_run = self
            .input
            .spec
            .parallelism
            .map_or(usize::MAX, |p| p as usize);
        let run_budget = per_run.saturating_sub(running);
        Room {
            budget: run_budget.min(self.input.free_slots),
            cap_binds: self.input.free_slots < run_budget,
            pool_free: self.input.pool_free.clone(),
        }
    }

    /// A started attempt of task `i` whose Job is not observed (cache lag, or the Job was
    /// deleted): issues the same create again, which the deterministic name makes idempotent.
    /// Only a Running one: a Pending task with attempts is waiting to retry (its last attempt
    /// failed or was refused), which is a new attempt. Returns whether it did.
    fn recreate_missing_job(&mut self, i: usize) -> bool {
        let task = &self.tasks[i];
        if task.phase != TaskPhase::Running
            || task.attempts == 0
            || self.latest_job[i].is_some_and(|j| j.attempt >= task.attempts)
        {
            return false;
        }
        let attempt = task.attempts;
        let job_name = job_name(self.input.run_name, &task.name, attempt);
        self.create_job(i, attempt, job_name);
        true
    }

    /// Starts the next attempt of ready task `i` if its backoff is over and `room` has a slot
    /// for it (and its pool one); a task held back by the cap or a pool waits to be woken.
    fn start_task(&mut self, i: usize, room: &mut Room) {
        if let Some(at) = self.tasks[i]
            .next_attempt_time
            .filter(|at| *at > self.input.now)
        {
            self.wake(at);
            return;
        }
        if room.budget == 0 {
            self.waits_for_slot |= room.cap_binds;
            return;
        }
        if let Some(pool) = self.specs[i].pool.as_ref() {
            if !self.input.task_pools.contains_key(pool) {
                // An attempt of a pool the scheduler does not have starts and is refused at
                // once: it holds no slot, and is retried or fails like a refused Job.
                let message = unknown_pool(pool, self.input.task_pools);
                let attempt = self.start_attempt(i);
                self.refuse(i, attempt, &message);
                return;
            }
            if let Some(free) = room.pool_free.get_mut(pool) {
                if *free == 0 {
                    if !self.waits_for_pools.contains(pool) {
                        self.waits_for_pools.push(pool.clone());
                    }
                    return;
                }
                *free -= 1;
            }
        }
        room.budget -= 1;
        let attempt = self.start_attempt(i);
        let job_name = job_name(self.input.run_name, &self.tasks[i].name, attempt);
        self.create_job(i, attempt, job_name);
    }

    /// Records the next attempt of task `i` as started now; returns its number.
    pub(super) fn start_attempt(&mut self, i: usize) -> u32 {
        let task = &mut self.tasks[i];
        let attempt = task.attempts + 1;
        task.attempts = attempt;
        task.phase = TaskPhase::Running;
        task.job_name = Some(job_name(self.input.run_name, &task.name, attempt));
        task.start_time = Some(self.input.now);
        task.next_attempt_time = None;
        attempt
    }

    /// Creates the Job of `attempt` of task `i`; the `onExit` task's carries the outcome.
    pub(super) fn create_job(&mut self, i: usize, attempt: u32, job_name: String) {
        let outcome = if i == self.dag_len {
            self.outcome()
        } else {
            None
        };
        self.actions.push(Action::CreateJob {
            task: i,
            attempt,
            job_name,
            outcome,
        });
    }

    /// Attempt `attempt` of task `i` failed before it started (`message` says why).
    pub(super) fn refuse(&mut self, i: usize, attempt: u32, message: &str) {
        let refusal = refuse(
            self.specs[i],
            &mut self.tasks[i],
            attempt,
            message,
            self.input.now,
        );
        if refusal.failed {
            self.finished.push((i, TaskPhase::Failed));
        }
        self.wake(refusal.wake_at);
        self.actions.push(refusal.event);
    }
}

/// Why an attempt of a task naming pool `pool`, which the scheduler does not have, is refused.
fn unknown_pool(pool: &str, known: &BTreeMap<String, usize>) -> String {
    let known: Vec<String> = known
        .iter()
        .map(|(name, limit)| format!("{name}={limit}"))
        .collect();
    format!(
        "unknown task pool {pool:?} (the scheduler's pools: {})",
        known.join(", ")
    )
}

/// The DAG's tasks in an order where every task comes after the tasks it depends on (Kahn's
/// algorithm; the DAG was validated, so every task is reached).
fn topological_order(dag: &Dag) -> Vec<usize> {
    let mut missing: Vec<usize> = dag.deps.iter().map(Vec::len).collect();
    let mut order: Vec<usize> = (0..missing.len()).filter(|&i| missing[i] == 0).collect();
    let mut next = 0;
    while let Some(&task) = order.get(next) {
        next += 1;
        for &d in &dag.dependents[task] {
            missing[d] -= 1;
            if missing[d] == 0 {
                order.push(d);
            }
        }
    }
    order
}

/// Why a task's trigger rule skips it, naming the upstream tasks that decided it.
fn skip_message(
    rule: datajump_api::TriggerRule,
    specs: &[&TaskSpec],
    deps: &[usize],
    tasks: &[TaskStatus],
) -> String {
    use datajump_api::TriggerRule as R;
    let named = |wanted: &[TaskPhase]| -> String {
        let names: Vec<&str> = deps
            .iter()
            .filter(|&&d| wanted.contains(&tasks[d].phase))
            .map(|&d| specs[d].name.as_str())
            .collect();
        names.join(", ")
    };
    match rule {
        R::AllSucceeded => format!(
            "upstream task {} did not succeed",
            named(&[TaskPhase::Failed, TaskPhase::Skipped])
        ),
        R::AllFailed => format!(
            "triggerRule AllFailed: upstream task {} did not fail",
            named(&[TaskPhase::Succeeded, TaskPhase::Skipped])
        ),
        R::NoneFailed => format!(
            "triggerRule NoneFailed: upstream task {} failed",
            named(&[TaskPhase::Failed])
        ),
        R::AnyFailed => "triggerRule AnyFailed: no upstream task failed".to_string(),
        R::AnySucceeded => "triggerRule AnySucceeded: no upstream task succeeded".to_string(),
        R::AllDone => "triggerRule AllDone".to_string(),
    }
}
