//! `.github/scripts/deploy.sh` with stand-ins for chart-gen, the plugin and helm (small scripts
//! that record their calls and answer as the real ones would): what the script decides without a
//! cluster — a site-values setting that is not a folder, the order of its steps in prod and
//! elsewhere, and the rollback advice for a chart from Harbor and from a local folder. The same
//! script against a real API server is in cluster_deploy.rs.

use std::path::{Path, PathBuf};
use std::process::Command;

use datajump_tests::cluster::workspace_root;

/// The stand-ins, in a temporary folder: every call is appended to `calls.log` as
/// `<tool> <arguments>`. helm reports a deployed release (revision 7, chart 1.3.0) unless
/// `STUB_NO_RELEASE=1`; the plugin's upgrade exits with `STUB_UPGRADE_EXIT` (default 0).
struct Stubs {
    dir: tempfile::TempDir,
}

impl Stubs {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, body: &str| {
            let path = dir.path().join(name);
            std::fs::write(
                &path,
                format!("#!/usr/bin/env bash\necho \"{name} $*\" >> \"$STUB_LOG\"\n{body}"),
            )
            .unwrap();
            Command::new("chmod").arg("+x").arg(&path).status().unwrap();
        };
        write("chart-gen", "exit 0\n");
        write(
            "helm",
            r#"case "$1" in
  status) [ "${STUB_NO_RELEASE:-0}" = 1 ] && exit 1; exit 0 ;;
  history) echo '[{"revision":7,"chart":"datajump-1.3.0","status":"deployed"}]' ;;
esac
"#,
        );
        write(
            "kubectl-datajump",
            r#"case "$1" in
  diff) echo '{"changes":[{"change":"changed","kind":"ConfigMap","name":"datajump-config"}],"immutable":[]}' ;;
  upgrade) exit "${STUB_UPGRADE_EXIT:-0}" ;;
esac
"#,
        );
        Self { dir }
    }

    fn bin(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

struct Run {
    code: Option<i32>,
    output: String,
}

fn deploy(stubs: &Stubs, env: &str, settings: &[(&str, &Path)]) -> Run {
    let mut command = Command::new("bash");
    command
        .current_dir(workspace_root())
        .args([".github/scripts/deploy.sh", env, "1.4.0"])
        .env("STUB_LOG", stubs.dir.path().join("calls.log"))
        .env("CHART_GEN", stubs.bin("chart-gen"))
        .env("KUBECTL_DATAJUMP", stubs.bin("kubectl-datajump"))
        .env("HELM", stubs.bin("helm"))
        .env("HARBOR_HOST", "harbor.example.com")
        .env("HARBOR_PROJECT", "dj")
        .env_remove("DATAJUMP_CHART")
        .env_remove("DATAJUMP_SITE_VALUES")
        .env_remove("DATAJUMP_RELEASE");
    for (k, v) in settings {
        command.env(k, v);
    }
    let out = command.output().expect("run deploy.sh");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "$ deploy.sh {env} 1.4.0 -> {:?}\n{output}",
        out.status.code()
    );
    Run {
        code: out.status.code(),
        output,
    }
}

