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
use kube::runtime::watcher;

use crate::jobs::observe_job;
use crate::plan::{JobState, ObservedJob};

/// A Job's identity: (namespace, name).
type JobKey = (Arc<str>, Box<str>);

struct Owner {
    run_uid: Arc<str>,
    /// The list (or watch) generation that last saw the Job.
    generation: u64,
}

#[derive(Default)]
struct Inner {
    owners: HashMap<JobKey, Owner>,
    by_run: HashMap<Arc<str>, Vec<ObservedJob>>,
    /// Namespace names, shared by every key in them.
    namespaces: HashMap<Box<str>, Arc<str>>,
    active: usize,
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
    fn remove(&mut self, key: &JobKey) {
        let Some(owner) = self.owners.remove(key) else {
            return;
        };
        if let Some(jobs) = self.by_run.get_mut(&owner.run_uid) {
            if let Some(i) = jobs.iter().position(|j| *j.name == *key.1) {
                if jobs[i].state == JobState::Active {
                    self.active -= 1;
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
        let ns = match self.namespaces.get(ns) {
            Some(shared) => shared.clone(),
            None => {
                let shared: Arc<str> = Arc::from(ns);
                self.namespaces.insert(ns.into(), shared.clone());
                shared
            }
        };
        let key: JobKey = (ns, name.into());
        // Not the scheduler's (no controlling run) or not one of its task Jobs: not cached.
        let (Some(uid), Some(observed)) = (controlling_run(job), observe_job(job)) else {
            self.remove(&key);
            return;
        };
        let generation = self.generation;
        let run_uid = match self.owners.get_mut(&key) {
            Some(owner) if *owner.run_uid == *uid => {
                owner.generation = generation;
                owner.run_uid.clone()
            }
            _ => {
                self.remove(&key);
                let run_uid = self
                    .by_run
                    .get_key_value(uid)
                    .map_or_else(|| Arc::from(uid), |(k, _)| k.clone());
                self.owners.insert(
                    key.clone(),
                    Owner {
                        run_uid: run_uid.clone(),
                        generation,
                    },
                );
                run_uid
            }
        };
        let jobs = self.by_run.entry(run_uid).or_default();
        let now_active = observed.state == JobState::Active;
        match jobs.iter_mut().find(|j| *j.name == *name) {
            Some(cached) => {
                let was_active = cached.state == JobState::Active;
                *cached = observed;
                self.active = self.active + usize::from(now_active) - usize::from(was_active);
            }
            None => {
                jobs.push(observed);
                self.active += usize::from(now_active);
            }
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
            }
        }
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

    /// Number of active Jobs.
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

    use crate::api::{LABEL_ATTEMPT, LABEL_RUN, LABEL_TASK};

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
