//! Read-only tensors as textures ("mirrors").
//!
//! On Mesa 22's lavapipe every storage-buffer (and workgroup-memory) load is a loop over the
//! SIMD lanes: ≈ 14 ns per invocation for a `vec4`, where a texel fetch from an `rgba32float`
//! texture costs ≈ 2 ns (`examples/lavapipe_loads.rs` measures both). A kernel therefore declares
//! the tensors it only reads as `texture_2d<f32>` and reads them with `ld4`/`ld1`
//! (`shaders/common.wgsl`); the engine keeps a texture beside each such buffer and copies the
//! buffer into it (a memcpy on lavapipe, a copy-engine transfer on a GPU) before the first
//! dispatch that reads it after a write. Real GPUs read textures through their texture caches,
//! so the layout costs them nothing.
//!
//! Layout: the buffer's bytes, 16 per texel, [`MIRROR_WIDTH`] texels per texture row, so that
//! flat `vec4` index `i` is texel `(i mod 1024, i / 1024)`.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Result, SpinError};
use crate::gpu::GpuContext;

/// Texels per texture row (16 KiB of data: a multiple of the copy row alignment).
pub const MIRROR_WIDTH: u32 = 1024;

/// The texture copy of one storage buffer.
pub struct Mirror {
    texture: wgpu::Texture,
    view: wgpu::TextureView,
    full_rows: u32,
    rest: u32,
}

impl Mirror {
    /// A texture that can hold all of `buffer` (whose size must be a multiple of 16 bytes):
    /// `rgba32float`, or `rgba32uint` with `uint` (the copy is bitwise either way).
    pub fn new(ctx: &GpuContext, label: &str, buffer: &wgpu::Buffer, uint: bool) -> Result<Self> {
        let size = buffer.size();
        if !size.is_multiple_of(16) {
            return Err(SpinError::Shape(format!(
                "buffer `{label}` ({size} bytes) is not a whole number of texels"
            )));
        }
        let texels = (size / 16) as u32;
        let full_rows = texels / MIRROR_WIDTH;
        let rest = texels % MIRROR_WIDTH;
        let height = (full_rows + u32::from(rest > 0)).max(1);
        let max = ctx.device.limits().max_texture_dimension_2d;
        if height > max {
            return Err(SpinError::Shape(format!(
                "buffer `{label}` ({size} bytes) needs a {MIRROR_WIDTH}×{height} texture; \
                 the adapter allows {max} rows"
            )));
        }
        let texture = ctx.device.create_texture(&wgpu::TextureDescriptor {
            label: Some(label),
            size: wgpu::Extent3d {
                width: MIRROR_WIDTH,
                height,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: if uint {
                wgpu::TextureFormat::Rgba32Uint
            } else {
                wgpu::TextureFormat::Rgba32Float
            },
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        Ok(Self {
            texture,
            view,
            full_rows,
            rest,
        })
    }

    /// The view that kernels bind.
    pub fn view(&self) -> &wgpu::TextureView {
        &self.view
    }

    /// Encodes the copy of `buffer` into this texture (at most two copy commands).
    pub fn encode_copy(&self, enc: &mut wgpu::CommandEncoder, buffer: &wgpu::Buffer) {
        let row_bytes = MIRROR_WIDTH * 16;
        if self.full_rows > 0 {
            enc.copy_buffer_to_texture(
                wgpu::TexelCopyBufferInfo {
                    buffer,
                    layout: wgpu::TexelCopyBufferLayout {
                        offset: 0,
                        bytes_per_row: Some(row_bytes),
                        rows_per_image: None,
                    },
                },
                self.texture.as_image_copy(),
                wgpu::Extent3d {
                    width: MIRROR_WIDTH,
                    height: self.full_rows,
                    depth_or_array_layers: 1,
                },
            );
        }
        if self.rest > 0 {
            enc.copy_buffer_to_texture(
                wgpu::TexelCopyBufferInfo {
                    buffer,
                    layout: wgpu::TexelCopyBufferLayout {
                        offset: u64::from(self.full_rows) * u64::from(row_bytes),
                        bytes_per_row: Some(row_bytes),
                        rows_per_image: None,
                    },
                },
                wgpu::TexelCopyTextureInfo {
                    texture: &self.texture,
                    mip_level: 0,
                    origin: wgpu::Origin3d {
                        x: 0,
                        y: self.full_rows,
                        z: 0,
                    },
                    aspect: wgpu::TextureAspect::All,
                },
                wgpu::Extent3d {
                    width: self.rest,
                    height: 1,
                    depth_or_array_layers: 1,
                },
            );
        }
    }
}

/// The mirrors of one engine, one per buffer and format (float or uint) that some kernel reads
/// as a texture. (`wgpu::Buffer` hashes by identity, not by contents.)
#[derive(Default)]
pub struct Mirrors {
    map: std::cell::RefCell<HashMap<(wgpu::Buffer, bool), Arc<Mirror>>>,
}

impl Mirrors {
    /// The float (or with `uint` the uint) mirror of `buffer`, created on first use.
    pub fn of(
        &self,
        ctx: &GpuContext,
        label: &str,
        buffer: &wgpu::Buffer,
        uint: bool,
    ) -> Result<Arc<Mirror>> {
        let key = (buffer.clone(), uint);
        if let Some(m) = self.map.borrow().get(&key) {
            return Ok(m.clone());
        }
        let m = Arc::new(Mirror::new(
            ctx,
            &format!("{label} (texture)"),
            buffer,
            uint,
        )?);
        self.map.borrow_mut().insert(key, m.clone());
        Ok(m)
    }

    /// Bytes of texture memory held.
    pub fn bytes(&self) -> u64 {
        self.map.borrow().keys().map(|(b, _)| b.size()).sum()
    }
}
