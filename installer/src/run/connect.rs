//! The one way every operation reaches its hosts: all connected at once, sudo set up
//! on each (the password asked once, through the reporter, when a host needs one and
//! none was given, then checked everywhere), and a [`Redactor`] that knows the
//! state's secrets and that password before any output is stored or shown.

use std::collections::BTreeMap;
use std::path::Path;

use futures_util::future::join_all;

use crate::exec::{Redactor, SshHost, SshTarget};
use crate::inventory::Inventory;
use crate::report::{Event, Reporter};
use crate::secrets::{Secret, Secrets};
use crate::Error;

/// Where the hosts are described: the inventory and its file (relative paths in it,
/// such as `identityFile`, are read from its folder).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HostBook<'a> {
    pub inventory: &'a Inventory,
    pub path: &'a Path,
}

/// Connected hosts, by name.
pub(crate) struct Connected {
    pub hosts: BTreeMap<String, SshHost>,
    /// Secrets and the sudo password, hidden from every output.
    pub redactor: Redactor,
    // The ControlMaster sockets live here until the hosts are closed.
    _control: tempfile::TempDir,
}

/// Connects to `names` in parallel and sets up sudo on each. The first failure is
/// returned, later ones are reported as warnings, and hosts already connected are
/// closed.
pub(crate) async fn connect(
    book: HostBook<'_>,
    names: &[String],
    become_password: Option<String>,
    secrets: Option<&Secrets>,
    reporter: &dyn Reporter,
) -> Result<Connected, Error> {
    let control = control_dir()?;
    let targets: Vec<SshTarget> = names
        .iter()
        .map(|n| target(book, n))
        .collect::<Result<_, _>>()?;
    let results = join_all(
        targets
            .into_iter()
            .map(|t| SshHost::connect(t, control.path())),
    )
    .await;
    let mut hosts = keep_connected(results, reporter).await?;
    let password = match set_up_become(&mut hosts, become_password, reporter).await {
        Ok(p) => p,
        Err(e) => {
            close(hosts).await;
            return Err(e);
        }
    };
    let mut redactor = Redactor::default();
    if let Some(secrets) = secrets {
        for s in Secret::ALL {
            redactor.add(s.name(), secrets.get(s));
        }
    }
    if let Some(p) = &password {
        redactor.add("become-password", p);
    }
    Ok(Connected {
        hosts,
        redactor,
        _control: control,
    })
}

impl Connected {
    /// Closes every connection.
    pub async fn close(self) {
        close(self.hosts).await;
    }
}

async fn close(hosts: BTreeMap<String, SshHost>) {
    join_all(hosts.into_values().map(SshHost::close)).await;
}

/// How to reach `host`, from the inventory.
pub(crate) fn target(book: HostBook<'_>, host: &str) -> Result<SshTarget, Error> {
    SshTarget::from_inventory(book.inventory, book.path, host).ok_or_else(|| Error::UnknownHost {
        host: host.into(),
        inventory: book.path.to_path_buf(),
    })
}

/// Control sockets need a short path (about 100 bytes): a folder under the system's
/// temporary folder, not under the state folder.
fn control_dir() -> Result<tempfile::TempDir, Error> {
    tempfile::Builder::new()
        .prefix("bundle-ssh-")
        .tempdir_in(std::env::temp_dir())
        .map_err(|source| Error::ControlDir {
            path: std::env::temp_dir(),
            source,
        })
}

/// The hosts that connected, reported; or the first error (the others as warnings).
async fn keep_connected(
    results: Vec<Result<SshHost, Error>>,
    reporter: &dyn Reporter,
) -> Result<BTreeMap<String, SshHost>, Error> {
    let mut hosts = BTreeMap::new();
    let mut first_err = None;
    for r in results {
        match r {
            Ok(h) => {
                reporter.event(&Event::Connected {
                    host: h.target().name.clone(),
                    address: h.target().display(),
                });
                hosts.insert(h.target().name.clone(), h);
            }
            Err(e) if first_err.is_none() => first_err = Some(e),
            Err(e) => reporter.event(&Event::Warning {
                host: None,
                message: e.to_string(),
            }),
        }
    }
    match first_err {
        None => Ok(hosts),
        Some(e) => {
            close(hosts).await;
            Err(e)
        }
    }
}

/// Finds out which hosts' sudo needs a password (all at once), asks for it once when
/// none was given, and checks it on those hosts. Returns the password in use.
async fn set_up_become(
    hosts: &mut BTreeMap<String, SshHost>,
    given: Option<String>,
    reporter: &dyn Reporter,
) -> Result<Option<String>, Error> {
    let first = join_all(hosts.values_mut().map(|h| async {
        let ready = h.set_up_become(given.as_deref()).await?;
        Ok::<_, Error>((!ready).then(|| h.target().name.clone()))
    }))
    .await;
    let mut waiting = Vec::new();
    for r in first {
        waiting.extend(r?);
    }
    let Some(asker) = waiting.first() else {
        return Ok(given);
    };
    let user = hosts[asker].target().user.clone();
    let Some(password) = reporter.become_password(&user) else {
        return Err(Error::BecomePasswordNeeded {
            host: asker.clone(),
            user,
        });
    };
    let second = join_all(hosts.iter_mut().filter(|(n, _)| waiting.contains(n)).map(
        |(_, h)| async {
            if h.set_up_become(Some(&password)).await? {
                Ok(())
            } else {
                Err(Error::BecomePasswordNeeded {
                    host: h.target().name.clone(),
                    user: h.target().user.clone(),
                })
            }
        },
    ))
    .await;
    second.into_iter().collect::<Result<Vec<()>, Error>>()?;
    Ok(Some(password))
}
