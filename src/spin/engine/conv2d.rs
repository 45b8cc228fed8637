//! What a conv2d layer dispatches in each stage: `conv2d_forward`, `conv2d_param_grad`,
//! `conv2d_backward`, and for the Σ-Jacobian the per-sample gradients (`conv2d_sample_grads`)
//! and their contraction (`jbar_samples`), maths §9's order (a).

use super::dispatch::{u, with, Constants, Dispatch};
use super::Parts;
use crate::error::Result;
use crate::gpu::tiles::{CONV_BACKWARD_TILE, CONV_FORWARD_PIXELS};
use crate::gpu::Kernel;
use crate::nn::{ConvGeom, Layer};

/// The override constants of a conv layer's geometry.
fn geometry(g: &ConvGeom) -> Constants {
    vec![
        ("IN_H", u(g.in_h)),
        ("IN_W", u(g.in_w)),
        ("CIN4", u(g.in_cp / 4)),
        ("OUT_H", u(g.out_h)),
        ("OUT_W", u(g.out_w)),
        ("COUT4", u(g.out_cp / 4)),
        ("K", u(g.kernel)),
        ("STRIDE", u(g.stride)),
        ("PAD_T", u(g.pad_top)),
        ("PAD_L", u(g.pad_left)),
    ]
}

/// Statistics stage: the convolution as an implicit GEMM, then the activation.
pub(super) fn forward(p: &Parts, l: usize, g: &ConvGeom) -> Result<Vec<Dispatch>> {
    let (ly, d, b) = (&p.layers[l], p.dims, p.bufs);
    Ok(vec![p.build.dispatch(
        Kernel::Conv2dForward,
        &with(
            geometry(g),
            &[
                ("ROWS", u(d.rows)),
                ("W_OFF4", u(ly.gpu_offset / 4)),
                ("ACT", ly.act.code() as f64),
            ],
        ),
        &[
            ("params", &b.params),
            ("a_in", b.a_in(l)),
            ("z_out", &b.z[l]),
            ("a_out", &b.a[l]),
        ],
        (d.rows * g.out_positions()).div_ceil(CONV_FORWARD_PIXELS) * g.out_cp / 4,
        format!("conv2d_forward[{l}]"),
    )?])
}

/// The parameter gradients of `rows` rows summed within `groups` groups of `group_rows` rows,
/// written `out_off` floats into `grad`, one layer block apart.
fn param_grads(
    p: &Parts,
    ly: &Layer,
    g: &ConvGeom,
    (rows, groups, group_rows, row_div, out_off): (usize, usize, usize, usize, usize),
    named: &[(&str, &wgpu::Buffer)],
    label: String,
) -> Result<Dispatch> {
    p.build.dispatch(
        Kernel::Conv2dParamGrad,
        &with(
            geometry(g),
            &[
                ("ROWS", u(rows)),
                ("GROUPS", u(groups)),
                ("GROUP_ROWS", u(group_rows)),
                ("ROW_DIV", u(row_div)),
                ("OUT_OFF4", u(out_off / 4)),
                ("G_STRIDE4", u(ly.gpu_len() / 4)),
            ],
        ),
        named,
        groups * (ly.in_pad / 4 + 1) * ly.out_pad / 4,
        label,
    )
}

/// Π-VJP stage: the batch's parameter gradient (split-K over row groups when the layer is small
/// for its rows, then `grad_reduce`).
pub(super) fn param_grad(p: &Parts, l: usize, g: &ConvGeom) -> Result<Vec<Dispatch>> {
    let (ly, d, b) = (&p.layers[l], p.dims, p.bufs);
    let t = p.train();
    let groups = d.param_groups[l];
    let (target, out_off) = super::shared::param_grad_target(p, ly, groups);
    let mut list = vec![param_grads(
        p,
        ly,
        g,
        (d.rows, groups, d.rows.div_ceil(groups), 1, out_off),
        &[
            ("a_in", b.a_in(l)),
            ("delta", &t.delta[l]),
            ("grad", target),
            ("chunk", &t.whole),
        ],
        format!("conv2d_param_grad[{l}]"),
    )?];
    list.extend(super::shared::grad_reduce(
        p,
        ly,
        groups,
        format!("grad_reduce[{l}]"),
    )?);
    Ok(list)
}

/// The input VJP (a transposed convolution), for the batch and for the per-sample
/// sensitivities; `named` as in [`super::dense::input_vjp`].
pub(super) fn input_vjp(
    p: &Parts,
    ly: &Layer,
    g: &ConvGeom,
    act_below: u32,
    (rows, row_div): (usize, usize),
    named: &[(&str, &wgpu::Buffer)],
    label: String,
) -> Result<Dispatch> {
    p.build.dispatch(
        Kernel::Conv2dBackward,
        &with(
            geometry(g),
            &[
                ("ROWS", u(rows)),
                ("ROW_DIV", u(row_div)),
                ("ACT_D1", act_below as f64),
                ("W_OFF4", u(ly.gpu_offset / 4)),
            ],
        ),
        named,
        CONV_BACKWARD_TILE.invocations(rows, g.in_cp / 4) * g.in_h * g.in_w,
        label.replace("dense", "conv2d"),
    )
}

/// Σ-Jacobian stage, one chunk: the per-(sample, k) weight gradients G_{b,k}, then
/// J̄\[j,k\] ← keep·J̄\[j,k\] + β (2/S) Σ_b w_b u_{b,j} G_{b,k}.
pub(super) fn jbar_share(
    p: &Parts,
    l: usize,
    g: &ConvGeom,
    chunk: &wgpu::Buffer,
    tag: impl Fn(&str) -> String,
) -> Result<Vec<Dispatch>> {
    let (ly, d, b) = (&p.layers[l], p.dims, p.bufs);
    let t = p.train();
    let j = p.jacobian();
    let c = d.chunk_samples;
    let njq = d.n.div_ceil(4);
    Ok(vec![
        p.build.dispatch(
            Kernel::Conv2dSampleGrads,
            &with(
                geometry(g),
                &[
                    ("NEIG", u(d.n)),
                    ("SAMPLES", u(c)),
                    ("LAYER4", u(ly.gpu_len() / 4)),
                ],
            ),
            &[
                ("a_in", b.a_in(l)),
                ("delta", &j.sens[l]),
                ("grad", &j.per_sample_grads),
                ("chunk", chunk),
            ],
            c * d.n.div_ceil(2) * (ly.in_pad / 4 + 1) * ly.out_pad / 4,
            tag("conv2d_sample_grads"),
        )?,
        p.build.dispatch(
            Kernel::JbarSamples,
            &[
                ("NEIG", u(d.n)),
                ("NEIG_PAD", u(d.npad)),
                ("NJQ", u(njq)),
                ("LAYER4", u(ly.gpu_len() / 4)),
                ("W_OFF4", u(ly.gpu_offset / 4)),
                ("NPAR4", u(d.npar4)),
            ],
            &[
                ("g_bk", &j.per_sample_grads),
                ("su", &j.su),
                ("step", &t.step),
                ("jbar", &j.jbar),
                ("chunk", chunk),
            ],
            d.n * njq * (ly.gpu_len() / 4).div_ceil(2),
            tag("jbar_samples"),
        )?,
    ])
}
