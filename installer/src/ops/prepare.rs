//! The start every operation that reads a bundle shares: the inventory loaded and
//! checked, the bundle verified (its CNI manifest kept, its yum repositories extracted
//! when asked), and the plan made from them.

use std::io::Read;
use std::path::{Path, PathBuf};

use bundle_format::verify::{verify, BoxError, EntryLocation, EntrySink, VerifyOptions};
use bundle_format::{sign::PublicKey, BundleIndex, EntryRecord};

use crate::facts::BundleFacts;
use crate::inventory::{resolve_relative, Inventory};
use crate::plan::{plan, Plan, PlanInputs};
use crate::{Error, Problem, Problems};

/// Largest CNI manifest read while verifying (calico's is about 250 KiB).
pub const MAX_CNI_MANIFEST: u64 = 16 * 1024 * 1024;

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
        } else if let Some(x) = self.extract.as_ref().filter(|_| {
            record
                .path
                .as_str()
                .starts_with(bundle_format::layout::RPMS)
        }) {
            x.entry(record, data)?;
        }
        Ok(())
    }

    fn verified(&self, record: &EntryRecord, at: EntryLocation) -> Result<(), BoxError> {
        if self.is_cni(record) {
            *self.text.lock().expect("not poisoned") =
                self.pending.lock().expect("not poisoned").take();
        } else if let Some(x) = self.extract.as_ref().filter(|_| {
            record
                .path
                .as_str()
                .starts_with(bundle_format::layout::RPMS)
        }) {
            x.verified(record, at)?;
        }
        Ok(())
    }
}

/// A checked inventory, a verified bundle and the plan made from them.
pub(crate) struct Prepared {
    pub inventory: Inventory,
    /// Its file (relative paths in it are read from its folder).
    pub inventory_path: PathBuf,
    pub cluster: crate::Cluster,
    pub plan: Plan,
    /// What the bundle holds, for plans other than the install's.
    pub facts: BundleFacts,
    /// What planning took besides the cluster and the bundle.
    pub inputs: PlanInputs,
    /// The release an install from this bundle records.
    pub release: crate::release::Release,
    pub warnings: Vec<Problem>,
    pub entries_verified: usize,
}

/// The files an operation starts from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sources<'a> {
    pub inventory: &'a Path,
    pub bundle: &'a Path,
    pub pubkey: &'a Path,
    /// Accept a control plane that is not HA.
    pub force: bool,
}

/// Loads and checks the inventory, verifies the bundle (extracting its `rpms/` under
/// `extract_to` when given) and plans.
pub(crate) fn prepare(src: Sources<'_>, extract_to: Option<&Path>) -> Result<Prepared, Error> {
    let inventory = Inventory::load(src.inventory)?;
    let inventory_problems = |problems| Error::Inventory {
        path: src.inventory.to_path_buf(),
        problems: Problems(problems),
    };
    let (cluster, warnings) = inventory.validate(src.force).map_err(inventory_problems)?;
    let registry_ca = pem_file(
        src.inventory,
        "caFile",
        cluster.registry_ca_file.as_deref(),
        "CERTIFICATE",
    )?;
    let client_cert = cluster
        .registry_client_files
        .as_ref()
        .map(|(c, _)| c.as_str());
    let registry_client_cert =
        pem_file(src.inventory, "clientCertFile", client_cert, "CERTIFICATE")?;
    let (facts, entries_verified) = verify_bundle(src, extract_to)?;
    let inputs = PlanInputs {
        registry_ca,
        registry_client_cert,
        warnings: warnings.clone(),
    };
    let plan = plan(&cluster, &facts, &inputs).map_err(inventory_problems)?;
    Ok(Prepared {
        inventory,
        inventory_path: src.inventory.to_path_buf(),
        cluster,
        plan,
        release: facts.release.clone(),
        facts,
        inputs,
        warnings,
        entries_verified,
    })
}

/// The text of `spec.registry.FIELD` (`file`, relative to the inventory), which must
/// hold a PEM block of `kind` (`CERTIFICATE`, `PRIVATE KEY`: any `… PRIVATE KEY`).
pub(crate) fn pem_file(
    inventory: &Path,
    field: &str,
    file: Option<&str>,
    kind: &str,
) -> Result<Option<String>, Error> {
    let Some(file) = file else {
        return Ok(None);
    };
    let path = resolve_relative(inventory, file);
    let field = format!("spec.registry.{field}");
    let text = std::fs::read_to_string(&path).map_err(|source| Error::InventoryFile {
        field: field.clone(),
        path: path.clone(),
        source,
    })?;
    let found = text
        .lines()
        .any(|l| l.starts_with("-----BEGIN ") && l.trim_end().ends_with(&format!("{kind}-----")));
    if !found {
        return Err(Error::Inventory {
            path: inventory.to_path_buf(),
            problems: Problems(vec![Problem::new(
                field,
                format!("`{}` holds no PEM {}", path.display(), kind.to_lowercase()),
            )]),
        });
    }
    Ok(Some(text))
}

/// Verifies the bundle against the key; returns what planning needs to know of it and
/// the number of entries verified.
fn verify_bundle(
    src: Sources<'_>,
    extract_to: Option<&Path>,
) -> Result<(BundleFacts, usize), Error> {
    let key = PublicKey::from_file(src.pubkey).map_err(|source| Error::PublicKey {
        path: src.pubkey.to_path_buf(),
        source,
    })?;
    let capture = CniCapture {
        extract: extract_to.map(bundle_format::verify::ExtractSink::new),
        ..CniCapture::default()
    };
    let report =
        verify(src.bundle, &VerifyOptions::signed_by(key), &capture).map_err(|source| {
            Error::BundleRejected {
                path: src.bundle.to_path_buf(),
                source,
            }
        })?;
    let facts =
        BundleFacts::from_verified(&report, capture.text.into_inner().expect("not poisoned"))?;
    Ok((facts, report.entries))
}
