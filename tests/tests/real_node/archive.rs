//! Logs that outlive their pods (Argo's log archive): with `scheduler.logArchive` pointed at
//! moto, the scheduler streams each finished task pod's log into the bucket before it deletes
//! the pod (`finishedPodRetentionSeconds`, short here), and `workflow logs` reads it back
//! through the scheduler once the pod is gone. The log is larger than the scheduler's memory
//! limit (128Mi), so storing it whole in memory would get the scheduler OOM-killed: the
//! scheduler must stream it, and keep running.

use std::time::Duration;

use datajump_tests::cluster::{Cluster, wait_until};
use serde_json::Value;
use sha2::{Digest, Sha256};

use datajump_tests::plugin::plugin_command;

use datajump_tests::node::{ARCHIVE_BUCKET, ARCHIVE_PREFIX, dev_log_archive};
use datajump_tests::runs::{
    get_json, list, started_run, task, task_phase, wait_for_end, wait_for_run,
};

use crate::scheduler::scheduler_pod;
use crate::tasks::run_to_end;
use crate::{E2E_IMAGE, NS, dj, installed, submit};

/// Lines the task prints, each [`LINE_BYTES`] long: 200 MiB in all.
const LINES: u64 = 209_715;
const LINE_BYTES: u64 = 1001;

/// The scheduler's memory limit (the chart's default `scheduler.resources.limits.memory`).
const SCHEDULER_MEMORY_LIMIT: u64 = 128 * 1024 * 1024;

/// What the task prints: numbered lines (so a lost, repeated or reordered part changes the
/// checksum) padded to 1,001 bytes; its awk program makes the same bytes.
fn expected_log() -> Vec<u8> {
    let pad = "x".repeat(990);
    let mut out = Vec::with_capacity((LINES * LINE_BYTES) as usize);
    for i in 1..=LINES {
        out.extend_from_slice(format!("{i:09} {pad}\n").as_bytes());
    }
    out
}

fn workflow() -> String {
    format!(
        r#"apiVersion: datajump.io/v1alpha1
kind: Workflow
metadata: {{name: chatty, namespace: {NS}}}
spec:
  tasks:
    - name: chatty
      image: {E2E_IMAGE}
      command:
        - /busybox/sh
        - -c
        - |
          awk 'BEGIN {{ pad = sprintf("%990s", ""); gsub(/ /, "x", pad); for (i = 1; i <= {LINES}; i++) printf "%09d %s\n", i, pad }}'
      resources: {{limits: {{cpu: "1", memory: 32Mi}}}}
"#
    )
}

/// The task pod of Job `job`, if it still exists.
fn pod_of(cluster: &Cluster, job: &str) -> Option<Value> {
    list(cluster, NS, "pods", &format!("job-name={job}"))
        .into_iter()
        .next()
}

/// Whether the kubelet rotated the pod's log (its `containerLogMaxSize` is 10Mi, checked every
/// 10 s while a container runs): the API, and so anyone reading the log through it, then
/// serves only the newest file. The node keeps the files under `DIR/node/pod-logs`.
fn kubelet_rotated(cluster: &Cluster, pod: &Value) -> bool {
    let dir = cluster.dir.join("node/pod-logs").join(format!(
        "{NS}_{}_{}/task",
        pod["metadata"]["name"].as_str().unwrap_or_default(),
        pod["metadata"]["uid"].as_str().unwrap_or_default()
    ));
    std::fs::read_dir(&dir)
        .map(|entries| entries.flatten().any(|e| e.file_name() != "0.log"))
        .unwrap_or(false)
}

/// The scheduler pod's memory cgroup (cgroup v1, the kubelet's cgroupfs driver): the pod
/// runs on this host.
fn scheduler_memory(cluster: &Cluster) -> (u64, u64) {
    let pod = &scheduler_pod(cluster);
    assert_eq!(
        pod["status"]["containerStatuses"][0]["restartCount"], 0,
        "the scheduler never restarted (an OOM kill would): {:#}",
        pod["status"]
    );
    let uid = pod["metadata"]["uid"].as_str().expect("uid");
    let qos = pod["status"]["qosClass"]
        .as_str()
        .expect("QoS class")
        .to_lowercase();
    let base = std::path::Path::new("/sys/fs/cgroup/memory/kubepods");
    let dir = match qos.as_str() {
        "guaranteed" => base.join(format!("pod{uid}")),
        _ => base.join(&qos).join(format!("pod{uid}")),
    };
    let read = |file: &str| -> u64 {
        std::fs::read_to_string(dir.join(file))
            .unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()))
            .trim()
            .parse()
            .expect("a number")
    };
    (
        read("memory.max_usage_in_bytes"),
        read("memory.usage_in_bytes"),
    )
}

