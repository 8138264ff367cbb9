//! Wall-clock benchmark of the whole `chart-gen validate --all` command (process start to exit:
//! four `helm template` runs plus every in-process check). Budget: under 2 s on 2 cores.
//!
//! Run: `cargo bench -p chart-gen --bench validate_command` (needs helm: `bash .ci/install-tools.sh`).
//! Not a test: it prints figures and never fails on them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const RUNS: usize = 10;

fn crd_dir(root: &Path) -> Option<PathBuf> {
    std::env::var_os("DATAJUMP_CRD_DIR")
        .map(PathBuf::from)
        .or_else(|| Some(root.join("../shared/crds")))
        .filter(|d| d.is_dir())
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let mut args = vec!["validate".to_string(), "--all".to_string()];
    if let Some(dir) = crd_dir(root) {
        args.push("--crd-dir".into());
        args.push(dir.display().to_string());
    }
    let mut times: Vec<Duration> = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_chart-gen"))
            .args(&args)
            .env("DATAJUMP_REPO_ROOT", root)
            .output()
            .expect("run chart-gen");
        times.push(start.elapsed());
        if !out.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&out.stdout));
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
            eprintln!("chart-gen validate --all failed; figures would be meaningless");
            std::process::exit(1);
        }
    }
    times.sort();
    println!(
        "chart-gen validate --all ({RUNS} runs): min {:.0?}, median {:.0?}, max {:.0?} (budget 2 s)",
        times[0],
        times[RUNS / 2],
        times[RUNS - 1]
    );
}
