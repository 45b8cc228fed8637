//! The trainer's evaluations: Σ, Π and Ritz values on large fresh samples (maths §2), the
//! read-out refit, and the network's outputs and eigenfunctions at any points.

use nalgebra::DMatrix;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::super::engine::{Engine, Probe};
use super::super::parallel::Workers;
use super::{Evaluation, Trainer};
use crate::error::{Result, SpinError};
use crate::nn::NetworkSpec;
use crate::operators::samplers::Sampler;
use crate::operators::{Batch, Operator};
use crate::spin::host::{ritz_std_errors, ritz_values, step_matrices};

/// Σ̂ = (1/S) Σ_r w_r u_r u_rᵀ and Π̂ = (1/Q) Σ_q w_q x_q y_qᵀ of `batch` ((N, N) row-major),
/// summed in f64 on the host from the values [`Engine::forward_values`] left on the GPU.
fn host_moments(engine: &Engine, batch: &Batch) -> Result<(Vec<f64>, Vec<f64>)> {
    let n = engine.spec().outputs;
    let (s, q) = (batch.shape.samples, batch.shape.pairs);
    let weighted_gram = |a: &[f32], b: &[f32], w: &[f32], rows: usize| -> Vec<f64> {
        let am = DMatrix::from_fn(rows, n, |r, k| a[r * n + k] as f64 * w[r] as f64);
        let bm = DMatrix::from_fn(rows, n, |r, k| b[r * n + k] as f64);
        let g = am.tr_mul(&bm) / rows.max(1) as f64;
        (0..n * n).map(|e| g[(e / n, e % n)]).collect()
    };
    let u = engine.read(Probe::U)?;
    let sigma = weighted_gram(&u[..s * n], &u[..s * n], &batch.sample_weights, s);
    let pi = weighted_gram(
        &engine.read(Probe::X)?,
        &engine.read(Probe::Y)?,
        &batch.pair_weights,
        q,
    );
    Ok((sigma, pi))
}

/// Monte Carlo moments of the network's outputs on a sample.
struct Moments {
    samples: usize,
    sigma: Vec<f64>,
    pi: Vec<f64>,
    chunks: Vec<(DMatrix<f64>, DMatrix<f64>)>,
}

/// An evaluation's running sums over its chunks: Σ and Π weighted by each chunk's samples and
/// pairs, and each chunk's own pair for the standard errors.
struct MomentSums {
    n: usize,
    sigma: Vec<f64>,
    pi: Vec<f64>,
    samples: usize,
    pairs: usize,
    /// Each chunk's (Σ, Π); empty matrices where another worker evaluated the chunk.
    chunks: Vec<(DMatrix<f64>, DMatrix<f64>)>,
}

impl MomentSums {
    fn new(n: usize) -> Self {
        Self {
            n,
            sigma: vec![0.0; n * n],
            pi: vec![0.0; n * n],
            samples: 0,
            pairs: 0,
            chunks: Vec::new(),
        }
    }

    fn matrix(&self, v: &[f64]) -> DMatrix<f64> {
        let n = self.n;
        DMatrix::from_fn(n, n, |i, j| v[i * n + j])
    }

    /// A chunk that another worker evaluates (an empty place in `chunks`).
    fn skip(&mut self) {
        self.chunks.push(Default::default());
    }

    /// Evaluates `batch` with θ = `params` on `engine` (on the host in f64 with `host`) and
    /// adds its moments.
    fn add(&mut self, engine: &Engine, batch: &Batch, params: &[f32], host: bool) -> Result<()> {
        engine.set_params(params)?;
        engine.set_batch(batch)?;
        let (s, p) = if host {
            engine.forward_values()?;
            host_moments(engine, batch)?
        } else {
            let (s, p) = engine.statistics()?;
            let wide = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<_>>();
            (wide(s), wide(p))
        };
        self.chunks.push((self.matrix(&s), self.matrix(&p)));
        let (ns, nq) = (batch.shape.samples, batch.shape.pairs);
        for i in 0..self.n * self.n {
            self.sigma[i] += s[i] * ns as f64;
            self.pi[i] += p[i] * nq as f64;
        }
        self.samples += ns;
        self.pairs += nq;
        Ok(())
    }

