//! Task pods as workloads on the real API server: a release whose values define a pod preset
//! (`scheduler.executor.podPresets`), the real scheduler binary reading it from the chart's
//! ConfigMap, and a workflow whose task mounts a ConfigMap, an emptyDir and a claim, in a
//! namespace that enforces Pod Security `restricted`.
//!
//! What it proves: the API server admits the task pods under `restricted` with everything the
//! workflow and the preset declared (volumes, mounts, node selector, toleration, labels, service
//! account, security context) on the Pod objects the Job controller created, and the run
//! succeeds; a task naming a preset the scheduler does not know fails with the known names.
//! The fake kubelet binds pods round robin and does not evaluate nodeSelector or tolerations:
//! that the pod lands on the selected pool is the kube-scheduler's job, not shown here.

use std::time::Duration;

use datajump_tests::cluster::{self, Cluster, wait_until};
use datajump_tests::plugin::{install_dev_with, submit_workflow};
use datajump_tests::scheduler::{free_port, scheduler_deployment, start_scheduler, wait_leading};
use serde_json::Value;

const NS: &str = "taskpods-dev";

const VALUES: &str = r#"
scheduler:
  executor:
    podPresets:
      etl-pool:
        nodeSelector: {node-pool: etl}
        tolerations:
          - {key: dedicated, operator: Equal, value: etl, effect: NoSchedule}
        labels: {pool: etl}
"#;

fn workflow() -> String {
    format!(
        r#"apiVersion: datajump.io/v1alpha1
kind: Workflow
metadata: {{name: volumes, namespace: {NS}}}
spec:
  podDefaults:
    preset: etl-pool
    volumes:
      - {{name: conf, configMap: {{name: etl-conf}}}}
    volumeMounts:
      - {{name: conf, mountPath: /etc/etl, readOnly: true}}
  tasks:
    - name: load
      image: busybox
      pod:
        volumes:
          - {{name: lake, persistentVolumeClaim: {{claimName: lake}}}}
          - {{name: scratch, emptyDir: {{sizeLimit: 1Gi}}}}
        volumeMounts:
          - {{name: lake, mountPath: /lake}}
          - {{name: scratch, mountPath: /tmp}}
        labels: {{team: data}}
        securityContext: {{runAsUser: 1000, fsGroup: 2000, readOnlyRootFilesystem: true}}
"#
    )
}

fn bad_preset_workflow() -> String {
    format!(
        "apiVersion: datajump.io/v1alpha1\nkind: Workflow\nmetadata: {{name: no-such-pool, namespace: {NS}}}\n\
         spec:\n  tasks:\n    - {{name: train, image: busybox, pod: {{preset: gpu}}}}\n"
    )
}

fn run_of(cluster: &Cluster, workflow: &str) -> Option<Value> {
    let out = cluster
        .kubectl_ok(&[
            "get",
            "workflowruns",
            "-n",
            NS,
            "-l",
            &format!("datajump.io/workflow={workflow}"),
            "-o",
            "json",
        ])
        .ok()?;
    let list: Value = serde_json::from_slice(&out.stdout).ok()?;
    list["items"].as_array()?.first().cloned()
}

