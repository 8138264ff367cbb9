//! The scheduler's cache of the Jobs it created, compact and indexed for what planning asks:
//! the Jobs of one run (by the run's UID, so a run re-created under the same name never adopts
//! the old run's Jobs) and the number of active Jobs (the global cap), both without scanning.
//!
//! A cached Job is its [`ObservedJob`] (name, task, attempt, state, times) and the owning run's
//! UID, a few hundred bytes instead of the several kilobytes of a `Job` object; the watch events
//! that fill it are dropped once observed. A relist (after a watch expired) marks what it sees
//! and drops the rest at its end, so Jobs deleted while the watch was down disappear and memory
//! does not double.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;

use crate::jobs::{observe_job, observe_pod, pod_finished};
use crate::plan::{JobState, ObservedJob, PodReport};

/// A Job's identity: (namespace, name).
type JobKey = (Arc<str>, Box<str>);

struct Owner {
    run_uid: Arc<str>,
    /// The task pool the Job counts against (its `datajump.io/pool` label).
    pool: Option<Arc<str>>,
    /// The list (or watch) generation that last saw the Job.
    generation: u64,
}

#[derive(Default)]
struct Inner {
    owners: HashMap<JobKey, Owner>,
    by_run: HashMap<Arc<str>, Vec<ObservedJob>>,
    /// What task pods report, by their Job (only pods with something to report). Kept apart
    /// from `by_run` as well, because a pod can be seen before its Job (separate watches).
    pods: HashMap<JobKey, Box<PodReport>>,
    /// Names of the finished pods that still exist, by their Job (emptied by pod cleanup).
    finished_pods: HashMap<JobKey, Vec<Box<str>>>,
    /// Namespace names, shared by every key in them.
    namespaces: HashMap<Box<str>, Arc<str>>,
    active: usize,
    /// Active Jobs per task pool (pool names shared like namespaces).
    active_by_pool: HashMap<Arc<str>, usize>,
    generation: u64,
}

/// The Job cache. Cheap to read concurrently; written by the one watch that feeds it.
#[derive(Default)]
pub struct JobIndex {
    inner: RwLock<Inner>,
}

