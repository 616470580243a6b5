//! `bundle`: carry a pinned Kubernetes release across an air gap and install it.
//!
//! This binary only parses arguments, calls one library operation per command and
//! reports; the work lives in the `bundle-*` crates.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod args;
mod commands;
mod report;
mod reporters;
mod ui;

#[derive(Parser)]
#[command(
    name = "bundle",
    version,
    about,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: ui::GlobalArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Build a signed bundle from a pinned manifest (connected side)
    Build(commands::build::Args),
    /// Check a bundle's signature and every entry's checksum, without extracting
    Verify(commands::verify::Args),
    /// Show what a bundle carries
    Inspect(commands::inspect::Args),
    /// Push a bundle's images into a registry (Harbor or any OCI registry)
    Push(commands::push::Args),
    /// Create a minisign key pair for signing bundles
    Keygen(commands::keygen::Args),
    /// Write a commented cluster inventory template
    Init(commands::init::Args),
    /// Install a bundle on a cluster's hosts (`--dry-run` writes the plan only)
    Install(commands::install::Args),
    /// Undo an install on its hosts (kubeadm reset, services, files, repo file)
    Reset(commands::reset::Args),
    /// Work on the nodes of an installed cluster
    Nodes(commands::nodes::Args),
    /// The certificates of an installed cluster
    Certs(commands::certs::Args),
    /// An etcd snapshot with the cluster's PKI, copied to this machine
    Backup(commands::backup::Args),
    /// Put the cluster's etcd back to a backup, on every master (destructive)
    Restore(commands::restore::Args),
    /// One view of an installed cluster and its problems (a table, or `--json`)
    Status(commands::status::Args),
    /// Carry an installed cluster to the next bundle, node by node
    Upgrade(commands::upgrade::Args),
    /// Print the JSON Schema of a manifest or an inventory
    Schema(commands::schema::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completion(commands::completion::Args),
    /// Write man pages for `bundle` and each subcommand into a folder
    Man(commands::man::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ui = ui::Ui::new(&cli.global);
    let result = match cli.command {
        Command::Build(args) => commands::build::run(args, &ui),
        Command::Verify(args) => commands::verify::run(args, &ui),
        Command::Inspect(args) => commands::inspect::run(args, &ui),
        Command::Keygen(args) => commands::keygen::run(args, &ui),
        Command::Push(args) => commands::push::run(args, &ui),
        Command::Init(args) => commands::init::run(args, &ui),
        Command::Install(args) => commands::install::run(args, &ui),
        Command::Reset(args) => commands::reset::run(args, &ui),
        Command::Nodes(args) => commands::nodes::run(args, &ui),
        Command::Certs(args) => commands::certs::run(args, &ui),
        Command::Backup(args) => commands::backup::run(args, &ui),
        Command::Restore(args) => commands::restore::run(args, &ui),
        Command::Status(args) => commands::status::run(args, &ui),
        Command::Upgrade(args) => commands::upgrade::run(args, &ui),
        Command::Schema(args) => commands::schema::run(args),
        Command::Completion(args) => commands::completion::run(args, Cli::command()),
        Command::Man(args) => commands::man::run(args, Cli::command(), &ui),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => report::error(&err),
    }
}
