//! The scheduler image and the scheduler pod the chart deploys: the archive's config is the
//! Dockerfile's, and the pod runs as the chart says, through its real probes, with its own token.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use datajump_tests::cluster::{self, Cluster, wait_until, workspace_root};
use datajump_tests::node::{host_processes, is_scheduler, scheduler_image};
use datajump_tests::runs::{get_json, list};
use serde_json::Value;

use crate::{NS, installed};

/// The archive's image config (`config` of the OCI image config) and its index's annotations.
fn archive_config(archive: &Path) -> (Value, Value) {
    let mut files = std::collections::HashMap::new();
    let mut tar = tar::Archive::new(std::fs::File::open(archive).expect("open the archive"));
    for entry in tar.entries().expect("read the archive") {
        let mut entry = entry.expect("archive entry");
        let name = entry
            .path()
            .expect("entry path")
            .to_string_lossy()
            .into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("read entry");
        files.insert(name, data);
    }
    let json = |name: &str| -> Value {
        serde_json::from_slice(
            files
                .get(name)
                .unwrap_or_else(|| panic!("{name} in archive")),
        )
        .expect("JSON")
    };
    let blob = |digest: &Value| {
        json(&format!(
            "blobs/sha256/{}",
            &digest.as_str().expect("digest")[7..]
        ))
    };
    let index = json("index.json");
    let manifest = blob(&index["manifests"][0]["digest"]);
    let config = blob(&manifest["config"]["digest"]);
    (
        config["config"].clone(),
        index["manifests"][0]["annotations"].clone(),
    )
}

/// `USER`, `ENTRYPOINT` and `EXPOSE` of the Dockerfile's final stage, read here independently
/// of the image builder.
fn dockerfile_final_stage() -> (String, Vec<String>, BTreeSet<String>) {
    let text = std::fs::read_to_string(workspace_root().join("scheduler-image/Dockerfile"))
        .expect("read the Dockerfile");
    let lines: Vec<&str> = text.lines().collect();
    let last_from = lines
        .iter()
        .rposition(|l| l.trim_start().starts_with("FROM "))
        .expect("a FROM line");
    let (mut user, mut entrypoint, mut exposed) = (String::new(), Vec::new(), BTreeSet::new());
    for line in lines.iter().skip(last_from + 1).map(|l| l.trim()) {
        if let Some(rest) = line.strip_prefix("USER ") {
            user = rest.trim().to_string();
        } else if let Some(rest) = line.strip_prefix("ENTRYPOINT ") {
            entrypoint = serde_json::from_str(rest).expect("ENTRYPOINT in exec form");
        } else if let Some(rest) = line.strip_prefix("EXPOSE ") {
            exposed.extend(rest.split_whitespace().map(|p| format!("{p}/tcp")));
        }
    }
    (user, entrypoint, exposed)
}

/// The scheduler image the dev chart renders.
fn rendered_scheduler_image() -> String {
    let out = std::process::Command::new(cluster::tool("helm"))
        .current_dir(workspace_root())
        .args(["template", "datajump", "charts/datajump", "-n", NS])
        .args([
            "-f",
            "charts/datajump/values-dev.yaml",
            "-s",
            "templates/scheduler/deployment.yaml",
        ])
        .output()
        .expect("run helm template");
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deployment: Value = serde_yaml::from_slice(&out.stdout).expect("the Deployment parses");
    deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .expect("an image")
        .to_string()
}

#[test]
fn image_config_is_the_dockerfiles_under_the_charts_reference() {
    let (config, annotations) = archive_config(&scheduler_image());
    let (user, entrypoint, exposed) = dockerfile_final_stage();
    assert_eq!(config["User"], user.as_str(), "USER");
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(entrypoint),
        "ENTRYPOINT"
    );
    let ports: BTreeSet<String> = config["ExposedPorts"]
        .as_object()
        .expect("exposed ports")
        .keys()
        .cloned()
        .collect();
    assert_eq!(ports, exposed, "EXPOSE");
    assert_eq!(
        annotations["io.containerd.image.name"],
        rendered_scheduler_image().as_str(),
        "the archive is named as the dev chart renders the scheduler image"
    );
}

/// The scheduler's pod (the Deployment has one replica in dev).
pub(crate) fn scheduler_pod(cluster: &Cluster) -> Value {
    let mut items = list(cluster, NS, "pods", "app.kubernetes.io/component=scheduler");
    assert_eq!(items.len(), 1, "one scheduler pod: {items:#?}");
    items.remove(0)
}

/// The host pid of the scheduler's process: the node runs on this machine, so the container's
/// process is one of ours, and /proc shows what the kernel enforces on it.
fn scheduler_process() -> u32 {
    wait_until(
        "the scheduler process on this host",
        Duration::from_secs(30),
        || host_processes(is_scheduler).first().copied(),
    )
}

