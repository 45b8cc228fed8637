//! The Open MPI transport (cargo feature `mpi`): `mpirun -n W spin …` starts W ranks that
//! sum with `MPI_Allreduce` on `MPI_COMM_WORLD`.

use std::sync::{Arc, Mutex};

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives};

use super::Collective;
use crate::error::{Result, SpinError};

/// `MPI_COMM_WORLD`. Calls are serialised by a mutex (MPI is initialised with
/// `MPI_THREAD_SERIALIZED`), and in practice only the training thread makes them.
pub struct MpiWorld {
    comm: Mutex<SimpleCommunicator>,
    rank: usize,
    size: usize,
}

// SAFETY: the communicator is an opaque MPI handle. MPI is initialised with
// MPI_THREAD_SERIALIZED (or more), which allows calls from any thread as long as no two run at
// once; the mutex guarantees that, so sharing and sending the handle between threads is sound.
unsafe impl Send for MpiWorld {}
// SAFETY: see `Send`: every use of the handle goes through the mutex.
unsafe impl Sync for MpiWorld {}

/// Whether this process was started by an MPI launcher (Open MPI's `mpirun`, or a PMI/PMIx
/// launcher such as Slurm's `srun`).
pub fn launched_by_mpirun() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

/// Initialises MPI; keep the returned universe alive until the end of `main` (dropping it
/// finalises MPI).
pub fn init() -> Result<(Universe, Arc<MpiWorld>)> {
    let (universe, _threading) = mpi::initialize_with_threading(mpi::Threading::Serialized)
        .ok_or_else(|| SpinError::Parallel("MPI was already initialised".into()))?;
    let comm = universe.world();
    let (rank, size) = (comm.rank() as usize, comm.size() as usize);
    Ok((
        universe,
        Arc::new(MpiWorld {
            comm: Mutex::new(comm),
            rank,
            size,
        }),
    ))
}

impl MpiWorld {
    fn with<T>(&self, f: impl FnOnce(&SimpleCommunicator) -> T) -> Result<T> {
        let comm = self
            .comm
            .lock()
            .map_err(|_| SpinError::Parallel("a thread panicked inside an MPI call".into()))?;
        Ok(f(&comm))
    }
}

impl Collective for MpiWorld {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn sum_f64(&self, data: &mut [f64]) -> Result<()> {
        let send = data.to_vec();
        self.with(|c| c.all_reduce_into(&send[..], data, SystemOperation::sum()))
    }
    fn sum_f32(&self, data: &mut [f32]) -> Result<()> {
        let send = data.to_vec();
        self.with(|c| c.all_reduce_into(&send[..], data, SystemOperation::sum()))
    }
    fn gather_u64(&self, value: u64) -> Result<Vec<u64>> {
        let mut all = vec![0u64; self.size];
        self.with(|c| c.all_gather_into(&value, &mut all[..]))?;
        Ok(all)
    }
    fn transport(&self) -> &'static str {
        "MPI"
    }
}
