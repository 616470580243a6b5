//! Configuration files, rendered as text from the validated cluster and bundle facts.
//! Each renderer is a pure function; the tests feed the output to the real tool
//! (`haproxy -c`, `keepalived -t`, `containerd config dump`, `dnf repolist`) or parse
//! it back against upstream field names (kubeadm).

pub mod cni;
pub mod containerd;
pub mod etcd;
pub mod haproxy;
pub mod keepalived;
pub mod kubeadm;
pub mod os;
pub mod repo;

/// `host:port`, with brackets for IPv6.
pub fn host_port(addr: &std::net::IpAddr, port: u16) -> String {
    match addr {
        std::net::IpAddr::V6(a) => format!("[{a}]:{port}"),
        std::net::IpAddr::V4(a) => format!("{a}:{port}"),
    }
}
