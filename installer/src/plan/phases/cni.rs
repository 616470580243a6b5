//! Phase `cni`: the bundle's CNI manifest, rewritten for the registry and the pod
//! network, applied on the first master; its daemonset rolled out on every node.

use super::super::checks::PlanContext;
use super::super::steps::{run, wait, write};
use super::super::{HostSteps, Step};
use super::host;
use crate::render;

pub(super) fn steps(ctx: &PlanContext) -> Vec<HostSteps> {
    let s = vec![
        manifest(ctx),
        run(
            "cni/apply",
            "apply it (server-side: calico's CRDs are too large for client-side apply)",
            apply_command(ctx),
            None,
        ),
        rollout(ctx, ""),
    ];
    vec![host(ctx.first, 0, s)]
}

/// The manifest written on the first master.
pub(in crate::plan) fn manifest(ctx: &PlanContext) -> Step {
    write(
        "cni/manifest",
        &format!(
            "{} manifest, images from the registry, pod network {}{}",
            ctx.cni.name,
            ctx.cluster.pod_subnet,
            cni_settings(&ctx.cluster.cni_options)
        ),
        render::cni::PATH,
        ctx.cni_manifest.clone(),
        "0644",
    )
}

/// The inventory's CNI settings, for the step's description (empty when none is set).
fn cni_settings(o: &crate::inventory::CniOptions) -> String {
    let mut s = String::new();
    if let Some(e) = o.calico_encapsulation {
        s.push_str(&format!(", encapsulation {}", e.name()));
    }
    if let Some(mtu) = o.calico_mtu {
        s.push_str(&format!(", MTU {mtu}"));
    }
    if let Some(b) = &o.flannel_backend {
        s.push_str(&format!(", backend {b}"));
    }
    s
}

/// Server-side apply: calico's CRDs are too large for client-side apply.
pub(in crate::plan) fn apply_command(ctx: &PlanContext) -> String {
    format!(
        "{} apply --server-side --force-conflicts -f {}",
        ctx.kubectl,
        render::cni::PATH
    )
}

/// The CNI's daemonset rolled out on every node; `why` ends the description (a
/// different `why` is a different step, waited for again).
pub(in crate::plan) fn rollout(ctx: &PlanContext, why: &str) -> Step {
    let (ds_ns, ds_name) = match ctx.cni.name.as_str() {
        "flannel" => ("kube-flannel", "kube-flannel-ds"),
        _ => ("kube-system", "calico-node"),
    };
    wait(
        "cni/rollout",
        &format!("{ds_name} runs on every node{why}"),
        format!(
            "{} -n {ds_ns} rollout status daemonset/{ds_name} --timeout=10s",
            ctx.kubectl
        ),
        600,
    )
}
