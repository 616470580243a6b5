//! One file per command: clap arguments and a short `run` that calls a library
//! operation and reports.

pub mod backup;
pub mod build;
pub mod certs;
pub mod completion;
pub mod init;
pub mod inspect;
pub mod install;
pub mod keygen;
pub mod keys;
pub mod login;
pub mod man;
pub mod nodes;
pub mod push;
pub mod reset;
pub mod restore;
pub mod schema;
pub mod status;
pub mod upgrade;
pub mod verify;
