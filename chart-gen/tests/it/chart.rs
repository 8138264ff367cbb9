//! The generated chart, rendered by the real helm for every environment: the reference
//! architecture's properties hold, every object validates, bad values are refused with precise
//! messages, and `check` catches hand edits.

use std::path::PathBuf;
use std::process::Command;

use chart_gen::generate::{self, CHART_DIR};
use chart_gen::model::Environment;
use chart_gen::pipeline::{Pipeline, read_values};
use chart_gen::validate::{self, crd::CrdSchemas};
use chart_gen::{overlay, profiles};
use serde_json::Value;

use crate::support::*;

#[test]
fn committed_chart_is_what_the_generator_writes() {
    let files = generate::generate_all().unwrap();
    let drift = generate::check(&repo_root(), &files).unwrap();
    assert!(
        drift.is_clean(),
        "run `cargo run -p chart-gen -- generate`: {drift:?}"
    );
}

#[test]
fn values_files_merge_to_each_profile() {
    let chart = repo_root().join(CHART_DIR);
    for env in Environment::ALL {
        let mut merged = read_values(&chart.join("values.yaml")).unwrap();
        overlay::merge(
            &mut merged,
            &read_values(&chart.join(env.values_file_name())).unwrap(),
        );
        let expected = serde_json::to_value(profiles::profile(env)).unwrap();
        assert_eq!(
            merged,
            expected,
            "{env}: values.yaml + {} != profile",
            env.values_file_name()
        );
    }
}

#[test]
fn every_environment_validates_cleanly() {
    let Some(crds) = crd_dir() else { return };
    let pipeline = Pipeline::new(repo_root().join(CHART_DIR), helm(), Some(&crds)).unwrap();
    for env in Environment::ALL {
        let report = pipeline.run(env, &[]).unwrap();
        let lines: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
        assert!(lines.is_empty(), "{env}:\n{}", lines.join("\n"));
        assert!(
            report.objects.len() > 20,
            "{env}: only {} objects",
            report.objects.len()
        );
    }
}

