//! Backup and restore on a real MariaDB: the chart's backup.sh / restore.sh / list-backups.sh run
//! against a throwaway server on loopback. The round trip must bring back every row (per-table
//! CHECKSUM TABLE and counts), every definition and every view, trigger, routine and event; damaged
//! or tampered backups, wrong passwords and a stopped server must fail loudly and change nothing.
//!
//! MariaDB missing fails these tests (run `bash .ci/install-tools.sh`) unless
//! DATAJUMP_SKIP_MARIADB=1, which makes them print "skipped".

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use datajump_tests::backup_data::{DATABASES, DataSet, Snapshot};
use datajump_tests::backup_scripts::{BackupStatus, Manifest, Run, Script, Scripts, sha256_hex};
use datajump_tests::mariadb::{Binaries, Credentials, MariaDb, sql_ident};
use datajump_tests::s3::S3Server;
use tempfile::TempDir;

/// A loaded server plus a backup directory and TMPDIR, as the backup CronJob sees them.
struct Fixture {
    server: MariaDb,
    backups: TempDir,
    tmp: TempDir,
}

impl Fixture {
    /// `None` when MariaDB is absent and skipping was asked for.
    fn start(test: &str, data: DataSet) -> Result<Option<Self>> {
        let Some(bins) = Binaries::locate_or_skip(test)? else {
            return Ok(None);
        };
        let server = MariaDb::start(&bins)?;
        data.load(&server).context("loading the data set")?;
        Ok(Some(Self {
            server,
            backups: TempDir::new()?,
            tmp: TempDir::new()?,
        }))
    }

    fn scripts(&self) -> Result<Scripts> {
        self.scripts_as(self.server.admin())
    }

    fn scripts_as(&self, creds: &Credentials) -> Result<Scripts> {
        Ok(Scripts::in_checkout()?.for_server(
            &self.server,
            creds,
            self.backups.path(),
            self.tmp.path(),
        ))
    }

    /// Runs backup.sh, insists it succeeded, returns the printed name.
    fn backup(&self, scripts: &Scripts) -> Result<String> {
        let run = scripts.run(Script::Backup)?;
        ensure!(run.success(), "backup.sh failed: {run}");
        let name = run.stdout.trim().to_owned();
        ensure!(
            is_backup_name(&name, "datajump"),
            "unexpected backup name {name:?}"
        );
        Ok(name)
    }

    fn restore(&self, name: &str) -> Result<Run> {
        Ok(self
            .scripts()?
            .with("BACKUP_NAME", name)
            .run(Script::Restore)?)
    }

    fn marker(&self) -> Result<String> {
        Ok(self
            .server
            .query("SELECT value FROM dj_app.markers WHERE name = 'restore-check'")?
            .trim()
            .to_owned())
    }

    fn set_marker(&self, value: &str) -> Result<()> {
        self.server.query(&format!(
            "UPDATE dj_app.markers SET value = '{value}' WHERE name = 'restore-check'"
        ))?;
        ensure!(self.marker()? == value, "marker update did not stick");
        Ok(())
    }

    fn archive(&self, name: &str) -> PathBuf {
        self.backups.path().join(format!("{name}.sql.gz"))
    }

    fn manifest_path(&self, name: &str) -> PathBuf {
        self.backups.path().join(format!("{name}.json"))
    }
}

fn is_backup_name(name: &str, prefix: &str) -> bool {
    let Some(stamp) = name
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
    else {
        return false;
    };
    let bytes = stamp.as_bytes();
    bytes.len() == 16
        && bytes[8] == b'T'
        && bytes[15] == b'Z'
        && bytes[..8]
            .iter()
            .chain(&bytes[9..15])
            .all(u8::is_ascii_digit)
}

fn file_names(dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = fs::read_dir(dir)?
        .map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_>>()?;
    names.sort();
    Ok(names)
}

/// Proves the server was not touched by a refused restore: the marker changed after the backup
/// would have been reset to 'at-backup-time' by any restore.
fn assert_refused_untouched(fixture: &Fixture, run: &Run, expect: &str) -> Result<()> {
    ensure!(!run.success(), "restore.sh should have refused: {run}");
    ensure!(run.stderr.contains(expect), "expected {expect:?} in: {run}");
    ensure!(
        run.stderr.contains("the server was not touched"),
        "refusal should say the server was not touched: {run}"
    );
    let marker = fixture.marker()?;
    ensure!(
        marker == "changed-after-backup",
        "the server was modified by a refused restore (marker is {marker:?})"
    );
    Ok(())
}

