//! Validation of custom resources against the CRDs of the operators the chart targets (MySQL
//! Operator, Strimzi, OT redis-operator, ECK, MinIO, prometheus-operator, cert-manager) and the
//! scheduler's own CRDs.
//!
//! Each served version's `openAPIV3Schema` is converted into a draft 2020-12 JSON Schema with the
//! API server's structural-schema semantics (see [`structural`]), then checked with the
//! `jsonschema` crate. The operator CRDs are large (up to 500 KB of YAML each) and a render uses
//! only some of them, so loading is lazy: [`CrdSchemas::load_dir`] only reads the files and
//! indexes them by group and kind; a CRD is parsed the first time one of its resources is checked,
//! and each version's validator is compiled once, on first use, then cached.
//!
//! The converted schemas are also handed out ([`CrdSchemas::served_schemas`]) so that kubeconform
//! in CI checks with the same schemas as `chart-gen validate` (`chart-gen crds schemas`).

mod structural;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use jsonschema::{Draft, Validator};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

use super::explain::{self, UnknownAt};
use super::{FieldError, ValidateError, kubernetes};

/// The CRD schemas known to a validation run, keyed by API group and kind.
#[derive(Default)]
pub struct CrdSchemas {
    crds: HashMap<GroupKind, Crd>,
    /// API groups whose resources pass unchecked when no CRD covers them.
    unchecked_groups: HashSet<String>,
}

/// One served CRD version's converted JSON Schema.
#[derive(Debug, Clone, PartialEq)]
pub struct ServedSchema {
    pub group: String,
    pub kind: String,
    pub version: String,
    /// Draft 2020-12, with the API server's structural-schema semantics (see [`structural`]).
    pub schema: Value,
}

impl fmt::Debug for CrdSchemas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kinds: Vec<String> = self.crds.keys().map(ToString::to_string).collect();
        kinds.sort();
        f.debug_struct("CrdSchemas").field("kinds", &kinds).finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GroupKind {
    group: String,
    kind: String,
}

impl fmt::Display for GroupKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.kind, self.group)
    }
}

/// One CRD: where it came from, its source, and its parsed form once needed.
struct Crd {
    key: GroupKind,
    origin: String,
    source: Source,
    parsed: OnceLock<Result<Parsed, String>>,
}

enum Source {
    /// YAML text read from a file, parsed on first use.
    Yaml(String),
    /// An already-typed CRD (e.g. the scheduler's own), serialized to JSON.
    Json(Value),
    /// A CRD that could not be turned into JSON; the reason is reported when it is used.
    Invalid(String),
    /// Parsed when it was loaded (files that the quick index could not read).
    Parsed,
}

/// The parts of a CRD validation needs.
struct Parsed {
    group: String,
    kind: String,
    namespaced: bool,
    versions: Vec<Version>,
}

struct Version {
    name: String,
    served: bool,
    /// The version's `openAPIV3Schema`; absent means any object is accepted.
    schema: Option<Value>,
    compiled: OnceLock<Result<Compiled, String>>,
}

struct Compiled {
    /// The converted JSON Schema, kept to suggest field names for unknown fields.
    schema: Value,
    validator: Validator,
}

impl CrdSchemas {
    /// An empty set (every custom resource is then "no schema").
    pub fn new() -> Self {
        Self::default()
    }

    /// Indexes every `*.yaml`/`*.yml` CRD file in `dir` (not recursive). Files are only read
    /// here; each CRD is parsed when a resource of its kind is first checked.
    pub fn load_dir(dir: &Path) -> Result<Self, ValidateError> {
        let read_dir_error = |source| ValidateError::ReadDir {
            path: dir.to_path_buf(),
            source,
        };
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(read_dir_error)?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(read_dir_error)?;
        paths.retain(|p| {
            p.is_file()
                && p.extension()
                    .is_some_and(|ext| ext == "yaml" || ext == "yml")
        });
        paths.sort();
        let mut schemas = Self::new();
        for path in paths {
            schemas.add_file(&path)?;
        }
        Ok(schemas)
    }

