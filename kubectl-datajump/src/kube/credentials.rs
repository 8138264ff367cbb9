//! The platform's credentials Secret. The chart never generates credentials while rendering
//! (so every render of the same values is the same), which leaves creating them to whoever
//! installs: with neither `secrets.existingSecret` nor `secrets.values` the chart reads
//! `<fullname>-credentials`, and `install`/`upgrade` create that Secret once, with random
//! values, when it is absent. It is not part of the Helm release, so it outlives `uninstall`
//! together with the data volumes it unlocks.

use std::io::Read;

use chart_gen::model::CREDENTIAL_KEYS;
use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::{Value, json};

/// Where the credentials come from, decided from the merged values alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// `secrets.values`: the chart creates the Secret itself.
    ChartValues,
    /// `secrets.existingSecret`: must exist (with every key) before the install.
    Existing(String),
    /// Neither: `<fullname>-credentials`, generated here when absent.
    Generated(String),
}

pub(crate) fn source(values: &Value, fullname: &str) -> Source {
    let existing = values
        .pointer("/secrets/existingSecret")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    match existing {
        Some(name) => Source::Existing(name.to_string()),
        None if values
            .pointer("/secrets/values")
            .is_some_and(|v| !v.is_null()) =>
        {
            Source::ChartValues
        }
        None => Source::Generated(format!("{fullname}-credentials")),
    }
}

/// A Secret the release reads but does not create, and the keys it must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequiredSecret {
    pub name: String,
    /// The value that names it, e.g. `mysql.operator.rootSecret`.
    pub named_by: &'static str,
    pub keys: Vec<&'static str>,
}

/// Every Secret the merged values make the release (or its custom resources) read without
/// creating it: the platform credentials when `secrets.existingSecret` names them, MySQL
/// Operator's root account, the MinIO Tenant's configuration, another store's upload keys.
pub(crate) fn required_secrets(values: &Value) -> Vec<RequiredSecret> {
    let text = |pointer: &str| {
        values
            .pointer(pointer)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let on = |pointer: &str| values.pointer(pointer).and_then(Value::as_bool) == Some(true);
    let mut out = Vec::new();
    if let Some(name) = text("/secrets/existingSecret") {
        out.push(RequiredSecret {
            name,
            named_by: "secrets.existingSecret",
            keys: CREDENTIAL_KEYS.to_vec(),
        });
    }
    if text("/mysql/mode").as_deref() == Some("operator")
        && let Some(name) = text("/mysql/operator/rootSecret")
    {
        out.push(RequiredSecret {
            name,
            named_by: "mysql.operator.rootSecret",
            keys: vec!["rootUser", "rootHost", "rootPassword"],
        });
    }
    if text("/minio/mode").as_deref() == Some("operator")
        && let Some(name) = text("/minio/operator/configSecret")
    {
        out.push(RequiredSecret {
            name,
            named_by: "minio.operator.configSecret",
            keys: vec!["config.env"],
        });
    }
    if text("/elasticsearch/mode").as_deref() == Some("external")
        && let Some(name) = text("/elasticsearch/external/credentialsSecret")
    {
        let mut keys = vec!["username", "password"];
        if on("/elasticsearch/external/caInSecret") {
            keys.push("ca.crt");
        }
        out.push(RequiredSecret {
            name,
            named_by: "elasticsearch.external.credentialsSecret",
            keys,
        });
    }
    if on("/backup/enabled")
        && on("/backup/upload/enabled")
        && let Some(name) = text("/backup/upload/existingSecret")
    {
        out.push(RequiredSecret {
            name,
            named_by: "backup.upload.existingSecret",
            keys: vec!["access-key", "secret-key"],
        });
    }
    out
}

/// For a Secret that must exist: a sentence naming what is wrong (the Secret, the value that
/// names it, the missing keys), or `None` when it is complete.
pub(crate) async fn check_required(
    client: &Client,
    namespace: &str,
    required: &RequiredSecret,
) -> anyhow::Result<Option<String>> {
    let RequiredSecret {
        name,
        named_by,
        keys,
    } = required;
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let Some(secret) = api.get_opt(name).await? else {
        return Ok(Some(format!(
            "Secret {name:?} ({named_by}) does not exist in namespace {namespace}: create it with the keys {}",
            keys.join(", ")
        )));
    };
    let has = |key: &str| {
        secret.data.as_ref().is_some_and(|d| d.contains_key(key))
            || secret
                .string_data
                .as_ref()
                .is_some_and(|d| d.contains_key(key))
    };
    let missing: Vec<&str> = keys.iter().copied().filter(|k| !has(k)).collect();
    Ok((!missing.is_empty()).then(|| {
        format!(
            "Secret {name:?} ({named_by}) in namespace {namespace} lacks the key(s) {}",
            missing.join(", ")
        )
    }))
}

/// Creates the generated Secret unless it exists; true when it was created now. Never
/// overwrites: the credentials of an installed platform must not change behind its back.
pub(crate) async fn ensure_generated(
    client: &Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<bool> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    if api.get_opt(name).await?.is_some() {
        return Ok(false);
    }
    let mut data = serde_json::Map::new();
    for key in CREDENTIAL_KEYS {
        data.insert(key.to_string(), json!(random_token()?));
    }
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/part-of": "datajump",
                "app.kubernetes.io/managed-by": super::FIELD_MANAGER,
            },
            "annotations": {
                "datajump.io/note": "Generated once by kubectl datajump install; kept across upgrades and uninstall (the data volumes need it)."
            }
        },
        "type": "Opaque",
        "stringData": data,
    }))?;
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(true),
        // Someone else created it in the meantime: theirs stands.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(anyhow::anyhow!(
            "creating Secret {name} in {namespace}: {e}"
        )),
    }
}

