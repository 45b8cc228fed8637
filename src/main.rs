//! `spin`: the command-line front end. Errors stop here, as `anyhow` reports.

mod cli;

fn main() {
    // First, while the program has one thread: Mesa's device-select layer is quiet by default.
    spectral_inference::gpu::context::quiet_device_select();
    if let Err(e) = cli::run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
