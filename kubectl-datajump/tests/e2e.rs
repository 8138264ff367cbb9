//! End to end on a real cluster (kind in CI): install dev, run a workflow, back up, restore,
//! status. Runs only when DATAJUMP_E2E_KUBECONFIG points at a kubeconfig; prints "skipped"
//! otherwise. The cluster needs the images the chart references (see tests/e2e/load-images.sh).

use std::path::Path;
use std::process::Command;

fn plugin(kubeconfig: &str, args: &[&str]) -> (bool, String, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-datajump"))
        .current_dir(&root)
        .args(args)
        .args(["--kubeconfig", kubeconfig])
        .output()
        .expect("run kubectl-datajump");
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    eprintln!("$ kubectl datajump {}\n{o}{e}", args.join(" "));
    (out.status.success(), o, e)
}

#[test]
fn install_workflow_backup_restore_on_a_real_cluster() {
    let Ok(kubeconfig) = std::env::var("DATAJUMP_E2E_KUBECONFIG") else {
        println!("skipped: DATAJUMP_E2E_KUBECONFIG is not set (no cluster to test against)");
        return;
    };
    let k = kubeconfig.as_str();
    assert!(
        plugin(
            k,
            &[
                "install",
                "--env",
                "dev",
                "--chart-dir",
                "charts/datajump",
                "--wait",
                "--timeout",
                "15m"
            ]
        )
        .0
    );
    let (ok, status, _) = plugin(k, &["status", "--env", "dev", "-o", "json"]);
    assert!(ok);
    let status: serde_json::Value = serde_json::from_str(&status).expect("status JSON");
    assert!(
        status["components"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
    );
    assert!(
        plugin(
            k,
            &[
                "workflow",
                "submit",
                "-f",
                "tests/e2e/sample-workflow.yaml",
                "--run-now",
                "--watch"
            ]
        )
        .0
    );
    let (ok, name, _) = plugin(k, &["backup", "create", "--env", "dev", "--wait"]);
    assert!(ok && !name.trim().is_empty());
    let (ok, list, _) = plugin(k, &["backup", "list", "--env", "dev", "-o", "json"]);
    assert!(ok && list.contains(name.trim()));
    assert!(plugin(k, &["restore", "--env", "dev", name.trim(), "--yes"]).0);
    let (ok, wfs, _) = plugin(k, &["workflow", "list", "-n", "datajump-dev", "-o", "json"]);
    assert!(
        ok && wfs.contains("\"suspended\": false"),
        "restore resumed the workflows"
    );
}
