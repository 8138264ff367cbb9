//! Which cluster to talk to, found the way kubectl finds it: `--kubeconfig`, else the files
//! `KUBECONFIG` lists (merged; missing ones skipped, as kubectl skips them), else
//! `~/.kube/config`, else a pod's in-cluster configuration; then `--context` or the
//! `current-context`. What it finds is kept as an [`Endpoint`] for the messages of
//! `edge_error`; what it cannot find (a missing or unreadable file, an unknown context) is an
//! input error that names the file once, or the contexts there are.

use std::path::{Path, PathBuf};

use kube::Config;
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};

use super::Target;
use super::edge_error::{EdgeError, Endpoint, Reason};

/// A client configuration and the cluster it points at.
pub(crate) struct Resolved {
    pub config: Config,
    pub endpoint: Endpoint,
}

/// Where the kubeconfig came from.
enum Source {
    /// Files, and how they were named (`--kubeconfig`, `KUBECONFIG`, the default path).
    Files(Vec<PathBuf>, &'static str),
    /// No kubeconfig, inside a pod.
    InCluster,
}

/// Resolves `target` to a client configuration.
pub(crate) async fn resolve(target: &Target) -> Result<Resolved, EdgeError> {
    let (files, origin) = match source(target)? {
        Source::InCluster => return in_cluster(target),
        Source::Files(files, origin) => (files, origin),
    };
    let mut merged = Kubeconfig::default();
    for file in &files {
        let one = Kubeconfig::read_from(file).map_err(|e| unreadable(file, origin, e))?;
        merged = merged.merge(one).map_err(|e| {
            EdgeError::input(
                Reason::KubeconfigInvalid,
                format!("the kubeconfig files in KUBECONFIG cannot be merged: {e}"),
                "",
            )
        })?;
    }
    let where_ = describe(&files);
    let context = pick_context(&merged, target.context.as_deref(), &where_)?;
    let endpoint = endpoint_of(&merged, &context, &where_);
    let options = KubeConfigOptions {
        context: Some(context),
        ..Default::default()
    };
    let config = Config::from_custom_kubeconfig(merged, &options)
        .await
        .map_err(|e| {
            EdgeError::input(
                Reason::KubeconfigInvalid,
                format!("{}: {e}", endpoint_phrase(&endpoint)),
                "fix that entry of the kubeconfig (kubectl config view shows it)",
            )
        })?;
    Ok(Resolved { config, endpoint })
}

fn source(target: &Target) -> Result<Source, EdgeError> {
    if let Some(path) = &target.kubeconfig {
        return Ok(Source::Files(vec![path.clone()], "--kubeconfig"));
    }
    if let Some(value) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        let listed: Vec<PathBuf> = std::env::split_paths(&value)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        let existing: Vec<PathBuf> = listed.iter().filter(|p| p.exists()).cloned().collect();
        if existing.is_empty() {
            return Err(EdgeError::input(
                Reason::KubeconfigNotFound,
                format!(
                    "kubeconfig {} (from KUBECONFIG) does not exist",
                    describe_paths(&listed)
                ),
                "set KUBECONFIG to an existing kubeconfig, or pass --kubeconfig PATH",
            ));
        }
        return Ok(Source::Files(existing, "KUBECONFIG"));
    }
    let default = std::env::home_dir().map(|h| h.join(".kube").join("config"));
    if let Some(path) = default.filter(|p| p.exists()) {
        return Ok(Source::Files(vec![path], "the default path"));
    }
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        return Ok(Source::InCluster);
    }
    Err(EdgeError::input(
        Reason::KubeconfigNotFound,
        "no kubeconfig: --kubeconfig is not given, KUBECONFIG is not set and ~/.kube/config does not exist".into(),
        "pass --kubeconfig PATH or set KUBECONFIG (your provider's get-credentials command writes one)",
    ))
}

