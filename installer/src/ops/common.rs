//! What several operations share: the async runtime, the state folder, the plan-change
//! confirmation and the nodes' pull password.

use std::path::{Path, PathBuf};

use super::prepare::Prepared;
use crate::inventory::Inventory;
use crate::plan::Plan;
use crate::report::{Event, Reporter};
use crate::run::{Engine, EngineParts, HostBook, RunOptions};
use crate::secrets::Secrets;
use crate::state::{self, Lock, StateDir};
use crate::Error;

/// The state folder used when none is given: `bundle-state/CLUSTER` beside the
/// inventory.
pub fn default_state_dir(inventory: &Path, cluster: &str) -> PathBuf {
    inventory
        .parent()
        .unwrap_or(Path::new(""))
        .join("bundle-state")
        .join(cluster)
}

use crate::secrets::PULL_PASSWORD_ENV;

/// The state folder of an operation, opened and locked: `given`, or the default
/// beside the inventory.
pub(crate) fn open_state(
    given: Option<&Path>,
    inventory_path: &Path,
    inventory: &Inventory,
) -> Result<(StateDir, Lock), Error> {
    let root = given
        .map(Path::to_path_buf)
        .unwrap_or_else(|| default_state_dir(inventory_path, &inventory.metadata.name));
    let state = StateDir::open(&root)?;
    let lock = state.lock()?;
    Ok((state, lock))
}

/// An installed cluster as the lifecycle operations start from it: the inventory, the
/// state folder (locked while this lives) and the plan it was installed with.
pub(crate) struct Installed {
    pub inventory: Inventory,
    pub state: StateDir,
    pub plan: Plan,
    _lock: Lock,
}

impl Installed {
    /// Loads the inventory, opens and locks the state folder (`state`, or the default
    /// beside the inventory) and reads the installed plan; an error when none is.
    /// Nothing is created when no install is recorded there.
    pub fn open(inventory_path: &Path, state: Option<&Path>) -> Result<Installed, Error> {
        let inventory = Inventory::load(inventory_path)?;
        let root = state
            .map(Path::to_path_buf)
            .unwrap_or_else(|| default_state_dir(inventory_path, &inventory.metadata.name));
        if !StateDir::holds_install(&root) {
            return Err(Error::NotInstalled { state: root });
        }
        let (state, lock) = open_state(Some(&root), inventory_path, &inventory)?;
        let plan = installed_plan(&state)?;
        Ok(Installed {
            inventory,
            state,
            plan,
            _lock: lock,
        })
    }

    /// The state folder's secrets, with what `plan` needs made where missing.
    pub fn secrets(&self, plan: &Plan) -> Result<Secrets, Error> {
        Secrets::load_for_plan(&self.secrets_path(), plan)
    }

    /// The state folder's `secrets.json`.
    pub fn secrets_path(&self) -> PathBuf {
        self.state.root().join("secrets.json")
    }

    /// The executor for `plan` over this installation's hosts (as the inventory at
    /// `inventory_path` reaches them): what every lifecycle operation carries its
    /// plan out with.
    pub async fn engine<'a>(
        &'a self,
        plan: &'a Plan,
        secrets: &'a Secrets,
        inventory_path: &Path,
        run: &RunOptions,
        reporter: &'a dyn Reporter,
    ) -> Result<Engine<'a>, Error> {
        let parts = EngineParts {
            plan,
            state: &self.state,
            secrets,
            reporter,
        };
        let book = HostBook {
            inventory: &self.inventory,
            path: inventory_path,
        };
        Engine::connect(parts, book, run).await
    }

    /// The masters, in inventory order.
    pub fn masters(&self) -> Vec<String> {
        self.with_role("master")
    }

    /// The external etcd hosts (none when etcd is stacked on the masters).
    pub fn etcd_hosts(&self) -> Vec<String> {
        self.with_role("etcd")
    }

    fn with_role(&self, role: &str) -> Vec<String> {
        self.plan
            .hosts_with_role(role)
            .map(|h| h.name.clone())
            .collect()
    }
}

/// The plan of the install recorded in `state`; an error when there was none.
pub(crate) fn installed_plan(state: &StateDir) -> Result<Plan, Error> {
    state.applied_plan()?.ok_or_else(|| Error::NotInstalled {
        state: state.root().to_path_buf(),
    })
}

/// Shows how the plan differs from the last run's and asks (or needs `--yes`).
pub(crate) fn confirm_plan_change(
    state: &StateDir,
    plan: &Plan,
    yes: bool,
    reporter: &dyn Reporter,
) -> Result<(), Error> {
    let Some(old) = state.applied_plan()? else {
        return Ok(());
    };
    let changes = state::diff_plans(&old, plan);
    if changes.is_empty() {
        return Ok(());
    }
    reporter.event(&Event::PlanChanged {
        changes: changes.iter().map(ToString::to_string).collect(),
    });
    if yes || reporter.confirm("Apply the changed plan?") {
        Ok(())
    } else {
        Err(Error::PlanChangeNotConfirmed)
    }
}