    /// Sums over the workers of a data-parallel run, in one all-reduce: the moments, the counts
    /// and every chunk's pair (zero where another worker evaluated it). The exhaustive batch is
    /// one exact chunk, wherever it was evaluated, and keeps no chunk pairs.
    fn pool(&mut self, workers: &mut Workers, exhaustive: bool) -> Result<()> {
        let n = self.n;
        let mut all = Vec::with_capacity(2 * n * n * (1 + self.chunks.len()) + 2);
        all.extend_from_slice(&self.sigma);
        all.extend_from_slice(&self.pi);
        all.push(self.samples as f64);
        all.push(self.pairs as f64);
        for (s, p) in &self.chunks {
            for m in [s, p] {
                if m.is_empty() {
                    all.extend(std::iter::repeat_n(0.0, n * n));
                } else {
                    all.extend((0..n * n).map(|e| m[(e / n, e % n)]));
                }
            }
        }
        workers.sum_f64(&mut all)?;
        self.sigma.copy_from_slice(&all[..n * n]);
        self.pi.copy_from_slice(&all[n * n..2 * n * n]);
        self.samples = all[2 * n * n] as usize;
        self.pairs = all[2 * n * n + 1] as usize;
        self.chunks = if exhaustive {
            Vec::new()
        } else {
            all[2 * n * n + 2..]
                .chunks(2 * n * n)
                .map(|c| (self.matrix(&c[..n * n]), self.matrix(&c[n * n..])))
                .collect()
        };
        Ok(())
    }

    /// The means.
    fn into_moments(self) -> Moments {
        Moments {
            samples: self.samples,
            sigma: self.sigma.iter().map(|v| v / self.samples as f64).collect(),
            pi: self.pi.iter().map(|v| v / self.pairs as f64).collect(),
            chunks: self.chunks,
        }
    }
}

impl Trainer {
    /// [`Trainer::evaluate`] with another estimator of the same operator (e.g. the exact
    /// Laplacian's ⟨v, Hv⟩ for a run trained with the weak form ⟨∇v, c∇v⟩ + ⟨v, Vv⟩: the same
    /// integral, but its variance vanishes as v approaches an eigenfunction).
    pub fn evaluate_with(
        &mut self,
        operator: Operator,
        samples: usize,
        chunk: usize,
        seed: u64,
    ) -> Result<Evaluation> {
        let trained = std::mem::replace(&mut self.problem.operator, operator);
        let result = self.evaluate(samples, chunk, seed);
        self.problem.operator = trained;
        result
    }

    /// [`Trainer::evaluate_with`] on points drawn from `sampler` (with its importance weights)
    /// instead of the trainer's own, e.g. a fixed held-out proposal while an adaptive one moves.
    pub fn evaluate_on(
        &mut self,
        operator: Operator,
        sampler: &mut Box<dyn Sampler>,
        samples: usize,
        chunk: usize,
        seed: u64,
    ) -> Result<Evaluation> {
        std::mem::swap(&mut self.problem.sampler, sampler);
        let result = self.evaluate_with(operator, samples, chunk, seed);
        std::mem::swap(&mut self.problem.sampler, sampler);
        result
    }

    /// The final evaluation (maths §2): Σ, Π on `samples` fresh points in chunks of `chunk`
    /// (or the exhaustive batch of a finite space), Λ = L⁻¹ Π L⁻ᵀ, its diagonal and Ritz values.
    pub fn evaluate(&mut self, samples: usize, chunk: usize, seed: u64) -> Result<Evaluation> {
        let m = self.moments(samples, chunk, seed, false)?;
        let n = self.problem.spec.outputs;
        let to_m = |v: &[f64]| DMatrix::from_fn(n, n, |i, j| v[i * n + j]);
        let steps = step_matrices(&to_m(&m.sigma), &to_m(&m.pi))?;
        Ok(Evaluation {
            samples: m.samples,
            lambda_diag: steps.eigenvalues(),
            eigenvalues: ritz_values(&steps.lambda),
            eigenvalue_std_errors: ritz_std_errors(&to_m(&m.sigma), &to_m(&m.pi), &m.chunks)?,
            sigma: m.sigma,
            pi: m.pi,
        })
    }

