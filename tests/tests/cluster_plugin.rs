//! `kubectl datajump` on a real API server (the local control plane, see
//! `datajump_tests::cluster`): install of every environment with `--wait`, `status`, `images`,
//! `diff` against the live release, `upgrade`, `uninstall`; `backup create` and the restore
//! sequence as far as an API server without kubelets goes.
//!
//! The operators are not running, so operator-mode custom resources are created (and admitted
//! against their CRD schemas) but never become ready; the fake kubelet serves no logs, so the
//! backup name (the last line of the backup Job's log) cannot be read here.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chart_gen::model::Environment;
use datajump_tests::cluster::{self, Cluster, wait_until};
use datajump_tests::plugin::{install_dev, plugin, prerequisites, publish_eck_ca, ships_to_eck};
use serde_json::Value;

fn labels_of(cluster: &Cluster, ns: &str) -> Value {
    let out = cluster
        .kubectl_ok(&["get", "namespace", ns, "-o", "json"])
        .expect("namespace exists");
    let ns: Value = serde_json::from_slice(&out.stdout).expect("namespace JSON");
    ns["metadata"]["labels"].clone()
}

/// `--confirm-env prod` where prod asks for it.
fn confirm(env: Environment) -> Vec<&'static str> {
    if env == Environment::Prod {
        vec!["--yes", "--confirm-env", "prod"]
    } else {
        vec!["--yes"]
    }
}

