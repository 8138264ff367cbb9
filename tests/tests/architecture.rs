//! ARCHITECTURE.md stays true about where things live: every path it names exists.
//!
//! The rule, kept simple:
//! - **Where a path can be named**: a span in backticks in the prose (`` `reconcile/run.rs` ``),
//!   or any word of a fenced code block (the crate tree, the maps).
//! - **What looks like a path**: a word made of letters, digits, `_`, `.`, `-`, `/` and
//!   `<placeholder>`s that ends in `/` (a directory) or in `.rs`, `.toml`, `.md`, `.yaml`, `.tpl`
//!   or `.sh` (a file). An item after a file (`profiles.rs::base()`) is dropped first. Anything
//!   else — `Cluster`, `kubectl datajump images`, `{{ }}` — is not a path and is not checked.
//! - **Placeholders**: `cmd/<verb>.rs` names a pattern, so the directory before its first
//!   placeholder (`cmd/`) must exist; a pattern with no directory before it (`values-<env>.yaml`)
//!   is not checked.
//! - **Outside the repository**: a path beginning with `/` or `../` (a container's
//!   `/scripts/backup.sh`, the shared `../shared/k8s/`) is not checked.
//! - **Relative to what**: to the repository root, or to the crate the section is about. A
//!   heading (`##`, `###`) naming a directory in backticks — ``## The scheduler
//!   (`scheduler-image/`)`` — makes it the crate of its section (a `###` naming none keeps its
//!   `##`'s). A path exists when it is found under the root, under the crate, or under the
//!   crate's `src/`. A directory must be a directory and a file a file.

use std::path::{Path, PathBuf};

use datajump_tests::cluster::workspace_root;

/// File endings that make a word a path (besides a trailing `/`).
const EXTENSIONS: [&str; 6] = [".rs", ".toml", ".md", ".yaml", ".tpl", ".sh"];

/// A path named in the document: where, and the path as written.
#[derive(Debug)]
struct Named {
    line: usize,
    path: String,
    /// The crate directory of its section, if any.
    crate_dir: Option<String>,
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_.-/<>".contains(c)
}

/// The path a word names, following the rule in the module doc, or `None` when it names none.
/// For a pattern, this is the directory before its first placeholder.
fn as_path(word: &str) -> Option<String> {
    let word = word.split("::").next().unwrap_or_default();
    if word.is_empty() || !word.chars().all(is_path_char) {
        return None;
    }
    if word.starts_with('/') || word.starts_with("../") {
        return None;
    }
    let is_dir = word.ends_with('/') && word.trim_matches('/').chars().any(|c| c != '.');
    let is_file = EXTENSIONS.iter().any(|ext| {
        word.strip_suffix(ext)
            .and_then(|stem| stem.rsplit('/').next())
            .is_some_and(|name| !name.is_empty() && !name.ends_with('.'))
    });
    if !is_dir && !is_file {
        return None;
    }
    match word.find('<') {
        None => Some(word.to_string()),
        Some(at) => word[..at]
            .rfind('/')
            .map(|slash| word[..=slash].to_string()),
    }
}

/// The crate a heading line names: its first backticked span that is a directory.
fn heading_crate(line: &str) -> Option<String> {
    line.split('`')
        .skip(1)
        .step_by(2)
        .filter_map(as_path)
        .find(|p| p.ends_with('/'))
}

/// Every path `doc` names, with its line and the crate of its section.
fn named_paths(doc: &str) -> Vec<Named> {
    let mut named = Vec::new();
    // The crates named by the current `##` and `###` headings.
    let (mut section, mut subsection) = (None::<String>, None::<String>);
    let mut in_fence = false;
    // The backtick span being read (it may wrap onto the next line of its paragraph): the line
    // it starts on and its text so far.
    let mut span: Option<(usize, String)> = None;
    for (index, line) in doc.lines().enumerate() {
        let number = index + 1;
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            in_fence = !in_fence;
            span = None;
            continue;
        }
        if !in_fence && trimmed.starts_with('#') {
            let level = trimmed.chars().take_while(|&c| c == '#').count();
            let crate_dir = heading_crate(trimmed);
            if level <= 2 {
                section = crate_dir;
                subsection = None;
            } else {
                subsection = crate_dir;
            }
            span = None;
        }
        if trimmed.is_empty() {
            span = None;
        }
        let crate_dir = subsection.clone().or_else(|| section.clone());
        if in_fence {
            for word in line.split_whitespace() {
                let word = word.trim_matches(|c: char| !is_path_char(c));
                push(&mut named, number, word, &crate_dir);
            }
            continue;
        }
        for (i, piece) in line.split('`').enumerate() {
            if i > 0 {
                // A backtick: the open span closes, or a new one opens.
                span = match span.take() {
                    Some((start, text)) => {
                        push(&mut named, start, text.trim(), &crate_dir);
                        None
                    }
                    None => Some((number, String::new())),
                };
            }
            if let Some((_, text)) = &mut span {
                text.push_str(piece);
            }
        }
        if let Some((_, text)) = &mut span {
            text.push(' ');
        }
    }
    named
}

