//! The `sockit` binary: parse arguments, run the subcommand, map errors to exit codes.

use std::fmt;
use std::io::Write;
use std::process::ExitCode;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::{format::Writer, FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use sockit::cmd::Cli;

/// `sockit: message` lines on stderr, like the error line.
struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = *event.metadata().level();
        match level {
            tracing::Level::WARN => write!(writer, "sockit: warning: ")?,
            tracing::Level::ERROR => write!(writer, "sockit: error: ")?,
            _ => write!(writer, "sockit: ")?,
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "sockit=warn",
        1 => "sockit=info",
        2 => "sockit=debug",
        _ => "sockit=trace,debug",
    };
    let filter = if verbose == 0 {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default))
    } else {
        EnvFilter::new(default)
    };
    tracing_subscriber::fmt()
        .event_format(Plain)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Parses the command line. Help and version print as clap has them; a
/// usage error becomes one `sockit: error:` line with a pointer to the
/// subcommand's help, exit 2.
fn parse() -> Cli {
    let err = match Cli::try_parse_args() {
        Ok(cli) => return cli,
        Err(e) => e,
    };
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        err.exit();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    eprintln!("sockit: error: {}", sockit::cmd::usage_line(&err, &args));
    std::process::exit(2)
}

fn main() -> ExitCode {
    let cli = parse();
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sockit: error: cannot start the runtime ({e})");
            return ExitCode::from(1);
        }
    };
    let exit_code_of = cli.command.error_exit_code();
    let code = match runtime.block_on(cli.command.run()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sockit: error: {e}");
            exit_code_of(&e)
        }
    };
    let _ = std::io::stdout().flush();
    // A thread blocked on stdin must not keep the process alive: exit now.
    std::process::exit(code.into())
}
