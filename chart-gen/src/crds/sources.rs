//! The pinned upstream sources of the operator CRDs: `sources.yaml` beside this file, compiled
//! into chart-gen so that a user's binary and CI agree on the exact bytes (commit SHA per source,
//! sha256 per CRD).

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::CrdsError;

/// The list as shipped (parsed by [`Sources::pinned`]).
const PINNED: &str = include_str!("sources.yaml");

/// Where sources are downloaded from unless `--base-url` says otherwise.
pub const DEFAULT_BASE_URL: &str = "https://raw.githubusercontent.com";

/// Every pinned source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sources {
    pub sources: Vec<Source>,
}

/// One file of an operator's repository at a commit, and the CRDs taken from it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// `owner/name` on GitHub.
    pub repository: String,
    /// The release tag the commit belongs to (for people; not used to download).
    pub tag: String,
    /// The full commit SHA (40 hex digits), so the content cannot move.
    pub commit: String,
    /// The file's path in the repository.
    pub path: String,
    /// The CRDs kept from the file.
    pub crds: Vec<PinnedCrd>,
}

/// One CRD and the checksum of the file it is written to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinnedCrd {
    /// `<group>_<plural>.yaml`, as in `../shared/crds`.
    pub file: String,
    /// sha256 (64 lower-case hex digits) of the file's bytes.
    pub sha256: String,
}

impl Sources {
    /// The list compiled into chart-gen, checked.
    pub fn pinned() -> Result<Self, CrdsError> {
        Self::parse(PINNED)
    }

    /// Parses and checks a source list (the format of `sources.yaml`).
    pub fn parse(text: &str) -> Result<Self, CrdsError> {
        let sources: Self =
            serde_yaml::from_str(text).map_err(|e| CrdsError::Sources(e.to_string()))?;
        sources.check()?;
        Ok(sources)
    }

    /// Every pinned CRD with the source it comes from.
    pub fn crds(&self) -> impl Iterator<Item = (&Source, &PinnedCrd)> {
        self.sources
            .iter()
            .flat_map(|s| s.crds.iter().map(move |c| (s, c)))
    }

    /// The API groups of the pinned CRDs (the part of each file name before `_`), sorted.
    pub fn groups(&self) -> Vec<String> {
        let mut groups: Vec<String> = self
            .crds()
            .filter_map(|(_, c)| c.file.split_once('_').map(|(g, _)| g.to_string()))
            .collect();
        groups.sort();
        groups.dedup();
        groups
    }

    /// Names the cache directory: a digest of every file name and checksum, so changing a pin
    /// (and only that: comments and tags do not count) starts a new cache instead of trusting
    /// files fetched for the old one.
    pub fn cache_key(&self) -> String {
        let mut lines: Vec<String> = self
            .crds()
            .map(|(_, c)| format!("{} {}\n", c.file, c.sha256))
            .collect();
        lines.sort();
        let digest = Sha256::digest(lines.concat().as_bytes());
        hex::encode(&digest[..8])
    }

    fn check(&self) -> Result<(), CrdsError> {
        let mut seen = std::collections::HashSet::new();
        for source in &self.sources {
            source.check()?;
            for crd in &source.crds {
                if !seen.insert(crd.file.as_str()) {
                    return Err(CrdsError::Sources(format!("{} is listed twice", crd.file)));
                }
            }
        }
        if seen.is_empty() {
            return Err(CrdsError::Sources("no CRD is listed".to_string()));
        }
        Ok(())
    }
}

impl Source {
    /// `<base>/<repository>/<commit>/<path>`, the layout of raw.githubusercontent.com.
    pub fn url(&self, base: &str) -> String {
        format!(
            "{}/{}/{}/{}",
            base.trim_end_matches('/'),
            self.repository,
            self.commit,
            self.path
        )
    }

