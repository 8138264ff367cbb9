//! The real `datajump-scheduler` binary beside an installed release, configured as the chart's
//! Deployment configures it and signed in with the chart's ServiceAccount (so its RBAC is what
//! the chart grants), and its metrics.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::cluster::{Background, Cluster, cargo_bin, wait_until};

/// The chart's scheduler Deployment in `ns`, as JSON.
pub fn scheduler_deployment(cluster: &Cluster, ns: &str) -> Result<Value, String> {
    let out = cluster.kubectl_ok(&[
        "get",
        "deployment",
        "datajump-scheduler",
        "-n",
        ns,
        "-o",
        "json",
    ])?;
    serde_json::from_slice(&out.stdout).map_err(|e| format!("the scheduler Deployment's JSON: {e}"))
}

/// Starts the scheduler binary the way the chart's Deployment in `ns` would: the plain `value`
/// env entries of its container, plus what the downward API would give it, then `overrides`.
/// An env value that is a path in a ConfigMap the container mounts (the pod presets file) is
/// replaced by a copy of that ConfigMap key, written under the cluster's directory.
pub fn start_scheduler(
    cluster: &Cluster,
    ns: &str,
    metrics_port: u16,
    overrides: &[(&str, &str)],
) -> Background {
    let deployment = scheduler_deployment(cluster, ns).expect("the chart deployed the scheduler");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        .as_str()
        .expect("the scheduler has its own ServiceAccount");
    let mut command = Command::new(cargo_bin("datajump-scheduler", &["scheduler-image/src"]));
    command.env_clear();
    for var in container["env"].as_array().into_iter().flatten() {
        if let (Some(name), Some(value)) = (var["name"].as_str(), var["value"].as_str()) {
            match mounted_config_map_file(cluster, ns, &deployment, value) {
                Some(copy) => command.env(name, copy),
                None => command.env(name, value),
            };
        }
    }
    command
        .env("DATAJUMP_POD_NAME", "scheduler-under-test")
        .env("DATAJUMP_POD_NAMESPACE", ns)
        .env("DATAJUMP_HTTP_ADDR", format!("127.0.0.1:{metrics_port}"))
        .env("DATAJUMP_LOG_FORMAT", "text")
        .env(
            "KUBECONFIG",
            cluster.service_account_kubeconfig(ns, account),
        );
    // A test run with RUST_LOG set (to debug a scenario) passes it on.
    if let Ok(filter) = std::env::var("RUST_LOG") {
        command.env("RUST_LOG", filter);
    }
    for (name, value) in overrides {
        command.env(name, value);
    }
    // One log per replica: named after its identity when the caller gives it one.
    let log = overrides
        .iter()
        .find(|(name, _)| *name == "DATAJUMP_POD_NAME")
        .map_or("scheduler", |(_, value)| value);
    cluster.spawn(log, command)
}

/// When `path` lies in a ConfigMap volume the scheduler container mounts, a local copy of that
/// ConfigMap key (the kubelet's part), so the binary reads what the pod would.
fn mounted_config_map_file(
    cluster: &Cluster,
    ns: &str,
    deployment: &Value,
    path: &str,
) -> Option<std::path::PathBuf> {
    let pod = &deployment["spec"]["template"]["spec"];
    let mounts = pod["containers"][0]["volumeMounts"].as_array()?;
    let (mount, key) = mounts.iter().find_map(|m| {
        let dir = m["mountPath"].as_str()?;
        let key = path.strip_prefix(dir)?.strip_prefix('/')?;
        Some((m["name"].as_str()?, key))
    })?;
    let volume = pod["volumes"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == mount)?;
    let config_map = volume["configMap"]["name"].as_str()?;
    let out = cluster
        .kubectl_ok(&["get", "configmap", config_map, "-n", ns, "-o", "json"])
        .unwrap_or_else(|e| panic!("the scheduler mounts ConfigMap {config_map}: {e}"));
    let cm: Value = serde_json::from_slice(&out.stdout).expect("ConfigMap JSON");
    let text = cm["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("ConfigMap {config_map} has no key {key}"));
    let copy = cluster.dir.join(format!("{ns}-{config_map}-{key}"));
    std::fs::write(&copy, text).expect("write the mounted file");
    Some(copy)
}

/// A free loopback port for the scheduler's HTTP server.
pub fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Waits until the scheduler on `port` leads with synced caches.
pub fn wait_leading(port: u16) {
    wait_until(
        "the scheduler to lead with synced caches",
        Duration::from_secs(60),
        || {
            let ready = Command::new("curl")
                .args(["-fsS", &format!("http://127.0.0.1:{port}/readyz")])
                .output()
                .is_ok_and(|o| o.status.success());
            let leading = counters(port).get("scheduler_leader") == Some(&1.0);
            (ready && leading).then_some(())
        },
    );
}

/// The scheduler's Prometheus counters, summed over their labels.
pub fn counters(port: u16) -> BTreeMap<String, f64> {
    let out = Command::new("curl")
        .args(["-fsS", &format!("http://127.0.0.1:{port}/metrics")])
        .output()
        .expect("curl");
    let mut sums = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series).to_string();
        if let Ok(v) = value.parse::<f64>() {
            *sums.entry(name).or_insert(0.0) += v;
        }
    }
    sums
}
