//! The chart's bucket set-up script (`files/create-buckets.sh`, run by the embedded object store's
//! hook Job) against a real S3 API server on loopback (moto, checking SigV4 signatures): it creates
//! what is missing, leaves what exists, and fails
//! clearly on bad credentials, bad names and a server that never answers.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Result, ensure};
use datajump_tests::s3::S3Server;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/datajump/files/create-buckets.sh")
}

struct Run {
    output: Output,
}

impl Run {
    fn code(&self) -> Option<i32> {
        self.output.status.code()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}, stderr: {}",
            self.code(),
            self.stderr().trim()
        )
    }
}

fn run(env: &[(&str, &str)]) -> Result<Run> {
    let tmp = tempfile::tempdir()?;
    let output = Command::new("sh")
        .arg(script())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TMPDIR", tmp.path())
        .envs(env.iter().copied())
        .output()?;
    Ok(Run { output })
}

fn server(test: &str) -> Result<Option<S3Server>> {
    match S3Server::locate_or_skip(test)? {
        Some(moto) => Ok(Some(S3Server::start(&moto)?)),
        None => Ok(None),
    }
}

#[test]
fn creates_missing_buckets_and_leaves_existing_ones() -> Result<()> {
    let Some(s3) = server("buckets_create")? else {
        return Ok(());
    };
    s3.create_bucket("datajump")?;
    let endpoint = s3.endpoint();
    // Credentials from files, as the Job mounts them from the Secret.
    let creds = tempfile::tempdir()?;
    let (access, secret) = (creds.path().join("access"), creds.path().join("secret"));
    std::fs::write(&access, &s3.access_key)?;
    std::fs::write(&secret, &s3.secret_key)?;
    let env = [
        ("S3_ENDPOINT", endpoint.as_str()),
        ("S3_ACCESS_KEY_FILE", access.to_str().unwrap()),
        ("S3_SECRET_KEY_FILE", secret.to_str().unwrap()),
        ("BUCKETS", "datajump datajump-backups"),
    ];
    let first = run(&env)?;
    ensure!(first.code() == Some(0), "first run: {first}");
    ensure!(
        first.stderr().contains("bucket datajump exists")
            && first.stderr().contains("created bucket datajump-backups"),
        "first run says what it did: {first}"
    );
    assert_eq!(s3.buckets()?, ["datajump", "datajump-backups"]);

    let second = run(&env)?;
    ensure!(second.code() == Some(0), "second run: {second}");
    ensure!(
        !second.stderr().contains("created"),
        "nothing new the second time: {second}"
    );
    assert_eq!(s3.buckets()?, ["datajump", "datajump-backups"]);
    Ok(())
}

#[test]
fn wrong_secret_fails_clearly_and_creates_nothing() -> Result<()> {
    let Some(s3) = server("buckets_wrong_secret")? else {
        return Ok(());
    };
    let endpoint = s3.endpoint();
    let run = run(&[
        ("S3_ENDPOINT", endpoint.as_str()),
        ("S3_ACCESS_KEY", &s3.access_key),
        ("S3_SECRET_KEY", "not-the-secret"),
        ("BUCKETS", "datajump"),
    ])?;
    ensure!(run.code() == Some(1), "{run}");
    ensure!(
        run.stderr().contains("bucket datajump") && run.stderr().contains("403"),
        "names the bucket and the refusal: {run}"
    );
    ensure!(
        !run.stderr().contains("not-the-secret"),
        "secret echoed: {run}"
    );
    assert!(s3.buckets()?.is_empty());
    Ok(())
}

#[test]
fn bad_settings_exit_2_naming_the_variable() -> Result<()> {
    for (env, expect) in [
        (vec![("BUCKETS", "datajump")], "S3_ENDPOINT is not set"),
        (
            vec![
                ("S3_ENDPOINT", "http://127.0.0.1:1"),
                ("S3_ACCESS_KEY", "a"),
                ("S3_SECRET_KEY", "b"),
                ("BUCKETS", "Data_Jump"),
            ],
            "bucket name 'Data_Jump' is not a valid S3 bucket name",
        ),
        (
            vec![
                ("S3_ENDPOINT", "http://127.0.0.1:1"),
                ("S3_ACCESS_KEY_FILE", "/nonexistent/key"),
                ("S3_SECRET_KEY", "b"),
                ("BUCKETS", "datajump"),
            ],
            "S3_ACCESS_KEY_FILE='/nonexistent/key' is not a readable file",
        ),
    ] {
        let run = run(&env)?;
        ensure!(run.code() == Some(2), "{env:?}: {run}");
        ensure!(run.stderr().contains(expect), "{env:?}: {run}");
    }
    Ok(())
}

#[test]
fn a_server_that_never_answers_fails_after_the_wait() -> Result<()> {
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let run = run(&[
        ("S3_ENDPOINT", endpoint.as_str()),
        ("S3_ACCESS_KEY", "a"),
        ("S3_SECRET_KEY", "b"),
        ("BUCKETS", "datajump"),
        ("WAIT_SECONDS", "3"),
    ])?;
    ensure!(run.code() == Some(1), "{run}");
    ensure!(
        run.stderr().contains("did not answer within 3s"),
        "says why: {run}"
    );
    Ok(())
}
