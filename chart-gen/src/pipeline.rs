//! The `validate` pipeline for one environment: values against the schema, `helm template`, then
//! every rendered object against Kubernetes' types, the operators' CRDs and policy.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helm::{Helm, HelmError, TemplateRequest};
use crate::model::Environment;
use crate::overlay;
use crate::validate::values::ValuesValidator;
use crate::validate::{self, Problem, ValidateError, crd::CrdSchemas};

/// Why the pipeline could not run (as opposed to finding problems).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A values file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A values file is not YAML.
    #[error("{path}: not valid YAML: {message}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// helm failed for a reason other than the values (missing binary, broken chart).
    #[error(transparent)]
    Helm(#[from] HelmError),
    /// The validators could not be built or helm's output could not be parsed.
    #[error(transparent)]
    Validate(#[from] ValidateError),
}

/// Inputs shared by every environment.
pub struct Pipeline {
    /// The chart directory.
    pub chart: PathBuf,
    /// The helm binary.
    pub helm: Helm,
    /// Operator CRDs plus the scheduler's own.
    pub crds: CrdSchemas,
    /// The chart's values schema.
    pub values: ValuesValidator,
    /// The release name to render with (`datajump` unless changed).
    pub release: String,
}

/// What validating one environment found.
#[derive(Debug)]
pub struct EnvReport {
    /// The environment.
    pub env: Environment,
    /// Every problem, in the order found.
    pub problems: Vec<Problem>,
    /// The values Helm rendered with (every file merged as Helm merges them).
    pub values: Value,
    /// The rendered objects (none when the values were refused).
    pub objects: Vec<Value>,
    /// Time spent in helm.
    pub helm_time: Duration,
    /// Time spent validating in-process (schema, objects, policy).
    pub check_time: Duration,
}

/// Reads a YAML values file as JSON.
pub fn read_values(path: &Path) -> Result<Value, PipelineError> {
    let text = fs::read_to_string(path).map_err(|source| PipelineError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let value: Value = serde_yaml::from_str(&text).map_err(|e| PipelineError::Yaml {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(if value.is_null() {
        Value::Object(Default::default())
    } else {
        value
    })
}

impl Pipeline {
    /// Builds the validators: the chart's `values.schema.json`, the CRDs in `crd_dir` (if any)
    /// and the scheduler's CRDs.
    pub fn new(chart: PathBuf, helm: Helm, crd_dir: Option<&Path>) -> Result<Self, PipelineError> {
        let schema_path = chart.join("values.schema.json");
        let schema_text =
            fs::read_to_string(&schema_path).map_err(|source| PipelineError::Read {
                path: schema_path.clone(),
                source,
            })?;
        let schema: Value =
            serde_json::from_str(&schema_text).map_err(|e| PipelineError::Yaml {
                path: schema_path,
                message: e.to_string(),
            })?;
        let mut crds = match crd_dir {
            Some(dir) => CrdSchemas::load_dir(dir)?,
            None => CrdSchemas::new(),
        };
        for crd in datajump_api::crds() {
            crds.add(crd);
        }
        Ok(Self {
            chart,
            helm,
            crds,
            values: ValuesValidator::new(&schema)?,
            release: "datajump".into(),
        })
    }

    /// The values files for `env`, in Helm's order: defaults, the environment's file, extras.
    pub fn values_files(&self, env: Environment, extra: &[PathBuf]) -> Vec<PathBuf> {
        let mut files = vec![
            self.chart.join("values.yaml"),
            self.chart.join(env.values_file_name()),
        ];
        files.extend(extra.iter().cloned());
        files
    }

    /// Validates one environment.
    pub fn run(&self, env: Environment, extra: &[PathBuf]) -> Result<EnvReport, PipelineError> {
        let files = self.values_files(env, extra);
        let mut layers = Vec::with_capacity(files.len());
        for f in &files {
            layers.push(read_values(f)?);
        }
        let start = Instant::now();
        let values = merge_layers(&layers);
        let problems = self.check_values(env, &files, &layers);
        let mut check_time = start.elapsed();
        if !problems.is_empty() {
            // Helm would refuse these values too; report them instead of helm's first error.
            return Ok(EnvReport {
                env,
                problems,
                values,
                objects: Vec::new(),
                helm_time: Duration::ZERO,
                check_time,
            });
        }
        let start = Instant::now();
        let rendered = self.helm.template(&TemplateRequest {
            release: &self.release,
            namespace: &env.default_namespace(),
            chart: &self.chart,
            values: files[1..].to_vec(),
            set: Vec::new(),
        })?;
        let helm_time = start.elapsed();
        let start = Instant::now();
        let objects = validate::parse_manifests(&rendered)?;
        let problems = validate::validate_rendered(env, &objects, &self.crds);
        check_time += start.elapsed();
        Ok(EnvReport {
            env,
            problems,
            values,
            objects,
            helm_time,
            check_time,
        })
    }

    /// Merges the layers like Helm and validates them; each problem names the last file that
    /// set the offending field.
    pub fn check_values(
        &self,
        env: Environment,
        files: &[PathBuf],
        layers: &[Value],
    ) -> Vec<Problem> {
        let merged = merge_layers(layers);
        let mut problems = Vec::new();
        for e in self.values.validate(&merged) {
            let file = files
                .iter()
                .zip(layers)
                .rev()
                .find(|(_, layer)| layer.pointer(&e.pointer).is_some())
                .map(|(f, _)| f.clone())
                .unwrap_or_else(|| files[0].clone());
            problems.extend(Problem::from_values(Some(env), file, vec![e]));
        }
        problems
    }
}

/// The layers merged in order, as Helm merges values files.
fn merge_layers(layers: &[Value]) -> Value {
    let mut merged = Value::Object(Default::default());
    for layer in layers {
        overlay::merge(&mut merged, layer);
    }
    merged
}