fn life_cycle(env: Environment) {
    let Some(cluster) = cluster::shared() else {
        return;
    };
    prerequisites(cluster, env);
    let e = env.as_str();
    let ns = env.default_namespace();
    // Each environment its own Fluent Bit namespace, so the four can install side by side.
    let logging_ns = format!("{ns}-logging");
    let logging = format!("observability.fluentBit.namespace={logging_ns}");

    let install = plugin(
        cluster,
        &[
            "install",
            "--env",
            e,
            "--wait",
            "--timeout",
            "5m",
            "--set",
            &logging,
        ],
    );
    assert!(install.ok, "install --env {e} failed:\n{}", install.stderr);
    assert!(
        !install.stderr.to_lowercase().contains("warning"),
        "install warned:\n{}",
        install.stderr
    );
    let labels = labels_of(cluster, &ns);
    assert_eq!(labels["env"], e);
    // MySQL Operator's root init container is the one thing below restricted: operator-mode
    // environments enforce baseline (and still audit and warn at restricted); dev restricted.
    let enforced = if env == Environment::Dev {
        "restricted"
    } else {
        "baseline"
    };
    assert_eq!(labels["pod-security.kubernetes.io/enforce"], enforced);
    assert_eq!(labels["pod-security.kubernetes.io/audit"], "restricted");
    assert_eq!(labels["pod-security.kubernetes.io/warn"], "restricted");
    if env != Environment::Dev {
        let labels = labels_of(cluster, &logging_ns);
        assert_eq!(labels["pod-security.kubernetes.io/enforce"], "privileged");
    }

    let status = plugin(cluster, &["status", "--env", e, "-o", "json"]).json();
    assert_eq!(status["podSecurity"]["enforced"], enforced, "{status:#}");
    assert_eq!(status["podSecurity"]["required"], enforced);
    let forced_by = status["podSecurity"]["forcedBy"].to_string();
    assert_eq!(
        forced_by.contains("MySQL Operator"),
        env != Environment::Dev,
        "status names what forces the level: {forced_by}"
    );
    let release = &status["release"];
    assert_eq!(release["name"], "datajump");
    assert_eq!(release["status"], "deployed", "{status:#}");
    assert_eq!(release["revision"], 1);
    assert_eq!(release["chartVersion"], env!("CARGO_PKG_VERSION"));
    assert_eq!(release["appVersion"], chart_gen::profiles::APP_VERSION);
    let components = status["components"].as_array().expect("components");
    assert!(
        components.iter().any(|c| c["component"] == "scheduler"),
        "{status:#}"
    );
    for c in components {
        assert!(
            c["rolledOut"] == true && c["ready"] == c["desired"],
            "not ready after --wait: {c}"
        );
    }
    // No scheduler process runs in this namespace, so nobody holds the Lease.
    assert_eq!(status["schedulerLeader"], Value::Null);
    let operator_resources = status["infrastructure"].as_array().map_or(0, Vec::len);
    if env == Environment::Dev {
        assert_eq!(operator_resources, 0, "dev runs embedded infrastructure");
    } else {
        // Created, admitted by their CRD schemas, never reconciled (no operator runs here).
        assert!(operator_resources >= 5, "{status:#}");
    }
    let table = plugin(cluster, &["status", "--env", e]);
    assert!(
        table.stdout.contains(&format!(
            "deployed (revision 1, chart {}, app {})",
            env!("CARGO_PKG_VERSION"),
            chart_gen::profiles::APP_VERSION
        )),
        "{}",
        table.stdout
    );

    if ships_to_eck(env) {
        log_shipping_follows_its_sources(cluster, env, &ns, &logging_ns, &logging);
    }

    let images = plugin(cluster, &["images", "--env", e, "-o", "json"]).json();
    let images: Vec<&str> = images["images"]
        .as_array()
        .expect("images")
        .iter()
        .filter_map(|i| i["image"].as_str())
        .collect();
    assert!(images.iter().any(|i| i.contains("scheduler")), "{images:?}");

    let unchanged = plugin(cluster, &["diff", "--env", e, "--set", &logging]);
    assert!(unchanged.ok, "{}", unchanged.stderr);
    assert!(
        !unchanged.stdout.contains("\n+") && !unchanged.stdout.contains("\n-"),
        "diff against an unchanged release shows changes:\n{}",
        unchanged.stdout
    );
    let changed = plugin(
        cluster,
        &[
            "diff",
            "--env",
            e,
            "--set",
            &logging,
            "--set",
            "config.logLevel=DEBUG",
        ],
    );
    assert!(changed.ok, "{}", changed.stderr);
    assert!(
        changed.stdout.contains("ConfigMap") && changed.stdout.contains("DEBUG"),
        "the diff names the changed ConfigMap:\n{}",
        changed.stdout
    );

    let upgrade = plugin(
        cluster,
        &[
            "upgrade",
            "--env",
            e,
            "--wait",
            "--timeout",
            "5m",
            "--set",
            &logging,
            "--set",
            "config.logLevel=DEBUG",
        ],
    );
    assert!(upgrade.ok, "upgrade failed:\n{}", upgrade.stderr);
    let status = plugin(cluster, &["status", "--env", e, "-o", "json"]).json();
    let upgrades_before = if ships_to_eck(env) { 2 } else { 0 };
    assert_eq!(status["release"]["revision"], 2 + upgrades_before);

    let mut args = vec!["uninstall", "--env", e];
    args.extend(confirm(env));
    let uninstall = plugin(cluster, &args);
    assert!(uninstall.ok, "uninstall failed:\n{}", uninstall.stderr);
    let left = cluster.kubectl(&["get", "deployments,statefulsets", "-n", &ns, "-o", "name"]);
    assert_eq!(String::from_utf8_lossy(&left.stdout).trim(), "");
    if chart_gen::profiles::profile(env)
        .secrets
        .existing_secret
        .is_empty()
    {
        // The credentials install generated outlive the release, like the data volumes.
        cluster
            .kubectl_ok(&["get", "secret", "datajump-credentials", "-n", &ns])
            .expect("uninstall keeps the generated credentials");
    }
    let status = plugin(cluster, &["status", "--env", e, "-o", "json"]);
    assert!(
        status.stdout.contains("unknown") || !status.ok,
        "status after uninstall must not claim a release:\n{}",
        status.stdout
    );
}

/// A Secret, and its data decoded key by key.
fn secret_data(
    cluster: &Cluster,
    ns: &str,
    name: &str,
) -> (Value, std::collections::BTreeMap<String, String>) {
    let out = cluster
        .kubectl_ok(&["get", "secret", name, "-n", ns, "-o", "json"])
        .unwrap_or_else(|e| panic!("Secret {ns}/{name}: {e}"));
    let json: Value = serde_json::from_slice(&out.stdout).expect("Secret JSON");
    let secret: k8s_openapi::api::core::v1::Secret =
        serde_json::from_value(json.clone()).expect("a Secret");
    let data = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v.0).expect("UTF-8")))
        .collect();
    (json, data)
}

