//! Cache freshness: what this reconciler wrote that its caches may not show yet.
//!
//! A status write reaches the cache through the watch, a moment later. A reconcile that reads
//! the older copy meanwhile would act on stale data: finish the same tasks again (double counts,
//! duplicate Events), or take a schedule tick a second time. So the reconciler remembers its
//! recent writes; a run whose cached status is older waits for the cache, and a workflow plans
//! from the newer `lastScheduleTime`. A write is forgotten once the cache shows it (or, for run
//! statuses, once a grace period says someone else changed it).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Duration, Utc};

use super::cluster::{ObjectKey, object_key};
use datajump_api::{
    RunPhase, Shutdown, TaskPhase, Workflow, WorkflowRun, WorkflowRunStatus, WorkflowStatus,
};

/// How long a run status this reconciler wrote may stay invisible in the cache: within it, a
/// reconcile that sees an older status waits for the cache instead of acting on stale data.
/// Past it the status is taken as it is (someone else changed it).
const STATUS_VISIBILITY_GRACE_MS: i64 = 5_000;

/// How soon to look again while the cache catches up.
pub(super) const STALE_CACHE_RETRY_MS: i64 = 100;

/// What a status write changed that matters for acting on a run: its phase, the shutdown it
/// acted on (acting on it again would say so twice) and each task's phase and attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Progress {
    phase: RunPhase,
    shutdown: Option<Shutdown>,
    tasks: Vec<(String, TaskPhase, u32)>,
}

impl Progress {
    fn of(status: &WorkflowRunStatus) -> Self {
        Self {
            phase: status.phase,
            shutdown: status.shutdown,
            tasks: status
                .tasks
                .iter()
                .map(|t| (t.name.clone(), t.phase, t.attempts))
                .collect(),
        }
    }
}

