//! The bundle's yum repository: served over HTTP from one host, and the `.repo` file
//! every host gets.

use std::fmt::Write as _;

use crate::facts::RpmRepoFacts;

/// Where the repository is copied on the serving host.
pub const SERVE_ROOT: &str = "/var/lib/bundle/repo";
/// `.repo` file on every host.
pub const REPO_FILE: &str = "/etc/yum.repos.d/bundle.repo";
/// systemd unit serving the repository.
pub const UNIT_PATH: &str = "/etc/systemd/system/bundle-repo.service";
/// Its name.
pub const UNIT: &str = "bundle-repo.service";

/// The repo id dnf knows it by.
pub fn repo_id(target: &str) -> String {
    format!("bundle-{target}")
}

/// The `.repo` file: one repository at `base_url` (ending in `/`), gpgcheck with the
/// keys the bundle ships (served beside the packages).
pub fn repo_file(repo: &RpmRepoFacts, bundle: &str, base_url: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Written by bundle: packages of bundle {bundle}.");
    let _ = writeln!(s, "[{}]", repo_id(&repo.target));
    let _ = writeln!(s, "name=bundle {bundle} ({})", repo.target);
    let _ = writeln!(s, "baseurl={base_url}");
    let _ = writeln!(s, "enabled=1");
    if repo.gpg_keys.is_empty() {
        // Nothing to check against: the bundle's signature and checksums vouch for
        // the packages (see the plan's notes).
        let _ = writeln!(s, "gpgcheck=0");
    } else {
        let _ = writeln!(s, "gpgcheck=1");
        let keys: Vec<String> = repo
            .gpg_keys
            .iter()
            .map(|k| format!("{base_url}{k}"))
            .collect();
        let _ = writeln!(s, "gpgkey={}", keys.join(" "));
    }
    // The repodata is generated at build time and not signed by a GPG key.
    let _ = writeln!(s, "repo_gpgcheck=0");
    // Packages such as containerd.io may be filtered by module streams otherwise.
    let _ = writeln!(s, "module_hotfixes=1");
    let _ = writeln!(s, "skip_if_unavailable=0");
    s
}

/// The systemd unit serving `SERVE_ROOT` on `bind:port` with Python's HTTP server,
/// run by the Python dnf itself runs on (see [`python_for`]).
pub fn unit(bind: &str, port: u16, python: &str) -> String {
    // `WorkingDirectory` rather than `--directory`: EL8's platform-python is 3.6, which
    // has no `--directory` (3.7 added it).
    format!(
        "# Written by bundle: serves the bundle's yum repository to the cluster's hosts.
[Unit]
Description=bundle yum repository
After=network-online.target
Wants=network-online.target

[Service]
WorkingDirectory={SERVE_ROOT}
ExecStart={python} -m http.server --bind {bind} {port}
Restart=on-failure
DynamicUser=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
NoNewPrivileges=yes

[Install]
WantedBy=multi-user.target
"
    )
}

/// The Python every host of release `releasever` has, because dnf runs on it: EL8's
/// dnf runs on `/usr/libexec/platform-python` (a minimal EL8 has no `python3`), EL9's
/// and later on `/usr/bin/python3`.
pub fn python_for(releasever: &str) -> &'static str {
    if releasever == "8" {
        "/usr/libexec/platform-python"
    } else {
        "/usr/bin/python3"
    }
}
