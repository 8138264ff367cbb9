//! Failures at the cluster edge on a real API server (the local control plane), for three verbs
//! that reach the cluster in different ways — `status`, `install` and `workflow list` — so that
//! one wording for every verb is shown, not assumed: a port nothing listens on, a CA that did not
//! sign the server's certificate, a ServiceAccount token without rights (403), the token of a
//! deleted ServiceAccount (401), a missing kubeconfig and a context the kubeconfig does not have.
//! Each case checks the message (server, context, user entry, CA source, what was denied, the
//! command to check) and the exit code, as text and as the JSON error of `-o json`.
//!
//! Also the API server's side of unknown fields in Workflows and WorkflowRuns: server-side apply
//! refuses them; a create or merge patch prunes them silently unless it asks for strict field
//! validation (the plugin's patches do).

use std::path::{Path, PathBuf};

use datajump_api::{Workflow, WorkflowRun};
use datajump_tests::cluster::{self, Cluster};
use datajump_tests::plugin::{Run, plugin_command, run_logged};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use serde_json::{Value, json};

/// The three verbs, each in the namespace `ns` (install also renders the chart first).
fn verbs(ns: &str) -> [Vec<String>; 3] {
    let v = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    [
        v(&["status", "--env", "dev", "-n", ns]),
        v(&["install", "--env", "dev", "-n", ns, "--timeout", "1m"]),
        v(&["workflow", "list", "-n", ns]),
    ]
}

/// `kubectl datajump ARGS --kubeconfig KUBECONFIG [EXTRA]`.
fn with_kubeconfig(args: &[String], kubeconfig: &Path, extra: &[&str]) -> Run {
    let mut cmd = plugin_command();
    cmd.args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(extra);
    let shown: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .chain(extra.iter().copied())
        .collect();
    run_logged(cmd, &shown, None)
}

/// The JSON error `-o json` puts on stderr.
fn json_error(run: &Run) -> Value {
    serde_json::from_str(&run.stderr)
        .unwrap_or_else(|e| panic!("stderr is not a JSON error ({e}):\n{}", run.stderr))
}

/// The admin kubeconfig with `edit` applied to its text, written beside it as `name`.
fn variant(cluster: &Cluster, name: &str, edit: impl Fn(&str) -> String) -> PathBuf {
    let text = std::fs::read_to_string(&cluster.kubeconfig).expect("the cluster's kubeconfig");
    let path = cluster.dir.join(name);
    std::fs::write(&path, edit(&text)).expect("write a kubeconfig variant");
    path
}

fn server_of(cluster: &Cluster) -> String {
    let text = std::fs::read_to_string(&cluster.kubeconfig).unwrap();
    let start = text.find("https://").expect("a server URL");
    text[start..]
        .split(['"', ',', ' ', '}'])
        .next()
        .unwrap()
        .to_string()
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().unwrap().port()
}

#[test]
fn an_unreachable_server_is_named_with_its_context_for_every_verb() {
    let Some(cluster) = cluster::shared() else {
        return;
    };
    let server = server_of(cluster);
    let closed = format!("https://127.0.0.1:{}", free_port());
    let kubeconfig = variant(cluster, "kubeconfig-closed-port", |t| {
        t.replace(&server, &closed)
    });
    for args in verbs("edge-unreachable") {
        let run = with_kubeconfig(&args, &kubeconfig, &[]);
        assert_eq!(run.code, Some(1), "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.starts_with(&format!(
                "error: cannot reach the API server {closed} of context \"local\" (kubeconfig {})",
                kubeconfig.display()
            )),
            "{args:?}: {}",
            run.stderr
        );
        assert!(run.stderr.contains("Connection refused"), "{}", run.stderr);
        assert!(
            run.stderr.contains("kubectl cluster-info --context local"),
            "{}",
            run.stderr
        );
        let json = json_error(&with_kubeconfig(&args, &kubeconfig, &["-o", "json"]));
        assert_eq!(json["reason"], "Unreachable", "{json}");
        assert_eq!(json["exitCode"], 1);
        assert_eq!(json["cluster"]["server"], closed);
        assert_eq!(json["cluster"]["context"], "local");
    }
}

