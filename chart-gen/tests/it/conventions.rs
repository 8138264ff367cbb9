//! The values users of a Bitnami-style chart expect: extra pod labels and annotations (global and
//! per component), priority classes, ServiceAccount annotations for workload identity, startup
//! probes, extra init containers and sidecars, and security contexts a user may adjust — but
//! never below the chart's security policy. Rendered with the real helm.

use std::path::Path;
use std::process::Command;

use crate::support::{crd_dir, find, render_with, repo_root};
use chart_gen::model::Environment;
use serde_json::Value;

fn pod_meta<'a>(obj: &'a Value, field: &str) -> &'a Value {
    let template = if obj["kind"] == "CronJob" {
        &obj["spec"]["jobTemplate"]["spec"]["template"]
    } else {
        &obj["spec"]["template"]
    };
    &template["metadata"][field]
}

fn chart_gen_validate(env: Environment, values: &Path) -> (i32, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chart-gen"));
    command.args([
        "validate",
        "--env",
        env.as_str(),
        "-f",
        values.to_str().unwrap(),
    ]);
    match crd_dir() {
        Some(crds) => command.arg("--crd-dir").arg(crds),
        // Values checks need no operator CRDs; without a copy, do not look for the cache.
        None => command.arg("--no-crds"),
    };
    let out = command
        .env("DATAJUMP_REPO_ROOT", repo_root())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn validate_yaml(env: Environment, name: &str, body: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, body).unwrap();
    chart_gen_validate(env, &path)
}

/// Validates `body` as the values file `name` and asserts it is refused (exit 2) with a line
/// naming `field`; returns that line.
fn refused_naming(env: Environment, name: &str, body: &str, field: &str) -> String {
    let (code, out) = validate_yaml(env, name, body);
    assert_eq!(code, 2, "{name}: {out}");
    out.lines()
        .find(|l| l.contains(field))
        .unwrap_or_else(|| panic!("{name}: no line naming {field}:\n{out}"))
        .to_string()
}

const POD_EXTRAS: &str = r#"
global:
  podAnnotations:
    example.com/team: data
    example.com/owner: platform
  podLabels:
    example.com/cost-centre: bigdata
web:
  podAnnotations:
    example.com/owner: web-team
  podLabels:
    example.com/tier: front
"#;

#[test]
fn global_pod_labels_and_annotations_reach_every_pod_and_components_win() {
    // Test: the embedded infrastructure and Fluent Bit both render there.
    let objs = render_with(Environment::Test, POD_EXTRAS);
    let web = find(&objs, "Deployment", "datajump-web");
    assert_eq!(
        pod_meta(web, "annotations")["example.com/owner"],
        "web-team"
    );
    assert_eq!(pod_meta(web, "annotations")["example.com/team"], "data");
    assert_eq!(pod_meta(web, "labels")["example.com/tier"], "front");
    assert_eq!(
        pod_meta(web, "labels")["example.com/cost-centre"],
        "bigdata"
    );
    // The chart's own rollout checksum is still there beside the extras.
    assert!(pod_meta(web, "annotations")["checksum/config"].is_string());
    // Extra labels never reach the selector (it is immutable and must match old pods).
    let selector = &web["spec"]["selector"]["matchLabels"];
    assert!(selector.get("example.com/tier").is_none(), "{selector}");
    assert!(selector.get("example.com/cost-centre").is_none());

    // Dev embeds the infrastructure; test runs Fluent Bit.
    let dev = render_with(Environment::Dev, POD_EXTRAS);
    let everyone = [
        (&objs, "Deployment", "datajump-api-gateway"),
        (&objs, "Deployment", "datajump-scheduler"),
        (&objs, "CronJob", "datajump-backup"),
        (&objs, "DaemonSet", "datajump-fluent-bit-datajump-test"),
        (&dev, "StatefulSet", "datajump-mysql"),
        (&dev, "StatefulSet", "datajump-kafka"),
    ];
    for (objs, kind, name) in everyone {
        let obj = find(objs, kind, name);
        assert_eq!(
            pod_meta(obj, "annotations")["example.com/owner"],
            "platform",
            "{kind}/{name}"
        );
        assert_eq!(
            pod_meta(obj, "labels")["example.com/cost-centre"],
            "bigdata",
            "{kind}/{name}"
        );
    }
}