/// 32 random alphanumeric characters from the system's random source.
pub(crate) fn random_token() -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 64];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| anyhow::anyhow!("reading /dev/urandom: {e}"))?;
    // Rejection sampling keeps every character equally likely (248 = 4 × 62).
    let token: String = bytes
        .iter()
        .filter(|b| **b < 248)
        .take(32)
        .map(|b| ALPHABET[(*b % 62) as usize] as char)
        .collect();
    anyhow::ensure!(token.len() == 32, "not enough random bytes");
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_secrets_follow_the_modes() {
        let names = |values: Value| -> Vec<(String, &'static str)> {
            required_secrets(&values)
                .into_iter()
                .map(|r| (r.name, r.named_by))
                .collect()
        };
        assert!(names(json!({"mysql": {"mode": "embedded"}})).is_empty());
        let operator = json!({
            "secrets": {"existingSecret": "site-secrets"},
            "mysql": {"mode": "operator", "operator": {"rootSecret": "root"}},
            "minio": {"mode": "operator", "operator": {"configSecret": "tenant"}},
            "backup": {"enabled": true, "upload": {"enabled": true, "existingSecret": "s3"}},
        });
        assert_eq!(
            names(operator),
            [
                ("site-secrets".to_string(), "secrets.existingSecret"),
                ("root".to_string(), "mysql.operator.rootSecret"),
                ("tenant".to_string(), "minio.operator.configSecret"),
                ("s3".to_string(), "backup.upload.existingSecret"),
            ]
        );
        let root = &required_secrets(&json!({"mysql": {"mode": "operator",
            "operator": {"rootSecret": "r"}}}))[0];
        assert_eq!(root.keys, ["rootUser", "rootHost", "rootPassword"]);
        let es = &required_secrets(&json!({"elasticsearch": {"mode": "external",
            "external": {"credentialsSecret": "es-user", "caInSecret": true}}}))[0];
        assert_eq!(
            (es.name.as_str(), es.named_by),
            ("es-user", "elasticsearch.external.credentialsSecret")
        );
        assert_eq!(es.keys, ["username", "password", "ca.crt"]);
        // Upload keys are only read when uploads are on.
        let off = json!({"backup": {"enabled": true, "upload": {"enabled": false, "existingSecret": "s3"}}});
        assert!(names(off).is_empty());
    }

    #[test]
    fn the_source_follows_the_values() {
        assert_eq!(
            source(
                &json!({"secrets": {"existingSecret": "prod-creds"}}),
                "datajump"
            ),
            Source::Existing("prod-creds".into())
        );
        assert_eq!(
            source(
                &json!({"secrets": {"existingSecret": "", "values": {"dbPassword": "x"}}}),
                "datajump"
            ),
            Source::ChartValues
        );
        assert_eq!(
            source(&json!({"secrets": {"existingSecret": ""}}), "blue-datajump"),
            Source::Generated("blue-datajump-credentials".into())
        );
    }

    #[test]
    fn tokens_are_long_random_and_alphanumeric() {
        let a = random_token().unwrap();
        let b = random_token().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }
}