#[test]
fn round_trip_restores_every_row_definition_and_routine() -> Result<()> {
    let Some(fx) = Fixture::start("round_trip", DataSet::FULL)? else {
        return Ok(());
    };
    let before = Snapshot::take(&fx.server, &DATABASES)?;
    ensure!(
        before.total_rows() >= 120_000,
        "data set too small: {}",
        before.total_rows()
    );
    ensure!(
        before.tables.len() == 7,
        "tables: {:?}",
        before.tables.keys()
    );
    ensure!(
        before.views.len() == 1 && before.triggers.len() == 1,
        "{before:?}"
    );
    ensure!(
        before.routines.len() == 2 && before.events.len() == 1,
        "{before:?}"
    );

    let name = fx.backup(&fx.scripts()?)?;

    // The manifest describes the archive exactly, and nothing else is left behind.
    let manifest = Manifest::read(fx.backups.path(), &name)?;
    let mut databases = manifest.databases.clone();
    databases.sort();
    let mut expected: Vec<String> = DATABASES.iter().map(|db| db.to_string()).collect();
    expected.sort();
    assert_eq!(databases, expected);
    assert_eq!(manifest.format_version, 1);
    assert_eq!(manifest.name, name);
    assert_eq!(manifest.compression, "gzip");
    assert_eq!(manifest.sha256, sha256_hex(&fx.archive(&name))?);
    assert_eq!(manifest.size, fs::metadata(fx.archive(&name))?.len());
    assert!(manifest.uncompressed_size > 50_000_000, "{manifest:?}");
    assert!(manifest.server_version.contains("MariaDB"), "{manifest:?}");
    assert_eq!(
        file_names(fx.backups.path())?,
        [format!("{name}.json"), format!("{name}.sql.gz")]
    );
    assert!(file_names(fx.tmp.path())?.is_empty(), "TMPDIR not cleaned");
    let listed = fx.scripts()?.list()?;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, BackupStatus::Verified, "{listed:?}");

    for db in DATABASES {
        fx.server
            .query(&format!("DROP DATABASE {}", sql_ident(db)))?;
    }
    let dropped = Snapshot::take(&fx.server, &DATABASES)?;
    ensure!(
        dropped.tables.is_empty() && dropped.routines.is_empty(),
        "{dropped:?}"
    );

    let run = fx.restore(&name)?;
    ensure!(run.success(), "restore.sh failed: {run}");
    ensure!(
        run.stdout.starts_with(&format!("restored {name} ")),
        "summary: {run}"
    );

    let after = Snapshot::take(&fx.server, &DATABASES)?;
    for (table, state) in &before.tables {
        assert_eq!(
            after.tables.get(table),
            Some(state),
            "table {table} differs after restore"
        );
    }
    assert_eq!(before, after);

    // The restored objects work, not just exist.
    let called = fx
        .server
        .query("CALL dj_crm.add_customer('新客户 🎉', @id); SELECT name FROM dj_crm.customers WHERE id = @id")?;
    assert_eq!(called.trim(), "新客户 🎉");
    let count: u64 = fx
        .server
        .query("SELECT dj_crm.customer_count()")?
        .trim()
        .parse()?;
    assert_eq!(count, DataSet::FULL.people as u64 + 1);
    fx.server.query(
        "INSERT INTO dj_app.users (id, name, balance, score, active, created) \
         VALUES (999999, 'after-restore', 0, 0, 1, NOW())",
    )?;
    let audited = fx
        .server
        .query("SELECT action FROM dj_app.audit WHERE user_id = 999999")?;
    assert_eq!(
        audited.trim(),
        "created after-restore",
        "trigger did not fire"
    );
    let active: u64 = fx
        .server
        .query("SELECT COUNT(*) FROM dj_app.active_users WHERE name = 'after-restore'")?
        .trim()
        .parse()?;
    assert_eq!(active, 1, "view does not see new rows");
    Ok(())
}

