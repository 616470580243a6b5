//! Errors for operators: `error:` with what failed, `Caused by:` lines down the chain,
//! then `hint:` lines with what to do. Exit codes: 1 for failures, 2 for usage errors
//! (clap), 3 when a bundle was rejected by verification, 4 when `bundle status` found the
//! cluster unhealthy.

use std::process::ExitCode;

use bundle_format::shown::shown_text;
use bundle_format::Hint;

use crate::ui::{stderr_color, Label};

/// Exit code for a bundle that failed verification.
pub const EXIT_REJECTED: u8 = 3;
/// Exit code for `bundle status` finding the cluster unhealthy.
pub const EXIT_UNHEALTHY: u8 = 4;

/// `bundle status` found problems (listed in its output).
#[derive(Debug)]
pub struct Unhealthy {
    pub problems: usize,
}

impl std::fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.problems {
            1 => f.write_str("the cluster is unhealthy: 1 problem"),
            n => write!(f, "the cluster is unhealthy: {n} problems"),
        }
    }
}
impl std::error::Error for Unhealthy {}

impl Hint for Unhealthy {
    fn hint(&self) -> Option<String> {
        Some(
            "each problem is listed above with its host and what to do (`problems` in `--json`)"
                .into(),
        )
    }
}

/// An error raised in the binary itself with a known remedy.
#[derive(Debug)]
pub struct Hinted {
    pub message: String,
    pub hint: String,
}

impl std::fmt::Display for Hinted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
impl std::error::Error for Hinted {}

impl Hint for Hinted {
    fn hint(&self) -> Option<String> {
        Some(self.hint.clone())
    }
}

/// Returns an error with a hint, for `anyhow` call sites in commands.
pub fn hinted(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Hinted {
        message: message.into(),
        hint: hint.into(),
    })
}

/// The hint of one error of a chain, if its type is one that offers hints.
fn hint_of(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    // A chain holds `dyn Error`s: each crate's type is found by downcasting, then asked
    // through the one `Hint` trait.
    hint_as::<bundle_format::Error>(err)
        .or_else(|| hint_as::<bundle_builder::Error>(err))
        .or_else(|| hint_as::<bundle_registry::Error>(err))
        // A boxed error shows up in the chain as the Box, not as what it holds.
        .or_else(|| hint_as::<Box<bundle_registry::Error>>(err))
        .or_else(|| hint_as::<bundle_installer::Error>(err))
        .or_else(|| hint_as::<Hinted>(err))
        .or_else(|| hint_as::<Unhealthy>(err))
        .flatten()
}

/// `Some(its hint)` when `err` is an `E`; `None` when it is not.
fn hint_as<E: Hint + std::error::Error + 'static>(
    err: &(dyn std::error::Error + 'static),
) -> Option<Option<String>> {
    err.downcast_ref::<E>().map(E::hint)
}

fn is_rejection(err: &(dyn std::error::Error + 'static)) -> bool {
    err.downcast_ref::<bundle_format::Error>()
        .is_some_and(bundle_format::Error::is_rejection)
}

/// Prints the error chain and hints to stderr; returns the exit code.
pub fn error(err: &anyhow::Error) -> ExitCode {
    // Messages carry names from bundles, registries and RPM headers: control
    // characters are escaped here whatever the library did.
    let color = stderr_color();
    eprintln!(
        "{} {}",
        Label::Error.paint(color),
        shown_text(&err.to_string())
    );
    let mut hints = Vec::new();
    let mut rejected = false;
    let unhealthy = err.downcast_ref::<Unhealthy>().is_some();
    for (i, cause) in err.chain().enumerate() {
        if i > 0 {
            eprintln!("  Caused by: {}", shown_text(&cause.to_string()));
        }
        rejected |= is_rejection(cause);
        if let Some(h) = hint_of(cause) {
            if !hints.contains(&h) {
                hints.push(h);
            }
        }
    }
    for h in hints {
        eprintln!("{} {}", Label::Hint.paint(color), shown_text(&h));
    }
    ExitCode::from(match (rejected, unhealthy) {
        (true, _) => EXIT_REJECTED,
        (_, true) => EXIT_UNHEALTHY,
        _ => 1,
    })
}