/// The UID of the WorkflowRun that controls a Job, from its owner references.
fn controlling_run(job: &Job) -> Option<&str> {
    job.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.kind == "WorkflowRun" && o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

impl Inner {
    /// The shared name of a namespace (one allocation per namespace, not per Job).
    fn namespace(&mut self, ns: &str) -> Arc<str> {
        match self.namespaces.get(ns) {
            Some(shared) => shared.clone(),
            None => {
                let shared: Arc<str> = Arc::from(ns);
                self.namespaces.insert(ns.into(), shared.clone());
                shared
            }
        }
    }

    /// The cached Job of `key`, if any.
    fn job_mut(&mut self, key: &JobKey) -> Option<&mut ObservedJob> {
        let owner = self.owners.get(key)?;
        self.by_run
            .get_mut(&owner.run_uid)?
            .iter_mut()
            .find(|j| *j.name == *key.1)
    }

    /// Records what a Job's pod reports; returns whether that changed.
    fn set_pod(&mut self, key: &JobKey, report: Option<PodReport>) -> bool {
        if self.pods.get(key).map(|r| &**r) == report.as_ref() {
            return false;
        }
        let report = report.map(Box::new);
        if let Some(job) = self.job_mut(key) {
            job.pod = report.clone();
        }
        match report {
            Some(report) => self.pods.insert(key.clone(), report),
            None => self.pods.remove(key),
        };
        true
    }

    /// Records whether pod `pod` of a Job is a finished one that still exists.
    fn set_finished_pod(&mut self, key: &JobKey, pod: &str, finished: bool) {
        let known = self
            .finished_pods
            .get(key)
            .and_then(|names| names.iter().position(|n| **n == *pod));
        match (known, finished) {
            (None, true) => self
                .finished_pods
                .entry(key.clone())
                .or_default()
                .push(pod.into()),
            (Some(i), false) => {
                if let Some(names) = self.finished_pods.get_mut(key) {
                    names.swap_remove(i);
                    if names.is_empty() {
                        self.finished_pods.remove(key);
                    }
                }
            }
            _ => return,
        }
        let any = self.finished_pods.contains_key(key);
        if let Some(job) = self.job_mut(key) {
            job.finished_pods = any;
        }
    }

    /// Forgets a Job and its pod's report.
    fn remove(&mut self, key: &JobKey) {
        self.pods.remove(key);
        self.finished_pods.remove(key);
        self.detach(key);
    }

    /// Forgets a Job's place in `by_run` (its pod's report stays).
    fn detach(&mut self, key: &JobKey) {
        let Some(owner) = self.owners.remove(key) else {
            return;
        };
        if let Some(jobs) = self.by_run.get_mut(&owner.run_uid) {
            if let Some(i) = jobs.iter().position(|j| *j.name == *key.1) {
                if jobs[i].state == JobState::Active {
                    self.active -= 1;
                    if let Some(n) = owner.pool.and_then(|p| self.active_by_pool.get_mut(&p)) {
                        *n -= 1;
                    }
                }
                jobs.swap_remove(i);
            }
            if jobs.is_empty() {
                self.by_run.remove(&owner.run_uid);
            }
        }
    }

    fn upsert(&mut self, job: &Job) {
        let (Some(ns), Some(name)) = (
            job.metadata.namespace.as_deref(),
            job.metadata.name.as_deref(),
        ) else {
            return;
        };
        let key: JobKey = (self.namespace(ns), name.into());
        // Not the scheduler's (no controlling run) or not one of its task Jobs: not cached.
        let (Some(uid), Some(mut observed)) = (controlling_run(job), observe_job(job)) else {
            self.remove(&key);
            return;
        };
        observed.pod = self.pods.get(&key).cloned();
        observed.finished_pods = self.finished_pods.contains_key(&key);
        let generation = self.generation;
        let pool = job
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(datajump_api::LABEL_POOL))
            .map(|p| self.namespace(p));
        let run_uid = match self.owners.get_mut(&key) {
            Some(owner) if *owner.run_uid == *uid => {
                owner.generation = generation;
                owner.run_uid.clone()
            }
            _ => {
                self.detach(&key);
                let run_uid = self
                    .by_run
                    .get_key_value(uid)
                    .map_or_else(|| Arc::from(uid), |(k, _)| k.clone());
                self.owners.insert(
                    key.clone(),
                    Owner {
                        run_uid: run_uid.clone(),
                        pool: pool.clone(),
                        generation,
                    },
                );
                run_uid
            }
        };
        let jobs = self.by_run.entry(run_uid).or_default();
        let now_active = observed.state == JobState::Active;
        let was_active = match jobs.iter_mut().find(|j| *j.name == *name) {
            Some(cached) => {
                let was_active = cached.state == JobState::Active;
                *cached = observed;
                was_active
            }
            None => {
                jobs.push(observed);
                false
            }
        };
        self.active = self.active + usize::from(now_active) - usize::from(was_active);
        // The pool recorded when the Job was first seen (its label does not change).
        if let Some(pool) = self.owners.get(&key).and_then(|o| o.pool.clone()) {
            let n = self.active_by_pool.entry(pool).or_default();
            *n = *n + usize::from(now_active) - usize::from(was_active);
        }
    }
}

impl JobIndex {
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes in one watch event.
    pub fn observe(&self, event: &watcher::Event<Job>) {
        match event {
            watcher::Event::Apply(job) | watcher::Event::InitApply(job) => self.apply(job),
            watcher::Event::Delete(job) => self.delete(job),
            watcher::Event::Init => self.write().generation += 1,
            watcher::Event::InitDone => {
                let mut inner = self.write();
                let current = inner.generation;
                let gone: Vec<JobKey> = inner
                    .owners
                    .iter()
                    .filter(|(_, o)| o.generation < current)
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in &gone {
                    inner.remove(key);
                }
                // Reports of pods whose Job went away before the pod's last event.
                let Inner {
                    pods,
                    finished_pods,
                    owners,
                    ..
                } = &mut *inner;
                pods.retain(|key, _| owners.contains_key(key));
                finished_pods.retain(|key, _| owners.contains_key(key));
            }
        }
    }

    /// Takes in one event of the task pods' watch; returns whether it changed a pod's report,
    /// so that only such events trigger a reconcile. A deleted pod keeps its report: it still
    /// tells how that attempt went (the report goes with its Job). A pod finishing or going
    /// away triggers nothing: its Job's completion, which follows the pod's, triggers the run,
    /// which then sees the finished pod (or, failing that, the next resync does), and cleanup
    /// is not urgent. Triggering on it would double the reconciles under load.
    pub fn observe_pod(&self, event: &watcher::Event<Pod>) -> bool {
        let (pod, deleted) = match event {
            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => (pod, false),
            watcher::Event::Delete(pod) => (pod, true),
            watcher::Event::Init | watcher::Event::InitDone => return false,
        };
        let (Some(ns), Some(name), Some((job, report))) = (
            pod.metadata.namespace.as_deref(),
            pod.metadata.name.as_deref(),
            observe_pod(pod),
        ) else {
            return false;
        };
        let mut inner = self.write();
        let key = (inner.namespace(ns), job.into());
        inner.set_finished_pod(&key, name, !deleted && pod_finished(pod));
        !deleted && inner.set_pod(&key, report)
    }

