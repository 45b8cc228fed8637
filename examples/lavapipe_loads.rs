//! What one load costs an invocation, by where the data lives: storage buffers, uniform buffers,
//! workgroup memory, private arrays, textures. On Mesa 22's lavapipe a storage or workgroup load
//! is a loop over the SIMD lanes (≈ 14 ns per vec4 per invocation) while a texel fetch is ≈ 2 ns;
//! this is why kernels read their read-only tensors through textures (`src/gpu/mirror.rs`).
//!
//! `cargo run --release --example lavapipe_loads`
use spectral_inference::gpu::context::{request_from_env, GpuContext};
use std::time::Instant;
fn main() {
    let ctx = GpuContext::new(&request_from_env()).unwrap();
    let kernels = [
        (
            "ssbo lane-varying vec4",
            "acc += sb[(lid + i * 64u) & 4095u];",
        ),
        ("ssbo uniform vec4", "acc += sb[i & 4095u];"),
        (
            "ssbo lane-varying f32",
            "acc += vec4<f32>(sf[(lid + i * 64u) & 16383u]);",
        ),
        ("ssbo uniform f32", "acc += vec4<f32>(sf[i & 16383u]);"),
        ("ubo uniform vec4", "acc += ub[i & 1023u];"),
        (
            "ubo lane-varying vec4",
            "acc += ub[(lid + i * 64u) & 1023u];",
        ),
        ("workgroup uniform vec4", "acc += wsh[i & 1023u];"),
        ("workgroup lane vec4", "acc += wsh[(lid + i) & 1023u];"),
        ("private arr lane vec4", "acc += pa[(lid + i) & 15u];"),
        (
            "fixed ssbo lane vec4",
            "acc += fb[(lid + i * 64u) & 4095u];",
        ),
        (
            "texture lane vec4",
            "acc += textureLoad(tx, vec2<u32>((lid + i * 64u) & 63u, (i >> 6u) & 63u), 0);",
        ),
        ("register fma vec4 (no load)", "acc = acc * 0.999 + vec4<f32>(0.5);"),
        (
            "ssbo store lane vec4",
            "acc += vec4<f32>(0.5); out[(lid + i * 64u) & 4095u] = acc;",
        ),
        (
            "storage texture store lane vec4",
            "acc += vec4<f32>(0.5); textureStore(stx, vec2<u32>((lid + i * 64u) & 63u, (i >> 6u) & 63u), acc);",
        ),
        (
            "texture uniform vec4",
            "acc += textureLoad(tx, vec2<u32>(i & 63u, (i >> 6u) & 63u), 0);",
        ),
    ];
    for (name, body) in kernels {
        let src = probe_source(body);
        let p = ctx
            .pipeline_from_source("probe", &src, "main", &[])
            .unwrap();
        let n = 64 * 64;
        let buf = ctx.storage("o", n * 4);
        let sb = ctx.storage("sb", 4096 * 4);
        let sf = ctx.storage("sf", 16384);
        let u = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: 16384,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let fb = ctx.storage("fb", 4096 * 4);
        let texture = |usage| {
            ctx.device.create_texture(&wgpu::TextureDescriptor {
                label: None,
                size: wgpu::Extent3d {
                    width: 64,
                    height: 64,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: wgpu::TextureFormat::Rgba32Float,
                usage,
                view_formats: &[],
            })
        };
        let tex = texture(wgpu::TextureUsages::TEXTURE_BINDING);
        let view = tex.create_view(&Default::default());
        let stex = texture(wgpu::TextureUsages::STORAGE_BINDING);
        let sview = stex.create_view(&Default::default());
        let layout = p.get_bind_group_layout(0);
        let mut entries: Vec<wgpu::BindGroupEntry> = [&buf, &sb, &sf, &u, &fb]
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        entries.push(wgpu::BindGroupEntry {
            binding: 5,
            resource: wgpu::BindingResource::TextureView(&view),
        });
        entries.push(wgpu::BindGroupEntry {
            binding: 6,
            resource: wgpu::BindingResource::TextureView(&sview),
        });
        let bg = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &layout,
            entries: &entries,
        });
        let best = best_of_three(&ctx, &p, &bg);
        let loads = n as f64 * 4096.0;
        println!(
            "{name:28} {:.2} ns per lane-load ({:.2} G lane-loads/s)",
            best / loads * 1e9,
            loads / best / 1e9
        );
    }
}

/// The probe kernel: every kind of memory bound, then 4096 iterations of `body`.
fn probe_source(body: &str) -> String {
    format!(
        r#"
@group(0) @binding(0) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> sb: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> sf: array<f32>;
@group(0) @binding(3) var<uniform> ub: array<vec4<f32>, 1024>;
@group(0) @binding(4) var<storage, read> fb: array<vec4<f32>, 4096>;
@group(0) @binding(5) var tx: texture_2d<f32>;
@group(0) @binding(6) var stx: texture_storage_2d<rgba32float, write>;
var<workgroup> wsh: array<vec4<f32>, 1024>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(local_invocation_index) lid: u32) {{
    var pa: array<vec4<f32>, 16>;
    for (var j = 0u; j < 16u; j++) {{ pa[j] = vec4<f32>(f32(j + lid)); }}
    wsh[lid] = vec4<f32>(f32(lid));
    workgroupBarrier();
    var acc = vec4<f32>(0.0) + out[0].x * 0.0 + sb[0] * 0.0 + sf[0] * 0.0 + ub[0] * 0.0 + fb[0] * 0.0 + textureLoad(tx, vec2<u32>(0u, 0u), 0) * 0.0;
    textureStore(stx, vec2<u32>(0u, 0u), acc);
    for (var i = 0u; i < 4096u; i++) {{
        {body}
    }}
    out[id.x] = acc;
}}
"#
    )
}

/// The shortest of three runs of 64 workgroups of `p`, in seconds.
fn best_of_three(ctx: &GpuContext, p: &wgpu::ComputePipeline, bg: &wgpu::BindGroup) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(p);
            pass.set_bind_group(0, bg, &[]);
            pass.dispatch_workgroups(64, 1, 1);
        }
        ctx.queue.submit([enc.finish()]);
        ctx.device
            .poll(wgpu::PollType::wait_indefinitely())
            .unwrap();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}
