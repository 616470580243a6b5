//! Installer errors: what failed, where (path, field, host), and what to do.

use std::fmt;
use std::path::PathBuf;

/// One problem found in an inventory, tied to the field it is about.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// Path of the field (`spec.hosts[2].address`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl Problem {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.field, self.message)
    }
}

/// Problems listed one per line under the error line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

/// Installer errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not yet built.
    #[error("{0} is not built yet")]
    NotBuilt(&'static str),

    /// The inventory file cannot be read.
    #[error("cannot read inventory `{path}`")]
    InventoryRead {
        /// The inventory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The inventory is not YAML of the expected shape (syntax, types, unknown fields).
    #[error("inventory `{path}` is not a valid cluster inventory: {detail}")]
    InventoryParse {
        /// The inventory.
        path: PathBuf,
        /// The parser's message, with the field when known.
        detail: String,
    },

    /// The inventory parsed but is not consistent.
    #[error("inventory `{path}` has {} problem{}:{problems}", problems.0.len(), if problems.0.len() == 1 { "" } else { "s" })]
    Inventory {
        /// The inventory.
        path: PathBuf,
        /// Every problem found, each naming its field.
        problems: Problems,
    },

    /// A file the inventory names cannot be read.
    #[error("cannot read `{path}` named by `{field}` in the inventory")]
    InventoryFile {
        /// Field naming the file.
        field: String,
        /// The file, resolved against the inventory's folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// `bundle init` would overwrite a file.
    #[error("`{path}` already exists")]
    InventoryExists {
        /// The file.
        path: PathBuf,
    },

    /// Writing a file failed.
    #[error("cannot write `{path}`")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The bundle failed verification: nothing was planned.
    #[error("bundle `{path}` failed verification; nothing was planned")]
    BundleRejected {
        /// The bundle.
        path: PathBuf,
        /// What the verifier found.
        #[source]
        source: bundle_format::Error,
    },

    /// The trusted public key cannot be used.
    #[error("cannot use public key `{path}`")]
    PublicKey {
        /// The key file.
        path: PathBuf,
        /// Why.
        #[source]
        source: bundle_format::Error,
    },

    /// The bundle lacks something the install needs.
    #[error("bundle `{bundle}` cannot be installed: {what}")]
    BundleLacks {
        /// Bundle name and version.
        bundle: String,
        /// What is missing.
        what: String,
    },

    /// The plan-out folder holds files that are not a plan.
    #[error("plan folder `{path}` is not empty and holds no earlier plan")]
    PlanOutNotEmpty {
        /// The folder.
        path: PathBuf,
    },

    /// `secrets.json` of an earlier plan cannot be used.
    #[error("cannot use the secrets of an earlier plan in `{path}`: {detail}")]
    Secrets {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },

    /// Random bytes for secrets could not be had.
    #[error("cannot generate secrets: no randomness from the operating system")]
    Random(#[source] std::io::Error),

    /// The install is run without `--dry-run`.
    #[error("executing a plan on hosts is not built yet; only `--dry-run --plan-out DIR` is")]
    ExecutionNotBuilt,
}

impl Error {
    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::InventoryParse { .. } => Some(
                "compare with the template from `bundle init`; the JSON Schema is `installer/cluster.schema.json`".into(),
            ),
            Error::Inventory { problems, .. } => {
                if problems.0.iter().any(|p| p.message.contains("--force")) {
                    Some("fix the fields above; a non-HA control plane is accepted with `--force`".into())
                } else {
                    Some("fix the fields above and run the command again".into())
                }
            }
            Error::InventoryExists { .. } => Some("pass `--output` with another file name, or remove the file".into()),
            // The verifier's own error carries the hint.
            Error::BundleLacks { .. } => Some("build a bundle whose manifest carries it (`bundle build`)".into()),
            Error::PlanOutNotEmpty { .. } => Some("pass an empty or new folder to `--plan-out`".into()),
            Error::Secrets { .. } => {
                Some("restore the file from the earlier plan, or remove it to generate new secrets (hosts already installed keep the old ones)".into())
            }
            Error::ExecutionNotBuilt => Some("run with `--dry-run --plan-out DIR` to write the plan".into()),
            _ => None,
        }
    }
}
