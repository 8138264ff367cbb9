//! Runs the chart's backup scripts (`chart-gen/templates/files/{backup,restore,list-backups}.sh`,
//! which the generator copies verbatim into `charts/datajump/files/`) the way the CronJob and Job
//! do: `/bin/sh` with only the chart's environment variables, and reads what they write.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::mariadb::{Credentials, MariaDb};

/// Errors running a script or reading its output.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("script {0} not found (expected in chart-gen/templates/files/)")]
    Missing(PathBuf),
    #[error("running {script}: {source}")]
    Spawn {
        script: String,
        #[source]
        source: std::io::Error,
    },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} is not the expected JSON: {source}\n{text}")]
    Json {
        what: String,
        text: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The three scripts the chart mounts at /scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    Backup,
    Restore,
    ListBackups,
}

impl Script {
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Backup => "backup.sh",
            Self::Restore => "restore.sh",
            Self::ListBackups => "list-backups.sh",
        }
    }
}

/// What a script run produced.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n--- stdout\n{}--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// The scripts' directory plus the environment the chart would set.
#[derive(Debug, Clone)]
pub struct Scripts {
    dir: PathBuf,
    env: BTreeMap<String, String>,
}

impl Scripts {
    /// The scripts in this checkout's `chart-gen/templates/files/`.
    pub fn in_checkout() -> Result<Self, ScriptError> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../chart-gen/templates/files");
        for script in [Script::Backup, Script::Restore, Script::ListBackups] {
            let path = dir.join(script.file_name());
            if !path.is_file() {
                return Err(ScriptError::Missing(path));
            }
        }
        let mut env = BTreeMap::new();
        // Only the chart's variables (no HOME, so no ~/.my.cnf): the run is hermetic.
        env.insert(
            "PATH".into(),
            "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".into(),
        );
        Ok(Self { dir, env })
    }

    /// MYSQL_* for `server` with `creds`, BACKUP_DIR and a private TMPDIR.
    pub fn for_server(
        self,
        server: &MariaDb,
        creds: &Credentials,
        backup_dir: &Path,
        tmp_dir: &Path,
    ) -> Self {
        self.with("MYSQL_HOST", server.host())
            .with("MYSQL_PORT", server.port().to_string())
            .with("MYSQL_USER", &creds.user)
            .with("MYSQL_PASSWORD", &creds.password)
            .with("BACKUP_DIR", backup_dir.display().to_string())
            .with("TMPDIR", tmp_dir.display().to_string())
    }

    /// Sets (or overrides) one environment variable.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// The value a variable is set to, if any.
    pub fn env_value(&self, key: &str) -> Option<&str> {
        self.env.get(key).map(String::as_str)
    }

    /// Removes one environment variable.
    pub fn without(mut self, key: &str) -> Self {
        self.env.remove(key);
        self
    }

    pub fn path(&self, script: Script) -> PathBuf {
        self.dir.join(script.file_name())
    }

    /// Runs `script` with `/bin/sh` (dash on Debian: catches bashisms) and the configured env.
    pub fn run(&self, script: Script) -> Result<Run, ScriptError> {
        self.run_sh(script, &[])
    }

    /// Like [`Scripts::run`], but no file the script writes may grow past `limit_blocks` blocks
    /// of 512 bytes (`ulimit -f`): a full disk, as the writing process experiences it.
    pub fn run_with_file_size_limit(
        &self,
        script: Script,
        limit_blocks: u64,
    ) -> Result<Run, ScriptError> {
        let wrapper = format!("ulimit -f {limit_blocks} && exec /bin/sh \"$0\"");
        self.run_sh(script, &["-c", &wrapper])
    }

    fn run_sh(&self, script: Script, sh_args: &[&str]) -> Result<Run, ScriptError> {
        let path = self.path(script);
        let output = Command::new("/bin/sh")
            .args(sh_args)
            .arg(&path)
            .env_clear()
            .envs(&self.env)
            .output()
            .map_err(|source| ScriptError::Spawn {
                script: path.display().to_string(),
                source,
            })?;
        Ok(Run {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Runs list-backups.sh and parses its JSON array.
    pub fn list(&self) -> Result<Vec<ListedBackup>, ScriptError> {
        let run = self.run(Script::ListBackups)?;
        serde_json::from_str(&run.stdout).map_err(|source| ScriptError::Json {
            what: format!("list-backups.sh output ({run})"),
            text: run.stdout.clone(),
            source,
        })
    }
}

/// `<name>.json` as backup.sh writes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    pub format_version: u32,
    pub name: String,
    pub created: String,
    pub server_version: String,
    pub databases: Vec<String>,
    pub compression: String,
    pub size: u64,
    pub uncompressed_size: u64,
    pub sha256: String,
}

impl Manifest {
    /// Reads `<dir>/<name>.json`.
    pub fn read(dir: &Path, name: &str) -> Result<Self, ScriptError> {
        let path = dir.join(format!("{name}.json"));
        let text = std::fs::read_to_string(&path).map_err(|source| ScriptError::Read {
            path: path.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ScriptError::Json {
            what: path.display().to_string(),
            text,
            source,
        })
    }
}

/// What list-backups.sh says about one backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackupStatus {
    Verified,
    Corrupt,
    MissingArchive,
}

/// One element of list-backups.sh's output: the manifest's fields (absent when the manifest is
/// unreadable) plus the verdict.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListedBackup {
    pub name: String,
    pub status: BackupStatus,
    pub reason: Option<String>,
    pub databases: Option<Vec<String>>,
    pub sha256: Option<String>,
    pub size: Option<u64>,
}

/// sha256 of a file as lowercase hex, computed in Rust (independently of the scripts' tools).
pub fn sha256_hex(path: &Path) -> Result<String, ScriptError> {
    let bytes = std::fs::read(path).map_err(|source| ScriptError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect())
}
