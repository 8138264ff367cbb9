//! What keeps secrets out of the support bundle. Pure functions over JSON and text, no client,
//! so the rules are tested on fixtures in milliseconds. Four layers, each catching what the one
//! before cannot see:
//!
//! 1. **Secrets** keep their keys; every value becomes `<redacted: N bytes>`
//!    ([`redact_secret`]), and so does the copy of the data in their
//!    `last-applied-configuration` annotation.
//! 2. **Fields named like a credential** (`password`, `token`, `accessKey`, …: see
//!    [`is_credential_key`]) have their value replaced in any object — Helm values, ConfigMap
//!    data, custom resources, annotations holding JSON — and so do `env` entries
//!    `{name: DB_PASSWORD, value: …}` ([`redact_fields`]).
//! 3. **Credential-shaped text**: `password: x`, `"token":"x"`, `PASSWORD=x`, `--db-password=x`
//!    and the password of `scheme://user:password@host`, in any string and any log line
//!    ([`scrub_patterns`]).
//! 4. **Every value read from a Secret** (and every value the layers above redacted in the Helm
//!    values and pod specs) is replaced wherever it appears, in any file, whatever the line looks
//!    like ([`Redactor`]): a password a task prints on its own is still caught.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use base64::Engine as _;
use regex::{Captures, Regex};
use serde_json::Value;

/// What replaces a value found by a rule (layers 2 and 3).
pub(crate) const MARKER: &str = "<redacted>";

/// The annotation `kubectl apply` keeps the whole applied object in (a Secret's data included).
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Values shorter than this are not searched for by content: a Secret value such as `1` or
/// `yes` would otherwise blank out every occurrence of that word in the bundle.
pub(crate) const MIN_SCRUBBED_LEN: usize = 4;

/// Values longer than this are not searched for whole: a Helm release record (hundreds of KiB
/// of gzip in base64) or a CA bundle is not what leaks into a log line, and searching for it
/// would cost as much memory as its size times the alphabet. What a long config file holds
/// inside (`PASSWORD=x`) is still searched for.
pub(crate) const MAX_SCRUBBED_LEN: usize = 4096;

/// What replaces one of a Secret's values: its size, never its content.
pub(crate) fn secret_marker(bytes: usize) -> String {
    format!("<redacted: {bytes} bytes>")
}

/// The words that make a key a credential, matched in the key lowercased with everything but
/// letters and digits removed (`DB_PASSWORD`, `db-password` and `dbPassword` are all
/// `dbpassword`).
const CREDENTIAL_WORDS: [&str; 9] = [
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "apikey",
    "authorization",
    "privatekey",
];

/// Endings that make a credential-sounding key a reference to one rather than the value
/// (`secretName`, `passwordSecretRef`, `tokenFile`, `existingSecret` name a place, not a value;
/// `accessKeyKey`, `passwordKey` name the key of a Secret that holds it).
const REFERENCE_ENDINGS: [&str; 11] = [
    "name",
    "names",
    "ref",
    "file",
    "path",
    "existingsecret",
    "keykey",
    "passwordkey",
    "tokenkey",
    "userkey",
    "usernamekey",
];

/// The names of the namespace's Secrets: a credential-named field holding one of them
/// (`rootSecret: datajump-mysql-root`) points at a Secret and is kept, and such a name is never
/// searched for as a value.
pub(crate) type SecretNames = BTreeSet<String>;

/// Whether a key names a credential: it contains one of [`CREDENTIAL_WORDS`] or ends in `key`
/// (`accessKey`, `minio-secret-key`, `tls.key`), unless it names where a credential is kept
/// ([`REFERENCE_ENDINGS`]). A bare `key` is Kubernetes' pointer into a Secret or ConfigMap
/// (`secretKeyRef: {name, key}`, `items: [{key, path}]`), not a value.
pub(crate) fn is_credential_key(key: &str) -> bool {
    let flat: String = key
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if REFERENCE_ENDINGS.iter().any(|end| flat.ends_with(end))
        || flat.starts_with("existing")
        || flat == "key"
        || flat == "keys"
    {
        return false;
    }
    CREDENTIAL_WORDS.iter().any(|w| flat.contains(w)) || flat.ends_with("key")
}

