//! Reading for the report with whatever rights the user has: every request goes through a
//! [`Reader`], which turns a refusal into a line of `forbidden.txt` (403) or `unavailable.txt`
//! (not installed, not found, no log) and lets the report go on. Only what makes every further
//! request pointless — the server unreachable, the credentials refused (401) — ends it, worded
//! by the one formatter of errors at the cluster edge.

use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::core::TypeMeta;
use serde_json::Value;

use serde::Serialize;

/// At most this many objects per list request: a namespace with thousands of Jobs or runs is
/// read page by page, never held whole.
const PAGE: u32 = 250;

/// How many names of refused requests a line of `forbidden.txt` shows.
const NAMES_SHOWN: usize = 5;

/// A request, as the notes name it.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub verb: &'static str,
    /// `resource[.group][/subresource]`.
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

impl Request {
    pub(crate) fn new(verb: &'static str, resource: impl Into<String>) -> Self {
        Self {
            verb,
            resource: resource.into(),
            namespace: None,
            name: None,
        }
    }

    pub(crate) fn namespaced(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.to_string());
        self
    }

    pub(crate) fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }

    /// `list deployments.apps in datajump-dev`, `get leases.coordination.k8s.io x`.
    fn describe(&self) -> String {
        let mut out = format!("{} {}", self.verb, self.resource);
        if let Some(name) = &self.name {
            out.push_str(&format!(" {name}"));
        }
        if let Some(ns) = &self.namespace {
            out.push_str(&format!(" in {ns}"));
        }
        out
    }
}

/// A request the API server refused (403), grouped by verb, resource and namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Denied {
    pub verb: String,
    /// `resource[.group]`, with its subresource (`pods/log`).
    pub resource: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The objects named in the refused requests (none for a list), a few of them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// How many requests of this kind were refused.
    pub count: usize,
}

/// Something that could not be read for another reason than RBAC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Unavailable {
    pub what: String,
    pub why: String,
}

/// The verbs a refusal may name, as the static strings a [`Request`] keeps.
pub(crate) fn static_verb(verb: &str) -> &'static str {
    match verb {
        "get" => "get",
        "list" => "list",
        "watch" => "watch",
        "create" => "create",
        _ => "access",
    }
}

/// The resource as kubectl names it: `secrets`, `deployments.apps`.
pub(crate) fn qualified(ar: &ApiResource) -> String {
    if ar.group.is_empty() {
        ar.plural.clone()
    } else {
        format!("{}.{}", ar.plural, ar.group)
    }
}

/// What the report could not read, as it goes.
#[derive(Debug, Default)]
pub(crate) struct Notes {
    pub forbidden: Vec<Denied>,
    pub unavailable: Vec<Unavailable>,
}

impl Notes {
    /// Files a failed request: a 403 under forbidden (grouped by verb, resource and
    /// namespace), anything else the report can go on without under unavailable. An error
    /// that ends the report (unreachable, 401) is returned.
    pub(crate) fn file(&mut self, request: &Request, err: kube::Error) -> anyhow::Result<()> {
        match &err {
            // RBAC's refusal names the user; another 403 (a proxy refusing the address it
            // was asked to reach) is not a matter of rights.
            kube::Error::Api(status)
                if status.code == 403 && status.message.contains(" cannot ") =>
            {
                self.deny_request(request);
                Ok(())
            }
            kube::Error::Api(status) if status.code == 401 => Err(err.into()),
            kube::Error::Api(status) if status.code == 404 => {
                let why = match request.name {
                    Some(_) => "not found".to_string(),
                    None => "not served by this cluster (its CRD is not installed)".to_string(),
                };
                self.unavailable(request.describe(), why);
                Ok(())
            }
            kube::Error::Api(status) => {
                self.unavailable(request.describe(), status.message.clone());
                Ok(())
            }
            kube::Error::Service(_) | kube::Error::HyperError(_) | kube::Error::Auth(_) => {
                Err(err.into())
            }
            other => {
                self.unavailable(request.describe(), other.to_string());
                Ok(())
            }
        }
    }

    /// Files a failure of a step made of several requests (preflight): the `kube::Error`
    /// among its causes sorted as [`Notes::file`] sorts it (a refusal parsed from the API
    /// server's message), any other cause under unavailable as `what`.
    pub(crate) fn file_any(&mut self, what: &str, err: anyhow::Error) -> anyhow::Result<()> {
        let Some(kube_error) = err.chain().find_map(|c| c.downcast_ref::<kube::Error>()) else {
            self.unavailable(what, format!("{err:#}"));
            return Ok(());
        };
        match kube_error {
            kube::Error::Api(status) if status.code == 403 => {
                match crate::kube::edge_error::Denied::parse(&status.message) {
                    Some(d) => {
                        let mut request =
                            Request::new(static_verb(&d.verb), d.qualified_resource());
                        request.namespace = d.namespace.clone();
                        self.deny_request(&request);
                    }
                    None => self.unavailable(what, status.message.clone()),
                }
                Ok(())
            }
            kube::Error::Api(status) if status.code != 401 => {
                self.unavailable(what, status.message.clone());
                Ok(())
            }
            kube::Error::Api(_)
            | kube::Error::Service(_)
            | kube::Error::HyperError(_)
            | kube::Error::Auth(_) => Err(err),
            _ => {
                self.unavailable(what, format!("{err:#}"));
                Ok(())
            }
        }
    }

