//! Operations the CLI calls: one function per command, taking an options struct.
//!
//! - [`init`], [`plan_install`]: the inventory template and the dry run.
//! - [`apply::apply`]: the install over SSH; [`reset::reset`]: its undoing;
//!   [`nodes::add`]: a worker joined later. They report through [`report::Reporter`].

pub mod apply;
mod drill;
pub mod nodes;
pub mod report;
pub mod reset;

use std::io::Read;
use std::path::{Path, PathBuf};

use bundle_format::verify::{verify, BoxError, EntryLocation, EntrySink, VerifyOptions};
use bundle_format::{sign::PublicKey, BundleIndex, EntryRecord};

use crate::facts::BundleFacts;
use crate::inventory::{resolve_relative, Inventory, TEMPLATE};
use crate::plan::{plan, PlanInputs};
use crate::plan::{write_plan_dir, Plan};
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
/// is kept only once its entry's hash matched. With `extract`, the entries under
/// `rpms/` are extracted too (each renamed into place once verified).
#[derive(Default)]
struct CniCapture {
    /// Set from the index, before any entry.
    entry: std::sync::OnceLock<Option<String>>,
    /// Entries arrive from several threads: kept behind locks.
    pending: std::sync::Mutex<Option<String>>,
    text: std::sync::Mutex<Option<String>>,
    extract: Option<bundle_format::verify::ExtractSink>,
}

impl CniCapture {
    fn is_cni(&self, record: &EntryRecord) -> bool {
        self.entry.get().and_then(|e| e.as_deref()) == Some(record.path.as_str())
    }
}

const RPMS_PREFIX: &str = "rpms/";

impl EntrySink for CniCapture {
    fn index(
        &self,
        index: &BundleIndex,
        _: Option<&bundle_format::sign::SignatureInfo>,
    ) -> Result<(), BoxError> {
        let entry = index
            .cni
            .as_ref()
            .and_then(|c| index.file(&c.manifest))
            .map(|f| f.path.to_string());
        let _ = self.entry.set(entry);
        Ok(())
    }

    fn entry(&self, record: &EntryRecord, data: &mut dyn Read) -> Result<(), BoxError> {
        if self.is_cni(record) {
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
            *self.pending.lock().expect("not poisoned") = Some(text);
        } else if let Some(x) = self
            .extract
            .as_ref()
            .filter(|_| record.path.as_str().starts_with(RPMS_PREFIX))
        {
            x.entry(record, data)?;
        }
        Ok(())
    }

    fn verified(&self, record: &EntryRecord, at: EntryLocation) -> Result<(), BoxError> {
        if self.is_cni(record) {
            *self.text.lock().expect("not poisoned") =
                self.pending.lock().expect("not poisoned").take();
        } else if let Some(x) = self
            .extract
            .as_ref()
            .filter(|_| record.path.as_str().starts_with(RPMS_PREFIX))
        {
            x.verified(record, at)?;
        }
        Ok(())
    }
}

/// Checks the inventory, verifies the bundle (signature and every entry), plans, and
/// writes the plan folder. Nothing is written unless every check passed; an earlier
/// plan's `secrets.json` in the folder is kept.
pub fn plan_install(opts: &PlanOptions) -> Result<PlanOutcome, Error> {
    check_plan_out(&opts.plan_out)?;
    let prepared = prepare(
        &opts.inventory,
        &opts.bundle,
        &opts.pubkey,
        opts.force,
        None,
    )?;
    let plan = prepared.plan;
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
        warnings: prepared.warnings,
        entries_verified: prepared.entries_verified,
        secrets_created,
    })
}

/// A checked inventory, a verified bundle and the plan made from them.
pub(crate) struct Prepared {
    pub inventory: Inventory,
    pub cluster: crate::Cluster,
    pub plan: Plan,
    pub warnings: Vec<Problem>,
    pub entries_verified: usize,
}

/// Loads and checks the inventory, verifies the bundle (extracting its `rpms/` under
/// `extract_to` when given) and plans.
pub(crate) fn prepare(
    inventory_path: &Path,
    bundle: &Path,
    pubkey: &Path,
    force: bool,
    extract_to: Option<&Path>,
) -> Result<Prepared, Error> {
    let opts = PlanOptionsRef {
        inventory: inventory_path,
        bundle,
        pubkey,
    };
    let inventory = Inventory::load(opts.inventory)?;
    let (cluster, warnings) = inventory
        .validate(force)
        .map_err(|problems| Error::Inventory {
            path: opts.inventory.to_path_buf(),
            problems: Problems(problems),
        })?;
    let registry_ca = match &cluster.registry_ca_file {
        None => None,
        Some(file) => {
            let path = resolve_relative(opts.inventory, file);
            let field = "spec.registry.caFile".to_string();
            let text = std::fs::read_to_string(&path).map_err(|source| Error::InventoryFile {
                field: field.clone(),
                path: path.clone(),
                source,
            })?;
            if !text.contains("-----BEGIN CERTIFICATE-----") {
                return Err(Error::Inventory {
                    path: opts.inventory.to_path_buf(),
                    problems: Problems(vec![Problem::new(
                        field,
                        format!("`{}` holds no PEM certificate", path.display()),
                    )]),
                });
            }
            Some(text)
        }
    };
    let key = PublicKey::from_file(opts.pubkey).map_err(|source| Error::PublicKey {
        path: opts.pubkey.to_path_buf(),
        source,
    })?;
    let capture = CniCapture {
        extract: extract_to.map(bundle_format::verify::ExtractSink::new),
        ..CniCapture::default()
    };
    let report =
        verify(opts.bundle, &VerifyOptions::signed_by(key), &capture).map_err(|source| {
            Error::BundleRejected {
                path: opts.bundle.to_path_buf(),
                source,
            }
        })?;
    let facts = BundleFacts::from_index(
        &report.index,
        capture.text.into_inner().expect("not poisoned"),
    )?;

    let inputs = PlanInputs {
        registry_ca,
        warnings: warnings.clone(),
    };
    let plan = plan(&cluster, &facts, &inputs).map_err(|problems| Error::Inventory {
        path: opts.inventory.to_path_buf(),
        problems: Problems(problems),
    })?;
    Ok(Prepared {
        inventory,
        cluster,
        plan,
        warnings,
        entries_verified: report.entries,
    })
}

struct PlanOptionsRef<'a> {
    inventory: &'a Path,
    bundle: &'a Path,
    pubkey: &'a Path,
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
