//! Reading a support bundle `kubectl datajump report` wrote, the way a support engineer would
//! unzip it, and checking that no planted secret survived: not in any file once decompressed,
//! not in the archive's raw bytes (entry names are stored uncompressed), in none of the forms a
//! value takes in files (as is, base64, JSON-escaped).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use base64::Engine as _;
use serde_json::Value;

/// A bundle: its raw bytes and every entry decompressed, by name.
#[derive(Debug)]
pub struct Bundle {
    pub raw: Vec<u8>,
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Bundle {
    /// Opens and decompresses the whole archive (panics naming what is wrong).
    pub fn open(path: &Path) -> Self {
        let raw = std::fs::read(path)
            .unwrap_or_else(|e| panic!("the report {} is there: {e}", path.display()));
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(raw.clone()))
            .unwrap_or_else(|e| panic!("{} is a zip archive: {e}", path.display()));
        let mut files = BTreeMap::new();
        for i in 0..zip.len() {
            let mut entry = zip.by_index(i).expect("an entry");
            let name = entry.name().expect("a UTF-8 name").into_owned();
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .expect("the entry decompresses");
            files.insert(name, bytes);
        }
        Self { raw, files }
    }

    /// An entry as text (panics listing the entries when it is missing).
    pub fn text(&self, name: &str) -> String {
        let bytes = self.files.get(name).unwrap_or_else(|| {
            panic!(
                "{name} is not in the report; it has:\n{}",
                self.names().join("\n")
            )
        });
        String::from_utf8_lossy(bytes).into_owned()
    }

    /// The entries' names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.files.keys().cloned().collect()
    }

    /// `manifest.json`.
    pub fn manifest(&self) -> Value {
        serde_json::from_str(&self.text("manifest.json")).expect("manifest.json is JSON")
    }

    /// Panics naming the file when any of `secrets` appears anywhere, in any form.
    pub fn assert_free_of(&self, secrets: &[&str]) {
        for secret in secrets {
            for form in forms(secret) {
                assert!(
                    !contains(&self.raw, form.as_bytes()),
                    "{form:?} (a form of {secret:?}) is in the archive's raw bytes"
                );
                for (name, bytes) in &self.files {
                    assert!(
                        !contains(bytes, form.as_bytes()) && !name.contains(&form),
                        "{form:?} (a form of {secret:?}) is in {name}:\n{}",
                        String::from_utf8_lossy(bytes)
                    );
                }
            }
        }
    }
}

/// A value as files may hold it: as is, base64 (a Secret's data), JSON-escaped.
fn forms(secret: &str) -> Vec<String> {
    let mut out = vec![
        secret.to_string(),
        base64::engine::general_purpose::STANDARD.encode(secret),
    ];
    let json = serde_json::to_string(secret).expect("a string serialises");
    out.push(json[1..json.len() - 1].to_string());
    out.dedup();
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
