//! What sharing fetches across a subgroup buys on lavapipe: one 64×64 dense layer on 256 rows,
//! every lane fetching its own weights through the texture (the per-lane kernels, tiles of rows ×
//! output quads) against a subgroup of 8 lanes that fetches a tile's weights once and hands them
//! out with `subgroupBroadcast` (the `_shared` kernels). Each variant is checked against an f64
//! product and timed over 50 dispatches in one pass; run it with `LP_NUM_THREADS=0` (one thread,
//! as the `--workers` processes run lavapipe).
//!
//! `LP_NUM_THREADS=0 cargo run --release --example lavapipe_matmul`
//!
//! (A third way, every weight read from a uniform buffer at a constant offset in fully unrolled
//! code, ran 2–3.4× faster than the per-lane 2 × 2 tile but took lavapipe 20–50 s to compile.)
use spectral_inference::gpu::context::{request_from_env, GpuContext};
use std::fmt::Write;
use std::time::Instant;

const ROWS: u32 = 256;
const IN4: u32 = 16;
const OUT4: u32 = 16;

fn header() -> String {
    r#"
fn ld4(t: texture_2d<f32>, i: u32) -> vec4<f32> {
    return textureLoad(t, vec2<u32>(i & 1023u, i >> 10u), 0);
}
@group(0) @binding(0) var<uniform> wu: array<vec4<f32>, 1040>;
@group(0) @binding(1) var wt: texture_2d<f32>;
@group(0) @binding(2) var a_in: texture_2d<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;
"#
    .to_string()
}

/// The current kernels' scheme: every lane fetches its own weights; `tr` rows × `tq` quads.
fn texture_tile(tr: u32, tq: u32) -> String {
    let mut s = header();
    writeln!(
        s,
        "@compute @workgroup_size(64)\nfn main(@builtin(global_invocation_id) id: vec3<u32>) {{"
    )
    .unwrap();
    writeln!(
        s,
        "    if (id.x == 9999999u) {{ out[0] = wu[0] + ld4(wt, 0u); }}"
    )
    .unwrap();
    writeln!(s, "    let t = id.x;\n    let ot = {}u;", OUT4 / tq).unwrap();
    writeln!(
        s,
        "    let o0 = (t % ot) * {tq}u;\n    let r0 = min(t / ot, {}u) * {tr}u;",
        ROWS / tr - 1
    )
    .unwrap();
    for r in 0..tr {
        for c in 0..tq {
            writeln!(s, "    var acc{r}_{c} = vec4<f32>(0.0);").unwrap();
        }
    }
    writeln!(s, "    for (var iq = 0u; iq < {IN4}u; iq++) {{").unwrap();
    for c in 0..tq {
        for i in 0..4 {
            writeln!(
                s,
                "        let w{i}_{c} = ld4(wt, (4u * iq + {i}u) * {OUT4}u + o0 + {c}u);"
            )
            .unwrap();
        }
    }
    for r in 0..tr {
        writeln!(
            s,
            "        let x{r} = ld4(a_in, (r0 + {r}u) * {IN4}u + iq);"
        )
        .unwrap();
        for c in 0..tq {
            writeln!(s, "        acc{r}_{c} += x{r}.x * w0_{c} + x{r}.y * w1_{c} + x{r}.z * w2_{c} + x{r}.w * w3_{c};").unwrap();
        }
    }
    s += "    }\n";
    for r in 0..tr {
        for c in 0..tq {
            writeln!(
                s,
                "    out[(r0 + {r}u) * {OUT4}u + o0 + {c}u] = acc{r}_{c};"
            )
            .unwrap();
        }
    }
    s += "}\n";
    s
}

/// Subgroup-shared weights: the 8 lanes of a SIMD group share output quads and fetch 8 different
/// weight vec4s, which `subgroupBroadcast` hands to every lane; `tq` output quads, `tr` rows.
fn subgroup(tq: u32, tr: u32) -> String {
    let mut s = header();
    let tiles = OUT4 / tq;
    writeln!(s, "@compute @workgroup_size(64)\nfn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {{").unwrap();
    writeln!(
        s,
        "    if (id.x == 9999999u) {{ out[0] = wu[0] + ld4(wt, 0u); }}"
    )
    .unwrap();
    writeln!(s, "    let t = id.x;\n    let rg = {}u;", ROWS / tr).unwrap();
    writeln!(
        s,
        "    let r0 = (t % rg) * {tr}u;\n    let o0 = min(t / rg, {}u) * {tq}u;",
        tiles - 1
    )
    .unwrap();
    // weight vec4 k = i * tq + c (i input 0..4, c quad); lane l fetches k = l + 8 m
    let nk = 4 * tq;
    let fetches = nk.div_ceil(8);
    for r in 0..tr {
        for c in 0..tq {
            writeln!(s, "    var acc{r}_{c} = vec4<f32>(0.0);").unwrap();
        }
    }
    writeln!(s, "    for (var iq = 0u; iq < {IN4}u; iq++) {{").unwrap();
    for m in 0..fetches {
        writeln!(s, "        let k{m} = min(lane + {}u, {}u);", 8 * m, nk - 1).unwrap();
        writeln!(s, "        let wf{m} = ld4(wt, 4u * iq * {OUT4}u + (k{m} / {tq}u) * {OUT4}u + o0 + k{m} % {tq}u);").unwrap();
    }
    for r in 0..tr {
        writeln!(
            s,
            "        let x{r} = ld4(a_in, (r0 + {r}u) * {IN4}u + iq);"
        )
        .unwrap();
    }
    for c in 0..tq {
        for i in 0..4 {
            let k = i * tq + c;
            writeln!(
                s,
                "        let w{i}_{c} = subgroupBroadcast(wf{}, {}u);",
                k / 8,
                k % 8
            )
            .unwrap();
        }
        for r in 0..tr {
            writeln!(s, "        acc{r}_{c} += x{r}.x * w0_{c} + x{r}.y * w1_{c} + x{r}.z * w2_{c} + x{r}.w * w3_{c};").unwrap();
        }
    }
    s += "    }\n";
    for r in 0..tr {
        for c in 0..tq {
            writeln!(
                s,
                "    out[(r0 + {r}u) * {OUT4}u + o0 + {c}u] = acc{r}_{c};"
            )
            .unwrap();
        }
    }
    s += "}\n";
    s
}

