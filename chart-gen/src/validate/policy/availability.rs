//! Availability rules for the production-grade environments (staging and prod):
//! - every multi-replica Deployment/StatefulSet (by `replicas` or by an HPA's `minReplicas`) is
//!   selected by a PodDisruptionBudget, so node drains cannot take all replicas at once;
//! - memory requests equal memory limits (no memory overcommit: a node under memory pressure
//!   kills overcommitted pods first);
//! - in prod, the scheduler master spreads over hosts (required pod anti-affinity) and zones
//!   (topology spread), and a default-deny NetworkPolicy exists.

use serde_json::Value;

use super::selector;
use super::workload::{Render, Workload, namespace, same_namespace};
use crate::model::Environment;
use crate::model::quantity::same_amount;
use crate::validate::{Problem, Rule};

const HOSTNAME: &str = "kubernetes.io/hostname";
const ZONE: &str = "topology.kubernetes.io/zone";
const COMPONENT: &str = "app.kubernetes.io/component";

pub(super) fn check(env: Environment, render: &Render<'_>) -> Vec<Problem> {
    let mut problems = Vec::new();
    for workload in &render.workloads {
        pdb_coverage(env, workload, render, &mut problems);
        memory_overcommit(env, workload, &mut problems);
        if env == Environment::Prod && is_scheduler(workload) {
            scheduler_spread(env, workload, &mut problems);
        }
    }
    if env == Environment::Prod && !render.network_policies.iter().any(|np| is_default_deny(np)) {
        problems.push(Problem::render(
            env,
            Rule::Availability,
            "no default-deny NetworkPolicy (empty podSelector, policyTypes Ingress and Egress, no rules) in the prod render",
        ));
    }
    problems
}

fn pdb_coverage(env: Environment, w: &Workload<'_>, render: &Render<'_>, out: &mut Vec<Problem>) {
    if !matches!(w.kind, "Deployment" | "StatefulSet") {
        return;
    }
    let hpa_min = render
        .hpas
        .iter()
        .filter(|hpa| targets(hpa, w))
        .map(|hpa| {
            hpa.pointer("/spec/minReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(1)
        })
        .max();
    let replicas = w.replicas().max(hpa_min.unwrap_or(0));
    if replicas <= 1 {
        return;
    }
    let covered = render.pdbs.iter().any(|pdb| {
        same_namespace(namespace(pdb), w.namespace)
            && selector::matches(pdb.pointer("/spec/selector"), w.pod_labels())
    });
    if !covered {
        let source = match hpa_min {
            Some(min) if min > 1 => format!("an HPA keeps at least {min} replicas"),
            _ => format!("it runs {replicas} replicas"),
        };
        out.push(Problem::object(
            env,
            w.obj,
            Rule::Availability,
            "/spec/replicas",
            format!("{source} but no PodDisruptionBudget selects its pods"),
        ));
    }
}

/// Whether an HPA's scaleTargetRef names this workload.
fn targets(hpa: &Value, w: &Workload<'_>) -> bool {
    let target = |field: &str| {
        hpa.pointer(&format!("/spec/scaleTargetRef/{field}"))
            .and_then(Value::as_str)
    };
    target("kind") == Some(w.kind)
        && target("name") == Some(w.name)
        && same_namespace(namespace(hpa), w.namespace)
}

fn memory_overcommit(env: Environment, w: &Workload<'_>, out: &mut Vec<Problem>) {
    for list in ["containers", "initContainers"] {
        let containers = w.pod_spec.get(list).and_then(Value::as_array);
        for (index, container) in containers.into_iter().flatten().enumerate() {
            let memory = |section: &str| {
                let value = container.get("resources")?.get(section)?.get("memory")?;
                match value {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                }
            };
            let (Some(request), Some(limit)) = (memory("requests"), memory("limits")) else {
                continue; // a missing value is the security rule's finding
            };
            if !same_amount(&request, &limit) {
                let name = container.get("name").and_then(Value::as_str).unwrap_or("?");
                out.push(Problem::object(
                    env,
                    w.obj,
                    Rule::Availability,
                    format!("{}/{list}/{index}/resources/requests/memory", w.pod_spec_path),
                    format!(
                        "container {name:?} requests {request} of memory but is limited to {limit}; {env} does not overcommit memory: set them equal"
                    ),
                ));
            }
        }
    }
}

fn is_scheduler(w: &Workload<'_>) -> bool {
    let component = |labels: Option<&serde_json::Map<String, Value>>| {
        labels
            .and_then(|l| l.get(COMPONENT))
            .and_then(Value::as_str)
            == Some("scheduler")
    };
    w.kind == "Deployment"
        && (component(w.pod_labels())
            || component(w.obj.pointer("/metadata/labels").and_then(Value::as_object)))
}

fn scheduler_spread(env: Environment, w: &Workload<'_>, out: &mut Vec<Problem>) {
    let spec = w.pod_spec;
    let anti_affinity = spec
        .pointer("/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution")
        .and_then(Value::as_array)
        .is_some_and(|terms| {
            terms
                .iter()
                .any(|t| t.get("topologyKey").and_then(Value::as_str) == Some(HOSTNAME))
        });
    if !anti_affinity {
        out.push(Problem::object(
            env,
            w.obj,
            Rule::Availability,
            format!("{}/affinity/podAntiAffinity", w.pod_spec_path),
            format!("the prod scheduler master needs required pod anti-affinity on {HOSTNAME} so no two masters share a node"),
        ));
    }
    let zone_spread = spec
        .get("topologySpreadConstraints")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.get("topologyKey").and_then(Value::as_str) == Some(ZONE))
        });
    if !zone_spread {
        out.push(Problem::object(
            env,
            w.obj,
            Rule::Availability,
            format!("{}/topologySpreadConstraints", w.pod_spec_path),
            format!("the prod scheduler master needs a topologySpreadConstraint on {ZONE}"),
        ));
    }
}

/// Empty podSelector, both policy types, and no allow rules.
fn is_default_deny(np: &Value) -> bool {
    let spec = np.get("spec");
    let selects_all = selector::is_empty(spec.and_then(|s| s.get("podSelector")));
    let types: Vec<&str> = spec
        .and_then(|s| s.get("policyTypes"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let no_rules = |key: &str| {
        spec.and_then(|s| s.get(key))
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
    };
    selects_all
        && types.contains(&"Ingress")
        && types.contains(&"Egress")
        && no_rules("ingress")
        && no_rules("egress")
}
