//! Registry credentials, looked up per registry host the way Docker and Helm store them:
//! `--username/--password-stdin` for the target first, then the Docker config
//! (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`, with its `credHelpers`/`credsStore`
//! helpers), then what `helm registry login` stored (`$HELM_REGISTRY_CONFIG` or
//! `~/.config/helm/registry/config.json`). Anonymous when none has the host.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use oci_client::secrets::RegistryAuth;
use serde_json::Value;

use super::RegistryError;

/// Where the credentials for one registry came from (named in error messages; the secret never
/// is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CredentialSource {
    /// `--username` and `--password-stdin`.
    Flags(String),
    /// An `auths` entry of a Docker-format config file.
    File { user: String, path: PathBuf },
    /// A `docker-credential-<name>` helper.
    Helper { user: String, helper: String },
    /// Nothing found: anonymous.
    Anonymous,
}

impl std::fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Flags(user) => write!(f, "user {user} from --username"),
            Self::File { user, path } => write!(f, "user {user} from {}", path.display()),
            Self::Helper { user, helper } => {
                write!(f, "user {user} from docker-credential-{helper}")
            }
            Self::Anonymous => write!(f, "anonymous: no credentials for this registry"),
        }
    }
}

/// Every place credentials may come from, in the order they are tried.
#[derive(Debug, Clone, Default)]
pub(crate) struct Credentials {
    explicit: BTreeMap<String, (String, String)>,
    files: Vec<PathBuf>,
}

impl Credentials {
    /// The Docker and Helm config files of this user (those that exist).
    pub(crate) fn discover() -> Self {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let mut files = Vec::new();
        match std::env::var_os("DOCKER_CONFIG") {
            Some(dir) => files.push(PathBuf::from(dir).join("config.json")),
            None => files.extend(home.as_ref().map(|h| h.join(".docker/config.json"))),
        }
        match std::env::var_os("HELM_REGISTRY_CONFIG") {
            Some(file) => files.push(PathBuf::from(file)),
            None => {
                let config = std::env::var_os("XDG_CONFIG_HOME")
                    .map(PathBuf::from)
                    .or_else(|| home.map(|h| h.join(".config")));
                files.extend(config.map(|c| c.join("helm/registry/config.json")));
            }
        }
        files.retain(|f| f.is_file());
        Self {
            explicit: BTreeMap::new(),
            files,
        }
    }

    /// Only these files.
    #[cfg(test)]
    pub(crate) fn from_files(files: Vec<PathBuf>) -> Self {
        Self {
            explicit: BTreeMap::new(),
            files,
        }
    }

    /// Credentials given on the command line for one registry; they win over the files.
    pub(crate) fn with_login(mut self, registry: &str, user: &str, password: &str) -> Self {
        self.explicit.insert(
            registry.to_string(),
            (user.to_string(), password.to_string()),
        );
        self
    }

    /// The credentials for `registry` (host[:port]) and where they came from.
    pub(crate) fn lookup(
        &self,
        registry: &str,
    ) -> Result<(RegistryAuth, CredentialSource), RegistryError> {
        if let Some((user, password)) = self.explicit.get(registry) {
            return Ok((
                RegistryAuth::Basic(user.clone(), password.clone()),
                CredentialSource::Flags(user.clone()),
            ));
        }
        for file in &self.files {
            if let Some(found) = lookup_file(file, registry)? {
                return Ok(found);
            }
        }
        Ok((RegistryAuth::Anonymous, CredentialSource::Anonymous))
    }
}

fn invalid(path: &Path, pointer: &str, expected: &str) -> RegistryError {
    RegistryError::Invalid(format!(
        "{}: {pointer}: expected {expected}",
        path.display()
    ))
}

/// Docker config keys are hosts, sometimes written as URLs (`https://index.docker.io/v1/`).
fn key_host(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

fn same_registry(key: &str, registry: &str) -> bool {
    let host = key_host(key);
    host == registry
        || (registry == "docker.io" && matches!(host, "index.docker.io" | "registry-1.docker.io"))
}

fn lookup_file(
    path: &Path,
    registry: &str,
) -> Result<Option<(RegistryAuth, CredentialSource)>, RegistryError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| RegistryError::Invalid(format!("{}: {e}", path.display())))?;
    let config: Value = serde_json::from_str(&text)
        .map_err(|e| RegistryError::Invalid(format!("{}: not JSON: {e}", path.display())))?;
    if let Some(helpers) = config.get("credHelpers").and_then(Value::as_object) {
        for (key, helper) in helpers {
            if same_registry(key, registry) {
                let helper = helper.as_str().ok_or_else(|| {
                    invalid(path, &format!("/credHelpers/{key}"), "a helper name")
                })?;
                return run_helper(helper, key);
            }
        }
    }
    if let Some(auths) = config.get("auths").and_then(Value::as_object) {
        for (key, entry) in auths {
            if !same_registry(key, registry) {
                continue;
            }
            let pointer = format!("/auths/{key}");
            if let Some((user, password)) = entry_credentials(entry, path, &pointer)? {
                let source = CredentialSource::File {
                    user: user.clone(),
                    path: path.to_path_buf(),
                };
                return Ok(Some((RegistryAuth::Basic(user, password), source)));
            }
        }
    }
    if let Some(store) = config.get("credsStore").and_then(Value::as_str) {
        return run_helper(store, registry);
    }
    Ok(None)
}

