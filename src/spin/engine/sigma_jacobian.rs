//! Stage 3, *Σ-Jacobian* (second part of submit B), in chunks of samples that bound its memory:
//! the N per-sample sensitivity back-passes at once (rows are (sample, output) pairs), each
//! layer's share of the one-sided Jacobian of Σ̂ fused with its moving average (the dense layer
//! below a dense read-out with one GEMM per j instead of one per pair), and the G_Σ contraction
//! into the gradient (maths §2–3):
//!
//!   Ĵ\[j,k,:\] = (2/S) Σ_b w_b u_{b,j} ∂u_k(x_b)/∂θ      j ≤ k
//!   J̄ ← (1 − β) J̄ + β Ĵ        (the first chunk decays, later ones add)
//!   grad += Σ_{j≤k} (G_Σ)_jk J̄\[j,k,:\]
//!
//! Reads env, u, the sample weights, z, a, params and the `Step` buffer (β, 2/S, G_Σ);
//! writes sens, su, the per-sample conv gradients, J̄ and grad.

use super::dispatch::{u, Dispatch};
use super::pi_vjp::input_vjp;
use super::{buffers, conv2d, dense, Parts};
use crate::error::Result;
use crate::gpu::Kernel;
use crate::nn::LayerKind;

/// The stage's dispatches.
pub(super) fn build(p: &Parts) -> Result<Vec<Dispatch>> {
    let (d, b, t) = (p.dims, p.bufs, p.train());
    let j = p.jacobian();
    let last = p.layers.len() - 1;
    let c = d.chunk_samples;
    let mut list = Vec::new();
    for (ci, chunk) in j.chunks.iter().enumerate() {
        let tag = |name: &str, l: Option<usize>| match (j.chunks.len(), l) {
            (1, Some(l)) => format!("{name}[{l}]"),
            (1, None) => name.to_string(),
            (_, Some(l)) => format!("{name}[{l}] chunk {ci}"),
            (_, None) => format!("{name} chunk {ci}"),
        };
        list.push(p.build.dispatch(
            Kernel::SensInit,
            &[
                ("SAMPLES", u(c)),
                ("NEIG", u(d.n)),
                ("NEIG_PAD", u(d.npad)),
                ("CONST_FIRST", u(p.spec.constant_first as usize)),
            ],
            &[
                ("env", &b.env),
                ("sens", &j.sens[last]),
                ("chunk", chunk),
                ("u", &b.u),
                ("w", &b.sample_w),
                ("su", &j.su),
            ],
            c * d.n * d.npad,
            tag("sens_init", None),
        )?);
        // The sensitivities below the bottom layer's output feed only that layer's Ĵ, which
        // needs none when it factors through the read-out (a single hidden layer).
        let bottom = if dense::factors(p, 0) { 2 } else { 1 };
        for l in (bottom..p.layers.len()).rev() {
            list.push(input_vjp(
                p,
                &p.layers[l],
                p.layers[l - 1].act.code(),
                (c * d.n, d.n),
                &[
                    ("params", &b.params),
                    ("delta_out", &j.sens[l]),
                    ("z_in", &b.z[l - 1]),
                    ("delta_in", &j.sens[l - 1]),
                    ("chunk", chunk),
                ],
                tag("sens_backward", Some(l)),
            )?);
        }
        for (l, ly) in p.layers.iter().enumerate() {
            let tag = |name: &str| tag(name, Some(l));
            list.extend(match ly.kind {
                LayerKind::Dense => dense::jbar_share(p, l, chunk, tag)?,
                LayerKind::Conv2d(g) => conv2d::jbar_share(p, l, &g, chunk, tag)?,
            });
        }
    }
    list.push(p.build.dispatch(
        Kernel::JbarContract,
        &[
            ("NEIG", u(d.n)),
            ("NPAR4", u(d.npar4)),
            ("PACKED4", u(buffers::packed_sigma_offset(d.n) / 4)),
        ],
        &[("step", &t.step), ("jbar", &j.jbar), ("grad", &t.grad)],
        d.npar4,
        "jbar_contract".into(),
    )?);
    Ok(list)
}
