//! Run planning: given a run's recorded status, the Jobs observed for it and `now`, compute the
//! run's new status and the actions that move it forward. Pure: no client, no clock.
//!
//! The Jobs are the source of truth for attempts: a Job for attempt `n` of a task exists if and
//! only if that attempt was started, and its name is derived from (run, task, n). Status only
//! adds what Jobs cannot tell (Skipped, backoff deadlines), so a restarted scheduler — or one
//! whose cache lags — re-derives the same plan, and re-issuing a create for an attempt the
//! status already records is harmless: the API server answers AlreadyExists.
//!
//! - `input`, `output`: what the planner takes and answers;
//! - `planner`: one step's state; `observe`, `start` and `finish`: its parts, in that order;
//! - `retry`: backoff, and attempts refused before they started;
//! - `shutdown`: stopping or terminating a run on request (`spec.shutdown`);
//! - `history`: which finished runs go.

mod finish;
mod history;
mod input;
mod observe;
mod output;
mod planner;
mod retry;
mod shutdown;
mod start;

pub use history::{FinishedRun, prune_history};
pub use input::{DEADLINE_EXCEEDED, JobState, LogArchiving, ObservedJob, PodReport, RunInput};
pub use output::{Action, EventType, Outcome, REASON_LOG_NOT_ARCHIVED, RunPlan};
pub use retry::{reject_attempt, retry_backoff};

use planner::Planner;

