//! `chart-gen crds fetch`: download each pinned source once, cut out its CRDs, check every CRD's
//! sha256, and install them into the cache in one step. All of it happens in memory before the
//! cache is touched, so a failure (network, HTTP status, checksum) leaves nothing behind.

use std::collections::HashMap;
use std::path::PathBuf;
#[cfg(feature = "fetch")]
use std::time::Duration;

use super::CrdsError;
use super::cache::{CrdCache, FetchedCrd};
use super::sources::Sources;
use super::split;

/// Largest source accepted; the biggest pinned one (ECK's all-crds.yaml) is under 1 MB.
#[cfg(feature = "fetch")]
const MAX_SOURCE_BYTES: u64 = 32 * 1024 * 1024;

/// How long one download may take, connection included.
#[cfg(feature = "fetch")]
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// Gets a source's text by URL. [`Downloader`] is the real one; tests may count or fail calls.
pub trait Download {
    /// The body of `url`, as UTF-8.
    fn get(&self, url: &str) -> Result<String, CrdsError>;
}

/// Downloads over http(s) (blocking, rustls, proxies from the usual environment variables) and
/// reads `file://` URLs from disk, for a mirror on a machine without network.
#[cfg(feature = "fetch")]
pub struct Downloader {
    agent: ureq::Agent,
}

#[cfg(feature = "fetch")]
impl Default for Downloader {
    fn default() -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(DOWNLOAD_TIMEOUT))
            .user_agent(concat!("chart-gen/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Self { agent }
    }
}

#[cfg(feature = "fetch")]
impl Download for Downloader {
    fn get(&self, url: &str) -> Result<String, CrdsError> {
        if let Some(path) = url.strip_prefix("file://") {
            return std::fs::read_to_string(path).map_err(|source| CrdsError::ReadSource {
                url: url.to_string(),
                source,
            });
        }
        let mut response = self.agent.get(url).call().map_err(|e| match e {
            ureq::Error::StatusCode(status) => CrdsError::HttpStatus {
                url: url.to_string(),
                status,
            },
            other => CrdsError::Unreachable {
                url: url.to_string(),
                message: other.to_string(),
            },
        })?;
        response
            .body_mut()
            .with_config()
            .limit(MAX_SOURCE_BYTES)
            .read_to_string()
            .map_err(|e| CrdsError::Body {
                url: url.to_string(),
                message: e.to_string(),
            })
    }
}

/// Refuses a base URL no [`Downloader`] can use, before anything is downloaded.
pub fn check_base_url(base: &str) -> Result<(), CrdsError> {
    let supported = ["https://", "http://", "file://"];
    if supported.iter().any(|scheme| base.starts_with(scheme)) {
        Ok(())
    } else {
        Err(CrdsError::BaseUrl(base.to_string()))
    }
}

/// What [`fetch`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every pinned CRD was already in the cache with the right checksum: nothing downloaded.
    UpToDate { dir: PathBuf },
    /// The CRDs were downloaded and installed.
    Fetched {
        dir: PathBuf,
        crds: usize,
        downloads: usize,
    },
}

/// Makes sure the cache holds every pinned CRD: a no-op (and no network) when it already does,
/// else downloads them from `base` (see [`Sources`]) and installs them. `progress` is told of
/// each URL before it is downloaded.
pub fn fetch(
    sources: &Sources,
    cache: &CrdCache,
    base: &str,
    from: &dyn Download,
    progress: &mut dyn FnMut(&str),
) -> Result<Outcome, CrdsError> {
    check_base_url(base)?;
    if cache.verify(sources)?.is_empty() {
        return Ok(Outcome::UpToDate {
            dir: cache.dir(sources),
        });
    }
    let (crds, downloads) = download_all(sources, base, from, progress)?;
    let dir = cache.install(sources, &crds)?;
    Ok(Outcome::Fetched {
        dir,
        crds: crds.len(),
        downloads,
    })
}

