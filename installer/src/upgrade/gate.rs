//! Which bundles may follow the installed release: the rules `bundle upgrade` checks
//! before it touches anything. A pure function of the two release records, so every
//! rule is tested here.
//!
//! - The same bundle again (same signed index): nothing to do.
//! - An older or equal release is refused: a replayed older bundle, properly signed,
//!   is how a rollback attack looks. `--allow-downgrade` lets a patch release go back
//!   within its minor, never across one.
//! - Kubernetes moves one minor at a time (kubeadm supports no more): 1.29 → 1.31 is
//!   refused with the minor to go through first.
//! - The bundle must be signed by the key that signed the installed one, unless the
//!   operator names the new key (a key rotation is a decision, not an accident).

use std::cmp::Ordering;

use crate::release::Release;

/// What the operator allowed.
#[derive(Debug, Clone, Default)]
pub struct GateOptions {
    /// Go back to an earlier patch release of the same minor.
    pub allow_downgrade: bool,
    /// The key the new bundle is signed with, when the operator accepts that it
    /// differs from the installed release's (its key ID).
    pub new_key: Option<String>,
}

/// What kind of change an accepted bundle makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// To the next minor (`v1.29.x` → `v1.30.y`).
    Minor,
    /// To a later patch of the same minor.
    Patch,
    /// The same Kubernetes version, a later bundle (packages, images, CNI).
    Rebuild,
    /// Back to an earlier patch, allowed with `--allow-downgrade`.
    PatchDowngrade,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Change::Minor => "the next minor",
            Change::Patch => "a later patch",
            Change::Rebuild => "a newer bundle of the same Kubernetes",
            Change::PatchDowngrade => "an earlier patch (--allow-downgrade)",
        })
    }
}

/// Why a bundle may not follow the installed release.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The cluster runs this very bundle.
    #[error("the cluster already runs this bundle (`{bundle} {version}`)")]
    AlreadyInstalled {
        /// Bundle name.
        bundle: String,
        /// Its version.
        version: String,
    },
    /// Older than, or as old as, what is installed.
    #[error("`{new}` is not newer than the installed `{installed}`")]
    NotNewer {
        /// The installed release (`bundle version, Kubernetes`).
        installed: String,
        /// The offered one.
        new: String,
        /// Only a patch back within the minor, which `--allow-downgrade` allows.
        patch_only: bool,
    },
    /// More than one minor ahead.
    #[error("Kubernetes {installed} cannot be upgraded to {new} in one step: kubeadm upgrades one minor at a time")]
    SkipsMinor {
        /// Installed Kubernetes version.
        installed: String,
        /// Offered Kubernetes version.
        new: String,
        /// The minor to go through first (`v1.30`).
        next: String,
    },
    /// Across a major, or versions that cannot be read.
    #[error("Kubernetes {installed} cannot be upgraded to {new}")]
    Unsupported {
        /// Installed Kubernetes version.
        installed: String,
        /// Offered Kubernetes version.
        new: String,
    },
    /// Signed by another key than the installed release.
    #[error("the bundle is signed by key {new} but the cluster was installed from a bundle signed by key {installed}")]
    ForeignKey {
        /// The installed release's key ID (`unsigned` when none).
        installed: String,
        /// The new bundle's.
        new: String,
    },
}

impl bundle_format::Hint for Refusal {
    fn hint(&self) -> Option<String> {
        Some(match self {
            Refusal::AlreadyInstalled { .. } => "nothing to do; `bundle install` with the same bundle repairs hosts that drifted".into(),
            Refusal::NotNewer { patch_only: true, .. } => "to go back to an earlier patch release on purpose, pass `--allow-downgrade`; a bundle you did not expect may be a replayed old one".into(),
            Refusal::NotNewer { patch_only: false, .. } => "build or fetch a newer bundle; going back across a minor is not supported by kubeadm (restore an etcd backup instead)".into(),
            Refusal::SkipsMinor { next, .. } => format!("upgrade to {next} first with a {next} bundle, then to this one"),
            Refusal::Unsupported { .. } => "use a bundle of the next minor release".into(),
            Refusal::ForeignKey { new, .. } => format!("if the signing key was rotated on purpose, pass `--new-key {new}`; otherwise do not use this bundle"),
        })
    }
}

