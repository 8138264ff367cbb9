//! The exact API requests the plugin makes, against kube's tower-test mock: install's preflight
//! and namespace apply, workflow submit (server-side apply) and run creation, backup create, and
//! restore's suspend → stop scheduler → restore → start scheduler → resume sequence.

use std::time::Duration;

use clap::Parser;
use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use kubectl_datajump::cli::Cli;
use kubectl_datajump::cmd::workflow::graph;
use kubectl_datajump::cmd::{Ctx, backup, restore};
use kubectl_datajump::kube::{namespace, preflight, workflows};
use kubectl_datajump::output::Progress;
use serde_json::{Value, json};
use tower_test::mock;

/// A check on a request's JSON body.
type BodyCheck = Box<dyn Fn(&Value) + Send>;

/// One expected request and the canned response.
struct Expect {
    method: Method,
    /// Path and query; a trailing `*` matches any rest (for time-based names).
    uri: String,
    /// Checks on the request body (JSON), if any.
    body: Option<BodyCheck>,
    content_type: Option<&'static str>,
    status: u16,
    response: Value,
}

fn expect(method: Method, uri: impl Into<String>, status: u16, response: Value) -> Expect {
    Expect {
        method,
        uri: uri.into(),
        body: None,
        content_type: None,
        status,
        response,
    }
}

impl Expect {
    fn body(mut self, check: impl Fn(&Value) + Send + 'static) -> Self {
        self.body = Some(Box::new(check));
        self
    }
    fn content_type(mut self, ct: &'static str) -> Self {
        self.content_type = Some(ct);
        self
    }
}

fn not_found() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"})
}

/// A client whose every request must match the script, in order; the join handle returns the
/// URIs seen so a test can also assert nothing was left unanswered.
fn scripted(script: Vec<Expect>) -> (Client, tokio::task::JoinHandle<Vec<String>>) {
    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let task = tokio::spawn(async move {
        let mut seen = Vec::new();
        for (i, e) in script.into_iter().enumerate() {
            let (req, send) = handle
                .next_request()
                .await
                .unwrap_or_else(|| panic!("request #{i} ({} {}) never came", e.method, e.uri));
            let uri = req.uri().to_string();
            assert_eq!(req.method(), e.method, "request #{i} method (uri {uri})");
            match e.uri.strip_suffix('*') {
                Some(prefix) => assert!(
                    uri.starts_with(prefix),
                    "request #{i}: {uri} should start with {prefix}"
                ),
                None => assert_eq!(uri, e.uri, "request #{i} uri"),
            }
            if let Some(ct) = e.content_type {
                assert_eq!(
                    req.headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok()),
                    Some(ct),
                    "request #{i} content-type"
                );
            }
            let bytes = req.into_body().collect_bytes().await.expect("request body");
            if let Some(check) = &e.body {
                let v: Value = serde_json::from_slice(&bytes).expect("JSON request body");
                check(&v);
            }
            let resp = Response::builder()
                .status(StatusCode::from_u16(e.status).expect("status"))
                .body(Body::from(match &e.response {
                    // Logs are plain text; everything else is JSON.
                    Value::String(text) => text.clone().into_bytes(),
                    other => serde_json::to_vec(other).expect("response json"),
                }))
                .expect("response");
            send.send_response(resp);
            seen.push(uri);
        }
        seen
    });
    (Client::new(service, "default"), task)
}

fn version(minor: &str) -> Value {
    json!({"major": "1", "minor": minor, "gitVersion": format!("v1.{minor}.0"), "gitCommit": "x", "gitTreeState": "clean",
           "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"})
}

