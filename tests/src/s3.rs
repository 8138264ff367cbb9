//! A throwaway S3-compatible server for the backup upload test: moto (installed by
//! `.ci/install-tools.sh`) on a free loopback port, with IAM enforcement on so that requests must
//! carry a valid SigV4 signature from a real access key. Killed on drop. Talks to it with curl.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::mariadb::{HOST, SKIP_ENV};

const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// moto serves this many requests without credentials: the IAM set-up in [`S3Server::start`].
const SETUP_ACTIONS: usize = 3;
const REGION: &str = "us-east-1";

/// Everything that can go wrong starting or using the S3 stand-in.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error(
        "moto_server is not installed (looked in PATH and .tools/bin); run \
         `bash .ci/install-tools.sh` (or set {SKIP_ENV}=1 to skip the tests that need it)"
    )]
    NotInstalled,
    #[error("{action}: {source}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error("moto_server did not accept connections within {READY_TIMEOUT:?}")]
    NotReady,
    #[error("{action} failed: {detail}")]
    Request { action: String, detail: String },
}

type Result<T, E = S3Error> = std::result::Result<T, E>;

/// A running moto server and the access key of a user allowed `s3:*`.
#[derive(Debug)]
pub struct S3Server {
    child: Child,
    /// The address moto listens on (`0.0.0.0` for pods on the real node to reach it too).
    bind: String,
    port: u16,
    pub access_key: String,
    pub secret_key: String,
}

