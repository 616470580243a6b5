//! The cluster's command lines every part of planning shares: `kubectl` with the
//! admin kubeconfig and `etcdctl` in an etcd pod (through the API, or through the
//! container runtime when the API server is not there). Reads no other module of the
//! plan.

/// The admin kubeconfig kubeadm writes on masters.
pub(super) const KUBECONFIG: &str = "/etc/kubernetes/admin.conf";

/// `kubectl` with the admin kubeconfig.
pub(crate) fn kubectl() -> String {
    format!("kubectl --kubeconfig {KUBECONFIG}")
}

/// `etcdctl` in `node`'s etcd pod, through the API (any host with `admin.conf`).
pub(super) fn etcdctl(node: &str) -> String {
    format!(
        "{} -n kube-system exec etcd-{node} -- etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/server.crt --key=/etc/kubernetes/pki/etcd/server.key",
        kubectl()
    )
}

/// Finds the etcd static pod's container on this host (`$id`), or fails saying so.
pub(crate) const ETCD_CONTAINER: &str = "id=$(crictl ps --name etcd -q 2>/dev/null | head -n 1); [ -n \"$id\" ] || { echo 'no etcd container runs on this host' >&2; exit 1; }";

/// `etcdctl` in the container [`ETCD_CONTAINER`] found, with kubeadm's certificates:
/// it needs neither the API server nor an `etcdctl` on the host.
pub(crate) const CRICTL_ETCDCTL: &str = "crictl exec \"$id\" etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/server.crt --key=/etc/kubernetes/pki/etcd/server.key";
