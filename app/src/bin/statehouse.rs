//! The `statehouse` command line; see `statehouse --help`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let code = statehouse::cli::main_with(
        std::env::args_os(),
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    );
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
