//! The policy rules: each security rule fires on a pod template that breaks it and not on the
//! good fixture; exceptions waive only the rules they name; availability rules apply to staging
//! and prod only; conventions apply everywhere.

use chart_gen::model::Environment;
use chart_gen::validate::{Problem, Rule, parse_manifests, policy};
use serde_json::{Value, json};

fn render() -> Vec<Value> {
    let path = format!(
        "{}/tests/fixtures/validate/prod-render.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    parse_manifests(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn find<'a>(objects: &'a mut [Value], kind: &str, name: &str) -> &'a mut Value {
    objects
        .iter_mut()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind}/{name} in fixture"))
}

/// The parent object of a JSON pointer's target and the target's (unescaped) key.
fn parent<'a>(
    obj: &'a mut Value,
    pointer: &str,
) -> (&'a mut serde_json::Map<String, Value>, String) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let key = key.replace("~1", "/").replace("~0", "~");
    let parent = obj
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("{parent} exists"));
    (parent.as_object_mut().unwrap(), key)
}

fn set(obj: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = parent(obj, pointer);
    parent.insert(key, value);
}

fn remove(obj: &mut Value, pointer: &str) {
    let (parent, key) = parent(obj, pointer);
    assert!(parent.remove(&key).is_some(), "{pointer} existed");
}

fn lines(problems: &[Problem]) -> Vec<String> {
    problems.iter().map(ToString::to_string).collect()
}

/// A change that breaks one rule.
type Edit<'a> = Box<dyn FnOnce(&mut Value) + 'a>;

const WEB_CONTAINER: &str = "/spec/template/spec/containers/0";
const WEB_POD: &str = "/spec/template/spec";

/// Breaks the web Deployment with `edit` and returns the problems found in `env`.
fn web_problems(env: Environment, edit: impl FnOnce(&mut Value)) -> Vec<Problem> {
    let mut objects = render();
    edit(find(&mut objects, "Deployment", "datajump-web"));
    policy::check(env, &objects)
}

#[test]
fn the_good_render_passes_in_every_environment() {
    let objects = render();
    for env in Environment::ALL {
        let problems = policy::check(env, &objects);
        assert!(problems.is_empty(), "{env}: {:#?}", lines(&problems));
    }
}

