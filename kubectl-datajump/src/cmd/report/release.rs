//! The Helm release, read through helm the way `status` reads it: helm's own version, the
//! release's metadata (chart version, revision, state), its history, its values (as given, and
//! merged with the chart's defaults for preflight), and which objects it consists of (from its
//! manifest, which is read for the objects' names only and never written: it holds the rendered
//! Secrets).

use serde_json::Value;

use crate::cmd::Ctx;
use crate::cmd::status::{ReleaseInfo, release_from_metadata};
use crate::helm::Helm;
use crate::kube::edge_error::Denied;
use crate::kube::report::collect::{Notes, Request, static_verb};
use crate::kube::report::objects::ObjectRef;

/// What helm says about the release; each part `None` when helm could not say (noted).
#[derive(Debug, Default)]
pub(crate) struct ReleaseFacts {
    pub helm_version: Option<String>,
    pub helm_path: Option<String>,
    pub info: Option<ReleaseInfo>,
    pub history: Option<Value>,
    /// `helm get values`: what the user gave.
    pub values: Option<Value>,
    /// `helm get values --all`: merged with the chart's defaults.
    pub computed: Option<Value>,
    pub objects: Vec<ObjectRef>,
}

/// Asks helm everything the report needs about the release in `ns`.
pub(crate) async fn read(ctx: &Ctx, ns: &str, notes: &mut Notes) -> ReleaseFacts {
    let mut facts = ReleaseFacts::default();
    let helm = match ctx.helm() {
        Ok(helm) => helm,
        Err(e) => {
            notes.unavailable("helm (versions, release history and values)", e.to_string());
            return facts;
        }
    };
    facts.helm_path = Some(helm.bin.display().to_string());
    let release = &ctx.global.release;
    facts.helm_version = ask(&helm, notes, &helm.version_args(), "helm version")
        .await
        .map(|v| v.trim().to_string());
    let json = |text: Option<String>| text.and_then(|t| serde_json::from_str::<Value>(&t).ok());
    let metadata = json(
        ask(
            &helm,
            notes,
            &helm.metadata_args(release, ns),
            "helm get metadata",
        )
        .await,
    );
    facts.info = metadata.map(|m| release_from_metadata(release.clone(), &m));
    facts.history = json(
        ask(
            &helm,
            notes,
            &helm.history_args(release, ns),
            "helm history",
        )
        .await,
    );
    facts.values = json(
        ask(
            &helm,
            notes,
            &helm.get_values_args(release, ns, false),
            "helm get values",
        )
        .await,
    );
    facts.computed = json(
        ask(
            &helm,
            notes,
            &helm.get_values_args(release, ns, true),
            "helm get values --all",
        )
        .await,
    );
    if let Some(manifest) = ask(
        &helm,
        notes,
        &helm.get_manifest_args(release, ns),
        "helm get manifest",
    )
    .await
    {
        facts.objects = object_refs(&manifest);
    }
    facts
}

/// Runs one helm command; its output, or `None` with the failure noted (a refusal by RBAC
/// under forbidden, naming the request helm was refused).
async fn ask(
    helm: &Helm,
    notes: &mut Notes,
    args: &[std::ffi::OsString],
    what: &str,
) -> Option<String> {
    match helm.run(args).await {
        Ok(out) => Some(out),
        Err(e) => {
            let message = format!("{e:#}");
            match Denied::parse(&message) {
                Some(d) => {
                    let mut request = Request::new(static_verb(&d.verb), d.qualified_resource());
                    if let Some(ns) = &d.namespace {
                        request = request.namespaced(ns);
                    }
                    notes.deny_request(&request);
                }
                None => notes.unavailable(what, last_line(&message)),
            }
            None
        }
    }
}

/// Helm's message without the command line before it.
fn last_line(message: &str) -> String {
    message.lines().last().unwrap_or(message).trim().to_string()
}

/// The objects a release manifest (`helm get manifest`) consists of.
pub(crate) fn object_refs(manifest: &str) -> Vec<ObjectRef> {
    let Ok(docs) = crate::manifests::parse(manifest) else {
        return Vec::new();
    };
    docs.iter()
        .filter_map(|doc| {
            let text = |p: &str| doc.pointer(p).and_then(Value::as_str).map(str::to_string);
            Some(ObjectRef {
                api_version: text("/apiVersion")?,
                kind: text("/kind")?,
                namespace: text("/metadata/namespace"),
                name: text("/metadata/name")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_gives_names_and_never_its_secrets() {
        let manifest = "---\n# Source: datajump/templates/config/secret.yaml\napiVersion: v1\nkind: Secret\nmetadata:\n  name: datajump-secrets\nstringData:\n  db-password: hunter2\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: datajump-fluent-bit\n---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: fb\n  namespace: datajump-logging\n";
        let refs = object_refs(manifest);
        assert_eq!(refs.len(), 3);
        assert_eq!(refs[0].kind, "Secret");
        assert_eq!(refs[0].namespace, None);
        assert_eq!(refs[2].namespace.as_deref(), Some("datajump-logging"));
        assert!(!format!("{refs:?}").contains("hunter2"));
    }
}
