//! The real `helm` binary: finding it, building its command lines (pure, so tests compare them
//! exactly), and running them. Values are passed to helm in the same order we validated them.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::error::InputError;
use crate::kube::Target;

/// How to reach helm and the cluster it should talk to.
#[derive(Debug, Clone)]
pub struct Helm {
    pub bin: PathBuf,
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    /// Say on stderr which helm command runs (`-v`).
    pub verbose: bool,
}

/// Where the chart comes from: a local directory, or a chart in a registry that is pulled first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChartSource {
    Dir(PathBuf),
    Registry { reference: String, version: String },
}

impl Helm {
    /// Finds helm as chart-gen does (`chart_gen::helm::Helm::locate`): `explicit` (`--helm` /
    /// `DATAJUMP_HELM`) if given (it must exist), else the pinned `.tools/bin/helm` of the
    /// checkout the current directory is in (run from a checkout after `bash .ci/build`), else
    /// `helm` on PATH. Helm talks to `target`'s cluster.
    pub fn locate(
        explicit: Option<&Path>,
        target: &Target,
        verbose: bool,
    ) -> Result<Self, InputError> {
        let checkout = std::env::current_dir()
            .ok()
            .and_then(|cwd| chart_gen::helm::checkout_root(&cwd));
        let located = chart_gen::helm::Helm::locate(explicit, checkout.as_deref())
            .map_err(|e| InputError::new(e.to_string()))?;
        Ok(Self {
            bin: located.program().to_path_buf(),
            kubeconfig: target.kubeconfig.clone(),
            context: target.context.clone(),
            verbose,
        })
    }

    /// `--kubeconfig`/`--kube-context` passed through so helm talks to the same cluster we do.
    fn cluster_flags(&self, args: &mut Vec<OsString>) {
        if let Some(k) = &self.kubeconfig {
            args.extend(["--kubeconfig".into(), k.into()]);
        }
        if let Some(c) = &self.context {
            args.extend(["--kube-context".into(), c.into()]);
        }
    }

    /// `helm upgrade --install`; for a dry run `helm install --dry-run=client`, because `upgrade`
    /// reads the release history from the cluster even in client mode, while a client-side
    /// install renders everything without one (Helm 4).
    pub fn upgrade_install_args(&self, r: &Release) -> Vec<OsString> {
        let mut args: Vec<OsString> = if r.dry_run {
            vec!["install".into(), r.name.clone().into()]
        } else {
            vec!["upgrade".into(), "--install".into(), r.name.clone().into()]
        };
        args.push(r.chart_dir.as_os_str().into());
        args.extend(["--namespace".into(), r.namespace.clone().into()]);
        r.values_flags(&mut args);
        args.extend([
            "--timeout".into(),
            format_duration_for_helm(r.timeout).into(),
        ]);
        if r.dry_run {
            args.push("--dry-run=client".into());
        } else {
            self.cluster_flags(&mut args);
        }
        args
    }

