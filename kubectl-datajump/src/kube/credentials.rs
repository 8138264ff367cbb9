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
pub enum Source {
    /// `secrets.values`: the chart creates the Secret itself.
    ChartValues,
    /// `secrets.existingSecret`: must exist (with every key) before the install.
    Existing(String),
    /// Neither: `<fullname>-credentials`, generated here when absent.
    Generated(String),
}

pub fn source(values: &Value, fullname: &str) -> Source {
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

/// For an existing Secret: a sentence naming what is wrong, or `None` when it is complete.
pub async fn check_existing(
    client: &Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<Option<String>> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let Some(secret) = api.get_opt(name).await? else {
        return Ok(Some(format!(
            "Secret {name:?} (secrets.existingSecret) does not exist in namespace {namespace}: create it with the keys {}",
            CREDENTIAL_KEYS.join(", ")
        )));
    };
    let has = |key: &str| {
        secret.data.as_ref().is_some_and(|d| d.contains_key(key))
            || secret
                .string_data
                .as_ref()
                .is_some_and(|d| d.contains_key(key))
    };
    let missing: Vec<&str> = CREDENTIAL_KEYS.into_iter().filter(|k| !has(k)).collect();
    Ok((!missing.is_empty()).then(|| {
        format!(
            "Secret {name:?} (secrets.existingSecret) in namespace {namespace} lacks the key(s) {}",
            missing.join(", ")
        )
    }))
}

/// Creates the generated Secret unless it exists; true when it was created now. Never
/// overwrites: the credentials of an installed platform must not change behind its back.
pub async fn ensure_generated(
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
fn random_token() -> anyhow::Result<String> {
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