#[test]
fn corrupted_archive_is_refused_and_server_untouched() -> Result<()> {
    let Some(fx) = Fixture::start("corrupted_archive", DataSet::SMALL)? else {
        return Ok(());
    };
    let name = fx.backup(&fx.scripts()?)?;
    fx.set_marker("changed-after-backup")?;
    let archive = fx.archive(&name);
    let original = fs::read(&archive)?;

    // One flipped byte in the middle.
    let mut flipped = original.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    fs::write(&archive, &flipped)?;
    let run = fx.restore(&name)?;
    assert_refused_untouched(&fx, &run, "does not match its manifest")?;
    let listed = fx.scripts()?.list()?;
    assert_eq!(listed[0].status, BackupStatus::Corrupt, "{listed:?}");
    assert!(
        listed[0].reason.as_deref().unwrap_or("").contains("sha256"),
        "{listed:?}"
    );

    // Truncated, with a manifest rewritten to match it: the checksum passes, decompression must not.
    let truncated = &original[..original.len() * 2 / 3];
    fs::write(&archive, truncated)?;
    let manifest_text = fs::read_to_string(fx.manifest_path(&name))?;
    let manifest = Manifest::read(fx.backups.path(), &name)?;
    let rewritten = manifest_text
        .replace(&manifest.sha256, &sha256_hex(&archive)?)
        .replace(
            &format!("\"size\": {},", manifest.size),
            &format!("\"size\": {},", truncated.len()),
        );
    fs::write(fx.manifest_path(&name), rewritten)?;
    let run = fx.restore(&name)?;
    assert_refused_untouched(&fx, &run, "does not decompress completely")?;

    // The intact archive restores, and resets the marker (so the checks above could fail).
    fs::write(&archive, &original)?;
    fs::write(fx.manifest_path(&name), &manifest_text)?;
    let run = fx.restore(&name)?;
    ensure!(
        run.success(),
        "restore of the repaired backup failed: {run}"
    );
    assert_eq!(fx.marker()?, "at-backup-time");
    Ok(())
}

#[test]
fn tampered_or_missing_backup_parts_are_refused() -> Result<()> {
    let Some(fx) = Fixture::start("tampered_manifest", DataSet::SMALL)? else {
        return Ok(());
    };
    let name = fx.backup(&fx.scripts()?)?;
    fx.set_marker("changed-after-backup")?;
    let path = fx.manifest_path(&name);
    let original = fs::read_to_string(&path)?;
    let manifest = Manifest::read(fx.backups.path(), &name)?;

    let cases: [(&str, String, &str); 5] = [
        (
            "another sha256",
            original.replace(&manifest.sha256, &"ab".repeat(32)),
            "does not match its manifest",
        ),
        (
            "a database removed",
            original
                .replace("\"dj_crm\", ", "")
                .replace(", \"dj_crm\"", ""),
            "manifest lists databases",
        ),
        (
            "another backup's name",
            original.replace(
                &format!("\"name\": \"{name}\""),
                "\"name\": \"datajump-20000101T000000Z\"",
            ),
            "names backup",
        ),
        (
            "not a manifest",
            "{\"hello\": 1}\n".to_owned(),
            "is invalid",
        ),
        (
            "a future format",
            original.replace("\"formatVersion\": 1", "\"formatVersion\": 2"),
            "formatVersion",
        ),
    ];
    for (what, text, expect) in cases {
        ensure!(
            text != original,
            "case {what:?} did not change the manifest"
        );
        fs::write(&path, &text)?;
        let run = fx.restore(&name)?;
        assert_refused_untouched(&fx, &run, expect)
            .with_context(|| format!("manifest with {what}"))?;
        let listed = fx.scripts()?.list()?;
        assert_eq!(listed.len(), 1);
        assert_eq!(
            listed[0].status,
            BackupStatus::Corrupt,
            "{what}: {listed:?}"
        );
    }

    fs::write(&path, &original)?;
    fs::remove_file(fx.archive(&name))?;
    let listed = fx.scripts()?.list()?;
    assert_eq!(listed[0].status, BackupStatus::MissingArchive, "{listed:?}");
    let run = fx.restore(&name)?;
    assert_refused_untouched(&fx, &run, "does not exist")?;
    let run = fx.restore("datajump-19990101T000000Z")?;
    assert_refused_untouched(&fx, &run, "not found")?;
    Ok(())
}