/// What the operator gives the nodes' containerd and no plan holds: the pull password
/// and the key of the registry's client certificate. Read before any host is touched;
/// every operation that writes containerd's files hands both to its executor.
pub(crate) struct NodeSecrets {
    pub pull_password: Option<String>,
    pub client_key: Option<String>,
}

impl NodeSecrets {
    /// From the environment (`BUNDLE_REGISTRY_PULL_PASSWORD`) and `clientKeyFile`
    /// (relative to the inventory at `path`).
    pub fn read(inventory: &Inventory, path: &Path) -> Result<Self, Error> {
        let key = inventory.spec.registry.client_key_file.as_deref();
        Ok(Self {
            pull_password: pull_password(inventory)?,
            client_key: super::prepare::pem_file(path, "clientKeyFile", key, "PRIVATE KEY")?,
        })
    }

    /// Filled in where the plan has their placeholders, and hidden from every output.
    pub fn give_to(&self, engine: &mut Engine<'_>) {
        engine.set_pull_password(self.pull_password.as_deref());
        engine.set_registry_client_key(self.client_key.as_deref());
    }
}

/// The nodes' pull password when the inventory names a pull account: from
/// `BUNDLE_REGISTRY_PULL_PASSWORD`, checked before any host is touched. It goes into
/// containerd's TOML as a basic string, so quotes, backslashes and control characters
/// are refused rather than escaped behind the operator's back.
pub(crate) fn pull_password(inventory: &Inventory) -> Result<Option<String>, Error> {
    let Some(username) = &inventory.spec.registry.pull_username else {
        return Ok(None);
    };
    let problem = match std::env::var(PULL_PASSWORD_ENV) {
        Ok(p) if p.is_empty() => "is empty",
        Ok(p) if p.chars().any(|c| c.is_control() || c == '"' || c == '\\') => {
            "holds a quote, backslash or control character"
        }
        Ok(p) => return Ok(Some(p)),
        Err(_) => "is not set",
    };
    Err(Error::PullPassword {
        username: username.clone(),
        problem: problem.into(),
    })
}

/// `--only` hosts must be in the plan.
pub(crate) fn check_only(only: &[String], plan: &Plan, inventory: &Path) -> Result<(), Error> {
    match only
        .iter()
        .find(|h| !plan.hosts.iter().any(|p| &p.name == *h))
    {
        Some(h) => Err(Error::UnknownHost {
            host: h.clone(),
            inventory: inventory.to_path_buf(),
        }),
        None => Ok(()),
    }
}

/// Records a plan about to be carried out: its folder and the applied plan in the
/// state folder. Returns the state's secrets (made on the first run).
pub(crate) fn record_plan(state: &StateDir, plan: &Plan) -> Result<Secrets, Error> {
    let secrets = Secrets::load_for_plan(&state.root().join("secrets.json"), plan)?;
    crate::plan::write_plan_dir(plan, state.root())?;
    state.set_applied_plan(plan)?;
    Ok(secrets)
}

/// Connects the executor to the prepared plan's hosts.
pub(crate) async fn connect<'a>(
    prepared: &'a Prepared,
    state: &'a StateDir,
    secrets: &'a Secrets,
    run: &RunOptions,
    reporter: &'a dyn Reporter,
) -> Result<Engine<'a>, Error> {
    let parts = EngineParts {
        plan: &prepared.plan,
        state,
        secrets,
        reporter,
    };
    let book = HostBook {
        inventory: &prepared.inventory,
        path: &prepared.inventory_path,
    };
    Engine::connect(parts, book, run).await
}

/// The admin kubeconfig in the state folder: the deploy node's way into the cluster
/// (`KUBECONFIG=STATE/admin.conf kubectl …`, through the VIP).
pub const ADMIN_KUBECONFIG: &str = "admin.conf";

/// Copies `/etc/kubernetes/admin.conf` from `master` into the state folder (mode 0600,
/// streamed, replaced atomically), after an install and whenever its certificate
/// changed (a renewal, an upgrade). A failure is a warning: the cluster is fine.
pub(crate) async fn keep_admin_kubeconfig(
    engine: &Engine<'_>,
    master: &str,
    state: &StateDir,
    reporter: &dyn Reporter,
) {
    let dest = state.root().join(ADMIN_KUBECONFIG);
    let tmp = state.root().join(format!("{ADMIN_KUBECONFIG}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let Some(host) = engine.host(master) else {
        return;
    };
    let copied = match host
        .run_to_file("cat /etc/kubernetes/admin.conf", &tmp)
        .await
    {
        Ok((out, _, _)) if out.success() => std::fs::rename(&tmp, &dest).map_err(|e| e.to_string()),
        Ok((out, _, _)) => Err(crate::exec::last_lines(&out.text(), 3)),
        Err(e) => Err(e.to_string()),
    };
    match copied {
        Ok(()) => reporter.event(&Event::Note {
            message: format!("the admin kubeconfig is in {} (mode 0600)", dest.display()),
        }),
        Err(why) => {
            let _ = std::fs::remove_file(&tmp);
            reporter.event(&Event::Warning {
                host: Some(master.into()),
                message: format!(
                    "the admin kubeconfig was not copied to {}: {why}",
                    dest.display()
                ),
            });
        }
    }
}
