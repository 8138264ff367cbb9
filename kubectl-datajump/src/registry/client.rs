//! One client for every registry a command meets: TLS verified against the system roots plus
//! `--ca-file`s, plain HTTP only for hosts named with `--plain-http`, credentials looked up per
//! host, and the few distribution-API calls a copy needs, each turning the client's errors into
//! a [`RegistryError`] that names the registry, image and credentials involved.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use chart_gen::model::mirror::ImageRef;
use futures::{Stream, TryStreamExt};
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::manifest::ACCEPTED;
use super::{CredentialSource, Credentials, Manifest, RegistryError};

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub(crate) struct Connection {
    /// PEM files of CAs to trust besides the system's (a private Harbor's CA).
    pub ca_files: Vec<PathBuf>,
    /// Registries spoken to over plain HTTP (never the default).
    pub plain_http: Vec<String>,
}

/// A registry client with credentials.
pub(crate) struct Registry {
    client: Client,
    credentials: Credentials,
}

impl Registry {
    /// A client for these connection settings; reads the CA files.
    pub(crate) fn new(
        connection: &Connection,
        credentials: Credentials,
    ) -> Result<Self, RegistryError> {
        // reqwest is built without a default crypto provider; ring is already in the tree
        // through kube. A second install in the same process is refused harmlessly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut extra_root_certificates = Vec::new();
        for file in &connection.ca_files {
            let data = std::fs::read(file).map_err(|e| {
                RegistryError::Invalid(format!("--ca-file {}: {e}", file.display()))
            })?;
            if !String::from_utf8_lossy(&data).contains("-----BEGIN CERTIFICATE-----") {
                return Err(RegistryError::Invalid(format!(
                    "--ca-file {}: expected a PEM certificate (-----BEGIN CERTIFICATE-----)",
                    file.display()
                )));
            }
            extra_root_certificates.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        let protocol = if connection.plain_http.is_empty() {
            ClientProtocol::Https
        } else {
            ClientProtocol::HttpsExcept(connection.plain_http.clone())
        };
        let config = ClientConfig {
            protocol,
            extra_root_certificates,
            // One PUT per blob, streamed with its length: no chunk round trips, and the
            // registry checks the digest once when the upload commits.
            use_monolithic_push: true,
            platform_resolver: None,
            connect_timeout: Some(Duration::from_secs(15)),
            read_timeout: Some(Duration::from_secs(120)),
            user_agent: concat!("kubectl-datajump/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        Ok(Self {
            client: Client::new(config),
            credentials,
        })
    }

    fn reference(image: &ImageRef) -> Reference {
        match &image.digest {
            Some(digest) => Reference::with_digest(
                image.registry.clone(),
                image.repository.clone(),
                digest.clone(),
            ),
            None => Reference::with_tag(
                image.registry.clone(),
                image.repository.clone(),
                image.tag.clone(),
            ),
        }
    }

    /// The credentials for the image's registry, stored in the client the first time.
    async fn login(
        &self,
        reference: &Reference,
    ) -> Result<(RegistryAuth, CredentialSource), RegistryError> {
        let (auth, source) = self.credentials.lookup(reference.registry())?;
        self.client
            .store_auth_if_needed(reference.resolve_registry(), &auth)
            .await;
        Ok((auth, source))
    }

    fn error(
        err: OciDistributionError,
        what: &str,
        reference: &Reference,
        source: &CredentialSource,
    ) -> RegistryError {
        RegistryError::from_oci(err, what, reference.registry(), &source.to_string())
    }

    /// The manifest `image` names (by tag, or by digest when it has one); `None` when the
    /// registry has no such manifest.
    pub(crate) async fn manifest(
        &self,
        image: &ImageRef,
    ) -> Result<Option<Manifest>, RegistryError> {
        let reference = Self::reference(image);
        let (auth, source) = self.login(&reference).await?;
        match self
            .client
            .pull_manifest_raw(&reference, &auth, &ACCEPTED)
            .await
        {
            Ok((bytes, _)) => Manifest::new(bytes, None).map(Some),
            Err(e) => match Self::error(e, &image.to_string(), &reference, &source) {
                RegistryError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Whether the repository of `image` holds the blob.
    pub(crate) async fn has_blob(
        &self,
        image: &ImageRef,
        digest: &str,
    ) -> Result<bool, RegistryError> {
        let reference = Self::reference(&image.tagged());
        let (_, source) = self.login(&reference).await?;
        self.client
            .blob_exists(&reference, digest)
            .await
            .map_err(|e| Self::error(e, &blob_name(image, digest), &reference, &source))
    }

    /// The blob's bytes as a stream (verified against the digest as they arrive).
    pub(crate) async fn blob(
        &self,
        image: &ImageRef,
        digest: &str,
    ) -> Result<impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static, RegistryError>
    {
        let reference = Self::reference(&image.tagged());
        let (_, source) = self.login(&reference).await?;
        let sized = self
            .client
            .pull_blob_stream(&reference, digest)
            .await
            .map_err(|e| Self::error(e, &blob_name(image, digest), &reference, &source))?;
        Ok(sized.stream)
    }

    /// Uploads a blob from a stream of `size` bytes; the registry refuses it unless the bytes
    /// have `digest`.
    pub(crate) async fn push_blob<S>(
        &self,
        image: &ImageRef,
        digest: &str,
        size: u64,
        stream: S,
    ) -> Result<(), RegistryError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        let reference = Self::reference(&image.tagged());
        let (_, source) = self.login(&reference).await?;
        let stream = stream.map_err(OciDistributionError::IoError);
        self.client
            .push_blob_stream(&reference, stream, digest, Some(size))
            .await
            .map(|_| ())
            .map_err(|e| Self::error(e, &blob_name(image, digest), &reference, &source))
    }

    /// Makes a blob `from`'s repository holds appear in `image`'s without uploading it again
    /// (a cross-repository mount, same registry).
    pub(crate) async fn mount_blob(
        &self,
        image: &ImageRef,
        from: &ImageRef,
        digest: &str,
    ) -> Result<(), RegistryError> {
        let reference = Self::reference(&image.tagged());
        let (_, source) = self.login(&reference).await?;
        self.client
            .mount_blob(&reference, &Self::reference(&from.tagged()), digest)
            .await
            .map_err(|e| Self::error(e, &blob_name(image, digest), &reference, &source))
    }

    /// Writes a manifest under `image` (its tag, or its digest when it has one).
    pub(crate) async fn push_manifest(
        &self,
        image: &ImageRef,
        manifest: &Manifest,
    ) -> Result<(), RegistryError> {
        let reference = Self::reference(image);
        let (_, source) = self.login(&reference).await?;
        let content_type = manifest
            .media_type
            .parse()
            .map_err(|_| RegistryError::Invalid(format!("media type {:?}", manifest.media_type)))?;
        self.client
            .push_manifest_raw(&reference, manifest.bytes.clone(), content_type)
            .await
            .map(|_| ())
            .map_err(|e| Self::error(e, &image.to_string(), &reference, &source))
    }
}

fn blob_name(image: &ImageRef, digest: &str) -> String {
    format!("{}/{} blob {digest}", image.registry, image.repository)
}
