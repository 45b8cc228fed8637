//! `--workers`: data-parallel training over processes of this machine (maths §10). The process
//! the user started resolves the count, launches that many copies of itself (the workers, which
//! split every batch and sum over sockets between them) and exits with their status; it trains nothing
//! itself.
//!
//! `auto` (the default) launches one worker per core (at most 8, a divisor of the batch) when
//! the adapter is a CPU one (Mesa lavapipe) and the command is `schrodinger`, `hydrogen` or
//! `bench`: there each worker runs lavapipe on its own thread (`LP_NUM_THREADS=0`), which drops
//! lavapipe's ≈ 50 µs thread-pool cost per dispatch (docs/results/speed.md). On a GPU, and for
//! the other commands, `auto` is one process; a count asks for exactly that many workers on any
//! command that trains.

use std::str::FromStr;

use anyhow::{bail, Context, Result};

use super::{Cli, Command};

/// `--workers`: `auto` or a count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Workers {
    /// One per core on a CPU adapter for the commands that measured faster so, else one.
    #[default]
    Auto,
    /// Exactly this many.
    Count(usize),
}

impl FromStr for Workers {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(Workers::Auto);
        }
        match s.parse::<usize>() {
            Ok(0) | Err(_) => Err(format!("expected `auto` or a count ≥ 1, got `{s}`")),
            Ok(n) => Ok(Workers::Count(n)),
        }
    }
}

/// Most workers `auto` launches.
const AUTO_MAX: usize = 8;

/// The global batch of the command, where `auto` may split it: `None` for commands that `auto`
/// leaves in one process. For `bench`, the largest worker count that every selected
/// configuration splits into is found by [`bench_splits`] instead.
fn auto_batch(cli: &Cli) -> Option<usize> {
    match &cli.command {
        Command::Schrodinger(a) => super::schrodinger::planned_batch(
            spectral_inference::experiments::schrodinger::SchrodingerConfig::generic(),
            a,
        ),
        Command::Hydrogen(a) => super::schrodinger::planned_batch(
            spectral_inference::experiments::schrodinger::SchrodingerConfig::hydrogen(a.preset),
            &a.run,
        ),
        _ => None,
    }
}

/// Whether every configuration `spin bench` would time splits into `w` equal shares.
fn bench_splits(cli: &Cli, w: usize) -> bool {
    let Command::Bench(a) = &cli.command else {
        return false;
    };
    let configs = super::bench::selected(a);
    !configs.is_empty() && configs.iter().all(|c| c.splits(w))
}

/// Whether the command trains (and so can split its batches over workers).
fn trains(cli: &Cli) -> bool {
    matches!(
        cli.command,
        Command::Matrix(_)
            | Command::Bench(_)
            | Command::Suite(_)
            | Command::Schrodinger(_)
            | Command::Hydrogen(_)
            | Command::Video(_)
            | Command::Graph(_)
    )
}

/// The number of worker processes to launch for this command line (1: run here).
pub fn resolve(cli: &Cli) -> Result<usize> {
    // Already a worker (of this launcher or of mpirun).
    if spectral_inference::spin::parallel::world().size() > 1 {
        return Ok(1);
    }
    match cli.workers.unwrap_or_default() {
        Workers::Count(n) => {
            if n > 1 && !trains(cli) {
                bail!("--workers {n}: only the commands that train split their work over workers");
            }
            Ok(n)
        }
        Workers::Auto => {
            // Worker processes need Unix sockets.
            if !cfg!(unix) {
                return Ok(1);
            }
            let is_bench = matches!(cli.command, Command::Bench(_));
            let batch = auto_batch(cli);
            if batch.is_none() && !is_bench {
                return Ok(1);
            }
            let cpu =
                spectral_inference::gpu::context::chosen_adapter(&super::adapter_request(cli))
                    .is_some_and(|a| a.device_type == "Cpu");
            if !cpu {
                return Ok(1);
            }
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let splits = |w: usize| match batch {
                Some(b) => b % w == 0,
                None => bench_splits(cli, w),
            };
            Ok((1..=cores.min(AUTO_MAX))
                .rev()
                .find(|&w| splits(w))
                .unwrap_or(1))
        }
    }
}

/// Launches `size` copies of this command line as workers, each connected to every other
/// ([`mesh`]), waits for them and returns the exit code to leave with (the first failing
/// worker's, else 0). Rank 0 prints and writes files; the others print only their banner and
/// errors. A worker that fails makes the others' next sum fail, so none waits forever.
#[cfg(unix)]
pub fn launch(size: usize) -> Result<i32> {
    use spectral_inference::spin::parallel::local::{mesh, ENV_PEERS, ENV_RANK};
    use std::os::fd::AsRawFd;
    use std::os::unix::process::{CommandExt, ExitStatusExt};

    let exe = std::env::current_exe().context("finding the spin executable to launch workers")?;
    let single_thread = !spectral_inference::gpu::context::lavapipe_threads_set_by_user();
    let mut children = Vec::with_capacity(size);
    for (rank, ends) in mesh(size)?.into_iter().enumerate() {
        let fds: Vec<i32> = ends.iter().flatten().map(|s| s.as_raw_fd()).collect();
        let list: Vec<String> = ends
            .iter()
            .map(|e| e.as_ref().map_or("-".into(), |s| s.as_raw_fd().to_string()))
            .collect();
        let mut c = std::process::Command::new(&exe);
        c.args(std::env::args_os().skip(1))
            .env(ENV_RANK, rank.to_string())
            .env(ENV_PEERS, list.join(","));
        if single_thread {
            // lavapipe runs each dispatch on the worker's own thread.
            c.env("LP_NUM_THREADS", "0");
        }
        // SAFETY: between fork and exec this only calls fcntl and prctl, which are
        // async-signal-safe: this worker's sockets stay open across exec (every other
        // descriptor of ours closes), and the kernel kills the worker if the launcher dies.
        unsafe {
            c.pre_exec(move || {
                for &fd in &fds {
                    if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                #[cfg(target_os = "linux")]
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let spawned = c.spawn();
        // Our copies of this worker's ends close here, so that its peers see it leave.
        drop(ends);
        match spawned {
            Ok(child) => children.push(child),
            Err(e) => {
                for mut ch in children {
                    let _ = ch.kill();
                    let _ = ch.wait();
                }
                return Err(e).context("launching a worker");
            }
        }
    }
    let mut code = 0;
    for mut child in children {
        let status = child.wait().context("waiting for a worker")?;
        let c = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        if c != 0 && code == 0 {
            code = c;
        }
    }
    Ok(code)
}
