//! CPU f64 implementation of the network kernels: the test oracle for `shaders/dense_*.wgsl`,
//! `shaders/conv2d_*.wgsl`, `envelope.wgsl`, `param_grad.wgsl`, `sens_init.wgsl`,
//! `jbar_update.wgsl`, `jbar_factored.wgsl` and `jbar_samples.wgsl`.
//!
//! Rows are unpadded here: a dense layer's row is its `inputs` values, a conv layer's row is its
//! (H, W, C) image in NHWC order (see [`super::layer`]).

use super::{envelope, softplus, softplus_d1, Activation, ConvGeom, Layer, LayerKind, NetworkSpec};

/// The pre-activations z of `layer` on `rows` input rows (unpadded); only the first `bias_rows`
/// rows get the bias (all of them except on forward-mode tangent rows).
pub fn layer_forward(layer: &Layer, params: &[f64], a_in: &[f64], bias_rows: usize) -> Vec<f64> {
    match layer.kind {
        LayerKind::Dense => {
            let rows = a_in.len() / layer.inputs;
            let w = layer.outputs;
            let mut z = vec![0.0; rows * w];
            for r in 0..rows {
                for o in 0..w {
                    let mut acc = if r < bias_rows {
                        params[layer.b(o)]
                    } else {
                        0.0
                    };
                    for i in 0..layer.inputs {
                        acc += a_in[r * layer.inputs + i] * params[layer.w(i, o)];
                    }
                    z[r * w + o] = acc;
                }
            }
            z
        }
        LayerKind::Conv2d(g) => {
            let in_len = g.in_h * g.in_w * g.in_c;
            let rows = a_in.len() / in_len;
            let mut z = vec![0.0; rows * layer.out_len()];
            for r in 0..rows {
                for (pos, y, x) in out_positions(&g) {
                    for o in 0..g.out_c {
                        let mut acc = params[layer.b(o)];
                        for (tap, src) in taps(&g, y, x) {
                            for ci in 0..g.in_c {
                                acc += params[layer.w(tap * g.in_c + ci, o)]
                                    * a_in[r * in_len + src * g.in_c + ci];
                            }
                        }
                        z[(r * g.out_positions() + pos) * g.out_c + o] = acc;
                    }
                }
            }
            z
        }
    }
}

/// Output positions of a conv layer as (index, y, x).
fn out_positions(g: &ConvGeom) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
    (0..g.out_h).flat_map(move |y| (0..g.out_w).map(move |x| (y * g.out_w + x, y, x)))
}

/// The kernel taps of output (y, x) that land inside the input: (tap index dy·k + dx, input
/// position iy·W + ix).
fn taps(g: &ConvGeom, y: usize, x: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(g.kernel * g.kernel);
    for dy in 0..g.kernel {
        let iy = (y * g.stride + dy) as isize - g.pad_top as isize;
        if iy < 0 || iy >= g.in_h as isize {
            continue;
        }
        for dx in 0..g.kernel {
            let ix = (x * g.stride + dx) as isize - g.pad_left as isize;
            if ix < 0 || ix >= g.in_w as isize {
                continue;
            }
            out.push((dy * g.kernel + dx, iy as usize * g.in_w + ix as usize));
        }
    }
    out
}

/// The input VJP of a layer: δ_in\[r\] = act_in′(z_in[r / row_div]) ⊙ (∂z/∂a)ᵀ δ_out\[r\]. `row_div`
/// is 1 for the batch VJP and N for the per-sample sensitivities, whose rows are (sample, k).
pub fn layer_backward(
    layer: &Layer,
    params: &[f64],
    delta_out: &[f64],
    z_in: &[f64],
    act_in: Activation,
    row_div: usize,
) -> Vec<f64> {
    let rows = delta_out.len() / layer.out_len();
    let in_len = match layer.kind {
        LayerKind::Dense => layer.inputs,
        LayerKind::Conv2d(g) => g.in_h * g.in_w * g.in_c,
    };
    let mut out = vec![0.0; rows * in_len];
    match layer.kind {
        LayerKind::Dense => {
            for r in 0..rows {
                for i in 0..layer.inputs {
                    let mut acc = 0.0;
                    for o in 0..layer.outputs {
                        acc += params[layer.w(i, o)] * delta_out[r * layer.outputs + o];
                    }
                    out[r * in_len + i] = acc;
                }
            }
        }
        LayerKind::Conv2d(g) => {
            for r in 0..rows {
                for (pos, y, x) in out_positions(&g) {
                    let d = &delta_out[(r * g.out_positions() + pos) * g.out_c..][..g.out_c];
                    for (tap, src) in taps(&g, y, x) {
                        for ci in 0..g.in_c {
                            let acc: f64 = (0..g.out_c)
                                .map(|o| params[layer.w(tap * g.in_c + ci, o)] * d[o])
                                .sum();
                            out[r * in_len + src * g.in_c + ci] += acc;
                        }
                    }
                }
            }
        }
    }
    for r in 0..rows {
        for i in 0..in_len {
            out[r * in_len + i] *= act_in.derivative(z_in[(r / row_div) * in_len + i]);
        }
    }
    out
}

