//! `status --env E`: one answer with the Helm release, each component's readiness, the operator
//! custom resources' readiness, the scheduler's leader and the last successful backup.

use chrono::Utc;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::{Api, Client};
use serde::Serialize;
use serde_json::Value;

use crate::cmd::Ctx;
use crate::helm::Helm;
use crate::kube::jobs::{JobOutcome, job_outcome};
use crate::kube::log_shipping;
use crate::kube::rollout::{self, WorkloadReadiness};
use crate::output::{self, Render, Style, age};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub namespace: String,
    pub release: ReleaseInfo,
    pub components: Vec<WorkloadReadiness>,
    pub infrastructure: Vec<CustomResourceState>,
    pub scheduler_leader: Option<Leader>,
    pub last_backup: Option<LastBackup>,
    pub pod_security: Option<PodSecurityState>,
    /// Fluent Bit's Secret for a secured Elasticsearch, when the release has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_shipping: Option<LogShippingState>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogShippingState {
    pub secret: String,
    #[serde(flatten)]
    pub state: log_shipping::State,
}

/// What the namespace enforces, what the release needs, and why it needs less than restricted.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSecurityState {
    /// The namespace's `pod-security.kubernetes.io/enforce` label (none: unlabelled).
    pub enforced: Option<String>,
    /// The level the chart says the release needs.
    pub required: String,
    pub forced_by: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseInfo {
    pub name: String,
    pub revision: Option<i64>,
    pub chart_version: Option<String>,
    pub app_version: Option<String>,
    pub status: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomResourceState {
    pub kind: String,
    pub name: String,
    pub ready: bool,
    pub detail: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Leader {
    pub holder: String,
    pub renewed_seconds_ago: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastBackup {
    pub job: String,
    pub age_seconds: i64,
}

impl Render for Status {
    fn human(&self, style: &Style) -> String {
        let r = &self.release;
        let mut out = format!(
            "Release {} in {}: {} (revision {}, chart {}, app {})\n\n",
            r.name,
            self.namespace,
            style.state(&r.status),
            r.revision
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into()),
            r.chart_version.as_deref().unwrap_or("-"),
            r.app_version.as_deref().unwrap_or("-"),
        );
        out.push_str(&rollout::readiness_table(&self.components, style));
        if !self.infrastructure.is_empty() {
            out.push('\n');
            let rows: Vec<Vec<String>> = self
                .infrastructure
                .iter()
                .map(|c| {
                    vec![
                        format!("{}/{}", c.kind, c.name),
                        style.state(if c.ready { "Ready" } else { "NotReady" }),
                        c.detail.clone(),
                    ]
                })
                .collect();
            out.push_str(&output::table(
                &["INFRASTRUCTURE", "STATE", "DETAIL"],
                &rows,
            ));
        }
        out.push('\n');
        match &self.scheduler_leader {
            Some(l) => out.push_str(&format!(
                "scheduler leader: {} (renewed {} ago)\n",
                l.holder,
                l.renewed_seconds_ago.map(age).unwrap_or_else(|| "?".into())
            )),
            None => out.push_str("scheduler leader: none\n"),
        }
        match &self.last_backup {
            Some(b) => out.push_str(&format!(
                "last backup: {} ({} ago)\n",
                b.job,
                age(b.age_seconds)
            )),
            None => out.push_str("last backup: none\n"),
        }
        if let Some(l) = &self.log_shipping {
            match &l.state {
                log_shipping::State::InSync => out.push_str(&format!(
                    "log shipping: Secret {} {}\n",
                    l.secret,
                    style.state("Ready")
                )),
                log_shipping::State::OutOfSync(why) => out.push_str(&format!(
                    "log shipping: {} {why}; `kubectl datajump upgrade` refreshes it\n",
                    style.state("NotReady")
                )),
                log_shipping::State::Waiting(why) => out.push_str(&format!(
                    "log shipping: {} {why}\n",
                    style.state("NotReady")
                )),
            }
        }
        if let Some(p) = &self.pod_security {
            let enforced = p.enforced.as_deref().unwrap_or("unlabelled");
            out.push_str(&format!(
                "pod security: namespace enforces {enforced}, release needs {}\n",
                p.required
            ));
            for reason in &p.forced_by {
                out.push_str(&format!("  below restricted because {reason}\n"));
            }
        }
        out
    }
}

/// The operator custom resources the chart may create, by component.
const INFRA_KINDS: &[(&str, &str, &str, &str)] = &[
    ("mysql.oracle.com", "v2", "InnoDBCluster", "innodbclusters"),
    (
        "redis.redis.opstreelabs.in",
        "v1beta2",
        "RedisCluster",
        "redisclusters",
    ),
    ("kafka.strimzi.io", "v1", "Kafka", "kafkas"),
    (
        "elasticsearch.k8s.elastic.co",
        "v1",
        "Elasticsearch",
        "elasticsearches",
    ),
    ("minio.min.io", "v2", "Tenant", "tenants"),
];

/// Readiness of an operator CR from its status: a `Ready` condition, or the operator's own
/// health field.
pub fn cr_readiness(kind: &str, status: Option<&Value>) -> (bool, String) {
    let Some(status) = status else {
        return (false, "no status yet".into());
    };
    if let Some(conds) = status.get("conditions").and_then(Value::as_array)
        && let Some(ready) = conds
            .iter()
            .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
    {
        let ok = ready.get("status").and_then(Value::as_str) == Some("True");
        let msg = ready
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or(if ok { "Ready" } else { "not ready" });
        return (ok, msg.to_string());
    }
    let field = |p: &str| {
        status
            .pointer(p)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let (value, good): (Option<String>, &[&str]) = match kind {
        "InnoDBCluster" => (field("/cluster/status"), &["ONLINE"]),
        "Elasticsearch" => (field("/health"), &["green"]),
        "Tenant" => (
            field("/healthStatus").or_else(|| field("/currentState")),
            &["green", "Initialized"],
        ),
        "RedisCluster" => (field("/state"), &["Ready"]),
        _ => (field("/phase"), &["Ready", "Running"]),
    };
    match value {
        Some(v) => (good.contains(&v.as_str()), v),
        None => (false, "status not reported".into()),
    }
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<()> {
    let ns = ctx.namespace()?;
    let client = ctx.client().await?;
    let release = release_info(ctx, &ns).await;
    let components =
        rollout::observe(&client, std::slice::from_ref(&ns), &ctx.global.release).await?;
    let fullname = ctx.installed_fullname(&client, &ns).await?;
    let status = Status {
        infrastructure: infrastructure(&client, &ns).await?,
        scheduler_leader: leader(&client, &ns, &fullname).await?,
        last_backup: last_backup(&client, &ns, &ctx.global.release).await?,
        pod_security: pod_security(&client, &ns, &fullname).await?,
        log_shipping: log_shipping_state(&client, &ctx.global.release, &ns).await?,
        namespace: ns,
        release,
        components,
    };
    output::print(&status, &ctx.global)
}

async fn log_shipping_state(
    client: &Client,
    release: &str,
    ns: &str,
) -> anyhow::Result<Option<LogShippingState>> {
    let Some(d) = log_shipping::find_live(client, release, ns).await? else {
        return Ok(None);
    };
    Ok(Some(LogShippingState {
        secret: d.secret.to_string(),
        state: log_shipping::check(client, &d).await?,
    }))
}

/// The live namespace label beside what the release's ConfigMap says it needs.
async fn pod_security(
    client: &Client,
    ns: &str,
    fullname: &str,
) -> anyhow::Result<Option<PodSecurityState>> {
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
    let config: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let Some(config) = config.get_opt(&format!("{fullname}-config")).await? else {
        return Ok(None);
    };
    let annotations = serde_json::to_value(config.metadata.annotations.unwrap_or_default())?;
    let Some(needed) = chart_gen::namespaces::PodSecurity::from_annotations(&annotations) else {
        return Ok(None);
    };
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let enforced = namespaces
        .get_opt(ns)
        .await?
        .and_then(|n| n.metadata.labels)
        .and_then(|l| l.get("pod-security.kubernetes.io/enforce").cloned());
    Ok(Some(PodSecurityState {
        enforced,
        required: needed.enforce,
        forced_by: needed.forced_by,
    }))
}

async fn release_info(ctx: &Ctx, ns: &str) -> ReleaseInfo {
    let name = ctx.global.release.clone();
    let fetched = async {
        let helm = Helm::locate(&ctx.global)?;
        let out = helm.run(&helm.metadata_args(&name, ns)).await?;
        anyhow::Ok(serde_json::from_str::<Value>(&out)?)
    }
    .await;
    match fetched {
        Ok(v) => release_from_metadata(name, &v),
        Err(e) => ReleaseInfo {
            name,
            status: format!("unknown ({e:#})"),
            ..Default::default()
        },
    }
}

/// Reads `helm get metadata -o json` (the same fields on Helm 3.13+ and Helm 4).
fn release_from_metadata(name: String, v: &Value) -> ReleaseInfo {
    let text = |key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
    ReleaseInfo {
        name,
        revision: v.get("revision").and_then(Value::as_i64),
        chart_version: text("version"),
        app_version: text("appVersion"),
        status: text("status").unwrap_or_else(|| "unknown".into()),
    }
}

async fn infrastructure(client: &Client, ns: &str) -> anyhow::Result<Vec<CustomResourceState>> {
    let mut out = Vec::new();
    for (group, version, kind, plural) in INFRA_KINDS {
        let ar =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
        let items = match api.list(&ListParams::default()).await {
            Ok(list) => list.items,
            // The operator (and its CRD) is not installed: that component is not operator-managed.
            Err(kube::Error::Api(s)) if s.code == 404 => continue,
            Err(e) => return Err(e.into()),
        };
        for item in items {
            let (ready, detail) = cr_readiness(kind, item.data.get("status"));
            out.push(CustomResourceState {
                kind: kind.to_string(),
                name: item.metadata.name.unwrap_or_default(),
                ready,
                detail,
            });
        }
    }
    Ok(out)
}

async fn leader(client: &Client, ns: &str, fullname: &str) -> anyhow::Result<Option<Leader>> {
    let api: Api<Lease> = Api::namespaced(client.clone(), ns);
    let Some(lease) = api.get_opt(&format!("{fullname}-scheduler-leader")).await? else {
        return Ok(None);
    };
    let spec = lease.spec.unwrap_or_default();
    let now = Utc::now().timestamp();
    Ok(spec
        .holder_identity
        .filter(|h| !h.is_empty())
        .map(|holder| Leader {
            holder,
            renewed_seconds_ago: spec.renew_time.map(|t| now - t.0.as_second()),
        }))
}

async fn last_backup(
    client: &Client,
    ns: &str,
    release: &str,
) -> anyhow::Result<Option<LastBackup>> {
    let api: Api<Job> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels(&format!(
        "app.kubernetes.io/instance={release},app.kubernetes.io/component=backup"
    ));
    let now = Utc::now().timestamp();
    Ok(api
        .list(&lp)
        .await?
        .items
        .into_iter()
        .filter(|j| job_outcome(j) == Some(JobOutcome::Succeeded))
        .filter_map(|j| {
            let done = j.status.as_ref()?.completion_time.as_ref()?.0.as_second();
            Some(LastBackup {
                job: j.metadata.name.clone().unwrap_or_default(),
                age_seconds: now - done,
            })
        })
        .min_by_key(|b| b.age_seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn custom_resource_readiness_uses_conditions_then_operator_fields() {
        let kafka = json!({"conditions": [{"type": "Ready", "status": "True"}]});
        assert_eq!(cr_readiness("Kafka", Some(&kafka)), (true, "Ready".into()));
        let mysql = json!({"cluster": {"status": "ONLINE_PARTIAL"}});
        assert_eq!(
            cr_readiness("InnoDBCluster", Some(&mysql)),
            (false, "ONLINE_PARTIAL".into())
        );
        let es = json!({"health": "green", "phase": "Ready"});
        assert!(cr_readiness("Elasticsearch", Some(&es)).0);
        assert!(!cr_readiness("Tenant", None).0);
    }
}

#[cfg(test)]
mod render_tests {
    use super::*;

    #[test]
    fn status_table_and_json_carry_the_same_facts() {
        let status = Status {
            namespace: "datajump-prod".into(),
            release: ReleaseInfo {
                name: "datajump".into(),
                revision: Some(7),
                chart_version: Some("1.4.0".into()),
                app_version: Some("1.0.0".into()),
                status: "deployed".into(),
            },
            components: vec![WorkloadReadiness {
                component: "web".into(),
                kind: "Deployment",
                name: "datajump-web".into(),
                ready: 2,
                desired: 3,
                rolled_out: false,
            }],
            infrastructure: vec![CustomResourceState {
                kind: "Kafka".into(),
                name: "datajump-kafka".into(),
                ready: true,
                detail: "Ready".into(),
            }],
            scheduler_leader: Some(Leader {
                holder: "datajump-scheduler-abc".into(),
                renewed_seconds_ago: Some(4),
            }),
            last_backup: Some(LastBackup {
                job: "datajump-backup-29000000".into(),
                age_seconds: 7200,
            }),
            pod_security: Some(PodSecurityState {
                enforced: Some("baseline".into()),
                required: "baseline".into(),
                forced_by: vec!["mysql: root init container".into()],
            }),
            log_shipping: Some(LogShippingState {
                secret: "datajump-logging/datajump-fluent-bit-datajump-prod-es".into(),
                state: log_shipping::State::OutOfSync("ca.crt differs".into()),
            }),
        };
        let text = status.human(&Style { color: false });
        assert!(text.starts_with(
            "Release datajump in datajump-prod: deployed (revision 7, chart 1.4.0, app 1.0.0)"
        ));
        assert!(
            text.contains("web         Deployment/datajump-web   2/3     NotReady"),
            "{text}"
        );
        assert!(text.contains("Kafka/datajump-kafka   Ready"), "{text}");
        assert!(text.contains("scheduler leader: datajump-scheduler-abc (renewed 4s ago)"));
        assert!(text.contains("last backup: datajump-backup-29000000 (2h ago)"));
        assert!(
            text.contains("pod security: namespace enforces baseline, release needs baseline\n  below restricted because mysql: root init container"),
            "{text}"
        );
        assert!(
            text.contains(
                "log shipping: NotReady ca.crt differs; `kubectl datajump upgrade` refreshes it"
            ),
            "{text}"
        );
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["logShipping"]["state"], "outOfSync");
        assert_eq!(json["logShipping"]["detail"], "ca.crt differs");
        assert_eq!(json["release"]["revision"], 7);
        assert_eq!(json["components"][0]["rolledOut"], false);
        assert_eq!(json["schedulerLeader"]["holder"], "datajump-scheduler-abc");
    }
}
