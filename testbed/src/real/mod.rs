//! The real components: the programs users run, started on 127.0.0.1 (or inside
//! namespaces a test made) and ended by PID when dropped.
//!
//! - [`registry`]: Debian's `docker-registry` (distribution 2.8), plain, with Basic auth
//!   or TLS ([`registry::test_tls`] makes the CA), its access log readable.
//! - [`etcd`]: a real three-member etcd with kubeadm's TLS layout on test masters.
//! - [`files`]: a file server for `spec.files` downloads, counting requests and able to
//!   fail on purpose.
//! - [`rpms`]: packages built with `rpmbuild`, signed with `rpmsign`, indexed with
//!   `createrepo_c`, served over HTTP and installed with `dnf`.
//! - [`hosts`]: test hosts from Linux namespaces, each with its own root and a real
//!   `sshd`.
//! - [`proxy`]: a fault-injecting HTTP proxy in front of a real server (the registry).
//! - [`nginx`]: a folder served over TLS requiring a client certificate, or behind
//!   Basic auth (a protected yum repo).
//! - [`squid`]: a TLS-intercepting proxy (squid ssl-bump) with a CA of its own.
//! - [`tinyproxy`]: a real forward proxy (Basic auth, a host filter) and a network
//!   namespace whose only way out is through it.
//!
//! `files`, `rpms` and `proxy` are small servers of ours, but what they serve or forward
//! is real: files, yum repos built by the real tools, a real registry's answers.

pub mod etcd;
pub mod files;
pub mod hosts;
pub mod nginx;
pub mod proxy;
pub mod registry;
pub mod rpms;
pub mod squid;
pub mod tinyproxy;