#[test]
fn each_security_rule_fires_with_its_name_and_path() {
    let c = WEB_CONTAINER;
    let cases: Vec<(&str, Edit<'_>, String)> = vec![
        (
            "run-as-non-root",
            Box::new(|d| {
                set(
                    d,
                    &format!("{c}/securityContext/runAsNonRoot"),
                    json!(false),
                )
            }),
            format!("{WEB_POD}/containers/0/securityContext/runAsNonRoot"),
        ),
        (
            // Refused at pod level even when the container says true (Pod Security does).
            "run-as-non-root",
            Box::new(|d| {
                set(
                    d,
                    &format!("{WEB_POD}/securityContext/runAsNonRoot"),
                    json!(false),
                );
                set(d, &format!("{c}/securityContext/runAsNonRoot"), json!(true));
            }),
            format!("{WEB_POD}/securityContext/runAsNonRoot"),
        ),
        (
            "run-as-non-root",
            Box::new(|d| {
                set(
                    d,
                    &format!("{WEB_POD}/securityContext/runAsUser"),
                    json!(1000),
                )
            }),
            format!("{c}/securityContext/runAsUser"),
        ),
        (
            "read-only-root-filesystem",
            Box::new(|d| remove(d, &format!("{c}/securityContext/readOnlyRootFilesystem"))),
            format!("{c}/securityContext/readOnlyRootFilesystem"),
        ),
        (
            "privilege-escalation",
            Box::new(|d| {
                set(
                    d,
                    &format!("{c}/securityContext/allowPrivilegeEscalation"),
                    json!(true),
                )
            }),
            format!("{c}/securityContext/allowPrivilegeEscalation"),
        ),
        (
            "capabilities",
            Box::new(|d| {
                set(
                    d,
                    &format!("{c}/securityContext/capabilities"),
                    json!({"drop": ["NET_RAW"]}),
                )
            }),
            format!("{c}/securityContext/capabilities/drop"),
        ),
        (
            "seccomp",
            Box::new(|d| {
                set(
                    d,
                    &format!("{WEB_POD}/securityContext/seccompProfile"),
                    json!({"type": "Unconfined"}),
                )
            }),
            format!("{c}/securityContext/seccompProfile/type"),
        ),
        (
            "privileged",
            Box::new(|d| set(d, &format!("{c}/securityContext/privileged"), json!(true))),
            format!("{c}/securityContext/privileged"),
        ),
        (
            "resources",
            Box::new(|d| remove(d, &format!("{c}/resources/limits/cpu"))),
            format!("{c}/resources"),
        ),
        (
            "probes",
            Box::new(|d| remove(d, &format!("{c}/readinessProbe"))),
            format!("{c}/readinessProbe"),
        ),
        (
            "image-tag",
            Box::new(|d| {
                set(
                    d,
                    &format!("{c}/image"),
                    json!("harbor.datajump.io/datajump/web:latest"),
                )
            }),
            format!("{c}/image"),
        ),
        (
            "image-tag",
            Box::new(|d| {
                set(
                    d,
                    &format!("{c}/image"),
                    json!("harbor.datajump.io:443/datajump/web"),
                )
            }),
            format!("{c}/image"),
        ),
        (
            "host-network",
            Box::new(|d| set(d, &format!("{WEB_POD}/hostNetwork"), json!(true))),
            format!("{WEB_POD}/hostNetwork"),
        ),
        (
            "host-pid",
            Box::new(|d| set(d, &format!("{WEB_POD}/hostPID"), json!(true))),
            format!("{WEB_POD}/hostPID"),
        ),
        (
            "host-path",
            Box::new(|d| {
                set(
                    d,
                    &format!("{WEB_POD}/volumes"),
                    json!([{"name": "logs", "hostPath": {"path": "/var/log"}}]),
                )
            }),
            format!("{WEB_POD}/volumes/0/hostPath"),
        ),
        (
            "host-ipc",
            Box::new(|d| set(d, &format!("{WEB_POD}/hostIPC"), json!(true))),
            format!("{WEB_POD}/hostIPC"),
        ),
        (
            "host-port",
            Box::new(|d| set(d, &format!("{c}/ports/0/hostPort"), json!(8080))),
            format!("{c}/ports/0/hostPort"),
        ),
        (
            "capabilities",
            Box::new(|d| {
                set(
                    d,
                    &format!("{c}/securityContext/capabilities/add"),
                    json!(["NET_BIND_SERVICE", "NET_ADMIN"]),
                )
            }),
            format!("{c}/securityContext/capabilities/add"),
        ),
        (
            "run-as-non-root",
            Box::new(|d| {
                // Root at pod level is refused even when the container overrides it.
                set(d, &format!("{WEB_POD}/securityContext/runAsUser"), json!(0));
                set(d, &format!("{c}/securityContext/runAsUser"), json!(20000));
            }),
            format!("{WEB_POD}/securityContext/runAsUser"),
        ),
        (
            "service-account-token",
            Box::new(|d| remove(d, &format!("{WEB_POD}/automountServiceAccountToken"))),
            format!("{WEB_POD}/automountServiceAccountToken"),
        ),
    ];
    for (rule, edit, path) in cases {
        let problems = web_problems(Environment::Dev, edit);
        assert_eq!(problems.len(), 1, "{rule}: {:#?}", lines(&problems));
        let p = &problems[0];
        assert_eq!(p.rule, Rule::Security);
        assert_eq!(p.path, path, "{rule}");
        assert!(
            p.message.starts_with(&format!("[{rule}] ")),
            "{}",
            p.message
        );
        assert!(
            p.to_string().starts_with("dev: Deployment/datajump-web: "),
            "{p}"
        );
    }
}

#[test]
fn container_settings_override_pod_settings() {
    // The pod says a low UID, the container overrides with a high one: compliant. (A pod-level
    // root UID is refused on its own: Pod Security restricted forbids runAsUser 0 anywhere.)
    let problems = web_problems(Environment::Dev, |d| {
        set(
            d,
            &format!("{WEB_POD}/securityContext/runAsUser"),
            json!(1000),
        );
        set(
            d,
            &format!("{WEB_CONTAINER}/securityContext/runAsUser"),
            json!(20000),
        );
    });
    assert!(problems.is_empty(), "{:#?}", lines(&problems));
}

#[test]
fn init_containers_are_checked_but_need_no_probes() {
    let mut objects = render();
    let sts = find(&mut objects, "StatefulSet", "datajump-metadata");
    remove(
        sts,
        "/spec/template/spec/initContainers/0/securityContext/capabilities",
    );
    let problems = policy::check(Environment::Dev, &objects);
    assert_eq!(
        lines(&problems),
        vec![
            "dev: StatefulSet/datajump-metadata: /spec/template/spec/initContainers/0/securityContext/capabilities/drop: [capabilities] container \"migrate\" must drop all capabilities (capabilities.drop: [ALL])"
        ]
    );
}