#[test]
fn prod_renders_the_reference_architecture() {
    let objs = render(Environment::Prod, &[]);

    let sched = find(&objs, "Deployment", "datajump-scheduler");
    assert_eq!(sched["spec"]["replicas"], 3);
    let pod = &sched["spec"]["template"]["spec"];
    let anti =
        &pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(anti["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(
        anti["labelSelector"]["matchLabels"]["app.kubernetes.io/component"],
        "scheduler"
    );
    let spread = &pod["topologySpreadConstraints"][0];
    assert_eq!(spread["topologyKey"], "topology.kubernetes.io/zone");
    assert_eq!(spread["whenUnsatisfiable"], "DoNotSchedule");
    find(&objs, "PodDisruptionBudget", "datajump-scheduler");

    assert_eq!(
        find(&objs, "Deployment", "datajump-api-gateway")["spec"]["replicas"],
        3
    );
    for svc in [
        "web",
        "integration",
        "development",
        "metadata",
        "ops-monitor",
    ] {
        let hpa = find(&objs, "HorizontalPodAutoscaler", &format!("datajump-{svc}"));
        assert_eq!(hpa["apiVersion"], "autoscaling/v2");
        assert_eq!(hpa["spec"]["minReplicas"], 5, "{svc}");
        assert_eq!(hpa["spec"]["maxReplicas"], 50, "{svc}");
        let targets: Vec<(String, i64)> = hpa["spec"]["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["resource"]["name"].as_str().unwrap().to_string(),
                    m["resource"]["target"]["averageUtilization"]
                        .as_i64()
                        .unwrap(),
                )
            })
            .collect();
        assert_eq!(targets, vec![("cpu".into(), 70), ("memory".into(), 80)]);
        find(&objs, "PodDisruptionBudget", &format!("datajump-{svc}"));
    }

    let mysql = find(&objs, "InnoDBCluster", "datajump-mysql");
    assert_eq!(mysql["apiVersion"], "mysql.oracle.com/v2");
    assert_eq!(mysql["spec"]["instances"], 3);
    assert_eq!(mysql["spec"]["router"]["instances"], 2);
    let pvc = &mysql["spec"]["datadirVolumeClaimTemplate"];
    assert_eq!(pvc["resources"]["requests"]["storage"], "100Gi");
    assert_eq!(pvc["storageClassName"], "fast-ssd");

    let redis = find(&objs, "RedisCluster", "datajump-redis");
    assert_eq!(redis["apiVersion"], "redis.redis.opstreelabs.in/v1beta2");
    assert_eq!(redis["spec"]["clusterSize"], 3);

    let kafka = find(&objs, "Kafka", "datajump-kafka");
    assert_eq!(kafka["apiVersion"], "kafka.strimzi.io/v1");
    assert!(kafka["spec"].get("zookeeper").is_none(), "KRaft only");
    let pool = find(&objs, "KafkaNodePool", "datajump-kafka-dual-role");
    assert_eq!(pool["spec"]["replicas"], 3);
    assert_eq!(
        pool["metadata"]["labels"]["strimzi.io/cluster"],
        "datajump-kafka"
    );
    assert_eq!(kafka["spec"]["kafka"]["config"]["min.insync.replicas"], 2);

    let es = find(&objs, "Elasticsearch", "datajump-es");
    let sets: Vec<(String, i64)> = es["spec"]["nodeSets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().into(),
                s["count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert!(
        sets.contains(&("master".into(), 3)) && sets.contains(&("data".into(), 5)),
        "{sets:?}"
    );

    let ing = find(&objs, "Ingress", "datajump");
    assert_eq!(ing["spec"]["ingressClassName"], "nginx");
    assert!(
        ing["metadata"]["annotations"]
            .get("kubernetes.io/ingress.class")
            .is_none()
    );
    assert_eq!(ing["spec"]["tls"][0]["secretName"], "datajump-tls");
    assert_eq!(
        ing["metadata"]["annotations"]["cert-manager.io/cluster-issuer"],
        "letsencrypt-prod"
    );
    let paths: Vec<(&str, &str)> = ing["spec"]["rules"][0]["http"]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["path"].as_str().unwrap(),
                p["backend"]["service"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        paths.contains(&("/", "datajump-web")) && paths.contains(&("/api", "datajump-api-gateway"))
    );

    let deny = find(&objs, "NetworkPolicy", "datajump-default-deny");
    assert_eq!(deny["spec"]["podSelector"], serde_json::json!({}));
    assert_eq!(
        deny["spec"]["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );

    let backup = find(&objs, "CronJob", "datajump-backup");
    assert_eq!(backup["spec"]["schedule"], "0 2 * * *");
    let sm = find(&objs, "ServiceMonitor", "datajump-services");
    assert_eq!(sm["spec"]["endpoints"][0]["interval"], "15s");

    // No plaintext credentials in prod: the chart's one Secret is ECK's role definitions.
    assert_eq!(credential_secrets(&objs), Vec::<String>::new());
    let roles = find(&objs, "Secret", "datajump-es-roles");
    let roles = roles["stringData"]["roles.yml"]
        .as_str()
        .unwrap_or_default();
    assert!(
        roles.starts_with("datajump_log_writer:") && roles.contains("\"datajump-logs-*\""),
        "Fluent Bit's role writes the log indices only: {roles}"
    );
    assert!(
        !roles.contains("read") && !roles.contains("delete"),
        "{roles}"
    );
}

#[test]
fn dev_needs_no_operators() {
    let objs = render(Environment::Dev, &[]);
    let builtin_groups = [
        "v1",
        "apps/v1",
        "batch/v1",
        "autoscaling/v2",
        "policy/v1",
        "networking.k8s.io/v1",
        "rbac.authorization.k8s.io/v1",
        "apiextensions.k8s.io/v1",
    ];
    for o in &objs {
        let api = o["apiVersion"].as_str().unwrap();
        assert!(
            builtin_groups.contains(&api),
            "dev renders {api} {}",
            o["kind"]
        );
    }
    for name in ["mysql", "redis", "kafka", "elasticsearch", "minio"] {
        let sts = find(&objs, "StatefulSet", &format!("datajump-{name}"));
        assert_eq!(sts["spec"]["replicas"], 1);
    }
    assert!(kinds(&objs, "HorizontalPodAutoscaler").is_empty());
    let web = find(&objs, "Deployment", "datajump-web");
    assert_eq!(web["spec"]["replicas"], 1);
}

#[test]
fn every_container_is_hardened_in_every_environment() {
    for env in Environment::ALL {
        let objs = render(env, &[]);
        let problems: Vec<String> = validate::policy::check(env, &objs)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(problems.is_empty(), "{env}:\n{}", problems.join("\n"));
        // And the exception is only Fluent Bit's.
        for o in &objs {
            let ann =
                &o["spec"]["template"]["metadata"]["annotations"]["datajump.io/policy-exception"];
            if !ann.is_null() {
                let name = o["metadata"]["name"].as_str().unwrap_or_default();
                assert_eq!(name, format!("datajump-fluent-bit-datajump-{env}"), "{env}");
            }
        }
    }
}

#[test]
fn config_changes_roll_the_pods() {
    let a = render(Environment::Test, &[]);
    let dir = tempfile::tempdir().unwrap();
    let extra = dir.path().join("more.yaml");
    std::fs::write(&extra, "config:\n  dbMaxPoolSize: 77\n").unwrap();
    let b = render(Environment::Test, &[extra]);
    let sum = |objs: &[Value]| {
        find(objs, "Deployment", "datajump-web")["spec"]["template"]["metadata"]["annotations"]
            ["checksum/config"]
            .clone()
    };
    assert_ne!(sum(&a), sum(&b));
}

#[test]
fn global_registry_wins_and_tags_are_explicit() {
    for env in Environment::ALL {
        let objs = render(env, &[]);
        let registry = profiles::profile(env).global.image_registry;
        for o in &objs {
            let text = serde_json::to_string(o).unwrap();
            for (i, _) in text.match_indices("\"image\":\"") {
                let rest = &text[i + 9..];
                let image = &rest[..rest.find('"').unwrap()];
                assert!(
                    !image.ends_with(":latest") && image.contains(':'),
                    "{env}: {image}"
                );
                if !registry.is_empty() {
                    assert!(image.starts_with(&format!("{registry}/")), "{env}: {image}");
                }
            }
        }
    }
}

/// Bad values files and the line chart-gen must print for each.
const BAD_VALUES: &[(&str, &str, &str)] = &[
    (
        "typo.yaml",
        "scheduler:\n  replcas: 3\n",
        "/scheduler: unknown field \"replcas\"",
    ),
    ("type.yaml", "web:\n  replicas: three\n", "/web/replicas"),
    (
        "latest.yaml",
        "web:\n  image:\n    tag: latest\n",
        "/web/image/tag",
    ),
    ("mode.yaml", "mysql:\n  mode: cloud\n", "/mysql/mode"),
    (
        "cpu.yaml",
        "web:\n  resources:\n    limits:\n      cpu: lots\n",
        "/web/resources/limits/cpu",
    ),
    (
        "plaintext.yaml",
        "secrets:\n  values:\n    dbPassword: hunter2\n",
        "/secrets",
    ),
];

#[test]
fn bad_values_are_refused_with_file_pointer_and_expectation() {
    let dir = tempfile::tempdir().unwrap();
    for (name, body, expected) in BAD_VALUES {
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        let (code, stdout, stderr) = chart_gen(
            &[
                "validate",
                "--env",
                "prod",
                "--no-crds",
                "-f",
                path.to_str().unwrap(),
            ],
            &repo_root(),
        );
        assert_eq!(code, 2, "{name}: {stdout}{stderr}");
        let line = stdout
            .lines()
            .find(|l| l.contains(expected))
            .unwrap_or_else(|| panic!("{name}: no line with {expected:?} in:\n{stdout}"));
        assert!(line.starts_with("prod: "), "{line}");
        assert!(line.contains(name), "names the file: {line}");
    }
}

#[test]
fn helm_itself_refuses_bad_values_through_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.yaml");
    std::fs::write(&path, "scheduler:\n  replcas: 3\n").unwrap();
    let chart = repo_root().join(CHART_DIR);
    let err = helm()
        .lint(&chart, &[chart.join("values-dev.yaml"), path])
        .unwrap_err()
        .to_string();
    assert!(err.contains("replcas"), "{err}");
}

#[test]
fn unreadable_values_file_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yaml");
    std::fs::write(&path, "web: [unclosed\n").unwrap();
    let (code, _, stderr) = chart_gen(
        &[
            "validate",
            "--env",
            "dev",
            "--no-crds",
            "-f",
            path.to_str().unwrap(),
        ],
        &repo_root(),
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("broken.yaml") && stderr.contains("not valid YAML"),
        "{stderr}"
    );
}

