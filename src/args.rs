//! Argument groups several commands share, so that a flag means the same everywhere:
//! the trusted key (`verify`, `push`), how commands that work on hosts reach and record
//! them (`install`, `reset`, `nodes`, `certs`, `backup`, `restore`, `status`), and which hosts the ones that
//! run phases take (`install`, `reset`, `nodes add`).

use std::path::PathBuf;

use bundle_installer::plan::PhaseName;

/// The key a bundle must be signed with.
#[derive(clap::Args, Debug)]
pub struct KeyArgs {
    /// Public key of the bundle's builder (default: your own key pair's, if any)
    #[arg(long, value_name = "PUB")]
    pub pubkey: Option<PathBuf>,
    /// Accept a bundle without signature (prints a warning)
    #[arg(long)]
    pub allow_unsigned: bool,
}

/// Flags shared by the commands that work on hosts.
#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// State folder: the plan, secrets, per-step records and per-host logs
    /// [default: bundle-state/CLUSTER beside the inventory]
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Go ahead without asking (a changed plan, a reset)
    #[arg(short, long)]
    pub yes: bool,
    /// Events as JSON lines on stdout, for automation
    #[arg(long)]
    pub json: bool,
    /// Ask for the sudo password (`become: sudo`); `BUNDLE_BECOME_PASSWORD` is read otherwise
    #[arg(long)]
    pub ask_become_pass: bool,
}

/// Which hosts a command that runs phases works on, and how many at once.
#[derive(clap::Args, Debug)]
pub struct HostsArgs {
    /// Hosts worked on at the same time within a phase
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub parallel: usize,
    /// Work on this host only (repeat for several)
    #[arg(long, value_name = "HOST")]
    pub only: Vec<String>,
}

pub fn parse_phase(s: &str) -> Result<PhaseName, String> {
    PhaseName::ALL
        .into_iter()
        .find(|p| p.as_str() == s)
        .ok_or_else(|| {
            let names: Vec<&str> = PhaseName::ALL.iter().map(|p| p.as_str()).collect();
            format!("unknown phase; phases are {}", names.join(", "))
        })
}

impl ExecArgs {
    /// The sudo password, from the environment or asked now.
    pub fn become_password(&self) -> anyhow::Result<Option<String>> {
        if let Ok(p) = std::env::var("BUNDLE_BECOME_PASSWORD") {
            return Ok(Some(p));
        }
        if self.ask_become_pass {
            return Ok(Some(rpassword::prompt_password("sudo password: ")?));
        }
        Ok(None)
    }
}