#[tokio::test]
async fn install_preflight_and_namespace_apply() {
    let values = json!({
        "mysql": {"mode": "operator"},
        "global": {"storageClass": "fast"},
        "ingress": {"className": "nginx"},
    });
    let (client, server) = scripted(vec![
        expect(Method::GET, "/version", 200, version("33")),
        expect(
            Method::GET,
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/innodbclusters.mysql.oracle.com",
            404,
            not_found(),
        ),
        expect(
            Method::GET,
            "/apis/storage.k8s.io/v1/storageclasses/fast",
            200,
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fast"}, "provisioner": "x"}),
        ),
        expect(
            Method::GET,
            "/apis/networking.k8s.io/v1/ingressclasses/nginx",
            404,
            not_found(),
        ),
        expect(
            Method::PATCH,
            "/api/v1/namespaces/datajump-prod?&force=true&fieldManager=kubectl-datajump&fieldValidation=Strict",
            200,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "datajump-prod"}}),
        )
        .content_type("application/apply-patch+yaml")
        .body(|b| {
            assert_eq!(b["kind"], "Namespace");
            assert_eq!(b["metadata"]["labels"]["env"], "prod");
            assert_eq!(
                b["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
                "restricted"
            );
        }),
    ]);
    let failures = preflight::run(&client, &preflight::plan(&values))
        .await
        .unwrap()
        .failures;
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(
        failures[0].contains("innodbclusters.mysql.oracle.com")
            && failures[0].contains("install the MySQL Operator first")
    );
    assert!(failures[1].contains("IngressClass \"nginx\""));
    let mut typed = chart_gen::profiles::profile(chart_gen::model::Environment::Prod);
    typed.observability.fluent_bit.enabled = false;
    let plans = chart_gen::namespaces::plan(
        chart_gen::model::Environment::Prod,
        "datajump-prod",
        &typed,
        &chart_gen::namespaces::PodSecurity {
            enforce: "restricted".into(),
            forced_by: Vec::new(),
        },
    );
    namespace::apply(&client, &plans).await.unwrap();
    assert_eq!(server.await.unwrap().len(), 5);
}

#[tokio::test]
async fn preflight_rejects_unsupported_versions_and_missing_default_storage_class() {
    let (client, server) = scripted(vec![
        expect(Method::GET, "/version", 200, version("27")),
        expect(
            Method::GET,
            "/apis/storage.k8s.io/v1/storageclasses?",
            200,
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClassList", "metadata": {},
                      "items": [{"metadata": {"name": "slow"}, "provisioner": "x"}]}),
        ),
    ]);
    let failures = preflight::run(&client, &preflight::plan(&json!({})))
        .await
        .unwrap()
        .failures;
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(failures[0].contains("1.27 is not supported"));
    assert!(failures[1].contains("no default StorageClass"));
    server.await.unwrap();
}

#[tokio::test]
async fn workflow_submit_is_server_side_apply_then_run_creation() {
    let doc = json!({"apiVersion": "datajump.io/v1alpha1", "kind": "Workflow",
                     "metadata": {"name": "etl", "namespace": "data"},
                     "spec": {"tasks": [{"name": "a", "image": "busybox"}]}});
    let echoed = json!({"apiVersion": "datajump.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "etl", "namespace": "data"},
                        "spec": {"tasks": [{"name": "a", "image": "busybox"}]}});
    let expected_doc = doc.clone();
    let (client, server) = scripted(vec![
        expect(Method::PATCH, "/apis/datajump.io/v1alpha1/namespaces/data/workflows/etl?&force=true&fieldManager=kubectl-datajump&fieldValidation=Strict", 200, echoed)
            .content_type("application/apply-patch+yaml")
            .body(move |b| assert_eq!(b, &expected_doc, "the document is applied exactly as written")),
        expect(Method::GET, "/apis/datajump.io/v1alpha1/namespaces/data/workflows/etl", 200,
               json!({"apiVersion": "datajump.io/v1alpha1", "kind": "Workflow",
                      "metadata": {"name": "etl", "namespace": "data", "uid": "wf-uid"},
                      "spec": {"tasks": [{"name": "a", "image": "busybox"}]}})),
        expect(Method::POST, "/apis/datajump.io/v1alpha1/namespaces/data/workflowruns?", 201,
               json!({"apiVersion": "datajump.io/v1alpha1", "kind": "WorkflowRun", "metadata": {"name": "etl-manual-1"}, "spec": {"workflowName": "etl"}}))
            .body(|b| {
                assert_eq!(b["spec"]["workflowName"], "etl");
                assert_eq!(b["metadata"]["labels"]["datajump.io/workflow"], "etl");
                // The API server completes the name, so two runs in one second do not collide.
                assert!(b["metadata"].get("name").is_none(), "{b}");
                let prefix = b["metadata"]["generateName"].as_str().unwrap();
                assert!(prefix.starts_with("etl-manual-") && prefix.ends_with('-'), "{prefix}");
                assert_eq!(b["metadata"]["ownerReferences"][0]["uid"], "wf-uid");
                assert_eq!(b["metadata"]["ownerReferences"][0]["controller"], true);
            }),
    ]);
    workflows::apply(&client, "data", "etl", &doc)
        .await
        .unwrap();
    let run = workflows::create_run(&client, "data", "etl", &Default::default())
        .await
        .unwrap();
    assert_eq!(run.spec.workflow_name, "etl");
    server.await.unwrap();
}

