//! Playing the kubelet for task pods on the test cluster: the fake kubelet paused
//! ([`PausedKubelet`]) while the test reports for the pods of one namespace what a kubelet
//! would ([`TaskPodPlayer`]). The fake kubelet ends every Job pod after a second; a test of a
//! task that must still be running when something happens to it (a stop, a terminate) holds
//! that pod Running instead, and confirms its deletion the way a kubelet does once the
//! container stopped.
//!
//! Keep the pauses short: paused nodes go NotReady after the node monitor's grace period
//! (about 40 s).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::cluster::{Cluster, signal};

/// The node the played pods are bound to (one of the fake kubelet's).
pub const NODE: &str = "fake-node-0";

/// The fake kubelet of a cluster, stopped (SIGSTOP) until dropped.
pub struct PausedKubelet(String);

impl PausedKubelet {
    pub fn pause(cluster: &Cluster) -> Self {
        let pid = std::fs::read_to_string(cluster.dir.join("fake-kubelet.pid"))
            .expect("the fake kubelet's pid")
            .trim()
            .to_string();
        signal(&pid, "STOP");
        Self(pid)
    }
}

impl Drop for PausedKubelet {
    fn drop(&mut self) {
        signal(&self.0, "CONT");
    }
}

/// A task pod the player saw marked for deletion.
#[derive(Debug, Clone)]
pub struct PodDeletion {
    /// Its task (the `datajump.io/task` label).
    pub task: String,
    pub pod: String,
    /// Whether it was running (not finished) when it was marked.
    pub was_running: bool,
    pub marked: Instant,
    /// When the player, as the kubelet, confirmed it (the container stopped), by the wall
    /// clock, to compare with the API server's timestamps.
    pub confirmed: Option<SystemTime>,
}

#[derive(Default)]
struct Played {
    /// Tasks whose pods stay Running until released.
    held: HashSet<String>,
    /// Pods bound and reported Running, by name, with their task.
    running: HashMap<String, String>,
    /// Pods reported finished.
    finished: HashSet<String>,
    deletions: Vec<PodDeletion>,
}

/// Plays the kubelet for the new task pods (label `datajump.io/task`) of one namespace,
/// polling every 100 ms: binds a pod not bound yet to [`NODE`] and reports it Running; at the next look reports
/// it Succeeded (exit code 0), unless its task is held; confirms the deletion of a pod marked
/// for deletion `grace` after the mark (the time its container takes to stop), deleting it with
/// no further grace. Stops when dropped.
pub struct TaskPodPlayer {
    played: Arc<Mutex<Played>>,
    task: tokio::task::JoinHandle<()>,
}

fn lock(played: &Mutex<Played>) -> MutexGuard<'_, Played> {
    played.lock().unwrap_or_else(|e| e.into_inner())
}

impl TaskPodPlayer {
    /// Starts playing the pods of `ns`, holding those of `held` tasks Running.
    pub fn start(client: kube::Client, ns: &str, held: &[&str], grace: Duration) -> Self {
        let played = Arc::new(Mutex::new(Played {
            held: held.iter().map(|t| t.to_string()).collect(),
            ..Played::default()
        }));
        let api: Api<Pod> = Api::namespaced(client, ns);
        let task = tokio::spawn(play(api, played.clone(), grace));
        Self { played, task }
    }

    /// Lets the held pods of `task` finish (Succeeded) at the next look.
    pub fn release(&self, task: &str) {
        lock(&self.played).held.remove(task);
    }

    /// Whether a pod of `task` runs (bound, reported Running, not finished or deleted).
    pub fn running(&self, task: &str) -> bool {
        let played = lock(&self.played);
        played
            .running
            .iter()
            .any(|(pod, t)| t == task && !played.finished.contains(pod))
    }

    /// The task pods seen marked for deletion so far.
    pub fn deletions(&self) -> Vec<PodDeletion> {
        lock(&self.played).deletions.clone()
    }
}

