//! Stage 1, *statistics* (submit A): every layer's forward pass on all R rows, the envelope,
//! the operator's gathers and the two-stage Σ̂/Π̂ reduction.
//!
//!   u = g(x) f_θ(x)                      (envelope g; on tangent rows (u, ∇u, Δu))
//!   X_q = Σ c u[row], Y_q = Σ c u[row]   (the operator's gathers)
//!   Σ̂ = (1/S) Σ_b w_b u_b u_bᵀ,  Π̂ = (1/Q) Σ_q w_q X_q Y_qᵀ
//!
//! Reads params, inputs, the gathers and the weights; writes z, a, env, u, X, Y and stats.

use super::dispatch::{u, with, Dispatch};
use super::{conv2d, dense, Parts};
use crate::error::Result;
use crate::gpu::Kernel;
use crate::nn::LayerKind;

/// The stage's dispatches, and the index of its first reduction (so that
/// [`super::Engine::forward_values`] can stop before them).
pub(super) fn build(p: &Parts) -> Result<(Vec<Dispatch>, usize)> {
    let mut list = Vec::new();
    for (l, ly) in p.layers.iter().enumerate() {
        list.extend(match ly.kind {
            LayerKind::Dense => dense::forward(p, l)?,
            LayerKind::Conv2d(g) => conv2d::forward(p, l, &g)?,
        });
    }
    if p.dims.exchange.is_some() {
        let last = p.layers.len() - 1;
        list.push(super::shared::exchange(
            p,
            &p.bufs.a[last],
            &p.bufs.f_sym,
            0,
            "exchange_forward",
        )?);
    }
    list.push(envelope(p)?);
    list.push(operator_apply(p)?);
    let reductions_at = list.len();
    list.extend(reductions(p)?);
    Ok((list, reductions_at))
}

/// u = g f (`apply_envelope`), or on tangent rows (u, ∇u, Δu) from (f, ∇f, Δf) and the
/// envelope's own derivatives (`tangent_envelope`).
fn envelope(p: &Parts) -> Result<Dispatch> {
    let (d, b) = (p.dims, p.bufs);
    let constants = [
        ("DIM", u(d.space_dim.min(d.in_width))),
        ("DIM_PAD", u(d.in_width)),
        ("NEIG", u(d.n)),
        ("NEIG_PAD", u(d.npad)),
        ("ENVELOPE", u(p.spec.envelope.is_some() as usize)),
        ("BOX", p.spec.envelope.unwrap_or(1.0) as f64),
    ];
    let last = p.layers.len() - 1;
    let f = match d.exchange {
        Some(_) => &b.f_sym,
        None => &b.a[last],
    };
    let named = [("x", &b.inputs), ("f", f), ("env", &b.env), ("u", &b.u)];
    if d.tangent {
        p.build.dispatch(
            Kernel::TangentEnvelope,
            &with(vec![("SAMPLES", u(d.samples))], &constants),
            &named,
            d.samples,
            "tangent_envelope".into(),
        )
    } else {
        p.build.dispatch(
            Kernel::Envelope,
            &with(vec![("ROWS", u(d.rows))], &constants),
            &named,
            d.rows,
            "apply_envelope".into(),
        )
    }
}

/// X and Y from the gathers.
fn operator_apply(p: &Parts) -> Result<Dispatch> {
    let (d, b) = (p.dims, p.bufs);
    p.build.dispatch(
        Kernel::OperatorApply,
        &[
            ("PAIRS", u(d.pairs)),
            ("NEIG", u(d.n)),
            ("TX", u(d.tx)),
            ("TY", u(d.ty)),
        ],
        &[
            ("u", &b.u),
            ("x_terms", &b.x_terms),
            ("y_terms", &b.y_terms),
            ("xs", &b.xs),
            ("ys", &b.ys),
        ],
        d.pairs * d.n,
        "operator_apply".into(),
    )
}

/// Σ̂ and Π̂: partial sums over chunks of rows, then their total.
fn reductions(p: &Parts) -> Result<[Dispatch; 2]> {
    let (d, b) = (p.dims, p.bufs);
    let sizes = vec![
        ("SAMPLES", u(d.samples)),
        ("PAIRS", u(d.pairs)),
        ("NEIG", u(d.n)),
    ];
    Ok([
        p.build.dispatch(
            Kernel::StatsPartial,
            &with(sizes.clone(), &[("CHUNK", u(super::buffers::STATS_CHUNK))]),
            &[
                ("u", &b.u),
                ("w", &b.sample_w),
                ("xs", &b.xs),
                ("ys", &b.ys),
                ("wq", &b.pair_w),
                ("partial", &b.partial),
            ],
            d.stat_chunks * 2 * d.n * d.n,
            "stats_partial".into(),
        )?,
        p.build.dispatch(
            Kernel::StatsFinal,
            &with(sizes, &[("CHUNKS", u(d.stat_chunks))]),
            &[("partial", &b.partial), ("stats", &b.stats)],
            2 * d.n * d.n,
            "stats_final".into(),
        )?,
    ])
}