    /// Σ and Π ((N, N) row-major, means over the sample) of the current network on `samples`
    /// fresh points in chunks of `chunk` (or the exhaustive batch of a finite space), with each
    /// chunk's own pair for the standard errors.
    /// With `host`, the reductions are done here in f64 from the outputs and the operator's
    /// X, Y read back (for a wide basis, where the GPU's one-entry-per-thread reduction is slow).
    /// In a data-parallel run the workers take turns with the chunks (or share the exhaustive
    /// batch) and their sums are added up: every worker ends with the same moments, equal to
    /// one process's to rounding.
    fn moments(&mut self, samples: usize, chunk: usize, seed: u64, host: bool) -> Result<Moments> {
        let n = self.problem.spec.outputs;
        let (rank, size) = (self.workers.rank(), self.workers.size());
        let mut sums = MomentSums::new(n);
        let exhaustive = self.problem.sampler.exhaustive();
        if let Some((points, weights)) = &exhaustive {
            // A batch that does not split evenly is evaluated whole by rank 0.
            let batch = match self.problem.shard_batch(points, weights, rank, size) {
                Ok(b) => Some(b),
                Err(_) => (rank == 0)
                    .then(|| self.problem.batch(points, weights))
                    .transpose()?,
            };
            if let Some(batch) = batch {
                let engine = Engine::new(self.ctx.clone(), &self.problem.spec, batch.shape, false)?;
                sums.add(&engine, &batch, &self.params, host)?;
            }
        } else {
            let chunk = chunk.max(2).min(samples.max(2)) & !1;
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut engine: Option<Engine> = None;
            let mut done = 0;
            let mut index = 0;
            while done < samples {
                // Every worker draws every chunk (one stream, as in one process) and
                // evaluates its own turns.
                let (points, weights) = self.problem.sampler.sample(&mut rng, chunk);
                let mine = index % size == rank;
                index += 1;
                done += chunk;
                if !mine {
                    sums.skip();
                    continue;
                }
                let batch = self.problem.batch(&points, &weights)?;
                if engine.as_ref().is_none_or(|e| e.shape() != batch.shape) {
                    engine = Some(Engine::new(
                        self.ctx.clone(),
                        &self.problem.spec,
                        batch.shape,
                        false,
                    )?);
                }
                if let Some(e) = &engine {
                    sums.add(e, &batch, &self.params, host)?;
                }
            }
        }
        if size > 1 {
            sums.pool(&mut self.workers, exhaustive.is_some())?;
        }
        Ok(sums.into_moments())
    }

    /// Rayleigh–Ritz on the span of the last hidden layer's units and the constant (each times
    /// the envelope), estimated on `samples` fresh points with `operator`: the output layer is
    /// replaced by the N lowest Ritz vectors of that space. The N learned functions lie in it
    /// (they are a linear read-out of it), so on the fitting sample the Ritz values can only
    /// fall; they are biased low by the fit, so judge the result on a fresh sample
    /// ([`Trainer::evaluate`] with another seed). Directions of the basis's Gram matrix below
    /// `rel_tol` of its largest (correlation-scaled) are dropped. Returns the Ritz values on
    /// the fitting sample. Only for networks that end in a dense layer after a hidden one,
    /// without a constant first output or a training mask (the new read-out is dense); the
    /// optimiser, Σ̄ and J̄ are left as they were, so training should not go on after it.
    pub fn refit_readout(
        &mut self,
        operator: Operator,
        samples: usize,
        chunk: usize,
        seed: u64,
        rel_tol: f64,
    ) -> Result<Vec<f64>> {
        let spec = self.problem.spec.clone();
        let last = *spec
            .layers()
            .last()
            .ok_or_else(|| SpinError::Config("no layers".into()))?;
        if spec.constant_first || self.mask.is_some() {
            return Err(SpinError::Config(
                "the read-out refit needs a dense last layer after a hidden one, no constant output and no mask".into(),
            ));
        }
        let h = last.inputs;
        let n = spec.outputs;
        let (basis_spec, basis_params) = self.hidden_layer_network(true)?;
        let trained_spec = std::mem::replace(&mut self.problem.spec, basis_spec);
        let trained_params = std::mem::replace(&mut self.params, basis_params);
        let trained_op = std::mem::replace(&mut self.problem.operator, operator);
        let moments = self.moments(samples, chunk, seed, true);
        self.problem.spec = trained_spec;
        self.params = trained_params;
        self.problem.operator = trained_op;
        let m = moments?;
        let f = h + 1;
        let to_m = |v: &[f64]| DMatrix::from_fn(f, f, |i, j| v[i * f + j]);
        let (values, c) =
            crate::spin::host::lowest_ritz_pairs(&to_m(&m.sigma), &to_m(&m.pi), n, rel_tol)?;
        for j in 0..n {
            for i in 0..h {
                self.params[last.w(i, j)] = c[(i, j)] as f32;
            }
            self.params[last.b(j)] = c[(h, j)] as f32;
        }
        Ok(values)
    }

