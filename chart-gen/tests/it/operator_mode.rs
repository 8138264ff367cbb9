//! What operator mode (test, staging, prod) asks of the cluster, read from the real helm render:
//! the custom resources set the security contexts "restricted" needs wherever the operator lets
//! them; the one component that cannot comply lowers the namespace level, and says so; the
//! operator-managed pods that call the API server, and Fluent Bit shipping to Elasticsearch, are
//! let through the default-deny NetworkPolicy and nothing more.

use chart_gen::model::Environment;
use serde_json::{Value, json};

use crate::support::*;

fn restricted_container(ctx: &Value, what: &str) {
    assert_eq!(ctx["runAsNonRoot"], true, "{what}: {ctx}");
    assert_eq!(ctx["allowPrivilegeEscalation"], false, "{what}: {ctx}");
    assert_eq!(ctx["capabilities"]["drop"], json!(["ALL"]), "{what}: {ctx}");
    assert_eq!(
        ctx["seccompProfile"]["type"], "RuntimeDefault",
        "{what}: {ctx}"
    );
}

fn restricted_pod(ctx: &Value, what: &str) {
    assert_eq!(ctx["runAsNonRoot"], true, "{what}: {ctx}");
    assert_eq!(
        ctx["seccompProfile"]["type"], "RuntimeDefault",
        "{what}: {ctx}"
    );
}

fn one<'a>(objs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = objs.iter().filter(|o| o["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind}");
    found[0]
}

#[test]
fn custom_resources_ask_for_restricted_pods_where_the_operator_allows() {
    for env in [Environment::Test, Environment::Staging, Environment::Prod] {
        let objs = render(env, &[]);
        let pool = one(&objs, "KafkaNodePool");
        restricted_pod(
            &pool["spec"]["template"]["pod"]["securityContext"],
            "node pool pod",
        );
        for c in ["kafkaContainer", "initContainer"] {
            restricted_container(&pool["spec"]["template"][c]["securityContext"], c);
        }
        let eo = &one(&objs, "Kafka")["spec"]["entityOperator"]["template"];
        restricted_pod(&eo["pod"]["securityContext"], "entity operator pod");
        for c in ["topicOperatorContainer", "userOperatorContainer"] {
            restricted_container(&eo[c]["securityContext"], c);
        }
        let redis = &one(&objs, "RedisCluster")["spec"];
        restricted_pod(&redis["podSecurityContext"], "redis pod");
        for role in ["redisLeader", "redisFollower"] {
            restricted_container(&redis[role]["securityContext"], role);
        }
        for set in one(&objs, "Elasticsearch")["spec"]["nodeSets"]
            .as_array()
            .unwrap()
        {
            let pod = &set["podTemplate"]["spec"];
            restricted_pod(&pod["securityContext"], "elasticsearch pod");
            assert_eq!(pod["securityContext"]["fsGroup"], 1000, "data volume owner");
            restricted_container(&pod["containers"][0]["securityContext"], "elasticsearch");
        }
        let pool = &one(&objs, "Tenant")["spec"]["pools"][0];
        restricted_pod(&pool["securityContext"], "tenant pod");
        restricted_container(&pool["containerSecurityContext"], "tenant containers");
    }
}

#[test]
fn the_namespace_level_follows_what_is_deployed_and_says_why() {
    let level = |objs: &[Value]| {
        let annotations = &find(objs, "ConfigMap", "datajump-config")["metadata"]["annotations"];
        (
            annotations["datajump.io/pod-security-enforce"]
                .as_str()
                .unwrap()
                .to_string(),
            annotations["datajump.io/pod-security-forced-by"]
                .as_str()
                .map(str::to_string),
        )
    };
    assert_eq!(
        level(&render(Environment::Dev, &[])),
        ("restricted".into(), None)
    );
    let (enforce, why) = level(&render(Environment::Prod, &[]));
    assert_eq!(enforce, "baseline");
    assert!(why.unwrap().starts_with("mysql: MySQL Operator"));
    // Without MySQL Operator everything complies: back to restricted.
    let external_mysql = render_with(Environment::Prod, "mysql:\n  mode: external\n");
    assert_eq!(level(&external_mysql), ("restricted".into(), None));
    // A site that asks for less gets it, whatever is deployed.
    let baseline = render_with(Environment::Dev, "global:\n  podSecurity: baseline\n");
    assert_eq!(level(&baseline).0, "baseline");
}

