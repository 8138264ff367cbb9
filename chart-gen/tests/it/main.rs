//! chart-gen's integration tests, one test binary (one link, one set of shared helpers in
//! `support`): the chart against the real helm, validation of values and rendered objects, the
//! CRD cache.

mod support;

mod argocd;
mod chart;
mod conventions;
mod crds_fetch;
mod embedded_images;
mod log_archive;
mod operator_mode;
mod toggles;
mod validate_crd;
mod validate_kubernetes;
mod validate_policy;
mod validate_rendered;
mod validate_values;
