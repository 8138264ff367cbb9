//! The slot ledger: room under the global cap of running tasks and under each task pool's
//! limit, the slots reserved for Jobs being created (or created but not yet in the cache), and
//! the runs waiting for a slot or for their backfill's turn.
//!
//! A run reconcile counts the free slots, plans with them and reserves what it plans in one
//! step under the ledger's lock ([`SlotLedger::plan`]), so concurrent reconciles cannot spend a
//! slot twice, and no lock is held while the Jobs are created. A run that finds no room joins a
//! queue in that same step, so [`SlotLedger::runs_to_wake`] (which counts under the same lock)
//! never misses a run that counted before a slot freed. The ledger keeps nothing that matters
//! across restarts: every run is reconciled then.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Duration, Utc};
use tokio::sync::Notify;

use super::cluster::Cluster;
use crate::backfill;
use crate::plan::{Action, RunPlan};
use crate::waiters::{RunRef, SlotWaiters};
use datajump_api::{WorkflowRun, WorkflowSpec};

/// How long a created Job may stay invisible in the cache before it stops counting as running.
const CREATE_VISIBILITY_GRACE_SECONDS: i64 = 60;

/// What the ledger reads from the Job cache.
pub(crate) trait JobCounts {
    /// Whether a Job is visible in the cache.
    fn job_cached(&self, namespace: &str, name: &str) -> bool;
    /// Number of active task Jobs across all runs.
    fn running_tasks(&self) -> usize;
    /// Number of active task Jobs counting against task pool `pool`.
    fn running_in_pool(&self, pool: &str) -> usize;
}

impl<C: Cluster> JobCounts for C {
    fn job_cached(&self, namespace: &str, name: &str) -> bool {
        Cluster::job_cached(self, namespace, name)
    }

    fn running_tasks(&self) -> usize {
        Cluster::running_tasks(self)
    }

    fn running_in_pool(&self, pool: &str) -> usize {
        Cluster::running_in_pool(self, pool)
    }
}

/// Jobs being created or created but not seen in the cache yet, by (namespace, name): when
/// their slot was reserved and the task pool they count against.
type Pending = HashMap<(String, String), (DateTime<Utc>, Option<String>)>;

/// The queues of runs waiting for a slot: of the global cap, and of each task pool.
#[derive(Debug, Default)]
struct Waiters {
    cap: SlotWaiters,
    pools: HashMap<String, SlotWaiters>,
}

/// Runs of backfills told to wait for their turn, and those whose turn came (handed to the
/// waker with the slot waiters).
#[derive(Debug, Default)]
struct BackfillWaiting {
    waiting: HashSet<RunRef>,
    woken: Vec<RunRef>,
}