/// The writes the caches may not show yet.
#[derive(Debug, Default)]
pub(super) struct Freshness {
    /// Run statuses written but perhaps not yet seen in the cache, by (namespace, name, uid).
    written: Mutex<HashMap<ObjectKey, (Progress, DateTime<Utc>)>>,
    /// `status.lastScheduleTime` written but perhaps not yet seen in the cached Workflow, by
    /// (namespace, name, uid). Planning from the older value would take a tick a second time,
    /// and under `Replace` delete the run just started for it and start it again.
    scheduled: Mutex<HashMap<ObjectKey, DateTime<Utc>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Freshness {
    /// The workflow's last scheduled tick: the cached one, or the newer one this reconciler
    /// wrote if the cache does not show it yet. Forgets the write once the cache shows it.
    pub(super) fn last_scheduled(
        &self,
        wf: &Workflow,
        cached: Option<DateTime<Utc>>,
    ) -> Option<DateTime<Utc>> {
        let mut scheduled = lock(&self.scheduled);
        let key = object_key(&wf.metadata);
        match (scheduled.get(&key).copied(), cached) {
            (Some(written), Some(seen)) if seen >= written => {
                scheduled.remove(&key);
                Some(seen)
            }
            (Some(written), _) => Some(written),
            (None, seen) => seen,
        }
    }

    /// Remembers the `lastScheduleTime` of a workflow status just written.
    pub(super) fn remember_scheduled(&self, wf: &Workflow, status: &WorkflowStatus) {
        if let Some(t) = status.last_schedule_time {
            lock(&self.scheduled).insert(object_key(&wf.metadata), t);
        }
    }

    /// Whether the cached run still shows an older status than the one this reconciler wrote
    /// moments ago (the watch event is on its way). Forgets the write once the cache shows it,
    /// or once the grace period is over.
    pub(super) fn cache_behind(
        &self,
        run: &WorkflowRun,
        cached: &WorkflowRunStatus,
        now: DateTime<Utc>,
    ) -> bool {
        let mut written = lock(&self.written);
        let key = object_key(&run.metadata);
        let Some((progress, at)) = written.get(&key) else {
            return false;
        };
        let behind = *progress != Progress::of(cached)
            && now - *at < Duration::milliseconds(STATUS_VISIBILITY_GRACE_MS);
        if !behind {
            written.remove(&key);
        }
        behind
    }

    /// Remembers a run status written at `now`.
    pub(super) fn remember_status(
        &self,
        run: &WorkflowRun,
        status: &WorkflowRunStatus,
        now: DateTime<Utc>,
    ) {
        lock(&self.written).insert(object_key(&run.metadata), (Progress::of(status), now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use datajump_api::{TaskStatus, WorkflowRunSpec, WorkflowSpec};

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("valid time")
    }

    fn run(uid: &str) -> WorkflowRun {
        let mut run = WorkflowRun::new("etl-1", WorkflowRunSpec::default());
        run.metadata.namespace = Some("data".into());
        run.metadata.uid = Some(uid.into());
        run
    }

    fn status(attempts: u32) -> WorkflowRunStatus {
        WorkflowRunStatus {
            phase: RunPhase::Running,
            tasks: vec![TaskStatus {
                name: "load".into(),
                phase: TaskPhase::Running,
                attempts,
                ..TaskStatus::default()
            }],
            ..WorkflowRunStatus::default()
        }
    }

    #[test]
    fn a_run_waits_for_the_cache_to_show_its_last_write_until_the_grace_passes() {
        let fresh = Freshness::default();
        let (run, written) = (run("u1"), status(2));
        assert!(
            !fresh.cache_behind(&run, &status(1), t0()),
            "nothing written"
        );
        fresh.remember_status(&run, &written, t0());
        assert!(fresh.cache_behind(&run, &status(1), t0()), "older copy");
        assert!(
            !fresh.cache_behind(&self::run("u2"), &status(1), t0()),
            "a run re-created under the same name is another run"
        );
        let later = t0() + Duration::milliseconds(STATUS_VISIBILITY_GRACE_MS);
        assert!(
            !fresh.cache_behind(&run, &status(1), later),
            "someone else changed it"
        );
        fresh.remember_status(&run, &written, t0());
        assert!(
            !fresh.cache_behind(&run, &written, t0()),
            "the cache shows it"
        );
        assert!(
            !fresh.cache_behind(&run, &status(1), t0()),
            "forgotten once seen"
        );
    }

    #[test]
    fn a_shutdown_acted_on_is_waited_for_like_any_progress() {
        let fresh = Freshness::default();
        let run = run("u1");
        let acted = WorkflowRunStatus {
            shutdown: Some(Shutdown::Stop),
            ..status(1)
        };
        fresh.remember_status(&run, &acted, t0());
        assert!(
            fresh.cache_behind(&run, &status(1), t0()),
            "acting on the stop again would announce it twice"
        );
        assert!(!fresh.cache_behind(&run, &acted, t0()));
    }

    #[test]
    fn the_newer_of_the_written_and_the_cached_schedule_time_counts() {
        let fresh = Freshness::default();
        let spec: WorkflowSpec =
            serde_json::from_value(serde_json::json!({"tasks": []})).expect("a spec");
        let mut wf = Workflow::new("etl", spec);
        wf.metadata.uid = Some("w1".into());
        let written = WorkflowStatus {
            last_schedule_time: Some(t0()),
            ..WorkflowStatus::default()
        };
        let earlier = t0() - Duration::hours(1);
        assert_eq!(fresh.last_scheduled(&wf, Some(earlier)), Some(earlier));
        fresh.remember_scheduled(&wf, &written);
        assert_eq!(fresh.last_scheduled(&wf, Some(earlier)), Some(t0()));
        assert_eq!(fresh.last_scheduled(&wf, None), Some(t0()));
        assert_eq!(fresh.last_scheduled(&wf, Some(t0())), Some(t0()));
        assert_eq!(
            fresh.last_scheduled(&wf, Some(earlier)),
            Some(earlier),
            "forgotten once the cache showed it"
        );
    }
}
