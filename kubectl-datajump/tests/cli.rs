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
        "report",
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

    let typos = fixture("typos.yaml");
    let typos = typos.to_str().unwrap();
    let out = run(&["workflow", "validate", "-f", typos]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    for line in [
        format!("{typos}: spec.schedul: unknown field \"schedul\" (did you mean \"schedule\"?)"),
        format!(
            "{typos}: spec.tasks[0].comand: unknown field \"comand\" (did you mean \"command\"?)"
        ),
        format!("{typos}: spec.schedule: invalid cron schedule \"0 25 * * *\""),
        format!("{typos}: spec.timezone: unknown time zone \"Mars/Olympus\""),
        format!("{typos}: spec.tasks[1].dependsOn[0]: unknown task \"extrac\""),
    ] {
        assert!(err.contains(&line), "{line:?} in:\n{err}");
    }

    let missing = run(&["workflow", "validate", "-f", "/nonexistent/wf.yaml"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("cannot read /nonexistent/wf.yaml"));
}

#[test]
fn workflow_validate_answers_and_fails_in_json_with_o_json() {
    let ok = run(&[
        "workflow",
        "validate",
        "-f",
        fixture("diamond.yaml").to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&ok.stdout).expect("JSON on stdout");
    assert_eq!(answer["valid"], true);
    assert_eq!(answer["kind"], "Workflow");
    assert_eq!(answer["tasks"], 4);

    let bad = run(&[
        "workflow",
        "validate",
        "-f",
        fixture("typos.yaml").to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(bad.stdout.is_empty());
    let report: serde_json::Value =
        serde_json::from_slice(&bad.stderr).expect("a JSON error on stderr");
    assert_eq!(report["exitCode"], 2);
    assert_eq!(report["reason"], "BadInput");
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 5, "{report:#}");
    assert_eq!(problems[0]["path"], "spec.schedul");
    assert!(
        problems[0]["file"]
            .as_str()
            .unwrap()
            .ends_with("typos.yaml")
    );

    // A command line clap refuses is a JSON error too when it asks for JSON.
    let usage = run(&["workflow", "validate", "-o", "json", "--filenam", "x"]);
    assert_eq!(usage.status.code(), Some(2));
    let report: serde_json::Value = serde_json::from_slice(&usage.stderr).expect("JSON");
    assert_eq!(report["reason"], "BadInput");
    assert!(
        report["error"].as_str().unwrap().contains("--filenam"),
        "{report}"
    );

    let run_manifest = fixture("run.yaml");
    let out = run(&["workflow", "validate", "-f", run_manifest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(
            "spec.workflowNme: unknown field \"workflowNme\" (did you mean \"workflowName\"?)"
        ),
        "{}",
        text(&out.stderr)
    );
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
        "5 problems\n",
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

    // The real chart's schema: `latest` is refused with what is allowed and an example.
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/datajump");
    let latest = run(&[
        "install",
        "--env",
        "dev",
        "--chart-dir",
        real.to_str().unwrap(),
        "--helm",
        "/bin/sh",
        "--set",
        "web.image.tag=latest",
    ]);
    assert_eq!(latest.status.code(), Some(2));
    let err = text(&latest.stderr);
    assert!(
        err.contains(
            "--set web.image.tag=latest: /web/image/tag: \"latest\" is not allowed: expected any value but \"latest\", e.g. \"1.4.2\""
        ),
        "{err}"
    );
    assert!(!err.contains("{\"const\""), "{err}");

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

/// A kubeconfig whose context `edge` points at a port nothing listens on.
fn unreachable_kubeconfig(dir: &Path) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"https://127.0.0.1:1\"}\n\
         users:\n- name: u\n  user: {token: t}\ncontexts:\n- name: edge\n  context: {cluster: c, user: u}\n\
         - name: other\n  context: {cluster: c, user: u}\ncurrent-context: edge\n",
    )
    .unwrap();
    path
}

#[test]
fn cluster_failures_exit_1_naming_the_server_and_context() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = unreachable_kubeconfig(dir.path());
    let kc = kubeconfig.to_str().unwrap();
    let out = run(&["workflow", "list", "-n", "x", "--kubeconfig", kc]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.starts_with(
            "error: cannot reach the API server https://127.0.0.1:1 of context \"edge\""
        ),
        "{err}"
    );
    assert!(err.contains("kubectl cluster-info --context edge"), "{err}");

    let json = run(&[
        "workflow",
        "list",
        "-n",
        "x",
        "--kubeconfig",
        kc,
        "-o",
        "json",
    ]);
    assert_eq!(json.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&json.stderr).expect("a JSON error");
    assert_eq!(report["exitCode"], 1);
    assert_eq!(report["reason"], "Unreachable");
    assert_eq!(report["cluster"]["server"], "https://127.0.0.1:1");
    assert_eq!(report["cluster"]["context"], "edge");
    assert!(json.stdout.is_empty());
}

#[test]
fn a_missing_kubeconfig_or_unknown_context_is_bad_input() {
    let out = run(&["status", "--env", "dev", "--kubeconfig", "/nonexistent/kc"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(
        err.matches("/nonexistent/kc").count(),
        1,
        "the path once: {err}"
    );
    assert!(err.contains("does not exist"), "{err}");
    assert!(!err.contains("os error"), "{err}");
    // KUBECONFIG naming a missing file (as `bin()` sets it) is bad input too.
    let env = run(&["workflow", "list", "-n", "x"]);
    assert_eq!(env.status.code(), Some(2), "{}", text(&env.stderr));
    assert!(text(&env.stderr).contains("(from KUBECONFIG)"));

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = unreachable_kubeconfig(dir.path());
    let kc = kubeconfig.to_str().unwrap();
    let out = run(&[
        "status",
        "--env",
        "dev",
        "--kubeconfig",
        kc,
        "--context",
        "edg",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("context \"edg\" (from --context) does not exist in kubeconfig")
            && text(&out.stderr).contains("its contexts: edge, other"),
        "{}",
        text(&out.stderr)
    );
}

/// `kubectl datajump … | head -1`: the reader closes stdout while the plugin writes. That is no
/// failure: no panic (exit 101 before), no message, exit 0.
#[test]
fn a_closed_stdout_is_a_quiet_exit_not_a_panic() {
    use std::io::{BufRead, BufReader};
    for shell in ["bash", "zsh", "fish"] {
        let mut child = bin()
            .args(["completions", shell])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Read one line, then close the pipe: the script (~100 KiB) is longer than a pipe holds.
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(!first.is_empty());
        let out = child.wait_with_output().unwrap();
        let err = text(&out.stderr);
        assert!(!err.contains("panicked"), "{shell}: {err}");
        assert_ne!(out.status.code(), Some(101), "{shell}: {err}");
        assert_eq!(out.status.code(), Some(0), "{shell}: {err}");
        assert!(err.is_empty(), "{shell}: {err}");
    }
}

/// In a verb's help its own flags come first, the ten global ones after, under their heading.
#[test]
fn help_lists_the_verbs_own_flags_before_the_global_ones() {
    for (args, own) in [
        (
            &["workflow", "submit", "--help"][..],
            &["--filename", "--run-now", "--watch"][..],
        ),
        (
            &["install", "--help"][..],
            &["--values", "--set", "--dry-run", "--wait"][..],
        ),
        (
            &["workflow", "logs", "--help"][..],
            &["--follow", "--task"][..],
        ),
        (
            &["report", "--help"][..],
            &[
                "--output-file",
                "--force",
                "--logs-since",
                "--tail",
                "--max-runs",
            ][..],
        ),
    ] {
        let help = text(&run(args).stdout);
        let global = help
            .find("Global options:")
            .unwrap_or_else(|| panic!("{help}"));
        for flag in own {
            let at = help
                .find(flag)
                .unwrap_or_else(|| panic!("{flag} in {help}"));
            assert!(
                at < global,
                "{flag} should come before the global options:\n{help}"
            );
        }
        for flag in [
            "--kubeconfig",
            "--context",
            "--namespace",
            // Not `--output-file`, a verb's own.
            "--output <",
            "--helm",
        ] {
            let at = help
                .find(flag)
                .unwrap_or_else(|| panic!("{flag} in {help}"));
            assert!(
                at > global,
                "{flag} should be under Global options:\n{help}"
            );
        }
    }
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

/// Where the support bundle cannot go is refused before the cluster is asked anything (here
/// there is no kubeconfig at all): exit 2, nothing written.
#[test]
fn report_refuses_a_place_it_cannot_write_before_touching_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let existing = dir.path().join("ticket.zip");
    std::fs::write(&existing, "earlier bundle").unwrap();
    let missing = dir.path().join("no/such/folder/r.zip");
    for (target, says) in [
        (&existing, "exists already: pass --force"),
        (&missing, "does not exist"),
    ] {
        let out = run(&["report", "--env", "dev", "-o", target.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains(says), "{}", text(&out.stderr));
    }
    assert_eq!(
        std::fs::read_to_string(&existing).unwrap(),
        "earlier bundle"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert_eq!(left.len(), 1, "only the earlier file: {left:?}");
    // With a place to write, the missing kubeconfig is what stops it, also exit 2.
    let fresh = dir.path().join("fresh.zip");
    let out = run(&["report", "--env", "dev", "-o", fresh.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("/nonexistent/kubeconfig"));
    assert!(!fresh.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
