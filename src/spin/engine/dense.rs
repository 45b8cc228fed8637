//! What a dense layer dispatches in each stage: `dense_forward` (+ `tangent_act` on forward-mode
//! rows), `param_grad`, `dense_backward` and `jbar_update` (`jbar_factored` below a dense read-out).

use super::dispatch::{u, with, Constants, Dispatch};
use super::Parts;
use crate::error::Result;
use crate::gpu::tiles::{
    DENSE_BACKWARD_TILE, DENSE_SHARED_TILE, DENSE_TILE, JBAR_TILE, PARAM_GRAD_SHARED_TILE,
    PARAM_GRAD_TILE, PARAM_GRAD_WIDE_TILE, SHARED_LANES,
};
use crate::gpu::Kernel;
use crate::nn::Layer;
use crate::nn::LayerKind;

/// The override constants of a dense layer's kernels.
fn shape(ly: &Layer) -> Constants {
    vec![
        ("IN4", u(ly.in_pad / 4)),
        ("OUT4", u(ly.out_pad / 4)),
        ("W_OFF4", u(ly.gpu_offset / 4)),
    ]
}

/// Statistics stage: z = a W + b on every row, then the activation (on tangent rows the
/// GEMM is linear and `tangent_act` applies softplus to (value, ∇, Δ)).
pub(super) fn forward(p: &Parts, l: usize) -> Result<Vec<Dispatch>> {
    let (ly, d, b) = (&p.layers[l], p.dims, p.bufs);
    let act = if d.tangent { 0 } else { ly.act.code() };
    let (kernel, invocations) = if d.shared_weights {
        let t = DENSE_SHARED_TILE;
        (
            Kernel::DenseForwardShared,
            t.shared_invocations(d.net_rows, ly.out_pad / 4),
        )
    } else {
        (
            Kernel::DenseForward,
            DENSE_TILE.invocations(d.net_rows, ly.out_pad / 4),
        )
    };
    let mut out = vec![p.build.dispatch(
        kernel,
        &with(
            shape(ly),
            &[
                ("ROWS", u(d.net_rows)),
                ("ACT", act as f64),
                ("BIAS_ROWS", u(d.value_rows)),
            ],
        ),
        &[
            ("params", &b.params),
            ("a_in", b.a_in(l)),
            ("z_out", &b.z[l]),
            ("a_out", &b.a[l]),
        ],
        invocations,
        format!("dense_forward[{l}]"),
    )?];
    if d.tangent && ly.act.code() != 0 {
        out.push(p.build.dispatch(
            Kernel::TangentAct,
            &[
                ("SAMPLES", u(d.net_samples)),
                ("DIM", u(d.space_dim)),
                ("OUT4", u(ly.out_pad / 4)),
            ],
            &[("z", &b.z[l]), ("a", &b.a[l])],
            d.net_samples * ly.out_pad / 4,
            format!("tangent_act[{l}]"),
        )?);
    }
    Ok(out)
}

/// Π-VJP stage: grad\[W\] = Σ_r a_in\[r\] δ\[r\], grad[b] = Σ_r δ\[r\] (bias on value rows only), in
/// row groups added up by `grad_reduce` when the layer is small for its rows (split-K).
pub(super) fn param_grad(p: &Parts, l: usize) -> Result<Vec<Dispatch>> {
    let (ly, d, b) = (&p.layers[l], p.dims, p.bufs);
    let t = p.train();
    let groups = d.param_groups[l];
    let (target, out_off) = super::shared::param_grad_target(p, ly, groups);
    let (in4, out4) = (ly.in_pad / 4, ly.out_pad / 4);
    // Subgroups of 8 lanes need 8 output quads to share the input fetches among (a narrower
    // layer, the read-out, keeps the per-lane tiles).
    let (kernel, invocations) = if d.shared_weights && out4 >= SHARED_LANES {
        let t = PARAM_GRAD_SHARED_TILE;
        (
            Kernel::ParamGradShared,
            t.shared_invocations(groups, in4, out4),
        )
    } else if d.wide_param_grad {
        let t = PARAM_GRAD_WIDE_TILE;
        (Kernel::ParamGradWide, t.invocations(groups, in4, out4))
    } else {
        let t = PARAM_GRAD_TILE;
        (Kernel::ParamGrad, t.invocations(groups, in4, out4))
    };
    let mut list = vec![p.build.dispatch(
        kernel,
        &with(
            shape(ly)[..2].to_vec(),
            &[
                ("ROWS", u(d.net_rows)),
                ("BIAS_ROWS", u(d.value_rows)),
                ("GROUPS", u(groups)),
                ("GROUP_ROWS", u(d.net_rows.div_ceil(groups))),
                ("OUT_OFF4", u(out_off / 4)),
                ("G_STRIDE4", u(ly.gpu_len() / 4)),
            ],
        ),
        &[
            ("a_in", b.a_in(l)),
            ("delta", &t.delta[l]),
            ("grad", target),
        ],
        invocations,
        format!("param_grad[{l}]"),
    )?];
    list.extend(super::shared::grad_reduce(
        p,
        ly,
        groups,
        format!("grad_reduce[{l}]"),
    )?);
    Ok(list)
}