#[test]
fn a_log_larger_than_the_schedulers_memory_outlives_its_pod() {
    let Some(installed) = installed() else { return };
    let cluster = installed.cluster;
    let expected = expected_log();
    let expected_sha = Sha256::digest(&expected);
    submit(cluster, "chatty", &workflow());

    // The kubelet may rotate a log this size while the task writes it (a race with its 10 s
    // check), losing the start of it for every reader; then the run is repeated.
    let (run, job) = (1..=3)
        .find_map(|attempt| {
            let run = run_to_end(cluster, "chatty", &[]);
            assert_eq!(run["status"]["phase"], "Succeeded", "{:#}", run["status"]);
            let job = task(&run, "chatty")["jobName"]
                .as_str()
                .expect("job")
                .to_string();
            let rotated = pod_of(cluster, &job).is_some_and(|pod| kubelet_rotated(cluster, &pod));
            if rotated {
                println!("run {attempt}: the kubelet rotated the task's log; running it again");
                return None;
            }
            Some((run, job))
        })
        .expect("a run whose log the kubelet kept whole (3 tries)");
    let run_name = run["metadata"]["name"]
        .as_str()
        .expect("run name")
        .to_string();

    // The scheduler archives the log, then deletes the pod (the Job stays).
    wait_until(
        "the task pod archived and deleted",
        Duration::from_secs(240),
        || pod_of(cluster, &job).is_none().then_some(()),
    );
    let key = format!("{ARCHIVE_PREFIX}/{NS}/chatty/{run_name}/chatty/1.log");
    let object = dev_log_archive()
        .get(ARCHIVE_BUCKET, &key)
        .expect("the archived log");
    assert_eq!(object.len(), expected.len(), "the archived log's size");
    assert!(
        Sha256::digest(&object) == expected_sha,
        "the archived log is byte for byte what the task printed"
    );
    drop(object);

    let (peak, now) = scheduler_memory(cluster);
    println!(
        "scheduler pod memory (cgroup): peak {:.1} MiB, now {:.1} MiB, limit 128 MiB; log {:.1} MiB",
        peak as f64 / 1048576.0,
        now as f64 / 1048576.0,
        expected.len() as f64 / 1048576.0
    );
    assert!(peak < SCHEDULER_MEMORY_LIMIT, "peak {peak} under the limit");

    // The pod is gone: `workflow logs` reads the archive, and says so. Its 200 MiB go to a
    // file, not through the test log.
    let printed = cluster.dir.join("chatty.log");
    let out = plugin_command()
        .args(["workflow", "logs", &run_name, "--task", "chatty", "-n", NS])
        .arg("--kubeconfig")
        .arg(&cluster.kubeconfig)
        .stdout(std::fs::File::create(&printed).expect("create the output file"))
        .output()
        .expect("run workflow logs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "workflow logs from the archive: {stderr}"
    );
    assert!(
        stderr.contains("this log is from the log archive") && stderr.contains(&job),
        "the note says where the log came from:\n{stderr}"
    );
    let mut shown = Sha256::new();
    let mut shown_len = 0;
    let file = std::io::BufReader::new(std::fs::File::open(&printed).expect("the output"));
    for line in std::io::BufRead::lines(file) {
        let line = line.expect("a line");
        let line = line
            .strip_prefix("[chatty] ")
            .unwrap_or_else(|| panic!("a prefixed line: {line:.80}"));
        shown.update(line.as_bytes());
        shown.update(b"\n");
        shown_len += line.len() + 1;
    }
    std::fs::remove_file(&printed).ok();
    assert_eq!(shown_len, expected.len(), "what workflow logs printed");
    assert!(
        shown.finalize() == expected_sha,
        "workflow logs printed the task's log"
    );
}

