//! The archive: where each part of the report goes ([`paths`]), the file it is written to (a
//! temporary file beside the target, renamed into place only when complete, so an interrupted
//! report leaves nothing half-written and never replaces a file without `--force`), and the
//! index at the end (`README.txt` for people, `manifest.json` for scripts) listing every file.
//!
//! Every file goes through the [`Redactor`] on its way in: nothing reaches the zip unscrubbed.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serialize;
use serde_json::Value;
use tempfile::NamedTempFile;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::error::InputError;
use crate::kube::report::collect::{Denied, Unavailable};
use crate::kube::report::{Part, Sink};
use crate::redact::Redactor;

/// Where each part of the report goes in the archive.
pub(crate) mod paths {
    pub(crate) const README: &str = "README.txt";
    pub(crate) const MANIFEST: &str = "manifest.json";
    pub(crate) const VERSIONS: &str = "versions.yaml";
    pub(crate) const PREFLIGHT: &str = "preflight.yaml";
    pub(crate) const HISTORY: &str = "release/history.yaml";
    pub(crate) const VALUES: &str = "release/values.yaml";
    pub(crate) const COMPUTED_VALUES: &str = "release/computed-values.yaml";
    pub(crate) const EVENTS: &str = "events.txt";
    pub(crate) const NODES: &str = "nodes.yaml";
    pub(crate) const LEASE: &str = "scheduler/lease.yaml";
    pub(crate) const METRICS: &str = "scheduler/metrics.txt";
    pub(crate) const RUNS_INDEX: &str = "scheduler/workflowruns.txt";
    pub(crate) const FORBIDDEN: &str = "forbidden.txt";
    pub(crate) const UNAVAILABLE: &str = "unavailable.txt";

    /// One object: `objects/<namespace>/<resource>/<name>.yaml` (`objects/_cluster/…` for
    /// cluster-scoped ones), the resource as `kubectl get` names it (`deployments.apps`).
    pub(crate) fn object(namespace: Option<&str>, resource: &str, name: &str) -> String {
        format!(
            "objects/{}/{}/{}.yaml",
            namespace.map_or_else(|| "_cluster".to_string(), segment),
            segment(resource),
            segment(name)
        )
    }

    /// A container's log: `logs/<pod>/<container>.log`, the one before its last restart
    /// `<container>.previous.log`.
    pub(crate) fn log(pod: &str, container: &str, previous: bool) -> String {
        let suffix = if previous { ".previous" } else { "" };
        format!("logs/{}/{}{suffix}.log", segment(pod), segment(container))
    }

    /// One of the newest WorkflowRuns in full.
    pub(crate) fn run(name: &str) -> String {
        format!("scheduler/workflowruns/{}.yaml", segment(name))
    }

    /// An operator custom resource's readiness and status.
    pub(crate) fn operator(kind: &str, name: &str) -> String {
        format!("operators/{}/{}.yaml", segment(kind), segment(name))
    }

    /// A name as one path segment: Kubernetes names are safe already, anything else (a `/`, a
    /// `..`) is not allowed to leave its folder.
    pub(crate) fn segment(name: &str) -> String {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if safe.is_empty() || safe.chars().all(|c| c == '.') {
            format!("_{safe}")
        } else {
            safe
        }
    }

    /// What each top-level part holds, for the README.
    pub(crate) const SECTIONS: &[(&str, &str)] = &[
        (README, "this index"),
        (
            MANIFEST,
            "the same index for scripts: files, what was skipped and why",
        ),
        (VERSIONS, "plugin, chart, cluster and helm versions"),
        (
            PREFLIGHT,
            "the install preflight checks, run now against this cluster",
        ),
        (
            "release/",
            "the Helm release: history and values (credentials redacted)",
        ),
        (
            "objects/",
            "every object of the namespace and of the release, managedFields dropped; Secrets with keys only",
        ),
        (EVENTS, "the namespace's events, oldest first"),
        (
            "logs/",
            "container logs (and the previous container's after a restart)",
        ),
        (
            "scheduler/",
            "the scheduler's Lease, its /metrics, every WorkflowRun in one line and the newest in full",
        ),
        (
            "operators/",
            "the operators' custom resources: readiness and status",
        ),
        (
            NODES,
            "each node's versions, conditions, capacity and taints",
        ),
        (FORBIDDEN, "what RBAC did not allow this user to read"),
        (
            UNAVAILABLE,
            "what could not be read for another reason (not installed, no log, unreachable)",
        ),
    ];
}