fn main() {
    let ctx = GpuContext::new(&request_from_env()).unwrap();
    let variants: Vec<(String, String, u32)> = vec![
        ("texture 2x2".into(), texture_tile(2, 2), ROWS * OUT4 / 4),
        ("texture 8x2".into(), texture_tile(8, 2), ROWS * OUT4 / 16),
        ("texture 4x4".into(), texture_tile(4, 4), ROWS * OUT4 / 16),
        ("subgroup 1x2".into(), subgroup(2, 1), ROWS * OUT4 / 2),
        ("subgroup 1x4".into(), subgroup(4, 1), ROWS * OUT4 / 4),
        ("subgroup 2x4".into(), subgroup(4, 2), ROWS * OUT4 / 8),
        ("subgroup 1x8".into(), subgroup(8, 1), ROWS * OUT4 / 8),
        ("subgroup 2x8".into(), subgroup(8, 2), ROWS * OUT4 / 16),
        ("subgroup 4x4".into(), subgroup(4, 4), ROWS * OUT4 / 16),
        ("subgroup 4x8".into(), subgroup(8, 4), ROWS * OUT4 / 32),
        ("subgroup 8x4".into(), subgroup(4, 8), ROWS * OUT4 / 32),
        ("subgroup 8x2".into(), subgroup(2, 8), ROWS * OUT4 / 16),
    ];
    for (name, src, invocations) in variants {
        let t0 = Instant::now();
        let p = ctx
            .pipeline_from_source("probe", &src, "main", &[])
            .unwrap();
        let out = ctx.storage("o", (ROWS * OUT4 * 4) as usize);
        let u = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: 1040 * 16,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let texture = || {
            ctx.device.create_texture(&wgpu::TextureDescriptor {
                label: None,
                size: wgpu::Extent3d {
                    width: 1024,
                    height: 8,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: wgpu::TextureFormat::Rgba32Float,
                usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
                view_formats: &[],
            })
        };
        let (t1, t2) = (texture(), texture());
        let data = |seed: u32| -> Vec<f32> {
            (0..1024 * 8 * 4)
                .map(|i| {
                    (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 1000) as f32
                        / 1000.0
                        - 0.5
                })
                .collect()
        };
        let (wd, ad) = (data(1), data(7));
        for (t, d) in [(&t1, &wd), (&t2, &ad)] {
            ctx.queue.write_texture(
                t.as_image_copy(),
                bytemuck::cast_slice(d),
                wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(1024 * 16),
                    rows_per_image: None,
                },
                wgpu::Extent3d {
                    width: 1024,
                    height: 8,
                    depth_or_array_layers: 1,
                },
            );
        }
        let (v1, v2) = (
            t1.create_view(&Default::default()),
            t2.create_view(&Default::default()),
        );
        let bg = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &p.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: u.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: wgpu::BindingResource::TextureView(&v1),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: wgpu::BindingResource::TextureView(&v2),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: out.as_entire_binding(),
                },
            ],
        });
        let groups = invocations.div_ceil(64);
        let reps = 50;
        let mut best = f64::MAX;
        for round in 0..4 {
            let t = Instant::now();
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&p);
                pass.set_bind_group(0, &bg, &[]);
                for _ in 0..reps {
                    pass.dispatch_workgroups(groups, 1, 1);
                }
            }
            ctx.queue.submit([enc.finish()]);
            ctx.device
                .poll(wgpu::PollType::wait_indefinitely())
                .unwrap();
            if round == 0 {
                println!(
                    "{name:28} first (JIT) {:.1} ms, source {} kB",
                    t0.elapsed().as_secs_f64() * 1e3,
                    src.len() / 1024
                );
            } else {
                best = best.min(t.elapsed().as_secs_f64() / reps as f64);
            }
        }
        let got = ctx.read_buffer(&out, (ROWS * OUT4 * 4) as usize).unwrap();
        let mut err = 0f64;
        for r in 0..ROWS as usize {
            for o in 0..(OUT4 * 4) as usize {
                let want: f64 = (0..(IN4 * 4) as usize)
                    .map(|i| ad[r * 64 + i] as f64 * wd[i * 64 + o] as f64)
                    .sum();
                err = err.max((got[r * 64 + o] as f64 - want).abs());
            }
        }
        println!("{name:28} max error {err:.2e}");
        let flops = 2.0 * (ROWS * IN4 * 4 * OUT4 * 4) as f64;
        println!(
            "{name:28} {:.1} us per layer ({:.1} GFLOP/s)",
            best * 1e6,
            flops / best / 1e9
        );
    }
}
