//! AWS Signature Version 4 for S3 requests (header-based, path-style), pure: the caller gives
//! the time, so the signature is checked against AWS's documented example.
//!
//! Every request signs `host`, `x-amz-content-sha256` (the SHA-256 of the body, which each
//! part upload holds in memory anyway) and `x-amz-date`, plus any header the caller adds.

use chrono::{DateTime, Utc};
use ring::{digest, hmac};

/// An access key pair.
#[derive(Clone)]
pub struct Credentials {
    /// Access key ID.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never reaches a log line.
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

/// What is signed of one request.
pub struct Request<'a> {
    /// `GET`, `PUT`, `POST`, `DELETE`.
    pub method: &'a str,
    /// `host[:port]` as sent in the Host header.
    pub host: &'a str,
    /// The path, already URI-encoded ([`encode_path`]).
    pub path: &'a str,
    /// Query parameters, not encoded (`("uploads", "")`).
    pub query: &'a [(&'a str, &'a str)],
    /// Headers besides host, x-amz-content-sha256 and x-amz-date (lower-case names).
    pub headers: &'a [(&'a str, &'a str)],
    /// Hex SHA-256 of the body.
    pub payload_sha256: &'a str,
}

/// The hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// URI-encodes one component the way SigV4 wants (unreserved characters kept, the rest `%XX`).
pub fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The encoded path of an object (`/bucket/key`), slashes kept.
pub fn encode_path(path: &str) -> String {
    encode(path, true)
}

/// The encoded query string, sorted as SigV4 requires (and as it is sent).
pub fn query_string(query: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (encode(k, false), encode(v, false)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn hmac_sha256(key: &[u8], data: &str) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
        .as_ref()
        .to_vec()
}

/// The headers to send with `req` at `now`: `x-amz-date`, `x-amz-content-sha256` and
/// `authorization` (name, value).
pub fn sign(
    req: &Request<'_>,
    credentials: &Credentials,
    region: &str,
    now: DateTime<Utc>,
) -> Vec<(&'static str, String)> {
    let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
    let date = now.format("%Y%m%d").to_string();
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .chain([
            ("host".to_string(), req.host.to_string()),
            (
                "x-amz-content-sha256".to_string(),
                req.payload_sha256.to_string(),
            ),
            ("x-amz-date".to_string(), amz_date.clone()),
        ])
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_request = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        req.method,
        req.path,
        query_string(req.query),
        req.payload_sha256
    );
    let scope = format!("{date}/{region}/s3/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let mut key = hmac_sha256(format!("AWS4{}", credentials.secret_key).as_bytes(), &date);
    for part in [region, "s3", "aws4_request"] {
        key = hmac_sha256(&key, part);
    }
    let signature = hex(&hmac_sha256(&key, &string_to_sign));
    vec![
        ("x-amz-date", amz_date),
        ("x-amz-content-sha256", req.payload_sha256.to_string()),
        (
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
                credentials.access_key
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// AWS's worked example "GET Object" (S3 API reference, "Signature calculations for the
    /// Authorization header: example").
    #[test]
    fn signs_aws_documented_get_object_example() {
        let creds = Credentials {
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        };
        let empty = sha256_hex(b"");
        let req = Request {
            method: "GET",
            host: "examplebucket.s3.amazonaws.com",
            path: &encode_path("/test.txt"),
            query: &[],
            headers: &[("range", "bytes=0-9")],
            payload_sha256: &empty,
        };
        let now = Utc.with_ymd_and_hms(2013, 5, 24, 0, 0, 0).unwrap();
        let headers = sign(&req, &creds, "us-east-1", now);
        let auth = &headers
            .iter()
            .find(|(k, _)| *k == "authorization")
            .unwrap()
            .1;
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn paths_and_queries_are_encoded_as_sigv4_wants() {
        assert_eq!(encode_path("/b/a b/ü~.log"), "/b/a%20b/%C3%BC~.log");
        assert_eq!(
            query_string(&[("uploadId", "x/y+z"), ("partNumber", "2")]),
            "partNumber=2&uploadId=x%2Fy%2Bz"
        );
        assert_eq!(query_string(&[("uploads", "")]), "uploads=");
    }
}