/// Where the archive goes: a temporary file in the target's folder, created before anything
/// is read from the cluster (so an unwritable place is refused at once, having read nothing).
#[derive(Debug)]
pub(crate) struct OutputFile {
    target: PathBuf,
    temp: NamedTempFile,
    force: bool,
}

impl OutputFile {
    /// Checks the target and creates the temporary file beside it. An existing target (without
    /// `force`), a missing or unwritable folder are input errors.
    pub(crate) fn prepare(target: &Path, force: bool) -> Result<Self, InputError> {
        let shown = target.display();
        if target.is_dir() {
            return Err(InputError::new(format!(
                "{shown} is a directory: name the archive to write, e.g. {}",
                target.join("report.zip").display()
            )));
        }
        if target.exists() && !force {
            return Err(InputError::new(format!(
                "{shown} exists already: pass --force to replace it, or name another file"
            )));
        }
        let folder = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !folder.is_dir() {
            return Err(InputError::new(format!(
                "cannot write {shown}: the folder {} does not exist",
                folder.display()
            )));
        }
        let temp = tempfile::Builder::new()
            .prefix(".datajump-report-")
            .suffix(".zip.part")
            .tempfile_in(&folder)
            .map_err(|e| {
                InputError::new(format!(
                    "cannot write {shown}: cannot create a file in {}: {e}",
                    folder.display()
                ))
            })?;
        Ok(Self {
            target: target.to_path_buf(),
            temp,
            force,
        })
    }

    /// The file the archive will have when complete.
    pub(crate) fn target(&self) -> &Path {
        &self.target
    }

    /// Renames the complete archive into place (over an existing file only with `force`).
    fn persist(self) -> anyhow::Result<()> {
        let target = self.target.clone();
        let result = if self.force {
            self.temp.persist(&target).map(drop)
        } else {
            self.temp.persist_noclobber(&target).map(drop)
        };
        result.map_err(|e| {
            anyhow::anyhow!("moving the report into {}: {}", target.display(), e.error)
        })
    }
}

/// One file of the archive, as the index lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct FileEntry {
    pub path: String,
    pub bytes: usize,
}

/// The archive being written: files go in scrubbed, the index comes last.
pub(crate) struct Bundle {
    zip: ZipWriter<File>,
    output: OutputFile,
    redactor: Redactor,
    options: SimpleFileOptions,
    files: Vec<FileEntry>,
    scrubbed: usize,
}

