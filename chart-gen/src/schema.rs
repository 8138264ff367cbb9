//! The values schema (`values.schema.json`), generated from the model by schemars. Helm validates
//! every install, upgrade, lint and template against it, so a bad values file is refused before
//! anything reaches the cluster.

use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

use crate::model::Values;

/// The JSON Schema (draft 2020-12) of the chart's values.
pub fn values_schema() -> Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let mut schema = generator.into_root_schema_for::<Values>().to_value();
    if let Some(root) = schema.as_object_mut() {
        root.insert(
            "$id".into(),
            json!("https://datajump.io/schemas/values.schema.json"),
        );
        // Rules that span fields. Prod credentials come only from a Secret created outside the
        // chart, so no plaintext password is ever stored in a prod values file or release.
        root.insert(
            "allOf".into(),
            json!([{
                "if": {
                    "properties": {"global": {"properties": {"environment": {"const": "prod"}}}}
                },
                "then": {
                    "properties": {
                        "secrets": {
                            "properties": {"existingSecret": {"minLength": 1}},
                            "not": {"required": ["values"]},
                            "description": "prod must use secrets.existingSecret and carry no plaintext secrets.values"
                        }
                    }
                }
            }]),
        );
    }
    schema
}

/// Pretty JSON with a trailing newline, as written to disk.
pub fn to_pretty(schema: &Value) -> String {
    let mut s = serde_json::to_string_pretty(schema).expect("a JSON value always serialises");
    s.push('\n');
    s
}