#[test]
fn pod_extras_that_would_break_the_chart_are_refused_naming_the_field() {
    let cases = [
        (
            "selector.yaml",
            "web:\n  podLabels:\n    app.kubernetes.io/name: other\n",
            "/web/podLabels",
        ),
        (
            "checksum.yaml",
            "global:\n  podAnnotations:\n    checksum/config: fixed\n",
            "/global/podAnnotations",
        ),
        (
            "waiver.yaml",
            "scheduler:\n  podAnnotations:\n    datajump.io/policy-exception: \"run-as-non-root: please\"\n",
            "/scheduler/podAnnotations",
        ),
    ];
    for (name, body, pointer) in cases {
        let line = refused_naming(Environment::Staging, name, body, pointer);
        assert!(line.contains(name), "names the file: {line}");
    }
}

#[test]
fn priority_class_and_service_account_annotations_render_where_set() {
    let objs = render_with(
        Environment::Test,
        r#"
metadata:
  priorityClassName: datajump-critical
  serviceAccount:
    annotations:
      eks.amazonaws.com/role-arn: arn:aws:iam::123456789012:role/datajump-metadata
scheduler:
  priorityClassName: system-cluster-critical
"#,
    );
    let metadata = find(&objs, "Deployment", "datajump-metadata");
    assert_eq!(
        metadata["spec"]["template"]["spec"]["priorityClassName"],
        "datajump-critical"
    );
    let sa = find(&objs, "ServiceAccount", "datajump-metadata");
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/datajump-metadata"
    );
    // Workload identity does not bring the token back into the services.
    assert_eq!(sa["automountServiceAccountToken"], false);
    let scheduler = find(&objs, "Deployment", "datajump-scheduler");
    assert_eq!(
        scheduler["spec"]["template"]["spec"]["priorityClassName"],
        "system-cluster-critical"
    );
    // Unset means no field at all (the cluster's default priority), not an empty string.
    let web = find(&objs, "Deployment", "datajump-web");
    assert!(web["spec"]["template"]["spec"]["priorityClassName"].is_null());
    assert!(
        find(&objs, "ServiceAccount", "datajump-web")["metadata"]["annotations"]
            ["eks.amazonaws.com/role-arn"]
            .is_null()
    );
}

#[test]
fn services_get_a_startup_probe_that_can_be_turned_off() {
    let objs = render_with(
        Environment::Dev,
        "integration:\n  probes:\n    startup:\n      enabled: false\n",
    );
    let container = |name: &str| {
        find(&objs, "Deployment", name)["spec"]["template"]["spec"]["containers"][0].clone()
    };
    let metadata = container("datajump-metadata");
    let startup = &metadata["startupProbe"];
    assert_eq!(startup["httpGet"]["path"], "/actuator/health/liveness");
    assert_eq!(startup["failureThreshold"], 30);
    assert_eq!(startup["periodSeconds"], 10);
    // Liveness counts from the first successful start-up check, not after a fixed delay.
    assert_eq!(metadata["livenessProbe"]["initialDelaySeconds"], 0);
    assert_eq!(
        container("datajump-web")["startupProbe"]["httpGet"]["path"],
        "/healthz"
    );
    assert!(container("datajump-integration")["startupProbe"].is_null());
}

const HARDENED_SIDECAR: &str = r#"
apiGateway:
  extraInitContainers:
    - name: wait-for-config
      image: registry.example.com/tools/busybox:1.37.0
      command: ["sh", "-c", "true"]
      securityContext:
        readOnlyRootFilesystem: true
        allowPrivilegeEscalation: false
        capabilities:
          drop: [ALL]
      resources:
        requests: {cpu: 10m, memory: 16Mi}
        limits: {cpu: 100m, memory: 16Mi}
  sidecars:
    - name: audit-shipper
      image: registry.example.com/tools/shipper:2.1.0
      securityContext:
        readOnlyRootFilesystem: true
        allowPrivilegeEscalation: false
        capabilities:
          drop: [ALL]
      resources:
        requests: {cpu: 10m, memory: 32Mi}
        limits: {cpu: 100m, memory: 32Mi}
      livenessProbe:
        exec: {command: ["true"]}
      readinessProbe:
        exec: {command: ["true"]}