/// The input VJP, for the batch (Π-VJP) and for the per-sample sensitivities (Σ-Jacobian):
/// δ_in = act′(z_in) ⊙ δ_out Wᵀ on `rows` rows whose z_in row is `chunk.offset + r / row_div`.
pub(super) fn input_vjp(
    p: &Parts,
    ly: &Layer,
    act_below: u32,
    (rows, row_div): (usize, usize),
    named: &[(&str, &wgpu::Buffer)],
    label: String,
) -> Result<Dispatch> {
    let (kernel, invocations) = if p.dims.shared_weights {
        let t = DENSE_SHARED_TILE;
        (
            Kernel::DenseBackwardShared,
            t.shared_invocations(rows, ly.in_pad / 4),
        )
    } else {
        let t = DENSE_BACKWARD_TILE;
        (Kernel::DenseBackward, t.invocations(rows, ly.in_pad / 4))
    };
    p.build.dispatch(
        kernel,
        &with(
            shape(ly),
            &[
                ("ROWS", u(rows)),
                ("ROW_DIV", u(row_div)),
                ("ACT_D1", act_below as f64),
            ],
        ),
        named,
        invocations,
        label,
    )
}

/// Σ-Jacobian stage, one chunk: J̄\[j,k\] ← keep·J̄\[j,k\] + β (2/S) Σ_b w_b u_{b,j} δ_{b,k} a_bᵀ,
/// one GEMM per pair fused with the moving average (`jbar_update`); below a dense read-out one
/// GEMM per j scaled by W_L\[o,k\] for every pair (`jbar_factored`, maths §3).
pub(super) fn jbar_share(
    p: &Parts,
    l: usize,
    chunk: &wgpu::Buffer,
    tag: impl Fn(&str) -> String,
) -> Result<Vec<Dispatch>> {
    let j = p.jacobian();
    // One chunk: every layer's dispatch reads and writes its own block of J̄ once, so the
    // mirror refreshed before the first of them holds what each reads (maths §3).
    let old_from_mirror = j.chunks.len() == 1;
    let mut list = match factors(p, l) {
        true => jbar_factored(p, l, chunk, &tag, old_from_mirror)?,
        false => vec![jbar_update(p, l, chunk, &tag, old_from_mirror)?],
    };
    if old_from_mirror {
        // The last dispatch is the one that updates J̄.
        if let Some(update) = list.last_mut() {
            update.own_block_reads.push(j.jbar.clone());
        }
    }
    Ok(list)
}

