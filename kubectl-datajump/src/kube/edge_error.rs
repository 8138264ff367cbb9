//! Errors at the cluster edge, worded once for every verb: the kubeconfig missing or unreadable,
//! a context it does not have, an API server that cannot be reached, a certificate the CA does
//! not trust, credentials refused (401) and a request denied by RBAC (403). Each message names
//! what the user has to look at (the server URL, the context, the kubeconfig user entry, the CA
//! source, the verb, resource and namespace denied) and how to fix or check it.
//!
//! Verbs do not call this module: `cmd::run` hands every failed command's error to [`at_edge`],
//! which finds a `kube::Error` among its causes and, when it is one of these, replaces the error
//! with an [`EdgeError`]. A kubeconfig or context problem is an `EdgeError` from the start
//! (`kube::endpoint`). `error::report` prints it as text or as the JSON error object.

use std::fmt;

use serde::Serialize;

/// The cluster a command talked to, as the kubeconfig names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// The API server's URL.
    pub server: String,
    /// The kubeconfig context (none in a pod's in-cluster configuration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// The kubeconfig user entry the credentials come from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// What those credentials are (a bearer token, a client certificate, an exec plugin, …).
    pub credentials: String,
    /// Where the CA that verifies the server's certificate comes from.
    pub ca: String,
    /// The kubeconfig file(s), or how the configuration was found.
    pub kubeconfig: String,
}

impl Endpoint {
    /// `context "local" (kubeconfig /home/me/.kube/config)`, or the in-cluster wording.
    fn context_phrase(&self) -> String {
        match &self.context {
            Some(context) => format!("context {context:?} ({})", self.kubeconfig),
            None => self.kubeconfig.clone(),
        }
    }

    /// `--context local` for the commands the messages suggest (empty in a pod).
    fn context_flag(&self) -> String {
        self.context
            .as_deref()
            .map(|c| format!(" --context {c}"))
            .unwrap_or_default()
    }
}

/// Which failure at the edge; its name is the JSON error's `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Reason {
    /// No kubeconfig where one was named or looked for (exit 2).
    KubeconfigNotFound,
    /// A kubeconfig that cannot be read or parsed, or whose entries cannot be loaded (exit 2).
    KubeconfigInvalid,
    /// `--context` (or `current-context`) names a context the kubeconfig does not have (exit 2).
    ContextNotFound,
    /// No connection to the API server (refused, timed out, no route, unknown host).
    Unreachable,
    /// The TLS handshake failed: the server's certificate is not one the CA vouches for.
    TlsFailure,
    /// 401: the credentials were refused (expired, revoked, wrong).
    Unauthorized,
    /// 403: RBAC does not allow the request.
    Forbidden,
}

/// The request RBAC denied, as the API server's Status describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Denied {
    /// Who was denied (`system:serviceaccount:ns:name`, a user name).
    pub user: String,
    /// The verb (`get`, `list`, `create`, `patch`, …).
    pub verb: String,
    /// The resource, with its subresource (`pods/log`).
    pub resource: String,
    /// The API group (empty: the core group).
    pub group: String,
    /// The namespace; none at the cluster scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl Denied {
    /// `workflows.datajump.io`, `pods/log` (core group): what `kubectl auth can-i` takes.
    pub(crate) fn qualified_resource(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            match self.resource.split_once('/') {
                Some((r, sub)) => format!("{r}.{}/{sub}", self.group),
                None => format!("{}.{}", self.resource, self.group),
            }
        }
    }

    /// Reads Kubernetes' RBAC refusal: `… is forbidden: User "U" cannot VERB resource "R" in
    /// API group "G" in the namespace "N"` (or `at the cluster scope`).
    pub(crate) fn parse(message: &str) -> Option<Self> {
        let rest = &message[message.find("User \"")? + 6..];
        let (user, rest) = rest.split_once("\" cannot ")?;
        let (verb, rest) = rest.split_once(" resource \"")?;
        let (resource, rest) = rest.split_once("\" in API group \"")?;
        let (group, rest) = rest.split_once('"')?;
        let namespace = rest
            .split_once("in the namespace \"")
            .and_then(|(_, n)| n.split_once('"'))
            .map(|(n, _)| n.to_string());
        Some(Self {
            user: user.to_string(),
            verb: verb.to_string(),
            resource: resource.to_string(),
            group: group.to_string(),
            namespace,
        })
    }
}

/// A failure at the cluster edge, worded for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct EdgeError {
    pub reason: Reason,
    /// What went wrong, naming what to look at.
    pub message: String,
    /// How to fix or check it (a command to run, an entry to renew).
    pub hint: String,
    /// The cluster, once the kubeconfig named one.
    pub endpoint: Option<Box<Endpoint>>,
    /// With [`Reason::Forbidden`]: the request RBAC denied.
    pub denied: Option<Box<Denied>>,
}

impl fmt::Display for EdgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if !self.hint.is_empty() {
            write!(f, "\n  {}", self.hint)?;
        }
        Ok(())
    }
}