/// Two tasks the scheduler stops while they run, each printing a line when it starts and one
/// when it is told to stop (SIGTERM): `timed` by its own timeout, `held` by a terminate.
fn stopped_workflow() -> String {
    let task = |name: &str, extra: &str| {
        format!(
            r#"    - name: {name}
      image: {E2E_IMAGE}
      command:
        - /busybox/sh
        - -c
        - trap 'echo {name} got SIGTERM; exit 143' TERM; echo {name} started; sleep 300 & wait
{extra}"#
        )
    };
    format!(
        "apiVersion: datajump.io/v1alpha1\nkind: Workflow\nmetadata: {{name: stopped, namespace: {NS}}}\nspec:\n  tasks:\n{}{}",
        task("timed", "      timeoutSeconds: 5\n"),
        task("held", "")
    )
}

/// The archived log of `task`'s first attempt in run `run` of workflow `stopped`, once there.
fn archived(run: &str, task: &str) -> String {
    let key = format!("{ARCHIVE_PREFIX}/{NS}/stopped/{run}/{task}/1.log");
    let object = wait_until(
        &format!("{task}'s log in the archive"),
        Duration::from_secs(180),
        || dev_log_archive().get(ARCHIVE_BUCKET, &key).ok(),
    );
    String::from_utf8(object).expect("a text log")
}

#[test]
fn logs_of_tasks_stopped_while_running_are_archived_to_their_last_line() {
    let Some(installed) = installed() else { return };
    let cluster = installed.cluster;
    submit(cluster, "stopped", &stopped_workflow());
    let run = started_run(&dj(cluster, &["workflow", "run", "stopped"]));

    // `timed` passes its timeout: the kubelet stops its pod, which stays, with its log.
    let timed_out = wait_for_run(
        cluster,
        NS,
        &run,
        "timed to time out",
        Duration::from_secs(120),
        |r| task_phase(r, "timed").as_deref() == Some("Failed"),
    );
    let timed = task(&timed_out, "timed");
    assert_eq!(
        (&timed["reason"], &timed["message"]),
        (
            &Value::from("DeadlineExceeded"),
            &Value::from("attempt 1 timed out")
        ),
        "{timed:#}"
    );

    // `held` still runs: terminate the run. Its pod is stopped where it runs, not deleted.
    let terminate = dj(
        cluster,
        &[
            "workflow",
            "terminate",
            &run,
            "--yes",
            "--wait",
            "--timeout",
            "2m",
        ],
    );
    assert!(
        terminate.ok,
        "workflow terminate: {}{}",
        terminate.stdout, terminate.stderr
    );
    let done = wait_for_end(cluster, NS, &run, Duration::from_secs(60));
    assert_eq!(
        done["status"]["phase"], "Terminated",
        "{:#}",
        done["status"]
    );
    let held = task(&done, "held");
    assert_eq!(held["reason"], "Terminated", "{held:#}");

    // Both logs reach the archive whole: the line printed on SIGTERM, when the container was
    // being stopped, too. Then the pods go; the Jobs stay as the attempts' record.
    for name in ["timed", "held"] {
        let log = archived(&run, name);
        assert_eq!(
            log,
            format!("{name} started\n{name} got SIGTERM\n"),
            "{name}'s archived log"
        );
        let job = datajump_api::names::job_name(&run, name, 1);
        wait_until(
            &format!("{name}'s pod deleted once archived"),
            Duration::from_secs(60),
            || pod_of(cluster, &job).is_none().then_some(()),
        );
        let job = get_json(cluster, &["get", "job", "-n", NS, &job, "-o", "json"]);
        assert!(
            job["metadata"]["deletionTimestamp"].is_null(),
            "the Job stays: {job:#}"
        );
    }
    // The container's own ending is recorded beside the scheduler's verdict (its SIGTERM trap
    // exits 143); read once the pods were seen.
    let done = get_json(
        cluster,
        &["get", "workflowrun", "-n", NS, &run, "-o", "json"],
    );
    for name in ["timed", "held"] {
        assert_eq!(
            task(&done, name)["exitCode"],
            143,
            "{:#}",
            task(&done, name)
        );
    }

    // `workflow logs` reads them from the archive.
    let logs = dj(cluster, &["workflow", "logs", &run, "--task", "held"]);
    assert!(logs.ok, "{}", logs.stderr);
    assert_eq!(
        logs.stdout,
        "[held] held started\n[held] held got SIGTERM\n"
    );
}