#[test]
fn jobs_and_test_pods_need_no_probes_but_cronjobs_are_checked() {
    let mut objects = render();
    let cron = find(&mut objects, "CronJob", "datajump-backup");
    set(
        cron,
        "/spec/jobTemplate/spec/template/spec/containers/0/image",
        json!("harbor.datajump.io/datajump/backup"),
    );
    let problems = policy::check(Environment::Test, &objects);
    assert_eq!(problems.len(), 1, "{:#?}", lines(&problems));
    assert_eq!(
        problems[0].path,
        "/spec/jobTemplate/spec/template/spec/containers/0/image"
    );
}

#[test]
fn a_bound_service_account_may_mount_its_token_and_an_unbound_one_may_not() {
    // The scheduler mounts its token and is bound by a RoleBinding: compliant (good render).
    let mut objects = render();
    objects
        .retain(|o| !(o["kind"] == "RoleBinding" && o["metadata"]["name"] == "datajump-scheduler"));
    let problems = policy::check(Environment::Dev, &objects);
    assert_eq!(problems.len(), 1, "{:#?}", lines(&problems));
    assert!(problems[0].message.starts_with("[service-account-token]"));
    assert!(problems[0].message.contains("\"datajump-scheduler\""));

    // A ServiceAccount that disables automount covers pods that do not say anything.
    let mut objects = render();
    let web = find(&mut objects, "Deployment", "datajump-web");
    remove(web, &format!("{WEB_POD}/automountServiceAccountToken"));
    set(
        web,
        &format!("{WEB_POD}/serviceAccountName"),
        json!("datajump-web"),
    );
    let mut sa = objects[0].clone();
    sa["metadata"]["name"] = json!("datajump-web");
    sa["automountServiceAccountToken"] = json!(false);
    objects.push(sa);
    assert!(policy::check(Environment::Dev, &objects).is_empty());
}

#[test]
fn exceptions_waive_only_the_named_rules() {
    // The fluent-bit DaemonSet runs as root from a hostPath under a named exception (good render).
    let mut objects = render();
    let fluent = find(&mut objects, "DaemonSet", "datajump-fluent-bit");
    set(fluent, "/spec/template/spec/hostNetwork", json!(true));
    let problems = policy::check(Environment::Dev, &objects);
    assert_eq!(problems.len(), 1, "{:#?}", lines(&problems));
    assert!(problems[0].message.starts_with("[host-network]"));

    // Without the exception, the root user (pod and container) and the hostPath are reported.
    let mut objects = render();
    let fluent = find(&mut objects, "DaemonSet", "datajump-fluent-bit");
    remove(fluent, "/spec/template/metadata/annotations");
    let rules: Vec<String> = policy::check(Environment::Dev, &objects)
        .iter()
        .map(|p| p.message.split(']').next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        rules,
        vec![
            "[run-as-non-root",
            "[host-path",
            "[run-as-non-root",
            "[run-as-non-root"
        ]
    );
}

#[test]
fn an_exception_without_a_reason_is_a_problem_and_waives_nothing() {
    let mut objects = render();
    let fluent = find(&mut objects, "DaemonSet", "datajump-fluent-bit");
    set(
        fluent,
        "/spec/template/metadata/annotations/datajump.io~1policy-exception",
        json!("run-as-non-root,host-path"),
    );
    let problems = policy::check(Environment::Dev, &objects);
    let first = &problems[0];
    assert_eq!(
        first.path,
        "/spec/template/metadata/annotations/datajump.io~1policy-exception"
    );
    assert!(first.message.contains("has no reason"), "{}", first.message);
    assert_eq!(problems.len(), 5, "{:#?}", lines(&problems));

    let fluent = find(&mut objects, "DaemonSet", "datajump-fluent-bit");
    set(
        fluent,
        "/spec/template/metadata/annotations/datajump.io~1policy-exception",
        json!("run-as-root: needs it"),
    );
    let problems = policy::check(Environment::Dev, &objects);
    assert!(
        problems[0]
            .message
            .contains("unknown policy rule \"run-as-root\""),
        "{}",
        problems[0]
    );
}

#[test]
fn multi_replica_workloads_need_a_pdb_in_staging_and_prod_only() {
    let mut objects = render();
    objects.retain(|o| {
        !(o["kind"] == "PodDisruptionBudget" && o["metadata"]["name"] == "datajump-web")
    });
    // The HPA keeps web at 5 replicas at least.
    for env in [Environment::Staging, Environment::Prod] {
        let problems = policy::check(env, &objects);
        assert_eq!(
            lines(&problems),
            vec![format!(
                "{env}: Deployment/datajump-web: /spec/replicas: an HPA keeps at least 5 replicas but no PodDisruptionBudget selects its pods"
            )]
        );
        assert_eq!(problems[0].rule, Rule::Availability);
    }
    for env in [Environment::Dev, Environment::Test] {
        assert!(policy::check(env, &objects).is_empty(), "{env}");
    }
    // A single replica needs no PDB.
    let hpa = find(&mut objects, "HorizontalPodAutoscaler", "datajump-web");
    set(hpa, "/spec/minReplicas", json!(1));
    assert!(policy::check(Environment::Prod, &objects).is_empty());
}

