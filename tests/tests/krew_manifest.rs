//! The krew plugin manifest for `kubectl datajump`: the template in `.github/krew/` and the
//! manifest `.github/scripts/krew-manifest.sh` fills from release archives (what release.yml
//! attaches as `plugins/datajump.yaml`) must satisfy krew's plugin-manifest rules, and the sha256
//! it writes must be the archives' own.

use serde_yaml::{Mapping, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const API_VERSION: &str = "krew.googlecontainertools.github.com/v1alpha2";
const PLATFORMS: [(&str, &str); 4] = [
    ("linux", "amd64"),
    ("linux", "arm64"),
    ("darwin", "amd64"),
    ("darwin", "arm64"),
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn template_path() -> PathBuf {
    repo_root().join(".github/krew/datajump.yaml")
}

fn fill_script() -> PathBuf {
    repo_root().join(".github/scripts/krew-manifest.sh")
}

/// Whether the manifest under check may still hold the template's `@NAME@` placeholders.
#[derive(Clone, Copy, PartialEq)]
enum Stage {
    Template,
    Filled,
}

fn is_placeholder(s: &str) -> bool {
    s.len() > 2
        && s.starts_with('@')
        && s.ends_with('@')
        && s[1..s.len() - 1]
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// krew's spec.version rule: `v` followed by a semantic version.
fn is_v_semver(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('v') else {
        return false;
    };
    let core = rest.split(['-', '+']).next().unwrap_or_default();
    let extra = &rest[core.len()..];
    let parts: Vec<&str> = core.split('.').collect();
    let numeric = |p: &&str| {
        !p.is_empty()
            && p.chars().all(|c| c.is_ascii_digit())
            && (p.len() == 1 || !p.starts_with('0'))
    };
    let extra_ok = extra
        .chars()
        .skip(1)
        .all(|c| c.is_ascii_alphanumeric() || "-.+".contains(c))
        && (extra.is_empty() || extra.len() > 1);
    parts.len() == 3 && parts.iter().all(numeric) && extra_ok
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

fn str_at<'a>(map: &'a Mapping, key: &str) -> Option<&'a str> {
    map.get(key).and_then(Value::as_str)
}

/// Every violation of krew's plugin-manifest rules in `doc`, as `field: problem`.
fn krew_violations(doc: &Value, file_stem: &str, stage: Stage) -> Vec<String> {
    let mut out = Vec::new();
    let Some(root) = doc.as_mapping() else {
        return vec!["(root): expected a mapping".into()];
    };
    if str_at(root, "apiVersion") != Some(API_VERSION) {
        out.push(format!("apiVersion: expected {API_VERSION}"));
    }
    if str_at(root, "kind") != Some("Plugin") {
        out.push("kind: expected Plugin".into());
    }
    let name = root
        .get("metadata")
        .and_then(Value::as_mapping)
        .and_then(|m| str_at(m, "name"));
    if name != Some(file_stem) {
        out.push(format!(
            "metadata.name: expected the file name stem {file_stem:?}, got {name:?}"
        ));
    }
    let Some(spec) = root.get("spec").and_then(Value::as_mapping) else {
        out.push("spec: missing".into());
        return out;
    };
    let placeholder_ok = |s: &str| stage == Stage::Template && is_placeholder(s);
    match str_at(spec, "version") {
        Some(v) if is_v_semver(v) || placeholder_ok(v) => {}
        other => out.push(format!(
            "spec.version: expected v-prefixed semver, got {other:?}"
        )),
    }
    if str_at(spec, "shortDescription").is_none_or(|s| s.trim().is_empty()) {
        out.push("spec.shortDescription: missing".into());
    }
    if !str_at(spec, "homepage").is_some_and(|h| h.starts_with("https://")) {
        out.push("spec.homepage: expected an https:// URL".into());
    }
    let platforms = spec.get("platforms").and_then(Value::as_sequence);
    let Some(platforms) = platforms.filter(|p| !p.is_empty()) else {
        out.push("spec.platforms: expected a non-empty list".into());
        return out;
    };
    let mut seen = BTreeSet::new();
    for (i, p) in platforms.iter().enumerate() {
        let at = format!("spec.platforms[{i}]");
        let Some(p) = p.as_mapping() else {
            out.push(format!("{at}: expected a mapping"));
            continue;
        };
        let labels = p
            .get("selector")
            .and_then(|s| s.get("matchLabels"))
            .and_then(Value::as_mapping);
        let os = labels.and_then(|l| str_at(l, "os"));
        let arch = labels.and_then(|l| str_at(l, "arch"));
        match (os, arch) {
            (Some(os), Some(arch)) => {
                if !["linux", "darwin", "windows"].contains(&os) {
                    out.push(format!("{at}.selector.matchLabels.os: unknown os {os:?}"));
                }
                if !["amd64", "arm64", "386", "arm"].contains(&arch) {
                    out.push(format!(
                        "{at}.selector.matchLabels.arch: unknown arch {arch:?}"
                    ));
                }
                if !seen.insert((os.to_string(), arch.to_string())) {
                    out.push(format!("{at}.selector: duplicate platform {os}/{arch}"));
                }
            }
            _ => out.push(format!("{at}.selector.matchLabels: expected os and arch")),
        }
        match str_at(p, "uri") {
            Some(u) if u.starts_with("https://") && !u.contains('@') => {}
            Some(u) if stage == Stage::Template && u.contains("@BASE_URL@") => {}
            other => out.push(format!("{at}.uri: expected an https:// URL, got {other:?}")),
        }
        match str_at(p, "sha256") {
            Some(s) if is_sha256_hex(s) || placeholder_ok(s) => {}
            other => out.push(format!(
                "{at}.sha256: expected 64 lower-case hex digits, got {other:?}"
            )),
        }
        match str_at(p, "bin") {
            Some(b) if !b.is_empty() && !b.contains("..") && !b.starts_with('/') => {}
            other => out.push(format!(
                "{at}.bin: expected a relative path in the archive, got {other:?}"
            )),
        }
    }
    out
}

fn first_platform(doc: &mut Value) -> &mut Value {
    &mut doc["spec"]["platforms"][0]
}

fn platforms_of(doc: &Value) -> Vec<&Mapping> {
    doc["spec"]["platforms"]
        .as_sequence()
        .map(|s| s.iter().filter_map(Value::as_mapping).collect())
        .unwrap_or_default()
}

fn platform<'a>(doc: &'a Value, os: &str, arch: &str) -> &'a Mapping {
    platforms_of(doc)
        .into_iter()
        .find(|p| {
            p.get("selector")
                .and_then(|s| s.get("matchLabels"))
                .is_some_and(|l| {
                    l.get("os").and_then(Value::as_str) == Some(os)
                        && l.get("arch").and_then(Value::as_str) == Some(arch)
                })
        })
        .unwrap_or_else(|| panic!("no platform {os}/{arch}"))
}