#[test]
fn wrong_password_fails_clearly_and_leaves_no_files() -> Result<()> {
    let Some(fx) = Fixture::start("wrong_password", DataSet::SMALL)? else {
        return Ok(());
    };
    // A password with every character an option file or shell could mangle.
    let good = fx
        .server
        .create_user("backup", "p#ss w\"rd\\x'$`;🔑", "ALL PRIVILEGES ON *.*")?;
    let wrong = Credentials {
        password: "p#ss w\"rd\\x'$`;".into(),
        ..good.clone()
    };
    let run = fx.scripts_as(&wrong)?.run(Script::Backup)?;
    ensure!(
        !run.success(),
        "backup with a wrong password succeeded: {run}"
    );
    ensure!(run.status.code() == Some(1), "exit code: {run}");
    ensure!(
        run.stderr
            .contains("authentication failed for user 'backup'")
            && run.stderr.contains("check MYSQL_USER and MYSQL_PASSWORD"),
        "unclear message: {run}"
    );
    ensure!(
        !run.stderr.contains(&wrong.password),
        "password leaked: {run}"
    );
    assert!(
        file_names(fx.backups.path())?.is_empty(),
        "files left in BACKUP_DIR"
    );
    assert!(
        file_names(fx.tmp.path())?.is_empty(),
        "files left in TMPDIR"
    );

    // The right password works, so the failure above was the password and nothing else.
    let name = fx.backup(&fx.scripts_as(&good)?)?;
    fx.set_marker("changed-after-backup")?;
    let run = fx
        .scripts_as(&wrong)?
        .with("BACKUP_NAME", &name)
        .run(Script::Restore)?;
    assert_refused_untouched(&fx, &run, "authentication failed for user 'backup'")?;

    // An account that may read but not drop passes every check, then fails loading: loudly.
    let reader = fx.server.create_user("reader", "r3ader", "SELECT ON *.*")?;
    let run = fx
        .scripts_as(&reader)?
        .with("BACKUP_NAME", &name)
        .run(Script::Restore)?;
    ensure!(
        run.status.code() == Some(1),
        "restore without privileges: {run}"
    );
    ensure!(
        run.stderr.contains("loading backup") && run.stderr.contains("run the restore again"),
        "unclear message: {run}"
    );
    Ok(())
}

#[test]
fn stopped_server_fails_clearly_and_leaves_no_files() -> Result<()> {
    let Some(fx) = Fixture::start("server_down", DataSet::SMALL)? else {
        return Ok(());
    };
    let name = fx.backup(&fx.scripts()?)?;
    let scripts = fx.scripts()?;
    let Fixture {
        server,
        backups,
        tmp,
    } = fx;
    drop(server);
    let run = scripts.run(Script::Backup)?;
    ensure!(
        run.status.code() == Some(1),
        "backup against a stopped server: {run}"
    );
    ensure!(
        run.stderr
            .contains("cannot reach the MySQL server at 127.0.0.1:"),
        "{run}"
    );
    assert_eq!(
        file_names(backups.path())?,
        [format!("{name}.json"), format!("{name}.sql.gz")]
    );
    let run = scripts.with("BACKUP_NAME", &name).run(Script::Restore)?;
    ensure!(
        run.status.code() == Some(1),
        "restore against a stopped server: {run}"
    );
    ensure!(
        run.stderr.contains("cannot reach the MySQL server"),
        "{run}"
    );
    assert!(file_names(tmp.path())?.is_empty(), "files left in TMPDIR");
    Ok(())
}

#[test]
fn full_disk_fails_clearly_and_leaves_no_files() -> Result<()> {
    let Some(fx) = Fixture::start("full_disk", DataSet::SMALL)? else {
        return Ok(());
    };
    // 32 KiB per file: the compressed small data set (about 250 kB) cannot fit.
    let run = fx.scripts()?.run_with_file_size_limit(Script::Backup, 64)?;
    ensure!(
        run.status.code() == Some(1),
        "backup onto a full disk: {run}"
    );
    ensure!(run.stderr.contains("full?"), "unclear message: {run}");
    assert!(
        file_names(fx.backups.path())?.is_empty(),
        "files left in BACKUP_DIR"
    );
    assert!(
        file_names(fx.tmp.path())?.is_empty(),
        "files left in TMPDIR"
    );
    Ok(())
}

