//! Turns `jsonschema` errors into [`FieldError`]s a platform engineer can act on: one line per
//! unknown key (with a "did you mean" when a known field is close), the expected alternatives for
//! `anyOf`/`oneOf` failures instead of "not valid under any of the schemas", and the innermost
//! error when only one alternative really applied.

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

use super::FieldError;
use super::pointer;

/// Where an unknown field is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnknownAt {
    /// At the object holding it (`/web: unknown field "replcas"`), as values errors read.
    Parent,
    /// At the field itself (`/spec/replcas: unknown field "replcas"`), as object errors read.
    Field,
}

/// Every error of `instance` against `validator`, explained. `schema` is the compiled schema's
/// source, used to suggest known field names.
pub(crate) fn errors(
    validator: &Validator,
    schema: &Value,
    instance: &Value,
    unknown_at: UnknownAt,
) -> Vec<FieldError> {
    let ctx = Ctx { schema, unknown_at };
    let mut out = Vec::new();
    for error in validator.iter_errors(instance) {
        explain(&error, &ctx, &mut out);
    }
    // Report in document order, not in the order the validator happened to visit keywords.
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out.dedup();
    out
}

struct Ctx<'a> {
    schema: &'a Value,
    unknown_at: UnknownAt,
}

fn explain(error: &ValidationError<'_>, ctx: &Ctx<'_>, out: &mut Vec<FieldError>) {
    let schema = ctx.schema;
    let path = error.instance_path().as_str().to_string();
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            let known = known_properties(schema, error.schema_path().as_str());
            for key in unexpected {
                let at = match ctx.unknown_at {
                    UnknownAt::Parent => path.clone(),
                    UnknownAt::Field => pointer::push(&path, key),
                };
                out.push(FieldError::new(at, unknown_field(key, &known)));
            }
        }
        ValidationErrorKind::FalseSchema => {
            // `additionalProperties: false` compiled per property reports the property itself.
            match path.rsplit_once('/') {
                Some((parent, key)) if !key.is_empty() => {
                    let at = match ctx.unknown_at {
                        UnknownAt::Parent => parent.to_string(),
                        UnknownAt::Field => path.clone(),
                    };
                    out.push(FieldError::new(at, format!("unknown field \"{key}\"")));
                }
                _ => out.push(FieldError::new(path, "no value is allowed here")),
            }
        }
        ValidationErrorKind::Required { property } => {
            out.push(FieldError::new(
                path,
                format!("missing required field {property}"),
            ));
        }
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            explain_alternatives(error, context, ctx, out);
        }
        ValidationErrorKind::Constant { .. }
        | ValidationErrorKind::Enum { .. }
        | ValidationErrorKind::Pattern { .. }
        | ValidationErrorKind::Not { .. } => {
            let field = field_schema(schema, error.schema_path().as_str());
            out.push(FieldError::new(path, allowed_values(error, field)));
        }
        _ => out.push(FieldError::new(path, error.to_string())),
    }
}

