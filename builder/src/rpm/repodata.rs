//! The bundle's own yum repo metadata (`rpms/<target>/repodata/`): primary, filelists,
//! other (gzip) and repomd, written by rpmrepo_metadata from each package's header — the
//! same layout `createrepo_c` writes, read by dnf as it is — and, when the packages come
//! from EL8 module streams, `modules.yaml.gz` with a `modules` record, as `modifyrepo_c
//! --mdtype=modules` adds it (rpmrepo_metadata writes no modules itself).
//!
//! The output is reproducible: packages are written sorted by NEVRA, file times are the
//! packages' build times, and repomd's timestamps and revision are the newest build time
//! instead of the clock.

use std::path::{Path, PathBuf};

use std::io::Write;

use rpmrepo_metadata::{
    ChecksumType, CompressionType, MetadataError, Package, RepomdData, RepomdRecord, RepomdXml,
    RepositoryOptions, RepositoryWriter,
};

/// Writes `<dir>/repodata/` for `packages` (and `modules_yaml`) and returns the files
/// written (repomd last).
pub(crate) fn write(
    dir: &Path,
    mut packages: Vec<Package>,
    modules_yaml: Option<&str>,
) -> Result<Vec<PathBuf>, MetadataError> {
    let repodata = dir.join("repodata");
    if repodata.exists() {
        std::fs::remove_dir_all(&repodata)?;
    }
    packages.sort_by_key(|p| p.nevra());
    let newest = packages.iter().map(|p| p.time_build()).max().unwrap_or(0);

    let options = RepositoryOptions::default()
        .checksum_type(ChecksumType::Sha256)
        .compression_type(CompressionType::Gzip);
    let mut writer = RepositoryWriter::new_with_options(dir, packages.len(), options)?;
    for p in &packages {
        writer.add_package(p)?;
    }
    writer.finish()?;

    // Replace the clock-derived parts of repomd.xml.
    let repomd_path = repodata.join("repomd.xml");
    let old = RepomdXml::read_data(rpmrepo_metadata::utils::xml_reader_from_file(&repomd_path)?)?;
    let mut new = RepomdData::default();
    new.set_revision(&newest.to_string());
    let mut records = old.records().to_vec();
    if let Some(yaml) = modules_yaml {
        records.push(write_modules(dir, yaml)?);
    }
    let mut files = Vec::new();
    for r in &records {
        let mut r = r.clone();
        r.timestamp = newest as i64;
        files.push(dir.join(&r.location_href));
        new.add_record(r);
    }
    {
        let (_, mut w) =
            rpmrepo_metadata::utils::xml_writer_for_path(&repomd_path, CompressionType::None)?;
        RepomdXml::write_data(&new, &mut w)?;
    }
    files.push(repomd_path);
    Ok(files)
}

/// Writes `repodata/modules.yaml.gz` (no time in the gzip header) and returns its repomd
/// record: checksum, open-checksum, size and open-size, as modifyrepo_c gives them.
fn write_modules(dir: &Path, yaml: &str) -> Result<RepomdRecord, MetadataError> {
    let href = Path::new("repodata").join("modules.yaml");
    let (written, mut w) =
        rpmrepo_metadata::utils::writer_to_file(&dir.join(&href), CompressionType::Gzip)?;
    w.write_all(yaml.as_bytes())?;
    w.flush()?;
    drop(w);
    let href = written.strip_prefix(dir).unwrap_or(&written).to_path_buf();
    RepomdRecord::new("modules", &href, dir, ChecksumType::Sha256)
}
