//! Helpers shared by the cross-crate tests (locating tools, starting servers).

pub mod backup_data;
pub mod backup_scripts;
pub mod cluster;
pub mod kubelet;
pub mod load;
pub mod mariadb;
pub mod node;
pub mod plugin;
pub mod registry;
pub mod report;
pub mod runs;
pub mod s3;
pub mod scheduler;