#[test]
fn a_ca_that_did_not_sign_the_server_is_a_tls_failure_naming_the_ca_source() {
    let Some(cluster) = cluster::shared() else {
        return;
    };
    let other_ca = other_ca(cluster);
    let kubeconfig = variant(cluster, "kubeconfig-other-ca", |t| {
        let start = t.find("certificate-authority-data: ").expect("inline CA") + 28;
        let end = start + t[start..].find(['}', '\n']).unwrap();
        format!("{}{other_ca}{}", &t[..start], &t[end..])
    });
    let server = server_of(cluster);
    for args in verbs("edge-tls") {
        let run = with_kubeconfig(&args, &kubeconfig, &[]);
        assert_eq!(run.code, Some(1), "{args:?}: {}", run.stderr);
        for part in [
            format!("TLS with the API server {server} of context \"local\""),
            "not trusted by the CA in certificate-authority-data of cluster \"local\"".into(),
            "UnknownIssuer".into(),
        ] {
            assert!(
                run.stderr.contains(&part),
                "{part:?} in {args:?}: {}",
                run.stderr
            );
        }
        let json = json_error(&with_kubeconfig(&args, &kubeconfig, &["-o", "json"]));
        assert_eq!(json["reason"], "TlsFailure", "{json}");
        assert_eq!(json["exitCode"], 1);
    }
}

/// A self-signed CA of its own (base64 PEM), which signed nothing the API server presents.
fn other_ca(cluster: &Cluster) -> String {
    let dir = cluster.dir.join("other-ca");
    std::fs::create_dir_all(&dir).unwrap();
    let out = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=another-cluster-ca", "-keyout"])
        .arg(dir.join("ca.key"))
        .arg("-out")
        .arg(dir.join("ca.crt"))
        .output()
        .expect("run openssl (the control plane's certificates need it too)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(dir.join("ca.crt")).unwrap())
}

#[test]
fn a_token_without_rights_names_what_was_denied_and_the_rbac_it_needs() {
    let Some(cluster) = cluster::shared() else {
        return;
    };
    let ns = "edge-forbidden";
    cluster.namespace(ns, &[]);
    cluster.apply_yaml(&format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: nobody\n  namespace: {ns}\n"
    ));
    let kubeconfig = cluster.service_account_kubeconfig(ns, "nobody");
    let user = format!("system:serviceaccount:{ns}:nobody");
    for args in verbs(ns) {
        let run = with_kubeconfig(&args, &kubeconfig, &[]);
        assert_eq!(run.code, Some(1), "{args:?}: {}", run.stderr);
        assert!(
            run.stderr
                .starts_with(&format!("error: \"{user}\" may not ")),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains("403 Forbidden by RBAC"),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains(&format!("--context local --as {user}")),
            "the can-i check: {}",
            run.stderr
        );
    }
    // The workflow verb's denial, exactly.
    let list = with_kubeconfig(&verbs(ns)[2], &kubeconfig, &[]);
    assert!(
        list.stderr.contains(&format!(
            "\"{user}\" may not list workflows.datajump.io in namespace \"{ns}\""
        )),
        "{}",
        list.stderr
    );
    assert!(
        list.stderr.contains(&format!(
            "it needs a Role in namespace {ns} and a RoleBinding granting apiGroups [\"datajump.io\"], \
             resources [\"workflows\"], verbs [\"list\"] to that user; check with: kubectl auth can-i \
             list workflows.datajump.io -n {ns} --context local --as {user}"
        )),
        "{}",
        list.stderr
    );
    // And what `kubectl auth can-i` says agrees: the message names a real missing right.
    let can_i = cluster.kubectl(&[
        "auth",
        "can-i",
        "list",
        "workflows.datajump.io",
        "-n",
        ns,
        "--as",
        &user,
    ]);
    assert_eq!(String::from_utf8_lossy(&can_i.stdout).trim(), "no");
    let json = json_error(&with_kubeconfig(
        &verbs(ns)[2],
        &kubeconfig,
        &["-o", "json"],
    ));
    assert_eq!(json["reason"], "Forbidden");
    assert_eq!(
        json["denied"],
        json!({"user": user, "verb": "list", "resource": "workflows", "group": "datajump.io", "namespace": ns})
    );
}

#[test]
fn the_token_of_a_deleted_service_account_is_refused_naming_the_user_entry() {
    let Some(cluster) = cluster::shared() else {
        return;
    };
    let ns = "edge-unauthorized";
    cluster.namespace(ns, &[]);
    cluster.apply_yaml(&format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: gone\n  namespace: {ns}\n"
    ));
    let kubeconfig = cluster.service_account_kubeconfig(ns, "gone");
    cluster
        .kubectl_ok(&["delete", "serviceaccount", "gone", "-n", ns, "--wait"])
        .expect("delete the service account");
    for args in verbs(ns) {
        let run = with_kubeconfig(&args, &kubeconfig, &[]);
        assert_eq!(run.code, Some(1), "{args:?}: {}", run.stderr);
        for part in [
            "refused the credentials of user entry \"local\" (a bearer token) of context \"local\"",
            "they are expired or invalid (401 Unauthorized)",
            "kubectl auth whoami --context local",
        ] {
            assert!(
                run.stderr.contains(part),
                "{part:?} in {args:?}: {}",
                run.stderr
            );
        }
        let json = json_error(&with_kubeconfig(&args, &kubeconfig, &["-o", "json"]));
        assert_eq!(json["reason"], "Unauthorized", "{json}");
        assert_eq!(json["cluster"]["user"], "local");
    }
}