/// Fluent Bit's Secret in its namespace is made from ECK's file-realm user (created by install)
/// and ECK's CA; a renewed CA shows in `status` and the next upgrade copies it and restarts
/// Fluent Bit; an upgrade with nothing changed does not touch it.
fn log_shipping_follows_its_sources(
    cluster: &Cluster,
    env: Environment,
    ns: &str,
    logging_ns: &str,
    logging: &str,
) {
    let e = env.as_str();
    let (writer, user) = secret_data(cluster, ns, "datajump-es-log-writer");
    assert_eq!(writer["type"], "kubernetes.io/basic-auth");
    assert_eq!(user["username"], "datajump-log-writer");
    assert_eq!(user["roles"], "datajump_log_writer");
    assert_eq!(user["password"].len(), 32, "a generated password");
    let mounted = format!("datajump-fluent-bit-{ns}-es");
    let (_, data) = secret_data(cluster, logging_ns, &mounted);
    assert_eq!(
        data["es.conf"],
        format!(
            "@SET ES_USER=datajump-log-writer\n@SET ES_PASSWORD={}\n",
            user["password"]
        )
    );
    assert_eq!(data["ca.crt"], "CA ONE");
    let state = |cluster: &Cluster| {
        plugin(cluster, &["status", "--env", e, "-o", "json"]).json()["logShipping"].clone()
    };
    let synced = state(cluster);
    assert_eq!(synced["state"], "inSync", "{synced}");
    assert_eq!(synced["secret"], format!("{logging_ns}/{mounted}"));

    // ECK renews its CA: status notices, the next upgrade copies it and rolls Fluent Bit.
    publish_eck_ca(cluster, ns, "datajump", "CA TWO");
    let stale = state(cluster);
    assert_eq!(stale["state"], "outOfSync", "{stale}");
    assert!(
        stale["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("ca.crt"),
        "{stale}"
    );
    let upgrade = || {
        let out = plugin(cluster, &["upgrade", "--env", e, "--set", logging]);
        assert!(out.ok, "upgrade failed:\n{}", out.stderr);
    };
    upgrade();
    assert_eq!(
        secret_data(cluster, logging_ns, &mounted).1["ca.crt"],
        "CA TWO"
    );
    let restarted_at = |cluster: &Cluster| {
        let out = cluster
            .kubectl_ok(&[
                "get", "daemonset", &format!("datajump-fluent-bit-{ns}"), "-n", logging_ns,
                "-o", "jsonpath={.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}",
            ])
            .expect("Fluent Bit DaemonSet");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let first_restart = restarted_at(cluster);
    assert!(
        !first_restart.is_empty(),
        "the upgrade restarted Fluent Bit"
    );
    assert_eq!(state(cluster)["state"], "inSync");

    let before =
        secret_data(cluster, logging_ns, &mounted).0["metadata"]["resourceVersion"].clone();
    upgrade();
    let after = secret_data(cluster, logging_ns, &mounted).0["metadata"]["resourceVersion"].clone();
    assert_eq!(
        before, after,
        "an upgrade with nothing changed rewrites nothing"
    );
    assert_eq!(restarted_at(cluster), first_restart, "and restarts nothing");
}

#[test]
fn dev_installs_reports_upgrades_and_uninstalls() {
    life_cycle(Environment::Dev);
}

#[test]
fn test_installs_reports_upgrades_and_uninstalls() {
    life_cycle(Environment::Test);
}

#[test]
fn staging_installs_reports_upgrades_and_uninstalls() {
    life_cycle(Environment::Staging);
}

#[test]
fn prod_installs_reports_upgrades_and_uninstalls() {
    life_cycle(Environment::Prod);
}

#[test]
fn preflight_names_what_the_cluster_lacks() {
    let Some(cluster) = cluster::shared() else {
        return;
    };
    // A StorageClass nobody created: refused before anything is installed.
    let run = plugin(
        cluster,
        &[
            "install",
            "--env",
            "dev",
            "-n",
            "preflight-test",
            "--set",
            "global.storageClass=no-such-class",
        ],
    );
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("StorageClass \"no-such-class\""),
        "{}",
        run.stderr
    );
    let ns = cluster.kubectl(&["get", "namespace", "preflight-test"]);
    assert!(!ns.status.success(), "a refused install changed nothing");

    // Operator mode reads Secrets nobody created yet: each is named with its keys.
    let run = plugin(
        cluster,
        &["install", "--env", "test", "-n", "preflight-secrets"],
    );
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    for expected in [
        "Secret \"datajump-mysql-root\" (mysql.operator.rootSecret) does not exist in namespace preflight-secrets: create it with the keys rootUser, rootHost, rootPassword",
        "Secret \"datajump-minio-config\" (minio.operator.configSecret) does not exist in namespace preflight-secrets: create it with the keys config.env",
    ] {
        assert!(
            run.stderr.contains(expected),
            "{expected}\nin:\n{}",
            run.stderr
        );
    }
    let ns = cluster.kubectl(&["get", "namespace", "preflight-secrets"]);
    assert!(!ns.status.success(), "a refused install changed nothing");
}

/// `backup create` makes a Job from the chart's CronJob; the restore sequence suspends the
/// workflows, stops the scheduler, runs the restore Job and puts everything back.
#[test]
fn backup_job_and_restore_sequence() {
    let Some(cluster) = cluster::shared() else {
        return;
    };
    let ns = "backup-dev";
    install_dev(cluster, ns);

    let created = plugin(
        cluster,
        &["backup", "create", "--env", "dev", "-n", ns, "-o", "json"],
    );
    assert!(created.ok, "{}", created.stderr);
    let job = created.json()["job"]
        .as_str()
        .expect("the Job's name")
        .to_string();
    assert!(job.starts_with("datajump-backup-"), "{job}");
    let owner = cluster
        .kubectl_ok(&[
            "get",
            "job",
            &job,
            "-n",
            ns,
            "-o",
            "jsonpath={.metadata.annotations.cronjob\\.kubernetes\\.io/instantiate}",
        ])
        .expect("the backup Job exists");
    assert_eq!(String::from_utf8_lossy(&owner.stdout), "manual");
    // Same minute, same Job: a second create does not start another dump. On a busy machine
    // the two calls may straddle a minute; then the next pair must agree.
    let create = || {
        let out = plugin(
            cluster,
            &["backup", "create", "--env", "dev", "-n", ns, "-o", "json"],
        );
        assert!(out.ok, "{}", out.stderr);
        out.json()["job"].as_str().unwrap_or_default().to_string()
    };
    let mut previous = job.clone();
    let same_minute = (0..3).any(|_| {
        let again = create();
        let same = again == previous;
        if !same {
            assert!(
                again > previous,
                "a later minute, not another name: {again} after {previous}"
            );
        }
        previous = again;
        same
    });
    assert!(
        same_minute,
        "a second create in the same minute found the first Job"
    );
    wait_until(
        "the backup Job to complete",
        Duration::from_secs(60),
        || {
            let out = cluster.kubectl(&[
                "get",
                "job",
                &job,
                "-n",
                ns,
                "-o",
                "jsonpath={.status.succeeded}",
            ]);
            (String::from_utf8_lossy(&out.stdout) == "1").then_some(())
        },
    );
    // The backup name is the last line of the Job's log, which needs a kubelet.
    let listed = plugin(cluster, &["backup", "list", "--env", "dev", "-n", ns]);
    assert!(!listed.ok);
    assert!(
        listed.stderr.contains("log"),
        "the error says the log could not be read:\n{}",
        listed.stderr
    );

    restore_sequence(cluster, ns);
}

fn restore_sequence(cluster: &Cluster, ns: &str) {
    for (name, suspended) in [("nightly", false), ("paused", true)] {
        cluster.apply_yaml(&format!(
            "apiVersion: datajump.io/v1alpha1\nkind: Workflow\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  schedule: \"0 2 * * *\"\n  suspend: {suspended}\n  tasks:\n    - {{name: dump, image: busybox}}\n"
        ));
    }
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let report = runtime.block_on(async {
        let client = cluster.client().await;
        // Sample the scheduler's replicas and the workflows while the restore runs.
        let stopped_seen = Arc::new(AtomicBool::new(false));
        let sampler = tokio::spawn(sample_during_restore(
            client.clone(),
            ns.to_string(),
            stopped_seen.clone(),
        ));
        let report = kubectl_datajump::cmd::restore::restore(
            &client,
            ns,
            "datajump",
            "datajump-20261201T020000Z",
            Duration::from_secs(120),
            kubectl_datajump::output::Progress::with(false),
        )
        .await
        .expect("the restore sequence runs");
        sampler.abort();
        (report, stopped_seen.load(Ordering::SeqCst))
    });
    let (report, seen_stopped) = report;
    assert!(
        seen_stopped,
        "during the restore the scheduler was at 0 replicas with every workflow suspended"
    );
    assert!(report.succeeded, "{}", report.message);
    assert!(
        report.cleanup_errors.is_empty(),
        "{:?}",
        report.cleanup_errors
    );
    assert_eq!(report.workflows_resumed, ["nightly"]);
    assert_eq!(report.scheduler_replicas, 1);
    let suspend = |wf: &str| {
        let out = cluster.kubectl(&[
            "get",
            "workflows.datajump.io",
            wf,
            "-n",
            ns,
            "-o",
            "jsonpath={.spec.suspend}",
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(suspend("nightly"), "false", "resumed after the restore");
    assert_eq!(suspend("paused"), "true", "was suspended before, stays so");
    let replicas = cluster.kubectl(&[
        "get",
        "deployment",
        "datajump-scheduler",
        "-n",
        ns,
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(String::from_utf8_lossy(&replicas.stdout), "1");
    let env = cluster
        .kubectl_ok(&[
            "get",
            "job",
            &report.job,
            "-n",
            ns,
            "-o",
            "jsonpath={.spec.template.spec.containers[0].env[?(@.name==\"BACKUP_NAME\")].value}",
        ])
        .expect("the restore Job exists");
    assert_eq!(
        String::from_utf8_lossy(&env.stdout),
        "datajump-20261201T020000Z"
    );
}

/// Sets `seen` once, at some instant during the restore, the scheduler Deployment is at zero
/// replicas while every workflow is suspended.
async fn sample_during_restore(client: kube::Client, ns: String, seen: Arc<AtomicBool>) {
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::Api;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let workflows: Api<datajump_api::Workflow> = Api::namespaced(client, &ns);
    loop {
        if let (Ok(d), Ok(list)) = (
            deployments.get("datajump-scheduler").await,
            workflows.list(&Default::default()).await,
        ) {
            let stopped = d.spec.replicas == Some(0);
            let all_suspended = !list.items.is_empty() && list.items.iter().all(|w| w.spec.suspend);
            if stopped && all_suspended {
                seen.store(true, Ordering::SeqCst);
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A release under another name with `fullnameOverride`: install, `status` and `backup create`
/// find its objects (by the release's labels, not by the default name rule).
#[test]
fn a_renamed_release_is_found_by_every_verb() {
    let Some(cluster) = cluster::shared() else {
        return;
    };
    let ns = "names-dev";
    prerequisites(cluster, Environment::Dev);
    let release = ["--release", "analytics", "-n", ns];
    let mut install = vec!["install", "--env", "dev", "--wait", "--timeout", "5m"];
    install.extend(release);
    install.extend(["--set", "fullnameOverride=dj-analytics"]);
    let installed = plugin(cluster, &install);
    assert!(installed.ok, "{}", installed.stderr);
    cluster
        .kubectl_ok(&["get", "deployment", "dj-analytics-web", "-n", ns])
        .expect("objects are named after fullnameOverride");

    let mut status = vec!["status", "--env", "dev", "-o", "json"];
    status.extend(release);
    let status = plugin(cluster, &status);
    assert!(status.ok, "{}", status.stderr);
    // Read off dj-analytics-config: without the override the plugin would find nothing here.
    assert_eq!(
        status.json()["podSecurity"]["required"],
        "restricted",
        "{}",
        status.stdout
    );

    let mut backup = vec!["backup", "create", "--env", "dev", "-o", "json"];
    backup.extend(release);
    let created = plugin(cluster, &backup);
    assert!(created.ok, "{}", created.stderr);
    let job = created.json()["job"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(job.starts_with("dj-analytics-backup-"), "{job}");
    cluster
        .kubectl_ok(&["get", "job", &job, "-n", ns])
        .expect("the backup Job exists");

    let mut uninstall = vec!["uninstall", "--env", "dev", "--yes"];
    uninstall.extend(release);
    let removed = plugin(cluster, &uninstall);
    assert!(removed.ok, "{}", removed.stderr);
}