impl S3Server {
    /// Finds `moto_server`; `Ok(None)` (after printing "skipped") when absent and [`SKIP_ENV`]
    /// is `1`, an error naming the fix otherwise.
    pub fn locate_or_skip(test: &str) -> Result<Option<PathBuf>> {
        let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).collect())
            .unwrap_or_default();
        dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin"));
        if let Some(found) = dirs
            .iter()
            .map(|dir| dir.join("moto_server"))
            .find(|path| path.is_file())
        {
            return Ok(Some(found));
        }
        if std::env::var(SKIP_ENV).as_deref() == Ok("1") {
            println!("{test}: skipped ({}; {SKIP_ENV}=1)", S3Error::NotInstalled);
            return Ok(None);
        }
        Err(S3Error::NotInstalled)
    }

    /// Starts moto on a free loopback port and creates an IAM user with an access key.
    pub fn start(moto: &Path) -> Result<Self> {
        Self::start_on(moto, HOST)
    }

    /// Starts moto on a free port of `bind` (`0.0.0.0`: every address of this host, so pods
    /// on the real node reach it at the bridge gateway) and creates an IAM user with an
    /// access key. This test process talks to it on loopback.
    pub fn start_on(moto: &Path, bind: &str) -> Result<Self> {
        let port = TcpListener::bind((bind, 0))
            .and_then(|listener| listener.local_addr())
            .map_err(|source| S3Error::Io {
                action: "finding a free loopback port".into(),
                source,
            })?
            .port();
        let child = Command::new(moto)
            .args(["-H", bind, "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", SETUP_ACTIONS.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| S3Error::Io {
                action: format!("starting {}", moto.display()),
                source,
            })?;
        let mut server = Self {
            child,
            bind: bind.to_string(),
            port,
            access_key: String::new(),
            secret_key: String::new(),
        };
        server.wait_ready()?;
        server.create_access_key()?;
        Ok(server)
    }

    /// Where this process reaches it.
    pub fn endpoint(&self) -> String {
        format!("http://{HOST}:{}", self.port)
    }

    /// Its process id (for a guard that must stop it when the test process ends).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address it listens on.
    pub fn bind(&self) -> &str {
        &self.bind
    }

    /// Deletes an object with a signed request (no error when there is none).
    pub fn delete(&self, bucket: &str, key: &str) -> Result<()> {
        let url = format!("{}/{bucket}/{key}", self.endpoint());
        self.signed(
            "s3",
            &["-X", "DELETE", &url],
            &format!("deleting {bucket}/{key}"),
        )
        .map(drop)
    }

    /// Creates a bucket with a signed request.
    pub fn create_bucket(&self, bucket: &str) -> Result<()> {
        let url = format!("{}/{bucket}", self.endpoint());
        self.signed(
            "s3",
            &["-X", "PUT", &url],
            &format!("creating bucket {bucket}"),
        )
        .map(drop)
    }

    /// Names of the buckets the server holds, sorted.
    pub fn buckets(&self) -> Result<Vec<String>> {
        let url = format!("{}/", self.endpoint());
        let xml = self.signed("s3", &[&url], "listing buckets")?;
        let xml = String::from_utf8_lossy(&xml);
        let mut names: Vec<String> = xml
            .split("<Bucket>")
            .skip(1)
            .filter_map(|entry| xml_text(entry, "Name"))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Downloads an object with a signed request.
    pub fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>> {
        let url = format!("{}/{bucket}/{key}", self.endpoint());
        self.signed("s3", &[&url], &format!("downloading {bucket}/{key}"))
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        while TcpStream::connect((HOST, self.port)).is_err() {
            // moto on 0.0.0.0 answers on loopback too.
            let exited = self.child.try_wait().ok().flatten().is_some();
            if exited || Instant::now() > deadline {
                return Err(S3Error::NotReady);
            }
            thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// The first [`SETUP_ACTIONS`] requests need no valid key; moto picks the service from the
    /// signature's scope, so they are signed (with a dummy key) for "iam".
    fn create_access_key(&mut self) -> Result<()> {
        self.access_key = "AKIAIOSFODNN7EXAMPLE".into();
        self.secret_key = "setup".into();
        let iam = |form: &[&str], action: &str| -> Result<String> {
            let mut args = vec!["-X", "POST", "--data-urlencode", "Version=2010-05-08"];
            for field in form {
                args.extend(["--data-urlencode", field]);
            }
            let url = format!("{}/", self.endpoint());
            args.push(&url);
            let body = self.signed("iam", &args, action)?;
            Ok(String::from_utf8_lossy(&body).into_owned())
        };
        iam(
            &["Action=CreateUser", "UserName=backup"],
            "creating the IAM user",
        )?;
        let key = iam(
            &["Action=CreateAccessKey", "UserName=backup"],
            "creating an access key",
        )?;
        iam(
            &[
                "Action=PutUserPolicy",
                "UserName=backup",
                "PolicyName=s3",
                r#"PolicyDocument={"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#,
            ],
            "allowing s3:*",
        )?;
        let (access, secret) = (
            xml_text(&key, "AccessKeyId"),
            xml_text(&key, "SecretAccessKey"),
        );
        match (access, secret) {
            (Some(access), Some(secret)) => {
                self.access_key = access;
                self.secret_key = secret;
                Ok(())
            }
            _ => Err(S3Error::Request {
                action: "reading the new access key".into(),
                detail: key,
            }),
        }
    }

    fn signed(&self, service: &str, args: &[&str], action: &str) -> Result<Vec<u8>> {
        let output = Command::new("curl")
            .args(["--silent", "--show-error", "--fail"])
            .arg("--aws-sigv4")
            .arg(format!("aws:amz:{REGION}:{service}"))
            .arg("--user")
            .arg(format!("{}:{}", self.access_key, self.secret_key))
            // S3 requires this header in signed requests and curl does not add it (see backup.sh).
            .args(
                (service == "s3")
                    .then_some(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
                    .into_iter()
                    .flatten(),
            )
            .args(args)
            .output()
            .map_err(|source| S3Error::Io {
                action: "running curl".into(),
                source,
            })?;
        if output.status.success() {
            return Ok(output.stdout);
        }
        Err(S3Error::Request {
            action: action.into(),
            detail: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(xml[start..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_text_reads_the_first_element() {
        let xml = "<a><AccessKeyId>AK1</AccessKeyId><AccessKeyId>AK2</AccessKeyId></a>";
        assert_eq!(xml_text(xml, "AccessKeyId").as_deref(), Some("AK1"));
        assert_eq!(xml_text(xml, "Secret"), None);
    }
}
