//! Subcommands of the `chart-gen` binary that have a module of their own: each builds the
//! library's options from its flags and prints the answer.

pub mod crds;