#[test]
fn a_pdb_selecting_other_pods_does_not_count() {
    let mut objects = render();
    let pdb = find(&mut objects, "PodDisruptionBudget", "datajump-scheduler");
    set(
        pdb,
        "/spec/selector/matchLabels/app.kubernetes.io~1component",
        json!("web"),
    );
    let problems = policy::check(Environment::Staging, &objects);
    assert_eq!(problems.len(), 1, "{:#?}", lines(&problems));
    assert!(
        problems[0].message.starts_with("it runs 3 replicas"),
        "{}",
        problems[0]
    );
}

#[test]
fn memory_overcommit_is_refused_in_staging_and_prod() {
    let edit = |d: &mut Value| {
        set(
            d,
            &format!("{WEB_CONTAINER}/resources/limits/memory"),
            json!("1Gi"),
        )
    };
    let problems = web_problems(Environment::Staging, edit);
    assert_eq!(problems.len(), 1, "{:#?}", lines(&problems));
    assert_eq!(
        problems[0].path,
        format!("{WEB_CONTAINER}/resources/requests/memory")
    );
    assert!(
        problems[0]
            .message
            .contains("requests 512Mi of memory but is limited to 1Gi")
    );
    assert!(web_problems(Environment::Test, edit).is_empty());
    // 1Gi and 1024Mi are the same amount (the scheduler in the fixture).
}

#[test]
fn prod_scheduler_must_spread_over_hosts_and_zones() {
    let mut objects = render();
    let scheduler = find(&mut objects, "Deployment", "datajump-scheduler");
    remove(scheduler, "/spec/template/spec/affinity");
    remove(scheduler, "/spec/template/spec/topologySpreadConstraints");
    let problems = policy::check(Environment::Prod, &objects);
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "/spec/template/spec/affinity/podAntiAffinity",
            "/spec/template/spec/topologySpreadConstraints"
        ]
    );
    assert!(policy::check(Environment::Staging, &objects).is_empty());
}

#[test]
fn prod_needs_a_default_deny_network_policy() {
    let mut objects = render();
    let deny = find(&mut objects, "NetworkPolicy", "datajump-default-deny");
    set(deny, "/spec/policyTypes", json!(["Ingress"]));
    let problems = policy::check(Environment::Prod, &objects);
    assert_eq!(problems.len(), 1, "{:#?}", lines(&problems));
    assert!(
        problems[0]
            .to_string()
            .starts_with("prod: no default-deny NetworkPolicy")
    );
    assert!(policy::check(Environment::Staging, &objects).is_empty());
}

#[test]
fn labels_and_namespaces_are_required_on_every_object() {
    let mut objects = render();
    let cm = find(&mut objects, "ConfigMap", "datajump-config");
    remove(cm, "/metadata/labels/helm.sh~1chart");
    remove(cm, "/metadata/labels/app.kubernetes.io~1version");
    remove(cm, "/metadata/namespace");
    // Cluster-scoped objects need no namespace.
    let role = find(&mut objects, "ClusterRole", "datajump-fluent-bit");
    assert!(role["metadata"].get("namespace").is_none());
    let problems = policy::check(Environment::Dev, &objects);
    assert_eq!(
        lines(&problems),
        vec![
            "dev: ConfigMap/datajump-config: /metadata/labels: missing label(s) app.kubernetes.io/version, helm.sh/chart",
            "dev: ConfigMap/datajump-config: /metadata/namespace: namespaced object without metadata.namespace",
        ]
    );
    assert!(problems.iter().all(|p| p.rule == Rule::Convention));
}

#[test]
fn crds_need_only_the_labels_that_do_not_name_a_release() {
    let crd_labels = |labels: Value| {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "workflows.datajump.io", "labels": labels}
        })
    };
    let shared = json!({
        "app.kubernetes.io/name": "datajump",
        "app.kubernetes.io/version": "1.4.2",
        "app.kubernetes.io/component": "scheduler",
        "app.kubernetes.io/part-of": "datajump",
        "app.kubernetes.io/managed-by": "Helm"
    });
    assert!(policy::check(Environment::Dev, &[crd_labels(shared)]).is_empty());
    let problems = policy::check(
        Environment::Dev,
        &[crd_labels(json!({"app.kubernetes.io/name": "datajump"}))],
    );
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0]
            .message
            .ends_with("app.kubernetes.io/managed-by"),
        "{}",
        problems[0]
    );
}