/// The parameter gradient of a layer from output cotangents, summed over rows:
/// grad\[W\] = Σ_r (∂z_r/∂W)ᵀ δ_r, grad\[b_o\] = Σ_{r < bias_rows} Σ_positions δ[r, ·, o]; written
/// into the layer's slice of `grad`.
pub fn layer_param_grad(
    layer: &Layer,
    a_in: &[f64],
    delta: &[f64],
    bias_rows: usize,
    grad: &mut [f64],
) {
    match layer.kind {
        LayerKind::Dense => param_grad(layer, a_in, delta, bias_rows, grad),
        LayerKind::Conv2d(g) => {
            let rows = delta.len() / layer.out_len();
            let in_len = g.in_h * g.in_w * g.in_c;
            for i in 0..=layer.inputs {
                for o in 0..layer.outputs {
                    let idx = if i == layer.inputs {
                        layer.b(o)
                    } else {
                        layer.w(i, o)
                    };
                    grad[idx] = 0.0;
                }
            }
            for r in 0..rows {
                for (pos, y, x) in out_positions(&g) {
                    let d = &delta[(r * g.out_positions() + pos) * g.out_c..][..g.out_c];
                    for o in 0..g.out_c {
                        if r < bias_rows {
                            grad[layer.b(o)] += d[o];
                        }
                    }
                    for (tap, src) in taps(&g, y, x) {
                        for ci in 0..g.in_c {
                            let a = a_in[r * in_len + src * g.in_c + ci];
                            for o in 0..g.out_c {
                                grad[layer.w(tap * g.in_c + ci, o)] += a * d[o];
                            }
                        }
                    }
                }
            }
        }
    }
}

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
pub fn forward(spec: &NetworkSpec, params: &[f64], inputs: &[f64]) -> Forward {
    let rows = inputs.len() / spec.input_dim;
    forward_rows(spec, params, inputs, 1, rows)
}

