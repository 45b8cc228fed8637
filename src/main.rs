//! `spin`: the command-line front end. Errors stop here, as `anyhow` reports.

mod cli;

fn main() {
    // First, while the program has one thread: Mesa's device-select layer is quiet by default
    // and lavapipe gets two threads per core.
    spectral_inference::gpu::context::driver_environment();
    #[cfg(feature = "mpi")]
    let _universe = start_mpi();
    #[cfg(not(feature = "mpi"))]
    refuse_mpirun();
    #[cfg(unix)]
    join_launcher();
    if let Err(e) = cli::run() {
        spectral_inference::spin::parallel::note(&format!("error: {}", describe(&e)));
        std::process::exit(1);
    }
}

/// The error and its causes, `: `-separated, leaving out a cause whose text the message already
/// holds (a library error that prints its source, such as a file's OS error, would repeat it).
fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Under an MPI launcher: initialises MPI, makes its ranks the process's workers, and silences
/// the standard output and error of every rank but 0 (rank 0 prints the results; the others'
/// banner, final θ hash and errors still reach the original standard error). The universe must
/// live until the end of `main`.
#[cfg(feature = "mpi")]
fn start_mpi() -> Option<mpi::environment::Universe> {
    use spectral_inference::spin::parallel::{self, mpi as transport};
    if !transport::launched_by_mpirun() {
        return None;
    }
    let (universe, world) = match transport::init() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let rank = parallel::Collective::rank(&*world);
    if let Err(e) = parallel::set_world(world) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    if rank > 0 {
        silence_rank();
    }
    Some(universe)
}

/// A worker that `spin … --workers W` launched (the `SPIN_WORKER_*` variables are set):
/// takes the sockets to the other workers, makes them the process's world and silences every
/// worker but rank 0, as under MPI.
#[cfg(unix)]
fn join_launcher() {
    use spectral_inference::spin::parallel::{self, local::LocalWorker};
    let Some(worker) = LocalWorker::from_env() else {
        return;
    };
    let worker = match worker {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let rank = parallel::Collective::rank(&worker);
    if let Err(e) = parallel::set_world(std::sync::Arc::new(worker)) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    if rank > 0 {
        silence_rank();
    }
}

/// Keeps a copy of standard error for [`spectral_inference::spin::parallel::note`], then points
/// descriptors 1 and 2 at /dev/null.
#[cfg(unix)]
fn silence_rank() {
    use std::os::fd::{AsRawFd, FromRawFd};
    let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") else {
        return;
    };
    // SAFETY: dup and dup2 on valid descriptors. The copy of 2 is a new descriptor that only the
    // File made from it owns; Rust's stdout and stderr write to 1 and 2 by number, so
    // replacing them only changes where that output goes.
    unsafe {
        let saved = libc::dup(2);
        if saved >= 0 {
            spectral_inference::spin::parallel::set_note_sink(std::fs::File::from_raw_fd(saved));
        }
        libc::dup2(null.as_raw_fd(), 1);
        libc::dup2(null.as_raw_fd(), 2);
    }
}

/// Without the `mpi` feature, W copies under `mpirun` would each train alone and overwrite
/// each other's files: refuse, and say how to build the data-parallel binary.
#[cfg(not(feature = "mpi"))]
fn refuse_mpirun() {
    let ranks = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse::<usize>().ok());
    if ranks.is_some_and(|w| w > 1) {
        eprintln!(
            "error: started by mpirun with {} ranks, but this spin was built without MPI: build it with `cargo build --release --features mpi` (needs libopenmpi-dev and libclang-dev)",
            ranks.unwrap_or(0)
        );
        std::process::exit(2);
    }
}
