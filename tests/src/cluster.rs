//! A real Kubernetes control plane for the tests that talk to an API server: etcd,
//! kube-apiserver and kube-controller-manager from `../shared/k8s` (started by its
//! `cluster.sh` on loopback ports in a temporary directory), the chart's and the operators'
//! CRDs applied, and the fake kubelet playing the pods' life cycles.
//!
//! One cluster per test binary, started on first use by [`shared`] (the fake kubelet) or
//! [`shared_real_node`] (one real node: kubelet, kube-scheduler and containerd, for what runs
//! inside pods; see `node.rs`). It is torn down when the
//! test process ends however it ends (success, panic, a signal): a small guard process holds
//! the read end of a pipe whose write end only this process has, and stops the cluster when
//! that pipe closes. `DATAJUMP_KEEP_CLUSTER=1` keeps the directory (logs, kubeconfig) for a look
//! afterwards.
//!
//! When the control plane is absent or cannot start, every test that needs it fails with the
//! reason. They are skipped (with a printed line saying so) only when [`SKIP_ENV`] is `1`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Where the control plane lives unless `DATAJUMP_K8S_DIR` says otherwise.
const DEFAULT_K8S_DIR: &str = "../shared/k8s";

/// Job pods of a task whose name ends in `fails` fail (exit code 1); every other Job pod
/// succeeds. The fake kubelet matches this against pod names `<job>-<5 random characters>`,
/// and the scheduler names Jobs `<run>-<task>-<attempt>`.
pub const FAILING_TASK_SUFFIX: &str = "fails";
const FAIL_REGEX: &str = "fails-[0-9]+-[a-z0-9]{5}$";

/// Seconds a Job pod "runs" before the fake kubelet finishes it.
const JOB_SECONDS: &str = "1";

/// The workspace root (tests/ is one level below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A started cluster: its state directory and the admin kubeconfig.
#[derive(Debug)]
pub struct Cluster {
    pub dir: PathBuf,
    /// Client-certificate kubeconfig (`system:masters`).
    pub kubeconfig: PathBuf,
    /// What `kubectl apply` printed on stderr while applying the chart's own CRDs.
    pub chart_crd_apply_stderr: String,
    /// The write end of the guard's pipe: closing it (at process exit) tears the cluster down.
    _guard: Mutex<ChildStdin>,
}

/// Set to `1` to let the real-cluster tests pass (printing "skipped") where there is no control
/// plane; `.ci/test` prints the variable in its summary.
pub const SKIP_ENV: &str = "DATAJUMP_SKIP_CLUSTER_TESTS";

/// The cluster of this test binary, started on first use. `None` (after printing why) only
/// when the control plane is not available and [`SKIP_ENV`] is `1`; panics with the reason
/// otherwise, and when it is there but cannot start.
pub fn shared() -> Option<&'static Cluster> {
    static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
    let k8s = k8s_dir();
    if !k8s.join("cluster.sh").is_file() {
        let why = format!(
            "the local control plane is not at {} (set DATAJUMP_K8S_DIR to its folder)",
            k8s.display()
        );
        if std::env::var(SKIP_ENV).as_deref() != Ok("1") {
            panic!("{why}, or set {SKIP_ENV}=1 to skip the real-cluster tests");
        }
        println!("skipped: {why}; the real-cluster tests did not run ({SKIP_ENV}=1)");
        return None;
    }
    match CLUSTER.get_or_init(|| Cluster::start(&k8s, Kubelet::Fake)) {
        Ok(cluster) => Some(cluster),
        Err(e) => panic!("the test cluster did not start: {e}"),
    }
}

/// What plays the nodes of a test cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kubelet {
    /// `fake-kubelet.py`: three fake nodes, Job pods finish after [`JOB_SECONDS`].
    Fake,
    /// `node.sh`: one real node whose containers really run.
    Real,
}