/// A Secret with every value of `data` and `stringData` replaced by its size, and the
/// `last-applied-configuration` annotation (which repeats the data) replaced whole. Returns the
/// values it removed, decoded, with the key they were under (for the [`Redactor`]).
pub(crate) fn redact_secret(secret: &mut Value) -> Vec<(String, Vec<u8>)> {
    let mut removed = Vec::new();
    if let Some(data) = secret.get_mut("data").and_then(Value::as_object_mut) {
        for (key, value) in data.iter_mut() {
            let encoded = value.as_str().unwrap_or_default();
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .unwrap_or_else(|_| encoded.as_bytes().to_vec());
            *value = Value::String(secret_marker(decoded.len()));
            removed.push((key.clone(), decoded));
        }
    }
    if let Some(data) = secret.get_mut("stringData").and_then(Value::as_object_mut) {
        for (key, value) in data.iter_mut() {
            let plain = value.as_str().unwrap_or_default().as_bytes().to_vec();
            *value = Value::String(secret_marker(plain.len()));
            removed.push((key.clone(), plain));
        }
    }
    if let Some(applied) = secret.pointer_mut(&format!(
        "/metadata/annotations/{}",
        LAST_APPLIED.replace('/', "~1")
    )) {
        *applied = Value::String(MARKER.into());
    }
    removed
}

/// Replaces the values of credential-named fields (layer 2) and credential-shaped text in every
/// string (layer 3) of any JSON tree, in place; strings holding a JSON object (annotations such
/// as `last-applied-configuration`) are redacted inside. A field naming one of `names` is a
/// reference and kept. Returns the values it replaced, so that they can be searched for
/// elsewhere too.
pub(crate) fn redact_fields(value: &mut Value, names: &SecretNames) -> Vec<String> {
    let mut removed = Vec::new();
    walk(value, names, &mut removed);
    removed
}

fn walk(value: &mut Value, names: &SecretNames, removed: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            // An env entry (or any name/value pair) whose name is a credential's.
            let named_credential = map
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(is_credential_key);
            for (key, child) in map.iter_mut() {
                let credential = is_credential_key(key) || (named_credential && key == "value");
                let reference = child.as_str().is_some_and(|v| names.contains(v));
                if credential
                    && !reference
                    && let Some(found) = take_scalar(child)
                {
                    removed.extend(found);
                } else {
                    walk(child, names, removed);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| walk(item, names, removed)),
        Value::String(text) => {
            if let Some(redacted) = redact_embedded_json(text, names, removed) {
                *text = redacted;
            } else if let Cow::Owned(scrubbed) = scrub_patterns(text) {
                removed.extend(pattern_values(text));
                *text = scrubbed;
            }
        }
        _ => {}
    }
}

/// Replaces a non-empty string or a number with [`MARKER`]; returns the string it held (a
/// number is redacted where it stands but not searched for elsewhere: `tokenTtl: 3600` must not
/// blank out every 3600). `None` for what is left for the walk: booleans and nulls
/// (`automountServiceAccountToken: true` is no secret), lists and maps (a map under
/// `credentials:` holds names and keys to look at one by one).
fn take_scalar(value: &mut Value) -> Option<Option<String>> {
    let found = match value {
        Value::String(s) if !s.is_empty() && !is_marker(s) => Some(s.clone()),
        Value::Number(_) => None,
        _ => return None,
    };
    *value = Value::String(MARKER.into());
    Some(found)
}

/// A string that is a JSON object (an annotation), redacted inside and written back compactly.
fn redact_embedded_json(
    text: &str,
    names: &SecretNames,
    removed: &mut Vec<String>,
) -> Option<String> {
    let trimmed = text.trim_start();
    if !trimmed.starts_with('{') {
        return None;
    }
    let mut inner: Value = serde_json::from_str(text).ok()?;
    if inner.get("kind").and_then(Value::as_str) == Some("Secret") {
        removed.extend(
            redact_secret(&mut inner)
                .into_iter()
                .map(|(_, v)| String::from_utf8_lossy(&v).into_owned()),
        );
    }
    walk(&mut inner, names, removed);
    serde_json::to_string(&inner).ok()
}

