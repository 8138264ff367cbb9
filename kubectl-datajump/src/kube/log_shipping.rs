//! The Secret Fluent Bit mounts to reach a secured Elasticsearch. Fluent Bit runs in its own
//! namespace and cannot mount the release namespace's Secrets, so the chart declares on the
//! DaemonSet (annotations from [`chart_gen::model::LOG_SHIPPING`]) which Secret it mounts and
//! which Secrets it is made from; `install` and `upgrade` make and refresh it here, and `status`
//! says when it has fallen behind (ECK renews its CA; a password may be rotated).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use chart_gen::model::{LOG_SHIPPING, conf_file};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, Patch, PostParams};
use kube::{Api, Client};
use serde::Serialize;
use serde_json::{Value, json};

use super::FIELD_MANAGER;

/// A Secret in some namespace, written `<namespace>/<name>` in the annotations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct SecretRef {
    pub namespace: String,
    pub name: String,
}

impl SecretRef {
    fn parse(annotation: &str, text: &str) -> anyhow::Result<Self> {
        match text.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(Self {
                    namespace: ns.to_string(),
                    name: name.to_string(),
                })
            }
            _ => anyhow::bail!(
                "annotation {annotation} is {text:?}: expected <namespace>/<secret name>"
            ),
        }
    }
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What a Fluent Bit DaemonSet declares: the Secret its pods mount and what it is made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Declared {
    pub daemonset: String,
    /// The mounted Secret, in the DaemonSet's namespace.
    pub secret: SecretRef,
    /// Holds `username` and `password` (ECK's file-realm user, or the external cluster's).
    pub credentials: Option<SecretRef>,
    /// Holds `ca.crt`.
    pub ca: Option<SecretRef>,
}

impl Declared {
    /// From one object (rendered or live); `None` unless it is a DaemonSet that declares a
    /// mounted Secret.
    pub(crate) fn from_object(obj: &Value) -> anyhow::Result<Option<Self>> {
        if obj["kind"] != "DaemonSet" {
            return Ok(None);
        }
        let annotations = &obj["metadata"]["annotations"];
        let text = |key: &str| annotations.get(key).and_then(Value::as_str);
        let Some(secret) = text(LOG_SHIPPING.secret_annotation) else {
            return Ok(None);
        };
        let daemonset = obj["metadata"]["name"].as_str().unwrap_or_default();
        let namespace = obj["metadata"]["namespace"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("DaemonSet {daemonset} has no namespace"))?;
        let reference = |key: &'static str| text(key).map(|t| SecretRef::parse(key, t)).transpose();
        Ok(Some(Self {
            daemonset: daemonset.to_string(),
            secret: SecretRef {
                namespace: namespace.to_string(),
                name: secret.to_string(),
            },
            credentials: reference(LOG_SHIPPING.credentials_annotation)?,
            ca: reference(LOG_SHIPPING.ca_annotation)?,
        }))
    }

    /// The declaration among a release's objects, if any.
    pub(crate) fn from_objects(objects: &[Value]) -> anyhow::Result<Option<Self>> {
        for obj in objects {
            if let Some(d) = Self::from_object(obj)? {
                return Ok(Some(d));
            }
        }
        Ok(None)
    }
}

/// The data of the mounted Secret, from the sources' contents: `es.conf` from the user name and
/// password, `ca.crt` as it is.
pub(crate) fn desired_data(
    credentials: Option<(&str, &str)>,
    ca: Option<&[u8]>,
) -> anyhow::Result<BTreeMap<String, ByteString>> {
    let mut data = BTreeMap::new();
    if let Some((user, password)) = credentials {
        data.insert(
            LOG_SHIPPING.conf_key.to_string(),
            ByteString(conf_file(user, password)?.into_bytes()),
        );
    }
    if let Some(ca) = ca {
        data.insert(LOG_SHIPPING.ca_key.to_string(), ByteString(ca.to_vec()));
    }
    Ok(data)
}

/// Creates ECK's file-realm user for Fluent Bit unless its Secret exists; true when created
/// now. The password is generated once and kept (like the platform's credentials).
pub(crate) async fn ensure_log_writer(client: &Client, secret: &SecretRef) -> anyhow::Result<bool> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &secret.namespace);
    if api.get_opt(&secret.name).await?.is_some() {
        return Ok(false);
    }
    let body: Secret = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": secret.name,
            "namespace": secret.namespace,
            "labels": {
                "app.kubernetes.io/part-of": "datajump",
                "app.kubernetes.io/managed-by": FIELD_MANAGER,
            },
            "annotations": {
                "datajump.io/note": "Fluent Bit's Elasticsearch user (ECK file realm), generated once by kubectl datajump install."
            }
        },
        "type": "kubernetes.io/basic-auth",
        "stringData": {
            "username": LOG_SHIPPING.username,
            "password": super::credentials::random_token()?,
            "roles": LOG_SHIPPING.role,
        },
    }))?;
    match api.create(&PostParams::default(), &body).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(anyhow::Error::new(e).context(format!("creating Secret {secret}"))),
    }
}

