//! Against a real cluster: set `DATAJUMP_E2E_KUBECONFIG` to a kubeconfig (e.g. kind's) and the
//! test installs the CRDs, runs the controllers in-process on a fresh namespace, and waits for
//! a hand-made run of a diamond workflow to succeed with exactly one Job per task. Without the
//! variable it prints "skipped" and passes.

use std::time::Duration;

use clap::Parser;
use datajump_scheduler::api::{self, RunPhase, Workflow, WorkflowRun, WorkflowRunSpec};
use datajump_scheduler::config::Cli;
use datajump_scheduler::controller::run_controllers;
use datajump_scheduler::http::Health;
use datajump_scheduler::metrics::Metrics;
use futures::FutureExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use std::sync::Arc;

async fn client(path: &str) -> anyhow::Result<Client> {
    let kubeconfig = Kubeconfig::read_from(path)?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

const DIAMOND: &str = r#"
apiVersion: datajump.io/v1alpha1
kind: Workflow
metadata: {name: diamond}
spec:
  tasks:
    - {name: extract, image: busybox:1.36, command: [sh, -c, "echo extract"]}
    - {name: clean, image: busybox:1.36, command: [sh, -c, "echo clean"], dependsOn: [extract]}
    - {name: enrich, image: busybox:1.36, command: [sh, -c, "echo enrich"], dependsOn: [extract]}
    - {name: load, image: busybox:1.36, command: [sh, -c, "echo load"], dependsOn: [clean, enrich]}
"#;

#[tokio::test]
async fn diamond_workflow_on_a_real_cluster() -> anyhow::Result<()> {
    let Ok(path) = std::env::var("DATAJUMP_E2E_KUBECONFIG") else {
        println!("skipped: set DATAJUMP_E2E_KUBECONFIG to run against a real cluster");
        return Ok(());
    };
    let client = client(&path).await?;
    let ssa = PatchParams::apply("datajump-e2e").force();

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in api::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.patch(&name, &ssa, &Patch::Apply(&crd)).await?;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    let ns = format!("datajump-e2e-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": ns, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}
    }))?;
    namespaces
        .create(&PostParams::default(), &namespace)
        .await?;

    let workflows: Api<Workflow> = Api::namespaced(client.clone(), &ns);
    let wf: Workflow = serde_yaml::from_str(DIAMOND)?;
    workflows.create(&PostParams::default(), &wf).await?;
    let runs: Api<WorkflowRun> = Api::namespaced(client.clone(), &ns);
    let run = WorkflowRun::new(
        "diamond-by-hand",
        WorkflowRunSpec {
            workflow_name: "diamond".into(),
            scheduled_time: None,
        },
    );
    runs.create(&PostParams::default(), &run).await?;

    let cli = Cli::try_parse_from([
        "datajump-scheduler",
        "--leader-election=false",
        "--watch-namespace",
        &ns,
    ])?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let stop = async move {
        let _ = stop_rx.await;
    }
    .shared();
    let controllers = tokio::spawn({
        let client = client.clone();
        async move {
            run_controllers(
                client,
                &cli,
                Arc::new(Metrics::new()),
                Arc::new(Health::default()),
                stop,
            )
            .await
        }
    });

    let mut phase = RunPhase::Pending;
    for _ in 0..90 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        phase = runs
            .get("diamond-by-hand")
            .await?
            .status
            .map(|s| s.phase)
            .unwrap_or_default();
        if phase.is_finished() {
            break;
        }
    }
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let mut names: Vec<String> = jobs
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|j| j.metadata.name)
        .collect();
    names.sort();

    let _ = stop_tx.send(());
    let _ = controllers.await;
    namespaces.delete(&ns, &DeleteParams::background()).await?;

    assert_eq!(phase, RunPhase::Succeeded);
    let want: Vec<String> = ["clean", "enrich", "extract", "load"]
        .iter()
        .map(|t| format!("diamond-by-hand-{t}-1"))
        .collect();
    assert_eq!(names, want);
    Ok(())
}