/// Plans one step of a run.
pub fn plan_run(input: &RunInput<'_>) -> RunPlan {
    let mut planner = Planner::new(input);
    planner.clean_finished_pods();
    if input.status.phase.is_finished() {
        planner.record_late_exit_codes();
        planner.stop_leftover_jobs();
        return planner.finish();
    }
    planner.observe();
    if planner.deadline_exceeded() {
        planner.stop_dag("the run exceeded activeDeadlineSeconds".into());
    } else if let Some(failed) = planner.fails_fast() {
        planner.stop_dag(format!(
            "stopped: task {failed} failed and the workflow fails fast"
        ));
    }
    planner.shut_down();
    let startable = planner.apply_trigger_rules();
    planner.start_ready_tasks(&startable);
    planner.complete_if_done();
    planner.finish()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;
    use chrono::TimeZone;
    use chrono::{DateTime, Duration, Utc};
    use datajump_api::names::job_name;
    use datajump_api::validate::Dag;
    use datajump_api::validate::{Limits, validate_spec};
    use datajump_api::{
        RunPhase, Shutdown, TaskPhase, TaskStatus, WorkflowRunStatus, WorkflowSpec,
    };

    const RUN: &str = "etl-202601010000";

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("valid time")
    }

    fn spec(tasks: &[(&str, &[&str])]) -> WorkflowSpec {
        let tasks: Vec<_> = tasks
            .iter()
            .map(|(n, d)| serde_json::json!({"name": n, "image": "busybox", "dependsOn": d}))
            .collect();
        serde_json::from_value(serde_json::json!({ "tasks": tasks })).expect("valid spec")
    }

    /// A tiny in-memory cluster: Jobs by name, created from the plan's actions.
    struct Sim {
        spec: std::sync::Arc<WorkflowSpec>,
        dag: Dag,
        status: WorkflowRunStatus,
        jobs: Vec<ObservedJob>,
        now: DateTime<Utc>,
        free_slots: usize,
        pool_free: HashMap<String, usize>,
        task_pools: BTreeMap<String, usize>,
        log_archiving: LogArchiving,
        events: Vec<&'static str>,
        shutdown: Option<Shutdown>,
    }

    impl Sim {
        fn new(spec: WorkflowSpec) -> Self {
            let dag = validate_spec(
                &spec,
                &Limits {
                    max_tasks: 10_000,
                    ..Limits::default()
                },
            )
            .expect("valid workflow");
            Self {
                spec: std::sync::Arc::new(spec),
                dag,
                status: WorkflowRunStatus::default(),
                jobs: Vec::new(),
                now: t0(),
                free_slots: usize::MAX,
                pool_free: HashMap::new(),
                task_pools: BTreeMap::new(),
                log_archiving: LogArchiving::Off,
                events: Vec::new(),
                shutdown: None,
            }
        }

        /// The plan for the run as it stands, without applying it.
        fn plan(&self) -> RunPlan {
            plan_run(&RunInput {
                now: self.now,
                run_name: RUN,
                spec: &self.spec,
                dag: &self.dag,
                status: &self.status,
                jobs: &self.jobs,
                free_slots: self.free_slots,
                pool_free: &self.pool_free,
                task_pools: &self.task_pools,
                pending_timeout_seconds: 600,
                finished_pod_retention_seconds: 60,
                log_archiving: self.log_archiving,
                shutdown: self.shutdown,
            })
        }

        /// One reconcile; returns the names of Jobs created.
        fn step(&mut self) -> Vec<String> {
            let plan = self.plan();
            let mut created = Vec::new();
            for action in plan.actions {
                match action {
                    Action::CreateJob {
                        task,
                        attempt,
                        job_name,
                        ..
                    } => {
                        assert!(
                            self.jobs.iter().all(|j| j.name != job_name),
                            "duplicate create of {job_name}"
                        );
                        self.jobs.push(ObservedJob {
                            task: self.spec.task(task).expect("task").name.clone(),
                            attempt,
                            name: job_name.clone(),
                            state: JobState::Active,
                            started: Some(self.now),
                            finished: None,
                            pod: None,
                            finished_pods: false,
                            deleting: false,
                        });
                        created.push(job_name);
                    }
                    Action::DeleteJob { job_name } => self.jobs.retain(|j| j.name != job_name),
                    // The kubelet stops the pods later: the test says when (`fail`, `report`).
                    Action::KillPods { .. } => {}
                    // Deleted in the foreground: the Job stays until its pods are gone
                    // (`pods_gone`).
                    Action::TerminateJob { job_name } => {
                        for j in self.jobs.iter_mut().filter(|j| j.name == job_name) {
                            j.deleting = true;
                        }
                    }
                    Action::DeletePods { job_name }
                    | Action::ArchiveLogsThenDeletePods { job_name, .. } => {
                        for j in self.jobs.iter_mut().filter(|j| j.name == job_name) {
                            j.finished_pods = false;
                        }
                    }
                    Action::Event { reason, .. } => self.events.push(reason),
                }
            }
            self.status = plan.status;
            created
        }

        /// One reconcile in which the API server refuses every Job of `task`.
        fn step_rejecting(&mut self, task: &str) -> Vec<String> {
            let mut plan = self.plan();
            let mut refused = Vec::new();
            let actions = std::mem::take(&mut plan.actions);
            for action in actions {
                match action {
                    Action::CreateJob {
                        task: i, attempt, ..
                    } if self.spec.task(i).is_some_and(|t| t.name == task) => {
                        refused.push((i, attempt));
                    }
                    Action::Event { reason, .. } => self.events.push(reason),
                    other => plan.actions.push(other),
                }
            }
            let mut names = Vec::new();
            for (i, attempt) in refused {
                if let Some(Action::Event { reason, .. }) = reject_attempt(
                    &mut plan,
                    &self.spec,
                    i,
                    attempt,
                    "the API server refused its Job: exceeded quota",
                    self.now,
                ) {
                    self.events.push(reason);
                }
                names.push(job_name(RUN, task, attempt));
            }
            self.status = plan.status;
            names
        }

        fn set(&mut self, job: &str, state: JobState) {
            let now = self.now;
            let j = self
                .jobs
                .iter_mut()
                .find(|j| j.name == job)
                .expect("job exists");
            j.state = state;
            j.finished = Some(now);
        }

        fn succeed(&mut self, job: &str) {
            self.set(job, JobState::Succeeded);
        }

        fn report(&mut self, job: &str, report: PodReport) {
            let j = self
                .jobs
                .iter_mut()
                .find(|j| j.name == job)
                .expect("job exists");
            j.pod = Some(Box::new(report));
        }

        fn task(&self, task: &str) -> &TaskStatus {
            self.status
                .tasks
                .iter()
                .find(|t| t.name == task)
                .expect("task")
        }

        fn fail(&mut self, job: &str) {
            self.set(
                job,
                JobState::Failed {
                    reason: "BackoffLimitExceeded".into(),
                },
            );
        }

        fn phase(&self, task: &str) -> TaskPhase {
            self.status
                .tasks
                .iter()
                .find(|t| t.name == task)
                .expect("task")
                .phase
        }
    }

    fn job(task: &str, attempt: u32) -> String {
        format!("{RUN}-{task}-{attempt}")
    }

    fn image_pull_backoff() -> PodReport {
        PodReport::Blocked {
            reason: "ImagePullBackOff".into(),
            message: "Back-off pulling image \"etl:nope\"".into(),
        }
    }

    #[test]
    fn a_pod_that_cannot_start_fails_its_attempt_after_the_pending_timeout() {
        let mut spec = spec(&[("load", &[]), ("publish", &["load"])]);
        spec.tasks[0].retries = 1;
        spec.tasks[0].pending_timeout_seconds = Some(60);
        let mut sim = Sim::new(spec);
        sim.step();
        sim.report(&job("load", 1), image_pull_backoff());

        // Within the timeout the status says why the pod waits, and asks to look at the end.
        sim.now = t0() + Duration::seconds(10);
        let plan = sim.plan();
        assert!(plan.actions.is_empty(), "{:?}", plan.actions);
        assert_eq!(plan.wake_at, Some(t0() + Duration::seconds(60)));
        sim.step();
        let load = sim.task("load");
        assert_eq!(load.phase, TaskPhase::Running);
        assert_eq!(load.reason.as_deref(), Some("ImagePullBackOff"));
        assert!(
            load.message
                .as_deref()
                .unwrap_or_default()
                .contains("etl:nope"),
            "{load:?}"
        );

        // At the timeout the attempt is given up: its Job is deleted, a retry is due later.
        sim.now = t0() + Duration::seconds(60);
        let plan = sim.plan();
        assert!(
            plan.actions.contains(&Action::DeleteJob {
                job_name: job("load", 1)
            }),
            "{:?}",
            plan.actions
        );
        sim.status = plan.status;
        assert_eq!(sim.phase("load"), TaskPhase::Pending);
        // While the deleted Job is still in the cache, the attempt stays given up.
        sim.now = t0() + Duration::seconds(61);
        let plan = sim.plan();
        assert_eq!(
            plan.actions,
            [Action::DeleteJob {
                job_name: job("load", 1)
            }]
        );
        assert_eq!(plan.status.tasks[0].phase, TaskPhase::Pending);
        sim.jobs.clear();

        // The retry starts after the backoff, and times out the same way: the task fails with
        // the pod's reason and its dependents are skipped.
        sim.now = t0() + Duration::seconds(71);
        assert_eq!(sim.step(), [job("load", 2)]);
        sim.report(&job("load", 2), image_pull_backoff());
        sim.now = t0() + Duration::seconds(131);
        sim.step();
        sim.step();
        let load = sim.task("load");
        assert_eq!(load.phase, TaskPhase::Failed);
        assert_eq!(load.reason.as_deref(), Some("ImagePullBackOff"));
        assert!(
            load.message
                .as_deref()
                .unwrap_or_default()
                .starts_with("attempt 2 could not start within 60s: ImagePullBackOff"),
            "{load:?}"
        );
        assert_eq!(sim.phase("publish"), TaskPhase::Skipped);
        assert_eq!(sim.status.phase, RunPhase::Failed);
    }

    #[test]
    fn finished_pods_go_once_the_result_is_recorded_and_the_retention_passed() {
        let mut sim = Sim::new(spec(&[("a", &[]), ("b", &["a"])]));
        sim.step();
        sim.now = t0() + Duration::seconds(5);
        sim.succeed(&job("a", 1));
        sim.jobs[0].finished_pods = true;
        let deletes = |plan: &RunPlan| {
            plan.actions
                .iter()
                .filter(|a| matches!(a, Action::DeletePods { .. }))
                .count()
        };
        // The stored status does not hold a's result yet: its pod stays whatever the time.
        sim.now = t0() + Duration::seconds(500);
        assert_eq!(deletes(&sim.plan()), 0);
        sim.now = t0() + Duration::seconds(6);
        sim.step();
        assert_eq!(sim.phase("a"), TaskPhase::Succeeded);
        // Recorded: kept for the retention (60 s here), then deleted.
        let plan = sim.plan();
        assert_eq!(deletes(&plan), 0);
        assert_eq!(plan.wake_at, Some(t0() + Duration::seconds(65)));
        sim.now = t0() + Duration::seconds(65);
        assert_eq!(
            sim.plan()
                .actions
                .iter()
                .filter(|a| matches!(a, Action::DeletePods { .. }))
                .collect::<Vec<_>>(),
            [&Action::DeletePods {
                job_name: job("a", 1)
            }]
        );
        sim.step();
        assert_eq!(deletes(&sim.plan()), 0, "asked once, not again");
    }

    /// The pod-removing actions of a plan.
    fn pod_actions(plan: &RunPlan) -> Vec<&Action> {
        plan.actions
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    Action::DeletePods { .. } | Action::ArchiveLogsThenDeletePods { .. }
                )
            })
            .collect()
    }

    #[test]
    fn with_the_log_archive_a_due_pod_is_archived_then_deleted_never_deleted_first() {
        let mut sim = Sim::new(spec(&[("a", &[])]));
        sim.log_archiving = LogArchiving::On {
            give_up_after_seconds: Some(3600),
        };
        sim.step();
        sim.now = t0() + Duration::seconds(5);
        sim.fail(&job("a", 1));
        sim.jobs[0].finished_pods = true;
        sim.step();
        // Before the retention: nothing; once due, one action that archives before deleting,
        // keyed by the task and the attempt.
        assert!(pod_actions(&sim.plan()).is_empty());
        sim.now = t0() + Duration::seconds(65);
        let plan = sim.plan();
        assert_eq!(
            pod_actions(&plan),
            [&Action::ArchiveLogsThenDeletePods {
                job_name: job("a", 1),
                task: "a".into(),
                attempt: 1,
            }]
        );
        // The archive keeps failing (the pods stay): asked again at each look until the
        // give-up time past the due time, then deleted without the log, with a Warning.
        sim.now = t0() + Duration::seconds(65 + 3599);
        assert!(matches!(
            pod_actions(&sim.plan())[..],
            [Action::ArchiveLogsThenDeletePods { .. }]
        ));
        sim.now = t0() + Duration::seconds(65 + 3600);
        let plan = sim.plan();
        assert_eq!(
            pod_actions(&plan),
            [&Action::DeletePods {
                job_name: job("a", 1)
            }]
        );
        assert!(plan.actions.iter().any(|a| matches!(
            a,
            Action::Event { type_: EventType::Warning, reason, message }
                if *reason == REASON_LOG_NOT_ARCHIVED && message.contains("task a attempt 1")
        )));
        // Never giving up keeps asking for the archive whatever the time.
        sim.log_archiving = LogArchiving::On {
            give_up_after_seconds: None,
        };
        sim.now = t0() + Duration::days(365);
        assert!(matches!(
            pod_actions(&sim.plan())[..],
            [Action::ArchiveLogsThenDeletePods { .. }]
        ));
    }

    #[test]
    fn a_failed_attempt_shows_its_pods_exit_code_and_reason() {
        let mut sim = Sim::new(spec(&[("load", &[])]));
        sim.step();
        sim.fail(&job("load", 1));
        sim.report(
            &job("load", 1),
            PodReport::Terminated {
                reason: "OOMKilled".into(),
                exit_code: 137,
            },
        );
        sim.step();
        let load = sim.task("load");
        assert_eq!(
            (load.phase, load.reason.as_deref(), load.exit_code),
            (TaskPhase::Failed, Some("OOMKilled"), Some(137))
        );
        assert_eq!(
            load.message.as_deref(),
            Some("attempt 1 failed: exit code 137 (OOMKilled)")
        );

        // The pod's report can arrive after the Job's failure was recorded.
        let mut sim = Sim::new(spec(&[("load", &[])]));
        sim.step();
        sim.fail(&job("load", 1));
        sim.step();
        assert_eq!(sim.task("load").exit_code, None);
        sim.report(
            &job("load", 1),
            PodReport::Terminated {
                reason: "Error".into(),
                exit_code: 3,
            },
        );
        sim.step();
        assert_eq!(sim.task("load").exit_code, Some(3));
        assert_eq!(sim.task("load").reason.as_deref(), Some("Error"));
    }

    #[test]
    fn a_refused_job_is_a_failed_attempt_retried_then_failing_the_task() {
        let mut s = spec(&[("a", &[]), ("b", &["a"])]);
        s.tasks[0].retries = 1;
        s.tasks[0].retry_backoff_seconds = 10;
        let mut sim = Sim::new(s);
        assert_eq!(sim.step_rejecting("a"), [job("a", 1)]);
        assert_eq!(sim.phase("a"), TaskPhase::Pending, "a retry remains");
        let task = &sim.status.tasks[0];
        assert!(
            task.message
                .as_deref()
                .is_some_and(|m| m.contains("refused its Job: exceeded quota")),
            "{task:?}"
        );
        assert_eq!(task.next_attempt_time, Some(t0() + Duration::seconds(10)));
        assert!(sim.step_rejecting("a").is_empty(), "backing off");
        sim.now += Duration::seconds(10);
        assert_eq!(sim.step_rejecting("a"), [job("a", 2)]);
        assert_eq!(sim.phase("a"), TaskPhase::Failed, "no retries left");
        assert!(sim.events.contains(&"TaskRejected"), "{:?}", sim.events);
        sim.step();
        assert_eq!(sim.phase("b"), TaskPhase::Skipped);
        assert_eq!(
            sim.status.phase,
            RunPhase::Failed,
            "the run ends instead of hanging"
        );
    }

    #[test]
    fn a_chain_runs_one_task_at_a_time() {
        let mut sim = Sim::new(spec(&[("a", &[]), ("b", &["a"]), ("c", &["b"])]));
        assert_eq!(sim.step(), [job("a", 1)]);
        assert_eq!(sim.status.phase, RunPhase::Running);
        assert!(sim.step().is_empty(), "nothing new while a runs");
        sim.succeed(&job("a", 1));
        assert_eq!(sim.step(), [job("b", 1)]);
        sim.succeed(&job("b", 1));
        assert_eq!(sim.step(), [job("c", 1)]);
        sim.succeed(&job("c", 1));
        assert!(sim.step().is_empty());
        assert_eq!(sim.status.phase, RunPhase::Succeeded);
        assert_eq!(sim.status.succeeded_tasks, 3);
        assert_eq!(sim.status.conditions[0].type_, "Complete");
        assert_eq!(sim.events, ["RunStarted", "RunSucceeded"]);
    }

    #[test]
    fn a_diamond_fans_out_and_joins() {
        let mut sim = Sim::new(spec(&[
            ("a", &[]),
            ("b", &["a"]),
            ("c", &["a"]),
            ("d", &["b", "c"]),
        ]));
        assert_eq!(sim.step(), [job("a", 1)]);
        sim.succeed(&job("a", 1));
        assert_eq!(sim.step(), [job("b", 1), job("c", 1)]);
        sim.succeed(&job("b", 1));
        assert!(sim.step().is_empty(), "d waits for c");
        sim.succeed(&job("c", 1));
        assert_eq!(sim.step(), [job("d", 1)]);
        sim.succeed(&job("d", 1));
        sim.step();
        assert_eq!(sim.status.phase, RunPhase::Succeeded);
    }

    #[test]
    fn fan_out_of_1000_respects_parallelism_and_the_global_cap() {
        let names: Vec<String> = (0..1000).map(|i| format!("t{i}")).collect();
        let mut tasks: Vec<(&str, &[&str])> = vec![("root", &[])];
        let root: &[&str] = &["root"];
        tasks.extend(names.iter().map(|n| (n.as_str(), root)));
        let mut sim = Sim::new(spec(&tasks));
        sim.step();
        sim.succeed(&job("root", 1));
        assert_eq!(
            sim.step().len(),
            1000,
            "no limits: all children start together"
        );

        let mut limited = Sim::new(spec(&tasks));
        std::sync::Arc::make_mut(&mut limited.spec).parallelism = Some(50);
        limited.step();
        limited.succeed(&job("root", 1));
        let first = limited.step();
        assert_eq!(first.len(), 50);
        limited.succeed(&first[0]);
        limited.succeed(&first[1]);
        assert_eq!(limited.step().len(), 2, "finished tasks free their slots");
        limited.free_slots = 0;
        limited.succeed(&first[2]);
        assert!(
            limited.step().is_empty(),
            "the global cap wins over parallelism"
        );
    }

    #[test]
    fn failure_retries_with_backoff_then_skips_downstream() {
        let mut s = spec(&[
            ("a", &[]),
            ("b", &["a"]),
            ("c", &["a"]),
            ("d", &["b"]),
            ("e", &["d"]),
        ]);
        s.tasks[1].retries = 1;
        s.tasks[1].retry_backoff_seconds = 30;
        let mut sim = Sim::new(s);
        sim.step();
        sim.succeed(&job("a", 1));
        sim.step();
        sim.now += Duration::seconds(5);
        sim.fail(&job("b", 1));
        let plan_wake = {
            assert!(sim.step().is_empty(), "backoff: no immediate retry");
            assert_eq!(sim.phase("b"), TaskPhase::Pending);
            sim.status.tasks[1].next_attempt_time
        };
        assert_eq!(plan_wake, Some(t0() + Duration::seconds(35)));
        sim.now += Duration::seconds(29);
        assert!(sim.step().is_empty(), "still backing off");
        sim.now += Duration::seconds(1);
        assert_eq!(
            sim.step(),
            [job("b", 2)],
            "retry with the next attempt's name"
        );
        sim.fail(&job("b", 2));
        sim.step();
        assert_eq!(sim.phase("b"), TaskPhase::Failed);
        assert_eq!(sim.phase("d"), TaskPhase::Skipped);
        assert_eq!(
            sim.phase("e"),
            TaskPhase::Skipped,
            "skips reach every descendant"
        );
        assert_eq!(
            sim.status.phase,
            RunPhase::Running,
            "independent branch c still runs"
        );
        sim.succeed(&job("c", 1));
        sim.step();
        assert_eq!(sim.status.phase, RunPhase::Failed);
        assert_eq!(sim.status.message.as_deref(), Some("failed tasks: b"));
        assert_eq!(
            sim.events,
            ["RunStarted", "TaskRetrying", "TaskFailed", "RunFailed"]
        );
    }

    #[test]
    fn a_timed_out_attempt_says_so() {
        let mut sim = Sim::new(spec(&[("a", &[])]));
        sim.step();
        sim.set(
            &job("a", 1),
            JobState::Failed {
                reason: "DeadlineExceeded".into(),
            },
        );
        sim.step();
        assert_eq!(
            sim.status.tasks[0].message.as_deref(),
            Some("attempt 1 timed out")
        );
        assert_eq!(sim.status.phase, RunPhase::Failed);
        // The killed container reports only `Error` and 137 afterwards (as a real kubelet does):
        // its exit code is kept, the reason stays the deadline.
        sim.report(
            &job("a", 1),
            PodReport::Terminated {
                reason: "Error".into(),
                exit_code: 137,
            },
        );
        sim.step();
        let a = sim.task("a");
        assert_eq!(
            (a.reason.as_deref(), a.exit_code),
            (Some("DeadlineExceeded"), Some(137))
        );
    }

    #[test]
    fn the_run_deadline_stops_running_jobs_and_skips_the_rest() {
        let mut s = spec(&[("a", &[]), ("b", &["a"])]);
        s.active_deadline_seconds = Some(60);
        let mut sim = Sim::new(s);
        sim.step();
        sim.now += Duration::seconds(60);
        sim.step();
        assert!(sim.jobs.is_empty(), "the running Job was deleted");
        assert_eq!(
            (sim.phase("a"), sim.phase("b")),
            (TaskPhase::Failed, TaskPhase::Skipped)
        );
        assert_eq!(sim.status.phase, RunPhase::Failed);
        assert_eq!(sim.status.conditions[0].reason, "DeadlineExceeded");
    }

    #[test]
    fn a_restart_with_lost_status_adopts_jobs_instead_of_duplicating_them() {
        let mut sim = Sim::new(spec(&[("a", &[]), ("b", &["a"]), ("c", &["a"])]));
        sim.step();
        sim.succeed(&job("a", 1));
        sim.step();
        // The scheduler crashed before writing status: it only sees the Jobs.
        sim.status = WorkflowRunStatus::default();
        assert!(sim.step().is_empty(), "b and c already have Jobs");
        assert_eq!(
            (sim.phase("a"), sim.phase("b")),
            (TaskPhase::Succeeded, TaskPhase::Running)
        );
        assert_eq!(
            sim.status.tasks[2].job_name.as_deref(),
            Some(job("c", 1).as_str())
        );
    }

    #[test]
    fn a_recorded_attempt_without_a_visible_job_is_recreated_under_the_same_name() {
        let mut sim = Sim::new(spec(&[("a", &[])]));
        sim.step();
        sim.jobs.clear(); // cache lag, or someone deleted the Job
        let plan = plan_run(&RunInput {
            now: sim.now,
            run_name: RUN,
            spec: &sim.spec,
            dag: &sim.dag,
            status: &sim.status,
            jobs: &sim.jobs,
            free_slots: 0,
            pool_free: &HashMap::new(),
            task_pools: &BTreeMap::new(),
            pending_timeout_seconds: 600,
            finished_pod_retention_seconds: 60,
            log_archiving: LogArchiving::Off,
            shutdown: None,
        });
        assert_eq!(
            plan.actions,
            [Action::CreateJob {
                task: 0,
                attempt: 1,
                job_name: job("a", 1),
                outcome: None,
            }]
        );
    }

    #[test]
    fn a_run_held_back_by_the_global_cap_waits_for_a_slot() {
        let mut sim = Sim::new(spec(&[("a", &[])]));
        sim.free_slots = 0;
        let blocked = sim.plan();
        assert!(blocked.actions.is_empty());
        assert!(blocked.waits_for_slot);
        assert_eq!(
            blocked.wake_at, None,
            "woken by a freed slot, not at a time"
        );
        // With a slot it starts, and its own Job's changes trigger it from then on.
        sim.free_slots = 1;
        let started = sim.plan();
        let creates = started
            .actions
            .iter()
            .filter(|a| matches!(a, Action::CreateJob { .. }))
            .count();
        assert_eq!(creates, 1);
        assert!(!started.waits_for_slot);
    }

    #[test]
    fn backoff_grows_by_its_factor_and_is_capped() {
        let mut s = spec(&[("a", &[])]);
        let task = &mut s.tasks[0];
        assert_eq!(retry_backoff(task, 2), Duration::seconds(10));
        assert_eq!(retry_backoff(task, 3), Duration::seconds(20));
        assert_eq!(retry_backoff(task, 5), Duration::seconds(80));
        task.retry_backoff_seconds = 3000;
        assert_eq!(retry_backoff(task, 4), Duration::seconds(3600));
        assert_eq!(retry_backoff(task, 60), Duration::seconds(3600));
        task.retry_backoff_seconds = 5;
        task.retry_backoff_factor = 3;
        task.retry_backoff_max_seconds = 100;
        assert_eq!(retry_backoff(task, 3), Duration::seconds(15));
        assert_eq!(retry_backoff(task, 4), Duration::seconds(45));
        assert_eq!(retry_backoff(task, 5), Duration::seconds(100));
        task.retry_backoff_factor = 1;
        assert_eq!(retry_backoff(task, 9), Duration::seconds(5));
    }

    #[test]
    fn history_keeps_the_newest_runs_per_phase() {
        let run = |name: &str, phase, min| FinishedRun {
            name: name.into(),
            phase,
            completed: t0() + Duration::minutes(min),
        };
        let runs = [
            run("s1", RunPhase::Succeeded, 1),
            run("s3", RunPhase::Succeeded, 3),
            run("f1", RunPhase::Failed, 2),
            run("s2", RunPhase::Succeeded, 2),
            run("f2", RunPhase::Failed, 4),
        ];
        assert_eq!(prune_history(&runs, 2, 1), ["s1", "f1"]);
        assert_eq!(prune_history(&runs, 0, 0), ["s3", "s2", "s1", "f2", "f1"]);
        // Stopped and terminated runs did not do all their work: kept as failed ones are.
        let runs = [
            run("f1", RunPhase::Failed, 1),
            run("t2", RunPhase::Terminated, 2),
            run("p3", RunPhase::Stopped, 3),
            run("s4", RunPhase::Succeeded, 4),
        ];
        assert_eq!(prune_history(&runs, 1, 2), ["f1"]);
    }

    fn spec_yaml(yaml: &str) -> WorkflowSpec {
        serde_yaml::from_str(yaml).expect("valid spec yaml")
    }

    #[test]
    fn trigger_rules_run_clean_up_and_alerts_after_a_failure() {
        let mut sim = Sim::new(spec_yaml(
            r#"
tasks:
  - {name: load, image: busybox}
  - {name: publish, image: busybox, dependsOn: [load]}
  - {name: cleanup, image: busybox, dependsOn: [load], triggerRule: AllDone}
  - {name: alert, image: busybox, dependsOn: [load], triggerRule: AnyFailed}
  - {name: celebrate, image: busybox, dependsOn: [load], triggerRule: AnySucceeded}
  - {name: audit, image: busybox, dependsOn: [publish], triggerRule: NoneFailed}
"#,
        ));
        assert_eq!(sim.step(), [job("load", 1)]);
        sim.fail(&job("load", 1));
        assert_eq!(
            sim.step(),
            [job("cleanup", 1), job("alert", 1), job("audit", 1)],
            "AllDone and AnyFailed start; NoneFailed runs behind the skipped publish"
        );
        assert_eq!(sim.phase("publish"), TaskPhase::Skipped);
        assert_eq!(
            sim.task("publish").message.as_deref(),
            Some("upstream task load did not succeed")
        );
        assert_eq!(sim.phase("celebrate"), TaskPhase::Skipped);
        assert_eq!(
            sim.task("celebrate").message.as_deref(),
            Some("triggerRule AnySucceeded: no upstream task succeeded")
        );
        sim.succeed(&job("cleanup", 1));
        sim.succeed(&job("alert", 1));
        sim.step();
        assert_eq!(sim.status.phase, RunPhase::Running, "audit still runs");
        sim.succeed(&job("audit", 1));
        sim.step();
        assert_eq!(sim.status.phase, RunPhase::Failed, "load failed");
        assert_eq!(sim.status.message.as_deref(), Some("failed tasks: load"));
    }

    #[test]
    fn a_skipped_branch_alone_does_not_fail_the_run() {
        let mut sim = Sim::new(spec_yaml(
            r#"
tasks:
  - {name: load, image: busybox}
  - {name: alert, image: busybox, dependsOn: [load], triggerRule: AnyFailed}
"#,
        ));
        sim.step();
        sim.succeed(&job("load", 1));
        assert!(sim.step().is_empty());
        assert_eq!(sim.phase("alert"), TaskPhase::Skipped);
        assert_eq!(sim.status.phase, RunPhase::Succeeded);
        assert_eq!(
            sim.status.message.as_deref(),
            Some("1 tasks succeeded, 1 skipped by their trigger rules")
        );
    }

    #[test]
    fn fail_fast_stops_running_tasks_and_skips_the_rest() {
        let mut sim = Sim::new(spec_yaml(
            r#"
failureStrategy: FailFast
tasks:
  - {name: a, image: busybox}
  - {name: b, image: busybox}
  - {name: c, image: busybox, dependsOn: [b]}
  - {name: d, image: busybox, dependsOn: [a], triggerRule: AllDone}
"#,
        ));
        assert_eq!(sim.step(), [job("a", 1), job("b", 1)]);
        sim.fail(&job("a", 1));
        let plan = sim.plan();
        assert!(
            plan.actions.contains(&Action::DeleteJob {
                job_name: job("b", 1)
            }),
            "the running task b is stopped"
        );
        assert!(sim.step().is_empty(), "nothing starts after a failure");
        assert_eq!(sim.phase("b"), TaskPhase::Failed);
        assert_eq!(sim.task("b").reason.as_deref(), Some("Stopped"));
        assert_eq!(sim.phase("c"), TaskPhase::Skipped);
        assert_eq!(
            sim.phase("d"),
            TaskPhase::Skipped,
            "fail fast outranks trigger rules"
        );
        assert_eq!(
            sim.task("c").message.as_deref(),
            Some("stopped: task a failed and the workflow fails fast")
        );
        assert_eq!(sim.status.phase, RunPhase::Failed);
        assert_eq!(sim.status.message.as_deref(), Some("failed tasks: a, b"));
    }

    const WITH_EXIT: &str = r#"
