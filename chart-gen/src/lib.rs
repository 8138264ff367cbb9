//! chart-gen: the typed model of the DataJump platform, the generator of the Helm chart and values
//! schema, and their validation.

pub mod crds;
#[cfg(feature = "generator")]
pub mod generate;
pub mod gitops;
pub mod helm;
pub mod kube_versions;
pub mod model;
pub mod namespaces;
pub mod overlay;
pub mod pipeline;
pub mod profiles;
pub mod schema;
pub mod validate;
pub mod values_doc;
