//! EL8 module streams ("modularity"): an upstream repo's `modules` metadata, which
//! streams are active, the packages that hides, and the `modules.yaml` the bundle's
//! repo carries.
//!
//! It follows what libdnf does on a host: a module's active stream is the one the
//! manifest names in `modules:`, else its default stream (`modulemd-defaults`); of an
//! active stream, the newest `version` of each `context` is selected. Packages listed
//! as an artifact of any module build are visible only when that build is selected,
//! and a non-modular package whose name is the name of a selected artifact is hidden
//! (the modular one replaces it). Everything else is untouched.
//!
//! The bundle's repo carries the selected builds whose packages it carries (and those
//! of the modules they require), verbatim as upstream wrote them, plus a
//! `modulemd-defaults` document per module naming the stream chosen: dnf on the hosts
//! then sees that stream as the default and installs from it without
//! `dnf module enable`.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::Deserialize;

use super::error::RpmError;
use super::repo::{Candidate, LoadedRepo};
use super::solve;
use super::vercmp::Evr;

/// Largest `modules.yaml` read, uncompressed (Rocky 8 AppStream's is about 10 MB).
pub(crate) const MAX_MODULES_BYTES: u64 = 256 << 20;

/// One `document: modulemd` (version 2): one build of a module stream.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ModuleBuild {
    /// Index of the repo in the target's repo list.
    pub repo: usize,
    pub name: String,
    pub stream: String,
    pub version: u64,
    pub context: String,
    pub arch: String,
    /// Its packages as `name-[epoch:]version-release.arch` (epoch 0 left out, as
    /// [`Candidate::nevra`] writes them).
    pub artifacts: Vec<String>,
    /// Modules it needs at run time (`dependencies[].requires`: module → streams, any
    /// when empty, `-stream` excluding one), `platform` left out.
    pub requires: BTreeMap<String, Vec<String>>,
    /// The document as upstream wrote it, without its `---`/`...` markers.
    pub text: String,
}

impl ModuleBuild {
    /// `name:stream`.
    pub(crate) fn stream_id(&self) -> String {
        format!("{}:{}", self.name, self.stream)
    }
}

/// What one repo's `modules` metadata says.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RepoModules {
    pub builds: Vec<ModuleBuild>,
    /// module → its default stream (`modulemd-defaults` with a `stream`).
    pub defaults: BTreeMap<String, String>,
}

/// The header every modulemd document has.
#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    document: Option<String>,
    #[serde(default)]
    version: Option<u64>,
}

#[derive(Deserialize)]
struct Document<T> {
    data: T,
}

#[derive(Deserialize)]
struct ModulemdData {
    name: String,
    stream: String,
    version: u64,
    #[serde(default)]
    context: Option<String>,
    #[serde(default)]
    arch: Option<String>,
    #[serde(default)]
    artifacts: Artifacts,
    #[serde(default)]
    dependencies: Vec<Dependencies>,
}

#[derive(Deserialize, Default)]
struct Artifacts {
    #[serde(default)]
    rpms: Vec<String>,
}

