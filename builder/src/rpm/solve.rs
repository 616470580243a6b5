//! Picking packages and their dependency closure.
//!
//! This is a closure, not a SAT solver: starting from the pinned packages, every
//! `requires` is followed to one provider, one version per package name. When a versioned
//! requirement rules out a version chosen earlier, the requirement becomes a constraint on
//! that name and the closure starts over, so the outcome does not depend on the order in
//! which requirements are met. `Conflicts` and `Obsoletes` are not evaluated (the pinned
//! set of an HA install has none among its members, and dnf on the hosts still checks the
//! whole transaction); weak dependencies (`Recommends`, `Suggests`) are not followed.
//!
//! Provider choice is deterministic and logged (`tracing::info!`, shown with `-v`):
//! a provider already chosen wins; otherwise a locked NEVRA, then a pinned name, then the
//! package whose name equals the requirement, then by name, then the newest version, then
//! repo order.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use super::error::RpmError;
use super::repo::{Candidate, Dep};
use super::rich::{parse_rich, render, Rich};
use super::vercmp::rpmvercmp;

/// Restarts allowed before giving up (each adds one constraint).
const MAX_RESTARTS: usize = 200;

/// Every package the target's repos offer for its architecture, indexed.
pub(crate) struct Universe {
    pub cands: Vec<Candidate>,
    pub repo_names: Vec<String>,
    target: String,
    by_name: HashMap<String, Vec<usize>>,
    by_provide: HashMap<String, Vec<usize>>,
    excluded: BTreeSet<String>,
}

impl Universe {
    /// Keeps the packages for `arch` (and `noarch`) whose names are not excluded.
    pub(crate) fn new(
        target: &str,
        arch: &str,
        repo_names: Vec<String>,
        all: Vec<Candidate>,
        exclude: &[String],
    ) -> Self {
        let mut excluded = BTreeSet::new();
        let cands: Vec<Candidate> = all
            .into_iter()
            .filter(|c| c.arch == arch || c.arch == "noarch")
            .filter(|c| {
                let out = exclude.contains(&c.name);
                if out {
                    excluded.insert(c.name.clone());
                }
                !out
            })
            .collect();
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_provide: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, c) in cands.iter().enumerate() {
            by_name.entry(c.name.clone()).or_default().push(i);
            let mut seen = HashSet::new();
            for p in c.provides.iter().map(|p| &p.name).chain(c.files.iter()) {
                if seen.insert(p) {
                    by_provide.entry(p.clone()).or_default().push(i);
                }
            }
        }
        Universe {
            cands,
            repo_names,
            target: target.to_string(),
            by_name,
            by_provide,
            excluded,
        }
    }

    /// Candidate indices by pkgid, per repo (to join filelists).
    pub(crate) fn by_pkgid(&self) -> HashMap<(usize, String), usize> {
        self.cands
            .iter()
            .enumerate()
            .map(|(i, c)| ((c.repo, c.pkgid.clone()), i))
            .collect()
    }

    fn provides(&self, i: usize, dep: &Dep) -> bool {
        let c = &self.cands[i];
        if dep.name.starts_with('/') && c.files.contains(&dep.name) {
            return true;
        }
        c.provides.iter().any(|p| p.provide_satisfies(dep))
    }
}

/// A package spec from the manifest: `name`, `name-version`, `name-version-release`,
/// `name-epoch:version-release`.
#[derive(Debug, Clone, PartialEq)]
struct SpecForm {
    name: String,
    epoch: Option<u32>,
    version: Option<String>,
    release: Option<String>,
}