    /// Adds a typed CRD, e.g. one of the scheduler's own (`Workflow::crd()`).
    pub fn add(&mut self, crd: CustomResourceDefinition) {
        let key = GroupKind {
            group: crd.spec.group.clone(),
            kind: crd.spec.names.kind.clone(),
        };
        let origin = format!(
            "CRD {}",
            crd.metadata.name.as_deref().unwrap_or(&key.to_string())
        );
        let source = match serde_json::to_value(&crd) {
            Ok(value) => Source::Json(value),
            // Keep the CRD known so the failure is reported on use instead of silently ignored.
            Err(e) => Source::Invalid(e.to_string()),
        };
        self.insert(key, origin, source);
    }

    /// Adds every CRD of `other` (e.g. the chart's own `crds/` after the operators' directory);
    /// a CRD for the same group and kind replaces the earlier one.
    pub fn merge(&mut self, other: CrdSchemas) {
        self.crds.extend(other.crds);
        self.unchecked_groups.extend(other.unchecked_groups);
    }

    /// The number of CRDs known.
    pub fn len(&self) -> usize {
        self.crds.len()
    }

    /// Whether no CRD is known.
    pub fn is_empty(&self) -> bool {
        self.crds.is_empty()
    }

    /// Whether a custom resource kind is namespaced; `None` when no CRD covers it (or it failed
    /// to load).
    pub fn is_namespaced(&self, api_version: &str, kind: &str) -> Option<bool> {
        let (group, _) = api_version.split_once('/')?;
        let crd = self.crds.get(&GroupKind {
            group: group.to_string(),
            kind: kind.to_string(),
        })?;
        crd.parsed().as_ref().ok().map(|p| p.namespaced)
    }

