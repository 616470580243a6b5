//! Operations the CLI calls: one function per command, taking an options struct.

use std::io::Read;
use std::path::{Path, PathBuf};

use bundle_format::verify::{verify, BoxError, EntrySink, VerifyOptions};
use bundle_format::{sign::PublicKey, BundleIndex, EntryRecord};

use crate::facts::BundleFacts;
use crate::inventory::{resolve_relative, Inventory, TEMPLATE};
use crate::plan::{write_plan_dir, Plan};
use crate::planner::{plan, PlanInputs};
use crate::secrets::Secrets;
use crate::{Error, Problem, Problems};

/// Largest CNI manifest read while verifying (calico's is about 250 KiB).
pub const MAX_CNI_MANIFEST: u64 = 16 * 1024 * 1024;

/// Writes the commented inventory template to `output`; refuses to overwrite.
pub fn init(output: &Path) -> Result<(), Error> {
    use std::io::Write;
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(output)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::InventoryExists {
                path: output.to_path_buf(),
            })
        }
        Err(source) => {
            return Err(Error::Write {
                path: output.to_path_buf(),
                source,
            })
        }
    };
    f.write_all(TEMPLATE.as_bytes())
        .map_err(|source| Error::Write {
            path: output.to_path_buf(),
            source,
        })
}

/// What `bundle install --dry-run` needs.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// The bundle.
    pub bundle: PathBuf,
    /// `cluster.yaml`.
    pub inventory: PathBuf,
    /// The trusted public key.
    pub pubkey: PathBuf,
    /// Folder the plan is written to.
    pub plan_out: PathBuf,
    /// Accept a control plane that is not HA (a warning instead of an error).
    pub force: bool,
}

/// What was planned.
#[derive(Debug)]
pub struct PlanOutcome {
    /// The plan.
    pub plan: Plan,
    /// Validation warnings (accepted with `--force`).
    pub warnings: Vec<Problem>,
    /// Entries verified in the bundle.
    pub entries_verified: usize,
    /// True when `secrets.json` was created (false: an earlier plan's were kept).
    pub secrets_created: bool,
}

/// Captures the CNI manifest's text while the verifier streams the bundle; the text
/// is kept only once its entry's hash matched.
#[derive(Default)]
struct CniCapture {
    entry: Option<String>,
    pending: Option<String>,
    text: Option<String>,
}

impl EntrySink for CniCapture {
    fn index(
        &mut self,
        index: &BundleIndex,
        _: Option<&bundle_format::sign::SignatureInfo>,
    ) -> Result<(), BoxError> {
        self.entry = index
            .cni
            .as_ref()
            .and_then(|c| index.file(&c.manifest))
            .map(|f| f.path.to_string());
        Ok(())
    }

    fn entry(&mut self, record: &EntryRecord, data: &mut dyn Read) -> Result<(), BoxError> {
        if self.entry.as_deref() == Some(record.path.as_str()) {
            if record.size > MAX_CNI_MANIFEST {
                return Err(format!(
                    "the CNI manifest is {} bytes, more than {MAX_CNI_MANIFEST}",
                    record.size
                )
                .into());
            }
            let mut text = String::new();
            data.read_to_string(&mut text)
                .map_err(|e| format!("the CNI manifest is not UTF-8 text: {e}"))?;
            self.pending = Some(text);
        }
        Ok(())
    }

    fn verified(&mut self, record: &EntryRecord) -> Result<(), BoxError> {
        if self.entry.as_deref() == Some(record.path.as_str()) {
            self.text = self.pending.take();
        }
        Ok(())
    }
}

/// Checks the inventory, verifies the bundle (signature and every entry), plans, and
/// writes the plan folder. Nothing is written unless every check passed; an earlier
/// plan's `secrets.json` in the folder is kept.
pub fn plan_install(opts: &PlanOptions) -> Result<PlanOutcome, Error> {
    let (cluster, warnings) = Inventory::load_cluster(&opts.inventory, opts.force)?;
    let registry_ca = match &cluster.registry_ca_file {
        None => None,
        Some(file) => {
            let path = resolve_relative(&opts.inventory, file);
            let field = "spec.registry.caFile".to_string();
            let text = std::fs::read_to_string(&path).map_err(|source| Error::InventoryFile {
                field: field.clone(),
                path: path.clone(),
                source,
            })?;
            if !text.contains("-----BEGIN CERTIFICATE-----") {
                return Err(Error::Inventory {
                    path: opts.inventory.clone(),
                    problems: Problems(vec![Problem::new(
                        field,
                        format!("`{}` holds no PEM certificate", path.display()),
                    )]),
                });
            }
            Some(text)
        }
    };
    check_plan_out(&opts.plan_out)?;

    let key = PublicKey::from_file(&opts.pubkey).map_err(|source| Error::PublicKey {
        path: opts.pubkey.clone(),
        source,
    })?;
    let mut capture = CniCapture::default();
    let report =
        verify(&opts.bundle, &VerifyOptions::signed_by(key), &mut capture).map_err(|source| {
            Error::BundleRejected {
                path: opts.bundle.clone(),
                source,
            }
        })?;
    let facts = BundleFacts::from_index(&report.index, capture.text)?;

    let inputs = PlanInputs {
        registry_ca,
        warnings: warnings.clone(),
    };
    let plan = plan(&cluster, &facts, &inputs).map_err(|problems| Error::Inventory {
        path: opts.inventory.clone(),
        problems: Problems(problems),
    })?;

    std::fs::create_dir_all(&opts.plan_out).map_err(|source| Error::Write {
        path: opts.plan_out.clone(),
        source,
    })?;
    let secrets_path = opts.plan_out.join("secrets.json");
    let secrets_created = !secrets_path.exists();
    Secrets::load_or_create(&secrets_path)?;
    write_plan_dir(&plan, &opts.plan_out)?;
    Ok(PlanOutcome {
        plan,
        warnings,
        entries_verified: report.entries,
        secrets_created,
    })
}

/// The plan folder must be new, empty, or hold an earlier plan.
fn check_plan_out(dir: &Path) -> Result<(), Error> {
    match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Write {
            path: dir.to_path_buf(),
            source,
        }),
        Ok(mut entries) => {
            if entries.next().is_none() || dir.join("plan.json").is_file() {
                Ok(())
            } else {
                Err(Error::PlanOutNotEmpty {
                    path: dir.to_path_buf(),
                })
            }
        }
    }
}