impl EdgeError {
    /// 2 for what the user gave (kubeconfig, context), 1 for what the cluster answered.
    pub fn exit_code(&self) -> u8 {
        match self.reason {
            Reason::KubeconfigNotFound | Reason::KubeconfigInvalid | Reason::ContextNotFound => {
                crate::error::EXIT_INPUT
            }
            _ => crate::error::EXIT_RUNTIME,
        }
    }

    pub(crate) fn input(reason: Reason, message: String, hint: impl Into<String>) -> Self {
        Self {
            reason,
            message,
            hint: hint.into(),
            endpoint: None,
            denied: None,
        }
    }
}

/// A command's error, turned into an [`EdgeError`] when one of its causes is a `kube::Error`
/// at the edge (`endpoint` is the cluster it was talking to); any other error is returned as it
/// is.
pub(crate) fn at_edge(err: anyhow::Error, endpoint: Option<&Endpoint>) -> anyhow::Error {
    if err.chain().any(|c| c.is::<EdgeError>()) {
        return err;
    }
    let Some(kube_error) = err.chain().find_map(|c| c.downcast_ref::<kube::Error>()) else {
        return err;
    };
    match classify(kube_error) {
        Some(failure) => word(failure, endpoint).into(),
        None => err,
    }
}

/// A `kube::Error` sorted by what the user has to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    Unreachable(String),
    Tls(String),
    Unauthorized(String),
    Forbidden(Option<Denied>, String),
}

fn classify(err: &kube::Error) -> Option<Failure> {
    match err {
        kube::Error::Api(status) if status.code == 401 => {
            Some(Failure::Unauthorized(status.message.clone()))
        }
        kube::Error::Api(status) if status.code == 403 => Some(Failure::Forbidden(
            Denied::parse(&status.message),
            status.message.clone(),
        )),
        kube::Error::Auth(e) => Some(Failure::Unauthorized(innermost(e))),
        kube::Error::Service(_) | kube::Error::HyperError(_) => {
            let tls = causes(err)
                .find_map(|c| c.downcast_ref::<rustls::Error>().map(ToString::to_string));
            Some(match tls {
                Some(reason) => Failure::Tls(reason),
                None => Failure::Unreachable(innermost(err)),
            })
        }
        _ => None,
    }
}

/// Every cause of `err`, including the errors io::Error wraps (its `source` skips them).
fn causes<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    let mut next = Some(err);
    std::iter::from_fn(move || {
        let current = next?;
        next = current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn std::error::Error + 'static))
            .or_else(|| current.source());
        Some(current)
    })
}

