//! Scalar fields given as WGSL expressions in `x` (a `vecD<f32>`, or `f32` in 1D), evaluated
//! on the GPU: user potentials such as `-1.0 / length(x)` or `dot(x, x)`.

use std::sync::{Arc, Mutex};

use crate::error::{Result, SpinError};
use crate::gpu::{grid, GpuContext};
use crate::operators::Field;

/// A WGSL expression compiled into a kernel that evaluates it at a batch of points.
pub struct WgslField {
    ctx: Arc<GpuContext>,
    expr: String,
    dim: usize,
    pipeline: wgpu::ComputePipeline,
    buffers: Mutex<Option<(usize, wgpu::Buffer, wgpu::Buffer, wgpu::Buffer)>>,
}

/// The kernel source for `expr` in `dim` dimensions, split into `particles` particles whose
/// positions the expression sees as `p0`, `p1`, … (each an `f32` or a `vecd<f32>` of the
/// particle's d = dim / particles coordinates) besides the whole configuration `x` (a `vecD`
/// up to 4 coordinates, an `array<f32, D>` above).
pub fn field_source(expr: &str, dim: usize, particles: usize) -> String {
    let particles = particles.max(1);
    let d = dim / particles;
    let component = |i: usize| -> String {
        match dim {
            1 => "x".into(),
            _ => format!("x[{i}]"),
        }
    };
    let mut lets = String::new();
    if particles > 1 {
        for p in 0..particles {
            let value = match d {
                1 => component(p),
                _ => format!(
                    "vec{d}<f32>({})",
                    (0..d)
                        .map(|i| component(p * d + i))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            lets.push_str(&format!("    let p{p} = {value};\n"));
        }
    }
    // WGSL's vectors stop at 4 components: a larger configuration is an array.
    let vector = |d: usize| {
        if d <= 4 {
            format!("vec{d}<f32>")
        } else {
            format!("array<f32, {d}>")
        }
    };
    let (ty, build) = match dim {
        1 => ("f32".to_string(), "points[r]".to_string()),
        d => (
            vector(d),
            format!(
                "{}({})",
                vector(d),
                (0..d)
                    .map(|i| format!("points[r * {d}u + {i}u]"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    };
    format!(
        "@group(0) @binding(0) var<storage, read> points: array<f32>;\n\
         @group(0) @binding(1) var<storage, read_write> values: array<f32>;\n\
         fn field(x: {ty}) -> f32 {{\n{lets}    return {expr};\n}}\n\
         @compute @workgroup_size(64)\n\
         fn field_eval(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {{\n\
         \x20   let r = id.x + id.y * nwg.x * 64u;\n\
         \x20   if (r >= arrayLength(&values)) {{ return; }}\n\
         \x20   values[r] = field({build});\n}}\n"
    )
}

impl WgslField {
    /// Validates `expr` (naga) and compiles it. An invalid expression is an error that quotes it
    /// with the parser's complaint.
    pub fn new(ctx: Arc<GpuContext>, expr: &str, dim: usize) -> Result<Self> {
        Self::with_particles(ctx, expr, dim, 1)
    }

    /// [`WgslField::new`] for `particles` particles sharing the `dim` coordinates: the
    /// expression also sees each particle's position as `p0`, `p1`, … ([`field_source`]).
    pub fn with_particles(
        ctx: Arc<GpuContext>,
        expr: &str,
        dim: usize,
        particles: usize,
    ) -> Result<Self> {
        let quoted = format!("expression `{expr}`");
        let max = if particles > 1 { 9 } else { 3 };
        if !(1..=max).contains(&dim) {
            return Err(SpinError::Config(format!(
                "expressions are supported in 1 to 3 dimensions (9 for several particles), not {dim}"
            )));
        }
        if expr.trim().is_empty() || expr.contains([';', '{', '}']) {
            return Err(SpinError::Shader {
                kernel: quoted,
                message: "a potential is one WGSL expression in `x` (no `;`, `{` or `}`)".into(),
            });
        }
        if particles == 0 || !dim.is_multiple_of(particles) {
            return Err(SpinError::Config(format!(
                "{particles} particles do not share {dim} coordinates evenly"
            )));
        }
        let source = field_source(expr, dim, particles);
        let pipeline = ctx
            .pipeline_from_source(&quoted, &source, "field_eval", &[])
            .map_err(|e| match e {
                SpinError::Shader { message, .. } => SpinError::Shader {
                    kernel: quoted.clone(),
                    message,
                },
                other => other,
            })?;
        Ok(Self {
            ctx,
            expr: expr.to_string(),
            dim,
            pipeline,
            buffers: Mutex::new(None),
        })
    }

    /// The expression.
    pub fn expr(&self) -> &str {
        &self.expr
    }
}

impl Field for WgslField {
    fn values(&self, points: &[f64], dim: usize) -> Result<Vec<f64>> {
        if dim != self.dim {
            return Err(SpinError::Shape(format!(
                "expression for dimension {} at points of dimension {dim}",
                self.dim
            )));
        }
        let count = points.len() / dim;
        let mut guard = self.buffers.lock().map_err(|_| SpinError::Gpu {
            context: "potential buffers".into(),
            message: "poisoned lock".into(),
        })?;
        if guard.as_ref().is_none_or(|b| b.0 < count) {
            let cap = count.max(1);
            *guard = Some((
                cap,
                self.ctx.storage("field points", cap * dim),
                self.ctx.storage("field values", cap),
                self.ctx.staging("field staging", cap),
            ));
        }
        let Some((_, pts, vals, staging)) = guard.as_ref() else {
            return Err(SpinError::Config("no field buffers".into()));
        };
        let p32: Vec<f32> = points.iter().map(|&v| v as f32).collect();
        self.ctx
            .queue
            .write_buffer(pts, 0, bytemuck::cast_slice(&p32));
        let pipeline = &self.pipeline;
        let bg = self.ctx.bind("field", pipeline, &[pts, vals]);
        let mut enc = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("field"),
            });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("field"),
                timestamp_writes: None,
            });
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, &bg, &[]);
            let (x, y, z) = grid(count as u32);
            pass.dispatch_workgroups(x, y, z);
        }
        enc.copy_buffer_to_buffer(vals, 0, staging, 0, (count * 4) as u64);
        self.ctx.queue.submit([enc.finish()]);
        Ok(self
            .ctx
            .read_staging(staging, count)?
            .into_iter()
            .map(|v| v as f64)
            .collect())
    }
}
