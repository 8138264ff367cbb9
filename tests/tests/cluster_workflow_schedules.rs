//! Several schedules per Workflow on a real API server, with the real scheduler and plugin:
//!
//! - the API server refuses `schedule` and `schedules` together, `timezone` beside `schedules`,
//!   an entry given twice and an empty list (the CRD's CEL rules and schema), each with its
//!   message, and `workflow validate` refuses the same files offline (exit 2, naming the path);
//! - a Workflow with two schedules in two zones (every 2 minutes in UTC, every 3 in Kolkata,
//!   UTC+05:30) that meet every 6 minutes, caught up over the last quarter of an hour (its
//!   `lastScheduleTime` set back, as after an outage, with `catchUpPolicy: All`): exactly one run
//!   per instant of either schedule, including the instants where they meet; `lastScheduleTime`
//!   and `nextScheduleTime` of the union; then the next tick live, on time;
//! - the market-close sample (`tests/e2e/market-close.yaml`, four schedules in four zones)
//!   backfilled over a past week: one run per close, each day read in its market's own zone, and
//!   the same backfill again creating nothing.
//!
//! The fake kubelet plays each task's pod (Succeeded after a second).

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Duration as Span, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use datajump_tests::cluster::{self, Background, Cluster, wait_until, workspace_root};
use datajump_tests::plugin::{install_dev, plugin, submit_workflow};
use datajump_tests::scheduler::{free_port, start_scheduler, wait_leading};
use serde_json::Value;

const NS: &str = "schedules-dev";
const SAMPLE: &str = "tests/e2e/market-close.yaml";

fn get_json(cluster: &Cluster, args: &[&str]) -> Value {
    let out = cluster.kubectl_ok(args).unwrap_or_else(|e| panic!("{e}"));
    serde_json::from_slice(&out.stdout).expect("kubectl JSON")
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.to_utc())
}