#[test]
fn a_missing_kubeconfig_or_context_is_bad_input_for_every_verb() {
    let Some(cluster) = cluster::shared() else {
        return;
    };
    let missing = cluster.dir.join("no-such-kubeconfig");
    for args in verbs("edge-input") {
        let run = with_kubeconfig(&args, &missing, &[]);
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
        let path = missing.display().to_string();
        assert_eq!(
            run.stderr.matches(&path).count(),
            1,
            "the path once: {}",
            run.stderr
        );
        assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
        let json = json_error(&with_kubeconfig(&args, &missing, &["-o", "json"]));
        assert_eq!(json["reason"], "KubeconfigNotFound");
        assert_eq!(json["exitCode"], 2);

        let run = with_kubeconfig(&args, &cluster.kubeconfig, &["--context", "prod"]);
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains(&format!(
                "context \"prod\" (from --context) does not exist in kubeconfig {}; its contexts: local",
                cluster.kubeconfig.display()
            )),
            "{}",
            run.stderr
        );
    }
}

/// Unknown fields at the API server, through the CRDs' structural schemas: server-side apply
/// refuses them; a create or a merge patch prunes them silently unless it asks for strict field
/// validation, as the plugin's patches do.
#[tokio::test]
async fn the_api_server_refuses_unknown_workflow_and_run_fields_on_apply_and_strict_patches() {
    let Some(cluster) = cluster::shared() else {
        return;
    };
    let ns = "edge-fields";
    cluster.namespace(ns, &[]);
    let client = cluster.client().await;
    let strict = PatchParams::apply("datajump-tests")
        .force()
        .validation_strict();
    let workflows: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &ApiResource::erase::<Workflow>(&()));
    let typo = json!({
        "apiVersion": "datajump.io/v1alpha1", "kind": "Workflow",
        "metadata": {"name": "typo", "namespace": ns},
        "spec": {"schedul": "0 2 * * *", "tasks": [{"name": "a", "image": "busybox", "comand": ["true"]}]},
    });
    // Server-side apply (how the plugin submits) converts the document to the schema's type, so
    // an unknown field is refused outright, the first one named.
    let err = workflows
        .patch("typo", &strict, &Patch::Apply(&typo))
        .await
        .expect_err("server-side apply refuses unknown fields");
    let message = err.to_string();
    assert!(
        message.contains(".spec.schedul: field not declared in schema"),
        "{message}"
    );
    // A create without strict validation stores the Workflow with both fields pruned: the typo
    // silently becomes a workflow without a schedule running the image's default command.
    let created = workflows
        .create(
            &PostParams::default(),
            &serde_json::from_value(typo.clone()).unwrap(),
        )
        .await
        .expect("a create without strict validation succeeds");
    assert!(created.data["spec"].get("schedul").is_none());
    assert!(created.data["spec"]["tasks"][0].get("comand").is_none());
    // A merge patch (the plugin's suspend and resume) prunes too, unless it is strict, as the
    // plugin's are.
    workflows
        .patch(
            "typo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspnd": true}})),
        )
        .await
        .expect("a lax merge patch succeeds, dropping the field");
    let merge = workflows
        .patch(
            "typo",
            &PatchParams::default().validation_strict(),
            &Patch::Merge(json!({"spec": {"suspnd": true}})),
        )
        .await
        .expect_err("strict validation refuses unknown fields");
    assert!(merge.to_string().contains("spec.suspnd"), "{merge}");

    let runs: Api<DynamicObject> =
        Api::namespaced_with(client, ns, &ApiResource::erase::<WorkflowRun>(&()));
    let run = json!({
        "apiVersion": "datajump.io/v1alpha1", "kind": "WorkflowRun",
        "metadata": {"name": "typo-1", "namespace": ns},
        "spec": {"workflowName": "typo", "paramters": {"day": "2026-01-01"}},
    });
    let err = runs
        .patch("typo-1", &strict, &Patch::Apply(&run))
        .await
        .expect_err("server-side apply refuses unknown fields");
    assert!(err.to_string().contains(".spec.paramters"), "{err}");
}