impl Drop for TaskPodPlayer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn play(api: Api<Pod>, played: Arc<Mutex<Played>>, grace: Duration) {
    let tasks = ListParams::default().labels(datajump_api::LABEL_TASK);
    loop {
        let pods = match api.list(&tasks).await {
            Ok(pods) => pods.items,
            Err(e) => panic!("list task pods: {e}"),
        };
        for pod in pods {
            play_pod(&api, &played, &pod, grace).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One look at one pod: what a kubelet would do next with it.
async fn play_pod(api: &Api<Pod>, played: &Mutex<Played>, pod: &Pod, grace: Duration) {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let task = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(datajump_api::LABEL_TASK))
        .cloned()
        .unwrap_or_default();
    if pod.metadata.deletion_timestamp.is_some() && lock(played).running.contains_key(&name) {
        let confirm = {
            let mut played = lock(played);
            let was_running =
                played.running.contains_key(&name) && !played.finished.contains(&name);
            let Played { deletions, .. } = &mut *played;
            let deletion = match deletions.iter().position(|d| d.pod == name) {
                Some(i) => &mut deletions[i],
                None => {
                    deletions.push(PodDeletion {
                        task,
                        pod: name.clone(),
                        was_running,
                        marked: Instant::now(),
                        confirmed: None,
                    });
                    deletions.last_mut().expect("just pushed")
                }
            };
            let due = deletion.confirmed.is_none() && deletion.marked.elapsed() >= grace;
            if due {
                deletion.confirmed = Some(SystemTime::now());
            }
            due
        };
        if confirm {
            let now = DeleteParams {
                grace_period_seconds: Some(0),
                ..DeleteParams::default()
            };
            match api.delete(&name, &now).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => panic!("confirm the deletion of {name}: {e}"),
            }
        }
        return;
    }
    let (known, finished, held) = {
        let played = lock(played);
        (
            played.running.contains_key(&name),
            played.finished.contains(&name),
            played.held.contains(&task),
        )
    };
    let bound = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_ref())
        .is_some();
    if !known && bound {
        // Bound before this player started (an earlier scenario's pod): not ours to play.
        return;
    }
    if !known {
        let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
            "target": {"kind": "Node", "name": NODE}});
        let bound: Result<Value, _> = api
            .create_subresource("binding", &name, &PostParams::default(), &binding)
            .await;
        bound.unwrap_or_else(|e| panic!("bind {name}: {e}"));
        report(
            api,
            &name,
            pod,
            "Running",
            json!({"running": {"startedAt": now()}}),
        )
        .await;
        lock(played).running.insert(name, task);
    } else if !finished && !held {
        let done = json!({"terminated": {"reason": "Completed", "exitCode": 0,
            "startedAt": now(), "finishedAt": now()}});
        report(api, &name, pod, "Succeeded", done).await;
        lock(played).finished.insert(name);
    }
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

/// Reports the pod's phase and its containers' state, as the kubelet does.
async fn report(api: &Api<Pod>, name: &str, pod: &Pod, phase: &str, state: Value) {
    let running = phase == "Running";
    let containers: Vec<Value> = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .map(|c| {
            json!({"name": c.name, "image": c.image, "imageID": "", "ready": running,
                   "started": running, "restartCount": 0, "state": state})
        })
        .collect();
    let ready = if running { "True" } else { "False" };
    let conditions: Vec<Value> = ["PodScheduled", "Initialized", "ContainersReady", "Ready"]
        .iter()
        .map(|t| {
            let status = if t.starts_with("PodSch") || *t == "Initialized" {
                "True"
            } else {
                ready
            };
            json!({"type": t, "status": status, "lastTransitionTime": now()})
        })
        .collect();
    let status = json!({"status": {"phase": phase, "startTime": now(), "hostIP": "127.0.0.1",
        "conditions": conditions, "containerStatuses": containers}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap_or_else(|e| panic!("report {phase} for {name}: {e}"));
}
