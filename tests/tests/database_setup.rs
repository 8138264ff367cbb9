//! The chart's database set-up script (`files/create-database.sh`, run after install and upgrade
//! where MySQL Operator runs the server, which creates no application database or user) on a real
//! MariaDB server: it creates the database and a user confined to it, is idempotent, follows a
//! changed password, and fails clearly on a wrong admin password, bad names and an unreachable
//! server.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Result, ensure};
use datajump_tests::mariadb::{Binaries, Credentials, MariaDb};

fn script_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../chart-gen/templates/files")
}

struct Run(Output);

impl Run {
    fn code(&self) -> Option<i32> {
        self.0.status.code()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {:?}: {}", self.code(), self.stderr().trim())
    }
}

/// Runs the script with only the given variables (and a PATH), as the Job does.
fn run(env: &[(&str, &str)]) -> Result<Run> {
    let tmp = tempfile::tempdir()?;
    let output = Command::new("/bin/sh")
        .arg(script_dir().join("create-database.sh"))
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("TMPDIR", tmp.path())
        .envs(env.iter().copied())
        .output()?;
    Ok(Run(output))
}

fn server(test: &str) -> Result<Option<MariaDb>> {
    match Binaries::locate_or_skip(test)? {
        Some(bins) => Ok(Some(MariaDb::start(&bins)?)),
        None => Ok(None),
    }
}

const TRICKY: &str = r#"it's a \ "pass" word"#;

#[test]
fn creates_a_database_and_a_user_confined_to_it() -> Result<()> {
    let Some(db) = server("database_create")? else {
        return Ok(());
    };
    let port = db.port().to_string();
    let creds = tempfile::tempdir()?;
    let (user_file, password_file, app_file) = (
        creds.path().join("user"),
        creds.path().join("password"),
        creds.path().join("app"),
    );
    std::fs::write(&user_file, &db.admin().user)?;
    std::fs::write(&password_file, &db.admin().password)?;
    std::fs::write(&app_file, TRICKY)?;
    let (user_file, password_file, app_file) = (
        user_file.display().to_string(),
        password_file.display().to_string(),
        app_file.display().to_string(),
    );
    let env = [
        ("MYSQL_HOST", db.host()),
        ("MYSQL_PORT", port.as_str()),
        ("MYSQL_USER_FILE", user_file.as_str()),
        ("MYSQL_PASSWORD_FILE", password_file.as_str()),
        ("APP_DATABASE", "datajump"),
        ("APP_USER", "datajump"),
        ("APP_PASSWORD_FILE", app_file.as_str()),
    ];
    let first = run(&env)?;
    ensure!(first.code() == Some(0), "{first}");
    ensure!(first.stderr().contains("created user datajump"), "{first}");

    let app = Credentials {
        user: "datajump".into(),
        password: TRICKY.into(),
    };
    db.query_as(
        &app,
        "CREATE TABLE datajump.t (id INT); INSERT INTO datajump.t VALUES (1)",
    )?;
    assert_eq!(db.query_as(&app, "SELECT id FROM datajump.t")?.trim(), "1");
    ensure!(
        db.query_as(&app, "CREATE DATABASE elsewhere").is_err(),
        "the user may not create other databases"
    );
    ensure!(
        db.query_as(&app, "SELECT COUNT(*) FROM mysql.db").is_err(),
        "the user may not read the system schema"
    );

    // Again: nothing new, data kept.
    let second = run(&env)?;
    ensure!(second.code() == Some(0), "{second}");
    ensure!(second.stderr().contains("user datajump exists"), "{second}");
    assert_eq!(db.query_as(&app, "SELECT id FROM datajump.t")?.trim(), "1");

    // A rotated password in the Secret: the user follows it.
    std::fs::write(&app_file, "rotated")?;
    let third = run(&env)?;
    ensure!(third.code() == Some(0), "{third}");
    let rotated = Credentials {
        user: "datajump".into(),
        password: "rotated".into(),
    };
    assert_eq!(
        db.query_as(&rotated, "SELECT id FROM datajump.t")?.trim(),
        "1"
    );
    ensure!(
        db.query_as(&app, "SELECT 1").is_err(),
        "the old password no longer works"
    );
    Ok(())
}

#[test]
fn a_wrong_admin_password_fails_at_once_and_changes_nothing() -> Result<()> {
    let Some(db) = server("database_wrong_password")? else {
        return Ok(());
    };
    let port = db.port().to_string();
    let run = run(&[
        ("MYSQL_HOST", db.host()),
        ("MYSQL_PORT", port.as_str()),
        ("MYSQL_USER", db.admin().user.as_str()),
        ("MYSQL_PASSWORD", "not-the-password"),
        ("APP_DATABASE", "datajump"),
        ("APP_USER", "datajump"),
        ("APP_PASSWORD", "x"),
    ])?;
    ensure!(run.code() == Some(1), "{run}");
    ensure!(run.stderr().contains("authentication failed"), "{run}");
    ensure!(
        !run.stderr().contains("not-the-password"),
        "password echoed: {run}"
    );
    assert_eq!(
        db.query(
            "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = 'datajump'"
        )?
        .trim(),
        "0"
    );
    Ok(())
}

#[test]
fn bad_settings_exit_2_naming_the_variable() -> Result<()> {
    let base = [
        ("MYSQL_HOST", "127.0.0.1"),
        ("MYSQL_USER", "root"),
        ("MYSQL_PASSWORD", "x"),
        ("APP_PASSWORD", "x"),
    ];
    for (extra, expect) in [
        (
            [("APP_DATABASE", "data-jump"), ("APP_USER", "datajump")],
            "APP_DATABASE='data-jump' must be letters, digits and '_'",
        ),
        (
            [("APP_DATABASE", "datajump"), ("APP_USER", "x'; DROP")],
            "APP_USER='x'; DROP' must be letters, digits and '_'",
        ),
    ] {
        let mut env = base.to_vec();
        env.extend(extra);
        let run = run(&env)?;
        ensure!(run.code() == Some(2), "{env:?}: {run}");
        ensure!(run.stderr().contains(expect), "{env:?}: {run}");
    }
    let no_password = run(&[
        ("MYSQL_HOST", "127.0.0.1"),
        ("MYSQL_USER", "root"),
        ("MYSQL_PASSWORD", "x"),
        ("APP_DATABASE", "datajump"),
        ("APP_USER", "datajump"),
    ])?;
    ensure!(no_password.code() == Some(2), "{no_password}");
    ensure!(
        no_password.stderr().contains("APP_PASSWORD is not set"),
        "{no_password}"
    );
    Ok(())
}

#[test]
fn an_unreachable_server_fails_after_the_wait() -> Result<()> {
    if Binaries::locate_or_skip("database_unreachable")?.is_none() {
        return Ok(());
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port()
        .to_string();
    let run = run(&[
        ("MYSQL_HOST", "127.0.0.1"),
        ("MYSQL_PORT", port.as_str()),
        ("MYSQL_USER", "root"),
        ("MYSQL_PASSWORD", "x"),
        ("APP_DATABASE", "datajump"),
        ("APP_USER", "datajump"),
        ("APP_PASSWORD", "x"),
        ("WAIT_SECONDS", "2"),
    ])?;
    ensure!(run.code() == Some(1), "{run}");
    ensure!(
        run.stderr()
            .contains("did not accept connections within 2s")
            && run.stderr().contains("cannot reach the MySQL server"),
        "{run}"
    );
    Ok(())
}
