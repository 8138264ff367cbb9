//! `kubectl datajump report` on an environment of the size the issue budgets (10 s, 128 MiB):
//! the dev release with 100 pods in its namespace and 1,000 WorkflowRuns, on the local control
//! plane with the fake kubelet, or (`REPORT_BENCH_NODE=real`) on the real node, where every
//! pod has a log of [`LOG_LINES`] lines for the report to fetch.
//!
//! ```sh
//! cargo build -p kubectl-datajump
//! cargo bench --profile dev -p datajump-tests --bench report [-- ROUNDS]
//! REPORT_BENCH_NODE=real cargo bench --profile dev -p datajump-tests --bench report
//! ```
//!
//! On the real node the release is the one the real-node tests install (its scheduler in its
//! pod, which counts among the 100), and the filler pods print their lines and sleep.
//!
//! The runs are what the scheduler leaves: 10 Workflows of the 5-task diamond, 100 runs each
//! on hourly ticks (`build_run`), each marked Succeeded through the status subresource with its
//! tasks and the spec snapshot. The pods are the release's and a Deployment's replicas, up to
//! 100, all Running. The fake kubelet serves no logs, so each log request is a quick refusal:
//! there the figure covers the objects, the runs and one log request per node, not the
//! transfer of log text; the real node's figure does.
//!
//! Each round (default 3) runs the plugin as a user does, `report --env dev -n NS -o FILE -v`,
//! and takes its wall time and its exact peak RSS from `wait4(2)` (`ru_maxrss`), and prints the
//! time of each step (`-v`); the bench fails when a round is over budget.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use datajump_api::{Workflow, WorkflowRun};
use datajump_scheduler::jobs::{build_run, from_k8s_time};
use datajump_tests::cluster::{self, Cluster, wait_until};
use datajump_tests::load::diamond_workflow;
use datajump_tests::plugin::{install_dev, plugin_command};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const FAKE_NS: &str = "bench-report";
/// Lines each filler pod prints on the real node (about 100 bytes each: 10 MB in all, with the
/// report's default `--tail` of 1,000 taking every line).
const LOG_LINES: usize = 1000;
const PODS: usize = 100;
const WORKFLOWS: usize = 10;
const RUNS_PER_WORKFLOW: usize = 100;
const WALL_BUDGET: Duration = Duration::from_secs(10);
const RSS_BUDGET_MIB: f64 = 128.0;
const IN_FLIGHT: usize = 32;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(|a| a.parse())
        .transpose()
        .context("ROUNDS is a number")?
        .unwrap_or(3);
    let started = Instant::now();
    let real_node = std::env::var("REPORT_BENCH_NODE").as_deref() == Ok("real");
    let (cluster, ns) = if real_node {
        let Some(cluster) = datajump_tests::node::installed_dev() else {
            return Ok(());
        };
        (cluster, datajump_tests::node::DEV_NS)
    } else {
        let Some(cluster) = cluster::shared() else {
            return Ok(());
        };
        install_dev(cluster, FAKE_NS);
        (cluster, FAKE_NS)
    };
    let client = cluster.client().await;
    // The real node's scheduler would start the runs' tasks in the moment between a run's
    // creation and its finished status: it is stopped while they are made.
    if real_node {
        scale_scheduler(cluster, ns, 0);
    }
    let runs = create_runs(cluster, &client, ns).await?;
    if real_node {
        scale_scheduler(cluster, ns, 1);
    }
    let pods = fill_pods(cluster, &client, ns, real_node).await?;
    eprintln!(
        "environment ready in {:.1?}: {pods} pods, {runs} WorkflowRuns in {ns}{}",
        started.elapsed(),
        if real_node { " on the real node" } else { "" }
    );

    let mut over = Vec::new();
    println!("round   wall      peak RSS   files   archive");
    for round in 1..=rounds {
        let out = cluster.dir.join(format!("bench-report-{round}.zip"));
        let measured = report(cluster, &out, ns)?;
        let summary: serde_json::Value = serde_json::from_str(&measured.stdout)
            .with_context(|| format!("the JSON answer: {}", measured.stdout))?;
        println!(
            "{round:<7} {:<9} {:<10} {:<7} {} KiB",
            format!("{:.2}s", measured.wall.as_secs_f64()),
            format!("{:.1} MiB", measured.max_rss_mib),
            summary["files"],
            summary["bytes"].as_u64().unwrap_or_default() / 1024
        );
        print!("{}", measured.steps);
        if summary["pods"].as_u64() != Some(PODS as u64)
            || summary["workflowRuns"].as_u64() != Some(runs as u64)
        {
            bail!("the report did not see the whole environment: {summary}");
        }
        if measured.wall > WALL_BUDGET || measured.max_rss_mib > RSS_BUDGET_MIB {
            over.push(round);
        }
    }
    println!(
        "budget: {}s and {RSS_BUDGET_MIB} MiB per report ({PODS} pods, {runs} WorkflowRuns)",
        WALL_BUDGET.as_secs()
    );
    if !over.is_empty() {
        bail!("rounds {over:?} were over budget");
    }
    Ok(())
}

