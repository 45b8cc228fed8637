//! Conv2d layers: every kernel alone against its CPU f64 twin (stride 1 and 2, SAME and VALID,
//! odd image sizes, channel counts that are not multiples of 4, row counts that do not fill a
//! workgroup). Whole conv networks: conv_net.rs.

use super::common;

use common::{assert_close, ctx, scale};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spectral_inference::gpu::mirror::Mirrors;
use spectral_inference::gpu::{grid, Kernel};
use spectral_inference::nn::oracle::{layer_backward, layer_forward, layer_param_grad, pair_index};
use spectral_inference::nn::{
    Activation, Conv2dSpec, ConvGeom, ImageShape, Layer, NetworkSpec, Padding,
};

/// Runs one kernel once on freshly uploaded buffers and returns every buffer afterwards.
fn run(
    kernel: Kernel,
    constants: &[(&'static str, f64)],
    bufs: &[(&str, Vec<f32>)],
    invocations: usize,
) -> Vec<Vec<f32>> {
    let ctx = ctx();
    let pipeline = ctx.pipeline(kernel, kernel.name(), constants).unwrap();
    let buffers: Vec<wgpu::Buffer> = bufs.iter().map(|(n, d)| ctx.storage_from(n, d)).collect();
    let named: Vec<(&str, &wgpu::Buffer)> = bufs
        .iter()
        .zip(&buffers)
        .map(|((n, _), b)| (*n, b))
        .collect();
    let mirrors = Mirrors::default();
    let bound = kernel
        .bind(&ctx, &mirrors, &pipeline, &named, "test")
        .unwrap();
    let bind = bound.bind_group;
    let mut enc = ctx
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
    for (buf, m) in &bound.textures {
        m.encode_copy(&mut enc, buf);
    }
    {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: None,
            timestamp_writes: None,
        });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind, &[]);
        let g = grid(invocations as u32);
        pass.dispatch_workgroups(g.0, g.1, g.2);
    }
    ctx.queue.submit([enc.finish()]);
    buffers
        .iter()
        .zip(bufs)
        .map(|(b, (_, d))| ctx.read_buffer(b, d.len()).unwrap())
        .collect()
}

fn chunk(offset: u32, count: u32, first: bool) -> Vec<f32> {
    [offset, count, first as u32, 0]
        .iter()
        .map(|&v| f32::from_bits(v))
        .collect()
}

/// NHWC rows of `c` channels → rows of `cp` channels (zero padding).
fn pad(data: &[f64], c: usize, cp: usize) -> Vec<f32> {
    data.chunks(c)
        .flat_map(|px| {
            let mut v: Vec<f32> = px.iter().map(|&x| x as f32).collect();
            v.resize(cp, 0.0);
            v
        })
        .collect()
}

fn unpad(data: &[f32], c: usize, cp: usize) -> Vec<f32> {
    data.chunks(cp).flat_map(|px| px[..c].to_vec()).collect()
}

