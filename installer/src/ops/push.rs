//! The images of an install (or a node added later) pushed to the site's registry,
//! and the check that nodes can pull them the way they will.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use bundle_registry::push::{
    check_pull, plan as push_plan, push, Connection, NoReport, PushOptions, PushPlan,
};

use crate::inventory::{resolve_relative, Cluster};
use crate::report::{Event, Reporter};
use crate::Error;

/// What [`push_images`] needs.
pub(crate) struct ImagePush<'a> {
    pub bundle: &'a Path,
    pub pubkey: &'a Path,
    /// The inventory file (`spec.registry.caFile` is relative to its folder).
    pub inventory: &'a Path,
    pub cluster: &'a Cluster,
    /// The nodes' pull password, when they pull with an account.
    pub pull_password: Option<&'a str>,
    /// The images went in another way: only check the nodes can pull.
    pub skip_push: bool,
}

/// Pushes the bundle's images to the registry before any host needs them, with
/// `bundle push`'s code and the inventory's mapping (`spec.registry.map`); the
/// registry's CA is `spec.registry.caFile`, credentials as `bundle push` finds them
/// (`BUNDLE_REGISTRY_USERNAME`/`_PASSWORD`, docker config). Missing Harbor projects
/// are created public when nodes pull anonymously. Then (also with `--skip-push`)
/// checks that the nodes will be able to pull: one image of every project, with the
/// nodes' credentials or none.
pub(crate) async fn push_images(job: &ImagePush<'_>, reporter: &dyn Reporter) -> Result<(), Error> {
    let cluster = job.cluster;
    let err = |source: bundle_registry::Error| Error::Push {
        registry: cluster.registry_host.clone(),
        source: Box::new(source),
    };
    let key = bundle_format::sign::PublicKey::from_file(job.pubkey).map_err(|source| {
        Error::PublicKey {
            path: job.pubkey.to_path_buf(),
            source,
        }
    })?;
    let plan = {
        let (b, k, m) = (
            job.bundle.to_path_buf(),
            key.clone(),
            cluster.mapping.clone(),
        );
        tokio::task::spawn_blocking(move || push_plan(&b, Some(&k), false, &m))
            .await
            .expect("push planning does not panic")
            .map_err(err)?
    };
    let ca_files: Vec<PathBuf> = cluster
        .registry_ca_file
        .iter()
        .map(|f| resolve_relative(job.inventory, f))
        .collect();
    let identity = client_identity(job.inventory, cluster)?;
    let cert_dir = identity.as_ref().map(|d| d.path().to_path_buf());
    let node = node_connection(
        cluster,
        ca_files.clone(),
        cert_dir.clone(),
        job.pull_password,
    );
    if job.skip_push {
        reporter.event(&Event::Note {
            message: "images not pushed (`--skip-push`)".into(),
        });
        // The images may have gone in another way, from a machine that can reach the
        // registry when this one cannot: a warning, not a stop.
        if let Err(e) = check_node_pulls(&node, &plan, cluster, reporter).await {
            let chain = std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source());
            reporter.event(&Event::Warning {
                host: None,
                message: chain.map(|e| e.to_string()).collect::<Vec<_>>().join(": "),
            });
        }
        return Ok(());
    }
    let (credentials, _) =
        bundle_registry::credentials::resolve(&cluster.registry_host, None, None).map_err(err)?;
    reporter.event(&Event::Note {
        message: format!(
            "pushing {} images to `{}`",
            plan.images.len(),
            cluster.registry_host
        ),
    });
    let options = PushOptions {
        connection: connection(cluster, ca_files, cert_dir, credentials),
        key: Some(key),
        public_projects: cluster.registry_pull_username.is_none(),
        ..PushOptions::default()
    };
    let summary = push(job.bundle, &plan, &options, &NoReport)
        .await
        .map_err(err)?;
    reporter.event(&Event::Note {
        message: format!(
            "pushed {} images to `{}` ({} blobs sent, {} already there)",
            summary.images.len(),
            summary.registry,
            summary.blobs_pushed,
            summary.blobs_skipped
        ),
    });
    check_node_pulls(&node, &plan, cluster, reporter).await
}

