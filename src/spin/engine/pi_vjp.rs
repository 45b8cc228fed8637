//! Stage 2, *Π-VJP* (first part of submit B): the cotangent of Π̂ with the reference's
//! covariance rule (maths §2) through the operator and the envelope, then each layer's parameter
//! gradient and input VJP from the top.
//!
//!   cot X = w Y G_Π / Q,  cot Y = w X G_Π / Q      (through the gathers' transpose)
//!   cot u_b += (2/S) w_b (U G_Σ)_b                  (β = 1, fused: the Σ term, sample rows)
//!   δ_f = g · cot u                                 (or the tangent envelope's reverse mode)
//!   grad_θ = Σ_r ∂f(x_r)/∂θᵀ δ_f\[r\]                 (layer by layer)
//!
//! At β = 1 the Σ term Σ_{j≤k} (G_Σ)_jk Ĵ\[j,k,:\] is the VJP of Σ̂ with the cotangent G_Σ
//! (one-sided, maths §2–3: Ĵ\[j,k\] = (2/S) Σ_b w_b u_{b,j} ∂u_{b,k}/∂θ), i.e. back-propagating
//! (2/S) w_b Σ_{j≤k} u_{b,j} (G_Σ)_jk on output k of sample b: it joins the Π cotangent before
//! the envelope and this stage is then the whole gradient. The kernel sums over every j, so a
//! full G_Σ (the jointly nested objective's, maths §13) takes the two-sided Jacobian as well.
//!
//! Reads X, Y, u, the pair and sample weights, the transposed gathers, the `Step` buffer (2/S,
//! 1/Q, G_Π, G_Σ), env, the activations and params; writes delta (and on tangent rows cot_u,
//! cot_a) and grad.

use super::dispatch::{u, Dispatch};
use super::{conv2d, dense, Parts};
use crate::error::Result;
use crate::gpu::Kernel;
use crate::nn::{Layer, LayerKind};

/// The stage's dispatches: the operator's backward pass to the output layer's δ, then the
/// layers' from the top.
pub(super) fn build(p: &Parts) -> Result<Vec<Dispatch>> {
    let mut list = operator_backward(p)?;
    list.extend(layers_backward(p)?);
    Ok(list)
}

/// Π̂'s (and at β = 1 Σ̂'s) cotangent through the operator and the envelope (its tangent form's
/// reverse mode on tangent rows) and, for a symmetrised network, the exchange: δ of the output
/// layer.
fn operator_backward(p: &Parts) -> Result<Vec<Dispatch>> {
    let (d, b, t) = (p.dims, p.bufs, p.train());
    let last = p.layers.len() - 1;
    let pair_cotangent = p.build.dispatch(
        Kernel::PairCotangent,
        &[
            ("PAIRS", u(d.pairs)),
            ("NEIG", u(d.n)),
            ("NEIG_PAD", u(d.npad)),
        ],
        &[
            ("xs", &b.xs),
            ("ys", &b.ys),
            ("wq", &b.pair_w),
            ("step", &t.step),
            ("pair_cot", &t.pair_cot),
        ],
        d.pairs * d.npad,
        "pair_cotangent".into(),
    )?;
    let mut list = vec![
        pair_cotangent,
        p.build.dispatch(
            Kernel::OperatorBackward,
            &[
                ("ROWS", u(d.rows)),
                ("SAMPLES", u(d.samples)),
                ("NEIG", u(d.n)),
                ("NEIG_PAD", u(d.npad)),
                ("ENV_MULT", u(!d.tangent as usize)),
                ("SIGMA_COT", u(d.fused as usize)),
                ("CONST_FIRST", u(p.spec.constant_first as usize)),
            ],
            &[
                ("u", &b.u),
                ("w", &b.sample_w),
                ("pair_cot", &t.pair_cot),
                ("row_ptr", &t.row_ptr),
                ("entries", &t.entries),
                ("step", &t.step),
                ("env", &b.env),
                (
                    "delta",
                    match (d.tangent, d.exchange.is_some()) {
                        (true, _) => &t.cot_u,
                        (false, true) => &t.delta_sym,
                        (false, false) => &t.delta[last],
                    },
                ),
            ],
            d.rows * d.npad,
            "operator_backward".into(),
        )?,
    ];
    if d.tangent {
        list.push(p.build.dispatch(
            Kernel::TangentEnvelopeBackward,
            &[
                ("SAMPLES", u(d.samples)),
                ("DIM", u(d.space_dim)),
                ("NEIG", u(d.n)),
                ("NEIG_PAD", u(d.npad)),
            ],
            &[
                ("env", &b.env),
                ("cot_u", &t.cot_u),
                (
                    "delta",
                    if d.exchange.is_some() {
                        &t.delta_sym
                    } else {
                        &t.delta[last]
                    },
                ),
            ],
            d.samples * d.npad,
            "tangent_envelope_backward".into(),
        )?);
    }
    if d.exchange.is_some() {
        list.push(super::shared::exchange(
            p,
            &t.delta_sym,
            &t.delta[last],
            1,
            "exchange_backward",
        )?);
    }
    Ok(list)
}