#[test]
fn upload_puts_signed_copies_in_the_bucket() -> Result<()> {
    let Some(fx) = Fixture::start("s3_upload", DataSet::SMALL)? else {
        return Ok(());
    };
    let Some(moto) = S3Server::locate_or_skip("s3_upload")? else {
        return Ok(());
    };
    let s3 = S3Server::start(&moto)?;
    s3.create_bucket("dj-backups")?;
    let scripts = fx
        .scripts()?
        .with("S3_BUCKET", "dj-backups")
        .with("S3_ENDPOINT", s3.endpoint())
        .with("S3_ACCESS_KEY", &s3.access_key)
        .with("S3_SECRET_KEY", &s3.secret_key)
        .with("S3_PREFIX", "nightly/");
    let name = fx.backup(&scripts)?;
    for file in [format!("{name}.sql.gz"), format!("{name}.json")] {
        let uploaded = s3.get("dj-backups", &format!("nightly/{file}"))?;
        assert_eq!(
            uploaded,
            fs::read(fx.backups.path().join(&file))?,
            "{file} differs"
        );
    }

    // The server checks signatures: a wrong secret is refused and the job fails loudly.
    let run = scripts
        .with("S3_SECRET_KEY", "not-the-secret")
        .run(Script::Backup)?;
    ensure!(
        run.status.code() == Some(1),
        "upload with a wrong secret: {run}"
    );
    ensure!(
        run.stderr.contains("uploading") && run.stderr.contains("dj-backups"),
        "unclear message: {run}"
    );
    ensure!(!run.stderr.contains(&s3.secret_key), "secret leaked: {run}");
    Ok(())
}

/// The chart mounts its Secrets as files and passes their paths in `*_FILE`.
#[test]
fn credentials_can_come_from_mounted_files() -> Result<()> {
    let Some(fx) = Fixture::start("credential_files", DataSet::SMALL)? else {
        return Ok(());
    };
    let creds = tempfile::tempdir()?;
    let (user_file, password_file) = (creds.path().join("user"), creds.path().join("password"));
    let base = fx.scripts()?;
    let user = base.env_value("MYSQL_USER").unwrap_or_default().to_string();
    let password = base
        .env_value("MYSQL_PASSWORD")
        .unwrap_or_default()
        .to_string();
    fs::write(&user_file, &user)?;
    fs::write(&password_file, &password)?;
    let scripts = base
        .without("MYSQL_USER")
        .without("MYSQL_PASSWORD")
        .with("MYSQL_USER_FILE", user_file.display().to_string())
        .with("MYSQL_PASSWORD_FILE", password_file.display().to_string());
    let run = scripts.run(Script::Backup)?;
    ensure!(run.success(), "backup with credential files: {run}");
    let name = run.stdout.trim().to_string();
    let restore = scripts
        .clone()
        .with("BACKUP_NAME", &name)
        .run(Script::Restore)?;
    ensure!(
        restore.success(),
        "restore with credential files: {restore}"
    );

    let missing = scripts
        .with("MYSQL_PASSWORD_FILE", "/nonexistent/password")
        .run(Script::Backup)?;
    ensure!(missing.status.code() == Some(2), "{missing}");
    ensure!(
        missing
            .stderr
            .contains("MYSQL_PASSWORD_FILE='/nonexistent/password' is not a readable file"),
        "names the variable and the file: {missing}"
    );
    Ok(())
}

#[test]
fn retention_keeps_exactly_the_newest_n_of_its_prefix() -> Result<()> {
    let Some(fx) = Fixture::start("retention", DataSet::SMALL)? else {
        return Ok(());
    };
    let other = fx
        .scripts()?
        .with("BACKUP_PREFIX", "datajump-extra")
        .run(Script::Backup)?;
    ensure!(other.success(), "{other}");
    let other = other.stdout.trim().to_owned();
    ensure!(is_backup_name(&other, "datajump-extra"), "{other}");

    let scripts = fx.scripts()?.with("BACKUP_KEEP", "2");
    // Backups within one second wait for the next name; four runs take about four seconds.
    let names = (0..4)
        .map(|_| fx.backup(&scripts))
        .collect::<Result<Vec<_>>>()?;
    let mut unique = names.clone();
    unique.dedup();
    assert_eq!(unique.len(), 4, "names repeated: {names:?}");
    let mut expected = vec![
        format!("{other}.json"),
        format!("{other}.sql.gz"),
        format!("{}.json", names[2]),
        format!("{}.sql.gz", names[2]),
        format!("{}.json", names[3]),
        format!("{}.sql.gz", names[3]),
    ];
    expected.sort();
    assert_eq!(file_names(fx.backups.path())?, expected);
    let listed = fx.scripts()?.list()?;
    let listed: Vec<&str> = listed.iter().map(|backup| backup.name.as_str()).collect();
    assert_eq!(
        listed,
        [names[3].as_str(), names[2].as_str()],
        "newest first"
    );
    Ok(())
}

