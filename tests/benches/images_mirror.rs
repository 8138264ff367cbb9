//! `kubectl datajump images mirror` against `skopeo copy`, between the same two real registries
//! on this machine (an upstream without authentication, a "Harbor" with a password; both TLS
//! with a test CA), side by side in one run; a mirror with nothing to copy; and the peak memory
//! while one 256 MiB layer goes through.
//!
//! ```sh
//! cargo build --release -p kubectl-datajump
//! cargo bench -p datajump-tests --bench images_mirror [-- ROUNDS [LAYER_MIB]]
//! ```
//!
//! Prints, per round (default 3; prod's images with LAYER_MIB-MiB layers, default 8): the
//! seconds the plugin's mirror of prod into a fresh project took and the seconds `skopeo copy
//! --all` of the same images one after another (the loop users ran by hand) took, and their
//! ratio (skopeo / plugin: above 1.0 the plugin is faster); the seconds a mirror of prod and of
//! dev (29 images) with nothing to copy takes; the plugin's peak RSS (VmHWM) while mirroring dev
//! whose web image has one 256 MiB layer.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use datajump_tests::load::peak_rss_mib;
use datajump_tests::plugin::plugin_command;
use datajump_tests::registry::{TestRegistry, USER, noise, seed_sized, upstreams};

/// Runs the plugin's mirror of `env` into `to`; returns its wall time and peak RSS (MiB).
fn mirror(
    env: &str,
    to: &str,
    harbor: &TestRegistry,
    flags: &[String],
    cas: [&str; 2],
) -> (Duration, f64) {
    let home = tempfile::tempdir().expect("home");
    let mut cmd = plugin_command();
    cmd.args([
        "images",
        "mirror",
        "--env",
        env,
        "--to",
        to,
        "--username",
        USER,
    ])
    .args([
        "--password-stdin",
        "--ca-file",
        cas[0],
        "--ca-file",
        cas[1],
        "-o",
        "json",
    ])
    .args(flags)
    .env("HOME", home.path())
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().expect("kubectl-datajump");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(harbor.password.as_deref().unwrap_or_default().as_bytes())
            .expect("password");
    }
    let mut peak: f64 = 0.0;
    let status = loop {
        if let Some(mib) = peak_rss_mib(child.id()) {
            peak = peak.max(mib);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = started.elapsed();
    assert!(status.success(), "mirror {env} to {to} failed");
    (elapsed, peak)
}

/// `skopeo copy --all` of every image, one after another, into `project`.
fn skopeo_all(
    upstream: &TestRegistry,
    harbor: &TestRegistry,
    images: &[String],
    project: &str,
) -> Duration {
    let started = Instant::now();
    for image in images {
        let name = image.rsplit('/').next().expect("name:tag");
        let status = Command::new("skopeo")
            .args(["copy", "--all", "--quiet"])
            .args(upstream.skopeo_flags("src"))
            .args(harbor.skopeo_flags("dest"))
            .arg(format!("docker://{}/{image}", upstream.host()))
            .arg(format!("docker://{}/{project}/{name}", harbor.host()))
            .status()
            .expect("skopeo");
        assert!(status.success(), "skopeo copy {image}");
    }
    started.elapsed()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let layer_mib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(8);
    let work = tempfile::tempdir().expect("work dir");
    let upstream = TestRegistry::start(false, true);
    let harbor = TestRegistry::start(true, true);
    let prod = upstreams("prod");
    let mut all = upstreams("dev");
    all.extend(prod.iter().cloned());
    all.sort();
    all.dedup();
    let (flags, _) = seed_sized(&upstream, &all, work.path(), |i, _| {
        noise(layer_mib << 20, i as u32 + 1)
    });
    let up_ca = upstream.ca().expect("ca").display().to_string();
    let harbor_ca = harbor.ca().expect("ca").display().to_string();
    let cas = [up_ca.as_str(), harbor_ca.as_str()];
    println!(
        "prod: {} images, {layer_mib} MiB layer each (mysql: two platforms)",
        prod.len()
    );

    let mut ratios = Vec::new();
    for round in 0..rounds {
        let to = format!("{}/plugin{round}", harbor.host());
        let (plugin, _) = mirror("prod", &to, &harbor, &flags, cas);
        let skopeo = skopeo_all(&upstream, &harbor, &prod, &format!("skopeo{round}"));
        let ratio = skopeo.as_secs_f64() / plugin.as_secs_f64();
        println!(
            "round {round}: plugin mirror {:.2} s, skopeo copy {:.2} s, skopeo/plugin {ratio:.2}",
            plugin.as_secs_f64(),
            skopeo.as_secs_f64()
        );
        ratios.push(ratio);
    }
    println!("median skopeo/plugin: {:.2} (budget ≥ 1.0)", median(ratios));

    let dev_to = format!("{}/noop", harbor.host());
    let prod_to = format!("{}/noop", harbor.host());
    mirror("dev", &dev_to, &harbor, &flags, cas);
    mirror("prod", &prod_to, &harbor, &flags, cas);
    let mut noop = Vec::new();
    for _ in 0..5 {
        let (dev, _) = mirror("dev", &dev_to, &harbor, &flags, cas);
        let (prod, _) = mirror("prod", &prod_to, &harbor, &flags, cas);
        noop.push(dev.as_secs_f64() + prod.as_secs_f64());
    }
    println!(
        "nothing to copy, dev + prod ({} images): median {:.2} s over 5 (budget ≤ 1 s for 30)",
        upstreams("dev").len() + prod.len(),
        median(noop)
    );

    // Peak memory with one 256 MiB layer: the web image of dev, in a registry of its own.
    let big_upstream = TestRegistry::start(false, true);
    let dev = upstreams("dev");
    let (big_flags, _) = seed_sized(&big_upstream, &dev, work.path(), |i, image| {
        if image.contains("datajump/web:") {
            noise(256 << 20, 99)
        } else {
            noise(64 << 10, i as u32 + 1)
        }
    });
    let big_ca = big_upstream.ca().expect("ca").display().to_string();
    let (took, peak) = mirror(
        "dev",
        &format!("{}/big", harbor.host()),
        &harbor,
        &big_flags,
        [big_ca.as_str(), harbor_ca.as_str()],
    );
    println!(
        "dev with a 256 MiB layer: {:.2} s, peak RSS {peak:.1} MiB (budget ≤ 64 MiB)",
        took.as_secs_f64()
    );
}
