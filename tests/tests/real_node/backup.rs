//! The release's MySQL backup in real containers, against MySQL outside the cluster (seed 004's
//! shape: a MariaDB server on this host, the release in `external` mode): `backup create
//! --wait` runs the chart's CronJob as a Job whose container dumps the server over the pod
//! network onto the backup volume (a directory of this host behind a PersistentVolume), and
//! prints the backup's name from the container's log; `backup list` runs the chart's listing
//! Job and reads its verdict from its log; `restore` stops the scheduler, runs the chart's
//! restore Job against the server and brings the scheduler back. On the fake kubelet none of
//! this could be proven: no container ran the scripts and no log existed. The test has the
//! release alone: a restore stops the scheduler other tests' runs need.
//!
//! The image is the host's MariaDB client and dump programs with busybox, under the reference
//! the chart renders (`library/mysql`).

use datajump_tests::node::{DEV_DATABASE, DEV_TABLE, dev_backup_dir, dev_mysql};
use serde_json::Value;
use sha2::{Digest, Sha256};

use std::time::Duration;

use datajump_tests::cluster::wait_until;

use crate::{dj, installed_alone};

#[test]
fn backup_then_restore_the_external_mysql_from_the_volume() {
    let Some(installed) = installed_alone() else {
        return;
    };
    let cluster = installed.cluster;
    // A row written just now: the dump is of the server as it is, not of a fixture.
    let marker = format!("backup-{}", std::process::id());
    dev_mysql()
        .query(&format!(
            "INSERT INTO {DEV_DATABASE}.{DEV_TABLE} VALUES ('{marker}')"
        ))
        .expect("insert the marker row");

    let created = dj(
        cluster,
        &[
            "backup",
            "create",
            "--env",
            "dev",
            "--wait",
            "--timeout",
            "3m",
        ],
    );
    assert!(
        created.ok,
        "backup create --wait: {}{}",
        created.stdout, created.stderr
    );
    let name = created.stdout.trim().to_string();
    assert!(
        name.starts_with("datajump-") && !name.contains(char::is_whitespace),
        "the backup's name alone on stdout: {name:?}"
    );

    // On the node's disk: the archive and its manifest, which names the release's database
    // and the archive's size and SHA-256.
    let dir = dev_backup_dir(cluster);
    let archive = std::fs::read(dir.join(format!("{name}.sql.gz"))).expect("the archive");
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(dir.join(format!("{name}.json"))).expect("the manifest"),
    )
    .expect("a JSON manifest");
    assert_eq!(
        manifest["databases"],
        serde_json::json!([DEV_DATABASE]),
        "{manifest:#}"
    );
    assert_eq!(manifest["size"], archive.len(), "{manifest:#}");
    assert_eq!(
        manifest["sha256"].as_str(),
        Some(format!("{:x}", Sha256::digest(&archive)).as_str()),
        "{manifest:#}"
    );
    let unzipped = std::process::Command::new("gzip")
        .arg("-dc")
        .arg(dir.join(format!("{name}.sql.gz")))
        .output()
        .expect("run gzip");
    assert!(unzipped.status.success(), "the archive is a whole gzip");
    let dump = String::from_utf8(unzipped.stdout).expect("a text dump");
    for expected in ["nightly-etl", "market-close", marker.as_str()] {
        assert!(
            dump.contains(&format!("'{expected}'")),
            "the dump holds the row {expected}"
        );
    }
    assert!(
        dump.trim_end()
            .lines()
            .last()
            .is_some_and(|l| l.contains("Dump completed")),
        "the dump ran to its end"
    );

    // `backup list` reads the listing Job's log: the backup is there, verified.
    let listed = dj(cluster, &["backup", "list", "--env", "dev", "-o", "json"]);
    assert!(listed.ok, "backup list: {}", listed.stderr);
    let list = listed.json();
    let entry = list["backups"]
        .as_array()
        .and_then(|l| l.iter().find(|b| b["name"] == name.as_str()))
        .unwrap_or_else(|| panic!("{name} listed: {list:#}"));
    assert_eq!(entry["status"], "verified", "{entry:#}");

    // Changed after the backup: a row gone, a row added. The restore brings the server back to
    // the backup's state, with the scheduler stopped meanwhile and running again after.
    let server = dev_mysql();
    server
        .query(&format!(
            "DELETE FROM {DEV_DATABASE}.{DEV_TABLE} WHERE name = 'market-close'; \
             INSERT INTO {DEV_DATABASE}.{DEV_TABLE} VALUES ('after-backup')"
        ))
        .expect("change the data");
    let restored = dj(
        cluster,
        &[
            "restore",
            "--env",
            "dev",
            &name,
            "--yes",
            "--timeout",
            "3m",
            "-o",
            "json",
        ],
    );
    assert!(
        restored.ok,
        "restore: {}{}",
        restored.stdout, restored.stderr
    );
    let report = restored.json();
    assert_eq!(report["succeeded"], true, "{report:#}");
    let rows = server
        .query(&format!(
            "SELECT name FROM {DEV_DATABASE}.{DEV_TABLE} ORDER BY name"
        ))
        .expect("read the rows");
    let rows: Vec<&str> = rows
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut expected = vec!["market-close", "nightly-etl", marker.as_str()];
    expected.sort_unstable();
    assert_eq!(rows, expected, "the rows as they were at the backup");
    wait_until(
        "the scheduler running again",
        Duration::from_secs(120),
        || {
            let out = cluster.kubectl(&[
                "get",
                "deployment",
                "datajump-scheduler",
                "-n",
                crate::NS,
                "-o",
                "jsonpath={.status.readyReplicas}",
            ]);
            (String::from_utf8_lossy(&out.stdout) == "1").then_some(())
        },
    );
}