/// Forward pass on rows with `channels` channels (1: plain; d + 2: value, gradient and
/// Laplacian in forward mode, channel-major with `samples` rows per channel).
pub fn forward_rows(
    spec: &NetworkSpec,
    params: &[f64],
    inputs: &[f64],
    channels: usize,
    samples: usize,
) -> Forward {
    let rows = inputs.len() / spec.input_dim;
    let (d, w_in) = (spec.space_dim(), spec.input_dim);
    // The layers' rows: the batch's, or with exchange every channel's block then its swapped copy.
    let (net_inputs, copies) = net_rows(spec, inputs, channels);
    let (net_rows, net_samples) = (copies * rows, copies * samples);
    let value_rows = if channels == 1 { net_rows } else { net_samples };
    let mut z_all = Vec::new();
    let mut a_all = Vec::new();
    let mut prev = net_inputs;
    for layer in spec.layers() {
        let z = layer_forward(&layer, params, &prev, value_rows);
        let w = layer.outputs;
        let a: Vec<f64> = if channels == 1 || layer.act == Activation::Identity {
            z.iter().map(|&v| layer.act.apply(v)).collect()
        } else {
            assert!(
                layer.act == Activation::Softplus && layer.kind == LayerKind::Dense,
                "forward-mode tangents need dense softplus layers"
            );
            let mut a = vec![0.0; net_rows * w];
            for b in 0..net_samples {
                for o in 0..w {
                    let zv = z[b * w + o];
                    let (s1, s2) = (softplus_d1(zv), super::softplus_d2(zv));
                    a[b * w + o] = softplus(zv);
                    let mut sq = 0.0;
                    for i in 1..=d {
                        let zg = z[(i * net_samples + b) * w + o];
                        a[(i * net_samples + b) * w + o] = s1 * zg;
                        sq += zg * zg;
                    }
                    let l = ((d + 1) * net_samples + b) * w + o;
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
    let f = exchange_combine(spec, a_all.last().map_or(&[][..], |v| v), rows / channels);
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

/// The layers' input rows of a batch and how many copies of it they hold: the inputs
/// themselves (1), or with exchange each channel's block followed by its swapped copy (2).
fn net_rows(spec: &NetworkSpec, inputs: &[f64], channels: usize) -> (Vec<f64>, usize) {
    match spec.exchange {
        Some(_) => (spec.exchange_rows(inputs, channels), 2),
        None => (inputs.to_vec(), 1),
    }
}

/// f_s = (f + s f∘P)/2 from the last layer's outputs on the net rows (`block` rows per channel
/// and its copy), or f itself without exchange.
fn exchange_combine(spec: &NetworkSpec, f: &[f64], block: usize) -> Vec<f64> {
    let Some(e) = spec.exchange else {
        return f.to_vec();
    };
    let n = spec.outputs;
    let mut out = Vec::with_capacity(f.len() / 2);
    for chunk in f.chunks(2 * block * n) {
        let (own, copy) = chunk.split_at(block * n);
        out.extend(own.iter().zip(copy).map(|(a, b)| 0.5 * (a + e.sign() * b)));
    }
    out
}

/// The transpose of [`exchange_combine`]: a cotangent on f_s to the net rows.
fn exchange_spread(spec: &NetworkSpec, cot: Vec<f64>, block: usize) -> Vec<f64> {
    let Some(e) = spec.exchange else {
        return cot;
    };
    let n = spec.outputs;
    let mut out = Vec::with_capacity(2 * cot.len());
    for chunk in cot.chunks(block * n) {
        out.extend(chunk.iter().map(|v| 0.5 * v));
        out.extend(chunk.iter().map(|v| 0.5 * e.sign() * v));
    }
    out
}

/// `dense_backward` with softplus below: δ_in[r, i] = σ′(z_in[r / row_div, i]) Σ_o W[i, o] δ_out[r, o].
pub fn dense_backward(
    params: &[f64],
    layer: &Layer,
    delta_out: &[f64],
    z_in: &[f64],
    row_div: usize,
) -> Vec<f64> {
    layer_backward(
        layer,
        params,
        delta_out,
        z_in,
        Activation::Softplus,
        row_div,
    )
}

/// `param_grad`: grad\[W_io\] = Σ_r a_in\[r,i\] δ\[r,o\], grad\[b_o\] = Σ_{r < bias_rows} δ\[r,o\],
/// written into `grad`.
pub fn param_grad(layer: &Layer, a_in: &[f64], delta: &[f64], bias_rows: usize, grad: &mut [f64]) {
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
    spec: &NetworkSpec,
    params: &[f64],
    inputs: &[f64],
    fwd: &Forward,
    cot_u: &[f64],
) -> Vec<f64> {
    let layers = spec.layers();
    let n = spec.outputs;
    let d = spec.space_dim();
    // The batch's rows (S samples per channel); the layers' rows are twice these with exchange.
    let (c, s) = (fwd.channels, fwd.samples);
    let rows0 = cot_u.len() / n;
    let mut delta = vec![0.0; rows0 * n];
    if c == 1 {
        for r in 0..rows0 {
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
    // From f_s to the layers' rows (with exchange: the rows and their swapped copies).
    let mut delta = exchange_spread(spec, delta, rows0 / c);
    let (net_inputs, copies) = net_rows(spec, inputs, c);
    let (rows, s) = (copies * rows0, copies * s);
    let value_rows = if c == 1 { rows } else { s };
    let mut grad = vec![0.0; spec.num_params()];
    for l in (0..layers.len()).rev() {
        let a_in: &[f64] = if l == 0 { &net_inputs } else { &fwd.a[l - 1] };
        layer_param_grad(&layers[l], a_in, &delta, value_rows, &mut grad);
        if l == 0 {
            break;
        }
        if c == 1 {
            let act = layers[l - 1].act;
            delta = layer_backward(&layers[l], params, &delta, &fwd.z[l - 1], act, 1);
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
    spec: &NetworkSpec,
    params: &[f64],
    fwd: &Forward,
    samples: usize,
) -> Vec<Vec<f64>> {
    let layers = spec.layers();
    let n = spec.outputs;
    let mut sens = vec![Vec::new(); layers.len()];
    let mut top = vec![0.0; samples * n * n];
    let first = spec.constant_first as usize;
    for b in 0..samples {
        for k in first..n {
            top[(b * n + k) * n + k] = fwd.env[b];
        }
    }
    sens[layers.len() - 1] = top;
    for l in (1..layers.len()).rev() {
        let act = layers[l - 1].act;
        sens[l - 1] = layer_backward(&layers[l], params, &sens[l], &fwd.z[l - 1], act, n);
    }
    sens
}

/// Index of the pair (j, k), j ≤ k, in the packed upper triangle.
pub fn pair_index(j: usize, k: usize) -> usize {
    k * (k + 1) / 2 + j
}

/// The one-sided Σ-Jacobian Ĵ\[j,k,p\] = (2/S) Σ_b w_b u_{b,j} ∂u_k(x_b)/∂θ_p (j ≤ k), packed as
/// (N(N+1)/2, P), computed directly from the sensitivities.
pub fn sigma_jacobian(
    spec: &NetworkSpec,
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
        let in_len = a_in.len() / (fwd.u.len() / n);
        let out_len = layer.out_len();
        // Per-sample, per-output gradients G_{b,k} (maths §9, order (a)), then Σ_b c_{b,j} G_{b,k}.
        let mut g = vec![0.0; p_total];
        for b in 0..s {
            for k in 0..n {
                let d = &sens[l][(b * n + k) * out_len..][..out_len];
                layer_param_grad(layer, &a_in[b * in_len..][..in_len], d, 1, &mut g);
                for j in 0..=k {
                    let c = 2.0 / s as f64 * weights[b] * fwd.u[b * n + j];
                    let row = &mut jac[pair_index(j, k) * p_total..][..p_total];
                    for i in layer.offset..layer.offset + layer.len() {
                        row[i] += c * g[i];
                    }
                }
            }
        }
    }
    jac
}
