//! The chart on a real API server (the local control plane, see `datajump_tests::cluster`):
//! every environment installs with plain `helm install` on Helm 3 and Helm 4 after only the
//! prerequisites the chart README names; upgrades twice with unchanged values roll nothing, an
//! upgrade to a changed value rolls exactly the pods that use it; it uninstalls; two
//! environments share one cluster; nothing the chart generates draws a warning from the API
//! server.
//!
//! The operators are not running here, so operator-mode custom resources are only created
//! (admitted against their CRD schemas), never reconciled; pods are played by the fake kubelet.

use std::collections::BTreeMap;
use std::process::{Command, Output};

use chart_gen::model::Environment;
use datajump_tests::cluster::{self, Cluster, tool, workspace_root};

const CHART: &str = "charts/datajump";

fn helm(helm: &str, cluster: &Cluster, args: &[&str]) -> Output {
    let out = Command::new(tool(helm))
        .current_dir(workspace_root())
        .args(args)
        .arg("--kubeconfig")
        .arg(&cluster.kubeconfig)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {helm}: {e} (run bash .ci/install-tools.sh)"));
    eprintln!(
        "$ {helm} {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Lines of helm's or kubectl's stderr that carry an API server warning: kubectl prints
/// `Warning: …`; Helm 3 and 4 log them through klog's `warnings.go` (see the test below for
/// lines both printed for a Pod Security `warn` violation).
fn warnings(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| l.contains("Warning:") || l.contains("warnings.go") || l.contains("level=WARN"))
        .map(str::to_string)
        .collect()
}

#[test]
fn warnings_are_recognised_in_what_helm_and_kubectl_print() {
    let helm3 = r#"I1201 20:34:04.529795   25538 warnings.go:110] "Warning: would violate PodSecurity \"restricted:latest\": runAsNonRoot != true""#;
    let helm4 = r#"I1201 20:34:04.940847   25554 warnings.go:107] "Warning: would violate PodSecurity \"restricted:latest\"""#;
    let kubectl = r#"Warning: unrecognized format "uint32""#;
    let quiet = "NAME: datajump\nSTATUS: deployed\nrelease \"datajump\" uninstalled";
    for noisy in [helm3, helm4, kubectl] {
        assert_eq!(
            warnings(format!("{quiet}\n{noisy}").as_bytes()),
            vec![noisy]
        );
    }
    assert!(warnings(quiet.as_bytes()).is_empty());
}

/// What the chart README's "Install" section asks for before a plain `helm install`: the
/// release namespace with its Pod Security labels, Fluent Bit's privileged namespace where
/// Fluent Bit is on, the credentials Secret and the Secrets operator-mode resources read.
fn prerequisites(cluster: &Cluster, env: Environment, ns: &str, logging_ns: &str) {
    cluster.namespace(
        ns,
        &[
            ("env", env.as_str()),
            ("pod-security.kubernetes.io/enforce", "restricted"),
            ("pod-security.kubernetes.io/audit", "restricted"),
            ("pod-security.kubernetes.io/warn", "restricted"),
        ],
    );
    cluster.namespace(
        logging_ns,
        &[("pod-security.kubernetes.io/enforce", "privileged")],
    );
    cluster::credentials_secret(cluster, env, ns);
    datajump_tests::plugin::operator_secrets(cluster, env, ns);
    datajump_tests::plugin::log_shipping_secrets(cluster, env, ns, logging_ns);
}

fn jsonpath(cluster: &Cluster, ns: &str, object: &str, path: &str) -> String {
    let out = cluster.kubectl(&["get", "-n", ns, object, "-o", &format!("jsonpath={path}")]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What rolls pods and what they read: each workload's pod template (Deployments, StatefulSets,
/// DaemonSets of the release, in its namespace and the logging namespace) and each Secret's and
/// ConfigMap's data, except Helm's own release records.
fn cluster_state(cluster: &Cluster, namespaces: &[&str]) -> BTreeMap<String, serde_json::Value> {
    let mut state = BTreeMap::new();
    for ns in namespaces {
        let out = cluster.kubectl(&[
            "get",
            "deployments,statefulsets,daemonsets,secrets,configmaps",
            "-n",
            ns,
            "-o",
            "json",
        ]);
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("kubectl json");
        for item in list["items"].as_array().into_iter().flatten() {
            if item["type"] == "helm.sh/release.v1" {
                continue;
            }
            let key = format!(
                "{}/{}/{}",
                ns,
                item["kind"].as_str().unwrap_or_default(),
                item["metadata"]["name"].as_str().unwrap_or_default()
            );
            let content = match item["kind"].as_str() {
                Some("Secret" | "ConfigMap") => item["data"].clone(),
                _ => item["spec"]["template"].clone(),
            };
            state.insert(key, content);
        }
    }
    state
}

/// Keys whose content differs between two states (added and removed keys included).
fn changed(
    before: &BTreeMap<String, serde_json::Value>,
    after: &BTreeMap<String, serde_json::Value>,
) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    keys.into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .cloned()
        .collect()
}

/// Install, upgrade twice unchanged, upgrade to a changed value, uninstall — with plain helm,
/// as a Harbor user would.
fn plain_helm_life_cycle(helm_bin: &str, env: Environment) {
    let Some(cluster) = cluster::shared() else {
        return;
    };
    let ns = format!("{helm_bin}-{}", env.as_str());
    let logging_ns = format!("{ns}-logging");
    prerequisites(cluster, env, &ns, &logging_ns);
    let values = format!("{CHART}/{}", env.values_file_name());
    let logging = format!("observability.fluentBit.namespace={logging_ns}");

    let install = helm(
        helm_bin,
        cluster,
        &[
            "install",
            "datajump",
            CHART,
            "-n",
            &ns,
            "-f",
            &values,
            "--set",
            &logging,
            "--wait",
            "--timeout",
            "5m",
        ],
    );
    assert!(
        install.status.success(),
        "{helm_bin} install ({env:?}) failed: {}",
        String::from_utf8_lossy(&install.stderr)
    );
    assert_eq!(
        warnings(&install.stderr),
        Vec::<String>::new(),
        "helm install drew warnings"
    );
    let config = "configmap/datajump-config";
    assert!(
        jsonpath(cluster, &ns, config, "{.data}").contains("INFO"),
        "the config map carries the default log level"
    );
    let upgrade = |extra: &[&str]| {
        let mut args = vec![
            "upgrade", "datajump", CHART, "-n", &ns, "-f", &values, "--set", &logging,
        ];
        args.extend_from_slice(extra);
        args.extend(["--wait", "--timeout", "5m"]);
        let out = helm(helm_bin, cluster, &args);
        assert!(out.status.success(), "{helm_bin} upgrade ({env:?}) failed");
        assert_eq!(warnings(&out.stderr), Vec::<String>::new());
    };

    // GitOps tools re-apply the same values all the time: nothing may roll or change.
    let installed = cluster_state(cluster, &[&ns, &logging_ns]);
    assert!(
        installed.keys().any(|k| k.contains("/Deployment/")),
        "{installed:?}"
    );
    for _ in 0..2 {
        upgrade(&[]);
        assert_eq!(
            changed(&installed, &cluster_state(cluster, &[&ns, &logging_ns])),
            Vec::<String>::new(),
            "an upgrade with unchanged values changed pod templates, Secrets or ConfigMaps"
        );
    }

    // The log level is in the services' config: exactly they roll, with the ConfigMap.
    upgrade(&["--set", "config.logLevel=DEBUG"]);
    assert!(
        jsonpath(cluster, &ns, config, "{.data}").contains("DEBUG"),
        "the upgrade reached the cluster"
    );
    let mut expected: Vec<String> = [
        "web",
        "api-gateway",
        "integration",
        "development",
        "metadata",
        "ops-monitor",
    ]
    .iter()
    .map(|s| format!("{ns}/Deployment/datajump-{s}"))
    .filter(|k| installed.contains_key(k))
    .collect();
    expected.push(format!("{ns}/ConfigMap/datajump-config"));
    expected.sort();
    assert_eq!(
        changed(&installed, &cluster_state(cluster, &[&ns, &logging_ns])),
        expected,
        "a changed log level must roll the services and nothing else"
    );
    let history = helm(
        helm_bin,
        cluster,
        &["history", "datajump", "-n", &ns, "-o", "json"],
    );
    let history: serde_json::Value =
        serde_json::from_slice(&history.stdout).expect("helm history -o json");
    assert_eq!(history.as_array().map(Vec::len), Some(4), "{history}");

    let uninstall = helm(
        helm_bin,
        cluster,
        &[
            "uninstall",
            "datajump",
            "-n",
            &ns,
            "--wait",
            "--timeout",
            "2m",
        ],
    );
    assert!(uninstall.status.success(), "{helm_bin} uninstall failed");
    let left = cluster.kubectl(&[
        "get",
        "deployments,statefulsets,services,configmaps,cronjobs",
        "-n",
        &ns,
        "-l",
        "app.kubernetes.io/instance=datajump",
        "-o",
        "name",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&left.stdout).trim(),
        "",
        "uninstall left release objects behind"
    );
    let daemonsets = cluster.kubectl(&["get", "daemonsets", "-n", &logging_ns, "-o", "name"]);
    assert_eq!(String::from_utf8_lossy(&daemonsets.stdout).trim(), "");
}

/// One test per Helm major version and environment, so a failure names both.
macro_rules! life_cycle_tests {
    ($($name:ident: $helm:literal, $env:ident;)*) => {
        $(
            #[test]
            fn $name() {
                plain_helm_life_cycle($helm, Environment::$env);
            }
        )*
    };
}

life_cycle_tests! {
    helm3_dev: "helm3", Dev;
    helm3_test: "helm3", Test;
    helm3_staging: "helm3", Staging;
    helm3_prod: "helm3", Prod;
    helm4_dev: "helm4", Dev;
    helm4_test: "helm4", Test;
    helm4_staging: "helm4", Staging;
    helm4_prod: "helm4", Prod;
}

/// dev, staging and prod in one cluster, each release named `datajump` in its own namespace,
/// staging's and prod's Fluent Bit in the default shared logging namespace: all install, each
/// Fluent Bit tails only its own namespace, and removing one environment leaves the others.
#[test]
fn environments_share_one_cluster() {
    let Some(cluster) = cluster::shared() else {
        return;
    };
    let shared_logging = "datajump-logging";
    let envs = [Environment::Dev, Environment::Staging, Environment::Prod];
    for env in envs {
        let ns = format!("side-{}", env.as_str());
        prerequisites(cluster, env, &ns, shared_logging);
        let values = format!("{CHART}/{}", env.values_file_name());
        let install = helm(
            "helm4",
            cluster,
            &[
                "install",
                "datajump",
                CHART,
                "-n",
                &ns,
                "-f",
                &values,
                "--wait",
                "--timeout",
                "5m",
            ],
        );
        assert!(
            install.status.success(),
            "{env:?} beside the others: {}",
            String::from_utf8_lossy(&install.stderr)
        );
    }
    let tails = |ns: &str| {
        let name = format!("datajump-fluent-bit-{ns}");
        jsonpath(
            cluster,
            shared_logging,
            &format!("configmap/{name}"),
            "{.data}",
        )
    };
    for ns in ["side-staging", "side-prod"] {
        let config = tails(ns);
        assert!(
            config.contains(&format!("/var/log/containers/*_{ns}_*.log")),
            "{ns}'s Fluent Bit tails its own namespace: {config}"
        );
        let ready = jsonpath(
            cluster,
            shared_logging,
            &format!("daemonset/datajump-fluent-bit-{ns}"),
            "{.status.numberReady}",
        );
        assert_eq!(ready, "3", "{ns}: one Fluent Bit per node");
    }
    let uninstall = helm(
        "helm4",
        cluster,
        &["uninstall", "datajump", "-n", "side-staging", "--wait"],
    );
    assert!(uninstall.status.success());
    let left = cluster.kubectl(&["get", "daemonsets", "-n", shared_logging, "-o", "name"]);
    assert_eq!(
        String::from_utf8_lossy(&left.stdout).trim(),
        "daemonset.apps/datajump-fluent-bit-side-prod",
        "prod's Fluent Bit stays when staging goes"
    );
    for env in ["side-dev", "side-prod"] {
        let status = helm("helm4", cluster, &["status", "datajump", "-n", env]);
        assert!(status.status.success(), "{env} still deployed");
    }
}

#[test]
fn the_charts_crds_apply_without_warnings() {
    let Some(cluster) = cluster::shared() else {
        return;
    };
    let stderr = &cluster.chart_crd_apply_stderr;
    assert!(
        warnings(stderr.as_bytes()).is_empty(),
        "kubectl apply of charts/datajump/crds warned:\n{stderr}"
    );
    for crd in ["workflows.datajump.io", "workflowruns.datajump.io"] {
        cluster
            .kubectl_ok(&["get", "crd", crd])
            .expect("the chart's CRDs are installed");
    }
}

/// `kubectl apply --dry-run=server` of every environment's render into a namespace labelled
/// as the README says: admission (Pod Security `warn`, deprecated APIs, CRD schemas) has
/// nothing to say about any object.
#[test]
fn every_rendered_object_applies_without_warnings() {
    let Some(cluster) = cluster::shared() else {
        return;
    };
    for env in Environment::ALL {
        let ns = format!("render-{}", env.as_str());
        let logging_ns = format!("{ns}-logging");
        prerequisites(cluster, env, &ns, &logging_ns);
        let values = format!("{CHART}/{}", env.values_file_name());
        let logging = format!("observability.fluentBit.namespace={logging_ns}");
        let rendered = helm(
            "helm4",
            cluster,
            &[
                "template", "datajump", CHART, "-n", &ns, "-f", &values, "--set", &logging,
            ],
        );
        assert!(rendered.status.success(), "helm template ({env:?}) failed");
        let path = cluster.dir.join(format!("render-{}.yaml", env.as_str()));
        std::fs::write(&path, &rendered.stdout).expect("write the render");
        let applied =
            cluster.kubectl(&["apply", "--dry-run=server", "-f", &path.to_string_lossy()]);
        assert!(
            applied.status.success(),
            "{env:?}: the API server refused the render: {}",
            String::from_utf8_lossy(&applied.stderr)
        );
        assert_eq!(
            warnings(&applied.stderr),
            Vec::<String>::new(),
            "{env:?}: kubectl apply warned"
        );
    }
}