/// Records `word` if it names a path.
fn push(named: &mut Vec<Named>, line: usize, word: &str, crate_dir: &Option<String>) {
    if let Some(path) = as_path(word) {
        named.push(Named {
            line,
            path,
            crate_dir: crate_dir.clone(),
        });
    }
}

/// Where a named path is looked for: the root, the crate, the crate's `src/`.
fn bases(root: &Path, crate_dir: Option<&str>) -> Vec<PathBuf> {
    let mut bases = vec![root.to_path_buf()];
    if let Some(dir) = crate_dir {
        bases.push(root.join(dir));
        bases.push(root.join(dir).join("src"));
    }
    bases
}

/// Whether `named` exists under one of its bases, as a directory or a file as written.
fn exists(root: &Path, named: &Named) -> bool {
    bases(root, named.crate_dir.as_deref())
        .iter()
        .map(|base| base.join(&named.path))
        .any(|p| {
            if named.path.ends_with('/') {
                p.is_dir()
            } else {
                p.is_file()
            }
        })
}

/// The paths `doc` names that do not exist under `root`, one line each.
fn missing(doc: &str, root: &Path) -> Vec<String> {
    named_paths(doc)
        .into_iter()
        .filter(|n| !exists(root, n))
        .map(|n| match &n.crate_dir {
            Some(dir) => format!(
                "line {}: `{}` (nor under {dir} or {dir}src/)",
                n.line, n.path
            ),
            None => format!("line {}: `{}`", n.line, n.path),
        })
        .collect()
}

#[test]
fn every_path_architecture_md_names_exists() {
    let root = workspace_root();
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let named = named_paths(&doc);
    // The map names dozens of paths; a handful means the rule above stopped finding them.
    assert!(
        named.len() > 50,
        "only {} paths found: {named:?}",
        named.len()
    );
    let missing = missing(&doc, &root);
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names paths that do not exist (see this test's module doc for the rule):\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_rule_checks_paths_only_relative_to_the_root_or_the_section_crate() {
    let root = tempfile::tempdir().expect("temp dir");
    for dir in ["app/src/cmd", "docs"] {
        std::fs::create_dir_all(root.path().join(dir)).expect("mkdir");
    }
    for file in ["app/src/cli.rs", "app/Cargo.toml", "docs/guide.md"] {
        std::fs::write(root.path().join(file), "").expect("write");
    }
    let doc = "\
# Title

Top level: `docs/guide.md`, `docs/gone.md`, `Cluster`, `kubectl datajump images`,
`/scripts/backup.sh`, `../shared/k8s/`, `values-<env>.yaml`, `.rs` files.

## The app (`app/`)

`cli.rs` parses, `Cargo.toml`, `cmd/<verb>.rs` runs a verb, `cmd/<verb>/` too, `kube/`
is missing, `cli.rs::Cli` is a file, and `docs/guide.md` is at the root; `cli.rs` is not
`docs/` — a span that wraps `cmd/missing.rs
` onto the next line is still checked.

```
app/src/cli.rs   (crate tree)      docs/       nowhere/    cmd/ (missing.sh)
```

### A subsection keeps the app

`cli.rs` again, `docs/cli.rs` missing.

## Elsewhere

`cli.rs` is not at the root.
";
    assert_eq!(
        missing(doc, root.path()),
        [
            "line 3: `docs/gone.md`",
            "line 8: `kube/` (nor under app/ or app/src/)",
            "line 10: `cmd/missing.rs` (nor under app/ or app/src/)",
            "line 14: `nowhere/` (nor under app/ or app/src/)",
            "line 14: `missing.sh` (nor under app/ or app/src/)",
            "line 19: `docs/cli.rs` (nor under app/ or app/src/)",
            "line 23: `cli.rs`",
        ]
    );
}