/// The readings of a spec, most literal first (`kubernetes-cni-1.3.0` is tried as the name
/// `kubernetes-cni-1.3.0`, then `kubernetes` version `cni` release `1.3.0`, then
/// `kubernetes-cni` version `1.3.0`); the first with a match wins.
fn spec_forms(spec: &str) -> Vec<SpecForm> {
    let mut out = vec![SpecForm {
        name: spec.to_string(),
        epoch: None,
        version: None,
        release: None,
    }];
    let split_ev = |v: &str| -> Option<(Option<u32>, String)> {
        match v.split_once(':') {
            Some((e, v)) => Some((Some(e.parse().ok()?), v.to_string())),
            None => Some((None, v.to_string())),
        }
    };
    if let Some((left, release)) = spec.rsplit_once('-') {
        if let Some((name, ev)) = left.rsplit_once('-') {
            if let Some((epoch, version)) = split_ev(ev) {
                if !name.is_empty() && !version.is_empty() && !release.is_empty() {
                    out.push(SpecForm {
                        name: name.into(),
                        epoch,
                        version: Some(version),
                        release: Some(release.into()),
                    });
                }
            }
        }
        if let Some((epoch, version)) = split_ev(release) {
            if !left.is_empty() && !version.is_empty() {
                out.push(SpecForm {
                    name: left.into(),
                    epoch,
                    version: Some(version),
                    release: None,
                });
            }
        }
    }
    out
}

/// Does any reading of `spec` match `c`?
pub(crate) fn spec_matches(spec: &str, c: &Candidate) -> bool {
    spec_forms(spec).iter().any(|f| f.matches(c))
}

impl SpecForm {
    fn matches(&self, c: &Candidate) -> bool {
        c.name == self.name
            && self.epoch.is_none_or(|e| e == c.evr.epoch)
            && self
                .version
                .as_deref()
                .is_none_or(|v| rpmvercmp(v, &c.evr.version).is_eq())
            && self
                .release
                .as_deref()
                .is_none_or(|r| rpmvercmp(r, &c.evr.release).is_eq())
    }
}

/// A requirement that rules out the version of `name` chosen so far.
struct Restart {
    name: String,
    dep: Dep,
    by: String,
}

/// Why resolving had to stop or start over.
enum Step {
    Fail(Box<RpmError>),
    Restart(Box<Restart>),
}

impl From<RpmError> for Step {
    fn from(e: RpmError) -> Self {
        Step::Fail(Box::new(e))
    }
}

/// Resolves the pinned specs and their closure. `locked` maps name → locked NEVRA
/// (preferred whenever it is a valid choice). `file_owners` looks a path up in filelists
/// when no package's primary entry lists it. Returns candidate indices.
pub(crate) fn resolve(
    u: &Universe,
    specs: &[String],
    locked: &HashMap<String, String>,
    file_owners: &mut dyn FnMut(&str) -> Result<Vec<usize>, RpmError>,
) -> Result<Vec<usize>, RpmError> {
    let mut constraints: HashMap<String, Vec<(Dep, String)>> = HashMap::new();
    let mut file_cache: HashMap<String, Vec<usize>> = HashMap::new();
    for _ in 0..MAX_RESTARTS {
        let mut run = Run {
            u,
            locked,
            constraints: &constraints,
            file_cache: &mut file_cache,
            file_owners,
            chosen: HashMap::new(),
            why: HashMap::new(),
            pinned: HashSet::new(),
            queue: VecDeque::new(),
            pending: Vec::new(),
        };
        match run.run(specs) {
            Ok(()) => {
                let mut out: Vec<usize> = run.chosen.values().copied().collect();
                out.sort_by_key(|&i| u.cands[i].nevra());
                return Ok(out);
            }
            Err(Step::Fail(e)) => return Err(*e),
            Err(Step::Restart(r)) => {
                let Restart { name, dep, by } = *r;
                tracing::info!(
                    target = %u.target,
                    "`{by}` requires `{dep}`, which rules out the `{name}` chosen so far: starting over with that constraint"
                );
                constraints.entry(name).or_default().push((dep, by));
            }
        }
    }
    Err(RpmError::Unsolvable {
        target: u.target.clone(),
        reason: format!("no stable choice after {MAX_RESTARTS} attempts"),
    })
}

struct Run<'a> {
    u: &'a Universe,
    locked: &'a HashMap<String, String>,
    constraints: &'a HashMap<String, Vec<(Dep, String)>>,
    file_cache: &'a mut HashMap<String, Vec<usize>>,
    file_owners: &'a mut dyn FnMut(&str) -> Result<Vec<usize>, RpmError>,
    /// name → chosen candidate.
    chosen: HashMap<String, usize>,
    /// name → why it is in (`pinned as `x``, `required by `y``).
    why: HashMap<String, String>,
    pinned: HashSet<String>,
    queue: VecDeque<usize>,
    /// Conditional (if/unless) requirements: (package nevra, expression).
    pending: Vec<(String, Rich)>,
}

