//! GPU plumbing: adapter and device ([`GpuContext`]), the kernel registry and dispatch helpers.

pub mod context;
pub mod kernels;
pub mod mirror;
pub mod template;
pub mod tiles;

pub use context::{list_adapters, AdapterRequest, AdapterSummary, BackendChoice, GpuContext};
pub use kernels::Kernel;

/// Invocations per workgroup in every kernel (`WG` in `shaders/common.wgsl`).
pub const WORKGROUP: u32 = 64;

/// Workgroup grid for `invocations` threads: 1-D up to the per-dimension limit, 2-D beyond.
pub fn grid(invocations: u32) -> (u32, u32, u32) {
    let groups = invocations.div_ceil(WORKGROUP).max(1);
    const MAX: u32 = 65_535;
    if groups <= MAX {
        (groups, 1, 1)
    } else {
        (MAX, groups.div_ceil(MAX), 1)
    }
}
