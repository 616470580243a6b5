//! Which of the bundle's RPM targets each host installs from: one per architecture the
//! inventory's hosts have (`spec.hosts[].arch`), of one release (`spec.repo.target`
//! names it when the bundle carries several), and the packages picked from each.
//!
//! A bundle built for `linux/amd64` and `linux/arm64` with the targets `el9-x86_64` and
//! `el9-aarch64` serves both from one repository server; each host's `.repo` file names
//! its own target's folder. A host whose architecture no target (or no image) covers is
//! a problem of the plan, found before anything runs.

use super::checks::{pick, Findings, LB_PACKAGES, NODE_PACKAGES, REQUIRED_NODE_PACKAGES};
use crate::facts::{BundleFacts, RpmRepoFacts};
use crate::inventory::{image_platform, Cluster};
use crate::render;

/// The yum repository the hosts of one architecture install from.
#[derive(Debug)]
pub struct ArchRepo<'a> {
    /// `uname -m` of its hosts (`aarch64`).
    pub arch: String,
    /// The bundle's target (`rpms/el9-aarch64/`).
    pub rpm_repo: &'a RpmRepoFacts,
    /// NEVRAs every node of this architecture installs.
    pub node_packages: Vec<String>,
    /// NEVRAs its masters install in addition.
    pub lb_packages: Vec<String>,
    /// The repository's URL as the hosts see it (trailing `/`).
    pub base: String,
}

/// One repository per architecture in use, the first master's first; `None` (with the
/// problems) when a host's architecture is not covered.
pub(super) fn arch_repos<'a>(
    cluster: &Cluster,
    facts: &'a BundleFacts,
    f: &mut Findings,
) -> Option<Vec<ArchRepo<'a>>> {
    if facts.rpm_repos.is_empty() {
        let message = "the bundle carries no RPM repository (`rpms/`)".to_string();
        f.problem("bundle", message);
        return None;
    }
    let asked = asked_target(cluster, facts, f)?;
    let mut repos = Vec::new();
    for arch in arches(cluster) {
        check_images(cluster, facts, &arch, f);
        let Some(rpm_repo) = target_for(cluster, facts, asked, &arch, f) else {
            continue;
        };
        let node_packages = pick(Some(rpm_repo), NODE_PACKAGES, REQUIRED_NODE_PACKAGES, f);
        let lb_packages = pick(Some(rpm_repo), LB_PACKAGES, LB_PACKAGES, f);
        if rpm_repo.gpg_keys.is_empty() {
            f.notes.push(format!("the bundle ships no GPG keys for `{}`: gpgcheck is off; the bundle's signature and checksums vouch for the packages", rpm_repo.target));
        }
        repos.push(ArchRepo {
            arch,
            rpm_repo,
            node_packages,
            lb_packages,
            base: format!(
                "http://{}/{}/",
                render::host_port(&cluster.repo_address, cluster.repo_port),
                rpm_repo.target
            ),
        });
    }
    Some(repos)
}

/// The architectures of the inventory's hosts, the first master's first.
fn arches(cluster: &Cluster) -> Vec<String> {
    let first = std::iter::once(cluster.first_master());
    let mut out: Vec<String> = Vec::new();
    for n in first.chain(&cluster.nodes) {
        if !out.contains(&n.arch) {
            out.push(n.arch.clone());
        }
    }
    out
}

/// `spec.repo.target`'s record: `Some(None)` when not given, `None` when it names no
/// target of the bundle.
fn asked_target<'a>(
    cluster: &Cluster,
    facts: &'a BundleFacts,
    f: &mut Findings,
) -> Option<Option<&'a RpmRepoFacts>> {
    let Some(t) = &cluster.repo_target else {
        return Some(None);
    };
    let found = facts.rpm_repos.iter().find(|r| &r.target == t);
    if found.is_none() {
        let message = format!(
            "`{t}` is not among the bundle's RPM targets ({})",
            targets(facts.rpm_repos.iter())
        );
        f.problem("spec.repo.target", message);
        return None;
    }
    Some(found)
}

/// The target `arch`'s hosts install from: `asked` itself when it is for `arch`, else
/// the one for `arch` of `asked`'s release, else the only one for `arch`.
fn target_for<'a>(
    cluster: &Cluster,
    facts: &'a BundleFacts,
    asked: Option<&'a RpmRepoFacts>,
    arch: &str,
    f: &mut Findings,
) -> Option<&'a RpmRepoFacts> {
    if let Some(a) = asked.filter(|a| a.arch == arch) {
        return Some(a);
    }
    let candidates: Vec<&RpmRepoFacts> = facts
        .rpm_repos
        .iter()
        .filter(|r| r.arch == arch)
        .filter(|r| asked.is_none_or(|a| a.releasever == r.releasever))
        .collect();
    match candidates.as_slice() {
        [only] => Some(only),
        [] => {
            let release = asked.map(|a| format!(" release {}", a.releasever));
            let message = format!(
                "{} {arch}, but the bundle carries no{} RPM target for {arch} (it has {}): build the bundle with an `rpms` target for {arch}, or correct `arch`",
                hosts_are(cluster, arch),
                release.unwrap_or_default(),
                targets(facts.rpm_repos.iter()),
            );
            f.problem("spec.hosts", message);
            None
        }
        several => {
            let message = format!(
                "the bundle carries several RPM targets for {arch} ({}); say which to install",
                targets(several.iter().copied())
            );
            f.problem("spec.repo.target", message);
            None
        }
    }
}

/// A host of an architecture the bundle's images do not cover cannot pull them.
fn check_images(cluster: &Cluster, facts: &BundleFacts, arch: &str, f: &mut Findings) {
    if facts.images.is_empty() {
        return;
    }
    let Some(platform) = image_platform(arch) else {
        return;
    };
    if !facts.image_platforms.iter().any(|p| p == platform) {
        let message = format!(
            "{} {arch}, but not every image of the bundle is there for {platform} (all of them are for {}): build the bundle with `{platform}` in `platforms`",
            hosts_are(cluster, arch),
            if facts.image_platforms.is_empty() {
                "no platform".to_string()
            } else {
                facts.image_platforms.join(", ")
            }
        );
        f.problem("spec.hosts", message);
    }
}

/// "`server9` is" or "`server8`, `server9` are": the hosts of `arch`.
fn hosts_are(cluster: &Cluster, arch: &str) -> String {
    let names: Vec<String> = cluster
        .nodes
        .iter()
        .filter(|n| n.arch == arch)
        .map(|n| format!("`{}`", n.name))
        .collect();
    let verb = if names.len() == 1 { "is" } else { "are" };
    format!("{} {verb}", names.join(", "))
}

fn targets<'a>(repos: impl Iterator<Item = &'a RpmRepoFacts>) -> String {
    let names: Vec<&str> = repos.map(|r| r.target.as_str()).collect();
    names.join(", ")
}
