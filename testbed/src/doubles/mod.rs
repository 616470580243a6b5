//! The named test doubles: the only stand-ins for real programs, each used where the
//! real one cannot run here or must not act on the machine.
//!
//! - [`harbor`]: the Harbor stand-in (token service and projects API) in front of a real
//!   `docker-registry` that checks its tokens. Harbor itself does not run here.
//! - [`kube_fakes`]: fake `kubeadm`, `kubectl`, `kubelet` and `crictl` (shell scripts
//!   in `assets/`, shipped as RPMs): a real control plane does not run in test hosts.
//! - [`host_tools`]: `systemctl` (test hosts have no systemd) and `modprobe`/`swapoff`
//!   (hosts share the machine's kernel and swap), written into every test host.

pub mod harbor;
pub mod host_tools;
pub mod kube_fakes;
