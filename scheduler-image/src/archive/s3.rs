//! A small S3 client for the log archive: an object written from a stream (one PUT when it
//! fits in a part, else a multipart upload with one part buffer in memory at a time), read as a
//! stream, over hyper with rustls. Requests are path-style (`<endpoint>/<bucket>/<key>`), which
//! MinIO, RustFS, moto and AWS all accept, and signed with SigV4 ([`super::sigv4`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use futures::{AsyncRead, AsyncReadExt};
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::sigv4::{self, Credentials};

/// Size of each part of a multipart upload, and so the memory one upload holds: S3 wants at
/// least 5 MiB per part but the last, and at most 10,000 parts (80 GB logs at this size).
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// How long one request may take (a part upload included) before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The most of an S3 answer read into memory (answers to uploads and errors are small XML).
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Everything that can go wrong talking to S3.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// The endpoint is not an `http(s)://host[:port]` URL.
    #[error("S3 endpoint {0:?} is not an http(s)://host[:port] URL")]
    Endpoint(String),
    /// The CA file holds no usable certificate.
    #[error("CA {path}: {message}")]
    Ca {
        /// The file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// The credentials could not be read.
    #[error("reading the S3 credentials from {path}: {source}")]
    Credentials {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// No answer (connection, TLS, timeout).
    #[error("{action}: {message}")]
    Transport {
        /// What was asked.
        action: String,
        /// Why it failed.
        message: String,
    },
    /// S3 answered with an error.
    #[error("{action}: S3 answered {status}: {body}")]
    Refused {
        /// What was asked.
        action: String,
        /// The HTTP status.
        status: StatusCode,
        /// The error document (its code and message).
        body: String,
    },
    /// The log being stored could not be read.
    #[error("reading the log: {0}")]
    Source(std::io::Error),
}

/// Where the access key pair comes from.
#[derive(Debug, Clone)]
pub enum CredentialSource {
    /// Files re-read for each upload, so a rotated Secret is picked up without a restart.
    Files {
        /// The access key ID's file.
        access_key: String,
        /// The secret access key's file.
        secret_key: String,
    },
    /// Fixed keys (tests).
    Fixed(Credentials),
}

impl CredentialSource {
    fn read(&self) -> Result<Credentials, S3Error> {
        let read = |path: &String| {
            std::fs::read_to_string(path)
                .map(|s| s.trim().to_string())
                .map_err(|source| S3Error::Credentials {
                    path: path.clone(),
                    source,
                })
        };
        match self {
            Self::Files {
                access_key,
                secret_key,
            } => Ok(Credentials {
                access_key: read(access_key)?,
                secret_key: read(secret_key)?,
            }),
            Self::Fixed(c) => Ok(c.clone()),
        }
    }
}

/// One bucket of an S3 endpoint.
#[derive(Clone)]
pub struct Bucket {
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// `http(s)://host[:port]`.
    base: String,
    /// `host[:port]`, the signed Host header.
    host: String,
    bucket: String,
    region: String,
    credentials: Arc<CredentialSource>,
}

/// The TLS roots: Mozilla's (compiled in, so the image needs no CA bundle), plus the CA in
/// `ca_pem` (a private endpoint's).
fn tls_config(ca: Option<(&str, &[u8])>) -> Result<rustls::ClientConfig, S3Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some((path, pem)) = ca {
        let ca_error = |message: String| S3Error::Ca {
            path: path.to_string(),
            message,
        };
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| ca_error(format!("not PEM: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| ca_error(format!("not a CA certificate: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(ca_error("holds no PEM certificate".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| S3Error::Endpoint(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The text between `<tag>` and `</tag>` in an XML answer.
fn xml_field<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(&xml[start..end])
}

/// Reads from `reader` until `buf` holds `limit` bytes or the stream ends.
async fn fill<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    limit: usize,
) -> Result<(), S3Error> {
    let mut chunk = [0u8; 64 * 1024];
    while buf.len() < limit {
        let want = chunk.len().min(limit - buf.len());
        let n = reader
            .read(&mut chunk[..want])
            .await
            .map_err(S3Error::Source)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(())
}

impl Bucket {
    /// `bucket` at `endpoint` (`http(s)://host[:port]`), trusting Mozilla's roots and the CA
    /// in `ca` (its path and PEM) if any.
    pub fn new(
        endpoint: &str,
        bucket: &str,
        region: &str,
        credentials: CredentialSource,
        ca: Option<(&str, &[u8])>,
    ) -> Result<Self, S3Error> {
        let base = endpoint.trim_end_matches('/');
        let host = base
            .strip_prefix("https://")
            .or_else(|| base.strip_prefix("http://"))
            .filter(|h| !h.is_empty() && !h.contains(['/', '?', '#', '@', ' ']))
            .ok_or_else(|| S3Error::Endpoint(endpoint.to_string()))?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(ca)?)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            http: Client::builder(TokioExecutor::new()).build(https),
            base: base.to_string(),
            host: host.to_string(),
            bucket: bucket.to_string(),
            region: region.to_string(),
            credentials: Arc::new(credentials),
        })
    }

    /// `s3://bucket/key`, for messages.
    pub fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// Sends a signed request for `key`.
    async fn send(
        &self,
        method: Method,
        key: &str,
        query: &[(&str, &str)],
        body: Bytes,
        action: &str,
    ) -> Result<Response<Incoming>, S3Error> {
        let credentials = self.credentials.read()?;
        let path = sigv4::encode_path(&format!("/{}/{key}", self.bucket));
        let payload_sha256 = sigv4::sha256_hex(&body);
        let signed = sigv4::sign(
            &sigv4::Request {
                method: method.as_str(),
                host: &self.host,
                path: &path,
                query,
                headers: &[],
                payload_sha256: &payload_sha256,
            },
            &credentials,
            &self.region,
            Utc::now(),
        );
        let query = sigv4::query_string(query);
        let uri = if query.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}{path}?{query}", self.base)
        };
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, &self.host)
            .header(header::CONTENT_LENGTH, body.len());
        for (name, value) in signed {
            request = request.header(name, value);
        }
        let transport = |message: String| S3Error::Transport {
            action: action.to_string(),
            message,
        };
        let request = request
            .body(Full::new(body))
            .map_err(|e| transport(e.to_string()))?;
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.http.request(request))
            .await
            .map_err(|_| transport(format!("no answer within {REQUEST_TIMEOUT:?}")))?
            .map_err(|e| transport(format!("{e:?}")))?;
        if response.status().is_success() || response.status() == StatusCode::NOT_FOUND {
            return Ok(response);
        }
        let status = response.status();
        let body = self.answer(response, action).await.unwrap_or_default();
        Err(S3Error::Refused {
            action: action.to_string(),
            status,
            body: body.trim().chars().take(500).collect(),
        })
    }

    /// Reads a (small) answer's body as text.
    async fn answer(&self, response: Response<Incoming>, action: &str) -> Result<String, S3Error> {
        let bytes = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| S3Error::Transport {
                action: action.to_string(),
                message: e.to_string(),
            })?
            .to_bytes();
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Sends a request whose 404 is an error too.
    async fn expect_ok(
        &self,
        method: Method,
        key: &str,
        query: &[(&str, &str)],
        body: Bytes,
        action: &str,
    ) -> Result<Response<Incoming>, S3Error> {
        let response = self.send(method, key, query, body, action).await?;
        if response.status() == StatusCode::NOT_FOUND {
            let body = self.answer(response, action).await.unwrap_or_default();
            return Err(S3Error::Refused {
                action: action.to_string(),
                status: StatusCode::NOT_FOUND,
                body: body.trim().chars().take(500).collect(),
            });
        }
        Ok(response)
    }

    /// Writes `key` from `reader`; returns the bytes written. Memory stays at about one
    /// [`PART_SIZE`] buffer whatever the length: an object that fits in one part is one PUT,
    /// a longer one a multipart upload, aborted if anything fails.
    pub async fn put_stream<R: AsyncRead + Unpin>(
        &self,
        key: &str,
        mut reader: R,
        part_size: usize,
    ) -> Result<u64, S3Error> {
        let mut buf = Vec::with_capacity(part_size);
        fill(&mut reader, &mut buf, part_size).await?;
        if buf.len() < part_size {
            let len = buf.len() as u64;
            let action = format!("storing {}", self.url(key));
            self.expect_ok(Method::PUT, key, &[], Bytes::from(buf), &action)
                .await?;
            return Ok(len);
        }
        let action = format!("starting the upload of {}", self.url(key));
        let response = self
            .expect_ok(Method::POST, key, &[("uploads", "")], Bytes::new(), &action)
            .await?;
        let answer = self.answer(response, &action).await?;
        let upload_id = xml_field(&answer, "UploadId")
            .ok_or_else(|| S3Error::Transport {
                action: action.clone(),
                message: format!("no UploadId in {answer:?}"),
            })?
            .to_string();
        match self
            .upload_parts(key, &upload_id, buf, reader, part_size)
            .await
        {
            Ok(len) => Ok(len),
            Err(e) => {
                // Best effort: a left-over upload costs storage until a lifecycle rule ends it.
                let action = format!("aborting the upload of {}", self.url(key));
                if let Err(abort) = self
                    .send(
                        Method::DELETE,
                        key,
                        &[("uploadId", &upload_id)],
                        Bytes::new(),
                        &action,
                    )
                    .await
                {
                    tracing::warn!(error = %abort, "could not abort a failed upload");
                }
                Err(e)
            }
        }
    }

    /// Uploads `first` and the rest of `reader` as parts, then completes the upload.
    async fn upload_parts<R: AsyncRead + Unpin>(
        &self,
        key: &str,
        upload_id: &str,
        first: Vec<u8>,
        mut reader: R,
        part_size: usize,
    ) -> Result<u64, S3Error> {
        let mut etags = Vec::new();
        let mut total = 0u64;
        let mut buf = first;
        loop {
            let number = (etags.len() + 1).to_string();
            total += buf.len() as u64;
            let action = format!("uploading part {number} of {}", self.url(key));
            let query = [("partNumber", number.as_str()), ("uploadId", upload_id)];
            // The buffer moves into the request; the next part gets a fresh one, so at most
            // one part is held (the one being sent) plus the one filling.
            let response = self
                .expect_ok(Method::PUT, key, &query, Bytes::from(buf), &action)
                .await?;
            let etag = response
                .headers()
                .get(header::ETAG)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| S3Error::Transport {
                    action: action.clone(),
                    message: "no ETag in the answer".into(),
                })?
                .to_string();
            etags.push(etag);
            buf = Vec::with_capacity(part_size);
            fill(&mut reader, &mut buf, part_size).await?;
            if buf.is_empty() {
                break;
            }
        }
        let parts: String = etags
            .iter()
            .enumerate()
            .map(|(i, etag)| {
                format!(
                    "<Part><PartNumber>{}</PartNumber><ETag>{etag}</ETag></Part>",
                    i + 1
                )
            })
            .collect();
        let body = format!("<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>");
        let action = format!("completing the upload of {}", self.url(key));
        let response = self
            .expect_ok(
                Method::POST,
                key,
                &[("uploadId", upload_id)],
                Bytes::from(body),
                &action,
            )
            .await?;
        // S3 may answer 200 with an error document when completing fails late.
        let answer = self.answer(response, &action).await?;
        if answer.contains("<Error>") {
            return Err(S3Error::Refused {
                action,
                status: StatusCode::OK,
                body: answer.chars().take(500).collect(),
            });
        }
        Ok(total)
    }

    /// Opens `key` for reading: its length and its body as a stream, or `None` when there is
    /// no such object.
    pub async fn get(&self, key: &str) -> Result<Option<(Option<u64>, Incoming)>, S3Error> {
        let action = format!("reading {}", self.url(key));
        let response = self
            .send(Method::GET, key, &[], Bytes::new(), &action)
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let len = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        Ok(Some((len, response.into_body())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_http_urls_of_a_host() {
        let creds = || {
            CredentialSource::Fixed(Credentials {
                access_key: "a".into(),
                secret_key: "s".into(),
            })
        };
        for bad in ["s3.example.com", "https://", "https://h/path", "ftp://h"] {
            assert!(
                matches!(
                    Bucket::new(bad, "b", "r", creds(), None),
                    Err(S3Error::Endpoint(_))
                ),
                "{bad}"
            );
        }
        let bucket =
            Bucket::new("https://s3.example.com:9000/", "logs", "r", creds(), None).expect("valid");
        assert_eq!(
            (bucket.host.as_str(), bucket.base.as_str()),
            ("s3.example.com:9000", "https://s3.example.com:9000")
        );
        let err = Bucket::new("https://h", "b", "r", creds(), Some(("ca.crt", b"nothing")))
            .err()
            .expect("no certificate");
        assert!(err.to_string().contains("ca.crt"), "{err}");
    }

    #[test]
    fn upload_ids_are_read_from_the_answer() {
        let xml = "<?xml version=\"1.0\"?><InitiateMultipartUploadResult><Bucket>b</Bucket>\
                   <UploadId>abc-123</UploadId></InitiateMultipartUploadResult>";
        assert_eq!(xml_field(xml, "UploadId"), Some("abc-123"));
        assert_eq!(xml_field(xml, "Key"), None);
    }
}