    /// `helm template` with the same values, for images and diff (no cluster needed).
    pub fn template_args(&self, r: &Release) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["template".into(), r.name.clone().into()];
        args.push(r.chart_dir.as_os_str().into());
        args.extend(["--namespace".into(), r.namespace.clone().into()]);
        r.values_flags(&mut args);
        args
    }

    /// `helm template --dry-run=server` against the cluster: what an upgrade would apply now.
    /// Unlike a client-side render, the chart's `lookup` calls see the live objects, so the
    /// credentials the chart keeps across upgrades render as they are, not as new random ones.
    pub fn template_live_args(&self, r: &Release) -> Vec<OsString> {
        let mut args = self.template_args(r);
        args.push("--dry-run=server".into());
        self.cluster_flags(&mut args);
        args
    }

    /// `helm WORDS… RELEASE --namespace NS [--output json] [EXTRA…]` with the cluster flags:
    /// the read-only commands about one release.
    fn release_query(
        &self,
        words: &[&str],
        release: &str,
        namespace: &str,
        json: bool,
        extra: &[&str],
    ) -> Vec<OsString> {
        let mut args: Vec<OsString> = words.iter().map(OsString::from).collect();
        args.extend([release.into(), "--namespace".into(), namespace.into()]);
        if json {
            args.extend(["--output".into(), "json".into()]);
        }
        args.extend(extra.iter().map(OsString::from));
        self.cluster_flags(&mut args);
        args
    }

    /// `helm get manifest`: what the deployed release consists of now.
    pub fn get_manifest_args(&self, release: &str, namespace: &str) -> Vec<OsString> {
        self.release_query(&["get", "manifest"], release, namespace, false, &[])
    }

    /// `helm get metadata -o json`: revision, chart and app version and state of the release.
    /// (`helm status -o json` carries the chart only on Helm 3; this works on 3.13+ and 4.)
    pub fn metadata_args(&self, release: &str, namespace: &str) -> Vec<OsString> {
        self.release_query(&["get", "metadata"], release, namespace, true, &[])
    }

    /// `helm get values -o json` of the deployed revision: the values given at install
    /// (`all`: merged with the chart's defaults, as the templates saw them).
    pub fn get_values_args(&self, release: &str, namespace: &str, all: bool) -> Vec<OsString> {
        let extra: &[&str] = if all { &["--all"] } else { &[] };
        self.release_query(&["get", "values"], release, namespace, true, extra)
    }

    /// `helm history -o json`: every revision kept, with its state and description.
    pub fn history_args(&self, release: &str, namespace: &str) -> Vec<OsString> {
        self.release_query(&["history"], release, namespace, true, &[])
    }

    /// `helm version --template {{.Version}}`: helm's own version, no cluster involved.
    pub fn version_args(&self) -> Vec<OsString> {
        vec!["version".into(), "--template".into(), "{{.Version}}".into()]
    }

    /// `helm uninstall`, waiting for the deletions.
    pub fn uninstall_args(
        &self,
        release: &str,
        namespace: &str,
        timeout: Duration,
    ) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "uninstall".into(),
            release.into(),
            "--namespace".into(),
            namespace.into(),
            "--wait".into(),
            "--timeout".into(),
            format_duration_for_helm(timeout).into(),
        ];
        self.cluster_flags(&mut args);
        args
    }

    /// `helm pull` of an OCI chart, unpacked into `dest`.
    pub fn pull_args(&self, reference: &str, version: &str, dest: &Path) -> Vec<OsString> {
        vec![
            "pull".into(),
            reference.into(),
            "--version".into(),
            version.into(),
            "--untar".into(),
            "--untardir".into(),
            dest.as_os_str().into(),
        ]
    }

    /// Runs helm and returns its stdout; on failure the error carries helm's stderr.
    pub async fn run(&self, args: &[OsString]) -> anyhow::Result<String> {
        if self.verbose {
            // kubectl's `-v` shows the requests it makes the same way.
            eprintln!(
                "debug: running {} {}",
                self.bin.display(),
                display_args(args)
            );
        }
        let out = tokio::process::Command::new(&self.bin)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .with_context(|| {
                format!(
                    "could not start {}: {}",
                    self.bin.display(),
                    chart_gen::helm::INSTALL_HINT
                )
            })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            bail!(
                "`helm {}` failed ({}): {}",
                display_args(args),
                out.status,
                stderr.trim()
            );
        }
        String::from_utf8(out.stdout).context("helm printed non-UTF-8 output")
    }

    /// Makes a local chart directory out of the chart's source (pulling an OCI chart first).
    /// The returned guard keeps a pulled chart's temp directory alive.
    pub async fn resolve_chart(
        &self,
        chart: &ChartSource,
    ) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
        let (reference, version) = match chart {
            ChartSource::Registry { reference, version } => (reference, version),
            ChartSource::Dir(dir) => {
                if !dir.join("Chart.yaml").is_file() {
                    return Err(InputError::new(format!(
                        "--chart-dir {}: no Chart.yaml there (pass the chart directory, e.g. charts/datajump, or --chart oci://... --version V)",
                        dir.display()
                    ))
                    .into());
                }
                return Ok((dir.clone(), None));
            }
        };
        let tmp = tempfile::tempdir().context("creating a temp dir for the pulled chart")?;
        self.run(&self.pull_args(reference, version, tmp.path()))
            .await?;
        let name = reference.rsplit('/').next().unwrap_or("datajump");
        Ok((tmp.path().join(name), Some(tmp)))
    }
}