/// The names of the runs matching a label selector.
fn run_names(cluster: &Cluster, selector: &str) -> BTreeSet<String> {
    get_json(
        cluster,
        &[
            "get",
            "workflowruns",
            "-n",
            NS,
            "-l",
            selector,
            "-o",
            "json",
        ],
    )["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["metadata"]["name"].as_str().map(str::to_string))
        .collect()
}

fn workflow_status(cluster: &Cluster, name: &str) -> Value {
    get_json(cluster, &["get", "workflow", name, "-n", NS, "-o", "json"])["status"].clone()
}

#[test]
fn several_schedules_on_a_real_api_server() {
    let Some(cluster) = cluster::shared() else {
        return;
    };
    install_dev(cluster, NS);
    let port = free_port();
    let mut scheduler = start_scheduler(cluster, NS, port, &[]);
    wait_leading(port);

    refused_by_the_api_server_and_by_validate(cluster);
    two_schedules_caught_up_then_live(cluster, &scheduler);
    a_week_of_the_sample_backfilled(cluster, &scheduler);
    assert!(
        scheduler.running(),
        "the scheduler died:\n{}",
        scheduler.output()
    );
}

/// A Workflow named `bad` with `schedules` lines; its other fields are fine.
fn with_schedules(lines: &str) -> String {
    format!(
        "apiVersion: datajump.io/v1alpha1\nkind: Workflow\nmetadata: {{name: bad, namespace: {NS}}}\nspec:\n{lines}  tasks: [{{name: load, image: busybox}}]\n"
    )
}

fn refused_by_the_api_server_and_by_validate(cluster: &Cluster) {
    let cases = [
        (
            "  schedule: \"0 2 * * *\"\n  schedules: [{schedule: \"0 9 * * *\"}]\n",
            "give either schedule (one cron schedule) or schedules (several), not both",
            "spec.schedules: give either spec.schedule (one cron schedule) or spec.schedules (several), not both",
        ),
        (
            "  timezone: Asia/Shanghai\n  schedules: [{schedule: \"0 9 * * *\"}]\n",
            "timezone goes with schedule; with schedules, give each entry its own timezone",
            "spec.timezone: goes with spec.schedule; with spec.schedules, give each entry its own timezone",
        ),
        (
            "  schedules:\n    - {schedule: \"0 9 * * *\", timezone: UTC}\n    - {schedule: \"0 9 * * *\"}\n",
            "each schedule at most once",
            "spec.schedules[1]: \"0 9 * * *\" in UTC is spec.schedules[0] again",
        ),
        (
            "  schedules: []\n",
            "should have at least 1 items",
            "spec.schedules: at least one schedule is required",
        ),
    ];
    for (i, (lines, server, offline)) in cases.iter().enumerate() {
        let file = cluster.dir.join(format!("bad-schedules-{i}.yaml"));
        std::fs::write(&file, with_schedules(lines)).expect("write the workflow");
        let file = file.to_string_lossy();
        let applied = cluster.kubectl(&["apply", "--dry-run=server", "-f", &file]);
        let stderr = String::from_utf8_lossy(&applied.stderr);
        assert!(
            !applied.status.success() && stderr.contains(server),
            "the API server should refuse {lines:?} saying {server:?}: {stderr}"
        );
        let validate = plugin(cluster, &["workflow", "validate", "-f", &file]);
        assert_eq!(validate.code, Some(2), "{}", validate.stderr);
        assert!(
            validate.stderr.contains(offline),
            "{offline:?} missing from: {}",
            validate.stderr
        );
    }
    // The rules let a good list through.
    let file = cluster.dir.join("good-schedules.yaml");
    let good = with_schedules(
        "  schedules:\n    - {schedule: \"0 9 * * *\", timezone: Asia/Shanghai}\n    - {schedule: \"0 9 * * *\"}\n",
    );
    std::fs::write(&file, good).expect("write the workflow");
    cluster
        .kubectl_ok(&["apply", "--dry-run=server", "-f", &file.to_string_lossy()])
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Which of the `meet` workflow's schedules fire at `t`: every 2 minutes in UTC, every 3
/// minutes of Kolkata's wall clock.
fn meet_fires(t: DateTime<Utc>) -> (bool, bool) {
    let kolkata = t.with_timezone(&chrono_tz::Asia::Kolkata);
    (
        t.minute().is_multiple_of(2),
        kolkata.minute().is_multiple_of(3),
    )
}

/// The instants in `(after, upto]` at which either schedule of `meet` fires, oldest first.
fn meet_ticks(after: DateTime<Utc>, upto: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut t = after + Span::minutes(1);
    let mut out = Vec::new();
    while t <= upto {
        let (a, b) = meet_fires(t);
        if a || b {
            out.push(t);
        }
        t += Span::minutes(1);
    }
    out
}

fn run_name(workflow: &str, t: DateTime<Utc>) -> String {
    format!("{workflow}-{}", t.format("%Y%m%d%H%M"))
}

fn two_schedules_caught_up_then_live(cluster: &Cluster, scheduler: &Background) {
    let workflow = format!(
        "apiVersion: datajump.io/v1alpha1\nkind: Workflow\nmetadata: {{name: meet, namespace: {NS}}}\nspec:\n  suspend: true\n  schedules:\n    - {{schedule: \"*/2 * * * *\"}}\n    - {{schedule: \"*/3 * * * *\", timezone: Asia/Kolkata}}\n  catchUpPolicy: All\n  maxCatchUpRuns: 100\n  successfulRunsHistoryLimit: 100\n  tasks: [{{name: load, image: busybox}}]\n"
    );
    let submit = submit_workflow(cluster, "meet", &workflow, &[]);
    assert!(submit.ok, "{}", submit.stderr);
    wait_until(
        "the scheduler to look at the suspended workflow",
        Duration::from_secs(30),
        || time(&workflow_status(cluster, "meet")["nextScheduleTime"]),
    );
    // As after an outage: the last tick taken was a quarter of an hour ago.
    let now = Utc::now();
    let since = now
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .expect("a minute")
        - Span::minutes(15);
    cluster
        .kubectl_ok(&[
            "patch",
            "workflow",
            "meet",
            "-n",
            NS,
            "--subresource=status",
            "--type=merge",
            "-p",
            &format!(
                r#"{{"status":{{"lastScheduleTime":"{}"}}}}"#,
                since.to_rfc3339()
            ),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
    let resume = plugin(cluster, &["workflow", "resume", "meet", "-n", NS]);
    assert!(resume.ok, "{}", resume.stderr);
    let resumed = Utc::now();

    let due: BTreeSet<String> = meet_ticks(since, resumed)
        .into_iter()
        .map(|t| run_name("meet", t))
        .collect();
    wait_until(
        "a run for every missed tick",
        Duration::from_secs(60),
        || {
            run_names(cluster, "datajump.io/workflow=meet")
                .is_superset(&due)
                .then_some(())
        },
    );
    // Status first, then the runs: every tick up to lastScheduleTime has its run by then.
    let status = workflow_status(cluster, "meet");
    let last = time(&status["lastScheduleTime"]).expect("lastScheduleTime");
    let runs = run_names(cluster, "datajump.io/workflow=meet");
    let expected = meet_ticks(since, last);
    let meetings: Vec<String> = expected
        .iter()
        .filter(|t| meet_fires(**t) == (true, true))
        .map(|t| run_name("meet", *t))
        .collect();
    assert!(
        meetings.len() >= 2,
        "a quarter of an hour holds two meetings: {meetings:?}"
    );
    let expected: BTreeSet<String> = expected.iter().map(|t| run_name("meet", *t)).collect();
    let upto_last: BTreeSet<String> = runs
        .iter()
        .filter(|r| r.as_str() <= run_name("meet", last).as_str())
        .cloned()
        .collect();
    assert_eq!(
        upto_last,
        expected,
        "one run per instant of either schedule, the meetings {meetings:?} once\nscheduler log:\n{}",
        scheduler.output()
    );
    assert_eq!(status["missedTicks"], 0, "{status}");
    let next = time(&status["nextScheduleTime"]).expect("nextScheduleTime");
    assert_eq!(
        Some(next),
        meet_ticks(last, last + Span::minutes(5)).first().copied(),
        "the next tick of either schedule"
    );

    // The next tick, live: its run is created on time.
    let live = time(&workflow_status(cluster, "meet")["nextScheduleTime"]).expect("next");
    let wait = (live - Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(30);
    let created = wait_until("the live tick's run", wait, || {
        let run = cluster.kubectl(&[
            "get",
            "workflowrun",
            &run_name("meet", live),
            "-n",
            NS,
            "-o",
            "json",
        ]);
        run.status.success().then(|| {
            let run: Value = serde_json::from_slice(&run.stdout).expect("run JSON");
            time(&run["metadata"]["creationTimestamp"]).expect("created")
        })
    });
    assert!(
        created >= live && created - live <= Span::seconds(10),
        "the {live} run was created at {created}"
    );

    // Shown as the union: by the plugin, and in kubectl's columns.
    let next = wait_until("the next tick recorded", Duration::from_secs(30), || {
        time(&workflow_status(cluster, "meet")["nextScheduleTime"]).filter(|n| *n > live)
    });
    assert_eq!(
        Some(next),
        meet_ticks(live, live + Span::minutes(5)).first().copied()
    );
    let get = plugin(cluster, &["workflow", "get", "meet", "-n", NS]);
    assert!(
        get.stdout.starts_with(&format!(
            "Workflow meet  schedules: */2 * * * *; */3 * * * * (Asia/Kolkata)  suspended: false  latest run: {}\nnext run: {}\n",
            run_name("meet", live),
            next.to_rfc3339()
        )),
        "{}",
        get.stdout
    );
    let columns = cluster
        .kubectl_ok(&["get", "workflow", "meet", "-n", NS])
        .unwrap_or_else(|e| panic!("{e}"));
    let columns = String::from_utf8_lossy(&columns.stdout);
    assert!(
        columns.contains("NEXT SCHEDULE")
            && columns.contains(&next.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        "{columns}"
    );
    let suspend = plugin(cluster, &["workflow", "suspend", "meet", "-n", NS]);
    assert!(suspend.ok, "{}", suspend.stderr);
}

/// `local` (a day and a wall-clock time in `zone`) in UTC.
fn at(zone: Tz, day: NaiveDate, hour: u32, minute: u32) -> DateTime<Utc> {
    zone.from_local_datetime(&day.and_hms_opt(hour, minute, 0).expect("a time"))
        .single()
        .expect("not a DST change")
        .to_utc()
}

fn a_week_of_the_sample_backfilled(cluster: &Cluster, scheduler: &Background) {
    let sample = workspace_root().join(SAMPLE);
    let sample = sample.to_string_lossy();
    let submit = plugin(cluster, &["workflow", "submit", "-f", &sample, "-n", NS]);
    assert!(submit.ok, "{}", submit.stderr);
    let window = [
        "workflow",
        "backfill",
        "market-close",
        "-n",
        NS,
        "--from",
        "2026-11-02",
        "--to",
        "2026-11-08",
        "--parallel",
        "4",
    ];
    let backfill = plugin(
        cluster,
        &[window.as_slice(), &["--watch", "--timeout", "5m"]].concat(),
    );
    assert!(
        backfill.ok,
        "{}{}\nscheduler log:\n{}",
        backfill.stdout,
        backfill.stderr,
        scheduler.output()
    );
    assert!(
        backfill.stdout.contains("16 runs succeeded, 0 failed"),
        "{}",
        backfill.stdout
    );
    // Monday 2 to Friday 6 November: each market's close on its own calendar day; Saturday 7
    // at 06:00 UTC the week's reconciliation.
    let mut closes = BTreeSet::from([run_name(
        "market-close",
        Utc.with_ymd_and_hms(2026, 11, 7, 6, 0, 0).unwrap(),
    )]);
    for d in 2..=6 {
        let day = NaiveDate::from_ymd_opt(2026, 11, d).expect("a day");
        for (zone, h, m) in [
            (chrono_tz::Asia::Shanghai, 15, 30),
            (chrono_tz::Europe::London, 17, 0),
            (chrono_tz::America::New_York, 16, 30),
        ] {
            closes.insert(run_name("market-close", at(zone, day, h, m)));
        }
    }
    let name = "market-close-backfill-202611011600-202611090459";
    assert!(backfill.stdout.contains(name), "{}", backfill.stdout);
    assert_eq!(
        run_names(cluster, &format!("datajump.io/backfill={name}")),
        closes
    );
    let again = plugin(
        cluster,
        &[window.as_slice(), &["--dry-run", "-o", "json"]].concat(),
    )
    .json();
    assert_eq!(again["runs"], Value::Array(Vec::new()), "{again}");
    assert_eq!(again["existing"], 16, "{again}");
}
