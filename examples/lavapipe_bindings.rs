//! What a dispatch costs on lavapipe beyond its kernel: 24 dispatches of a one-workgroup kernel
//! in one pass, alternating two pipelines with a bind group each (as a training step's submits
//! do), timed from encoding to the end of the submit's wait, for 0–8 bound textures. Run it with
//! `LP_NUM_THREADS=0` (one thread, as the `--workers` processes run lavapipe).
//!
//! `LP_NUM_THREADS=0 cargo run --release --example lavapipe_bindings`
use spectral_inference::gpu::context::{request_from_env, GpuContext};
use std::time::Instant;

const DISPATCHES: usize = 24;

/// A kernel that reads one texel of each of `textures` textures and writes one vec4 a lane.
fn source(textures: usize, init: f32) -> String {
    let mut s = String::new();
    for i in 0..textures {
        s += &format!("@group(0) @binding({}) var t{i}: texture_2d<f32>;\n", i + 1);
    }
    s += "@group(0) @binding(0) var<storage, read_write> out: array<vec4<f32>>;\n";
    s += "@compute @workgroup_size(64)\n";
    s += "fn main(@builtin(global_invocation_id) id: vec3<u32>) {\n";
    s += &format!("    var s = vec4<f32>({init:.1});\n");
    for i in 0..textures {
        s += &format!("    s += textureLoad(t{i}, vec2<u32>(id.x & 7u, 0u), 0);\n");
    }
    s + "    out[id.x] = s;\n}\n"
}

fn main() {
    let ctx = GpuContext::new(&request_from_env()).unwrap();
    println!("adapter: {}", ctx.adapter().name);
    for textures in [0usize, 1, 2, 4, 8] {
        let out = ctx.storage("out", 64 * 4);
        let views: Vec<_> = (0..textures)
            .map(|_| {
                ctx.device
                    .create_texture(&wgpu::TextureDescriptor {
                        label: None,
                        size: wgpu::Extent3d {
                            width: 1024,
                            height: 64,
                            depth_or_array_layers: 1,
                        },
                        mip_level_count: 1,
                        sample_count: 1,
                        dimension: wgpu::TextureDimension::D2,
                        format: wgpu::TextureFormat::Rgba32Float,
                        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
                        view_formats: &[],
                    })
                    .create_view(&Default::default())
            })
            .collect();
        // Two pipelines (different constants), each with its own bind group.
        let bound: Vec<_> = [1.0f32, 2.0]
            .iter()
            .map(|&init| {
                let p = ctx
                    .pipeline_from_source("probe", &source(textures, init), "main", &[])
                    .unwrap();
                let mut entries = vec![wgpu::BindGroupEntry {
                    binding: 0,
                    resource: out.as_entire_binding(),
                }];
                for (i, v) in views.iter().enumerate() {
                    entries.push(wgpu::BindGroupEntry {
                        binding: i as u32 + 1,
                        resource: wgpu::BindingResource::TextureView(v),
                    });
                }
                let bg = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: None,
                    layout: &p.get_bind_group_layout(0),
                    entries: &entries,
                });
                (p, bg)
            })
            .collect();
        let (mut best, mut best_encode) = (f64::MAX, f64::MAX);
        for _ in 0..40 {
            let t = Instant::now();
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                for r in 0..DISPATCHES {
                    let (p, bg) = &bound[r % 2];
                    pass.set_pipeline(p);
                    pass.set_bind_group(0, bg, &[]);
                    pass.dispatch_workgroups(1, 1, 1);
                }
            }
            let cb = enc.finish();
            best_encode = best_encode.min(t.elapsed().as_secs_f64());
            ctx.queue.submit([cb]);
            ctx.device
                .poll(wgpu::PollType::wait_indefinitely())
                .unwrap();
            best = best.min(t.elapsed().as_secs_f64());
        }
        let got = ctx.read_buffer(&out, 4).unwrap();
        assert_eq!(got[0], 2.0, "the last dispatch's value");
        println!(
            "{textures} textures: {:.1} µs a dispatch ({:.1} µs of it encoding); {DISPATCHES} in one submit {:.0} µs",
            best * 1e6 / DISPATCHES as f64,
            best_encode * 1e6 / DISPATCHES as f64,
            best * 1e6
        );
    }
}
