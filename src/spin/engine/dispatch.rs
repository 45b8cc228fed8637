//! One kernel dispatch with its bind group, the planning of texture-mirror copies between
//! dispatches, and the encoding of a list of them into compute passes.

use std::collections::HashSet;
use std::sync::Arc;

use crate::error::Result;
use crate::gpu::mirror::{Mirror, Mirrors};
use crate::gpu::{grid, GpuContext, Kernel};

/// A kernel's override constants: (name, value).
pub(super) type Constants = Vec<(&'static str, f64)>;

/// One recorded dispatch: its pipeline, bind group and grid, and the buffers it reads through
/// texture mirrors and writes (from which [`plan_copies`] decides the mirror refreshes).
pub(super) struct Dispatch {
    /// Kernel and layer, e.g. `dense_forward[1]` (the benchmark's per-kernel breakdown).
    pub label: String,
    pub pipeline: Arc<wgpu::ComputePipeline>,
    pub bind_group: wgpu::BindGroup,
    pub groups: (u32, u32, u32),
    /// Buffers this kernel reads through texture mirrors.
    pub textures: Vec<(wgpu::Buffer, Arc<Mirror>)>,
    /// Buffers it writes.
    pub writes: Vec<wgpu::Buffer>,
    /// Mirror copies to encode before it ([`plan_copies`]).
    pub copies: Vec<(wgpu::Buffer, Arc<Mirror>)>,
    /// Buffers whose mirror it reads only in a block that it alone writes (a layer's block of
    /// J̄): a mirror refreshed earlier in the list serves it although other dispatches wrote
    /// other blocks of the buffer since.
    pub own_block_reads: Vec<wgpu::Buffer>,
}

/// The context and the mirrors of the engine being built: what every stage builder needs to
/// turn a kernel, its constants and its named buffers into a [`Dispatch`].
pub(super) struct Build<'a> {
    pub ctx: &'a GpuContext,
    pub mirrors: Mirrors,
}

impl Build<'_> {
    /// Compiles (or fetches) `kernel` with `constants` and binds the named buffers, for
    /// `invocations` threads.
    pub fn dispatch(
        &self,
        kernel: Kernel,
        constants: &[(&'static str, f64)],
        buffers: &[(&str, &wgpu::Buffer)],
        invocations: usize,
        label: String,
    ) -> Result<Dispatch> {
        let pipeline = self.ctx.pipeline(kernel, kernel.name(), constants)?;
        let bound = kernel.bind(self.ctx, &self.mirrors, &pipeline, buffers, &label)?;
        Ok(Dispatch {
            label,
            pipeline,
            bind_group: bound.bind_group,
            groups: grid(invocations as u32),
            textures: bound.textures,
            writes: bound.writes,
            copies: Vec::new(),
            own_block_reads: Vec::new(),
        })
    }
}

/// A size as an override constant.
pub(super) fn u(v: usize) -> f64 {
    v as f64
}

/// `c` followed by `more`.
pub(super) fn with(mut c: Constants, more: &[(&'static str, f64)]) -> Constants {
    c.extend_from_slice(more);
    c
}

/// Decides, for a list of dispatches encoded in order after host writes, which mirrors must be
/// refreshed before each dispatch: a mirror is copied before the first dispatch that reads it
/// and again after any dispatch that writes its buffer, except for a dispatch that reads only
/// its own block of the buffer (`own_block_reads`), which any earlier copy in the list serves.
// wgpu::Buffer hashes by identity, not by contents.
#[allow(clippy::mutable_key_type)]
pub(super) fn plan_copies(list: &mut [Dispatch]) {
    // Mirrors by identity: a buffer may have a float and a uint mirror, each refreshed on its own.
    let key = |m: &Arc<Mirror>| Arc::as_ptr(m) as usize;
    let mut fresh: HashSet<(wgpu::Buffer, usize)> = Default::default();
    let mut copied: HashSet<usize> = Default::default();
    for d in list.iter_mut() {
        d.copies.clear();
        for (buf, m) in &d.textures {
            let k = (buf.clone(), key(m));
            if fresh.contains(&k) || (d.own_block_reads.contains(buf) && copied.contains(&k.1)) {
                continue;
            }
            fresh.insert(k);
            copied.insert(key(m));
            d.copies.push((buf.clone(), m.clone()));
        }
        for w in &d.writes {
            fresh.retain(|(b, _)| b != w);
        }
    }
}

/// Encodes `list` (planned by [`plan_copies`]): one compute pass per run of dispatches that
/// need no mirror copy in between.
pub(super) fn encode(enc: &mut wgpu::CommandEncoder, list: &[Dispatch]) {
    let mut i = 0;
    while i < list.len() {
        for (buf, m) in &list[i].copies {
            m.encode_copy(enc, buf);
        }
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("spin"),
            timestamp_writes: None,
        });
        loop {
            let d = &list[i];
            pass.set_pipeline(&d.pipeline);
            pass.set_bind_group(0, &d.bind_group, &[]);
            pass.dispatch_workgroups(d.groups.0, d.groups.1, d.groups.2);
            i += 1;
            if i == list.len() || !list[i].copies.is_empty() {
                break;
            }
        }
    }
}