    /// Parses and compiles, on all cores, the CRD versions `objects` use, largest first, so that
    /// the first check of each does not pay for it alone. Checking works without this; it only
    /// moves the one-time cost (a few milliseconds per large CRD) onto several threads.
    pub fn prepare(&self, objects: &[Value]) {
        let mut needed: Vec<(&Crd, &str)> = Vec::new();
        for obj in objects {
            let Some((crd, version)) = self.lookup(obj) else {
                continue;
            };
            if !needed
                .iter()
                .any(|(c, v)| std::ptr::eq(*c, crd) && *v == version)
            {
                needed.push((crd, version));
            }
        }
        needed.retain(|(crd, version)| !crd.is_compiled(version));
        needed.sort_by_key(|(crd, _)| std::cmp::Reverse(crd.source_len()));
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(needed.len());
        if threads < 2 {
            return; // nothing to overlap: the checks prepare lazily
        }
        let next = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    while let Some((crd, version)) =
                        needed.get(next.fetch_add(1, Ordering::Relaxed))
                    {
                        crd.compile(version);
                    }
                });
            }
        });
    }

    /// The CRD for an object's group and kind, and the object's version.
    fn lookup<'o>(&self, obj: &'o Value) -> Option<(&Crd, &'o str)> {
        let api_version = obj.get("apiVersion")?.as_str()?;
        let kind = obj.get("kind")?.as_str()?;
        let (group, version) = api_version.split_once('/')?;
        let crd = self.crds.get(&GroupKind {
            group: group.to_string(),
            kind: kind.to_string(),
        })?;
        Some((crd, version))
    }

    /// The JSON Schema of every served version of every CRD, sorted by group, kind and version:
    /// the very schemas [`CrdSchemas::check`] validates with, for tools that take schema files
    /// (`chart-gen crds schemas` writes them for kubeconform).
    pub fn served_schemas(&self) -> Result<Vec<ServedSchema>, ValidateError> {
        let mut crds: Vec<&Crd> = self.crds.values().collect();
        crds.sort_by(|a, b| (&a.key.group, &a.key.kind).cmp(&(&b.key.group, &b.key.kind)));
        let mut schemas = Vec::new();
        for crd in crds {
            let parsed = crd
                .parsed()
                .as_ref()
                .map_err(|message| ValidateError::InvalidCrd {
                    path: PathBuf::from(&crd.origin),
                    message: message.clone(),
                })?;
            let mut versions: Vec<&Version> = parsed.versions.iter().filter(|v| v.served).collect();
            versions.sort_by(|a, b| a.name.cmp(&b.name));
            schemas.extend(versions.into_iter().map(|v| ServedSchema {
                group: parsed.group.clone(),
                kind: parsed.kind.clone(),
                version: v.name.clone(),
                schema: v.json_schema(),
            }));
        }
        Ok(schemas)
    }

    /// Leaves custom resources of `groups` unchecked when no loaded CRD covers them, instead of
    /// reporting "no schema" (`chart-gen validate --no-crds` for the operators' groups).
    pub fn skip_groups(&mut self, groups: impl IntoIterator<Item = String>) {
        self.unchecked_groups.extend(groups);
    }

    /// Whether `obj` is of a group [`CrdSchemas::skip_groups`] named.
    pub fn is_skipped(&self, obj: &Value) -> bool {
        obj.get("apiVersion")
            .and_then(Value::as_str)
            .and_then(|v| v.split_once('/'))
            .is_some_and(|(group, _)| self.unchecked_groups.contains(group))
    }

    /// Checks a custom resource against its CRD. `None` when no loaded CRD has the object's group
    /// and kind (built-in kinds included).
    pub fn check(&self, obj: &Value) -> Option<Vec<FieldError>> {
        let (crd, version) = self.lookup(obj)?;
        Some(crd.check(obj, version))
    }

    /// Indexes the CRDs of one file (one or several documents), like [`CrdSchemas::load_dir`]
    /// does for each file of a directory.
    pub fn add_file(&mut self, path: &Path) -> Result<(), ValidateError> {
        let text = std::fs::read_to_string(path).map_err(|source| ValidateError::ReadFile {
            path: path.to_path_buf(),
            source,
        })?;
        let origin = path.display().to_string();
        match structural::index_yaml(&text) {
            Some((group, kind)) => {
                self.insert(GroupKind { group, kind }, origin, Source::Yaml(text))
            }
            // Not in the usual layout (or several documents): parse now, once per document.
            None => {
                for document in serde_yaml::Deserializer::from_str(&text) {
                    let value = <Value as serde::Deserialize>::deserialize(document)
                        .map_err(|e| invalid_crd(path, e.to_string()))?;
                    if value.is_null() {
                        continue;
                    }
                    let parsed = Parsed::from_value(&value).map_err(|m| invalid_crd(path, m))?;
                    let key = GroupKind {
                        group: parsed.group.clone(),
                        kind: parsed.kind.clone(),
                    };
                    let crd = Crd {
                        key: key.clone(),
                        origin: origin.clone(),
                        source: Source::Parsed,
                        parsed: OnceLock::from(Ok(parsed)),
                    };
                    self.crds.insert(key, crd);
                }
            }
        }
        Ok(())
    }

    fn insert(&mut self, key: GroupKind, origin: String, source: Source) {
        let crd = Crd {
            key: key.clone(),
            origin,
            source,
            parsed: OnceLock::new(),
        };
        self.crds.insert(key, crd);
    }
}

fn invalid_crd(path: &Path, message: String) -> ValidateError {
    ValidateError::InvalidCrd {
        path: path.to_path_buf(),
        message,
    }
}

impl Crd {
    fn parsed(&self) -> &Result<Parsed, String> {
        self.parsed.get_or_init(|| match &self.source {
            Source::Yaml(text) => serde_yaml::from_str::<Value>(text)
                .map_err(|e| format!("not valid YAML: {e}"))
                .and_then(|v| Parsed::from_value(&v))
                .and_then(|p| self.confirm_index(p)),
            Source::Json(value) => Parsed::from_value(value),
            Source::Invalid(message) => Err(message.clone()),
            // `parsed` is initialised together with this source, so this is never reached.
            Source::Parsed => Err("CRD source was not kept".to_string()),
        })
    }

    fn source_len(&self) -> usize {
        match &self.source {
            Source::Yaml(text) => text.len(),
            Source::Json(_) | Source::Invalid(_) | Source::Parsed => 0,
        }
    }

