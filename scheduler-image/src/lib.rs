//! DataJump's workflow scheduler: a Kubernetes controller that runs cron-scheduled DAGs of tasks
//! as Jobs.
//!
//! Layout: [`api`] holds the custom resources and their validation (shared with the kubectl
//! plugin); the planning modules are pure (they take `now` and observed state and return
//! actions); the controller is the only code that talks to the API server.

pub mod api;
pub mod cache_sync;
pub mod config;
pub mod controller;
pub mod cron;
pub mod http;
pub mod job_index;
pub mod jobs;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod plan;
pub mod reconcile;
pub mod sim;
pub mod waiters;
pub mod watched;
