//! `bundle init` (the inventory template) and `bundle install --dry-run` (the plan
//! written to a folder, nothing done on any host).

use std::path::{Path, PathBuf};

use super::prepare::{prepare, Sources};
use crate::inventory::TEMPLATE;
use crate::plan::{write_plan_dir, Plan};
use crate::secrets::Secrets;
use crate::{Error, Problem};

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

/// Checks the inventory, verifies the bundle (signature and every entry), plans, and
/// writes the plan folder. Nothing is written unless every check passed; an earlier
/// plan's `secrets.json` in the folder is kept.
pub fn plan_install(opts: &PlanOptions) -> Result<PlanOutcome, Error> {
    check_plan_out(&opts.plan_out)?;
    let prepared = prepare(
        Sources {
            inventory: &opts.inventory,
            bundle: &opts.bundle,
            pubkey: &opts.pubkey,
            force: opts.force,
        },
        None,
    )?;
    let plan = prepared.plan;
    std::fs::create_dir_all(&opts.plan_out).map_err(|source| Error::Write {
        path: opts.plan_out.clone(),
        source,
    })?;
    let secrets_path = opts.plan_out.join("secrets.json");
    let secrets_created = !secrets_path.exists();
    Secrets::load_for_plan(&secrets_path, &plan)?;
    write_plan_dir(&plan, &opts.plan_out)?;
    Ok(PlanOutcome {
        plan,
        warnings: prepared.warnings,
        entries_verified: prepared.entries_verified,
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
