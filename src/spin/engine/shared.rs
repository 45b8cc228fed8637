//! Dispatches that several stages build: a layer's parameter-gradient target and its split-K
//! reduction (the dense and conv2d stages), and the exchange kernel (statistics and Π-VJP). A
//! lower layer of the engine: it imports no stage, so the stages never import each other
//! through it.

use super::dispatch::{u, Dispatch};
use super::Parts;
use crate::error::Result;
use crate::gpu::Kernel;
use crate::nn::Layer;

/// The exchange kernel (`shaders/exchange.wgsl`): `mode` 0 combines the network's rows and
/// their swapped copies, f_s = (f + s f∘P)/2, from `src` (net rows) into `dst` (R rows); mode 1
/// is its transpose, from a cotangent on f_s (R rows) to the net rows.
pub(super) fn exchange(
    p: &Parts,
    src: &wgpu::Buffer,
    dst: &wgpu::Buffer,
    mode: u32,
    label: &str,
) -> Result<Dispatch> {
    let d = p.dims;
    let sign = d.exchange.map_or(1.0, |e| e.sign());
    p.build.dispatch(
        Kernel::Exchange,
        &[
            ("ROWS", u(d.rows)),
            ("BLOCK", u(d.block)),
            ("NEIG_PAD", u(d.npad)),
            ("SIGN", sign),
            ("MODE", mode as f64),
        ],
        &[("src", src), ("dst", dst)],
        d.rows * d.npad,
        label.into(),
    )
}

/// Where a layer's batch parameter gradient goes: the layer's block of grad (offset in floats),
/// or, split into `groups` row groups, the scratch blocks that [`grad_reduce`] adds up.
pub(super) fn param_grad_target<'a>(
    p: &'a Parts,
    ly: &Layer,
    groups: usize,
) -> (&'a wgpu::Buffer, usize) {
    let t = p.train();
    if groups > 1 {
        (&t.grad_partial, 0)
    } else {
        (&t.grad, ly.gpu_offset)
    }
}

/// grad[layer] = Σ_g partial[g] after a split-K parameter gradient (nothing for one group).
pub(super) fn grad_reduce(
    p: &Parts,
    ly: &Layer,
    groups: usize,
    label: String,
) -> Result<Option<Dispatch>> {
    if groups <= 1 {
        return Ok(None);
    }
    let t = p.train();
    Ok(Some(p.build.dispatch(
        Kernel::GradReduce,
        &[
            ("LAYER4", u(ly.gpu_len() / 4)),
            ("GROUPS", u(groups)),
            ("W_OFF4", u(ly.gpu_offset / 4)),
        ],
        &[("partial", &t.grad_partial), ("grad", &t.grad)],
        ly.gpu_len() / 4,
        label,
    )?))
}