/// Scales the release's scheduler to `replicas` and waits for the rollout.
fn scale_scheduler(cluster: &Cluster, ns: &str, replicas: u8) {
    let deployment = "deployment/datajump-scheduler";
    cluster
        .kubectl_ok(&[
            "scale",
            deployment,
            "-n",
            ns,
            &format!("--replicas={replicas}"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
    if replicas == 0 {
        wait_until("the scheduler's pod gone", Duration::from_secs(120), || {
            let out = cluster.kubectl(&[
                "get",
                "pods",
                "-n",
                ns,
                "-l",
                "app.kubernetes.io/component=scheduler",
                "-o",
                "name",
            ]);
            out.stdout.is_empty().then_some(())
        });
    } else {
        cluster
            .kubectl_ok(&["rollout", "status", deployment, "-n", ns, "--timeout=120s"])
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// 10 diamond Workflows and 100 finished runs of each.
async fn create_runs(cluster: &Cluster, client: &kube::Client, ns: &str) -> anyhow::Result<usize> {
    let workflows: Api<Workflow> = Api::namespaced(client.clone(), ns);
    let mut defined = Vec::new();
    for w in 0..WORKFLOWS {
        cluster.apply_yaml(&diamond_workflow(&format!("etl-{w}"), ns));
        defined.push(workflows.get(&format!("etl-{w}")).await?);
    }
    let runs: Api<WorkflowRun> = Api::namespaced(client.clone(), ns);
    let hour = Timestamp::now().as_second() / 3600 * 3600;
    let made: Vec<(WorkflowRun, &Workflow, Timestamp)> = defined
        .iter()
        .flat_map(|wf| {
            (1..=RUNS_PER_WORKFLOW).map(move |k| {
                let tick = Timestamp::from_second(hour - 3600 * k as i64).expect("a time");
                let run = build_run(wf, from_k8s_time(&Time(tick)).expect("a time"));
                (run, wf, tick)
            })
        })
        .collect();
    let count = made.len();
    futures::stream::iter(made)
        .map(|(run, wf, tick)| {
            let runs = runs.clone();
            async move {
                let name = run.name_any();
                runs.create(&PostParams::default(), &run)
                    .await
                    .with_context(|| format!("creating {name}"))?;
                let body = json!({"status": succeeded(&name, wf, tick)});
                runs.patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
                    .await
                    .with_context(|| format!("finishing {name}"))
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(count)
}

/// What the scheduler writes on a run whose tasks all succeeded.
fn succeeded(run: &str, wf: &Workflow, tick: Timestamp) -> serde_json::Value {
    let at = |s: i64| (tick + SignedDuration::from_secs(s)).to_string();
    let tasks: Vec<_> = wf
        .spec
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({"name": t.name, "phase": "Succeeded", "attempts": 1,
                   "jobName": datajump_api::names::job_name(run, &t.name, 1),
                   "startTime": at(60 * i as i64), "completionTime": at(60 * i as i64 + 50)})
        })
        .collect();
    let end = at(600);
    json!({
        "phase": "Succeeded", "startTime": at(0), "completionTime": end,
        "succeededTasks": tasks.len(), "totalTasks": tasks.len(), "tasks": tasks,
        "message": "all tasks succeeded",
        "conditions": [{"type": "Complete", "status": "True", "reason": "Completed",
                        "message": "all tasks succeeded", "lastTransitionTime": end}],
        "workflowSpec": wf.spec,
    })
}

/// The filler pods' container: on the real node, the e2e image printing [`LOG_LINES`] lines
/// and sleeping (small requests: the node is this machine); on the fake kubelet, any image.
fn filler_container(real_node: bool) -> String {
    if !real_node {
        return "image: busybox".into();
    }
    let script = format!(
        "i=0; while [ $i -lt {LOG_LINES} ]; do i=$((i+1)); \
         echo \"$i $(hostname) extracted rows for partition $i of the nightly load\"; done; \
         exec sleep 3600"
    );
    format!(
        "image: {}\n          command: [/busybox/sh, -c, {script:?}]\n\
         \x20         resources: {{requests: {{cpu: 1m, memory: 4Mi}}, limits: {{cpu: 100m, memory: 16Mi}}}}",
        datajump_tests::node::E2E_IMAGE
    )
}

/// A Deployment of as many replicas as the namespace lacks for [`PODS`]; waits until all run.
async fn fill_pods(
    cluster: &Cluster,
    client: &kube::Client,
    ns: &str,
    real_node: bool,
) -> anyhow::Result<usize> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let release = pods.list(&ListParams::default()).await?.items.len();
    let missing = PODS.saturating_sub(release);
    cluster.apply_yaml(&format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: filler, namespace: {ns}}}\n\
         spec:\n  replicas: {missing}\n  selector: {{matchLabels: {{app: filler}}}}\n  template:\n    metadata: {{labels: {{app: filler}}}}\n    spec:\n\
         \x20     securityContext: {{runAsNonRoot: true, runAsUser: 65532, seccompProfile: {{type: RuntimeDefault}}}}\n\
         \x20     containers:\n        - name: app\n          {}\n          env: [{{name: REGION, value: eu}}]\n\
         \x20         securityContext: {{allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}}}\n",
        filler_container(real_node)
    ));
    let rt = tokio::runtime::Handle::current();
    let running = tokio::task::block_in_place(|| {
        wait_until("100 running pods", Duration::from_secs(600), || {
            let list = rt.block_on(pods.list(&ListParams::default())).ok()?;
            let running = list
                .items
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .count();
            (running >= PODS).then_some(running)
        })
    });
    Ok(running)
}

/// One report: its answer, wall time and peak RSS.
struct Measured {
    stdout: String,
    /// Each step's time, from `-v`.
    steps: String,
    wall: Duration,
    max_rss_mib: f64,
}

fn report(cluster: &Cluster, out: &std::path::Path, ns: &str) -> anyhow::Result<Measured> {
    let _ = std::fs::remove_file(out);
    let mut cmd = plugin_command();
    cmd.args([
        "report",
        "--env",
        "dev",
        "-n",
        ns,
        "-o",
        "json",
        "-v",
        "--output-file",
    ])
    .arg(out)
    .arg("--kubeconfig")
    .arg(&cluster.kubeconfig)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().context("starting kubectl-datajump")?;
    let read_all = |mut from: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            from.read_to_string(&mut text).map(|_| text)
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().context("its stdout")?));
    let stderr = read_all(Box::new(child.stderr.take().context("its stderr")?));
    let (status, max_rss_kib) = wait4(child.id())?;
    let wall = started.elapsed();
    let joined = |t: std::thread::JoinHandle<std::io::Result<String>>| {
        t.join()
            .map_err(|_| anyhow::anyhow!("reading the plugin's output"))?
            .context("reading the plugin's output")
    };
    let stdout = joined(stdout)?;
    // `-v`: the time each step took, for the bench's log.
    let steps: String = joined(stderr)?
        .lines()
        .filter(|l| l.starts_with("debug: report:"))
        .map(|l| format!("    {}\n", l.trim_start_matches("debug: report: ")))
        .collect();
    if status != 0 {
        bail!("report exited with wait status {status}");
    }
    Ok(Measured {
        stdout,
        steps,
        wall,
        max_rss_mib: max_rss_kib as f64 / 1024.0,
    })
}

/// Reaps the child `pid`: its wait status and peak resident set (KiB), as the kernel counted
/// them.
fn wait4(pid: u32) -> anyhow::Result<(i32, i64)> {
    let mut status = 0;
    // SAFETY: rusage is plain data the kernel fills; the pid is our own child, reaped once.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    if reaped < 0 {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    Ok((status, usage.ru_maxrss))
}
