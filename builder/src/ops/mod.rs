//! One module per operation a command runs.

pub mod build;