tasks:
  - {name: a, image: busybox}
  - {name: b, image: busybox, dependsOn: [a]}
onExit: {name: notify, image: busybox}
"#;

    #[test]
    fn the_exit_task_runs_after_the_dag_with_its_outcome() {
        let mut sim = Sim::new(spec_yaml(WITH_EXIT));
        sim.step();
        sim.fail(&job("a", 1));
        assert_eq!(
            sim.plan().outcome,
            Some(Outcome {
                phase: RunPhase::Failed,
                failed_tasks: vec!["a".into()]
            })
        );
        assert_eq!(sim.step(), [job("notify", 1)], "b skipped, notify starts");
        assert_eq!(sim.status.phase, RunPhase::Running);
        assert_eq!(sim.status.total_tasks, 3);
        sim.succeed(&job("notify", 1));
        sim.step();
        assert_eq!(sim.status.phase, RunPhase::Failed);
        assert_eq!(sim.status.message.as_deref(), Some("failed tasks: a"));
    }

    #[test]
    fn a_failed_exit_task_fails_a_run_whose_tasks_succeeded() {
        let mut sim = Sim::new(spec_yaml(WITH_EXIT));
        sim.step();
        sim.succeed(&job("a", 1));
        sim.step();
        assert_eq!(sim.plan().outcome, None, "b still runs");
        sim.succeed(&job("b", 1));
        assert_eq!(sim.step(), [job("notify", 1)]);
        assert_eq!(
            sim.plan().outcome,
            Some(Outcome {
                phase: RunPhase::Succeeded,
                failed_tasks: vec![]
            })
        );
        sim.fail(&job("notify", 1));
        sim.step();
        assert_eq!(sim.status.phase, RunPhase::Failed);
        assert_eq!(
            sim.status.conditions.last().map(|c| c.reason.as_str()),
            Some("ExitHandlerFailed")
        );
        assert_eq!(
            sim.status.message.as_deref(),
            Some("the onExit task notify failed")
        );
    }

    #[test]
    fn the_exit_task_still_runs_after_the_run_deadline() {
        let mut s = spec_yaml(WITH_EXIT);
        s.active_deadline_seconds = Some(60);
        let mut sim = Sim::new(s);
        sim.step();
        sim.now += Duration::seconds(60);
        assert_eq!(sim.step(), [job("notify", 1)]);
        assert_eq!(sim.phase("a"), TaskPhase::Failed);
        assert_eq!(sim.phase("b"), TaskPhase::Skipped);
        assert!(!sim.jobs.iter().any(|j| j.name == job("a", 1)), "a stopped");
        assert_eq!(
            sim.plan().outcome.map(|o| o.phase),
            Some(RunPhase::Failed),
            "the deadline is a failure"
        );
        sim.succeed(&job("notify", 1));
        sim.step();
        assert_eq!(sim.status.phase, RunPhase::Failed);
        assert_eq!(
            sim.status.conditions.last().map(|c| c.reason.as_str()),
            Some("DeadlineExceeded")
        );
    }

    #[test]
    fn retry_on_error_retries_a_pod_that_never_started_but_not_a_failure() {
        let mut s = spec(&[("a", &[]), ("b", &[])]);
        for task in &mut s.tasks {
            task.retries = 2;
            task.retry_on = datajump_api::RetryOn::OnError;
            task.pending_timeout_seconds = Some(30);
        }
        let mut sim = Sim::new(s);
        sim.step();
        sim.fail(&job("a", 1));
        sim.report(&job("b", 1), image_pull_backoff());
        sim.step();
        assert_eq!(
            sim.phase("a"),
            TaskPhase::Failed,
            "a task that ran and failed is not retried under OnError"
        );
        sim.now += Duration::seconds(30);
        sim.step();
        assert_eq!(sim.phase("b"), TaskPhase::Pending, "b's pod never started");
        assert!(sim.task("b").next_attempt_time.is_some(), "b will retry");
    }

    #[test]
    fn a_task_of_an_unknown_pool_is_refused_without_a_job_then_retried_then_failed() {
        let mut s = spec(&[("load", &[])]);
        s.tasks[0].pool = Some("sparc".into());
        s.tasks[0].retries = 1;
        s.tasks[0].retry_backoff_seconds = 10;
        let mut sim = Sim::new(s);
        sim.task_pools.insert("spark".into(), 1);
        sim.pool_free.insert("spark".into(), 1);
        assert!(sim.step().is_empty(), "no Job for it");
        let task = sim.task("load");
        assert_eq!(task.phase, TaskPhase::Pending, "a retry remains");
        assert_eq!(
            task.message.as_deref(),
            Some("attempt 1: unknown task pool \"sparc\" (the scheduler's pools: spark=1)")
        );
        assert_eq!(task.next_attempt_time, Some(t0() + Duration::seconds(10)));
        assert!(sim.events.contains(&"TaskRetrying"), "{:?}", sim.events);
        sim.now += Duration::seconds(10);
        assert!(sim.step().is_empty());
        assert_eq!(sim.phase("load"), TaskPhase::Failed, "no retries left");
        assert!(sim.events.contains(&"TaskRejected"), "{:?}", sim.events);
        assert_eq!(sim.status.phase, RunPhase::Failed);
    }

    #[test]
    fn only_the_exit_tasks_job_carries_the_outcome() {
        let mut sim = Sim::new(spec_yaml(WITH_EXIT));
        let first = sim.plan();
        assert!(
            first.actions.iter().all(|a| !matches!(
                a,
                Action::CreateJob {
                    outcome: Some(_),
                    ..
                }
            )),
            "{first:?}"
        );
        sim.step();
        sim.fail(&job("a", 1));
        let plan = sim.plan();
        let exit = plan.actions.iter().find_map(|a| match a {
            Action::CreateJob {
                job_name, outcome, ..
            } if *job_name == job("notify", 1) => Some(outcome.clone()),
            _ => None,
        });
        let outcome = Outcome {
            phase: RunPhase::Failed,
            failed_tasks: vec!["a".into()],
        };
        assert_eq!(exit, Some(Some(outcome.clone())));
        assert_eq!(
            outcome.variables(),
            [
                ("DATAJUMP_RUN_OUTCOME".to_string(), "Failed".to_string()),
                ("DATAJUMP_FAILED_TASKS".to_string(), "a".to_string()),
            ]
        );
    }

    /// Two independent tasks (a long `load`, a `side` with a retry), `report` after `load`,
    /// and an exit task.
    const STOPPABLE: &str = r#"
