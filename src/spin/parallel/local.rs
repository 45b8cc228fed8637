//! Workers as processes of one machine (`spin … --workers W`): the `spin` process that the user
//! started launches W copies of itself, each connected to every other by a Unix socket pair
//! that it inherits. A sum sends this worker's array to every peer and reads theirs; each
//! worker then adds them in rank order, so every worker gets the same bits (as MPI's
//! all-reduce gives them).
//!
//! Why processes: on a CPU adapter (Mesa lavapipe) a dispatch costs ≈ 50–65 µs of thread-pool
//! wake-up and join when lavapipe runs its own threads, ≈ 1.3 µs when it runs the kernel on the
//! calling thread (`LP_NUM_THREADS=0`, `cargo run --example lavapipe_dispatch`). Processes, one
//! single-threaded lavapipe each, use the cores on every backend (two devices of one process
//! run in parallel on lavapipe's Vulkan driver but one after the other on Mesa's GL one), and
//! they are what MPI ranks already are (docs/results/speed.md).
//!
//! Wire format, per collective call and peer: `len: u64 LE`, then `len` bytes. The sockets are
//! non-blocking: a worker writes to and reads from all peers in turn (so two large arrays
//! cannot deadlock), spins briefly while nothing moves (the peers are usually microseconds
//! behind) and then sleeps in `poll`.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Collective;
use crate::error::{Result, SpinError};

/// Environment variable giving a launched worker its rank.
pub const ENV_RANK: &str = "SPIN_WORKER_RANK";
/// … and its sockets to the other workers: one file descriptor per rank, comma-separated, `-`
/// at its own rank.
pub const ENV_PEERS: &str = "SPIN_WORKER_PEERS";

/// How long a worker spins on its sockets before it sleeps in `poll`.
const SPIN: Duration = Duration::from_micros(300);

fn lost(what: &str, e: impl std::fmt::Display) -> SpinError {
    SpinError::Parallel(format!("{what}: {e} (another worker stopped)"))
}

/// One worker process, connected to every other.
pub struct LocalWorker {
    rank: usize,
    /// The socket to each other worker, by rank (`None` at this worker's own rank).
    peers: Mutex<Vec<Option<UnixStream>>>,
}

/// The socket pairs that connect `size` workers: element r is worker r's end towards every
/// rank (`None` at r).
pub fn mesh(size: usize) -> Result<Vec<Vec<Option<UnixStream>>>> {
    let mut pairs = std::collections::HashMap::new();
    for r in 0..size {
        for s in r + 1..size {
            let (a, b) = UnixStream::pair().map_err(|e| lost("making a socket pair", e))?;
            pairs.insert((r, s), a);
            pairs.insert((s, r), b);
        }
    }
    Ok((0..size)
        .map(|r| (0..size).map(|s| pairs.remove(&(r, s))).collect())
        .collect())
}

impl LocalWorker {
    /// The worker this process is, when a launcher started it ([`ENV_RANK`] and [`ENV_PEERS`]
    /// are set): `None` otherwise.
    pub fn from_env() -> Option<Result<Self>> {
        let rank = std::env::var(ENV_RANK).ok()?;
        Some((|| {
            let bad = |what: &str| SpinError::Parallel(format!("a launched worker's {what}"));
            let rank: usize = rank.parse().map_err(|_| bad(ENV_RANK))?;
            let list = std::env::var(ENV_PEERS).map_err(|_| bad(ENV_PEERS))?;
            let mut peers = Vec::new();
            for (r, f) in list.split(',').enumerate() {
                if r == rank {
                    peers.push(None);
                    continue;
                }
                let fd: i32 = f.parse().map_err(|_| bad(ENV_PEERS))?;
                // SAFETY: the launcher made this descriptor a socket for this process alone
                // (its other copies close on exec), and nothing else in it uses the number.
                peers.push(Some(UnixStream::from(unsafe { OwnedFd::from_raw_fd(fd) })));
            }
            Self::new(rank, peers)
        })())
    }

    /// Worker `rank` with its sockets to the other workers (by rank, `None` at `rank`).
    pub fn new(rank: usize, peers: Vec<Option<UnixStream>>) -> Result<Self> {
        if rank >= peers.len() || peers[rank].is_some() {
            return Err(SpinError::Parallel(format!(
                "worker rank {rank} of {} workers",
                peers.len()
            )));
        }
        for p in peers.iter().flatten() {
            p.set_nonblocking(true).map_err(|e| lost("socket", e))?;
        }
        Ok(Self {
            rank,
            peers: Mutex::new(peers),
        })
    }