    /// Notes a request RBAC refused.
    pub(crate) fn deny_request(&mut self, request: &Request) {
        let found = self.forbidden.iter_mut().find(|d| {
            d.verb == request.verb
                && d.resource == request.resource
                && d.namespace == request.namespace
        });
        let entry = match found {
            Some(entry) => entry,
            None => {
                self.forbidden.push(Denied {
                    verb: request.verb.to_string(),
                    resource: request.resource.clone(),
                    namespace: request.namespace.clone(),
                    names: Vec::new(),
                    count: 0,
                });
                self.forbidden.last_mut().expect("just pushed")
            }
        };
        entry.count += 1;
        if let Some(name) = &request.name
            && entry.names.len() < NAMES_SHOWN
        {
            entry.names.push(name.clone());
        }
    }

    pub(crate) fn unavailable(&mut self, what: impl Into<String>, why: impl Into<String>) {
        self.unavailable.push(Unavailable {
            what: what.into(),
            why: why.into(),
        });
    }

    /// How many requests were refused, all lines counted.
    pub(crate) fn forbidden_count(&self) -> usize {
        self.forbidden.iter().map(|d| d.count).sum()
    }
}

/// An object as the report keeps it: as JSON, with its `apiVersion`/`kind` (list items come
/// without them) and without `managedFields` (who set which field, noise for a reader).
pub(crate) fn clean(object: DynamicObject, ar: &ApiResource) -> Value {
    let mut object = object;
    object.types = Some(TypeMeta {
        api_version: ar.api_version.clone(),
        kind: ar.kind.clone(),
    });
    object.metadata.managed_fields = None;
    serde_json::to_value(object).unwrap_or(Value::Null)
}

/// Lists `ar` (in `namespace`, or cluster-wide) page by page, handing each object to `each`.
/// `false` when the list was refused or is not served (noted in `notes`).
pub(crate) async fn list_each(
    client: &kube::Client,
    notes: &mut Notes,
    ar: &ApiResource,
    namespace: Option<&str>,
    mut each: impl FnMut(Value) -> anyhow::Result<()>,
) -> anyhow::Result<bool> {
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    };
    let mut request = Request::new("list", qualified(ar));
    if let Some(ns) = namespace {
        request = request.namespaced(ns);
    }
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = match api.list(&params).await {
            Ok(page) => page,
            Err(e) => {
                notes.file(&request, e)?;
                return Ok(false);
            }
        };
        let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
        for item in page.items {
            each(clean(item, ar))?;
        }
        match next {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(true),
        }
    }
}

/// Reads one object; `None` when refused or absent (noted).
pub(crate) async fn get_one(
    client: &kube::Client,
    notes: &mut Notes,
    ar: &ApiResource,
    namespace: Option<&str>,
    name: &str,
) -> anyhow::Result<Option<Value>> {
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    };
    match api.get(name).await {
        Ok(object) => Ok(Some(clean(object, ar))),
        Err(e) => {
            let mut request = Request::new("get", qualified(ar)).named(name);
            if let Some(ns) = namespace {
                request = request.namespaced(ns);
            }
            notes.file(&request, e)?;
            Ok(None)
        }
    }
}

/// Whether namespace `ns` exists; `None` when the user may not read namespaces.
pub(crate) async fn namespace_exists(
    client: &kube::Client,
    ns: &str,
) -> anyhow::Result<Option<bool>> {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    match namespaces.get_opt(ns).await {
        Ok(found) => Ok(Some(found.is_some())),
        Err(kube::Error::Api(s)) if s.code == 403 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The object's name.
pub(crate) fn name_of(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// An error answer of the API server, for the tests of the readers.
#[cfg(test)]
pub(crate) fn api_error(code: u16, message: &str) -> kube::Error {
    kube::Error::Api(
        kube::core::Status {
            code,
            message: message.into(),
            ..Default::default()
        }
        .boxed(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const RBAC: &str = "pods \"a\" is forbidden: User \"u\" cannot get resource \"pods/log\"";

    fn status(code: u16, message: &str) -> kube::Error {
        api_error(code, message)
    }

    #[test]
    fn refusals_are_grouped_absences_noted_and_only_edge_failures_end_the_report() {
        let mut notes = Notes::default();
        for pod in ["a", "b"] {
            let logs = Request::new("get", "pods/log").namespaced("dj").named(pod);
            notes.file(&logs, status(403, RBAC)).unwrap();
        }
        let secrets = Request::new("list", "secrets").namespaced("dj");
        notes.file(&secrets, status(403, RBAC)).unwrap();
        let proxy = Request::new("get", "services/proxy").namespaced("dj");
        notes
            .file(&proxy, status(403, "address not allowed"))
            .unwrap();
        let kafkas = Request::new("list", "kafkas.kafka.strimzi.io").namespaced("dj");
        notes.file(&kafkas, status(404, "not found")).unwrap();
        assert_eq!(notes.forbidden.len(), 2);
        assert_eq!(notes.forbidden[0].names, ["a", "b"]);
        assert_eq!(notes.forbidden[0].count, 2);
        assert_eq!(notes.forbidden_count(), 3);
        assert_eq!(notes.unavailable[0].what, "get services/proxy in dj");
        assert_eq!(notes.unavailable[0].why, "address not allowed");
        assert_eq!(
            notes.unavailable[1].what,
            "list kafkas.kafka.strimzi.io in dj"
        );
        assert!(notes.unavailable[1].why.contains("CRD is not installed"));
        assert!(notes.file(&secrets, status(401, "Unauthorized")).is_err());
    }
}