fn in_cluster(target: &Target) -> Result<Resolved, EdgeError> {
    if let Some(context) = &target.context {
        return Err(EdgeError::input(
            Reason::ContextNotFound,
            format!(
                "context {context:?} does not exist: there is no kubeconfig, only the pod's in-cluster configuration"
            ),
            "leave --context out, or pass --kubeconfig PATH",
        ));
    }
    let config = Config::incluster().map_err(|e| {
        EdgeError::input(
            Reason::KubeconfigInvalid,
            format!("the in-cluster configuration cannot be loaded: {e}"),
            "pass --kubeconfig PATH",
        )
    })?;
    let endpoint = Endpoint {
        server: config.cluster_url.to_string(),
        context: None,
        user: None,
        credentials: "the pod's service account token".into(),
        ca: "the service account's ca.crt".into(),
        kubeconfig: "the pod's in-cluster configuration".into(),
    };
    Ok(Resolved { config, endpoint })
}

/// A kubeconfig file that cannot be read: missing, unreadable or not a kubeconfig. The path is
/// named once (kube's own error repeats it, quoted).
fn unreadable(file: &Path, origin: &str, e: KubeconfigError) -> EdgeError {
    let path = file.display();
    match e {
        KubeconfigError::ReadConfig(io, _) if io.kind() == std::io::ErrorKind::NotFound => {
            EdgeError::input(
                Reason::KubeconfigNotFound,
                format!("kubeconfig {path} (from {origin}) does not exist"),
                "pass the path of an existing kubeconfig, or leave --kubeconfig out to use KUBECONFIG or ~/.kube/config",
            )
        }
        KubeconfigError::ReadConfig(io, _) => EdgeError::input(
            Reason::KubeconfigInvalid,
            format!("kubeconfig {path} (from {origin}) cannot be read: {io}"),
            "check the file's permissions",
        ),
        other => EdgeError::input(
            Reason::KubeconfigInvalid,
            format!("kubeconfig {path} (from {origin}) is not a valid kubeconfig: {other}"),
            "",
        ),
    }
}

/// `--context`, else `current-context`; either must name a context the kubeconfig has.
fn pick_context(
    kubeconfig: &Kubeconfig,
    wanted: Option<&str>,
    where_: &str,
) -> Result<String, EdgeError> {
    let names: Vec<&str> = kubeconfig
        .contexts
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let there_are = if names.is_empty() {
        "it has no contexts".to_string()
    } else {
        format!("its contexts: {}", names.join(", "))
    };
    let (name, from) = match (wanted, kubeconfig.current_context.as_deref()) {
        (Some(name), _) => (name, "--context"),
        (None, Some(name)) if !name.is_empty() => (name, "current-context"),
        (None, _) => {
            return Err(EdgeError::input(
                Reason::ContextNotFound,
                format!("{where_} sets no current-context; {there_are}"),
                "pick one with --context NAME",
            ));
        }
    };
    if names.contains(&name) {
        Ok(name.to_string())
    } else {
        Err(EdgeError::input(
            Reason::ContextNotFound,
            format!("context {name:?} (from {from}) does not exist in {where_}; {there_are}"),
            "pick one of them with --context NAME (kubectl config get-contexts lists them)",
        ))
    }
}

