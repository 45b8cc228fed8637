//! CPU f64 implementation of the network kernels: the test oracle for `shaders/dense_*.wgsl`,
//! `envelope.wgsl`, `param_grad.wgsl`, `sens_init.wgsl` and `jbar_update.wgsl`.

use super::{envelope, softplus, softplus_d1, MlpSpec};

/// Everything the forward pass keeps for the backward passes.
#[derive(Clone, Debug)]
pub struct Forward {
    /// Per layer, pre-activations (rows, outputs); the last is the raw output f.
    pub z: Vec<Vec<f64>>,
    /// Per layer, activations (rows, outputs); the last equals the raw output f.
    pub a: Vec<Vec<f64>>,
    /// Envelope g per row (1 without an envelope).
    pub env: Vec<f64>,
    /// Network outputs u = g f (rows, N).
    pub u: Vec<f64>,
}

/// Forward pass of `spec` with `params` on `inputs` (rows, input_dim).
pub fn forward(spec: &MlpSpec, params: &[f64], inputs: &[f64]) -> Forward {
    let rows = inputs.len() / spec.input_dim;
    let mut z_all = Vec::new();
    let mut a_all = Vec::new();
    let mut prev = inputs.to_vec();
    for layer in spec.layers() {
        let mut z = vec![0.0; rows * layer.outputs];
        for r in 0..rows {
            for o in 0..layer.outputs {
                let mut acc = params[layer.b(o)];
                for i in 0..layer.inputs {
                    acc += prev[r * layer.inputs + i] * params[layer.w(i, o)];
                }
                z[r * layer.outputs + o] = acc;
            }
        }
        let a: Vec<f64> = if layer.softplus {
            z.iter().map(|&v| softplus(v)).collect()
        } else {
            z.clone()
        };
        prev = a.clone();
        z_all.push(z);
        a_all.push(a);
    }
    let n = spec.outputs;
    let env: Vec<f64> = (0..rows)
        .map(|r| match spec.envelope {
            Some(d) => envelope(
                &inputs[r * spec.input_dim..(r + 1) * spec.input_dim],
                d as f64,
            ),
            None => 1.0,
        })
        .collect();
    let f = a_all.last().cloned().unwrap_or_default();
    let u = (0..rows * n).map(|t| env[t / n] * f[t]).collect();
    Forward {
        z: z_all,
        a: a_all,
        env,
        u,
    }
}

/// `dense_backward`: δ_in[r, i] = σ′(z_in[r / row_div, i]) Σ_o W[i, o] δ_out[r, o].
pub fn dense_backward(
    params: &[f64],
    layer: &super::DenseLayout,
    delta_out: &[f64],
    z_in: &[f64],
    row_div: usize,
) -> Vec<f64> {
    let rows = delta_out.len() / layer.outputs;
    let mut out = vec![0.0; rows * layer.inputs];
    for r in 0..rows {
        for i in 0..layer.inputs {
            let mut acc = 0.0;
            for o in 0..layer.outputs {
                acc += params[layer.w(i, o)] * delta_out[r * layer.outputs + o];
            }
            out[r * layer.inputs + i] = softplus_d1(z_in[(r / row_div) * layer.inputs + i]) * acc;
        }
    }
    out
}

/// `param_grad`: grad[W_io] = Σ_r a_in[r,i] δ[r,o], grad[b_o] = Σ_r δ[r,o], written into `grad`.
pub fn param_grad(layer: &super::DenseLayout, a_in: &[f64], delta: &[f64], grad: &mut [f64]) {
    let rows = delta.len() / layer.outputs;
    for o in 0..layer.outputs {
        let mut b = 0.0;
        for r in 0..rows {
            b += delta[r * layer.outputs + o];
        }
        grad[layer.b(o)] = b;
        for i in 0..layer.inputs {
            let mut acc = 0.0;
            for r in 0..rows {
                acc += a_in[r * layer.inputs + i] * delta[r * layer.outputs + o];
            }
            grad[layer.w(i, o)] = acc;
        }
    }
}

/// Back-propagates a cotangent `delta_f` on the raw outputs f (rows, N) to the parameters.
pub fn backward(
    spec: &MlpSpec,
    params: &[f64],
    inputs: &[f64],
    fwd: &Forward,
    delta_f: &[f64],
) -> Vec<f64> {
    let layers = spec.layers();
    let mut grad = vec![0.0; spec.num_params()];
    let mut delta = delta_f.to_vec();
    for l in (0..layers.len()).rev() {
        let a_in: &[f64] = if l == 0 { inputs } else { &fwd.a[l - 1] };
        param_grad(&layers[l], a_in, &delta, &mut grad);
        if l > 0 {
            delta = dense_backward(params, &layers[l], &delta, &fwd.z[l - 1], 1);
        }
    }
    grad
}

/// Per-sample sensitivities δ_{b,k} = ∂u_k(x_b)/∂z_ℓ for the first `samples` rows, for every
/// layer ℓ: element ℓ has shape (samples, N, outputs of layer ℓ).
pub fn sensitivities(
    spec: &MlpSpec,
    params: &[f64],
    fwd: &Forward,
    samples: usize,
) -> Vec<Vec<f64>> {
    let layers = spec.layers();
    let n = spec.outputs;
    let mut sens = vec![Vec::new(); layers.len()];
    let mut top = vec![0.0; samples * n * n];
    for b in 0..samples {
        for k in 0..n {
            top[(b * n + k) * n + k] = fwd.env[b];
        }
    }
    sens[layers.len() - 1] = top;
    for l in (1..layers.len()).rev() {
        sens[l - 1] = dense_backward(params, &layers[l], &sens[l], &fwd.z[l - 1], n);
    }
    sens
}

/// Index of the pair (j, k), j ≤ k, in the packed upper triangle.
pub fn pair_index(j: usize, k: usize) -> usize {
    k * (k + 1) / 2 + j
}

/// The one-sided Σ-Jacobian Ĵ[j,k,p] = (2/S) Σ_b w_b u_{b,j} ∂u_k(x_b)/∂θ_p (j ≤ k), packed as
/// (N(N+1)/2, P), computed directly from the sensitivities.
pub fn sigma_jacobian(
    spec: &MlpSpec,
    inputs: &[f64],
    fwd: &Forward,
    sens: &[Vec<f64>],
    weights: &[f64],
) -> Vec<f64> {
    let layers = spec.layers();
    let n = spec.outputs;
    let s = weights.len();
    let p_total = spec.num_params();
    let mut jac = vec![0.0; n * (n + 1) / 2 * p_total];
    for (l, layer) in layers.iter().enumerate() {
        let a_in: &[f64] = if l == 0 { inputs } else { &fwd.a[l - 1] };
        for k in 0..n {
            for j in 0..=k {
                let row = &mut jac[pair_index(j, k) * p_total..(pair_index(j, k) + 1) * p_total];
                for b in 0..s {
                    let c = 2.0 / s as f64 * weights[b] * fwd.u[b * n + j];
                    for o in 0..layer.outputs {
                        let d = sens[l][(b * n + k) * layer.outputs + o];
                        row[layer.b(o)] += c * d;
                        for i in 0..layer.inputs {
                            row[layer.w(i, o)] += c * d * a_in[b * layer.inputs + i];
                        }
                    }
                }
            }
        }
    }
    jac
}
