//! Pod security rules, applied to every container and init container of every workload in every
//! environment. They match the Pod Security Admission `restricted` profile the namespaces enforce,
//! plus the platform's own rules (high UID, read-only root filesystem, resources, probes, pinned
//! images, service-account tokens only where the pod talks to the API).

use serde_json::Value;

use super::PolicyRule;
use super::exception::{self, EXCEPTION_ANNOTATION, Exceptions};
use super::workload::{Render, Workload};
use crate::model::Environment;
use crate::validate::{Problem, Rule, pointer};

/// The lowest UID a container may run as: above every UID a host or base image assigns.
pub(super) const MIN_UID: i64 = 10000;

/// A rule broken at a path, before exceptions are applied.
struct Finding {
    rule: PolicyRule,
    path: String,
    message: String,
}

pub(super) fn check(env: Environment, render: &Render<'_>) -> Vec<Problem> {
    let mut problems = Vec::new();
    for workload in &render.workloads {
        let exceptions = match exceptions(workload) {
            Ok(e) => e,
            Err(problem) => {
                problems.push(Problem::object(
                    env,
                    workload.obj,
                    Rule::Security,
                    problem.0,
                    problem.1,
                ));
                Exceptions::default()
            }
        };
        let findings = findings(workload, render);
        problems.extend(
            findings
                .into_iter()
                .filter(|f| !exceptions.covers(f.rule))
                .map(|f| {
                    let message = format!("[{}] {}", f.rule, f.message);
                    Problem::object(env, workload.obj, Rule::Security, f.path, message)
                }),
        );
    }
    problems
}

/// The exceptions declared on the pod template, or the (path, message) of a malformed one.
fn exceptions(workload: &Workload<'_>) -> Result<Exceptions, (String, String)> {
    let Some(value) = workload.pod_annotation(EXCEPTION_ANNOTATION) else {
        return Ok(Exceptions::default());
    };
    let path = pointer::push(
        &format!("{}/annotations", workload.pod_metadata_path),
        EXCEPTION_ANNOTATION,
    );
    match value.as_str() {
        Some(text) => exception::parse(text).map_err(|m| (path, m)),
        None => Err((path, "policy exception must be a string".to_string())),
    }
}

fn findings(workload: &Workload<'_>, render: &Render<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    pod_level(workload, &mut out);
    service_account_token(workload, render, &mut out);
    for (list, init) in [("containers", false), ("initContainers", true)] {
        let Some(containers) = workload.pod_spec.get(list).and_then(Value::as_array) else {
            continue;
        };
        for (index, container) in containers.iter().enumerate() {
            let c = Container {
                value: container,
                path: format!("{}/{list}/{index}", workload.pod_spec_path),
                name: container.get("name").and_then(Value::as_str).unwrap_or("?"),
                pod: workload.pod_spec,
            };
            container_rules(&c, &mut out);
            if workload.is_long_running() && !init {
                probes(&c, &mut out);
            }
        }
    }
    out
}

/// One container, with its pod for settings that may live at either level.
struct Container<'a> {
    value: &'a Value,
    path: String,
    name: &'a str,
    pod: &'a Value,
}

impl Container<'_> {
    fn security(&self, field: &str) -> Option<&Value> {
        self.value.get("securityContext")?.get(field)
    }

    /// A securityContext field set on the container, else on the pod.
    fn effective(&self, field: &str) -> Option<&Value> {
        self.security(field)
            .filter(|v| !v.is_null())
            .or_else(|| self.pod.get("securityContext")?.get(field))
            .filter(|v| !v.is_null())
    }

    fn field_path(&self, field: &str) -> String {
        format!("{}/securityContext/{field}", self.path)
    }

    fn finding(&self, rule: PolicyRule, field: &str, message: String) -> Finding {
        Finding {
            rule,
            path: self.field_path(field),
            message,
        }
    }
}

