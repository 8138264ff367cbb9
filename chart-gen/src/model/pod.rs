//! What a user may add to the chart's pod templates without touching how the chart wires them:
//! extra labels and annotations (`global.*` for every pod, and per component). The schema keeps
//! the chart's own keys out of reach, so an extra label can never detach pods from their
//! selectors and an extra annotation can never waive the security policy or a rollout checksum.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// Labels the chart sets on pod templates itself (selectors and the standard labels); extra pod
/// labels may not redefine them.
pub const CHART_POD_LABELS: [&str; 9] = [
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/version",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
    "datajump.io/environment",
    "datajump.io/release-namespace",
];

/// Annotation keys extra pod annotations may not use: the chart's rollout checksums, the
/// policy-exception annotation (waivers are declared by the chart's templates, with their reason,
/// never from values) and checkov's skip annotations (the policy scan tolerates only the chart's).
pub const CHART_POD_ANNOTATIONS: &str =
    r"^(checksum/.*|datajump\.io/policy-exception|checkov\.io/.*)$";

/// Extra labels on pod templates (not on selectors).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PodLabels(pub BTreeMap<String, String>);

/// Extra annotations on pod templates.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PodAnnotations(pub BTreeMap<String, String>);

impl PodAnnotations {
    /// Annotations from `(key, value)` pairs.
    pub fn of(pairs: &[(&str, &str)]) -> Self {
        Self(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }
}

impl JsonSchema for PodLabels {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "PodLabels".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "additionalProperties": {
                "type": "string",
                "maxLength": 63,
                "pattern": "^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$",
                "examples": ["data-platform"]
            },
            "propertyNames": { "not": { "enum": CHART_POD_LABELS } }
        })
    }
}

impl JsonSchema for PodAnnotations {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "PodAnnotations".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "additionalProperties": { "type": "string" },
            "propertyNames": { "not": { "pattern": CHART_POD_ANNOTATIONS } }
        })
    }
}