/// The pod labels each operator puts on the pods that call the API server.
#[test]
fn operator_pods_that_call_the_api_server_are_let_out_to_it() {
    let objs = render(Environment::Prod, &[]);
    let egress_to_api = |name: &str| -> Value {
        let np = find(
            &objs,
            "NetworkPolicy",
            &format!("datajump-allow-apiserver-{name}"),
        );
        assert_eq!(np["spec"]["policyTypes"], json!(["Egress"]));
        let ports: Vec<u64> = np["spec"]["egress"][0]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["port"].as_u64())
            .collect();
        assert_eq!(ports, [443, 6443], "{name}: only the API server's ports");
        np["spec"]["podSelector"]["matchLabels"].clone()
    };
    assert_eq!(
        egress_to_api("mysql"),
        json!({"mysql.oracle.com/cluster": "datajump-mysql", "component": "mysqld"})
    );
    assert_eq!(
        egress_to_api("minio"),
        json!({"v1.min.io/tenant": "datajump-minio"})
    );
    assert_eq!(
        egress_to_api("kafka-entity-operator"),
        json!({"strimzi.io/name": "datajump-kafka-entity-operator"})
    );
    assert_eq!(
        egress_to_api("scheduler")["app.kubernetes.io/component"],
        "scheduler"
    );
    // Dev runs no operator: only the scheduler gets out.
    let dev = render(Environment::Dev, &[]);
    let dev_api: Vec<&str> = dev
        .iter()
        .filter(|o| o["kind"] == "NetworkPolicy")
        .filter_map(|o| o["metadata"]["name"].as_str())
        .filter(|n| n.contains("allow-apiserver"))
        .collect();
    assert_eq!(dev_api, ["datajump-allow-apiserver-scheduler"]);
}

