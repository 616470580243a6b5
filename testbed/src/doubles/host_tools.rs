//! The doubles every test host gets over the machine's own programs: `systemctl` (test
//! hosts have no systemd) and `modprobe`/`swapoff` (hosts share the machine's kernel, so
//! loading modules or turning swap off from a host would act on the machine). The
//! scripts are `assets/fake-systemctl.sh` and `assets/fake-kernel-tool.sh`, each
//! documented in its header; [`crate::real::hosts`] writes them into every host's root.

/// The `systemctl` test double (see the script's header).
pub const FAKE_SYSTEMCTL: &str = include_str!("../../assets/fake-systemctl.sh");
/// The `modprobe`/`swapoff` test double (see the script's header); `@TOOL@` is its name.
pub const FAKE_KERNEL_TOOL: &str = include_str!("../../assets/fake-kernel-tool.sh");
/// The `uname` test double of a host standing in for an arm64 machine (see the
/// script's header and [`crate::real::hosts::TestCluster::pose_as_aarch64`]).
pub const FAKE_UNAME_AARCH64: &str = include_str!("../../assets/fake-uname-aarch64.sh");
/// Programs replaced by [`FAKE_KERNEL_TOOL`] in every host: they would act on the
/// machine's own kernel (modules) or swap.
pub const KERNEL_TOOL_DOUBLES: &[&str] = &["modprobe", "swapoff"];