/// The cluster of this test binary with one real node (containerd, runc, kubelet and
/// kube-scheduler), started on first use. One real node runs per machine: when another test
/// binary's node still holds the machine's node lock (its guard is stopping it), this waits for
/// it. Needs root and the packages `node.sh` names (`.ci/install-tools.sh` installs them).
/// Skipped like [`shared`] when the control plane is absent and [`SKIP_ENV`] is `1`.
pub fn shared_real_node() -> Option<&'static Cluster> {
    static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
    let k8s = k8s_dir();
    if !k8s.join("node.sh").is_file() {
        let why = format!("the real node is not at {}", k8s.display());
        if std::env::var(SKIP_ENV).as_deref() != Ok("1") {
            panic!(
                "{why} (set DATAJUMP_K8S_DIR), or set {SKIP_ENV}=1 to skip the real-cluster tests"
            );
        }
        println!("skipped: {why}; the real-node tests did not run ({SKIP_ENV}=1)");
        return None;
    }
    match CLUSTER.get_or_init(|| Cluster::start(&k8s, Kubelet::Real)) {
        Ok(cluster) => Some(cluster),
        Err(e) => panic!("the test cluster with a real node did not start: {e}"),
    }
}

/// The operators' CRDs the cluster has installed (beside the control plane, `../shared/crds`).
pub fn operator_crd_dir() -> PathBuf {
    k8s_dir().join("../crds")
}

/// The folder of the local control plane's scripts (`cluster.sh`, `node.sh`, `mkimage.py`).
pub fn k8s_tools_dir() -> PathBuf {
    k8s_dir()
}

fn k8s_dir() -> PathBuf {
    match std::env::var_os("DATAJUMP_K8S_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join(DEFAULT_K8S_DIR),
    }
}

impl Cluster {
    fn start(k8s: &Path, kubelet: Kubelet) -> Result<Self, String> {
        let started = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("datajump-k8s-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory: {e}"))?
            .keep();
        let cluster_sh = k8s.join("cluster.sh");
        // The guard first, so that whatever happens next is cleaned up.
        let guard = start_guard(&dir, &cluster_sh)?;
        let out = Command::new("bash")
            .arg(&cluster_sh)
            .arg("start")
            .arg(&dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", cluster_sh.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} start failed ({}):\n{}",
                cluster_sh.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let kubeconfig = dir.join("kubeconfig");
        match kubelet {
            Kubelet::Fake => start_fake_kubelet(k8s, &dir)?,
            Kubelet::Real => crate::node::start(k8s, &dir)?,
        }
        let mut cluster = Self {
            dir,
            kubeconfig,
            chart_crd_apply_stderr: String::new(),
            _guard: Mutex::new(guard),
        };
        cluster.chart_crd_apply_stderr = cluster.apply_crds()?;
        cluster.wait_for_nodes()?;
        eprintln!(
            "test cluster ready in {:.1?} ({})",
            started.elapsed(),
            cluster.dir.display()
        );
        Ok(cluster)
    }