impl Bundle {
    /// Starts the archive in `output`'s temporary file; every entry is dated `now`.
    pub(crate) fn new(
        output: OutputFile,
        redactor: Redactor,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Self> {
        let file = output
            .temp
            .reopen()
            .context("opening the report's temporary file")?;
        let modified = zip::DateTime::from_date_and_time(
            u16::try_from(now.year()).unwrap_or(1980),
            now.month() as u8,
            now.day() as u8,
            now.hour() as u8,
            now.minute() as u8,
            now.second() as u8,
        )
        .unwrap_or_default();
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .unix_permissions(0o644)
            .last_modified_time(modified);
        Ok(Self {
            zip: ZipWriter::new(file),
            output,
            redactor,
            options,
            files: Vec::new(),
            scrubbed: 0,
        })
    }

    /// Adds a JSON tree as YAML: every string scrubbed (the terms first, so that a Secret's
    /// value is named where it appears) and credential-named fields redacted in the tree, then
    /// the written text searched for the terms once more.
    pub(crate) fn add_yaml(&mut self, path: &str, value: &Value) -> anyhow::Result<()> {
        let mut value = value.clone();
        self.scrubbed += self.redactor.scrub_value(&mut value);
        crate::redact::redact_fields(&mut value, self.redactor.names());
        let text = serde_yaml::to_string(&value).with_context(|| format!("writing {path}"))?;
        self.add_structured(path, &text)
    }

    /// Adds free text (a log, a table of events), scrubbed by value and by shape.
    pub(crate) fn add_text(&mut self, path: &str, text: &str) -> anyhow::Result<()> {
        let (text, count) = self.redactor.scrub(text);
        self.scrubbed += count;
        self.write(path, text.as_bytes())
    }

    /// Adds structured text the report wrote itself, searched for the terms only.
    fn add_structured(&mut self, path: &str, text: &str) -> anyhow::Result<()> {
        let (text, count) = self.redactor.scrub_terms(text);
        self.scrubbed += count;
        self.write(path, text.as_bytes())
    }

    fn write(&mut self, path: &str, bytes: &[u8]) -> anyhow::Result<()> {
        if self.files.iter().any(|f| f.path == path) {
            return Ok(());
        }
        self.zip
            .start_file(path, self.options)
            .and_then(|()| self.zip.write_all(bytes).map_err(Into::into))
            .with_context(|| format!("writing {path} into the report"))?;
        self.files.push(FileEntry {
            path: path.to_string(),
            bytes: bytes.len(),
        });
        Ok(())
    }

    /// Whether a file is in the archive already.
    pub(crate) fn has(&self, path: &str) -> bool {
        self.files.iter().any(|f| f.path == path)
    }

    /// Writes what was skipped (`forbidden.txt`, `unavailable.txt`) and the index (`index`
    /// completed with the file list), closes the archive and moves it into place; returns where
    /// it is, its size and its files.
    pub(crate) fn finish(mut self, mut index: Index) -> anyhow::Result<Written> {
        self.add_structured(paths::FORBIDDEN, &index.forbidden_text())?;
        self.add_text(paths::UNAVAILABLE, &index.unavailable_text())?;
        index.redaction.values_scrubbed = self.scrubbed;
        let mut listed = self.files.clone();
        listed.extend([paths::README, paths::MANIFEST].map(|p| FileEntry {
            path: p.to_string(),
            bytes: 0,
        }));
        listed.sort_by(|a, b| a.path.cmp(&b.path));
        index.files = listed;
        let manifest = serde_json::to_string_pretty(&index)? + "\n";
        let readme = index.readme();
        self.add_structured(paths::README, &readme)?;
        self.add_structured(paths::MANIFEST, &manifest)?;
        let file = self.zip.finish().context("closing the report's archive")?;
        file.sync_all().context("writing the report to disk")?;
        let bytes = file.metadata().map(|m| m.len()).unwrap_or_default();
        let path = self.output.target().to_path_buf();
        self.output.persist()?;
        Ok(Written {
            path,
            bytes,
            files: self.files,
        })
    }
}

impl Sink for Bundle {
    /// Each part at its place in the archive ([`paths`]): objects as YAML, logs and tables as
    /// text, all redacted on the way in.
    fn put(&mut self, part: Part<'_>) -> anyhow::Result<()> {
        match part {
            Part::Object {
                namespace,
                resource,
                name,
                value,
            } => self.add_yaml(&paths::object(namespace, resource, name), value),
            Part::Log {
                pod,
                container,
                previous,
                text,
            } => self.add_text(&paths::log(pod, container, previous), text),
            Part::Events(text) => self.add_text(paths::EVENTS, text),
            Part::Lease(value) => self.add_yaml(paths::LEASE, value),
            Part::Metrics(text) => self.add_text(paths::METRICS, text),
            Part::RunsIndex(text) => self.add_text(paths::RUNS_INDEX, text),
            Part::Run { name, value } => self.add_yaml(&paths::run(name), value),
            Part::Operator { kind, name, value } => {
                self.add_yaml(&paths::operator(kind, name), value)
            }
            Part::Nodes(value) => self.add_yaml(paths::NODES, value),
            Part::Preflight(value) => self.add_yaml(paths::PREFLIGHT, value),
        }
    }

    fn has_object(&self, namespace: Option<&str>, resource: &str, name: &str) -> bool {
        self.has(&paths::object(namespace, resource, name))
    }
}

/// The archive once in place.
#[derive(Debug)]
pub(crate) struct Written {
    pub path: PathBuf,
    pub bytes: u64,
    pub files: Vec<FileEntry>,
}

/// What the redaction did, for the index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Redaction {
    /// Secrets whose values were read (to be searched for and replaced everywhere).
    pub secrets_read: usize,
    /// Whether the Secrets of the namespace could be listed at all.
    pub secrets_readable: bool,
    /// Distinct values (and their encodings) searched for in every file.
    pub values_searched: usize,
    /// Replacements made in the files.
    pub values_scrubbed: usize,
}

