//! Every boolean in the values model, flipped in every environment and rendered with the real
//! helm. A toggle must do something (change the render in at least one environment), must never
//! break the render (a nil pointer, an invalid object), and may be refused only clearly: by the
//! values schema, by a deliberate `fail` of the chart, or — for the security-context switches —
//! by the security policy. Catches toggles the templates ignore (as `web.metrics` once was).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::support::{helm, reference_crds, repo_root};
use chart_gen::generate::CHART_DIR;
use chart_gen::helm::TemplateRequest;
use chart_gen::model::{Environment, PLATFORM_SERVICES};
use chart_gen::overlay::merge;
use chart_gen::pipeline::read_values;
use chart_gen::validate::{self, CrdSchemas, Rule};
use serde_json::{Value, json};

/// The merged values of an environment (values.yaml under values-<env>.yaml), as Helm merges.
fn merged(env: Environment) -> Value {
    let chart = repo_root().join(CHART_DIR);
    let mut base = read_values(&chart.join("values.yaml")).unwrap();
    let overlay = read_values(&chart.join(env.values_file_name())).unwrap();
    merge(&mut base, &overlay);
    base
}

fn booleans(v: &Value, path: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                booleans(x, &format!("{path}/{k}"), out);
            }
        }
        Value::Bool(_) => {
            out.insert(path.to_string());
        }
        _ => {}
    }
}

/// `{"a": {"b": value}}` for the pointer `/a/b`.
fn nested(pointer: &str, value: Value) -> Value {
    pointer
        .split('/')
        .skip(1)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .fold(value, |inner, key| json!({ key: inner }))
}

/// Settings a toggle needs beside itself to be meaningful.
fn companion(pointer: &str) -> Value {
    match pointer {
        "/httpRoute/enabled" => json!({"httpRoute": {"parentRefs": [{"name": "gw"}]}}),
        "/elasticsearch/external/caInSecret" => json!({"elasticsearch": {"mode": "external",
            "external": {"credentialsSecret": "es-user"}}}),
        _ => json!({}),
    }
}

/// Where a toggle is flipped. The security policy is the same everywhere, so its switches are
/// flipped in prod; the six platform services share one template, so `web` is flipped in every
/// environment and the other five in staging, which enables the most of what they render.
fn environments(pointer: &str) -> Vec<Environment> {
    let other_service = PLATFORM_SERVICES
        .iter()
        .any(|s| s.values_key != "web" && pointer.starts_with(&format!("/{}/", s.values_key)));
    if is_security_switch(pointer) {
        vec![Environment::Prod]
    } else if other_service {
        vec![Environment::Staging]
    } else {
        Environment::ALL.to_vec()
    }
}

fn is_security_switch(pointer: &str) -> bool {
    pointer.contains("/containerSecurityContext/") || pointer.contains("/podSecurityContext/")
}

enum Outcome {
    /// Rendered: the objects and the problems chart-gen validate reports for them.
    Rendered(Vec<Value>, Vec<validate::Problem>),
    /// Refused clearly (values schema or the chart's own `fail`), with helm's message.
    Refused(String),
}

fn render(env: Environment, extra: &Value, crds: &CrdSchemas) -> Result<Outcome, String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("toggle.yaml");
    std::fs::write(&file, serde_json::to_string(extra).unwrap()).unwrap();
    let chart = repo_root().join(CHART_DIR);
    let namespace = env.default_namespace();
    let values: Vec<PathBuf> = vec![chart.join(env.values_file_name()), file];
    match helm().template(&TemplateRequest {
        release: "datajump",
        namespace: &namespace,
        chart: &chart,
        values,
        set: Vec::new(),
    }) {
        Ok(out) => {
            let objects = validate::parse_manifests(&out).map_err(|e| e.to_string())?;
            let problems = validate::validate_rendered(env, &objects, crds);
            Ok(Outcome::Rendered(objects, problems))
        }
        Err(e) => {
            let message = e.to_string();
            let broken = [
                "nil pointer",
                "error converting YAML",
                "can't evaluate",
                "wrong type",
            ];
            if broken.iter().any(|b| message.contains(b)) {
                Err(message)
            } else {
                Ok(Outcome::Refused(message))
            }
        }
    }
}

