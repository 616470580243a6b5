//! Phase `repo`: the host serving the yum repository first (wave 0), then every host
//! installs the bundle's exact package versions from it (wave 1).

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
            let mut s = Vec::new();
            let serving = ctx.serves_repo(n);
            if ctx.cluster.repo_node().is_none() {
                s.push(wait(
                    "repo/reachable",
                    "the deploy node's repository answers (served while `bundle install` runs)",
                    format!(
                        "curl -fsS -o /dev/null {}repodata/repomd.xml",
                        ctx.repo_base
                    ),
                    60,
                ));
            }
            if serving {
                s.extend(serve(ctx, n));
            }
            s.extend(install(ctx, n));
            host(n, if serving { 0 } else { 1 }, s)
        })
        .collect()
}

/// The repository copied from the bundle and served over HTTP.
fn serve(ctx: &PlanContext, n: &Node) -> Vec<Step> {
    let port = ctx.cluster.repo_port;
    let target = &ctx.rpm_repo.target;
    vec![
        step(
            "repo/copy",
            "the bundle's yum repository, copied from the verified bundle",
            HostStep::CopyFromBundle {
                entries: format!("{}{target}/", bundle_format::layout::RPMS),
                dest: format!("{}/{target}", repo::SERVE_ROOT),
            },
        ),
        write(
            "repo/unit",
            "systemd unit serving the repository over HTTP",
            repo::UNIT_PATH,
            repo::unit(&n.address.to_string(), port),
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
        wait(
            "repo/ready",
            "the repository answers",
            format!(
                "curl -fsS -o /dev/null {}repodata/repomd.xml",
                ctx.repo_base
            ),
            60,
        ),
    ]
}

/// The `.repo` file and the packages.
fn install(ctx: &PlanContext, n: &Node) -> Vec<Step> {
    let mut pkgs = ctx.node_packages.clone();
    if n.master {
        pkgs.extend(ctx.lb_packages.iter().cloned());
    }
    vec![
        write(
            "repo/file",
            "the bundle's repository for dnf",
            repo::REPO_FILE,
            repo::repo_file(ctx.rpm_repo, &ctx.facts.bundle, &ctx.repo_base),
            "0644",
        ),
        run(
            "repo/install",
            "install the exact package versions the bundle carries",
            format!(
                "dnf install -y --disablerepo='*' --enablerepo={} {}",
                repo::repo_id(&ctx.rpm_repo.target),
                pkgs.join(" ")
            ),
            Some(format!("rpm -q {} >/dev/null", pkgs.join(" "))),
        ),
    ]
}