/// Each layer's parameter gradient and, below the top, its input VJP (and on tangent rows the
/// activation's reverse mode), from the output layer down.
fn layers_backward(p: &Parts) -> Result<Vec<Dispatch>> {
    let (d, b, t) = (p.dims, p.bufs, p.train());
    let mut list = Vec::new();
    for l in (0..p.layers.len()).rev() {
        let ly = &p.layers[l];
        list.extend(match ly.kind {
            LayerKind::Dense => dense::param_grad(p, l)?,
            LayerKind::Conv2d(g) => conv2d::param_grad(p, l, &g)?,
        });
        if l == 0 {
            continue;
        }
        // On tangent rows the layer below's softplus is applied by its own kernel.
        let act_below = if d.tangent {
            0
        } else {
            p.layers[l - 1].act.code()
        };
        let target = if d.tangent { &t.cot_a } else { &t.delta[l - 1] };
        list.push(input_vjp(
            p,
            ly,
            act_below,
            (d.net_rows, 1),
            &[
                ("params", &b.params),
                ("delta_out", &t.delta[l]),
                ("z_in", &b.z[l - 1]),
                ("delta_in", target),
                ("chunk", &t.whole),
            ],
            format!("dense_backward[{l}]"),
        )?);
        if d.tangent {
            list.push(p.build.dispatch(
                Kernel::TangentActBackward,
                &[
                    ("SAMPLES", u(d.net_samples)),
                    ("DIM", u(d.space_dim)),
                    ("OUT4", u(ly.in_pad / 4)),
                ],
                &[
                    ("z", &b.z[l - 1]),
                    ("cot_a", &t.cot_a),
                    ("delta", &t.delta[l - 1]),
                ],
                d.net_samples * ly.in_pad / 4,
                format!("tangent_act_backward[{l}]"),
            )?);
        }
    }
    Ok(list)
}

/// A layer's input VJP, δ_in = act′(z_in) ⊙ (∂z/∂a)ᵀ δ_out, on `rows` rows whose z_in row is
/// `chunk.offset + r / row_div`; `named` binds params, delta_out, z_in, delta_in and chunk.
pub(super) fn input_vjp(
    p: &Parts,
    ly: &Layer,
    act_below: u32,
    rows: (usize, usize),
    named: &[(&str, &wgpu::Buffer)],
    label: String,
) -> Result<Dispatch> {
    match ly.kind {
        LayerKind::Dense => dense::input_vjp(p, ly, act_below, rows, named, label),
        LayerKind::Conv2d(g) => conv2d::input_vjp(p, ly, &g, act_below, rows, named, label),
    }
}