    /// A created or changed Job.
    pub fn apply(&self, job: &Job) {
        self.write().upsert(job);
    }

    /// A deleted Job.
    pub fn delete(&self, job: &Job) {
        if let (Some(ns), Some(name)) = (
            job.metadata.namespace.as_deref(),
            job.metadata.name.as_deref(),
        ) {
            let mut inner = self.write();
            if let Some(ns) = inner.namespaces.get(ns).cloned() {
                inner.remove(&(ns, name.into()));
            }
        }
    }

    /// The Jobs of the run with this UID.
    pub fn jobs_of(&self, run_uid: &str) -> Vec<ObservedJob> {
        self.read().by_run.get(run_uid).cloned().unwrap_or_default()
    }

    /// Whether the Job is cached.
    pub fn contains(&self, namespace: &str, name: &str) -> bool {
        let inner = self.read();
        inner
            .namespaces
            .get(namespace)
            .is_some_and(|ns| inner.owners.contains_key(&(ns.clone(), name.into())))
    }

    /// Number of active Jobs counting against task pool `pool`.
    pub fn active_in(&self, pool: &str) -> usize {
        self.read().active_by_pool.get(pool).copied().unwrap_or(0)
    }

    /// Number of active Jobs across all runs.
    pub fn active(&self) -> usize {
        self.read().active
    }

    /// Number of cached Jobs.
    pub fn len(&self) -> usize {
        self.read().owners.len()
    }

    /// Whether no Job is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
    use std::collections::BTreeMap;

    use datajump_api::{LABEL_ATTEMPT, LABEL_RUN, LABEL_TASK};

    fn job(name: &str, run_uid: &str, state: Option<&str>) -> Job {
        Job {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("data".into()),
                labels: Some(BTreeMap::from([
                    (LABEL_RUN.to_string(), "etl-1".to_string()),
                    (LABEL_TASK.to_string(), "extract".to_string()),
                    (LABEL_ATTEMPT.to_string(), "1".to_string()),
                ])),
                owner_references: Some(vec![OwnerReference {
                    api_version: "datajump.io/v1alpha1".into(),
                    kind: "WorkflowRun".into(),
                    name: "etl-1".into(),
                    uid: run_uid.into(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(match state {
                None => JobStatus::default(),
                Some("Succeeded") => JobStatus {
                    succeeded: Some(1),
                    ..JobStatus::default()
                },
                Some(reason) => JobStatus {
                    conditions: Some(vec![JobCondition {
                        type_: "Failed".into(),
                        status: "True".into(),
                        reason: Some(reason.into()),
                        ..JobCondition::default()
                    }]),
                    ..JobStatus::default()
                },
            }),
        }
    }

    fn pod_event(job: &str, status: serde_json::Value) -> watcher::Event<Pod> {
        watcher::Event::Apply(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("{job}-abcde"), "namespace": "data",
                             "labels": {crate::jobs::LABEL_JOB_NAME: job}},
                "status": status,
            }))
            .expect("a pod"),
        )
    }

