//! Step constructors every phase uses, and the steps several phases share (root's
//! kubeconfig, the kubeadm join configuration and join).

use super::checks::PlanContext;
use super::{HostStep, OnFailure, Step};
use crate::inventory::Node;
use crate::render::kubeadm;

pub(super) use super::commands::{etcdctl, kubectl, KUBECONFIG};
const OWNER: &str = "root:root";

pub(super) fn step(id: &str, description: &str, action: HostStep) -> Step {
    Step {
        id: id.to_string(),
        description: description.to_string(),
        action,
    }
}

pub(super) fn write(id: &str, description: &str, path: &str, content: String, mode: &str) -> Step {
    step(
        id,
        description,
        HostStep::WriteFile {
            path: path.into(),
            content,
            mode: mode.into(),
            owner: OWNER.into(),
        },
    )
}

pub(super) fn run(id: &str, description: &str, command: String, check: Option<String>) -> Step {
    command_step(id, description, command, check, None, OnFailure::Stop)
}

pub(super) fn warn(id: &str, description: &str, command: String) -> Step {
    command_step(id, description, command, None, None, OnFailure::Warn)
}

pub(super) fn capture(id: &str, description: &str, command: String, name: &str) -> Step {
    command_step(
        id,
        description,
        command,
        None,
        Some(name.into()),
        OnFailure::Stop,
    )
}

fn command_step(
    id: &str,
    description: &str,
    command: String,
    check: Option<String>,
    capture: Option<String>,
    on_failure: OnFailure,
) -> Step {
    step(
        id,
        description,
        HostStep::Run {
            command,
            check,
            after_change_of: vec![],
            capture,
            on_failure,
        },
    )
}

pub(super) fn restart(id: &str, unit: &str, files: Vec<String>) -> Step {
    step(
        id,
        &format!("enable {unit} and restart it when its configuration changed"),
        HostStep::Run {
            command: format!("systemctl enable {unit} && systemctl restart {unit}"),
            check: Some(format!("systemctl is-active --quiet {unit}")),
            after_change_of: files,
            capture: None,
            on_failure: OnFailure::Stop,
        },
    )
}

pub(super) fn wait(id: &str, description: &str, condition: String, timeout_secs: u64) -> Step {
    step(
        id,
        description,
        HostStep::WaitFor {
            condition,
            timeout_secs,
        },
    )
}

/// `fail MESSAGE` in a check command: print to stderr and exit 1.
pub(super) fn or_fail(test: &str, message: &str) -> String {
    format!("{test} || {{ echo \"{message}\" >&2; exit 1; }}")
}

/// Root's kubeconfig, a copy of `admin.conf` (`init/kubeconfig`, `join/kubeconfig`).
pub(super) fn kubeconfig(phase: &str) -> Step {
    run(
        &format!("{phase}/kubeconfig"),
        "root's kubeconfig",
        format!("install -D -m 0600 {KUBECONFIG} /root/.kube/config"),
        Some(format!("cmp -s {KUBECONFIG} /root/.kube/config")),
    )
}

/// The kubeadm join configuration for `node` and the join itself; `role` says how it
/// joins ("a master" writes the control plane's part).
pub(super) fn join(ctx: &PlanContext, node: &Node) -> [Step; 2] {
    let (role, joins_as) = match node.master {
        true => ("a master", "a control plane node"),
        false => ("a worker", "a worker"),
    };
    [
        write(
            "join/config",
            &format!(
                "kubeadm join configuration for {role} ({})",
                ctx.kubeadm_api
            ),
            kubeadm::JOIN_PATH,
            kubeadm::join_config(ctx.cluster, ctx.kubeadm_api, node),
            "0600",
        ),
        run(
            "join/kubeadm",
            &format!("kubeadm join as {joins_as}"),
            format!("kubeadm join --config {}", kubeadm::JOIN_PATH),
            Some("test -f /etc/kubernetes/kubelet.conf".into()),
        ),
    ]
}