/// The limits the report was written with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Limits {
    pub logs_since_seconds: u64,
    pub tail_lines: u32,
    pub max_runs: u32,
}

/// `manifest.json`: what the bundle is, every file in it, and what it could not hold.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Index {
    pub generator: String,
    pub created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    pub namespace: String,
    pub release: String,
    pub limits: Limits,
    pub redaction: Redaction,
    pub files: Vec<FileEntry>,
    pub forbidden: Vec<Denied>,
    pub unavailable: Vec<Unavailable>,
}

impl Index {
    /// `README.txt`: what the bundle is, how secrets were kept out, what is missing, every file.
    pub(crate) fn readme(&self) -> String {
        let env = self
            .environment
            .as_deref()
            .map(|e| format!("environment {e}, "))
            .unwrap_or_default();
        let mut out = format!(
            "DataJump support bundle\n=======================\n\n\
             {env}namespace {}, release {}; written by {} at {}.\n\
             Logs: the lines of the last {}s, at most {} per container. The newest {} \
             WorkflowRuns in full, every run in {}.\n\n",
            self.namespace,
            self.release,
            self.generator,
            self.created,
            self.limits.logs_since_seconds,
            self.limits.tail_lines,
            self.limits.max_runs,
            paths::RUNS_INDEX,
        );
        out.push_str(
            "Secrets\n-------\n\
             No secret value is in this bundle. Secrets keep their keys, each value replaced by \
             `<redacted: N bytes>`. Fields named like a credential (password, secret, token, \
             ...Key, credentials) in the Helm values, ConfigMaps, custom resources, annotations \
             and containers' env are `<redacted>`, as is the value of `password: x`, \
             `\"token\":\"x\"`, `PASSWORD=x` and `scheme://user:x@host` in any text. Every \
             value read from a Secret (and every value redacted above) is then searched for in \
             every file and replaced by `<redacted: Secret NAME key KEY>` wherever it appears.\n",
        );
        if !self.redaction.secrets_readable {
            out.push_str(
                "The Secrets of the namespace could not be read, so their values could not be \
                 searched for in the logs; only the rules by name and by shape applied.\n",
            );
        }
        out.push_str(&format!(
            "{} Secrets read; {} values searched for; {} replacements made.\n\n",
            self.redaction.secrets_read,
            self.redaction.values_searched,
            self.redaction.values_scrubbed
        ));
        out.push_str(&format!(
            "Skipped\n-------\n{} kinds of request were not allowed ({}), {} things could not \
             be read for another reason ({}).\n\n",
            self.forbidden.len(),
            paths::FORBIDDEN,
            self.unavailable.len(),
            paths::UNAVAILABLE
        ));
        out.push_str("Contents\n--------\n");
        for (path, what) in paths::SECTIONS {
            out.push_str(&format!("{path:<30} {what}\n"));
        }
        out.push_str(&format!("\nFiles ({})\n-----\n", self.files.len()));
        for f in &self.files {
            out.push_str(&format!("{:>10}  {}\n", f.bytes, f.path));
        }
        out
    }

    /// `forbidden.txt`: one line per kind of refused request.
    pub(crate) fn forbidden_text(&self) -> String {
        if self.forbidden.is_empty() {
            return "Nothing was refused: every request this report made was allowed.\n".into();
        }
        let mut out = String::from(
            "Requests RBAC refused (403) to this user; the rest of the bundle is complete.\n\
             VERB      RESOURCE                              NAMESPACE             COUNT  NAMES\n",
        );
        for d in &self.forbidden {
            out.push_str(&format!(
                "{:<9} {:<37} {:<21} {:>5}  {}\n",
                d.verb,
                d.resource,
                d.namespace.as_deref().unwrap_or("(cluster)"),
                d.count,
                d.names.join(", ")
            ));
        }
        out
    }

