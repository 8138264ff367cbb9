//! `kubectl datajump --help`, process start to exit (budget: under 20 ms). Spawns the binary cargo
//! built for this bench (release-like `bench` profile) N times and reports the median and p90.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 101;
const BUDGET: Duration = Duration::from_millis(20);

fn main() {
    let bin = env!("CARGO_BIN_EXE_kubectl-datajump");
    // Warm the page cache once so we measure start-up, not the first disk read.
    let _ = Command::new(bin)
        .arg("--help")
        .stdout(Stdio::null())
        .status();
    let mut samples: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            let status = Command::new(bin)
                .arg("--help")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let took = start.elapsed();
            assert!(
                status.is_ok_and(|s| s.success()),
                "kubectl-datajump --help failed"
            );
            took
        })
        .collect();
    samples.sort();
    let median = samples[RUNS / 2];
    let p90 = samples[RUNS * 9 / 10];
    println!(
        "kubectl-datajump --help: median {:.2} ms, p90 {:.2} ms, min {:.2} ms over {RUNS} runs (budget {} ms): {}",
        ms(median),
        ms(p90),
        ms(samples[0]),
        BUDGET.as_millis(),
        if median < BUDGET {
            "within budget"
        } else {
            "OVER BUDGET"
        }
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