fn container_rules(c: &Container<'_>, out: &mut Vec<Finding>) {
    let name = c.name;
    if c.effective("runAsNonRoot").and_then(Value::as_bool) != Some(true) {
        let message = format!(
            "container {name:?} must set runAsNonRoot: true (container or pod securityContext)"
        );
        out.push(c.finding(PolicyRule::RunAsNonRoot, "runAsNonRoot", message));
    }
    match c.effective("runAsUser").and_then(Value::as_i64) {
        Some(uid) if uid >= MIN_UID => {}
        Some(uid) => out.push(c.finding(
            PolicyRule::RunAsNonRoot,
            "runAsUser",
            format!("container {name:?} runs as UID {uid}; use a UID >= {MIN_UID}"),
        )),
        None => out.push(c.finding(
            PolicyRule::RunAsNonRoot,
            "runAsUser",
            format!(
                "container {name:?} must set runAsUser >= {MIN_UID} (container or pod securityContext); the image's user is unknown"
            ),
        )),
    }
    if c.security("readOnlyRootFilesystem")
        .and_then(Value::as_bool)
        != Some(true)
    {
        let message = format!(
            "container {name:?} must set readOnlyRootFilesystem: true (mount an emptyDir where it writes)"
        );
        out.push(c.finding(
            PolicyRule::ReadOnlyRootFilesystem,
            "readOnlyRootFilesystem",
            message,
        ));
    }
    if c.security("allowPrivilegeEscalation")
        .and_then(Value::as_bool)
        != Some(false)
    {
        let message = format!("container {name:?} must set allowPrivilegeEscalation: false");
        out.push(c.finding(
            PolicyRule::PrivilegeEscalation,
            "allowPrivilegeEscalation",
            message,
        ));
    }
    let drops_all = c
        .security("capabilities")
        .and_then(|caps| caps.get("drop"))
        .and_then(Value::as_array)
        .is_some_and(|drop| drop.iter().any(|d| d == "ALL"));
    if !drops_all {
        let message =
            format!("container {name:?} must drop all capabilities (capabilities.drop: [ALL])");
        out.push(c.finding(PolicyRule::Capabilities, "capabilities/drop", message));
    }
    // Pod Security `restricted` lets a container add back NET_BIND_SERVICE and nothing else.
    let added: Vec<&str> = c
        .security("capabilities")
        .and_then(|caps| caps.get("add"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|cap| *cap != "NET_BIND_SERVICE")
        .collect();
    if !added.is_empty() {
        let message = format!(
            "container {name:?} must not add capabilities other than NET_BIND_SERVICE (adds {})",
            added.join(", ")
        );
        out.push(c.finding(PolicyRule::Capabilities, "capabilities/add", message));
    }
    let seccomp = c
        .effective("seccompProfile")
        .and_then(|p| p.get("type"))
        .and_then(Value::as_str);
    if seccomp != Some("RuntimeDefault") {
        let message = format!(
            "container {name:?} must use seccompProfile type RuntimeDefault (container or pod securityContext)"
        );
        out.push(c.finding(PolicyRule::Seccomp, "seccompProfile/type", message));
    }
    if c.security("privileged").and_then(Value::as_bool) == Some(true) {
        let message = format!("container {name:?} must not be privileged");
        out.push(c.finding(PolicyRule::Privileged, "privileged", message));
    }
    resources(c, out);
    image(c, out);
    host_ports(c, out);
}

fn host_ports(c: &Container<'_>, out: &mut Vec<Finding>) {
    let ports = c.value.get("ports").and_then(Value::as_array);
    for (index, port) in ports.into_iter().flatten().enumerate() {
        if port
            .get("hostPort")
            .and_then(Value::as_i64)
            .is_some_and(|p| p != 0)
        {
            out.push(Finding {
                rule: PolicyRule::HostPort,
                path: format!("{}/ports/{index}/hostPort", c.path),
                message: format!("container {:?} must not bind a host port", c.name),
            });
        }
    }
}

fn resources(c: &Container<'_>, out: &mut Vec<Finding>) {
    let missing: Vec<String> = ["requests", "limits"]
        .iter()
        .flat_map(|section| ["cpu", "memory"].map(|r| (*section, r)))
        .filter(|(section, resource)| {
            c.value
                .get("resources")
                .and_then(|r| r.get(section))
                .and_then(|s| s.get(resource))
                .is_none_or(Value::is_null)
        })
        .map(|(section, resource)| format!("{section}.{resource}"))
        .collect();
    if !missing.is_empty() {
        out.push(Finding {
            rule: PolicyRule::Resources,
            path: format!("{}/resources", c.path),
            message: format!("container {:?} must set {}", c.name, missing.join(", ")),
        });
    }
}

fn probes(c: &Container<'_>, out: &mut Vec<Finding>) {
    for probe in ["livenessProbe", "readinessProbe"] {
        if c.value.get(probe).is_none_or(Value::is_null) {
            out.push(Finding {
                rule: PolicyRule::Probes,
                path: format!("{}/{probe}", c.path),
                message: format!("long-running container {:?} must have a {probe}", c.name),
            });
        }
    }
}

fn image(c: &Container<'_>, out: &mut Vec<Finding>) {
    let image = c
        .value
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if let Some(problem) = image_problem(image) {
        out.push(Finding {
            rule: PolicyRule::ImageTag,
            path: format!("{}/image", c.path),
            message: format!("container {:?}: {problem}", c.name),
        });
    }
}

/// Why an image reference is not pinned, if it is not: it needs a digest, or a tag that is not
/// `latest` (no tag means `latest`).
pub(super) fn image_problem(image: &str) -> Option<String> {
    if image.is_empty() {
        return Some("has no image".to_string());
    }
    if image.contains('@') {
        return None;
    }
    let last_segment = image.rsplit('/').next().unwrap_or(image);
    match last_segment.split_once(':') {
        None | Some((_, "")) => Some(format!(
            "image {image:?} has no tag (it would pull latest); pin a version tag or a digest"
        )),
        Some((_, "latest")) => Some(format!(
            "image {image:?} uses the latest tag; pin a version tag or a digest"
        )),
        Some(_) => None,
    }
}

fn pod_level(workload: &Workload<'_>, out: &mut Vec<Finding>) {
    let spec = workload.pod_spec;
    let base = workload.pod_spec_path;
    for (field, rule) in [
        ("hostNetwork", PolicyRule::HostNetwork),
        ("hostPID", PolicyRule::HostPid),
        ("hostIPC", PolicyRule::HostIpc),
    ] {
        if spec.get(field).and_then(Value::as_bool) == Some(true) {
            out.push(Finding {
                rule,
                path: format!("{base}/{field}"),
                message: format!("pods must not use {field}"),
            });
        }
    }
    // Pod Security `restricted` refuses an explicit `runAsNonRoot: false` on the pod even when
    // every container sets true.
    if spec
        .pointer("/securityContext/runAsNonRoot")
        .and_then(Value::as_bool)
        == Some(false)
    {
        out.push(Finding {
            rule: PolicyRule::RunAsNonRoot,
            path: format!("{base}/securityContext/runAsNonRoot"),
            message: "the pod securityContext sets runAsNonRoot false, which Pod Security restricted refuses even when every container sets true".into(),
        });
    }
    // A container's own runAsUser wins over the pod's, but Pod Security `restricted` refuses
    // runAsUser 0 at either level, so the pod's is checked on its own too.
    if spec
        .pointer("/securityContext/runAsUser")
        .and_then(Value::as_i64)
        == Some(0)
    {
        out.push(Finding {
            rule: PolicyRule::RunAsNonRoot,
            path: format!("{base}/securityContext/runAsUser"),
            message: format!(
                "the pod securityContext sets runAsUser 0 (root), which Pod Security restricted refuses even when every container overrides it; use a UID >= {MIN_UID}"
            ),
        });
    }
    let volumes = spec.get("volumes").and_then(Value::as_array);
    for (index, volume) in volumes.into_iter().flatten().enumerate() {
        if volume.get("hostPath").is_some_and(|h| !h.is_null()) {
            let name = volume.get("name").and_then(Value::as_str).unwrap_or("?");
            out.push(Finding {
                rule: PolicyRule::HostPath,
                path: format!("{base}/volumes/{index}/hostPath"),
                message: format!("volume {name:?} must not be a hostPath"),
            });
        }
    }
}

/// A token is mounted unless the pod, or else its ServiceAccount, says
/// `automountServiceAccountToken: false`, and also when a projected volume carries one; that is
/// only justified when a binding in this render gives the account a role, i.e. the pod talks to
/// the API server.
fn service_account_token(workload: &Workload<'_>, render: &Render<'_>, out: &mut Vec<Finding>) {
    let spec = workload.pod_spec;
    let account = spec
        .get("serviceAccountName")
        .or_else(|| spec.get("serviceAccount"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let mounted = spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| {
            render
                .service_account(account, workload.namespace)?
                .get("automountServiceAccountToken")?
                .as_bool()
        })
        .unwrap_or(true)
        || projects_token(spec);
    if mounted && !render.is_bound(account, workload.namespace) {
        out.push(Finding {
            rule: PolicyRule::ServiceAccountToken,
            path: format!("{}/automountServiceAccountToken", workload.pod_spec_path),
            message: format!(
                "the pod mounts a token for ServiceAccount {account:?}, which no RoleBinding or ClusterRoleBinding in this render binds; set automountServiceAccountToken: false"
            ),
        });
    }
}

/// Whether a projected volume of the pod carries a service account token.
fn projects_token(spec: &Value) -> bool {
    spec.get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.pointer("/projected/sources")?.as_array())
        .flatten()
        .any(|source| source.get("serviceAccountToken").is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projected_tokens_count_as_mounted() {
        let with = serde_json::json!({"volumes": [{"name": "t", "projected": {"sources": [
            {"configMap": {"name": "kube-root-ca.crt"}},
            {"serviceAccountToken": {"path": "token"}}
        ]}}]});
        let without = serde_json::json!({"volumes": [{"name": "c", "projected": {"sources": [
            {"configMap": {"name": "kube-root-ca.crt"}}
        ]}}]});
        assert!(projects_token(&with));
        assert!(!projects_token(&without));
        assert!(!projects_token(&serde_json::json!({})));
    }

    #[test]
    fn image_pinning() {
        assert!(image_problem("harbor.example.com:5000/datajump/web:1.4.2").is_none());
        assert!(image_problem("harbor.example.com:5000/datajump/web@sha256:abc").is_none());
        assert!(
            image_problem("harbor.example.com:5000/datajump/web")
                .unwrap()
                .contains("no tag")
        );
        assert!(image_problem("web:latest").unwrap().contains("latest tag"));
        assert!(image_problem("").is_some());
    }
}
