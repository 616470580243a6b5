//! Terminal output: status lines on stderr (plain when not a terminal), progress bars
//! on a terminal, logs through `tracing` (`BUNDLE_LOG=debug`) that do not tear the bars.
//!
//! Colour is decided once, for stderr only (stdout carries data: JSON, tables, scripts,
//! schemas, and is never coloured): on when stderr is a terminal and `NO_COLOR` is unset
//! or empty (<https://no-color.org>). Off a terminal every event is one plain line.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Flags every command takes.
#[derive(clap::Args, Debug)]
pub struct GlobalArgs {
    /// More detail (-v: decisions such as provider choices; -vv: debug logs)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors and the final result
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// How the binary talks to its user.
pub struct Ui {
    pub quiet: bool,
    pub terminal: bool,
    /// Whether stderr gets colour (see [`stderr_color`]).
    pub color: bool,
    multi: indicatif::MultiProgress,
}

impl Ui {
    pub fn new(args: &GlobalArgs) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let color = stderr_color();
        let multi = indicatif::MultiProgress::new();
        if !terminal || args.quiet {
            multi.set_draw_target(ProgressDrawTarget::hidden());
        }
        // rustls-platform-verifier logs every refused certificate at ERROR, also the
        // self-signed one `bundle_registry::tls` then accepts because the user trusts
        // it; a refusal that stands reaches the user as an error with a hint.
        let default = match args.verbose {
            0 => "warn,rustls_platform_verifier=off",
            1 => "info,bundle=info,rustls_platform_verifier=off",
            _ => "debug",
        };
        let filter = tracing_subscriber::EnvFilter::try_from_env("BUNDLE_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
        let indicatif_layer = tracing_indicatif::IndicatifLayer::new();
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    // tracing-subscriber colours by default, terminal or not.
                    .with_ansi(color)
                    .with_writer(indicatif_layer.get_stderr_writer()),
            )
            .with(indicatif_layer)
            .try_init();
        Self {
            quiet: args.quiet,
            terminal,
            color,
            multi,
        }
    }

    /// A cargo-style status line: a right-aligned verb, then the message.
    pub fn status(&self, verb: &str, message: impl std::fmt::Display) {
        if !self.quiet {
            let _ = self.multi.println(format!("{verb:>12} {message}"));
            if !self.terminal {
                eprintln!("{verb:>12} {message}");
            }
        }
    }

    /// A warning, printed even with `--quiet`.
    pub fn warn(&self, message: impl std::fmt::Display) {
        eprintln!("{} {message}", Label::Warning.paint(self.color));
    }

    /// A progress template's prefix: coloured only when stderr is.
    pub fn prefix_template(&self) -> &'static str {
        if self.color {
            "{prefix:>12.cyan.bold}"
        } else {
            "{prefix:>12}"
        }
    }

    /// A byte-count progress bar (hidden off a terminal).
    pub fn bytes_bar(&self, label: &str, total: u64) -> ProgressBar {
        let bar = self.multi.add(ProgressBar::new(total));
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{} [{{bar:30}}] {{bytes}}/{{total_bytes}} {{bytes_per_sec}} {{msg}}",
                self.prefix_template()
            ))
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        bar
    }
}

/// Whether stderr gets colour: a terminal, and `NO_COLOR` unset or empty.
pub fn stderr_color() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stderr().is_terminal()
}

/// The prefixes of the lines that matter most, coloured as cargo colours them.
#[derive(Clone, Copy)]
pub enum Label {
    Error,
    Warning,
    Hint,
}

impl Label {
    /// `error:`, `warning:` or `hint:`, in colour when `color`.
    pub fn paint(self, color: bool) -> String {
        use anstyle::{AnsiColor, Style};
        let (text, fg) = match self {
            Label::Error => ("error:", AnsiColor::Red),
            Label::Warning => ("warning:", AnsiColor::Yellow),
            Label::Hint => ("hint:", AnsiColor::Cyan),
        };
        if !color {
            return text.to_string();
        }
        let style = Style::new().bold().fg_color(Some(fg.into()));
        format!("{style}{text}{style:#}")
    }
}