fn run_fill(args: &[&str]) -> Output {
    Command::new("bash")
        .arg(fill_script())
        .args(args)
        .output()
        .expect("run bash")
}

/// Writes four small but real `.tar.gz` archives, each holding a distinct `kubectl-datajump`.
fn dummy_archives(dir: &Path, version: &str) -> Vec<PathBuf> {
    let staging = tempfile::tempdir().expect("tempdir");
    PLATFORMS
        .iter()
        .map(|(os, arch)| {
            std::fs::write(
                staging.path().join("kubectl-datajump"),
                format!("#!/bin/sh\necho {os}/{arch}\n"),
            )
            .expect("write binary");
            let archive = dir.join(format!("kubectl-datajump_{version}_{os}_{arch}.tar.gz"));
            let status = Command::new("tar")
                .arg("-czf")
                .arg(&archive)
                .arg("-C")
                .arg(staging.path())
                .arg("kubectl-datajump")
                .status()
                .expect("run tar");
            assert!(status.success(), "tar failed for {os}/{arch}");
            archive
        })
        .collect()
}

fn sha256_file(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).expect("read archive")))
}

fn fill_into(dir: &Path, version: &str) -> (PathBuf, Value) {
    let dist = dir.join("dist");
    std::fs::create_dir_all(&dist).expect("mkdir dist");
    dummy_archives(&dist, version);
    let out = dir.join("plugins/datajump.yaml");
    let base = format!("https://github.com/datajump/datajump-deploy/releases/download/{version}");
    let result = run_fill(&[
        "--version",
        version,
        "--base-url",
        &base,
        "--dist",
        dist.to_str().expect("utf-8 path"),
        "--output",
        out.to_str().expect("utf-8 path"),
    ]);
    assert!(
        result.status.success(),
        "krew-manifest.sh failed: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    let doc = serde_yaml::from_str(&std::fs::read_to_string(&out).expect("read manifest"))
        .expect("manifest is YAML");
    (dist, doc)
}

#[test]
fn template_follows_krew_rules_with_placeholders_for_release_values() {
    let text = std::fs::read_to_string(template_path()).expect("read template");
    let doc: Value = serde_yaml::from_str(&text).expect("template parses as YAML");
    let violations = krew_violations(&doc, "datajump", Stage::Template);
    assert!(
        violations.is_empty(),
        "template violates krew rules: {violations:#?}"
    );
    for (os, arch) in PLATFORMS {
        let p = platform(&doc, os, arch);
        assert_eq!(
            p.get("bin").and_then(Value::as_str),
            Some("kubectl-datajump")
        );
        let uri = p.get("uri").and_then(Value::as_str).expect("uri");
        assert!(
            uri.ends_with(&format!("_{os}_{arch}.tar.gz")),
            "{os}/{arch} uri {uri}"
        );
    }
    // The template itself is not a valid manifest: its release values are still placeholders.
    assert!(!krew_violations(&doc, "datajump", Stage::Filled).is_empty());
}

#[test]
fn filled_manifest_carries_the_archives_uris_and_sha256() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (dist, doc) = fill_into(dir.path(), "v1.2.3");
    let violations = krew_violations(&doc, "datajump", Stage::Filled);
    assert!(
        violations.is_empty(),
        "filled manifest violates krew rules: {violations:#?}"
    );
    assert_eq!(doc["spec"]["version"].as_str(), Some("v1.2.3"));
    let mut shas = BTreeSet::new();
    for (os, arch) in PLATFORMS {
        let name = format!("kubectl-datajump_v1.2.3_{os}_{arch}.tar.gz");
        let p = platform(&doc, os, arch);
        assert_eq!(
            p.get("uri").and_then(Value::as_str),
            Some(
                format!(
                    "https://github.com/datajump/datajump-deploy/releases/download/v1.2.3/{name}"
                )
                .as_str()
            )
        );
        let expected = sha256_file(&dist.join(&name));
        assert_eq!(
            p.get("sha256").and_then(Value::as_str),
            Some(expected.as_str()),
            "{os}/{arch}"
        );
        shas.insert(expected);
    }
    assert_eq!(shas.len(), 4, "each platform has its own archive");
}