/// `workflow graph etl`: the latest run's states on the tasks that run recorded, and a run of
/// another workflow refused.
#[tokio::test]
async fn workflow_graph_draws_the_latest_run_on_the_spec_it_recorded() {
    let workflow = json!({"apiVersion": "datajump.io/v1alpha1", "kind": "Workflow",
        "metadata": {"name": "etl", "namespace": "data"},
        "spec": {"tasks": [{"name": "extract", "image": "busybox"},
                           {"name": "load", "image": "busybox", "dependsOn": ["extract"]}]}});
    // The run started before `load` was renamed: it recorded `load-all`.
    let recorded = json!({"tasks": [{"name": "extract", "image": "busybox"},
        {"name": "load-all", "image": "busybox", "dependsOn": ["extract"], "triggerRule": "AllDone"}]});
    let run = |name: &str, created: &str, workflow: &str, phase: &str| {
        json!({"apiVersion": "datajump.io/v1alpha1", "kind": "WorkflowRun",
            "metadata": {"name": name, "namespace": "data", "creationTimestamp": created},
            "spec": {"workflowName": workflow},
            "status": {"phase": phase, "workflowSpec": recorded, "tasks": [
                {"name": "extract", "phase": "Succeeded", "attempts": 1},
                {"name": "load-all", "phase": phase, "attempts": 2}]}})
    };
    let runs = json!({"apiVersion": "datajump.io/v1alpha1", "kind": "WorkflowRunList", "metadata": {},
        "items": [run("etl-1", "2026-03-01T02:00:00Z", "etl", "Succeeded"),
                  run("etl-2", "2026-03-02T02:00:00Z", "etl", "Failed"),
                  run("other-1", "2026-03-03T02:00:00Z", "other", "Running")]});
    let (client, server) = scripted(vec![
        expect(
            Method::GET,
            "/apis/datajump.io/v1alpha1/namespaces/data/workflowruns?",
            200,
            runs,
        ),
        expect(
            Method::GET,
            "/apis/datajump.io/v1alpha1/namespaces/data/workflows/etl",
            200,
            workflow,
        ),
        expect(
            Method::GET,
            "/apis/datajump.io/v1alpha1/namespaces/data/workflowruns/other-1",
            200,
            run("other-1", "2026-03-03T02:00:00Z", "other", "Running"),
        ),
    ]);
    let ctx = ctx();
    let args = |argv: &[&str]| {
        let cli = Cli::parse_from([&["kubectl-datajump", "workflow", "graph"], argv].concat());
        match cli.command {
            kubectl_datajump::cli::Command::Workflow(
                kubectl_datajump::cli::WorkflowCommand::Graph(args),
            ) => args,
            other => panic!("{other:?}"),
        }
    };
    let drawn = graph::drawing(&ctx, &client, "data", &args(&["etl", "--format", "dot"]))
        .await
        .unwrap();
    assert!(
        drawn.contains("  label=\"workflow etl, run etl-2: Failed\";\n"),
        "{drawn}"
    );
    assert!(
        drawn.contains("  \"load-all\" [label=\"load-all\\nFailed, 2 attempts\""),
        "{drawn}"
    );
    assert!(
        drawn.contains("  \"extract\" -> \"load-all\" [label=\"AllDone\"];\n"),
        "{drawn}"
    );
    assert!(!drawn.contains("\"load\""), "{drawn}");
    let err = graph::drawing(&ctx, &client, "data", &args(&["etl", "--run", "other-1"]))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(err, "run other-1 is a run of workflow other, not etl");
    server.await.unwrap();
}

