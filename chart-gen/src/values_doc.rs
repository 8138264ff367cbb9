//! Values files and the values table, documented from one source: the model's doc comments, as
//! they appear in the generated schema's `description`s. Each key in `values.yaml` gets its
//! description as a comment above it, and the chart README gets one table row per leaf.

use serde_json::{Map, Value};

/// Looks up descriptions and sub-schemas in the generated values schema.
pub struct SchemaDoc<'a> {
    root: &'a Value,
}

impl<'a> SchemaDoc<'a> {
    /// Wraps the root schema.
    pub fn new(root: &'a Value) -> Self {
        Self { root }
    }

    /// Follows `$ref`s to local definitions.
    fn resolve(&self, mut s: &'a Value) -> &'a Value {
        for _ in 0..16 {
            let Some(r) = s.get("$ref").and_then(Value::as_str) else {
                break;
            };
            let Some(ptr) = r.strip_prefix('#') else {
                break;
            };
            match self.root.pointer(ptr) {
                Some(next) => s = next,
                None => break,
            }
        }
        s
    }

    /// The schema of property `key` of object schema `s`, with the property's own description.
    fn property(&self, s: &'a Value, key: &str) -> Option<(&'a Value, Option<&'a str>)> {
        let obj = self.resolve(s);
        let prop = obj.get("properties")?.get(key)?;
        let desc = prop.get("description").and_then(Value::as_str).or_else(|| {
            self.resolve(prop)
                .get("description")
                .and_then(Value::as_str)
        });
        Some((prop, desc))
    }
}

/// Renders `values` as commented YAML, under `header` (comment lines, without `#`).
pub fn commented_yaml(values: &Value, schema: &Value, header: &[&str]) -> String {
    let doc = SchemaDoc::new(schema);
    let mut out = String::new();
    for line in header {
        out.push_str(format!("# {line}").trim_end());
        out.push('\n');
    }
    if let Value::Object(map) = values {
        emit_map(&doc, Some(schema), map, 0, &mut out);
    }
    // Top-level keys are separated by a blank line; the file ends with exactly one newline.
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out.push('\n');
    out
}

fn emit_map(
    doc: &SchemaDoc<'_>,
    schema: Option<&Value>,
    map: &Map<String, Value>,
    depth: usize,
    out: &mut String,
) {
    let indent = "  ".repeat(depth);
    for (key, value) in map {
        let prop = schema.and_then(|s| doc.property(s, key));
        if let Some(desc) = prop.and_then(|p| p.1) {
            for line in desc.lines() {
                out.push_str(&format!("{indent}# {line}\n"));
            }
        }
        let key_yaml = scalar(&Value::String(key.clone()));
        match value {
            Value::Object(child) if !child.is_empty() => {
                out.push_str(&format!("{indent}{key_yaml}:\n"));
                emit_map(doc, prop.map(|p| p.0), child, depth + 1, out);
            }
            Value::Array(items) if !items.is_empty() => {
                out.push_str(&format!("{indent}{key_yaml}:\n"));
                let block = serde_yaml::to_string(items).unwrap_or_default();
                for line in block.lines() {
                    out.push_str(&format!("{indent}  {line}\n"));
                }
            }
            other => out.push_str(&format!("{indent}{key_yaml}: {}\n", scalar(other))),
        }
        if depth == 0 {
            out.push('\n');
        }
    }
}

/// One value as a single-line YAML scalar (or `{}` / `[]`).
fn scalar(v: &Value) -> String {
    match v {
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        Value::Null => "null".into(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim_end()
            .to_string(),
    }
}

/// One row of the values table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Dotted key path, e.g. `scheduler.replicas`.
    pub key: String,
    /// The field's doc comment.
    pub description: String,
    /// The default, as compact JSON.
    pub default: String,
}

/// One row per leaf of `values` (maps without schema properties count as leaves).
pub fn rows(values: &Value, schema: &Value) -> Vec<Row> {
    let doc = SchemaDoc::new(schema);
    let mut out = Vec::new();
    collect(&doc, schema, values, "", "", &mut out);
    out
}

fn collect(
    doc: &SchemaDoc<'_>,
    schema: &Value,
    value: &Value,
    path: &str,
    desc: &str,
    out: &mut Vec<Row>,
) {
    let has_props = doc.resolve(schema).get("properties").is_some();
    match value {
        Value::Object(map) if has_props => {
            for (k, v) in map {
                let (s, d) = doc.property(schema, k).unwrap_or((&Value::Null, None));
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                collect(doc, s, v, &p, d.unwrap_or(""), out);
            }
        }
        _ => out.push(Row {
            key: path.to_string(),
            description: desc.replace('\n', " ").replace('|', "\\|"),
            default: serde_json::to_string(value)
                .unwrap_or_default()
                .replace('|', "\\|"),
        }),
    }
}

/// The values table as Markdown.
pub fn markdown_table(rows: &[Row]) -> String {
    let mut s = String::from("| Key | Description | Default |\n|---|---|---|\n");
    for r in rows {
        s.push_str(&format!(
            "| `{}` | {} | `{}` |\n",
            r.key, r.description, r.default
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "a": {"description": "The A.", "$ref": "#/$defs/A"},
                "n": {"type": "integer", "description": "A number."}
            },
            "$defs": {"A": {"type": "object", "properties": {"b": {"type": "string", "description": "Bee."}}}}
        })
    }

    #[test]
    fn comments_come_from_descriptions() {
        let yaml = commented_yaml(&json!({"a": {"b": "x: y"}, "n": 3}), &schema(), &["hdr"]);
        assert_eq!(
            yaml,
            "# hdr\n# The A.\na:\n  # Bee.\n  b: 'x: y'\n\n# A number.\nn: 3\n"
        );
        let parsed: Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(parsed, json!({"a": {"b": "x: y"}, "n": 3}));
    }

    #[test]
    fn rows_list_leaves_with_descriptions() {
        let r = rows(&json!({"a": {"b": "x"}, "n": 3}), &schema());
        assert_eq!(r[0].key, "a.b");
        assert_eq!(r[0].description, "Bee.");
        assert_eq!(r[1].default, "3");
    }
}
