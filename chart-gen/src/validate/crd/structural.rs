//! Converts a CRD's structural `openAPIV3Schema` into a draft 2020-12 JSON Schema that says what
//! the API server would accept:
//! - pruning as strict validation: an object schema without `additionalProperties` and without
//!   `x-kubernetes-preserve-unknown-fields: true` gets `additionalProperties: false`, so a field
//!   the API server would silently drop is reported as unknown;
//! - `x-kubernetes-int-or-string` accepts an integer or a string, `nullable` adds `null`;
//! - `x-kubernetes-embedded-resource` objects may carry `apiVersion`, `kind` and `metadata` and
//!   must have `apiVersion` and `kind`;
//! - `format: int32`/`int64` on integers become range checks;
//! - OpenAPI 3.0's boolean `exclusiveMinimum`/`exclusiveMaximum` become draft 2020-12 numbers;
//! - a `required` field that has a `default` is not required (the API server defaults it before
//!   validating);
//! - the root `metadata` is checked separately as an ObjectMeta.
//!
//! Not evaluated: `x-kubernetes-validations` (CEL rules) and string formats; the API server will
//! still check those at apply time.

use serde_json::{Map, Value, json};

/// Where a schema node sits, which decides the semantics applied to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// The resource itself: apiVersion, kind and metadata are always allowed.
    Root,
    /// A node describing the structure of the data: pruning applies.
    Structural,
    /// Inside `allOf`/`anyOf`/`oneOf`/`not`: value validation only, which never prunes.
    ValueValidation,
}