#[test]
fn fill_script_accepts_prerelease_versions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, doc) = fill_into(dir.path(), "v2.0.0-rc.1");
    assert_eq!(doc["spec"]["version"].as_str(), Some("v2.0.0-rc.1"));
    assert!(krew_violations(&doc, "datajump", Stage::Filled).is_empty());
}

#[test]
fn fill_script_rejects_bad_versions_and_missing_archives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dist = dir.path().join("dist");
    std::fs::create_dir_all(&dist).expect("mkdir");
    let archives = dummy_archives(&dist, "v1.0.0");
    let out = dir.path().join("out.yaml");
    let dist_s = dist.to_str().expect("utf-8");
    let out_s = out.to_str().expect("utf-8");

    let bad_version = run_fill(&[
        "--version",
        "1.0.0",
        "--base-url",
        "https://x",
        "--dist",
        dist_s,
        "--output",
        out_s,
    ]);
    assert_eq!(bad_version.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad_version.stderr)
            .contains("'1.0.0' is not a v-prefixed semantic version")
    );

    let http = run_fill(&[
        "--version",
        "v1.0.0",
        "--base-url",
        "http://x",
        "--dist",
        dist_s,
        "--output",
        out_s,
    ]);
    assert_eq!(http.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&http.stderr).contains("must be an https:// URL"));

    std::fs::remove_file(&archives[3]).expect("remove darwin/arm64");
    let missing = run_fill(&[
        "--version",
        "v1.0.0",
        "--base-url",
        "https://x",
        "--dist",
        dist_s,
        "--output",
        out_s,
    ]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("missing archive")
            && String::from_utf8_lossy(&missing.stderr)
                .contains("kubectl-datajump_v1.0.0_darwin_arm64.tar.gz"),
        "stderr: {}",
        String::from_utf8_lossy(&missing.stderr)
    );
    assert!(!out.exists(), "no manifest is written on failure");
}

