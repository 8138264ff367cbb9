//! Driving the real `helm` binary (Helm 3.18+ or Helm 4): rendering, linting and packaging.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Environment variable naming the helm binary to use.
pub const HELM_ENV: &str = "DATAJUMP_HELM";

/// Why running helm failed.
#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    /// No helm binary was found.
    #[error("helm not found (looked for {tried}); {INSTALL_HINT}")]
    NotFound {
        /// Where we looked.
        tried: String,
    },
    /// The helm binary named explicitly (a flag or `DATAJUMP_HELM`) does not exist.
    #[error("helm binary {program} (from {from}) does not exist; {INSTALL_HINT}")]
    Missing {
        /// The path given.
        program: PathBuf,
        /// Where it was given.
        from: &'static str,
    },
    /// helm could not be started.
    #[error("running {program}: {source}")]
    Spawn {
        /// The helm binary.
        program: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// helm ran and failed.
    #[error("`{command}` failed:\n{stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// What helm printed (findings on stdout, then stderr).
        stderr: String,
    },
}

/// How to get helm, for every message that says it is missing (the plugin's too).
pub const INSTALL_HINT: &str = "install Helm 3.18+ or 4 (in this repository `bash .ci/install-tools.sh` \
     puts it in .tools/bin; otherwise see https://helm.sh/docs/intro/install/), put it on PATH \
     or point --helm / DATAJUMP_HELM at it";

/// A located helm binary.
#[derive(Debug, Clone)]
pub struct Helm {
    program: PathBuf,
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// The checkout `dir` is in: the nearest of it and its parents holding `chart-gen/Cargo.toml`.
/// chart-gen runs from there, and so does the plugin when a developer runs it after
/// `bash .ci/build`; both then find the pinned helm in its `.tools/bin`.
pub fn checkout_root(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|d| d.join("chart-gen/Cargo.toml").is_file())
        .map(Path::to_path_buf)
}

impl Helm {
    /// Finds helm — the one search order of chart-gen, the plugin and the tests: an explicit
    /// path (a `--helm` flag), else `$DATAJUMP_HELM` (either must exist: a typo is an error, not
    /// a silent fallback), else `.tools/bin/helm` under `repo_root` (the pinned copy in a
    /// checkout), else `helm` on PATH.
    pub fn locate(explicit: Option<&Path>, repo_root: Option<&Path>) -> Result<Self, HelmError> {
        let named = explicit.map(|p| (p.to_path_buf(), "--helm")).or_else(|| {
            std::env::var_os(HELM_ENV)
                .filter(|v| !v.is_empty())
                .map(|p| (PathBuf::from(p), HELM_ENV))
        });
        if let Some((program, from)) = named {
            return if program.is_file() {
                Ok(Self { program })
            } else {
                Err(HelmError::Missing { program, from })
            };
        }
        let mut tried = Vec::new();
        if let Some(root) = repo_root {
            let pinned = root.join(".tools/bin/helm");
            if pinned.is_file() {
                return Ok(Self { program: pinned });
            }
            tried.push(pinned.display().to_string());
        }
        if let Some(p) = on_path("helm") {
            return Ok(Self { program: p });
        }
        tried.push("helm on PATH".into());
        Err(HelmError::NotFound {
            tried: tried.join(", "),
        })
    }

    /// The binary, for tests that drive helm with flags this module has no request type for.
    pub fn program(&self) -> &Path {
        &self.program
    }

    fn run(&self, args: &[OsString]) -> Result<String, HelmError> {
        let out = Command::new(&self.program)
            .args(args)
            .output()
            .map_err(|source| HelmError::Spawn {
                program: self.program.clone(),
                source,
            })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            let command = std::iter::once(self.program.display().to_string())
                .chain(args.iter().map(|a| a.to_string_lossy().into_owned()))
                .collect::<Vec<_>>()
                .join(" ");
            // helm lint reports its findings on stdout and only a summary on stderr.
            let output = format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout).trim_end(),
                String::from_utf8_lossy(&out.stderr).trim_end()
            );
            Err(HelmError::Failed {
                command,
                stderr: output.trim().to_string(),
            })
        }
    }

    /// `helm template` of `chart` with the given values files, CRDs included.
    pub fn template(&self, req: &TemplateRequest<'_>) -> Result<String, HelmError> {
        self.run(&req.args())
    }

    /// `helm lint --strict` of `chart` with the given values files.
    pub fn lint(&self, chart: &Path, values: &[PathBuf]) -> Result<String, HelmError> {
        let mut args: Vec<OsString> = vec!["lint".into(), "--strict".into(), chart.into()];
        for v in values {
            args.push("-f".into());
            args.push(v.into());
        }
        self.run(&args)
    }

    /// `helm package` of `chart` into `destination`; returns the archive's path.
    pub fn package(
        &self,
        chart: &Path,
        destination: &Path,
        version: Option<&str>,
    ) -> Result<PathBuf, HelmError> {
        let mut args: Vec<OsString> = vec![
            "package".into(),
            chart.into(),
            "--destination".into(),
            destination.into(),
        ];
        if let Some(v) = version {
            args.push("--version".into());
            args.push(v.into());
        }
        let out = self.run(&args)?;
        // "Successfully packaged chart and saved it to: <path>"
        let path = out
            .lines()
            .find_map(|l| {
                l.split_once("saved it to: ")
                    .map(|(_, p)| p.trim().to_string())
            })
            .unwrap_or_default();
        Ok(PathBuf::from(path))
    }
}

/// The arguments of one `helm template` call.
#[derive(Debug, Clone)]
pub struct TemplateRequest<'a> {
    /// Release name.
    pub release: &'a str,
    /// Release namespace.
    pub namespace: &'a str,
    /// Chart directory or reference.
    pub chart: &'a Path,
    /// Values files, in order.
    pub values: Vec<PathBuf>,
    /// `--set` arguments.
    pub set: Vec<String>,
}

impl TemplateRequest<'_> {
    /// The argument list (without the program).
    pub fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "template".into(),
            self.release.into(),
            self.chart.into(),
            "--namespace".into(),
            self.namespace.into(),
            "--include-crds".into(),
        ];
        for v in &self.values {
            args.push("-f".into());
            args.push(v.into());
        }
        for s in &self.set {
            args.push("--set".into());
            args.push(s.into());
        }
        args
    }
}