    /// The last hidden layer as a network of its own: the same hidden layers, then the identity
    /// on its H units (and, with `constant`, one more unit that is 1). Only for networks that
    /// end in a dense layer after a hidden one.
    pub fn hidden_layer_network(&self, constant: bool) -> Result<(NetworkSpec, Vec<f32>)> {
        let spec = &self.problem.spec;
        let layers = spec.layers();
        let last = *layers
            .last()
            .ok_or_else(|| SpinError::Config("no layers".into()))?;
        if layers.len() < 2 || last.conv().is_some() {
            return Err(SpinError::Config(
                "the read-out refit needs a dense last layer after a hidden one".into(),
            ));
        }
        let h = last.inputs;
        let mut basis_spec = spec.clone();
        basis_spec.outputs = h + constant as usize;
        basis_spec.constant_first = false;
        let basis_last = *basis_spec.layers().last().expect("same layers");
        let mut basis_params = self.params[..last.offset].to_vec();
        basis_params.resize(basis_last.offset + basis_last.len(), 0.0);
        for i in 0..h {
            basis_params[basis_last.w(i, i)] = 1.0;
        }
        if constant {
            basis_params[basis_last.b(h)] = 1.0;
        }
        Ok((basis_spec, basis_params))
    }

    /// The outputs of another network (`spec`, `params`) on this problem's inputs at `points`
    /// (count, dim) → (count, outputs), in pieces that fit the adapter (e.g. the last hidden
    /// layer, [`Trainer::hidden_layer_network`]).
    pub fn outputs_of(
        &self,
        spec: &NetworkSpec,
        params: &[f32],
        points: &[f64],
    ) -> Result<Vec<f64>> {
        let rows = Engine::max_plain_rows(&self.ctx, spec);
        self.evaluate_network(spec, params, points, rows)
    }

    /// Network outputs u at `points` (count, dim) → (count, N), in pieces that fit the
    /// adapter's storage binding limit.
    pub fn outputs(&self, points: &[f64]) -> Result<Vec<f64>> {
        self.outputs_in_pieces(
            points,
            Engine::max_plain_rows(&self.ctx, &self.problem.spec),
        )
    }

    /// [`Trainer::outputs`] evaluated `rows` inputs at a time (the same values).
    pub fn outputs_in_pieces(&self, points: &[f64], rows: usize) -> Result<Vec<f64>> {
        self.evaluate_network(&self.problem.spec, &self.params, points, rows)
    }

    fn evaluate_network(
        &self,
        spec: &NetworkSpec,
        params: &[f32],
        points: &[f64],
        rows: usize,
    ) -> Result<Vec<f64>> {
        let dim = self.problem.sampler.dim().max(1);
        let rows = rows.max(1);
        let mut out = Vec::with_capacity(points.len() / dim * spec.outputs);
        // One evaluation engine kept for the next call of the same shape (an adaptive
        // proposal's refit evaluates the same grid every few hundred steps).
        let mut cached = self.outputs_engine.borrow_mut();
        for piece in points.chunks(rows * dim) {
            let mut batch = Batch::plain(piece, dim)?;
            batch.add_features(spec);
            let reuse = cached
                .as_ref()
                .is_some_and(|e| e.shape() == batch.shape && e.spec() == spec);
            if !reuse {
                *cached = None;
                *cached = Some(Engine::new(self.ctx.clone(), spec, batch.shape, false)?);
            }
            let engine = cached.as_ref().expect("an engine was just made");
            engine.set_params(params)?;
            engine.set_batch(&batch)?;
            engine.forward_values()?;
            out.extend(engine.read(Probe::U)?.into_iter().map(|v| v as f64));
        }
        Ok(out)
    }

    /// Ordered eigenfunctions v = L⁻¹ u at `points`, with L = chol(`sigma`) ((N, N) row-major).
    pub fn eigenfunctions(&self, points: &[f64], sigma: &[f64]) -> Result<Vec<f64>> {
        let n = self.problem.spec.outputs;
        let u = self.outputs(points)?;
        let l = crate::spin::host::cholesky(&DMatrix::from_fn(n, n, |i, j| sigma[i * n + j]))?;
        let count = u.len() / n;
        let umat = DMatrix::from_fn(n, count, |i, c| u[c * n + i]);
        let v = l.solve_lower_triangular(&umat).ok_or(SpinError::Cholesky {
            feature: 0,
            pivot: 0.0,
        })?;
        Ok((0..count)
            .flat_map(|c| (0..n).map(move |i| (c, i)))
            .map(|(c, i)| v[(i, c)])
            .collect())
    }
}