/// The reference CRDs and the scheduler's own, for validating each toggled render.
fn crds() -> Option<CrdSchemas> {
    let mut crds = reference_crds()?;
    for crd in datajump_api::crds() {
        crds.add(crd);
    }
    Some(crds)
}

/// What flipping `pointer` in `env` did, or why it is wrong.
fn flip(
    env: Environment,
    pointer: &str,
    values: &Value,
    baseline: &[Value],
    crds: &CrdSchemas,
) -> Result<bool, String> {
    let current = values
        .pointer(pointer)
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut extra = companion(pointer);
    merge(&mut extra, &nested(pointer, Value::Bool(!current)));
    let companion_only = companion(pointer);
    let base = if companion_only == json!({}) {
        baseline.to_vec()
    } else {
        match render(env, &companion_only, crds)? {
            Outcome::Rendered(objects, _) => objects,
            Outcome::Refused(_) => baseline.to_vec(),
        }
    };
    match render(env, &extra, crds)? {
        Outcome::Refused(_) => Ok(true),
        Outcome::Rendered(objects, problems) => {
            let security = problems.iter().any(|p| p.rule == Rule::Security);
            if is_security_switch(pointer) {
                // Weakening a security context must be caught by the policy; strengthening one
                // (e.g. runAsNonRoot already true) cannot happen, all defaults are hardened.
                return if security || objects == base {
                    Ok(objects != base)
                } else {
                    Err("the policy let a weakened security context through".into())
                };
            }
            let broken: Vec<String> = problems
                .iter()
                .filter(|p| p.rule != Rule::Availability)
                // The Gateway API CRDs are not among the schemas tested against.
                .filter(|p| !p.to_string().contains("gateway.networking.k8s.io"))
                .map(ToString::to_string)
                .collect();
            if broken.is_empty() {
                Ok(objects != base)
            } else {
                Err(broken.join("\n"))
            }
        }
    }
}

#[test]
fn every_toggle_works_both_ways_in_every_environment() {
    let Some(crds) = crds() else { return };
    let envs: Vec<(Environment, Value, Vec<Value>)> = Environment::ALL
        .iter()
        .map(|&env| {
            let baseline = match render(env, &json!({}), &crds).unwrap() {
                Outcome::Rendered(objects, _) => objects,
                Outcome::Refused(e) => panic!("{env}: {e}"),
            };
            (env, merged(env), baseline)
        })
        .collect();
    let mut toggles = BTreeSet::new();
    for (_, values, _) in &envs {
        booleans(values, "", &mut toggles);
    }
    assert!(toggles.len() > 50, "found only {} toggles", toggles.len());

    let work: Mutex<Vec<&String>> = Mutex::new(toggles.iter().collect());
    let effective: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                loop {
                    let Some(pointer) = work.lock().unwrap().pop() else {
                        break;
                    };
                    for (env, values, baseline) in envs
                        .iter()
                        .filter(|(e, ..)| environments(pointer).contains(e))
                    {
                        match flip(*env, pointer, values, baseline, &crds) {
                            Ok(true) => {
                                effective.lock().unwrap().insert(pointer.clone());
                            }
                            Ok(false) => {}
                            Err(e) => failures
                                .lock()
                                .unwrap()
                                .push(format!("{env} {pointer}: {e}")),
                        }
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    let effective = effective.into_inner().unwrap();
    let ignored: Vec<&String> = toggles.iter().filter(|t| !effective.contains(*t)).collect();
    assert!(
        ignored.is_empty(),
        "toggles that change nothing in any environment: {ignored:?}"
    );
}