    #[test]
    fn pod_reports_join_their_job_whichever_is_seen_first() {
        let index = JobIndex::default();
        let oom = serde_json::json!({"phase": "Failed", "containerStatuses": [{
            "name": "task", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]});
        let report = |index: &JobIndex, job: &str| {
            index
                .jobs_of("uid")
                .into_iter()
                .find(|j| j.name == job)
                .and_then(|j| j.pod)
        };
        // The pod first, then its Job.
        assert!(index.observe_pod(&pod_event("etl-1-extract-1", oom.clone())));
        index.apply(&job("etl-1-extract-1", "uid", Some("BackoffLimitExceeded")));
        assert!(matches!(
            report(&index, "etl-1-extract-1").as_deref(),
            Some(PodReport::Terminated { exit_code: 137, .. })
        ));
        // The same report again changes nothing (no reconcile is triggered).
        assert!(!index.observe_pod(&pod_event("etl-1-extract-1", oom)));
        // The Job first, then its pod; a pod that got going clears the report.
        index.apply(&job("etl-1-load-1", "uid", None));
        let pulling = serde_json::json!({"phase": "Pending", "containerStatuses": [{
            "name": "task", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ErrImagePull"}}}]});
        assert!(index.observe_pod(&pod_event("etl-1-load-1", pulling)));
        assert!(matches!(
            report(&index, "etl-1-load-1").as_deref(),
            Some(PodReport::Blocked { reason, .. }) if reason == "ErrImagePull"
        ));
        assert!(index.observe_pod(&pod_event(
            "etl-1-load-1",
            serde_json::json!({"phase": "Running"})
        )));
        assert_eq!(report(&index, "etl-1-load-1"), None);
        // The report goes with its Job: a Job created again under that name starts clean.
        index.delete(&job("etl-1-extract-1", "uid", None));
        index.apply(&job("etl-1-extract-1", "uid", None));
        assert_eq!(report(&index, "etl-1-extract-1"), None);
    }

    #[test]
    fn finished_pods_are_tracked_until_deleted() {
        let index = JobIndex::default();
        index.apply(&job("etl-1-load-1", "uid", Some("Succeeded")));
        let flag = |index: &JobIndex| index.jobs_of("uid")[0].finished_pods;
        let running = pod_event("etl-1-load-1", serde_json::json!({"phase": "Running"}));
        index.observe_pod(&running);
        assert!(!flag(&index));
        let done = pod_event("etl-1-load-1", serde_json::json!({"phase": "Succeeded"}));
        assert!(!index.observe_pod(&done), "finishing triggers nothing");
        assert!(flag(&index));
        let watcher::Event::Apply(pod) = done else {
            unreachable!("built as Apply")
        };
        index.observe_pod(&watcher::Event::Delete(pod));
        assert!(!flag(&index));
    }

    #[test]
    fn jobs_are_found_by_their_run_uid_and_counted_while_active() {
        let index = JobIndex::default();
        index.apply(&job("etl-1-extract-1", "uid-old", Some("Succeeded")));
        index.apply(&job("etl-1-load-1", "uid-new", None));
        index.apply(&job("etl-1-clean-1", "uid-new", None));
        assert_eq!(index.active(), 2);
        // The re-created run (same name, new UID) sees only its own Jobs.
        let names: Vec<String> = index
            .jobs_of("uid-new")
            .into_iter()
            .map(|j| j.name)
            .collect();
        assert_eq!(names.len(), 2);
        assert!(!names.contains(&"etl-1-extract-1".to_string()));
        assert_eq!(index.jobs_of("uid-old").len(), 1);

        index.apply(&job(
            "etl-1-load-1",
            "uid-new",
            Some("BackoffLimitExceeded"),
        ));
        assert_eq!(index.active(), 1, "a finished Job frees its slot");
        assert!(matches!(
            &index.jobs_of("uid-new").iter().find(|j| j.name == "etl-1-load-1").map(|j| j.state.clone()),
            Some(JobState::Failed { reason }) if reason == "BackoffLimitExceeded"
        ));
        index.delete(&job("etl-1-clean-1", "uid-new", None));
        assert_eq!(index.active(), 0);
        assert!(!index.contains("data", "etl-1-clean-1"));
        assert!(index.contains("data", "etl-1-load-1"));
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn a_relist_drops_what_it_did_not_see() {
        let index = JobIndex::default();
        index.observe(&watcher::Event::Init);
        index.observe(&watcher::Event::InitApply(job("a-1", "r", None)));
        index.observe(&watcher::Event::InitApply(job("b-1", "r", None)));
        index.observe(&watcher::Event::InitDone);
        assert_eq!((index.len(), index.active()), (2, 2));
        // The watch expired; meanwhile b-1 was deleted and a-1 finished.
        index.observe(&watcher::Event::Init);
        index.observe(&watcher::Event::InitApply(job(
            "a-1",
            "r",
            Some("Succeeded"),
        )));
        assert_eq!(index.len(), 2, "kept until the relist is complete");
        index.observe(&watcher::Event::InitDone);
        assert_eq!((index.len(), index.active()), (1, 0));
        assert!(!index.contains("data", "b-1"));
    }

    #[test]
    fn jobs_without_a_controlling_run_are_not_cached() {
        let index = JobIndex::default();
        let mut foreign = job("x-1", "r", None);
        foreign.metadata.owner_references = None;
        index.apply(&foreign);
        assert!(index.is_empty());
        // A Job whose owner changed (deleted and re-created by another run) moves with it.
        index.apply(&job("x-1", "r1", None));
        index.apply(&job("x-1", "r2", None));
        assert!(index.jobs_of("r1").is_empty());
        assert_eq!(index.jobs_of("r2").len(), 1);
        assert_eq!(index.active(), 1);
    }
}