/// The tool and subcommand of each call: `kubectl-datajump diff`.
fn steps(calls: &[String]) -> Vec<String> {
    calls
        .iter()
        .map(|c| c.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn site_values_that_are_not_a_folder_stop_the_deploy_before_anything_runs() {
    let site = tempfile::tempdir().unwrap();
    let file = site.path().join("values-prod.yaml");
    std::fs::write(&file, "config:\n  logLevel: info\n").unwrap();
    let missing = site.path().join("datajumpp");
    for wrong in [missing.as_path(), file.as_path()] {
        let stubs = Stubs::new();
        let run = deploy(&stubs, "prod", &[("DATAJUMP_SITE_VALUES", wrong)]);
        assert_eq!(run.code, Some(2), "{}", run.output);
        assert!(
            run.output.contains(&format!(
                "DATAJUMP_SITE_VALUES={} is not a folder",
                wrong.display()
            )),
            "{}",
            run.output
        );
        assert_eq!(stubs.calls(), Vec::<String>::new(), "nothing ran");
    }
    // The folder itself is used, with the environment's file in it.
    let stubs = Stubs::new();
    let run = deploy(&stubs, "prod", &[("DATAJUMP_SITE_VALUES", site.path())]);
    assert_eq!(run.code, Some(0), "{}", run.output);
    let validate = format!("chart-gen validate --env prod -f {}", file.display());
    assert_eq!(stubs.calls()[0], validate);
}

#[test]
fn prod_is_previewed_then_backed_up_then_upgraded_other_environments_are_not_backed_up() {
    let stubs = Stubs::new();
    let run = deploy(&stubs, "prod", &[]);
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert_eq!(
        steps(&stubs.calls()),
        [
            "chart-gen validate",
            "helm status",
            "helm history",
            "kubectl-datajump diff",
            "kubectl-datajump backup",
            "kubectl-datajump upgrade",
        ]
    );
    assert!(
        stubs
            .calls()
            .contains(&"kubectl-datajump backup create --env prod --wait".to_string())
    );

    let stubs = Stubs::new();
    let run = deploy(&stubs, "staging", &[]);
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert!(
        !steps(&stubs.calls()).contains(&"kubectl-datajump backup".to_string()),
        "{:?}",
        stubs.calls()
    );
}

#[test]
fn a_failed_upgrade_says_how_to_roll_back_for_a_harbor_chart_and_a_local_folder() {
    // From Harbor: the same reference at the previous version.
    let stubs = Stubs::new();
    let run = deploy(&stubs, "staging", &[("STUB_UPGRADE_EXIT", Path::new("1"))]);
    assert_eq!(run.code, Some(1), "{}", run.output);
    for line in [
        "to roll back to what ran before (revision 7, datajump-1.3.0)",
        "  helm rollback datajump 7 -n datajump-staging --wait",
        "  or: kubectl datajump upgrade --env staging --chart oci://harbor.example.com/dj/datajump --version 1.3.0 --wait",
    ] {
        assert!(run.output.contains(line), "{line}\nin:\n{}", run.output);
    }

    // From a local folder: that folder holds the version that failed, so the advice names the
    // previous version's folder with --chart-dir (the plugin's flag for a local chart), and the
    // site's values as they were.
    let chart = tempfile::tempdir().unwrap();
    std::fs::write(
        chart.path().join("Chart.yaml"),
        "apiVersion: v2\nname: datajump\nversion: 1.4.0\n",
    )
    .unwrap();
    let site = tempfile::tempdir().unwrap();
    std::fs::write(site.path().join("values-staging.yaml"), "{}\n").unwrap();
    let stubs = Stubs::new();
    let run = deploy(
        &stubs,
        "staging",
        &[
            ("STUB_UPGRADE_EXIT", Path::new("1")),
            ("DATAJUMP_CHART", chart.path()),
            ("DATAJUMP_SITE_VALUES", site.path()),
            ("DATAJUMP_RELEASE", Path::new("dj")),
        ],
    );
    assert_eq!(run.code, Some(1), "{}", run.output);
    assert!(
        stubs.calls().iter().any(|c| c.starts_with(&format!(
            "kubectl-datajump upgrade --env staging --chart-dir {}",
            chart.path().display()
        ))),
        "{:?}",
        stubs.calls()
    );
    for line in [
        "  helm rollback dj 7 -n datajump-staging --wait",
        "  or: kubectl datajump upgrade --env staging --chart-dir <chart 1.3.0's folder, e.g. charts/datajump at tag v1.3.0> --release dj -f <values-staging.yaml as it was for 1.3.0> --wait",
    ] {
        assert!(run.output.contains(line), "{line}\nin:\n{}", run.output);
    }
    assert!(
        !run.output.contains("--chart /") && !run.output.contains("--chart-dir /"),
        "the failed version's folder is no rollback target:\n{}",
        run.output
    );
}