/// The ledger of slots and of the runs waiting for them.
#[derive(Debug)]
pub(crate) struct SlotLedger {
    /// Global cap of task Jobs running at once.
    max_running_tasks: usize,
    /// Task pools and how many of their tasks may run at once.
    task_pools: BTreeMap<String, usize>,
    /// Slots of the global cap (and of a pool) reserved for Jobs being created or created but
    /// not yet seen in the cache.
    pending: Mutex<Pending>,
    /// Runs waiting for a slot. Locked only under `pending`'s lock.
    waiters: Mutex<Waiters>,
    /// Backfill runs waiting for their turn. A restart loses nothing: every run is reconciled
    /// then.
    backfill: Mutex<BackfillWaiting>,
    /// Notified whenever slots may have freed (reserved slots given back here; the controller
    /// also notifies it when a Job finishes or goes away).
    slots_freed: Arc<Notify>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl SlotLedger {
    /// A ledger for a cap of `max_running_tasks` and the limits of `task_pools`.
    pub(crate) fn new(max_running_tasks: usize, task_pools: BTreeMap<String, usize>) -> Self {
        Self {
            max_running_tasks,
            task_pools,
            pending: Mutex::default(),
            waiters: Mutex::default(),
            backfill: Mutex::default(),
            slots_freed: Arc::new(Notify::new()),
        }
    }

    /// The task pools the scheduler knows, with their limits.
    pub(crate) fn task_pools(&self) -> &BTreeMap<String, usize> {
        &self.task_pools
    }

    /// Notifies `slots_freed` from now on when slots may have freed.
    pub(crate) fn notify(&mut self, slots_freed: Arc<Notify>) {
        self.slots_freed = slots_freed;
    }

    /// What is notified when slots may have freed.
    pub(crate) fn slots_freed(&self) -> Arc<Notify> {
        self.slots_freed.clone()
    }

    /// Running tasks: active Jobs in the cache plus reserved slots the cache has not shown yet
    /// (a reservation goes once the cache shows its Job, or after a grace period).
    fn running_locked(
        &self,
        jobs: &impl JobCounts,
        pending: &mut Pending,
        now: DateTime<Utc>,
    ) -> usize {
        pending.retain(|(ns, name), (at, _)| {
            !jobs.job_cached(ns, name)
                && now - *at < Duration::seconds(CREATE_VISIBILITY_GRACE_SECONDS)
        });
        jobs.running_tasks() + pending.len()
    }

    /// Free slots of each task pool: its limit less its active Jobs and the Jobs reserved for
    /// it that the cache does not show yet (`pending` pruned by [`Self::running_locked`]).
    fn pool_free_locked(&self, jobs: &impl JobCounts, pending: &Pending) -> HashMap<String, usize> {
        self.task_pools
            .iter()
            .map(|(pool, limit)| {
                let reserved = pending
                    .values()
                    .filter(|(_, p)| p.as_deref() == Some(pool.as_str()))
                    .count();
                let used = jobs.running_in_pool(pool) + reserved;
                (pool.clone(), limit.saturating_sub(used))
            })
            .collect()
    }

    /// Number of running tasks, reserved slots included.
    pub(crate) fn running_tasks(&self, jobs: &impl JobCounts, now: DateTime<Utc>) -> usize {
        self.running_locked(jobs, &mut lock(&self.pending), now)
    }

    /// Plans run `run` with the free slots of the global cap and of the task pools (`plan` is
    /// given them) and reserves a slot for every Job the plan creates, atomically with respect
    /// to other reconciles; queues the run (at its workflow's `priority`) for a slot of the cap
    /// or of a pool if it waits for one, and takes it out of the queues it no longer waits in.
    pub(crate) fn plan(
        &self,
        jobs: &impl JobCounts,
        run: RunRef,
        spec: &WorkflowSpec,
        now: DateTime<Utc>,
        plan: impl FnOnce(usize, &HashMap<String, usize>) -> RunPlan,
    ) -> RunPlan {
        let mut pending = lock(&self.pending);
        let free_slots =
            self.max_running_tasks
                .saturating_sub(self.running_locked(jobs, &mut pending, now));
        let pool_free = self.pool_free_locked(jobs, &pending);
        let plan = plan(free_slots, &pool_free);
        for action in &plan.actions {
            if let Action::CreateJob { job_name, task, .. } = action {
                let pool = spec.task(*task).and_then(|t| t.pool.clone());
                pending.insert((run.0.clone(), job_name.clone()), (now, pool));
            }
        }
        let mut waiters = lock(&self.waiters);
        let started = plan.status.tasks.iter().any(|t| t.attempts > 0);
        if plan.waits_for_slot {
            waiters.cap.wait(run.clone(), started, spec.priority);
        } else {
            waiters.cap.leave(&run);
        }
        for (pool, queue) in waiters.pools.iter_mut() {
            if !plan.waits_for_pools.contains(pool) {
                queue.leave(&run);
            }
        }
        for pool in &plan.waits_for_pools {
            waiters.pools.entry(pool.clone()).or_default().wait(
                run.clone(),
                started,
                spec.priority,
            );
        }
        plan
    }

    /// Gives back the slots reserved in namespace `ns` for Jobs that will not be created.
    pub(crate) fn release<'a>(&self, ns: &str, job_names: impl IntoIterator<Item = &'a String>) {
        let mut pending = lock(&self.pending);
        for name in job_names {
            pending.remove(&(ns.to_string(), name.clone()));
        }
        self.slots_freed.notify_one();
    }

