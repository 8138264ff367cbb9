//! The CRDs of both resources as chart-gen writes them into the chart, with the schema
//! adjustments the API server and `kubectl apply` need.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::CustomResourceExt;

use crate::run::WorkflowRun;
use crate::workflow::Workflow;

/// The CRDs of this API, for chart-gen to write into the chart.
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![Workflow::crd(), WorkflowRun::crd()];
    for crd in &mut crds {
        for version in &mut crd.spec.versions {
            if let Some(schema) = version
                .schema
                .as_mut()
                .and_then(|s| s.open_api_v3_schema.as_mut())
            {
                kubernetes_formats(schema);
                terse_kubernetes_types(schema);
            }
        }
    }
    crds
}

/// Fields whose types are Kubernetes' own (k8s-openapi's): documented by Kubernetes
/// (`kubectl explain pod.spec.affinity`), so their nested descriptions are left out of the CRDs.
/// They would otherwise make up most of the Workflow CRD (the affinity schema alone is ~30 KB,
/// and a task, the onExit task and the workflow's pod defaults each carry one), pushing it past
/// what `kubectl apply` can annotate (256 KiB).
const KUBERNETES_TYPED_FIELDS: [&str; 9] = [
    "affinity",
    "env",
    "envFrom",
    "resources",
    "tolerations",
    "persistentVolumeClaim",
    "configMap",
    "secret",
    "emptyDir",
];

/// Drops the descriptions inside [`KUBERNETES_TYPED_FIELDS`] (each keeps its own).
fn terse_kubernetes_types(schema: &mut JSONSchemaProps) {
    for (name, child) in schema.properties.iter_mut().flatten() {
        if KUBERNETES_TYPED_FIELDS.contains(&name.as_str()) {
            for_each_nested(child, &mut |s| {
                s.description = None;
            });
        } else {
            terse_kubernetes_types(child);
        }
    }
    if let Some(JSONSchemaPropsOrArray::Schema(items)) = schema.items.as_mut() {
        terse_kubernetes_types(items);
    }
}

/// The schemas directly inside `schema`: its properties, items, additional properties and
/// the branches of `allOf`, `anyOf`, `oneOf` and `not`.
fn children(schema: &mut JSONSchemaProps) -> Vec<&mut JSONSchemaProps> {
    let mut nested: Vec<&mut JSONSchemaProps> = schema
        .properties
        .iter_mut()
        .flat_map(|p| p.values_mut())
        .chain(schema.all_of.iter_mut().flatten())
        .chain(schema.any_of.iter_mut().flatten())
        .chain(schema.one_of.iter_mut().flatten())
        .chain(schema.not.as_deref_mut())
        .collect();
    match schema.items.as_mut() {
        Some(JSONSchemaPropsOrArray::Schema(s)) => nested.push(s),
        Some(JSONSchemaPropsOrArray::Schemas(list)) => nested.extend(list.iter_mut()),
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(s)) = schema.additional_properties.as_mut() {
        nested.push(s);
    }
    nested
}

/// Calls `f` on every schema nested in `schema` (not on `schema` itself).
fn for_each_nested(schema: &mut JSONSchemaProps, f: &mut impl FnMut(&mut JSONSchemaProps)) {
    for child in children(schema) {
        f(child);
        for_each_nested(child, f);
    }
}

/// schemars names Rust's unsigned integers `uint8` … `uint64`, formats the API server does not
/// know (it warns `unrecognized format "uint32"` on every apply). Kubernetes knows `int32` and
/// `int64`; the sign becomes `minimum: 0`, which is what the Rust type guaranteed.
fn kubernetes_formats(schema: &mut JSONSchemaProps) {
    for_each_nested(schema, &mut unsigned_as_kubernetes_int);
    unsigned_as_kubernetes_int(schema);
}

fn unsigned_as_kubernetes_int(schema: &mut JSONSchemaProps) {
    let known = match schema.format.as_deref() {
        Some("uint8" | "uint16" | "uint32") => "int32",
        Some("uint64" | "uint") => "int64",
        _ => return,
    };
    schema.format = Some(known.into());
    if schema.minimum.is_none_or(|m| m < 0.0) {
        schema.minimum = Some(0.0);
    }
}