/// For `anyOf`/`oneOf`: when every alternative failed right at this value on its type or
/// constant, list what would have been accepted. Otherwise an alternative got further into the
/// value (its errors are deeper): report that alternative's errors, which are the useful ones.
fn explain_alternatives(
    error: &ValidationError<'_>,
    context: &[Vec<ValidationError<'static>>],
    ctx: &Ctx<'_>,
    out: &mut Vec<FieldError>,
) {
    let here = error.instance_path().as_str();
    let depth = |errors: &Vec<ValidationError<'static>>| {
        errors
            .iter()
            .map(|e| e.instance_path().as_str().len())
            .max()
            .unwrap_or(0)
    };
    let deepest = context.iter().max_by_key(|errors| depth(errors));
    if let Some(branch) = deepest.filter(|b| depth(b) > here.len()) {
        for e in branch {
            explain(e, ctx, out);
        }
        return;
    }
    let mut expected: Vec<String> = Vec::new();
    for e in context.iter().flatten() {
        match e.kind() {
            ValidationErrorKind::Type { kind } => expected.extend(type_names(kind)),
            ValidationErrorKind::Constant { expected_value } => {
                expected.push(expected_value.to_string());
            }
            ValidationErrorKind::Enum { options } => match options.as_array() {
                Some(items) => expected.extend(items.iter().map(Value::to_string)),
                None => expected.push(options.to_string()),
            },
            _ => {
                out.push(FieldError::new(
                    here,
                    format!(
                        "{} matches none of the allowed forms: {e}",
                        error.instance()
                    ),
                ));
                return;
            }
        }
    }
    expected.dedup();
    // Most wrong enum values are typos: name the allowed string closest to the one given.
    let names: Vec<String> = expected
        .iter()
        .filter_map(|e| serde_json::from_str::<String>(e).ok())
        .collect();
    let meant = error
        .instance()
        .as_str()
        .and_then(|v| closest(v, &names))
        .map(|m| format!(" (did you mean \"{m}\"?)"))
        .unwrap_or_default();
    out.push(FieldError::new(
        here,
        format!(
            "{} is not valid: expected {}{meant}",
            error.instance(),
            expected.join(" or ")
        ),
    ));
}

fn type_names(kind: &TypeKind) -> Vec<String> {
    match kind {
        TypeKind::Single(t) => vec![format!("a value of type \"{t}\"")],
        TypeKind::Multiple(set) => set
            .iter()
            .map(|t| format!("a value of type \"{t}\""))
            .collect(),
    }
}

/// The schema of the field a keyword failed in: the keyword path without its last segment
/// (`/$defs/Image/properties/tag/not` → `/$defs/Image/properties/tag`).
fn field_schema<'a>(schema: &'a Value, keyword_path: &str) -> Option<&'a Value> {
    let parent = keyword_path.rsplit_once('/').map_or("", |(p, _)| p);
    schema.pointer(parent)
}

/// For `const`, `enum`, `pattern` and `not`: the value, what is allowed instead, an example (the
/// field's first `examples` entry) and why (the field's description), as
/// `"latest" is not allowed: expected any tag but "latest", e.g. "1.4.2" (Explicit tag. …)`
/// rather than the validator's `{"const":"latest"} is not allowed for "latest"`.
fn allowed_values(error: &ValidationError<'_>, field: Option<&Value>) -> String {
    let value = error.instance();
    let example = field
        .and_then(|f| f.get("examples"))
        .and_then(Value::as_array)
        .and_then(|e| e.first())
        .cloned();
    let (problem, expected, enum_example) = match error.kind() {
        ValidationErrorKind::Constant { expected_value } => {
            ("is not allowed", format!("exactly {expected_value}"), None)
        }
        ValidationErrorKind::Enum { options } => {
            let items = options.as_array().cloned().unwrap_or_default();
            let listed: Vec<String> = items.iter().map(Value::to_string).collect();
            let meant = value.as_str().and_then(|v| {
                let names: Vec<String> = items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_string))
                    .collect();
                closest(v, &names).map(str::to_string)
            });
            let expected = match meant {
                Some(m) => format!("one of {} (did you mean \"{m}\"?)", listed.join(", ")),
                None => format!("one of {}", listed.join(", ")),
            };
            ("is not one of the allowed values", expected, None::<Value>)
        }
        ValidationErrorKind::Pattern { pattern } => (
            "does not have the expected form",
            format!("a value matching {pattern}"),
            None,
        ),
        ValidationErrorKind::Not { schema } => {
            let excluded = if let Some(c) = schema.get("const") {
                format!("any value but {c}")
            } else if let Some(list) = schema.get("enum").and_then(Value::as_array) {
                let listed: Vec<String> = list.iter().map(Value::to_string).collect();
                format!("any value but {}", listed.join(", "))
            } else if let Some(p) = schema.get("pattern") {
                format!("a value not matching {p}")
            } else {
                format!("a value that does not match {schema}")
            };
            ("is not allowed", excluded, None)
        }
        _ => return error.to_string(),
    };
    let mut message = format!("{value} {problem}: expected {expected}");
    if let Some(e) = example.or(enum_example).filter(|e| e != value.as_ref()) {
        message.push_str(&format!(", e.g. {e}"));
    }
    let why = field
        .and_then(|f| f.get("description"))
        .and_then(Value::as_str)
        .and_then(|d| d.lines().next())
        .filter(|d| !d.is_empty());
    if let Some(why) = why {
        message.push_str(&format!(" ({})", why.trim_end_matches('.')));
    }
    message
}

