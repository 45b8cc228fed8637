// One dense layer on a batch of rows: z = a W + b, out = act(z) (identity, softplus or ReLU).
// Widths are padded to multiples of 4 (IN4, OUT4 count vec4s). Register blocking: each invocation
// computes 8 rows × 2 vec4s of outputs, so per quad of inputs 8 weight and 8 activation
// fetches feed 64 vec4 multiply-adds (fetches, not arithmetic, bound these kernels on lavapipe).

override ROWS: u32;
override IN4: u32;
override OUT4: u32;
override W_OFF4: u32;  // offset of this layer's (4·IN4 + 1, 4·OUT4) block, in vec4s; bias is its last row
override ACT: u32;     // 0 identity (output layer, or tangents: see tangent_act), 1 softplus, 2 ReLU
override BIAS_ROWS: u32; // rows that get the bias: all, or only the value channel of tangent rows

@group(0) @binding(0) var params: texture_2d<f32>;
@group(0) @binding(1) var a_in: texture_2d<f32>;        // (ROWS, IN4)
@group(0) @binding(2) var<storage, read_write> z_out: array<vec4<f32>>; // (ROWS, OUT4) pre-activation
@group(0) @binding(3) var<storage, read_write> a_out: array<vec4<f32>>; // (ROWS, OUT4) act(z)

