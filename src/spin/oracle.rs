//! CPU f64 oracle of a whole SpIN step: the reference the GPU engine is tested against.

use nalgebra::DMatrix;

use super::host::{flat, step_matrices, StepMatrices};
use crate::error::Result;
use crate::nn::oracle::{backward, forward_rows, sensitivities, sigma_jacobian, Forward};
use crate::nn::NetworkSpec;
use crate::operators::{apply, pi_cotangent, statistics, Batch};

/// Everything one oracle step computes.
#[derive(Clone, Debug)]
pub struct OracleStep {
    /// Forward pass.
    pub forward: Forward,
    /// X, Y (pairs, N).
    pub xs: Vec<f64>,
    /// Y.
    pub ys: Vec<f64>,
    /// Σ̂ (N, N).
    pub sigma: Vec<f64>,
    /// Π̂ (N, N).
    pub pi: Vec<f64>,
    /// Σ̄ after the update.
    pub sigma_avg: DMatrix<f64>,
    /// Host matrices.
    pub matrices: StepMatrices,
    /// VJP of Π̂ alone (P).
    pub vjp_pi: Vec<f64>,
    /// Ĵ this step (N(N+1)/2, P).
    pub jacobian: Vec<f64>,
    /// J̄ after the update.
    pub jbar: Vec<f64>,
    /// The SpIN gradient g (P).
    pub grad: Vec<f64>,
}

/// One SpIN step in f64 from θ, Σ̄ and J̄.
pub fn step(
    spec: &NetworkSpec,
    params: &[f64],
    batch: &Batch,
    sigma_avg: &DMatrix<f64>,
    jbar: &[f64],
    beta: f64,
) -> Result<OracleStep> {
    let n = spec.outputs;
    let inputs: Vec<f64> = batch.inputs.iter().map(|&v| v as f64).collect();
    let fwd = forward_rows(
        spec,
        params,
        &inputs,
        batch.shape.channels,
        batch.shape.samples,
    );
    let (xs, ys) = apply(batch, &fwd.u, n);
    let (sigma, pi) = statistics(batch, &fwd.u, &xs, &ys, n);
    let to_m = |v: &[f64]| DMatrix::from_fn(n, n, |i, j| v[i * n + j]);
    let new_avg = sigma_avg * (1.0 - beta) + to_m(&sigma) * beta;
    let m = step_matrices(&new_avg, &to_m(&pi))?;
    let cot = pi_cotangent(batch, &xs, &ys, &flat(&m.g_pi), n);
    let vjp_pi = backward(spec, params, &inputs, &fwd, &cot);
    let w: Vec<f64> = batch.sample_weights.iter().map(|&v| v as f64).collect();
    let jacobian = match spec.exchange {
        None => {
            let sens = sensitivities(spec, params, &fwd, batch.shape.samples);
            sigma_jacobian(spec, &inputs, &fwd, &sens, &w)
        }
        Some(_) => sigma_jacobian_by_vjps(spec, params, &inputs, &fwd, &w),
    };
    let jbar_new: Vec<f64> = jbar
        .iter()
        .zip(&jacobian)
        .map(|(a, b)| (1.0 - beta) * a + beta * b)
        .collect();
    let p = spec.num_params();
    let mut grad = vjp_pi.clone();
    for k in 0..n {
        for j in 0..=k {
            let g = m.g_sigma[(j, k)];
            let row = &jbar_new[crate::nn::oracle::pair_index(j, k) * p..][..p];
            for (gi, r) in grad.iter_mut().zip(row) {
                *gi += g * r;
            }
        }
    }
    Ok(OracleStep {
        forward: fwd,
        xs,
        ys,
        sigma,
        pi,
        sigma_avg: new_avg,
        matrices: m,
        vjp_pi,
        jacobian,
        jbar: jbar_new,
        grad,
    })
}

/// Ĵ\[j,k,:\] = (2/S) Σ_b w_b u_{b,j} ∂u_{b,k}/∂θ as one backward pass per pair j ≤ k (the
/// cotangent (2/S) w_b u_{b,j} on output k of the sample rows). Slow, but it needs nothing of the
/// network beyond [`backward`], so it also holds for the exchange-symmetrised network, whose
/// outputs depend on two rows each.
fn sigma_jacobian_by_vjps(
    spec: &NetworkSpec,
    params: &[f64],
    inputs: &[f64],
    fwd: &crate::nn::oracle::Forward,
    w: &[f64],
) -> Vec<f64> {
    let n = spec.outputs;
    let s = fwd.samples;
    let rows = fwd.u.len() / n;
    let p = spec.num_params();
    let mut out = vec![0.0; n * (n + 1) / 2 * p];
    for k in 0..n {
        for j in 0..=k {
            let mut cot = vec![0.0; rows * n];
            for b in 0..s {
                cot[b * n + k] = 2.0 / s as f64 * w[b] * fwd.u[b * n + j];
            }
            let g = backward(spec, params, inputs, fwd, &cot);
            out[crate::nn::oracle::pair_index(j, k) * p..][..p].copy_from_slice(&g);
        }
    }
    out
}