fn ctx() -> Ctx {
    Ctx::new(Cli::parse_from(["kubectl-datajump", "--env", "dev", "-o", "json", "status"]).global)
}

fn cronjob(name: &str, command: &str) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "CronJob",
           "metadata": {"name": name, "namespace": "datajump-dev", "uid": "cj-uid"},
           "spec": {"schedule": "0 2 * * *", "jobTemplate": {"spec": {"template": {"spec": {
               "restartPolicy": "Never", "containers": [{"name": "main", "image": "mysql:8.4", "command": [command]}]}}}}}})
}

fn job(condition: &str, message: &str) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
           "status": {"conditions": [{"type": condition, "status": "True", "message": message}]}})
}

fn one_pod() -> Value {
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {},
           "items": [{"metadata": {"name": "job-pod-1", "creationTimestamp": "2026-01-01T00:00:00Z"}}]})
}

#[tokio::test]
async fn backup_create_starts_a_job_from_the_cronjob_and_reads_the_name_from_its_log() {
    let ns = "/apis/batch/v1/namespaces/datajump-dev";
    let (client, server) = scripted(vec![
        // The release's fullname comes from its config ConfigMap, found by label.
        expect(
            Method::GET,
            "/api/v1/namespaces/datajump-dev/configmaps?&labelSelector=app.kubernetes.io%2Finstance%3Ddatajump%2Capp.kubernetes.io%2Fcomponent%3Dconfig",
            200,
            json!({"apiVersion": "v1", "kind": "PartialObjectMetadataList", "metadata": {},
                   "items": [{"apiVersion": "v1", "kind": "PartialObjectMetadata",
                              "metadata": {"name": "datajump-config", "namespace": "datajump-dev"}}]}),
        ),
        expect(
            Method::GET,
            format!("{ns}/cronjobs/datajump-backup"),
            200,
            cronjob("datajump-backup", "/scripts/backup.sh"),
        ),
        expect(
            Method::POST,
            format!("{ns}/jobs?"),
            201,
            job("Complete", ""),
        )
        .body(|b| {
            assert!(
                b["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .starts_with("datajump-backup-")
            );
            assert_eq!(
                b["metadata"]["ownerReferences"][0]["name"],
                "datajump-backup"
            );
            assert_eq!(
                b["spec"]["template"]["spec"]["containers"][0]["command"][0],
                "/scripts/backup.sh"
            );
        }),
        expect(
            Method::GET,
            format!("{ns}/jobs/datajump-backup-*"),
            200,
            job("Complete", ""),
        ),
        expect(
            Method::GET,
            "/api/v1/namespaces/datajump-dev/pods?&labelSelector=job-name%3Ddatajump-backup-*",
            200,
            one_pod(),
        ),
        expect(
            Method::GET,
            "/api/v1/namespaces/datajump-dev/pods/job-pod-1/log?",
            200,
            json!("dumping\ndatajump-20260101-020000\n"),
        ),
    ]);
    let created = backup::create(
        &ctx(),
        &client,
        "datajump-dev",
        true,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(created.backup.as_deref(), Some("datajump-20260101-020000"));
    assert_eq!(created.state, "Complete");
    server.await.unwrap();
}

/// The restore sequence; `restore_ok` picks the Job's outcome. Either way the scheduler gets its
/// replicas back and exactly the workflow we suspended (not the one already suspended) resumes.
async fn restore_sequence(restore_ok: bool) -> restore::RestoreReport {
    let wf = "/apis/datajump.io/v1alpha1/namespaces/datajump-dev/workflows";
    let scale = "/apis/apps/v1/namespaces/datajump-dev/deployments/datajump-scheduler/scale";
    let batch = "/apis/batch/v1/namespaces/datajump-dev";
    let workflow = |name: &str, suspend: bool| {
        json!({"apiVersion": "datajump.io/v1alpha1", "kind": "Workflow", "metadata": {"name": name},
               "spec": {"suspend": suspend, "tasks": [{"name": "t", "image": "busybox"}]}})
    };
    let scale_obj = |spec: i32, status: i32| {
        json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "datajump-scheduler"},
               "spec": {"replicas": spec}, "status": {"replicas": status}})
    };
    let (outcome, log) = if restore_ok {
        ("Complete", "restored 3 databases")
    } else {
        ("Failed", "checksum mismatch")
    };
    let (client, server) = scripted(vec![
        expect(
            Method::GET,
            format!("{wf}?"),
            200,
            json!({"apiVersion": "datajump.io/v1alpha1", "kind": "WorkflowList", "metadata": {},
                      "items": [workflow("nightly", false), workflow("paused-by-user", true)]}),
        ),
        expect(
            Method::PATCH,
            format!("{wf}/nightly?&fieldValidation=Strict"),
            200,
            workflow("nightly", true),
        )
        .content_type("application/merge-patch+json")
        .body(|b| assert_eq!(b, &json!({"spec": {"suspend": true}}))),
        expect(Method::GET, scale, 200, scale_obj(2, 2)),
        expect(
            Method::PATCH,
            format!("{scale}?&fieldValidation=Strict"),
            200,
            scale_obj(0, 2),
        )
        .body(|b| assert_eq!(b, &json!({"spec": {"replicas": 0}}))),
        expect(Method::GET, scale, 200, scale_obj(0, 0)),
        expect(
            Method::GET,
            format!("{batch}/cronjobs/datajump-restore"),
            200,
            cronjob("datajump-restore", "/scripts/restore.sh"),
        ),
        expect(
            Method::POST,
            format!("{batch}/jobs?"),
            201,
            job(outcome, log),
        )
        .body(|b| {
            assert!(
                b["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .starts_with("datajump-restore-")
            );
            let env = &b["spec"]["template"]["spec"]["containers"][0]["env"];
            assert_eq!(
                env,
                &json!([{"name": "BACKUP_NAME", "value": "datajump-20260101-020000"}])
            );
        }),
        expect(
            Method::GET,
            format!("{batch}/jobs/datajump-restore-*"),
            200,
            job(outcome, log),
        ),
        expect(
            Method::GET,
            "/api/v1/namespaces/datajump-dev/pods?&labelSelector=job-name%3Ddatajump-restore-*",
            200,
            one_pod(),
        ),
        expect(
            Method::GET,
            "/api/v1/namespaces/datajump-dev/pods/job-pod-1/log?",
            200,
            json!(log),
        ),
        expect(
            Method::PATCH,
            format!("{scale}?&fieldValidation=Strict"),
            200,
            scale_obj(2, 0),
        )
        .body(|b| assert_eq!(b, &json!({"spec": {"replicas": 2}}))),
        expect(
            Method::PATCH,
            format!("{wf}/nightly?&fieldValidation=Strict"),
            200,
            workflow("nightly", false),
        )
        .body(|b| assert_eq!(b, &json!({"spec": {"suspend": false}}))),
    ]);
    let report = restore::restore(
        &client,
        "datajump-dev",
        "datajump",
        "datajump-20260101-020000",
        Duration::from_secs(5),
        Progress::with(false),
    )
    .await
    .unwrap();
    assert_eq!(server.await.unwrap().len(), 12);
    assert_eq!(report.workflows_resumed, ["nightly"]);
    assert_eq!(report.scheduler_replicas, 2);
    assert!(report.cleanup_errors.is_empty());
    report
}

#[tokio::test]
async fn restore_suspends_stops_restores_then_puts_everything_back() {
    let report = restore_sequence(true).await;
    assert!(report.succeeded);
    assert_eq!(report.log_tail, ["restored 3 databases"]);
}

#[tokio::test]
async fn failed_restore_still_restarts_the_scheduler_and_resumes_workflows() {
    let report = restore_sequence(false).await;
    assert!(!report.succeeded);
    assert_eq!(report.message, "checksum mismatch");
}