@compute @workgroup_size(64)
fn dense_forward(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(id, nwg);
    let o_tiles = (OUT4 + 1u) / 2u;
    let r_tiles = (ROWS + 7u) / 8u;
    if (t >= o_tiles * r_tiles) {
        return;
    }
    let o0 = (t % o_tiles) * 2u;
    let r0 = (t / o_tiles) * 8u;
    // Clamped rows and output quads keep fetches in bounds; stores are guarded.
    let oc0 = min(o0 + 0u, OUT4 - 1u);
    let oc1 = min(o0 + 1u, OUT4 - 1u);
    let ra0 = min(r0 + 0u, ROWS - 1u) * IN4;
    let ra1 = min(r0 + 1u, ROWS - 1u) * IN4;
    let ra2 = min(r0 + 2u, ROWS - 1u) * IN4;
    let ra3 = min(r0 + 3u, ROWS - 1u) * IN4;
    let ra4 = min(r0 + 4u, ROWS - 1u) * IN4;
    let ra5 = min(r0 + 5u, ROWS - 1u) * IN4;
    let ra6 = min(r0 + 6u, ROWS - 1u) * IN4;
    let ra7 = min(r0 + 7u, ROWS - 1u) * IN4;
    let bias0 = ld4(params, W_OFF4 + 4u * IN4 * OUT4 + oc0);
    let bias1 = ld4(params, W_OFF4 + 4u * IN4 * OUT4 + oc1);
    var acc0_0 = select(vec4<f32>(0.0), bias0, r0 + 0u < BIAS_ROWS);
    var acc0_1 = select(vec4<f32>(0.0), bias1, r0 + 0u < BIAS_ROWS);
    var acc1_0 = select(vec4<f32>(0.0), bias0, r0 + 1u < BIAS_ROWS);
    var acc1_1 = select(vec4<f32>(0.0), bias1, r0 + 1u < BIAS_ROWS);
    var acc2_0 = select(vec4<f32>(0.0), bias0, r0 + 2u < BIAS_ROWS);
    var acc2_1 = select(vec4<f32>(0.0), bias1, r0 + 2u < BIAS_ROWS);
    var acc3_0 = select(vec4<f32>(0.0), bias0, r0 + 3u < BIAS_ROWS);
    var acc3_1 = select(vec4<f32>(0.0), bias1, r0 + 3u < BIAS_ROWS);
    var acc4_0 = select(vec4<f32>(0.0), bias0, r0 + 4u < BIAS_ROWS);
    var acc4_1 = select(vec4<f32>(0.0), bias1, r0 + 4u < BIAS_ROWS);
    var acc5_0 = select(vec4<f32>(0.0), bias0, r0 + 5u < BIAS_ROWS);
    var acc5_1 = select(vec4<f32>(0.0), bias1, r0 + 5u < BIAS_ROWS);
    var acc6_0 = select(vec4<f32>(0.0), bias0, r0 + 6u < BIAS_ROWS);
    var acc6_1 = select(vec4<f32>(0.0), bias1, r0 + 6u < BIAS_ROWS);
    var acc7_0 = select(vec4<f32>(0.0), bias0, r0 + 7u < BIAS_ROWS);
    var acc7_1 = select(vec4<f32>(0.0), bias1, r0 + 7u < BIAS_ROWS);
    for (var iq = 0u; iq < IN4; iq++) {
        let wrow = W_OFF4 + 4u * iq * OUT4;
        let w0_0 = ld4(params, wrow + 0u * OUT4 + oc0);
        let w1_0 = ld4(params, wrow + 1u * OUT4 + oc0);
        let w2_0 = ld4(params, wrow + 2u * OUT4 + oc0);
        let w3_0 = ld4(params, wrow + 3u * OUT4 + oc0);
        let w0_1 = ld4(params, wrow + 0u * OUT4 + oc1);
        let w1_1 = ld4(params, wrow + 1u * OUT4 + oc1);
        let w2_1 = ld4(params, wrow + 2u * OUT4 + oc1);
        let w3_1 = ld4(params, wrow + 3u * OUT4 + oc1);
        let x0 = ld4(a_in, ra0 + iq);
        acc0_0 += x0.x * w0_0 + x0.y * w1_0 + x0.z * w2_0 + x0.w * w3_0;
        acc0_1 += x0.x * w0_1 + x0.y * w1_1 + x0.z * w2_1 + x0.w * w3_1;
        let x1 = ld4(a_in, ra1 + iq);
        acc1_0 += x1.x * w0_0 + x1.y * w1_0 + x1.z * w2_0 + x1.w * w3_0;
        acc1_1 += x1.x * w0_1 + x1.y * w1_1 + x1.z * w2_1 + x1.w * w3_1;
        let x2 = ld4(a_in, ra2 + iq);
        acc2_0 += x2.x * w0_0 + x2.y * w1_0 + x2.z * w2_0 + x2.w * w3_0;
        acc2_1 += x2.x * w0_1 + x2.y * w1_1 + x2.z * w2_1 + x2.w * w3_1;
        let x3 = ld4(a_in, ra3 + iq);
        acc3_0 += x3.x * w0_0 + x3.y * w1_0 + x3.z * w2_0 + x3.w * w3_0;
        acc3_1 += x3.x * w0_1 + x3.y * w1_1 + x3.z * w2_1 + x3.w * w3_1;
        let x4 = ld4(a_in, ra4 + iq);
        acc4_0 += x4.x * w0_0 + x4.y * w1_0 + x4.z * w2_0 + x4.w * w3_0;
        acc4_1 += x4.x * w0_1 + x4.y * w1_1 + x4.z * w2_1 + x4.w * w3_1;
        let x5 = ld4(a_in, ra5 + iq);
        acc5_0 += x5.x * w0_0 + x5.y * w1_0 + x5.z * w2_0 + x5.w * w3_0;
        acc5_1 += x5.x * w0_1 + x5.y * w1_1 + x5.z * w2_1 + x5.w * w3_1;
        let x6 = ld4(a_in, ra6 + iq);
        acc6_0 += x6.x * w0_0 + x6.y * w1_0 + x6.z * w2_0 + x6.w * w3_0;
        acc6_1 += x6.x * w0_1 + x6.y * w1_1 + x6.z * w2_1 + x6.w * w3_1;
        let x7 = ld4(a_in, ra7 + iq);
        acc7_0 += x7.x * w0_0 + x7.y * w1_0 + x7.z * w2_0 + x7.w * w3_0;
        acc7_1 += x7.x * w0_1 + x7.y * w1_1 + x7.z * w2_1 + x7.w * w3_1;
    }
    var accs = array<vec4<f32>, 16>(acc0_0, acc0_1, acc1_0, acc1_1, acc2_0, acc2_1, acc3_0, acc3_1, acc4_0, acc4_1, acc5_0, acc5_1, acc6_0, acc6_1, acc7_0, acc7_1);
    for (var rr = 0u; rr < 8u; rr++) {
        let r = r0 + rr;
        if (r >= ROWS) {
            break;
        }
        for (var c = 0u; c < 2u; c++) {
            let oq = o0 + c;
            if (oq < OUT4) {
                let z = accs[rr * 2u + c];
                z_out[r * OUT4 + oq] = z;
                a_out[r * OUT4 + oq] = act4(z, ACT);
            }
        }
    }
}
