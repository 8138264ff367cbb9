//! Readiness of the release's workloads (Deployments, StatefulSets, DaemonSets), used by
//! `status` and by `install --wait`, which polls until every component is rolled out and hears of
//! each component whenever its state changes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::api::ListParams;
use kube::{Api, Client};
use serde::Serialize;

/// One workload's rollout state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WorkloadReadiness {
    pub component: String,
    pub kind: &'static str,
    pub name: String,
    pub ready: i32,
    pub desired: i32,
    /// All replicas ready and on the newest template.
    pub rolled_out: bool,
}

/// The label selector for everything in a release.
pub(crate) fn release_selector(release: &str) -> String {
    format!("app.kubernetes.io/instance={release}")
}

fn component_of(labels: Option<&BTreeMap<String, String>>, fallback: &str) -> String {
    labels
        .and_then(|l| l.get("app.kubernetes.io/component"))
        .cloned()
        .unwrap_or_else(|| fallback.to_string())
}

/// Deployment readiness: observed the latest generation, all replicas updated and available.
pub(crate) fn deployment_readiness(d: &Deployment) -> WorkloadReadiness {
    let name = d.metadata.name.clone().unwrap_or_default();
    let desired = d.spec.replicas.unwrap_or(1);
    let st = d.status.clone().unwrap_or_default();
    let observed = st.observed_generation >= d.metadata.generation;
    let ready = st.ready_replicas.unwrap_or(0);
    let rolled_out = observed
        && st.updated_replicas.unwrap_or(0) >= desired
        && st.available_replicas.unwrap_or(0) >= desired
        && st.replicas.unwrap_or(0) <= desired;
    WorkloadReadiness {
        component: component_of(d.metadata.labels.as_ref(), &name),
        kind: "Deployment",
        name,
        ready,
        desired,
        rolled_out,
    }
}

/// StatefulSet readiness: all replicas ready and on the current revision.
pub(crate) fn statefulset_readiness(s: &StatefulSet) -> WorkloadReadiness {
    let name = s.metadata.name.clone().unwrap_or_default();
    let desired = s.spec.replicas.unwrap_or(1);
    let st = s.status.clone().unwrap_or_default();
    let observed = st.observed_generation >= s.metadata.generation;
    let ready = st.ready_replicas.unwrap_or(0);
    let same_revision = st.update_revision.is_none() || st.update_revision == st.current_revision;
    WorkloadReadiness {
        component: component_of(s.metadata.labels.as_ref(), &name),
        kind: "StatefulSet",
        name,
        ready,
        desired,
        rolled_out: observed && ready >= desired && same_revision,
    }
}

/// DaemonSet readiness: every scheduled node runs an updated, available pod.
pub(crate) fn daemonset_readiness(d: &DaemonSet) -> WorkloadReadiness {
    let name = d.metadata.name.clone().unwrap_or_default();
    let st = d.status.clone().unwrap_or_default();
    let desired = st.desired_number_scheduled;
    WorkloadReadiness {
        component: component_of(d.metadata.labels.as_ref(), &name),
        kind: "DaemonSet",
        name,
        ready: st.number_ready,
        desired,
        rolled_out: st.observed_generation >= d.metadata.generation
            && st.updated_number_scheduled.unwrap_or(0) >= desired
            && st.number_available.unwrap_or(0) >= desired,
    }
}

/// Lists the release's workloads in `namespaces` and their readiness, sorted by component.
pub(crate) async fn observe(
    client: &Client,
    namespaces: &[String],
    release: &str,
) -> anyhow::Result<Vec<WorkloadReadiness>> {
    let lp = ListParams::default().labels(&release_selector(release));
    let mut out = Vec::new();
    for ns in namespaces {
        let deploys: Api<Deployment> = Api::namespaced(client.clone(), ns);
        out.extend(
            deploys
                .list(&lp)
                .await?
                .items
                .iter()
                .map(deployment_readiness),
        );
        let sets: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
        out.extend(
            sets.list(&lp)
                .await?
                .items
                .iter()
                .map(statefulset_readiness),
        );
        let daemons: Api<DaemonSet> = Api::namespaced(client.clone(), ns);
        out.extend(
            daemons
                .list(&lp)
                .await?
                .items
                .iter()
                .map(daemonset_readiness),
        );
    }
    out.sort_by(|a, b| (&a.component, &a.name).cmp(&(&b.component, &b.name)));
    Ok(out)
}

/// Polls until every workload is rolled out; calls `on_change` for a component whenever its state
/// changes.
/// Fails at the timeout naming the components still not ready.
pub(crate) async fn wait(
    client: &Client,
    namespaces: &[String],
    release: &str,
    timeout: Duration,
    mut on_change: impl FnMut(&WorkloadReadiness),
) -> anyhow::Result<Vec<WorkloadReadiness>> {
    let deadline = Instant::now() + timeout;
    let mut last: BTreeMap<String, (i32, i32, bool)> = BTreeMap::new();
    loop {
        let state = observe(client, namespaces, release).await?;
        for w in &state {
            let now = (w.ready, w.desired, w.rolled_out);
            if last.get(&w.name) != Some(&now) {
                on_change(w);
                last.insert(w.name.clone(), now);
            }
        }
        let pending: Vec<&str> = state
            .iter()
            .filter(|w| !w.rolled_out)
            .map(|w| w.name.as_str())
            .collect();
        if pending.is_empty() {
            return Ok(state);
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "timed out after {}s waiting for: {} (see `kubectl describe` and `kubectl get events -n {}`)",
                timeout.as_secs(),
                pending.join(", "),
                namespaces.first().map(String::as_str).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_is_rolled_out_only_when_all_replicas_are_new_and_available() {
        let mut d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "datajump-web", "generation": 2,
                         "labels": {"app.kubernetes.io/component": "web"}},
            "spec": {"replicas": 3, "selector": {}, "template": {}},
            "status": {"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3,
                       "availableReplicas": 3, "readyReplicas": 3}
        }))
        .unwrap();
        let r = deployment_readiness(&d);
        assert_eq!(
            (r.component.as_str(), r.ready, r.desired, r.rolled_out),
            ("web", 3, 3, false)
        );
        d.status.as_mut().unwrap().replicas = Some(3);
        assert!(deployment_readiness(&d).rolled_out);
    }

    #[test]
    fn statefulset_waits_for_the_update_revision() {
        let s: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "datajump-mysql", "generation": 1},
            "spec": {"replicas": 3, "selector": {}, "serviceName": "m", "template": {}},
            "status": {"observedGeneration": 1, "replicas": 3, "readyReplicas": 3,
                       "currentRevision": "a", "updateRevision": "b"}
        }))
        .unwrap();
        let r = statefulset_readiness(&s);
        assert_eq!(r.component, "datajump-mysql");
        assert!(!r.rolled_out);
    }
}