"#;

#[test]
fn hardened_init_containers_and_sidecars_render_and_validate() {
    let objs = render_with(Environment::Staging, HARDENED_SIDECAR);
    let spec = &find(&objs, "Deployment", "datajump-api-gateway")["spec"]["template"]["spec"];
    assert_eq!(spec["initContainers"][0]["name"], "wait-for-config");
    let names: Vec<&str> = spec["containers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["api-gateway", "audit-shipper"]);
    let (code, out) = validate_yaml(Environment::Staging, "sidecar.yaml", HARDENED_SIDECAR);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_sidecar_or_security_context_below_policy_is_refused_naming_the_field() {
    let cases = [
        (
            "root-sidecar.yaml",
            "web:\n  sidecars:\n    - name: debug\n      image: registry.example.com/debug:1.0.0\n",
            "containers/1",
        ),
        (
            "root-pod.yaml",
            "metadata:\n  podSecurityContext:\n    runAsNonRoot: true\n    runAsUser: 0\n    seccompProfile:\n      type: RuntimeDefault\n",
            "securityContext/runAsUser",
        ),
        (
            "writable.yaml",
            "web:\n  containerSecurityContext:\n    readOnlyRootFilesystem: false\n    allowPrivilegeEscalation: false\n    capabilities:\n      drop: [ALL]\n",
            "readOnlyRootFilesystem",
        ),
    ];
    for (name, body, field) in cases {
        refused_naming(Environment::Prod, name, body, field);
    }
}

#[test]
fn an_image_that_needs_another_uid_may_have_it_within_policy() {
    let body = "development:\n  podSecurityContext:\n    runAsNonRoot: true\n    runAsUser: 20001\n    runAsGroup: 20001\n    fsGroup: 20001\n    seccompProfile:\n      type: RuntimeDefault\n  containerSecurityContext:\n    runAsNonRoot: true\n    runAsUser: 20001\n    readOnlyRootFilesystem: true\n    allowPrivilegeEscalation: false\n    capabilities:\n      drop: [ALL]\n";
    let objs = render_with(Environment::Test, body);
    let spec = &find(&objs, "Deployment", "datajump-development")["spec"]["template"]["spec"];
    assert_eq!(spec["securityContext"]["fsGroup"], 20001);
    assert_eq!(spec["containers"][0]["securityContext"]["runAsUser"], 20001);
    let (code, out) = validate_yaml(Environment::Test, "uid.yaml", body);
    assert_eq!(code, 0, "{out}");
}

fn render_release(env: Environment, release: &str, extra_yaml: &str) -> Result<Vec<Value>, String> {
    use chart_gen::generate::CHART_DIR;
    use chart_gen::helm::TemplateRequest;
    let dir = tempfile::tempdir().unwrap();
    let extra = dir.path().join("names.yaml");
    std::fs::write(&extra, extra_yaml).unwrap();
    let chart = repo_root().join(CHART_DIR);
    let namespace = env.default_namespace();
    let out = crate::support::helm()
        .template(&TemplateRequest {
            release,
            namespace: &namespace,
            chart: &chart,
            values: vec![chart.join(env.values_file_name()), extra],
            set: Vec::new(),
        })
        .map_err(|e| e.to_string())?;
    Ok(chart_gen::validate::parse_manifests(&out).unwrap())
}

/// Kinds whose names the API server limits below a DNS subdomain: Services and the label
/// values that carry a Job's, StatefulSet's or node pool's name (63), CronJobs (52).
fn name_limit(kind: &str) -> usize {
    match kind {
        "CronJob" => 52,
        "Service" | "Job" | "StatefulSet" | "Deployment" | "KafkaNodePool" | "Kafka" => 63,
        _ => 253,
    }
}

#[test]
fn name_overrides_name_every_object_as_the_plugin_computes_them() {
    use chart_gen::model::names;
    // Contains the chart name, so it is the fullname itself: the longest the chart accepts.
    let longest = format!("datajump-{}", "a".repeat(35));
    let cases = [
        (Environment::Test, "blue", "", ""),
        (Environment::Test, "blue", "dj", ""),
        (Environment::Test, "blue", "", "platform"),
        (Environment::Dev, longest.as_str(), "", ""),
    ];
    for (env, release, name_override, fullname_override) in cases {
        let objs = render_release(
            env,
            release,
            &format!("nameOverride: {name_override:?}\nfullnameOverride: {fullname_override:?}\n"),
        )
        .unwrap();
        let fullname = names::fullname(release, name_override, fullname_override);
        let cm = find(&objs, "ConfigMap", &format!("{fullname}-config"));
        assert_eq!(
            cm["metadata"]["labels"]["app.kubernetes.io/component"],
            "config"
        );
        let web = find(&objs, "Deployment", &format!("{fullname}-web"));
        let name_label = names::name(name_override);
        assert_eq!(
            web["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
            name_label.as_str()
        );
        // Every object of the release carries the prefix, within what the API server accepts.
        for o in &objs {
            let kind = o["kind"].as_str().unwrap_or_default();
            let name = o["metadata"]["name"].as_str().unwrap_or_default();
            if o["metadata"]["namespace"] == env.default_namespace().as_str() {
                assert!(name.starts_with(&fullname), "{release}: {kind} {name}");
            }
            assert!(name.len() <= name_limit(kind), "{release}: {kind} {name}");
        }
    }
}

#[test]
fn a_fullname_the_api_server_would_refuse_fails_the_render_with_the_limit() {
    let too_long = format!("datajump-{}", "a".repeat(36));
    let err = render_release(Environment::Dev, &too_long, "{}").unwrap_err();
    assert!(err.contains("at most 44 fit"), "{err}");
    // Strimzi's pod host names repeat the fullname, so Kafka in operator mode needs a short one.
    let err = render_release(Environment::Test, "analytics-team-blue", "{}").unwrap_err();
    assert!(
        err.contains("at most 18 fit with kafka.mode operator"),
        "{err}"
    );
    let ok = render_release(
        Environment::Test,
        "analytics-team-blue",
        "fullnameOverride: dj-blue\n",
    );
    assert!(ok.is_ok(), "{ok:?}");
}

#[test]
fn a_name_override_that_is_not_a_dns_label_is_refused() {
    for body in ["fullnameOverride: Platform_One\n", "nameOverride: -dj\n"] {
        let field = body.split(':').next().unwrap();
        refused_naming(Environment::Test, "names.yaml", body, &format!("/{field}"));
    }
}

const HTTP_ROUTE: &str = r#"
ingress:
  enabled: false
httpRoute:
  enabled: true
  parentRefs:
    - name: platform
      namespace: gateway-system
      sectionName: https
  annotations:
    example.com/route-owner: data
"#;

#[test]
fn an_http_route_replaces_the_ingress_with_the_same_paths() {
    let objs = render_with(Environment::Prod, HTTP_ROUTE);
    assert!(objs.iter().all(|o| o["kind"] != "Ingress"));
    let route = find(&objs, "HTTPRoute", "datajump");
    assert_eq!(route["apiVersion"], "gateway.networking.k8s.io/v1");
    assert_eq!(
        route["metadata"]["annotations"]["example.com/route-owner"],
        "data"
    );
    let parent = &route["spec"]["parentRefs"][0];
    assert_eq!(parent["name"], "platform");
    assert_eq!(parent["namespace"], "gateway-system");
    assert_eq!(parent["sectionName"], "https");
    // No hostnames given: the Ingress host.
    assert_eq!(
        route["spec"]["hostnames"],
        serde_json::json!(["datajump.example.com"])
    );
    let backend = |prefix: &str| {
        route["spec"]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["matches"][0]["path"]["value"] == prefix)
            .map(|r| r["backendRefs"][0].clone())
            .unwrap_or_else(|| panic!("no rule for {prefix}"))
    };
    assert_eq!(backend("/api")["name"], "datajump-api-gateway");
    assert_eq!(backend("/")["name"], "datajump-web");
    // The backend ports are the Services' ports.
    for (prefix, service) in [("/api", "datajump-api-gateway"), ("/", "datajump-web")] {
        let port = &find(&objs, "Service", service)["spec"]["ports"][0]["port"];
        assert_eq!(&backend(prefix)["port"], port, "{prefix}");
    }
    // The Gateway's proxies may reach web and the API gateway.
    let allow = find(&objs, "NetworkPolicy", "datajump-allow-ingress-controller");
    let from = allow["spec"]["ingress"][0]["from"].to_string();
    assert!(from.contains("gateway-system"), "{from}");
}

#[test]
fn an_http_route_needs_a_gateway_and_host_names() {
    let cases = [
        (
            "no-parent.yaml",
            "httpRoute:\n  enabled: true\n",
            "/httpRoute/parentRefs",
        ),
        (
            "bad-host.yaml",
            "httpRoute:\n  enabled: true\n  parentRefs: [{name: gw}]\n  hostnames: [\"Not A Host\"]\n",
            "/httpRoute/hostnames/0",
        ),
    ];
    for (name, body, pointer) in cases {
        refused_naming(Environment::Staging, name, body, pointer);
    }
}

fn application_yml(objs: &[Value]) -> serde_yaml::Value {
    let cm = find(objs, "ConfigMap", "datajump-config");
    serde_yaml::from_str(cm["data"]["application.yml"].as_str().unwrap()).unwrap()
}

fn volume<'a>(spec: &'a Value, name: &str) -> Option<&'a Value> {
    spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
}

