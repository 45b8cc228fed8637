//! Data-parallel SpIN (maths §10): W workers each take an equal share of every global batch,
//! and two sums per step (the N×N statistics and the P-float gradient) make every worker's
//! host work identical. A [`Collective`] is the transport: [`Solo`] for one process,
//! [`InMemory`] for workers on threads of one process (tests), [`local::LocalWorker`] for
//! processes of one machine that `spin --workers W` launches (Unix), and, with the cargo feature
//! `mpi`, [`mpi::MpiWorld`] over Open MPI (`mpirun -n W spin …`).

use std::sync::{Arc, Barrier, Mutex, OnceLock};

use crate::error::{Result, SpinError};

#[cfg(unix)]
pub mod local;
#[cfg(feature = "mpi")]
pub mod mpi;

/// A group of workers that sum arrays element-wise, every worker receiving the same result.
pub trait Collective: Send + Sync {
    /// This worker's index, 0-based.
    fn rank(&self) -> usize;
    /// The number of workers W.
    fn size(&self) -> usize;
    /// Replaces `data` on every worker by the element-wise sum over the workers (the same bits
    /// on every worker).
    fn sum_f64(&self, data: &mut [f64]) -> Result<()>;
    /// [`Collective::sum_f64`] for f32.
    fn sum_f32(&self, data: &mut [f32]) -> Result<()>;
    /// Every worker's `value`, in rank order.
    fn gather_u64(&self, value: u64) -> Result<Vec<u64>>;
    /// The transport, for banners and metrics ("one process", "MPI", "in-memory").
    fn transport(&self) -> &'static str;
}

/// One process alone: every sum is the identity.
#[derive(Clone, Copy, Debug, Default)]
pub struct Solo;

impl Collective for Solo {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn sum_f64(&self, _: &mut [f64]) -> Result<()> {
        Ok(())
    }
    fn sum_f32(&self, _: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn gather_u64(&self, value: u64) -> Result<Vec<u64>> {
        Ok(vec![value])
    }
    fn transport(&self) -> &'static str {
        "one process"
    }
}

/// Workers on threads of one process, summing through shared memory in rank order (so every
/// worker gets the same bits, as MPI's all-reduce gives them). Each worker must make the same
/// sequence of calls, as with MPI.
pub struct InMemory {
    rank: usize,
    shared: Arc<Shared>,
}

struct Shared {
    size: usize,
    barrier: Barrier,
    slots: Mutex<Vec<Vec<f64>>>,
}

impl InMemory {
    /// `size` connected workers, rank 0 first; hand one to each thread.
    pub fn group(size: usize) -> Vec<InMemory> {
        let size = size.max(1);
        let shared = Arc::new(Shared {
            size,
            barrier: Barrier::new(size),
            slots: Mutex::new(vec![Vec::new(); size]),
        });
        (0..size)
            .map(|rank| InMemory {
                rank,
                shared: shared.clone(),
            })
            .collect()
    }

    /// Posts `data`, waits for every worker's, and returns them all in rank order.
    fn exchange(&self, data: Vec<f64>) -> Result<Vec<Vec<f64>>> {
        let poisoned = |_| SpinError::Parallel("an in-memory worker panicked".into());
        self.shared.slots.lock().map_err(poisoned)?[self.rank] = data;
        self.shared.barrier.wait();
        let all = self.shared.slots.lock().map_err(poisoned)?.clone();
        // Nobody posts the next call's data before everyone has read this one's.
        self.shared.barrier.wait();
        if all.iter().any(|v| v.len() != all[0].len()) {
            return Err(SpinError::Parallel(
                "workers posted arrays of different lengths".into(),
            ));
        }
        Ok(all)
    }
}

impl Collective for InMemory {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.shared.size
    }
    fn sum_f64(&self, data: &mut [f64]) -> Result<()> {
        let all = self.exchange(data.to_vec())?;
        add_in_rank_order(data, &all);
        Ok(())
    }
    fn sum_f32(&self, data: &mut [f32]) -> Result<()> {
        let all: Vec<Vec<f32>> = self
            .exchange(data.iter().map(|&v| v as f64).collect())?
            .iter()
            .map(|v| v.iter().map(|&x| x as f32).collect())
            .collect();
        add_in_rank_order(data, &all);
        Ok(())
    }
    fn gather_u64(&self, value: u64) -> Result<Vec<u64>> {
        // Two 32-bit halves, exact in f64.
        let all = self.exchange(vec![(value >> 32) as f64, (value & 0xFFFF_FFFF) as f64])?;
        Ok(all
            .iter()
            .map(|v| ((v[0] as u64) << 32) | v[1] as u64)
            .collect())
    }
    fn transport(&self) -> &'static str {
        "in-memory"
    }
}

/// `data[i] = Σ_r all[r][i]`, added in rank order from zero, so that every worker that adds the
/// same arrays gets the same bits (the in-memory and local-process transports' all-reduce).
pub(crate) fn add_in_rank_order<T>(data: &mut [T], all: &[Vec<T>])
where
    T: Copy + Default + std::ops::Add<Output = T>,
{
    for (i, d) in data.iter_mut().enumerate() {
        *d = all.iter().fold(T::default(), |acc, v| acc + v[i]);
    }
}

static WORLD: OnceLock<Arc<dyn Collective>> = OnceLock::new();
static NOTES: OnceLock<Mutex<std::fs::File>> = OnceLock::new();

/// Where [`note`] writes instead of standard error (a rank whose standard error was silenced
/// keeps the original stream here).
pub fn set_note_sink(file: std::fs::File) {
    let _ = NOTES.set(Mutex::new(file));
}

