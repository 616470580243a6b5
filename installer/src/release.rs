//! What is installed: the release a cluster runs, recorded by `bundle install` in the
//! state folder, on every host (`/etc/bundle/release.json`) and in the cluster (the
//! ConfigMap `bundle-release` in `kube-system`). Every later operation (upgrade,
//! backup, nodes, certs) reads it: an upgrade compares the new bundle with it.
//!
//! The record holds no time, so the plan that writes it stays deterministic; the state
//! folder's copy is written once the install finished.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;

/// Where every host keeps the record.
pub const HOST_PATH: &str = "/etc/bundle/release.json";
/// The ConfigMap manifest the first master applies.
pub const CONFIGMAP_PATH: &str = "/etc/bundle/release-configmap.yaml";
/// The ConfigMap's name (in `kube-system`).
pub const CONFIGMAP: &str = "bundle-release";
/// The record's file in the state folder.
pub const STATE_FILE: &str = "release.json";

/// The bundle a cluster was installed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Release {
    /// The bundle's name (`k8s-v1.29.2-calico`).
    pub bundle: String,
    /// The bundle's version.
    pub version: String,
    /// Kubernetes version (`v1.29.2`).
    pub kubernetes_version: String,
    /// SHA-256 of the bundle's signed index: which bundle, exactly.
    pub index_sha256: String,
    /// The minisign key that signed it (`None`: installed unsigned).
    pub key_id: Option<String>,
}

impl Release {
    /// The record as written everywhere: pretty JSON, trailing newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a release serializes");
        s.push('\n');
        s
    }

    /// The ConfigMap holding the record under the key `release.json`.
    pub fn configmap(&self) -> String {
        let mut s = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {CONFIGMAP}\n  namespace: kube-system\n  labels:\n    app.kubernetes.io/managed-by: bundle\ndata:\n  release.json: |\n"
        );
        for line in self.to_json().lines() {
            s.push_str("    ");
            s.push_str(line);
            s.push('\n');
        }
        s
    }

    /// The record in the state folder `state`, if an install finished there.
    pub fn read(state: &Path) -> Result<Option<Release>, Error> {
        crate::state::read_record(&state.join(STATE_FILE))
    }

    /// Writes the record into the state folder `state` (atomically).
    pub fn write(&self, state: &Path) -> Result<PathBuf, Error> {
        let path = state.join(STATE_FILE);
        let tmp = state.join(format!("{STATE_FILE}.tmp"));
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::State { path, source }
        };
        std::fs::write(&tmp, self.to_json()).map_err(err(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(err(&path))?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release() -> Release {
        Release {
            bundle: "k8s-v1.29.2".into(),
            version: "2026.12.1".into(),
            kubernetes_version: "v1.29.2".into(),
            index_sha256: "ab".repeat(32),
            key_id: Some("4E2F6D0B3C1A9F87".into()),
        }
    }

    #[test]
    fn the_configmap_carries_the_record_as_written_on_hosts() {
        let r = release();
        let cm = r.configmap();
        let doc: serde_json::Value = serde_saphyr::from_str(&cm).unwrap();
        assert_eq!(doc["metadata"]["name"], CONFIGMAP);
        assert_eq!(doc["metadata"]["namespace"], "kube-system");
        assert_eq!(doc["data"]["release.json"].as_str().unwrap(), r.to_json());
    }

    #[test]
    fn the_state_record_round_trips_and_a_damaged_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Release::read(dir.path()).unwrap(), None);
        release().write(dir.path()).unwrap();
        assert_eq!(Release::read(dir.path()).unwrap(), Some(release()));
        std::fs::write(dir.path().join(STATE_FILE), "{").unwrap();
        let err = Release::read(dir.path()).unwrap_err();
        assert!(
            err.to_string().starts_with("the state file `")
                && err.to_string().ends_with("release.json` is damaged"),
            "{err}"
        );
    }
}