tasks:
  - {name: load, image: busybox}
  - {name: side, image: busybox, retries: 2}
  - {name: report, image: busybox, dependsOn: [load]}
onExit: {name: notify, image: busybox}
"#;

    /// The Jobs a plan's actions of one kind name (`pick` returns the Job of its kind).
    fn jobs_of<'a>(plan: &'a RunPlan, pick: fn(&'a Action) -> Option<&'a String>) -> Vec<&'a str> {
        plan.actions
            .iter()
            .filter_map(pick)
            .map(String::as_str)
            .collect()
    }

    fn creates(plan: &RunPlan) -> Vec<&str> {
        jobs_of(plan, |a| match a {
            Action::CreateJob { job_name, .. } => Some(job_name),
            _ => None,
        })
    }

    fn terminates(plan: &RunPlan) -> Vec<&str> {
        jobs_of(plan, |a| match a {
            Action::TerminateJob { job_name } => Some(job_name),
            _ => None,
        })
    }

    #[test]
    fn stop_starts_nothing_new_lets_running_tasks_finish_then_runs_on_exit() {
        let mut sim = Sim::new(spec_yaml(STOPPABLE));
        assert_eq!(sim.step(), [job("load", 1), job("side", 1)]);
        sim.shutdown = Some(Shutdown::Stop);
        let plan = sim.plan();
        assert!(
            plan.actions
                .iter()
                .all(|a| matches!(a, Action::Event { .. })),
            "nothing is created or deleted: {:?}",
            plan.actions
        );
        sim.step();
        assert_eq!(sim.status.shutdown, Some(Shutdown::Stop));
        assert_eq!(sim.status.phase, RunPhase::Running);
        assert_eq!(
            (sim.phase("load"), sim.phase("side"), sim.phase("report")),
            (TaskPhase::Running, TaskPhase::Running, TaskPhase::Skipped)
        );
        assert_eq!(
            sim.task("report").message.as_deref(),
            Some("not started: the run was stopped")
        );
        // A failed attempt is not retried, though retries remain.
        sim.fail(&job("side", 1));
        assert!(sim.step().is_empty(), "load still runs: no exit task yet");
        assert_eq!(sim.phase("side"), TaskPhase::Failed);
        assert!(!sim.events.contains(&"TaskRetrying"), "{:?}", sim.events);
        // The last running task finishes: the exit task runs, told the run was stopped.
        sim.succeed(&job("load", 1));
        let plan = sim.plan();
        let exit = plan.actions.iter().find_map(|a| match a {
            Action::CreateJob { outcome, .. } => outcome.clone(),
            _ => None,
        });
        assert_eq!(
            exit.map(|o| o.variables()),
            Some(vec![
                ("DATAJUMP_RUN_OUTCOME".to_string(), "Stopped".to_string()),
                ("DATAJUMP_FAILED_TASKS".to_string(), "side".to_string()),
            ])
        );
        assert_eq!(sim.step(), [job("notify", 1)]);
        assert_eq!(
            sim.phase("report"),
            TaskPhase::Skipped,
            "report never started"
        );
        sim.succeed(&job("notify", 1));
        sim.step();
        assert_eq!(sim.status.phase, RunPhase::Stopped);
        assert_eq!(
            sim.status.message.as_deref(),
            Some("stopped on request: 1 tasks succeeded, 1 failed (side), 1 not started")
        );
        let condition = sim.status.conditions.last().expect("a condition");
        assert_eq!(
            (condition.type_.as_str(), condition.reason.as_str()),
            ("Stopped", "StopRequested")
        );
        assert_eq!(
            sim.events,
            ["RunStarted", "RunStopping", "TaskFailed", "RunStopped"]
        );
        // Finished: the field changes nothing any more.
        sim.shutdown = Some(Shutdown::Terminate);
        let plan = sim.plan();
        assert!(plan.actions.is_empty(), "{:?}", plan.actions);
        assert_eq!(plan.status, sim.status);
    }

    #[test]
    fn terminate_deletes_running_jobs_in_the_foreground_and_waits_for_their_pods() {
        let mut sim = Sim::new(spec_yaml(STOPPABLE));
        sim.step();
        sim.shutdown = Some(Shutdown::Terminate);
        let plan = sim.plan();
        assert_eq!(terminates(&plan), [job("load", 1), job("side", 1)]);
        assert!(creates(&plan).is_empty(), "no exit task while pods remain");
        assert_eq!(plan.wake_at, Some(t0() + Duration::seconds(120)));
        sim.step();
        for task in ["load", "side"] {
            let t = sim.task(task);
            assert_eq!(
                (t.phase, t.reason.as_deref(), t.message.as_deref()),
                (
                    TaskPhase::Failed,
                    Some("Terminated"),
                    Some("attempt 1 terminated: the run was terminated")
                ),
                "{task}"
            );
        }
        assert_eq!(sim.phase("report"), TaskPhase::Skipped);
        assert_eq!(sim.status.shutdown, Some(Shutdown::Terminate));
        assert_eq!(
            sim.status.phase,
            RunPhase::Running,
            "its pods are still there"
        );
        // While the Jobs are being deleted nothing is asked twice and nothing starts.
        sim.now += Duration::seconds(5);
        let plan = sim.plan();
        assert!(plan.actions.is_empty(), "{:?}", plan.actions);
        assert_eq!(plan.wake_at, Some(t0() + Duration::seconds(120)));
        // One Job gone: still waiting for the other.
        sim.jobs.retain(|j| j.name != job("load", 1));
        assert!(sim.step().is_empty());
        sim.jobs.clear();
        assert_eq!(sim.step(), [job("notify", 1)]);
        sim.succeed(&job("notify", 1));
        sim.step();
        assert_eq!(sim.status.phase, RunPhase::Terminated);
        assert_eq!(
            sim.status.message.as_deref(),
            Some(
                "terminated on request: 0 tasks succeeded, 2 terminated (load, side), 1 not started"
            )
        );
        assert_eq!(
            sim.status.conditions.last().map(|c| c.reason.as_str()),
            Some("TerminateRequested")
        );
        assert_eq!(
            sim.events,
            ["RunStarted", "RunTerminating", "RunTerminated"]
        );
    }

    #[test]
    fn a_terminated_job_that_never_goes_holds_the_exit_task_back_only_so_long() {
        let mut sim = Sim::new(spec(&[("load", &[])]));
        sim.step();
        sim.shutdown = Some(Shutdown::Terminate);
        sim.step();
        sim.now = t0() + Duration::seconds(119);
        sim.step();
        assert_eq!(
            sim.status.phase,
            RunPhase::Running,
            "its pod may still stop"
        );
        // Its node never confirms: after the wait the run ends anyway (and the Job, already
        // being deleted, is not asked again).
        sim.now = t0() + Duration::seconds(120);
        let plan = sim.plan();
        assert!(
            plan.actions
                .iter()
                .all(|a| matches!(a, Action::Event { .. }))
        );
        sim.step();
        assert_eq!(sim.status.phase, RunPhase::Terminated);
    }

    #[test]
    fn stop_then_terminate_escalates_and_nothing_goes_back() {
        let mut sim = Sim::new(spec_yaml(STOPPABLE));
        sim.step();
        sim.shutdown = Some(Shutdown::Stop);
        sim.step();
        sim.shutdown = Some(Shutdown::Terminate);
        let plan = sim.plan();
        assert_eq!(terminates(&plan), [job("load", 1), job("side", 1)]);
        sim.step();
        assert_eq!(sim.status.shutdown, Some(Shutdown::Terminate));
        // A Stop seen after (the API server refuses that change; an older copy could show it)
        // does not undo the terminate.
        sim.shutdown = Some(Shutdown::Stop);
        sim.jobs.clear();
        sim.step();
        assert_eq!(sim.status.shutdown, Some(Shutdown::Terminate));
        assert_eq!(
            sim.events,
            ["RunStarted", "RunStopping", "RunTerminating"],
            "each request said once"
        );
    }

    #[test]
    fn a_restart_mid_terminate_finishes_it_without_asking_twice() {
        let mut sim = Sim::new(spec(&[("a", &[]), ("b", &[])]));
        sim.step();
        let before = sim.status.clone();
        sim.shutdown = Some(Shutdown::Terminate);
        sim.step();
        // The scheduler stopped after deleting a's Job but before recording anything: the new
        // leader sees the old status, a's Job being deleted and b's untouched.
        sim.status = before;
        sim.jobs
            .iter_mut()
            .filter(|j| j.name == job("a", 1))
            .for_each(|j| j.deleting = true);
        sim.jobs
            .iter_mut()
            .filter(|j| j.name == job("b", 1))
            .for_each(|j| j.deleting = false);
        let plan = sim.plan();
        assert_eq!(terminates(&plan), [job("b", 1)]);
        sim.step();
        assert_eq!(
            (sim.phase("a"), sim.phase("b")),
            (TaskPhase::Failed, TaskPhase::Failed)
        );
        // Recorded, but b's deletion was lost: it is asked again, in the foreground.
        sim.jobs
            .iter_mut()
            .filter(|j| j.name == job("b", 1))
            .for_each(|j| j.deleting = false);
        assert_eq!(terminates(&sim.plan()), [job("b", 1)]);
        sim.jobs.clear();
        sim.step();
        assert_eq!(sim.status.phase, RunPhase::Terminated);
    }

    #[test]
    fn a_run_whose_tasks_all_ended_finishes_as_it_would() {
        let mut sim = Sim::new(spec_yaml(WITH_EXIT));
        sim.step();
        sim.succeed(&job("a", 1));
        sim.step();
        sim.succeed(&job("b", 1));
        assert_eq!(sim.step(), [job("notify", 1)]);
        // Only the exit task runs: neither request touches it.
        sim.shutdown = Some(Shutdown::Terminate);
        let plan = sim.plan();
        assert!(plan.actions.is_empty(), "{:?}", plan.actions);
        sim.succeed(&job("notify", 1));
        sim.step();
        assert_eq!(sim.status.phase, RunPhase::Succeeded);
        assert_eq!(sim.status.shutdown, None);
    }

    #[test]
    fn a_stopped_run_that_waited_for_a_slot_ends_at_once_and_waits_no_more() {
        let mut sim = Sim::new(spec(&[("a", &[]), ("b", &["a"])]));
        sim.free_slots = 0;
        assert!(sim.plan().waits_for_slot);
        sim.shutdown = Some(Shutdown::Stop);
        let plan = sim.plan();
        assert!(!plan.waits_for_slot, "nothing left to start");
        sim.step();
        assert_eq!(sim.status.phase, RunPhase::Stopped);
        assert_eq!(
            sim.status.message.as_deref(),
            Some("stopped on request: 0 tasks succeeded, 2 not started")
        );
    }

    fn deletes(plan: &RunPlan) -> Vec<&str> {
        jobs_of(plan, |a| match a {
            Action::DeleteJob { job_name } => Some(job_name),
            _ => None,
        })
    }

    fn kills(plan: &RunPlan) -> Vec<&str> {
        jobs_of(plan, |a| match a {
            Action::KillPods { job_name } => Some(job_name),
            _ => None,
        })
    }

    fn archiving() -> LogArchiving {
        LogArchiving::On {
            give_up_after_seconds: Some(3600),
        }
    }

    #[test]
    fn with_the_log_archive_terminate_stops_pods_where_they_run_and_archives_their_logs() {
        let mut sim = Sim::new(spec_yaml(STOPPABLE));
        sim.log_archiving = archiving();
        sim.step();
        sim.shutdown = Some(Shutdown::Terminate);
        let plan = sim.plan();
        // Nothing is deleted (a deleted pod's log is gone): the pods are stopped in place.
        assert_eq!(kills(&plan), [job("load", 1), job("side", 1)]);
        assert!(terminates(&plan).is_empty() && deletes(&plan).is_empty());
        sim.step();
        assert_eq!(sim.task("load").reason.as_deref(), Some("Terminated"));
        assert!(sim.step().is_empty(), "no exit task while the pods run");
        // The kubelet stops them at their cut deadline; the Jobs fail and stay.
        sim.now += Duration::seconds(2);
        for task in ["load", "side"] {
            sim.fail(&job(task, 1));
            sim.report(
                &job(task, 1),
                PodReport::DeadlineExceeded {
                    exit_code: Some(137),
                },
            );
            sim.jobs
                .iter_mut()
                .filter(|j| j.task == task)
                .for_each(|j| j.finished_pods = true);
        }
        assert_eq!(sim.step(), [job("notify", 1)]);
        let load = sim.task("load");
        assert_eq!(
            (load.reason.as_deref(), load.exit_code),
            (Some("Terminated"), Some(137)),
            "the terminate is why, the container's code is recorded"
        );
        sim.succeed(&job("notify", 1));
        sim.step();
        assert_eq!(sim.status.phase, RunPhase::Terminated);
        // Their logs are archived before their pods go, as for any finished pod.
        sim.now += Duration::seconds(60);
        let plan = sim.plan();
        let archived: Vec<&str> = pod_actions(&plan)
            .iter()
            .filter_map(|a| match a {
                Action::ArchiveLogsThenDeletePods { task, .. } => Some(task.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(archived, ["load", "side"]);
    }

    #[test]
    fn with_the_log_archive_the_run_deadline_and_fail_fast_stop_pods_where_they_run() {
        let mut s = spec(&[("a", &[]), ("b", &["a"])]);
        s.active_deadline_seconds = Some(60);
        let mut sim = Sim::new(s);
        sim.log_archiving = archiving();
        sim.step();
        sim.now += Duration::seconds(60);
        let plan = sim.plan();
        assert_eq!(
            (kills(&plan), deletes(&plan)),
            (vec![job("a", 1).as_str()], vec![])
        );
        sim.step();
        assert_eq!(sim.task("a").reason.as_deref(), Some("Stopped"));
        assert_eq!(sim.status.phase, RunPhase::Failed);
        // The run ended; its Job still runs until the kubelet stops the pod: asked again.
        assert_eq!(kills(&sim.plan()), [job("a", 1)]);
        sim.fail(&job("a", 1));
        sim.report(
            &job("a", 1),
            PodReport::DeadlineExceeded {
                exit_code: Some(143),
            },
        );
        sim.step();
        assert_eq!(
            (sim.task("a").reason.as_deref(), sim.task("a").exit_code),
            (Some("Stopped"), Some(143))
        );
        assert!(kills(&sim.plan()).is_empty());

        let mut s = spec(&[("a", &[]), ("b", &[])]);
        s.failure_strategy = datajump_api::FailureStrategy::FailFast;
        let mut sim = Sim::new(s);
        sim.log_archiving = archiving();
        sim.step();
        sim.fail(&job("a", 1));
        assert_eq!(kills(&sim.plan()), [job("b", 1)]);
    }

    #[test]
    fn a_pod_stopped_at_its_deadline_times_the_attempt_out_whenever_its_report_comes() {
        let mut sim = Sim::new(spec(&[("load", &[])]));
        sim.step();
        sim.fail(&job("load", 1));
        sim.report(
            &job("load", 1),
            PodReport::DeadlineExceeded {
                exit_code: Some(137),
            },
        );
        sim.step();
        let load = sim.task("load");
        assert_eq!(
            (
                load.reason.as_deref(),
                load.exit_code,
                load.message.as_deref()
            ),
            (
                Some("DeadlineExceeded"),
                Some(137),
                Some("attempt 1 timed out")
            )
        );
        // The pod's report after the Job's failure was recorded.
        let mut sim = Sim::new(spec(&[("load", &[])]));
        sim.step();
        sim.fail(&job("load", 1));
        sim.step();
        sim.report(
            &job("load", 1),
            PodReport::DeadlineExceeded { exit_code: None },
        );
        sim.step();
        let load = sim.task("load");
        assert_eq!(
            (
                load.reason.as_deref(),
                load.exit_code,
                load.message.as_deref()
            ),
            (Some("DeadlineExceeded"), None, Some("attempt 1 timed out"))
        );
    }
}
