//! Real local components for bundle's tests, demo and benchmarks.
//!
//! - [`Registry`]: the Debian `docker-registry` (distribution 2.8) on 127.0.0.1, in a
//!   fresh folder, with its access log readable so tests can count requests.
//! - [`images`]: synthetic OCI images (single- and multi-arch, shared layers, random
//!   incompressible layer data like real gzip layers) seeded with `skopeo`.
//! - [`FileServer`]: a small HTTP server for `spec.files` downloads, counting requests
//!   and able to fail on purpose.
//! - [`rpms`]: RPM fixtures (rpmbuild, createrepo_c, rpmsign).
//! - [`inventories`]: the sample `cluster.yaml` plan tests share.
//! - [`crafted`]: hostile bundles made from genuine ones (tar and zstd attacks).
//! - [`fuzz_seeds`]: the seeds of the `reader` fuzz target (`fuzz/`), made from both.
//!
//! Everything binds to 127.0.0.1 and ends the processes it started, by PID, on drop.

pub mod crafted;
pub mod files;
pub mod fuzz_seeds;
pub mod harbor;
pub mod hosts;
pub mod images;
pub mod inventories;
pub mod kube_fakes;
pub mod proxy;
pub mod registry;
pub mod rpms;
pub mod site;

pub use files::FileServer;
pub use registry::Registry;

/// A free TCP port on 127.0.0.1 (bound then released; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
