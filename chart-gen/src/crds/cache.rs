//! The per-user cache of operator CRDs: `<root>/<key>/<group>_<plural>.yaml`, where the root is
//! `--cache-dir`/`DATAJUMP_CRD_CACHE`, else `$XDG_CACHE_HOME/datajump/crds`, else
//! `~/.cache/datajump/crds`, and the key is [`Sources::cache_key`].
//!
//! A key directory only ever appears complete: [`CrdCache::install`] writes into a staging
//! directory beside it and renames that into place. So `validate` trusts a directory whose files
//! are all present without hashing them, while `crds fetch` re-checks every checksum.

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::CrdsError;
use super::sources::Sources;
use super::split;

/// One CRD, checked against its pin (by [`fetch`](super::fetch)), ready to be written into the
/// cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedCrd {
    /// `<group>_<plural>.yaml`.
    pub file: String,
    /// The bytes to write.
    pub text: String,
}

/// Where the CRD cache lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrdCache {
    root: PathBuf,
}

impl CrdCache {
    /// A cache rooted at `root` (key directories go beneath it).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The cache at `explicit` (the CLI passes `--cache-dir` or `DATAJUMP_CRD_CACHE`), else in
    /// the XDG cache directory of the user.
    pub fn locate(explicit: Option<PathBuf>) -> Result<Self, CrdsError> {
        Self::locate_with(explicit, |name| std::env::var_os(name))
    }