/// `key: value`, `key=value`, `"key":"value"` (also JSON inside a JSON string, `\"key\":\"value\"`)
/// where the key holds a credential word, and the password of a URL's user info.
static PATTERNS: LazyLock<(Regex, Regex)> = LazyLock::new(|| {
    let key_value = Regex::new(
        r#"(?ix)
        (?P<key>[a-z0-9_.\-]*(?:password|passwd|passphrase|secret|token|credential|api[_\-]?key|access[_\-]?key|private[_\-]?key)[a-z0-9_.\-]*)
        (?P<sep>(?:\\?["'])?[\ \t]*[:=][\ \t]*)
        (?P<value>\\"[^"\\]*\\"|"(?:[^"\\]|\\.)*"|'[^']*'|[^\s"',;&}\]\\]+)"#,
    )
    .expect("the key/value pattern compiles");
    let url = Regex::new(r"(?i)(?P<head>\b[a-z][a-z0-9+.\-]*://[^/\s:@]+:)(?P<value>[^@\s/]+)@")
        .expect("the URL pattern compiles");
    (key_value, url)
});

/// Layer 3: credential-shaped text with its value replaced (quotes kept). Borrowed when nothing
/// matched, which is almost always.
pub(crate) fn scrub_patterns(text: &str) -> Cow<'_, str> {
    let (key_value, url) = &*PATTERNS;
    let step = key_value.replace_all(text, |c: &Captures<'_>| {
        let value = &c["value"];
        if is_reference_key(&c["key"]) || is_marker(value) {
            return c[0].to_string();
        }
        format!("{}{}{}", &c["key"], &c["sep"], requote(value))
    });
    match url.replace_all(&step, |c: &Captures<'_>| format!("{}{MARKER}@", &c["head"])) {
        Cow::Borrowed(_) => step,
        Cow::Owned(done) => Cow::Owned(done),
    }
}

/// The values [`scrub_patterns`] would replace in `text` (to search for them elsewhere).
pub(crate) fn pattern_values(text: &str) -> Vec<String> {
    let (key_value, url) = &*PATTERNS;
    let unquote = |v: &str| {
        v.trim_matches(|c| c == '"' || c == '\'' || c == '\\')
            .to_string()
    };
    key_value
        .captures_iter(text)
        .filter(|c| !is_reference_key(&c["key"]) && !is_marker(&c["value"]))
        .map(|c| unquote(&c["value"]))
        .chain(url.captures_iter(text).map(|c| c["value"].to_string()))
        .filter(|v| !v.is_empty())
        .collect()
}

/// A value redacted already (`<redacted: 6 bytes>`, quoted as YAML quotes it).
fn is_marker(value: &str) -> bool {
    value
        .trim_start_matches(['"', '\'', '\\'])
        .starts_with("<redacted")
}

/// `secretName: x` in text names a Secret; it is not one.
fn is_reference_key(key: &str) -> bool {
    !is_credential_key(key)
}

/// The marker in the quotes the value had.
fn requote(value: &str) -> String {
    for quote in ["\\\"", "\"", "'"] {
        if value.len() >= 2 * quote.len() && value.starts_with(quote) && value.ends_with(quote) {
            return format!("{quote}{MARKER}{quote}");
        }
    }
    MARKER.to_string()
}

/// A value to search for, and what to say in its place (`<redacted: Secret db/password>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Term {
    pub value: Vec<u8>,
    pub label: String,
}

impl Term {
    /// The value a Secret holds under `key`, labelled with where it comes from.
    pub(crate) fn from_secret(secret: &str, key: &str, value: Vec<u8>) -> Self {
        Self {
            value,
            label: format!("Secret {secret} key {key}"),
        }
    }
}

/// Layer 4: finds every term in one pass over a text (Aho–Corasick, longest first) and replaces
/// it with `<redacted: LABEL>`, then applies layer 3.
#[derive(Debug, Default)]
pub(crate) struct Redactor {
    matcher: Option<AhoCorasick>,
    labels: Vec<String>,
    names: SecretNames,
}

