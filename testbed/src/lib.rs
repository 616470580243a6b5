//! Local components for bundle's tests, demo and benchmarks, grouped by kind.
//!
//! - [`real`]: the real components, the programs users run, on 127.0.0.1 or inside
//!   namespaces a test made: the OCI registry (`docker-registry`), a file server, RPMs
//!   and yum repos (`rpmbuild`, `rpmsign`, `createrepo_c`, `dnf`), test hosts with
//!   `sshd`, and a fault-injecting proxy in front of the registry. Tests use these
//!   instead of mocks.
//! - [`doubles`]: the named test doubles, the only stand-ins, each where the real program
//!   cannot run here or must not act on the machine: the Harbor stand-in (token service
//!   and projects API in front of a real registry), the fake `kubeadm`, `kubectl`,
//!   `kubelet` and `crictl` (no real control plane runs in a test host), and the
//!   `systemctl`, `modprobe` and `swapoff` doubles inside test hosts (no systemd there;
//!   the kernel and swap are the machine's).
//! - [`fixtures`]: test data, one definition of each that tests and benchmarks share:
//!   synthetic images and the default manifest's images, the packages an install on
//!   test hosts pins (fakes and stand-ins), the HA upstream yum repos, the sample
//!   inventory, a plannable site.
//! - [`crafted`]: hostile bundles made from genuine ones (tar and zstd attacks). It
//!   stays at the top: it is neither a running component nor shared data, but a kit for
//!   taking bundles apart and forging them, the one module that needs `bundle-format`.
//! - [`fuzz_seeds`]: the seeds of the `reader` fuzz target (`fuzz/`), made from
//!   genuine bundles and [`crafted`] ones.
//!
//! Everything binds to 127.0.0.1 (or to addresses inside namespaces it made) and ends
//! the processes it started, by PID, on drop.
//!
//! ```no_run
//! use bundle_testbed::fixtures::images::{self, Layer, TestImage};
//! use bundle_testbed::real::registry::Registry;
//!
//! let registry = Registry::start()?;
//! let work = tempfile::tempdir()?;
//! let pause = TestImage::new("pause", "3.9", &[Layer { seed: 1, size: 1024 }]);
//! let seeded = images::seed(&registry.addr, &pause, work.path())?;
//! println!("{} at {}/pause:3.9", seeded.digest, registry.addr);
//! # anyhow::Ok(())
//! ```

pub mod crafted;
pub mod doubles;
pub mod fixtures;
pub mod fuzz_seeds;
mod http;
pub mod real;

// The short paths that tests spell out in full (`bundle_testbed::site::…` inside a
// test's body, not in a `use`); new code names the group.
pub use fixtures::{images, inventories, site};
pub use real::files::FileServer;
pub use real::registry::Registry;
pub use real::{registry, rpms};

/// A free TCP port on 127.0.0.1 (bound then released; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
