//! Phase `cni`: the bundle's CNI manifest, rewritten for the registry and the pod
//! network, applied on the first master; its daemonset rolled out on every node.

use super::super::checks::PlanContext;
use super::super::steps::{run, wait, write};
use super::super::HostSteps;
use super::host;
use crate::render;

pub(super) fn steps(ctx: &PlanContext) -> Vec<HostSteps> {
    let kubectl = &ctx.kubectl;
    let (ds_ns, ds_name) = match ctx.cni.name.as_str() {
        "flannel" => ("kube-flannel", "kube-flannel-ds"),
        _ => ("kube-system", "calico-node"),
    };
    let s = vec![
        write(
            "cni/manifest",
            &format!(
                "{} manifest, images from the registry, pod network {}",
                ctx.cni.name, ctx.cluster.pod_subnet
            ),
            render::cni::PATH,
            ctx.cni_manifest.clone(),
            "0644",
        ),
        run(
            "cni/apply",
            "apply it (server-side: calico's CRDs are too large for client-side apply)",
            format!(
                "{kubectl} apply --server-side --force-conflicts -f {}",
                render::cni::PATH
            ),
            None,
        ),
        wait(
            "cni/rollout",
            &format!("{ds_name} runs on every node"),
            format!("{kubectl} -n {ds_ns} rollout status daemonset/{ds_name} --timeout=10s"),
            600,
        ),
    ];
    vec![host(ctx.first, 0, s)]
}