/// The property names declared next to the failing `additionalProperties` keyword.
fn known_properties(schema: &Value, keyword_path: &str) -> Vec<String> {
    let parent = keyword_path.rsplit_once('/').map_or("", |(p, _)| p);
    schema
        .pointer(parent)
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
        .map(|props| props.keys().cloned().collect())
        .unwrap_or_default()
}

/// `unknown field "replcas"`, plus `(did you mean "replicas"?)` when a known field is within two
/// edits, because most unknown fields are typos.
pub(crate) fn unknown_field(key: &str, known: &[String]) -> String {
    match closest(key, known) {
        Some(k) => format!("unknown field \"{key}\" (did you mean \"{k}\"?)"),
        None => format!("unknown field \"{key}\""),
    }
}

/// The known name within two edits of `wanted`, the closest first.
fn closest<'a>(wanted: &str, known: &'a [String]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(wanted, k), k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

/// Levenshtein distance (strsim's), case-insensitive (`imagepullpolicy` is one edit from nothing
/// useful otherwise).
fn edit_distance(a: &str, b: &str) -> usize {
    strsim::levenshtein(&a.to_lowercase(), &b.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_field_names_only() {
        let known = vec!["replicas".to_string(), "image".to_string()];
        assert_eq!(
            unknown_field("replcas", &known),
            "unknown field \"replcas\" (did you mean \"replicas\"?)"
        );
        assert_eq!(unknown_field("colour", &known), "unknown field \"colour\"");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    fn explained(schema: Value, instance: Value) -> Vec<String> {
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&schema)
            .unwrap();
        errors(&validator, &schema, &instance, UnknownAt::Parent)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn const_enum_pattern_and_not_say_what_is_allowed_with_an_example() {
        let schema = serde_json::json!({
            "type": "object",
            "properties": {
                "tag": {
                    "type": "string",
                    "description": "Explicit tag. `latest` is refused.",
                    "pattern": "^[A-Za-z0-9_][A-Za-z0-9_.-]*$",
                    "not": {"const": "latest"},
                    "examples": ["1.4.2"]
                },
                "policy": {"enum": ["Always", "IfNotPresent", "Never"]},
                "kind": {"const": "Values"},
                "cpu": {"type": "string", "pattern": "^[0-9]+m?$", "examples": ["500m"]}
            }
        });
        let got = explained(
            schema,
            serde_json::json!({"tag": "latest", "policy": "IfNotPresnt", "kind": "Value", "cpu": "half"}),
        );
        assert_eq!(
            got,
            [
                "/cpu: \"half\" does not have the expected form: expected a value matching ^[0-9]+m?$, e.g. \"500m\"",
                "/kind: \"Value\" is not allowed: expected exactly \"Values\"",
                "/policy: \"IfNotPresnt\" is not one of the allowed values: expected one of \"Always\", \"IfNotPresent\", \"Never\" (did you mean \"IfNotPresent\"?)",
                "/tag: \"latest\" is not allowed: expected any value but \"latest\", e.g. \"1.4.2\" (Explicit tag. `latest` is refused)",
            ]
        );
    }
}