/// The registry as the nodes reach it: their account, or anonymously.
fn node_connection(
    cluster: &Cluster,
    ca_files: Vec<PathBuf>,
    cert_dir: Option<PathBuf>,
    pull_password: Option<&str>,
) -> Connection {
    let credentials = cluster
        .registry_pull_username
        .clone()
        .zip(pull_password)
        .map(|(username, password)| bundle_registry::Credentials {
            username,
            password: password.to_string(),
        });
    connection(cluster, ca_files, cert_dir, credentials)
}

/// The registry as the inventory describes it (scheme, CA, client certificate in
/// `cert_dir`), with `credentials`.
fn connection(
    cluster: &Cluster,
    ca_files: Vec<PathBuf>,
    cert_dir: Option<PathBuf>,
    credentials: Option<bundle_registry::Credentials>,
) -> Connection {
    Connection {
        host: cluster.registry_host.clone(),
        plain_http: cluster.registry_plain_http,
        ca_files,
        cert_dir,
        credentials,
        // The site's proxies as reqwest reads them from the environment.
        proxy: None,
    }
}

/// `spec.registry.clientCertFile` and `clientKeyFile` as the push's TLS reads a client
/// identity (`client.cert` and `client.key` in a certificate folder, the docker
/// convention), copied into a private temporary folder removed when dropped.
fn client_identity(
    inventory: &Path,
    cluster: &Cluster,
) -> Result<Option<tempfile::TempDir>, Error> {
    let Some((cert, key)) = &cluster.registry_client_files else {
        return Ok(None);
    };
    let dir = tempfile::Builder::new()
        .prefix("bundle-client-cert")
        .tempdir()
        .map_err(|source| Error::Write {
            path: std::env::temp_dir(),
            source,
        })?;
    for (field, file, name) in [
        ("spec.registry.clientCertFile", cert, "client.cert"),
        ("spec.registry.clientKeyFile", key, "client.key"),
    ] {
        let from = resolve_relative(inventory, file);
        std::fs::copy(&from, dir.path().join(name)).map_err(|source| Error::InventoryFile {
            field: field.into(),
            path: from.clone(),
            source,
        })?;
    }
    Ok(Some(dir))
}

