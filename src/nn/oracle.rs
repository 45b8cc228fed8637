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
    /// Envelope per row: g (plain rows); g, ∂_i g, Δg on the channels of tangent rows.
    pub env: Vec<f64>,
    /// Network outputs u = g f (rows, N), or their tangents on tangent rows.
    pub u: Vec<f64>,
    /// 1, or d + 2 for channel-major tangent rows (see `BatchShape::channels`).
    pub channels: usize,
    /// Samples S (rows per channel).
    pub samples: usize,
}

/// Forward pass of `spec` with `params` on `inputs` (rows, input_dim), every row a value.
pub fn forward(spec: &MlpSpec, params: &[f64], inputs: &[f64]) -> Forward {
    let rows = inputs.len() / spec.input_dim;
    forward_rows(spec, params, inputs, 1, rows)
}

/// Forward pass on rows with `channels` channels (1: plain; d + 2: value, gradient and
/// Laplacian in forward mode, channel-major with `samples` rows per channel).
pub fn forward_rows(
    spec: &MlpSpec,
    params: &[f64],
    inputs: &[f64],
    channels: usize,
    samples: usize,
) -> Forward {
    let rows = inputs.len() / spec.input_dim;
    let value_rows = if channels == 1 { rows } else { samples };
    let (d, w_in) = (spec.space_dim(), spec.input_dim);
    let mut z_all = Vec::new();
    let mut a_all = Vec::new();
    let mut prev = inputs.to_vec();
    for layer in spec.layers() {
        let w = layer.outputs;
        let mut z = vec![0.0; rows * w];
        for r in 0..rows {
            for o in 0..w {
                let mut acc = if r < value_rows {
                    params[layer.b(o)]
                } else {
                    0.0
                };
                for i in 0..layer.inputs {
                    acc += prev[r * layer.inputs + i] * params[layer.w(i, o)];
                }
                z[r * w + o] = acc;
            }
        }
        let a: Vec<f64> = if !layer.softplus {
            z.clone()
        } else if channels == 1 {
            z.iter().map(|&v| softplus(v)).collect()
        } else {
            let mut a = vec![0.0; rows * w];
            for b in 0..samples {
                for o in 0..w {
                    let zv = z[b * w + o];
                    let (s1, s2) = (softplus_d1(zv), super::softplus_d2(zv));
                    a[b * w + o] = softplus(zv);
                    let mut sq = 0.0;
                    for i in 1..=d {
                        let zg = z[(i * samples + b) * w + o];
                        a[(i * samples + b) * w + o] = s1 * zg;
                        sq += zg * zg;
                    }
                    let l = ((d + 1) * samples + b) * w + o;
                    a[l] = s1 * z[l] + s2 * sq;
                }
            }
            a
        };
        prev = a.clone();
        z_all.push(z);
        a_all.push(a);
    }
    let n = spec.outputs;
    let f = a_all.last().cloned().unwrap_or_default();
    let mut env = vec![1.0; rows];
    let mut u = vec![0.0; rows * n];
    if channels == 1 {
        for r in 0..rows {
            if let Some(dd) = spec.envelope {
                env[r] = envelope(&inputs[r * w_in..r * w_in + d], dd as f64);
            }
            for m in 0..n {
                u[r * n + m] = env[r] * f[r * n + m];
            }
        }
    } else {
        for b in 0..samples {
            let (g, grad, lap) = match spec.envelope {
                Some(dd) => super::envelope_tangent(&inputs[b * w_in..b * w_in + d], dd as f64),
                None => (1.0, vec![0.0; d], 0.0),
            };
            let lrow = (d + 1) * samples + b;
            env[b] = g;
            env[lrow] = lap;
            for i in 0..d {
                env[(i + 1) * samples + b] = grad[i];
            }
            for m in 0..n {
                let fv = f[b * n + m];
                let mut l = g * f[lrow * n + m] + fv * lap;
                for (i, gi) in grad.iter().enumerate() {
                    let grow = (i + 1) * samples + b;
                    u[grow * n + m] = gi * fv + g * f[grow * n + m];
                    l += 2.0 * gi * f[grow * n + m];
                }
                u[b * n + m] = g * fv;
                u[lrow * n + m] = l;
            }
        }
    }
    Forward {
        z: z_all,
        a: a_all,
        env,
        u,
        channels,
        samples,
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

/// `param_grad`: grad[W_io] = Σ_r a_in[r,i] δ[r,o], grad[b_o] = Σ_{r < bias_rows} δ[r,o],
/// written into `grad`.
pub fn param_grad(
    layer: &super::DenseLayout,
    a_in: &[f64],
    delta: &[f64],
    bias_rows: usize,
    grad: &mut [f64],
) {
    let rows = delta.len() / layer.outputs;
    for o in 0..layer.outputs {
        let mut b = 0.0;
        for r in 0..rows.min(bias_rows) {
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

/// Back-propagates a cotangent on the outputs u (rows, N) — through the envelope and every
/// layer, in forward-mode tangents where the rows have channels — to the parameters.
pub fn backward(
    spec: &MlpSpec,
    params: &[f64],
    inputs: &[f64],
    fwd: &Forward,
    cot_u: &[f64],
) -> Vec<f64> {
    let layers = spec.layers();
    let n = spec.outputs;
    let d = spec.space_dim();
    let (c, s) = (fwd.channels, fwd.samples);
    let rows = cot_u.len() / n;
    let value_rows = if c == 1 { rows } else { s };
    let mut delta = vec![0.0; rows * n];
    if c == 1 {
        for r in 0..rows {
            for m in 0..n {
                delta[r * n + m] = fwd.env[r] * cot_u[r * n + m];
            }
        }
    } else {
        for b in 0..s {
            let lrow = (d + 1) * s + b;
            let g = fwd.env[b];
            for m in 0..n {
                let cl = cot_u[lrow * n + m];
                let mut dv = g * cot_u[b * n + m] + fwd.env[lrow] * cl;
                for i in 0..d {
                    let grow = (i + 1) * s + b;
                    let cg = cot_u[grow * n + m];
                    dv += fwd.env[grow] * cg;
                    delta[grow * n + m] = g * cg + 2.0 * fwd.env[grow] * cl;
                }
                delta[b * n + m] = dv;
                delta[lrow * n + m] = g * cl;
            }
        }
    }
    let mut grad = vec![0.0; spec.num_params()];
    for l in (0..layers.len()).rev() {
        let a_in: &[f64] = if l == 0 { inputs } else { &fwd.a[l - 1] };
        param_grad(&layers[l], a_in, &delta, value_rows, &mut grad);
        if l == 0 {
            break;
        }
        if c == 1 {
            delta = dense_backward(params, &layers[l], &delta, &fwd.z[l - 1], 1);
            continue;
        }
        // Wᵀ product, then reverse mode through the tangent softplus.
        let ly = &layers[l];
        let w = ly.inputs;
        let mut cot_a = vec![0.0; rows * w];
        for r in 0..rows {
            for i in 0..w {
                cot_a[r * w + i] = (0..ly.outputs)
                    .map(|o| params[ly.w(i, o)] * delta[r * ly.outputs + o])
                    .sum();
            }
        }
        let z = &fwd.z[l - 1];
        let mut dz = vec![0.0; rows * w];
        for b in 0..s {
            for i in 0..w {
                let v = b * w + i;
                let lr = ((d + 1) * s + b) * w + i;
                let zv = z[v];
                let s1 = softplus_d1(zv);
                let s2 = s1 * (1.0 - s1);
                let s3 = s2 * (1.0 - 2.0 * s1);
                let cl = cot_a[lr];
                let mut dv = s1 * cot_a[v] + s2 * z[lr] * cl;
                for k in 1..=d {
                    let idx = (k * s + b) * w + i;
                    let zg = z[idx];
                    dv += s2 * zg * cot_a[idx] + s3 * zg * zg * cl;
                    dz[idx] = s1 * cot_a[idx] + 2.0 * s2 * zg * cl;
                }
                dz[v] = dv;
                dz[lr] = s1 * cl;
            }
        }
        delta = dz;
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
