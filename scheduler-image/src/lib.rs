//! DataJump's workflow scheduler: a Kubernetes controller that runs cron-scheduled DAGs of tasks
//! as Jobs.
//!
//! Layout: the custom resources, their names and validation live in the `datajump-api` crate
//! (shared with the kubectl plugin and chart-gen); the planning modules here are pure (they take `now` and observed state and return
//! actions); the controller is the only code that talks to the API server.

pub mod archive;
pub mod backfill;
pub mod cache_sync;
pub mod config;
pub mod controller;
pub mod http;
pub mod job_index;
pub mod jobs;
pub mod leader;
pub mod metrics;
pub mod plan;
pub mod reconcile;
#[cfg(feature = "sim")]
pub mod sim;
pub mod ticks;
pub mod waiters;
pub mod watched;
