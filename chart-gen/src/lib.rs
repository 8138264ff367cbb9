//! chart-gen: the typed model of the DataJump platform, the generator of the Helm chart and values
//! schema, and their validation.

pub mod model;
pub mod validate;