    /// Takes the runs to wake now: waiting runs for which `exists` holds, one per free slot
    /// (a run held back by a pool only while the pool has room too), and the backfill runs
    /// whose turn came.
    pub(crate) fn runs_to_wake(
        &self,
        jobs: &impl JobCounts,
        now: DateTime<Utc>,
        exists: impl Fn(&RunRef) -> bool,
    ) -> Vec<RunRef> {
        let mut pending = lock(&self.pending);
        let mut free =
            self.max_running_tasks
                .saturating_sub(self.running_locked(jobs, &mut pending, now));
        let pool_free = self.pool_free_locked(jobs, &pending);
        let mut waiters = lock(&self.waiters);
        // Runs held back by a pool first, as many as both the pool and the cap have room for.
        let mut woken: Vec<RunRef> = Vec::new();
        for (pool, queue) in waiters.pools.iter_mut() {
            let room = pool_free.get(pool).copied().unwrap_or(0).min(free);
            for run in queue.take(room, &exists) {
                if !woken.contains(&run) {
                    free -= 1;
                    woken.push(run);
                }
            }
        }
        for run in waiters.cap.take(free, &exists) {
            if !woken.contains(&run) {
                woken.push(run);
            }
        }
        drop(waiters);
        woken.extend(
            std::mem::take(&mut lock(&self.backfill).woken)
                .into_iter()
                .filter(|r| exists(r)),
        );
        woken
    }

    /// Whether run `run` of backfill `name` may start now, given the workflow's `runs` (see
    /// [`backfill::turns`]); one that may not is remembered, to be woken when its turn comes.
    pub(crate) fn backfill_turn(
        &self,
        run: RunRef,
        runs: &[Arc<WorkflowRun>],
        name: &str,
        parallelism: u32,
    ) -> bool {
        let turn = backfill::turns(runs, name, parallelism).contains(&run.1);
        let mut state = lock(&self.backfill);
        if turn {
            state.waiting.remove(&run);
        } else {
            state.waiting.insert(run);
        }
        turn
    }