fn finished_run(cluster: &Cluster, workflow: &str) -> Value {
    wait_until(
        &format!("the run of {workflow} to finish"),
        Duration::from_secs(60),
        || {
            run_of(cluster, workflow)
                .filter(|r| matches!(r["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_pods_carry_volumes_placement_and_presets_under_restricted() {
    let Some(cluster) = cluster::shared() else {
        return;
    };
    let values = cluster.dir.join("task-pods-values.yaml");
    std::fs::write(&values, VALUES).expect("write values");
    install_dev_with(cluster, NS, &["-f", &values.to_string_lossy()]);
    let ns: Value = serde_json::from_slice(
        &cluster
            .kubectl_ok(&["get", "namespace", NS, "-o", "json"])
            .expect("namespace")
            .stdout,
    )
    .expect("namespace JSON");
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "restricted",
        "the proof needs a namespace enforcing restricted"
    );
    cluster.apply_yaml(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: etl-conf, namespace: {NS}}}\n\
         data: {{etl.conf: \"batch=500\"}}\n---\n\
         apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: lake, namespace: {NS}}}\n\
         spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Gi}}}}}}\n"
    ));

    let port = free_port();
    // Finished pods are kept long enough to be read below.
    let scheduler = start_scheduler(
        cluster,
        NS,
        port,
        &[("DATAJUMP_FINISHED_POD_RETENTION", "600")],
    );
    wait_leading(port);

    let submit = submit_workflow(cluster, "volumes", &workflow(), &["--run-now"]);
    assert!(submit.ok, "{}", submit.stderr);
    let submit = submit_workflow(
        cluster,
        "no-such-pool",
        &bad_preset_workflow(),
        &["--run-now"],
    );
    assert!(submit.ok, "{}", submit.stderr);

    let run = finished_run(cluster, "volumes");
    assert_eq!(
        run["status"]["phase"],
        "Succeeded",
        "{run:#}\n{}",
        scheduler.output()
    );

    // The pod the Job controller created, as the API server admitted it.
    let out = cluster
        .kubectl_ok(&[
            "get",
            "pods",
            "-n",
            NS,
            "-l",
            "datajump.io/workflow=volumes,datajump.io/task=load",
            "-o",
            "json",
        ])
        .expect("list pods");
    let pods: Value = serde_json::from_slice(&out.stdout).expect("pods JSON");
    let pod = &pods["items"][0];
    assert!(pod.is_object(), "no pod of task load: {pods:#}");
    let spec = &pod["spec"];
    let volume = |name: &str| {
        spec["volumes"]
            .as_array()
            .and_then(|vs| vs.iter().find(|v| v["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("volume {name} in {spec:#}"))
    };
    assert_eq!(volume("conf")["configMap"]["name"], "etl-conf");
    assert_eq!(volume("lake")["persistentVolumeClaim"]["claimName"], "lake");
    assert_eq!(volume("scratch")["emptyDir"]["sizeLimit"], "1Gi");
    let container = &spec["containers"][0];
    let mount = |path: &str| {
        container["volumeMounts"]
            .as_array()
            .and_then(|ms| ms.iter().find(|m| m["mountPath"] == path))
            .cloned()
            .unwrap_or_else(|| panic!("mount at {path} in {container:#}"))
    };
    assert_eq!(mount("/etc/etl")["name"], "conf");
    assert_eq!(mount("/etc/etl")["readOnly"], true);
    assert_eq!(mount("/lake")["name"], "lake");
    assert_eq!(mount("/tmp")["name"], "scratch");
    // From the preset the chart's values define.
    assert_eq!(spec["nodeSelector"]["node-pool"], "etl");
    let toleration = &spec["tolerations"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["key"] == "dedicated"))
        .cloned()
        .unwrap_or_else(|| panic!("the preset's toleration in {spec:#}"));
    assert_eq!(
        (&toleration["value"], &toleration["effect"]),
        (&Value::from("etl"), &Value::from("NoSchedule"))
    );
    let labels = &pod["metadata"]["labels"];
    assert_eq!(labels["pool"], "etl");
    assert_eq!(labels["team"], "data");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "datajump-scheduler");
    // The chart's task service account, the chosen IDs, and the restricted context intact.
    let deployment = scheduler_deployment(cluster, NS).expect("the scheduler Deployment");
    let task_account = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .and_then(|env| {
            env.iter()
                .find(|e| e["name"] == "DATAJUMP_TASK_SERVICE_ACCOUNT")
        })
        .map(|e| e["value"].clone())
        .expect("the chart names the task service account");
    assert_eq!(spec["serviceAccountName"], task_account);
    assert_eq!(spec["automountServiceAccountToken"], false);
    assert_eq!(spec["securityContext"]["runAsUser"], 1000);
    assert_eq!(spec["securityContext"]["fsGroup"], 2000);
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    let sc = &container["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"][0], "ALL");

    // A preset the scheduler does not know: the attempt fails before any Job exists.
    let run = finished_run(cluster, "no-such-pool");
    assert_eq!(run["status"]["phase"], "Failed", "{run:#}");
    let message = run["status"]["tasks"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        message, "attempt 1: its pod cannot be built: unknown pod preset \"gpu\" (known: etl-pool)",
        "{run:#}"
    );
    let jobs = cluster
        .kubectl_ok(&[
            "get",
            "jobs",
            "-n",
            NS,
            "-l",
            "datajump.io/workflow=no-such-pool",
            "-o",
            "name",
        ])
        .expect("list jobs");
    assert!(
        jobs.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&jobs.stdout)
    );
}