/// The deepest cause's message: `Connection refused (os error 111)`, not five layers of
/// `client error (Connect)`.
fn innermost(err: &(dyn std::error::Error + 'static)) -> String {
    causes(err)
        .last()
        .map(ToString::to_string)
        .unwrap_or_default()
}

fn word(failure: Failure, endpoint: Option<&Endpoint>) -> EdgeError {
    let unknown = Endpoint {
        server: "the API server".into(),
        context: None,
        user: None,
        credentials: "the configured credentials".into(),
        ca: "the configured CA".into(),
        kubeconfig: "the kubeconfig".into(),
    };
    let e = endpoint.unwrap_or(&unknown);
    let (reason, message, hint, denied) = match failure {
        Failure::Unreachable(detail) => (
            Reason::Unreachable,
            format!(
                "cannot reach the API server {} of {}: {detail}",
                e.server,
                e.context_phrase()
            ),
            format!(
                "check that the cluster is up and that this is its address: kubectl cluster-info{}",
                e.context_flag()
            ),
            None,
        ),
        Failure::Tls(detail) => (
            Reason::TlsFailure,
            format!(
                "TLS with the API server {} of {} failed: its certificate is not trusted by {} ({detail})",
                e.server,
                e.context_phrase(),
                e.ca
            ),
            "put the cluster's own CA in the kubeconfig (your provider's get-credentials command \
             writes it again) and check that the server URL is this cluster's"
                .to_string(),
            None,
        ),
        Failure::Unauthorized(detail) => (
            Reason::Unauthorized,
            format!(
                "the API server {} refused the credentials of user entry {:?} ({}) of {}: they are expired or invalid (401 {detail})",
                e.server,
                e.user.as_deref().unwrap_or("-"),
                e.credentials,
                e.context_phrase()
            ),
            format!(
                "renew them (a new token, certificate or login for that user entry), then check with: kubectl auth whoami{}",
                e.context_flag()
            ),
            None,
        ),
        Failure::Forbidden(Some(d), _) => {
            let (scope, role) = match &d.namespace {
                Some(ns) => (
                    format!("in namespace {ns:?}"),
                    format!("a Role in namespace {ns} and a RoleBinding"),
                ),
                None => (
                    "at the cluster scope".to_string(),
                    "a ClusterRole and a ClusterRoleBinding".to_string(),
                ),
            };
            let can_i = format!(
                "kubectl auth can-i {} {}{}{} --as {}",
                d.verb,
                d.qualified_resource(),
                d.namespace
                    .as_deref()
                    .map(|n| format!(" -n {n}"))
                    .unwrap_or_default(),
                e.context_flag(),
                d.user
            );
            (
                Reason::Forbidden,
                format!(
                    "{:?} may not {} {} {scope} (403 Forbidden by RBAC; {}, API server {})",
                    d.user,
                    d.verb,
                    d.qualified_resource(),
                    e.context_phrase(),
                    e.server
                ),
                format!(
                    "it needs {role} granting apiGroups [{:?}], resources [{:?}], verbs [{:?}] to that user; check with: {can_i}",
                    d.group, d.resource, d.verb
                ),
                Some(d),
            )
        }
        Failure::Forbidden(None, detail) => (
            Reason::Forbidden,
            format!(
                "the API server {} denied a request of user entry {:?} ({}): 403 {detail}",
                e.server,
                e.user.as_deref().unwrap_or("-"),
                e.context_phrase()
            ),
            format!(
                "ask for the RBAC rights it names; see what you may do with: kubectl auth can-i --list{}",
                e.context_flag()
            ),
            None,
        ),
    };
    EdgeError {
        reason,
        message,
        hint,
        endpoint: endpoint.cloned().map(Box::new),
        denied: denied.map(Box::new),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Endpoint {
        Endpoint {
            server: "https://10.0.0.1:6443".into(),
            context: Some("prod".into()),
            user: Some("ops".into()),
            credentials: "a bearer token".into(),
            ca: "the CA data of cluster \"prod\"".into(),
            kubeconfig: "kubeconfig /home/me/.kube/config".into(),
        }
    }

    fn status(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(
            kube::core::Status {
                code,
                reason: reason.into(),
                message: message.into(),
                ..Default::default()
            }
            .boxed(),
        )
    }

    fn edge(err: kube::Error) -> EdgeError {
        let err = anyhow::Error::new(err).context("listing workflows");
        at_edge(err, Some(&endpoint()))
            .downcast::<EdgeError>()
            .expect("an edge error")
    }

    #[test]
    fn forbidden_names_the_verb_resource_namespace_and_the_rbac_it_needs() {
        let e = edge(status(
            403,
            "Forbidden",
            "workflows.datajump.io is forbidden: User \"system:serviceaccount:dj:viewer\" cannot \
             list resource \"workflows\" in API group \"datajump.io\" in the namespace \"dj\"",
        ));
        assert_eq!(e.reason, Reason::Forbidden);
        assert_eq!(e.exit_code(), 1);
        let text = e.to_string();
        assert!(
            text.starts_with(
                "\"system:serviceaccount:dj:viewer\" may not list workflows.datajump.io in namespace \"dj\""
            ),
            "{text}"
        );
        assert!(text.contains("a Role in namespace dj"), "{text}");
        assert!(
            text.contains(
                "kubectl auth can-i list workflows.datajump.io -n dj --context prod --as system:serviceaccount:dj:viewer"
            ),
            "{text}"
        );
        let cluster = Denied::parse(
            "customresourcedefinitions.apiextensions.k8s.io \"x\" is forbidden: User \"u\" cannot get \
             resource \"customresourcedefinitions\" in API group \"apiextensions.k8s.io\" at the cluster scope",
        )
        .unwrap();
        assert_eq!(cluster.namespace, None);
        assert_eq!(
            cluster.qualified_resource(),
            "customresourcedefinitions.apiextensions.k8s.io"
        );
        let core = Denied::parse(
            "pods \"p\" is forbidden: User \"u\" cannot get resource \"pods/log\" in API group \"\" in the namespace \"n\"",
        )
        .unwrap();
        assert_eq!(core.qualified_resource(), "pods/log");
    }

    #[test]
    fn unauthorized_names_the_user_entry_and_connection_failures_the_server() {
        let e = edge(status(401, "Unauthorized", "Unauthorized"));
        assert_eq!(e.reason, Reason::Unauthorized);
        assert!(
            e.message.contains("user entry \"ops\" (a bearer token)"),
            "{e}"
        );
        assert!(e.hint.contains("kubectl auth whoami --context prod"), "{e}");

        let refused =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let e = edge(kube::Error::Service(Box::new(refused)));
        assert_eq!(e.reason, Reason::Unreachable);
        assert_eq!(
            e.to_string(),
            "cannot reach the API server https://10.0.0.1:6443 of context \"prod\" (kubeconfig \
             /home/me/.kube/config): Connection refused\n  check that the cluster is up and that \
             this is its address: kubectl cluster-info --context prod"
        );

        let bad_ca = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let e = edge(kube::Error::Service(Box::new(bad_ca)));
        assert_eq!(e.reason, Reason::TlsFailure);
        assert!(
            e.message
                .contains("not trusted by the CA data of cluster \"prod\""),
            "{e}"
        );

        let other = anyhow::Error::new(status(404, "NotFound", "not found"));
        assert!(at_edge(other, None).downcast_ref::<EdgeError>().is_none());
    }
}
