//! The isolated side of `bundle`: an inventory and a verified bundle become a typed,
//! per-host install plan, which an executor carries out on the hosts over SSH.
//!
//! - [`inventory`]: `cluster.yaml` ([`Inventory`]), its checks, and the validated
//!   [`Cluster`] the planner reads.
//! - [`facts`]: what planning needs to know about a bundle ([`BundleFacts`]), taken from
//!   its verified index and its CNI manifest.
//! - [`plan()`]: the pure planning function: `(Cluster, BundleFacts) -> Plan`. A
//!   [`Plan`] has nine phases of typed [`HostStep`]s (write a file, run a command, wait
//!   for a condition), each with the check that lets a re-run skip it.
//! - [`render`]: the configuration files (kubeadm, haproxy, keepalived, containerd,
//!   yum, sysctl, modules) and the CNI manifest rewrite.
//! - [`release`]: what is installed, recorded in the state folder, on hosts and in
//!   the cluster; every later operation reads it.
//! - [`upgrade`]: carrying a cluster to the next bundle (today the gate: which bundles
//!   may follow the installed release).
//! - [`secrets`]: generated secrets, kept out of plans as `<secret:NAME>` placeholders.
//! - [`exec`]: reaching one host: the system `ssh` (ControlMaster), sudo, the redactor.
//! - [`run`]: the executor every operation shares: hosts connected in parallel, phases
//!   in waves, the skip/redo rule, the records in the [`state`] folder that let a re-run
//!   resume.
//! - [`ops`]: what the CLI calls, one module per operation: the inventory template,
//!   the dry run, install, reset, nodes add.
//!
//! Planning knows nothing about SSH and has no side effects; [`ops::plan_install`]
//! reads the bundle and writes the plan folder; [`ops::apply()`] carries the plan out.
//!
//! # Example
//!
//! ```no_run
//! use bundle_installer::ops::{plan_install, PlanOptions};
//! let outcome = plan_install(&PlanOptions {
//!     bundle: "k8s.tar.zst".into(),
//!     inventory: "cluster.yaml".into(),
//!     pubkey: "bundle.pub".into(),
//!     plan_out: "plan".into(),
//!     force: false,
//! })?;
//! println!("{} steps", outcome.plan.step_count());
//! # Ok::<(), bundle_installer::Error>(())
//! ```
#![deny(missing_docs)]

mod error;
pub mod exec;
pub mod facts;
pub mod inventory;
pub mod net;
pub mod ops;
pub mod pki;
pub mod plan;

pub mod release;
pub mod render;
pub mod repo_server;
pub mod report;
pub mod run;
pub mod secrets;
pub mod state;
pub mod upgrade;

pub use error::{Error, HostKeyChanged, HostKeyUnknown, Problem, Problems, StepFailure};
pub use facts::BundleFacts;
pub use inventory::{Cluster, Inventory};
pub use plan::{plan, PlanInputs, LB_PACKAGES, NODE_PACKAGES};
pub use plan::{HostStep, Plan};