impl Redactor {
    /// A redactor for `terms` and the forms they take in files: as given, without the trailing
    /// newline a file-made Secret often has, base64-encoded (a Secret's manifest), JSON-escaped,
    /// and the credentials written inside a value that is a whole config file. A term that is
    /// the name of a Secret (`names`) is not searched for.
    pub(crate) fn new(terms: impl IntoIterator<Item = Term>, names: SecretNames) -> Self {
        let mut forms: Vec<(Vec<u8>, String)> = Vec::new();
        for term in terms {
            for form in forms_of(&term.value) {
                let is_name = std::str::from_utf8(&form).is_ok_and(|f| names.contains(f));
                if (MIN_SCRUBBED_LEN..=MAX_SCRUBBED_LEN).contains(&form.len())
                    && !is_name
                    && !forms.iter().any(|(f, _)| *f == form)
                {
                    forms.push((form, term.label.clone()));
                }
            }
        }
        if forms.is_empty() {
            return Self {
                names,
                ..Self::default()
            };
        }
        // The contiguous NFA: a few bytes per pattern byte, where a DFA would take hundreds.
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .build(forms.iter().map(|(f, _)| f))
            .expect("literal patterns always build");
        Self {
            matcher: Some(matcher),
            labels: forms.into_iter().map(|(_, label)| label).collect(),
            names,
        }
    }

    /// The Secret names the field rules keep (see [`SecretNames`]).
    pub(crate) fn names(&self) -> &SecretNames {
        &self.names
    }

    /// How many distinct values it searches for (all forms counted once each).
    pub(crate) fn len(&self) -> usize {
        self.labels.len()
    }

    /// The text with every term replaced; how many it replaced (borrowed when none). For
    /// structured text (YAML written from a tree whose strings were scrubbed already), where the
    /// shapes of layer 3 would misread a field like `automountServiceAccountToken: true`.
    pub(crate) fn scrub_terms<'t>(&self, text: &'t str) -> (Cow<'t, str>, usize) {
        let Some(matcher) = &self.matcher else {
            return (Cow::Borrowed(text), 0);
        };
        let (mut out, mut count, mut last) = (String::new(), 0, 0);
        // Every form is valid UTF-8 (see `forms_of`), so matches fall on character boundaries.
        for m in matcher.find_iter(text) {
            out.push_str(&text[last..m.start()]);
            out.push_str("<redacted: ");
            out.push_str(&self.labels[m.pattern().as_usize()]);
            out.push('>');
            last = m.end();
            count += 1;
        }
        if count == 0 {
            return (Cow::Borrowed(text), 0);
        }
        out.push_str(&text[last..]);
        (Cow::Owned(out), count)
    }

    /// The text with every term and every credential-shaped value replaced; how many it
    /// replaced (borrowed when none). For free text: logs, event messages, metrics.
    pub(crate) fn scrub<'t>(&self, text: &'t str) -> (Cow<'t, str>, usize) {
        let (out, count) = self.scrub_terms(text);
        let scrubbed = match scrub_patterns(&out) {
            Cow::Borrowed(_) => return (out, count),
            Cow::Owned(scrubbed) => scrubbed,
        };
        (Cow::Owned(scrubbed), count + 1)
    }

    /// Every string of a JSON tree scrubbed in place (before it is written as YAML, whose
    /// quoting and line folding would hide a value from a search of the written text).
    pub(crate) fn scrub_value(&self, value: &mut Value) -> usize {
        match value {
            Value::String(text) => match self.scrub(text) {
                (Cow::Owned(scrubbed), count) => {
                    *text = scrubbed;
                    count
                }
                (Cow::Borrowed(_), _) => 0,
            },
            Value::Array(items) => items.iter_mut().map(|v| self.scrub_value(v)).sum(),
            Value::Object(map) => map.values_mut().map(|v| self.scrub_value(v)).sum(),
            _ => 0,
        }
    }
}

