//! A manifest as written, checked against the structural schema of its CRD (the very schema
//! chart-gen installs): fields the resource does not have, values of the wrong type, required
//! fields left out and values outside an enum. The API server prunes unknown fields silently
//! unless the client asks for strict field validation, so a typo like `schedul:` or `comand:`
//! would become a workflow that never runs, or runs the image's default command: every one is
//! reported here, with its path and the field probably meant.

use std::sync::LazyLock;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use super::{ValidationErrors, suggestion};

/// The resources whose manifests can be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `Workflow`.
    Workflow,
    /// `WorkflowRun`.
    WorkflowRun,
}

/// The openAPIV3Schema of each CRD, built once per process (schemars' generation of the pod
/// types is not free, and `workflow validate` may check many files).
static SCHEMAS: LazyLock<[JSONSchemaProps; 2]> = LazyLock::new(|| {
    let schema_of = |kind: &str| {
        crate::crds()
            .into_iter()
            .find(|crd| crd.spec.names.kind == kind)
            .and_then(|crd| crd.spec.versions.into_iter().next())
            .and_then(|v| v.schema)
            .and_then(|s| s.open_api_v3_schema)
            .unwrap_or_default()
    };
    [schema_of("Workflow"), schema_of("WorkflowRun")]
});

/// The fields `metadata` may hold (ObjectMeta's): the CRD leaves `metadata` to the API server,
/// which refuses unknown ones there too.
static METADATA_FIELDS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let schema = schemars::schema_for!(ObjectMeta);
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
});

/// Every structural problem of `document` as a `resource`, in document order.
pub fn check_structure(resource: Resource, document: &Value) -> ValidationErrors {
    let schema = match resource {
        Resource::Workflow => &SCHEMAS[0],
        Resource::WorkflowRun => &SCHEMAS[1],
    };
    let mut errors = ValidationErrors::default();
    walk(schema, document, "", &mut errors);
    errors
}

/// The fields every object has besides those its CRD's schema names, which the API server
/// handles itself: `apiVersion`, `kind` and `metadata` (whose fields are ObjectMeta's).
const OBJECT_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

fn check_metadata(value: &Value, errors: &mut ValidationErrors) {
    let Some(metadata) = value.as_object() else {
        errors.push(
            "metadata",
            format!("expected a mapping of fields, found {}", found(value)),
        );
        return;
    };
    for key in metadata.keys() {
        if !METADATA_FIELDS.contains(key) {
            errors.push(join("metadata", key), unknown(key, &METADATA_FIELDS));
        }
    }
}

/// `parent.key` (just `key` at the root).
fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

fn unknown(key: &str, known: &[String]) -> String {
    match suggestion(key, known.iter().map(String::as_str)) {
        Some(meant) => format!("unknown field {key:?} (did you mean {meant:?}?)"),
        None => format!("unknown field {key:?}"),
    }
}

fn walk(schema: &JSONSchemaProps, value: &Value, path: &str, errors: &mut ValidationErrors) {
    if value.is_null() {
        if schema.nullable != Some(true) && !path.is_empty() {
            errors.push(path, format!("expected {}, found null", expected(schema)));
        }
        return;
    }
    if !type_matches(schema, value) {
        errors.push(
            path,
            format!("expected {}, found {}", expected(schema), found(value)),
        );
        return;
    }
    if let Some(allowed) = &schema.enum_
        && !allowed.iter().any(|a| a.0 == *value)
    {
        let names: Vec<String> = allowed.iter().map(|a| a.0.to_string()).collect();
        let mut message = format!("{value} is not one of {}", names.join(", "));
        if let Some(meant) = value.as_str().and_then(|v| {
            let known: Vec<&str> = allowed.iter().filter_map(|a| a.0.as_str()).collect();
            suggestion(v, known.into_iter())
        }) {
            message.push_str(&format!(" (did you mean {meant:?}?)"));
        }
        errors.push(path, message);
    }
    match value {
        Value::Object(fields) => walk_object(schema, fields, path, errors),
        Value::Array(items) => {
            if let Some(JSONSchemaPropsOrArray::Schema(item)) = &schema.items {
                for (i, v) in items.iter().enumerate() {
                    walk(item, v, &format!("{path}[{i}]"), errors);
                }
            }
        }
        _ => {}
    }
}

fn walk_object(
    schema: &JSONSchemaProps,
    fields: &serde_json::Map<String, Value>,
    path: &str,
    errors: &mut ValidationErrors,
) {
    if schema.x_kubernetes_preserve_unknown_fields == Some(true) && schema.properties.is_none() {
        return;
    }
    for required in schema.required.iter().flatten() {
        if fields.get(required).is_none_or(Value::is_null) {
            errors.push(path, format!("missing field `{required}`"));
        }
    }
    let properties = schema.properties.as_ref();
    let additional = match &schema.additional_properties {
        Some(JSONSchemaPropsOrBool::Schema(s)) => Some(Some(s.as_ref())),
        Some(JSONSchemaPropsOrBool::Bool(true)) => Some(None),
        _ => None,
    };
    let at_root = path.is_empty();
    for (key, v) in fields {
        let at = join(path, key);
        if at_root && OBJECT_FIELDS.contains(&key.as_str()) {
            if key == "metadata" {
                check_metadata(v, errors);
            }
            continue;
        }
        match (properties.and_then(|p| p.get(key)), additional) {
            (Some(child), _) | (None, Some(Some(child))) => walk(child, v, &at, errors),
            (None, Some(None)) => {}
            (None, None) if schema.x_kubernetes_preserve_unknown_fields == Some(true) => {}
            (None, None) if properties.is_none() => {}
            (None, None) => {
                let root = at_root.then_some(OBJECT_FIELDS.map(String::from));
                let known: Vec<String> = properties
                    .into_iter()
                    .flat_map(|p| p.keys().cloned())
                    .chain(root.into_iter().flatten())
                    .collect();
                errors.push(at, unknown(key, &known));
            }
        }
    }
}

