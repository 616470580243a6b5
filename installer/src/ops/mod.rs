//! Operations the CLI calls: one module per command, each a function taking an
//! options struct, re-exported here flat. They report through [`crate::report::Reporter`].
//!
//! | file | operation |
//! |---|---|
//! | `plan_install.rs` | [`init`] (the inventory template), [`plan_install`] (the dry run) |
//! | `apply.rs` | [`apply()`]: verify, push, plan and carry the plan out |
//! | `reset.rs` | [`reset()`]: undo an install on its hosts |
//! | `nodes.rs` | [`add`]: a worker joined later |
//! | `remove_node.rs` | [`remove()`]: a node drained, deleted, its etcd member removed, reset; the load balancers without it |
//! | `backup.rs` | [`backup()`]: an etcd snapshot with the PKI, copied to the deploy node |
//! | `restore.rs` | [`restore()`]: etcd put back to a backup on every master |
//! | `upgrade.rs` | [`upgrade()`]: the cluster carried to the next bundle, node by node |
//! | `certs.rs` | [`certs::check`]: when every kubeadm certificate expires, on every master |
//! | `status.rs` | [`status()`]: one read-only view of the installed cluster, with its problems |
//! | `drill.rs` | the HA drill after an install (`--drill`) |
//! | `prepare.rs` | what they share first: inventory checked, bundle verified, plan made |
//! | `push.rs` | the images pushed, and the nodes' pull checked |
//! | `common.rs` | runtime, state folder, plan-change confirmation, pull password |
//!
//! Hosts are reached and steps carried out by [`crate::run`].

pub mod apply;
pub mod backup;
pub mod certs;
mod common;
mod drill;
pub mod nodes;
mod plan_install;
mod prepare;
mod push;
pub mod remove_node;
pub mod reset;
pub mod restore;
pub mod status;
pub mod upgrade;

pub use crate::secrets::PULL_PASSWORD_ENV;
pub use apply::{apply, ApplyOptions, ApplyOutcome};
pub use backup::{backup, BackupOptions, BackupOutcome};
pub use certs::{CertExpiry, CertsOptions, CertsReport};
pub use common::default_state_dir;
pub use nodes::{add, AddOptions, AddOutcome};
pub use plan_install::{init, plan_install, PlanOptions, PlanOutcome};
pub use prepare::MAX_CNI_MANIFEST;
pub use remove_node::{remove, RemoveOptions, RemoveOutcome};
pub use reset::{reset, reset_script, ResetOptions, ResetOutcome};
pub use restore::{restore, RestoreOptions, RestoreOutcome};
pub use status::{status, StatusOptions, StatusProblem, StatusReport};
pub use upgrade::{upgrade, UpgradeOptions, UpgradeOutcome};