pub(crate) fn random(n: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

fn geom_constants(g: &ConvGeom) -> Vec<(&'static str, f64)> {
    vec![
        ("IN_H", g.in_h as f64),
        ("IN_W", g.in_w as f64),
        ("CIN4", (g.in_cp / 4) as f64),
        ("OUT_H", g.out_h as f64),
        ("OUT_W", g.out_w as f64),
        ("COUT4", (g.out_cp / 4) as f64),
        ("K", g.kernel as f64),
        ("STRIDE", g.stride as f64),
        ("PAD_T", g.pad_top as f64),
        ("PAD_L", g.pad_left as f64),
    ]
}

/// A network whose first layer is the conv layer under test; its parameters (random biases
/// too) in θ's layout and the GPU's.
fn conv_case(
    (h, w, cin, cout, k, s, padding): (usize, usize, usize, usize, usize, usize, Padding),
    act: Activation,
    rng: &mut ChaCha8Rng,
) -> (Layer, ConvGeom, Vec<f64>, Vec<f32>) {
    let spec = NetworkSpec {
        input_dim: h * w * cin,
        image: Some(ImageShape {
            height: h,
            width: w,
            channels: cin,
        }),
        conv: vec![Conv2dSpec {
            channels: cout,
            kernel: k,
            stride: s,
            padding,
        }],
        outputs: 2,
        activation: act,
        ..Default::default()
    };
    spec.validate().unwrap();
    let layer = spec.layers()[0];
    let geom = layer.conv().unwrap();
    let mut params32 = spec.init_params(rng);
    for o in 0..layer.outputs {
        params32[layer.b(o)] = rng.random_range(-0.5..0.5);
    }
    let params = params32.iter().map(|&v| v as f64).collect();
    (layer, geom, params, spec.pack(&params32))
}

/// A layer's parameter block read from a padded GPU vector at `at`, in θ's layout.
fn read_block(layer: &Layer, buf: &[f32], at: usize) -> Vec<f32> {
    let mut out = vec![0.0; layer.len()];
    for i in 0..=layer.inputs {
        for o in 0..layer.outputs {
            let dst = if i == layer.inputs {
                layer.b(o)
            } else {
                layer.w(i, o)
            };
            out[dst] = buf[at + layer.gpu(i, o)];
        }
    }
    out
}

const CASES: &[(usize, usize, usize, usize, usize, usize, Padding)] = &[
    (7, 5, 3, 6, 3, 2, Padding::Same),
    (6, 6, 2, 5, 3, 1, Padding::Valid),
    (9, 7, 5, 4, 5, 2, Padding::Same),
    (5, 8, 1, 3, 2, 2, Padding::Valid),
    (4, 3, 4, 8, 4, 1, Padding::Same),
];

const ACTS: [Activation; 3] = [Activation::Relu, Activation::Softplus, Activation::Identity];

#[test]
fn conv2d_forward_matches_oracle() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for (ci, &case) in CASES.iter().enumerate() {
        let act = ACTS[ci % 3];
        let (layer, g, params, packed) = conv_case(case, act, &mut rng);
        let rows = 3;
        let a_in = random(rows * g.in_h * g.in_w * g.in_c, &mut rng);
        let z = layer_forward(&layer, &params, &a_in, rows);
        let a: Vec<f64> = z.iter().map(|&v| act.apply(v)).collect();
        let out_len = rows * layer.out_width;
        let mut c = geom_constants(&g);
        c.extend([
            ("ROWS", rows as f64),
            ("W_OFF4", 0.0),
            ("ACT", act.code() as f64),
        ]);
        let res = run(
            Kernel::Conv2dForward,
            &c,
            &[
                ("params", packed.clone()),
                ("a_in", pad(&a_in, g.in_c, g.in_cp)),
                ("z_out", vec![0.0; out_len]),
                ("a_out", vec![0.0; out_len]),
            ],
            (rows * g.out_positions()).div_ceil(4) * g.out_cp / 4,
        );
        let name = format!("case {ci} {case:?} {act:?}");
        assert_close(
            &format!("{name} z"),
            &unpad(&res[2], g.out_c, g.out_cp),
            &z,
            1e-5,
            1e-5 * scale(&z),
        );
        assert_close(
            &format!("{name} a"),
            &unpad(&res[3], g.out_c, g.out_cp),
            &a,
            1e-5,
            1e-5 * scale(&a),
        );
    }
}