    /// `unavailable.txt`: one line per thing that could not be read.
    pub(crate) fn unavailable_text(&self) -> String {
        if self.unavailable.is_empty() {
            return "Everything this report looked for was there.\n".into();
        }
        self.unavailable
            .iter()
            .map(|u| format!("{}: {}\n", u.what, u.why))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::Term;
    use std::io::Read;

    fn index() -> Index {
        Index {
            generator: "kubectl-datajump 0.1.0".into(),
            created: "2026-12-06T13:00:00Z".into(),
            environment: Some("dev".into()),
            namespace: "datajump-dev".into(),
            release: "datajump".into(),
            limits: Limits {
                logs_since_seconds: 3600,
                tail_lines: 1000,
                max_runs: 100,
            },
            redaction: Redaction::default(),
            files: Vec::new(),
            forbidden: vec![Denied {
                verb: "list".into(),
                resource: "secrets".into(),
                namespace: Some("datajump-dev".into()),
                names: Vec::new(),
                count: 1,
            }],
            unavailable: Vec::new(),
        }
    }

    #[test]
    fn paths_stay_in_their_folders() {
        assert_eq!(
            paths::object(Some("datajump-dev"), "deployments.apps", "web"),
            "objects/datajump-dev/deployments.apps/web.yaml"
        );
        assert_eq!(
            paths::object(None, "clusterroles.rbac.authorization.k8s.io", "system:x"),
            "objects/_cluster/clusterroles.rbac.authorization.k8s.io/system_x.yaml"
        );
        assert_eq!(paths::log("p", "c", true), "logs/p/c.previous.log");
        assert_eq!(paths::segment(".."), "_..");
        assert_eq!(paths::segment("a/../b"), "a_.._b");
        assert_eq!(paths::run("etl-1"), "scheduler/workflowruns/etl-1.yaml");
    }

    #[test]
    fn the_archive_holds_every_file_scrubbed_and_an_index_listing_them_all() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("r.zip");
        let output = OutputFile::prepare(&target, false).unwrap();
        let redactor = Redactor::new(
            [Term::from_secret("db", "pw", b"Planted-Value".to_vec())],
            Default::default(),
        );
        let mut bundle = Bundle::new(output, redactor, Utc::now()).unwrap();
        bundle
            .add_text(
                &paths::log("web-1", "web", false),
                "login Planted-Value\npassword: abc\n",
            )
            .unwrap();
        bundle
            .add_yaml(
                paths::VALUES,
                &serde_json::json!({"db": {"host": "Planted-Value.svc"}}),
            )
            .unwrap();
        assert!(!target.exists(), "nothing in place before the end");
        let mut index = index();
        index.redaction.secrets_readable = true;
        let written = bundle.finish(index).unwrap();
        assert_eq!(written.path, target);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            leftovers,
            [std::ffi::OsString::from("r.zip")],
            "no temp file left"
        );

        let mut zip = zip::ZipArchive::new(File::open(&target).unwrap()).unwrap();
        let names: Vec<String> = (0..zip.len())
            .map(|i| zip.by_index(i).unwrap().name().unwrap().into_owned())
            .collect();
        let mut read = |name: &str| {
            let mut text = String::new();
            zip.by_name(name)
                .unwrap()
                .read_to_string(&mut text)
                .unwrap();
            text
        };
        let log = read("logs/web-1/web.log");
        assert_eq!(
            log,
            "login <redacted: Secret db key pw>\npassword: <redacted>\n"
        );
        assert!(read(paths::VALUES).contains("<redacted: Secret db key pw>.svc"));
        let readme = read(paths::README);
        let manifest: Value = serde_json::from_str(&read(paths::MANIFEST)).unwrap();
        let listed: Vec<&str> = manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(listed, sorted, "the manifest lists every file");
        for name in &names {
            assert!(readme.contains(name.as_str()), "README lists {name}");
        }
        assert_eq!(manifest["forbidden"][0]["resource"], "secrets");
        assert_eq!(manifest["redaction"]["valuesScrubbed"], 3);
        assert!(read(paths::FORBIDDEN).contains("list      secrets"));
    }

    #[test]
    fn an_existing_file_or_a_missing_folder_is_refused_before_anything_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let existing = dir.path().join("old.zip");
        std::fs::write(&existing, "keep me").unwrap();
        let err = OutputFile::prepare(&existing, false).unwrap_err();
        assert!(
            err.to_string().contains("exists already: pass --force"),
            "{err}"
        );
        assert!(OutputFile::prepare(&existing, true).is_ok());
        let err = OutputFile::prepare(&dir.path().join("no/such/x.zip"), false).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        let err = OutputFile::prepare(dir.path(), false).unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
        assert_eq!(std::fs::read_to_string(&existing).unwrap(), "keep me");
    }
}