impl Run<'_> {
    fn run(&mut self, specs: &[String]) -> Result<(), Step> {
        for spec in specs {
            let i = self.pick_spec(spec)?;
            let name = self.u.cands[i].name.clone();
            if let Some(&other) = self.chosen.get(&name) {
                if other != i {
                    return Err(Step::from(RpmError::Conflict {
                        target: self.u.target.clone(),
                        requirement: spec.clone(),
                        by: "the package list".into(),
                        chosen: self.u.cands[other].nevra(),
                        why: self.why[&name].clone(),
                    }));
                }
                continue;
            }
            tracing::info!(target = %self.u.target, "`{spec}`: picked `{}` from `{}`", self.u.cands[i].nevra(), self.u.repo_names[self.u.cands[i].repo]);
            self.pinned.insert(name.clone());
            self.add(i, format!("pinned as `{spec}`"));
        }
        loop {
            while let Some(i) = self.queue.pop_front() {
                let from = self.u.cands[i].nevra();
                for dep in &self.u.cands[i].requires {
                    if dep.name.starts_with("rpmlib(") {
                        continue;
                    }
                    if dep.name.starts_with('(') {
                        let rich =
                            parse_rich(&dep.name).map_err(|reason| RpmError::RichDependency {
                                target: self.u.target.clone(),
                                package: from.clone(),
                                requirement: dep.name.clone(),
                                reason,
                            })?;
                        self.require(&rich, &from)?;
                    } else {
                        self.require_simple(dep, &from)?;
                    }
                }
            }
            // Conditionals are decided once everything unconditional is in.
            let pending = std::mem::take(&mut self.pending);
            let mut progressed = false;
            for (from, rich) in pending {
                match &rich {
                    Rich::If(a, b, c) => {
                        if self.satisfied(b)? {
                            tracing::info!(target = %self.u.target, "`{from}`: condition of `{}` holds", render(&rich));
                            self.require(a, &from)?;
                            progressed = true;
                        } else if let Some(c) = c {
                            // Re-checked at the end: B may still come in.
                            self.pending
                                .push((from, Rich::If(a.clone(), b.clone(), Some(c.clone()))));
                        } else {
                            self.pending.push((from, rich));
                        }
                    }
                    _ => self.pending.push((from, rich)),
                }
            }
            if progressed || !self.queue.is_empty() {
                continue;
            }
            // Nothing more comes in through `if`: decide the `else` and `unless` branches.
            let pending = std::mem::take(&mut self.pending);
            for (from, rich) in &pending {
                match rich {
                    Rich::If(_, b, Some(c)) if !self.satisfied(b)? => {
                        self.require(c, from)?;
                        progressed = true;
                    }
                    Rich::Unless(a, b, c) => {
                        if !self.satisfied(b)? {
                            self.require(a, from)?;
                            progressed = true;
                        } else if let Some(c) = c {
                            self.require(c, from)?;
                            progressed = true;
                        }
                    }
                    _ => {}
                }
            }
            if !progressed && self.queue.is_empty() {
                return Ok(());
            }
        }
    }

    fn allowed(&self, i: usize) -> bool {
        let c = &self.u.cands[i];
        self.constraints
            .get(&c.name)
            .is_none_or(|cs| cs.iter().all(|(d, _)| d.evr_satisfies(&c.evr)))
    }

    fn pick_spec(&self, spec: &str) -> Result<usize, Step> {
        let u = self.u;
        let mut known_name = None;
        for form in spec_forms(spec) {
            let Some(idx) = u.by_name.get(&form.name) else {
                continue;
            };
            known_name.get_or_insert(form.name.clone());
            let matches: Vec<usize> = idx
                .iter()
                .copied()
                .filter(|&i| form.matches(&u.cands[i]))
                .collect();
            if matches.is_empty() {
                continue;
            }
            let allowed: Vec<usize> = matches
                .iter()
                .copied()
                .filter(|&i| self.allowed(i))
                .collect();
            if allowed.is_empty() {
                let (dep, by) = &self.constraints[&form.name][0];
                return Err(Step::from(RpmError::Conflict {
                    target: u.target.clone(),
                    requirement: dep.to_string(),
                    by: by.clone(),
                    chosen: u.cands[newest(u, &matches)].nevra(),
                    why: format!("pinned as `{spec}`"),
                }));
            }
            if let Some(lock) = self.locked.get(&form.name) {
                if let Some(&i) = allowed.iter().find(|&&i| u.cands[i].nevra() == *lock) {
                    return Ok(i);
                }
            }
            return Ok(newest(u, &allowed));
        }
        if u.excluded.contains(spec) {
            return Err(Step::from(RpmError::UnknownPackage {
                target: u.target.clone(),
                spec: spec.into(),
                available: "it is listed in `exclude`".into(),
                hidden_by_modules: vec![],
            }));
        }
        let available = match known_name {
            Some(name) => {
                let mut versions: Vec<&Candidate> =
                    u.by_name[&name].iter().map(|&i| &u.cands[i]).collect();
                versions.sort_by(|a, b| a.evr.cmp(&b.evr));
                versions.dedup_by(|a, b| a.evr == b.evr);
                format!(
                    "`{name}` is available as {}",
                    versions
                        .iter()
                        .map(|c| format!("`{}`", c.evr))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
            None => format!("no repo of the target has a package named like `{spec}`"),
        };
        Err(Step::from(RpmError::UnknownPackage {
            target: u.target.clone(),
            spec: spec.into(),
            available,
            hidden_by_modules: vec![],
        }))
    }

    fn add(&mut self, i: usize, why: String) {
        let name = self.u.cands[i].name.clone();
        self.chosen.insert(name.clone(), i);
        self.why.insert(name, why);
        self.queue.push_back(i);
    }

    fn providers(&mut self, dep: &Dep) -> Result<Vec<usize>, RpmError> {
        let mut out: Vec<usize> = self
            .u
            .by_provide
            .get(&dep.name)
            .map(|v| {
                v.iter()
                    .copied()
                    .filter(|&i| self.u.provides(i, dep))
                    .collect()
            })
            .unwrap_or_default();
        if out.is_empty() && dep.name.starts_with('/') {
            if !self.file_cache.contains_key(&dep.name) {
                let owners = (self.file_owners)(&dep.name)?;
                self.file_cache.insert(dep.name.clone(), owners);
            }
            out = self.file_cache[&dep.name].clone();
        }
        Ok(out)
    }

    fn is_chosen(&self, i: usize) -> bool {
        self.chosen.get(&self.u.cands[i].name) == Some(&i)
    }

    fn satisfied(&mut self, r: &Rich) -> Result<bool, RpmError> {
        Ok(match r {
            Rich::Atom(d) => self.providers(d)?.iter().any(|&i| self.is_chosen(i)),
            Rich::And(v) => {
                for x in v {
                    if !self.satisfied(x)? {
                        return Ok(false);
                    }
                }
                true
            }
            Rich::Or(v) => {
                for x in v {
                    if self.satisfied(x)? {
                        return Ok(true);
                    }
                }
                false
            }
            Rich::If(a, b, c) => {
                if self.satisfied(b)? {
                    self.satisfied(a)?
                } else {
                    match c {
                        Some(c) => self.satisfied(c)?,
                        None => true,
                    }
                }
            }
            Rich::Unless(a, b, c) => {
                if !self.satisfied(b)? {
                    self.satisfied(a)?
                } else {
                    match c {
                        Some(c) => self.satisfied(c)?,
                        None => true,
                    }
                }
            }
            Rich::With(_) | Rich::Without(..) => {
                let chosen: Vec<usize> = self.chosen.values().copied().collect();
                chosen.into_iter().any(|i| self.single_satisfies(i, r))
            }
        })
    }

    /// For `with`/`without`: does package `i` alone satisfy the expression?
    fn single_satisfies(&self, i: usize, r: &Rich) -> bool {
        match r {
            Rich::Atom(d) => self.u.provides(i, d),
            Rich::With(v) => v.iter().all(|x| self.single_satisfies(i, x)),
            Rich::Without(a, b) => self.single_satisfies(i, a) && !self.single_satisfies(i, b),
            Rich::And(v) => v.iter().all(|x| self.single_satisfies(i, x)),
            Rich::Or(v) => v.iter().any(|x| self.single_satisfies(i, x)),
            _ => false,
        }
    }

    /// Could `r` be met with what the repos offer (without choosing anything)?
    fn satisfiable(&mut self, r: &Rich) -> Result<bool, RpmError> {
        Ok(match r {
            Rich::Atom(d) => {
                let p = self.providers(d)?;
                p.iter().any(|&i| {
                    self.is_chosen(i)
                        || (self.allowed(i) && !self.chosen.contains_key(&self.u.cands[i].name))
                })
            }
            Rich::And(v) => {
                for x in v {
                    if !self.satisfiable(x)? {
                        return Ok(false);
                    }
                }
                true
            }
            Rich::Or(v) => {
                for x in v {
                    if self.satisfiable(x)? {
                        return Ok(true);
                    }
                }
                false
            }
            Rich::If(..) | Rich::Unless(..) => true,
            Rich::With(_) | Rich::Without(..) => !self.single_candidates(r)?.is_empty(),
        })
    }

    fn single_candidates(&mut self, r: &Rich) -> Result<Vec<usize>, RpmError> {
        let first = first_atom(r).cloned();
        let Some(first) = first else {
            return Ok(Vec::new());
        };
        let p = self.providers(&first)?;
        Ok(p.into_iter()
            .filter(|&i| self.single_satisfies(i, r) && self.allowed(i))
            .collect())
    }

    fn require(&mut self, r: &Rich, from: &str) -> Result<(), Step> {
        match r {
            Rich::Atom(d) => self.require_simple(d, from),
            Rich::And(v) => {
                for x in v {
                    self.require(x, from)?;
                }
                Ok(())
            }
            Rich::Or(v) => {
                if self.satisfied(r)? {
                    return Ok(());
                }
                for x in v {
                    if self.satisfiable(x)? {
                        tracing::info!(target = %self.u.target, "`{from}` requires `{}`: taking `{}`, the first alternative the repos can satisfy", render(r), render(x));
                        return self.require(x, from);
                    }
                }
                Err(Step::from(self.unsatisfiable(from, &render(r))))
            }
            Rich::If(..) | Rich::Unless(..) => {
                self.pending.push((from.to_string(), r.clone()));
                Ok(())
            }
            Rich::With(_) | Rich::Without(..) => {
                if self.satisfied(r)? {
                    return Ok(());
                }
                let mut cands = self.single_candidates(r)?;
                cands.retain(|&i| !self.chosen.contains_key(&self.u.cands[i].name));
                if cands.is_empty() {
                    return Err(Step::from(self.unsatisfiable(from, &render(r))));
                }
                let first = first_atom(r).cloned().expect("has an atom");
                let best = self.best(&cands, &first);
                self.explain(from, &render(r), best, &cands);
                self.add(best, format!("required by `{from}`"));
                Ok(())
            }
        }
    }

    fn unsatisfiable(&self, from: &str, requirement: &str) -> RpmError {
        RpmError::Unsatisfiable {
            target: self.u.target.clone(),
            package: from.to_string(),
            requirement: requirement.to_string(),
            excluded: self.u.excluded.iter().cloned().collect(),
        }
    }

    fn require_simple(&mut self, dep: &Dep, from: &str) -> Result<(), Step> {
        let providers = self.providers(dep)?;
        if providers.iter().any(|&i| self.is_chosen(i)) {
            return Ok(());
        }
        let free: Vec<usize> = providers
            .iter()
            .copied()
            .filter(|&i| self.allowed(i) && !self.chosen.contains_key(&self.u.cands[i].name))
            .collect();
        if free.is_empty() {
            if providers.is_empty() {
                return Err(Step::from(self.unsatisfiable(from, &dep.to_string())));
            }
            // Every provider is another version of a package already chosen: constrain
            // that name and start over, unless that constraint is already in force.
            let names: BTreeSet<&str> = providers
                .iter()
                .map(|&i| self.u.cands[i].name.as_str())
                .collect();
            let name = names.iter().next().expect("one provider").to_string();
            let already = self
                .constraints
                .get(&name)
                .is_some_and(|cs| cs.iter().any(|(d, _)| d == dep));
            if names.len() == 1
                && dep.constraint.is_some()
                && !already
                && !self.pinned.contains(&name)
            {
                return Err(Step::Restart(Box::new(Restart {
                    name,
                    dep: dep.clone(),
                    by: from.to_string(),
                })));
            }
            let chosen = self
                .chosen
                .get(&name)
                .map(|&i| self.u.cands[i].nevra())
                .unwrap_or_default();
            return Err(Step::from(RpmError::Conflict {
                target: self.u.target.clone(),
                requirement: dep.to_string(),
                by: from.to_string(),
                chosen,
                why: self
                    .why
                    .get(&name)
                    .cloned()
                    .unwrap_or_else(|| "constraints of other packages".into()),
            }));
        }
        let best = self.best(&free, dep);
        self.explain(from, &dep.to_string(), best, &free);
        self.add(best, format!("required by `{from}`"));
        Ok(())
    }

    fn best(&self, cands: &[usize], dep: &Dep) -> usize {
        let u = self.u;
        *cands
            .iter()
            .min_by_key(|&&i| {
                let c = &u.cands[i];
                (
                    self.locked.get(&c.name) != Some(&c.nevra()),
                    !self.pinned.contains(&c.name),
                    c.name != dep.name,
                    c.name.clone(),
                    Reverse(c.evr.clone()),
                    c.repo,
                    c.arch.clone(),
                )
            })
            .expect("non-empty")
    }

    fn explain(&self, from: &str, req: &str, best: usize, among: &[usize]) {
        let u = self.u;
        let c = &u.cands[best];
        let reason = if self.locked.get(&c.name) == Some(&c.nevra()) {
            "locked"
        } else if c.name == req.split_whitespace().next().unwrap_or("") {
            "name matches, newest"
        } else {
            "first provider by name, newest"
        };
        let mut others: Vec<String> = among
            .iter()
            .filter(|&&i| i != best)
            .map(|&i| u.cands[i].nevra())
            .collect();
        others.dedup();
        tracing::info!(
            target = %u.target,
            "`{from}` requires `{req}`: chose `{}` from `{}` ({reason}){}",
            c.nevra(),
            u.repo_names[c.repo],
            if others.is_empty() { String::new() } else { format!("; other providers: {}", others.join(", ")) }
        );
    }
}

fn newest(u: &Universe, idx: &[usize]) -> usize {
    *idx.iter()
        .min_by_key(|&&i| {
            (
                Reverse(u.cands[i].evr.clone()),
                u.cands[i].repo,
                u.cands[i].arch.clone(),
            )
        })
        .expect("non-empty")
}

fn first_atom(r: &Rich) -> Option<&Dep> {
    match r {
        Rich::Atom(d) => Some(d),
        Rich::And(v) | Rich::Or(v) | Rich::With(v) => v.first().and_then(first_atom),
        Rich::If(a, ..) | Rich::Unless(a, ..) | Rich::Without(a, _) => first_atom(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpm::download::Expected;
    use crate::rpm::repo::Flag;
    use crate::rpm::vercmp::Evr;
    use bundle_format::Hint;

    fn dep(s: &str) -> Dep {
        let mut it = s.split_whitespace();
        let name = it.next().unwrap().to_string();
        let constraint = it.next().map(|op| {
            (
                Flag::parse(op).unwrap(),
                Evr::parse(it.next().unwrap()).unwrap(),
            )
        });
        Dep { name, constraint }
    }

    /// `name-evr.arch`, requires, extra provides, files.
    fn pkg(
        repo: usize,
        nevra: &str,
        requires: &[&str],
        provides: &[&str],
        files: &[&str],
    ) -> Candidate {
        let (nev, arch) = nevra.rsplit_once('.').unwrap();
        let (nv, rel) = nev.rsplit_once('-').unwrap();
        let (name, ver) = nv.rsplit_once('-').unwrap();
        let evr = Evr::parse(&format!("{ver}-{rel}")).unwrap();
        let mut prov: Vec<Dep> = provides.iter().map(|p| dep(p)).collect();
        prov.push(Dep {
            name: name.into(),
            constraint: Some((Flag::Eq, evr.clone())),
        });
        Candidate {
            repo,
            name: name.into(),
            evr,
            arch: arch.into(),
            checksum: Ok(Expected::Other {
                kind: "sha512",
                hex: String::new(),
            }),
            pkgid: nevra.into(),
            location: format!("{nevra}.rpm"),
            location_base: None,
            size: 1,
            provides: prov,
            requires: requires
                .iter()
                .map(|r| {
                    if r.starts_with('(') {
                        Dep {
                            name: r.to_string(),
                            constraint: None,
                        }
                    } else {
                        dep(r)
                    }
                })
                .collect(),
            files: files.iter().map(|f| f.to_string()).collect(),
        }
    }

    fn universe(c: Vec<Candidate>) -> Universe {
        Universe::new(
            "el9-x86_64",
            "x86_64",
            vec!["a".into(), "b".into(), "c".into()],
            c,
            &["excluded-pkg".into()],
        )
    }

    fn solve(u: &Universe, specs: &[&str]) -> Result<Vec<String>, RpmError> {
        let specs: Vec<String> = specs.iter().map(|s| s.to_string()).collect();
        let mut no_files = |_: &str| Ok(Vec::new());
        resolve(u, &specs, &HashMap::new(), &mut no_files)
            .map(|v| v.into_iter().map(|i| u.cands[i].nevra()).collect())
    }

    #[test]
    fn spec_forms_cover_all_pin_shapes() {
        let f = spec_forms("kubernetes-cni-1.3.0");
        assert_eq!(f.last().unwrap().name, "kubernetes-cni");
        assert_eq!(f.last().unwrap().version.as_deref(), Some("1.3.0"));
        let f = spec_forms("containerd.io-1:1.6.28-3.1");
        assert_eq!(
            f[1],
            SpecForm {
                name: "containerd.io".into(),
                epoch: Some(1),
                version: Some("1.6.28".into()),
                release: Some("3.1".into())
            }
        );
    }

    #[test]
    fn pin_picks_version_and_bare_name_picks_newest() {
        let u = universe(vec![
            pkg(0, "kubeadm-1.29.2-1.x86_64", &[], &[], &[]),
            pkg(0, "kubeadm-1.29.10-1.x86_64", &[], &[], &[]),
            pkg(0, "kubeadm-1.30.0~rc1-1.x86_64", &[], &[], &[]),
            pkg(0, "kubeadm-1.28.0-1.aarch64", &[], &[], &[]),
        ]);
        assert_eq!(
            solve(&u, &["kubeadm-1.29.2"]).unwrap(),
            ["kubeadm-1.29.2-1.x86_64"]
        );
        assert_eq!(
            solve(&u, &["kubeadm"]).unwrap(),
            ["kubeadm-1.30.0~rc1-1.x86_64"]
        );
        assert_eq!(
            solve(&u, &["kubeadm-1.29.10-1"]).unwrap(),
            ["kubeadm-1.29.10-1.x86_64"]
        );
        let err = solve(&u, &["kubeadm-1.28.0"]).unwrap_err().to_string();
        assert!(err.contains("`kubeadm-1.28.0`"), "{err}");
    }

    #[test]
    fn closure_follows_virtual_file_and_versioned_requirements() {
        let u = universe(vec![
            pkg(
                0,
                "kubelet-1.29.2-1.x86_64",
                &[
                    "conntrack",
                    "/usr/sbin/iptables",
                    "cni-plugins >= 1.2",
                    "rpmlib(PayloadIsZstd) <= 5.4.18-1",
                ],
                &[],
                &[],
            ),
            pkg(
                1,
                "conntrack-tools-1.4.7-2.x86_64",
                &["libnl3 < 3.8"],
                &["conntrack"],
                &[],
            ),
            pkg(
                2,
                "iptables-nft-1.8.8-1.x86_64",
                &[],
                &[],
                &["/usr/sbin/iptables"],
            ),
            pkg(
                0,
                "kubernetes-cni-1.3.0-1.x86_64",
                &[],
                &["cni-plugins = 1.3.0"],
                &[],
            ),
            pkg(
                0,
                "kubernetes-cni-1.1.0-1.x86_64",
                &[],
                &["cni-plugins = 1.1.0"],
                &[],
            ),
            pkg(2, "libnl3-3.9.0-1.x86_64", &[], &[], &[]),
            pkg(2, "libnl3-3.7.0-1.x86_64", &[], &[], &[]),
        ]);
        assert_eq!(
            solve(&u, &["kubelet"]).unwrap(),
            [
                "conntrack-tools-1.4.7-2.x86_64",
                "iptables-nft-1.8.8-1.x86_64",
                "kubelet-1.29.2-1.x86_64",
                "kubernetes-cni-1.3.0-1.x86_64",
                "libnl3-3.7.0-1.x86_64"
            ]
        );
    }

    #[test]
    fn later_versioned_requirement_restarts_with_a_constraint() {
        let u = universe(vec![
            pkg(0, "a-1-1.x86_64", &["libnl3", "b"], &[], &[]),
            pkg(0, "b-1-1.x86_64", &["libnl3 < 3.8"], &[], &[]),
            pkg(0, "libnl3-3.9.0-1.x86_64", &[], &[], &[]),
            pkg(0, "libnl3-3.7.0-1.x86_64", &[], &[], &[]),
        ]);
        assert_eq!(
            solve(&u, &["a"]).unwrap(),
            ["a-1-1.x86_64", "b-1-1.x86_64", "libnl3-3.7.0-1.x86_64"]
        );
    }

    #[test]
    fn pinned_version_that_a_requirement_rules_out_is_a_conflict() {
        let u = universe(vec![
            pkg(0, "a-1-1.x86_64", &["libnl3 < 3.8"], &[], &[]),
            pkg(0, "libnl3-3.9.0-1.x86_64", &[], &[], &[]),
            pkg(0, "libnl3-3.7.0-1.x86_64", &[], &[], &[]),
        ]);
        let err = solve(&u, &["libnl3-3.9.0", "a"]).unwrap_err().to_string();
        assert!(
            err.contains("`a-1-1.x86_64` requires `libnl3 < 3.8`"),
            "{err}"
        );
        assert!(err.contains("`libnl3-3.9.0-1.x86_64`"), "{err}");
    }

    #[test]
    fn rich_dependencies_resolve() {
        let u = universe(vec![
            pkg(
                0,
                "a-1-1.x86_64",
                &[
                    "(nftables or iptables-legacy)",
                    "(selinux-policy if selinux)",
                    "(x-doc if a)",
                    "(y unless z)",
                ],
                &[],
                &[],
            ),
            pkg(0, "iptables-legacy-1-1.x86_64", &[], &[], &[]),
            pkg(0, "nftables-1-1.x86_64", &[], &[], &[]),
            pkg(0, "selinux-policy-1-1.noarch", &[], &[], &[]),
            pkg(0, "x-doc-1-1.noarch", &[], &[], &[]),
            pkg(0, "y-1-1.noarch", &[], &[], &[]),
        ]);
        assert_eq!(
            solve(&u, &["a"]).unwrap(),
            [
                "a-1-1.x86_64",
                "nftables-1-1.x86_64",
                "x-doc-1-1.noarch",
                "y-1-1.noarch"
            ]
        );
    }

    #[test]
    fn unsatisfiable_requirement_names_package_and_requirement() {
        let u = universe(vec![
            pkg(0, "a-1-1.x86_64", &["libmissing.so.1()(64bit)"], &[], &[]),
            pkg(0, "b-1-1.x86_64", &["excluded-pkg"], &[], &[]),
            pkg(0, "excluded-pkg-1-1.x86_64", &[], &[], &[]),
        ]);
        let err = solve(&u, &["a"]).unwrap_err();
        assert!(
            err.to_string()
                .contains("`a-1-1.x86_64` requires `libmissing.so.1()(64bit)`"),
            "{err}"
        );
        let err = solve(&u, &["b"]).unwrap_err();
        assert!(
            err.hint().unwrap().contains("excluded-pkg"),
            "{:?}",
            err.hint()
        );
    }
}
