//! Conv2d layers: every kernel alone against its CPU f64 twin (stride 1 and 2, SAME and VALID,
//! odd image sizes, channel counts that are not multiples of 4, row counts that do not fill a
//! workgroup), finite differences of a small conv network, whole SpIN steps of conv nets
//! against the oracle step (one chunk and several), and block masks between feature maps.

mod common;

use std::sync::Arc;

use common::{assert_close, ctx, scale, small_net};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spectral_inference::gpu::mirror::Mirrors;
use spectral_inference::gpu::{grid, Kernel};
use spectral_inference::nn::oracle::{
    backward, forward, layer_backward, layer_forward, layer_param_grad, pair_index, sensitivities,
    sigma_jacobian,
};
use spectral_inference::nn::{
    separate_networks_mask, Activation, Conv2dSpec, ConvGeom, ImageShape, Layer, NetworkSpec,
    Padding,
};
use spectral_inference::operators::{Batch, Operator};
use spectral_inference::spin::{Engine, EngineOptions};

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

fn random(n: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
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

fn video_batch(spec: &NetworkSpec, clips: usize, len: usize, seed: u64) -> Batch {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let inputs: Vec<f32> = (0..clips * len * spec.input_dim)
        .map(|_| rng.random_range(0.0..1.0))
        .collect();
    Batch::slowness(&inputs, spec.input_dim, clips, len).unwrap()
}

#[test]
fn conv_net_step_matches_oracle() {
    let spec = small_net(Activation::Softplus, false, 4);
    let batch = video_batch(&spec, 3, 4, 5);
    common::check_engine(&spec, &batch, 0.3, 6, EngineOptions::default());
}

#[test]
fn conv_net_step_in_chunks_with_relu_and_constant_matches_oracle() {
    let spec = small_net(Activation::Relu, true, 5);
    let batch = video_batch(&spec, 4, 3, 7);
    let options = EngineOptions {
        chunk_samples: Some(5),
        ..Default::default()
    };
    common::check_engine(&spec, &batch, 0.2, 8, options);
}

/// A conv net's batch parameter gradients split into row groups (forced here; a GPU's default).
#[test]
fn conv_net_step_with_split_k_matches_oracle() {
    let spec = small_net(Activation::Softplus, false, 4);
    let batch = video_batch(&spec, 7, 10, 23);
    let options = EngineOptions {
        param_grad_invocations: Some(1 << 20),
        ..Default::default()
    };
    common::check_engine(&spec, &batch, 0.6, 24, options);
}

#[test]
fn mlp_step_in_chunks_matches_oracle() {
    let spec = NetworkSpec::mlp(3, vec![9, 6], 4);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let points: Vec<f64> = (0..17 * 3).map(|_| rng.random_range(-1.0..1.0)).collect();
    let op = Operator::hamiltonian_fd(3, 1.0, 0.1, Arc::new(|x: &[f64]| x[0] * x[0])).unwrap();
    let batch = op.batch(&points, 3, &[1.0; 17]).unwrap();
    let options = EngineOptions {
        chunk_samples: Some(4),
        ..Default::default()
    };
    common::check_engine(&spec, &batch, 0.5, 10, options);
}

#[test]
fn conv_net_refuses_tangent_operators() {
    let spec = small_net(Activation::Softplus, false, 3);
    let shape = spectral_inference::operators::BatchShape {
        input_dim: spec.input_dim,
        rows: 8,
        samples: 2,
        pairs: 2,
        tx: 1,
        ty: 2,
        channels: 4,
    };
    let err = Engine::new(ctx(), &spec, shape, true)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("conv"), "{err}");
}

/// Σ_b Σ_k c_bk u_bk, the scalar whose gradient `backward` gives for cotangent c.
fn objective(spec: &NetworkSpec, params: &[f64], inputs: &[f64], cot: &[f64]) -> f64 {
    let f = forward(spec, params, inputs);
    f.u.iter().zip(cot).map(|(u, c)| u * c).sum()
}