/// Whether `new` may follow `installed`, and as what kind of change.
pub fn check(installed: &Release, new: &Release, opts: &GateOptions) -> Result<Change, Refusal> {
    if new.index_sha256 == installed.index_sha256 {
        return Err(Refusal::AlreadyInstalled {
            bundle: new.bundle.clone(),
            version: new.version.clone(),
        });
    }
    check_key(installed, new, opts)?;
    let unsupported = || Refusal::Unsupported {
        installed: installed.kubernetes_version.clone(),
        new: new.kubernetes_version.clone(),
    };
    let (from, to) = match (
        KubeVersion::parse(&installed.kubernetes_version),
        KubeVersion::parse(&new.kubernetes_version),
    ) {
        (Some(f), Some(t)) if f.major == t.major => (f, t),
        _ => return Err(unsupported()),
    };
    let not_newer = |patch_only| Refusal::NotNewer {
        installed: describe(installed),
        new: describe(new),
        patch_only,
    };
    match to.minor.cmp(&from.minor) {
        Ordering::Greater if to.minor == from.minor + 1 => Ok(Change::Minor),
        Ordering::Greater => Err(Refusal::SkipsMinor {
            installed: installed.kubernetes_version.clone(),
            new: new.kubernetes_version.clone(),
            next: format!("v{}.{}", from.major, from.minor + 1),
        }),
        Ordering::Less => Err(not_newer(false)),
        Ordering::Equal => match to.patch.cmp(&from.patch) {
            Ordering::Greater => Ok(Change::Patch),
            Ordering::Less if opts.allow_downgrade => Ok(Change::PatchDowngrade),
            Ordering::Less => Err(not_newer(true)),
            Ordering::Equal => match compare_versions(&new.version, &installed.version) {
                Ordering::Greater => Ok(Change::Rebuild),
                _ => Err(not_newer(false)),
            },
        },
    }
}

fn check_key(installed: &Release, new: &Release, opts: &GateOptions) -> Result<(), Refusal> {
    if new.key_id == installed.key_id {
        return Ok(());
    }
    let new_key = new.key_id.clone().unwrap_or_else(|| "unsigned".into());
    if opts.new_key.as_deref() == Some(new_key.as_str()) && new.key_id.is_some() {
        return Ok(());
    }
    Err(Refusal::ForeignKey {
        installed: installed
            .key_id
            .clone()
            .unwrap_or_else(|| "unsigned".into()),
        new: new_key,
    })
}

fn describe(r: &Release) -> String {
    format!(
        "{} {} (Kubernetes {})",
        r.bundle, r.version, r.kubernetes_version
    )
}

/// `v1.29.2` (a pre-release suffix such as `-rc.1` is ignored for ordering).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KubeVersion {
    major: u64,
    minor: u64,
    patch: u64,
}

impl KubeVersion {
    fn parse(s: &str) -> Option<Self> {
        let core = s.strip_prefix('v').unwrap_or(s);
        let core = core.split(['-', '+']).next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
        let v = KubeVersion {
            major: parts.next()??,
            minor: parts.next()??,
            patch: parts.next().unwrap_or(Some(0))?,
        };
        parts.next().is_none().then_some(v)
    }
}

