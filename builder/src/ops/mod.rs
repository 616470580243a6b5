//! One module per operation a command runs.

pub mod build;
pub mod dry_run;
