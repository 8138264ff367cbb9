//! OCI registries (Harbor, the CNCF distribution registry, Docker Hub, …) through the OCI
//! distribution API, for `kubectl datajump images mirror|save|load|lock`: credentials
//! (`auth.rs`), one client for every registry a command meets (`client.rs`), copying an image
//! tree byte for byte with the tag written last (`copy.rs`), the OCI image layout archive of an
//! air-gapped transfer (`archive.rs`) and the chart as the OCI artifact `helm push` makes
//! (`chart.rs`).

mod archive;
mod auth;
mod chart;
mod client;
mod copy;
mod error;
mod manifest;

pub(crate) use archive::{LoadOutcome, SaveImage, load_archive, verify_archive, write_archive};
pub(crate) use auth::{CredentialSource, Credentials};
pub(crate) use chart::ChartArtifact;
pub(crate) use client::{Connection, Registry};
pub(crate) use copy::{CopyOptions, CopyOutcome, ImageCopy, Platforms, SourceMirrors, copy_image};
pub(crate) use error::RegistryError;
pub(crate) use manifest::{Manifest, ManifestKind};