#[test]
fn conv2d_input_vjp_matches_oracle() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for (ci, &case) in CASES.iter().enumerate() {
        let act_below = ACTS[ci % 3];
        let (layer, g, params, packed) = conv_case(case, Activation::Softplus, &mut rng);
        let in_len = g.in_h * g.in_w * g.in_c;
        // Batch VJP (row_div 1, no offset) and sensitivity rows (row_div 2, offset 1).
        for (rows, row_div, offset) in [(3usize, 1usize, 0usize), (6, 2, 1)] {
            let delta_out = random(rows * layer.out_len(), &mut rng);
            let z_in = random((offset + rows / row_div) * in_len, &mut rng);
            let want = layer_backward(
                &layer,
                &params,
                &delta_out,
                &z_in[offset * in_len..],
                act_below,
                row_div,
            );
            let mut c = geom_constants(&g);
            c.extend([
                ("ROWS", rows as f64),
                ("W_OFF4", 0.0),
                ("ROW_DIV", row_div as f64),
                ("ACT_D1", act_below.code() as f64),
            ]);
            let res = run(
                Kernel::Conv2dBackward,
                &c,
                &[
                    ("params", packed.clone()),
                    ("delta_out", pad(&delta_out, g.out_c, g.out_cp)),
                    ("z_in", pad(&z_in, g.in_c, g.in_cp)),
                    ("delta_in", vec![0.0; rows * g.in_h * g.in_w * g.in_cp]),
                    ("chunk", chunk(offset as u32, 0, false)),
                ],
                rows.div_ceil(4) * g.in_h * g.in_w * g.in_cp / 4,
            );
            assert_close(
                &format!("case {ci} {case:?} rows {rows} δ_in"),
                &unpad(&res[3], g.in_c, g.in_cp),
                &want,
                1e-5,
                1e-5 * scale(&want),
            );
        }
    }
}

#[test]
fn conv2d_param_grads_match_oracle() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for (ci, &case) in CASES.iter().enumerate() {
        let (layer, g, _params, _) = conv_case(case, Activation::Softplus, &mut rng);
        let in_len = g.in_h * g.in_w * g.in_c;
        let block = layer.gpu_len();
        // One group of all rows (the batch VJP), one group per (sample, k) row, and a split-K
        // of 7 rows into groups of 3 (the last one cut short at ROWS).
        for (groups, group_rows, row_div, offset, rows) in [
            (1usize, 3usize, 1usize, 0usize, 3usize),
            (6, 1, 2, 1, 6),
            (3, 3, 1, 0, 7),
        ] {
            let delta = random(rows * layer.out_len(), &mut rng);
            let a_in = random((offset + rows / row_div) * in_len, &mut rng);
            let mut c = geom_constants(&g);
            c.extend([
                ("ROWS", rows as f64),
                ("GROUPS", groups as f64),
                ("GROUP_ROWS", group_rows as f64),
                ("ROW_DIV", row_div as f64),
                ("OUT_OFF4", 0.0),
                ("G_STRIDE4", (block / 4) as f64),
            ]);
            let res = run(
                Kernel::Conv2dParamGrad,
                &c,
                &[
                    ("a_in", pad(&a_in, g.in_c, g.in_cp)),
                    ("delta", pad(&delta, g.out_c, g.out_cp)),
                    ("grad", vec![0.0; groups * block]),
                    ("chunk", chunk(offset as u32, 0, false)),
                ],
                groups * (layer.in_pad / 4 + 1) * layer.out_pad / 4,
            );
            for grp in 0..groups {
                let r0 = grp * group_rows;
                let r1 = (r0 + group_rows).min(rows);
                let d = &delta[r0 * layer.out_len()..r1 * layer.out_len()];
                // Rows of a group share inputs only through row_div; build the group's inputs.
                let a: Vec<f64> = (r0..r1)
                    .flat_map(|r| {
                        let ar = offset + r / row_div;
                        a_in[ar * in_len..(ar + 1) * in_len].to_vec()
                    })
                    .collect();
                let mut want = vec![0.0; layer.len()];
                layer_param_grad(&layer, &a, d, r1 - r0, &mut want);
                assert_close(
                    &format!("case {ci} {case:?} group {grp}/{groups}"),
                    &read_block(&layer, &res[2], grp * block),
                    &want,
                    1e-4,
                    1e-5 * scale(&want),
                );
            }
        }
    }
}