#[test]
fn conv_net_gradients_match_finite_differences() {
    let spec = small_net(Activation::Softplus, false, 3);
    let n = spec.outputs;
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let params: Vec<f64> = spec
        .init_params(&mut rng)
        .iter()
        .map(|&v| v as f64 + rng.random_range(-0.1..0.1))
        .collect();
    let s = 4;
    let inputs = random(s * spec.input_dim, &mut rng);
    let cot = random(s * n, &mut rng);
    let fwd = forward(&spec, &params, &inputs);
    let grad = backward(&spec, &params, &inputs, &fwd, &cot);
    let h = 1e-5;
    let p = params.len();
    let step = p / 150 + 1;
    for i in (0..p).step_by(step) {
        let mut plus = params.clone();
        let mut minus = params.clone();
        plus[i] += h;
        minus[i] -= h;
        let fd = (objective(&spec, &plus, &inputs, &cot) - objective(&spec, &minus, &inputs, &cot))
            / (2.0 * h);
        assert!(
            (fd - grad[i]).abs() <= 1e-6 + 1e-5 * fd.abs(),
            "∂/∂θ[{i}]: backward {} vs finite differences {fd}",
            grad[i]
        );
    }
    // The network's outputs against its input: the input VJP of the first conv layer.
    let layers = spec.layers();
    let mut delta = vec![0.0; 0];
    {
        // Cotangent at the output layer, then down to the first layer's output.
        let mut d = cot.clone();
        for l in (1..layers.len()).rev() {
            d = layer_backward(&layers[l], &params, &d, &fwd.z[l - 1], layers[l - 1].act, 1);
        }
        let zeros = vec![0.0; inputs.len()];
        delta.extend(layer_backward(
            &layers[0],
            &params,
            &d,
            &zeros,
            Activation::Identity,
            1,
        ));
    }
    for i in (0..inputs.len()).step_by(7) {
        let mut plus = inputs.clone();
        let mut minus = inputs.clone();
        plus[i] += h;
        minus[i] -= h;
        let fd = (objective(&spec, &params, &plus, &cot) - objective(&spec, &params, &minus, &cot))
            / (2.0 * h);
        assert!(
            (fd - delta[i]).abs() <= 1e-6 + 1e-5 * fd.abs(),
            "∂/∂x[{i}]: input VJP {} vs finite differences {fd}",
            delta[i]
        );
    }
    // The one-sided Σ-Jacobian Ĵ[j,k] = (2/S) Σ_b w_b u_j ∂u_k/∂θ.
    let w: Vec<f64> = (0..s).map(|_| rng.random_range(0.5..1.5)).collect();
    let sens = sensitivities(&spec, &params, &fwd, s);
    let jac = sigma_jacobian(&spec, &inputs, &fwd, &sens, &w);
    for i in (0..p).step_by(step * 3) {
        let mut plus = params.clone();
        let mut minus = params.clone();
        plus[i] += h;
        minus[i] -= h;
        let (up, um) = (
            forward(&spec, &plus, &inputs).u,
            forward(&spec, &minus, &inputs).u,
        );
        for k in 0..n {
            for j in 0..=k {
                let fd: f64 = (0..s)
                    .map(|b| {
                        2.0 / s as f64 * w[b] * fwd.u[b * n + j] * (up[b * n + k] - um[b * n + k])
                            / (2.0 * h)
                    })
                    .sum();
                let got = jac[pair_index(j, k) * p + i];
                assert!(
                    (fd - got).abs() <= 1e-6 + 1e-5 * fd.abs(),
                    "Ĵ[{j},{k},{i}]: {got} vs finite differences {fd}"
                );
            }
        }
    }
}

#[test]
fn separate_conv_networks_touch_one_eigenfunction_each() {
    // Constant first + 2 learned eigenfunctions, conv channels and hidden widths divisible by 2.
    let mut spec = small_net(Activation::Softplus, true, 3);
    spec.conv[1].channels = 4;
    spec.hidden = vec![4];
    let mask = separate_networks_mask(&spec).unwrap();
    let n = spec.outputs;
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let params: Vec<f32> = spec
        .init_params(&mut rng)
        .iter()
        .zip(&mask)
        .map(|(p, m)| p * m)
        .collect();
    let batch = video_batch(&spec, 3, 4, 13);
    let engine = Engine::new(ctx(), &spec, batch.shape, true).unwrap();
    engine.set_params(&params).unwrap();
    engine.set_batch(&batch).unwrap();
    engine.statistics().unwrap();
    let zero = vec![0.0; n * n];
    engine.gradient(&zero, &zero, 1.0).unwrap();
    let jbar = engine.read_jbar().unwrap();
    let p = params.len();
    let first = spec.layers()[0].len();
    let mut owned = 0;
    for i in first..p {
        if mask[i] == 0.0 {
            continue;
        }
        let moved: Vec<usize> = (0..n)
            .filter(|&k| (0..=k).any(|j| jbar[pair_index(j, k) * p + i].abs() > 1e-7))
            .collect();
        assert!(
            moved.len() <= 1,
            "parameter {i} moves eigenfunctions {moved:?}"
        );
        assert!(!moved.contains(&0), "parameter {i} moves the constant");
        owned += !moved.is_empty() as usize;
    }
    assert!(owned > 0, "no parameter moved any eigenfunction");
}

#[test]
fn block_sparse_conv_masks_whole_feature_maps() {
    let mut spec = small_net(Activation::Relu, false, 4);
    spec.conv[1].channels = 8;
    let mask = spectral_inference::nn::block_sparse_mask(&spec, 2).unwrap();
    let layers = spec.layers();
    let conv = layers[1];
    let g = conv.conv().unwrap();
    let mut zeros = 0;
    for ci in 0..g.in_c {
        for co in 0..g.out_c {
            let first = mask[conv.w(ci, co)];
            for tap in 0..g.kernel * g.kernel {
                assert_eq!(mask[conv.w(tap * g.in_c + ci, co)], first, "map {ci}→{co}");
            }
            zeros += (first == 0.0) as usize;
        }
    }
    assert!(zeros > 0, "the second conv layer should be block-sparse");
    // The dense layer after the flatten: whole input maps, at every position.
    let dense = layers[2];
    for i in 0..dense.inputs {
        for o in 0..dense.outputs {
            assert_eq!(
                mask[dense.w(i, o)],
                mask[dense.w(i % dense.units(), o)],
                "flattened input {i}"
            );
        }
    }
}

#[test]
fn constant_first_eigenfunction_is_one_and_frozen() {
    let spec = small_net(Activation::Relu, true, 3);
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    let params: Vec<f64> = spec
        .init_params(&mut rng)
        .iter()
        .map(|&v| v as f64)
        .collect();
    let inputs = random(5 * spec.input_dim, &mut rng);
    let fwd = forward(&spec, &params, &inputs);
    for b in 0..5 {
        assert_eq!(fwd.u[b * 3], 1.0);
    }
    let mask = spec.structural_mask().unwrap();
    let out = *spec.layers().last().unwrap();
    assert_eq!(mask[out.b(0)], 0.0);
    assert_eq!(mask.iter().filter(|&&m| m == 0.0).count(), out.inputs + 1);
    let sens = sensitivities(&spec, &params, &fwd, 5);
    assert!(sens.iter().all(|s| s
        .chunks(s.len() / 15)
        .step_by(3)
        .all(|c| c.iter().all(|&v| v == 0.0))));
}
