//! The cluster's command lines every part of planning shares: `kubectl` with the
//! admin kubeconfig and `etcdctl` in an etcd pod. Reads no other module of the plan.

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
