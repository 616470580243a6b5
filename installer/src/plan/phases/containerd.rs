//! Phase `containerd`: its configuration (systemd cgroups, the sandbox image and the
//! pull account), the registry's CA and `certs.d` host files, a restart when any of
//! them changed, then a pull of the sandbox image through containerd.

use super::super::checks::PlanContext;
use super::super::steps::{restart, run, wait, write};
use super::super::{HostSteps, Step};
use super::host;
use crate::render::containerd;

pub(super) fn steps(ctx: &PlanContext) -> Vec<HostSteps> {
    ctx.cluster
        .nodes
        .iter()
        .map(|n| {
            let (mut s, files) = config_files(ctx);
            s.push(restart("containerd/restart", "containerd", files));
            s.extend(checks(ctx));
            host(n, 0, s)
        })
        .collect()
}

/// The files containerd reads, and their paths (a change restarts it).
pub(in crate::plan) fn config_files(ctx: &PlanContext) -> (Vec<Step>, Vec<String>) {
    let cluster = ctx.cluster;
    let ca_path = containerd::ca_path(cluster);
    let pull_auth =
        cluster
            .registry_pull_username
            .as_deref()
            .map(|username| containerd::PullAuth {
                host: &cluster.registry_host,
                username,
            });
    // The file holds the pull password then: root only.
    let (config_mode, pulls) = match pull_auth {
        Some(a) => ("0600", format!("pulls as `{}`", a.username)),
        None => ("0644", "anonymous pulls".to_string()),
    };
    let version = ctx.containerd_config_version;
    let mut s = vec![write(
        "containerd/config",
        &format!("containerd config version {version}: systemd cgroups, sandbox image from the registry, {pulls}"),
        containerd::CONFIG_PATH,
        containerd::config(version, &ctx.sandbox_image, pull_auth),
        config_mode,
    )];
    let mut files = vec![containerd::CONFIG_PATH.to_string()];
    if let Some(ca) = ctx.registry_ca {
        s.push(write(
            "containerd/registry-ca",
            "the registry's CA",
            &ca_path,
            ca.to_string(),
            "0644",
        ));
        files.push(ca_path);
    }
    if let Some(cert) = ctx.registry_client_cert {
        let (cert_path, key_path) = containerd::client_paths(cluster);
        s.push(write(
            "containerd/registry-client-cert",
            "the certificate the nodes present to the registry",
            &cert_path,
            cert.to_string(),
            "0644",
        ));
        s.push(write(
            "containerd/registry-client-key",
            "its key (filled in from spec.registry.clientKeyFile)",
            &key_path,
            containerd::CLIENT_KEY.to_string(),
            "0600",
        ));
        files.extend([cert_path, key_path]);
    }
    for (path, content) in containerd::hosts_files(cluster, ctx.registry_ca.is_some()) {
        let dir = path
            .trim_start_matches(containerd::CERTS_D)
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        s.push(write(
            &format!("containerd/hosts-{dir}"),
            &format!("registry host file for `{dir}`"),
            &path,
            content,
            "0644",
        ));
        files.push(path);
    }
    s.push(write(
        "containerd/crictl",
        "crictl talks to containerd",
        "/etc/crictl.yaml",
        containerd::crictl_yaml(),
        "0644",
    ));
    (s, files)
}

/// containerd answers, the registry answers with the configured CA, the sandbox
/// image pulls.
fn checks(ctx: &PlanContext) -> Vec<Step> {
    let reached = match (ctx.cluster.registry_plain_http, ctx.registry_ca.is_some()) {
        (true, _) => "the registry answers over plain HTTP",
        (false, true) => "the registry answers over TLS with the configured CA",
        (false, false) => "the registry answers over TLS",
    };
    let sandbox = &ctx.sandbox_image;
    vec![
        wait(
            "containerd/ready",
            "containerd's CRI answers",
            "crictl info >/dev/null".into(),
            60,
        ),
        run(
            "containerd/registry",
            reached,
            format!(
                "code=$({}); case \"$code\" in 200|401) ;; *) echo \"{}/v2/ answered $code\" >&2; exit 1;; esac",
                containerd::registry_probe(ctx.cluster),
                ctx.cluster.registry_url()
            ),
            None,
        ),
        run(
            "containerd/pull-sandbox",
            "pull the sandbox image through containerd",
            format!("crictl pull {sandbox}"),
            Some(format!("crictl inspecti {sandbox} >/dev/null 2>&1")),
        ),
    ]
}