#[test]
fn chosen_databases_and_bad_settings() -> Result<()> {
    let Some(fx) = Fixture::start("settings", DataSet::SMALL)? else {
        return Ok(());
    };
    let name = fx.backup(&fx.scripts()?.with("BACKUP_DATABASES", "dj_crm dj-ops"))?;
    let manifest = Manifest::read(fx.backups.path(), &name)?;
    assert_eq!(manifest.databases, ["dj-ops", "dj_crm"]);

    let run = fx
        .scripts()?
        .with("BACKUP_DATABASES", "dj_crm nope")
        .run(Script::Backup)?;
    ensure!(
        run.status.code() == Some(1) && run.stderr.contains("'nope'"),
        "{run}"
    );

    let bad: [(&str, &str, Script); 4] = [
        ("BACKUP_KEEP", "0", Script::Backup),
        ("MYSQL_PORT", "33o6", Script::Backup),
        ("BACKUP_PREFIX", "a/b", Script::Backup),
        ("BACKUP_NAME", "../etc/passwd", Script::Restore),
    ];
    for (key, value, script) in bad {
        let run = fx.scripts()?.with(key, value).run(script)?;
        ensure!(run.status.code() == Some(2), "{key}={value}: {run}");
        ensure!(run.stderr.contains(key), "{key}={value} not named: {run}");
    }
    let run = Scripts::in_checkout()?.run(Script::Restore)?;
    ensure!(
        run.status.code() == Some(2) && run.stderr.contains("BACKUP_NAME"),
        "{run}"
    );

    // A name the scripts cannot carry safely stops the default "all databases" backup loudly.
    fx.server.query("CREATE DATABASE `odd name`")?;
    let run = fx.scripts()?.run(Script::Backup)?;
    ensure!(
        run.status.code() == Some(1) && run.stderr.contains("'odd name'"),
        "{run}"
    );
    assert_eq!(
        file_names(fx.backups.path())?.len(),
        2,
        "only the first backup exists"
    );
    Ok(())
}

#[test]
fn system_schemas_bring_back_accounts_on_request() -> Result<()> {
    let Some(fx) = Fixture::start("system_schemas", DataSet::SMALL)? else {
        return Ok(());
    };
    let scripts = fx.scripts()?.with("BACKUP_INCLUDE_SYSTEM", "true");
    let name = fx.backup(&scripts)?;
    let manifest = Manifest::read(fx.backups.path(), &name)?;
    for db in ["mysql", "sys", "dj_app"] {
        ensure!(
            manifest.databases.iter().any(|have| have == db),
            "{db} missing: {manifest:?}"
        );
    }
    let late = fx
        .server
        .create_user("late", "late-pw", "SELECT ON dj_app.*")?;
    fx.server.query_as(&late, "SELECT 1")?;

    let run = fx.restore(&name)?;
    ensure!(run.success(), "restore with system schemas failed: {run}");
    // Accounts are as they were at backup time: admin still works, the later account is gone.
    fx.server.query("SELECT 1")?;
    ensure!(
        fx.server.query_as(&late, "SELECT 1").is_err(),
        "account created after the backup survived the restore of `mysql`"
    );
    Ok(())
}

/// The checks restore.sh applies and the ones list-backups.sh reports must be the same code:
/// both source backup-lib.sh and define none of its functions themselves.
#[test]
fn restore_and_list_share_the_backup_library() -> Result<()> {
    let scripts = Scripts::in_checkout()?;
    let lib_path = scripts
        .path(Script::Restore)
        .with_file_name("backup-lib.sh");
    let lib = fs::read_to_string(&lib_path)?;
    let defined: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.split_once("() {").map(|(name, _)| name.trim()))
        .collect();
    ensure!(defined.contains(&"read_manifest") && defined.contains(&"check_dump"));
    for script in [Script::Backup, Script::Restore, Script::ListBackups] {
        let text = fs::read_to_string(scripts.path(script))?;
        ensure!(
            text.contains(". \"$(dirname \"$0\")/backup-lib.sh\""),
            "{} does not source backup-lib.sh",
            script.file_name()
        );
        for f in &defined {
            ensure!(
                !text.contains(&format!("{f}() {{")),
                "{} redefines {f} from backup-lib.sh",
                script.file_name()
            );
        }
    }
    Ok(())
}