/// A line that every rank reports (its banner, its final θ hash, its error), prefixed with the
/// rank in a data-parallel run, on the original standard error even where the rank's other
/// output is silenced.
pub fn note(line: &str) {
    use std::io::Write;
    let w = world();
    let line = if w.size() > 1 {
        format!("[rank {}/{}] {line}\n", w.rank(), w.size())
    } else {
        format!("{line}\n")
    };
    // One write per line: MPI launchers merge the ranks' streams, write by write.
    let _ = match NOTES.get().and_then(|m| m.lock().ok()) {
        Some(mut f) => f.write_all(line.as_bytes()),
        None => std::io::stderr().lock().write_all(line.as_bytes()),
    };
}

/// The process's workers: what [`set_world`] installed (the `spin` binary under `mpirun`),
/// or [`Solo`].
pub fn world() -> Arc<dyn Collective> {
    WORLD.get().cloned().unwrap_or_else(|| Arc::new(Solo))
}

/// Installs the process's workers, once, before any trainer is made.
/// Only rank 0 writes files ([`crate::io::set_writes`]).
pub fn set_world(world: Arc<dyn Collective>) -> Result<()> {
    let writer = world.rank() == 0;
    WORLD
        .set(world)
        .map_err(|_| SpinError::Parallel("the workers were already set".into()))?;
    crate::io::set_writes(writer);
    Ok(())
}

/// Whether this process writes files: rank 0 of the world does, the others only compute.
pub fn is_writer() -> bool {
    world().rank() == 0
}

/// A hash of θ's bits, compared between workers to catch one that drifted.
pub fn params_hash(params: &[f32]) -> u64 {
    // FNV-1a over the bytes: stable across builds and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytemuck::cast_slice::<f32, u8>(params) {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The traffic and time of a trainer's sums (all zero in one process).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Traffic {
    /// Sums made.
    pub calls: u64,
    /// Bytes each worker contributed to them.
    pub bytes: u64,
    /// Seconds spent in them (waiting for the slowest worker included).
    pub seconds: f64,
}

/// A trainer's handle on its workers, counting what the sums cost.
#[derive(Clone)]
pub struct Workers {
    collective: Arc<dyn Collective>,
    /// What the sums cost so far.
    pub traffic: Traffic,
}

impl Workers {
    /// A handle on `collective`.
    pub fn new(collective: Arc<dyn Collective>) -> Self {
        Self {
            collective,
            traffic: Traffic::default(),
        }
    }
    /// This worker's index.
    pub fn rank(&self) -> usize {
        self.collective.rank()
    }
    /// The number of workers.
    pub fn size(&self) -> usize {
        self.collective.size()
    }
    /// The transport's name.
    pub fn transport(&self) -> &'static str {
        self.collective.transport()
    }
    /// Whether more than one worker shares the work.
    pub fn is_parallel(&self) -> bool {
        self.size() > 1
    }
    fn count<T>(&mut self, n: usize, f: impl FnOnce(&dyn Collective) -> Result<T>) -> Result<T> {
        if !self.is_parallel() {
            return f(&*self.collective);
        }
        let t = std::time::Instant::now();
        let out = f(&*self.collective);
        self.traffic.calls += 1;
        self.traffic.bytes += n as u64;
        self.traffic.seconds += t.elapsed().as_secs_f64();
        out
    }
    /// Replaces `data` by its mean over the workers.
    pub fn mean_f64(&mut self, data: &mut [f64]) -> Result<()> {
        if !self.is_parallel() {
            return Ok(());
        }
        self.count(std::mem::size_of_val(data), |c| c.sum_f64(data))?;
        let w = self.size() as f64;
        data.iter_mut().for_each(|v| *v /= w);
        Ok(())
    }
    /// Replaces `data` by its mean over the workers.
    pub fn mean_f32(&mut self, data: &mut [f32]) -> Result<()> {
        if !self.is_parallel() {
            return Ok(());
        }
        self.count(std::mem::size_of_val(data), |c| c.sum_f32(data))?;
        let w = self.size() as f32;
        data.iter_mut().for_each(|v| *v /= w);
        Ok(())
    }
    /// Replaces `data` by its sum over the workers.
    pub fn sum_f64(&mut self, data: &mut [f64]) -> Result<()> {
        if !self.is_parallel() {
            return Ok(());
        }
        self.count(std::mem::size_of_val(data), |c| c.sum_f64(data))
    }
    /// Rank 0's `value` on every worker (e.g. its clock, which decides a time limit for all).
    pub fn from_rank0(&mut self, value: f64) -> Result<f64> {
        let mut v = [if self.rank() == 0 { value } else { 0.0 }];
        self.sum_f64(&mut v)?;
        Ok(v[0])
    }
    /// Checks that every worker holds the same θ (bit for bit); an error names the ranks that
    /// differ from rank 0.
    pub fn check_same(&mut self, params: &[f32], step: u64) -> Result<u64> {
        let h = params_hash(params);
        if !self.is_parallel() {
            return Ok(h);
        }
        let all = self.count(8, |c| c.gather_u64(h))?;
        let off: Vec<String> = (0..all.len())
            .filter(|&r| all[r] != all[0])
            .map(|r| r.to_string())
            .collect();
        if off.is_empty() {
            Ok(h)
        } else {
            Err(SpinError::Parallel(format!(
                "at step {step} the parameters of rank(s) {} differ from rank 0's: the workers drifted apart (different builds, adapters or drivers on the ranks?)",
                off.join(", ")
            )))
        }
    }
}
