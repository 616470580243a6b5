//! The plan for people (`plan.txt`, `HOST/steps.txt`) and the plan folder.

use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use super::{HostStep, OnFailure, Plan, Step};
use crate::Error;

impl Plan {
    /// The plan for people: summary, then every phase's steps per host. File contents
    /// are in the host folders; here each file shows its size and digest.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let w = &mut out;
        let _ = writeln!(
            w,
            "Plan for cluster `{}` from bundle {}",
            self.cluster, self.bundle
        );
        let _ = writeln!(
            w,
            "  Kubernetes {} (kubeadm config {}), containerd config version {}",
            self.kubernetes_version, self.kubeadm_api_version, self.containerd_config_version
        );
        let _ = writeln!(
            w,
            "  control plane endpoint {} (keepalived VIP, haproxy on every master)",
            self.control_plane_endpoint
        );
        let _ = writeln!(
            w,
            "  registry {}, yum repository {}{}",
            self.registry,
            self.repo_url,
            if self.repo_served_by_deploy.is_some() {
                " (served by the deploy node while the install runs)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            w,
            "  {} hosts, {} steps",
            self.hosts.len(),
            self.step_count()
        );
        let _ = writeln!(w);
        let name_w = self.hosts.iter().map(|h| h.name.len()).max().unwrap_or(0);
        let addr_w = self
            .hosts
            .iter()
            .map(|h| h.address.len())
            .max()
            .unwrap_or(0);
        let _ = writeln!(w, "Hosts:");
        for h in &self.hosts {
            let duties = if h.duties.is_empty() {
                String::new()
            } else {
                format!("  ({})", h.duties.join(", "))
            };
            let _ = writeln!(
                w,
                "  {:name_w$}  {:addr_w$}  {}{}",
                h.name,
                h.address,
                h.roles.join("+"),
                duties
            );
        }
        if !self.notes.is_empty() {
            let _ = writeln!(w);
            let _ = writeln!(w, "Notes:");
            for n in &self.notes {
                let _ = writeln!(w, "  - {n}");
            }
        }
        for (i, phase) in self.phases.iter().enumerate() {
            let _ = writeln!(w);
            let _ = writeln!(
                w,
                "Phase {}/{}: {}",
                i + 1,
                self.phases.len(),
                phase.name.as_str()
            );
            let waves = phase
                .hosts
                .iter()
                .map(|h| h.wave)
                .collect::<std::collections::BTreeSet<_>>();
            for h in &phase.hosts {
                let wave = if waves.len() > 1 {
                    format!(" (wave {})", h.wave + 1)
                } else {
                    String::new()
                };
                let _ = writeln!(w, "  {}{}", h.host, wave);
                for s in &h.steps {
                    write_step(w, s);
                }
            }
        }
        out
    }
}

fn write_step(w: &mut String, s: &Step) {
    let _ = writeln!(w, "    [{}] {}", s.id, s.description);
    match &s.action {
        HostStep::WriteFile {
            path,
            content,
            mode,
            owner,
        } => {
            let digest = bundle_format::Sha256Digest::of(content.as_bytes()).hex();
            let _ = writeln!(
                w,
                "      write {path} ({mode} {owner}, {} bytes, sha256 {})",
                content.len(),
                &digest[..12]
            );
        }
        HostStep::CopyFromBundle { entries, dest } => {
            let _ = writeln!(w, "      copy bundle entries {entries}* to {dest}");
        }
        HostStep::Run {
            command,
            check,
            after_change_of,
            capture,
            on_failure,
        } => {
            for (i, line) in command.lines().enumerate() {
                let _ = writeln!(w, "      {} {line}", if i == 0 { "$" } else { " " });
            }
            if let Some(c) = check {
                let _ = writeln!(w, "      skip if: {c}");
            }
            if !after_change_of.is_empty() {
                let _ = writeln!(
                    w,
                    "      also after a change of: {}",
                    after_change_of.join(", ")
                );
            }
            if let Some(c) = capture {
                let _ = writeln!(w, "      output saved as <runtime:{c}>");
            }
            if *on_failure == OnFailure::Warn {
                let _ = writeln!(w, "      a failure is a warning");
            }
        }
        HostStep::WaitFor {
            condition,
            timeout_secs,
        } => {
            let _ = writeln!(w, "      wait up to {timeout_secs}s for: {condition}");
        }
    }
}

/// Where `path` (absolute on the host) goes under the host's folder: `files/etc/…`.
/// `None` for a path with `..` or not absolute.
pub fn host_file_path(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return None;
    }
    let mut out = PathBuf::from("files");
    for c in p.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => out.push(n),
            _ => return None,
        }
    }
    Some(out)
}

/// Writes `plan.json`, `plan.txt` and, for each host, `HOST/steps.txt` and every file
/// under `HOST/files/`. Host folders are rebuilt from scratch.
pub fn write_plan_dir(plan: &Plan, dir: &Path) -> Result<(), Error> {
    let werr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(werr(dir))?;
    for h in &plan.hosts {
        let host_dir = dir.join(&h.name);
        if host_dir.exists() {
            std::fs::remove_dir_all(&host_dir).map_err(werr(&host_dir))?;
        }
        std::fs::create_dir_all(&host_dir).map_err(werr(&host_dir))?;
        let mut steps = String::new();
        let _ = writeln!(
            steps,
            "# {} ({}) — steps in order; files are under files/",
            h.name, h.address
        );
        let mut last = None;
        for (phase, s) in plan.host_steps(&h.name) {
            if last != Some(phase) {
                let _ = writeln!(steps, "\n## {}", phase.as_str());
                last = Some(phase);
            }
            write_step(&mut steps, s);
        }
        let p = host_dir.join("steps.txt");
        std::fs::write(&p, steps).map_err(werr(&p))?;
        for (path, content, _, _) in plan.host_files(&h.name) {
            let rel = host_file_path(path).expect("the planner writes absolute paths only");
            let p = host_dir.join(rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(werr(parent))?;
            }
            std::fs::write(&p, content).map_err(werr(&p))?;
        }
    }
    let p = dir.join("plan.json");
    std::fs::write(&p, plan.to_json()).map_err(werr(&p))?;
    let p = dir.join("plan.txt");
    std::fs::write(&p, plan.to_text()).map_err(werr(&p))?;
    Ok(())
}