    fn version(&self, name: &str) -> Option<&Version> {
        let parsed = self.parsed().as_ref().ok()?;
        parsed.versions.iter().find(|v| v.name == name && v.served)
    }

    /// Whether `version`'s validator is already compiled (or known not to compile).
    fn is_compiled(&self, version: &str) -> bool {
        self.parsed.get().is_some()
            && self
                .version(version)
                .is_none_or(|v| v.compiled.get().is_some())
    }

    /// Parses the CRD and compiles `version`'s validator, caching both (errors included, which
    /// `check` reports).
    fn compile(&self, version: &str) {
        if let Some(v) = self.version(version) {
            let _ = v.compiled();
        }
    }

    /// The file was indexed by a quick line scan; the full parse must agree with it.
    fn confirm_index(&self, parsed: Parsed) -> Result<Parsed, String> {
        if parsed.group == self.key.group && parsed.kind == self.key.kind {
            Ok(parsed)
        } else {
            Err(format!(
                "indexed as {} but defines {}.{}",
                self.key, parsed.kind, parsed.group
            ))
        }
    }

    fn check(&self, obj: &Value, version: &str) -> Vec<FieldError> {
        let parsed = match self.parsed() {
            Ok(parsed) => parsed,
            Err(message) => {
                return vec![FieldError::new(
                    "",
                    format!("cannot load {}: {message}", self.origin),
                )];
            }
        };
        let served = || {
            let names: Vec<String> = parsed
                .versions
                .iter()
                .filter(|v| v.served)
                .map(|v| format!("{}/{}", parsed.group, v.name))
                .collect();
            names.join(", ")
        };
        let Some(found) = parsed
            .versions
            .iter()
            .find(|v| v.name == version && v.served)
        else {
            let message = format!(
                "{}/{version} is not served by the {} CRD ({}); served: {}",
                parsed.group,
                parsed.kind,
                self.origin,
                served()
            );
            return vec![FieldError::new("/apiVersion", message)];
        };
        let mut errors = match found.compiled() {
            Ok(compiled) => {
                let pruned = structural::without_nulls(obj);
                explain::errors(
                    &compiled.validator,
                    &compiled.schema,
                    &pruned,
                    UnknownAt::Field,
                )
            }
            Err(message) => vec![FieldError::new(
                "",
                format!(
                    "cannot compile the {version} schema of {}: {message}",
                    self.origin
                ),
            )],
        };
        if let Some(metadata) = obj.get("metadata") {
            errors.extend(kubernetes::check_object_meta(metadata, "/metadata"));
        }
        errors
    }
}

impl Parsed {
    fn from_value(crd: &Value) -> Result<Self, String> {
        let text = |ptr: &str| {
            crd.pointer(ptr)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("missing {ptr}"))
        };
        if crd.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
            return Err("kind is not CustomResourceDefinition".to_string());
        }
        let group = text("/spec/group")?;
        let kind = text("/spec/names/kind")?;
        let namespaced = text("/spec/scope")? == "Namespaced";
        let versions = crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .ok_or("missing /spec/versions")?
            .iter()
            .map(|v| Version {
                name: v
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                served: v.get("served").and_then(Value::as_bool).unwrap_or(false),
                schema: v.pointer("/schema/openAPIV3Schema").cloned(),
                compiled: OnceLock::new(),
            })
            .collect();
        Ok(Self {
            group,
            kind,
            namespaced,
            versions,
        })
    }
}

impl Version {
    /// The converted schema; a version without `openAPIV3Schema` accepts any object.
    fn json_schema(&self) -> Value {
        match &self.schema {
            Some(openapi) => structural::to_json_schema(openapi),
            None => Value::Bool(true),
        }
    }

    fn compiled(&self) -> &Result<Compiled, String> {
        self.compiled.get_or_init(|| {
            let schema = self.json_schema();
            let validator = jsonschema::options()
                .with_draft(Draft::Draft202012)
                .should_validate_formats(false)
                .build(&schema)
                .map_err(|e| e.to_string())?;
            Ok(Compiled { schema, validator })
        })
    }
}
