//! A trainer's state for checkpoints: what is saved, and resuming from it.

use nalgebra::DMatrix;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::super::checkpoint::TrainerState;
use super::super::host::flat;
use super::Trainer;
use crate::error::{Result, SpinError};

impl Trainer {
    /// Everything needed to resume: reads J̄ back from the GPU. In a data-parallel run J̄ is
    /// the workers' mean, all that the gradient uses (maths §10), so a run resumes at any W, and
    /// every worker's J̄ is set to it; a collective call then, which every worker must make.
    pub fn state(&mut self) -> Result<TrainerState> {
        let mut jbar = self.engine.read_jbar()?;
        if !jbar.is_empty() && self.workers.is_parallel() {
            self.workers.mean_f32(&mut jbar)?;
            // Every rank continues from the mean too (the gradient only ever uses the mean, so
            // this changes nothing but rounding): a run resumed from this checkpoint then
            // takes the same steps, bit for bit, as the run that wrote it.
            self.engine.write_jbar(&jbar)?;
        }
        Ok(TrainerState {
            step: self.step,
            params: self.params.clone(),
            sigma_avg: flat(&self.sigma_avg),
            jbar,
            opt_m: self.optimizer.m.clone(),
            opt_v: self.optimizer.v.clone(),
            opt_t: self.optimizer.t,
            opt_grad_norm: self.optimizer.grad_norm,
            lambda_ema: self.lambda_ema.clone(),
            rng_seed: self.rng.get_seed(),
            rng_stream: self.rng.get_stream(),
            rng_word_pos: self.rng.get_word_pos(),
            sampler: self.problem.sampler.state(),
            final_params: Vec::new(),
            readout: Vec::new(),
            readout_shape: [0; 3],
            train_seconds: 0.0,
            tail_start: self.tail_start,
            lr_scale: self.optimizer.lr_scale,
        })
    }

    /// Continues from a saved state (same problem; β may differ from the saved run's). A state
    /// without J̄ (saved at β = 1, whose fused gradient keeps none) resumed at β < 1 starts J̄
    /// from the first step's Ĵ, as β = 1 would have; a state with J̄ resumed at β = 1 drops it.
    pub fn restore(&mut self, state: &TrainerState) -> Result<()> {
        let n = self.problem.spec.outputs;
        let p = self.params.len();
        let opt_len = |v: &Vec<f64>, want: &Vec<f64>| v.len() == want.len();
        let jbar_len = n * (n + 1) / 2 * p;
        if state.params.len() != p
            || state.sigma_avg.len() != n * n
            || !(state.jbar.is_empty() || state.jbar.len() == jbar_len)
            || !opt_len(&state.opt_m, &self.optimizer.m)
            || !opt_len(&state.opt_v, &self.optimizer.v)
        {
            return Err(SpinError::Shape(
                "the checkpoint does not match this network, number of eigenfunctions or optimiser"
                    .into(),
            ));
        }
        self.problem.sampler.set_state(&state.sampler)?;
        // A run saved in its tail continues there, on the Σ-Jacobian path with its J̄.
        self.tail_start = state.tail_start.filter(|_| self.has_tail());
        if self.tail_start.is_some() {
            self.use_jacobian_engine()?;
        }
        self.jbar_fresh = state.jbar.is_empty() && !self.engine.is_fused();
        if !state.jbar.is_empty() {
            self.engine.write_jbar(&state.jbar)?;
        }
        self.params = state.params.clone();
        self.sigma_avg = DMatrix::from_fn(n, n, |i, j| state.sigma_avg[i * n + j]);
        self.optimizer.m = state.opt_m.clone();
        self.optimizer.v = state.opt_v.clone();
        self.optimizer.t = state.opt_t;
        self.optimizer.grad_norm = state.opt_grad_norm;
        self.optimizer.lr_scale = state.lr_scale;
        self.lambda_ema = state.lambda_ema.clone();
        self.step = state.step;
        self.rng = ChaCha8Rng::from_seed(state.rng_seed);
        self.rng.set_stream(state.rng_stream);
        self.rng.set_word_pos(state.rng_word_pos);
        Ok(())
    }
}