#[test]
fn conv2d_sample_grads_match_oracle() {
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    for (ci, &case) in CASES.iter().enumerate() {
        let (layer, g, _params, _) = conv_case(case, Activation::Softplus, &mut rng);
        let in_len = g.in_h * g.in_w * g.in_c;
        let block = layer.gpu_len();
        // A chunk of 2 samples from sample 1 on, N = 3 (odd: the last pair of outputs is half).
        let (samples, n, offset) = (2usize, 3usize, 1usize);
        let delta = random(samples * n * layer.out_len(), &mut rng);
        let a_in = random((offset + samples) * in_len, &mut rng);
        let mut c = geom_constants(&g);
        c.extend([
            ("NEIG", n as f64),
            ("SAMPLES", samples as f64),
            ("LAYER4", (block / 4) as f64),
        ]);
        let res = run(
            Kernel::Conv2dSampleGrads,
            &c,
            &[
                ("a_in", pad(&a_in, g.in_c, g.in_cp)),
                ("delta", pad(&delta, g.out_c, g.out_cp)),
                ("grad", vec![0.0; samples * n * block]),
                ("chunk", chunk(offset as u32, samples as u32, true)),
            ],
            samples * n.div_ceil(2) * (layer.in_pad / 4 + 1) * layer.out_pad / 4,
        );
        for b in 0..samples {
            for k in 0..n {
                let row = b * n + k;
                let d = &delta[row * layer.out_len()..(row + 1) * layer.out_len()];
                let a = &a_in[(offset + b) * in_len..(offset + b + 1) * in_len];
                let mut want = vec![0.0; layer.len()];
                layer_param_grad(&layer, a, d, 1, &mut want);
                let got = read_block(&layer, &res[2], row * block);
                assert_close(
                    &format!("case {ci} {case:?} sample {b} output {k}"),
                    &got,
                    &want,
                    1e-4,
                    1e-5 * scale(&want),
                );
            }
        }
    }
}

#[test]
fn jbar_samples_matches_formula() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for (n, layer4, count, offset, first) in
        [(5usize, 7usize, 3usize, 2usize, true), (9, 3, 4, 0, false)]
    {
        let samples = offset + count + 1;
        let npairs = n * (n + 1) / 2;
        let (w_off4, npar4) = (2usize, layer4 + 5);
        let g_bk = random(count * n * layer4 * 4, &mut rng);
        let u = random(samples * n, &mut rng);
        let w: Vec<f64> = (0..samples).map(|_| rng.random_range(0.5..1.5)).collect();
        let jbar0 = random(npairs * npar4 * 4, &mut rng);
        let (beta, two_s) = (0.3, 2.0 / 11.0);
        let mut gmat = vec![beta as f32, two_s as f32, 0.0, 0.0];
        gmat.extend(vec![0.0f32; 2 * n * n]);
        // sens_init's w·u, padded to whole vec4s.
        let npad = n.next_multiple_of(4);
        let mut su = vec![0.0f32; count * npad];
        for b in 0..count {
            for j in 0..n {
                su[b * npad + j] = (w[offset + b] * u[(offset + b) * n + j]) as f32;
            }
        }
        let res = run(
            Kernel::JbarSamples,
            &[
                ("NEIG", n as f64),
                ("NEIG_PAD", npad as f64),
                ("NJQ", n.div_ceil(4) as f64),
                ("LAYER4", layer4 as f64),
                ("W_OFF4", w_off4 as f64),
                ("NPAR4", npar4 as f64),
            ],
            &[
                ("g_bk", g_bk.iter().map(|&v| v as f32).collect()),
                ("su", su),
                ("step", gmat),
                ("jbar", jbar0.iter().map(|&v| v as f32).collect()),
                ("chunk", chunk(offset as u32, count as u32, first)),
            ],
            n * n.div_ceil(4) * layer4.div_ceil(2),
        );
        let mut want = jbar0.clone();
        let keep = if first { 1.0 - beta } else { 1.0 };
        for k in 0..n {
            for j in 0..=k {
                for p in 0..layer4 * 4 {
                    let acc: f64 = (0..count)
                        .map(|b| {
                            let bs = offset + b;
                            w[bs] * u[bs * n + j] * g_bk[(b * n + k) * layer4 * 4 + p]
                        })
                        .sum();
                    let idx = pair_index(j, k) * npar4 * 4 + w_off4 * 4 + p;
                    want[idx] = keep * jbar0[idx] + beta * two_s * acc;
                }
            }
        }
        assert_close("jbar", &res[3], &want, 1e-5, 1e-5);
    }
}