#[test]
fn check_names_a_hand_edited_file_and_generate_repairs_it() {
    let tmp = tempfile::tempdir().unwrap();
    let files = generate::generate_all().unwrap();
    generate::write(tmp.path(), &files).unwrap();
    let (code, stdout, _) = chart_gen(&["check"], tmp.path());
    assert_eq!(code, 0, "{stdout}");

    let edited = tmp
        .path()
        .join(CHART_DIR)
        .join("templates/web/deployment.yaml");
    let text = std::fs::read_to_string(&edited).unwrap();
    std::fs::write(
        &edited,
        text.replace("revisionHistoryLimit: 5", "revisionHistoryLimit: 9"),
    )
    .unwrap();
    std::fs::write(
        tmp.path().join(CHART_DIR).join("templates/stray.yaml"),
        "kind: x\n",
    )
    .unwrap();
    let (code, stdout, _) = chart_gen(&["check"], tmp.path());
    assert_eq!(code, 2);
    assert!(
        stdout.contains("changed: charts/datajump/templates/web/deployment.yaml"),
        "{stdout}"
    );
    assert!(
        stdout.contains("extra:   charts/datajump/templates/stray.yaml"),
        "{stdout}"
    );

    let (code, _, _) = chart_gen(&["generate"], tmp.path());
    assert_eq!(code, 0);
    assert!(generate::check(tmp.path(), &files).unwrap().is_clean());
}