/// What the context points at: server, user entry, credentials and CA source, for messages.
fn endpoint_of(kubeconfig: &Kubeconfig, context: &str, where_: &str) -> Endpoint {
    let ctx = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.as_ref());
    let cluster_name = ctx.map(|c| c.cluster.as_str()).unwrap_or_default();
    let cluster = kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .and_then(|c| c.cluster.as_ref());
    let user = ctx.and_then(|c| c.user.clone());
    let auth = kubeconfig
        .auth_infos
        .iter()
        .find(|a| Some(&a.name) == user.as_ref())
        .and_then(|a| a.auth_info.as_ref());
    let ca = match cluster {
        Some(c) if c.certificate_authority_data.is_some() => {
            format!("the CA in certificate-authority-data of cluster {cluster_name:?} in {where_}")
        }
        Some(c) if c.certificate_authority.is_some() => format!(
            "the CA file {} (certificate-authority of cluster {cluster_name:?})",
            c.certificate_authority.as_deref().unwrap_or_default()
        ),
        _ => format!(
            "the system's trusted CAs (cluster {cluster_name:?} names no certificate-authority)"
        ),
    };
    let credentials = match auth {
        Some(a) if a.exec.is_some() => format!(
            "the exec plugin {}",
            a.exec
                .as_ref()
                .and_then(|e| e.command.as_deref())
                .unwrap_or("(no command)")
        ),
        Some(a) if a.token.is_some() => "a bearer token".to_string(),
        Some(a) if a.token_file.is_some() => format!(
            "the token file {}",
            a.token_file.as_deref().unwrap_or_default()
        ),
        Some(a) if a.client_certificate.is_some() || a.client_certificate_data.is_some() => {
            "a client certificate".to_string()
        }
        Some(a) if a.auth_provider.is_some() => "an auth-provider".to_string(),
        Some(a) if a.username.is_some() => "a user name and password".to_string(),
        _ => "no credentials".to_string(),
    };
    Endpoint {
        server: cluster
            .and_then(|c| c.server.clone())
            .unwrap_or_else(|| "(no server)".into()),
        context: Some(context.to_string()),
        user,
        credentials,
        ca,
        kubeconfig: where_.to_string(),
    }
}

fn endpoint_phrase(endpoint: &Endpoint) -> String {
    format!(
        "context {:?} in {}",
        endpoint.context.as_deref().unwrap_or_default(),
        endpoint.kubeconfig
    )
}

fn describe_paths(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `kubeconfig /path` or `kubeconfigs /a, /b` (KUBECONFIG with several files).
fn describe(files: &[PathBuf]) -> String {
    let s = if files.len() == 1 { "" } else { "s" };
    format!("kubeconfig{s} {}", describe_paths(files))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_CONTEXTS: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster: {server: "https://10.0.0.1:6443", certificate-authority: /etc/prod-ca.crt}
users:
- name: ops
  user: {token: secret}
contexts:
- name: prod
  context: {cluster: prod, user: ops}
- name: staging
  context: {cluster: prod, user: ops}
current-context: prod
"#;

    fn kubeconfig() -> Kubeconfig {
        Kubeconfig::from_yaml(TWO_CONTEXTS).unwrap()
    }

    #[test]
    fn an_unknown_context_lists_the_contexts_there_are() {
        let err = pick_context(&kubeconfig(), Some("prd"), "kubeconfig /k").unwrap_err();
        assert_eq!(err.reason, Reason::ContextNotFound);
        assert_eq!(err.exit_code(), 2);
        assert_eq!(
            err.message,
            "context \"prd\" (from --context) does not exist in kubeconfig /k; its contexts: prod, staging"
        );
        assert_eq!(
            pick_context(&kubeconfig(), None, "kubeconfig /k").unwrap(),
            "prod"
        );
    }

    #[test]
    fn the_endpoint_names_server_user_credentials_and_ca() {
        let e = endpoint_of(&kubeconfig(), "staging", "kubeconfig /k");
        assert_eq!(e.server, "https://10.0.0.1:6443");
        assert_eq!(e.user.as_deref(), Some("ops"));
        assert_eq!(e.credentials, "a bearer token");
        assert_eq!(
            e.ca,
            "the CA file /etc/prod-ca.crt (certificate-authority of cluster \"prod\")"
        );
    }

    #[tokio::test]
    async fn a_missing_kubeconfig_is_named_once() {
        let target = Target {
            kubeconfig: Some("/nonexistent/kubeconfig".into()),
            context: None,
        };
        let err = resolve(&target).await.err().expect("no such file");
        assert_eq!(err.reason, Reason::KubeconfigNotFound);
        assert_eq!(err.exit_code(), 2);
        assert_eq!(
            err.to_string().matches("/nonexistent/kubeconfig").count(),
            1,
            "{err}"
        );
    }
}