fn type_matches(schema: &JSONSchemaProps, value: &Value) -> bool {
    if schema.x_kubernetes_int_or_string == Some(true) {
        return value.is_i64() || value.is_u64() || value.is_string();
    }
    match schema.type_.as_deref() {
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some("array") => value.is_array(),
        Some("object") => value.is_object(),
        _ => true,
    }
}

fn expected(schema: &JSONSchemaProps) -> String {
    if schema.x_kubernetes_int_or_string == Some(true) {
        return "an integer or a string".into();
    }
    match schema.type_.as_deref() {
        Some("string") => "a string".into(),
        Some("integer") => "an integer".into(),
        Some("number") => "a number".into(),
        Some("boolean") => "true or false".into(),
        Some("array") => "a list".into(),
        Some("object") => "a mapping of fields".into(),
        _ => "a value".into(),
    }
}

/// A value as a message quotes it: `"yes" (a string)`, `3 (an integer)`, `a list`.
fn found(value: &Value) -> String {
    let kind = match value {
        Value::Null => return "null".into(),
        Value::Array(_) => return "a list".into(),
        Value::Object(_) => return "a mapping".into(),
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
    };
    format!("{value} ({kind})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(resource: Resource, doc: Value) -> Vec<String> {
        check_structure(resource, &doc)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn unknown_fields_are_named_with_their_path_and_the_field_meant() {
        let doc = json!({
            "apiVersion": "datajump.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": "etl", "lables": {"a": "b"}},
            "spec": {
                "schedul": "0 2 * * *",
                "tasks": [
                    {"name": "a", "image": "busybox", "comand": ["run"]},
                    {"name": "b", "image": "busybox", "pod": {"nodeSelectr": {}}},
                ],
                "anythingElse": 1,
            },
        });
        assert_eq!(
            problems(Resource::Workflow, doc),
            [
                "metadata.lables: unknown field \"lables\" (did you mean \"labels\"?)",
                "spec.schedul: unknown field \"schedul\" (did you mean \"schedule\"?)",
                "spec.tasks[0].comand: unknown field \"comand\" (did you mean \"command\"?)",
                "spec.tasks[1].pod.nodeSelectr: unknown field \"nodeSelectr\" (did you mean \"nodeSelector\"?)",
                "spec.anythingElse: unknown field \"anythingElse\"",
            ]
        );
    }

    #[test]
    fn wrong_types_missing_fields_and_enums_are_all_reported() {
        let doc = json!({
            "apiVersion": "datajump.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": "etl"},
            "spec": {
                "schedule": ["0 2 * * *"],
                "suspend": "yes",
                "concurrencyPolicy": "Forbidd",
                "tasks": [{"name": "a"}, {"name": "b", "image": "x", "retries": "three"}],
            },
        });
        assert_eq!(
            problems(Resource::Workflow, doc),
            [
                "spec.schedule: expected a string, found a list",
                "spec.suspend: expected true or false, found \"yes\" (a string)",
                "spec.concurrencyPolicy: \"Forbidd\" is not one of \"Allow\", \"Forbid\", \"Replace\" (did you mean \"Forbid\"?)",
                "spec.tasks[0]: missing field `image`",
                "spec.tasks[1].retries: expected an integer, found \"three\" (a string)",
            ]
        );
    }

    #[test]
    fn workflow_runs_are_checked_too_and_kubernetes_types_inside_as_well() {
        let run = json!({
            "apiVersion": "datajump.io/v1alpha1", "kind": "WorkflowRun",
            "metadata": {"name": "etl-1"},
            "spec": {"workflowNme": "etl", "parameters": {"day": "2026-01-01"}},
        });
        assert_eq!(
            problems(Resource::WorkflowRun, run),
            [
                "spec: missing field `workflowName`",
                "spec.workflowNme: unknown field \"workflowNme\" (did you mean \"workflowName\"?)",
            ]
        );
        let env = json!({
            "apiVersion": "datajump.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": "etl"},
            "spec": {"tasks": [{"name": "a", "image": "x",
                "env": [{"name": "A", "valu": "1"}],
                "resources": {"limits": {"cpu": 1, "memory": "1Gi"}}}]},
        });
        assert_eq!(
            problems(Resource::Workflow, env),
            ["spec.tasks[0].env[0].valu: unknown field \"valu\" (did you mean \"value\"?)"]
        );
    }
}
