//! The in-process part of `chart-gen validate --all`: values schema validation, parsing of the
//! rendered manifests, built-in and CRD schema validation, and policy checks for all four
//! environments. `helm template` itself runs once, in setup, and is not measured.
//!
//! The real chart (`charts/datajump`, rendered with helm from `.tools/bin` or PATH, values.yaml
//! overlaid with the environment's file as Helm does) is used when it exists; otherwise the hand-written prod render in `tests/fixtures/validate` stands in for
//! every environment. Operator CRDs come from `DATAJUMP_CRD_DIR` or `../shared/crds`.
//!
//! Two figures:
//! - `validate_all_cold`: what one command run does — index the CRD directory, compile the values
//!   schema, parse each render, and validate, so CRD parsing and validator compilation are paid
//!   inside the measurement;
//! - `validate_all_warm`: the same checks with schemas already loaded and compiled.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chart_gen::model::Environment;
use chart_gen::validate::values::ValuesValidator;
use chart_gen::validate::{CrdSchemas, parse_manifests, validate_rendered};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::Value;

/// One environment's inputs, prepared in setup.
struct EnvInput {
    env: Environment,
    values: Value,
    manifests: String,
}

struct Inputs {
    source: String,
    schema: Value,
    crd_dirs: Vec<PathBuf>,
    envs: Vec<EnvInput>,
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("chart-gen sits in the workspace")
        .to_path_buf()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(path: &Path) -> Value {
    serde_yaml::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn helm(root: &Path) -> Option<PathBuf> {
    let pinned = root.join(".tools/bin/helm");
    if pinned.is_file() {
        return Some(pinned);
    }
    let found = Command::new("helm").arg("version").output();
    found
        .is_ok_and(|o| o.status.success())
        .then(|| PathBuf::from("helm"))
}

/// The operator CRDs, if present (the scheduler's own come from its crate, as in the command).
fn crd_dirs(root: &Path) -> Vec<PathBuf> {
    let shared = std::env::var_os("DATAJUMP_CRD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/crds"));
    [shared].into_iter().filter(|d| d.is_dir()).collect()
}

/// The real chart rendered by helm, when it exists.
fn chart_inputs(root: &Path) -> Option<Inputs> {
    let chart = root.join("charts/datajump");
    if !chart.join("values-prod.yaml").is_file() {
        return None;
    }
    let helm = helm(root)?;
    let mut envs = Vec::new();
    for env in Environment::ALL {
        let values_file = chart.join(env.values_file_name());
        let output = Command::new(&helm)
            .arg("template")
            .arg("datajump")
            .arg(&chart)
            .arg("--namespace")
            .arg(env.default_namespace())
            .arg("-f")
            .arg(&values_file)
            .output()
            .expect("helm runs");
        assert!(
            output.status.success(),
            "helm template failed for {env}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        // Helm validates the defaults overlaid with the environment's file; so does the command.
        let mut values = yaml(&chart.join("values.yaml"));
        chart_gen::overlay::merge(&mut values, &yaml(&values_file));
        envs.push(EnvInput {
            env,
            values,
            manifests: String::from_utf8(output.stdout).expect("helm writes UTF-8"),
        });
    }
    Some(Inputs {
        source: "charts/datajump rendered by helm".to_string(),
        schema: serde_json::from_str(&read(&chart.join("values.schema.json")))
            .expect("values schema is JSON"),
        crd_dirs: crd_dirs(root),
        envs,
    })
}

/// The test fixtures, standing in for every environment until the chart exists.
fn fixture_inputs(root: &Path) -> Inputs {
    let dir = root.join("chart-gen/tests/fixtures/validate");
    let mut manifests = read(&dir.join("prod-render.yaml"));
    let crd_dirs = crd_dirs(root);
    if !crd_dirs.is_empty() {
        manifests.push_str(&read(&dir.join("operator-crs.yaml")));
    }
    let values = yaml(&dir.join("values-good.yaml"));
    Inputs {
        source: "tests/fixtures/validate (no rendered chart yet)".to_string(),
        schema: serde_json::from_str(&read(&dir.join("values.schema.json"))).expect("JSON"),
        crd_dirs,
        envs: Environment::ALL
            .into_iter()
            .map(|env| EnvInput {
                env,
                values: values.clone(),
                manifests: manifests.clone(),
            })
            .collect(),
    }
}

fn load_crds(dirs: &[PathBuf]) -> CrdSchemas {
    let mut crds = CrdSchemas::new();
    for dir in dirs {
        let loaded = CrdSchemas::load_dir(dir).expect("CRD directory loads");
        crds.merge(loaded);
    }
    for crd in datajump_api::crds() {
        crds.add(crd);
    }
    crds
}

/// Everything `validate --all` does in process, from scratch. Returns the number of problems so
/// the work cannot be optimised away.
fn validate_all_cold(inputs: &Inputs) -> usize {
    let crds = load_crds(&inputs.crd_dirs);
    let values = ValuesValidator::new(&inputs.schema).expect("schema compiles");
    validate_all(inputs, &values, &crds)
}

fn validate_all(inputs: &Inputs, values: &ValuesValidator, crds: &CrdSchemas) -> usize {
    let mut problems = 0;
    for input in &inputs.envs {
        problems += values.validate(&input.values).len();
        let objects = parse_manifests(&input.manifests).expect("render parses");
        problems += validate_rendered(input.env, &objects, crds).len();
    }
    problems
}

fn bench(c: &mut Criterion) {
    let root = workspace_root();
    let inputs = chart_inputs(&root).unwrap_or_else(|| fixture_inputs(&root));
    let objects: usize = inputs
        .envs
        .iter()
        .map(|e| parse_manifests(&e.manifests).map_or(0, |o| o.len()))
        .sum();
    eprintln!(
        "validate bench: {} ({} objects over 4 environments; CRD dirs: {:?}; {} problems)",
        inputs.source,
        objects,
        inputs.crd_dirs,
        validate_all_cold(&inputs)
    );

    let mut group = c.benchmark_group("validate");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("validate_all_cold", |b| {
        b.iter(|| validate_all_cold(&inputs));
    });
    let crds = load_crds(&inputs.crd_dirs);
    let values = ValuesValidator::new(&inputs.schema).expect("schema compiles");
    validate_all(&inputs, &values, &crds); // compile the CRD validators once
    group.bench_function("validate_all_warm", |b| {
        b.iter(|| validate_all(&inputs, &values, &crds));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