#[test]
fn rule_check_catches_each_kind_of_broken_manifest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, good) = fill_into(dir.path(), "v1.2.3");
    let broken = |edit: &dyn Fn(&mut Value)| {
        let mut doc = good.clone();
        edit(&mut doc);
        krew_violations(&doc, "datajump", Stage::Filled)
    };

    let v = broken(&|d| d["metadata"]["name"] = "kubectl-datajump".into());
    assert!(v.iter().any(|m| m.starts_with("metadata.name")), "{v:?}");
    let v = broken(&|d| d["spec"]["version"] = "1.2.3".into());
    assert!(v.iter().any(|m| m.starts_with("spec.version")), "{v:?}");
    let v = broken(&|d| d["spec"]["version"] = "v1.2".into());
    assert!(v.iter().any(|m| m.starts_with("spec.version")), "{v:?}");
    let v = broken(&|d| first_platform(d)["sha256"] = "ABC".into());
    assert!(
        v.iter().any(|m| m.starts_with("spec.platforms[0].sha256")),
        "{v:?}"
    );
    let v = broken(&|d| first_platform(d)["bin"] = "../kubectl-datajump".into());
    assert!(
        v.iter().any(|m| m.starts_with("spec.platforms[0].bin")),
        "{v:?}"
    );
    let v = broken(&|d| first_platform(d)["uri"] = "http://insecure/x.tar.gz".into());
    assert!(
        v.iter().any(|m| m.starts_with("spec.platforms[0].uri")),
        "{v:?}"
    );
    let v = broken(&|d| {
        d["spec"]["platforms"][1]["selector"] = d["spec"]["platforms"][0]["selector"].clone()
    });
    assert!(
        v.iter()
            .any(|m| m.contains("duplicate platform linux/amd64")),
        "{v:?}"
    );
    let v = broken(&|d| d["apiVersion"] = "krew.googlecontainertools.github.com/v1alpha1".into());
    assert!(v.iter().any(|m| m.starts_with("apiVersion")), "{v:?}");
    // The manifest's name must match the file it is stored in.
    assert!(
        krew_violations(&good, "other", Stage::Filled)
            .iter()
            .any(|m| m.starts_with("metadata.name"))
    );
}

#[test]
fn v_semver_rule() {
    for ok in [
        "v0.1.0",
        "v1.2.3",
        "v10.20.30",
        "v1.0.0-rc.1",
        "v1.0.0+build.5",
    ] {
        assert!(is_v_semver(ok), "{ok}");
    }
    for bad in [
        "1.2.3", "v1.2", "v1.2.3.4", "v01.2.3", "v1.2.x", "v1.2.3-", "V1.2.3",
    ] {
        assert!(!is_v_semver(bad), "{bad}");
    }
}