/// What a sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Synced {
    Created,
    /// Changed; the DaemonSet was restarted so its pods read the new contents.
    Updated,
    Unchanged,
    /// A source is not there yet; the pods wait for the Secret meanwhile.
    Waiting(String),
}

/// The sources' current contents, or why they cannot be read yet.
async fn read_sources(
    client: &Client,
    d: &Declared,
) -> anyhow::Result<Result<BTreeMap<String, ByteString>, String>> {
    let get = |r: &SecretRef| {
        let api: Api<Secret> = Api::namespaced(client.clone(), &r.namespace);
        let name = r.name.clone();
        async move { api.get_opt(&name).await }
    };
    let key = |s: &Secret, k: &str| s.data.as_ref().and_then(|d| d.get(k)).map(|b| b.0.clone());
    let mut credentials = None;
    if let Some(r) = &d.credentials {
        let Some(s) = get(r).await? else {
            return Ok(Err(format!(
                "Secret {r} (Elasticsearch user) does not exist"
            )));
        };
        let (Some(user), Some(password)) = (key(&s, "username"), key(&s, "password")) else {
            return Ok(Err(format!(
                "Secret {r} lacks the key username or password"
            )));
        };
        let text = |b: Vec<u8>, what: &str| {
            String::from_utf8(b).map_err(|_| anyhow::anyhow!("Secret {r}: {what} is not UTF-8"))
        };
        credentials = Some((text(user, "username")?, text(password, "password")?));
    }
    let mut ca = None;
    if let Some(r) = &d.ca {
        let Some(s) = get(r).await? else {
            return Ok(Err(format!(
                "Secret {r} (Elasticsearch CA, published by its operator) does not exist yet"
            )));
        };
        let Some(bytes) = key(&s, LOG_SHIPPING.ca_key) else {
            return Ok(Err(format!(
                "Secret {r} lacks the key {}",
                LOG_SHIPPING.ca_key
            )));
        };
        ca = Some(bytes);
    }
    let creds = credentials.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
    Ok(Ok(desired_data(creds, ca.as_deref()).map_err(|e| {
        anyhow::anyhow!(
            "{e} (from Secret {})",
            d.credentials
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()
        )
    })?))
}

/// Makes or refreshes the mounted Secret. Waits up to `wait` for the sources (ECK publishes its
/// CA shortly after the Elasticsearch resource is created).
pub(crate) async fn sync(client: &Client, d: &Declared, wait: Duration) -> anyhow::Result<Synced> {
    let deadline = tokio::time::Instant::now() + wait;
    let data = loop {
        match read_sources(client, d).await? {
            Ok(data) => break data,
            Err(reason) if tokio::time::Instant::now() >= deadline => {
                return Ok(Synced::Waiting(reason));
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(2)).await,
        }
    };
    let api: Api<Secret> = Api::namespaced(client.clone(), &d.secret.namespace);
    let existing = api.get_opt(&d.secret.name).await?;
    if existing.as_ref().and_then(|s| s.data.as_ref()) == Some(&data) {
        return Ok(Synced::Unchanged);
    }
    let body = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": d.secret.name,
            "namespace": d.secret.namespace,
            "labels": {
                "app.kubernetes.io/part-of": "datajump",
                "app.kubernetes.io/managed-by": FIELD_MANAGER,
            },
            "annotations": {
                "datajump.io/note": format!(
                    "Made by kubectl datajump install/upgrade for DaemonSet {} from {}; do not edit.",
                    d.daemonset,
                    [&d.credentials, &d.ca].into_iter().flatten().map(ToString::to_string).collect::<Vec<_>>().join(" and ")
                ),
            }
        },
        "type": "Opaque",
        "data": data,
    });
    api.patch(&d.secret.name, &super::apply_params(), &Patch::Apply(body))
        .await
        .with_context(|| format!("applying Secret {}", d.secret))?;
    if existing.is_none() {
        return Ok(Synced::Created);
    }
    restart(client, d).await?;
    Ok(Synced::Updated)
}