#[test]
fn scheduler_runs_as_the_chart_deploys_it() {
    let Some(installed) = installed() else { return };
    let cluster = installed.cluster;
    let pod = scheduler_pod(cluster);
    let name = pod["metadata"]["name"]
        .as_str()
        .expect("pod name")
        .to_string();
    let ready = pod["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    assert!(ready, "the scheduler pod is Ready: {:#}", pod["status"]);
    let container = &pod["spec"]["containers"][0];
    for probe in ["readinessProbe", "livenessProbe"] {
        assert!(
            container[probe]["httpGet"].is_object(),
            "{probe} is an HTTP probe the kubelet ran"
        );
    }
    assert_eq!(
        pod["status"]["containerStatuses"][0]["restartCount"], 0,
        "never restarted"
    );

    // What the kernel enforces on the container's process.
    let pid = scheduler_process();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let uid_line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .expect("Uid line");
    // The chart's pod security context names the user (the image's own USER is the fallback).
    let run_as = pod["spec"]["securityContext"]["runAsUser"]
        .as_i64()
        .or_else(|| container["securityContext"]["runAsUser"].as_i64())
        .expect("the chart sets runAsUser");
    assert_ne!(run_as, 0, "a non-root user");
    assert!(
        uid_line
            .split_whitespace()
            .skip(1)
            .all(|id| id == run_as.to_string()),
        "runs as {run_as}: {uid_line}"
    );
    let cap_eff = status
        .lines()
        .find(|l| l.starts_with("CapEff:"))
        .expect("CapEff");
    assert!(
        cap_eff.ends_with("0000000000000000"),
        "no capabilities: {cap_eff}"
    );
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("mountinfo");
    let root = mounts
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))
        .expect("the root mount");
    assert!(
        root.split_whitespace()
            .nth(5)
            .is_some_and(|o| o.split(',').any(|o| o == "ro")),
        "read-only root filesystem: {root}"
    );

    // The Lease, written with the pod's own token.
    let lease = wait_until(
        "the scheduler holds its Lease",
        Duration::from_secs(60),
        || {
            let out = cluster.kubectl(&["get", "lease", "-n", NS, "-o", "json"]);
            let leases: Value = serde_json::from_slice(&out.stdout).ok()?;
            leases["items"]
                .as_array()?
                .iter()
                .find(|l| {
                    l["spec"]["holderIdentity"]
                        .as_str()
                        .is_some_and(|h| h.starts_with(&name))
                })
                .cloned()
        },
    );
    // The pod holds no credentials but its ServiceAccount token: a Lease it keeps renewing is
    // written with that token.
    let lease_name = lease["metadata"]["name"]
        .as_str()
        .expect("lease name")
        .to_string();
    let renewed = |lease: &Value| lease["spec"]["renewTime"].as_str().map(str::to_string);
    let first = renewed(&lease).expect("a renew time");
    wait_until("the Lease is renewed", Duration::from_secs(60), || {
        let lease = get_json(
            cluster,
            &["get", "lease", "-n", NS, &lease_name, "-o", "json"],
        );
        (renewed(&lease)? != first).then_some(())
    });
    // The chart's RBAC and nothing more.
    let sa = format!("system:serviceaccount:{NS}:datajump-scheduler");
    for (verb, resource, allowed) in [
        ("create", "jobs.batch", "yes"),
        ("update", "leases.coordination.k8s.io", "yes"),
        ("get", "secrets", "no"),
        ("create", "pods/exec", "no"),
    ] {
        let out = cluster.kubectl(&["auth", "can-i", verb, resource, "-n", NS, "--as", &sa]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            allowed,
            "{sa} may {verb} {resource}: {allowed}"
        );
    }
    let logs = cluster
        .kubectl_ok(&["logs", "-n", NS, &name])
        .expect("logs");
    let logs = String::from_utf8_lossy(&logs.stdout);
    assert!(
        !logs.contains("forbidden"),
        "no request was forbidden:\n{logs}"
    );

    // /metrics from the pod itself (its IP is on this host's bridge).
    let ip = pod["status"]["podIP"].as_str().expect("pod IP");
    let metrics = http_get(&format!("{ip}:8080"), "/metrics");
    for family in dashboard_series(cluster) {
        assert!(
            metrics.contains(&format!("# TYPE {family} ")),
            "the dashboard's {family} is on /metrics:\n{metrics}"
        );
    }
}

/// The metric families of the scheduler that the chart's Grafana dashboards query (every
/// `expr`, less the kubelet's `container_*` series).
fn dashboard_series(cluster: &Cluster) -> BTreeSet<String> {
    let cm = get_json(
        cluster,
        &[
            "get",
            "configmap",
            "-n",
            NS,
            "datajump-dashboards",
            "-o",
            "json",
        ],
    );
    let mut names = BTreeSet::new();
    for dashboard in cm["data"].as_object().expect("dashboards").values() {
        let dashboard: Value =
            serde_json::from_str(dashboard.as_str().expect("JSON text")).expect("dashboard JSON");
        collect_exprs(&dashboard, &mut |expr| {
            for (i, _) in expr.match_indices('{') {
                let name: String = expr[..i]
                    .chars()
                    .rev()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                if name.is_empty() || name.starts_with("container_") {
                    continue;
                }
                let family = ["_bucket", "_sum", "_count", "_total"]
                    .iter()
                    .fold(name, |n, s| {
                        n.strip_suffix(s).map(str::to_string).unwrap_or(n)
                    });
                names.insert(family);
            }
        });
    }
    assert!(
        !names.is_empty(),
        "the dashboards query the scheduler's series"
    );
    names
}

fn collect_exprs(v: &Value, found: &mut impl FnMut(&str)) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                match (k.as_str(), child) {
                    ("expr", Value::String(e)) => found(e),
                    _ => collect_exprs(child, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_exprs(i, found)),
        _ => {}
    }
}

/// A plain HTTP GET (the scheduler's port speaks HTTP/1.1).
fn http_get(addr: &str, path: &str) -> String {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the pod");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "GET {path}: {response}"
    );
    response
}
