//! Splitting a downloaded source into one CRD per file, without re-serialising: each CRD keeps
//! its upstream text byte for byte, so its sha256 can be pinned and compared with the reference
//! copies in `../shared/crds`.
//!
//! The rule, which the pinned checksums depend on: a source is cut at separator lines (`---`
//! alone on its line, trailing blanks allowed); a document is the text between two separators,
//! every line with its line break, the separators themselves excluded. A source with a single
//! non-empty document is kept whole (a leading `---` or comment included), as upstream wrote it.

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// One CRD cut out of a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrdDocument<'a> {
    /// `<group>_<plural>.yaml`.
    pub file: String,
    /// The document's text, as written to the cache.
    pub text: &'a str,
}

/// The CRDs of a source, in order; documents that are not a CustomResourceDefinition (or not
/// YAML) are skipped, since a source may carry other objects beside its CRDs.
pub fn crds(source: &str) -> Vec<CrdDocument<'_>> {
    documents(source)
        .into_iter()
        .filter_map(|text| crd_file_name(text).map(|file| CrdDocument { file, text }))
        .collect()
}

/// The documents of a source (see the module docs for the rule).
pub fn documents(source: &str) -> Vec<&str> {
    let mut documents = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in source.split_inclusive('\n') {
        if is_separator(line) {
            documents.push(&source[start..offset]);
            start = offset + line.len();
        }
        offset += line.len();
    }
    documents.push(&source[start..]);
    documents.retain(|d| has_content(d));
    if documents.len() == 1 {
        return vec![source];
    }
    documents
}

/// The lower-case hex sha256 of a document's bytes.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn is_separator(line: &str) -> bool {
    line.trim_end() == "---"
}

/// Anything besides blank lines and comments.
fn has_content(document: &str) -> bool {
    document.lines().any(|l| {
        let l = l.trim();
        !l.is_empty() && !l.starts_with('#')
    })
}

/// The fields a cache file is named by; everything else in the CRD is ignored here.
#[derive(Deserialize)]
struct CrdHead {
    kind: String,
    spec: CrdSpecHead,
}

#[derive(Deserialize)]
struct CrdSpecHead {
    group: String,
    names: CrdNamesHead,
}

#[derive(Deserialize)]
struct CrdNamesHead {
    plural: String,
}

/// `<group>_<plural>.yaml` for a CRD document; `None` for anything else.
fn crd_file_name(document: &str) -> Option<String> {
    let head: CrdHead = serde_yaml::from_str(document).ok()?;
    (head.kind == "CustomResourceDefinition")
        .then(|| format!("{}_{}.yaml", head.spec.group, head.spec.names.plural))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(group: &str, plural: &str) -> String {
        format!(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: {plural}.{group}\nspec:\n  group: {group}\n  names:\n    kind: Thing\n    plural: {plural}\n  scope: Namespaced\n  versions: []\n"
        )
    }

    #[test]
    fn a_single_document_source_is_kept_whole() {
        let text = format!("# License header\n---\n{}", crd("a.example.com", "things"));
        let found = crds(&text);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].file, "a.example.com_things.yaml");
        assert_eq!(
            found[0].text, text,
            "leading comment and --- are upstream's bytes"
        );
    }

    #[test]
    fn multi_document_sources_split_into_exact_documents() {
        let (a, b) = (
            crd("a.example.com", "things"),
            crd("b.example.com", "others"),
        );
        let config_map = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n";
        let text = format!("---\n{a}--- \n{config_map}---\n\n{b}");
        let found = crds(&text);
        let files: Vec<&str> = found.iter().map(|d| d.file.as_str()).collect();
        assert_eq!(
            files,
            ["a.example.com_things.yaml", "b.example.com_others.yaml"]
        );
        assert_eq!(found[0].text, a);
        assert_eq!(
            found[1].text,
            format!("\n{b}"),
            "only separator lines are removed"
        );
    }

    #[test]
    fn separators_must_stand_alone_and_blank_documents_vanish() {
        let text = "a: 1\n----\nb: '---'\n---\n# only a comment\n---\n";
        assert_eq!(documents(text), [text], "one real document: kept whole");
        assert_eq!(documents("a: 1\n---\nb: 2"), ["a: 1\n", "b: 2"]);
        assert!(crds("kind: CustomResourceDefinition\n").is_empty());
    }

    #[test]
    fn sha256_is_over_the_exact_bytes() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
