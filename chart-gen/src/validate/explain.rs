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
    out.push(FieldError::new(
        here,
        format!(
            "{} is not valid: expected {}",
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
    let suggestion = known
        .iter()
        .map(|k| (edit_distance(key, k), k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d);
    match suggestion {
        Some((_, k)) => format!("unknown field \"{key}\" (did you mean \"{k}\"?)"),
        None => format!("unknown field \"{key}\""),
    }
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
}