#[test]
fn fluent_bit_reaches_elasticsearch_through_the_policy() {
    let objs = render(Environment::Prod, &[]);
    let np = find(&objs, "NetworkPolicy", "datajump-allow-fluent-bit");
    assert_eq!(
        np["spec"]["podSelector"]["matchLabels"],
        json!({"elasticsearch.k8s.elastic.co/cluster-name": "datajump-es"})
    );
    let from = &np["spec"]["ingress"][0]["from"][0];
    assert_eq!(
        from["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "datajump-logging"
    );
    assert_eq!(
        from["podSelector"]["matchLabels"]["app.kubernetes.io/component"],
        "fluent-bit"
    );
    assert_eq!(np["spec"]["ingress"][0]["ports"][0]["port"], 9200);
    // Dev has no Fluent Bit, so no such opening.
    assert!(
        !render(Environment::Dev, &[])
            .iter()
            .any(|o| o["metadata"]["name"] == "datajump-allow-fluent-bit")
    );
}

/// Fluent Bit's DaemonSet, its configuration, and the volume it mounts its Secret from.
fn fluent_bit(objs: &[Value], ns: &str) -> (Value, String, Option<Value>) {
    let name = format!("datajump-fluent-bit-{ns}");
    let ds = find(objs, "DaemonSet", &name).clone();
    let config = find(objs, "ConfigMap", &name)["data"]["fluent-bit.conf"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let volume = ds["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["name"] == "es-output"))
        .cloned();
    (ds, config, volume)
}

#[test]
fn fluent_bit_ships_to_eck_with_tls_as_its_own_write_only_user() {
    let objs = render(Environment::Prod, &[]);
    let (ds, config, volume) = fluent_bit(&objs, "datajump-prod");
    let annotations = &ds["metadata"]["annotations"];
    assert_eq!(
        annotations["datajump.io/es-secret"],
        "datajump-fluent-bit-datajump-prod-es"
    );
    assert_eq!(
        annotations["datajump.io/es-credentials-from"],
        "datajump-prod/datajump-es-log-writer"
    );
    assert_eq!(
        annotations["datajump.io/es-ca-from"],
        "datajump-prod/datajump-es-es-http-certs-public"
    );
    let volume = volume.expect("the Secret is mounted");
    assert_eq!(
        volume["secret"]["secretName"],
        "datajump-fluent-bit-datajump-prod-es"
    );
    for line in [
        "@INCLUDE /fluent-bit/es/es.conf",
        "Host                datajump-es-es-http.datajump-prod.svc",
        "HTTP_User           ${ES_USER}",
        "HTTP_Passwd         ${ES_PASSWORD}",
        "tls                 On",
        "tls.verify          On",
        "tls.ca_file         /fluent-bit/es/ca.crt",
    ] {
        assert!(config.contains(line), "missing {line:?} in:\n{config}");
    }
    // The user comes from ECK's file realm, with the role the chart defines.
    let es = find(&objs, "Elasticsearch", "datajump-es");
    assert_eq!(
        es["spec"]["auth"],
        json!({"fileRealm": [{"secretName": "datajump-es-log-writer"}],
               "roles": [{"secretName": "datajump-es-roles"}]})
    );
    // A changed output rolls the pods (the checksum covers the rendered configuration).
    let other = render_with(
        Environment::Prod,
        "observability:\n  fluentBit:\n    output:\n      logstashPrefix: other-logs\n",
    );
    let checksum =
        |ds: &Value| ds["spec"]["template"]["metadata"]["annotations"]["checksum/config"].clone();
    assert_ne!(
        checksum(&ds),
        checksum(&fluent_bit(&other, "datajump-prod").0)
    );
}

#[test]
fn fluent_bit_follows_the_elasticsearch_mode() {
    // External: its host and port, TLS with the system CAs, credentials from the named Secret.
    let external = render_with(
        Environment::Prod,
        "elasticsearch:\n  mode: external\n  external:\n    host: es.example.com\n    port: 9243\n    credentialsSecret: es-user\n",
    );
    let (ds, config, volume) = fluent_bit(&external, "datajump-prod");
    assert!(
        config.contains("Host                es.example.com\n"),
        "{config}"
    );
    assert!(config.contains("Port                9243\n"), "{config}");
    assert!(
        config.contains("tls.verify          On") && !config.contains("tls.ca_file"),
        "{config}"
    );
    assert!(
        config.contains("@INCLUDE /fluent-bit/es/es.conf"),
        "{config}"
    );
    assert_eq!(
        ds["metadata"]["annotations"]["datajump.io/es-credentials-from"],
        "datajump-prod/es-user"
    );
    assert!(
        ds["metadata"]["annotations"]
            .get("datajump.io/es-ca-from")
            .is_none()
    );
    assert!(volume.is_some());
    assert!(
        !external
            .iter()
            .any(|o| o["metadata"]["name"] == "datajump-es-roles")
    );

    // Embedded (dev with Fluent Bit on) and a host of the user's own: plain HTTP, no Secret.
    for (env, extra, host) in [
        (
            Environment::Dev,
            "observability:\n  fluentBit:\n    enabled: true\n",
            "datajump-elasticsearch.datajump-dev.svc",
        ),
        (
            Environment::Prod,
            "observability:\n  fluentBit:\n    output:\n      host: logs.example.com\n",
            "logs.example.com",
        ),
    ] {
        let objs = render_with(env, extra);
        let (ds, config, volume) = fluent_bit(&objs, &env.default_namespace());
        assert!(
            config.contains(&format!("Host                {host}\n")),
            "{config}"
        );
        assert!(
            !config.contains("tls") && !config.contains("@INCLUDE"),
            "{config}"
        );
        assert!(volume.is_none(), "{env}");
        assert!(
            ds["metadata"]["annotations"]
                .get("datajump.io/es-secret")
                .is_none()
        );
        if env == Environment::Prod {
            let es = find(&objs, "Elasticsearch", "datajump-es");
            assert!(
                es["spec"].get("auth").is_none(),
                "no user for a Fluent Bit that ships elsewhere"
            );
        }
    }
}

/// staging and prod pull from Harbor: every operator resource that pulls images names the pull
/// Secret and pulls from the registry.
#[test]
fn harbor_reaches_every_operator_resource_that_pulls_images() {
    let objs = render(Environment::Prod, &[]);
    let secrets = json!([{"name": "harbor-pull"}]);
    assert_eq!(
        one(&objs, "KafkaNodePool")["spec"]["template"]["pod"]["imagePullSecrets"],
        secrets
    );
    assert_eq!(
        one(&objs, "Kafka")["spec"]["entityOperator"]["template"]["pod"]["imagePullSecrets"],
        secrets
    );
    assert_eq!(
        one(&objs, "RedisCluster")["spec"]["kubernetesConfig"]["imagePullSecrets"],
        secrets
    );
    for set in one(&objs, "Elasticsearch")["spec"]["nodeSets"]
        .as_array()
        .unwrap()
    {
        assert_eq!(set["podTemplate"]["spec"]["imagePullSecrets"], secrets);
    }
    assert_eq!(
        one(&objs, "Tenant")["spec"]["imagePullSecret"],
        json!({"name": "harbor-pull"})
    );
    assert_eq!(
        one(&objs, "InnoDBCluster")["spec"]["imagePullSecrets"],
        secrets
    );
    let registry = "harbor.example.com";
    for (kind, pointer) in [
        ("Kafka", "/spec/kafka/image"),
        ("RedisCluster", "/spec/kubernetesConfig/image"),
        ("Elasticsearch", "/spec/image"),
        ("Tenant", "/spec/image"),
        ("InnoDBCluster", "/spec/imageRepository"),
    ] {
        let image = one(&objs, kind).pointer(pointer).and_then(Value::as_str);
        assert!(
            image.is_some_and(|i| i.starts_with(registry)),
            "{kind}{pointer} = {image:?}"
        );
    }
}

/// MySQL Operator creates no application database or user: a hook Job does, with the root
/// account and the application password as mounted files.
#[test]
fn a_hook_job_creates_the_platform_database_in_operator_mode() {
    let objs = render(Environment::Test, &[]);
    let job = find(&objs, "Job", "datajump-mysql-setup");
    assert_eq!(
        job["metadata"]["annotations"]["helm.sh/hook"],
        "post-install,post-upgrade"
    );
    let pod = &job["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let env = |name: &str| {
        c["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .and_then(|e| e["value"].as_str())
            .map(str::to_string)
    };
    assert_eq!(env("APP_DATABASE").as_deref(), Some("datajump"));
    assert_eq!(env("APP_USER").as_deref(), Some("datajump"));
    assert_eq!(env("MYSQL_HOST").as_deref(), Some("datajump-mysql"));
    let sources = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "credentials")
        .unwrap()["projected"]["sources"]
        .clone();
    assert_eq!(sources[0]["secret"]["name"], "datajump-mysql-root");
    assert_eq!(sources[1]["secret"]["items"][0]["key"], "db-password");
    let scripts = find(&objs, "ConfigMap", "datajump-mysql-setup");
    for file in ["create-database.sh", "backup-lib.sh"] {
        assert!(
            scripts["data"][file].as_str().unwrap().starts_with('#'),
            "{file}"
        );
    }
    // Embedded MySQL creates them itself from MYSQL_DATABASE / MYSQL_USER.
    assert!(
        !render(Environment::Dev, &[])
            .iter()
            .any(|o| o["metadata"]["name"] == "datajump-mysql-setup")
    );
}
