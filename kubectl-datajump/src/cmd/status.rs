//! `status --env E`: one answer with the Helm release, each component's readiness, the operator
//! custom resources' readiness, the scheduler's leader and the last successful backup.

use kube::Client;
use serde::Serialize;
use serde_json::Value;

use crate::cmd::{Ctx, readiness_table};
use crate::kube::log_shipping;
use crate::kube::rollout::{self, WorkloadReadiness};
use crate::kube::status::{
    CustomResourceState, LastBackup, Leader, PodSecurityState, infrastructure, last_backup, leader,
    pod_security,
};
use crate::output::{self, Render, Style, age};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Status {
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
pub(crate) struct LogShippingState {
    pub secret: String,
    #[serde(flatten)]
    pub state: log_shipping::State,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReleaseInfo {
    pub name: String,
    pub revision: Option<i64>,
    pub chart_version: Option<String>,
    pub app_version: Option<String>,
    pub status: String,
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
        out.push_str(&readiness_table(&self.components, style));
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

pub(crate) async fn run(ctx: &Ctx) -> anyhow::Result<()> {
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

async fn release_info(ctx: &Ctx, ns: &str) -> ReleaseInfo {
    let name = ctx.global.release.clone();
    let fetched = async {
        let helm = ctx.helm()?;
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
pub(crate) fn release_from_metadata(name: String, v: &Value) -> ReleaseInfo {
    let text = |key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
    ReleaseInfo {
        name,
        revision: v.get("revision").and_then(Value::as_i64),
        chart_version: text("version"),
        app_version: text("appVersion"),
        status: text("status").unwrap_or_else(|| "unknown".into()),
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