#[test]
fn services_sign_in_to_elasticsearch_and_the_object_store_with_mounted_credentials() {
    // Operator mode: ECK's elastic user and HTTP CA.
    let objs = render_with(Environment::Staging, "{}");
    let app = application_yml(&objs);
    let es = &app["spring"]["elasticsearch"];
    assert_eq!(
        es["uris"].as_str(),
        Some("https://datajump-es-es-http:9200")
    );
    assert_eq!(es["username"].as_str(), Some("elastic"));
    assert_eq!(es["password"].as_str(), Some("${ES_PASSWORD}"));
    assert_eq!(
        es["restclient"]["ssl"]["bundle"].as_str(),
        Some("elasticsearch")
    );
    assert_eq!(
        app["spring"]["ssl"]["bundle"]["pem"]["elasticsearch"]["truststore"]["certificate"]
            .as_str(),
        Some("file:/etc/datajump/elasticsearch/ca.crt")
    );
    assert_eq!(
        app["minio"]["access-key"].as_str(),
        Some("${MINIO_ACCESS_KEY}")
    );
    let spec = &find(&objs, "Deployment", "datajump-integration")["spec"]["template"]["spec"];
    let sources = volume(spec, "credentials").unwrap()["projected"]["sources"].to_string();
    for file in [
        "MINIO_ACCESS_KEY",
        "MINIO_SECRET_KEY",
        "ES_PASSWORD",
        "datajump-es-es-elastic-user",
    ] {
        assert!(sources.contains(file), "{file} in {sources}");
    }
    let ca = volume(spec, "elasticsearch-ca").expect("the CA volume");
    assert_eq!(
        ca["secret"]["secretName"],
        "datajump-es-es-http-certs-public"
    );
    let mounts = spec["containers"][0]["volumeMounts"].to_string();
    assert!(mounts.contains("/etc/datajump/elasticsearch"), "{mounts}");

    // External with a Secret of the site's; embedded dev without security.
    let external = render_with(
        Environment::Staging,
        "elasticsearch:\n  mode: external\n  external:\n    credentialsSecret: es-platform\n    caInSecret: false\n",
    );
    let es = &application_yml(&external)["spring"]["elasticsearch"];
    assert_eq!(es["username"].as_str(), Some("${ES_USERNAME}"));
    assert!(es["restclient"].is_null());
    let spec = &find(&external, "Deployment", "datajump-web")["spec"]["template"]["spec"];
    assert!(volume(spec, "elasticsearch-ca").is_none());
    let sources = volume(spec, "credentials").unwrap()["projected"]["sources"].to_string();
    assert!(
        sources.contains("es-platform") && sources.contains("ES_USERNAME"),
        "{sources}"
    );

    let dev = render_with(Environment::Dev, "{}");
    assert!(application_yml(&dev)["spring"]["elasticsearch"]["password"].is_null());
    let spec = &find(&dev, "Deployment", "datajump-web")["spec"]["template"]["spec"];
    let sources = volume(spec, "credentials").unwrap()["projected"]["sources"].to_string();
    assert!(!sources.contains("ES_PASSWORD"), "{sources}");
}
