//! Phase `repo`: the host serving the yum repository first (wave 0), then every host
//! installs the bundle's exact package versions from it (wave 1), each from its own
//! architecture's target.

use super::super::checks::PlanContext;
use super::super::steps::{run, step, wait, write};
use super::super::{HostStep, HostSteps, OnFailure, Step};
use super::host;
use crate::inventory::Node;
use crate::render::repo;

pub(super) fn steps(ctx: &PlanContext) -> Vec<HostSteps> {
    ctx.cluster
        .nodes
        .iter()
        .map(|n| {
            let mut s = served(ctx, n);
            s.extend(install(ctx, n));
            host(n, if ctx.serves_repo(n) { 0 } else { 1 }, s)
        })
        .collect()
}

/// The repository reachable from `n`: served by it (it serves the others, so goes in
/// an earlier wave), or answering from the deploy node.
pub(in crate::plan) fn served(ctx: &PlanContext, n: &Node) -> Vec<Step> {
    let mut s = Vec::new();
    if ctx.cluster.repo_node().is_none() {
        s.push(wait(
            "repo/reachable",
            "the deploy node's repository answers (served while `bundle` runs)",
            format!(
                "curl -fsS -o /dev/null {}repodata/repomd.xml",
                ctx.repo(n).base
            ),
            60,
        ));
    }
    if ctx.serves_repo(n) {
        s.extend(serve(ctx, n));
    }
    s
}

/// The repository copied from the bundle (every architecture's target in use) and
/// served over HTTP.
fn serve(ctx: &PlanContext, n: &Node) -> Vec<Step> {
    let port = ctx.cluster.repo_port;
    let copies = ctx.repos.iter().map(|r| {
        let target = &r.rpm_repo.target;
        step(
            &per_target(ctx, "repo/copy", target),
            &format!("the bundle's yum repository for {target}, copied from the verified bundle"),
            HostStep::CopyFromBundle {
                entries: format!("{}{target}/", bundle_format::layout::RPMS),
                dest: format!("{}/{target}", repo::SERVE_ROOT),
            },
        )
    });
    let mut s: Vec<Step> = copies.collect();
    s.extend([
        write(
            "repo/unit",
            "systemd unit serving the repository over HTTP",
            repo::UNIT_PATH,
            repo::unit(
                &n.address.to_string(),
                port,
                repo::python_for(&ctx.repo(n).rpm_repo.releasever),
            ),
            "0644",
        ),
        run(
            "repo/firewall",
            &format!("open port {port} while firewalld runs (phase os stops it)"),
            format!("firewall-cmd --add-port={port}/tcp"),
            Some(format!(
                "! systemctl is-active --quiet firewalld || firewall-cmd --query-port={port}/tcp"
            )),
        ),
        step(
            "repo/serve",
            "serve the repository",
            HostStep::Run {
                command: format!(
                    "systemctl daemon-reload && systemctl enable {u} && systemctl restart {u}",
                    u = repo::UNIT
                ),
                check: Some(format!("systemctl is-active --quiet {}", repo::UNIT)),
                after_change_of: vec![repo::UNIT_PATH.into()],
                capture: None,
                on_failure: OnFailure::Stop,
            },
        ),
    ]);
    s.extend(ctx.repos.iter().map(|r| {
        wait(
            &per_target(ctx, "repo/ready", &r.rpm_repo.target),
            &format!("the repository answers ({})", r.rpm_repo.target),
            format!("curl -fsS -o /dev/null {}repodata/repomd.xml", r.base),
            60,
        )
    }));
    s
}

/// `id`, with the target in it when the repository has several (step ids are unique
/// per host).
fn per_target(ctx: &PlanContext, id: &str, target: &str) -> String {
    if ctx.repos.len() == 1 {
        id.into()
    } else {
        format!("{id}-{target}")
    }
}

/// The `.repo` file and the packages.
fn install(ctx: &PlanContext, n: &Node) -> Vec<Step> {
    let pkgs = packages(ctx, n);
    let mut s = vec![repo_file(ctx, n)];
    s.extend(module_streams(ctx, n));
    s.push(run(
        "repo/install",
        "install the exact package versions the bundle carries",
        dnf_install(ctx, n, &pkgs, false),
        Some(rpm_q(&pkgs)),
    ));
    s
}

/// EL8: each module stream the bundle's packages come from enabled, from the bundle's
/// repository alone. The repository makes them its defaults, which is enough on a fresh
/// host; a host with another stream of the module enabled would hide the packages
/// (`reset` first: `enable` refuses to switch streams), and the host's record of its
/// modules then says what is installed.
pub(in crate::plan) fn module_streams(ctx: &PlanContext, n: &Node) -> Vec<Step> {
    let only = bundle_repo_only(ctx, n);
    ctx.repo(n)
        .rpm_repo
        .module_streams
        .iter()
        .filter_map(|ms| ms.split_once(':'))
        .map(|(module, stream)| {
            run(
                &format!("repo/module-{module}"),
                &format!("the module stream {module}:{stream} the bundle's packages come from, enabled"),
                format!("dnf -y {only} module reset {module} && dnf -y {only} module enable {module}:{stream}"),
                Some(format!(
                    "grep -qx 'stream={stream}' /etc/dnf/modules.d/{module}.module && grep -qx 'state=enabled' /etc/dnf/modules.d/{module}.module"
                )),
            )
        })
        .collect()
}

/// The packages `n` installs: every node's, and the load balancer's on masters, of
/// its architecture.
pub(in crate::plan) fn packages(ctx: &PlanContext, n: &Node) -> Vec<String> {
    let r = ctx.repo(n);
    let mut pkgs = r.node_packages.clone();
    if n.master {
        pkgs.extend(r.lb_packages.iter().cloned());
    }
    pkgs
}

/// The `.repo` file naming the bundle's repository for `n`'s architecture.
pub(in crate::plan) fn repo_file(ctx: &PlanContext, n: &Node) -> Step {
    let r = ctx.repo(n);
    write(
        "repo/file",
        "the bundle's repository for dnf",
        repo::REPO_FILE,
        repo::repo_file(r.rpm_repo, &ctx.facts.bundle, &r.base),
        "0644",
    )
}

/// `dnf install` of exactly `pkgs` from the bundle's repository only. `refresh`: the
/// repository's metadata read again (an upgrade serves a new repository under the
/// same id, which dnf's cache would otherwise hide).
pub(in crate::plan) fn dnf_install(
    ctx: &PlanContext,
    n: &Node,
    pkgs: &[String],
    refresh: bool,
) -> String {
    format!(
        "dnf install -y{} {} {}",
        if refresh { " --refresh" } else { "" },
        bundle_repo_only(ctx, n),
        pkgs.join(" ")
    )
}

/// dnf's options to read the bundle's repository for `n` and no other: the OS
/// repositories (unreachable offline, or with other versions) stay out.
fn bundle_repo_only(ctx: &PlanContext, n: &Node) -> String {
    format!(
        "--disablerepo='*' --enablerepo={}",
        repo::repo_id(&ctx.repo(n).rpm_repo.target)
    )
}

/// Succeeds when exactly these package versions are installed.
pub(in crate::plan) fn rpm_q(pkgs: &[String]) -> String {
    format!("rpm -q {} >/dev/null", pkgs.join(" "))
}
