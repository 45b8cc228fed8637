//! `spin`: the command-line front end. Errors stop here, as `anyhow` reports.

mod cli;

fn main() {
    // First, while the program has one thread: Mesa's device-select layer is quiet by default
    // and lavapipe gets two threads per core.
    spectral_inference::gpu::context::driver_environment();
    if let Err(e) = cli::run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