/// Everything that identifies one rendering of the chart.
#[derive(Debug, Clone)]
pub struct Release {
    pub name: String,
    pub namespace: String,
    pub chart_dir: PathBuf,
    /// `values-<env>.yaml` inside the chart.
    pub env_values: PathBuf,
    pub values: Vec<PathBuf>,
    pub set: Vec<String>,
    pub set_string: Vec<String>,
    pub timeout: Duration,
    pub dry_run: bool,
}

impl Release {
    /// Values in precedence order: env file, user files, --set, --set-string (chart defaults are
    /// helm's own first layer).
    fn values_flags(&self, args: &mut Vec<OsString>) {
        args.extend(["--values".into(), self.env_values.as_os_str().into()]);
        for f in &self.values {
            args.extend(["--values".into(), f.as_os_str().into()]);
        }
        for s in &self.set {
            args.extend(["--set".into(), s.into()]);
        }
        for s in &self.set_string {
            args.extend(["--set-string".into(), s.into()]);
        }
    }
}

/// Shell-like rendering of a command line for logs and errors.
pub fn display_args(args: &[OsString]) -> String {
    args.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Formats a duration the way helm's `--timeout` accepts it (`600s`).
fn format_duration_for_helm(d: Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn helm() -> Helm {
        Helm {
            bin: "helm".into(),
            kubeconfig: Some("/k/config".into()),
            context: Some("prod-ctx".into()),
            verbose: false,
        }
    }

    fn release(dry_run: bool) -> Release {
        Release {
            name: "datajump".into(),
            namespace: "datajump-prod".into(),
            chart_dir: "charts/datajump".into(),
            env_values: "charts/datajump/values-prod.yaml".into(),
            values: vec!["site.yaml".into()],
            set: vec!["web.replicas=3".into()],
            set_string: vec!["image.tag=1.10".into()],
            timeout: Duration::from_secs(600),
            dry_run,
        }
    }

    #[test]
    fn timeouts_are_whole_seconds() {
        assert_eq!(format_duration_for_helm(Duration::from_secs(600)), "600s");
    }

    #[test]
    fn upgrade_install_command_line_is_exact() {
        assert_eq!(
            display_args(&helm().upgrade_install_args(&release(false))),
            "upgrade --install datajump charts/datajump --namespace datajump-prod \
             --values charts/datajump/values-prod.yaml --values site.yaml --set web.replicas=3 \
             --set-string image.tag=1.10 --timeout 600s --kubeconfig /k/config --kube-context prod-ctx"
        );
        assert_eq!(
            display_args(&helm().upgrade_install_args(&release(true))),
            "install datajump charts/datajump --namespace datajump-prod \
             --values charts/datajump/values-prod.yaml --values site.yaml --set web.replicas=3 \
             --set-string image.tag=1.10 --timeout 600s --dry-run=client"
        );
    }

    #[test]
    fn read_commands_pass_the_cluster_flags() {
        assert_eq!(
            display_args(&helm().get_manifest_args("datajump", "datajump-dev")),
            "get manifest datajump --namespace datajump-dev --kubeconfig /k/config --kube-context prod-ctx"
        );
        assert_eq!(
            display_args(&helm().metadata_args("datajump", "datajump-dev")),
            "get metadata datajump --namespace datajump-dev --output json --kubeconfig /k/config --kube-context prod-ctx"
        );
        assert_eq!(
            display_args(&helm().uninstall_args("datajump", "ns", Duration::from_secs(300))),
            "uninstall datajump --namespace ns --wait --timeout 300s --kubeconfig /k/config --kube-context prod-ctx"
        );
        assert_eq!(
            display_args(&helm().template_args(&release(false))),
            "template datajump charts/datajump --namespace datajump-prod --values charts/datajump/values-prod.yaml \
             --values site.yaml --set web.replicas=3 --set-string image.tag=1.10"
        );
        assert_eq!(
            display_args(&helm().pull_args(
                "oci://harbor.example.com/dj/datajump",
                "1.2.3",
                Path::new("/tmp/x")
            )),
            "pull oci://harbor.example.com/dj/datajump --version 1.2.3 --untar --untardir /tmp/x"
        );
    }

    #[test]
    fn missing_helm_says_how_to_install_it() {
        let explicit = Path::new("/nonexistent/helm");
        let err = Helm::locate(Some(explicit), &Target::default(), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/helm"), "{err}");
        assert!(err.contains("bash .ci/install-tools.sh"), "{err}");
        assert!(err.contains("https://helm.sh/docs/intro/install/"), "{err}");
    }
}
