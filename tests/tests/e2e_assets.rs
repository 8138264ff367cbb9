//! The end-to-end assets e2e.yml runs on kind, checked here where no cluster exists: the sample
//! workflow is a valid `Workflow` for the scheduler's own API and validation (no misspelled field
//! slips through), its expectations name exactly its tasks, and `verify_run.py` accepts a run that
//! meets them and rejects each way a run can fall short. The sample with several schedules
//! (`market-close.yaml`) is checked the same way.

use datajump_api::Workflow;
use datajump_api::backfill::{self, Bound, Windows};
use datajump_api::schedules::Schedules;
use datajump_api::validate::validate_workflow;
use serde_json::{Value as Json, json};
use serde_yaml::Value;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e")
}

fn read_yaml(name: &str) -> Value {
    let path = e2e_dir().join(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Key paths present in `original` but absent from `known` (the typed round trip): fields the
/// scheduler's types would silently drop.
fn unknown_keys(path: &str, original: &Value, known: &Value, out: &mut Vec<String>) {
    match (original, known) {
        (Value::Mapping(o), Value::Mapping(k)) => {
            for (key, value) in o {
                let name = key.as_str().unwrap_or("?");
                match k.get(key) {
                    Some(kv) => unknown_keys(&format!("{path}.{name}"), value, kv, out),
                    None => out.push(format!("{path}.{name}")),
                }
            }
        }
        (Value::Sequence(o), Value::Sequence(k)) => {
            for (i, (ov, kv)) in o.iter().zip(k).enumerate() {
                unknown_keys(&format!("{path}[{i}]"), ov, kv, out);
            }
        }
        _ => {}
    }
}

fn task_names(sample: &Value) -> BTreeSet<String> {
    sample["spec"]["tasks"]
        .as_sequence()
        .expect("spec.tasks")
        .iter()
        .map(|t| t["name"].as_str().expect("task name").to_string())
        .collect()
}

#[test]
fn sample_workflow_is_valid_for_the_scheduler_api() {
    let raw = read_yaml("sample-workflow.yaml");
    let wf: Workflow = serde_yaml::from_value(raw.clone()).expect("sample is a Workflow");
    if let Err(errors) = validate_workflow(&wf) {
        panic!("sample workflow fails the scheduler's validation: {errors:?}");
    }
    let round_trip = serde_yaml::to_value(&wf).expect("serialize");
    let mut unknown = Vec::new();
    unknown_keys("", &raw, &round_trip, &mut unknown);
    assert!(
        unknown.is_empty(),
        "fields the Workflow type does not know: {unknown:?}"
    );
    // A diamond: something runs in parallel and something joins.
    let deps: Vec<usize> = wf.spec.tasks.iter().map(|t| t.depends_on.len()).collect();
    assert!(
        deps.contains(&0) && deps.contains(&2),
        "expected a root and a join, got {deps:?}"
    );
}

/// The sample with several schedules (`market-close.yaml`): valid, every field known, and its
/// comment right about the week it backfills.
#[test]
fn several_schedules_sample_is_valid_and_backfills_a_week_as_its_comment_says() {
    let raw = read_yaml("market-close.yaml");
    let wf: Workflow = serde_yaml::from_value(raw.clone()).expect("sample is a Workflow");
    if let Err(errors) = validate_workflow(&wf) {
        panic!("market-close.yaml fails the scheduler's validation: {errors}");
    }
    let mut unknown = Vec::new();
    let round_trip = serde_yaml::to_value(&wf).expect("serialize");
    unknown_keys("", &raw, &round_trip, &mut unknown);
    assert!(
        unknown.is_empty(),
        "fields the Workflow type does not know: {unknown:?}"
    );
    let schedules = Schedules::of(&wf.spec)
        .expect("valid schedules")
        .expect("scheduled");
    assert_eq!(schedules.len(), 4);
    let day = |d: &str| Bound::parse("--from", d).expect("a date");
    let now = chrono::DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
        .expect("a time")
        .to_utc();
    let windows =
        Windows::new(day("2026-11-02"), day("2026-11-08"), &schedules, now).expect("a past week");
    let plan =
        backfill::plan("market-close", &schedules, &windows, &BTreeSet::new()).expect("a plan");
    assert_eq!(
        plan.create.len(),
        16,
        "three closes a weekday and Saturday's reconciliation"
    );
}

#[test]
fn unknown_key_check_catches_a_misspelled_field() {
    let mut raw = read_yaml("sample-workflow.yaml");
    raw["spec"]["tasks"][0]["dependOn"] = Value::Sequence(vec![]);
    let wf: Workflow = serde_yaml::from_value(raw.clone()).expect("still deserializes");
    let mut unknown = Vec::new();
    unknown_keys(
        "",
        &raw,
        &serde_yaml::to_value(&wf).expect("serialize"),
        &mut unknown,
    );
    assert_eq!(unknown, [".spec.tasks[0].dependOn"]);
}

#[test]
fn expectations_name_exactly_the_sample_tasks() {
    let sample = read_yaml("sample-workflow.yaml");
    let expect = read_yaml("expectations.yaml");
    assert_eq!(expect["workflow"], sample["metadata"]["name"]);
    assert_eq!(expect["namespace"], sample["metadata"]["namespace"]);
    let expected: BTreeSet<String> = expect["tasks"]
        .as_mapping()
        .expect("tasks")
        .keys()
        .map(|k| k.as_str().expect("name").to_string())
        .collect();
    assert_eq!(expected, task_names(&sample));
    // The e2e workflow runs the same files it is checked against here.
    let e2e = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../.github/workflows/e2e.yml"),
    )
    .expect("read e2e.yml");
    for used in [
        "tests/e2e/sample-workflow.yaml",
        "tests/e2e/expectations.yaml",
        "tests/e2e/verify_run.py",
        "tests/e2e/load-images.sh",
    ] {
        assert!(e2e.contains(used), "e2e.yml does not use {used}");
    }
    let label = format!(
        "datajump.io/workflow={}",
        sample["metadata"]["name"].as_str().expect("name")
    );
    assert!(
        e2e.contains(&label),
        "e2e.yml must select the sample's runs by {label}"
    );
}

/// A run of the sample as the scheduler would report it, every task succeeded in order.
fn good_run() -> Json {
    let task = |name: &str, start: u32, end: u32, attempts: u32| {
        json!({"name": name, "phase": "Succeeded", "attempts": attempts,
               "startTime": format!("2026-11-23T05:00:{start:02}Z"),
               "completionTime": format!("2026-11-23T05:00:{end:02}Z")})
    };
    json!({"apiVersion": "v1", "kind": "List", "items": [
        {"metadata": {"name": "e2e-diamond-older", "creationTimestamp": "2026-11-22T05:00:00Z"},
         "status": {"phase": "Failed", "tasks": []}},
        {"metadata": {"name": "e2e-diamond-manual", "creationTimestamp": "2026-11-23T05:00:00Z"},
         "status": {"phase": "Succeeded", "tasks": [
            task("extract", 1, 4, 1),
            task("transform-orders", 5, 9, 2),
            task("transform-users", 5, 8, 1),
            task("load", 10, 13, 1)]}}]})
}

fn verify(run: &Json) -> (Option<i32>, String) {
    let dir = e2e_dir();
    let mut child = Command::new("python3")
        .arg(dir.join("verify_run.py"))
        .arg("--expect")
        .arg(dir.join("expectations.yaml"))
        .arg("--workflow")
        .arg(dir.join("sample-workflow.yaml"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3 (with PyYAML)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(run.to_string().as_bytes())
        .expect("write run");
    let out = child.wait_with_output().expect("wait");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn verify_run_accepts_the_expected_run() {
    let (code, out) = verify(&good_run());
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("run e2e-diamond-manual: 4 tasks as expected"),
        "{out}"
    );
}

#[test]
fn verify_run_rejects_each_kind_of_shortfall() {
    let newest = |edit: &dyn Fn(&mut Json)| {
        let mut run = good_run();
        edit(&mut run["items"][1]["status"]);
        verify(&run)
    };
    let (code, out) = newest(&|s| s["phase"] = json!("Failed"));
    assert_eq!(code, Some(1));
    assert!(
        out.contains("phase 'Failed', expected 'Succeeded'"),
        "{out}"
    );

    let (code, out) = newest(&|s| s["tasks"][2]["phase"] = json!("Skipped"));
    assert_eq!(code, Some(1));
    assert!(
        out.contains("task transform-users: phase 'Skipped'"),
        "{out}"
    );

    let (code, out) = newest(&|s| s["tasks"][0]["attempts"] = json!(2));
    assert_eq!(code, Some(1));
    assert!(
        out.contains("task extract: 2 attempts, expected at most 1"),
        "{out}"
    );

    let (code, out) = newest(&|s| s["tasks"][3]["startTime"] = json!("2026-11-23T05:00:08Z"));
    assert_eq!(code, Some(1));
    assert!(
        out.contains("task load: started 2026-11-23T05:00:08Z before dependency transform-orders"),
        "{out}"
    );

    let (code, out) = newest(&|s| {
        s["tasks"].as_array_mut().expect("tasks").remove(1);
    });
    assert_eq!(code, Some(1));
    assert!(out.contains("task transform-orders missing"), "{out}");

    let (code, out) = verify(&json!({"kind": "List", "items": []}));
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("no WorkflowRun found"), "{out}");
}