/// The forms a value takes in files (see [`Redactor::new`]). A term that is not valid UTF-8
/// (a keystore) cannot be in a text file as it is: it is searched for as base64 only.
fn forms_of(value: &[u8]) -> Vec<Vec<u8>> {
    let mut forms = vec![
        base64::engine::general_purpose::STANDARD
            .encode(value)
            .into_bytes(),
    ];
    if let Ok(text) = std::str::from_utf8(value) {
        forms.push(value.to_vec());
        let trimmed = text.trim();
        forms.push(trimmed.as_bytes().to_vec());
        if let Ok(json) = serde_json::to_string(trimmed) {
            forms.push(json.as_bytes()[1..json.len() - 1].to_vec());
        }
        // A config file kept in a Secret (`MINIO_ROOT_PASSWORD=x` in config.env): its inner
        // credentials appear on their own in logs.
        if trimmed.contains('\n') {
            forms.extend(pattern_values(trimmed).into_iter().map(String::into_bytes));
        }
    }
    forms
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn credential_keys_are_recognised_and_references_are_not() {
        for key in [
            "password",
            "DB_PASSWORD",
            "db-root-password",
            "rootPassword",
            "jwt-secret",
            "accessKey",
            "minio-secret-key",
            "tls.key",
            "api_token",
            "AWS_SECRET_ACCESS_KEY",
            "credentials",
            "apiKey",
            "ssh-privatekey",
            "jwtSecret",
            "rootSecret",
        ] {
            assert!(is_credential_key(key), "{key} is a credential");
        }
        for key in [
            "username",
            "secretName",
            "existingSecret",
            "passwordSecretRef",
            "tokenFile",
            "mountPath",
            "key",
            "host",
            "image",
            "serviceAccountName",
            "accessKeyKey",
            "secretKeyKey",
            "passwordKey",
        ] {
            assert!(!is_credential_key(key), "{key} is no credential");
        }
    }

    #[test]
    fn secrets_keep_their_keys_and_lose_their_values_and_last_applied_copy() {
        let mut secret = json!({
            "kind": "Secret",
            "metadata": {"name": "db", "annotations": {
                LAST_APPLIED: "{\"data\":{\"password\":\"czNjcjN0\"},\"kind\":\"Secret\"}",
                "team": "data"
            }},
            "data": {"password": "czNjcjN0", "user": "cm9vdA=="},
            "stringData": {"token": "abc"}
        });
        let removed = redact_secret(&mut secret);
        assert_eq!(secret["data"]["password"], "<redacted: 6 bytes>");
        assert_eq!(secret["data"]["user"], "<redacted: 4 bytes>");
        assert_eq!(secret["stringData"]["token"], "<redacted: 3 bytes>");
        assert_eq!(secret["metadata"]["annotations"][LAST_APPLIED], MARKER);
        assert_eq!(secret["metadata"]["annotations"]["team"], "data");
        assert_eq!(
            removed,
            [
                ("password".to_string(), b"s3cr3t".to_vec()),
                ("user".to_string(), b"root".to_vec()),
                ("token".to_string(), b"abc".to_vec()),
            ]
        );
    }

    #[test]
    fn credential_fields_env_entries_and_embedded_json_are_redacted() {
        let mut values = json!({
            "mysql": {"password": "hunter22", "port": 3306, "auth": {"rootPassword": 12345},
                      "rootSecret": "datajump-mysql-root", "passwordKey": "rootPassword"},
            "secrets": {"existingSecret": "creds", "values": {"jwtSecret": "jjj"}},
            "serviceAccount": {"automountServiceAccountToken": true},
            "containers": [{"name": "app", "env": [
                {"name": "DB_PASSWORD", "value": "envpass1"},
                {"name": "DB_HOST", "value": "mysql"},
                {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}
            ], "args": ["--db-password=argpass1", "--verbose"]}],
            "annotations": {LAST_APPLIED: "{\"kind\":\"ConfigMap\",\"data\":{\"S3_ACCESS_KEY\":\"AKIA123\"}}"}
        });
        let names = SecretNames::from(["datajump-mysql-root".to_string()]);
        let mut removed = redact_fields(&mut values, &names);
        removed.sort();
        assert_eq!(values["mysql"]["password"], MARKER);
        assert_eq!(values["mysql"]["port"], 3306);
        assert_eq!(values["mysql"]["auth"]["rootPassword"], MARKER);
        assert_eq!(values["mysql"]["rootSecret"], "datajump-mysql-root");
        assert_eq!(values["mysql"]["passwordKey"], "rootPassword");
        assert_eq!(values["secrets"]["existingSecret"], "creds");
        assert_eq!(values["secrets"]["values"]["jwtSecret"], MARKER);
        assert_eq!(
            values["serviceAccount"]["automountServiceAccountToken"],
            true
        );
        let env = &values["containers"][0]["env"];
        assert_eq!(env[0]["value"], MARKER);
        assert_eq!(env[1]["value"], "mysql");
        assert_eq!(env[2]["valueFrom"]["secretKeyRef"]["name"], "creds");
        assert_eq!(env[2]["valueFrom"]["secretKeyRef"]["key"], "token");
        assert_eq!(
            values["containers"][0]["args"][0],
            "--db-password=<redacted>"
        );
        let applied = values["annotations"][LAST_APPLIED].as_str().unwrap();
        assert!(
            applied.contains("\"S3_ACCESS_KEY\":\"<redacted>\""),
            "{applied}"
        );
        assert_eq!(
            removed,
            ["AKIA123", "argpass1", "envpass1", "hunter22", "jjj"]
        );
    }

    #[test]
    fn log_lines_that_look_like_credentials_are_scrubbed() {
        for (line, want) in [
            ("password: hunter2", "password: <redacted>"),
            (
                "db.password=hunter2 user=root",
                "db.password=<redacted> user=root",
            ),
            (
                r#"{"password":"hunter 2","user":"u"}"#,
                r#"{"password":"<redacted>","user":"u"}"#,
            ),
            (
                "MYSQL_ROOT_PASSWORD=hunter2",
                "MYSQL_ROOT_PASSWORD=<redacted>",
            ),
            ("token = 'abc def'", "token = '<redacted>'"),
            (
                r#"msg="{\"secret\":\"x1\"}""#,
                r#"msg="{\"secret\":\"<redacted>\"}""#,
            ),
            (
                "jdbc:mysql://app:pw1234@db:3306/x",
                "jdbc:mysql://app:<redacted>@db:3306/x",
            ),
            (
                "secretName: datajump-credentials",
                "secretName: datajump-credentials",
            ),
            (
                "minio-access-key: <redacted: 4 bytes>",
                "minio-access-key: <redacted: 4 bytes>",
            ),
            (
                "password: '<redacted: 6 bytes>'",
                "password: '<redacted: 6 bytes>'",
            ),
            ("nothing to see here", "nothing to see here"),
        ] {
            assert_eq!(scrub_patterns(line), want, "{line}");
        }
        assert!(matches!(scrub_patterns("plain line"), Cow::Borrowed(_)));
    }

    #[test]
    fn every_form_of_a_secret_value_is_found_anywhere() {
        let redactor = Redactor::new(
            [
                Term::from_secret("db", "password", b"S3cret-Value\n".to_vec()),
                Term::from_secret(
                    "cfg",
                    "config.env",
                    b"export MINIO_ROOT_PASSWORD=minio-pw-9\nexport X=1\n".to_vec(),
                ),
                Term::from_secret("short", "flag", b"yes".to_vec()),
                Term::from_secret("x", "y", b"datajump-credentials".to_vec()),
            ],
            SecretNames::from(["datajump-credentials".to_string()]),
        );
        let (text, count) = redactor
            .scrub("connect S3cret-Value ok; b64 UzNjcmV0LVZhbHVlCg==; login minio-pw-9; yes");
        assert_eq!(
            text,
            "connect <redacted: Secret db key password> ok; b64 <redacted: Secret db key password>; \
             login <redacted: Secret cfg key config.env>; yes"
        );
        assert_eq!(count, 3);
        let mut tree = json!({"a": ["x S3cret-Value y"], "b": {"c": "password: other"}});
        assert_eq!(redactor.scrub_value(&mut tree), 2);
        assert_eq!(tree["a"][0], "x <redacted: Secret db key password> y");
        assert_eq!(tree["b"]["c"], "password: <redacted>");
        assert_eq!(
            redactor.scrub("datajump-credentials").0,
            "datajump-credentials"
        );
        let none = Redactor::new([], SecretNames::new());
        assert_eq!(none.scrub("S3cret-Value").0, "S3cret-Value");
    }
}