/// `jbar_factored` (after `factor_scale`, which forms g·act′(z) once per chunk) for the layer
/// below a dense read-out.
fn jbar_factored(
    p: &Parts,
    l: usize,
    chunk: &wgpu::Buffer,
    tag: &impl Fn(&str) -> String,
    old_from_mirror: bool,
) -> Result<Vec<Dispatch>> {
    let (ly, d, b) = (&p.layers[l], p.dims, p.bufs);
    let (t, j) = (p.train(), p.jacobian());
    let read_out = &p.layers[l + 1];
    let (in4, out4) = (ly.in_pad / 4, ly.out_pad / 4);
    let (kernel, invocations) = match d.shared_weights {
        true => (
            Kernel::JbarFactoredShared,
            JBAR_TILE.shared_invocations(d.n, in4, out4, true),
        ),
        false => (
            Kernel::JbarFactored,
            JBAR_TILE.factored_invocations(d.n, in4, out4),
        ),
    };
    let factor_scale = p.build.dispatch(
        Kernel::FactorScale,
        &[("OUT4", u(out4)), ("ACT_D1", u(ly.act.code() as usize))],
        &[
            ("z", &b.z[l]),
            ("env", &b.env),
            ("chunk", chunk),
            ("hs", &j.factor_scale),
        ],
        d.chunk_samples * out4,
        tag("factor_scale"),
    )?;
    let update = p.build.dispatch(
        kernel,
        &with(
            shape(ly),
            &[
                ("NEIG", u(d.n)),
                ("NEIG_PAD", u(d.npad)),
                ("NPAR4", u(d.npar4)),
                ("CONST_FIRST", u(p.spec.constant_first as usize)),
                ("WL_OFF", u(read_out.gpu_offset)),
                ("WL_STRIDE", u(read_out.out_pad)),
                ("OLD_FROM_MIRROR", u(old_from_mirror as usize)),
            ],
        ),
        &[
            ("a_in", b.a_in(l)),
            ("hs", &j.factor_scale),
            ("su", &j.su),
            ("params", &b.params),
            ("step", &t.step),
            ("jbar", &j.jbar),
            ("chunk", chunk),
            ("jbar_old", &j.jbar),
        ],
        invocations,
        tag("jbar_factored"),
    )?;
    Ok(vec![factor_scale, update])
}

/// `jbar_update` for any other dense layer; subgroups share the samples' fetches except on the
/// output layer, whose invocations skip the samples outside their output (per lane).
fn jbar_update(
    p: &Parts,
    l: usize,
    chunk: &wgpu::Buffer,
    tag: &impl Fn(&str) -> String,
    old_from_mirror: bool,
) -> Result<Dispatch> {
    let (ly, d, b) = (&p.layers[l], p.dims, p.bufs);
    let (t, j) = (p.train(), p.jacobian());
    let output_layer = l + 1 == p.layers.len();
    let (in4, out4) = (ly.in_pad / 4, ly.out_pad / 4);
    let (kernel, invocations) = match d.shared_weights && !output_layer {
        true => (
            Kernel::JbarUpdateShared,
            JBAR_TILE.shared_invocations(d.n, in4, out4, false),
        ),
        false => (Kernel::JbarUpdate, JBAR_TILE.invocations(d.n, in4, out4)),
    };
    p.build.dispatch(
        kernel,
        &with(
            shape(ly),
            &[
                ("NEIG", u(d.n)),
                ("NEIG_PAD", u(d.npad)),
                ("NPAR4", u(d.npar4)),
                ("OUTPUT_LAYER", u(output_layer as usize)),
                ("OLD_FROM_MIRROR", u(old_from_mirror as usize)),
            ],
        ),
        &[
            ("a_in", b.a_in(l)),
            ("sens", &j.sens[l]),
            ("su", &j.su),
            ("step", &t.step),
            ("jbar", &j.jbar),
            ("chunk", chunk),
            ("jbar_old", &j.jbar),
        ],
        invocations,
        tag("jbar_update"),
    )
}

/// Whether layer `l`'s share of Ĵ factors through the read-out (`jbar_factored`): it is the dense
/// layer just below a dense output layer, whose rows are its outputs one to one. Then
/// δ_{b,k,o} = g_b act'(z_{b,o}) W_L\[o,k\] and one GEMM per j serves every pair (j, k).
pub(super) fn factors(p: &Parts, l: usize) -> bool {
    let last = p.layers.len() - 1;
    l + 1 == last
        && matches!(p.layers[l].kind, LayerKind::Dense)
        && matches!(p.layers[last].kind, LayerKind::Dense)
        && p.layers[last].in_pad == p.layers[l].out_pad
        && p.layers[last].group == p.layers[last].inputs
}
