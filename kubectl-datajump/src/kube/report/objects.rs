//! Every object of the environment's namespace and of the release: the resource types come from
//! the API server's discovery (so the operators' custom resources and anything installed later
//! are included without a list to keep up to date), each listed page by page and written one
//! object per file, redacted. The release's objects in other namespaces (Fluent Bit's) and its
//! cluster-scoped ones (ClusterRoles) are read one by one from its manifest's names.
//!
//! The Secrets are read first, apart ([`read_secrets`]): their values are what the redactor
//! searches every other file for.

use kube::Client;
use kube::api::{ApiResource, GroupVersionKind};
use kube::discovery::{Discovery, Scope, verbs};
use serde_json::Value;

use super::collect::{Notes, get_one, list_each, name_of, qualified};
use super::{Part, Sink};
use crate::redact::{self, SecretNames, Term};

/// An object of the release, as its manifest names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    /// As written in the manifest (none: the release's namespace, or a cluster-scoped kind).
    pub namespace: Option<String>,
    pub name: String,
}

/// A Secret's resource name, as the parts name it.
pub(crate) fn secrets_resource() -> String {
    qualified(&secrets())
}

/// Resource types not written here: pods, Secrets and WorkflowRuns have sections of their own,
/// events are one table, and ControllerRevisions are copies of pod templates kept for rollbacks.
const ELSEWHERE: [&str; 6] = [
    "pods",
    "secrets",
    "events",
    "events.events.k8s.io",
    "workflowruns.datajump.io",
    "controllerrevisions.apps",
];

/// The API server's resource types: aggregated discovery (two requests), else group by group.
pub(crate) async fn discover(
    client: &Client,
    notes: &mut Notes,
) -> anyhow::Result<Option<Discovery>> {
    if let Ok(found) = Discovery::new(client.clone()).run_aggregated().await {
        return Ok(Some(found));
    }
    match Discovery::new(client.clone()).run().await {
        Ok(found) => Ok(Some(found)),
        Err(e @ (kube::Error::Service(_) | kube::Error::HyperError(_) | kube::Error::Auth(_))) => {
            Err(e.into())
        }
        Err(e) => {
            notes.unavailable("the API server's resource types (discovery)", e.to_string());
            Ok(None)
        }
    }
}

/// The namespaced resource types that can be listed, in their preferred versions, but those
/// written [`ELSEWHERE`].
pub(crate) fn namespaced_resources(discovery: &Discovery) -> Vec<ApiResource> {
    let mut out: Vec<ApiResource> = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .filter(|(ar, caps)| {
            caps.scope == Scope::Namespaced
                && caps.supports_operation(verbs::LIST)
                && !ELSEWHERE.contains(&qualified(ar).as_str())
        })
        .map(|(ar, _)| ar)
        .collect();
    out.sort_by_key(qualified);
    out
}

/// A Secret's resource type.
fn secrets() -> ApiResource {
    ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&())
}

/// The Secrets of the namespace and the release's elsewhere, redacted, with the values they
/// held as redactor terms.
#[derive(Debug, Default)]
pub(crate) struct SecretsRead {
    /// `(namespace, redacted Secret)`.
    pub objects: Vec<(String, Value)>,
    pub terms: Vec<Term>,
    /// Whether the namespace's Secrets could be listed.
    pub readable: bool,
    /// Their names.
    pub names: SecretNames,
}

/// Reads the Secrets (see [`SecretsRead`]).
pub(crate) async fn read_secrets(
    client: &Client,
    notes: &mut Notes,
    ns: &str,
    release: &[ObjectRef],
) -> anyhow::Result<SecretsRead> {
    let ar = secrets();
    let mut read = SecretsRead::default();
    let mut found = Vec::new();
    read.readable = list_each(client, notes, &ar, Some(ns), |s| {
        found.push((ns.to_string(), s));
        Ok(())
    })
    .await?;
    for r in release
        .iter()
        .filter(|r| r.kind == "Secret" && r.api_version == "v1")
    {
        let Some(other) = r.namespace.as_deref().filter(|n| *n != ns) else {
            continue;
        };
        if let Some(s) = get_one(client, notes, &ar, Some(other), &r.name).await? {
            found.push((other.to_string(), s));
        }
    }
    for (namespace, mut secret) in found {
        let name = name_of(&secret).to_string();
        read.names.insert(name.clone());
        for (key, value) in redact::redact_secret(&mut secret) {
            read.terms.push(Term::from_secret(&name, &key, value));
        }
        read.objects.push((namespace, secret));
    }
    Ok(read)
}

/// A Secret's data replaced by sizes (layer 1 of the redaction); the other layers apply to
/// every file as the bundle writes it.
pub(crate) fn redact_object(object: &mut Value) {
    if object.get("kind").and_then(Value::as_str) == Some("Secret") {
        redact::redact_secret(object);
    }
}

/// Writes every object of `ns` of the `resources` types; how many.
pub(crate) async fn write_namespace(
    client: &Client,
    notes: &mut Notes,
    sink: &mut impl Sink,
    ns: &str,
    resources: &[ApiResource],
) -> anyhow::Result<usize> {
    let mut count = 0;
    for ar in resources {
        let resource = qualified(ar);
        list_each(client, notes, ar, Some(ns), |mut object| {
            redact_object(&mut object);
            count += 1;
            sink.put(Part::Object {
                namespace: Some(ns),
                resource: &resource,
                name: name_of(&object),
                value: &object,
            })
        })
        .await?;
    }
    Ok(count)
}

/// Writes the release's objects that the namespace's listing did not (cluster-scoped ones,
/// those in other namespaces, kinds not listed); how many.
pub(crate) async fn write_release_elsewhere(
    client: &Client,
    notes: &mut Notes,
    sink: &mut impl Sink,
    ns: &str,
    discovery: &Discovery,
    release: &[ObjectRef],
) -> anyhow::Result<usize> {
    let mut count = 0;
    for r in release {
        let gvk = gvk_of(r);
        let Some((ar, caps)) = discovery.resolve_gvk(&gvk) else {
            notes.unavailable(
                format!("{} {} of the release", r.kind, r.name),
                format!("{} is not served by this cluster", r.api_version),
            );
            continue;
        };
        let namespace = match caps.scope {
            Scope::Cluster => None,
            Scope::Namespaced => Some(r.namespace.as_deref().unwrap_or(ns)),
        };
        let resource = qualified(&ar);
        if sink.has_object(namespace, &resource, &r.name) {
            continue;
        }
        if let Some(mut object) = get_one(client, notes, &ar, namespace, &r.name).await? {
            redact_object(&mut object);
            sink.put(Part::Object {
                namespace,
                resource: &resource,
                name: &r.name,
                value: &object,
            })?;
            count += 1;
        }
    }
    Ok(count)
}

/// `apps/v1` + `Deployment` → group `apps`, version `v1`.
fn gvk_of(r: &ObjectRef) -> GroupVersionKind {
    let (group, version) = r
        .api_version
        .split_once('/')
        .unwrap_or(("", r.api_version.as_str()));
    GroupVersionKind::gvk(group, version, &r.kind)
}