/// Fluent Bit reads its configuration and CA at start only: roll its pods, as
/// `kubectl rollout restart` does.
async fn restart(client: &Client, d: &Declared) -> anyhow::Result<()> {
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), &d.secret.namespace);
    if api.get_opt(&d.daemonset).await?.is_none() {
        return Ok(());
    }
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": chrono::Utc::now().to_rfc3339(),
    }}}}});
    api.patch(&d.daemonset, &super::patch_params(), &Patch::Merge(patch))
        .await
        .with_context(|| format!("restarting DaemonSet {}", d.daemonset))?;
    Ok(())
}

/// For `status`: whether the mounted Secret matches its sources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "state", content = "detail")]
pub(crate) enum State {
    InSync,
    /// The mounted Secret is absent or differs from its sources (the reason says which).
    OutOfSync(String),
    /// A source is missing, so there is nothing to sync from.
    Waiting(String),
}

pub(crate) async fn check(client: &Client, d: &Declared) -> anyhow::Result<State> {
    let desired = match read_sources(client, d).await? {
        Ok(data) => data,
        Err(reason) => return Ok(State::Waiting(reason)),
    };
    let api: Api<Secret> = Api::namespaced(client.clone(), &d.secret.namespace);
    let Some(live) = api.get_opt(&d.secret.name).await? else {
        return Ok(State::OutOfSync(format!(
            "Secret {} does not exist",
            d.secret
        )));
    };
    let live = live.data.unwrap_or_default();
    let differing: Vec<&str> = desired
        .keys()
        .chain(live.keys())
        .filter(|k| desired.get(*k) != live.get(*k))
        .map(String::as_str)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    Ok(if differing.is_empty() {
        State::InSync
    } else {
        State::OutOfSync(format!(
            "Secret {} differs from its sources in {}",
            d.secret,
            differing.join(", ")
        ))
    })
}

/// The live declaration of a release's Fluent Bit, wherever its namespace is.
pub(crate) async fn find_live(
    client: &Client,
    release: &str,
    release_namespace: &str,
) -> anyhow::Result<Option<Declared>> {
    let api: Api<DaemonSet> = Api::all(client.clone());
    let selector = format!(
        "app.kubernetes.io/instance={release},app.kubernetes.io/component=fluent-bit,datajump.io/release-namespace={release_namespace}"
    );
    let list = api.list(&ListParams::default().labels(&selector)).await?;
    for ds in list.items {
        if let Some(d) = Declared::from_object(&serde_json::to_value(&ds)?)? {
            return Ok(Some(d));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daemonset(annotations: Value) -> Value {
        json!({"kind": "DaemonSet", "metadata": {"name": "dj-fluent-bit-ns", "namespace": "logs",
            "annotations": annotations}})
    }

    #[test]
    fn the_declaration_is_read_from_the_annotations() {
        let d = Declared::from_object(&daemonset(json!({
            "datajump.io/es-secret": "dj-fluent-bit-ns-es",
            "datajump.io/es-credentials-from": "ns/dj-es-log-writer",
            "datajump.io/es-ca-from": "ns/dj-es-es-http-certs-public",
        })))
        .unwrap()
        .unwrap();
        assert_eq!(d.secret.to_string(), "logs/dj-fluent-bit-ns-es");
        assert_eq!(d.credentials.unwrap().to_string(), "ns/dj-es-log-writer");
        assert_eq!(d.ca.unwrap().name, "dj-es-es-http-certs-public");
        // No mounted Secret declared (embedded Elasticsearch): nothing to do.
        assert_eq!(Declared::from_object(&daemonset(json!({}))).unwrap(), None);
    }

    #[test]
    fn a_malformed_reference_names_the_annotation() {
        let err = Declared::from_object(&daemonset(json!({
            "datajump.io/es-secret": "s",
            "datajump.io/es-ca-from": "no-namespace",
        })))
        .unwrap_err()
        .to_string();
        assert!(err.contains("datajump.io/es-ca-from"), "{err}");
        assert!(err.contains("<namespace>/<secret name>"), "{err}");
    }

    #[test]
    fn the_data_holds_the_conf_lines_and_the_ca() {
        let data = desired_data(Some(("u", "p")), Some(b"PEM")).unwrap();
        assert_eq!(data["es.conf"].0, b"@SET ES_USER=u\n@SET ES_PASSWORD=p\n");
        assert_eq!(data["ca.crt"].0, b"PEM");
        let ca_only = desired_data(None, Some(b"PEM")).unwrap();
        assert_eq!(ca_only.keys().collect::<Vec<_>>(), ["ca.crt"]);
        assert!(desired_data(Some(("u", "two\nlines")), None).is_err());
    }
}