/// Bundle versions compared segment by segment: digits as numbers, the rest as text
/// (`1.29.2-10` after `1.29.2-9`).
fn compare_versions(a: &str, b: &str) -> Ordering {
    let segments = |s: &str| -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut last_digit = None;
        for c in s.chars() {
            if !c.is_ascii_alphanumeric() {
                last_digit = None;
                continue;
            }
            let digit = c.is_ascii_digit();
            match out.last_mut() {
                Some(seg) if last_digit == Some(digit) => seg.push(c),
                _ => out.push(c.to_string()),
            }
            last_digit = Some(digit);
        }
        out
    };
    let (sa, sb) = (segments(a), segments(b));
    for (x, y) in sa.iter().zip(&sb) {
        let ord = match (x.parse::<u128>(), y.parse::<u128>()) {
            (Ok(m), Ok(n)) => m.cmp(&n),
            (Ok(_), Err(_)) => Ordering::Greater,
            (Err(_), Ok(_)) => Ordering::Less,
            (Err(_), Err(_)) => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    sa.len().cmp(&sb.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bundle_format::Hint;

    const KEY: &str = "4E2F6D0B3C1A9F87";

    fn release(k8s: &str, version: &str) -> Release {
        Release {
            bundle: "kubernetes-calico".into(),
            version: version.into(),
            kubernetes_version: k8s.into(),
            index_sha256: format!("{k8s}/{version}"),
            key_id: Some(KEY.into()),
        }
    }

    fn gate(from: &Release, to: &Release) -> Result<Change, Refusal> {
        check(from, to, &GateOptions::default())
    }

    #[test]
    fn the_next_patch_minor_and_rebuild_are_accepted() {
        let installed = release("v1.29.2", "1.29.2-1");
        assert_eq!(
            gate(&installed, &release("v1.29.5", "1.29.5-1")),
            Ok(Change::Patch)
        );
        assert_eq!(
            gate(&installed, &release("v1.30.0", "1.30.0-1")),
            Ok(Change::Minor)
        );
        assert_eq!(
            gate(&installed, &release("v1.30.14", "1.30.14-3")),
            Ok(Change::Minor)
        );
        assert_eq!(
            gate(&installed, &release("v1.29.2", "1.29.2-2")),
            Ok(Change::Rebuild)
        );
        assert_eq!(
            gate(&installed, &release("v1.29.2", "1.29.2-10")),
            Ok(Change::Rebuild)
        );
    }

    #[test]
    fn the_same_bundle_is_nothing_to_do() {
        let installed = release("v1.29.2", "1.29.2-1");
        let err = gate(&installed, &installed.clone()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the cluster already runs this bundle (`kubernetes-calico 1.29.2-1`)"
        );
    }

    #[test]
    fn a_replayed_older_bundle_is_refused() {
        let installed = release("v1.29.5", "1.29.5-2");
        // An older patch: refused, but --allow-downgrade may take it.
        let err = gate(&installed, &release("v1.29.2", "1.29.2-1")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`kubernetes-calico 1.29.2-1 (Kubernetes v1.29.2)` is not newer than the installed `kubernetes-calico 1.29.5-2 (Kubernetes v1.29.5)`"
        );
        assert!(
            err.hint().unwrap().contains("--allow-downgrade"),
            "{}",
            err.hint().unwrap()
        );
        let allowed = GateOptions {
            allow_downgrade: true,
            ..GateOptions::default()
        };
        assert_eq!(
            check(&installed, &release("v1.29.2", "1.29.2-1"), &allowed),
            Ok(Change::PatchDowngrade)
        );
        // An older build of the same Kubernetes: refused, even with --allow-downgrade.
        for opts in [GateOptions::default(), allowed.clone()] {
            let err = check(&installed, &release("v1.29.5", "1.29.5-1"), &opts).unwrap_err();
            assert!(
                matches!(
                    err,
                    Refusal::NotNewer {
                        patch_only: false,
                        ..
                    }
                ),
                "{err:?}"
            );
        }
        // Across a minor: never.
        let err = check(&installed, &release("v1.28.9", "1.28.9-1"), &allowed).unwrap_err();
        assert!(
            matches!(
                err,
                Refusal::NotNewer {
                    patch_only: false,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            !err.hint().unwrap().contains("--allow-downgrade"),
            "{}",
            err.hint().unwrap()
        );
    }

    #[test]
    fn a_skipped_minor_names_the_one_to_go_through() {
        let err = gate(&release("v1.29.2", "1"), &release("v1.31.0", "1")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Kubernetes v1.29.2 cannot be upgraded to v1.31.0 in one step: kubeadm upgrades one minor at a time"
        );
        assert_eq!(
            err.hint().unwrap(),
            "upgrade to v1.30 first with a v1.30 bundle, then to this one"
        );
    }

    #[test]
    fn another_key_is_refused_unless_named() {
        let installed = release("v1.29.2", "1");
        let mut new = release("v1.29.3", "1");
        new.key_id = Some("0123456789ABCDEF".into());
        let err = gate(&installed, &new).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the bundle is signed by key 0123456789ABCDEF but the cluster was installed from a bundle signed by key 4E2F6D0B3C1A9F87"
        );
        assert_eq!(
            err.hint().unwrap(),
            "if the signing key was rotated on purpose, pass `--new-key 0123456789ABCDEF`; otherwise do not use this bundle"
        );
        let named = GateOptions {
            new_key: Some("0123456789ABCDEF".into()),
            ..GateOptions::default()
        };
        assert_eq!(check(&installed, &new, &named), Ok(Change::Patch));
        // Naming some other key does not help; an unsigned bundle is never "named".
        let other = GateOptions {
            new_key: Some("FFFFFFFFFFFFFFFF".into()),
            ..GateOptions::default()
        };
        assert!(check(&installed, &new, &other).is_err());
        new.key_id = None;
        let unsigned = GateOptions {
            new_key: Some("unsigned".into()),
            ..GateOptions::default()
        };
        assert!(matches!(
            check(&installed, &new, &unsigned),
            Err(Refusal::ForeignKey { .. })
        ));
    }

    #[test]
    fn versions_that_cannot_be_read_or_cross_a_major_are_unsupported() {
        let installed = release("v1.29.2", "1");
        for v in ["v2.0.0", "latest", "v1", "v1.30.0.1"] {
            assert!(
                matches!(
                    gate(&installed, &release(v, "2")),
                    Err(Refusal::Unsupported { .. })
                ),
                "{v}"
            );
        }
        assert_eq!(
            gate(&installed, &release("v1.30.0-rc.1", "2")),
            Ok(Change::Minor)
        );
    }

    #[test]
    fn bundle_versions_compare_by_number_then_text() {
        assert_eq!(compare_versions("1.29.2-10", "1.29.2-9"), Ordering::Greater);
        assert_eq!(compare_versions("1.29.2", "1.29.2-1"), Ordering::Less);
        assert_eq!(compare_versions("2026.12.1", "2026.12.01"), Ordering::Equal);
        assert_eq!(compare_versions("1.0b", "1.0a"), Ordering::Greater);
    }
}