    fn check(&self) -> Result<(), CrdsError> {
        let invalid =
            |what: String| Err(CrdsError::Sources(format!("{}: {what}", self.repository)));
        if !is_hex(&self.commit, 40) {
            return invalid(format!("commit {:?} is not 40 hex digits", self.commit));
        }
        if self.path.is_empty() || self.path.split('/').any(|p| p.is_empty() || p == "..") {
            return invalid(format!("path {:?} is not a plain relative path", self.path));
        }
        if self.crds.is_empty() {
            return invalid(format!("{} lists no CRD", self.path));
        }
        for crd in &self.crds {
            if !is_crd_file_name(&crd.file) {
                return invalid(format!("{:?} is not <group>_<plural>.yaml", crd.file));
            }
            if !is_hex(&crd.sha256, 64) {
                return invalid(format!("sha256 of {} is not 64 hex digits", crd.file));
            }
        }
        Ok(())
    }
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A file name that is safe to join to the cache directory: no separators, no `..`.
fn is_crd_file_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".yaml") else {
        return false;
    };
    let Some((group, plural)) = stem.split_once('_') else {
        return false;
    };
    let dns = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    };
    dns(group) && dns(plural) && !stem.contains("..")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = "sources:
  - repository: example/operator
    tag: v1.0.0
    commit: aec777a1f91d2c26c1d3470d97ec77899d73eadf
    path: deploy/crds.yaml
    crds:
      - file: example.com_things.yaml
        sha256: 7dae96a52a8f73abfe7d39f21a6bdaabbb2e0fbe29f900c389dd3391c4a9d666
";

    #[test]
    fn the_pinned_list_parses_and_names_every_operator_group() {
        let sources = Sources::pinned().expect("sources.yaml is valid");
        assert_eq!(sources.crds().count(), 20);
        assert_eq!(
            sources.groups(),
            [
                "argoproj.io",
                "cert-manager.io",
                "elasticsearch.k8s.elastic.co",
                "kafka.strimzi.io",
                "kibana.k8s.elastic.co",
                "minio.min.io",
                "monitoring.coreos.com",
                "mysql.oracle.com",
                "redis.redis.opstreelabs.in",
            ]
        );
        // The two multi-document sources are one download each.
        let mysql: Vec<_> = sources
            .sources
            .iter()
            .filter(|s| s.repository == "mysql/mysql-operator")
            .collect();
        assert_eq!(mysql.len(), 1);
        assert_eq!(mysql[0].crds.len(), 2);
    }

    #[test]
    fn url_follows_the_raw_github_layout() {
        let sources = Sources::parse(ONE).unwrap();
        assert_eq!(
            sources.sources[0].url("http://127.0.0.1:1/"),
            "http://127.0.0.1:1/example/operator/aec777a1f91d2c26c1d3470d97ec77899d73eadf/deploy/crds.yaml"
        );
    }

    #[test]
    fn cache_key_changes_with_a_checksum_not_with_a_tag() {
        let key = Sources::parse(ONE).unwrap().cache_key();
        assert_eq!(key.len(), 16);
        let retagged = Sources::parse(&ONE.replace("v1.0.0", "v1.0.1")).unwrap();
        assert_eq!(retagged.cache_key(), key);
        let repinned = Sources::parse(&ONE.replace("7dae96a5", "7dae96a6")).unwrap();
        assert_ne!(repinned.cache_key(), key);
    }

    #[test]
    fn malformed_entries_are_refused_naming_the_field() {
        for (from, to, expected) in [
            ("aec777a1f91d2c26", "aec777a1", "not 40 hex digits"),
            (
                "example.com_things.yaml",
                "../things.yaml",
                "not <group>_<plural>.yaml",
            ),
            (
                "example.com_things.yaml",
                "a/b_c.yaml",
                "not <group>_<plural>.yaml",
            ),
            (
                "7dae96a52a8f",
                "7DAE96A52A8F",
                "sha256 of example.com_things.yaml",
            ),
            (
                "deploy/crds.yaml",
                "deploy/../crds.yaml",
                "not a plain relative path",
            ),
            ("tag: v1.0.0", "tags: v1.0.0", "unknown field `tags`"),
        ] {
            let err = Sources::parse(&ONE.replace(from, to))
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{from} -> {to}: {err}");
        }
        let twice = format!("{ONE}{}", &ONE["sources:\n".len()..]);
        let err = Sources::parse(&twice).unwrap_err().to_string();
        assert!(err.contains("listed twice"), "{err}");
    }
}