/// Downloads every source (each URL once, however many CRDs it holds) and returns the pinned
/// CRDs, each checked against its sha256, with the number of downloads.
pub fn download_all(
    sources: &Sources,
    base: &str,
    from: &dyn Download,
    progress: &mut dyn FnMut(&str),
) -> Result<(Vec<FetchedCrd>, usize), CrdsError> {
    let mut bodies: HashMap<String, String> = HashMap::new();
    let mut crds = Vec::new();
    for (source, pinned) in sources.crds() {
        let url = source.url(base);
        if !bodies.contains_key(&url) {
            progress(&url);
            let body = from.get(&url)?;
            bodies.insert(url.clone(), body);
        }
        let body = &bodies[&url];
        let text = split::crds(body)
            .into_iter()
            .find(|doc| doc.file == pinned.file)
            .map(|doc| doc.text)
            .ok_or_else(|| CrdsError::MissingCrd {
                url: url.clone(),
                file: pinned.file.clone(),
            })?;
        let actual = split::sha256_hex(text);
        if actual != pinned.sha256 {
            return Err(CrdsError::Checksum {
                file: pinned.file.clone(),
                url,
                expected: pinned.sha256.clone(),
                actual,
            });
        }
        crds.push(FetchedCrd {
            file: pinned.file.clone(),
            text: text.to_string(),
        });
    }
    Ok((crds, bodies.len()))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    fn crd(group: &str, plural: &str) -> String {
        format!(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nspec:\n  group: {group}\n  names:\n    kind: Thing\n    plural: {plural}\n"
        )
    }

    /// A source list for `bundle`, one URL holding two CRDs, with the given checksums.
    fn sources(sha_a: &str, sha_b: &str) -> Sources {
        Sources::parse(&format!(
            "sources:
  - repository: example/operator
    tag: v1
    commit: aec777a1f91d2c26c1d3470d97ec77899d73eadf
    path: crds.yaml
    crds:
      - file: a.example.com_things.yaml
        sha256: {sha_a}
      - file: b.example.com_others.yaml
        sha256: {sha_b}
"
        ))
        .unwrap()
    }

    /// Serves one body for every URL and records the URLs asked for.
    struct Fixed {
        body: String,
        asked: RefCell<Vec<String>>,
    }

    impl Download for Fixed {
        fn get(&self, url: &str) -> Result<String, CrdsError> {
            self.asked.borrow_mut().push(url.to_string());
            Ok(self.body.clone())
        }
    }

    #[test]
    fn one_download_per_url_and_every_crd_checked() {
        let (a, b) = (
            crd("a.example.com", "things"),
            crd("b.example.com", "others"),
        );
        let from = Fixed {
            body: format!("{a}---\n{b}"),
            asked: RefCell::default(),
        };
        let pins = sources(&split::sha256_hex(&a), &split::sha256_hex(&b));
        let (crds, downloads) = download_all(&pins, "http://mirror", &from, &mut |_| {}).unwrap();
        assert_eq!(downloads, 1);
        assert_eq!(
            *from.asked.borrow(),
            ["http://mirror/example/operator/aec777a1f91d2c26c1d3470d97ec77899d73eadf/crds.yaml"]
        );
        assert_eq!(crds[0].text, a);
        assert_eq!(crds[1].file, "b.example.com_others.yaml");
        assert_eq!(crds[1].text, b);
    }

    #[test]
    fn a_changed_crd_is_refused_with_both_checksums() {
        let (a, b) = (
            crd("a.example.com", "things"),
            crd("b.example.com", "others"),
        );
        let from = Fixed {
            body: format!("{a}---\n{b}"),
            asked: RefCell::default(),
        };
        let wrong = "0".repeat(64);
        let pins = sources(&split::sha256_hex(&a), &wrong);
        let err = download_all(&pins, "http://mirror", &from, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("b.example.com_others.yaml"), "{err}");
        assert!(err.contains(&format!("expected sha256 {wrong}")), "{err}");
        assert!(err.contains(&split::sha256_hex(&b)), "{err}");
    }

    #[test]
    fn a_source_without_a_pinned_crd_names_both() {
        let a = crd("a.example.com", "things");
        let pins = sources(&split::sha256_hex(&a), &"0".repeat(64));
        let from = Fixed {
            body: a,
            asked: RefCell::default(),
        };
        let err = download_all(&pins, "http://mirror", &from, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("crds.yaml has no CustomResourceDefinition"),
            "{err}"
        );
    }

    #[test]
    fn only_http_and_file_base_urls_are_accepted() {
        assert!(check_base_url("https://raw.githubusercontent.com").is_ok());
        assert!(check_base_url("file:///srv/mirror").is_ok());
        let err = check_base_url("ftp://mirror").unwrap_err().to_string();
        assert!(err.contains("ftp://mirror"), "{err}");
    }
}
