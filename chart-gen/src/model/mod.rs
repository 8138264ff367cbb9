//! The typed model of the platform: the chart's values. Doc comments become the values schema's
//! descriptions and the README's values table.

mod environment;

pub use environment::{Environment, UnknownEnvironment};
