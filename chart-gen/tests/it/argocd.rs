//! `chart-gen argocd` end to end: the real helm renders every environment (with a site's values),
//! the manifests are checked against Argo CD's CRDs, and bad input writes nothing.

use std::path::Path;

use chart_gen::model::Environment;
use chart_gen::validate::crd::CrdSchemas;
use chart_gen::validate::kubernetes;
use serde_json::Value;

use crate::support::{chart_gen, crd_dir, repo_root};

/// Runs `chart-gen argocd` with the reference CRDs and `extra` flags, writing into `out`.
fn argocd(crds: &Path, out: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["argocd"];
    if !extra.contains(&"--chart-repo") {
        args.extend(["--chart-repo", "harbor.example.com/datajump"]);
    }
    args.extend([
        "--crd-dir",
        crds.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    args.extend_from_slice(extra);
    chart_gen(&args, &repo_root())
}

fn read(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap()
}

#[test]
fn every_environment_gets_a_valid_application_from_its_render() {
    let Some(crds) = crd_dir() else { return };
    let out = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = argocd(
        &crds,
        out.path(),
        &["--cluster", "prod=https://prod.example.com:6443"],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    let schemas = CrdSchemas::load_dir(&crds).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "datajump-dev.yaml",
            "datajump-prod-namespace-datajump-logging.yaml",
            "datajump-prod.yaml",
            "datajump-staging.yaml",
            "datajump-test-namespace-datajump-logging.yaml",
            "datajump-test.yaml",
            "project.yaml",
        ],
        "test and staging ship logs from the in-cluster destination (one namespace file), prod from its own cluster"
    );
    for name in &names {
        let obj = read(&out.path().join(name));
        if obj["kind"] != "Namespace" {
            let errors = schemas.check(&obj).expect("an Argo CD schema");
            assert!(errors.is_empty(), "{name}: {errors:?}");
        }
    }
    let prod = read(&out.path().join("datajump-prod.yaml"));
    assert_eq!(
        prod["spec"]["destination"]["server"],
        "https://prod.example.com:6443"
    );
    assert_eq!(
        prod["spec"]["source"]["targetRevision"],
        env!("CARGO_PKG_VERSION")
    );
    assert!(
        prod["spec"]["syncPolicy"].get("automated").is_none(),
        "prod syncs by hand"
    );
    // Prod autoscales its services: the HPAs own their replicas.
    let ignored = prod["spec"]["ignoreDifferences"].as_array().unwrap();
    assert!(
        ignored.iter().any(|d| d["name"] == "datajump-web"),
        "{ignored:?}"
    );
    let dev = read(&out.path().join("datajump-dev.yaml"));
    assert_eq!(dev["spec"]["syncPolicy"]["automated"]["selfHeal"], true);
    let labels = &dev["spec"]["syncPolicy"]["managedNamespaceMetadata"]["labels"];
    assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");
    assert_eq!(labels["env"], "dev");
}

/// Argo CD refuses to sync a cluster-scoped object whose kind the project does not whitelist:
/// every cluster-scoped kind of every environment's render (CRDs included, as Argo CD renders
/// them) must be in the AppProject, and Namespace for `CreateNamespace=true`. Scopes come from
/// Kubernetes' types and the reference CRDs, independently of the generator.
#[test]
fn the_project_whitelists_every_cluster_scoped_kind_of_every_render() {
    let Some(crds) = crd_dir() else { return };
    let schemas = crate::support::reference_crds().expect("the reference CRDs");
    let out = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = argocd(&crds, out.path(), &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let project = read(&out.path().join("project.yaml"));
    let whitelist: Vec<(String, String)> = project["spec"]["clusterResourceWhitelist"]
        .as_array()
        .expect("clusterResourceWhitelist")
        .iter()
        .map(|e| {
            (
                e["group"].as_str().unwrap().to_string(),
                e["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        whitelist.iter().all(|(g, k)| g != "*" && k != "*"),
        "no wildcards: {whitelist:?}"
    );
    assert!(whitelist.contains(&(String::new(), "Namespace".into())));
    let mut seen = Vec::new();
    for env in Environment::ALL {
        let mut objects = crate::support::render(env, &[]);
        for entry in std::fs::read_dir(repo_root().join("charts/datajump/crds")).unwrap() {
            objects.push(read(&entry.unwrap().path()));
        }
        for obj in &objects {
            let api_version = obj["apiVersion"].as_str().unwrap();
            let kind = obj["kind"].as_str().unwrap();
            let namespaced = kubernetes::is_namespaced(api_version, kind)
                .or_else(|| schemas.is_namespaced(api_version, kind))
                .unwrap_or_else(|| panic!("{env}: no scope known for {api_version} {kind}"));
            if namespaced {
                continue;
            }
            let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
            assert!(
                whitelist.contains(&(group.to_string(), kind.to_string())),
                "{env} renders {kind} {} ({group}), which the AppProject does not whitelist: {whitelist:?}",
                obj["metadata"]["name"]
            );
            seen.push(format!("{env}: {kind}"));
        }
    }
    // The check saw what it is about: Fluent Bit's cluster RBAC outside dev.
    for env in ["test", "staging", "prod"] {
        for kind in [
            "ClusterRole",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
        ] {
            assert!(seen.contains(&format!("{env}: {kind}")), "{seen:?}");
        }
    }
}

#[test]
fn site_values_are_validated_and_referenced_from_git() {
    let Some(crds) = crd_dir() else { return };
    let site = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let site_flags = |dir: &Path| {
        vec![
            "--env".to_string(),
            "prod".into(),
            "--site-dir".into(),
            dir.to_str().unwrap().into(),
            "--site-repo".into(),
            "https://git.example.com/acme/site.git".into(),
            "--site-path".into(),
            "datajump".into(),
        ]
    };
    let flags = site_flags(site.path());
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();

    // A typo in the site's file: reported with file and field, nothing written.
    std::fs::write(
        site.path().join("values-prod.yaml"),
        "web:\n  replicaz: 3\n",
    )
    .unwrap();
    let (code, stdout, stderr) = argocd(&crds, out.path(), &flags);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stdout.contains("values-prod.yaml: /web: unknown field \"replicaz\""),
        "{stdout}"
    );
    assert!(stderr.contains("nothing written"), "{stderr}");
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);

    // Prod's InnoDBCluster forces baseline; with the site's MySQL outside the cluster nothing
    // does, and the namespace label follows the site's values.
    std::fs::write(
        site.path().join("values-prod.yaml"),
        "web:\n  replicas: 4\n",
    )
    .unwrap();
    let (code, stdout, stderr) = argocd(&crds, out.path(), &flags);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let enforce = |app: &Value| {
        app["spec"]["syncPolicy"]["managedNamespaceMetadata"]["labels"]
            ["pod-security.kubernetes.io/enforce"]
            .clone()
    };
    assert_eq!(
        enforce(&read(&out.path().join("datajump-prod.yaml"))),
        "baseline"
    );
    std::fs::write(
        site.path().join("values-prod.yaml"),
        "mysql:\n  mode: external\n",
    )
    .unwrap();
    let (code, stdout, stderr) = argocd(&crds, out.path(), &flags);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let prod = read(&out.path().join("datajump-prod.yaml"));
    assert_eq!(enforce(&prod), "restricted");
    let sources = prod["spec"]["sources"].as_array().unwrap();
    assert_eq!(
        sources[0]["helm"]["valueFiles"],
        serde_json::json!(["values-prod.yaml", "$site/datajump/values-prod.yaml"])
    );
    assert_eq!(
        sources[1]["repoURL"],
        "https://git.example.com/acme/site.git"
    );
    let project = read(&out.path().join("project.yaml"));
    assert_eq!(project["spec"]["sourceRepos"].as_array().unwrap().len(), 2);
}

#[test]
fn bad_flags_exit_2_and_write_nothing() {
    let Some(crds) = crd_dir() else { return };
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("manifests");
    let cases: &[(&[&str], &str)] = &[
        (
            &["--chart-repo", "oci://harbor.example.com/datajump"],
            "without a scheme",
        ),
        (&["--cluster", "qa=https://x"], "unknown environment \"qa\""),
        (&["--cluster", "prod=http://x"], "must start with https://"),
        (&["--site-dir", "/tmp"], "--site-repo"),
    ];
    for (flags, expected) in cases {
        let (code, stdout, stderr) = argocd(&crds, &target, flags);
        assert_eq!(code, 2, "{flags:?}: {stdout}{stderr}");
        assert!(stderr.contains(expected), "{flags:?}: {stderr}");
        assert!(!target.exists(), "{flags:?} wrote something");
    }
}

/// Argo CD syncs by wave, lowest first: the chart's CRDs, then its configuration, then the rest.
#[test]
fn crds_and_configuration_come_first_in_an_argo_cd_sync() {
    let wave = |obj: &Value| obj["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"].clone();
    for name in ["workflows.datajump.io", "workflowruns.datajump.io"] {
        let crd = read(&repo_root().join(format!("charts/datajump/crds/{name}.yaml")));
        assert_eq!(wave(&crd), "-2", "{name}");
    }
    let secrets = "secrets:\n  existingSecret: \"\"\n  values:\n    dbPassword: a\n    dbRootPassword: b\n    redisPassword: c\n    jwtSecret: d\n    minioAccessKey: e\n    minioSecretKey: f\n";
    let objects = crate::support::render_with(chart_gen::model::Environment::Dev, secrets);
    let mut first = 0;
    for obj in &objects {
        match obj["kind"].as_str() {
            Some("ConfigMap" | "Secret")
                if obj["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with("-config") || n.ends_with("-secrets")) =>
            {
                assert_eq!(wave(obj), "-1", "{}", obj["metadata"]["name"]);
                first += 1;
            }
            _ => {}
        }
    }
    assert_eq!(first, 2, "the config ConfigMap and the credentials Secret");
    // Every Secret of every environment, ECK's role definitions included, comes before the
    // workloads and custom resources that read it.
    let mut roles = 0;
    for env in Environment::ALL {
        for obj in crate::support::render(env, &[]) {
            if obj["kind"] == "Secret" {
                assert_eq!(wave(&obj), "-1", "{env}: {}", obj["metadata"]["name"]);
                roles += usize::from(obj["metadata"]["name"] == "datajump-es-roles");
            }
        }
    }
    assert!(
        roles > 0,
        "some environment ships logs to ECK with its roles Secret"
    );
}