    fn locate_with(
        explicit: Option<PathBuf>,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Self, CrdsError> {
        if let Some(root) = explicit {
            return Ok(Self::new(root));
        }
        // The XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
        let xdg = env("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute());
        let home = env("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".cache"));
        xdg.or(home)
            .map(|base| Self::new(base.join("datajump").join("crds")))
            .ok_or(CrdsError::NoCacheDir)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory holding the CRDs pinned by `sources`.
    pub fn dir(&self, sources: &Sources) -> PathBuf {
        self.root.join(sources.cache_key())
    }

    /// The directory, when it holds every pinned file (present, not re-hashed: see the module
    /// docs); else an error saying how to fill or repair it.
    pub fn require_complete(&self, sources: &Sources) -> Result<PathBuf, CrdsError> {
        let dir = self.dir(sources);
        if !dir.is_dir() {
            return Err(CrdsError::NotCached { dir });
        }
        let missing: Vec<String> = sources
            .crds()
            .filter(|(_, crd)| !dir.join(&crd.file).is_file())
            .map(|(_, crd)| crd.file.clone())
            .collect();
        if missing.is_empty() {
            Ok(dir)
        } else {
            Err(CrdsError::IncompleteCache { dir, missing })
        }
    }

    /// The pinned files that are missing from the cache or differ from their sha256; empty when
    /// the cache is complete and intact.
    pub fn verify(&self, sources: &Sources) -> Result<Vec<String>, CrdsError> {
        let dir = self.dir(sources);
        let mut bad = Vec::new();
        for (_, crd) in sources.crds() {
            let path = dir.join(&crd.file);
            match fs::read_to_string(&path) {
                Ok(text) if split::sha256_hex(&text) == crd.sha256 => {}
                Ok(_) => bad.push(crd.file.clone()),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound) => {
                    bad.push(crd.file.clone());
                }
                // Not UTF-8: not what was pinned; anything else is worth reporting.
                Err(e) if matches!(e.kind(), std::io::ErrorKind::InvalidData) => {
                    bad.push(crd.file.clone());
                }
                Err(source) => return Err(CrdsError::Io { path, source }),
            }
        }
        Ok(bad)
    }

    /// Writes `crds` as the cache directory for `sources`, all at once: they are written into a
    /// staging directory that is renamed into place, so an interrupted or failed install leaves
    /// no partial directory. A broken directory already there is replaced; a complete one (from a
    /// concurrent fetch) is kept.
    pub fn install(&self, sources: &Sources, crds: &[FetchedCrd]) -> Result<PathBuf, CrdsError> {
        let key = sources.cache_key();
        fs::create_dir_all(&self.root).map_err(CrdsError::io(&self.root))?;
        let staging = tempfile::Builder::new()
            .prefix(&format!(".{key}.partial-"))
            .tempdir_in(&self.root)
            .map_err(CrdsError::io(&self.root))?;
        for crd in crds {
            write_synced(&staging.path().join(&crd.file), &crd.text)?;
        }
        let dir = self.dir(sources);
        if fs::rename(staging.path(), &dir).is_ok() {
            let _ = staging.keep(); // renamed away: nothing left to clean up
            return Ok(dir);
        }
        // The rename fails when the directory exists: keep it if it is intact, else swap.
        if self.verify(sources)?.is_empty() {
            return Ok(dir); // `staging` is removed on drop
        }
        let aside = self.root.join(format!(".{key}.old-{}", std::process::id()));
        fs::rename(&dir, &aside).map_err(CrdsError::io(&dir))?;
        fs::rename(staging.path(), &dir).map_err(CrdsError::io(&dir))?;
        let _ = staging.keep();
        // Only a stale copy is left behind if this fails; the cache itself is complete.
        let _ = fs::remove_dir_all(&aside);
        Ok(dir)
    }
}

/// Writes and flushes a file to disk, so the rename that publishes it never exposes an empty one
/// after a crash.
fn write_synced(path: &Path, text: &str) -> Result<(), CrdsError> {
    let mut file = fs::File::create(path).map_err(CrdsError::io(path))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(CrdsError::io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(text: &str) -> Sources {
        Sources::parse(&format!(
            "sources:
  - repository: example/operator
    tag: v1
    commit: aec777a1f91d2c26c1d3470d97ec77899d73eadf
    path: crds.yaml
    crds:
      - file: a.example.com_things.yaml
        sha256: {}
",
            split::sha256_hex(text)
        ))
        .unwrap()
    }

    fn fetched(text: &str) -> Vec<FetchedCrd> {
        vec![FetchedCrd {
            file: "a.example.com_things.yaml".to_string(),
            text: text.to_string(),
        }]
    }

    #[test]
    fn locate_prefers_explicit_then_absolute_xdg_then_home() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        let both = env(&[("XDG_CACHE_HOME", "/xdg"), ("HOME", "/home/u")]);
        let at = |c: Result<CrdCache, CrdsError>| c.unwrap().root().to_path_buf();
        assert_eq!(
            at(CrdCache::locate_with(Some("/mine".into()), both)),
            Path::new("/mine")
        );
        assert_eq!(
            at(CrdCache::locate_with(None, both)),
            Path::new("/xdg/datajump/crds")
        );
        let relative = env(&[("XDG_CACHE_HOME", "rel"), ("HOME", "/home/u")]);
        assert_eq!(
            at(CrdCache::locate_with(None, relative)),
            Path::new("/home/u/.cache/datajump/crds")
        );
        let err = CrdCache::locate_with(None, env(&[("HOME", "")])).unwrap_err();
        assert!(err.to_string().contains("DATAJUMP_CRD_CACHE"), "{err}");
    }

    #[test]
    fn install_publishes_the_whole_directory_and_replaces_a_broken_one() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = CrdCache::new(tmp.path().join("crds"));
        let pins = sources("a: 1\n");
        let err = cache.require_complete(&pins).unwrap_err().to_string();
        assert!(err.contains("chart-gen crds fetch"), "{err}");

        let dir = cache.install(&pins, &fetched("a: 1\n")).unwrap();
        assert_eq!(cache.require_complete(&pins).unwrap(), dir);
        assert!(cache.verify(&pins).unwrap().is_empty());

        fs::write(dir.join("a.example.com_things.yaml"), "tampered\n").unwrap();
        assert_eq!(cache.verify(&pins).unwrap(), ["a.example.com_things.yaml"]);
        cache.install(&pins, &fetched("a: 1\n")).unwrap();
        assert!(cache.verify(&pins).unwrap().is_empty());
        let left: Vec<_> = fs::read_dir(cache.root())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            left,
            [OsString::from(pins.cache_key())],
            "no staging or old copy left"
        );

        fs::remove_file(dir.join("a.example.com_things.yaml")).unwrap();
        let err = cache.require_complete(&pins).unwrap_err().to_string();
        assert!(
            err.contains("incomplete (missing a.example.com_things.yaml)"),
            "{err}"
        );
    }
}