    /// Sends `data` to every peer and returns every worker's, in rank order.
    fn exchange(&self, data: &[u8]) -> Result<Vec<Vec<u8>>> {
        let peers = self
            .peers
            .lock()
            .map_err(|_| SpinError::Parallel("the worker's sockets were poisoned".into()))?;
        let size = peers.len();
        let mut msg = Vec::with_capacity(8 + data.len());
        msg.extend_from_slice(&(data.len() as u64).to_le_bytes());
        msg.extend_from_slice(data);
        let need = msg.len();
        let mut sent = vec![need; size];
        let mut got = vec![need; size];
        let mut bufs: Vec<Vec<u8>> = vec![Vec::new(); size];
        for r in (0..size).filter(|&r| r != self.rank) {
            sent[r] = 0;
            got[r] = 0;
            bufs[r] = vec![0u8; need];
        }
        let mut idle = Instant::now();
        loop {
            let mut moved = false;
            for r in 0..size {
                let Some(mut sock) = peers[r].as_ref() else {
                    continue;
                };
                if sent[r] < need {
                    match sock.write(&msg[sent[r]..]) {
                        Ok(n) => {
                            sent[r] += n;
                            moved |= n > 0;
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(lost(&format!("sending to worker {r}"), e)),
                    }
                }
                if got[r] < need {
                    match sock.read(&mut bufs[r][got[r]..]) {
                        Ok(0) => {
                            return Err(lost(
                                &format!("receiving from worker {r}"),
                                "end of stream",
                            ))
                        }
                        Ok(n) => {
                            let before = got[r];
                            got[r] += n;
                            moved = true;
                            if before < 8 && got[r] >= 8 && bufs[r][..8] != msg[..8] {
                                return Err(SpinError::Parallel(
                                    "workers posted arrays of different lengths".into(),
                                ));
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(lost(&format!("receiving from worker {r}"), e)),
                    }
                }
            }
            if sent.iter().all(|&s| s == need) && got.iter().all(|&g| g == need) {
                break;
            }
            if moved {
                idle = Instant::now();
            } else if idle.elapsed() < SPIN {
                std::hint::spin_loop();
            } else {
                wait(&peers, &sent, &got, need);
            }
        }
        bufs[self.rank] = msg;
        Ok(bufs.into_iter().map(|mut b| b.split_off(8)).collect())
    }
}

/// Sleeps until a socket with bytes still to send can take more, or one still to read from has
/// some (or 100 ms pass).
fn wait(peers: &[Option<UnixStream>], sent: &[usize], got: &[usize], need: usize) {
    let mut fds: Vec<libc::pollfd> = peers
        .iter()
        .enumerate()
        .filter_map(|(r, p)| {
            let p = p.as_ref()?;
            let mut events = 0;
            if sent[r] < need {
                events |= libc::POLLOUT;
            }
            if got[r] < need {
                events |= libc::POLLIN;
            }
            (events != 0).then_some(libc::pollfd {
                fd: p.as_raw_fd(),
                events,
                revents: 0,
            })
        })
        .collect();
    // SAFETY: `fds` is a valid array of pollfd for its length; poll only writes `revents`.
    unsafe {
        libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100);
    }
}

impl Collective for LocalWorker {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.peers.lock().map_or(1, |p| p.len())
    }
    fn sum_f64(&self, data: &mut [f64]) -> Result<()> {
        let all = self.exchange(bytemuck::cast_slice(data))?;
        let all: Vec<Vec<f64>> = all.iter().map(|b| decode(b)).collect();
        super::add_in_rank_order(data, &all);
        Ok(())
    }
    fn sum_f32(&self, data: &mut [f32]) -> Result<()> {
        let all = self.exchange(bytemuck::cast_slice(data))?;
        let all: Vec<Vec<f32>> = all.iter().map(|b| decode(b)).collect();
        super::add_in_rank_order(data, &all);
        Ok(())
    }
    fn gather_u64(&self, value: u64) -> Result<Vec<u64>> {
        let all = self.exchange(&value.to_le_bytes())?;
        Ok(all.iter().map(|b| decode::<u64>(b)[0]).collect())
    }
    fn transport(&self) -> &'static str {
        "local-process"
    }
}

/// Values of type `T` from bytes (copied: the bytes need not be aligned).
fn decode<T: bytemuck::Pod>(bytes: &[u8]) -> Vec<T> {
    bytes
        .chunks_exact(std::mem::size_of::<T>())
        .map(bytemuck::pod_read_unaligned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three workers on threads sum in rank order and gather in rank order, also arrays larger
    /// than a socket's buffer; a worker that leaves makes the others' next exchange fail
    /// instead of hanging.
    #[test]
    fn workers_sum_over_the_mesh_and_notice_a_worker_that_left() {
        let workers: Vec<_> = mesh(3)
            .unwrap()
            .into_iter()
            .enumerate()
            .map(|(r, peers)| {
                std::thread::spawn(move || {
                    let w = LocalWorker::new(r, peers).unwrap();
                    let mut a = vec![r as f64, 0.1 * r as f64, 1e16];
                    w.sum_f64(&mut a).unwrap();
                    let mut b = vec![1.5f32 * r as f32; 1 << 20];
                    w.sum_f32(&mut b).unwrap();
                    let g = w.gather_u64(u64::MAX - r as u64).unwrap();
                    let after = if r == 2 {
                        drop(w);
                        None
                    } else {
                        let mut c = vec![1.0f64];
                        Some(w.sum_f64(&mut c))
                    };
                    (a, b, g, after)
                })
            })
            .collect();
        for h in workers {
            let (a, b, g, after) = h.join().unwrap();
            assert_eq!(a, vec![3.0, 0.0 + 0.1 + 0.2, 3e16]);
            assert!(b.iter().all(|&v| v == 4.5f32));
            assert_eq!(g, vec![u64::MAX, u64::MAX - 1, u64::MAX - 2]);
            if let Some(r) = after {
                let e = r.unwrap_err().to_string();
                assert!(e.contains("stopped"), "{e}");
            }
        }
    }

    #[test]
    fn workers_that_post_different_lengths_are_told() {
        let hs: Vec<_> = mesh(2)
            .unwrap()
            .into_iter()
            .enumerate()
            .map(|(r, peers)| {
                std::thread::spawn(move || {
                    let w = LocalWorker::new(r, peers).unwrap();
                    let mut a = vec![1.0f64; 1 + r];
                    w.sum_f64(&mut a).unwrap_err().to_string()
                })
            })
            .collect();
        for h in hs {
            let e = h.join().unwrap();
            assert!(e.contains("different lengths"), "{e}");
        }
    }

    #[test]
    fn a_rank_without_its_own_gap_is_refused() {
        let mut ends = mesh(2).unwrap();
        assert!(LocalWorker::new(2, ends.remove(0)).is_err());
        assert!(LocalWorker::new(1, ends.remove(0)).is_ok());
    }
}
