//! `spin`: the command-line front end. Errors stop here, as `anyhow` reports.

mod cli;

fn main() {
    if let Err(e) = cli::run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
