//! What one dispatch costs beyond its work: 200 dispatches of a one-store kernel in one pass,
//! timed from submit to completion. On Mesa 22's lavapipe this is ≈ 40–65 µs per dispatch when
//! lavapipe runs its own thread pool (`LP_NUM_THREADS` ≥ 1: waking and joining the threads) and
//! ≈ 1.3 µs when it runs each dispatch on the submitting thread (`LP_NUM_THREADS=0`) — why
//! `--workers auto` runs one single-threaded worker process per core on a CPU adapter.
//!
//! `LP_NUM_THREADS=0 cargo run --release --example lavapipe_dispatch`
use spectral_inference::gpu::context::{request_from_env, GpuContext};
use std::time::Instant;

fn main() {
    let ctx = GpuContext::new(&request_from_env()).unwrap();
    println!(
        "{} ({}), LP_NUM_THREADS={}",
        ctx.adapter().name,
        ctx.adapter().backend,
        std::env::var("LP_NUM_THREADS").unwrap_or_default()
    );
    let src = r#"
@group(0) @binding(0) var<storage, read_write> out: array<vec4<f32>>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    out[id.x] = vec4<f32>(f32(id.x));
}
"#;
    let p = ctx.pipeline_from_source("probe", src, "main", &[]).unwrap();
    let out = ctx.storage("o", 64 * 64 * 16);
    let layout = p.get_bind_group_layout(0);
    let bg = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &layout,
        entries: &[wgpu::BindGroupEntry {
            binding: 0,
            resource: out.as_entire_binding(),
        }],
    });
    for groups in [1u32, 8, 32, 64] {
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                for _ in 0..200 {
                    pass.set_pipeline(&p);
                    pass.set_bind_group(0, &bg, &[]);
                    pass.dispatch_workgroups(groups, 1, 1);
                }
            }
            ctx.queue.submit([enc.finish()]);
            ctx.device
                .poll(wgpu::PollType::wait_indefinitely())
                .unwrap();
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "{groups:3} workgroups of 64: {:.1} µs per dispatch",
            best / 200.0 * 1e6
        );
    }
}