    /// Hands the waiting backfill runs among `runs` (a workflow's, in namespace `ns`) whose
    /// turn came to the waker. Called from the Workflow's reconcile, which every change of one
    /// of its runs triggers once the cache shows it, so a woken run sees the run that ended as
    /// ended.
    pub(crate) fn wake_backfill_turns(&self, ns: &str, runs: &[Arc<WorkflowRun>]) {
        let mut backfills: Vec<(&str, u32)> = runs
            .iter()
            .filter_map(|r| r.spec.backfill.as_ref())
            .map(|b| (b.name.as_str(), b.parallelism))
            .collect();
        backfills.sort_unstable();
        backfills.dedup_by_key(|(name, _)| *name);
        let mut state = lock(&self.backfill);
        let mut woke = false;
        for (name, parallelism) in backfills {
            for run in backfill::turns(runs, name, parallelism) {
                let key = (ns.to_string(), run);
                if state.waiting.remove(&key) {
                    state.woken.push(key);
                    woke = true;
                }
            }
        }
        drop(state);
        if woke {
            self.slots_freed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use datajump_api::{BackfillRef, RunPhase, TaskStatus, WorkflowRunSpec, WorkflowRunStatus};
    use futures::FutureExt;

    /// The Job cache as the ledger sees it.
    #[derive(Default)]
    struct Cache {
        cached: HashSet<(String, String)>,
        running: usize,
        in_pool: HashMap<String, usize>,
    }

    impl JobCounts for Cache {
        fn job_cached(&self, namespace: &str, name: &str) -> bool {
            self.cached.contains(&(namespace.into(), name.into()))
        }

        fn running_tasks(&self) -> usize {
            self.running
        }

        fn running_in_pool(&self, pool: &str) -> usize {
            self.in_pool.get(pool).copied().unwrap_or(0)
        }
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("valid time")
    }

    fn spec(priority: i32, pool: Option<&str>) -> WorkflowSpec {
        serde_json::from_value(serde_json::json!({
            "priority": priority,
            "tasks": [{"name": "t", "image": "busybox", "pool": pool}],
        }))
        .expect("a spec")
    }

    fn run(name: &str) -> RunRef {
        ("data".into(), name.into())
    }

    /// A plan that creates `jobs` Jobs of task 0 and waits for a slot of the cap or a pool.
    fn plan_of(jobs: &[&str], waits_for_slot: bool, waits_for_pools: &[&str]) -> RunPlan {
        RunPlan {
            status: WorkflowRunStatus::default(),
            actions: jobs
                .iter()
                .map(|name| Action::CreateJob {
                    task: 0,
                    attempt: 1,
                    job_name: name.to_string(),
                    outcome: None,
                })
                .collect(),
            wake_at: None,
            waits_for_slot,
            waits_for_pools: waits_for_pools.iter().map(|p| p.to_string()).collect(),
            finished_tasks: Vec::new(),
            outcome: None,
        }
    }

    /// Plans `run` with `plan`, returning the room it was given.
    fn plan(
        ledger: &SlotLedger,
        cache: &Cache,
        run: RunRef,
        spec: &WorkflowSpec,
        at: DateTime<Utc>,
        plan: RunPlan,
    ) -> (usize, HashMap<String, usize>) {
        let mut room = None;
        ledger.plan(cache, run, spec, at, |free, pools| {
            room = Some((free, pools.clone()));
            plan
        });
        room.expect("planned")
    }

    #[test]
    fn a_reserved_slot_counts_until_the_cache_shows_its_job_or_the_grace_passes() {
        let ledger = SlotLedger::new(3, BTreeMap::new());
        let mut cache = Cache {
            running: 1,
            ..Cache::default()
        };
        let spec = spec(0, None);
        let (free, _) = plan(
            &ledger,
            &cache,
            run("a"),
            &spec,
            t0(),
            plan_of(&["a-t-1"], false, &[]),
        );
        assert_eq!(free, 2, "cap 3, one Job running");
        assert_eq!(
            ledger.running_tasks(&cache, t0()),
            2,
            "the reserved slot counts"
        );
        let (free, _) = plan(
            &ledger,
            &cache,
            run("b"),
            &spec,
            t0(),
            plan_of(&[], false, &[]),
        );
        assert_eq!(free, 1, "a slot is not spent twice");

        cache.cached.insert(("data".into(), "a-t-1".into()));
        cache.running = 2;
        assert_eq!(
            ledger.running_tasks(&cache, t0()),
            2,
            "counted from the cache now"
        );
        cache.cached.clear();
        cache.running = 1;
        plan(
            &ledger,
            &cache,
            run("c"),
            &spec,
            t0(),
            plan_of(&["c-t-1"], false, &[]),
        );
        let late = t0() + Duration::seconds(CREATE_VISIBILITY_GRACE_SECONDS);
        assert_eq!(
            ledger.running_tasks(&cache, late),
            1,
            "a Job the cache never showed stops counting"
        );
    }

    #[test]
    fn released_slots_are_free_again_and_wake_the_waiters() {
        let ledger = SlotLedger::new(1, BTreeMap::new());
        let cache = Cache::default();
        let spec = spec(0, None);
        plan(
            &ledger,
            &cache,
            run("a"),
            &spec,
            t0(),
            plan_of(&["a-t-1"], false, &[]),
        );
        assert_eq!(ledger.running_tasks(&cache, t0()), 1);
        let freed = ledger.slots_freed();
        assert!(
            freed.notified().now_or_never().is_none(),
            "nothing freed yet"
        );
        ledger.release("data", [&"a-t-1".to_string()]);
        assert_eq!(ledger.running_tasks(&cache, t0()), 0);
        assert!(
            freed.notified().now_or_never().is_some(),
            "the waker is told"
        );
    }

    #[test]
    fn waiting_runs_are_woken_one_per_free_slot_highest_priority_first() {
        let ledger = SlotLedger::new(2, BTreeMap::new());
        let mut cache = Cache {
            running: 2,
            ..Cache::default()
        };
        for (name, priority) in [("batch-1", 0), ("batch-2", 0), ("urgent", 10)] {
            let (free, _) = plan(
                &ledger,
                &cache,
                run(name),
                &spec(priority, None),
                t0(),
                plan_of(&[], true, &[]),
            );
            assert_eq!(free, 0);
        }
        assert!(
            ledger.runs_to_wake(&cache, t0(), |_| true).is_empty(),
            "no room"
        );
        cache.running = 0;
        assert_eq!(
            ledger.runs_to_wake(&cache, t0(), |r| r.1 != "batch-1"),
            [run("urgent"), run("batch-2")],
            "by priority; a run that went away uses no slot"
        );
        assert!(
            ledger.runs_to_wake(&cache, t0(), |_| true).is_empty(),
            "each taken once"
        );
    }

    #[test]
    fn a_run_held_back_by_a_pool_is_woken_when_the_pool_and_the_cap_have_room() {
        let ledger = SlotLedger::new(10, BTreeMap::from([("spark".to_string(), 1)]));
        let mut cache = Cache {
            running: 1,
            in_pool: HashMap::from([("spark".to_string(), 1)]),
            ..Cache::default()
        };
        let spec = spec(0, Some("spark"));
        let (free, pools) = plan(
            &ledger,
            &cache,
            run("a"),
            &spec,
            t0(),
            plan_of(&[], false, &["spark"]),
        );
        assert_eq!((free, pools["spark"]), (9, 0));
        assert!(
            ledger.runs_to_wake(&cache, t0(), |_| true).is_empty(),
            "the pool is full"
        );
        cache.in_pool.clear();
        cache.running = 0;
        assert_eq!(ledger.runs_to_wake(&cache, t0(), |_| true), [run("a")]);

        // A reservation for the pool counts against it until the cache shows the Job.
        plan(
            &ledger,
            &cache,
            run("b"),
            &spec,
            t0(),
            plan_of(&["b-t-1"], false, &[]),
        );
        let (_, pools) = plan(
            &ledger,
            &cache,
            run("c"),
            &spec,
            t0(),
            plan_of(&[], false, &[]),
        );
        assert_eq!(pools["spark"], 0);
        assert_eq!(ledger.task_pools()["spark"], 1);
    }

    fn backfill_run(day: u32, attempts: u32) -> Arc<WorkflowRun> {
        let mut run = WorkflowRun::new(
            &format!("etl-{day}"),
            WorkflowRunSpec {
                workflow_name: "etl".into(),
                scheduled_time: Utc.with_ymd_and_hms(2026, 11, day, 2, 0, 0).single(),
                backfill: Some(BackfillRef {
                    name: "nov".into(),
                    parallelism: 1,
                }),
                ..WorkflowRunSpec::default()
            },
        );
        run.metadata.namespace = Some("data".into());
        run.status = Some(WorkflowRunStatus {
            phase: if attempts > 0 {
                RunPhase::Running
            } else {
                RunPhase::Pending
            },
            tasks: vec![TaskStatus {
                name: "t".into(),
                attempts,
                ..TaskStatus::default()
            }],
            ..WorkflowRunStatus::default()
        });
        Arc::new(run)
    }

    #[test]
    fn a_backfill_run_waits_for_its_turn_and_is_handed_to_the_waker_when_it_comes() {
        let ledger = SlotLedger::new(10, BTreeMap::new());
        let cache = Cache::default();
        let mut runs = vec![backfill_run(1, 1), backfill_run(2, 0)];
        assert!(
            !ledger.backfill_turn(run("etl-2"), &runs, "nov", 1),
            "etl-1 runs, one at a time"
        );
        ledger.wake_backfill_turns("data", &runs);
        assert!(ledger.runs_to_wake(&cache, t0(), |_| true).is_empty());

        runs[0] = {
            let mut done = (*runs[0]).clone();
            if let Some(status) = done.status.as_mut() {
                status.phase = RunPhase::Succeeded;
            }
            Arc::new(done)
        };
        let freed = ledger.slots_freed();
        ledger.wake_backfill_turns("data", &runs);
        assert!(
            freed.notified().now_or_never().is_some(),
            "the waker is told"
        );
        assert_eq!(ledger.runs_to_wake(&cache, t0(), |_| true), [run("etl-2")]);
        assert!(ledger.backfill_turn(run("etl-2"), &runs, "nov", 1));
    }
}