#[test]
fn own_crds_ship_with_the_chart_and_validate_workflows() {
    let objs = render(Environment::Dev, &[]);
    let crd_objs = kinds(&objs, "CustomResourceDefinition");
    let names: Vec<&str> = crd_objs
        .iter()
        .map(|c| c["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.contains(&"workflows.datajump.io") && names.contains(&"workflowruns.datajump.io")
    );

    let mut crds = CrdSchemas::new();
    for crd in datajump_api::crds() {
        crds.add(crd);
    }
    let sample =
        std::fs::read_to_string(repo_root().join("tests/e2e/sample-workflow.yaml")).unwrap();
    let workflow: Value = serde_yaml::from_str(&sample).unwrap();
    let errors = crds.check(&workflow).expect("Workflow is a known CRD kind");
    assert!(errors.is_empty(), "{errors:?}");

    let mut typo = workflow.clone();
    typo["spec"]["tasks"][0]["imagee"] = Value::String("x".into());
    let errors = crds.check(&typo).expect("Workflow is a known CRD kind");
    assert!(
        errors.iter().any(|e| e.to_string().contains("imagee")),
        "{errors:?}"
    );
}

#[test]
fn missing_helm_says_how_to_install_it() {
    let empty = tempfile::tempdir().unwrap();
    let run = |helm: Option<&std::path::Path>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_chart-gen"));
        command
            .args(["render", "--env", "dev"])
            .env("DATAJUMP_REPO_ROOT", empty.path())
            .env("PATH", empty.path())
            .env_remove("DATAJUMP_HELM");
        if let Some(helm) = helm {
            command.env("DATAJUMP_HELM", helm);
        }
        let out = command.output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = run(None);
    assert!(stderr.contains("helm not found"), "{stderr}");
    assert!(stderr.contains(".ci/install-tools.sh"), "{stderr}");
    // A helm named explicitly that is not there is an error, not a fall back to PATH.
    let typo = empty.path().join("no-helm");
    let stderr = run(Some(&typo));
    assert!(
        stderr.contains(&format!(
            "helm binary {} (from DATAJUMP_HELM) does not exist",
            typo.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains(".ci/install-tools.sh"), "{stderr}");
}

#[test]
fn package_writes_a_chart_archive_with_the_requested_version() {
    let dest = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = chart_gen(
        &[
            "package",
            "--destination",
            dest.path().to_str().unwrap(),
            "--version",
            "9.8.7",
        ],
        &repo_root(),
    );
    assert_eq!(code, 0, "{stderr}");
    let archive = PathBuf::from(stdout.trim());
    assert_eq!(archive.file_name().unwrap(), "datajump-9.8.7.tgz");
    assert!(std::fs::metadata(&archive).unwrap().len() > 10_000);
}

#[test]
fn scheduler_deployment_sets_exactly_the_flags_the_scheduler_reads() {
    use clap::CommandFactory;
    let known: Vec<String> = datajump_scheduler::config::Cli::command()
        .get_arguments()
        .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
        .collect();
    // With every optional flag's value on (the log archive, with a private CA).
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive.yaml");
    std::fs::write(
        &archive,
        "scheduler:\n  logArchive:\n    enabled: true\n    ca: {configMapName: s3-ca}\n",
    )
    .unwrap();
    let objs = render(Environment::Prod, &[archive]);
    let sched = find(&objs, "Deployment", "datajump-scheduler");
    let env = sched["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap();
    let set: Vec<&str> = env.iter().map(|e| e["name"].as_str().unwrap()).collect();
    // RUST_LOG is read by the log filter, not by a flag.
    for name in set.iter().filter(|n| **n != "RUST_LOG") {
        assert!(
            known.iter().any(|k| k == name),
            "chart sets {name}, which the scheduler does not read"
        );
    }
    for name in known.iter().filter(|k| k.starts_with("DATAJUMP_")) {
        assert!(set.contains(&name.as_str()), "chart does not set {name}");
    }
}

/// The chart never invents credentials while rendering, so the same values render the same
/// bytes every time (helm template, Argo CD and helm-diff see no phantom changes), and given
/// credentials roll the pods through their checksum.
#[test]
fn renders_are_deterministic_and_given_credentials_roll_the_pods() {
    for env in Environment::ALL {
        assert_eq!(
            render(env, &[]),
            render(env, &[]),
            "{env}: two renders of the same values differ"
        );
        let objs = render(env, &[]);
        assert_eq!(
            credential_secrets(&objs),
            Vec::<String>::new(),
            "{env}: without secrets.values the chart creates no Secret with credentials"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let with = |password: &str| {
        let file = dir.path().join(format!("secrets-{password}.yaml"));
        std::fs::write(
            &file,
            format!(
                "secrets:\n  values:\n    dbPassword: {password}\n    dbRootPassword: r\n    redisPassword: r\n    jwtSecret: j\n    minioAccessKey: a\n    minioSecretKey: s\n"
            ),
        )
        .unwrap();
        render(Environment::Test, &[file])
    };
    let (a, b) = (with("one"), with("two"));
    let secret = find(&a, "Secret", "datajump-secrets");
    assert_eq!(
        secret["data"]["db-password"], "b25l",
        "base64 of the given value"
    );
    let sum = |objs: &[Value]| {
        find(objs, "Deployment", "datajump-web")["spec"]["template"]["metadata"]["annotations"]
            ["checksum/secret"]
            .clone()
    };
    assert!(sum(&a).is_string());
    assert_ne!(sum(&a), sum(&b), "a changed credential rolls the pods");
    // Credentials reach the services as a mounted Secret, never as environment variables.
    let secret_ref = |objs: &[Value]| {
        let spec = &find(objs, "Deployment", "datajump-web")["spec"]["template"]["spec"];
        assert!(
            spec["containers"][0]["env"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["valueFrom"]["secretKeyRef"].is_null()),
            "no credential in the environment"
        );
        // The platform's credentials are the first source of the projected config tree.
        let names: Vec<String> = spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["name"] == "credentials")
            .filter_map(|v| v["projected"]["sources"][0]["secret"]["name"].as_str())
            .map(str::to_string)
            .collect();
        assert_eq!(names.len(), 1, "one credentials volume: {names:?}");
        names
    };
    assert!(secret_ref(&a).iter().all(|n| n == "datajump-secrets"));
    assert!(
        secret_ref(&render(Environment::Dev, &[]))
            .iter()
            .all(|n| n == "datajump-credentials"),
        "without values the chart reads <fullname>-credentials"
    );
}

/// Only services that serve metrics are scraped and watched by the service-down alert (a
/// scraped service without metrics would keep that alert firing).
#[test]
fn metrics_toggles_decide_what_is_scraped_and_alerted() {
    let scraped = |objs: &[Value]| -> Vec<String> {
        objs.iter()
            .find(|o| o["kind"] == "ServiceMonitor" && o["metadata"]["name"] == "datajump-services")
            .map(|sm| {
                sm["spec"]["selector"]["matchExpressions"][0]["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let alert = |objs: &[Value]| -> String {
        let rule = find(objs, "PrometheusRule", "datajump-alerts");
        serde_json::to_string(&rule["spec"]).unwrap()
    };
    let default = render(Environment::Test, &[]);
    assert!(
        !scraped(&default).contains(&"web".to_string()),
        "web serves no metrics by default"
    );
    assert!(scraped(&default).contains(&"api-gateway".to_string()));
    let web_on = render_with(Environment::Test, "web:\n  metrics: true\n");
    assert_eq!(scraped(&web_on)[0], "web");
    assert!(alert(&web_on).contains("(web|api-gateway|"));
    let gateway_off = render_with(Environment::Test, "apiGateway:\n  metrics: false\n");
    assert!(!scraped(&gateway_off).contains(&"api-gateway".to_string()));
    assert!(!alert(&gateway_off).contains("api-gateway"));
    let none = render_with(
        Environment::Test,
        "apiGateway: {metrics: false}\nintegration: {metrics: false}\ndevelopment: {metrics: false}\nmetadata: {metrics: false}\nopsMonitor: {metrics: false}\n",
    );
    assert!(
        scraped(&none).is_empty(),
        "no ServiceMonitor for services when none serve metrics"
    );
    assert!(!alert(&none).contains("DataJumpServiceDown"));
}

/// `global.commonAnnotations` merges with an object's own annotations instead of adding a
/// second `annotations:` key (which YAML parsers resolve by dropping one of them).
#[test]
fn common_annotations_merge_with_an_objects_own() {
    let objs = render_with(
        Environment::Test,
        "global:\n  commonAnnotations:\n    team: data\n",
    );
    let pvc = find(&objs, "PersistentVolumeClaim", "datajump-backup");
    assert_eq!(pvc["metadata"]["annotations"]["team"], "data");
    assert_eq!(
        pvc["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    let plain = render(Environment::Test, &[]);
    let pvc = find(&plain, "PersistentVolumeClaim", "datajump-backup");
    assert_eq!(
        pvc["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
}

/// With required anti-affinity a surge pod has no node to go to, so such Deployments replace
/// one pod at a time; the others surge first and never drop below their replicas.
#[test]
fn rollouts_fit_required_anti_affinity() {
    let prod = render(Environment::Prod, &[]);
    let strategy =
        |name: &str| find(&prod, "Deployment", name)["spec"]["strategy"]["rollingUpdate"].clone();
    assert_eq!(strategy("datajump-scheduler")["maxSurge"], 0);
    assert_eq!(strategy("datajump-scheduler")["maxUnavailable"], 1);
    assert_eq!(strategy("datajump-web")["maxSurge"], "25%");
    assert_eq!(strategy("datajump-web")["maxUnavailable"], 0);
    let hard_web = render_with(Environment::Prod, "web:\n  podAntiAffinity: hard\n");
    let web = &find(&hard_web, "Deployment", "datajump-web")["spec"]["strategy"]["rollingUpdate"];
    assert_eq!(web["maxSurge"], 0);
}

/// ECK deletes the data volumes with the Elasticsearch resource unless told otherwise; the
/// chart keeps them unless the values ask.
#[test]
fn elasticsearch_data_outlives_the_resource_unless_asked() {
    let policy = |objs: &[Value]| {
        find(objs, "Elasticsearch", "datajump-es")["spec"]["volumeClaimDeletePolicy"].clone()
    };
    assert_eq!(
        policy(&render(Environment::Prod, &[])),
        "DeleteOnScaledownOnly"
    );
    let delete = render_with(
        Environment::Prod,
        "elasticsearch:\n  operator:\n    deleteDataOnRemoval: true\n",
    );
    assert_eq!(policy(&delete), "DeleteOnScaledownAndClusterDeletion");
}
