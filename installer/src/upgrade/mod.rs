//! Carrying a cluster to the next bundle. Today: the gate every upgrade passes first
//! ([`gate::check`]: which bundles may follow the installed [`crate::release::Release`]).
//! The upgrade plan (phases built from the install's steps: snapshot, `kubeadm upgrade
//! apply` on the first master, `upgrade node` on the others, drain/kubelet/uncordon
//! node by node) and `bundle upgrade` build on it.

pub mod gate;

pub use gate::{check, Change, GateOptions, Refusal};