    /// The chart's CRDs (client-side `kubectl apply`, the way a user applies them, so any
    /// warning the API server has about them is seen) and the operators' CRDs from
    /// `../shared/crds` (server-side: some are too large for the last-applied annotation).
    fn apply_crds(&self) -> Result<String, String> {
        let chart_crds = workspace_root().join("charts/datajump/crds");
        let chart = self.kubectl_ok(&["apply", "-f", &chart_crds.to_string_lossy()])?;
        let operator_crds = operator_crd_dir();
        if operator_crds.is_dir() {
            self.kubectl_ok(&[
                "apply",
                "--server-side",
                "-f",
                &operator_crds.to_string_lossy(),
            ])?;
        }
        self.kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "crd",
            "--all",
            "--timeout=60s",
        ])?;
        Ok(String::from_utf8_lossy(&chart.stderr).into_owned())
    }

    fn wait_for_nodes(&self) -> Result<(), String> {
        self.kubectl_ok(&[
            "wait",
            "--for=condition=Ready",
            "node",
            "--all",
            "--timeout=60s",
        ])
        .map(drop)
    }

    /// `kubectl` against this cluster.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(tool("kubectl"))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run kubectl: {e} (run bash .ci/install-tools.sh)"))
    }

    /// `kubectl` that must succeed; the error carries its stderr.
    pub fn kubectl_ok(&self, args: &[&str]) -> Result<Output, String> {
        let out = self.kubectl(args);
        if out.status.success() {
            Ok(out)
        } else {
            Err(format!(
                "kubectl {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Server-side apply of a YAML document (idempotent even when two tests apply the same
    /// object at once); panics with kubectl's stderr on failure.
    pub fn apply_yaml(&self, yaml: &str) {
        let mut child = Command::new(tool("kubectl"))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args([
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager=datajump-tests",
                "-f",
                "-",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kubectl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(yaml.as_bytes())
            .expect("write manifest to kubectl");
        let out = child.wait_with_output().expect("kubectl apply");
        assert!(
            out.status.success(),
            "kubectl apply failed: {}\n{yaml}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A namespace with labels (created or updated).
    pub fn namespace(&self, name: &str, labels: &[(&str, &str)]) {
        let labels: String = labels
            .iter()
            .map(|(k, v)| format!("    {k}: \"{v}\"\n"))
            .collect();
        self.apply_yaml(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels:\n    datajump.io/test: \"true\"\n{labels}"
        ));
    }

    /// Starts a long-running process (a scheduler, say) whose output goes to
    /// `DIR/logs/<name>.log`. It is killed when the returned handle drops, and by the guard
    /// if this process dies first.
    pub fn spawn(&self, name: &str, mut command: Command) -> Background {
        // A later process of the same name (a restarted scheduler) gets a log of its own.
        let logs = self.dir.join("logs");
        let log_path = (1..)
            .map(|n| match n {
                1 => logs.join(format!("{name}.log")),
                n => logs.join(format!("{name}-{n}.log")),
            })
            .find(|p| !p.exists())
            .expect("a free log name");
        let log = std::fs::File::create(&log_path).expect("create the process log");
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stem = log_path
            .file_stem()
            .map_or_else(|| name.to_string(), |s| s.to_string_lossy().into_owned());
        let pid_file = self.dir.join("run").join(format!("test-{stem}.pid"));
        std::fs::write(&pid_file, child.id().to_string()).expect("record the pid");
        Background {
            child,
            pid_file,
            log: log_path,
        }
    }

    /// A kubeconfig that authenticates as a ServiceAccount (a real token from the TokenRequest
    /// API), so a process run with it has exactly that account's RBAC rights.
    pub fn service_account_kubeconfig(&self, namespace: &str, account: &str) -> PathBuf {
        let token = self
            .kubectl_ok(&[
                "create",
                "token",
                account,
                "-n",
                namespace,
                "--duration",
                "2h",
            ])
            .expect("create a token for the service account");
        let token = String::from_utf8_lossy(&token.stdout).trim().to_string();
        let admin = std::fs::read_to_string(self.dir.join("kubeconfig-token"))
            .expect("the token kubeconfig cluster.sh wrote");
        let path = self.dir.join(format!("kubeconfig-{namespace}-{account}"));
        std::fs::write(&path, admin.replace("local-admin-token", &token))
            .expect("write the service account kubeconfig");
        path
    }

    /// Freezes the API server (SIGSTOP): connections are accepted by the kernel but nothing
    /// answers, the way an unreachable control plane looks to a client. Thawed when the
    /// returned guard drops.
    pub fn freeze_api_server(&self) -> Frozen {
        let pid = std::fs::read_to_string(self.dir.join("run/apiserver.pid"))
            .expect("cluster.sh records the API server's pid")
            .trim()
            .to_string();
        signal(&pid, "STOP");
        Frozen { pid }
    }

    /// A kube-rs client for this cluster.
    pub async fn client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .expect("the cluster's kubeconfig parses");
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .expect("kubeconfig → client config");
        kube::Client::try_from(config).expect("kube client")
    }
}

/// A process started by [`Cluster::spawn`]; killed on drop.
#[derive(Debug)]
pub struct Background {
    child: std::process::Child,
    pid_file: PathBuf,
    pub log: PathBuf,
}

impl Background {
    /// The process's output so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits up to `timeout` for the process to exit; its exit status, or `None` if it runs on.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

/// The API server stopped by [`Cluster::freeze_api_server`]; continued on drop.
#[derive(Debug)]
pub struct Frozen {
    pid: String,
}

impl Drop for Frozen {
    fn drop(&mut self) {
        signal(&self.pid, "CONT");
    }
}

/// `kill -SIG pid`.
pub fn signal(pid: &str, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid)
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{sig} {pid} failed");
}

/// Polls `check` every 200 ms until it returns `Some`, or panics after `timeout` naming `what`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The guard: `sh cluster-guard.sh DIR CLUSTER_SH` with its stdin a pipe. It waits for EOF
/// (this process gone), then stops the fake kubelet and the control plane and deletes DIR.
fn start_guard(dir: &Path, cluster_sh: &Path) -> Result<ChildStdin, String> {
    let script = workspace_root().join("tests/scripts/cluster-guard.sh");
    let mut guard = Command::new("sh")
        .arg(&script)
        .arg(dir)
        .arg(cluster_sh)
        .env(
            "KEEP",
            if std::env::var_os("DATAJUMP_KEEP_CLUSTER").is_some() {
                "1"
            } else {
                "0"
            },
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", script.display()))?;
    guard
        .stdin
        .take()
        .ok_or_else(|| "the guard has no stdin".to_string())
}

fn start_fake_kubelet(k8s: &Path, dir: &Path) -> Result<(), String> {
    let log = std::fs::File::create(dir.join("logs/fake-kubelet.log"))
        .map_err(|e| format!("cannot create the fake kubelet's log: {e}"))?;
    let child = Command::new("python3")
        .arg(k8s.join("fake-kubelet.py"))
        .arg("--kubeconfig")
        .arg(dir.join("kubeconfig-token"))
        .args(["--job-seconds", JOB_SECONDS, "--fail", FAIL_REGEX])
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start fake-kubelet.py: {e}"))?;
    std::fs::write(dir.join("fake-kubelet.pid"), child.id().to_string())
        .map_err(|e| format!("cannot record the fake kubelet's pid: {e}"))
}

/// The credentials Secret of an environment's profile, created with every key the chart reads:
/// `secrets.existingSecret` where the profile names one, else the default
/// `<fullname>-credentials` of the release `datajump`. A prerequisite the chart README names.
pub fn credentials_secret(cluster: &Cluster, env: chart_gen::model::Environment, ns: &str) {
    let named = chart_gen::profiles::profile(env).secrets.existing_secret;
    let name = if named.is_empty() {
        "datajump-credentials".to_string()
    } else {
        named
    };
    let data: String = chart_gen::model::CREDENTIAL_KEYS
        .iter()
        .map(|k| format!("  {k}: test-{k}\n"))
        .collect();
    cluster.apply_yaml(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {ns}\nstringData:\n{data}"
    ));
}

/// A pinned tool from `.tools/bin` (installed by `.ci/install-tools.sh`), else from PATH.
pub fn tool(name: &str) -> PathBuf {
    let pinned = workspace_root().join(".tools/bin").join(name);
    if pinned.is_file() {
        pinned
    } else {
        PathBuf::from(name)
    }
}

/// A workspace binary from the target directory of this test binary (`cargo test --workspace`
/// builds every package's binaries alongside). A nested `cargo build -p …` would resolve
/// features differently and rebuild half the tree, so instead a binary older than the sources
/// it is built from is refused with the command that brings it up to date.
pub fn cargo_bin(bin: &str, sources: &[&str]) -> PathBuf {
    let target_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf()))
        .expect("test binaries live in target/<profile>/deps");
    let path = target_dir.join(bin);
    let built = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} is missing: run the tests with `cargo test --workspace` (or `cargo build --bin {bin}` first)",
                path.display()
            )
        });
    for dir in sources {
        if let Some(newer) = newer_than(&workspace_root().join(dir), built) {
            panic!(
                "{} is older than {}: run `cargo test --workspace` (or `cargo build --bin {bin}`) so the tests do not exercise a stale binary",
                path.display(),
                newer.display()
            );
        }
    }
    path
}

/// The first file under `dir` (or `dir` itself, a file) modified after `than`.
pub(crate) fn newer_than(dir: &Path, than: std::time::SystemTime) -> Option<PathBuf> {
    let meta = std::fs::metadata(dir).ok()?;
    if meta.is_file() {
        return meta
            .modified()
            .is_ok_and(|m| m > than)
            .then(|| dir.to_path_buf());
    }
    let entries = std::fs::read_dir(dir).ok()?;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            if let Some(found) = newer_than(&path, than) {
                return Some(found);
            }
        } else if meta.modified().is_ok_and(|m| m > than) {
            return Some(path);
        }
    }
    None
}
