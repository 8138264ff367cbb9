//! Throughput of the chart's backup.sh and restore.sh on the full test data set (120k event rows
//! plus multi-megabyte blobs) against a throwaway local MariaDB: MB/s of uncompressed dump.
//!
//! `cargo run --release -p datajump-tests --bin backup-bench -- --iterations 3`

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use datajump_tests::backup_data::DataSet;
use datajump_tests::backup_scripts::{Manifest, Script, Scripts};
use datajump_tests::mariadb::{Binaries, MariaDb};

#[derive(Debug, Parser)]
#[command(about = "Measures backup.sh and restore.sh throughput on a local MariaDB")]
struct Args {
    /// Backup and restore runs to measure (the median is reported).
    #[arg(long, default_value_t = 3)]
    iterations: usize,
    /// gzip level handed to backup.sh (BACKUP_GZIP_LEVEL).
    #[arg(long, default_value_t = 6)]
    gzip_level: u8,
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(args.iterations > 0, "--iterations must be at least 1");
    let bins = Binaries::locate()?;
    let server = MariaDb::start(&bins)?;
    let loading = Instant::now();
    DataSet::FULL
        .load(&server)
        .context("loading the data set")?;
    eprintln!("loaded the data set in {:.1?}", loading.elapsed());

    let backups = tempfile::tempdir()?;
    let tmp = tempfile::tempdir()?;
    let scripts = Scripts::in_checkout()?
        .for_server(&server, server.admin(), backups.path(), tmp.path())
        .with("BACKUP_GZIP_LEVEL", args.gzip_level.to_string())
        .with("BACKUP_KEEP", (args.iterations + 1).to_string());

    let mut backup_times = Vec::new();
    let mut restore_times = Vec::new();
    let mut manifest = None;
    for round in 0..args.iterations {
        // A prefix per round, so names never collide (backup.sh would wait a second).
        let round_scripts = scripts
            .clone()
            .with("BACKUP_PREFIX", format!("bench{round}"));
        let started = Instant::now();
        let run = round_scripts.run(Script::Backup)?;
        backup_times.push(started.elapsed());
        if !run.success() {
            bail!("backup.sh failed: {run}");
        }
        let name = run.stdout.trim().to_owned();
        let started = Instant::now();
        let run = round_scripts
            .with("BACKUP_NAME", &name)
            .run(Script::Restore)?;
        restore_times.push(started.elapsed());
        if !run.success() {
            bail!("restore.sh failed: {run}");
        }
        manifest = Some(Manifest::read(backups.path(), &name)?);
    }
    let manifest = manifest.context("no round ran")?;
    let dump_mb = manifest.uncompressed_size as f64 / 1e6;
    println!(
        "data set: {} event rows, {} x {} MiB documents; dump {dump_mb:.1} MB, archive {:.1} MB (gzip -{})",
        DataSet::FULL.event_rows,
        DataSet::FULL.documents,
        DataSet::FULL.document_bytes >> 20,
        manifest.size as f64 / 1e6,
        args.gzip_level,
    );
    for (what, times) in [
        ("backup", &mut backup_times),
        ("restore", &mut restore_times),
    ] {
        let median = median(times);
        println!(
            "{what:8} median {:6.2} s  {:6.1} MB/s of dump  (runs: {})",
            median.as_secs_f64(),
            dump_mb / median.as_secs_f64(),
            times
                .iter()
                .map(|time| format!("{:.2}s", time.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    Ok(())
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}