fn entry_credentials(
    entry: &Value,
    path: &Path,
    pointer: &str,
) -> Result<Option<(String, String)>, RegistryError> {
    if let Some(auth) = entry.get("auth").and_then(Value::as_str) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| invalid(path, &format!("{pointer}/auth"), "base64 of user:password"))?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or_else(|| invalid(path, &format!("{pointer}/auth"), "base64 of user:password"))?;
        return Ok(Some((user.to_string(), password.to_string())));
    }
    let s = |k: &str| entry.get(k).and_then(Value::as_str);
    Ok(match (s("username"), s("password")) {
        (Some(u), Some(p)) => Some((u.to_string(), p.to_string())),
        _ => None,
    })
}

/// `docker-credential-<helper> get`, the Docker credential-helper protocol: the server URL on
/// stdin, `{"Username": …, "Secret": …}` on stdout.
fn run_helper(
    helper: &str,
    server: &str,
) -> Result<Option<(RegistryAuth, CredentialSource)>, RegistryError> {
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            RegistryError::Invalid(format!(
                "credential helper {program} (named by the Docker config): {e}"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading is reported through its exit status below.
        let _ = stdin.write_all(server.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| RegistryError::Invalid(format!("credential helper {program}: {e}")))?;
    if !out.status.success() {
        let stdout = String::from_utf8_lossy(&out.stdout);
        if stdout.contains("credentials not found") {
            return Ok(None);
        }
        return Err(RegistryError::Invalid(format!(
            "credential helper {program} failed for {server}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let answer: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        RegistryError::Invalid(format!("credential helper {program}: not JSON: {e}"))
    })?;
    let s = |k: &str| answer.get(k).and_then(Value::as_str).map(str::to_string);
    match (s("Username"), s("Secret")) {
        (Some(user), Some(secret)) => Ok(Some((
            RegistryAuth::Basic(user.clone(), secret),
            CredentialSource::Helper {
                user,
                helper: helper.to_string(),
            },
        ))),
        _ => Err(RegistryError::Invalid(format!(
            "credential helper {program}: answer without Username and Secret"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, json: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, json).unwrap();
        path
    }

    #[test]
    fn flags_then_files_then_anonymous() {
        let dir = tempfile::tempdir().unwrap();
        let docker = write(
            dir.path(),
            "docker.json",
            r#"{"auths": {"https://harbor.local:8443/v1/": {"auth": "cm9ib3Q6czNjcmV0"}}}"#,
        );
        let helm = write(
            dir.path(),
            "helm.json",
            r#"{"auths": {"other.local": {"username": "u", "password": "p"}}}"#,
        );
        let creds = Credentials::from_files(vec![docker.clone(), helm.clone()]);
        let (auth, source) = creds.lookup("harbor.local:8443").unwrap();
        assert_eq!(auth, RegistryAuth::Basic("robot".into(), "s3cret".into()));
        assert_eq!(
            source,
            CredentialSource::File {
                user: "robot".into(),
                path: docker
            }
        );
        let (_, source) = creds.lookup("other.local").unwrap();
        assert!(matches!(source, CredentialSource::File { path, .. } if path == helm));
        assert_eq!(creds.lookup("nowhere").unwrap().0, RegistryAuth::Anonymous);
        let creds = creds.with_login("harbor.local:8443", "admin", "pw");
        assert_eq!(
            creds.lookup("harbor.local:8443").unwrap(),
            (
                RegistryAuth::Basic("admin".into(), "pw".into()),
                CredentialSource::Flags("admin".into())
            )
        );
    }

    #[test]
    fn a_broken_entry_names_the_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "c.json", r#"{"auths": {"h": {"auth": "!!"}}}"#);
        let err = Credentials::from_files(vec![path.clone()])
            .lookup("h")
            .unwrap_err()
            .to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("/auths/h/auth"), "{err}");
    }

    #[test]
    fn a_missing_helper_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "c.json",
            r#"{"credHelpers": {"h": "no-such-helper-here"}}"#,
        );
        let err = Credentials::from_files(vec![path])
            .lookup("h")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("docker-credential-no-such-helper-here"),
            "{err}"
        );
    }
}
