//! `chart-gen crds fetch` against a loopback HTTP server (std `TcpListener`) that serves a mirror
//! laid out like raw.githubusercontent.com (`<repository>/<commit>/<path>`), built at test time
//! from the reference CRDs (`../shared/crds` or `DATAJUMP_CRD_DIR`): the two multi-document
//! sources are reassembled from their split files with an extra object and an unpinned CRD in
//! between. Checks that every source is downloaded once, the cache reproduces the reference files
//! byte for byte, a second fetch needs no network, failures name the URL or the file with both
//! checksums and leave nothing in the cache, and that `validate` uses the cache by default.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use crate::support::{crd_dir, repo_root};
use chart_gen::crds::Sources;
use chart_gen::crds::split::sha256_hex;

/// Put between the documents of multi-document sources: the splitter must skip both.
const NOT_A_CRD: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: not-a-crd\n";
const UNPINNED_CRD: &str = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: kopfpeerings.zalando.org\nspec:\n  group: zalando.org\n  names:\n    kind: KopfPeering\n    plural: kopfpeerings\n  scope: Namespaced\n  versions: []\n";

/// Writes the mirror of every pinned source under `mirror`.
fn build_mirror(reference: &Path, mirror: &Path) {
    for source in Sources::pinned().unwrap().sources {
        let docs: Vec<String> = source
            .crds
            .iter()
            .map(|c| std::fs::read_to_string(reference.join(&c.file)).unwrap())
            .collect();
        let text = match docs.as_slice() {
            [one] => one.clone(),
            [first, rest @ ..] => {
                let mut text = format!("{first}---\n{NOT_A_CRD}---\n{UNPINNED_CRD}");
                for doc in rest {
                    text.push_str("---\n");
                    text.push_str(doc);
                }
                text
            }
            [] => unreachable!("the source list refuses a source without CRDs"),
        };
        let path = mirror
            .join(&source.repository)
            .join(&source.commit)
            .join(&source.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// A loopback HTTP/1.1 server for a directory; it records every path asked for.
struct Mirror {
    base: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Mirror {
    fn serve(dir: PathBuf) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&requests);
        // Runs until the test process exits.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                answer(stream, &dir, &log);
            }
        });
        Self { base, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn answer(mut stream: TcpStream, dir: &Path, log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let mut header = String::new();
    while reader.read_line(&mut header).is_ok_and(|n| n > 0) && header != "\r\n" {
        header.clear();
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    log.lock().unwrap().push(path.clone());
    let (status, body) = match std::fs::read(dir.join(path.trim_start_matches('/'))) {
        Ok(body) => ("200 OK", body),
        Err(_) => ("404 Not Found", b"404: Not Found".to_vec()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
}

/// A base URL where nothing listens: what a machine without network gets.
fn dead_base_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs chart-gen with no proxy (loopback only) and no CRD settings from the caller's
/// environment, so only the arguments and `env` decide where CRDs come from.
fn chart_gen(args: &[&str], env: &[(&str, &Path)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chart-gen"));
    command.args(args).env("DATAJUMP_REPO_ROOT", repo_root());
    for name in [
        "DATAJUMP_CRD_DIR",
        "DATAJUMP_CRD_CACHE",
        "DATAJUMP_CRD_BASE_URL",
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn fetch(cache: &Path, base: &str) -> Run {
    chart_gen(
        &[
            "crds",
            "fetch",
            "--cache-dir",
            cache.to_str().unwrap(),
            "--base-url",
            base,
        ],
        &[],
    )
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

#[test]
fn fetch_downloads_each_source_once_reproduces_the_reference_and_then_needs_no_network() {
    let Some(reference) = crd_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    build_mirror(&reference, &tmp.path().join("mirror"));
    let mirror = Mirror::serve(tmp.path().join("mirror"));
    let cache = tmp.path().join("cache");
    let sources = Sources::pinned().unwrap();

    let run = fetch(&cache, &mirror.base);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let dir = cache.join(sources.cache_key());
    assert_eq!(run.stdout.trim(), dir.to_str().unwrap(), "prints the cache");
    assert!(
        run.stderr.contains("20 CRDs from 18 downloads"),
        "{}",
        run.stderr
    );

    let mut asked: HashMap<String, usize> = HashMap::new();
    for path in mirror.requests() {
        *asked.entry(path).or_default() += 1;
    }
    assert_eq!(asked.len(), sources.sources.len());
    assert!(asked.values().all(|n| *n == 1), "{asked:?}");
    assert!(asked.contains_key(
        "/mysql/mysql-operator/aec777a1f91d2c26c1d3470d97ec77899d73eadf/deploy/deploy-crds.yaml"
    ));

    let mut pinned: Vec<String> = sources.crds().map(|(_, c)| c.file.clone()).collect();
    pinned.sort();
    assert_eq!(names_in(&dir), pinned, "exactly the pinned files");
    for file in &pinned {
        let cached = std::fs::read(dir.join(file)).unwrap();
        let expected = std::fs::read(reference.join(file)).unwrap();
        assert!(cached == expected, "{file} differs from the reference copy");
    }
    assert_eq!(names_in(&cache), [sources.cache_key()], "no staging left");

    let offline = fetch(&cache, &dead_base_url());
    assert_eq!(offline.code, 0, "{}", offline.stderr);
    assert!(
        offline.stderr.contains("already cached"),
        "{}",
        offline.stderr
    );
    assert_eq!(mirror.requests().len(), asked.len(), "no new download");

    // A file changed in the cache is noticed and repaired by the next fetch.
    let tampered = dir.join("kafka.strimzi.io_kafkas.yaml");
    std::fs::write(&tampered, "changed\n").unwrap();
    let repair = fetch(&cache, &mirror.base);
    assert_eq!(repair.code, 0, "{}", repair.stderr);
    assert_eq!(
        std::fs::read(&tampered).unwrap(),
        std::fs::read(reference.join("kafka.strimzi.io_kafkas.yaml")).unwrap()
    );
    assert_eq!(names_in(&cache), [sources.cache_key()], "old copy removed");
}

#[test]
fn a_changed_upstream_file_is_refused_with_both_checksums_and_nothing_is_cached() {
    let Some(reference) = crd_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mirror_dir = tmp.path().join("mirror");
    build_mirror(&reference, &mirror_dir);
    let sources = Sources::pinned().unwrap();
    let (source, crd) = sources
        .crds()
        .find(|(_, c)| c.file == "minio.min.io_tenants.yaml")
        .unwrap();
    let served = mirror_dir
        .join(&source.repository)
        .join(&source.commit)
        .join(&source.path);
    let changed = format!("{}# changed\n", std::fs::read_to_string(&served).unwrap());
    std::fs::write(&served, &changed).unwrap();
    let mirror = Mirror::serve(mirror_dir);
    let cache = tmp.path().join("cache");

    let run = fetch(&cache, &mirror.base);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let expected = format!(
        "checksum mismatch for minio.min.io_tenants.yaml (from {}): expected sha256 {}, got {}",
        source.url(&mirror.base),
        crd.sha256,
        sha256_hex(&changed)
    );
    assert!(run.stderr.contains(&expected), "{}", run.stderr);
    assert_eq!(names_in(&cache), Vec::<String>::new(), "nothing cached");
}

#[test]
fn an_http_error_or_no_network_names_the_url_and_caches_nothing() {
    let Some(reference) = crd_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mirror_dir = tmp.path().join("mirror");
    build_mirror(&reference, &mirror_dir);
    let sources = Sources::pinned().unwrap();
    let eck = sources
        .sources
        .iter()
        .find(|s| s.repository == "elastic/cloud-on-k8s")
        .unwrap();
    std::fs::remove_file(
        mirror_dir
            .join(&eck.repository)
            .join(&eck.commit)
            .join(&eck.path),
    )
    .unwrap();
    let mirror = Mirror::serve(mirror_dir);
    let cache = tmp.path().join("cache");

    let run = fetch(&cache, &mirror.base);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let expected = format!("cannot download {}: HTTP status 404", eck.url(&mirror.base));
    assert!(run.stderr.contains(&expected), "{}", run.stderr);
    assert_eq!(names_in(&cache), Vec::<String>::new());

    let dead = dead_base_url();
    let run = fetch(&cache, &dead);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let first = sources.sources[0].url(&dead);
    assert!(
        run.stderr.contains(&format!("cannot download {first}: ")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("no network?"), "{}", run.stderr);
    assert_eq!(names_in(&cache), Vec::<String>::new());
}

#[test]
fn validate_uses_the_cache_by_default_and_says_how_to_fill_it() {
    let Some(reference) = crd_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let staging = ["validate", "--env", "staging"];

    let missing = chart_gen(&staging, &[("DATAJUMP_CRD_CACHE", &cache)]);
    assert_eq!(missing.code, 1, "{}", missing.stderr);
    for hint in ["chart-gen crds fetch", "--crd-dir", "--no-crds"] {
        assert!(missing.stderr.contains(hint), "{hint}: {}", missing.stderr);
    }

    // A file:// mirror works too, for machines without network.
    build_mirror(&reference, &tmp.path().join("mirror"));
    let base = format!("file://{}", tmp.path().join("mirror").display());
    let filled = fetch(&cache, &base);
    assert_eq!(filled.code, 0, "{}", filled.stderr);

    // Staging renders operator custom resources; without their CRDs loaded each one would be a
    // "no schema" problem, so a clean run shows the cache was read.
    let run = chart_gen(&staging, &[("DATAJUMP_CRD_CACHE", &cache)]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("validate: ok, 0 problems"),
        "{}",
        run.stderr
    );

    let dir = cache.join(Sources::pinned().unwrap().cache_key());
    std::fs::remove_file(dir.join("mysql.oracle.com_innodbclusters.yaml")).unwrap();
    let broken = chart_gen(&staging, &[("DATAJUMP_CRD_CACHE", &cache)]);
    assert_eq!(broken.code, 1, "{}", broken.stderr);
    assert!(
        broken
            .stderr
            .contains("incomplete (missing mysql.oracle.com_innodbclusters.yaml)"),
        "{}",
        broken.stderr
    );
}

#[test]
fn no_crds_leaves_the_operators_resources_unchecked_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let run = chart_gen(
        &["validate", "--env", "staging", "--no-crds"],
        &[("DATAJUMP_CRD_CACHE", tmp.path())],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("--no-crds: custom resources of argoproj.io, cert-manager.io, elasticsearch"),
        "{}",
        run.stderr
    );
}