/// The draft 2020-12 JSON Schema for a CRD version's `openAPIV3Schema`.
pub(super) fn to_json_schema(openapi: &Value) -> Value {
    let mut schema = convert(openapi, Position::Root);
    if let Value::Object(map) = &mut schema {
        map.insert(
            "$schema".to_string(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
    }
    schema
}

fn convert(node: &Value, position: Position) -> Value {
    let Value::Object(node) = node else {
        return node.clone();
    };
    let mut out = Map::new();
    for (key, value) in node {
        match key.as_str() {
            // Annotations and Kubernetes extensions: meaningless to the validator, and dropping
            // the descriptions keeps compiled schemas small.
            "description" | "example" | "externalDocs" | "default" | "nullable" | "format"
            | "title" => {}
            k if k.starts_with("x-kubernetes-") => {}
            "type" | "exclusiveMinimum" | "exclusiveMaximum" | "minimum" | "maximum" => {}
            "required" => {
                out.insert(key.clone(), required_without_defaults(node, value));
            }
            "properties" => {
                out.insert(key.clone(), convert_properties(value, position));
            }
            "items" | "additionalProperties" => {
                out.insert(key.clone(), convert(value, child_position(position)));
            }
            "allOf" | "anyOf" | "oneOf" => {
                let branches = value.as_array().map_or_else(Vec::new, |items| {
                    items
                        .iter()
                        .map(|b| convert(b, Position::ValueValidation))
                        .collect()
                });
                out.insert(key.clone(), Value::Array(branches));
            }
            "not" => {
                out.insert(key.clone(), convert(value, Position::ValueValidation));
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    convert_type(node, position, &mut out);
    convert_bounds(node, &mut out);
    if position != Position::ValueValidation {
        apply_embedded_resource(node, &mut out);
        apply_pruning(node, position, &mut out);
    }
    Value::Object(out)
}

fn child_position(position: Position) -> Position {
    match position {
        Position::ValueValidation => Position::ValueValidation,
        Position::Root | Position::Structural => Position::Structural,
    }
}

fn convert_properties(properties: &Value, position: Position) -> Value {
    let Value::Object(properties) = properties else {
        return properties.clone();
    };
    let converted = properties
        .iter()
        .map(|(name, schema)| {
            let schema = if position == Position::Root && name == "metadata" {
                // The API server owns ObjectMeta; it is checked with the Kubernetes type.
                json!({"type": "object"})
            } else {
                convert(schema, child_position(position))
            };
            (name.clone(), schema)
        })
        .collect();
    Value::Object(converted)
}

/// `type`, widened by `x-kubernetes-int-or-string` and `nullable`.
fn convert_type(node: &Map<String, Value>, position: Position, out: &mut Map<String, Value>) {
    let flag = |name: &str| node.get(name).and_then(Value::as_bool) == Some(true);
    if position != Position::ValueValidation && flag("x-kubernetes-int-or-string") {
        out.insert("type".to_string(), json!(["integer", "string"]));
        return;
    }
    let Some(ty) = node.get("type") else {
        return;
    };
    if flag("nullable") {
        out.insert("type".to_string(), json!([ty, "null"]));
        if let Some(Value::Array(options)) = out.get_mut("enum") {
            options.push(Value::Null);
        }
    } else {
        out.insert("type".to_string(), ty.clone());
    }
}

/// Numeric bounds: OpenAPI 3.0 booleans to 2020-12 numbers, and integer formats as ranges.
fn convert_bounds(node: &Map<String, Value>, out: &mut Map<String, Value>) {
    let exclusive = |name: &str| node.get(name).and_then(Value::as_bool) == Some(true);
    for (bound, exclusive_name) in [
        ("minimum", "exclusiveMinimum"),
        ("maximum", "exclusiveMaximum"),
    ] {
        if let Some(limit) = node.get(bound) {
            let name = if exclusive(exclusive_name) {
                exclusive_name
            } else {
                bound
            };
            out.insert(name.to_string(), limit.clone());
        }
    }
    let (min, max) = match node.get("format").and_then(Value::as_str) {
        Some("int32") => (json!(i32::MIN), json!(i32::MAX)),
        Some("int64") => (json!(i64::MIN), json!(i64::MAX)),
        _ => return,
    };
    if node.get("type").and_then(Value::as_str) != Some("integer") {
        return;
    }
    if !node.contains_key("minimum") {
        out.insert("minimum".to_string(), min);
    }
    if !node.contains_key("maximum") {
        out.insert("maximum".to_string(), max);
    }
}

/// Embedded resources may always carry apiVersion, kind and metadata, and need the first two.
fn apply_embedded_resource(node: &Map<String, Value>, out: &mut Map<String, Value>) {
    if node
        .get("x-kubernetes-embedded-resource")
        .and_then(Value::as_bool)
        != Some(true)
    {
        return;
    }
    let properties = out
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(properties) = properties {
        for (name, ty) in [
            ("apiVersion", "string"),
            ("kind", "string"),
            ("metadata", "object"),
        ] {
            properties
                .entry(name)
                .or_insert_with(|| json!({"type": ty}));
        }
    }
    let required = out
        .entry("required")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(required) = required {
        for name in ["apiVersion", "kind"] {
            if !required.iter().any(|r| r == name) {
                required.push(json!(name));
            }
        }
    }
}

/// Objects without `additionalProperties` or `x-kubernetes-preserve-unknown-fields: true` drop
/// unknown fields on the server; here they are errors.
fn apply_pruning(node: &Map<String, Value>, position: Position, out: &mut Map<String, Value>) {
    let is_object = node.get("type").and_then(Value::as_str) == Some("object")
        || node.contains_key("properties");
    let preserves = node
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true);
    if !is_object || preserves || node.contains_key("additionalProperties") {
        return;
    }
    if position == Position::Root {
        let properties = out
            .entry("properties")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(properties) = properties {
            properties
                .entry("apiVersion")
                .or_insert_with(|| json!({"type": "string"}));
            properties
                .entry("kind")
                .or_insert_with(|| json!({"type": "string"}));
            properties
                .entry("metadata")
                .or_insert_with(|| json!({"type": "object"}));
        }
    }
    out.insert("additionalProperties".to_string(), Value::Bool(false));
}

/// `required` minus the fields the API server fills from their `default`.
fn required_without_defaults(node: &Map<String, Value>, required: &Value) -> Value {
    let Value::Array(names) = required else {
        return required.clone();
    };
    let has_default = |name: &str| {
        node.get("properties")
            .and_then(|p| p.get(name))
            .is_some_and(|schema| schema.get("default").is_some())
    };
    let kept = names
        .iter()
        .filter(|n| !n.as_str().is_some_and(has_default))
        .cloned()
        .collect();
    Value::Array(kept)
}

/// The object with `null` object members removed: the API server prunes nulls of non-nullable
/// fields before validating, and a null in a nullable field is valid either way.
pub(super) fn without_nulls(value: &Value) -> std::borrow::Cow<'_, Value> {
    if !contains_null_member(value) {
        return std::borrow::Cow::Borrowed(value);
    }
    std::borrow::Cow::Owned(strip_nulls(value))
}

fn contains_null_member(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.values().any(|v| v.is_null() || contains_null_member(v)),
        Value::Array(items) => items.iter().any(contains_null_member),
        _ => false,
    }
}

fn strip_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

/// Finds `spec.group` and `spec.names.kind` of a single-document CRD file by scanning lines, so
/// that indexing a directory of large CRDs costs a read, not a YAML parse. `None` when the file
/// does not have the usual layout (block style, one document); the caller then parses it fully,
/// and a lazily parsed file is checked against this index.
pub(super) fn index_yaml(text: &str) -> Option<(String, String)> {
    let mut in_spec = false;
    let mut spec_indent = None;
    let mut in_names = false;
    let mut names_indent = None;
    let mut group = None;
    let mut kind = None;
    let body = text.trim_start().strip_prefix("---").unwrap_or(text);
    if body.contains("\n---") || body.contains("\n...") {
        return None; // several documents: let the full parser handle them
    }
    for line in body.lines() {
        let content = line.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let indent = line.len() - content.len();
        if indent == 0 {
            in_spec = content == "spec:";
            continue;
        }
        if !in_spec {
            continue;
        }
        let spec_indent = *spec_indent.get_or_insert(indent);
        if indent == spec_indent {
            in_names = content == "names:";
            if let Some(value) = content.strip_prefix("group:") {
                group = Some(scalar(value)?);
            }
        } else if in_names && indent > spec_indent {
            let names_indent = *names_indent.get_or_insert(indent);
            if indent == names_indent
                && let Some(value) = content.strip_prefix("kind:")
            {
                kind = Some(scalar(value)?);
            }
        }
        // `group` and `names` precede the (large) `versions`; stop reading once both are known.
        if let (Some(group), Some(kind)) = (&group, &kind) {
            return Some((group.clone(), kind.clone()));
        }
    }
    None
}

/// A plain or quoted YAML scalar on one line.
fn scalar(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let unquoted = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .or_else(|| raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')))
        .unwrap_or(raw);
    let valid = !unquoted.is_empty()
        && unquoted
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    valid.then(|| unquoted.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_block_style_crd() {
        let text = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: things.example.com\nspec:\n  group: example.com\n  names:\n    kind: Thing\n    plural: things\n  scope: Namespaced\n";
        assert_eq!(
            index_yaml(text),
            Some(("example.com".to_string(), "Thing".to_string()))
        );
        assert_eq!(index_yaml("spec: {group: a}\n"), None);
        assert_eq!(index_yaml("a: 1\n---\nb: 2\n"), None);
        let two = format!("---\n{text}---\n{text}");
        assert_eq!(index_yaml(&two), None);
        assert!(index_yaml(&format!("---\n{text}")).is_some());
    }

    #[test]
    fn pruning_int_or_string_nullable_and_formats() {
        let openapi = json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["size", "mode"],
                    "properties": {
                        "size": {"type": "integer", "format": "int32"},
                        "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                        "mode": {"type": "string", "default": "fast", "nullable": true, "enum": ["fast"]},
                        "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}}
                    }
                }
            }
        });
        let schema = to_json_schema(&openapi);
        let spec = &schema["properties"]["spec"];
        assert_eq!(schema["additionalProperties"], json!(false));
        assert!(schema["properties"].get("metadata").is_some());
        assert_eq!(spec["additionalProperties"], json!(false));
        assert_eq!(spec["required"], json!(["size"]));
        assert_eq!(spec["properties"]["size"]["maximum"], json!(i32::MAX));
        assert_eq!(
            spec["properties"]["port"]["type"],
            json!(["integer", "string"])
        );
        assert_eq!(
            spec["properties"]["mode"]["type"],
            json!(["string", "null"])
        );
        assert_eq!(spec["properties"]["mode"]["enum"], json!(["fast", null]));
        assert!(
            spec["properties"]["config"]
                .get("additionalProperties")
                .is_none()
        );
        assert_eq!(
            spec["properties"]["labels"]["additionalProperties"],
            json!({"type": "string"})
        );
    }

    #[test]
    fn value_validation_branches_do_not_prune() {
        let openapi = json!({
            "type": "object",
            "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
            "oneOf": [{"required": ["a"]}, {"properties": {"b": {"minLength": 1}}}]
        });
        let schema = to_json_schema(&openapi);
        assert!(schema["oneOf"][1].get("additionalProperties").is_none());
    }

    #[test]
    fn nulls_are_pruned() {
        let obj = json!({"a": null, "b": [{"c": null, "d": 1}]});
        assert_eq!(*without_nulls(&obj), json!({"b": [{"d": 1}]}));
        let clean = json!({"a": 1});
        assert!(matches!(
            without_nulls(&clean),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