#[derive(Deserialize, Default)]
struct Dependencies {
    #[serde(default)]
    requires: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
struct DefaultsData {
    module: String,
    #[serde(default)]
    stream: Option<String>,
}

/// Reads a `modules.yaml`: `modulemd` v2 and `modulemd-defaults` v1 documents; other
/// documents (`modulemd-obsoletes`, `modulemd-translations`, later versions) are skipped,
/// as libdnf skips what it does not use.
pub(crate) fn parse(repo: usize, text: &str) -> Result<RepoModules, String> {
    let mut out = RepoModules::default();
    for (n, doc) in documents(text).into_iter().enumerate() {
        let at = |e: serde_saphyr::Error| format!("document {}: {e}", n + 1);
        let header: Header = serde_saphyr::from_str(doc).map_err(at)?;
        match (header.document.as_deref(), header.version) {
            (Some("modulemd"), Some(2)) => {
                let d: Document<ModulemdData> = serde_saphyr::from_str(doc).map_err(at)?;
                out.builds.push(
                    build(repo, d.data, doc).map_err(|e| format!("document {}: {e}", n + 1))?,
                );
            }
            (Some("modulemd-defaults"), Some(1)) => {
                let d: Document<DefaultsData> = serde_saphyr::from_str(doc).map_err(at)?;
                if let Some(stream) = d.data.stream {
                    out.defaults.insert(d.data.module, stream);
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

fn build(repo: usize, d: ModulemdData, text: &str) -> Result<ModuleBuild, String> {
    let artifacts = d
        .artifacts
        .rpms
        .iter()
        .map(|a| normalize_nevra(a).ok_or_else(|| format!("artifact `{a}` is not a NEVRA")))
        .collect::<Result<Vec<_>, _>>()?;
    let requires = d
        .dependencies
        .iter()
        .flat_map(|dep| dep.requires.iter())
        .filter(|(m, _)| *m != "platform")
        .map(|(m, s)| (m.clone(), s.clone()))
        .collect();
    Ok(ModuleBuild {
        repo,
        name: d.name,
        stream: d.stream,
        version: d.version,
        context: d.context.unwrap_or_default(),
        arch: d.arch.unwrap_or_default(),
        artifacts,
        requires,
        text: text.to_string(),
    })
}

/// `podman-0:1.6.4-10.module+el8.x86_64` → `podman-1.6.4-10.module+el8.x86_64`: the
/// form [`Candidate::nevra`] gives, so the two compare as strings.
fn normalize_nevra(nevra: &str) -> Option<String> {
    let (nevr, arch) = nevra.rsplit_once('.')?;
    let (nev, release) = nevr.rsplit_once('-')?;
    let (name, ev) = nev.rsplit_once('-')?;
    let (epoch, version) = match ev.split_once(':') {
        Some((e, v)) => (e.parse().ok()?, v),
        None => (0, ev),
    };
    if name.is_empty() || version.is_empty() || arch.is_empty() {
        return None;
    }
    Some(format!(
        "{name}-{}.{arch}",
        Evr::new(epoch, version, release)
    ))
}

/// The name part of a NEVRA [`normalize_nevra`] made.
fn nevra_name(nevra: &str) -> &str {
    let nevr = nevra.rsplit_once('.').map_or(nevra, |(n, _)| n);
    let nev = nevr.rsplit_once('-').map_or(nevr, |(n, _)| n);
    nev.rsplit_once('-').map_or(nev, |(n, _)| n)
}

/// Splits a YAML stream into its documents' text. A line starting with `---` or `...`
/// followed by a space or the line's end is a document marker wherever it appears: YAML
/// forbids such a line inside content, so splitting there is exact. Documents holding
/// only blank lines, comments or directives are dropped.
fn documents(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut pos = 0;
    let mut push = |from: usize, to: usize| {
        let doc = &text[from..to];
        let has_content = doc.lines().any(|l| {
            let l = l.trim_start();
            !l.is_empty() && !l.starts_with('#') && !l.starts_with('%')
        });
        if has_content {
            out.push(doc);
        }
    };
    for line in text.split_inclusive('\n') {
        let next = pos + line.len();
        if is_marker(line, "---") {
            push(start, pos);
            // Content may follow the marker on its line (`--- !tag`, `--- {a: 1}`).
            start = if line[3..].trim().is_empty() {
                next
            } else {
                pos + 3
            };
        } else if is_marker(line, "...") {
            push(start, pos);
            start = next;
        }
        pos = next;
    }
    push(start, text.len());
    out
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
}

/// The streams a target's build uses and what that hides.
#[derive(Debug, Default)]
pub(crate) struct Selection {
    /// Every module build the repos offer, in repo order.
    builds: Vec<ModuleBuild>,
    /// Indices of the selected builds (newest version per context of active streams).
    selected: Vec<usize>,
    /// module → active stream.
    active: BTreeMap<String, String>,
    /// NEVRAs listed by any build.
    modular: HashSet<String>,
    /// NEVRAs listed by a selected build.
    visible: HashSet<String>,
    /// Names of those.
    visible_names: HashSet<String>,
}

/// A `modules:` entry: `name:stream`.
fn parse_request(target: &str, spec: &str) -> Result<(String, String), RpmError> {
    match spec.split_once(':') {
        Some((m, s)) if !m.is_empty() && !s.is_empty() && !s.contains([':', '/']) => {
            Ok((m.to_string(), s.to_string()))
        }
        _ => Err(RpmError::ModuleSpec {
            target: target.into(),
            spec: spec.into(),
        }),
    }
}

/// Chooses the active stream of every module the repos offer, from the manifest's
/// `modules:` (`name:stream`) and the repos' defaults, and selects their builds.
pub(crate) fn select(
    target: &str,
    requested: &[String],
    repos: &[RepoView<'_>],
) -> Result<Selection, RpmError> {
    let builds: Vec<ModuleBuild> = repos
        .iter()
        .flat_map(|(_, m)| m.builds.iter().cloned())
        .collect();
    let mut active = merged_defaults(repos);
    for spec in requested {
        let (module, stream) = parse_request(target, spec)?;
        check_exists(target, &module, &stream, &builds, repos)?;
        active.insert(module, stream);
    }
    // A default for a module no repo has a build of selects nothing.
    active.retain(|m, _| builds.iter().any(|b| &b.name == m));
    activate_requirements(target, &builds, &mut active);
    let selected = newest_per_context(&builds, &active);
    let modular = builds
        .iter()
        .flat_map(|b| b.artifacts.iter().cloned())
        .collect();
    let visible: HashSet<String> = selected
        .iter()
        .flat_map(|&i| builds[i].artifacts.iter().cloned())
        .collect();
    let visible_names = visible.iter().map(|n| nevra_name(n).to_string()).collect();
    for (m, s) in &active {
        tracing::info!(target, "module `{m}`: stream `{s}` is active");
    }
    Ok(Selection {
        builds,
        selected,
        active,
        modular,
        visible,
        visible_names,
    })
}

/// A repo's name and its module metadata.
pub(crate) type RepoView<'a> = (&'a str, &'a RepoModules);

/// The views of loaded repos, in order.
pub(crate) fn views(repos: &[LoadedRepo]) -> Vec<RepoView<'_>> {
    repos
        .iter()
        .map(|r| (r.spec.name.as_str(), &r.modules))
        .collect()
}

/// A selected build that requires a module with no active stream activates one, as
/// dnf enables the dependencies of the streams it enables: the first stream the
/// requirement allows (all, when it names none) that a repo has.
fn activate_requirements(
    target: &str,
    builds: &[ModuleBuild],
    active: &mut BTreeMap<String, String>,
) {
    while let Some((by, module, stream)) = first_unmet_requirement(builds, active) {
        tracing::info!(
            target,
            "module `{by}` requires `{module}`: stream `{stream}` activated"
        );
        active.insert(module, stream);
    }
}

/// `(requiring build, module, stream to activate)` for the first requirement of a
/// selected build on a module without an active stream that a repo can meet.
fn first_unmet_requirement(
    builds: &[ModuleBuild],
    active: &BTreeMap<String, String>,
) -> Option<(String, String, String)> {
    for i in newest_per_context(builds, active) {
        for (module, streams) in &builds[i].requires {
            if active.contains_key(module) {
                continue;
            }
            let excluded: Vec<&str> = streams.iter().filter_map(|s| s.strip_prefix('-')).collect();
            let allowed: Vec<&String> = streams.iter().filter(|s| !s.starts_with('-')).collect();
            let offered = builds
                .iter()
                .filter(|b| &b.name == module)
                .map(|b| &b.stream)
                .filter(|s| !excluded.contains(&s.as_str()))
                .filter(|s| allowed.is_empty() || allowed.contains(s))
                .min();
            if let Some(stream) = offered {
                return Some((builds[i].stream_id(), module.clone(), stream.clone()));
            }
        }
    }
    None
}

/// Each module's default stream across the repos. When repos disagree there is no
/// default, as libmodulemd merges them.
fn merged_defaults(repos: &[RepoView<'_>]) -> BTreeMap<String, String> {
    let mut all: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (_, modules) in repos {
        for (m, s) in &modules.defaults {
            all.entry(m).or_default().insert(s);
        }
    }
    all.into_iter()
        .filter(|(_, s)| s.len() == 1)
        .map(|(m, s)| {
            (
                m.to_string(),
                s.into_iter().next().unwrap_or_default().into(),
            )
        })
        .collect()
}

/// A requested `module:stream` must be offered by a repo.
fn check_exists(
    target: &str,
    module: &str,
    stream: &str,
    builds: &[ModuleBuild],
    repos: &[RepoView<'_>],
) -> Result<(), RpmError> {
    let of_module: Vec<&ModuleBuild> = builds.iter().filter(|b| b.name == module).collect();
    if of_module.iter().any(|b| b.stream == stream) {
        return Ok(());
    }
    let repo_names = |bs: &[&ModuleBuild]| -> Vec<String> {
        let idx: BTreeSet<usize> = bs.iter().map(|b| b.repo).collect();
        idx.into_iter().map(|i| repos[i].0.to_string()).collect()
    };
    if of_module.is_empty() {
        return Err(RpmError::UnknownModule {
            target: target.into(),
            module: module.into(),
            repos: repos.iter().map(|(name, _)| name.to_string()).collect(),
        });
    }
    let streams: BTreeSet<String> = of_module.iter().map(|b| b.stream.clone()).collect();
    Err(RpmError::UnknownModuleStream {
        target: target.into(),
        module: module.into(),
        stream: stream.into(),
        streams: streams.into_iter().collect(),
        repos: repo_names(&of_module),
    })
}

/// Of each active stream, the newest version of each context (first repo wins a tie).
fn newest_per_context(builds: &[ModuleBuild], active: &BTreeMap<String, String>) -> Vec<usize> {
    let mut best: BTreeMap<(&str, &str, &str), usize> = BTreeMap::new();
    for (i, b) in builds.iter().enumerate() {
        if active.get(&b.name) != Some(&b.stream) {
            continue;
        }
        let key = (b.name.as_str(), b.context.as_str(), b.arch.as_str());
        match best.get(&key) {
            Some(&j) if builds[j].version >= b.version => {}
            _ => {
                best.insert(key, i);
            }
        }
    }
    best.into_values().collect()
}

impl Selection {
    /// Would dnf, with these streams active, see `c`?
    pub(crate) fn visible(&self, c: &Candidate) -> bool {
        let nevra = c.nevra();
        if self.modular.contains(&nevra) {
            return self.visible.contains(&nevra);
        }
        !self.visible_names.contains(&c.name)
    }

    /// Splits off what the module streams hide: `(visible, hidden)`.
    pub(crate) fn split(
        &self,
        target: &str,
        all: Vec<Candidate>,
    ) -> (Vec<Candidate>, Vec<Candidate>) {
        let (visible, hidden): (Vec<Candidate>, Vec<Candidate>) =
            all.into_iter().partition(|c| self.visible(c));
        if !hidden.is_empty() {
            tracing::info!(
                target,
                hidden = hidden.len(),
                "module streams hide packages of other streams and non-modular packages they replace"
            );
        }
        (visible, hidden)
    }

    /// A pin that matches no visible package may match a hidden one: say which and why,
    /// since the fix is in `modules:`, not in the package list.
    pub(crate) fn explain_hidden(&self, err: RpmError, hidden: &[Candidate]) -> RpmError {
        let RpmError::UnknownPackage {
            target,
            spec,
            available,
            ..
        } = err
        else {
            return err;
        };
        let mut reasons: Vec<String> = hidden
            .iter()
            .filter(|c| solve::spec_matches(&spec, c))
            .map(|c| self.hidden_reason(c))
            .collect();
        reasons.sort();
        reasons.dedup();
        reasons.truncate(5);
        RpmError::UnknownPackage {
            target,
            spec,
            available,
            hidden_by_modules: reasons,
        }
    }

    /// Why `c` is hidden: the streams that list it (none active), or the active stream
    /// whose package of the same name replaces it.
    fn hidden_reason(&self, c: &Candidate) -> String {
        let nevra = c.nevra();
        let ids = |pred: &dyn Fn(&ModuleBuild) -> bool| -> Vec<String> {
            let ids: BTreeSet<String> = self
                .builds
                .iter()
                .filter(|b| pred(b))
                .map(|b| format!("`{}`", b.stream_id()))
                .collect();
            ids.into_iter().collect()
        };
        let listing = ids(&|b| b.artifacts.contains(&nevra));
        if listing.is_empty() {
            let replacing = ids(&|b| {
                self.active.get(&b.name) == Some(&b.stream)
                    && b.artifacts.iter().any(|a| nevra_name(a) == c.name)
            });
            format!(
                "non-modular `{nevra}` is hidden by module stream {}",
                replacing.join(", ")
            )
        } else {
            format!(
                "`{nevra}` is in module stream {}, which is not active",
                listing.join(", ")
            )
        }
    }

    /// The selected builds the bundle needs: those with a package among `picks`, and
    /// the selected builds of the modules they require (dnf on the hosts resolves module
    /// dependencies too). Sorted by name, stream, version, context.
    pub(crate) fn carried(&self, picks: &[Candidate]) -> Vec<ModuleBuild> {
        let picked: HashSet<String> = picks.iter().map(Candidate::nevra).collect();
        let mut names: BTreeSet<&str> = self
            .selected
            .iter()
            .map(|&i| &self.builds[i])
            .filter(|b| b.artifacts.iter().any(|a| picked.contains(a)))
            .map(|b| b.name.as_str())
            .collect();
        loop {
            let required: BTreeSet<&str> = self
                .selected
                .iter()
                .map(|&i| &self.builds[i])
                .filter(|b| names.contains(b.name.as_str()))
                .flat_map(|b| b.requires.keys().map(String::as_str))
                .filter(|m| self.active.contains_key(*m) && !names.contains(m))
                .collect();
            if required.is_empty() {
                break;
            }
            names.extend(required);
        }
        let mut out: Vec<ModuleBuild> = self
            .selected
            .iter()
            .map(|&i| &self.builds[i])
            .filter(|b| names.contains(b.name.as_str()))
            .cloned()
            .collect();
        out.sort_by(|a, b| {
            (&a.name, &a.stream, a.version, &a.context, &a.arch)
                .cmp(&(&b.name, &b.stream, b.version, &b.context, &b.arch))
        });
        out
    }
}

/// `name:stream` of each carried build, sorted, once each.
pub(crate) fn stream_ids(carried: &[ModuleBuild]) -> Vec<String> {
    let ids: BTreeSet<String> = carried.iter().map(|b| b.stream_id()).collect();
    ids.into_iter().collect()
}

/// The bundle's `modules.yaml`: the carried builds as upstream wrote them, then one
/// `modulemd-defaults` document per module making the carried stream its default.
/// `None` when no module is carried.
pub(crate) fn render(carried: &[ModuleBuild]) -> Option<String> {
    if carried.is_empty() {
        return None;
    }
    let mut out = String::new();
    for b in carried {
        out.push_str("---\n");
        out.push_str(&b.text);
        if !b.text.ends_with('\n') {
            out.push('\n');
        }
        out.push_str("...\n");
    }
    let streams: BTreeMap<&str, &str> = carried
        .iter()
        .map(|b| (b.name.as_str(), b.stream.as_str()))
        .collect();
    for (module, stream) in streams {
        // JSON strings are YAML double-quoted scalars: any name is written safely.
        let q = |s: &str| serde_json::to_string(s).expect("a string serializes");
        out.push_str(&format!(
            "---\ndocument: modulemd-defaults\nversion: 1\ndata:\n  module: {}\n  stream: {}\n...\n",
            q(module),
            q(stream)
        ));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODULES: &str = r#"---
document: modulemd
version: 2
data:
  name: tools
  stream: 1
  version: 20240101
  context: abc
  arch: x86_64
  summary: Tools
  description: >-
    Stream 1.
  license:
    module: [MIT]
  dependencies:
  - buildrequires:
      platform: [el8]
    requires:
      platform: [el8]
      base: []
  profiles:
    common:
      rpms: [tool]
  artifacts:
    rpms:
    - tool-0:1.0-1.module_el8.x86_64
    - tool-1:1.1-1.module_el8.src
...
---
document: modulemd
version: 2
data:
  name: tools
  stream: "2"
  version: 20240201
  context: abc
  arch: x86_64
  artifacts:
    rpms: [tool-0:2.0-1.module_el8.x86_64]
...
---
document: modulemd
version: 2
data:
  name: tools
  stream: "2"
  version: 20240101
  context: abc
  arch: x86_64
  artifacts:
    rpms: [tool-0:1.9-1.module_el8.x86_64]
...
---
document: modulemd-obsoletes
version: 1
data:
  modified: 2022-01-01T00:00Z
  module: tools
...
---
document: modulemd-defaults
version: 1
data:
  module: tools
  stream: 1
  profiles:
    1: [common]
...
"#;

    #[test]
    fn reads_builds_and_defaults_and_skips_other_documents() {
        let m = parse(0, MODULES).unwrap();
        assert_eq!(m.builds.len(), 3);
        let b = &m.builds[0];
        assert_eq!(
            (
                b.name.as_str(),
                b.stream.as_str(),
                b.version,
                b.context.as_str()
            ),
            ("tools", "1", 20240101, "abc")
        );
        assert_eq!(
            b.artifacts,
            [
                "tool-1.0-1.module_el8.x86_64",
                "tool-1:1.1-1.module_el8.src"
            ]
        );
        assert_eq!(b.requires.keys().collect::<Vec<_>>(), ["base"]);
        assert!(b.text.starts_with("document: modulemd\n"), "{}", b.text);
        assert!(b.text.ends_with("src\n"), "{}", b.text);
        assert_eq!(m.defaults.get("tools").map(String::as_str), Some("1"));
    }

    #[test]
    fn unquoted_streams_keep_their_text() {
        let m = parse(
            0,
            "---\ndocument: modulemd\nversion: 2\ndata: {name: ruby, stream: 3.10, version: 1, context: 00000123}\n",
        )
        .unwrap();
        assert_eq!(m.builds[0].stream, "3.10");
        assert_eq!(m.builds[0].context, "00000123");
    }

    #[test]
    fn malformed_documents_are_named() {
        let err = parse(0, "---\ndocument: modulemd\nversion: 2\ndata: {name: x}\n").unwrap_err();
        assert!(err.starts_with("document 1:"), "{err}");
        let err = parse(
            0,
            "---\ndocument: modulemd\nversion: 2\ndata: {name: x, stream: a, version: 1, artifacts: {rpms: [nonsense]}}\n",
        )
        .unwrap_err();
        assert!(err.contains("`nonsense`"), "{err}");
    }

    #[test]
    fn document_markers_split_exactly() {
        let docs = documents("%YAML 1.2\n---\na: 1\n...\n# c\n--- {b: 2}\n---\nc: '---'\n");
        assert_eq!(docs, ["a: 1\n", " {b: 2}\n", "c: '---'\n"]);
    }

    fn module(
        repo: usize,
        id: &str,
        version: u64,
        context: &str,
        artifacts: &[&str],
        requires: &[(&str, &[&str])],
    ) -> ModuleBuild {
        let (name, stream) = id.split_once(':').unwrap();
        ModuleBuild {
            repo,
            name: name.into(),
            stream: stream.into(),
            version,
            context: context.into(),
            arch: "x86_64".into(),
            artifacts: artifacts.iter().map(|a| a.to_string()).collect(),
            requires: requires
                .iter()
                .map(|(m, s)| (m.to_string(), s.iter().map(|x| x.to_string()).collect()))
                .collect(),
            text: format!("data: {{name: {name}}}\n"),
        }
    }

    fn cand(nevra: &str) -> Candidate {
        let (nevr, arch) = nevra.rsplit_once('.').unwrap();
        let (nv, release) = nevr.rsplit_once('-').unwrap();
        let (name, version) = nv.rsplit_once('-').unwrap();
        Candidate {
            repo: 0,
            name: name.into(),
            evr: Evr::new(0, version, release),
            arch: arch.into(),
            checksum: Err("none".into()),
            pkgid: nevra.into(),
            location: String::new(),
            location_base: None,
            size: 1,
            provides: vec![],
            requires: vec![],
            files: vec![],
        }
    }

    fn visible_of(sel: &Selection, nevras: &[&str]) -> Vec<String> {
        nevras
            .iter()
            .map(|n| cand(n))
            .filter(|c| sel.visible(c))
            .map(|c| c.nevra())
            .collect()
    }

    #[test]
    fn repos_that_disagree_on_a_default_leave_the_module_without_one() {
        let a = RepoModules {
            builds: vec![module(0, "m:1", 1, "c", &["x-1.0-1.x86_64"], &[])],
            defaults: [("m".to_string(), "1".to_string())].into(),
        };
        let b = RepoModules {
            builds: vec![module(1, "m:2", 1, "c", &["x-2.0-1.x86_64"], &[])],
            defaults: [("m".to_string(), "2".to_string())].into(),
        };
        let sel = select("t", &[], &[("a", &a), ("b", &b)]).unwrap();
        assert_eq!(
            visible_of(
                &sel,
                &["x-1.0-1.x86_64", "x-2.0-1.x86_64", "x-3.0-1.x86_64"]
            ),
            ["x-3.0-1.x86_64"],
            "no stream active: modular packages hidden, the non-modular one seen"
        );
        let sel = select("t", &["m:2".into()], &[("a", &a), ("b", &b)]).unwrap();
        assert_eq!(
            visible_of(
                &sel,
                &["x-1.0-1.x86_64", "x-2.0-1.x86_64", "x-3.0-1.x86_64"]
            ),
            ["x-2.0-1.x86_64"]
        );
    }

    #[test]
    fn the_newest_version_of_each_context_is_selected() {
        let r = RepoModules {
            builds: vec![
                // Newest first: the order of the metadata must not decide.
                module(0, "m:1", 2, "a", &["x-1.1-1.x86_64"], &[]),
                module(0, "m:1", 1, "a", &["x-1.0-1.x86_64"], &[]),
                module(0, "m:1", 1, "b", &["y-0.9-1.x86_64"], &[]),
            ],
            defaults: [("m".to_string(), "1".to_string())].into(),
        };
        let sel = select("t", &[], &[("r", &r)]).unwrap();
        assert_eq!(
            visible_of(
                &sel,
                &["x-1.0-1.x86_64", "x-1.1-1.x86_64", "y-0.9-1.x86_64"]
            ),
            ["x-1.1-1.x86_64", "y-0.9-1.x86_64"]
        );
    }

    #[test]
    fn a_required_module_gets_a_stream_and_is_carried_with_its_dependent() {
        let r = RepoModules {
            builds: vec![
                module(
                    0,
                    "app:1",
                    1,
                    "a",
                    &["app-1.0-1.x86_64"],
                    &[("lib", &["2"])],
                ),
                module(0, "lib:1", 1, "a", &["lib-1.0-1.x86_64"], &[]),
                module(0, "lib:2", 1, "a", &["lib-2.0-1.x86_64"], &[]),
            ],
            defaults: BTreeMap::new(),
        };
        let sel = select("t", &["app:1".into()], &[("r", &r)]).unwrap();
        assert_eq!(
            visible_of(
                &sel,
                &["app-1.0-1.x86_64", "lib-1.0-1.x86_64", "lib-2.0-1.x86_64"]
            ),
            ["app-1.0-1.x86_64", "lib-2.0-1.x86_64"]
        );
        let carried = sel.carried(&[cand("app-1.0-1.x86_64")]);
        assert_eq!(stream_ids(&carried), ["app:1", "lib:2"]);
        assert_eq!(
            stream_ids(&sel.carried(&[cand("other-1-1.x86_64")])),
            Vec::<String>::new()
        );
    }

    #[test]
    fn rendered_defaults_name_the_carried_stream() {
        let m = parse(0, MODULES).unwrap();
        let text = render(&m.builds[1..2]).unwrap();
        let again = parse(0, &text).unwrap();
        assert_eq!(again.builds, vec![m.builds[1].clone()]);
        assert_eq!(again.defaults.get("tools").map(String::as_str), Some("2"));
        assert_eq!(render(&[]), None);
    }
}
