//! The binary as users run it: help text, exit codes (0 ok, 1 runtime, 2 bad input), offline
//! workflow validation, confirmation rules and schema errors — all without a cluster.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-datajump"));
    // Isolate from the developer's environment: no kubeconfig, no env defaults.
    cmd.env_remove("DATAJUMP_ENV")
        .env_remove("DATAJUMP_HELM")
        .env("KUBECONFIG", "/nonexistent/kubeconfig");
    cmd
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run kubectl-datajump")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn help_uses_the_kubectl_prefix() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    assert!(
        help.contains("Usage: kubectl datajump [OPTIONS] <COMMAND>"),
        "{help}"
    );
    for cmd in [
        "install",
        "upgrade",
        "uninstall",
        "status",
        "images",
        "diff",
        "workflow",
        "backup",
        "restore",
        "completions",
    ] {
        assert!(help.contains(cmd), "help lists {cmd}");
    }
    let sub = text(&run(&["workflow", "submit", "--help"]).stdout);
    assert!(
        sub.contains("Usage: kubectl datajump workflow submit"),
        "{sub}"
    );
}

#[test]
fn bad_flags_exit_2() {
    let out = run(&["install", "--env", "production"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("[possible values: dev, test, staging, prod]"));
    assert_eq!(run(&["status", "-o", "xml"]).status.code(), Some(2));
    assert_eq!(
        run(&["install", "--env", "dev", "--timeout", "ten"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        run(&["install", "--env", "dev", "--chart", "oci://x/y"])
            .status
            .code(),
        Some(2),
        "--chart needs --version"
    );
}

#[test]
fn workflow_validate_is_offline_and_reports_every_problem_with_its_path() {
    let ok = run(&[
        "workflow",
        "validate",
        "-f",
        fixture("diamond.yaml").to_str().unwrap(),
    ]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(text(&ok.stdout).contains("Workflow diamond is valid (4 tasks)"));

    let bad = run(&[
        "workflow",
        "validate",
        "-f",
        fixture("broken.yaml").to_str().unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(2));
    let err = text(&bad.stderr);
    assert!(
        err.contains(r#"spec.tasks[3].dependsOn[1]: unknown task "lod""#),
        "{err}"
    );
    assert!(
        err.contains("spec.schedule"),
        "the cron error is reported too: {err}"
    );
    assert!(err.contains("broken.yaml"), "the file is named: {err}");

    let missing = run(&["workflow", "validate", "-f", "/nonexistent/wf.yaml"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("cannot read /nonexistent/wf.yaml"));
}

#[test]
fn workflow_graph_draws_a_file_offline() {
    let file = fixture("nightly.yaml");
    let file = file.to_str().unwrap();
    let mermaid = run(&["workflow", "graph", "-f", file]);
    assert!(mermaid.status.success(), "{}", text(&mermaid.stderr));
    assert_eq!(
        text(&mermaid.stdout),
        r#"---
title: "workflow nightly"
---
flowchart TD
    t_extract["extract"]
    t_clean_up["clean-up"]
    t_enrich["enrich"]
    t_load["load"]
    t_alert["alert"]
    t_extract --> t_clean_up
    t_extract --> t_enrich
    t_clean_up --> t_load
    t_enrich --> t_load
    t_load -->|AnyFailed| t_alert
    dag_end(("DAG end"))
    t_alert -.- dag_end
    t_notify["notify"]
    dag_end -.->|on exit| t_notify
    style t_notify stroke-dasharray: 5 5
"#
    );

    let dot = run(&["workflow", "graph", "-f", file, "--format", "dot"]);
    assert!(dot.status.success(), "{}", text(&dot.stderr));
    let dot = text(&dot.stdout);
    assert!(dot.starts_with("digraph \"nightly\" {\n"), "{dot}");
    assert!(
        dot.contains("  \"load\" -> \"alert\" [label=\"AnyFailed\"];\n"),
        "{dot}"
    );
    assert!(dot.ends_with("}\n"), "{dot}");

    // The file is validated first, as `workflow validate` does.
    let broken = fixture("broken.yaml");
    let bad = run(&["workflow", "graph", "-f", broken.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains(r#"unknown task "lod""#));
    // A drawing is neither JSON nor YAML; a file has no run to show.
    let json = run(&["workflow", "graph", "-f", file, "-o", "json"]);
    assert_eq!(json.status.code(), Some(2));
    assert!(text(&json.stderr).contains("--format mermaid|dot"));
    let with_run = run(&["workflow", "graph", "-f", file, "--run", "nightly-1"]);
    assert_eq!(with_run.status.code(), Some(2));
}

#[test]
fn workflow_validate_names_the_path_of_each_bad_pod_option() {
    let bad = run(&[
        "workflow",
        "validate",
        "-f",
        fixture("bad-pod.yaml").to_str().unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(2));
    let err = text(&bad.stderr);
    for expected in [
        "5 problems:",
        "spec.podDefaults.preset: \"GPU\" is not a valid DNS-1123 label",
        "spec.tasks[0].pod.volumes[0].hostPath: volume source \"hostPath\" is not allowed",
        "spec.tasks[0].pod.volumeMounts[0].mountPath: \"data\" is not an absolute path",
        "spec.tasks[0].pod.labels[datajump.io/task]: \"datajump.io/\" is the scheduler's",
        "spec.tasks[0].pod.securityContext.runAsUser: 0 is root",
    ] {
        assert!(err.contains(expected), "{expected:?} missing in: {err}");
    }
    // With a preset named, a mount of a volume no level declares is the scheduler's to judge
    // (the preset may declare it); so is the preset's existence.
    assert!(!err.contains("volumeMounts[0].name"), "{err}");
}

#[test]
fn destructive_verbs_need_yes_and_prod_needs_confirm_env() {
    let prod = run(&[
        "restore",
        "--env",
        "prod",
        "datajump-20260101-020000",
        "--yes",
    ]);
    assert_eq!(prod.status.code(), Some(2));
    assert!(text(&prod.stderr).contains("--confirm-env prod"));
    let no_yes = bin()
        .args(["uninstall", "--env", "dev"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(no_yes.status.code(), Some(2));
    assert!(
        text(&no_yes.stderr).contains("needs --yes"),
        "{}",
        text(&no_yes.stderr)
    );
}

#[test]
fn missing_helm_is_an_input_error_saying_how_to_install_it() {
    let out = run(&["images", "--env", "dev", "--helm", "/nonexistent/helm"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("bash .ci/install-tools.sh")
            && err.contains("https://helm.sh/docs/intro/install/"),
        "{err}"
    );
}

/// A minimal chart with a schema, so values errors are tested without the generated chart.
fn tiny_chart() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let w = |name: &str, body: &str| std::fs::write(dir.path().join(name), body).unwrap();
    w("Chart.yaml", "apiVersion: v2\nname: tiny\nversion: 0.1.0\n");
    w("values.yaml", "web:\n  replicas: 1\n  image: web:1\n");
    w("values-dev.yaml", "web:\n  replicas: 2\n");
    w(
        "values.schema.json",
        r#"{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
        "properties": {"web": {"type": "object", "additionalProperties": false,
          "properties": {"replicas": {"type": "integer", "minimum": 1}, "image": {"type": "string"}}}}}"#,
    );
    dir
}

#[test]
fn schema_errors_name_the_flag_or_file_and_exit_2_before_touching_anything() {
    let chart = tiny_chart();
    let user = chart.path().join("site.yaml");
    std::fs::write(&user, "web:\n  replicas: 0\n").unwrap();
    // helm must exist but is never run: validation comes first.
    let out = run(&[
        "install",
        "--env",
        "dev",
        "--chart-dir",
        chart.path().to_str().unwrap(),
        "--helm",
        "/bin/sh",
        "-f",
        user.to_str().unwrap(),
        "--set",
        "web.image=5",
        "--set",
        "web.extra=true",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("values do not match the chart's schema (3 problems)"),
        "{err}"
    );
    assert!(
        err.contains(&format!("{}: /web/replicas:", user.display())),
        "{err}"
    );
    assert!(err.contains("--set web.image=5: /web/image:"), "{err}");
    assert!(err.contains("web.extra"), "{err}");

    let bad_set = run(&[
        "install",
        "--env",
        "dev",
        "--chart-dir",
        chart.path().to_str().unwrap(),
        "--helm",
        "/bin/sh",
        "--set",
        "web.replicas",
    ]);
    assert_eq!(bad_set.status.code(), Some(2));
    assert!(
        text(&bad_set.stderr).contains(r#"--set "web.replicas": key "web.replicas" has no value"#),
        "{}",
        text(&bad_set.stderr)
    );
}

#[test]
fn cluster_failures_exit_1() {
    let out = run(&["workflow", "list", "-n", "x"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
}

#[test]
fn completions_are_generated() {
    let out = run(&["completions", "bash"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("kubectl-datajump"));
}

#[test]
fn workflow_validate_and_backfill_read_several_schedules() {
    let file = fixture("two-schedules.yaml");
    let ok = run(&["workflow", "validate", "-f", file.to_str().unwrap()]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));

    // Weekday nights in Shanghai are also every night's: one run each. Monday 2 and Tuesday 3
    // November: two nights in Shanghai, two closes in New York.
    let plan = run(&[
        "workflow",
        "backfill",
        "-f",
        file.to_str().unwrap(),
        "--from",
        "2026-11-02",
        "--to",
        "2026-11-03",
        "--dry-run",
        "-o",
        "json",
    ]);
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&plan.stdout).expect("JSON");
    let runs: Vec<&str> = answer["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(
        runs,
        [
            "closes-202611011800",
            "closes-202611021800",
            "closes-202611022130",
            "closes-202611032130"
        ],
        "02:00 in Shanghai is 18:00 UTC the day before, 16:30 in New York 21:30 UTC"
    );

    let both = run(&[
        "workflow",
        "validate",
        "-f",
        fixture("both-schedule-forms.yaml").to_str().unwrap(),
    ]);
    assert_eq!(both.status.code(), Some(2));
    let err = text(&both.stderr);
    for problem in [
        "spec.schedules: give either spec.schedule (one cron schedule) or spec.schedules (several), not both",
        "spec.timezone: goes with spec.schedule; with spec.schedules, give each entry its own timezone",
        "spec.schedules[1]: \"30 16 * * 1-5\" in America/New_York is spec.schedules[0] again",
    ] {
        assert!(err.contains(problem), "{problem} missing from: {err}");
    }
}