/// Pulls one image of every target project the way the nodes will (their account, or
/// anonymously), so that a private project stops the install before any host waits
/// for images it cannot get.
async fn check_node_pulls(
    node: &Connection,
    plan: &PushPlan,
    cluster: &Cluster,
    reporter: &dyn Reporter,
) -> Result<(), Error> {
    let mut seen = BTreeSet::new();
    for image in &plan.images {
        let repository = image.repository();
        let project = bundle_registry::mapping::project_of(repository);
        if !seen.insert(project.to_string()) {
            continue;
        }
        let reference = image.digest.to_string();
        check_pull(node, repository, &reference)
            .await
            .map_err(|source| Error::NodesCannotPull {
                registry: cluster.registry_host.clone(),
                repository: repository.to_string(),
                project: project.to_string(),
                account: cluster.registry_pull_username.clone(),
                source: Box::new(source),
            })?;
    }
    let who = match &cluster.registry_pull_username {
        Some(u) => format!("as `{u}`"),
        None => "anonymously".into(),
    };
    reporter.event(&Event::Note {
        message: format!(
            "nodes can pull {who} from `{}` ({} checked)",
            cluster.registry_host,
            seen.into_iter().collect::<Vec<_>>().join(", ")
        ),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use bundle_testbed::images::{seed, Layer, TestImage};
    use bundle_testbed::Registry;

    use super::*;
    use crate::Inventory;

    fn cluster_for(registry: &str) -> Cluster {
        let yaml = bundle_testbed::inventories::sample_inventory(3, 1);
        let line = yaml.lines().find(|l| l.contains("registry:")).unwrap();
        let yaml = yaml.replace(line, &format!("  registry: {registry}"));
        Inventory::parse(&yaml).unwrap().validate(false).unwrap().0
    }

    /// The install's pushes and the nodes' pull check speak plain HTTP exactly when
    /// the inventory says `plainHttp`, to a real registry without TLS.
    #[tokio::test]
    async fn plain_http_in_the_inventory_is_how_the_install_reaches_the_registry() {
        let work = tempfile::tempdir().unwrap();
        let registry = Registry::start().unwrap();
        let image = TestImage::new(
            "k8s/pause",
            "3.9",
            &[Layer {
                seed: 3,
                size: 4096,
            }],
        );
        let seeded = seed(&registry.addr, &image, work.path()).unwrap();

        let plain = cluster_for(&format!("{{host: \"{}\", plainHttp: true}}", registry.addr));
        let node = node_connection(&plain, vec![], None, None);
        check_pull(&node, "k8s/pause", &seeded.digest)
            .await
            .unwrap();

        let tls = cluster_for(&format!("{{host: \"{}\"}}", registry.addr));
        let err = check_pull(
            &node_connection(&tls, vec![], None, None),
            "k8s/pause",
            &seeded.digest,
        )
        .await
        .unwrap_err();
        let shown = bundle_registry::Error::to_string(&err);
        assert!(shown.contains(&registry.addr), "{shown}");
    }

    /// A registry that wants a client certificate: the install presents the
    /// inventory's (`clientCertFile`/`clientKeyFile`, relative to the inventory), and
    /// without it the same pull is refused.
    #[tokio::test]
    async fn the_inventorys_client_certificate_is_what_the_install_presents() {
        use bundle_testbed::real::registry::{client_cert, test_tls, RegistryOptions};
        let work = tempfile::tempdir().unwrap();
        let tls = test_tls(&work.path().join("tls"), "127.0.0.1").unwrap();
        let registry = Registry::start_with(&RegistryOptions {
            tls: Some((tls.cert.clone(), tls.key.clone())),
            client_ca: Some(tls.ca.clone()),
            ..RegistryOptions::default()
        })
        .unwrap();
        let site = work.path().join("site");
        client_cert(&tls, &site).unwrap();
        std::fs::copy(&tls.ca, site.join("ca.crt")).unwrap();
        // Seeded by skopeo, which presents the same files (`--dest-cert-dir`).
        let image = TestImage::new(
            "k8s/pause",
            "3.9",
            &[Layer {
                seed: 5,
                size: 4096,
            }],
        );
        let seeded = bundle_testbed::images::seed_with(
            &registry.addr,
            &image,
            work.path(),
            &["--dest-cert-dir", site.to_str().unwrap()],
        )
        .unwrap();
        let inventory = site.join("cluster.yaml");
        let cluster = cluster_for(&format!(
            "{{host: \"{}\", caFile: ca.crt, clientCertFile: client.cert, clientKeyFile: client.key}}",
            registry.addr
        ));
        let ca = vec![site.join("ca.crt")];
        let identity = client_identity(&inventory, &cluster).unwrap().unwrap();
        let with = node_connection(&cluster, ca.clone(), Some(identity.path().into()), None);
        check_pull(&with, "k8s/pause", &seeded.digest)
            .await
            .unwrap();

        let without = node_connection(&cluster, ca, None, None);
        let err = check_pull(&without, "k8s/pause", &seeded.digest)
            .await
            .unwrap_err();
        let shown = format!(
            "{err} {}",
            bundle_format::Hint::hint(&err).unwrap_or_default()
        );
        assert!(shown.contains("certificate"), "{shown}");

        // A key file that is not there names its field and path.
        let missing = cluster_for(&format!(
            "{{host: \"{}\", caFile: ca.crt, clientCertFile: client.cert, clientKeyFile: nope.key}}",
            registry.addr
        ));
        let e = client_identity(&inventory, &missing)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("spec.registry.clientKeyFile") && e.contains("nope.key"),
            "{e}"
        );
    }
}
