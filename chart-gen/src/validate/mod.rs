//! Validation of the chart's values and of the objects `helm template` renders from them.
//!
//! One module per check, each usable on its own (the `chart-gen validate` command and the kubectl
//! plugin call them):
//! - [`values`]: a values file against the generated values JSON schema;
//! - [`kubernetes`]: built-in kinds against Kubernetes' own types, strictly (unknown fields are
//!   errors, like the API server's strict field validation), and removed APIs;
//! - [`crd`]: custom resources against the operators' CRD schemas with structural-schema semantics;
//! - [`policy`]: security, availability and labelling conventions.
//!
//! [`validate_rendered`] runs the object checks over one environment's render and returns every
//! [`Problem`] found; it never stops at the first one.

pub mod crd;
pub mod kubernetes;
pub mod policy;
pub mod values;

mod explain;
mod pointer;

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use crate::model::Environment;

pub use crd::CrdSchemas;

/// Everything that can stop a validation from running at all (as opposed to a [`Problem`] found
/// in the validated input).
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// The values JSON schema itself is not a valid schema.
    #[error("invalid values schema: {0}")]
    InvalidSchema(String),
    /// A directory of CRDs could not be listed.
    #[error("cannot read CRD directory {path}: {source}")]
    ReadDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A CRD file is not a CustomResourceDefinition (or not valid YAML).
    #[error("{path}: not a valid apiextensions.k8s.io/v1 CustomResourceDefinition: {message}")]
    InvalidCrd { path: PathBuf, message: String },
    /// A document of a multi-document YAML stream could not be parsed.
    #[error("document {index} of the manifests is not valid YAML: {message}")]
    Manifest { index: usize, message: String },
}

/// Which family of checks found a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// A values file does not match the values JSON schema.
    ValuesSchema,
    /// A built-in object does not match its Kubernetes type, or uses a removed API.
    KubernetesSchema,
    /// A custom resource does not match its CRD schema, or has no known schema.
    CrdSchema,
    /// A pod security rule (non-root, read-only root filesystem, resources, probes, ...).
    Security,
    /// An availability rule for staging and prod (PDBs, no memory overcommit, spreading).
    Availability,
    /// A chart convention (standard labels, explicit namespaces).
    Convention,
}

impl Rule {
    /// The kebab-case name shown in reports and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ValuesSchema => "values-schema",
            Self::KubernetesSchema => "kubernetes-schema",
            Self::CrdSchema => "crd-schema",
            Self::Security => "security",
            Self::Availability => "availability",
            Self::Convention => "convention",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifies one rendered object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
}

impl ObjectRef {
    /// Reads kind, name and namespace from an object; missing parts become `?` so that a broken
    /// object can still be named in a report.
    pub fn of(obj: &Value) -> Self {
        let text = |ptr: &str| obj.pointer(ptr).and_then(Value::as_str).map(str::to_string);
        Self {
            kind: text("/kind").unwrap_or_else(|| "?".to_string()),
            name: text("/metadata/name").unwrap_or_else(|| "?".to_string()),
            namespace: text("/metadata/namespace"),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// A field-level error inside one object: a JSON pointer and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// JSON pointer to the offending field (`/spec/template/spec/containers/0/image`).
    pub path: String,
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// One problem found by validation, printed as one line:
/// `<env>: <Kind>/<name>: <path>: <message>` for objects and `<env>: <file>: <pointer>: <message>`
/// for values files (absent parts are left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub env: Option<Environment>,
    pub file: Option<PathBuf>,
    pub object: Option<ObjectRef>,
    /// JSON pointer inside the object or values file; empty for whole-object problems.
    pub path: String,
    pub message: String,
    pub rule: Rule,
}

impl Problem {
    /// A problem in a rendered object.
    pub fn object(
        env: Environment,
        obj: &Value,
        rule: Rule,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            env: Some(env),
            file: None,
            object: Some(ObjectRef::of(obj)),
            path: path.into(),
            message: message.into(),
            rule,
        }
    }

    /// A problem with the render as a whole (e.g. a missing default-deny NetworkPolicy).
    pub fn render(env: Environment, rule: Rule, message: impl Into<String>) -> Self {
        Self {
            env: Some(env),
            file: None,
            object: None,
            path: String::new(),
            message: message.into(),
            rule,
        }
    }

    /// Problems for a values file, one per schema error.
    pub fn from_values(
        env: Option<Environment>,
        file: impl Into<PathBuf>,
        errors: Vec<values::ValueError>,
    ) -> Vec<Self> {
        let file = file.into();
        errors
            .into_iter()
            .map(|e| Self {
                env,
                file: Some(file.clone()),
                object: None,
                path: e.pointer,
                message: e.message,
                rule: Rule::ValuesSchema,
            })
            .collect()
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::with_capacity(5);
        if let Some(env) = self.env {
            parts.push(env.to_string());
        }
        if let Some(file) = &self.file {
            parts.push(file.display().to_string());
        }
        if let Some(object) = &self.object {
            parts.push(object.to_string());
        }
        if !self.path.is_empty() {
            parts.push(self.path.clone());
        }
        parts.push(self.message.clone());
        f.write_str(&parts.join(": "))
    }
}

/// Parses multi-document YAML (the output of `helm template`) into JSON values, skipping empty
/// documents (Helm emits them for templates whose condition is false).
pub fn parse_manifests(yaml: &str) -> Result<Vec<Value>, ValidateError> {
    let mut objects = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
        let value = Value::deserialize(document).map_err(|e| ValidateError::Manifest {
            index: index + 1,
            message: e.to_string(),
        })?;
        match value {
            Value::Null => {}
            Value::Object(_) => objects.push(value),
            other => {
                return Err(ValidateError::Manifest {
                    index: index + 1,
                    message: format!("expected a Kubernetes object (a mapping), found {other}"),
                });
            }
        }
    }
    Ok(objects)
}

/// Runs every object check over one environment's rendered objects: the built-in Kubernetes
/// types, the CRD schemas, and the policy rules. An object whose kind is neither built in nor
/// covered by a loaded CRD is itself a problem, so nothing passes unchecked.
pub fn validate_rendered(env: Environment, objects: &[Value], crds: &CrdSchemas) -> Vec<Problem> {
    crds.prepare(objects);
    let mut problems = Vec::new();
    for obj in objects {
        problems.extend(check_schema(env, obj, crds));
    }
    problems.extend(policy::check(env, objects));
    problems
}

/// The schema check of one object: built-in type first, then CRDs.
fn check_schema(env: Environment, obj: &Value, crds: &CrdSchemas) -> Vec<Problem> {
    let has = |field: &str| obj.get(field).and_then(Value::as_str).is_some();
    if !has("apiVersion") || !has("kind") {
        let message = "object has no apiVersion or kind";
        return vec![Problem::object(
            env,
            obj,
            Rule::KubernetesSchema,
            "",
            message,
        )];
    }
    let (rule, errors) = if let Some(errors) = kubernetes::check_builtin(obj) {
        (Rule::KubernetesSchema, errors)
    } else if let Some(errors) = crds.check(obj) {
        (Rule::CrdSchema, errors)
    } else if crds.is_skipped(obj) {
        return Vec::new();
    } else {
        let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("?");
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("?");
        let message = format!("no schema for {api_version}/{kind}: pass --crd-dir with its CRD");
        (Rule::CrdSchema, vec![FieldError::new("", message)])
    };
    errors
        .into_iter()
        .map(|e| Problem::object(env, obj, rule, e.path, e.message))
        .collect()
}
